//! What one simulation run is told ([`SimConfig`], [`RotationPlan`]) and
//! what it reports ([`SimReport`], [`NodeSummary`]).

use std::collections::BTreeMap;

use undchain_sim::{FaultPlan, SplitMix64};
use undchain_types::PublicKey;
use undchain_types::msg::{Evidence, Round};

use super::checker::Violation;
use crate::adversary::Behaviour;
use crate::round::RoundState;
use crate::validator_set::ValidatorSet;
use undchain_types::Hash32;

/// Validator sets driven by each validator's roster instead of a fixed set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationPlan {
    /// Extra validators that start passive (they follow as observers).
    pub passive: usize,
    /// How many of all validators are known (appointed); the last ones by
    /// index.
    pub known: usize,
    /// Blocks per payout period.
    pub blocks_per_period: u64,
    /// Missed blocks in a row before replacement.
    pub missed_vote_threshold: u32,
}

/// Everything one run depends on: with the same configuration (seed
/// included) a run replays event for event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Active validators n (1..=10).
    pub n: usize,
    /// Byzantine validators: node indices `0..byzantine`.
    pub byzantine: usize,
    /// Their behaviour (`None` only with no Byzantine validators).
    pub behaviour: Option<Behaviour>,
    /// The seed (network randomness and anything drawn).
    pub seed: u64,
    /// Heights every honest validator must decide (validators stop two
    /// heights later).
    pub heights: u64,
    /// The one-way message delay unit, microseconds.
    pub unit_us: u64,
    /// What the network and the validators suffer before the heal.
    pub faults: FaultPlan,
    /// Roster-driven validator sets, if any.
    pub rotation: Option<RotationPlan>,
    /// How long after the heal every honest validator has to reach the
    /// target height.
    pub liveness_bound_us: u64,
    /// The agreement bug planted in every driver (mutation check).
    #[cfg(feature = "planted-bugs")]
    pub planted: Option<crate::planted::PlantedBug>,
}

impl SimConfig {
    /// Behaviour and faults drawn from `seed` (the seed-sweep tests and the
    /// `sim` example).
    pub fn drawn(n: usize, byzantine: usize, seed: u64) -> Self {
        Self::drawn_from(n, byzantine, seed, &mut SplitMix64::fork(seed, 1))
    }

    /// Behaviour and faults drawn from `rng` (for [`Self::drawn`], a fork
    /// of `seed`; for the `driver` fuzz target, the input's stream).
    pub fn drawn_from(n: usize, byzantine: usize, seed: u64, rng: &mut SplitMix64) -> Self {
        let unit_us = 1_000;
        let behaviour = if byzantine > 0 {
            rng.pick(&Behaviour::ALL)
        } else {
            None
        };
        let faults = FaultPlan::draw(rng, n, byzantine, unit_us);
        SimConfig {
            n,
            byzantine,
            behaviour,
            seed,
            heights: 6,
            unit_us,
            faults,
            rotation: None,
            liveness_bound_us: 4_000 * unit_us,
            #[cfg(feature = "planted-bugs")]
            planted: None,
        }
    }

    /// A perfect network (every message takes one unit); the behaviour is
    /// still drawn from the seed if `byzantine > 0`.
    pub fn fault_free(n: usize, byzantine: usize, seed: u64) -> Self {
        SimConfig {
            faults: FaultPlan::none(),
            ..SimConfig::drawn(n, byzantine, seed)
        }
    }

    /// The same run with every Byzantine validator behaving as `b`.
    pub fn with_behaviour(mut self, b: Behaviour) -> Self {
        self.behaviour = Some(b);
        self
    }

    /// The same run over drivers with `bug` planted (mutation check).
    #[cfg(feature = "planted-bugs")]
    pub fn with_planted(mut self, bug: crate::planted::PlantedBug) -> Self {
        self.planted = Some(bug);
        self
    }

    /// All validators (active and passive).
    pub fn nodes(&self) -> usize {
        self.n + self.rotation.as_ref().map_or(0, |r| r.passive)
    }
}

