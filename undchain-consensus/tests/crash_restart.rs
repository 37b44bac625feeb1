//! Crash and restart: a validator restarted from what it persisted never
//! signs a second, different message for a slot it already signed, keeps
//! its lock, and the network still agrees (issue 5: "validators crash and
//! restart from what they persisted"; "no honest equivocation across
//! restarts").

mod common;

use common::*;
use undchain_consensus::sim::{Behaviour, Crash, FaultPlan, SimConfig, Simulation, Violation};
use undchain_consensus::{Driver, Output, PersistedState, Timeout, TimeoutKind, Validity};
use undchain_types::msg::VoteKind;
use undchain_types::{BlockNumber, BlockTime, Message};

fn last_persist(out: &[Output]) -> PersistedState {
    out.iter()
        .rev()
        .find_map(|o| match o {
            Output::Persist(s) => Some((**s).clone()),
            _ => None,
        })
        .expect("a Persist output")
}

#[test]
fn restart_resends_the_same_prevote_and_never_a_different_one() {
    let ks = keys(4);
    let set = set_of(&ks);
    let mut d = driver(&ks[1]);
    d.start_height(BlockTime(0), BlockNumber(0), set.clone());
    let a = header(0, 1, &set);
    d.handle_message(
        BlockTime(10),
        ks[0].public(),
        Message::Proposal(proposal(&ks[0], 0, &a, None)),
    )
    .unwrap();
    let out = d.handle_validity(BlockTime(20), BlockNumber(0), a.hash(), Validity::Valid);
    assert_persist_before_send(&out, &ks[1]);
    let prevote = broadcast_votes(&out)[0].clone();
    let saved = last_persist(&out);
    assert_eq!(saved.own_votes, vec![prevote.clone()]);

    // Crash; restart from disk.
    let mut d2 = driver(&ks[1]);
    let out = d2.resume(BlockTime(5_000), saved, set.clone());
    assert_eq!(
        broadcast_votes(&out),
        vec![prevote.clone()],
        "re-sent as it was"
    );
    // The proposal arrives again and the propose timeout fires: no new prevote.
    let mut again = d2
        .handle_message(
            BlockTime(5_010),
            ks[0].public(),
            Message::Proposal(proposal(&ks[0], 0, &a, None)),
        )
        .unwrap();
    again.extend(d2.handle_timeout(
        BlockTime(9_000),
        Timeout {
            height: BlockNumber(0),
            round: 0,
            kind: TimeoutKind::Propose,
        },
    ));
    assert!(
        broadcast_votes(&again)
            .iter()
            .all(|v| v.vote.kind != VoteKind::Prevote || v == &prevote),
        "{again:?}"
    );
}

#[test]
fn restart_keeps_the_lock() {
    let ks = keys(4);
    let set = set_of(&ks);
    let mut d = driver(&ks[2]);
    d.start_height(BlockTime(0), BlockNumber(0), set.clone());
    let a = header(0, 1, &set);
    d.handle_message(
        BlockTime(1),
        ks[0].public(),
        Message::Proposal(proposal(&ks[0], 0, &a, None)),
    )
    .unwrap();
    d.handle_validity(BlockTime(2), BlockNumber(0), a.hash(), Validity::Valid);
    let mut last = Vec::new();
    for k in [&ks[0], &ks[1]] {
        last = d
            .handle_message(
                BlockTime(3),
                k.public(),
                Message::Vote(vote(k, 0, 0, VoteKind::Prevote, Some(a.hash()))),
            )
            .unwrap();
    }
    let precommit = broadcast_votes(&last);
    assert_eq!(precommit.len(), 1);
    assert_eq!(
        precommit[0].vote.value,
        Some(a.hash()),
        "locked and precommitted"
    );
    assert_persist_before_send(&last, &ks[2]);
    let saved = last_persist(&last);
    assert_eq!(
        saved.round_state.locked.as_ref().map(|l| l.id),
        Some(a.hash())
    );

    let mut d2: Driver = driver(&ks[2]);
    d2.resume(BlockTime(100), saved, set.clone());
    // Round 1 (proposer ks[1]) proposes another value, with no proof of
    // lock: the restarted validator, still locked on A, prevotes nil.
    for k in [&ks[0], &ks[1], &ks[3]] {
        d2.handle_message(
            BlockTime(101),
            k.public(),
            Message::Vote(vote(k, 0, 0, VoteKind::Precommit, None)),
        )
        .unwrap();
    }
    let out = d2.handle_timeout(
        BlockTime(5_000),
        Timeout {
            height: BlockNumber(0),
            round: 0,
            kind: TimeoutKind::Precommit,
        },
    );
    assert_eq!(d2.state().round, 1, "{out:?}");
    let b = header(0, 2, &set);
    d2.handle_message(
        BlockTime(5_001),
        ks[1].public(),
        Message::Proposal(proposal(&ks[1], 1, &b, None)),
    )
    .unwrap();
    let out = d2.handle_validity(BlockTime(5_002), BlockNumber(0), b.hash(), Validity::Valid);
    let votes = broadcast_votes(&out);
    assert_eq!(votes.len(), 1);
    assert_eq!((votes[0].vote.round, votes[0].vote.value), (1, None));
}

#[test]
fn crash_restart_scenarios_keep_safety_and_recover() {
    let mut restarts = 0;
    for seed in 0..40u64 {
        let n = 4 + (seed % 4) as usize;
        let mut cfg = SimConfig::drawn(n, 0, seed);
        cfg.faults = FaultPlan {
            heal_at_us: 60 * UNIT,
            crashes: (0..3)
                .map(|k| Crash {
                    node: ((seed + k) % n as u64) as usize,
                    at_us: (5 + 13 * k + seed % 7) * UNIT,
                    down_us: (3 + seed % 9) * UNIT,
                    torn: (seed + k) % 2 == 0,
                })
                .collect(),
            drop_permille: 50,
            jitter_percent: 50,
            ..FaultPlan::none()
        };
        let report = Simulation::new(cfg).run();
        assert!(report.ok(), "{}", report.reproduce_hint());
        assert!(
            !report
                .safety_violations
                .iter()
                .any(|v| matches!(v, Violation::HonestEquivocation { .. })),
            "{}",
            report.reproduce_hint()
        );
        restarts += report.nodes.iter().map(|n| n.restarts).sum::<u32>();
    }
    assert!(restarts >= 100, "crashes really happened: {restarts}");
}

#[test]
fn crashes_with_a_byzantine_replayer() {
    for seed in 0..20u64 {
        let mut cfg = SimConfig::drawn(7, 2, seed).with_behaviour(Behaviour::Replayer);
        cfg.faults.crashes = vec![Crash {
            node: 3,
            at_us: 7 * UNIT,
            down_us: 9 * UNIT,
            torn: true,
        }];
        cfg.faults.heal_at_us = cfg.faults.heal_at_us.max(30 * UNIT);
        let report = Simulation::new(cfg).run();
        assert!(report.ok(), "{}", report.reproduce_hint());
        assert_eq!(report.nodes[3].restarts, 1);
    }
}
