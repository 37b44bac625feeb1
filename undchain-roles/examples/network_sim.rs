//! The whole-network simulator from the command line (issue 15):
//!
//! ```text
//! cargo run --release -p undchain-roles --example network_sim -- \
//!     --validators N --blocks B --seed S [--requests-per-block R] [--faults] [--seeds K] \
//!     [--byzantine K] [--behaviour NAME] [--passive P] [--blocks-per-period K] [--timing]
//! ```
//!
//! With `--faults`, up to f validators are drawn Byzantine per seed, each
//! running one of the agreement simulator's behaviours; `--byzantine K`
//! and `--behaviour NAME` fix them (more than f is the negative control).
//! `--passive P` adds P passive (unknown) genesis validators that follow
//! the chain and rotate in at payout-period ends (`--blocks-per-period`,
//! default 30).
//!
//! One summary line per run; with `--seeds K`, K seeds from S and a last
//! line `seeds=<K> failed_seeds=<list or none>`. Exit status 1 on any
//! violation or loss, 2 on bad arguments.

use std::process::ExitCode;
use std::time::Instant;

use undchain_consensus::adversary::Behaviour;
use undchain_roles::sim::{SimConfig, run, seeds_line};

const USAGE: &str = "usage: network_sim --validators N --blocks B --seed S \
[--requests-per-block R] [--faults] [--seeds K] [--byzantine K] [--behaviour NAME] [--passive P] [--blocks-per-period K] [--timing]";

struct Args {
    cfg: SimConfig,
    seeds: u64,
    timing: bool,
}

fn parse() -> Result<Args, String> {
    let mut validators = None;
    let mut blocks = None;
    let mut seed = None;
    let mut requests = 20u32;
    let mut faults = false;
    let mut seeds = 1u64;
    let mut timing = false;
    let mut byzantine = None;
    let mut passive = 0;
    let mut per_period = None;
    let mut behaviour = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            v.parse::<u64>()
                .map_err(|_| format!("{name} {v}: not a number"))
        };
        match a.as_str() {
            "--validators" => validators = Some(val("--validators")? as usize),
            "--blocks" => blocks = Some(val("--blocks")?),
            "--seed" => seed = Some(val("--seed")?),
            "--requests-per-block" => {
                requests = u32::try_from(val("--requests-per-block")?)
                    .map_err(|_| "--requests-per-block: too large".to_string())?
            }
            "--seeds" => seeds = val("--seeds")?,
            "--faults" => faults = true,
            "--byzantine" => byzantine = Some(val("--byzantine")? as usize),
            "--passive" => passive = val("--passive")? as usize,
            "--blocks-per-period" => per_period = Some(val("--blocks-per-period")?),
            "--behaviour" => {
                let v = it.next().ok_or("--behaviour needs a value")?;
                let names: Vec<&str> = Behaviour::ALL.iter().map(|b| b.name()).collect();
                behaviour = Some(
                    Behaviour::parse(&v)
                        .ok_or(format!("--behaviour {v}: not one of {}", names.join(", ")))?,
                );
            }
            "--timing" => timing = true,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let mut cfg = SimConfig::new(
        validators.ok_or("--validators is required")?,
        blocks.ok_or("--blocks is required")?,
        seed.ok_or("--seed is required")?,
    );
    cfg.requests_per_block = requests;
    cfg.faults = faults;
    cfg.byzantine = byzantine;
    cfg.passive = passive;
    if let Some(k) = per_period {
        if k == 0 {
            return Err("--blocks-per-period 0: must be positive".into());
        }
        cfg.blocks_per_period = k;
    }
    cfg.behaviour = behaviour;
    cfg.trace = std::env::var_os("UNDCHAIN_SIM_TRACE").is_some();
    if seeds == 0 {
        return Err("--seeds 0: must be positive".into());
    }
    Ok(Args { cfg, seeds, timing })
}

/// CPU time this process has used, seconds (Linux `/proc/self/schedstat`;
/// wall time elsewhere).
fn cpu_seconds(wall: &Instant) -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or_else(|| wall.elapsed().as_secs_f64(), |ns| ns as f64 / 1e9)
}

fn main() -> ExitCode {
    let wall = Instant::now();
    let args = match parse() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("network_sim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut failed = Vec::new();
    for k in 0..args.seeds {
        let mut cfg = args.cfg.clone();
        cfg.seed = args.cfg.seed + k;
        let started = cpu_seconds(&wall);
        let report = match run(&cfg) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("network_sim: {e}");
                return ExitCode::from(2);
            }
        };
        let cpu = cpu_seconds(&wall) - started;
        println!("{}", report.line());
        if args.timing {
            let sim = report.simulated_us as f64 / 1e6;
            println!(
                "timing seed={} simulated_s={sim:.1} cpu_s={cpu:.3} simulated_per_cpu_s={:.0} events={}",
                cfg.seed,
                sim / cpu.max(1e-9),
                report.events
            );
        }
        if !report.ok() {
            for l in report.failure_lines() {
                println!("{l}");
            }
            failed.push(cfg.seed);
        }
    }
    if args.seeds > 1 {
        println!("{}", seeds_line(args.seeds, &failed));
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