/// What one validator did.
#[derive(Debug, Clone)]
pub struct NodeSummary {
    /// The validator's key (node `i` has `undchain_sim::node_key(i)`).
    pub public_key: PublicKey,
    /// Whether it ran the honest driver unaltered (not Byzantine).
    pub honest: bool,
    /// Decided block hashes, by height.
    pub chain: Vec<Hash32>,
    /// When it decided each height (simulated microseconds).
    pub decided_at: Vec<u64>,
    /// The round of each decided block's certificate.
    pub rounds: Vec<Round>,
    /// The validator set it used at each height it started.
    pub sets: Vec<ValidatorSet>,
    /// How many times it restarted after a crash.
    pub restarts: u32,
    /// Where its driver was at the end (`None`: crashed).
    pub final_state: Option<RoundState>,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// The configuration the run was made with.
    pub config: SimConfig,
    /// Broken safety invariants (must be empty with at most f Byzantine).
    pub safety_violations: Vec<Violation>,
    /// Honest validators that did not reach the target after the heal.
    pub liveness_violations: Vec<Violation>,
    /// Heights decided by every honest validator.
    pub heights_decided: u64,
    /// Sum over honest decisions of (decision time - height start) in
    /// delay units.
    pub delay_units_sum: f64,
    /// How many honest decisions the sum covers.
    pub decisions_measured: u64,
    /// Evidence honest validators produced.
    pub evidence: Vec<Evidence>,
    /// Highest round any decision needed.
    pub max_round: Round,
    /// Inputs the drivers refused (bad signatures, strangers, ...).
    pub refused_inputs: u64,
    /// Refused inputs by reason.
    pub refusals: BTreeMap<String, u64>,
    /// Messages handed to a running driver.
    pub messages_delivered: u64,
    /// What each validator did, by node index.
    pub nodes: Vec<NodeSummary>,
    /// Simulated time at the end, microseconds.
    pub end_us: u64,
}

impl SimReport {
    /// Mean (decision time - height start) in delay units.
    pub fn mean_delays_to_decide(&self) -> f64 {
        if self.decisions_measured == 0 {
            0.0
        } else {
            self.delay_units_sum / self.decisions_measured as f64
        }
    }

    /// Whether every invariant held, liveness included.
    pub fn ok(&self) -> bool {
        self.safety_violations.is_empty() && self.liveness_violations.is_empty()
    }

    /// The line to print when a run fails.
    pub fn reproduce_hint(&self) -> String {
        let c = &self.config;
        format!(
            "reproduce with seed={}: cargo run --release -p undchain-consensus --example sim -- --n {} --byzantine {} --seeds 1 --seed {} (behaviour {:?}; safety {:?}; liveness {:?})",
            c.seed,
            c.n,
            c.byzantine,
            c.seed,
            c.behaviour.map(Behaviour::name),
            self.safety_violations,
            self.liveness_violations
        )
    }
}

/// What a sweep of seeds adds up to: the `sim` example's summary line and
/// exit status (docs/BENCHMARKS.md "agreement simulator").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepSummary {
    /// Active validators n.
    pub n: usize,
    /// Byzantine validators among them.
    pub byzantine: usize,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds with at least one safety violation.
    pub safety_violations: u64,
    /// Seeds in which some honest validator did not reach the target
    /// height after the heal.
    pub liveness_failures: u64,
    /// Heights decided by every honest validator, summed over seeds.
    pub heights_decided: u64,
    /// Mean time from starting a height to deciding it, in delay units.
    pub mean_delays_to_decide: f64,
}

impl SweepSummary {
    /// Adds up `reports` (all for the same n and number of Byzantine
    /// validators).
    pub fn of(n: usize, byzantine: usize, reports: &[SimReport]) -> Self {
        let sum: f64 = reports.iter().map(|r| r.delay_units_sum).sum();
        let decisions: u64 = reports.iter().map(|r| r.decisions_measured).sum();
        SweepSummary {
            n,
            byzantine,
            seeds: reports.len() as u64,
            safety_violations: reports
                .iter()
                .filter(|r| !r.safety_violations.is_empty())
                .count() as u64,
            liveness_failures: reports
                .iter()
                .filter(|r| !r.liveness_violations.is_empty())
                .count() as u64,
            heights_decided: reports.iter().map(|r| r.heights_decided).sum(),
            mean_delays_to_decide: if decisions == 0 {
                0.0
            } else {
                sum / decisions as f64
            },
        }
    }

    /// Whether this is the negative control: more Byzantine validators
    /// than f = floor((n-1)/3), where violations are expected.
    pub fn is_negative_control(&self) -> bool {
        self.byzantine > undchain_types::max_faulty(self.n)
    }

    /// Whether the sweep failed: a safety violation or a liveness failure
    /// in some seed, unless this is the negative control.
    pub fn failed(&self) -> bool {
        !self.is_negative_control() && (self.safety_violations > 0 || self.liveness_failures > 0)
    }

    /// The summary line the `sim` example prints.
    pub fn line(&self) -> String {
        format!(
            "n={} byzantine={} seeds={} safety_violations={} liveness_failures={} heights_decided={} mean_delays_to_decide={:.2}",
            self.n,
            self.byzantine,
            self.seeds,
            self.safety_violations,
            self.liveness_failures,
            self.heights_decided,
            self.mean_delays_to_decide
        )
    }

    /// The line that says a negative control exits 0 whatever it found
    /// (`None` for an ordinary sweep).
    pub fn negative_control_line(&self) -> Option<String> {
        self.is_negative_control().then(|| {
            format!(
                "negative_control: byzantine={} > f={}: violations are expected and the exit status is 0",
                self.byzantine,
                undchain_types::max_faulty(self.n)
            )
        })
    }
}
