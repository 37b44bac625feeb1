//! Why the ledger refuses: a request at intake or in a block
//! ([`RequestError`]), an operation ([`LedgerError`], reported in the
//! block's outcome while the rest of the block stands), a whole block
//! ([`BlockError`]) or a genesis ([`GenesisError`]). Every refusal changes
//! nothing.

use undchain_types::{BlockNumber, BlockTime, ChainId, JobId, PublicKey, TokenAmount};

use crate::links::domain_link::DomainLinkError;

/// Why a utility request was refused (at intake, or in a block).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The envelope does not carry a `UtilityRequest`.
    #[error("the envelope carries a {kind}, not a UtilityRequest")]
    NotARequest {
        /// The kind it carries.
        kind: undchain_types::MessageKind,
    },
    /// Signed for another chain.
    #[error("request signed for {got}, this chain is {expected}")]
    WrongChain {
        /// This chain.
        expected: ChainId,
        /// The request's chain.
        got: ChainId,
    },
    /// The client's signature does not verify.
    #[error("the request's signature by {client:?} does not verify")]
    BadSignature {
        /// The signer.
        client: PublicKey,
    },
    /// `units x max_price_per_unit` overflows.
    #[error("budget {units} x {price} overflows")]
    BudgetOverflow {
        /// Units asked for.
        units: u64,
        /// Most paid per unit.
        price: TokenAmount,
    },
    /// The client's free balance does not cover budget and fee (with its
    /// requests before this one in the same block).
    #[error("{client:?} has {available} free, the request needs {needed}")]
    InsufficientFreeBalance {
        /// The client.
        client: PublicKey,
        /// Budget plus fee (plus earlier requests of the block).
        needed: TokenAmount,
        /// Its free balance.
        available: TokenAmount,
    },
    /// The job is already open in the payout file.
    #[error("job {job} is already committed (block {block})")]
    AlreadyCommitted {
        /// The job.
        job: JobId,
        /// Its commit block.
        block: BlockNumber,
    },
    /// The job was settled and its request may still not be committed again.
    #[error("job {job} was already settled")]
    AlreadySettled {
        /// The job.
        job: JobId,
    },
    /// The request's time is outside the window around the block's time.
    #[error("request sent at {sent_at}, block time {block_time}, window {window_us} us")]
    OutsideWindow {
        /// The request's `sent_at`.
        sent_at: BlockTime,
        /// The block's start time.
        block_time: BlockTime,
        /// The chain's request window.
        window_us: u64,
    },
}

