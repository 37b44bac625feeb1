//! Agreement messages: proposals, votes, commit certificates, evidence,
//! block catch-up (DESIGN.md "Agreement"; Tendermint, arXiv 1807.04938).
//!
//! Votes and proposals carry their own signatures (not only the envelope's)
//! so that a commit certificate and equivocation evidence can be checked by
//! anyone, long after the envelopes are gone.

use serde::{Deserialize, Serialize};

use super::common::MAX_ACTIVE;
use crate::block::BlockHeader;
use crate::bounded::BoundedVec;
use crate::crypto::{CryptoError, PublicKey, Signature, SigningKey};
use crate::hash::{Hash32, HashContext, hash};
use crate::ids::{BlockNumber, ChainId};

/// A consensus round number.
pub type Round = u32;

/// Validator story 4 (agreement): a proposer's block proposal for a height
/// and round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct Proposal {
    /// The chain the proposal is for.
    pub chain_id: ChainId,
    /// Height (block number).
    pub height: BlockNumber,
    /// The round of the proposal at its height.
    pub round: Round,
    /// Proof-of-lock round (Tendermint `validRound`), if any.
    pub pol_round: Option<Round>,
    /// The proposed value.
    pub header: BlockHeader,
    /// The proposer, whose key signs the proposal.
    pub proposer: PublicKey,
    /// The parent block's commit certificate the proposer chose; its signers
    /// are `header.parent_signers`. `None` only for the first block of an
    /// epoch.
    pub parent_certificate: Option<CommitCertificate>,
}

impl Proposal {
    /// The digest the proposer signs.
    pub fn digest(&self) -> Hash32 {
        hash(HashContext::Proposal, &crate::wire::encode_bare(self))
    }

    /// Signs as the proposer.
    pub fn sign(self, key: &SigningKey) -> SignedProposal {
        SignedProposal {
            signature: key.sign_digest(&self.digest()),
            proposal: self,
        }
    }
}

/// A proposal with the proposer's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct SignedProposal {
    /// The proposal that was signed.
    pub proposal: Proposal,
    /// The proposer's signature.
    pub signature: Signature,
}

impl SignedProposal {
    /// Checks the proposer's signature.
    pub fn verify(&self) -> Result<(), CryptoError> {
        self.proposal
            .proposer
            .verify_digest(&self.proposal.digest(), &self.signature)
    }
}

/// Prevote or precommit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum VoteKind {
    /// First voting step.
    Prevote,
    /// Second voting step; q of them commit.
    Precommit,
}

/// A vote for a block hash, or for nil.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct Vote {
    /// The chain the vote is for.
    pub chain_id: ChainId,
    /// The height (block number) voted at.
    pub height: BlockNumber,
    /// The round voted in.
    pub round: Round,
    /// Prevote or precommit.
    pub kind: VoteKind,
    /// The block hash voted for; `None` is nil.
    pub value: Option<Hash32>,
    /// The voter, whose key signs the vote.
    pub validator: PublicKey,
}

impl Vote {
    /// The digest the voter signs.
    pub fn digest(&self) -> Hash32 {
        hash(HashContext::Vote, &crate::wire::encode_bare(self))
    }

    /// Signs as the voter.
    pub fn sign(self, key: &SigningKey) -> SignedVote {
        SignedVote {
            signature: key.sign_digest(&self.digest()),
            vote: self,
        }
    }
}

/// A vote with the voter's signature.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct SignedVote {
    /// The vote that was signed.
    pub vote: Vote,
    /// The voter's signature.
    pub signature: Signature,
}

impl SignedVote {
    /// Checks the voter's signature.
    pub fn verify(&self) -> Result<(), CryptoError> {
        self.vote
            .validator
            .verify_digest(&self.vote.digest(), &self.signature)
    }
}

/// One precommit signature in a commit certificate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct CommitSignature {
    /// The validator whose precommit this is.
    pub validator: PublicKey,
    /// Its precommit signature.
    pub signature: Signature,
}

/// Validator story 4: the proof a block was decided: q precommit signatures
/// for the block hash at one height and round. Verifiable by anyone who knows
/// that height's validator set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct CommitCertificate {
    /// The chain of the decided block.
    pub chain_id: ChainId,
    /// The height (block number) of the decided block.
    pub height: BlockNumber,
    /// The round that decided.
    pub round: Round,
    /// The decided block hash.
    pub block_hash: Hash32,
    /// The precommit signatures.
    pub signatures: BoundedVec<CommitSignature, MAX_ACTIVE>,
}

impl CommitCertificate {
    /// The precommit each signature covers, for `validator`.
    pub fn precommit_for(&self, validator: PublicKey) -> Vote {
        Vote {
            chain_id: self.chain_id,
            height: self.height,
            round: self.round,
            kind: VoteKind::Precommit,
            value: Some(self.block_hash),
            validator,
        }
    }
}

/// Conflicting signed messages from one validator: evidence of Byzantine
/// behaviour (DESIGN.md "Agreement": conflicting signed votes are evidence).
// Evidence is rare and short-lived; boxing the votes would only add an
// allocation to the common double-vote case.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum Evidence {
    /// Two different votes of the same kind, height and round.
    DoubleVote {
        /// The first vote seen.
        first: SignedVote,
        /// The conflicting one.
        second: SignedVote,
    },
    /// Two different proposals for the same height and round.
    DoubleProposal {
        /// The first proposal seen.
        first: Box<SignedProposal>,
        /// The conflicting one.
        second: Box<SignedProposal>,
    },
}

