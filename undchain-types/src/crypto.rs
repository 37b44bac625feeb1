//! Identities: ed25519 keys and signatures (ed25519-dalek 3).
//!
//! Every identity in UndChain is an ed25519 key (DESIGN.md "Identities").
//! Signatures always cover a 32-byte domain-separated digest
//! ([`crate::hash::HashContext`]), never raw bytes, so a signature made for one
//! purpose cannot be replayed for another. Verification is `verify_strict`.
//! A [`PublicKey`] can only hold a canonical, on-curve, non-weak key: the
//! checks happen once, when the key is built or decoded.

use core::fmt;

use ed25519_dalek::Signer as _;
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::{Hash32, HashContext, hash};
use crate::wire::{Invalid, note_invalid};

/// Why a key or signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The 32 bytes are not a point on the curve.
    #[error("public key is not a valid curve point")]
    NotOnCurve,
    /// The point's encoding is not canonical (y not reduced mod p).
    #[error("public key encoding is not canonical")]
    NonCanonicalKey,
    /// The key has small order: it would accept signatures on any message.
    #[error("public key is weak (small order)")]
    WeakKey,
    /// `verify_strict` refused the signature (wrong key or message,
    /// non-canonical s >= L, small-order or non-canonical R).
    #[error("signature does not verify (strict)")]
    BadSignature,
    /// A hex string was not 64 hex digits.
    #[error("expected 64 hex digits for a public key")]
    BadHex,
}

/// A verified-valid ed25519 public key: the identity of a client, partner,
/// validator or chain owner.
#[derive(Clone, Copy)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Builds a key from its 32-byte encoding, refusing non-canonical
    /// encodings, points off the curve and weak (small-order) keys.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        if !is_canonical_y(bytes) {
            return Err(CryptoError::NonCanonicalKey);
        }
        // One decompression; `from_bytes` keeps the given (now known
        // canonical in y) encoding instead of re-compressing.
        let vk =
            ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| CryptoError::NotOnCurve)?;
        // With y < p the only other non-canonical encodings are x = 0 with
        // the sign bit set; x = 0 means y = +-1, both small order, refused
        // here.
        if vk.is_weak() {
            return Err(CryptoError::WeakKey);
        }
        Ok(PublicKey(vk))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        let bytes = crate::hash::from_hex32(s).ok_or(CryptoError::BadHex)?;
        Self::from_bytes(&bytes)
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The 32-byte encoding, borrowed.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Lower-case hex of the encoding.
    pub fn to_hex(&self) -> String {
        crate::hash::to_hex(self.as_bytes())
    }

    /// The underlying ed25519-dalek key (for TLS raw public keys and the like).
    pub fn verifying_key(&self) -> &ed25519_dalek::VerifyingKey {
        &self.0
    }

    /// Verifies `sig` over a digest with `verify_strict`.
    pub fn verify_digest(&self, digest: &Hash32, sig: &Signature) -> Result<(), CryptoError> {
        let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
        self.0
            .verify_strict(digest.as_bytes(), &sig)
            .map_err(|_| CryptoError::BadSignature)
    }

    /// Verifies `sig` over `hash(ctx, message)`.
    pub fn verify(
        &self,
        ctx: HashContext,
        message: &[u8],
        sig: &Signature,
    ) -> Result<(), CryptoError> {
        self.verify_digest(&hash(ctx, message), sig)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for PublicKey {}
impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for PublicKey {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}
impl core::hash::Hash for PublicKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pk:{}", &self.to_hex()[..12])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_bytes().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = <[u8; 32]>::deserialize(d)?;
        PublicKey::from_bytes(&bytes).map_err(|e| {
            note_invalid(Invalid::Key(e));
            de::Error::custom("invalid public key")
        })
    }
}

/// Whether the 255-bit y coordinate of an encoded point is below
/// p = 2^255 - 19 (a canonical field element), without any curve arithmetic.
fn is_canonical_y(bytes: &[u8; 32]) -> bool {
    // y >= p only if y is one of 2^255-19 ..= 2^255-1: the top byte (without
    // the sign bit) is 0x7f, bytes 1..=30 are 0xff and byte 0 is >= 0xed.
    !(bytes[31] & 0x7f == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff) && bytes[0] >= 0xed)
}

