//! The invariants checked on every run (over the honest validators; a
//! Byzantine one's own state proves nothing): all of them hold identical
//! committed blocks and state roots at each height, and every one that
//! stored a height stored the same bytes (header, requests, operations;
//! the certificates may differ: each holds the precommits it collected);
//! every acknowledged
//! request (by an honest validator) is in exactly one committed job file; nothing committed is
//! lost across a crash and restart; tokens are conserved; the network is
//! live after the faults heal.

use std::collections::BTreeMap;

use undchain_types::JobId;

use super::SimConfig;
use super::world::World;

/// Blocks before the end whose receipts need not be confirmed when the
/// run stops (their receipts go out after the block commits).
pub(crate) const RECEIPT_SLACK: u64 = 4;

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The run's seed.
    pub seed: u64,
    /// Validators.
    pub validators: usize,
    /// Blocks every validator committed.
    pub blocks: u64,
    /// Requests the clients sent.
    pub requests: u64,
    /// Requests at least one validator acknowledged.
    pub acked: u64,
    /// Jobs in committed blocks.
    pub committed_jobs: u64,
    /// Jobs of the largest committed block (at most the chain's
    /// `max_block_jobs`: a larger one fails the run).
    pub largest_block_jobs: u64,
    /// Acknowledged requests never committed.
    pub lost: u64,
    /// Heights at which two validators committed different blocks, plus
    /// jobs committed twice, plus blocks a validator committed twice
    /// differently (after a restart).
    pub safety_violations: u64,
    /// Whether all validators agree on the ledger root at every height.
    pub state_roots_equal: bool,
    /// Further failures (liveness, conservation, restarts), in words.
    pub failures: Vec<String>,
    /// Virtual time simulated, microseconds.
    pub simulated_us: u64,
    /// Events processed.
    pub events: u64,
    /// The Byzantine validators' behaviour and how many ran it.
    pub byzantine: Option<(usize, &'static str)>,
    /// The lowest epoch every running honest validator reached (> 0: the
    /// chain converged).
    pub epoch: u32,
    /// What the real clients and partners did (all zero without them).
    pub lifecycle: Lifecycle,
    /// The Byzantine validators also censored a partner's receipts.
    pub censoring: bool,
    /// The campaign's faults drawn, in one line (empty in other runs).
    pub faults: String,
}

/// The utility lifecycle of a run with real clients and partners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lifecycle {
    /// Jobs settled as completed (a full receipt), over the run's periods.
    pub completed: u64,
    /// Jobs settled on partial completions only.
    pub partial: u64,
    /// Tokens paid to partners at settlements.
    pub paid: u64,
    /// Jobs a partner was paid twice for (two committed receipts of one
    /// partner).
    pub double_paid: u64,
    /// Blobs the real clients stored with a partner.
    pub stored: u64,
    /// Of them, fetched back and checked.
    pub fetched: u64,
    /// Fetched blobs that differ from the stored one.
    pub bad_fetches: u64,
    /// Misbehaving partners an honest validator's challenge caught.
    pub caught: u64,
    /// Client sessions that failed on a silent partner's idle deadline.
    pub silent_failed: u64,
}

impl Report {
    /// Whether the run found no violation, lost nothing and paid nothing
    /// twice.
    pub fn ok(&self) -> bool {
        self.safety_violations == 0
            && self.lost == 0
            && self.lifecycle.double_paid == 0
            && self.lifecycle.bad_fetches == 0
            && self.state_roots_equal
            && self.failures.is_empty()
    }

    /// The summary line of `network_sim`.
    pub fn line(&self) -> String {
        format!(
            "seed={} validators={} blocks={} requests={} acked={} committed_jobs={} lost={} safety_violations={} state_roots_equal={}",
            self.seed,
            self.validators,
            self.blocks,
            self.requests,
            self.acked,
            self.committed_jobs,
            self.lost,
            self.safety_violations,
            self.state_roots_equal
        )
    }
}

