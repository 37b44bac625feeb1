//! Bisection-hash reconciliation of two job files (design notes,
//! validator story item 4; DESIGN.md "Reconciliation"; `docs/PROTOCOL.md`
//! "Job files and reconciliation").
//!
//! A sans-IO state machine ([`Session`]) for each side. The initiator
//! sends its count and root; on a mismatch the sides recurse over implicit
//! prefix ranges of the job-id space, exchanging 4-byte fingerprints of
//! parts, short ids at the leaves and entries where they differ, and whole
//! ranges when the counts say that is cheaper. The session ends when one
//! side says it expects nothing more and the receiver's root after the
//! exchange equals the sender's. If it does not (a fingerprint or short-id
//! collision, crafted or not), the receiver starts a keyed pass whose
//! fingerprints are keyed by a fresh nonce; if that pass also ends with
//! different roots, the session fails with [`ReconcileError::Unresolved`].
//! Rounds, bytes, message size and every list are bounded.

mod bits;
mod iblt;
mod idset;
mod policy;
mod range;
mod rice;
mod session;

pub use session::{Role, Session};

/// The 4-byte fingerprint of a range with summary `s`, as an unkeyed split
/// sends it (`docs/PROTOCOL.md` "Job files and reconciliation").
pub(crate) fn wire_fingerprint(s: crate::Summary) -> u32 {
    range::fp32(s)
}

/// The unkeyed short id of the entry (`id`, `leaf`) in a range whose
/// prefix is `prefix_len` bits long.
pub(crate) fn unkeyed_short_id(prefix_len: u8, id: &JobId, leaf: &undchain_types::Hash32) -> u32 {
    range::Mode::Unkeyed.short(prefix_len, range::top64(id), leaf)
}

use undchain_types::msg::AbortReason;
use undchain_types::{JobEntry, JobId, WireError};

/// Limits and tuning of a session.
///
/// The byte and message limits are bases: a session adds to them what the
/// counts announced by both sides need (`docs/PROTOCOL.md` "Job files and
/// reconciliation", "Bounds"), so that an honest session is never refused
/// whatever its size, and a peer is still bounded by the count it
/// announced (itself at most [`Config::max_peer_entries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Most messages in a session, both directions (each side counts the
    /// ones it sees), before the allowance for the announced counts.
    pub max_messages: u16,
    /// Most bytes sent plus received in a session, before the allowance for
    /// the announced counts.
    pub max_bytes: u64,
    /// Largest message this side sends or accepts (the frame limit).
    pub max_message_bytes: usize,
    /// Largest entry count a peer may announce.
    pub max_peer_entries: u64,
    /// A whole file with at most this many entries is listed at once (short
    /// ids or whole-range transfer) instead of split.
    pub leaf_max: u64,
    /// Average entries per part that a split aims for at least; a part this
    /// small is listed rather than split again.
    pub leaf_target: u64,
    /// Entries per part of the first split of the whole file when the
    /// opening split saw every part differ (many differences).
    pub root_part: u64,
    /// Most bits of the splits above a range before the difference
    /// estimate has settled (at most `2^root_bits_max` parts).
    pub root_bits_max: u8,
    /// Most short ids this side lists in one op (a larger range is split).
    pub ids_max: u32,
    /// Most entries this side ships in one whole-range op.
    pub entries_max: u32,
}

impl Config {
    /// Defaults for a file of `entries` entries: a byte base of 64 MiB plus
    /// 256 bytes per local entry, 64 messages, the 1 MiB frame limit, and
    /// peers of at most 2^24 entries.
    pub fn for_entries(entries: u64) -> Self {
        Config {
            max_messages: 64,
            max_bytes: (64 << 20) + 256u64.saturating_mul(entries),
            max_message_bytes: undchain_types::wire::DEFAULT_MAX_FRAME,
            max_peer_entries: 1 << 24,
            leaf_max: 96,
            leaf_target: 24,
            root_part: 48,
            root_bits_max: 11,
            ids_max: 4096,
            entries_max: 1024,
        }
    }
}

