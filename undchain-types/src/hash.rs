//! 32-byte hashes with one domain-separation context per use.
//!
//! DESIGN.md "Identities, messages, wire": blake3, 32 bytes, a
//! domain-separation key per use. Each [`HashContext`] is a distinct blake3
//! `derive_key` context, so a hash made for one purpose can never be replayed
//! as another. The hash algorithm is a versioned chain parameter
//! ([`HashAlgorithm`]); SHA-256 is supported so that a switch (which forces a
//! convergence) is real and testable.

use core::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// A 32-byte hash value.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// The all-zero hash, used as "none yet" (e.g. the parent of genesis).
    pub const ZERO: Hash32 = Hash32([0; 32]);

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 bytes as a little-endian integer (a short id).
    pub fn short(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(b)
    }

    /// The hash as 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        from_hex32(s).map(Hash32)
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parses exactly 64 hex digits into 32 bytes.
pub fn from_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

macro_rules! contexts {
    ($( $(#[$m:meta])* $name:ident => $ctx:literal, )*) => {
        /// One purpose a hash serves; each has its own derive-key context.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum HashContext {
            $( $(#[$m])* $name, )*
        }

        impl HashContext {
            /// Every context, in declaration order.
            pub const ALL: &'static [HashContext] = &[$(HashContext::$name,)*];

            /// The blake3 `derive_key` context string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(HashContext::$name => $ctx,)*
                }
            }
        }
    };
}

contexts! {
    /// The digest a signed envelope's signature covers.
    Envelope => "undchain 2026-11 envelope v1",
    /// A job id, derived from the signed utility request.
    JobId => "undchain 2026-11 job id v1",
    /// One job entry, as a leaf of fingerprints and Merkle trees.
    JobEntry => "undchain 2026-11 job entry v1",
    /// Inner nodes of a closed job file's Merkle tree.
    JobFileNode => "undchain 2026-11 job file node v1",
    /// Keyed fingerprints of the slow reconciliation pass.
    ReconcileKeyed => "undchain 2026-11 reconcile keyed v1",
    /// A block header (the block hash).
    BlockHeader => "undchain 2026-11 block header v1",
    /// A consensus proposal's signature.
    Proposal => "undchain 2026-11 proposal v1",
    /// A prevote or precommit's signature.
    Vote => "undchain 2026-11 vote v1",
    /// The terms of a receipt, signed by client and partner.
    Receipt => "undchain 2026-11 receipt v1",
    /// A client-signed usage checkpoint (partial completion).
    UsageCheckpoint => "undchain 2026-11 usage checkpoint v1",
    /// A validator set (its hash goes into the block header).
    ValidatorSet => "undchain 2026-11 validator set v1",
    /// Ledger accounts (state root leaves).
    LedgerAccount => "undchain 2026-11 ledger account v1",
    /// Ledger Merkle inner nodes.
    LedgerNode => "undchain 2026-11 ledger node v1",
    /// A convergence genesis.
    Genesis => "undchain 2026-11 genesis v1",
    /// A time resync proposal and its approvals.
    TimeResync => "undchain 2026-11 time resync v1",
    /// A domain-link transfer.
    DomainTransfer => "undchain 2026-11 domain transfer v1",
    /// A network-link consent or end.
    NetworkLink => "undchain 2026-11 network link v1",
    /// A censorship complaint's evidence.
    Complaint => "undchain 2026-11 complaint v1",
    /// A capacity test's expected result.
    CapacityTest => "undchain 2026-11 capacity test v1",
    /// A payout file summary.
    PayoutFile => "undchain 2026-11 payout file v1",
    /// A validator's public hello (discovery, scream cast).
    Hello => "undchain 2026-11 hello v1",
    /// A ledger transaction, signed by its sender.
    Transaction => "undchain 2026-11 transaction v1",
    /// The key of a ledger state-tree leaf.
    LedgerKey => "undchain 2026-11 ledger key v1",
    /// Inner nodes and the root of an open job file's canonical trie (its
    /// fingerprint root).
    JobFileTrie => "undchain 2026-12 job file trie v1",
    /// One chunk of a stored blob (a leaf of its content tree).
    ContentChunk => "undchain 2026-12 content chunk v1",
    /// Inner nodes of a stored blob's content tree (its content root).
    ContentNode => "undchain 2026-12 content node v1",
    /// One step of the built-in deterministic compute job.
    ComputeStep => "undchain 2026-12 compute step v1",
    /// A block's operations (the header's `ops_root`).
    BlockOps => "undchain 2026-12 block ops v1",
    /// A validator's consent to its registration (the key signs it).
    ValidatorRegistration => "undchain 2026-12 validator registration v1",
}

fn derived_keys() -> &'static [[u8; 32]] {
    static KEYS: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    KEYS.get_or_init(|| {
        HashContext::ALL
            .iter()
            .map(|c| blake3::derive_key(c.as_str(), &[]))
            .collect()
    })
}

