//! Pieces several messages share.

use serde::{Deserialize, Serialize};

use crate::bounded::{BoundedString, BoundedVec};
use crate::crypto::PublicKey;
use crate::hash::Hash32;
use crate::roles::ValidatorClass;

/// Longest address text (host:port, or a medium-specific route).
pub const MAX_ADDRESS: usize = 255;
/// Most media per validator or partner.
pub const MAX_MEDIA: usize = 8;
/// Most sibling hashes in a Merkle proof (trees up to 2^64 leaves).
pub const MAX_PROOF_DEPTH: usize = 64;
/// Most active validators in one domain.
pub const MAX_ACTIVE: usize = 10;

/// A communication medium (DESIGN.md "Validator list and connections").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum MediumKind {
    /// QUIC over UDP (the reference transport).
    Quic,
    /// A TCP stream (the reference node's QUIC transport refuses it).
    Tcp,
    /// Plain UDP (the reference node speaks QUIC over it).
    Udp,
}

impl MediumKind {
    /// The name used in the validator list.
    pub const fn as_str(self) -> &'static str {
        match self {
            MediumKind::Quic => "quic",
            MediumKind::Tcp => "tcp",
            MediumKind::Udp => "udp",
        }
    }

    /// Parses the name used in the validator list.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "quic" => Some(MediumKind::Quic),
            "tcp" => Some(MediumKind::Tcp),
            "udp" => Some(MediumKind::Udp),
            _ => None,
        }
    }
}

/// Where to reach someone: a medium and its routing information.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct Endpoint {
    /// The medium to use.
    pub medium: MediumKind,
    /// Routing information, e.g. `203.0.113.7:7100`.
    pub address: BoundedString<MAX_ADDRESS>,
}

/// An active validator as told to clients in a request ack.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ValidatorInfo {
    /// The validator's identity key.
    pub id: PublicKey,
    /// Whether it is active or passive, known or unknown.
    pub class: ValidatorClass,
    /// How to reach it.
    pub media: BoundedVec<Endpoint, MAX_MEDIA>,
}

/// A Merkle inclusion proof (rs_merkle layout: leaf index, leaf count, and
/// the sibling hashes bottom-up).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct MerkleProof {
    /// Index of the leaf in the sorted entries.
    pub leaf_index: u64,
    /// Number of leaves in the tree.
    pub leaf_count: u64,
    /// Sibling hashes, bottom-up.
    pub siblings: BoundedVec<Hash32, MAX_PROOF_DEPTH>,
}

impl MerkleProof {
    /// The leaf index and leaf count, if the proof has a shape a tree of
    /// `leaf_count` leaves can produce (index in range, at most
    /// ceil(log2(leaf_count)) siblings); `None` for anything malformed, so
    /// verifiers refuse it before hashing.
    pub fn shape(&self) -> Option<(usize, usize)> {
        if self.leaf_count == 0 || self.leaf_index >= self.leaf_count {
            return None;
        }
        let depth = 64 - (self.leaf_count - 1).leading_zeros() as usize;
        if self.siblings.len() > depth {
            return None;
        }
        Some((
            usize::try_from(self.leaf_index).ok()?,
            usize::try_from(self.leaf_count).ok()?,
        ))
    }

    /// The sibling hashes as raw bytes (rs_merkle's proof input).
    pub fn sibling_bytes(&self) -> Vec<[u8; 32]> {
        self.siblings.iter().map(|h| h.0).collect()
    }
}

/// Load and health of a validator (DESIGN.md "Network status is used").
/// Piggybacks on job-file deltas; also sent alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct NetworkStatus {
    /// Load in per-mille of the validator's own capacity.
    pub load_permille: u16,
    /// How many connections the validator has open.
    pub connections: u32,
    /// How far behind the latest decided block it is, in blocks.
    pub lag_blocks: u32,
    /// Partners that reported at-capacity during the last block.
    pub at_capacity_partners: u32,
    /// Requests waiting for partners.
    pub pending_jobs: u32,
    /// Median observed round-trip latency to the other active validators,
    /// in microseconds.
    pub median_peer_rtt_us: u32,
}
