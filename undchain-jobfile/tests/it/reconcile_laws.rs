//! Law: for any two sets (empty, equal, disjoint, one a subset, or
//! anything in between) reconciliation returns exactly the symmetric
//! difference on both sides, and both sides reach the same root after
//! applying it.

use std::collections::BTreeSet;

use proptest::prelude::*;
use undchain_jobfile::JobFile;
use undchain_jobfile::testkit::{Exchange, entry, pair, run};
use undchain_types::JobEntry;

use crate::helpers::{apply, sorted};

/// A file holding `entry(n, 1_000 + n)` for each `n` of `ids`.
fn file_of(ids: &BTreeSet<u64>) -> JobFile {
    JobFile::from_entries(ids.iter().map(|&n| entry(n, 1_000 + n))).unwrap()
}

/// Reconciles the files of `a_ids` and `b_ids` and checks the law.
fn check(a_ids: &BTreeSet<u64>, b_ids: &BTreeSet<u64>) -> Exchange {
    let a = file_of(a_ids);
    let b = file_of(b_ids);
    let ex = run(&a, &b, 42).expect("session succeeds between honest peers");
    let only_a: Vec<JobEntry> = a_ids
        .difference(b_ids)
        .map(|&n| entry(n, 1_000 + n))
        .collect();
    let only_b: Vec<JobEntry> = b_ids
        .difference(a_ids)
        .map(|&n| entry(n, 1_000 + n))
        .collect();
    assert_eq!(
        sorted(ex.initiator.only_local.clone()),
        sorted(only_a.clone())
    );
    assert_eq!(
        sorted(ex.initiator.only_remote.clone()),
        sorted(only_b.clone())
    );
    assert_eq!(sorted(ex.responder.only_local.clone()), sorted(only_b));
    assert_eq!(sorted(ex.responder.only_remote.clone()), sorted(only_a));
    let a2 = apply(&a, &ex.initiator.only_remote);
    let b2 = apply(&b, &ex.responder.only_remote);
    assert_eq!(a2.root(), b2.root());
    assert_eq!(a2.merkle_root(), b2.merkle_root());
    ex
}

/// Pairs of sets of every shape the law must hold for.
fn sets() -> impl Strategy<Value = (BTreeSet<u64>, BTreeSet<u64>)> {
    // A shared pool plus a private part on each side, with sizes that cover
    // leaves, one split and two levels of splits.
    (0usize..4, 0u64..3000, 0u64..400, 0u64..400).prop_flat_map(|(shape, common, da, db)| {
        let a: BTreeSet<u64> = (0..common).chain(100_000..100_000 + da).collect();
        let b: BTreeSet<u64> = (0..common).chain(200_000..200_000 + db).collect();
        let (a, b) = match shape {
            0 => (a, b),                                   // general
            1 => (a.clone(), a),                           // equal
            2 => (a.difference(&b).copied().collect(), b), // disjoint
            _ => (
                a.clone(),
                a.iter().copied().filter(|n| n % 3 != 0).collect(),
            ), // subset
        };
        Just((a, b))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn reconciliation_returns_the_symmetric_difference((a, b) in sets()) {
        check(&a, &b);
    }

    #[test]
    fn small_arbitrary_sets(a in proptest::collection::btree_set(0u64..300, 0..120),
                            b in proptest::collection::btree_set(0u64..300, 0..120)) {
        check(&a, &b);
    }
}

#[test]
fn empty_against_empty_and_against_full() {
    let none = BTreeSet::new();
    let some: BTreeSet<u64> = (0..5000).collect();
    let ex = check(&none, &none);
    assert_eq!(ex.messages, 2);
    check(&none, &some);
    check(&some, &none);
}

#[test]
fn equal_files_settle_in_one_round_trip_of_start_and_match() {
    // The start carries the count, the root, the shared prefix (none: a
    // byte) and the opening split (16 parts of 4 bytes at 20k entries);
    // the match ends the session. Each message names no block id (a
    // byte each).
    let (a, b) = pair(20_000, 0);
    let ex = run(&a, &b, u64::MAX).unwrap();
    assert_eq!(ex.rounds(), 1);
    assert!(ex.both_finished);
    assert!(ex.bytes <= 61 + 1 + 64 + 4 + 2, "{} bytes", ex.bytes);
}

#[test]
fn a_large_file_with_a_few_differences_takes_at_most_three_round_trips() {
    let (a, b) = pair(50_000, 100);
    let ex = run(&a, &b, 7).unwrap();
    assert_eq!(ex.initiator.only_local.len(), 50);
    assert_eq!(ex.initiator.only_remote.len(), 50);
    assert!(ex.rounds() <= 3, "{} round trips", ex.rounds());
    assert!(ex.both_finished);
}

#[test]
fn one_difference_in_a_large_file_is_found_by_a_table_in_two_round_trips() {
    // The initiator's extra entry: the responder's table of the one part
    // of the opening split that differs peels to it, the initiator ships
    // it with its final root, and the responder's match ends the session.
    let (a, b) = pair(100_000, 1);
    let ex = run(&a, &b, 3).unwrap();
    assert_eq!(ex.initiator.only_local.len(), 1);
    assert!(ex.initiator.only_remote.is_empty());
    assert_eq!(ex.rounds(), 2);
    assert!(ex.both_finished);
    // Start (128 bytes of opening split), a table of one part, the entry
    // with the final root, the match.
    assert!(ex.bytes < 400, "{} bytes", ex.bytes);
}

#[test]
fn differences_crowded_into_one_part_overflow_its_table_and_still_settle() {
    // 40 differences whose ids all fall into the first of the opening
    // split's 16 parts: the split estimates one difference there, the
    // responder's table is sized for that and does not peel, and the
    // walk goes on from that part (split again, or a larger table).
    let crowded: BTreeSet<u64> = (1_000_000u64..)
        .filter(|&n| entry(n, 1_000 + n).id.0.0[0] >> 4 == 0)
        .take(40)
        .collect();
    let common: BTreeSet<u64> = (0..20_000).collect();
    let a: BTreeSet<u64> = common
        .iter()
        .copied()
        .chain(crowded.iter().copied().take(25))
        .collect();
    let b: BTreeSet<u64> = common
        .iter()
        .copied()
        .chain(crowded.iter().copied().skip(25))
        .collect();
    let ex = check(&a, &b);
    assert_eq!(ex.initiator.only_local.len(), 25);
    assert_eq!(ex.initiator.only_remote.len(), 15);
    assert!(ex.rounds() <= 4, "{} round trips", ex.rounds());
    assert!(ex.both_finished);
}
