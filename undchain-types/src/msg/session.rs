//! Client <-> partner messages: the utility session's data plane
//! (DESIGN.md "Utility sessions"). Validators never carry these: client
//! and partner talk directly, authenticated by their keys, and every
//! message names its job.

use serde::{Deserialize, Serialize};

use super::client::{Receipt, ReceiptTerms};
use super::common::MerkleProof;
use super::partner::SignedCheckpoint;
use crate::bounded::BoundedBytes;
use crate::crypto::Signature;
use crate::hash::Hash32;
use crate::ids::JobId;

/// Largest chunk of a stored blob, or input or output of a computation or
/// relay step. A chunk with its proof fits a challenge answer
/// ([`super::partner::MAX_CHALLENGE`]).
pub const MAX_CHUNK: usize = 32 * 1024;

/// One message of a utility session between a client and a partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct SessionMessage {
    /// The job the session serves.
    pub job: JobId,
    /// What the message says.
    pub body: SessionBody,
}

/// What a session message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum SessionBody {
    /// Client -> partner (storage): chunk `index` of the blob whose content
    /// root is `root`, of `count` chunks and `size` bytes in all.
    Chunk {
        /// The blob's content root (blake3 tree over its chunks).
        root: Hash32,
        /// The chunk's position.
        index: u32,
        /// Chunks in the blob.
        count: u32,
        /// Bytes in the blob.
        size: u64,
        /// The chunk.
        bytes: BoundedBytes<MAX_CHUNK>,
    },
    /// Partner -> client: units delivered so far in this session
    /// (cumulative; storage: chunks stored).
    Delivered {
        /// Units delivered so far.
        units: u64,
    },
    /// Client -> partner (storage): send chunk `index` of `root` back.
    Fetch {
        /// The blob's content root.
        root: Hash32,
        /// The chunk wanted.
        index: u32,
    },
    /// Partner -> client: a chunk with its proof against the content root.
    ChunkReply {
        /// The blob's content root.
        root: Hash32,
        /// The chunk's position.
        index: u32,
        /// The chunk.
        bytes: BoundedBytes<MAX_CHUNK>,
        /// Its proof under `root`.
        proof: MerkleProof,
    },
    /// Client -> partner (computation, access): the next input.
    Input {
        /// Position of the input in the session (0-based).
        seq: u32,
        /// The input.
        bytes: BoundedBytes<MAX_CHUNK>,
    },
    /// Partner -> client: the output of input `seq`.
    Output {
        /// The input it answers.
        seq: u32,
        /// The output.
        bytes: BoundedBytes<MAX_CHUNK>,
        /// Units this output delivered.
        units: u64,
    },
    /// Client -> partner: the client's cumulative usage checkpoint, signed
    /// every K units (what a partial completion proves).
    Checkpoint(SignedCheckpoint),
    /// Partner -> client: the utility is done; the partner's signature over
    /// the receipt terms, for the client to countersign.
    ReceiptOffer {
        /// What the partner says was delivered.
        terms: ReceiptTerms,
        /// The partner's signature over [`ReceiptTerms::digest`].
        partner_sig: Signature,
    },
    /// Client -> partner: the receipt signed by both.
    ReceiptSigned(Receipt),
    /// Client -> partner: the client ends the session (access: the relay is
    /// no longer wanted).
    End,
}

/// The payload of a storage [`super::partner::Challenge`]: prove chunk
/// `index` of the blob under `root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct StorageChallenge {
    /// The blob's content root (named in its `UtilityStarted`).
    pub root: Hash32,
    /// The chunk to prove.
    pub index: u32,
}

/// The answer to a [`StorageChallenge`]: the chunk with its proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct StorageAnswer {
    /// The chunk.
    pub bytes: BoundedBytes<MAX_CHUNK>,
    /// Its proof under the challenged root.
    pub proof: MerkleProof,
}