impl HashContext {
    /// The 32-byte blake3 key of this context.
    pub fn key(self) -> &'static [u8; 32] {
        &derived_keys()[self as usize]
    }

    /// A blake3 hasher keyed for this context, for streaming input.
    pub fn hasher(self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(self.key())
    }
}

/// blake3 of `data` under `ctx`.
pub fn hash(ctx: HashContext, data: &[u8]) -> Hash32 {
    Hash32(*ctx.hasher().update(data).finalize().as_bytes())
}

/// blake3 of several parts under `ctx` (the parts are concatenated; use
/// fixed-size parts or a self-delimiting encoding).
pub fn hash_parts(ctx: HashContext, parts: &[&[u8]]) -> Hash32 {
    let mut h = ctx.hasher();
    for p in parts {
        h.update(p);
    }
    Hash32(*h.finalize().as_bytes())
}

/// The hash algorithm of a chain (a versioned chain parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum HashAlgorithm {
    /// blake3 keyed by the context's derived key (version 1, the default).
    Blake3,
    /// SHA-256 over the context string, a zero byte, then the data
    /// (version 2; exists so that an algorithm switch is real and tested).
    Sha256,
}

impl HashAlgorithm {
    /// The version number carried in chain parameters.
    pub const fn version(self) -> u8 {
        match self {
            HashAlgorithm::Blake3 => 1,
            HashAlgorithm::Sha256 => 2,
        }
    }

    /// The algorithm of a version number.
    pub const fn from_version(v: u8) -> Option<Self> {
        match v {
            1 => Some(HashAlgorithm::Blake3),
            2 => Some(HashAlgorithm::Sha256),
            _ => None,
        }
    }

    /// Hashes `data` under `ctx` with this algorithm.
    pub fn hash(self, ctx: HashContext, data: &[u8]) -> Hash32 {
        self.hash_parts(ctx, &[data])
    }

    /// Hashes the concatenation of `parts` under `ctx` with this algorithm.
    pub fn hash_parts(self, ctx: HashContext, parts: &[&[u8]]) -> Hash32 {
        match self {
            HashAlgorithm::Blake3 => hash_parts(ctx, parts),
            HashAlgorithm::Sha256 => {
                let mut h = sha2::Sha256::new();
                h.update(ctx.as_str().as_bytes());
                h.update([0u8]);
                for p in parts {
                    h.update(p);
                }
                Hash32(h.finalize().into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_distinct() {
        let a = hash(HashContext::Envelope, b"x");
        let b = hash(HashContext::Vote, b"x");
        assert_ne!(a, b);
        let mut seen = std::collections::BTreeSet::new();
        for c in HashContext::ALL {
            assert!(seen.insert(c.as_str()), "duplicate context {}", c.as_str());
        }
    }

    #[test]
    fn algorithms_differ_and_are_stable() {
        let b = HashAlgorithm::Blake3.hash(HashContext::Genesis, b"abc");
        let s = HashAlgorithm::Sha256.hash(HashContext::Genesis, b"abc");
        assert_ne!(b, s);
        assert_eq!(b, hash(HashContext::Genesis, b"abc"));
        assert_eq!(
            HashAlgorithm::Sha256.hash_parts(HashContext::Genesis, &[b"a", b"bc"]),
            s
        );
        assert_eq!(HashAlgorithm::from_version(2), Some(HashAlgorithm::Sha256));
        assert_eq!(HashAlgorithm::from_version(9), None);
    }

    #[test]
    fn hex_roundtrip() {
        let h = hash(HashContext::JobId, b"q");
        assert_eq!(Hash32::from_hex(&h.to_hex()), Some(h));
        assert_eq!(Hash32::from_hex("zz"), None);
        assert_eq!(Hash32::from_hex(&"g".repeat(64)), None);
    }
}
