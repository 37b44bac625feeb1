//! `undchain-jobfile`: job files, the payout file, and bisection-hash
//! reconciliation between validators (design notes, validator story items
//! 4 and 5; DESIGN.md "Job files", "Reconciliation", "Two roots, two
//! jobs", "Payout file"; `docs/PROTOCOL.md` "Job files and
//! reconciliation").
//!
//! - [`JobFile`]: the jobs of one block, ordered by job id, with an
//!   incrementally maintained fingerprint root and O(log n) count and
//!   fingerprint of any key range ([`index`]); at close, a [`ClosedFile`]
//!   with the rs_merkle root for the block header and inclusion proofs
//!   ([`verify_inclusion`]).
//! - [`JobBook`]: the two open files (this block and the next) with the
//!   cutoff rule and block close (the decided file commits, what it lacks
//!   moves to the next file).
//! - [`PayoutFile`]: the committed jobs of a period with the completion
//!   column (carry-over once then cancel), from which any block's file is
//!   derived; the ledger holds the one copy.
//! - [`reconcile::Session`]: the sans-IO reconciliation state machine for
//!   initiator and responder, over the `Reconcile` messages of
//!   `undchain-types`.
//!
//! The crate is pure: no sockets, clocks, files, threads or randomness;
//! block time and the keyed pass's nonce are inputs.
//!
//! ```
//! use undchain_jobfile::{JobFile, reconcile::{Config, Role, Session}};
//! use undchain_types::{BlockNumber, BlockTime, Hash32, JobEntry, JobId, JobState, TokenAmount, UtilityKind};
//!
//! let entry = |n: u32| JobEntry {
//!     id: JobId::from_request_digest(&Hash32([n as u8; 32])),
//!     initiated_at: BlockTime(u64::from(n)),
//!     kind: UtilityKind::Computation,
//!     client_pool: Default::default(),
//!     partner_pool: Default::default(),
//!     fee: TokenAmount(10),
//!     state: JobState::Requested,
//! };
//! let a = JobFile::from_entries((0..50).map(entry)).unwrap();
//! let b = JobFile::from_entries((5..60).map(entry)).unwrap();
//!
//! let cfg = Config::for_entries(60);
//! let mut ini = Session::new(Role::Initiator, 7, BlockNumber(3), cfg.clone(), Hash32([1; 32]));
//! let mut res = Session::new(Role::Responder, 7, BlockNumber(3), cfg, Hash32([2; 32]));
//! let mut msg = Some(ini.start(&a).unwrap());
//! let mut at_initiator = false;
//! while let Some(m) = msg {
//!     msg = if at_initiator { ini.handle(&a, &m).unwrap() } else { res.handle(&b, &m).unwrap() };
//!     at_initiator = !at_initiator;
//! }
//! let out = ini.outcome();
//! assert_eq!(out.only_local.len(), 5); // 0..5 only on a
//! assert_eq!(out.only_remote.len(), 10); // 50..60 only on b
//! ```
//!
//! Dependencies: `undchain-types` (vocabulary and messages), `blake3`
//! (leaf hashes computed over the hand-encoded entry, keyed fingerprints of
//! the slow pass), `postcard` (the wire format's encoder, to encode a
//! reply into a buffer sized beforehand), `rs_merkle` (closed-file Merkle
//! trees, named by the project), `thiserror` (typed errors). Dev only:
//! `proptest`, `criterion`, and `negentropy` 0.5 (the field's reference
//! reconciliation, the benchmark's peer).
#![forbid(unsafe_code)]

pub mod book;
mod codec;
pub mod file;
pub mod index;
pub mod merkle;
pub mod payout;
pub mod reconcile;

pub use book::{BookError, Committed, Filed, JobBook, target_block};
pub use file::{InsertError, JobFile, leaf_hash};
pub use index::Summary;
pub use merkle::{
    ClosedFile, JobFileHasher, merkle_root, proof_of, verify_inclusion, verify_inclusion_with,
};
pub use payout::{Completion, PayoutError, PayoutFile, PayoutRecord, Rollover};
pub use reconcile::{Config, Outcome, ReconcileError, Role, Session, Traffic};
pub mod testkit;
