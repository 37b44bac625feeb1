//! Reconciliation benchmark: two files, reconciled in one process by this
//! crate's protocol, by negentropy 0.5 on the same ids, and by a whole-file
//! transfer.
//!
//! `cargo run --release -p undchain-jobfile --example reconcile_bench -- --n N --d D`
//! (two files of N entries differing by exactly D: `D - D/2` only on the
//! initiator, `D/2` only on the responder), or
//! `... -- --common C --only-local L --only-remote R [--prefix-bits K]`
//! (C entries on both sides, L only on the initiator, R only on the
//! responder, every id sharing its first K bits). `--help` says so.
//!
//! Prints one line per method:
//! `method=<undchain|negentropy|full> n=<N> d=<D> rounds=<round trips> bytes=<both directions> cpu_ms=<ms> ok=<true|false>`
//! (`n` is the larger file, `d` the whole difference).
//!
//! Every method ships the same encoded `JobEntry` (32-byte id, 8-byte
//! initiation time, empty pools: 45 bytes) and counts every message byte in
//! both directions; `rounds` is messages / 2 rounded up; `cpu_ms` is the
//! CPU time of the bench's thread (`CLOCK_THREAD_CPUTIME_ID`, so other work
//! on a shared machine does not count, only its effect on the caches) of
//! the reconciliation alone on files built beforehand (their roots read once,
//! as a file kept current would have them): the median of `--runs R`
//! runs (default 5; this crate's method and negentropy's alternate, so
//! that neither pays alone for a cold process; the whole-file transfer runs
//! once). Rounds and bytes are the same in every run; `ok` is whether every
//! run returned the true symmetric difference.

use std::collections::BTreeSet;

use cpu_time::ThreadTime;
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use undchain_jobfile::JobFile;
use undchain_jobfile::testkit::{Split, run};
use undchain_types::msg::MAX_ENTRIES;
use undchain_types::{BoundedVec, JobEntry, JobId, wire};

const HELP: &str = "reconcile_bench: this crate's reconciliation beside negentropy 0.5 and a full transfer

usage:
  reconcile_bench [--n N] [--d D] [--runs R]
      two files of N entries (default 100000) differing by exactly D
      (default 100): D - D/2 only on the initiator, D/2 only on the responder
  reconcile_bench --common C --only-local L --only-remote R [--prefix-bits K] [--runs R]
      C entries on both sides, L only on the initiator, R only on the
      responder, every id sharing its first K bits (0..=64, default 0)
  --runs R   timed runs of each method, median printed (default 5)
  --help     this text

output, one line per method:
  method=<undchain|negentropy|full> n=<N> d=<D> rounds=<round trips> bytes=<both directions> cpu_ms=<ms> ok=<true|false>
";

/// The value after `name`, if given; an error if it does not parse.
fn arg(args: &[String], name: &str) -> Result<Option<u64>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => {
            let v = args.get(i + 1).ok_or(format!("{name} needs a value"))?;
            v.replace('_', "")
                .parse()
                .map(Some)
                .map_err(|_| format!("{name}: not a number: {v}"))
        }
    }
}

/// The split the arguments ask for, and the runs.
fn parse(args: &[String]) -> Result<(Split, u64), String> {
    const KNOWN: [&str; 8] = [
        "--n",
        "--d",
        "--runs",
        "--common",
        "--only-local",
        "--only-remote",
        "--prefix-bits",
        "--help",
    ];
    let mut i = 0;
    while i < args.len() {
        if !KNOWN.contains(&args[i].as_str()) {
            return Err(format!("unknown argument: {}", args[i]));
        }
        i += if args[i] == "--help" { 1 } else { 2 };
    }
    let runs = arg(args, "--runs")?.unwrap_or(5).max(1);
    let explicit = [
        arg(args, "--common")?,
        arg(args, "--only-local")?,
        arg(args, "--only-remote")?,
    ];
    let prefix = arg(args, "--prefix-bits")?.unwrap_or(0);
    if prefix > 64 {
        return Err("--prefix-bits: at most 64".into());
    }
    let split = if explicit.iter().any(Option::is_some) {
        if arg(args, "--n")?.is_some() || arg(args, "--d")?.is_some() {
            return Err(
                "--n/--d and --common/--only-local/--only-remote exclude each other".into(),
            );
        }
        Split {
            common: explicit[0].unwrap_or(0),
            only_a: explicit[1].unwrap_or(0),
            only_b: explicit[2].unwrap_or(0),
            prefix_bits: prefix as u8,
        }
    } else {
        let n = arg(args, "--n")?.unwrap_or(100_000);
        let d = arg(args, "--d")?.unwrap_or(100);
        if d > 2 * n {
            return Err(format!("--d {d} is more than 2 * --n {n}"));
        }
        // d up to n: both files hold n entries; beyond, they are disjoint
        // and the responder's is smaller.
        let mut s = Split::of(n, d.min(n));
        if d > n {
            s = Split {
                common: 0,
                only_a: n,
                only_b: d - n,
                prefix_bits: 0,
            };
        }
        Split {
            prefix_bits: prefix as u8,
            ..s
        }
    };
    Ok((split, runs))
}