impl Report {
    /// What a failed run prints after its summary line (the Byzantine
    /// behaviour drawn, each failure, how to reproduce it); nothing for a
    /// clean run.
    pub fn failure_lines(&self) -> Vec<String> {
        if self.ok() {
            return Vec::new();
        }
        let seed = self.seed;
        let mut out = Vec::new();
        if let Some((k, b)) = self.byzantine {
            let censor = if self.censoring {
                " censoring-receipts"
            } else {
                ""
            };
            out.push(format!(
                "failure seed={seed}: byzantine={k} behaviour={b}{censor}"
            ));
        }
        if !self.faults.is_empty() {
            out.push(format!("failure seed={seed}: {}", self.faults));
        }
        out.extend(
            self.failures
                .iter()
                .map(|f| format!("failure seed={seed}: {f}")),
        );
        out.push(format!("reproduce with --seed {seed}"));
        out
    }

    /// The summary line of `lifecycle_sim`.
    pub fn lifecycle_line(&self) -> String {
        let l = &self.lifecycle;
        format!(
            "seed={} validators={} blocks={} requests={} acked={} committed_jobs={} completed={} partial={} paid={} lost={} double_paid={} safety_violations={}",
            self.seed,
            self.validators,
            self.blocks,
            self.requests,
            self.acked,
            self.committed_jobs,
            l.completed,
            l.partial,
            l.paid,
            self.lost,
            l.double_paid,
            self.safety_violations
        )
    }
}

/// The last line of a run over `seeds` seeds of which `failed` failed:
/// `seeds=<K> failed_seeds=<comma list or none>`.
pub fn seeds_line(seeds: u64, failed: &[u64]) -> String {
    format!("seeds={seeds} failed_seeds={}", seed_list(failed))
}

