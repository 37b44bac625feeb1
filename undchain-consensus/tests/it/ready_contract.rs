//! Persistence as a type: the driver hands out one batch at a time, what
//! it signed goes out only after the write that holds it, and the host's
//! acknowledgement is checked (docs/ARCHITECTURE.md "The machine
//! vocabulary", after raft-rs's `Ready` / `advance`).

use std::collections::{BTreeSet, VecDeque};

use crate::support::*;
use undchain_consensus::{Driver, DriverReady, Output, PersistedState, Validity};
use undchain_types::msg::VoteKind;
use undchain_types::{AdvanceError, BlockNumber, Message, PublicKey, ReadyNumber};

/// The messages a written state holds that this validator signed.
fn holds(state: &PersistedState) -> Vec<Message> {
    state
        .own_votes
        .iter()
        .cloned()
        .map(Message::Vote)
        .chain(state.own_proposal.clone().map(Message::Proposal))
        .collect()
}

/// Whether `msg` is a proposal or vote `me` signed.
fn signed_by(msg: &Message, me: &PublicKey) -> bool {
    match msg {
        Message::Vote(v) => v.vote.validator == *me,
        Message::Proposal(p) => p.proposal.proposer == *me,
        _ => false,
    }
}

/// The message an output sends, if it sends one.
fn sent(o: &Output) -> Option<&Message> {
    match o {
        Output::Broadcast { msg } | Output::Send { msg, .. } => Some(msg),
        _ => None,
    }
}

/// A host for four drivers over an in-order network that checks, for every
/// batch it carries out, that each signed message it sends was in a state
/// it had already written, and that nothing signed is in `immediate`.
struct CheckingHost {
    drivers: Vec<Driver>,
    written: Vec<BTreeSet<Vec<u8>>>,
    net: VecDeque<(usize, PublicKey, Message)>,
    decided: Vec<u64>,
    signed_sends: usize,
}

impl CheckingHost {
    fn carry_out(&mut self, i: usize, now: i64) {
        let me = self.drivers[i].public_key();
        while let Some(batch) = self.drivers[i].ready() {
            for o in &batch.immediate {
                assert!(
                    sent(o).is_none_or(|m| !signed_by(m, &me)),
                    "a signed message in immediate: {o:?}"
                );
            }
            if let Some(state) = batch.persist.last() {
                for m in holds(state) {
                    self.written[i].insert(format!("{m:?}").into_bytes());
                }
            }
            for o in batch.immediate.iter().chain(&batch.after_persist) {
                if let Some(m) = sent(o).filter(|m| signed_by(m, &me)) {
                    assert!(
                        self.written[i].contains(&format!("{m:?}").into_bytes()),
                        "sent before it was written: {m:?}"
                    );
                    self.signed_sends += 1;
                }
            }
            self.act(i, now, batch);
        }
    }

    fn act(&mut self, i: usize, now: i64, batch: DriverReady) {
        let number = batch.number();
        let me = self.drivers[i].public_key();
        for o in batch.immediate.into_iter().chain(batch.after_persist) {
            match o {
                Output::Broadcast { msg } => {
                    for j in (0..self.drivers.len()).filter(|j| *j != i) {
                        self.net.push_back((j, me, msg.clone()));
                    }
                }
                Output::Send { to, msg } => {
                    if let Some(j) = self.drivers.iter().position(|d| d.public_key() == to) {
                        self.net.push_back((j, me, msg));
                    }
                }
                Output::GetValue { height, round } => {
                    let set = self.drivers[i].validator_set().unwrap().clone();
                    let h = header(height.0, 1 + round as u8, &set);
                    self.drivers[i]
                        .propose_value(at(now), height, round, value(&h))
                        .unwrap();
                }
                Output::CheckValue { height, key, .. } => self.drivers[i]
                    .handle_validity(at(now), height, key, Validity::Valid)
                    .unwrap(),
                Output::Decide(b) => self.decided[i] = b.header.number.0 + 1,
                _ => {}
            }
        }
        self.drivers[i].advance(number).unwrap();
    }
}

#[test]
fn nothing_signed_goes_out_before_the_write_that_holds_it() {
    let ks = keys(4);
    let set = set_of(&ks);
    let mut host = CheckingHost {
        drivers: ks.iter().map(driver).collect(),
        written: vec![BTreeSet::new(); 4],
        net: VecDeque::new(),
        decided: vec![0; 4],
        signed_sends: 0,
    };
    let mut now = 0;
    for height in 0..4u64 {
        for i in 0..4 {
            host.drivers[i].start_height(at(now), BlockNumber(height), set.clone());
            host.carry_out(i, now);
        }
        while let Some((to, from, msg)) = host.net.pop_front() {
            now += 1;
            if host.drivers[to].handle_message(at(now), from, msg).is_ok() {
                host.carry_out(to, now);
            }
        }
        assert!(
            host.decided.iter().all(|d| *d == height + 1),
            "{:?}",
            host.decided
        );
        // Past every timeout: the re-sends and timeouts of a decided
        // height do nothing.
        now += 1_000_000;
        for i in 0..4 {
            host.drivers[i].handle_timeout(at(now));
            host.carry_out(i, now);
        }
    }
    assert!(host.signed_sends >= 4 * 4 * 2, "{}", host.signed_sends);
}

