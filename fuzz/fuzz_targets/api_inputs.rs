//! Reads arbitrary bytes as the node API's POST /requests body and path parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    undchain_node::api::fuzz_api_inputs(data);
});
