//! `devnet`: a whole local network in one process (DESIGN.md "The
//! reference node": devnet). Its homes are `testnet` homes under one data
//! directory; every validator is a runtime task with its own QUIC endpoint
//! and redb database; clients are [`LoadClient`]s. A devnet started again
//! on the same directory resumes at its height (`--reset` starts afresh).
//!
//! What the summary reports is what happened: jobs sent, acknowledged and
//! committed (from the blocks the validators stored), `lost` (acknowledged,
//! never committed), the period settlements the validators reported
//! (completions and payouts: each load client plays a scripted partner that
//! countersigns its jobs' receipts, which blocks commit; no partner node
//! runs yet), safety (two validators committing different blocks at one
//! height).

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use undchain_roles::NodeEvent;
use undchain_types::{Hash32, JobId};

use crate::home::{Home, HomeError, RoleName};
use crate::load::{LoadClient, LoadEvent, unix_us};
use crate::runtime::{self, NodeHandle, NodeSetup, Observed, RunError};
use crate::store::{OpenError, RedbStore};
use crate::testnet::{self, TestnetSpec};

/// The devnet's flags.
#[derive(Debug, Clone)]
pub struct DevnetConfig {
    /// Active validators.
    pub validators: usize,
    /// Passive validators.
    pub passive: usize,
    /// Partners (homes only until the partner machine exists).
    pub partners: usize,
    /// Clients.
    pub clients: usize,
    /// Stop after this many blocks committed in this run.
    pub blocks: Option<u64>,
    /// Block interval, microseconds.
    pub block_interval_us: u64,
    /// Payout period, microseconds.
    pub payout_period_us: u64,
    /// Most jobs one block may carry (the protocol's default when `None`).
    pub max_block_jobs: Option<u32>,
    /// Client requests per second, all clients together.
    pub load: f64,
    /// The data directory.
    pub home: PathBuf,
    /// Delete the data directory first.
    pub reset: bool,
    /// The banner goes to stderr and the summary is one JSON line.
    pub json: bool,
    /// Serve each validator's HTTP API (at its home's `api` address).
    pub api: bool,
}

/// Why the devnet could not run.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// A home could not be written or read.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// A database could not be opened.
    #[error(transparent)]
    Store(#[from] OpenError),
    /// A node failed.
    #[error(transparent)]
    Run(Box<RunError>),
    /// The existing devnet does not match the flags.
    #[error(
        "{dir} holds a devnet of {found} validators, not {asked} (--validators): pass --reset to start a new one"
    )]
    Mismatch {
        /// The data directory.
        dir: PathBuf,
        /// Validators found.
        found: usize,
        /// Validators asked for.
        asked: usize,
    },
}

impl From<RunError> for DevnetError {
    fn from(e: RunError) -> Self {
        DevnetError::Run(Box::new(e))
    }
}

/// The last line of `devnet --json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Blocks committed in this run (by every validator).
    pub blocks: u64,
    /// The height reached (the next block to decide).
    pub height: u64,
    /// The height the devnet resumed at.
    pub resumed_at: u64,
    /// Requests sent.
    pub jobs: u64,
    /// Requests acknowledged by at least one validator.
    pub acked: u64,
    /// Requests committed in a block.
    pub committed: u64,
    /// Jobs paid by full receipts (period settlements reported).
    pub completed: u64,
    /// Jobs paid with partial claims.
    pub partial: u64,
    /// Tokens paid to partners.
    pub paid: u64,
    /// Acknowledged jobs that were never committed.
    pub lost: u64,
    /// Jobs found in more than one block's file (the only way a job could
    /// be paid twice).
    pub double_paid: u64,
    /// Heights at which two validators committed different blocks.
    pub safety_violations: u64,
    /// Committed jobs per second of load.
    pub jobs_per_s: f64,
    /// Request sent to its block stored by the first validator, median.
    pub commit_latency_ms_p50: f64,
    /// The same, 99th percentile.
    pub commit_latency_ms_p99: f64,
    /// From start to the first block committed in this run.
    pub first_block_ms: f64,
    /// Seconds the run lasted.
    pub elapsed_s: f64,
    /// The run ended because no block was committed for [`stall_after`]
    /// (a liveness failure, reported rather than waited on forever).
    pub stalled: bool,
}

