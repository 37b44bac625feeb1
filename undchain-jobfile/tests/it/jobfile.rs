//! Job files: fingerprints and roots do not depend on insertion order;
//! the root is the canonical trie hash of its definition;
//! range summaries match a brute-force count; inclusion proofs verify and
//! tampered ones fail.

use proptest::prelude::*;
use undchain_jobfile::testkit::entry;
use undchain_jobfile::{JobFile, verify_inclusion};
use undchain_types::{BlockNumber, Hash32, JobId};

use crate::helpers::file;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn roots_are_independent_of_insertion_order(
        ids in proptest::collection::vec(0u64..5_000, 0..600),
        seed in any::<u64>(),
    ) {
        let mut shuffled = ids.clone();
        // Deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut a = JobFile::new();
        let mut b = JobFile::new();
        for n in &ids { let _ = a.insert(entry(*n, *n)); }
        for n in &shuffled { let _ = b.insert(entry(*n, *n)); }
        prop_assert_eq!(a.root(), b.root());
        prop_assert_eq!(a.merkle_root(), b.merkle_root());
        prop_assert_eq!(a.summary(), b.summary());
        prop_assert_eq!(&a, &b);
    }

    #[test]
    fn range_summaries_match_brute_force(
        ids in proptest::collection::btree_set(0u64..3_000, 0..800),
        lo in any::<[u8; 32]>(),
        hi in any::<[u8; 32]>(),
        remove in proptest::collection::vec(0u64..3_000, 0..200),
    ) {
        let mut f = JobFile::new();
        for n in &ids { f.insert(entry(*n, 7)).unwrap(); }
        for n in &remove { f.remove(&entry(*n, 7).id); }
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        let (lo, hi) = (JobId(Hash32(lo)), JobId(Hash32(hi)));
        let mut count = 0u64;
        let mut sum = 0u64;
        for e in f.entries() {
            if e.id >= lo && e.id < hi {
                count += 1;
                sum = sum.wrapping_add(e.leaf_hash().short());
            }
        }
        let s = f.range_summary(&lo, Some(&hi));
        prop_assert_eq!(s.count, count);
        prop_assert_eq!(s.sum, sum);
        let all = f.range_summary(&JobId(Hash32::ZERO), None);
        prop_assert_eq!(all.count, f.len());
        // Entries come out sorted.
        let es = f.entries();
        prop_assert!(es.windows(2).all(|w| w[0].id < w[1].id));
    }
}

#[test]
fn removing_everything_gives_the_empty_root() {
    let empty = JobFile::new();
    let mut f = JobFile::new();
    for n in 0..2_000 {
        f.insert(entry(n, n)).unwrap();
    }
    assert_ne!(f.root(), empty.root());
    for n in 0..2_000 {
        assert_eq!(f.remove(&entry(n, n).id), Some(entry(n, n)));
    }
    assert_eq!(f.root(), empty.root());
    assert_eq!(f.len(), 0);
    assert_eq!(f.remove(&entry(1, 1).id), None);
}

#[test]
fn duplicates_are_refused() {
    let mut f = JobFile::new();
    f.insert(entry(1, 1)).unwrap();
    assert!(f.insert(entry(1, 1)).is_err());
    // Same id, other content: still one job per id.
    assert!(f.insert(entry(1, 2)).is_err());
    assert_eq!(f.len(), 1);
}

