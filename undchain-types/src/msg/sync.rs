//! Validator <-> validator messages that carry the signed client requests
//! behind job-file entries (design notes, validator story item 4;
//! docs/PROTOCOL.md "Request gossip and fetch").
//!
//! A job-file entry is derived from its signed request, and the ledger
//! escrows only against the client's own signature, so every validator
//! needs the request bytes of every job it commits. Requests travel in
//! batches: gossip after intake, and answers to a fetch for ids that
//! reconciliation or a decided block named.

use serde::{Deserialize, Serialize};

use super::client::MAX_FORWARDED;
use crate::bounded::{BoundedBytes, BoundedVec};
use crate::ids::{BlockNumber, JobId};

/// Most requests in one [`RequestBatch`] (the frame limit bounds the bytes
/// first).
pub const MAX_BATCH: usize = 2048;
/// Most ids one [`RequestFetch`] may ask for.
pub const MAX_FETCH: usize = 2048;

/// One signed client request with the block its sender filed it in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct GossipedRequest {
    /// The block whose job file holds the request at the sender.
    pub block: BlockNumber,
    /// The original signed `UtilityRequest` envelope, as encoded.
    pub original: BoundedBytes<MAX_FORWARDED>,
}

/// Validator story item 4: requests a validator filed (gossip), or the
/// requests a [`RequestFetch`] asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct RequestBatch {
    /// The requests, each verified by the receiver.
    pub requests: BoundedVec<GossipedRequest, MAX_BATCH>,
}

/// Validator story item 4: ask a validator for the signed requests of job
/// ids it holds (learned by reconciliation or from a decided block).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct RequestFetch {
    /// The block whose file the ids belong to.
    pub block: BlockNumber,
    /// The jobs wanted.
    pub ids: BoundedVec<JobId, MAX_FETCH>,
}
