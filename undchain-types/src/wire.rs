//! Wire encoding: postcard behind a leading format-version byte.
//!
//! DESIGN.md "Identities, messages, wire": every length is bounded before
//! any allocation, decoding never panics and returns a typed error. The
//! input's total size is checked against the frame limit first; every list,
//! byte string and text inside is a [`crate::bounded`] type whose cap is
//! checked against the length prefix before anything is reserved; keys,
//! scores and kind tags are validated as they are read. Decoding also
//! insists on the canonical encoding (re-encoding must give the same bytes),
//! so one value has exactly one byte string, which is what signatures cover.

use core::cell::Cell;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crypto::CryptoError;

/// The wire format version this crate writes and reads.
pub const WIRE_VERSION: u8 = 1;

/// Default frame limit (DESIGN.md: 1 MiB).
pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024;

/// A value that decoded structurally but is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// A list's length prefix exceeds its cap.
    #[error("list of {len} items exceeds its cap of {cap}")]
    ListTooLong {
        /// The length announced.
        len: usize,
        /// The most items the list may hold.
        cap: usize,
    },
    /// A byte string exceeds its cap.
    #[error("byte string of {len} bytes exceeds its cap of {cap}")]
    BytesTooLong {
        /// The length announced.
        len: usize,
        /// The most bytes the string may hold.
        cap: usize,
    },
    /// A text exceeds its cap.
    #[error("text of {len} bytes exceeds its cap of {cap}")]
    TextTooLong {
        /// The length announced.
        len: usize,
        /// The most bytes the text may hold.
        cap: usize,
    },
    /// A public key was refused.
    #[error("public key refused: {0}")]
    Key(CryptoError),
    /// A perception score above 1000.
    #[error("perception score {0} is above 1000")]
    ScoreOutOfRange(u16),
    /// A message kind tag that this version does not know.
    #[error("unknown message kind tag {0}")]
    UnknownKind(u16),
}

thread_local! {
    // postcard drops the text of custom deserialisation errors; the
    // validating `Deserialize` impls of this crate leave the precise reason
    // here and `decode` picks it up. Cleared at the start of every decode.
    static LAST_INVALID: Cell<Option<Invalid>> = const { Cell::new(None) };
}

/// Records why a validating `Deserialize` impl refused a value.
pub(crate) fn note_invalid(why: Invalid) {
    LAST_INVALID.with(|c| c.set(Some(why)));
}

fn take_invalid() -> Option<Invalid> {
    LAST_INVALID.with(|c| c.take())
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// No bytes at all.
    #[error("empty input")]
    Empty,
    /// Input larger than the frame limit; refused before parsing.
    #[error("input of {len} bytes exceeds the frame limit of {max}")]
    FrameTooLarge {
        /// How many bytes were offered.
        len: usize,
        /// The frame limit the caller decodes under, bytes.
        max: usize,
    },
    /// The leading version byte is not one this code reads.
    #[error("wire format version {got} is not supported (this build reads {WIRE_VERSION})")]
    UnsupportedVersion {
        /// The version byte found.
        got: u8,
    },
    /// The input ended in the middle of a value.
    #[error("input truncated: ended in the middle of a value")]
    Truncated,
    /// Bytes were left after the value.
    #[error("{count} trailing bytes after the value")]
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
    /// A variable-length integer was malformed or overflowed its type.
    #[error("malformed variable-length integer")]
    BadVarint,
    /// An enum tag (message body, option, bool) was out of range.
    #[error("unknown enum variant, option or bool tag")]
    BadTag,
    /// Text that is not UTF-8.
    #[error("text is not valid UTF-8")]
    BadUtf8,
    /// A value that decoded but is not allowed.
    #[error("invalid value: {0}")]
    Invalid(Invalid),
    /// The value has a shorter, canonical encoding; only that one is accepted.
    #[error("non-canonical encoding (re-encoding differs)")]
    NonCanonical,
    /// The envelope's kind tag does not match its body.
    #[error("kind tag says {declared:?} but the body is {body:?}")]
    KindMismatch {
        /// The tag in the envelope.
        declared: crate::msg::MessageKind,
        /// The body's kind.
        body: crate::msg::MessageKind,
    },
    /// The encoder failed (only for values that break a cap when built by
    /// hand).
    #[error("encoding failed: {0}")]
    Encode(String),
    /// Any other postcard error.
    #[error("malformed input: {0}")]
    Malformed(String),
}

fn map_postcard(e: postcard::Error) -> WireError {
    use postcard::Error as P;
    if let Some(why) = take_invalid() {
        return WireError::Invalid(why);
    }
    match e {
        P::DeserializeUnexpectedEnd => WireError::Truncated,
        P::DeserializeBadVarint => WireError::BadVarint,
        P::DeserializeBadBool | P::DeserializeBadOption | P::DeserializeBadEnum => {
            WireError::BadTag
        }
        P::DeserializeBadUtf8 | P::DeserializeBadChar => WireError::BadUtf8,
        other => WireError::Malformed(other.to_string()),
    }
}

/// Encodes `value` as version byte + postcard.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let out = vec![WIRE_VERSION];
    // Serialising into a Vec cannot fail for our types (no maps with
    // non-string keys, no unsupported serde features).
    match postcard::to_extend(value, out) {
        Ok(v) => v,
        Err(e) => unreachable_encode(e),
    }
}

#[cold]
fn unreachable_encode(e: postcard::Error) -> Vec<u8> {
    // Kept as an explicit branch rather than a panic: an encoder failure is a
    // programming error in a Serialize impl, surfaced as an empty frame that
    // every decoder refuses.
    debug_assert!(false, "postcard encode failed: {e}");
    Vec::new()
}

