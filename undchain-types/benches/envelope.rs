//! Sign and verify 1,000 receipt envelopes, beside raw ed25519-dalek on the
//! same bytes in the same run.
//!
//! `cargo bench -p undchain-types --bench envelope`
//!
//! - `sign`: ours = `Envelope::sign` (encode + blake3 digest + sign);
//!   raw = `SigningKey::sign` over the same encoded envelope bytes.
//! - `verify`: ours = `SignedEnvelope::verify_with` on decoded envelopes,
//!   the sender's key in a warm `KeyCache` (verify_strict over the 32-byte
//!   digest); raw = `VerifyingKey::verify_strict` over the encoded envelope
//!   bytes with the key decompressed beforehand.
//! - `open`: ours = `SignedEnvelope::from_bytes` + `verify_with` (bounded
//!   decode, canonical check, key checks, digest, verify_strict), and
//!   `from_bytes` + `verify` with no cache (one decompression each);
//!   raw = `VerifyingKey::from_bytes` + `verify_strict` on the same bytes.
//! - `key_check`: the full check of a key first met (`PublicKey::prepare`:
//!   decompression, weak-key and prime-order-subgroup checks) on 1,000
//!   distinct keys; raw = `VerifyingKey::from_bytes` alone (decompression,
//!   no subgroup check), and with dalek's constant-time `is_torsion_free`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::Signer as _;
use undchain_types::msg::{Receipt, ReceiptTerms};
use undchain_types::wire::DEFAULT_MAX_FRAME;
use undchain_types::{
    BlockTime, ChainId, Envelope, JobId, KeyCache, SignedEnvelope, SigningKey, TokenAmount,
    hash::Hash32,
};

const N: usize = 1000;

fn receipts() -> (SigningKey, Vec<Envelope>) {
    let client = SigningKey::from_seed([1; 32]);
    let partner = SigningKey::from_seed([2; 32]);
    let envs = (0..N as u64)
        .map(|i| {
            let terms = ReceiptTerms {
                chain_id: ChainId(1),
                job: JobId(Hash32(*blake3::hash(&i.to_le_bytes()).as_bytes())),
                commit_block: undchain_types::BlockNumber(0),
                client: client.public(),
                partner: partner.public(),
                units: 1000 + i,
                amount: TokenAmount(5000 + i),
                finished_at: BlockTime(1_700_000_000_000_000 + i),
            };
            let r = Receipt::sign(terms, &client, &partner);
            Envelope::new(
                client.public(),
                ChainId(1),
                i,
                BlockTime(1_700_000_000_000_000 + i),
                r,
            )
        })
        .collect();
    (client, envs)
}

fn bench(c: &mut Criterion) {
    let (key, envs) = receipts();
    let signed: Vec<SignedEnvelope> = envs.iter().map(|e| e.clone().sign(&key)).collect();
    let bytes: Vec<Vec<u8>> = signed.iter().map(|s| s.to_bytes()).collect();
    // Raw: the signed part of each wire frame (version + envelope), signed
    // directly by ed25519-dalek.
    let raw_msgs: Vec<&[u8]> = bytes.iter().map(|b| &b[..b.len() - 64]).collect();
    let dalek_key = key.dalek().clone();
    let dalek_pub = dalek_key.verifying_key();
    let raw_sigs: Vec<ed25519_dalek::Signature> =
        raw_msgs.iter().map(|m| dalek_key.sign(m)).collect();
    let pub_bytes = dalek_pub.to_bytes();

    let mut g = c.benchmark_group("envelope_sign_1000_receipts");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("undchain", |b| {
        b.iter(|| {
            for e in &envs {
                black_box(e.clone().sign(&key));
            }
        })
    });
    g.bench_function("raw_dalek", |b| {
        b.iter(|| {
            for m in &raw_msgs {
                black_box(dalek_key.sign(m));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("envelope_verify_1000_receipts");
    g.throughput(Throughput::Elements(N as u64));
    let decoded: Vec<SignedEnvelope> = bytes
        .iter()
        .map(|w| SignedEnvelope::from_bytes(w, DEFAULT_MAX_FRAME).unwrap())
        .collect();
    let mut cache = KeyCache::new(64);
    g.bench_function("undchain", |b| {
        b.iter(|| {
            for s in &decoded {
                s.verify_with(&mut cache).unwrap();
            }
        })
    });
    g.bench_function("raw_verify_strict", |b| {
        b.iter(|| {
            for (m, s) in raw_msgs.iter().zip(&raw_sigs) {
                dalek_pub.verify_strict(m, s).unwrap();
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("envelope_open_1000_receipts");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("undchain", |b| {
        b.iter(|| {
            for w in &bytes {
                let s = SignedEnvelope::from_bytes(w, DEFAULT_MAX_FRAME).unwrap();
                s.verify_with(&mut cache).unwrap();
                black_box(s);
            }
        })
    });
    g.bench_function("undchain_no_cache", |b| {
        b.iter(|| {
            for w in &bytes {
                let s = SignedEnvelope::from_bytes(w, DEFAULT_MAX_FRAME).unwrap();
                s.verify().unwrap();
                black_box(s);
            }
        })
    });
    g.bench_function("raw_verify_strict", |b| {
        b.iter(|| {
            for (m, s) in raw_msgs.iter().zip(&raw_sigs) {
                let k = ed25519_dalek::VerifyingKey::from_bytes(&pub_bytes).unwrap();
                k.verify_strict(m, s).unwrap();
            }
        })
    });
    g.finish();

    let keys: Vec<undchain_types::PublicKey> = (0..N as u32)
        .map(|i| {
            let mut seed = [3u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            SigningKey::from_seed(seed).public()
        })
        .collect();
    let mut g = c.benchmark_group("key_check_1000_keys");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("undchain_prepare", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(k.prepare().unwrap());
            }
        })
    });
    g.bench_function("raw_decompress_only", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(ed25519_dalek::VerifyingKey::from_bytes(k.as_bytes()).unwrap());
            }
        })
    });
    g.bench_function("raw_decompress_is_torsion_free", |b| {
        b.iter(|| {
            for k in &keys {
                let vk = ed25519_dalek::VerifyingKey::from_bytes(k.as_bytes()).unwrap();
                assert!(vk.to_edwards().is_torsion_free());
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
