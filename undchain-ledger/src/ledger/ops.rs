//! What a block asks the ledger to do besides committing its job file:
//! user operations (receipts, partial completions, domain-link steps), each
//! verified once when it is submitted, and chain events (chain-owner
//! decisions) that the host derives from committed data.

use serde::{Deserialize, Serialize};
use undchain_types::msg::{
    DomainProofKind, DomainTransfer, DomainTransferProof, PartialCompletion, Receipt,
};
use undchain_types::{
    BlockNumber, ChainId, Hash32, HashAlgorithm, HashContext, JobId, PublicKey, TokenAmount,
};

use undchain_consensus::validator_set::ValidatorSet;

/// A user operation, as submitted (unverified).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerOp {
    /// Client story step 5 / partner story "utility complete": the receipt
    /// signed by both; either side may submit it, the first counts.
    Receipt(Receipt),
    /// Partner story "client refuses to sign": the last client-signed usage
    /// checkpoint pays the proven part.
    Partial(PartialCompletion),
    /// Domain link, step 1 on the source: lock the payer's tokens.
    DomainLock(DomainTransfer),
    /// Domain link, steps 2-3: credit or expire on the target, refund on
    /// the source.
    DomainProof(Box<DomainTransferProof>),
}

impl LedgerOp {
    /// The operation's id: what the ledger's running digest records, and
    /// what makes a repeated submission recognisable.
    pub fn id(&self) -> Hash32 {
        match self {
            LedgerOp::Receipt(r) => r.terms.digest(),
            LedgerOp::Partial(p) => p.last_checkpoint.checkpoint.digest(),
            LedgerOp::DomainLock(t) => t.id(),
            LedgerOp::DomainProof(p) => {
                let tag: u8 = match p.kind {
                    DomainProofKind::Credit { .. } => 1,
                    DomainProofKind::Expire => 2,
                    DomainProofKind::Refund { .. } => 3,
                };
                HashAlgorithm::Blake3.hash_parts(
                    HashContext::DomainTransfer,
                    &[&[tag], p.transfer.id().as_bytes()],
                )
            }
        }
    }

    /// The job this operation completes, if it is a receipt or a partial.
    pub fn job(&self) -> Option<JobId> {
        match self {
            LedgerOp::Receipt(r) => Some(r.terms.job),
            LedgerOp::Partial(p) => Some(p.last_checkpoint.checkpoint.job),
            _ => None,
        }
    }
}

/// An operation whose signatures (and, for domain proofs, certificate and
/// inclusion proof) this ledger has checked. Only [`crate::Ledger::verify`]
/// makes one, so a block can only carry verified operations and settlement
/// works over verified records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub(crate) op: LedgerOp,
    pub(crate) id: Hash32,
}

impl Verified {
    /// The operation as submitted, now known to carry valid signatures.
    pub fn op(&self) -> &LedgerOp {
        &self.op
    }

    /// The operation's id ([`LedgerOp::id`]), computed once at verification.
    pub fn id(&self) -> Hash32 {
        self.id
    }

    /// Gives the operation back.
    pub fn into_op(self) -> LedgerOp {
        self.op
    }
}

/// A chain-owner decision applied with a block. How the owner authorises it
/// (a signed message recorded on chain) is the host's part; the ledger
/// applies it deterministically and refuses impossible ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainEvent {
    /// Explicit minting: the only way, besides genesis and domain links,
    /// that the supply grows.
    Mint {
        /// The account the minted tokens are credited to.
        to: PublicKey,
        /// The number of tokens minted; the supply's `minted` counter grows by it.
        amount: TokenAmount,
    },
    /// Registers (or updates) a foreign domain whose domain-link proofs this
    /// chain accepts: its algorithm and the validator set that signs from
    /// height `from` on.
    RegisterDomain {
        /// The chain id of the foreign domain.
        chain: ChainId,
        /// The hash algorithm of the domain's block hashes and ledger roots.
        algorithm: HashAlgorithm,
        /// First height the set signs.
        from: BlockNumber,
        /// The validator set whose commit certificates the domain's proofs carry from `from` on.
        set: ValidatorSet,
    },
}
