//! Truncated, garbage and oversized inputs get typed errors; never a panic.

use crate::support;

use proptest::prelude::*;
use undchain_types::wire::{self, DEFAULT_MAX_FRAME, Invalid, WIRE_VERSION, WireError};
use undchain_types::{Message, SignedEnvelope};

#[test]
fn truncation_at_every_length_is_a_typed_error() {
    let bytes = support::receipt_envelope(9).to_bytes();
    for len in 0..bytes.len() {
        let err = SignedEnvelope::from_bytes(&bytes[..len], DEFAULT_MAX_FRAME).unwrap_err();
        assert!(
            matches!(
                err,
                WireError::Empty
                    | WireError::Truncated
                    | WireError::TrailingBytes { .. }
                    | WireError::BadTag
                    | WireError::BadVarint
                    | WireError::Invalid(_)
                    | WireError::KindMismatch { .. }
                    | WireError::NonCanonical
            ),
            "len {len}: {err:?}"
        );
    }
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let bytes = support::receipt_envelope(9).to_bytes();
    assert_eq!(
        SignedEnvelope::from_bytes(&bytes, bytes.len() - 1),
        Err(WireError::FrameTooLarge {
            len: bytes.len(),
            max: bytes.len() - 1
        })
    );
}

#[test]
fn wrong_version_is_named() {
    let mut bytes = support::receipt_envelope(9).to_bytes();
    bytes[0] = 2;
    assert_eq!(
        SignedEnvelope::from_bytes(&bytes, DEFAULT_MAX_FRAME),
        Err(WireError::UnsupportedVersion { got: 2 })
    );
}

#[test]
fn unknown_kind_tag_is_named() {
    let signed = support::receipt_envelope(9);
    let env = signed.envelope();
    // sender (32) + chain id varint + kind varint: rebuild with tag 999.
    let mut head = wire::encode_bare(&env.sender);
    head.extend(wire::encode_bare(&env.chain_id));
    let mut bytes = vec![WIRE_VERSION];
    bytes.extend(&head);
    bytes.extend(wire::encode_bare(&999u16));
    bytes.extend(wire::encode_bare(&env.seq));
    bytes.extend(wire::encode_bare(&env.sent_at));
    bytes.extend(wire::encode_bare(&env.body));
    bytes.extend_from_slice(&signed.signature().0);
    assert_eq!(
        SignedEnvelope::from_bytes(&bytes, DEFAULT_MAX_FRAME),
        Err(WireError::Invalid(Invalid::UnknownKind(999)))
    );
}

#[test]
fn list_length_prefix_over_its_cap_is_refused_before_allocating() {
    // A RequestAck's validator list is capped at 10; announce 11 with the
    // bytes following it.
    let mut bytes = vec![WIRE_VERSION];
    bytes.extend(wire::encode_bare(&1u32)); // Message variant index 1 = RequestAck
    bytes.extend([0u8; 32]); // job id
    bytes.extend([5u8]); // block
    bytes.extend([0u8]); // period
    bytes.extend([11u8]); // active: 11 entries
    bytes.extend(vec![0u8; 11 * 40]);
    assert_eq!(
        wire::decode::<Message>(&bytes, DEFAULT_MAX_FRAME),
        Err(WireError::Invalid(Invalid::ListTooLong {
            len: 11,
            cap: 10
        }))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        undchain_types::wire::fuzz_decode_all(&bytes);
        let mut versioned = vec![WIRE_VERSION];
        versioned.extend(&bytes);
        undchain_types::wire::fuzz_decode_all(&versioned);
    }
}
