//! Identities: ed25519 keys and signatures (ed25519-dalek 3).
//!
//! Every identity in UndChain is an ed25519 key (DESIGN.md "Identities").
//! Signatures always cover a 32-byte domain-separated digest
//! ([`crate::hash::HashContext`]), never raw bytes, so a signature made for one
//! purpose cannot be replayed for another. Verification is `verify_strict`.
//!
//! A [`PublicKey`] is the 32-byte encoding, checked when built or decoded to
//! be canonical (y < p) and not one of the small-order (weak) points; it
//! stays 32 bytes, so job files and messages full of keys decode without
//! curve arithmetic. The rest of the check (a curve point, in the
//! prime-order subgroup: no small-order component, so one secret holds one
//! identity and not eight) costs a decompression and a scalar
//! multiplication, and runs where a key first becomes someone:
//! [`PublicKey::prepare`] before any signature is checked, the TLS
//! handshake, and [`PublicKey::from_hex`] for keys read from files. A key
//! that fails it never verifies anything. Hot paths that verify many
//! signatures by one key prepare it once ([`PreparedKey`], [`KeyCache`]); a
//! [`crate::SignedEnvelope`] keeps its sender's prepared key.

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
    /// The key is a point of the prime-order subgroup plus a small-order
    /// (torsion) point: the secret of the prime-order part can sign for all
    /// eight such keys, so one secret would hold eight identities.
    #[error(
        "public key has a small-order (torsion) component: one secret would control eight \
         identities"
    )]
    TorsionComponent,
    /// `verify_strict` refused the signature (wrong key or message,
    /// non-canonical s >= L, small-order or non-canonical R).
    #[error("signature does not verify (strict)")]
    BadSignature,
    /// A hex string was not 64 hex digits.
    #[error("expected 64 hex digits for a public key")]
    BadHex,
}

/// The encodings of the eight small-order points with a canonical y, plus
/// the two x = 0 points with the (non-canonical) sign bit set. With y < p
/// these are exactly the weak keys.
const WEAK_KEYS: [[u8; 32]; 10] = {
    let mut t = [[0u8; 32]; 10];
    // y = 1 (identity), sign bit clear and set.
    t[0][0] = 1;
    t[1][0] = 1;
    t[1][31] = 0x80;
    // y = -1 (order 2), sign bit clear and set.
    let mut i = 0;
    while i < 32 {
        t[2][i] = 0xff;
        t[3][i] = 0xff;
        i += 1;
    }
    t[2][0] = 0xec;
    t[2][31] = 0x7f;
    t[3][0] = 0xec;
    // y = 0 (order 4), both signs.
    t[5][31] = 0x80;
    // Order 8.
    t[6] = [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ];
    t[7] = t[6];
    t[7][31] = 0xfa;
    t[8] = [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ];
    t[9] = t[8];
    t[9][31] = 0x85;
    t
};

