//! The vote keeper's places per voter and slot (at most
//! `MAX_VOTES_PER_SLOT` distinct votes): a further vote takes the place of
//! the kept one whose value fewer validators voted for only if its own
//! value has strictly more, and the value that gave way loses the voter's
//! support; and the accessors and thresholds a second `cargo mutants` run
//! showed untested. (Tests that `cargo mutants` showed missing,
//! docs/BENCHMARKS.md.)

use undchain_consensus::VoteKeeper;
use undchain_consensus::votekeeper::{MAX_VOTES_PER_SLOT, RecordVoteError};
use undchain_types::msg::VoteKind;
use undchain_types::{BlockNumber, Hash32};

use crate::support::{keys, set_of, vote};

fn value(tag: u8) -> Option<Hash32> {
    Some(Hash32([tag; 32]))
}

#[test]
fn a_vote_with_more_support_takes_a_full_slot_and_the_old_value_loses_the_voter() {
    let ks = keys(4);
    let mut vk = VoteKeeper::new(BlockNumber(3), set_of(&ks));
    // Validator 0 fills its slot with values 1..=4.
    for t in 1..=MAX_VOTES_PER_SLOT as u8 {
        vk.add_vote(vote(&ks[0], 3, 0, VoteKind::Prevote, value(t)))
            .unwrap();
    }
    // Two others vote for value 9; validator 0's vote for it has more
    // support (2) than its weakest kept value (1).
    for k in &ks[1..3] {
        vk.add_vote(vote(k, 3, 0, VoteKind::Prevote, value(9)))
            .unwrap();
    }
    let v9 = vote(&ks[0], 3, 0, VoteKind::Prevote, value(9));
    assert!(vk.would_count(&v9));
    let out = vk.add_vote(v9).unwrap();
    assert!(out.evidence.is_some());
    assert_eq!(vk.count(0, VoteKind::Prevote, value(9)), 3);
    // The value that gave way (the first one after the first vote, 2)
    // lost validator 0: nobody votes for it any more.
    assert_eq!(vk.count(0, VoteKind::Prevote, value(2)), 0);
    assert_eq!(
        vk.count(0, VoteKind::Prevote, value(1)),
        1,
        "the first stays"
    );
    assert_eq!(vk.count(0, VoteKind::Prevote, value(3)), 1);
}

#[test]
fn a_vote_with_only_equal_support_does_not_take_a_full_slot() {
    let ks = keys(4);
    let mut vk = VoteKeeper::new(BlockNumber(3), set_of(&ks));
    for t in 1..=MAX_VOTES_PER_SLOT as u8 {
        vk.add_vote(vote(&ks[0], 3, 0, VoteKind::Precommit, value(t)))
            .unwrap();
    }
    // Value 9 has one voter, as much as each of validator 0's kept values.
    vk.add_vote(vote(&ks[1], 3, 0, VoteKind::Precommit, value(9)))
        .unwrap();
    let v9 = vote(&ks[0], 3, 0, VoteKind::Precommit, value(9));
    assert!(!vk.would_count(&v9), "no signature worth checking");
    assert!(matches!(
        vk.add_vote(v9),
        Err(RecordVoteError::ConflictingVote { .. })
    ));
    assert_eq!(vk.count(0, VoteKind::Precommit, value(9)), 1);
    for t in 1..=MAX_VOTES_PER_SLOT as u8 {
        assert_eq!(vk.count(0, VoteKind::Precommit, value(t)), 1, "value {t}");
    }
}

#[test]
fn the_keeper_names_its_height() {
    let ks = keys(4);
    let vk = VoteKeeper::new(BlockNumber(7), set_of(&ks));
    assert_eq!(vk.height(), BlockNumber(7));
}

#[test]
fn a_nil_polka_needs_a_quorum_of_nil_prevotes() {
    use undchain_consensus::Threshold;
    let ks = keys(4);
    let mut vk = VoteKeeper::new(BlockNumber(3), set_of(&ks));
    // q = 3 of 4: the first two nil prevotes are no polka for nil.
    for k in &ks[..2] {
        let out = vk.add_vote(vote(k, 3, 0, VoteKind::Prevote, None)).unwrap();
        assert!(
            !out.thresholds.contains(&Threshold::PolkaNil),
            "{:?}",
            out.thresholds
        );
    }
    let out = vk
        .add_vote(vote(&ks[2], 3, 0, VoteKind::Prevote, None))
        .unwrap();
    assert!(
        out.thresholds.contains(&Threshold::PolkaNil),
        "{:?}",
        out.thresholds
    );
}

#[test]
fn the_keeper_counts_distinct_senders_per_round() {
    let ks = keys(4);
    let mut vk = VoteKeeper::new(BlockNumber(3), set_of(&ks));
    assert_eq!(vk.senders(1), 0);
    for k in &ks[..2] {
        vk.add_vote(vote(k, 3, 1, VoteKind::Prevote, value(5)))
            .unwrap();
    }
    // A second vote from a sender who already counts adds no sender.
    vk.add_vote(vote(&ks[0], 3, 1, VoteKind::Precommit, value(5)))
        .unwrap();
    assert_eq!(vk.senders(1), 2);
    assert_eq!(vk.senders(0), 0);
}
