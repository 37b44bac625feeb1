//! Insert throughput by CPU time: `N` entries inserted one by one into an
//! empty file, alone and reading the root after every `EVERY` inserts (a
//! file kept current delta by delta), each the median of 7 runs of the
//! bench thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so that other
//! work on a shared machine counts only through the caches. The criterion
//! bench `insert` measures the same by wall time.
//!
//! `cargo run --release -p undchain-jobfile --example insert_cpu -- [N] [EVERY]`
//! (defaults 100000 and 1000; `--help` says so). Prints
//! `n=<N> every=<EVERY> insert_ms=<ms> insert_mps=<M/s> rooted_ms=<ms> rooted_mps=<M/s>`.

use cpu_time::ThreadTime;
use undchain_jobfile::JobFile;
use undchain_jobfile::testkit::bench_entry;
use undchain_types::JobEntry;

/// Runs of each measurement; the median is printed.
const RUNS: usize = 7;

/// CPU milliseconds to insert `es` into an empty file, reading the root
/// after every `every` inserts (never if `every` is 0).
fn fill(es: Vec<JobEntry>, every: usize) -> f64 {
    let t = ThreadTime::now();
    let mut f = JobFile::new();
    let mut x = 0u8;
    for (i, e) in es.into_iter().enumerate() {
        let _ = f.insert(e);
        if every != 0 && i % every == every - 1 {
            x ^= f.root().0[0];
        }
    }
    let ms = t.elapsed().as_secs_f64() * 1e3;
    std::hint::black_box((x, f));
    ms
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

const USAGE: &str = "usage: insert_cpu [N] [EVERY]  (entries inserted, default 100000; \
the root is read after every EVERY inserts, default 1000, 0 never)";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return std::process::ExitCode::SUCCESS;
    }
    if args.len() > 2 {
        eprintln!("insert_cpu: at most two arguments\n{USAGE}");
        return std::process::ExitCode::from(2);
    }
    let mut nums = [100_000u64, 1000];
    for (i, a) in args.iter().enumerate() {
        match a.replace('_', "").parse() {
            Ok(v) => nums[i] = v,
            Err(_) => {
                eprintln!("insert_cpu: {a}: not a number\n{USAGE}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let [n, every] = nums;
    let every = every as usize;
    let entries: Vec<_> = (0..n).map(bench_entry).collect();
    let (mut plain, mut rooted) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        plain.push(fill(entries.clone(), 0));
        rooted.push(fill(entries.clone(), every));
    }
    let (p, r) = (median(plain), median(rooted));
    let mps = |ms: f64| n as f64 / ms / 1e3;
    println!(
        "n={n} every={every} insert_ms={p:.1} insert_mps={:.2} rooted_ms={r:.1} rooted_mps={:.2}",
        mps(p),
        mps(r)
    );
    std::process::ExitCode::SUCCESS
}
