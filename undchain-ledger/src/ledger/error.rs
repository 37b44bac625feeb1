//! Why the ledger refuses: an operation ([`LedgerError`], reported in the
//! block's outcome while the rest of the block stands), a whole block
//! ([`BlockError`]) or a genesis allocation ([`GenesisError`]). Every
//! refusal changes nothing.

use undchain_jobfile::{Completion, PayoutError};
use undchain_types::{BlockNumber, ChainId, JobId, PublicKey, TokenAmount};

use crate::links::domain_link::DomainLinkError;

/// Why an operation was refused. A refused operation changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Signed for another chain.
    #[error("signed for {got}, this chain is {expected}")]
    WrongChain {
        /// This chain's id, which the operation should have named.
        expected: ChainId,
        /// The chain the operation was signed for.
        got: ChainId,
    },
    /// A signature does not verify.
    #[error("signature of {signer:?} does not verify")]
    BadSignature {
        /// The key whose signature over the operation failed strict verification.
        signer: PublicKey,
    },
    /// The job is not in the payout file (nor in the block's job file).
    #[error("job {job} is not committed")]
    UnknownJob {
        /// The job the operation names, in neither the payout file nor the block's job file.
        job: JobId,
    },
    /// The job already has its completion (the first receipt counts).
    #[error("job {job} is already {state:?}")]
    AlreadyCompleted {
        /// The job that already has its completion.
        job: JobId,
        /// Its completion, with the block that recorded it.
        state: Completion,
    },
    /// The paying client is not in the job's client pool.
    #[error("{client:?} is not a client of job {job}")]
    NotAClient {
        /// The job whose client pool lacks the key.
        job: JobId,
        /// The key named as client.
        client: PublicKey,
    },
    /// The partner is not in the job's (non-empty) partner pool.
    #[error("{partner:?} is not a partner of job {job}")]
    NotAPartner {
        /// The job whose partner pool lacks the key.
        job: JobId,
        /// The key named as partner.
        partner: PublicKey,
    },
    /// The payer's balance does not cover the amount.
    #[error("{account:?} holds {available}, needs {needed}")]
    InsufficientBalance {
        /// The account that would have to pay.
        account: PublicKey,
        /// The amount the operation takes from the balance.
        needed: TokenAmount,
        /// The account's spendable balance when the operation ran.
        available: TokenAmount,
    },
    /// A transfer with another nonce than the account's next.
    #[error("{account:?} expects nonce {expected}, got {got}")]
    BadNonce {
        /// The account whose nonce does not match.
        account: PublicKey,
        /// The nonce the account's next transfer must carry.
        expected: u64,
        /// The nonce the transfer carried.
        got: u64,
    },
    /// A credit or mint would overflow the supply.
    #[error("amount overflows the token supply")]
    Overflow,
    /// A domain-link step was refused.
    #[error("domain link: {0}")]
    Domain(#[from] DomainLinkError),
}

/// Why a whole block was refused. A refused block changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Blocks apply in order, every number once (empty blocks too, so that
    /// period ends are never skipped).
    #[error("expected block {expected}, got {got}")]
    OutOfOrder {
        /// The block number the ledger applies next.
        expected: BlockNumber,
        /// The block number the host offered.
        got: BlockNumber,
    },
    /// A job of the file is already in the payout file.
    #[error("job {job} is already committed")]
    JobAlreadyCommitted {
        /// The job the block commits a second time.
        job: JobId,
    },
    /// A job carries another fee than the chain's.
    #[error("job {job} carries fee {fee}, the chain's is {expected}")]
    WrongFee {
        /// The job with the wrong fee.
        job: JobId,
        /// The fee the job entry carries.
        fee: TokenAmount,
        /// The chain's transaction fee, which every job must carry.
        expected: TokenAmount,
    },
    /// A job with an empty client pool (nobody pays the fee).
    #[error("job {job} has no client")]
    NoClient {
        /// The job that has nobody to charge.
        job: JobId,
    },
    /// A requester cannot pay the fees of its jobs in the block.
    #[error("{payer:?} owes {needed} in fees, holds {available}")]
    UnaffordableFees {
        /// The requester (first key of the client pool) that cannot pay.
        payer: PublicKey,
        /// Fees of its jobs in the block.
        needed: TokenAmount,
        /// The requester's spendable balance before the block.
        available: TokenAmount,
    },
    /// A chain event cannot apply.
    #[error("chain event {index}: {error}")]
    Event {
        /// Its index in the block.
        index: usize,
        /// Why the event could not apply, as for a user operation.
        error: LedgerError,
    },
    /// The payout file refused the job file.
    #[error("payout file: {0}")]
    Payout(#[from] PayoutError),
    /// The fees of the block's jobs overflow a `u64`: per requester, in total or added to the
    /// fee pool.
    #[error("block totals overflow")]
    Overflow,
}

/// Why a genesis allocation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// An account listed twice.
    #[error("account {account:?} is allocated twice")]
    Duplicate {
        /// The account that appears twice in the allocation list.
        account: PublicKey,
    },
    /// The allocations overflow the supply.
    #[error("allocations overflow the token supply")]
    Overflow,
}
