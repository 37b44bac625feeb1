//! Precision simulation: `n` validators, `f` two-faced liars, running
//! rounds with each agreement method (docs/BENCHMARKS.md
//! "undchain-timesync: precision simulation").
//!
//! ```text
//! cargo run --release -p undchain-timesync --example precision_sim -- \
//!     --n 10 --f 3 --seed S [--delay-min-us A] [--delay-max-us B] \
//!     [--asymmetry-us ASYM] [--drift-ppm RHO] [--resync-ms R] [--rounds K]
//! ```
//!
//! A message's one-way delay is the jitter, uniform in `[A, B]`, plus its
//! directed link's fixed part, drawn per seed in `[0, ASYM]` for each link
//! `a -> b` on its own (default 0: every link alike), so a path can be
//! slower one way than the other: the error no time exchange can see.
//!
//! Prints one line per method:
//! `method=<ftm|trimmed_mean|median|mean> max_honest_skew_us=<X> bound_us=<B> within_honest_range=<true|false>`.
//! Details (rounds completed, failed rounds, final skew, the largest honest
//! skew at the instant a validator ended its bootstrap, the most rounds a
//! bootstrap took and, with `--asymmetry-us`, the largest asymmetry the
//! seed drew for a path between honest validators) go to stderr with
//! `--verbose`. The validators bootstrap first, as a real network does;
//! `--no-bootstrap` starts the periodic rounds straight from the initial
//! offsets (the harder case for slowly converging methods).

use std::io::Write;
use std::process::ExitCode;

use undchain_timesync::Method;
use undchain_timesync::sim::{SimConfig, run};

const USAGE: &str = "usage: precision_sim --n N --f F --seed S [--delay-min-us A] [--delay-max-us B] [--asymmetry-us ASYM] [--drift-ppm RHO] [--resync-ms R] [--rounds K] [--no-bootstrap] [--verbose]";

fn parse_args() -> Result<(SimConfig, bool), String> {
    let mut cfg = SimConfig::default();
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        if flag == "--verbose" {
            verbose = true;
            continue;
        }
        if flag == "--no-bootstrap" {
            cfg.bootstrap = false;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--n" => cfg.n = value.parse().map_err(bad)?,
            "--f" => cfg.f = value.parse().map_err(bad)?,
            "--seed" => cfg.seed = value.parse().map_err(bad)?,
            "--delay-min-us" => cfg.delay_min_us = value.parse().map_err(bad)?,
            "--delay-max-us" => cfg.delay_max_us = value.parse().map_err(bad)?,
            "--asymmetry-us" => cfg.asymmetry_us = value.parse().map_err(bad)?,
            "--drift-ppm" => cfg.drift_ppm = value.parse().map_err(bad)?,
            "--resync-ms" => cfg.resync_ms = value.parse().map_err(bad)?,
            "--rounds" => cfg.rounds = value.parse().map_err(bad)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok((cfg, verbose))
}

fn main() -> ExitCode {
    let (cfg, verbose) = match parse_args() {
        Ok(c) => c,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("precision_sim: {e}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout().lock();
    for method in Method::ALL {
        match run(&cfg, method) {
            Ok(report) => {
                if writeln!(stdout, "{report}").is_err() {
                    // stdout closed (e.g. piped into `head`): nothing left to do
                    return ExitCode::SUCCESS;
                }
                if verbose {
                    // Only runs with asymmetry name it: the symmetric
                    // lines stay as they always were.
                    let asym = if cfg.asymmetry_us > 0 {
                        format!(" max_link_asymmetry_us={}", report.max_link_asymmetry_us)
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "  {}: rounds_completed={} failed_rounds={} final_skew_us={} handover_skew_us={} bootstrap_rounds={}{asym} (seed={})",
                        method.name(),
                        report.rounds_completed,
                        report.failed_rounds,
                        report.final_skew_us,
                        report.max_handover_skew_us,
                        report.max_bootstrap_rounds,
                        cfg.seed
                    );
                }
            }
            Err(e) => {
                eprintln!("precision_sim: {e}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}
