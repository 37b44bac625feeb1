//! `undchain-node sim`: the seeded fault campaign (issue 19) from the
//! command line. It runs the whole-network simulator of `undchain-roles`
//! ([`undchain_roles::sim::campaign`]) seed after seed, prints what each
//! failing seed broke and how to replay it, and ends with the line
//!
//! ```text
//! seeds=<N> safety_violations=<v> lost=<l> double_paid=<d> failed_seeds=<list, or none>
//! ```
//!
//! ```text
//! cargo run --release -p undchain-node -- sim --seeds 300 --first-seed 0
//! cargo run --release -p undchain-node -- sim --seed 17
//! ```

use std::io::Write;
use std::time::Instant;

use undchain_roles::sim::campaign::{self, Summary};
use undchain_roles::sim::{ForkKind, InjectedFork, Report, SimError};

/// The `sim` command's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// How many seeds to run, from --first-seed on.
    #[arg(long, default_value_t = 300)]
    pub seeds: u64,
    /// The first seed of the run.
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    /// Replay this one seed (instead of --seeds and --first-seed): its
    /// summary line, and what failed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Blocks every honest validator must commit in each seed's run.
    #[arg(long, default_value_t = campaign::DEFAULT_BLOCKS)]
    pub blocks: u64,
    /// Print every seed's summary line, not only the failing ones'.
    #[arg(long)]
    pub verbose: bool,
    /// Print every node event and refusal to stderr (to debug one seed).
    #[arg(long)]
    pub trace: bool,
    /// The negative control: validator 0 commits another block at height 2
    /// in every run; every seed must then fail.
    #[arg(long)]
    pub inject_fork: bool,
}

/// Why the campaign did not pass.
#[derive(Debug, thiserror::Error)]
pub enum SimRunError {
    /// A run could not be set up.
    #[error("sim: {0}")]
    Setup(#[from] SimError),
    /// Some seeds broke an invariant.
    #[error("sim: {failed} of {seeds} seeds failed (replay one with --seed)")]
    Failed {
        /// Seeds that failed.
        failed: usize,
        /// Seeds run.
        seeds: u64,
    },
    /// Writing the output failed.
    #[error("sim: writing the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs the campaign `args` asks for, writing to `out`; the last line is
/// [`Summary::line`]. A failing seed is an error (the exit status).
pub fn run(args: &SimArgs, out: &mut impl Write) -> Result<Summary, SimRunError> {
    let (first, seeds) = match args.seed {
        Some(s) => (s, 1),
        None => (args.first_seed, args.seeds),
    };
    let wall = Instant::now();
    let cpu0 = cpu_seconds(&wall);
    let mut summary = Summary::default();
    for seed in first..first.saturating_add(seeds) {
        let mut cfg = campaign::config(seed, args.blocks);
        cfg.trace = args.trace;
        if args.inject_fork {
            cfg.inject_fork = Some(InjectedFork {
                validator: 0,
                height: 2,
                kind: ForkKind::Header,
            });
        }
        let r = undchain_roles::sim::run(&cfg)?;
        write_report(out, &r, args.verbose || args.seed.is_some())?;
        summary.add(&r);
    }
    let cpu = cpu_seconds(&wall) - cpu0;
    writeln!(
        out,
        "cpu_s={cpu:.2} seeds_per_cpu_s={:.2}",
        summary.seeds as f64 / cpu.max(1e-9)
    )?;
    writeln!(out, "{}", summary.line())?;
    if summary.ok() {
        Ok(summary)
    } else {
        Err(SimRunError::Failed {
            failed: summary.failed_seeds.len(),
            seeds: summary.seeds,
        })
    }
}

fn write_report(out: &mut impl Write, r: &Report, always: bool) -> std::io::Result<()> {
    if always || !r.ok() {
        writeln!(out, "{} double_paid={}", r.line(), r.lifecycle.double_paid)?;
    }
    for l in r.failure_lines() {
        writeln!(out, "{l}")?;
    }
    Ok(())
}

/// CPU time this process has used, seconds (Linux `/proc/self/schedstat`;
/// wall time elsewhere).
fn cpu_seconds(wall: &Instant) -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or_else(|| wall.elapsed().as_secs_f64(), |ns| ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(first_seed: u64, seeds: u64) -> SimArgs {
        SimArgs {
            seeds,
            first_seed,
            seed: None,
            blocks: 6,
            verbose: false,
            trace: false,
            inject_fork: false,
        }
    }

    #[test]
    fn last_line_sums_the_seeds() {
        let mut out = Vec::new();
        let s = run(&args(40, 3), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().last(),
            Some("seeds=3 safety_violations=0 lost=0 double_paid=0 failed_seeds=none")
        );
        assert_eq!(s.seeds, 3);
    }

    #[test]
    fn injected_fork_fails_every_seed_and_says_how_to_replay() {
        let mut a = args(7, 2);
        a.inject_fork = true;
        let mut out = Vec::new();
        let e = run(&a, &mut out).unwrap_err();
        assert!(
            matches!(
                e,
                SimRunError::Failed {
                    failed: 2,
                    seeds: 2
                }
            ),
            "{e}"
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("reproduce with --seed 7"), "{text}");
        let last = text.lines().last().unwrap();
        assert!(last.starts_with("seeds=2 safety_violations="), "{last}");
        assert!(last.ends_with("failed_seeds=7,8"), "{last}");
        assert!(!last.contains("safety_violations=0 "), "{last}");
    }
}
