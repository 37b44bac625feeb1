//! A proposal whose job file is still being reconciled is not voted for
//! until it arrives, or until `timeoutPropose` gives a nil prevote (issue 5,
//! "Agreement"; design notes, validator story item 4).

mod common;

use common::*;
use undchain_consensus::{Output, Timeout, TimeoutKind, Validity};
use undchain_types::msg::VoteKind;
use undchain_types::{BlockNumber, BlockTime, Message};

#[test]
fn pending_job_file_holds_the_prevote_until_it_arrives() {
    let ks = keys(4);
    let set = set_of(&ks);
    let mut d = driver(&ks[1]);
    d.start_height(BlockTime(0), BlockNumber(0), set.clone());
    let h = header(0, 1, &set);
    let id = h.hash();
    let out = d
        .handle_message(
            BlockTime(100),
            ks[0].public(),
            Message::Proposal(proposal(&ks[0], 0, &h, None)),
        )
        .unwrap();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::CheckValue { id: x, .. } if *x == id)),
        "the host is asked about the value: {out:?}"
    );
    assert!(
        broadcast_votes(&out).is_empty(),
        "no vote before the verdict"
    );

    let out = d.handle_validity(BlockTime(200), BlockNumber(0), id, Validity::Pending);
    assert!(broadcast_votes(&out).is_empty(), "pending: still no vote");

    let out = d.handle_validity(BlockTime(300), BlockNumber(0), id, Validity::Valid);
    let votes = broadcast_votes(&out);
    assert_eq!(votes.len(), 1);
    assert_eq!(
        (votes[0].vote.kind, votes[0].vote.round, votes[0].vote.value),
        (VoteKind::Prevote, 0, Some(id))
    );
    assert_persist_before_send(&out, &ks[1]);
}

#[test]
fn pending_job_file_times_out_to_a_nil_prevote() {
    let ks = keys(4);
    let set = set_of(&ks);
    let mut d = driver(&ks[2]);
    let out = d.start_height(BlockTime(0), BlockNumber(0), set.clone());
    let at = out
        .iter()
        .find_map(|o| match o {
            Output::ScheduleTimeout { timeout, at } if timeout.kind == TimeoutKind::Propose => {
                Some(*at)
            }
            _ => None,
        })
        .expect("a propose timeout is scheduled");
    let h = header(0, 1, &set);
    d.handle_message(
        BlockTime(100),
        ks[0].public(),
        Message::Proposal(proposal(&ks[0], 0, &h, None)),
    )
    .unwrap();
    d.handle_validity(BlockTime(200), BlockNumber(0), h.hash(), Validity::Pending);
    let out = d.handle_timeout(
        at,
        Timeout {
            height: BlockNumber(0),
            round: 0,
            kind: TimeoutKind::Propose,
        },
    );
    let votes = broadcast_votes(&out);
    assert_eq!(votes.len(), 1);
    assert_eq!(
        (votes[0].vote.kind, votes[0].vote.value),
        (VoteKind::Prevote, None)
    );
    // The file arriving late changes nothing: the prevote is cast.
    let out = d.handle_validity(at.plus(1), BlockNumber(0), h.hash(), Validity::Valid);
    assert!(broadcast_votes(&out).is_empty());
}

#[test]
fn invalid_value_gets_a_nil_prevote_at_once() {
    let ks = keys(4);
    let set = set_of(&ks);
    let mut d = driver(&ks[3]);
    d.start_height(BlockTime(0), BlockNumber(0), set.clone());
    let h = header(0, 9, &set);
    d.handle_message(
        BlockTime(1),
        ks[0].public(),
        Message::Proposal(proposal(&ks[0], 0, &h, None)),
    )
    .unwrap();
    let out = d.handle_validity(BlockTime(2), BlockNumber(0), h.hash(), Validity::Invalid);
    let votes = broadcast_votes(&out);
    assert_eq!(votes.len(), 1);
    assert_eq!(votes[0].vote.value, None);
}

#[test]
fn timeouts_grow_per_round() {
    let t = common::config().timeouts;
    for kind in [
        TimeoutKind::Propose,
        TimeoutKind::Prevote,
        TimeoutKind::Precommit,
    ] {
        assert!(t.duration(kind, 1) > t.duration(kind, 0), "{kind:?}");
        assert!(t.duration(kind, 10) > t.duration(kind, 1), "{kind:?}");
    }
    assert!(
        t.duration(TimeoutKind::Propose, u32::MAX) >= t.duration(TimeoutKind::Propose, 10),
        "saturates, never wraps"
    );
}
