//! Feeds arbitrary bytes, in chunks, to the envelope frame decoder and
//! decodes every frame as an envelope (undchain-net `frame`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    undchain_net::frame::fuzz_frame_decoder(data);
});