/// How long the devnet waits for the next block before it reports a
/// stall: 20 block intervals, at least 30 s.
pub fn stall_after(block_interval_us: u64) -> Duration {
    Duration::from_micros(block_interval_us.saturating_mul(20)).max(Duration::from_secs(30))
}

struct Node {
    name: String,
    handle: NodeHandle,
    _lock: crate::home::HomeLock,
}

/// What the run observed.
#[derive(Default)]
struct Tally {
    sent: BTreeMap<JobId, u64>,
    acked: BTreeSet<JobId>,
    committed: BTreeMap<JobId, (u64, u64)>,
    double: BTreeSet<JobId>,
    heights: BTreeMap<usize, u64>,
    hashes: BTreeMap<u64, Hash32>,
    violations: BTreeSet<u64>,
    completed: u64,
    partial: u64,
    paid: u64,
}

impl Tally {
    fn min_height(&self, n: usize) -> u64 {
        (0..n)
            .map(|i| self.heights.get(&i).copied().unwrap_or(0))
            .min()
            .unwrap_or(0)
    }

    fn observe(&mut self, node: usize, o: Observed, live: Option<&Live>, name: &str) {
        match o {
            Observed::BlockStored { number, jobs } => {
                let now = unix_us();
                for j in jobs {
                    match self.committed.get(&j) {
                        Some((b, _)) if *b != number.0 => {
                            self.double.insert(j);
                        }
                        Some(_) => {}
                        None => {
                            self.committed.insert(j, (number.0, now));
                        }
                    }
                }
            }
            Observed::Event(NodeEvent::BlockCommitted {
                number, hash, jobs, ..
            }) => {
                let h = self.heights.entry(node).or_insert(0);
                *h = (*h).max(number.0 + 1);
                match self.hashes.get(&number.0) {
                    Some(prev) if *prev != hash => {
                        self.violations.insert(number.0);
                    }
                    Some(_) => {}
                    None => {
                        self.hashes.insert(number.0, hash);
                        if let Some(live) = live {
                            live.block(number.0, name, jobs, self);
                        }
                    }
                }
            }
            Observed::Event(NodeEvent::PeriodSettled {
                completed,
                partial,
                paid,
                ..
            }) if node == 0 => {
                self.completed += completed;
                self.partial += partial;
                self.paid += paid.0;
                if let Some(live) = live {
                    live.totals(self);
                }
            }
            Observed::Event(_) => {}
        }
    }

    fn lost(&self) -> u64 {
        self.acked
            .iter()
            .filter(|j| !self.committed.contains_key(j))
            .count() as u64
    }
}

/// The live view on a terminal (indicatif): a line per committed block
/// (height, block time, proposer's node, jobs, committed so far, lost so
/// far) above a status line of the totals (completions, partials and
/// payouts at the settled periods).
struct Live {
    bar: indicatif::ProgressBar,
    genesis_us: u64,
    interval_us: u64,
}

impl Live {
    fn new(genesis_us: u64, interval_us: u64) -> Self {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        bar.set_message("waiting for block 0");
        Live {
            bar,
            genesis_us,
            interval_us,
        }
    }

    /// Block `number`, first seen from node `name`, committed `jobs`.
    fn block(&self, number: u64, name: &str, jobs: u64, t: &Tally) {
        let at_us = self
            .genesis_us
            .saturating_add(number.saturating_mul(self.interval_us));
        self.bar.println(format!(
            "block {number:>5}  time {}  by {name:<4} jobs {jobs:>5}  committed {:>7}  lost so far {}",
            block_time_text(at_us),
            t.committed.len(),
            t.lost()
        ));
        self.totals(t);
    }

