//! The committed seed corpora of `fuzz/fuzz_targets/envelope.rs` and
//! `fuzz/fuzz_targets/validator_list.rs` run as ordinary tests (CI has no
//! nightly).

use undchain_types::testkit::for_each_seed;

#[test]
fn envelope_fuzz_seeds_decode_without_panicking() {
    let n = for_each_seed("envelope", undchain_types::wire::fuzz_decode_all);
    assert!(n >= 5, "expected the envelope seeds, found {n}");
}

#[test]
fn validator_list_fuzz_seeds_round_trip() {
    let n = for_each_seed(
        "validator_list",
        undchain_types::validator_list::fuzz_validator_list,
    );
    assert!(n >= 5, "expected the validator_list seeds, found {n}");
}