impl Evidence {
    /// The height the conflicting messages are for.
    pub fn height(&self) -> BlockNumber {
        match self {
            Evidence::DoubleVote { first, .. } => first.vote.height,
            Evidence::DoubleProposal { first, .. } => first.proposal.height,
        }
    }

    /// The round the conflicting messages are for.
    pub fn round(&self) -> Round {
        match self {
            Evidence::DoubleVote { first, .. } => first.vote.round,
            Evidence::DoubleProposal { first, .. } => first.proposal.round,
        }
    }

    /// The offending validator.
    pub fn offender(&self) -> PublicKey {
        match self {
            Evidence::DoubleVote { first, .. } => first.vote.validator,
            Evidence::DoubleProposal { first, .. } => first.proposal.proposer,
        }
    }

    /// Whether this is real evidence: same signer, same slot, different
    /// content, both signatures valid.
    pub fn verify(&self) -> Result<(), EvidenceError> {
        match self {
            Evidence::DoubleVote { first, second } => verify_vote_pair(first, second),
            Evidence::DoubleProposal { first, second } => {
                let (a, b) = (&first.proposal, &second.proposal);
                if a.proposer != b.proposer {
                    return Err(EvidenceError::DifferentSigners);
                }
                if (a.chain_id, a.height, a.round) != (b.chain_id, b.height, b.round) {
                    return Err(EvidenceError::DifferentSlots);
                }
                if a == b {
                    return Err(EvidenceError::NotConflicting);
                }
                first.verify().map_err(EvidenceError::Signature)?;
                second.verify().map_err(EvidenceError::Signature)
            }
        }
    }

    /// The committed form of this evidence: double votes only (a block
    /// header carries [`DuplicateVote`]s; a double proposal is surfaced but
    /// never committed, docs/PROTOCOL.md "Evidence in blocks").
    pub fn duplicate_vote(&self) -> Option<DuplicateVote> {
        match self {
            Evidence::DoubleVote { first, second } => Some(DuplicateVote {
                first: first.clone(),
                second: second.clone(),
            }),
            Evidence::DoubleProposal { .. } => None,
        }
    }
}

/// Same signer, same slot, different values, both signatures valid.
fn verify_vote_pair(first: &SignedVote, second: &SignedVote) -> Result<(), EvidenceError> {
    let (a, b) = (&first.vote, &second.vote);
    if a.validator != b.validator {
        return Err(EvidenceError::DifferentSigners);
    }
    if (a.chain_id, a.height, a.round, a.kind) != (b.chain_id, b.height, b.round, b.kind) {
        return Err(EvidenceError::DifferentSlots);
    }
    if a.value == b.value {
        return Err(EvidenceError::NotConflicting);
    }
    first.verify().map_err(EvidenceError::Signature)?;
    second.verify().map_err(EvidenceError::Signature)
}

/// Committed equivocation evidence: two conflicting signed votes of one
/// validator in one slot (CometBFT's `DuplicateVoteEvidence`). A block
/// header carries up to [`crate::MAX_BLOCK_EVIDENCE`] of them; every
/// validator that applies the block lowers the offender's perception score
/// by the same amount (docs/PROTOCOL.md "Evidence in blocks").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct DuplicateVote {
    /// One of the two votes.
    pub first: SignedVote,
    /// The conflicting one.
    pub second: SignedVote,
}

impl DuplicateVote {
    /// The offending validator.
    pub fn offender(&self) -> PublicKey {
        self.first.vote.validator
    }

    /// The height both votes are for.
    pub fn height(&self) -> BlockNumber {
        self.first.vote.height
    }

    /// The chain both votes are for.
    pub fn chain_id(&self) -> ChainId {
        self.first.vote.chain_id
    }

    /// Whether the pair is real evidence (same checks as
    /// [`Evidence::verify`]).
    pub fn verify(&self) -> Result<(), EvidenceError> {
        verify_vote_pair(&self.first, &self.second)
    }
}

/// Why evidence was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// The two messages have different signers.
    #[error("evidence messages have different signers")]
    DifferentSigners,
    /// The two messages are for different chains, heights, rounds or steps.
    #[error("evidence messages are for different slots")]
    DifferentSlots,
    /// The two messages agree.
    #[error("evidence messages do not conflict")]
    NotConflicting,
    /// A signature does not verify.
    #[error("evidence signature: {0}")]
    Signature(CryptoError),
}

/// Most blocks in one catch-up response.
pub const MAX_BLOCKS_PER_RESPONSE: usize = 64;

/// Validator story (catch-up of a restarted or lagging validator): ask for
/// decided blocks from `from` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct BlockRequest {
    /// First block wanted.
    pub from: BlockNumber,
    /// Most blocks wanted (capped at [`MAX_BLOCKS_PER_RESPONSE`]).
    pub max: u16,
}

/// A decided block: its header and commit certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct CommittedBlock {
    /// The decided block's header.
    pub header: BlockHeader,
    /// The commit certificate that decided it.
    pub certificate: CommitCertificate,
}

/// Reply to [`BlockRequest`]: consecutive decided blocks (job files follow
/// by job-file requests or reconciliation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct BlockResponse {
    /// The blocks, in order.
    pub blocks: BoundedVec<CommittedBlock, MAX_BLOCKS_PER_RESPONSE>,
    /// The responder's latest decided block.
    pub tip: BlockNumber,
}