/// Why an operation was refused. A refused operation changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Signed for another chain.
    #[error("signed for {got}, this chain is {expected}")]
    WrongChain {
        /// This chain's id.
        expected: ChainId,
        /// The chain the operation was signed for.
        got: ChainId,
    },
    /// A signature does not verify.
    #[error("signature of {signer:?} does not verify")]
    BadSignature {
        /// The key whose signature failed strict verification.
        signer: PublicKey,
    },
    /// The job is not open in the payout file (never committed, or settled).
    #[error("job {job} is not open")]
    UnknownJob {
        /// The job named.
        job: JobId,
    },
    /// The claim names another commit block than the job's.
    #[error("job {job} was committed in block {committed}, the claim names {named}")]
    WrongCommitBlock {
        /// The job.
        job: JobId,
        /// Its commit block.
        committed: BlockNumber,
        /// The block the claim names.
        named: BlockNumber,
    },
    /// The claim's client is not the job's paying client.
    #[error("job {job} is paid by {payer:?}, the claim names {named:?}")]
    NotThePayer {
        /// The job.
        job: JobId,
        /// Its paying client.
        payer: PublicKey,
        /// The client the claim names.
        named: PublicKey,
    },
    /// The partner is not in the job's (non-empty) partner pool.
    #[error("{partner:?} is not a partner of job {job}")]
    NotAPartner {
        /// The job.
        job: JobId,
        /// The partner named.
        partner: PublicKey,
    },
    /// The partner already has a full receipt for the job.
    #[error("{partner:?} already has a receipt for job {job} (block {block})")]
    AlreadyReceipted {
        /// The job.
        job: JobId,
        /// The partner.
        partner: PublicKey,
        /// The block that recorded the receipt.
        block: BlockNumber,
    },
    /// A partial whose checkpoint counter is not above the recorded one.
    #[error("job {job}: checkpoint {got} is not above the recorded {have}")]
    StaleCheckpoint {
        /// The job.
        job: JobId,
        /// The recorded counter.
        have: u32,
        /// The counter offered.
        got: u32,
    },
    /// The job's claims would pass its escrow.
    #[error("job {job}: claims of {claimed} would pass the escrow {escrow}")]
    ExceedsEscrow {
        /// The job.
        job: JobId,
        /// The escrowed budget.
        escrow: TokenAmount,
        /// What the claims would add up to.
        claimed: u128,
    },
    /// More partners than a pool holds.
    #[error("job {job} already has claims of {max} partners")]
    TooManyClaims {
        /// The job.
        job: JobId,
        /// The most partners per job.
        max: usize,
    },
    /// A transaction with another nonce than the account's.
    #[error("{account:?} expects nonce {expected}, got {got}")]
    BadNonce {
        /// The sender.
        account: PublicKey,
        /// The account's nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// A fee below the chain's transaction fee.
    #[error("fee {fee} is below the chain's {minimum}")]
    FeeTooLow {
        /// The fee offered.
        fee: TokenAmount,
        /// The chain's fee.
        minimum: TokenAmount,
    },
    /// The sender's free balance does not cover amount and fee.
    #[error("{account:?} has {available} free, needs {needed}")]
    InsufficientFreeBalance {
        /// The account.
        account: PublicKey,
        /// What the operation takes.
        needed: TokenAmount,
        /// Its free balance.
        available: TokenAmount,
    },
    /// Only the chain owner may do this.
    #[error("{sender:?} is not the chain owner")]
    NotChainOwner {
        /// The sender.
        sender: PublicKey,
    },
    /// A transfer or mint of zero tokens.
    #[error("amount is zero")]
    ZeroAmount,
    /// A credit or mint would overflow the supply.
    #[error("amount overflows the token supply")]
    Overflow,
    /// A domain-link step was refused.
    #[error("domain link: {0}")]
    Domain(#[from] DomainLinkError),
    /// The validator is registered already (a genesis validator, or an
    /// earlier registration).
    #[error("validator {validator:?} is registered since block {since}")]
    AlreadyRegistered {
        /// The validator.
        validator: PublicKey,
        /// The block its registration was committed in.
        since: BlockNumber,
    },
    /// The registry holds its most validators.
    #[error("the validator registry is full ({max} validators)")]
    ValidatorRegistryFull {
        /// The registry's bound.
        max: usize,
    },
}

/// Why a whole block was refused. A refused block changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Blocks apply in order, every number once.
    #[error("expected block {expected}, got {got}")]
    OutOfOrder {
        /// The block the ledger applies next.
        expected: BlockNumber,
        /// The block offered.
        got: BlockNumber,
    },
    /// A job of the file without its signed request.
    #[error("job {job} comes without its signed request")]
    MissingRequest {
        /// The job.
        job: JobId,
    },
    /// A request without a job in the file, or twice.
    #[error("request for job {job} has no (single) job in the file")]
    StrayRequest {
        /// The request's job.
        job: JobId,
    },
    /// The job entry does not match its signed request.
    #[error("job {job}: the entry's {field} does not match the signed request")]
    RequestMismatch {
        /// The job.
        job: JobId,
        /// What differs.
        field: &'static str,
    },
    /// A job carries another fee than the chain's.
    #[error("job {job} carries fee {fee}, the chain's is {expected}")]
    WrongFee {
        /// The job.
        job: JobId,
        /// The entry's fee.
        fee: TokenAmount,
        /// The chain's.
        expected: TokenAmount,
    },
    /// A request of the block cannot be committed.
    #[error("job {job}: {error}")]
    Request {
        /// The job.
        job: JobId,
        /// Why.
        error: RequestError,
    },
    /// A sum over the block overflows.
    #[error("block totals overflow")]
    Overflow,
    /// Settlement found a broken invariant (escrow below what it pays):
    /// never silently saturated.
    #[error("settlement invariant broken: {0}")]
    Invariant(&'static str),
}

/// Why a genesis was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// An account listed twice.
    #[error("account {account:?} is allocated twice")]
    Duplicate {
        /// The account.
        account: PublicKey,
    },
    /// A genesis validator listed twice, or more than the registry holds.
    #[error("genesis validator {validator:?} listed twice or beyond the registry's bound")]
    BadValidator {
        /// The validator.
        validator: PublicKey,
    },
    /// The allocations overflow the supply.
    #[error("allocations overflow the token supply")]
    Overflow,
    /// A parameter that cannot work.
    #[error("ledger parameter {0} must be positive")]
    BadParameter(&'static str),
    /// The tokens held do not add up to the supply counters.
    #[error("the state holds {held} tokens, its supply counters say {circulating}")]
    Unbalanced {
        /// Free balances, escrow and the fee pool.
        held: u128,
        /// What the supply counters give.
        circulating: u128,
    },
    /// An account's escrow is not the sum of its open jobs' budgets.
    #[error("{account:?} has {escrow} in escrow, its open jobs {jobs}")]
    EscrowMismatch {
        /// The account.
        account: PublicKey,
        /// Its escrow.
        escrow: TokenAmount,
        /// The sum of its open jobs' budgets.
        jobs: u128,
    },
}
