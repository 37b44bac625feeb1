//! The twelve ed25519 edge cases of "Taming the many EdDSAs" (Chalkias,
//! Garillot, Nikolaenko, SSR 2020; the `ed25519-speccheck` vectors, cases
//! 0-11) and the eight torsion variants of a key.
//!
//! Our verdict is stricter than `verify_strict` alone: besides canonical
//! encodings, s < L, a non-small-order R and the cofactorless equation,
//! the key must lie in the prime-order subgroup. So all twelve cases are
//! refused, case 3 (mixed-order A and R, valid under every equation) only
//! by that subgroup check, which is what refuses the torsion variants too.

use curve25519_dalek::EdwardsPoint;
use curve25519_dalek::Scalar;
use curve25519_dalek::constants::EIGHT_TORSION;
use sha2::{Digest, Sha512};
use undchain_types::hash::{Hash32, from_hex32};
use undchain_types::{CryptoError, PublicKey, Signature, SigningKey};

/// (message, public key, signature), hex, in the paper's order.
const CASES: [(&str, &str, &str); 12] = [
    (
        "8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a0000000000000000000000000000000000000000000000000000000000000000",
    ),
    (
        "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
    ),
    (
        "aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e",
    ),
    (
        "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009",
    ),
    (
        "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed5125ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09",
    ),
    (
        "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405",
    ),
    (
        "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
        "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
        "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514",
    ),
    (
        "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
        "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
        "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa19427e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22",
    ),
    (
        "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f",
    ),
    (
        "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908",
    ),
    (
        "e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
    ),
    (
        "39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
    ),
];

fn sig(hex: &str) -> Signature {
    let mut s = [0u8; 64];
    s[..32].copy_from_slice(&from_hex32(&hex[..64]).unwrap());
    s[32..].copy_from_slice(&from_hex32(&hex[64..]).unwrap());
    Signature(s)
}

/// Our verdict on one case: the whole path a received signature takes.
fn verdict(msg: &str, key: &str, signature: &str) -> Result<(), CryptoError> {
    let key = PublicKey::from_bytes(&from_hex32(key).unwrap())?;
    // The messages are 32 bytes: exactly the digests we sign.
    key.verify_digest(&Hash32(from_hex32(msg).unwrap()), &sig(signature))
}

/// What we say, what `verify_strict` alone says (the paper's "Dalek
/// strict" row: only case 3 passes it).
const VERDICTS: [(Result<(), CryptoError>, bool); 12] = [
    (Err(CryptoError::WeakKey), false), // 0: small A, small R, S = 0
    (Err(CryptoError::WeakKey), false), // 1: small A, mixed R
    (Err(CryptoError::TorsionComponent), false), // 2: mixed A, small R
    (Err(CryptoError::TorsionComponent), true), // 3: mixed A and R, all equations hold
    (Err(CryptoError::TorsionComponent), false), // 4: mixed, cofactored only
    (Err(CryptoError::TorsionComponent), false), // 5: mixed, cofactored only (other A)
    (Err(CryptoError::BadSignature), false), // 6: S > L, cofactored
    (Err(CryptoError::BadSignature), false), // 7: S >> L, cofactorless
    (Err(CryptoError::TorsionComponent), false), // 8: non-canonical R, cofactored
    (Err(CryptoError::TorsionComponent), false), // 9: non-canonical R, cofactorless
    (Err(CryptoError::WeakKey), false), // 10: non-canonical A, cofactored
    (Err(CryptoError::WeakKey), false), // 11: non-canonical A, cofactorless
];

#[test]
fn speccheck_vectors_give_the_strict_verdicts() {
    for (i, ((m, k, s), (ours, strict))) in CASES.iter().zip(VERDICTS).enumerate() {
        assert_eq!(verdict(m, k, s), ours, "case {i}");
        let dalek =
            ed25519_dalek::VerifyingKey::from_bytes(&from_hex32(k).unwrap()).is_ok_and(|vk| {
                let sig = ed25519_dalek::Signature::from_bytes(&sig(s).0);
                vk.verify_strict(&from_hex32(m).unwrap(), &sig).is_ok()
            });
        assert_eq!(dalek, strict, "case {i}: verify_strict alone");
    }
}

/// The secret scalar of an ed25519 seed (RFC 8032 section 5.1.5).
fn secret_scalar(seed: [u8; 32]) -> Scalar {
    let h: [u8; 64] = Sha512::digest(seed).into();
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    Scalar::from_bytes_mod_order(a)
}

/// Signs `msg` with secret `a` as if the key were `key_bytes`, grinding the
/// nonce until `[k]T` vanishes for the torsion part `T` (what an attacker
/// holding one secret does to sign for a torsion variant of its key).
fn sign_for_variant(a: Scalar, key_bytes: &[u8; 32], msg: &[u8]) -> [u8; 64] {
    for nonce in 0u64.. {
        let r = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(nonce.to_le_bytes())
                .chain_update(msg)
                .finalize()
                .into(),
        );
        let big_r = EdwardsPoint::mul_base(&r).compress();
        let k = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(big_r.as_bytes())
                .chain_update(key_bytes)
                .chain_update(msg)
                .finalize()
                .into(),
        );
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(big_r.as_bytes());
        sig[32..].copy_from_slice((r + k * a).as_bytes());
        let vk = ed25519_dalek::VerifyingKey::from_bytes(key_bytes).unwrap();
        if vk
            .verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig))
            .is_ok()
        {
            return sig;
        }
    }
    unreachable!()
}

#[test]
fn each_of_the_eight_torsion_variants_of_a_key_is_refused() {
    let seed = [42u8; 32];
    let honest = SigningKey::from_seed(seed);
    let a = secret_scalar(seed);
    let point = EdwardsPoint::mul_base(&a);
    assert_eq!(point.compress().to_bytes(), honest.public().to_bytes());
    let msg = [7u8; 32];
    for (i, t) in EIGHT_TORSION.iter().enumerate() {
        let variant = (point + t).compress().to_bytes();
        // The lever is real: the one secret signs for the variant, and
        // ed25519-dalek's verify_strict accepts it.
        let forged = sign_for_variant(a, &variant, &msg);
        if i == 0 {
            // T = identity: the variant is the honest key itself.
            assert_eq!(variant, honest.public().to_bytes());
            let key = PublicKey::from_bytes(&variant).unwrap();
            assert_eq!(key.prepare().map(|p| p.public()), Ok(key));
            continue;
        }
        // The variant passes the byte checks a decoder makes (canonical,
        // not one of the small-order encodings)...
        let key = PublicKey::from_bytes(&variant).unwrap();
        // ...and is refused wherever it would become an identity: before a
        // signature is checked, read from a file, or in the handshake.
        assert_eq!(key.prepare(), Err(CryptoError::TorsionComponent), "T{i}");
        assert_eq!(
            key.verify_digest(&Hash32(msg), &Signature(forged)),
            Err(CryptoError::TorsionComponent),
            "T{i}"
        );
        assert_eq!(
            PublicKey::from_hex(&key.to_hex()),
            Err(CryptoError::TorsionComponent),
            "T{i}"
        );
        // The small-order point alone is refused from its bytes.
        assert!(
            PublicKey::from_bytes(&t.compress().to_bytes()).is_err(),
            "T{i}"
        );
    }
}
