//! Ledger transactions and the light-client records of domain links
//! (DESIGN.md "Money: what a token may never do"; docs/PROTOCOL.md
//! "Ledger, payouts, convergence and links").
//!
//! Every operation that moves or creates tokens outside the job lifecycle
//! is a [`Transaction`]: the sender signs the chain, its account nonce, the
//! fee it agrees to pay and the operation. Jobs are paid from the escrow
//! their signed [`super::UtilityRequest`] locked at commit; receipts and
//! partial completions ride on that job's fee.

use serde::{Deserialize, Serialize};

use super::common::{Endpoint, MAX_ACTIVE, MAX_MEDIA};
use super::consensus::CommitCertificate;
use super::links::DomainTransferProof;
use crate::block::BlockHeader;
use crate::bounded::{BoundedString, BoundedVec};
use crate::crypto::{PublicKey, Signature, SigningKey};
use crate::hash::{Hash32, HashAlgorithm, HashContext, hash};
use crate::ids::{BlockNumber, ChainId, TokenAmount};
use crate::roles::Trust;

/// Deepest leaf of the ledger's sparse Merkle state tree (keys are 256-bit
/// hashes), so the most siblings a [`StateProof`] can carry.
pub const MAX_STATE_DEPTH: usize = 256;

/// Inclusion proof of one leaf in a ledger's sparse Merkle state tree: the
/// sibling hashes on the path from the root (first) to the leaf (last);
/// the leaf sits at depth `siblings.len()`, and bit `i` of its key hash
/// says on which side of sibling `i` the path goes. An empty sibling is
/// [`Hash32::ZERO`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct StateProof {
    /// Sibling hashes, root side first.
    pub siblings: BoundedVec<Hash32, MAX_STATE_DEPTH>,
}

/// A committed block header of another domain with its commit certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct SignedHeader {
    /// The header.
    pub header: BlockHeader,
    /// The precommits of the set that decided it.
    pub certificate: CommitCertificate,
}

/// One seat of another domain's validator set, with the fields (and the
/// encoding) of `undchain_consensus::validator_set::Seat`, so the set's
/// hash can be compared with a header's `validator_set_hash`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct SeatRecord {
    /// The validator holding the seat.
    pub id: PublicKey,
    /// Known or unknown.
    pub trust: Trust,
    /// A known validator filling an unknown seat.
    pub filling_unknown: bool,
}

/// The chain owner's registration of another domain: the light client's
/// first trusted header and the set that signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct DomainRegistration {
    /// The domain's hash algorithm (block hashes, set hashes, state tree).
    pub algorithm: HashAlgorithm,
    /// How long, in microseconds of block time, a trusted header may vouch
    /// for later headers of its set.
    pub trusting_period_us: u64,
    /// The trusted header (its `chain_id` names the domain).
    pub header: BlockHeader,
    /// The validator set the header names.
    pub seats: BoundedVec<SeatRecord, MAX_ACTIVE>,
}

/// A light-client update: a later committed header of a registered domain.
/// If it names another validator set than the trusted one, `new_seats`
/// carries that set (the hand-off); see docs/PROTOCOL.md "Domain link".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct DomainUpdate {
    /// The header and its certificate.
    pub block: SignedHeader,
    /// The set the header names, when it is not the trusted one.
    pub new_seats: Option<BoundedVec<SeatRecord, MAX_ACTIVE>>,
}

/// Proof of a domain's misbehaviour: two certified headers of one height
/// with different hashes. Freezes the link until the chain owner
/// registers the domain again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct DomainMisbehaviour {
    /// One header.
    pub first: SignedHeader,
    /// A conflicting header of the same height.
    pub second: SignedHeader,
}