/// An ed25519 public key: the identity of a client, partner, validator or
/// chain owner. Canonical and not weak by construction.
#[derive(Clone, Copy)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Builds a key from its 32-byte encoding, refusing non-canonical
    /// encodings (y >= p) and weak (small-order) keys. Cheap: no curve
    /// arithmetic.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        if !is_canonical_y(bytes) {
            return Err(CryptoError::NonCanonicalKey);
        }
        if WEAK_KEYS.contains(bytes) {
            return Err(CryptoError::WeakKey);
        }
        Ok(PublicKey(*bytes))
    }

    /// Parses 64 hex digits, as keys are written in files (the validator
    /// list, key files): a file is where such a key is first met, so the
    /// full check runs here, the curve point and the prime-order subgroup
    /// included ([`PublicKey::prepare`]).
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        let bytes = crate::hash::from_hex32(s).ok_or(CryptoError::BadHex)?;
        let key = Self::from_bytes(&bytes)?;
        key.verifying_key()?;
        Ok(key)
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The 32-byte encoding, borrowed.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex of the encoding.
    pub fn to_hex(&self) -> String {
        crate::hash::to_hex(&self.0)
    }

    /// The ed25519-dalek key: decompresses the point and checks it lies in
    /// the prime-order subgroup. Fails with [`CryptoError::NotOnCurve`] if
    /// the bytes are not a point and [`CryptoError::TorsionComponent`] if
    /// the point has a small-order component. Every signature check and
    /// every first parse of a key from a TLS handshake or a file passes
    /// here, so such a key never verifies anything and never becomes an
    /// identity.
    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, CryptoError> {
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .map_err(|_| CryptoError::NotOnCurve)?;
        // Unreachable after the blocklist check, kept as a second line of
        // defence: verify_strict refuses weak keys too.
        if vk.is_weak() {
            return Err(CryptoError::WeakKey);
        }
        if !is_torsion_free(&vk.to_edwards()) {
            return Err(CryptoError::TorsionComponent);
        }
        Ok(vk)
    }

    /// Decompresses and checks once ([`PublicKey::verifying_key`]), for
    /// verifying many signatures by this key.
    pub fn prepare(&self) -> Result<PreparedKey, CryptoError> {
        self.verifying_key().map(PreparedKey)
    }

    /// Verifies `sig` over a digest with `verify_strict`.
    pub fn verify_digest(&self, digest: &Hash32, sig: &Signature) -> Result<(), CryptoError> {
        self.prepare()?.verify_digest(digest, sig)
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

/// A bounded cache of decompressed keys (first in, first out), for hosts
/// that verify many envelopes from the same senders.
#[derive(Debug, Clone)]
pub struct KeyCache {
    map: std::collections::BTreeMap<PublicKey, PreparedKey>,
    order: std::collections::VecDeque<PublicKey>,
    cap: usize,
}

impl KeyCache {
    /// A cache holding at most `cap` keys (at least 1).
    pub fn new(cap: usize) -> Self {
        KeyCache {
            map: Default::default(),
            order: Default::default(),
            cap: cap.max(1),
        }
    }

    /// How many prepared keys the cache holds.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache holds no key.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The prepared form of `key`, decompressing and remembering it on a miss.
    pub fn prepare(&mut self, key: &PublicKey) -> Result<PreparedKey, CryptoError> {
        if let Some(p) = self.map.get(key) {
            return Ok(*p);
        }
        let p = key.prepare()?;
        if self.map.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        self.map.insert(*key, p);
        self.order.push_back(*key);
        Ok(p)
    }
}

/// A public key with its curve point decompressed, for verifying many
/// signatures by one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreparedKey(ed25519_dalek::VerifyingKey);

impl PreparedKey {
    /// The public key this prepared key was made from.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.to_bytes())
    }

    /// The ed25519-dalek key.
    pub fn dalek(&self) -> &ed25519_dalek::VerifyingKey {
        &self.0
    }

    /// Verifies `sig` over a digest with `verify_strict`.
    pub fn verify_digest(&self, digest: &Hash32, sig: &Signature) -> Result<(), CryptoError> {
        let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
        self.0
            .verify_strict(digest.as_bytes(), &sig)
            .map_err(|_| CryptoError::BadSignature)
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
        self.0.hash(state)
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

/// Whether `p` lies in the prime-order subgroup, in variable time (a public
/// key is public): `[L-1]P = -P` holds exactly when `[L]P` is the identity.
/// For `P = Q + T` with `Q` of order L and `T` of order dividing 8,
/// `[L-1]P = -Q + [4]T` (L = 5 mod 8), which is `-Q - T` only when
/// `[5]T = 0`, that is `T = 0`. One variable-base multiplication, about 40%
/// cheaper than `EdwardsPoint::is_torsion_free` (a constant-time `[L]P`);
/// a test checks the two agree.
pub(crate) fn is_torsion_free(p: &curve25519_dalek::EdwardsPoint) -> bool {
    use curve25519_dalek::{EdwardsPoint, Scalar};
    EdwardsPoint::vartime_double_scalar_mul_basepoint(&-Scalar::ONE, p, &Scalar::ZERO) == -p
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
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// The public identity, prepared for verification.
    pub fn prepared(&self) -> PreparedKey {
        PreparedKey(self.0.verifying_key())
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
    fn weak_key_table_matches_the_curve() {
        // Every blocklisted encoding decompresses to a small-order point.
        for bytes in WEAK_KEYS {
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&bytes).unwrap();
            assert!(vk.is_weak(), "{}", crate::hash::to_hex(&bytes));
        }
    }

    #[test]
    fn a_key_off_the_curve_is_held_but_never_verifies() {
        let off = (2u8..=255)
            .map(|y| {
                let mut b = [0u8; 32];
                b[0] = y;
                b
            })
            .find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
            .unwrap();
        let pk = PublicKey::from_bytes(&off).unwrap();
        assert_eq!(pk.verifying_key(), Err(CryptoError::NotOnCurve));
        let sig = key(1).sign(HashContext::Receipt, b"x");
        assert_eq!(
            pk.verify(HashContext::Receipt, b"x", &sig),
            Err(CryptoError::NotOnCurve)
        );
    }

    #[test]
    fn the_fast_torsion_check_agrees_with_dalek() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        for i in 0..64u8 {
            let q = key(i).prepared().dalek().to_edwards();
            assert!(is_torsion_free(&q) && q.is_torsion_free());
            for t in &EIGHT_TORSION[1..] {
                let p = q + t;
                assert!(!is_torsion_free(&p) && !p.is_torsion_free());
            }
        }
    }

    #[test]
    fn prepared_key_verifies_like_the_public_key() {
        let k = key(4);
        let d = hash(HashContext::Vote, b"v");
        let sig = k.sign_digest(&d);
        let p = k.public().prepare().unwrap();
        assert_eq!(p, k.prepared());
        assert_eq!(p.public(), k.public());
        p.verify_digest(&d, &sig).unwrap();
        assert!(
            p.verify_digest(&hash(HashContext::Vote, b"w"), &sig)
                .is_err()
        );
    }

    #[test]
    fn hex_roundtrip() {
        let pk = key(3).public();
        assert_eq!(PublicKey::from_hex(&pk.to_hex()), Ok(pk));
        assert_eq!(PublicKey::from_hex("00"), Err(CryptoError::BadHex));
    }
}