/// Encodes `value` as bare postcard (no version byte), for hashing and for
/// nesting inside a versioned frame.
pub fn encode_bare<T: Serialize>(value: &T) -> Vec<u8> {
    match postcard::to_allocvec(value) {
        Ok(v) => v,
        Err(e) => unreachable_encode(e),
    }
}

/// Decodes a whole versioned frame of at most `max_frame` bytes into `T`.
pub fn decode<T: DeserializeOwned + Serialize>(
    bytes: &[u8],
    max_frame: usize,
) -> Result<T, WireError> {
    let body = check_frame(bytes, max_frame)?;
    let value: T = decode_bare(body)?;
    Ok(value)
}

/// Checks size and version; returns the bytes after the version byte.
pub fn check_frame(bytes: &[u8], max_frame: usize) -> Result<&[u8], WireError> {
    if bytes.len() > max_frame {
        return Err(WireError::FrameTooLarge {
            len: bytes.len(),
            max: max_frame,
        });
    }
    let (&version, rest) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::UnsupportedVersion { got: version });
    }
    Ok(rest)
}

/// Decodes bare postcard (no version byte) that must be consumed exactly
/// and be canonical.
pub fn decode_bare<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, WireError> {
    let (value, rest) = take_bare(bytes)?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes { count: rest.len() });
    }
    Ok(value)
}

/// Decodes one canonical bare postcard value from the front of `bytes`;
/// returns it and the bytes after it.
pub fn take_bare<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<(T, &[u8]), WireError> {
    take_invalid();
    let (value, rest): (T, &[u8]) = postcard::take_from_bytes(bytes).map_err(map_postcard)?;
    let used = &bytes[..bytes.len() - rest.len()];
    if postcard::to_allocvec(&value).map_err(|e| WireError::Encode(e.to_string()))? != used {
        return Err(WireError::NonCanonical);
    }
    Ok((value, rest))
}

/// The fuzz entry point (shared by `fuzz/fuzz_targets/envelope.rs` and the
/// seed-corpus test): decodes `data` as a signed envelope, as an envelope, as
/// a message, and as every message body type. Never panics on any input; it
/// panics only if a decoded value fails to re-encode to the bytes it came
/// from, which would be a bug (canonical encoding is what signatures cover).
pub fn fuzz_decode_all(data: &[u8]) {
    if let Ok(env) = crate::envelope::SignedEnvelope::from_bytes(data, DEFAULT_MAX_FRAME) {
        assert_eq!(env.to_bytes(), data, "signed envelope re-encodes");
        let _ = env.verify();
    }
    if let Ok(env) = decode::<crate::envelope::Envelope>(data, DEFAULT_MAX_FRAME) {
        assert_eq!(encode(&env), data, "envelope re-encodes");
    }
    if let Ok(m) = decode::<crate::msg::Message>(data, DEFAULT_MAX_FRAME) {
        assert_eq!(encode(&m), data, "message re-encodes");
    }
    if data.len() <= DEFAULT_MAX_FRAME {
        crate::msg::decode_each_body(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounded::BoundedVec;

    #[test]
    fn version_and_limits() {
        let v: BoundedVec<u8, 4> = BoundedVec::try_from_vec(vec![1, 2, 3]).unwrap();
        let bytes = encode(&v);
        assert_eq!(decode::<BoundedVec<u8, 4>>(&bytes, 64), Ok(v));
        assert_eq!(
            decode::<BoundedVec<u8, 4>>(&bytes, 2),
            Err(WireError::FrameTooLarge { len: 5, max: 2 })
        );
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert_eq!(
            decode::<BoundedVec<u8, 4>>(&wrong, 64),
            Err(WireError::UnsupportedVersion { got: 9 })
        );
        assert_eq!(decode::<BoundedVec<u8, 4>>(&[], 64), Err(WireError::Empty));
    }

    #[test]
    fn huge_length_prefix_is_refused_before_allocating() {
        // A length prefix of u32::MAX with nothing behind it: postcard sees
        // that fewer bytes remain than the prefix claims and gives no size
        // hint, so nothing is reserved; the items run out -> Truncated.
        let bytes = [WIRE_VERSION, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(
            decode::<BoundedVec<u64, 16>>(&bytes, 64),
            Err(WireError::Truncated)
        );
        // A prefix above the cap with the bytes present: refused on the
        // prefix alone, before reserving.
        let mut bytes = vec![WIRE_VERSION, 17];
        bytes.extend([0u8; 17]);
        assert_eq!(
            decode::<BoundedVec<u8, 16>>(&bytes, 64),
            Err(WireError::Invalid(Invalid::ListTooLong {
                len: 17,
                cap: 16
            }))
        );
        // Larger than the frame limit: refused before parsing at all.
        let big = vec![0u8; 65];
        assert_eq!(
            decode::<BoundedVec<u8, 16>>(&big, 64),
            Err(WireError::FrameTooLarge { len: 65, max: 64 })
        );
    }

    #[test]
    fn non_canonical_varint_is_refused() {
        // 1 encoded in two bytes (0x81 0x00) instead of 0x01.
        let bytes = [WIRE_VERSION, 0x81, 0x00];
        assert_eq!(decode::<u32>(&bytes, 64), Err(WireError::NonCanonical));
        assert_eq!(decode::<u32>(&[WIRE_VERSION, 1], 64), Ok(1));
    }

    #[test]
    fn truncated_and_trailing() {
        let bytes = encode(&(7u64, 9u64));
        assert_eq!(
            decode::<(u64, u64)>(&bytes[..2], 64),
            Err(WireError::Truncated)
        );
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            decode::<(u64, u64)>(&long, 64),
            Err(WireError::TrailingBytes { count: 1 })
        );
    }
}
