//! Seeded agreement simulator (issue 5 command):
//!
//! ```text
//! cargo run --release -p undchain-consensus --example sim -- \
//!     --n N --byzantine B --seeds S [--seed X] [--first-seed F] [--faults drawn|none]
//! ```
//!
//! prints one line,
//! `n=<N> byzantine=<B> seeds=<S> safety_violations=<k> liveness_failures=<l> heights_decided=<h> mean_delays_to_decide=<m>`:
//! `k` is the number of seeds with at least one safety violation, `l` the
//! number of seeds in which some honest validator did not reach the target
//! height after the heal, `h` the heights decided by every honest validator
//! summed over seeds, `m` the mean time from a validator starting a height
//! to deciding it, in one-way message delays. Seeds run from `--first-seed` (default 0) upward;
//! `--seed X` replays one seed. The first B validators are Byzantine and
//! draw one behaviour per seed; network faults are drawn per seed unless
//! `--faults none`. Failing seeds go to stderr with a "reproduce with
//! seed=..." line.
//!
//! Exit status: 1 when `k` or `l` is not 0, else 0; 2 for a bad command
//! line. A run with more Byzantine validators than f = floor((n-1)/3) is
//! the negative control (the checker must be able to fail): it exits 0
//! whatever it finds and says so on a second line (`negative_control:
//! ...`); the sums are `undchain_consensus::sim::SweepSummary`.

use std::process::ExitCode;

use undchain_consensus::sim::{SimConfig, Simulation, SweepSummary};

struct Args {
    n: usize,
    byzantine: usize,
    seeds: u64,
    seed: Option<u64>,
    first_seed: u64,
    fault_free: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        n: 4,
        byzantine: 0,
        seeds: 1,
        seed: None,
        first_seed: 0,
        fault_free: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |s: String| s.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--n" => a.n = num(val()?)? as usize,
            "--byzantine" => a.byzantine = num(val()?)? as usize,
            "--seeds" => a.seeds = num(val()?)?,
            "--seed" => a.seed = Some(num(val()?)?),
            "--first-seed" => a.first_seed = num(val()?)?,
            "--faults" => match val()?.as_str() {
                "none" => a.fault_free = true,
                "drawn" => a.fault_free = false,
                other => return Err(format!("--faults {other}: expected drawn or none")),
            },
            "-h" | "--help" => {
                return Err("usage: sim --n N --byzantine B --seeds S [--seed X] [--first-seed F] [--faults drawn|none]".into());
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if !(1..=10).contains(&a.n) {
        return Err(format!("--n {}: must be 1..=10", a.n));
    }
    if a.byzantine > a.n {
        return Err(format!("--byzantine {} exceeds --n {}", a.byzantine, a.n));
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let seeds: Vec<u64> = match args.seed {
        Some(x) => vec![x],
        None => (args.first_seed..args.first_seed.saturating_add(args.seeds)).collect(),
    };
    let mut reports = Vec::with_capacity(seeds.len());
    for &seed in &seeds {
        let cfg = if args.fault_free {
            SimConfig::fault_free(args.n, args.byzantine, seed)
        } else {
            SimConfig::drawn(args.n, args.byzantine, seed)
        };
        let report = Simulation::new(cfg).run();
        if !report.ok() {
            eprintln!("{}", report.reproduce_hint());
        }
        reports.push(report);
    }
    let summary = SweepSummary::of(args.n, args.byzantine, &reports);
    println!("{}", summary.line());
    if let Some(line) = summary.negative_control_line() {
        println!("{line}");
    }
    if summary.failed() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
