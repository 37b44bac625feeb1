//! Law: between honest peers every size and every split of the difference
//! ends with the true symmetric difference, on both sides, with both sides
//! finished only once the roots agree, and every message within the frame
//! limit: one side empty (a validator that restarts with an empty file),
//! disjoint files (d = 2N), and ids that share a long prefix.

use proptest::prelude::*;
use undchain_jobfile::JobFile;
use undchain_jobfile::testkit::{Exchange, Split, entry, run, with_prefix};
use undchain_types::JobEntry;
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
    // The pass walks under the 40 shared bits (the start announces them),
    // so this is the walk of a file of 100k random ids with 24 id bits
    // left in the top 64: about 20-25 KB, a fifth of negentropy's 120 KB.
    let ex = check(split(100_000, 50, 50, 40));
    assert!(ex.rounds() <= 3, "{} round trips", ex.rounds());
    assert!(ex.bytes < 30_000, "{} bytes", ex.bytes);
}

/// Ids sharing 32 bits with 900 differences: the crowded part used to
/// take 5 and 6 round trips; under the announced shared prefix it is a
/// walk of random ids.
#[test]
fn crowded_ids_near_the_largest_table_settle_in_three_round_trips() {
    let ex = check(split(34_046, 0, 900, 32));
    assert!(ex.rounds() <= 3, "{} round trips", ex.rounds());
}

/// `s`'s files, with `outside` more entries on the second whose ids do
/// not share the prefix (the first file's ids all do).
fn with_outsiders(s: Split, outside: u64) -> (JobFile, JobFile, Vec<JobEntry>) {
    let (a, mut b) = s.files();
    let extra: Vec<JobEntry> = (0..outside).map(|i| entry(9_000_000 + i, 7)).collect();
    for e in &extra {
        b.insert(e.clone()).unwrap();
    }
    (a, b, extra)
}

/// The initiator's ids share 40 bits but the responder also holds ids
/// outside them: the responder answers with the part of the prefix both
/// share (none here) and the pass walks the whole space; either way
/// round, the outcome is the true difference.
#[test]
fn a_shared_prefix_the_peer_does_not_share_narrows_to_the_common_part() {
    let s = split(20_000, 40, 60, 40);
    let (a, b, extra) = with_outsiders(s, 5);
    let mut only_b = s.only_b_entries();
    only_b.extend(extra);
    only_b.sort();
    for (x, y, only_x, only_y) in [
        (&a, &b, s.only_a_entries(), only_b.clone()),
        (&b, &a, only_b.clone(), s.only_a_entries()),
    ] {
        let ex = run(x, y, 0x5EED).unwrap();
        assert!(ex.both_finished);
        assert_eq!(ex.initiator.only_local, only_x);
        assert_eq!(ex.initiator.only_remote, only_y);
        assert_eq!(ex.responder.only_local, only_y);
        assert_eq!(ex.responder.only_remote, only_x);
        assert_eq!(
            apply(x, &ex.initiator.only_remote).root(),
            apply(y, &ex.responder.only_remote).root()
        );
    }
}

/// A responder whose ids share only part of the announced prefix (the
/// first 20 of 40 bits): the pass walks under those 20 bits (where most
/// ids still share 20 more, so it is the crowded walk of before, which
/// may take more round trips; a file of random ids shares no prefix).
#[test]
fn a_partly_shared_prefix_narrows_to_the_shared_bits() {
    let s = split(10_000, 30, 30, 40);
    let (a, mut b) = s.files();
    let extra: Vec<JobEntry> = (0..3)
        .map(|i| with_prefix(entry(8_000_000 + i, 7), 20))
        .collect();
    for e in &extra {
        b.insert(e.clone()).unwrap();
    }
    let mut only_b = s.only_b_entries();
    only_b.extend(extra);
    only_b.sort();
    let ex = run(&a, &b, 0x5EED).unwrap();
    assert!(ex.both_finished);
    assert_eq!(ex.initiator.only_local, s.only_a_entries());
    assert_eq!(ex.initiator.only_remote, only_b);
    assert_eq!(ex.responder.only_remote, s.only_a_entries());
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
