//! Job-file synchronisation between validators: incremental deltas and
//! bisection-hash reconciliation (design notes, validator story item 4;
//! DESIGN.md "Job files", "Reconciliation"; `docs/PROTOCOL.md` "Job files
//! and reconciliation"). `undchain-jobfile` drives these messages; they are
//! defined here so every crate shares one wire format.
//!
//! The reconciliation messages are built for size: ranges are implicit
//! (each range is a prefix of the job-id space that both sides derive from
//! the conversation so far, so no bounds travel), counts are implicit (they
//! are folded into 4-byte fingerprints), and the variable parts travel as
//! packed byte columns rather than as per-item structs.

use serde::{Deserialize, Serialize};

use super::client::MAX_ENTRIES;
use super::common::NetworkStatus;
use crate::bounded::{BoundedBytes, BoundedVec};
use crate::hash::Hash32;
use crate::ids::BlockNumber;
use crate::job::JobEntry;

/// Largest byte column of one reconciliation round (fingerprints, short
/// ids, bitmaps, op codes). The frame limit bounds the whole message first.
pub const MAX_COLUMN: usize = 16 * 1024 * 1024;
/// Most list items (short-id counts, entry counts) in one round.
pub const MAX_RANGES: usize = 1024 * 1024;
/// Bytes of one range fingerprint in [`ReconcileRound::fingerprints`].
pub const FINGERPRINT_BYTES: usize = 4;
/// Bytes of one short id's value (the column [`ReconcileRound::short_ids`]
/// carries each sorted list Rice-coded, fewer bytes than this an id).
pub const SHORT_ID_BYTES: usize = 4;
/// Largest opening split of a `Start` (fingerprints of at most 2^12 parts).
pub const MAX_START_PARTS: usize = FINGERPRINT_BYTES << 12;

/// Validator story 4: new entries of an open job file, with the sender's
/// count and root for that file so divergence shows early; network status
/// rides along.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct JobFileDelta {
    /// The block whose open file this is.
    pub block: BlockNumber,
    /// Entries added since the last delta.
    pub added: BoundedVec<JobEntry, MAX_ENTRIES>,
    /// The sender's entry count after adding them.
    pub count: u64,
    /// The sender's fingerprint root after adding them.
    pub root: Hash32,
    /// The sender's load and health.
    pub status: Option<NetworkStatus>,
}

/// Why a reconciliation session was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum AbortReason {
    /// The peer's message broke the protocol (malformed columns, answers
    /// that do not match what was asked).
    Protocol,
    /// The session exceeded its round or byte budget.
    Budget,
    /// The keyed pass ended and the roots still differ.
    Unresolved,
    /// The sender's file changed during the session.
    FileChanged,
}

/// One round of a reconciliation pass. Both sides keep the same ordered
/// queue of "outstanding" items (what one side asked and the other must
/// answer); a round answers the first `answered` of them, in order, and
/// opens new ranges inside its answers. `docs/PROTOCOL.md` "Job files and
/// reconciliation" gives the exact layout of every column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ReconcileRound {
    /// How many of the receiver's outstanding items this round answers.
    pub answered: u32,
    /// One bit stream: difference bitmaps (answers to splits), want bitmaps
    /// (answers to short-id lists) and new-entry bitmaps (answers to entry
    /// transfers), in answer order, least significant bit first.
    pub bits: BoundedBytes<MAX_COLUMN>,
    /// One op byte per range opened: `0x00 | b` split into `2^b` parts,
    /// `0x40` short ids, `0x80` whole-range entries.
    pub ops: BoundedBytes<MAX_COLUMN>,
    /// Fingerprints of split parts, [`FINGERPRINT_BYTES`] little-endian each.
    pub fingerprints: BoundedBytes<MAX_COLUMN>,
    /// Per short-id op and per entries op, in op order: how many ids or
    /// entries it carries.
    pub counts: BoundedVec<u32, MAX_RANGES>,
    /// Short ids of short-id ops: each op's sorted list as the Rice code
    /// of its gaps, byte-aligned (`docs/PROTOCOL.md`, "Job files and
    /// reconciliation").
    pub short_ids: BoundedBytes<MAX_COLUMN>,
    /// First the entries of whole-range ops (in op order), then the entries
    /// the receiver lacks (answers and wanted deliveries), as one column:
    /// each entry's canonical encoding (`wire::encode_bare` of a
    /// [`JobEntry`]), back to back, at most
    /// [`MAX_ENTRIES`] of them. The receiver hashes these very bytes for
    /// the entries' leaf hashes.
    pub entries: BoundedBytes<MAX_COLUMN>,
    /// Present when the sender expects nothing back: its entry count and
    /// root once it has applied the session's outcome, for the receiver to
    /// compare with its own.
    pub done: Option<FinalRoot>,
}

/// A side's count and root at the end of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct FinalRoot {
    /// How many entries the side holds.
    pub count: u64,
    /// The 32-byte root (keyed in a keyed pass).
    pub root: Hash32,
}

/// The first `len` bits that every id of a job file shares (most
/// significant first), right-aligned in `bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct SharedPrefix {
    /// How many leading id bits are shared (1 to [`MAX_SHARED_BITS`]).
    pub len: u8,
    /// Those bits, right-aligned (below `2^len`).
    pub bits: u64,
}

/// The longest shared prefix a `Start` may announce: the ranges under it
/// keep at least 16 of the ids' top 64 bits to split.
pub const MAX_SHARED_BITS: u8 = 48;

/// The body of a reconciliation message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum ReconcileBody {
    /// Opens a pass: the sender's count and root of the whole file. A keyed
    /// pass (after a final-root mismatch) carries the nonce that keys its
    /// fingerprints and short ids, so a crafted collision of the unkeyed
    /// fingerprints cannot survive it.
    Start {
        /// Entries in the sender's file.
        count: u64,
        /// The sender's root (keyed by the nonce in a keyed pass).
        root: Hash32,
        /// The keyed pass's nonce; `None` for the fast unkeyed pass.
        keyed: Option<Hash32>,
        /// The prefix every id of the sender's file shares, when there is
        /// one (an unkeyed pass only): the pass then walks the ranges
        /// under it (or under the part of it that the receiver's ids share
        /// too, which the receiver's answer names), so ids that share a
        /// long prefix cost no splits of the bits they share.
        shared: Option<SharedPrefix>,
        /// The opening split: fingerprints of the `2^b` equal parts of the
        /// id space under `shared` (the whole space without it)
        /// ([`FINGERPRINT_BYTES`] each; `b` from the length, empty for
        /// none). The receiver compares them with its own, which both
        /// estimates the difference and is the first level of the walk.
        parts: BoundedBytes<MAX_START_PARTS>,
    },
    /// The receiver's root equals the one in `Start`: nothing to do.
    Match,
    /// One round of the pass.
    Round(ReconcileRound),
    /// The sender gave up; the receiver stops too.
    Abort(AbortReason),
}

/// Validator story 4: one reconciliation message of a session between two
/// validators over one job file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct Reconcile {
    /// Session id chosen by the initiator.
    pub session: u64,
    /// The block whose job file is reconciled.
    pub block: BlockNumber,
    /// The block id (header hash) whose job file the initiator wants: a
    /// proposal or a decided block it checks. A responder that holds no
    /// job file for that id does not answer, so a file of another value
    /// of the same number (its own proposal, its open file) is never
    /// taken for this one. `None`: the responder's current file of
    /// `block`.
    pub file_of: Option<Hash32>,
    /// Message number within the session (0 = the initiator's first).
    pub step: u16,
    /// What the message says.
    pub body: ReconcileBody,
}
