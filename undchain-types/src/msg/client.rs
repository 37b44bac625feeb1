//! Client <-> validator messages (design notes, "Client to Validator";
//! DESIGN.md "Client to validator").

use serde::{Deserialize, Serialize};

use super::common::{Endpoint, MAX_ACTIVE, MerkleProof, ValidatorInfo};
use crate::bounded::{BoundedBytes, BoundedVec};
use crate::crypto::{PublicKey, Signature, SigningKey};
use crate::hash::{Hash32, HashContext};
use crate::ids::{
    BlockNumber, BlockTime, ChainId, JobId, PayoutPeriod, PerceptionScore, TokenAmount,
};
use crate::job::MAX_POOL;
use crate::roles::UtilityKind;

/// Largest utility specification a request may carry.
pub const MAX_SPEC: usize = 4096;
/// Largest signed envelope a forwarded request may carry.
pub const MAX_FORWARDED: usize = 16 * 1024;

/// Client story step 1: a client asks for utility. Sent to the
/// lowest-latency active validators (ack fan-out, default 3); validators
/// gossip it to the others. The job id is derived from the signed envelope
/// carrying it ([`JobId::from_request_digest`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct UtilityRequest {
    /// The utility wanted.
    pub kind: UtilityKind,
    /// Units wanted (bytes stored, compute seconds, access minutes, ...).
    pub units: u64,
    /// Most the client pays per unit.
    pub max_price_per_unit: TokenAmount,
    /// Lowest partner perception score the client accepts (its risk level,
    /// step 4).
    pub min_partner_score: PerceptionScore,
    /// How many partner offers the client wants streamed (step 4; the chain
    /// caps it at `partner_list_cap`).
    pub partner_threshold: u16,
    /// Further clients sharing the job (the requester is always in the pool).
    pub co_clients: BoundedVec<PublicKey, { MAX_POOL - 1 }>,
    /// Utility-specific requirements, opaque to validators.
    pub spec: BoundedBytes<MAX_SPEC>,
}

/// Client story step 2: a validator confirms the request is filed: the
/// block whose job file holds it now, and the active validators of this
/// payout period. A retried request (same sender and sequence) gets the same
/// ack again (DESIGN.md "Replay").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct RequestAck {
    /// The job the request became.
    pub job: JobId,
    /// The block whose open job file holds it.
    pub block: BlockNumber,
    /// The current payout period.
    pub period: PayoutPeriod,
    /// The active validators of this period.
    pub active: BoundedVec<ValidatorInfo, MAX_ACTIVE>,
}

/// Client story step 2 ("if agreement moves the job to a later block"): the
/// block the job was committed in, with an inclusion proof against that
/// block's job root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct InclusionNotice {
    /// The job the notice is about.
    pub job: JobId,
    /// The block it was committed in.
    pub block: BlockNumber,
    /// That block's job root (also in its header).
    pub job_root: Hash32,
    /// The job entry's leaf hash.
    pub leaf: Hash32,
    /// Proof of the leaf under `job_root`.
    pub proof: MerkleProof,
}

/// Client story step 3: the client forwards its original signed request to
/// validators of the ack's list that have not acked (only while fewer than
/// f+1 acks came). Validators also use it to gossip requests. The bytes are
/// the original signed envelope, verified by the receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ForwardedRequest {
    /// The original signed `UtilityRequest` envelope, as encoded.
    pub original: BoundedBytes<MAX_FORWARDED>,
}

/// Client story step 4: one partner willing to serve, streamed to the client
/// as partners come in, up to the client's threshold (capped by the chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct PartnerOffer {
    /// The job the offer is for.
    pub job: JobId,
    /// The partner willing to serve it.
    pub partner: PublicKey,
    /// The partner's perception score.
    pub score: PerceptionScore,
    /// Price per unit the partner asks.
    pub price_per_unit: TokenAmount,
    /// For a centralised partner: its preferred connection; the client
    /// connects directly. Clients do not store it (partners move).
    pub preferred: Option<Endpoint>,
    /// Position of this offer in the stream (0-based).
    pub index: u16,
    /// Whether this is the last offer the validator will stream.
    pub last: bool,
}