#[test]
fn inclusion_proofs_verify_and_tampered_ones_fail() {
    for n in [1u64, 2, 3, 7, 100, 1_001] {
        let f = file(n);
        let merkle = f.merkle_root();
        let closed = f.close(BlockNumber(5));
        assert_eq!(closed.merkle_root(), merkle);
        for i in [0, n / 2, n - 1] {
            let id = entry(i, i).id;
            let notice = closed.inclusion_notice(&id).unwrap();
            assert_eq!(notice.block, BlockNumber(5));
            assert!(verify_inclusion(
                &notice.job_root,
                &notice.leaf,
                &notice.proof
            ));
            // Another leaf under the same proof fails.
            let other = entry(n + 1, 0).leaf_hash();
            assert!(!verify_inclusion(&notice.job_root, &other, &notice.proof));
            // A flipped sibling fails.
            if !notice.proof.siblings.is_empty() {
                let mut bad = notice.proof.clone();
                let mut s = bad.siblings.clone().into_vec();
                s[0].0[0] ^= 1;
                bad.siblings = s.try_into().unwrap();
                assert!(!verify_inclusion(&notice.job_root, &notice.leaf, &bad));
            }
            // An index past the count fails.
            let mut bad = notice.proof.clone();
            bad.leaf_index = bad.leaf_count;
            assert!(!verify_inclusion(&notice.job_root, &notice.leaf, &bad));
            // A wrong root fails.
            assert!(!verify_inclusion(
                &Hash32([9; 32]),
                &notice.leaf,
                &notice.proof
            ));
        }
        assert!(closed.proof(&entry(n + 5, 0).id).is_none());
    }
}

/// The fingerprint root by its definition (`docs/PROTOCOL.md`, "Two
/// roots"), computed from scratch: the binary trie of the ids' bits, a
/// node with an empty side replaced by the other side.
fn reference_root(entries: &[undchain_types::JobEntry]) -> Hash32 {
    use undchain_types::{HashContext, hash_parts};
    fn bit(id: &JobId, b: usize) -> bool {
        (id.0.0[b / 8] >> (7 - b % 8)) & 1 == 1
    }
    fn trie(set: &[(JobId, Hash32)], b: usize) -> Hash32 {
        match set {
            [] => Hash32::ZERO,
            [(_, leaf)] => *leaf,
            _ => {
                let (l, r): (Vec<_>, Vec<_>) = set.iter().partition(|(id, _)| !bit(id, b));
                let (l, r) = (trie(&l, b + 1), trie(&r, b + 1));
                if l == Hash32::ZERO {
                    r
                } else if r == Hash32::ZERO {
                    l
                } else {
                    hash_parts(HashContext::JobFileTrie, &[&l.0, &r.0])
                }
            }
        }
    }
    let set: Vec<(JobId, Hash32)> = entries.iter().map(|e| (e.id, e.leaf_hash())).collect();
    let t = trie(&set, 0);
    hash_parts(
        HashContext::JobFileTrie,
        &[&t.0, &(entries.len() as u64).to_le_bytes()],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The incrementally maintained root (stale paths recomputed) equals
    /// the definition after any mix of inserts, removals and root reads,
    /// also for ids that share a long prefix (deep, lopsided tries).
    #[test]
    fn the_root_is_the_canonical_trie_hash(
        ops in proptest::collection::vec((any::<bool>(), 0u64..3_000, any::<bool>()), 0..700),
        prefix in prop_oneof![Just(0u8), 0u8..=64],
    ) {
        let mut f = JobFile::new();
        for (insert, n, read) in ops {
            let e = undchain_jobfile::testkit::with_prefix(entry(n, n), prefix);
            if insert {
                let _ = f.insert(e);
            } else {
                f.remove(&e.id);
            }
            if read {
                let _ = f.root();
            }
        }
        let entries: Vec<_> = f.entries().into_iter().cloned().collect();
        prop_assert_eq!(f.root(), reference_root(&entries));
        prop_assert_eq!(f.clone().root(), f.root());
    }
}

#[test]
fn the_kept_merkle_root_follows_every_insert_and_remove() {
    let mut f = JobFile::new();
    assert_eq!(f.merkle_root(), Hash32::ZERO);
    for n in 0..50u64 {
        f.insert(entry(n, n)).unwrap();
        // Read after each change: the kept root must be the fresh one.
        assert_eq!(
            f.merkle_root(),
            file(n + 1).merkle_root(),
            "after insert {n}"
        );
    }
    let mut copy = f.clone();
    for n in (0..50u64).rev() {
        f.remove(&entry(n, n).id).unwrap();
        assert_eq!(f.merkle_root(), file(n).merkle_root(), "after remove {n}");
    }
    // A clone keeps its own root, untouched by the original's changes.
    assert_eq!(copy.merkle_root(), file(50).merkle_root());
    copy.remove(&entry(0, 0).id).unwrap();
    assert_ne!(copy.merkle_root(), file(50).merkle_root());
}
