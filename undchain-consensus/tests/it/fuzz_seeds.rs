//! The `driver` fuzz target's seed corpus (fuzz/seeds/driver) runs as an
//! ordinary test, and so do inputs drawn from a seed (a short fuzz run on
//! stable that CI repeats exactly). With a known agreement bug planted
//! (feature `planted-bugs`), the same steered runs find a fork: the target
//! has teeth.

use undchain_consensus::fuzz::fuzz_driver;
use undchain_types::testkit::for_each_seed;

fn drawn_inputs(count: usize) -> Vec<Vec<u8>> {
    undchain_types::testkit::drawn_inputs(19, count, 400)
}

#[test]
fn driver_fuzz_seeds_keep_agreement_and_liveness() {
    let n = for_each_seed("driver", fuzz_driver);
    assert!(n >= 3, "expected the driver seeds, found {n}");
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
