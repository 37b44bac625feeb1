//! Insert throughput of a job file beside raw blake3 hashing of the same
//! bytes (the entries' canonical encodings under the job-entry context),
//! the crate's leaf hash alone (hand-written encoder + blake3) and the
//! serde-based `JobEntry::leaf_hash`; inserts followed by the root (the
//! trie hash over every path the inserts made stale), and inserts that
//! read the root after every 1,000 (a file kept current delta by delta);
//! and 1M inserts, where the index no longer fits in cache.
//!
//! `cargo bench -p undchain-jobfile --bench insert`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use undchain_jobfile::testkit::bench_entry;
use undchain_jobfile::{JobFile, leaf_hash};
use undchain_types::{HashContext, hash, wire};

const N: u64 = 100_000;
const N_BIG: u64 = 1_000_000;

/// A file of `es`, inserted one by one.
fn fill(es: Vec<undchain_types::JobEntry>) -> JobFile {
    let mut f = JobFile::new();
    for e in es {
        let _ = f.insert(e);
    }
    f
}

fn bench(c: &mut Criterion) {
    let entries: Vec<_> = (0..N).map(bench_entry).collect();
    let encoded: Vec<Vec<u8>> = entries.iter().map(wire::encode_bare).collect();
    let mut g = c.benchmark_group("jobfile_insert");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.bench_function("insert_100k_into_empty", |b| {
        b.iter_batched(|| entries.clone(), fill, BatchSize::LargeInput)
    });
    g.bench_function("insert_100k_then_root", |b| {
        b.iter_batched(
            || entries.clone(),
            |es| fill(es).root(),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("insert_100k_root_every_1000", |b| {
        b.iter_batched(
            || entries.clone(),
            |es| {
                let mut f = JobFile::new();
                let mut x = 0u8;
                for (i, e) in es.into_iter().enumerate() {
                    let _ = f.insert(e);
                    if i % 1000 == 999 {
                        x ^= f.root().0[0];
                    }
                }
                x
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("blake3_same_bytes_100k", |b| {
        b.iter(|| {
            let mut x = 0u8;
            for bytes in &encoded {
                x ^= hash(HashContext::JobEntry, bytes).0[0];
            }
            x
        })
    });
    g.bench_function("leaf_hash_100k", |b| {
        b.iter(|| {
            let mut x = 0u8;
            for e in &entries {
                x ^= leaf_hash(e).0[0];
            }
            x
        })
    });
    g.bench_function("serde_encode_and_blake3_100k", |b| {
        b.iter(|| {
            let mut x = 0u8;
            for e in &entries {
                x ^= e.leaf_hash().0[0];
            }
            x
        })
    });
    g.finish();

    let big: Vec<_> = (0..N_BIG).map(bench_entry).collect();
    let mut g = c.benchmark_group("jobfile_insert_1m");
    g.throughput(Throughput::Elements(N_BIG));
    g.sample_size(10);
    g.bench_function("insert_1m_into_empty", |b| {
        b.iter_batched(|| big.clone(), fill, BatchSize::LargeInput)
    });
    g.bench_function("insert_1m_then_root", |b| {
        b.iter_batched(|| big.clone(), |es| fill(es).root(), BatchSize::LargeInput)
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
