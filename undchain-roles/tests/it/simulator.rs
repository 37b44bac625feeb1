//! The simulator over many seeds with faults (loss, duplication, delay and
//! reorder, a healing partition, crashes with torn writes, clock skew and
//! drift): no safety violation, nothing acknowledged lost, equal state
//! roots, tokens conserved, live after the heal.

use undchain_roles::sim::{SimConfig, run};

fn sweep(validators: usize, seeds: std::ops::Range<u64>) {
    let mut failed = Vec::new();
    for seed in seeds {
        let mut cfg = SimConfig::new(validators, 8, seed);
        cfg.requests_per_block = 8;
        cfg.faults = true;
        let r = run(&cfg).unwrap();
        assert!(
            r.acked > 0,
            "seed {seed}: no request was acknowledged: {}",
            r.line()
        );
        assert!(r.committed_jobs > 0, "seed {seed}: nothing committed");
        if !r.ok() {
            failed.push(format!(
                "{} {:?} (reproduce with --seed {seed})",
                r.line(),
                r.failures
            ));
        }
    }
    assert!(failed.is_empty(), "failed runs:\n{}", failed.join("\n"));
}

#[test]
fn faults_four_validators_60_seeds() {
    sweep(4, 0..60);
}

#[test]
fn faults_five_validators_40_seeds() {
    sweep(5, 1000..1040);
}

#[test]
fn faults_seven_validators_60_seeds() {
    sweep(7, 2000..2060);
}

#[test]
fn faults_ten_validators_40_seeds() {
    sweep(10, 3000..3040);
}

#[test]
fn same_seed_same_run() {
    let mut cfg = SimConfig::new(4, 6, 77);
    cfg.faults = true;
    let a = run(&cfg).unwrap();
    let b = run(&cfg).unwrap();
    assert_eq!(a, b);
    cfg.seed = 78;
    let c = run(&cfg).unwrap();
    assert_ne!(
        (a.requests, a.events),
        (c.requests, c.events),
        "another seed, another run"
    );
}

#[test]
fn fault_free_run_commits_every_request() {
    let mut cfg = SimConfig::new(7, 10, 5);
    cfg.requests_per_block = 30;
    let r = run(&cfg).unwrap();
    assert!(r.ok(), "{} {:?}", r.line(), r.failures);
    assert_eq!(r.acked, r.requests);
    assert_eq!(r.committed_jobs, r.requests);
    assert!(r.blocks >= 10);
}
