//! The committed seed corpora of `fuzz/fuzz_targets/envelope.rs` and
//! `fuzz/fuzz_targets/validator_list.rs` run as ordinary tests (CI has no
//! nightly).

use std::path::Path;

/// Runs `body` on every seed of `fuzz/seeds/<target>/`; returns how many.
fn run_seeds(target: &str, body: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|e| e.expect("readable entry").path())
        .collect();
    paths.sort();
    for path in &paths {
        body(&std::fs::read(path).expect("readable seed"));
    }
    paths.len()
}

#[test]
fn envelope_fuzz_seeds_decode_without_panicking() {
    let n = run_seeds("envelope", undchain_types::wire::fuzz_decode_all);
    assert!(n >= 5, "expected the envelope seeds, found {n}");
}

#[test]
fn validator_list_fuzz_seeds_round_trip() {
    let n = run_seeds(
        "validator_list",
        undchain_types::validator_list::fuzz_validator_list,
    );
    assert!(n >= 5, "expected the validator_list seeds, found {n}");
}
