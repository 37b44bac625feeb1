//! `undchain-ledger`: what UndChain does with agreed blocks. The ledger
//! moves money (fees at job commit, escrow at completion, payouts at the
//! period's end), convergence compacts the chain into a new genesis, and
//! links anchor co-chains, move tokens between domains and anchor foreign
//! networks; all pure sans-IO code (docs/PROTOCOL.md "Ledger, payouts,
//! convergence and links").
//!
//! * [`ledger`]: accounts, fees, receipts and partial completions over the
//!   payout file, domain-link steps, the Merkle state root of every header.
//! * [`settle`]: period-end settlement inside the last block of a period.
//! * [`convergence`]: a new genesis from committed state, certified by a
//!   quorum; hash-algorithm switches.
//! * [`links`]: chain, domain and network links.
//!
//! Agreement (validator sets, scores, the Tendermint driver) lives in
//! `undchain-consensus`; this crate depends on it and never the other way,
//! so the direction is enforced by Cargo (docs/ARCHITECTURE.md).
//!
//! ```
//! use undchain_jobfile::JobFile;
//! use undchain_ledger::{Block, Ledger, LedgerConfig};
//! use undchain_types::{BlockNumber, ChainId, HashAlgorithm, SigningKey, TokenAmount};
//!
//! let config = LedgerConfig {
//!     chain_id: ChainId(1),
//!     transaction_fee: TokenAmount(10),
//!     blocks_per_period: 4,
//!     hash_algorithm: HashAlgorithm::Blake3,
//! };
//! let client = SigningKey::from_seed([1; 32]).public();
//! let mut ledger = Ledger::genesis(config, BlockNumber(0), [(client, TokenAmount(500))]).unwrap();
//! // A proposer previews the block for its header's root; everyone applies it.
//! let empty = JobFile::new();
//! let block = Block::jobs(BlockNumber(0), &empty);
//! let preview = ledger.preview(&block).unwrap();
//! let applied = ledger.apply_block(&block).unwrap();
//! assert_eq!(preview.ledger_root, applied.ledger_root);
//! assert_eq!(ledger.total_held(), ledger.supply().circulating());
//! ```
//!
//! Dependencies: `undchain-types` (vocabulary), `undchain-consensus`
//! (`ValidatorSet`, `verify_certificate` / `SignatureVerifier`, `ScoreBook`),
//! `undchain-jobfile` (the payout file the ledger settles over), `rs_merkle`
//! (the state root and inclusion proofs, the project's Merkle crate, as for
//! job files), `serde` (state carried by a convergence genesis), `thiserror`
//! (typed errors).
#![forbid(unsafe_code)]

pub mod convergence;
pub mod ledger;
pub mod links;
pub mod settle;

pub use ledger::{
    Applied, Block, BlockError, BlockOutcome, ChainEvent, Claim, Ledger, LedgerConfig, LedgerError,
    LedgerOp, Verified,
};
pub use settle::Settlement;