/// An ed25519 signing key. Built from a 32-byte seed: pure crates never draw
/// randomness themselves, the caller passes it in.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// The key whose secret is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The secret seed (keep it secret: this is what key files store).
    pub fn to_seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public identity of this key.
    pub fn public(&self) -> PublicKey {
        // A key derived from a scalar times the base point is never weak.
        PublicKey(self.0.verifying_key())
    }

    /// The underlying ed25519-dalek key (for TLS raw public keys and the like).
    pub fn dalek(&self) -> &ed25519_dalek::SigningKey {
        &self.0
    }

    /// Signs a 32-byte digest.
    pub fn sign_digest(&self, digest: &Hash32) -> Signature {
        Signature(self.0.sign(digest.as_bytes()).to_bytes())
    }

    /// Signs `hash(ctx, message)`.
    pub fn sign(&self, ctx: HashContext, message: &[u8]) -> Signature {
        self.sign_digest(&hash(ctx, message))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({:?})", self.public())
    }
}

/// An ed25519 signature (64 bytes: R then s). Its validity is only known
/// once verified against a key and digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// The 64 bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sig:{}", crate::hash::to_hex(&self.0[..8]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(64)?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut out = [0u8; 64];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(out))
            }
        }
        d.deserialize_tuple(64, V)
    }
}

#[cfg(feature = "proptest")]
mod arbitrary {
    use super::*;
    use proptest::prelude::*;

    impl Arbitrary for SigningKey {
        type Parameters = ();
        type Strategy = BoxedStrategy<Self>;
        fn arbitrary_with(_: ()) -> Self::Strategy {
            any::<[u8; 32]>().prop_map(SigningKey::from_seed).boxed()
        }
    }

    impl Arbitrary for PublicKey {
        type Parameters = ();
        type Strategy = BoxedStrategy<Self>;
        fn arbitrary_with(_: ()) -> Self::Strategy {
            any::<SigningKey>().prop_map(|k| k.public()).boxed()
        }
    }

    impl Arbitrary for Signature {
        type Parameters = ();
        type Strategy = BoxedStrategy<Self>;
        fn arbitrary_with(_: ()) -> Self::Strategy {
            (any::<[u8; 32]>(), any::<[u8; 32]>())
                .prop_map(|(a, b)| {
                    let mut s = [0u8; 64];
                    s[..32].copy_from_slice(&a);
                    s[32..].copy_from_slice(&b);
                    Signature(s)
                })
                .boxed()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_seed([i; 32])
    }

    #[test]
    fn sign_verify_and_context_separation() {
        let k = key(1);
        let sig = k.sign(HashContext::Receipt, b"terms");
        k.public()
            .verify(HashContext::Receipt, b"terms", &sig)
            .unwrap();
        assert_eq!(
            k.public().verify(HashContext::Vote, b"terms", &sig),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(
            key(2).public().verify(HashContext::Receipt, b"terms", &sig),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn identity_point_is_weak() {
        let mut id = [0u8; 32];
        id[0] = 1;
        assert_eq!(PublicKey::from_bytes(&id), Err(CryptoError::WeakKey));
    }

    #[test]
    fn non_canonical_key_encoding_is_refused() {
        // y = p + 1 encodes the same point as y = 1 (the identity) but is not
        // reduced: 2^255 - 19 + 1 = 0x7fff..ffee.
        let mut y = [0xffu8; 32];
        y[0] = 0xee;
        y[31] = 0x7f;
        assert_eq!(PublicKey::from_bytes(&y), Err(CryptoError::NonCanonicalKey));
    }

    #[test]
    fn hex_roundtrip() {
        let pk = key(3).public();
        assert_eq!(PublicKey::from_hex(&pk.to_hex()), Ok(pk));
        assert_eq!(PublicKey::from_hex("00"), Err(CryptoError::BadHex));
    }
}
