//! The frame decoder fuzz target's seed corpus, run as an ordinary test
//! (fuzz/seeds/frame_decoder; the target is fuzz/fuzz_targets/frame_decoder.rs).

use std::path::PathBuf;

#[test]
fn frame_decoder_fuzz_seeds_run_as_a_test() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/frame_decoder");
    let mut n = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let data = std::fs::read(&path).unwrap();
        undchain_net::frame::fuzz_frame_decoder(&data);
        n += 1;
    }
    assert!(n >= 4, "expected the seed corpus, found {n} files");
}
