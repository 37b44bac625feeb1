//! `undchain-ledger`: what UndChain does with agreed blocks. The ledger
//! escrows a job's budget when its client's signed request is committed,
//! records claims on it and settles them at the period's end, applies
//! signed transactions (transfers, the chain owner's mints and domain
//! registrations, domain locks and light-client proofs), and keeps an
//! incrementally updated sparse Merkle state root over all of it;
//! convergence compacts the chain into a new genesis, and links anchor
//! co-chains, move tokens between domains and anchor foreign networks. All
//! pure sans-IO code (docs/PROTOCOL.md "Ledger, payouts, convergence and
//! links").
//!
//! * [`ledger`]: accounts, escrow, requests, claims, transactions, the
//!   payout file of open jobs, the state root and its proofs.
//! * [`settle`]: period-end settlement inside the last block of a period.
//! * [`tree`]: the sparse Merkle state tree.
//! * [`convergence`]: a new genesis from committed state, certified by a
//!   quorum; hash-algorithm switches.
//! * [`links`]: chain, domain (light clients) and network links.
//!
//! # The API a validator drives
//!
//! * Intake: [`Ledger::verify_request`] (the client's signed
//!   `UtilityRequest` envelope) then [`Ledger::check_request`] (typed
//!   refusal, e.g. [`RequestError::InsufficientFreeBalance`]);
//!   [`Ledger::verify`] (a receipt, partial or transaction) then
//!   [`Ledger::check`].
//! * Proposing: [`Ledger::unaffordable_jobs`] names the jobs of a file the
//!   block could not commit; [`Ledger::preview`] gives the header's
//!   `ledger_root`.
//! * Deciding: [`Ledger::apply_block`] of
//!   `Block { number, jobs, requests, ops, signers }`, every number once,
//!   in order.
//! * Proving: [`Ledger::prove`] and [`ledger::state::verify_leaf`].
//!
//! Agreement (validator sets, scores, the Tendermint driver) lives in
//! `undchain-consensus`; this crate depends on it and never the other way.
//!
//! Dependencies: `undchain-types` (vocabulary, messages), `undchain-consensus`
//! (`ValidatorSet`, `SignatureVerifier`, `ScoreBook`), `undchain-jobfile`
//! (job files), `serde` (state carried by a convergence genesis),
//! `thiserror` (typed errors).
#![forbid(unsafe_code)]

pub mod convergence;
pub mod ledger;
pub mod links;
pub mod settle;
pub mod tree;

pub use ledger::{
    Account, Applied, Block, BlockError, BlockOutcome, Claim, ClaimKind, GenesisError, Ledger,
    LedgerConfig, LedgerError, LedgerOp, LedgerState, MAX_VALIDATORS, OpenJob, Refused,
    RequestError, StateKey, ValidatorRecord, Verified, VerifiedRequest,
};
pub use settle::Settlement;
