//! Splits arbitrary bytes into node.toml, genesis.toml and validators.toml and loads them as a node home.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    undchain_node::home::fuzz_home_files(data);
});
