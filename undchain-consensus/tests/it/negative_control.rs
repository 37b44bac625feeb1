//! The negative control: the checker can fail. With f+1 equivocating
//! validators (n = 3f+1) two honest validators decide different blocks on
//! some seed. For n = 5, 6, 8, 9, f+1 is not enough to fork (two quorums
//! of q = floor(2n/3)+1 share 2q-n > f+1 validators), and the sweep shows
//! that too; 2q-n Byzantine validators do fork them (issue 5).

use undchain_consensus::sim::{Behaviour, SimConfig, Simulation, Violation, sweep};
use undchain_types::quorum;

fn forks(n: usize, b: usize, seeds: u64) -> usize {
    (0..seeds)
        .filter(|seed| {
            let cfg = SimConfig::drawn(n, b, *seed).with_behaviour(Behaviour::EquivocatingProposer);
            let r = Simulation::new(cfg).run();
            r.safety_violations
                .iter()
                .any(|v| matches!(v, Violation::Agreement { .. }))
        })
        .count()
}

#[test]
fn f_plus_one_equivocators_fork_n_3f_plus_1() {
    for n in [4, 7, 10] {
        let f = (n - 1) / 3;
        let found = forks(n, f + 1, 30);
        assert!(
            found > 0,
            "n={n}: the checker never saw the fork of {} equivocators",
            f + 1
        );
    }
}

#[test]
fn drawn_behaviours_with_f_plus_one_show_violations() {
    // As the `sim` example runs it: behaviour drawn per seed.
    let reports = sweep(4, 2, 0, 40, false);
    let bad = reports
        .iter()
        .filter(|r| !r.safety_violations.is_empty())
        .count();
    assert!(bad > 0);
}

#[test]
fn two_q_minus_n_equivocators_fork_the_other_sizes() {
    for n in [5, 6, 8, 9] {
        let f = (n - 1) / 3;
        let overlap = 2 * quorum(n) - n;
        assert!(overlap > f + 1, "n={n}");
        assert_eq!(forks(n, f + 1, 20), 0, "n={n}: f+1 cannot fork");
        assert!(
            forks(n, overlap, 30) > 0,
            "n={n}: {overlap} equivocators fork"
        );
    }
}

#[test]
fn the_sim_summary_fails_on_violations_except_for_the_negative_control() {
    use undchain_consensus::sim::SweepSummary;
    // f+1 equivocators at n = 4: violations, but the negative control
    // passes and says so.
    let control: Vec<_> = (0..30)
        .map(|seed| {
            let cfg = SimConfig::drawn(4, 2, seed).with_behaviour(Behaviour::EquivocatingProposer);
            Simulation::new(cfg).run()
        })
        .collect();
    let s = SweepSummary::of(4, 2, &control);
    assert!(s.safety_violations > 0);
    assert!(s.is_negative_control() && !s.failed());
    assert!(
        s.negative_control_line()
            .unwrap()
            .contains("exit status is 0")
    );
    assert!(
        s.line()
            .contains(&format!("liveness_failures={}", s.liveness_failures))
    );
    // With f Byzantine validators, 50 heights to reach (at least 150
    // delays) and no time after the heal (at most 80 delays in): honest
    // validators fall short, and a liveness failure fails the sweep.
    let starved: Vec<_> = (0..3)
        .map(|seed| {
            let cfg = SimConfig {
                heights: 50,
                liveness_bound_us: 1,
                ..SimConfig::drawn(4, 1, seed)
            };
            Simulation::new(cfg).run()
        })
        .collect();
    let s = SweepSummary::of(4, 1, &starved);
    assert_eq!(s.safety_violations, 0);
    assert_eq!(s.liveness_failures, 3);
    assert!(s.failed() && s.negative_control_line().is_none());
    assert!(s.line().contains("safety_violations=0 liveness_failures=3"));
    // A clean sweep passes.
    let clean = sweep(4, 1, 0, 5, false);
    let s = SweepSummary::of(4, 1, &clean);
    assert_eq!((s.safety_violations, s.liveness_failures), (0, 0));
    assert!(!s.failed());
}
