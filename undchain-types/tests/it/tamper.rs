//! Tampering: any flipped byte, another chain id, another kind tag.

use crate::support;

use undchain_types::wire::{DEFAULT_MAX_FRAME, WireError};
use undchain_types::{ChainId, EnvelopeError, MessageKind, SignedEnvelope};

fn decode_and_verify(bytes: &[u8]) -> Result<(), String> {
    let env = SignedEnvelope::from_bytes(bytes, DEFAULT_MAX_FRAME).map_err(|e| e.to_string())?;
    env.verify().map_err(|e| e.to_string())
}

#[test]
fn flipping_any_byte_makes_decode_or_verify_fail() {
    for signed in [
        support::receipt_envelope(3),
        support::request_envelope(),
        support::receipt_envelope(200),
    ] {
        let bytes = signed.to_bytes();
        decode_and_verify(&bytes).unwrap();
        for i in 0..bytes.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut t = bytes.clone();
                t[i] ^= mask;
                assert!(
                    decode_and_verify(&t).is_err(),
                    "flip {mask:#04x} at byte {i} of {} went unnoticed",
                    bytes.len()
                );
            }
        }
    }
}

#[test]
fn signature_for_another_chain_id_fails() {
    let signed = support::receipt_envelope(1);
    let mut env = signed.envelope().clone();
    env.chain_id = ChainId(8);
    // Re-encode with the other chain id and keep the original signature.
    let mut bytes = undchain_types::wire::encode(&env);
    bytes.extend_from_slice(&signed.signature().0);
    let moved = SignedEnvelope::from_bytes(&bytes, DEFAULT_MAX_FRAME).unwrap();
    assert!(matches!(moved.verify(), Err(EnvelopeError::Signature(_))));
    // And the genuine one is refused by a node of another chain.
    assert!(matches!(
        signed.verify_for(ChainId(8)),
        Err(EnvelopeError::WrongChain { .. })
    ));
}

#[test]
fn signature_for_another_kind_tag_fails() {
    let signed = support::receipt_envelope(1);
    let mut env = signed.envelope().clone();
    env.kind = MessageKind::CompletionAck;
    let mut bytes = undchain_types::wire::encode(&env);
    bytes.extend_from_slice(&signed.signature().0);
    assert_eq!(
        SignedEnvelope::from_bytes(&bytes, DEFAULT_MAX_FRAME),
        Err(WireError::KindMismatch {
            declared: MessageKind::CompletionAck,
            body: MessageKind::Receipt
        })
    );
    // Even signed over the wrong tag by the right key, it never decodes.
    let resigned = env.sign(&support::key(1));
    assert!(SignedEnvelope::from_bytes(&resigned.to_bytes(), DEFAULT_MAX_FRAME).is_err());
}