/// What client and partner agree was delivered; both sign it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ReceiptTerms {
    /// The chain (a receipt is never valid on another chain).
    pub chain_id: ChainId,
    /// The job the receipt settles.
    pub job: JobId,
    /// The block whose job file committed the job: a receipt is valid only
    /// for that commit, never for a later job under the same id.
    pub commit_block: BlockNumber,
    /// The paying client.
    pub client: PublicKey,
    /// The serving partner.
    pub partner: PublicKey,
    /// How many units were delivered.
    pub units: u64,
    /// Amount the client pays the partner.
    pub amount: TokenAmount,
    /// When the utility ended (client's clock).
    pub finished_at: BlockTime,
}

impl ReceiptTerms {
    /// The digest both parties sign.
    pub fn digest(&self) -> Hash32 {
        crate::hash::hash(HashContext::Receipt, &crate::wire::encode_bare(self))
    }
}

/// Client story step 5 / partner story "utility complete": the receipt
/// signed by both client and partner. Either side may send it; the first
/// full receipt of a partner counts, and it supersedes that partner's
/// partial completions (docs/PROTOCOL.md "Claims").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct Receipt {
    /// What was delivered.
    pub terms: ReceiptTerms,
    /// The client's signature over the terms.
    pub client_sig: Signature,
    /// The partner's signature over the terms.
    pub partner_sig: Signature,
}

impl Receipt {
    /// Signs `terms` with both keys.
    pub fn sign(terms: ReceiptTerms, client: &SigningKey, partner: &SigningKey) -> Self {
        let d = terms.digest();
        Receipt {
            client_sig: client.sign_digest(&d),
            partner_sig: partner.sign_digest(&d),
            terms,
        }
    }

    /// Checks both signatures against the keys named in the terms.
    pub fn verify(&self) -> Result<(), crate::crypto::CryptoError> {
        let d = self.terms.digest();
        self.terms.client.verify_digest(&d, &self.client_sig)?;
        self.terms.partner.verify_digest(&d, &self.partner_sig)
    }
}

/// Client story step 5: the validator confirms completion with the block
/// number the utility completed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct CompletionAck {
    /// The job whose completion is confirmed.
    pub job: JobId,
    /// The block whose ledger records the completion.
    pub block: BlockNumber,
    /// Whether this receipt was the first (false: the other party's receipt
    /// already counted; still acknowledged, never applied twice).
    pub first: bool,
}

/// Any user may ask for a block's job file (partner story 1, censorship
/// checks). Paged: entries after `after`, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct JobFileRequest {
    /// The block whose job file is wanted.
    pub block: BlockNumber,
    /// Resume after this job id (None: from the start).
    pub after: Option<JobId>,
    /// Most entries wanted in the reply.
    pub limit: u32,
}

/// Most entries in one job-file page, delta or reconciliation message.
pub const MAX_ENTRIES: usize = 32 * 1024;

/// Most validators a [`JobFileElsewhere`] names.
pub const MAX_ELSEWHERE: usize = 4;

/// Reply to [`JobFileRequest`] from an active validator too loaded to
/// serve a closed block's file (DESIGN.md "Network status is used": busy
/// active validators offload job-file serving to passive ones): ask these
/// validators, which follow the chain and hold the same committed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct JobFileElsewhere {
    /// The block asked for.
    pub block: BlockNumber,
    /// Validators that serve it (passive ones, in the order to try).
    pub serve: BoundedVec<PublicKey, MAX_ELSEWHERE>,
}

/// Reply to [`JobFileRequest`]: one page of the block's job file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct JobFileReply {
    /// The block whose job file this page is from.
    pub block: BlockNumber,
    /// Whether the file is closed (root is the Merkle root in the header) or
    /// still open (root is the incremental fingerprint root).
    pub closed: bool,
    /// Jobs in the whole file.
    pub total: u64,
    /// The file's root.
    pub root: Hash32,
    /// This page, in file order.
    pub entries: BoundedVec<crate::job::JobEntry, MAX_ENTRIES>,
    /// Where the next page starts, if any.
    pub next: Option<JobId>,
}
