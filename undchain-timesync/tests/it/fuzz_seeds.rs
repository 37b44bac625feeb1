//! The `time_sync` fuzz target's seed corpus (fuzz/seeds/time_sync) runs
//! as an ordinary test, and so do a few hundred inputs drawn from a seed:
//! a short fuzz run on stable that CI repeats exactly.

use undchain_timesync::fuzz::fuzz_time_sync;
use undchain_types::testkit::{drawn_inputs, for_each_seed};

#[test]
fn time_sync_fuzz_seeds_hold_the_properties() {
    let n = for_each_seed("time_sync", fuzz_time_sync);
    assert!(n >= 3, "expected the time_sync seeds, found {n}");
}

#[test]
fn drawn_inputs_hold_the_properties() {
    for data in drawn_inputs(19, 200, 600) {
        fuzz_time_sync(&data);
    }
}
