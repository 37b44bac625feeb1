//! The simulator over many seeds with faults (loss, duplication, delay and
//! reorder, a healing partition, crashes with torn writes, clock skew and
//! drift): no safety violation, nothing acknowledged lost, equal state
//! roots, tokens conserved, live after the heal. Up to f validators of a
//! run are Byzantine, drawn per seed, running the agreement simulator's
//! actors.

use undchain_consensus::adversary::Behaviour;
use undchain_roles::sim::{SimConfig, run};

fn sweep(validators: usize, seeds: std::ops::Range<u64>) {
    sweep_with(validators, 0, seeds);
}

/// Seeded faulty runs with `passive` passive validators (and, with any,
/// 4-block payout periods, so the set rotates twice in a run; on odd seeds
/// the chain also converges at every period end).
fn sweep_with(validators: usize, passive: usize, seeds: std::ops::Range<u64>) {
    let mut failed = Vec::new();
    let mut byzantine = 0;
    for seed in seeds {
        let mut cfg = SimConfig::new(validators, 8, seed);
        cfg.requests_per_block = 8;
        cfg.faults = true;
        if passive > 0 {
            cfg.passive = passive;
            cfg.blocks = 12;
            cfg.blocks_per_period = 4;
            if seed % 2 == 1 {
                cfg.convergence_bytes = Some(1);
            }
        }
        let r = run(&cfg).unwrap();
        if cfg.convergence_bytes.is_some() && r.ok() {
            assert!(r.epoch >= 2, "seed {seed}: converged to {}", r.epoch);
        }
        assert!(
            r.acked > 0,
            "seed {seed}: no request was acknowledged: {}",
            r.line()
        );
        assert!(r.committed_jobs > 0, "seed {seed}: nothing committed");
        byzantine += usize::from(r.byzantine.is_some());
        if !r.ok() {
            failed.push(format!(
                "{} {:?} (reproduce with --seed {seed})",
                r.line(),
                r.failures
            ));
        }
    }
    assert!(failed.is_empty(), "failed runs:\n{}", failed.join("\n"));
    assert!(byzantine > 0, "no seed drew a Byzantine validator");
}

/// f validators run `behaviour` (no other faults): the honest ones stay
/// safe, lose nothing and keep committing.
fn byzantine(validators: usize, behaviour: Behaviour, seed: u64) -> Result<(), String> {
    let mut cfg = SimConfig::new(validators, 6, seed);
    cfg.requests_per_block = 6;
    cfg.byzantine = Some((validators - 1) / 3);
    cfg.behaviour = Some(behaviour);
    let r = run(&cfg).map_err(|e| e.to_string())?;
    assert_eq!(r.byzantine, Some(((validators - 1) / 3, behaviour.name())));
    if r.ok() && r.committed_jobs > 0 {
        Ok(())
    } else {
        Err(format!(
            "{} {} {:?}",
            behaviour.name(),
            r.line(),
            r.failures
        ))
    }
}

#[test]
fn f_byzantine_validators_of_every_behaviour_change_nothing() {
    let mut failed = Vec::new();
    for (k, b) in Behaviour::ALL.iter().enumerate() {
        for (n, seed) in [(4, 500 + k as u64), (7, 600 + k as u64)] {
            if let Err(e) = byzantine(n, *b, seed) {
                failed.push(e);
            }
        }
    }
    assert!(failed.is_empty(), "failed runs:\n{}", failed.join("\n"));
}

#[test]
fn more_than_f_silent_validators_stop_the_chain() {
    // The negative control: the simulator's Byzantine validators are real.
    let mut cfg = SimConfig::new(4, 6, 3);
    cfg.requests_per_block = 4;
    cfg.byzantine = Some(2);
    cfg.behaviour = Some(Behaviour::Silent);
    let r = run(&cfg).unwrap();
    assert!(!r.ok());
    assert_eq!(r.blocks, 0, "{}", r.line());
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
fn faults_with_passive_validators_rotating_in_40_seeds() {
    sweep_with(4, 2, 5000..5020);
    sweep_with(7, 3, 6000..6020);
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

/// Arrivals above what a block may carry: every block stays within
/// `max_block_jobs` (the run fails otherwise), the intake files the
/// overflow into the next block or refuses it, and every acknowledged job
/// still commits once the load stops.
#[test]
fn blocks_stay_within_max_block_jobs_and_the_backlog_commits_later() {
    let mut cfg = SimConfig::new(4, 12, 41);
    cfg.requests_per_block = 40;
    cfg.max_block_jobs = Some(12);
    let r = run(&cfg).unwrap();
    assert!(r.ok(), "{} {:?}", r.line(), r.failures);
    assert_eq!(r.largest_block_jobs, 12, "full blocks: {}", r.line());
    assert!(
        r.acked < r.requests,
        "the overflow is refused: {}",
        r.line()
    );
    assert!(r.committed_jobs >= r.acked, "{}", r.line());
    assert_eq!(r.lost, 0);
}

/// The same bound under the campaign's faults (loss, crashes, partitions,
/// Byzantine validators): nothing acknowledged is lost and no block is
/// over the bound.
#[test]
fn faults_with_full_blocks_20_seeds() {
    for seed in 7000..7020 {
        let mut cfg = SimConfig::new(4, 10, seed);
        cfg.faults = true;
        cfg.requests_per_block = 40;
        cfg.max_block_jobs = Some(16);
        let r = run(&cfg).unwrap();
        assert!(r.ok(), "{} {:?}", r.line(), r.failures);
        assert!(r.largest_block_jobs <= 16, "{}", r.line());
    }
}
