//! Law: between honest peers every size and every split of the difference
//! ends with the true symmetric difference, on both sides, with both sides
//! finished only once the roots agree, and every message within the frame
//! limit: one side empty (a validator that restarts with an empty file),
//! disjoint files (d = 2N), and ids that share a long prefix.

use proptest::prelude::*;
use undchain_jobfile::testkit::{Exchange, Split, run};
use undchain_types::wire::DEFAULT_MAX_FRAME;

use crate::helpers::apply;

/// Reconciles the two files of `s` and checks the outcome on both sides
/// against the split's true difference.
fn check(s: Split) -> Exchange {
    let (a, b) = s.files();
    let ex = run(&a, &b, 0xE87E).unwrap_or_else(|e| panic!("{s:?}: {e}"));
    let only_a = s.only_a_entries();
    let only_b = s.only_b_entries();
    assert_eq!(ex.initiator.only_local, only_a, "{s:?}");
    assert_eq!(ex.initiator.only_remote, only_b, "{s:?}");
    assert_eq!(ex.responder.only_local, only_b, "{s:?}");
    assert_eq!(ex.responder.only_remote, only_a, "{s:?}");
    assert!(ex.both_finished, "{s:?}: a side is not finished");
    assert!(
        ex.largest <= DEFAULT_MAX_FRAME,
        "{s:?}: a message of {} bytes",
        ex.largest
    );
    let a2 = apply(&a, &ex.initiator.only_remote);
    let b2 = apply(&b, &ex.responder.only_remote);
    assert_eq!(a2.root(), b2.root(), "{s:?}");
    ex
}

fn split(common: u64, only_a: u64, only_b: u64, prefix_bits: u8) -> Split {
    Split {
        common,
        only_a,
        only_b,
        prefix_bits,
    }
}

#[test]
fn one_side_empty_at_100k_entries_either_way() {
    // The whole file is more than one message: it streams.
    let ex = check(split(0, 100_000, 0, 0));
    assert!(ex.messages > 2);
    check(split(0, 0, 100_000, 0));
}

#[test]
fn an_empty_side_against_500k_entries() {
    let ex = check(split(0, 0, 500_000, 0));
    // 500k entries of 45 bytes need at least 22 frames of 1 MiB.
    assert!(ex.messages >= 22, "{} messages", ex.messages);
}

#[test]
fn disjoint_files_of_100k_each() {
    check(split(0, 100_000, 100_000, 0));
}

/// Ids sharing 32 bits with ~800 differences: the crowded part's tables
/// failed to peel at 975 cells, and the estimate from the failed table
/// asked for 975 cells again, the same table over the same keys, until
/// the session ran out of messages. A table is now tried again only
/// larger, and past the largest size the range is split.
#[test]
fn crowded_ids_whose_table_fails_are_not_asked_the_same_table_again() {
    for only_b in [785, 810, 900] {
        check(split(34_046, 0, only_b, 32));
    }
}

#[test]
fn ids_sharing_24_leading_bits_with_one_difference() {
    check(split(5_000, 1, 0, 24));
    check(split(5_000, 0, 1, 24));
}

#[test]
fn crowded_ids_with_a_hundred_differences_settle_in_three_round_trips() {
    // Every id shares 40 bits: the opening split sees one part differ and
    // says nothing more. The responder's table of that crowded part is
    // too small for 100 differences but its non-empty cells estimate
    // them; the initiator's larger table peels.
    let ex = check(split(100_000, 50, 50, 40));
    assert!(ex.rounds() <= 3, "{} round trips", ex.rounds());
    assert!(ex.bytes < 20_000, "{} bytes", ex.bytes);
}

#[test]
fn ids_sharing_40_leading_bits_at_every_split() {
    check(split(20_000, 300, 200, 40));
    check(split(0, 30_000, 0, 40));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Random sizes (0..50,000 entries), random splits of the difference
    /// (none, one side empty, disjoint, anything between) and random
    /// shared prefixes (up to 40 bits).
    #[test]
    fn any_size_any_split_any_prefix(n in 0u64..50_000,
                                     shares in (pct(), pct(), pct()),
                                     prefix_bits in prop_oneof![Just(0u8), 0u8..=40]) {
        let (c, a, b) = shares;
        check(split(n * c / 100, n * a / 100, n * b / 100, prefix_bits));
    }
}

/// A percentage, often at the extremes (0: none, 100: all of `n`).
fn pct() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(100u64), 0u64..=100]
}
