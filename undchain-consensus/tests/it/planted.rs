//! The mutation check (issue 13; feature `planted-bugs`, run by CI as
//! `cargo test -p undchain-consensus --features planted-bugs --test it
//! planted`): with each known agreement bug planted in every driver, the
//! simulator's drawn runs (f Byzantine validators whose behaviour the seed
//! draws from the adversary actors, network faults drawn too) find a fork
//! within 200 seeds at n = 4, 7 and 10, for "ignore the lock" and for
//! "accept an unproven proof-of-lock round". (At n = 4 a single Byzantine
//! validator proposes one round in four, and the three honest validators
//! are a quorum of their own: the fork-valid-round coalition, which holds
//! the network until it heals, keeps the proposal of the round before its
//! own from one honest validator so that only two lock,
//! `adversary::DelayProposal`.) The same draws without the bug are the CI
//! sweep (`seeds`: seeds 0..200 at every n), with 0 violations; the
//! failing seed itself is also re-run without the bug.

use undchain_consensus::planted::PlantedBug;
use undchain_consensus::sim::{Behaviour, SimConfig, Simulation, Violation};

/// The first seed below 200 whose run over `bug` forks, if any.
fn first_fork(n: usize, bug: PlantedBug) -> Option<u64> {
    let f = (n - 1) / 3;
    (0..200).find(|&seed| {
        let r = Simulation::new(SimConfig::drawn(n, f, seed).with_planted(bug)).run();
        r.safety_violations
            .iter()
            .any(|v| matches!(v, Violation::Agreement { .. }))
    })
}

fn check(bug: PlantedBug, sizes: &[usize]) {
    for &n in sizes {
        let seed = first_fork(n, bug);
        let Some(seed) = seed else {
            panic!("n={n}: {bug:?} went unnoticed for 200 seeds");
        };
        let f = (n - 1) / 3;
        let cfg = SimConfig::drawn(n, f, seed);
        eprintln!("n={n} {bug:?}: fork at seed {seed} ({:?})", cfg.behaviour);
        let clean = Simulation::new(cfg).run();
        assert!(clean.ok(), "{}", clean.reproduce_hint());
    }
}

#[test]
fn planted_ignore_lock_is_found() {
    check(PlantedBug::IgnoreLock, &[4, 7, 10]);
}

#[test]
fn planted_unproven_valid_round_is_found() {
    check(PlantedBug::AcceptUnprovenValidRound, &[4, 7, 10]);
}

/// Over a network whose only fault is the coalition's hold on it until it
/// heals (60 delays), the fork-valid-round coalition forks the planted
/// "accept an unproven proof-of-lock round" at n = 4, 7 and 10 on its own
/// (the drawn faults only make it rarer); the same runs without the bug:
/// `n4f1::fork_valid_round_coalition_on_a_held_network_breaks_nothing`.
#[test]
fn planted_unproven_valid_round_falls_to_the_held_network_alone() {
    for n in [4, 7, 10] {
        let f = (n - 1) / 3;
        let mut cfg = SimConfig::fault_free(n, f, 0)
            .with_behaviour(Behaviour::ForkValidRound)
            .with_planted(PlantedBug::AcceptUnprovenValidRound);
        cfg.faults.heal_at_us = 60 * cfg.unit_us;
        let r = Simulation::new(cfg).run();
        assert!(
            r.safety_violations
                .iter()
                .any(|v| matches!(v, Violation::Agreement { .. })),
            "n={n}: {:?}",
            r.safety_violations
        );
    }
}
