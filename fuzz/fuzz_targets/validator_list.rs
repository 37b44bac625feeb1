//! Parses arbitrary bytes as a validator list (validators.toml); a parsed list must survive to_toml.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    undchain_types::validator_list::fuzz_validator_list(data);
});
