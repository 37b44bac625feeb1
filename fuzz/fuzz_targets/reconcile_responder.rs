//! An honest initiator against a responder whose messages are arbitrary
//! bytes: never a panic, never past the round and byte bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    undchain_jobfile::testkit::fuzz_reconcile_responder(data);
});