    fn totals(&self, t: &Tally) {
        self.bar.set_message(format!(
            "height {}  jobs committed {}  completions {}  partial {}  paid {}",
            t.hashes.len(),
            t.committed.len(),
            t.completed,
            t.partial,
            t.paid
        ));
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// A block time (Unix microseconds) as `HH:MM:SS.mmm` UTC.
fn block_time_text(us: u64) -> String {
    let ms = us / 1_000;
    let s = ms / 1_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3_600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1_000
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Writes (or finds) the devnet's homes.
fn prepare(cfg: &DevnetConfig) -> Result<(), DevnetError> {
    if cfg.reset && cfg.home.exists() {
        std::fs::remove_dir_all(&cfg.home).map_err(|e| HomeError::Io {
            path: cfg.home.clone(),
            error: e.to_string(),
        })?;
    }
    let v0 = Home::new(cfg.home.join("v0"));
    if v0.node_file().exists() {
        let g = v0.genesis_file_contents()?;
        let found = usize::from(g.active_seats);
        if found != cfg.validators {
            return Err(DevnetError::Mismatch {
                dir: cfg.home.clone(),
                found,
                asked: cfg.validators,
            });
        }
        return Ok(());
    }
    let spec = TestnetSpec {
        validators: cfg.validators,
        passive: cfg.passive,
        partners: cfg.partners,
        clients: cfg.clients,
        block_interval_us: cfg.block_interval_us,
        payout_period_us: cfg.payout_period_us,
        // Time sync runs first: a second to agree on the clock.
        genesis_time_us: unix_us() + 1_500_000,
        chain_id: 1,
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        max_block_jobs: cfg.max_block_jobs,
    };
    testnet::write(&cfg.home, &spec)?;
    Ok(())
}

fn homes(cfg: &DevnetConfig) -> Result<Vec<(String, Home)>, DevnetError> {
    let mut out = Vec::new();
    let mut entries: Vec<String> = std::fs::read_dir(&cfg.home)
        .map_err(|e| HomeError::Io {
            path: cfg.home.clone(),
            error: e.to_string(),
        })?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("node.toml").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    // Validators, passive validators, partners, clients; by number.
    let rank = |n: &str| "vspc".find(n.chars().next().unwrap_or('z')).unwrap_or(4);
    entries.sort_by_key(|n| (rank(n), n[1..].parse::<u32>().unwrap_or(u32::MAX)));
    for name in entries {
        out.push((name.clone(), Home::new(cfg.home.join(&name))));
    }
    Ok(out)
}

/// `addr`, or the same IP with a port the OS picks when another process
/// holds `addr` now (a resumed devnet's API port, taken meanwhile by some
/// other program's connection): the API only observes, and the banner
/// prints the address it got.
fn free_or_any_port(addr: SocketAddr) -> SocketAddr {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => addr,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "devnet: API address taken; serving on another port");
            SocketAddr::new(addr.ip(), 0)
        }
    }
}

