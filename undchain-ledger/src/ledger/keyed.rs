//! The hash maps of the ledger's tables (accounts, open jobs, settled ids,
//! domain-link records) and of a block's overlay: std's `HashMap` with
//! foldhash instead of SipHash, keyed by a secret seed drawn once per
//! process from the operating system's randomness.
//!
//! Why another hasher: a block looks up and writes a few thousand entries
//! of million-entry maps, and SipHash over each 32-byte key was a visible
//! part of its time (`docs/BENCHMARKS.md`, "undchain-ledger"). Why this is
//! safe:
//!
//! * the keys (account keys, job ids, transfer ids) are chosen by users,
//!   so the map must not be predictable: the seed is secret and random per
//!   process (std's `RandomState` draws it from the OS, as it does for
//!   SipHash), so a user cannot aim keys at one bucket. foldhash is not
//!   cryptographic; a flood of colliding keys needs the seed, which never
//!   leaves the process;
//! * nothing hashed, signed or sent depends on these maps' order, which the
//!   seed makes differ between processes: the state tree orders its leaves
//!   by key hash, the leaf changes of a block are sorted before they touch
//!   the tree, and every list the ledger hands out ([`super::LedgerState`],
//!   [`super::Ledger::jobs`]) is sorted by key first.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use foldhash::SharedSeed;
use foldhash::fast::{FoldHasher, SeedableRandomState};

/// A hash map of the ledger, keyed by the process's secret seed.
pub(crate) type Map<K, V> = HashMap<K, V, Keyed>;

/// A new empty [`Map`] with room for `n` entries.
pub(crate) fn with_capacity<K, V>(n: usize) -> Map<K, V> {
    HashMap::with_capacity_and_hasher(n, Keyed::default())
}

/// 64 bits from the operating system's randomness: std's `RandomState`
/// holds SipHash keys drawn from it (each new one in a thread differs from
/// the last), so the hash of nothing under fresh keys is such a value.
fn os_random() -> u64 {
    std::hash::RandomState::new().build_hasher().finish()
}

/// The process's secret shared seed, drawn on first use.
fn shared() -> &'static SharedSeed {
    static SEED: OnceLock<SharedSeed> = OnceLock::new();
    SEED.get_or_init(|| SharedSeed::from_u64(os_random()))
}

/// The [`BuildHasher`] of a [`Map`]: foldhash under the process's seed and
/// a per-map seed (a clone keeps its map's seeds, as its entries need).
#[derive(Debug, Clone)]
pub(crate) struct Keyed(SeedableRandomState);

impl Default for Keyed {
    fn default() -> Self {
        Keyed(SeedableRandomState::with_seed(os_random(), shared()))
    }
}

impl BuildHasher for Keyed {
    type Hasher = FoldHasher<'static>;

    #[inline]
    fn build_hasher(&self) -> FoldHasher<'static> {
        self.0.build_hasher()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_keyed_differently_and_clones_keep_their_keys() {
        let (a, b) = (Keyed::default(), Keyed::default());
        let key = [7u8; 32];
        assert_ne!(a.hash_one(key), b.hash_one(key));
        assert_eq!(a.hash_one(key), a.clone().hash_one(key));
        let mut m: Map<[u8; 32], u32> = with_capacity(4);
        m.insert(key, 1);
        let c = m.clone();
        assert_eq!(c.get(&key), Some(&1));
    }
}
