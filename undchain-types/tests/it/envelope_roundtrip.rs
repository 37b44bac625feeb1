//! Every message kind survives encode/decode inside a signed envelope, and
//! the signature verifies after the round trip.

use crate::support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use undchain_types::msg::arbitrary_of_kind;
use undchain_types::wire::DEFAULT_MAX_FRAME;
use undchain_types::{BlockTime, ChainId, Envelope, MessageKind, SignedEnvelope, SigningKey};

#[test]
fn every_message_kind_roundtrips_in_a_signed_envelope() {
    for &kind in MessageKind::ALL {
        let mut runner = TestRunner::new(Config {
            cases: 24,
            failure_persistence: None,
            ..Config::default()
        });
        let strategy = (
            arbitrary_of_kind(kind),
            any::<[u8; 32]>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
        );
        runner
            .run(&strategy, |(body, seed, chain, seq, at)| {
                let key = SigningKey::from_seed(seed);
                let env = Envelope::new(key.public(), ChainId(chain), seq, BlockTime(at), body);
                prop_assert_eq!(env.kind, kind);
                let signed = env.sign(&key);
                let bytes = signed.to_bytes();
                let back = SignedEnvelope::from_bytes(&bytes, DEFAULT_MAX_FRAME)
                    .map_err(|e| TestCaseError::fail(format!("{kind}: {e}")))?;
                prop_assert_eq!(&back, &signed);
                prop_assert!(back.verify().is_ok());
                prop_assert!(back.verify_for(ChainId(chain)).is_ok());
                prop_assert_eq!(back.to_bytes(), bytes);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("kind {kind}: {e}"));
    }
}

fn any_message() -> impl Strategy<Value = undchain_types::Message> {
    (0..MessageKind::ALL.len()).prop_flat_map(|i| arbitrary_of_kind(MessageKind::ALL[i]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any envelope (any kind, any header fields) roundtrips.
    #[test]
    fn arbitrary_envelopes_roundtrip(
        body in any_message(),
        seed in any::<[u8; 32]>(),
        chain in any::<u32>(),
        seq in any::<u64>(),
        at in any::<u64>(),
    ) {
        let key = SigningKey::from_seed(seed);
        let signed = Envelope::new(key.public(), ChainId(chain), seq, BlockTime(at), body).sign(&key);
        let back = SignedEnvelope::from_bytes(&signed.to_bytes(), DEFAULT_MAX_FRAME).unwrap();
        prop_assert_eq!(&back, &signed);
        prop_assert!(back.verify().is_ok());
    }
}

#[test]
fn signature_by_another_key_fails() {
    let env = support::request_envelope().into_envelope();
    // Signed by a key that is not the sender.
    let forged = env.sign(&support::key(99));
    let back = SignedEnvelope::from_bytes(&forged.to_bytes(), DEFAULT_MAX_FRAME).unwrap();
    assert!(back.verify().is_err());
}

#[test]
fn decoded_envelopes_verify_with_and_without_a_key_cache() {
    let signed = support::receipt_envelope(4);
    let bytes = signed.to_bytes();
    let mut cache = undchain_types::KeyCache::new(2);
    for _ in 0..3 {
        let back = SignedEnvelope::from_bytes(&bytes, DEFAULT_MAX_FRAME).unwrap();
        back.verify_with(&mut cache).unwrap();
        back.verify().unwrap();
    }
    assert_eq!(cache.len(), 1);
    // A cached key never vouches for another sender's envelope.
    let other = support::request_envelope();
    let back = SignedEnvelope::from_bytes(&other.to_bytes(), DEFAULT_MAX_FRAME).unwrap();
    back.verify_with(&mut cache).unwrap();
    assert_eq!(cache.len(), 2);
    let forged = other.envelope().clone().sign(&support::key(1));
    let back = SignedEnvelope::from_bytes(&forged.to_bytes(), DEFAULT_MAX_FRAME).unwrap();
    assert!(back.verify_with(&mut cache).is_err());
    assert!(back.verify().is_err());
    // Capacity bounds the cache.
    let third = support::receipt_envelope(5).envelope().clone();
    let k9 = support::key(9);
    let mut e = third;
    e.sender = k9.public();
    let s = e.sign(&k9);
    let back = SignedEnvelope::from_bytes(&s.to_bytes(), DEFAULT_MAX_FRAME).unwrap();
    back.verify_with(&mut cache).unwrap();
    assert_eq!(cache.len(), 2);
}
