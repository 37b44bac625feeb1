//! The committed seed corpus of `fuzz/fuzz_targets/envelope.rs` runs as an
//! ordinary test (CI has no nightly).

use std::path::Path;

#[test]
fn envelope_fuzz_seeds_decode_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/envelope");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("seed dir exists") {
        let path = entry.expect("readable entry").path();
        let data = std::fs::read(&path).expect("readable seed");
        undchain_types::wire::fuzz_decode_all(&data);
        n += 1;
    }
    assert!(n >= 5, "expected seeds in {}", dir.display());
}
