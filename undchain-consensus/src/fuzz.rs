//! The `driver` fuzz target's body ([`fuzz_driver`], shared by
//! `fuzz/fuzz_targets/driver.rs` and the seed-corpus test): the agreement
//! simulator ([`crate::sim`]) with every draw steered by the input
//! ([`SplitMix64::scripted`]), so the bytes choose the Byzantine
//! validator's behaviour and what its actors send, which messages are
//! lost, duplicated, delayed and reordered, when partitions cut the
//! network and heal, and which honest validators crash (torn or not) and
//! for how long; the timeouts fire as the delays make them.
//!
//! Four validators, one Byzantine; the simulator's checker watches every
//! honest decision as it happens (no two honest validators decide
//! different blocks at a height, no honest double-signing, certificates
//! verify, the same validator sets) and, after the heal, liveness. The
//! one mechanism is the simulator's: this module only builds its
//! configuration from the stream and asserts the report.

use crate::sim::{SimConfig, SimReport, Simulation};
use undchain_types::SplitMix64;

/// Active validators of a fuzz run.
pub const FUZZ_N: usize = 4;
/// Heights every honest validator must decide in a fuzz run.
pub const FUZZ_HEIGHTS: u64 = 3;

/// The configuration `data` steers and the stream the run goes on with
/// (for [`Simulation::with_rng`]).
pub fn steered_config(data: &[u8]) -> (SimConfig, SplitMix64) {
    let mut rng = SplitMix64::scripted(0, data);
    let mut cfg = SimConfig::drawn_from(FUZZ_N, 1, 0, &mut rng);
    cfg.heights = FUZZ_HEIGHTS;
    (cfg, rng)
}

/// The run `data` steers (its report, violations included).
pub fn steered_run(data: &[u8]) -> SimReport {
    let (cfg, rng) = steered_config(data);
    Simulation::with_rng(cfg, rng).run()
}

/// Runs the simulation `data` steers; panics on any violation (safety, or
/// liveness after the heal), printing the report's violations.
pub fn fuzz_driver(data: &[u8]) {
    let report = steered_run(data);
    assert!(
        report.safety_violations.is_empty(),
        "safety violated (behaviour {:?}): {:?}",
        report.config.behaviour,
        report.safety_violations
    );
    assert!(
        report.liveness_violations.is_empty(),
        "liveness violated after the heal (behaviour {:?}): {:?}",
        report.config.behaviour,
        report.liveness_violations
    );
}
