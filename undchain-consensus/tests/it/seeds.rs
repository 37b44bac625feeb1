//! The seed sweep CI runs: for every n from 4 to 10 (5, 6, 8, 9 included),
//! at least 200 seeds with f Byzantine validators (behaviour drawn per
//! seed) and network faults drawn per seed: zero safety violations, and
//! every honest validator reaches the target height after the heal. A
//! failing seed prints "reproduce with seed=..." (issue 5).

use undchain_consensus::sim::{SimConfig, Simulation, sweep};

const SEEDS: u64 = 200;

fn sweep_n(n: usize) {
    let f = (n - 1) / 3;
    let reports = sweep(n, f, 0, SEEDS, false);
    assert_eq!(reports.len() as u64, SEEDS);
    let mut failures = Vec::new();
    let mut heights = 0;
    for r in &reports {
        heights += r.heights_decided;
        if !r.ok() {
            failures.push(r.reproduce_hint());
        }
    }
    assert!(
        failures.is_empty(),
        "n={n}: {} failing seeds:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(heights >= SEEDS * 6, "n={n}: {heights} heights");
    // The draw really varies faults and behaviours.
    let behaviours: std::collections::BTreeSet<_> =
        reports.iter().filter_map(|r| r.config.behaviour).collect();
    assert!(behaviours.len() >= 12, "n={n}: {behaviours:?}");
    assert!(
        reports
            .iter()
            .any(|r| !r.config.faults.partitions.is_empty())
    );
    assert!(reports.iter().any(|r| !r.config.faults.crashes.is_empty()));
    assert!(reports.iter().any(|r| r.max_round > 0));
}

#[test]
fn seeds_n4() {
    sweep_n(4);
}

#[test]
fn seeds_n5() {
    sweep_n(5);
}

#[test]
fn seeds_n6() {
    sweep_n(6);
}

#[test]
fn seeds_n7() {
    sweep_n(7);
}

#[test]
fn seeds_n8() {
    sweep_n(8);
}

#[test]
fn seeds_n9() {
    sweep_n(9);
}

#[test]
fn seeds_n10() {
    sweep_n(10);
}

#[test]
fn seeds_small_n_without_byzantine() {
    // n = 1..3 tolerate no Byzantine validator (f = 0) but must still
    // agree and recover from crashes and partitions.
    for n in 1..=3 {
        for seed in 0..40 {
            let r = Simulation::new(SimConfig::drawn(n, 0, seed)).run();
            assert!(r.ok(), "{}", r.reproduce_hint());
        }
    }
}

#[test]
fn same_seed_same_run() {
    use undchain_consensus::sim::fingerprint;
    for seed in [3, 17, 99] {
        let a = Simulation::new(SimConfig::drawn(7, 2, seed)).run();
        let b = Simulation::new(SimConfig::drawn(7, 2, seed)).run();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_eq!(a.end_us, b.end_us);
        assert_eq!(a.messages_delivered, b.messages_delivered);
        let c = Simulation::new(SimConfig::drawn(7, 2, seed + 1000)).run();
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
