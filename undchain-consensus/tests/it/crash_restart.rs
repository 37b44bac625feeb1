//! Crash and restart: a validator restarted from what it persisted never
//! signs a second, different message for a slot it already signed, keeps
//! its lock, and the network still agrees (issue 5: "validators crash and
//! restart from what they persisted"; "no honest equivocation across
//! restarts").

use crate::support::*;
use undchain_consensus::sim::{Behaviour, Crash, FaultPlan, SimConfig, Simulation, Violation};
use undchain_consensus::{Driver, Validity};
use undchain_types::msg::VoteKind;
use undchain_types::{BlockNumber, Message};

#[test]
fn restart_resends_the_same_prevote_and_never_a_different_one() {
    let (ks, set, mut d) = started(4, 1, 0);
    let a = header(0, 1, &set);
    offer_proposal(&mut d, &ks[0], 0, &a, at(10));
    take(&mut d);
    d.handle_validity(at(20), BlockNumber(0), key_of(&a), Validity::Valid)
        .unwrap();
    let handed = take(&mut d);
    let prevote = handed.votes()[0].clone();
    let saved = handed.persisted().expect("the prevote's batch persists");
    assert_eq!(saved.own_votes, vec![prevote.clone()]);

    // Crash; restart from disk.
    let mut d2 = driver(&ks[1]);
    d2.resume(at(5_000), saved, set.clone());
    assert_eq!(
        take(&mut d2).votes(),
        vec![prevote.clone()],
        "re-sent as it was"
    );
    // The proposal arrives again and the timeouts fire: no new prevote.
    offer_proposal(&mut d2, &ks[0], 0, &a, at(5_010));
    let mut again = take(&mut d2).votes();
    d2.handle_timeout(at(9_000));
    again.extend(take(&mut d2).votes());
    assert!(
        again
            .iter()
            .all(|v| v.vote.kind != VoteKind::Prevote || v == &prevote),
        "{again:?}"
    );
}

#[test]
fn restart_keeps_the_lock() {
    let (ks, set, mut d) = started(4, 2, 0);
    let a = header(0, 1, &set);
    offer_proposal(&mut d, &ks[0], 0, &a, at(1));
    d.handle_validity(at(2), BlockNumber(0), key_of(&a), Validity::Valid)
        .unwrap();
    take(&mut d);
    let mut last = Handed::default();
    for k in [&ks[0], &ks[1]] {
        d.handle_message(
            at(3),
            k.public(),
            Message::Vote(vote(k, 0, 0, VoteKind::Prevote, Some(a.hash()))),
        )
        .unwrap();
        last = take(&mut d);
    }
    let precommit = last.votes();
    assert_eq!(precommit.len(), 1);
    assert_eq!(
        precommit[0].vote.value,
        Some(a.hash()),
        "locked and precommitted"
    );
    let saved = last.persisted().expect("the precommit's batch persists");
    assert_eq!(
        saved.round_state.locked.as_ref().map(|l| l.id),
        Some(a.hash())
    );

    let mut d2: Driver = driver(&ks[2]);
    d2.resume(at(100), saved, set.clone());
    // Round 1 (proposer ks[1]) proposes another value, with no proof of
    // lock: the restarted validator, still locked on A, prevotes nil.
    cast_votes(
        &mut d2,
        &[&ks[0], &ks[1], &ks[3]],
        (0, 0),
        VoteKind::Precommit,
        None,
        at(101),
    );
    take(&mut d2);
    d2.handle_timeout(at(5_000));
    assert_eq!(d2.state().round, 1, "timeoutPrecommit moved to round 1");
    take(&mut d2);
    let b = header(0, 2, &set);
    offer_proposal(&mut d2, &ks[1], 1, &b, at(5_001));
    d2.handle_validity(at(5_002), BlockNumber(0), key_of(&b), Validity::Valid)
        .unwrap();
    let votes = take(&mut d2).votes();
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
