//! Insert throughput of a job file beside raw blake3 hashing of the same
//! bytes (the entries' canonical encodings under the job-entry context).
//!
//! `cargo bench -p undchain-jobfile --bench insert`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use undchain_jobfile::JobFile;
use undchain_jobfile::testkit::bench_entry;
use undchain_types::{HashContext, hash, wire};

const N: u64 = 100_000;

fn bench(c: &mut Criterion) {
    let entries: Vec<_> = (0..N).map(bench_entry).collect();
    let encoded: Vec<Vec<u8>> = entries.iter().map(wire::encode_bare).collect();
    let mut g = c.benchmark_group("jobfile_insert");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.bench_function("insert_100k_into_empty", |b| {
        b.iter_batched(
            || entries.clone(),
            |es| {
                let mut f = JobFile::new();
                for e in es {
                    let _ = f.insert(e);
                }
                f
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
    g.bench_function("encode_and_blake3_100k", |b| {
        b.iter(|| {
            let mut x = 0u8;
            for e in &entries {
                x ^= e.leaf_hash().0[0];
            }
            x
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