struct Truth {
    only_a: BTreeSet<JobId>,
    only_b: BTreeSet<JobId>,
}

fn truth(s: &Split) -> Truth {
    Truth {
        only_a: s.only_a_entries().iter().map(|e| e.id).collect(),
        only_b: s.only_b_entries().iter().map(|e| e.id).collect(),
    }
}

/// One run of one method.
#[derive(Debug, Clone, Copy)]
struct Measure {
    messages: u64,
    bytes: u64,
    ms: f64,
    ok: bool,
}

/// Prints the line of a method from its runs (median time).
fn line(method: &str, n: u64, d: u64, runs: &[Measure]) {
    let mut ms: Vec<f64> = runs.iter().map(|m| m.ms).collect();
    ms.sort_by(f64::total_cmp);
    let median = if ms.is_empty() {
        0.0
    } else if ms.len() % 2 == 1 {
        ms[ms.len() / 2]
    } else {
        (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
    };
    let first = runs.first().copied().unwrap_or(Measure {
        messages: 0,
        bytes: 0,
        ms: 0.0,
        ok: false,
    });
    let ok = !runs.is_empty() && runs.iter().all(|m| m.ok);
    println!(
        "method={method} n={n} d={d} rounds={} bytes={} cpu_ms={median:.3} ok={ok}",
        first.messages.div_ceil(2),
        first.bytes
    );
}

/// Encoded size of a list of entries as they travel (in message-sized
/// chunks).
fn entries_bytes(entries: &[JobEntry]) -> u64 {
    entries
        .chunks(MAX_ENTRIES)
        .map(|c| {
            wire::encode(&BoundedVec::<JobEntry, MAX_ENTRIES>::truncating(c.to_vec())).len() as u64
        })
        .sum()
}

fn undchain(a: &JobFile, b: &JobFile, t: &Truth) -> Measure {
    let start = ThreadTime::now();
    let ex = run(a, b, 0x5EED_0000_0000_0001);
    let ms = start.elapsed().as_secs_f64() * 1e3;
    match ex {
        Ok(ex) => {
            let la: BTreeSet<JobId> = ex.initiator.only_local.iter().map(|e| e.id).collect();
            let lb: BTreeSet<JobId> = ex.initiator.only_remote.iter().map(|e| e.id).collect();
            Measure {
                messages: u64::from(ex.messages),
                bytes: ex.bytes,
                ms,
                ok: la == t.only_a && lb == t.only_b,
            }
        }
        Err(e) => {
            eprintln!("undchain session failed: {e}");
            Measure {
                messages: 0,
                bytes: 0,
                ms,
                ok: false,
            }
        }
    }
}

/// A negentropy storage of a file's (initiation time, id) pairs, built
/// before any timing.
fn storage(f: &JobFile) -> NegentropyStorageVector {
    let mut s = NegentropyStorageVector::with_capacity(f.len() as usize);
    for e in f.entries() {
        s.insert(e.initiated_at.0, Id::from_byte_array(e.id.0.0))
            .expect("insert");
    }
    s.seal().expect("seal");
    s
}

fn negentropy_run(
    a: &JobFile,
    b: &JobFile,
    sa: &NegentropyStorageVector,
    sb: &NegentropyStorageVector,
    t: &Truth,
) -> Measure {
    let start = ThreadTime::now();
    let mut client = Negentropy::borrowed(sa, 0).expect("client");
    let mut relay = Negentropy::borrowed(sb, 0).expect("relay");
    let mut msg = client.initiate().expect("initiate");
    let mut messages = 1u64;
    let mut bytes = msg.len() as u64;
    let mut have = Vec::new();
    let mut need = Vec::new();
    loop {
        let resp = relay.reconcile(&msg).expect("relay reconcile");
        messages += 1;
        bytes += resp.len() as u64;
        match client
            .reconcile_with_ids(&resp, &mut have, &mut need)
            .expect("client reconcile")
        {
            Some(m) => {
                messages += 1;
                bytes += m.len() as u64;
                msg = m;
            }
            None => break,
        }
    }
    // Negentropy finds ids only: the initiator then ships the entries the
    // relay lacks with the ids it needs, and the relay answers with those
    // entries.
    if !have.is_empty() || !need.is_empty() {
        let mine: Vec<JobEntry> = have
            .iter()
            .filter_map(|id| {
                a.get(&JobId(undchain_types::Hash32(id.to_bytes())))
                    .cloned()
            })
            .collect();
        let theirs: Vec<JobEntry> = need
            .iter()
            .filter_map(|id| {
                b.get(&JobId(undchain_types::Hash32(id.to_bytes())))
                    .cloned()
            })
            .collect();
        messages += 2;
        bytes += entries_bytes(&mine) + 32 * need.len() as u64 + 4;
        bytes += entries_bytes(&theirs);
    }
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let la: BTreeSet<JobId> = have
        .iter()
        .map(|i| JobId(undchain_types::Hash32(i.to_bytes())))
        .collect();
    let lb: BTreeSet<JobId> = need
        .iter()
        .map(|i| JobId(undchain_types::Hash32(i.to_bytes())))
        .collect();
    Measure {
        messages,
        bytes,
        ms,
        ok: la == t.only_a && lb == t.only_b,
    }
}

fn full(a: &JobFile, b: &JobFile, t: &Truth) -> Measure {
    let start = ThreadTime::now();
    // The initiator ships its whole file; the responder answers with what
    // the initiator lacks.
    let all: Vec<JobEntry> = a.entries().into_iter().cloned().collect();
    let mut bytes = 0u64;
    let mut received: Vec<JobEntry> = Vec::with_capacity(all.len());
    for chunk in all.chunks(MAX_ENTRIES) {
        let frame = wire::encode(&BoundedVec::<JobEntry, MAX_ENTRIES>::truncating(
            chunk.to_vec(),
        ));
        bytes += frame.len() as u64;
        let back: BoundedVec<JobEntry, MAX_ENTRIES> =
            wire::decode(&frame, usize::MAX).expect("decode");
        received.extend(back.into_vec());
    }
    let theirs: BTreeSet<JobId> = received.iter().map(|e| e.id).collect();
    let only_a: BTreeSet<JobId> = received
        .iter()
        .filter(|e| !b.contains(&e.id))
        .map(|e| e.id)
        .collect();
    let reply: Vec<JobEntry> = b
        .entries()
        .into_iter()
        .filter(|e| !theirs.contains(&e.id))
        .cloned()
        .collect();
    bytes += entries_bytes(&reply).max(2);
    let only_b: BTreeSet<JobId> = reply.iter().map(|e| e.id).collect();
    let ms = start.elapsed().as_secs_f64() * 1e3;
    Measure {
        messages: 2,
        bytes,
        ms,
        ok: only_a == t.only_a && only_b == t.only_b,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return;
    }
    let (split, runs) = match parse(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("reconcile_bench: {e}\n\n{HELP}");
            std::process::exit(2);
        }
    };
    let n = (split.common + split.only_a).max(split.common + split.only_b);
    let d = split.only_a + split.only_b;
    let (a, b) = split.files();
    // A file keeps its root current as entries arrive (each insert marks
    // its path; reading the root rehashes the marked paths): files built
    // in bulk compute it once here, as negentropy's storage is sealed
    // before any timing.
    let _ = (a.root(), b.root());
    let t = truth(&split);
    // Profiling aid: repeat only this crate's method, printing every run.
    if let Ok(times) = std::env::var("RECONCILE_BENCH_REPEAT") {
        for _ in 0..times.parse().unwrap_or(1) {
            line("undchain", n, d, &[undchain(&a, &b, &t)]);
        }
        return;
    }
    let (sa, sb) = (storage(&a), storage(&b));
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..runs {
        ours.push(undchain(&a, &b, &t));
        theirs.push(negentropy_run(&a, &b, &sa, &sb, &t));
    }
    line("undchain", n, d, &ours);
    line("negentropy", n, d, &theirs);
    line("full", n, d, &[full(&a, &b, &t)]);
}
