//! Length-prefixed frames on a byte stream (docs/PROTOCOL.md "Transport,
//! framing, retries and scream cast"; DESIGN.md "Validator list and
//! connections").
//!
//! A frame is a 4-byte big-endian length `L` followed by `L` bytes; the bytes
//! are one signed envelope's wire form. `L` must be `1..=max_frame`. The
//! length is checked against the limit *before* anything is allocated for the
//! body, and the body buffer then grows only as bytes actually arrive, so a
//! peer that announces a large frame and sends nothing costs nothing.
//!
//! What happens to the stream after an error:
//! - [`FrameError::TooLarge`] and [`FrameError::Empty`] come from the header:
//!   the stream's framing is lost (the next header cannot be found), so the
//!   decoder stays failed and returns the same error on every later call. The
//!   transport closes that stream's connection with a reason.
//! - [`FrameError::Truncated`] comes from [`FrameDecoder::finish`] when the
//!   stream ended in the middle of a frame: the partial frame is dropped.
//! - [`FrameError::Envelope`] comes from [`decode_envelope`]: the frame was
//!   delimited correctly but its content is corrupt. The framing is intact, so
//!   the frame is dropped and the connection survives.

use undchain_types::{SignedEnvelope, WireError};

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// The largest body allocation made up front; beyond it the body buffer grows
/// with the bytes that arrive.
const INITIAL_BODY_CAP: usize = 16 * 1024;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds the frame limit; refused before allocating.
    /// The stream's framing is lost.
    #[error(
        "frame of {len} bytes exceeds the limit of {max} (refused before allocating; stream framing lost)"
    )]
    TooLarge {
        /// Length announced by the prefix.
        len: u64,
        /// The largest frame this decoder accepts, bytes.
        max: usize,
    },
    /// A length prefix of zero: no envelope is empty. The stream's framing is
    /// treated as lost.
    #[error("zero-length frame (no envelope is empty; stream framing lost)")]
    Empty,
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame: {got} of {expected} bytes (header included) arrived")]
    Truncated {
        /// Bytes the frame needed, header included (4 when even the header
        /// was incomplete).
        expected: u64,
        /// Bytes of the frame that arrived before the stream ended.
        got: u64,
    },
    /// The frame was delimited correctly but does not hold a valid envelope.
    /// The connection survives; the frame is dropped.
    #[error("frame does not hold a valid envelope: {0}")]
    Envelope(#[from] WireError),
}

impl FrameError {
    /// Whether the stream can go on after this error (the framing is intact).
    pub fn stream_survives(&self) -> bool {
        matches!(self, FrameError::Envelope(_))
    }
}

/// Prefixes `payload` with its length. Refuses payloads that are empty or
/// larger than `max_frame`, as the receiver would.
pub fn encode_frame(payload: &[u8], max_frame: usize) -> Result<Vec<u8>, FrameError> {
    check_len(payload.len() as u64, max_frame)?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header(payload.len()));
    out.extend_from_slice(payload);
    Ok(out)
}

/// The 4-byte header of a frame of `len` bytes (callers check the limit).
pub fn header(len: usize) -> [u8; HEADER_LEN] {
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

/// A signed envelope's wire form as one frame.
pub fn frame_envelope(env: &SignedEnvelope, max_frame: usize) -> Result<Vec<u8>, FrameError> {
    encode_frame(&env.to_bytes(), max_frame)
}

/// Decodes a frame's payload as a signed envelope (not verified: call
/// [`SignedEnvelope::verify`]). Corrupt content gives
/// [`FrameError::Envelope`]; the stream survives it.
pub fn decode_envelope(payload: &[u8], max_frame: usize) -> Result<SignedEnvelope, FrameError> {
    Ok(SignedEnvelope::from_bytes(payload, max_frame)?)
}

fn check_len(len: u64, max_frame: usize) -> Result<(), FrameError> {
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max_frame as u64 {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame,
        });
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum State {
    /// Reading the length prefix.
    Header { have: [u8; HEADER_LEN], n: usize },
    /// Reading a body of `len` bytes into `buf`.
    Body { len: usize, buf: Vec<u8> },
    /// Framing lost: every later read reports this error.
    Failed(FrameError),
}

/// Incremental frame decoder for one stream: feed it whatever the socket
/// returned, in any split, and take out whole frames.
///
/// ```
/// use undchain_net::frame::{FrameDecoder, encode_frame};
/// let bytes = [encode_frame(b"one", 64).unwrap(), encode_frame(b"two", 64).unwrap()].concat();
/// let mut dec = FrameDecoder::new(64);
/// let mut frames = Vec::new();
/// for chunk in bytes.chunks(3) {
///     let mut input = chunk;
///     while let Some(f) = dec.decode(&mut input).unwrap() {
///         frames.push(f);
///     }
/// }
/// assert_eq!(frames, vec![b"one".to_vec(), b"two".to_vec()]);
/// assert!(dec.finish().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame: usize,
    state: State,
    frames: u64,
}

