//! Jobs: what a job file and the payout file hold (DESIGN.md "Vocabulary":
//! a job is one utility request with its pools of clients and partners, its
//! initiation time and its state).

use serde::{Deserialize, Serialize};

use crate::bounded::BoundedVec;
use crate::crypto::PublicKey;
use crate::hash::{Hash32, HashContext, hash};
use crate::ids::{BlockTime, JobId, TokenAmount};
use crate::roles::UtilityKind;

/// Most identities in a job's client pool or partner pool.
pub const MAX_POOL: usize = 16;

/// Where a job stands, as filed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum JobState {
    /// Requested by a client; partners are being gathered.
    Requested,
    /// A partner responded and was given the connection details.
    Assigned,
    /// The partner confirmed "utility started"; the job is in the payout pool.
    Started,
}

/// One job, as kept in a job file and in the payout file.
///
/// The derived order (by `id` first, then the other fields) is the one
/// deterministic order of job files: within a file ids are unique, so files
/// are sorted by job id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct JobEntry {
    /// Derived from the signed request ([`JobId::from_request_digest`]).
    pub id: JobId,
    /// Block time at which the first validator filed the request.
    pub initiated_at: BlockTime,
    /// The utility asked for.
    pub kind: UtilityKind,
    /// The clients that pay (the requester first).
    pub client_pool: BoundedVec<PublicKey, MAX_POOL>,
    /// The partners that serve.
    pub partner_pool: BoundedVec<PublicKey, MAX_POOL>,
    /// The transaction fee (chain parameter at filing time).
    pub fee: TokenAmount,
    /// Where the job stands.
    pub state: JobState,
}

impl JobEntry {
    /// The entry's leaf hash: blake3 under [`HashContext::JobEntry`] of its
    /// canonical encoding.
    pub fn leaf_hash(&self) -> Hash32 {
        hash(HashContext::JobEntry, &crate::wire::encode_bare(self))
    }
}
