//! Runs the agreement simulator (3 honest drivers, 1 Byzantine) with every
//! draw (behaviour, drops, delays, reordering, partitions, crashes)
//! steered by arbitrary bytes; the checker must see no violation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    undchain_consensus::fuzz::fuzz_driver(data);
});
