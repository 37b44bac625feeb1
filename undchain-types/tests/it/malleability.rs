//! Known ed25519 malleability and weak-key vectors are refused.
//!
//! Small-order points from "Taming the many EdDSAs" (Chalkias, Garillot,
//! Nikolaenko, 2020), Table 6; s >= L; non-canonical R.

use crate::support;

use ed25519_dalek::Verifier as _;
use undchain_types::hash::from_hex32;
use undchain_types::wire::{DEFAULT_MAX_FRAME, Invalid, WireError};
use undchain_types::{CryptoError, HashContext, PublicKey, Signature, SignedEnvelope, hash};

const SMALL_ORDER: [&str; 8] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
];

/// The group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let s = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    out
}

#[test]
fn weak_keys_are_refused() {
    for hex in SMALL_ORDER {
        let bytes = from_hex32(hex).unwrap();
        let err = PublicKey::from_bytes(&bytes).unwrap_err();
        assert!(
            matches!(err, CryptoError::WeakKey | CryptoError::NonCanonicalKey),
            "{hex}: {err:?}"
        );
    }
}

#[test]
fn the_weak_key_universal_forgery_is_refused() {
    // Key = identity, R = identity, s = 0 "signs" every message under
    // cofactorless non-strict verification. Show the vector is real...
    let identity = from_hex32(SMALL_ORDER[0]).unwrap();
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&identity);
    let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap();
    let dalek_sig = ed25519_dalek::Signature::from_bytes(&sig);
    assert!(dalek_key.verify(b"anything at all", &dalek_sig).is_ok());
    // ...and that we refuse it: the key cannot even be held.
    assert_eq!(PublicKey::from_bytes(&identity), Err(CryptoError::WeakKey));
    // An envelope whose sender is that key does not decode.
    let good = support::request_envelope();
    let mut bytes = good.to_bytes();
    bytes[1..33].copy_from_slice(&identity); // sender is the first field
    assert_eq!(
        SignedEnvelope::from_bytes(&bytes, DEFAULT_MAX_FRAME),
        Err(WireError::Invalid(Invalid::Key(CryptoError::WeakKey)))
    );
}

#[test]
fn s_at_or_above_l_is_refused() {
    let key = support::key(5);
    let digest = hash(HashContext::Receipt, b"terms");
    let sig = key.sign_digest(&digest);
    key.public().verify_digest(&digest, &sig).unwrap();
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig.0[32..]);
    let s_plus_l = add_le(&s, &L);
    let mut bad = sig.0;
    bad[32..].copy_from_slice(&s_plus_l);
    assert_eq!(
        key.public().verify_digest(&digest, &Signature(bad)),
        Err(CryptoError::BadSignature)
    );
    // s = L exactly.
    let mut bad = sig.0;
    bad[32..].copy_from_slice(&L);
    assert!(
        key.public()
            .verify_digest(&digest, &Signature(bad))
            .is_err()
    );
}

#[test]
fn small_order_r_is_refused() {
    let key = support::key(6);
    let digest = hash(HashContext::Vote, b"vote");
    let sig = key.sign_digest(&digest);
    for hex in SMALL_ORDER {
        let mut bad = sig.0;
        bad[..32].copy_from_slice(&from_hex32(hex).unwrap());
        assert!(
            key.public()
                .verify_digest(&digest, &Signature(bad))
                .is_err(),
            "R = {hex}"
        );
    }
}

#[test]
fn non_canonical_r_is_refused() {
    let key = support::key(7);
    let digest = hash(HashContext::Vote, b"vote");
    let sig = key.sign_digest(&digest);
    // y = p + 1 (0x7fff..ffee): a non-canonical encoding of y = 1.
    let mut y = [0xffu8; 32];
    y[0] = 0xee;
    y[31] = 0x7f;
    let mut bad = sig.0;
    bad[..32].copy_from_slice(&y);
    assert!(
        key.public()
            .verify_digest(&digest, &Signature(bad))
            .is_err()
    );
    // The canonical R with its sign bit flipped is another point: refused.
    let mut bad = sig.0;
    bad[31] ^= 0x80;
    assert!(
        key.public()
            .verify_digest(&digest, &Signature(bad))
            .is_err()
    );
}
