//! The `driver` fuzz target's seed corpus (fuzz/seeds/driver) runs as an
//! ordinary test, and so do inputs drawn from a seed (a short fuzz run on
//! stable that CI repeats exactly). With a known agreement bug planted
//! (feature `planted-bugs`), the same steered runs find a fork: the target
//! has teeth.

use std::path::Path;

use undchain_consensus::fuzz::fuzz_driver;
use undchain_types::SplitMix64;

fn drawn_inputs(count: usize) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(19);
    (0..count)
        .map(|_| {
            let len = rng.below(400) as usize;
            (0..len).map(|_| rng.below(256) as u8).collect()
        })
        .collect()
}

#[test]
fn driver_fuzz_seeds_keep_agreement_and_liveness() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/driver");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|e| e.expect("readable entry").path())
        .collect();
    paths.sort();
    for path in &paths {
        fuzz_driver(&std::fs::read(path).expect("readable seed"));
    }
    assert!(paths.len() >= 3, "expected the driver seeds");
}

#[test]
fn drawn_inputs_keep_agreement_and_liveness() {
    for data in drawn_inputs(40) {
        fuzz_driver(&data);
    }
}

#[cfg(feature = "planted-bugs")]
#[test]
fn planted_ignore_lock_is_found_by_steered_runs() {
    use undchain_consensus::fuzz::steered_config;
    use undchain_consensus::planted::PlantedBug;
    use undchain_consensus::sim::{Simulation, Violation};
    let found = drawn_inputs(400).iter().any(|data| {
        let (cfg, rng) = steered_config(data);
        let r = Simulation::with_rng(cfg.with_planted(PlantedBug::IgnoreLock), rng).run();
        r.safety_violations
            .iter()
            .any(|v| matches!(v, Violation::Agreement { .. }))
    });
    assert!(found, "no steered run found the planted lock bug");
}
