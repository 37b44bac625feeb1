//! Drives the time-sync rounds (one liar answering anything) and a resync
//! machine (a Byzantine proposer and approver) with arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    undchain_timesync::fuzz::fuzz_time_sync(data);
});