impl FrameDecoder {
    /// A decoder for frames of at most `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            max_frame,
            state: State::Header {
                have: [0; HEADER_LEN],
                n: 0,
            },
            frames: 0,
        }
    }

    /// The largest frame this decoder accepts, bytes.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Whole frames decoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes held for the frame in progress (never more than the limit).
    pub fn buffered(&self) -> usize {
        match &self.state {
            State::Header { n, .. } => *n,
            State::Body { buf, .. } => HEADER_LEN + buf.len(),
            State::Failed(_) => 0,
        }
    }

    /// Consumes bytes from the front of `input` up to the end of the current
    /// frame. Returns the frame's payload once complete; `Ok(None)` when
    /// `input` ran out first (call again with more). Call repeatedly while
    /// `input` is not empty: one call returns at most one frame.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            match &mut self.state {
                State::Failed(e) => return Err(e.clone()),
                State::Header { have, n } => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let take = (HEADER_LEN - *n).min(input.len());
                    have[*n..*n + take].copy_from_slice(&input[..take]);
                    *n += take;
                    *input = &input[take..];
                    if *n < HEADER_LEN {
                        return Ok(None);
                    }
                    let len = u64::from(u32::from_be_bytes(*have));
                    if let Err(e) = check_len(len, self.max_frame) {
                        self.state = State::Failed(e.clone());
                        return Err(e);
                    }
                    // check_len bounded len by max_frame, a usize.
                    let len = len as usize;
                    self.state = State::Body {
                        len,
                        buf: Vec::with_capacity(len.min(INITIAL_BODY_CAP)),
                    };
                }
                State::Body { len, buf } => {
                    let take = (*len - buf.len()).min(input.len());
                    buf.extend_from_slice(&input[..take]);
                    *input = &input[take..];
                    if buf.len() < *len {
                        return Ok(None);
                    }
                    let frame = core::mem::take(buf);
                    self.state = State::Header {
                        have: [0; HEADER_LEN],
                        n: 0,
                    };
                    self.frames += 1;
                    return Ok(Some(frame));
                }
            }
        }
    }

    /// Decodes every whole frame in `input`, stopping at the first error.
    /// Frames decoded before an error are returned with it.
    pub fn decode_all(&mut self, mut input: &[u8]) -> (Vec<Vec<u8>>, Option<FrameError>) {
        let mut out = Vec::new();
        while !input.is_empty() {
            match self.decode(&mut input) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    /// Call at the end of the stream: an error if it ended inside a frame (or
    /// the framing had already failed).
    pub fn finish(&self) -> Result<(), FrameError> {
        match &self.state {
            State::Header { n: 0, .. } => Ok(()),
            State::Header { n, .. } => Err(FrameError::Truncated {
                expected: HEADER_LEN as u64,
                got: *n as u64,
            }),
            State::Body { len, buf } => Err(FrameError::Truncated {
                expected: (HEADER_LEN + *len) as u64,
                got: (HEADER_LEN + buf.len()) as u64,
            }),
            State::Failed(e) => Err(e.clone()),
        }
    }
}

/// The fuzz target's body (`fuzz/fuzz_targets/frame_decoder.rs`), also run
/// over the seed corpus as an ordinary test: the first byte picks a chunk
/// size and a frame limit, the rest is fed to a [`FrameDecoder`] in chunks;
/// every frame is decoded as an envelope. Checks that nothing panics, that no
/// frame exceeds the limit and that the decoder never buffers more than one
/// frame.
pub fn fuzz_frame_decoder(data: &[u8]) {
    let Some((&knob, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(knob & 0x0f) + 1;
    let max_frame = 64usize << (knob >> 4);
    let mut dec = FrameDecoder::new(max_frame);
    for piece in rest.chunks(chunk) {
        let mut input = piece;
        loop {
            match dec.decode(&mut input) {
                Ok(Some(frame)) => {
                    assert!(!frame.is_empty() && frame.len() <= max_frame);
                    let _ = decode_envelope(&frame, max_frame);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(!e.stream_survives());
                    // A failed decoder keeps failing and consumes nothing.
                    let before = input.len();
                    assert_eq!(dec.decode(&mut input), Err(e));
                    assert_eq!(input.len(), before);
                    return;
                }
            }
            assert!(dec.buffered() <= HEADER_LEN + max_frame);
        }
    }
    let _ = dec.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_split_at_every_byte_boundary() {
        let payloads: [&[u8]; 3] = [b"a", b"hello frames", &[7u8; 300]];
        let stream: Vec<u8> = payloads
            .iter()
            .flat_map(|p| encode_frame(p, 512).unwrap())
            .collect();
        for cut in 0..stream.len() {
            let mut dec = FrameDecoder::new(512);
            let (mut got, err) = dec.decode_all(&stream[..cut]);
            assert_eq!(err, None);
            let (more, err) = dec.decode_all(&stream[cut..]);
            assert_eq!(err, None);
            got.extend(more);
            assert_eq!(got.len(), 3, "cut at {cut}");
            for (g, p) in got.iter().zip(payloads) {
                assert_eq!(g.as_slice(), p);
            }
            assert_eq!(dec.finish(), Ok(()));
        }
    }

    #[test]
    fn frame_too_large_is_refused_from_the_header_alone() {
        let mut dec = FrameDecoder::new(1024);
        // Header announcing 4 GiB - 1 with no body at all.
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            dec.decode(&mut input),
            Err(FrameError::TooLarge {
                len: u32::MAX as u64,
                max: 1024
            })
        );
        assert_eq!(dec.buffered(), 0);
        // Framing is lost: the decoder keeps refusing.
        let mut more: &[u8] = &[0, 0, 0, 1, 9];
        assert!(matches!(
            dec.decode(&mut more),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(!FrameError::Empty.stream_survives());
    }

    #[test]
    fn frame_limit_boundary_and_empty() {
        assert!(encode_frame(&[1; 16], 16).is_ok());
        assert_eq!(
            encode_frame(&[1; 17], 16),
            Err(FrameError::TooLarge { len: 17, max: 16 })
        );
        assert_eq!(encode_frame(&[], 16), Err(FrameError::Empty));
        let mut dec = FrameDecoder::new(16);
        let mut input: &[u8] = &[0, 0, 0, 0];
        assert_eq!(dec.decode(&mut input), Err(FrameError::Empty));
    }

    #[test]
    fn frame_truncated_stream_is_reported_at_finish() {
        let bytes = encode_frame(b"0123456789", 64).unwrap();
        let mut dec = FrameDecoder::new(64);
        let (frames, err) = dec.decode_all(&bytes[..9]);
        assert!(frames.is_empty() && err.is_none());
        assert_eq!(
            dec.finish(),
            Err(FrameError::Truncated {
                expected: 14,
                got: 9
            })
        );
        let mut dec = FrameDecoder::new(64);
        dec.decode_all(&bytes[..2]);
        assert_eq!(
            dec.finish(),
            Err(FrameError::Truncated {
                expected: 4,
                got: 2
            })
        );
    }

    #[test]
    fn frame_body_allocation_grows_with_arrivals() {
        let mut dec = FrameDecoder::new(1 << 20);
        let mut input: &[u8] = &[0, 0x10, 0, 0, 1, 2, 3];
        assert_eq!(dec.decode(&mut input), Ok(None));
        assert_eq!(dec.buffered(), HEADER_LEN + 3);
        match &dec.state {
            State::Body { buf, len } => {
                assert_eq!(*len, 1 << 20);
                assert!(buf.capacity() <= INITIAL_BODY_CAP);
            }
            other => panic!("unexpected state {other:?}"),
        }
    }
}