/// What a transaction does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum TxOp {
    /// Moves `amount` of the sender's free balance to `to`.
    Transfer {
        /// The payee.
        to: PublicKey,
        /// How much moves.
        amount: TokenAmount,
    },
    /// Creates `amount` for `to`; only the chain owner may send it.
    Mint {
        /// The account credited.
        to: PublicKey,
        /// How much is created.
        amount: TokenAmount,
    },
    /// Registers (or re-registers, unfreezing) a foreign domain; only the
    /// chain owner may send it.
    RegisterDomain(Box<DomainRegistration>),
    /// Moves a domain's light client forward (anyone may relay it).
    UpdateDomain(Box<DomainUpdate>),
    /// Locks `amount` of the sender's free balance for `to` on `target`.
    DomainLock {
        /// The target domain.
        target: ChainId,
        /// The payee there.
        to: PublicKey,
        /// How much moves.
        amount: TokenAmount,
        /// Last block of this chain whose header may prove the lock.
        expires_at: BlockNumber,
    },
    /// A domain-link proof (credit, expiry or refund), relayed by anyone.
    DomainProof(Box<DomainTransferProof>),
    /// Evidence that a registered domain signed two headers for one height.
    DomainMisbehaviour(Box<DomainMisbehaviour>),
    /// Registers a validator (design notes, validator story item 1): it
    /// starts passive and may rotate into a seat of its class at the next
    /// payout-period end. A known validator is registered by the chain
    /// owner only; an unknown one by anyone (itself, or a sponsor paying
    /// the fee). Either way the validator's own consent signature is
    /// carried.
    RegisterValidator(Box<ValidatorRegistration>),
}

/// Longest alias of a registered validator.
pub const MAX_ALIAS: usize = 64;

/// What a validator consents to when it registers: the chain, its key, its
/// class and how it is reached ([`ValidatorRegistration::consent_digest`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ValidatorRegistration {
    /// The validator's identity key (who consents).
    pub validator: PublicKey,
    /// Known (appointed by the chain owner) or unknown.
    pub trust: Trust,
    /// Its alias (as in the validator list).
    pub alias: BoundedString<MAX_ALIAS>,
    /// How to reach it (discovery replies hand these on).
    pub media: BoundedVec<Endpoint, MAX_MEDIA>,
    /// The validator's signature over [`Self::consent_digest`] for the
    /// transaction's chain: a key is never registered without its holder.
    pub consent: Signature,
}

impl ValidatorRegistration {
    /// The digest the validator signs to consent to being registered on
    /// `chain` with these fields.
    pub fn consent_digest(
        chain: ChainId,
        validator: &PublicKey,
        trust: Trust,
        alias: &BoundedString<MAX_ALIAS>,
        media: &BoundedVec<Endpoint, MAX_MEDIA>,
    ) -> Hash32 {
        hash(
            HashContext::ValidatorRegistration,
            &crate::wire::encode_bare(&(chain, validator, trust, alias, media)),
        )
    }

    /// The registration of `key`'s validator on `chain`, consented by
    /// `key`.
    pub fn consented(
        chain: ChainId,
        key: &SigningKey,
        trust: Trust,
        alias: BoundedString<MAX_ALIAS>,
        media: BoundedVec<Endpoint, MAX_MEDIA>,
    ) -> Self {
        let validator = key.public();
        let digest = Self::consent_digest(chain, &validator, trust, &alias, &media);
        ValidatorRegistration {
            validator,
            trust,
            alias,
            media,
            consent: key.sign_digest(&digest),
        }
    }

    /// This registration's consent digest on `chain`.
    pub fn digest(&self, chain: ChainId) -> Hash32 {
        Self::consent_digest(chain, &self.validator, self.trust, &self.alias, &self.media)
    }
}

/// What the sender of a transaction signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct TransactionBody {
    /// The chain (a transaction is never valid on another chain).
    pub chain_id: ChainId,
    /// The sender, who signs and pays.
    pub sender: PublicKey,
    /// The sender's account nonce: the transaction applies only when it
    /// equals the account's, which then grows by one.
    pub nonce: u64,
    /// The fee the sender pays (at least the chain's transaction fee).
    pub fee: TokenAmount,
    /// What the transaction does.
    pub op: TxOp,
}

impl TransactionBody {
    /// The digest the sender signs (also the transaction's id).
    pub fn digest(&self) -> Hash32 {
        hash(HashContext::Transaction, &crate::wire::encode_bare(self))
    }

    /// Signs as the sender (`key` should be the sender's).
    pub fn sign(self, key: &SigningKey) -> Transaction {
        Transaction {
            signature: key.sign_digest(&self.digest()),
            body: self,
        }
    }
}

/// A signed ledger transaction. User -> validators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct Transaction {
    /// What is signed.
    pub body: TransactionBody,
    /// The sender's signature over [`TransactionBody::digest`].
    pub signature: Signature,
}

impl Transaction {
    /// The transaction's id: the digest its sender signed.
    pub fn id(&self) -> Hash32 {
        self.body.digest()
    }

    /// Checks the sender's signature.
    pub fn verify(&self) -> Result<(), crate::crypto::CryptoError> {
        self.body
            .sender
            .verify_digest(&self.body.digest(), &self.signature)
    }
}
