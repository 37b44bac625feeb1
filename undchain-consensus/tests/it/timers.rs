//! Timers as `poll_timeout` plus `handle_timeout(now)` (docs/ARCHITECTURE.md
//! "The machine vocabulary"): the driver keeps its pending timeouts, says
//! when the earliest that can still act is due, and fires whatever is due
//! when woken, early or late, once.

use undchain_consensus::{Driver, Timeout, TimeoutKind, Validity};
use undchain_types::msg::VoteKind;
use undchain_types::{BlockNumber, LocalTime, Message};

use crate::support::*;

fn pending(d: &Driver) -> Vec<(LocalTime, TimeoutKind, u32)> {
    d.pending_timeouts()
        .into_iter()
        .map(|(t, Timeout { kind, round, .. })| (t, kind, round))
        .collect()
}

#[test]
fn a_started_height_waits_for_its_proposal_and_its_resend_interval() {
    let t = config().timeouts;
    for me in 0..4 {
        let ks = keys(4);
        let mut d = driver(&ks[me]);
        assert_eq!(d.poll_timeout(), None, "an idle driver waits for nothing");
        d.start_height(at(10), BlockNumber(0), set_of(&ks));
        let propose = at(10).plus(t.propose_us);
        assert_eq!(
            pending(&d),
            vec![
                (propose, TimeoutKind::Propose, 0),
                (at(10).plus(t.rebroadcast_us), TimeoutKind::Rebroadcast, 0)
            ],
            "node {me} (the proposer too waits while the host builds its value)"
        );
        assert_eq!(d.poll_timeout(), Some(propose));
    }
}

#[test]
fn waking_early_late_or_twice_is_harmless() {
    let (_, _, mut d) = started(4, 2, 0);
    take(&mut d);
    let propose = d.poll_timeout().unwrap();
    let before = observe(&d);
    d.handle_timeout(propose.minus(1));
    assert_eq!(observe(&d), before, "early: nothing is due");
    assert_eq!(d.ready(), None);

    d.handle_timeout(propose.plus(500));
    let votes = take(&mut d).votes();
    assert_eq!(
        votes
            .iter()
            .map(|v| (v.vote.kind, v.vote.value))
            .collect::<Vec<_>>(),
        vec![(VoteKind::Prevote, None)],
        "late: timeoutPropose fires once (line 57)"
    );
    let after = observe(&d);
    d.handle_timeout(propose.plus(500));
    assert_eq!(observe(&d), after, "twice: nothing more");
    assert_eq!(d.ready(), None);
}

#[test]
fn timeouts_due_together_fire_in_one_call_in_the_order_they_started() {
    let (_, _, mut d) = started(4, 2, 0);
    take(&mut d);
    // Far past both the propose timeout and the re-send interval: the nil
    // prevote comes first, then its re-send.
    d.handle_timeout(at(1_000_000));
    let handed = take(&mut d);
    assert_eq!(handed.batches.len(), 1);
    let votes = handed.votes();
    assert_eq!(votes.len(), 2, "{votes:?}");
    assert_eq!(votes[0], votes[1], "the re-send repeats the prevote");
    // The interval started again from now.
    let t = config().timeouts;
    assert_eq!(
        pending(&d),
        vec![(
            at(1_000_000).plus(t.rebroadcast_us),
            TimeoutKind::Rebroadcast,
            0
        )]
    );
}

#[test]
fn what_is_pending_follows_the_height_and_round() {
    let (ks, set, mut d) = started(4, 2, 0);
    take(&mut d);
    let t = config().timeouts;
    let a = header(0, 1, &set);
    // Each row: an input, then the pending timeouts (besides the re-send
    // interval) as (kind, round).
    type Step = fn(&mut Driver, &[undchain_types::SigningKey], &undchain_types::BlockHeader);
    type Row = (&'static str, Step, Vec<(TimeoutKind, u32)>);
    let rows: Vec<Row> = vec![
        (
            "prevoted: timeoutPropose stays pending but does nothing now",
            |d, ks, a| {
                d.handle_message(
                    at(1),
                    ks[0].public(),
                    Message::Proposal(proposal(&ks[0], 0, a, None)),
                )
                .unwrap();
                d.handle_validity(at(2), BlockNumber(0), key_of(a), Validity::Valid)
                    .unwrap();
            },
            vec![(TimeoutKind::Propose, 0)],
        ),
        (
            "q prevotes of any kind: timeoutPrevote (line 34)",
            |d, ks, _| {
                cast_votes(d, &[&ks[1], &ks[3]], (0, 0), VoteKind::Prevote, None, at(3));
            },
            vec![(TimeoutKind::Prevote, 0), (TimeoutKind::Propose, 0)],
        ),
        (
            "f+1 validators in round 3: round 0's timeouts can no longer act",
            |d, ks, _| {
                cast_votes(d, &[&ks[1], &ks[3]], (0, 3), VoteKind::Prevote, None, at(4));
            },
            vec![(TimeoutKind::Propose, 3)],
        ),
    ];
    for (name, step, want) in rows {
        step(&mut d, &ks, &a);
        take(&mut d);
        let got: Vec<_> = pending(&d)
            .into_iter()
            .filter(|(_, k, _)| *k != TimeoutKind::Rebroadcast)
            .map(|(_, k, r)| (k, r))
            .collect();
        assert_eq!(got, want, "{name}");
    }
    assert_eq!(
        due(&d, TimeoutKind::Propose, 3),
        at(4).plus(t.duration(TimeoutKind::Propose, 3)),
        "round 3 waits longer"
    );
}

#[test]
fn a_decided_height_waits_for_nothing() {
    let (ks, set, mut d) = started(4, 2, 0);
    take(&mut d);
    let a = header(0, 1, &set);
    offer_proposal(&mut d, &ks[0], 0, &a, at(1));
    d.handle_validity(at(2), BlockNumber(0), key_of(&a), Validity::Valid)
        .unwrap();
    cast_votes(
        &mut d,
        &[&ks[0], &ks[1], &ks[3]],
        (0, 0),
        VoteKind::Precommit,
        Some(a.hash()),
        at(3),
    );
    assert!(
        take(&mut d)
            .outputs()
            .iter()
            .any(|o| matches!(o, undchain_consensus::Output::Decide(_)))
    );
    assert_eq!(d.poll_timeout(), None);
    assert!(d.pending_timeouts().is_empty());
    d.handle_timeout(at(10_000_000));
    assert_eq!(d.ready(), None, "no re-sends after the decision");
}