/// Runs the devnet until `--blocks` more blocks are committed (then until
/// every acknowledged request is committed, at most 10 more blocks) or
/// Ctrl-C; returns the summary.
pub async fn run(cfg: DevnetConfig) -> Result<Summary, DevnetError> {
    let start = Instant::now();
    prepare(&cfg)?;
    let homes = homes(&cfg)?;
    let mut nodes = Vec::new();
    let mut clients = Vec::new();
    let (obs_tx, mut obs_rx) = mpsc::unbounded_channel::<(usize, Observed)>();
    let mut banner = format!("UndChain devnet\n  data dir   {}\n", cfg.home.display());
    let mut chain = None;
    let mut fanout = 3;
    let mut explorer = None;
    for (name, home) in &homes {
        let loaded = home.load()?;
        chain = Some(loaded.genesis.params.chain_id);
        fanout = usize::from(loaded.genesis.params.ack_fanout);
        let role = loaded.role;
        match role {
            RoleName::Validator | RoleName::Passive => {
                let lock = home.lock()?;
                let store = RedbStore::open(&home.db_file())?;
                let setup = NodeSetup {
                    cfg: loaded.node_config(),
                    listen: loaded.listen,
                    peers: testnet::endpoints(&loaded.book),
                    store,
                    loopback: true,
                    api: loaded.api.filter(|_| cfg.api).map(free_or_any_port),
                };
                let (tx, mut rx) = mpsc::unbounded_channel();
                let handle = runtime::start(setup, Some(tx)).await?;
                let i = nodes.len();
                let fwd = obs_tx.clone();
                tokio::spawn(async move {
                    while let Some(o) = rx.recv().await {
                        if fwd.send((i, o)).is_err() {
                            break;
                        }
                    }
                });
                banner.push_str(&format!(
                    "  {name:<4} {:<9} {}  quic {}  api {}  (from height {})\n",
                    role.as_str(),
                    handle.id.to_hex(),
                    handle.addr,
                    handle
                        .api_addr
                        .map_or("none".to_owned(), |a| format!("http://{a}/")),
                    handle.restored_height.0
                ));
                if explorer.is_none() {
                    explorer = handle.api_addr;
                }
                nodes.push(Node {
                    name: name.clone(),
                    handle,
                    _lock: lock,
                });
            }
            RoleName::Client => {
                banner.push_str(&format!(
                    "  {name:<4} client    {}  funded {} (secret seed in {})\n",
                    loaded.key.public().to_hex(),
                    testnet::CLIENT_BALANCE,
                    home.node_file().display()
                ));
                clients.push(loaded.key);
            }
            RoleName::Partner => banner.push_str(&format!(
                "  {name:<4} partner   {}  (not run: the partner machine comes with issue 16)\n",
                loaded.key.public().to_hex()
            )),
        }
    }
    let active = homes
        .iter()
        .zip(0..)
        .filter_map(|((_, h), _)| h.load().ok())
        .filter(|l| l.role == RoleName::Validator)
        .map(|l| l.key.public())
        .collect::<Vec<_>>();
    let validators: Vec<_> = nodes
        .iter()
        .filter(|n| active.contains(&n.handle.id))
        .map(|n| (n.handle.id, n.handle.addr))
        .collect();
    banner.push_str(&format!(
        "  load       {} requests/s from {} clients, each to {} validators\n  explorer   {}\n  {}\n",
        cfg.load,
        clients.len(),
        fanout,
        match explorer {
            Some(a) => format!("http://{a}/  (API http://{a}/openapi.json, metrics http://{a}/metrics; every validator serves its own, see above)"),
            None if !cfg.api => "none (--no-api)".to_owned(),
            None => "none (these homes name no API address: pass --reset for a devnet with one)".to_owned(),
        },
        match cfg.blocks {
            Some(b) => format!("runs {b} blocks, then prints a summary"),
            None => "runs until Ctrl-C, then prints a summary".to_owned(),
        }
    ));
    if cfg.json {
        eprint!("{banner}");
    } else {
        print!("{banner}");
    }
    let resumed_at = nodes
        .iter()
        .map(|n| n.handle.restored_height.0)
        .min()
        .unwrap_or(0);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (load_tx, mut load_rx) = mpsc::unbounded_channel();
    let stride = clients.len().max(1) as u64;
    let base_nonce = unix_us();
    let mut client_tasks = Vec::new();
    if cfg.load > 0.0 {
        for (i, key) in clients.into_iter().enumerate() {
            let c = LoadClient {
                key,
                chain: chain.unwrap_or(undchain_types::ChainId(1)),
                validators: validators.clone(),
                fanout,
                rate: cfg.load / stride as f64,
                first_nonce: base_nonce.wrapping_mul(stride) + i as u64,
                stride,
                // Each client's jobs are served by one scripted partner.
                partner: Some(undchain_roles::sim::partner_key(base_nonce, i)),
            };
            client_tasks.push(tokio::spawn(c.run(stop_rx.clone(), load_tx.clone())));
        }
    }
    let live = (std::io::stderr().is_terminal() && !cfg.json).then(|| {
        let g = Home::new(cfg.home.join("v0")).genesis_file_contents().ok();
        let interval = g
            .as_ref()
            .and_then(|g| crate::duration::parse_us(&g.block_interval).ok())
            .unwrap_or(cfg.block_interval_us);
        Live::new(g.map_or(0, |g| g.genesis_time_us), interval)
    });
    let mut tally = Tally::default();
    let n = nodes.len();
    let target = cfg.blocks.map(|b| resumed_at + b);
    let mut drain_until: Option<u64> = None;
    let mut first_block: Option<Duration> = None;
    let mut load_start: Option<u64> = None;
    let mut last_commit_us = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let stall = stall_after(cfg.block_interval_us);
    let mut progress = (tally.hashes.len(), tokio::time::Instant::now());
    let mut stalled = false;
    loop {
        if tally.hashes.len() != progress.0 {
            progress = (tally.hashes.len(), tokio::time::Instant::now());
        }
        tokio::select! {
            _ = tokio::time::sleep_until(progress.1 + stall) => {
                stalled = true;
                break;
            }
            Some((i, o)) = obs_rx.recv() => {
                let name = nodes.get(i).map_or("", |n| n.name.as_str()).to_owned();
                let before = tally.committed.len();
                tally.observe(i, o, live.as_ref(), &name);
                if tally.committed.len() != before {
                    last_commit_us = unix_us();
                }
                if first_block.is_none() && !tally.hashes.is_empty() {
                    first_block = Some(start.elapsed());
                }
            }
            Some(e) = load_rx.recv() => match e {
                LoadEvent::Sent { job, at_us } => {
                    load_start.get_or_insert(at_us);
                    tally.sent.insert(job, at_us);
                }
                LoadEvent::Acked { job, .. } => { tally.acked.insert(job); }
                LoadEvent::Confirmed { .. } => {}
            },
            _ = &mut ctrl_c => break,
        }
        let h = tally.min_height(n);
        if let Some(t) = target {
            if h >= t && drain_until.is_none() {
                let _ = stop_tx.send(true);
                drain_until = Some(h + 10);
            }
        }
        if let Some(d) = drain_until {
            if tally.lost() == 0 || h >= d {
                break;
            }
        }
    }
    let _ = stop_tx.send(true);
    for t in client_tasks {
        let _ = t.await;
    }
    for node in &nodes {
        node.handle.command(runtime::NodeCommand::Stop);
    }
    for node in nodes {
        node.handle.wait().await?;
    }
    while let Ok((i, o)) = obs_rx.try_recv() {
        tally.observe(i, o, None, "");
    }
    drop(live);
    let mut lat: Vec<f64> = tally
        .committed
        .iter()
        .filter_map(|(j, (_, at))| {
            tally
                .sent
                .get(j)
                .map(|s| at.saturating_sub(*s) as f64 / 1e3)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let committed_sent = lat.len() as u64;
    let span_s = load_start.map_or(0.0, |s| last_commit_us.saturating_sub(s) as f64 / 1e6);
    let height = tally.min_height(n).max(resumed_at);
    Ok(Summary {
        blocks: height.saturating_sub(resumed_at),
        height,
        resumed_at,
        jobs: tally.sent.len() as u64,
        acked: tally.acked.len() as u64,
        committed: committed_sent,
        completed: tally.completed,
        partial: tally.partial,
        paid: tally.paid,
        lost: tally.lost(),
        double_paid: tally.double.len() as u64,
        safety_violations: tally.violations.len() as u64,
        jobs_per_s: if span_s > 0.0 {
            committed_sent as f64 / span_s
        } else {
            0.0
        },
        commit_latency_ms_p50: percentile(&lat, 0.5),
        commit_latency_ms_p99: percentile(&lat, 0.99),
        first_block_ms: first_block.map_or(0.0, |d| d.as_secs_f64() * 1e3),
        elapsed_s: start.elapsed().as_secs_f64(),
        stalled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_times_print_as_utc_time_of_day() {
        // 2023-11-14T22:13:20.123Z
        assert_eq!(block_time_text(1_700_000_000_123_456), "22:13:20.123");
        assert_eq!(block_time_text(0), "00:00:00.000");
    }

    #[test]
    fn a_taken_api_address_falls_back_to_a_port_the_os_picks() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = held.local_addr().unwrap();
        let got = free_or_any_port(taken);
        assert_eq!(got, SocketAddr::new(taken.ip(), 0));
        drop(held);
        // Free again: kept.
        assert_eq!(free_or_any_port(taken), taken);
    }
}
