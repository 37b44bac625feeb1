//! Decodes arbitrary bytes as a signed envelope and as each message body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    undchain_types::wire::fuzz_decode_all(data);
});