/// `failed` as a comma list, or `none`.
pub(crate) fn seed_list(failed: &[u64]) -> String {
    if failed.is_empty() {
        return "none".to_string();
    }
    failed
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The committed bytes of a stored block: its header, its requests and
/// its operations (not its certificate, which each validator assembles
/// from the precommits it received).
fn committed_bytes(b: &crate::BlockRecord) -> Vec<u8> {
    let mut out = undchain_types::wire::encode_bare(&b.block.header);
    for r in &b.requests {
        out.extend_from_slice(&r.to_bytes());
    }
    out.extend_from_slice(&undchain_types::wire::encode_bare(&b.ops));
    out
}

/// Heights at which two honest validators stored different bytes, each
/// with the first two validators that differ.
fn byte_mismatches(w: &World) -> Vec<(u64, usize, usize)> {
    let mut first: BTreeMap<u64, (usize, Vec<u8>)> = BTreeMap::new();
    let mut out: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for (i, n) in w.nodes.iter().enumerate() {
        if n.byzantine.is_some() {
            continue;
        }
        for b in &n.disk.stored().blocks {
            let h = b.block.header.number.0;
            let bytes = committed_bytes(b);
            match first.get(&h) {
                None => {
                    first.insert(h, (i, bytes));
                }
                Some((j, seen)) if *seen != bytes => {
                    out.entry(h).or_insert((*j, i));
                }
                Some(_) => {}
            }
        }
    }
    out.into_iter().map(|(h, (a, b))| (h, a, b)).collect()
}

/// The lifecycle of `w`'s real users, from the longest honest chain's
/// settlements and operations.
fn lifecycle(w: &World) -> Lifecycle {
    let mut l = Lifecycle::default();
    let Some(node) = longest_honest(w) else {
        return l;
    };
    for e in &node.notices {
        if let crate::NodeEvent::PeriodSettled {
            completed,
            partial,
            paid,
            ..
        } = e
        {
            l.completed += completed;
            l.partial += partial;
            l.paid += paid.0;
        }
    }
    let mut receipts = std::collections::BTreeSet::new();
    for b in &node.disk.stored().blocks {
        for op in &b.ops {
            if let undchain_types::msg::Operation::Receipt(r) = op {
                if !receipts.insert((r.terms.job, r.terms.partner)) {
                    l.double_paid += 1;
                }
            }
        }
    }
    for u in &w.users {
        l.stored += u.stored.values().filter(|s| s.partner.is_some()).count() as u64;
        l.fetched += u.stored.values().filter(|s| s.fetched).count() as u64;
        l.bad_fetches += u.bad_fetches;
    }
    (l.caught, l.silent_failed) = w.partner_counts();
    l
}

/// Every committed job and the block it is in, from the stored blocks of
/// the validator that committed the most; a second copy of a job counts
/// in the returned duplicates.
pub(crate) fn committed_jobs(w: &World) -> BTreeMap<JobId, u64> {
    committed_with_duplicates(w).0
}

fn committed_with_duplicates(w: &World) -> (BTreeMap<JobId, u64>, u64) {
    let Some(node) = longest_honest(w) else {
        return (BTreeMap::new(), 0);
    };
    let mut jobs = BTreeMap::new();
    let mut dup = 0;
    for b in &node.disk.stored().blocks {
        for r in &b.requests {
            let id = JobId::from_request_digest(r.digest());
            if jobs.insert(id, b.block.header.number.0).is_some() {
                dup += 1;
            }
        }
    }
    (jobs, dup)
}

/// Jobs in the largest block the longest honest validator stored.
fn largest_block(w: &World) -> u64 {
    longest_honest(w)
        .and_then(|n| {
            n.disk
                .stored()
                .blocks
                .iter()
                .map(|b| b.requests.len())
                .max()
        })
        .unwrap_or(0) as u64
}

/// The honest validator that stored the most blocks.
fn longest_honest(w: &World) -> Option<&super::world::Node> {
    w.nodes
        .iter()
        .filter(|n| n.byzantine.is_none())
        .max_by_key(|n| n.disk.stored().blocks.len())
}

/// The jobs whose receipt a committed block holds, and the receipts
/// committed more than once.
pub(crate) fn committed_receipts(w: &World) -> (BTreeMap<JobId, u64>, u64) {
    let mut claims = BTreeMap::new();
    let mut dup = 0;
    let Some(node) = longest_honest(w) else {
        return (claims, 0);
    };
    for b in &node.disk.stored().blocks {
        for op in &b.ops {
            if let undchain_types::msg::Operation::Receipt(r) = op {
                if claims
                    .insert(r.terms.job, b.block.header.number.0)
                    .is_some()
                {
                    dup += 1;
                }
            }
        }
    }
    (claims, dup)
}

/// Checks `w` after its run.
pub(crate) fn report(cfg: &SimConfig, w: &World) -> Report {
    let mut failures = Vec::new();
    let mut violations = 0u64;
    let mut roots_equal = true;
    let honest: Vec<_> = w.nodes.iter().filter(|n| n.byzantine.is_none()).collect();
    let max_height = honest
        .iter()
        .filter_map(|n| n.commits.keys().next_back())
        .max()
        .copied();
    for h in 0..=max_height.unwrap_or(0) {
        let seen: Vec<_> = honest.iter().filter_map(|n| n.commits.get(&h)).collect();
        if let Some(first) = seen.first() {
            if seen.iter().any(|s| s.0 != first.0) {
                violations += 1;
                if violations <= 3 {
                    failures.push(format!(
                        "safety: honest validators committed different blocks at height {h}"
                    ));
                }
            }
            if seen.iter().any(|s| s.1 != first.1) {
                roots_equal = false;
            }
        }
    }
    // Stored chains agree with what was announced, and with each other.
    for (i, n) in w.nodes.iter().enumerate() {
        if n.byzantine.is_some() {
            continue;
        }
        violations += n.recommitted;
        for b in &n.disk.stored().blocks {
            let h = b.block.header.number.0;
            let hash = b.block.header.hash_with(w.params.hash_algorithm);
            if n.commits.get(&h).is_some_and(|c| c.0 != hash) {
                violations += 1;
            }
        }
        if n.diverged {
            failures.push(format!("validator {i} diverged from a decided ledger root"));
        }
        for e in &n.restart_failures {
            failures.push(format!("validator {i} could not restart: {e}"));
        }
        if let Some(core) = n.core.as_ref() {
            let l = core.validator().ledger();
            if l.total_held() != l.supply().circulating() {
                failures.push(format!("validator {i}: tokens not conserved"));
            }
        }
    }
    let mismatches = byte_mismatches(w);
    violations += mismatches.len() as u64;
    for (h, a, b) in mismatches.iter().take(3) {
        failures.push(format!(
            "safety: validators {a} and {b} stored different committed bytes at height {h}"
        ));
    }
    let (committed, dup) = committed_with_duplicates(w);
    violations += dup;
    let (receipts, dup) = committed_receipts(w);
    violations += dup;
    let users = w.user_jobs();
    let acked = w.load.acked().count() as u64 + users.iter().filter(|j| j.1).count() as u64;
    let lost = w
        .honestly_acked()
        .filter(|id| !committed.contains_key(*id))
        .count() as u64
        + users
            .iter()
            .filter(|(id, acked)| *acked && !committed.contains_key(id))
            .count() as u64
        + w.honestly_confirmed()
            .filter(|id| !receipts.contains_key(*id))
            .count() as u64;
    let missing = w.receipts_due(&committed, &receipts).count();
    failures.extend(w.partner_failures());
    let largest_block_jobs = largest_block(w);
    let max_jobs = cfg
        .max_block_jobs
        .unwrap_or(undchain_types::params::DEFAULT_MAX_BLOCK_JOBS);
    if largest_block_jobs > u64::from(max_jobs) {
        failures.push(format!(
            "a committed block carries {largest_block_jobs} jobs, more than max_block_jobs = {max_jobs}"
        ));
    }
    let l = lifecycle(w);
    if l.bad_fetches > 0 {
        failures.push(format!(
            "{} fetched blobs differ from the stored ones",
            l.bad_fetches
        ));
    }
    if missing > 0 {
        failures.push(format!(
            "liveness: {missing} receipts of jobs committed {RECEIPT_SLACK} blocks before the end never committed"
        ));
    }
    let blocks = w.min_committed();
    if blocks < cfg.blocks {
        let heights: Vec<String> = honest
            .iter()
            .map(|n| {
                let h = n.commits.keys().next_back().map_or(0, |h| h + 1);
                if n.core.is_some() {
                    h.to_string()
                } else {
                    format!("{h}(down)")
                }
            })
            .collect();
        failures.push(format!(
            "liveness: {blocks} of {} blocks committed by every honest validator (heights {})",
            cfg.blocks,
            heights.join(",")
        ));
    }
    Report {
        seed: cfg.seed,
        validators: cfg.validators,
        blocks,
        requests: w.load.sent + users.len() as u64,
        acked,
        committed_jobs: committed.len() as u64,
        largest_block_jobs,
        lost,
        safety_violations: violations,
        state_roots_equal: roots_equal,
        failures,
        simulated_us: w.finished_at_us,
        events: w.events,
        byzantine: byzantine_of(w),
        epoch: honest
            .iter()
            .filter_map(|n| n.core.as_ref().map(|c| c.validator().epoch().0))
            .min()
            .unwrap_or(0),
        lifecycle: lifecycle(w),
        censoring: w
            .nodes
            .iter()
            .any(|n| n.byzantine.as_ref().is_some_and(|b| b.censoring())),
        faults: match cfg.profile {
            super::FaultProfile::Campaign if cfg.faults => {
                super::campaign::describe(&w.plan, &w.chaos)
            }
            _ => String::new(),
        },
    }
}

/// How many validators of `w` are Byzantine, and their behaviour's name.
fn byzantine_of(w: &World) -> Option<(usize, &'static str)> {
    let bad: Vec<_> = (0..w.nodes.len()).filter_map(|i| w.byzantine(i)).collect();
    bad.first().map(|b| (bad.len(), *b))
}
