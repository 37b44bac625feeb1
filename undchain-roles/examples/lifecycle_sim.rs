//! The utility lifecycle end to end in the whole-network simulator
//! (issue 16): real client and partner machines beside the validators.
//!
//! ```text
//! cargo run --release -p undchain-roles --example lifecycle_sim -- \
//!     --validators N --partners P --clients C --blocks B --seed S \
//!     [--payout-period D] [--faults] [--seeds K]
//! ```
//!
//! Each of the C clients requests storage of a blob every few blocks; the
//! validators' partner desks notify the P partners, stream their offers to
//! the client, which stores the blob with the partner it took; both sign
//! the receipt, a block commits it, the payout period's settlement pays
//! the partner, and the client fetches the blob back and checks it. The
//! scripted load of `network_sim` runs beside them (receipts from scripted
//! partners). `D` is a duration (`20s`, `1m`, `1500ms`; blocks are 2 s,
//! and a period is the whole blocks that fit in `D`, at least one).
//!
//! One summary line per run; with `--seeds K`, K seeds from S and a last
//! line `seeds=<K> failed_seeds=<list or none>`. Exit status 1 on a
//! violation, a loss or a double payment, 2 on bad arguments.

use std::process::ExitCode;

use undchain_roles::sim::{SimConfig, run, seeds_line};

const USAGE: &str = "usage: lifecycle_sim --validators N --partners P --clients C --blocks B --seed S \
[--payout-period D] [--faults] [--seeds K]";

/// `20s`, `2m`, `1500ms` as microseconds.
fn duration_us(v: &str) -> Option<u64> {
    let (num, unit) = v
        .find(|c: char| !c.is_ascii_digit())
        .map_or((v, "s"), |i| v.split_at(i));
    let n: u64 = num.parse().ok()?;
    let per = match unit {
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        _ => return None,
    };
    n.checked_mul(per)
}

fn parse() -> Result<(SimConfig, u64), String> {
    let (mut validators, mut partners, mut clients, mut blocks, mut seed) =
        (None, None, None, None, None);
    let mut period_us = None;
    let mut faults = false;
    let mut seeds = 1u64;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| -> Result<String, String> {
            it.next().ok_or(format!("{name} needs a value"))
        };
        let num = |name: &str, v: String| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{name} {v}: not a number"))
        };
        match a.as_str() {
            "--validators" => validators = Some(num(&a, val(&a)?)? as usize),
            "--partners" => partners = Some(num(&a, val(&a)?)? as usize),
            "--clients" => clients = Some(num(&a, val(&a)?)? as usize),
            "--blocks" => blocks = Some(num(&a, val(&a)?)?),
            "--seed" => seed = Some(num(&a, val(&a)?)?),
            "--seeds" => seeds = num(&a, val(&a)?)?,
            "--payout-period" => {
                let v = val(&a)?;
                period_us = Some(
                    duration_us(&v)
                        .ok_or(format!("--payout-period {v}: not a duration like 20s"))?,
                );
            }
            "--faults" => faults = true,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let mut cfg = SimConfig::new(
        validators.ok_or("--validators is required")?,
        blocks.ok_or("--blocks is required")?,
        seed.ok_or("--seed is required")?,
    );
    cfg.partners = partners.ok_or("--partners is required")?;
    cfg.users = clients.ok_or("--clients is required")?;
    cfg.faults = faults;
    cfg.requests_per_block = 4;
    if let Some(p) = period_us {
        // Whole blocks: a period that is not a multiple of the block
        // interval ends with the last block that fits (at least one).
        if p == 0 {
            return Err("--payout-period 0: must be positive".into());
        }
        cfg.blocks_per_period = (p / cfg.block_interval_us).max(1);
    }
    cfg.trace = std::env::var_os("UNDCHAIN_SIM_TRACE").is_some();
    if seeds == 0 {
        return Err("--seeds 0: must be positive".into());
    }
    Ok((cfg, seeds))
}

fn main() -> ExitCode {
    let (base, seeds) = match parse() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("lifecycle_sim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut failed = Vec::new();
    for k in 0..seeds {
        let mut cfg = base.clone();
        cfg.seed = base.seed + k;
        let report = match run(&cfg) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("lifecycle_sim: {e}");
                return ExitCode::from(2);
            }
        };
        println!("{}", report.lifecycle_line());
        if !report.ok() {
            for l in report.failure_lines() {
                println!("{l}");
            }
            failed.push(cfg.seed);
        }
    }
    if seeds > 1 {
        println!("{}", seeds_line(seeds, &failed));
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
