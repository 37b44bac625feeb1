//! Frames carrying real envelopes: the limit is checked before allocation,
//! truncated and corrupted frames get typed errors, and the stream survives
//! or closes as docs/PROTOCOL.md says.

use crate::support::*;
use proptest::prelude::*;
use undchain_net::frame::{FrameDecoder, FrameError, HEADER_LEN, decode_envelope, frame_envelope};
use undchain_types::WireError;

#[test]
fn frame_round_trips_signed_envelopes_across_partial_reads() {
    let envs: Vec<_> = (1..=3).map(hello).collect();
    let stream: Vec<u8> = envs
        .iter()
        .flat_map(|e| frame_envelope(e, 4096).unwrap())
        .collect();
    let mut dec = FrameDecoder::new(4096);
    let mut got = Vec::new();
    for chunk in stream.chunks(5) {
        let (frames, err) = dec.decode_all(chunk);
        assert_eq!(err, None);
        for f in frames {
            let e = decode_envelope(&f, 4096).unwrap();
            e.verify().unwrap();
            got.push(e);
        }
    }
    assert_eq!(got, envs);
    assert_eq!(dec.frames(), 3);
}

#[test]
fn frame_corrupted_envelope_is_a_typed_error_and_the_stream_survives() {
    let good = frame_envelope(&hello(1), 4096).unwrap();
    let mut bad = good.clone();
    bad[HEADER_LEN] = 9; // wire version byte
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 70] ^= 0x40; // inside the body: decodes or not, never verifies
    let stream = [bad, flipped, good.clone()].concat();
    let mut dec = FrameDecoder::new(4096);
    let (frames, err) = dec.decode_all(&stream);
    assert_eq!(err, None, "framing is intact");
    assert_eq!(frames.len(), 3);
    let e0 = decode_envelope(&frames[0], 4096).unwrap_err();
    assert_eq!(
        e0,
        FrameError::Envelope(WireError::UnsupportedVersion { got: 9 })
    );
    assert!(e0.stream_survives());
    match decode_envelope(&frames[1], 4096) {
        Err(e) => assert!(e.stream_survives()),
        Ok(env) => assert!(env.verify().is_err(), "a flipped bit never verifies"),
    }
    assert_eq!(decode_envelope(&frames[2], 4096).unwrap(), hello(1));
}

#[test]
fn frame_truncated_envelope_inside_a_frame_is_typed() {
    let env = hello(1).to_bytes();
    let short = &env[..env.len() - 10];
    let framed = undchain_net::encode_frame(short, 4096).unwrap();
    let mut dec = FrameDecoder::new(4096);
    let (frames, _) = dec.decode_all(&framed);
    assert_eq!(
        decode_envelope(&frames[0], 4096),
        Err(FrameError::Envelope(WireError::Truncated))
    );
}

#[test]
fn frame_over_the_limit_is_refused_before_any_body_arrives() {
    let big = frame_envelope(&hello(1), 4096).unwrap();
    let len = big.len() - HEADER_LEN;
    let mut dec = FrameDecoder::new(len - 1);
    let mut input = &big[..HEADER_LEN];
    assert_eq!(
        dec.decode(&mut input),
        Err(FrameError::TooLarge {
            len: len as u64,
            max: len - 1
        })
    );
    assert_eq!(dec.buffered(), 0, "nothing was allocated for the body");
    assert!(!dec.finish().unwrap_err().stream_survives());
}

proptest! {
    #[test]
    fn frame_decoding_does_not_depend_on_how_reads_split(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..200), 1..6),
        cuts in prop::collection::vec(1usize..64, 1..20),
    ) {
        let stream: Vec<u8> = payloads.iter().flat_map(|p| undchain_net::encode_frame(p, 256).unwrap()).collect();
        let mut dec = FrameDecoder::new(256);
        let mut got = Vec::new();
        let mut rest = &stream[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].min(rest.len());
            let (frames, err) = dec.decode_all(&rest[..n]);
            prop_assert_eq!(err, None);
            got.extend(frames);
            rest = &rest[n..];
            i += 1;
        }
        prop_assert_eq!(got, payloads);
        prop_assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn frame_decoder_never_panics_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..600)) {
        undchain_net::frame::fuzz_frame_decoder(&data);
    }
}
