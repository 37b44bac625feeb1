//! Scripts the whole-network simulator (real node cores) with arbitrary
//! bytes: time, crashes, restarts, clock jumps, requests, lost messages;
//! honest validators must store one agreed chain.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    undchain_roles::fuzz::fuzz_node_core(data);
});
