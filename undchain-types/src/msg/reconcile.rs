//! Job-file synchronisation between validators: incremental deltas and
//! bisection-hash reconciliation (design notes, validator story item 4;
//! DESIGN.md "Job files", "Reconciliation"). `undchain-jobfile` drives these
//! messages; they are defined here so every crate shares one wire format.

use serde::{Deserialize, Serialize};

use super::client::MAX_ENTRIES;
use super::common::NetworkStatus;
use crate::bounded::BoundedVec;
use crate::hash::Hash32;
use crate::ids::{BlockNumber, JobId};
use crate::job::JobEntry;

/// Most ranges in one reconciliation message.
pub const MAX_RANGES: usize = 4096;
/// Most short ids in one reconciliation message.
pub const MAX_SHORT_IDS: usize = 256 * 1024;

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

/// A half-open key range `[lower, upper)` of a job file, by job id; `upper`
/// `None` means "to the end".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct KeyRange {
    /// Inclusive lower bound.
    pub lower: JobId,
    /// Exclusive upper bound; `None` is unbounded.
    pub upper: Option<JobId>,
}

/// One item of a reconciliation message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum ReconcileItem {
    /// The sender's count and 8-byte fingerprint of a range; the receiver
    /// compares and recurses where they differ.
    Fingerprint {
        /// The range.
        range: KeyRange,
        /// Entries in it.
        count: u64,
        /// Unkeyed fingerprint of its entries.
        fingerprint: u64,
    },
    /// A keyed 32-byte fingerprint (the slow pass after a final-root
    /// mismatch: an unkeyed collision cannot survive it).
    KeyedFingerprint {
        /// The range.
        range: KeyRange,
        /// Entries in it.
        count: u64,
        /// Fingerprint keyed with the session key.
        fingerprint: Hash32,
    },
    /// The short ids of every entry in a small range.
    ShortIds {
        /// The range.
        range: KeyRange,
        /// 8-byte ids, sorted.
        ids: BoundedVec<u64, MAX_SHORT_IDS>,
    },
    /// Entries the receiver lacks.
    Entries {
        /// The entries.
        entries: BoundedVec<JobEntry, MAX_ENTRIES>,
    },
    /// Asks for the entries with these short ids.
    Want {
        /// 8-byte ids.
        ids: BoundedVec<u64, MAX_SHORT_IDS>,
    },
    /// Asks for every entry of a range (cheaper than recursing, by the
    /// counts).
    WantRange {
        /// The range.
        range: KeyRange,
    },
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
    /// Message number within the session.
    pub step: u16,
    /// The sender's count and full 32-byte root of the file.
    pub count: u64,
    /// The sender's root.
    pub root: Hash32,
    /// The items.
    pub items: BoundedVec<ReconcileItem, MAX_RANGES>,
    /// Whether the sender considers the session finished.
    pub done: bool,
}