/// The result of a session: what each side had that the other lacked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Entries this side had and the peer lacked, in id order.
    pub only_local: Vec<JobEntry>,
    /// Entries the peer had and this side lacked, in id order.
    pub only_remote: Vec<JobEntry>,
}

/// Message and byte counts of a session, as seen by one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Messages this side sent (its start, rounds, match).
    pub sent: u32,
    /// Messages this side received that passed the session and step
    /// checks (one refused after those checks included).
    pub received: u32,
    /// Bytes sent (encoded messages).
    pub bytes_sent: u64,
    /// Bytes received (encoded messages).
    pub bytes_received: u64,
}

/// Why a session refused a message or call. A message refused before
/// anything of it is read in (it does not decode or fit the frame, belongs
/// to another session, or has the wrong step), a refused [`Session::start`]
/// and [`ReconcileError::Finished`] change nothing; every other refusal
/// fails the session. `Session`'s "Refusals" says what each leaves behind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    /// The bytes are not a reconciliation message.
    #[error("cannot decode: {0}")]
    Wire(#[from] WireError),
    /// A column or list of the message is malformed or does not match what
    /// was asked.
    #[error("malformed round: {0}")]
    Malformed(&'static str),
    /// The message belongs to another session or block.
    #[error(
        "message for session {got_session} block {got_block}, expected {session} block {block}"
    )]
    WrongSession {
        /// This session's id.
        session: u64,
        /// The block this session reconciles.
        block: u64,
        /// The session id the message carried.
        got_session: u64,
        /// The block the message carried.
        got_block: u64,
    },
    /// Out-of-order or replayed message.
    #[error("message step {got}, expected {expected}")]
    Step {
        /// The step this session expected next.
        expected: u16,
        /// The step the message carried.
        got: u16,
    },
    /// A message that makes no sense now (e.g. a round before a start).
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
    /// More messages than the session's limit ([`Config::max_messages`]
    /// plus the allowance for the announced counts, [`Session::limits`]).
    #[error("more than {limit} messages")]
    TooManyMessages {
        /// The session's most messages.
        limit: u32,
    },
    /// More bytes than the session's limit ([`Config::max_bytes`] plus the
    /// allowance for the announced counts, [`Session::limits`]), or one
    /// message larger than [`Config::max_message_bytes`].
    #[error("{got} bytes exceed the limit of {limit}")]
    TooManyBytes {
        /// Bytes of the session so far, or of the one message.
        got: u64,
        /// The limit it exceeds ([`Config::max_bytes`] or
        /// [`Config::max_message_bytes`]).
        limit: u64,
    },
    /// The peer announced more entries than [`Config::max_peer_entries`],
    /// or sent more entries than it announced.
    #[error("{got} peer entries exceed the limit of {limit}")]
    TooManyEntries {
        /// The announced count, or the entries received so far.
        got: u64,
        /// The limit it exceeds.
        limit: u64,
    },
    /// The peer sent two entries with one job id (its file holds at most
    /// one entry per id), so the outcome would hold that id twice.
    #[error("the peer sent job {id} twice")]
    Duplicate {
        /// The repeated job id.
        id: JobId,
    },
    /// The local file changed during the session.
    #[error("the local file changed during the session")]
    FileChanged,
    /// The keyed pass ended and the roots still differ: the peer is lying
    /// or its file changed.
    #[error("roots still differ after the keyed pass")]
    Unresolved,
    /// The peer sent an abort message, with its reason.
    #[error("the peer aborted: {0:?}")]
    PeerAborted(AbortReason),
    /// The session already failed; it refuses every message.
    #[error("the session is already finished")]
    Finished,
}

impl ReconcileError {
    /// The reason to tell the peer in an abort message.
    pub fn abort_reason(&self) -> AbortReason {
        match self {
            ReconcileError::TooManyMessages { .. }
            | ReconcileError::TooManyBytes { .. }
            | ReconcileError::TooManyEntries { .. } => AbortReason::Budget,
            ReconcileError::FileChanged => AbortReason::FileChanged,
            ReconcileError::Unresolved => AbortReason::Unresolved,
            _ => AbortReason::Protocol,
        }
    }
}
