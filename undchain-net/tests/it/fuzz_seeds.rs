//! The frame decoder fuzz target's seed corpus, run as an ordinary test
//! (fuzz/seeds/frame_decoder; the target is fuzz/fuzz_targets/frame_decoder.rs).

use undchain_types::testkit::for_each_seed;

#[test]
fn frame_decoder_fuzz_seeds_run_as_a_test() {
    let n = for_each_seed("frame_decoder", undchain_net::frame::fuzz_frame_decoder);
    assert!(n >= 4, "expected the seed corpus, found {n} files");
}
