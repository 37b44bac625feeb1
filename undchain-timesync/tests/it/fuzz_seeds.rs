//! The `time_sync` fuzz target's seed corpus (fuzz/seeds/time_sync) runs
//! as an ordinary test, and so do a few hundred inputs drawn from a seed:
//! a short fuzz run on stable that CI repeats exactly.

use std::path::Path;

use undchain_timesync::fuzz::fuzz_time_sync;
use undchain_types::SplitMix64;

#[test]
fn time_sync_fuzz_seeds_hold_the_properties() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/time_sync");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|e| e.expect("readable entry").path())
        .collect();
    paths.sort();
    for path in &paths {
        fuzz_time_sync(&std::fs::read(path).expect("readable seed"));
    }
    assert!(paths.len() >= 3, "expected the time_sync seeds");
}

#[test]
fn drawn_inputs_hold_the_properties() {
    let mut rng = SplitMix64::new(19);
    for _ in 0..200 {
        let len = rng.below(600) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        fuzz_time_sync(&data);
    }
}