#[test]
fn no_second_batch_before_advance_and_a_refused_advance_changes_nothing() {
    let ks = keys(4);
    let set = set_of(&ks);
    // ks[0] proposes round 0 of height 0.
    let mut d = driver(&ks[0]);
    d.start_height(at(0), BlockNumber(0), set.clone());
    let first = d.ready().expect("the request for a value");
    assert!(matches!(first.immediate[..], [Output::GetValue { .. }]));
    assert!(first.persist.is_empty() && first.after_persist.is_empty());
    assert_eq!(d.ready(), None, "one batch at a time");

    // The host answers while the first batch is still outstanding: the
    // signed proposal waits for the next batch.
    let h = header(0, 1, &set);
    d.propose_value(at(1), BlockNumber(0), 0, value(&h))
        .unwrap();
    d.handle_message(
        at(2),
        ks[2].public(),
        Message::Vote(vote(&ks[2], 0, 0, VoteKind::Prevote, Some(h.hash()))),
    )
    .unwrap();
    assert_eq!(d.ready(), None, "nothing overtakes an unacknowledged batch");

    let before = observe(&d);
    let wrong = ReadyNumber(first.number().0 + 7);
    assert_eq!(
        d.advance(wrong),
        Err(AdvanceError::WrongBatch {
            expected: first.number(),
            got: wrong
        })
    );
    assert_eq!(observe(&d), before, "a refused advance changes nothing");
    assert_eq!(d.ready(), None, "still waiting for the right number");

    d.advance(first.number()).unwrap();
    let second = d.ready().expect("the proposal");
    assert_ne!(second.number(), first.number());
    // The proposal, and the proposer's own prevote for it (line 22), go
    // after the one write that holds both.
    let [
        Output::Broadcast {
            msg: Message::Proposal(p),
        },
        Output::Broadcast {
            msg: Message::Vote(v),
        },
    ] = &second.after_persist[..]
    else {
        panic!("the signed proposal goes after the write: {second:?}");
    };
    assert!(second.immediate.is_empty());
    assert_eq!(second.persist.len(), 1);
    assert_eq!(second.persist[0].own_proposal.as_ref(), Some(p));
    assert_eq!(second.persist[0].own_votes, vec![v.clone()]);
    assert_eq!(
        d.advance(first.number()),
        Err(AdvanceError::WrongBatch {
            expected: second.number(),
            got: first.number()
        }),
        "an old number does not acknowledge the new batch"
    );
    d.advance(second.number()).unwrap();
    assert_eq!(
        d.advance(second.number()),
        Err(AdvanceError::NothingOutstanding {
            got: second.number()
        })
    );
    assert_eq!(d.ready(), None);
}

#[test]
fn one_write_per_batch_holds_the_latest_state() {
    // ks[2] hears the prevotes of the others first, then learns the value
    // is valid: it prevotes and, with q prevotes, locks and precommits in
    // the same input. One write covers both votes.
    let (ks, set, mut d) = started(4, 2, 0);
    let a = header(0, 1, &set);
    offer_proposal(&mut d, &ks[0], 0, &a, at(1));
    cast_votes(
        &mut d,
        &[&ks[0], &ks[1], &ks[3]],
        (0, 0),
        VoteKind::Prevote,
        Some(a.hash()),
        at(2),
    );
    take(&mut d);
    d.handle_validity(at(3), BlockNumber(0), key_of(&a), Validity::Valid)
        .unwrap();
    let batch = d.ready().expect("the votes");
    let votes = broadcast_votes(&batch.after_persist);
    assert_eq!(
        votes
            .iter()
            .map(|v| (v.vote.kind, v.vote.value))
            .collect::<Vec<_>>(),
        vec![
            (VoteKind::Prevote, Some(a.hash())),
            (VoteKind::Precommit, Some(a.hash()))
        ]
    );
    assert_eq!(batch.persist.len(), 1, "one write");
    assert_eq!(batch.persist[0].own_votes, votes);
    assert_eq!(
        batch.persist[0].round_state.locked.as_ref().map(|l| l.id),
        Some(a.hash())
    );
    assert_eq!(batch.persist[0], d.snapshot());
}
