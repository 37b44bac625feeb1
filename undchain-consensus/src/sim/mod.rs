//! A deterministic, seeded, in-process simulator for agreement, reusable by
//! later issues (TigerBeetle-style: faults drawn per seed, a failing run
//! prints "reproduce with seed=...").
//!
//! n validators run the real [`Driver`]s over a virtual clock (simulated
//! microseconds) and a network ([`FaultPlan`], from `undchain-sim`) that drops,
//! duplicates, delays, reorders and partitions messages; honest validators
//! crash (between inputs, or "torn" in the middle of carrying out outputs)
//! and restart from what they persisted; the first `byzantine` validators
//! run a [`byzantine::Behaviour`]. The simulator is the host: it builds
//! block headers on request, checks their validity (sometimes answering
//! "pending" while a job file is being reconciled), stores decided blocks,
//! serves catch-up requests and, with a [`RotationPlan`], drives each
//! validator's own [`Roster`] so validator sets rotate and replace members
//! exactly as on a real chain.
//!
//! The [`checker::Checker`] watches every honest validator: agreement,
//! validity of each decided header on the validator's own chain, no two
//! different messages signed for one slot (across restarts), certificates
//! that verify against the height's set, identical validator sets; and
//! after the network heals every honest validator must reach the target
//! height (liveness).
//!
//! Same [`SimConfig`] (including the seed), same run, event for event.

pub mod byzantine;
pub mod checker;

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::rc::Rc;

use undchain_types::msg::{BlockResponse, CommittedBlock, Evidence, Round};
use undchain_types::{
    BlockHeader, BlockNumber, BlockTime, BoundedVec, ChainId, Hash32, HashAlgorithm, HashContext,
    Message, PerceptionScore, PublicKey, Signature, SigningKey, Trust, hash, hash_parts,
};

use crate::certificate::{SignatureVerifier, check_parent_commit, verify_committed_block};
use crate::driver::{
    Driver, DriverConfig, Output, PersistedState, Timeout, TimeoutConfig, Validity,
};
use crate::roster::{Candidate, Roster, RosterConfig};
use crate::round::{Step, TimeoutKind, Value};
use crate::score::ScoreRules;
use crate::validator_set::ValidatorSet;

pub use byzantine::{ActorCtx, Behaviour, Coalition, transform};
pub use checker::{Checker, Violation};
/// The simulator's random stream: the kit's (`undchain_sim::SplitMix64`).
pub use undchain_sim::SplitMix64 as SimRng;
pub use undchain_sim::{Crash, FaultPlan, Partition};

/// The simulated chain's id.
pub const SIM_CHAIN: ChainId = ChainId(0x51);

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

/// One run.
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
    /// Faults.
    pub faults: FaultPlan,
    /// Roster-driven validator sets, if any.
    pub rotation: Option<RotationPlan>,
    /// How long after the heal every honest validator has to reach the
    /// target height.
    pub liveness_bound_us: u64,
}

impl SimConfig {
    /// Behaviour and faults drawn from `seed` (the seed-sweep tests and the
    /// `sim` example).
    pub fn drawn(n: usize, byzantine: usize, seed: u64) -> Self {
        let unit_us = 1_000;
        let mut rng = SimRng::fork(seed, 1);
        let behaviour = if byzantine > 0 {
            rng.pick(&Behaviour::ALL)
        } else {
            None
        };
        let faults = FaultPlan::draw(&mut rng, n, byzantine, unit_us);
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

    /// Sets the behaviour.
    pub fn with_behaviour(mut self, b: Behaviour) -> Self {
        self.behaviour = Some(b);
        self
    }

    /// All validators (active and passive).
    pub fn nodes(&self) -> usize {
        self.n + self.rotation.as_ref().map_or(0, |r| r.passive)
    }
}

/// Checks signatures once per (signer, digest, signature) for all
/// simulated validators together: ed25519 is most of a simulation's cost,
/// and every validator would otherwise check the same broadcast again.
#[derive(Debug, Clone, Default)]
pub struct SharedVerifier {
    cache: Rc<RefCell<VerifyCache>>,
}

/// Verdicts by (signer, digest, signature).
type VerifyCache = BTreeMap<(PublicKey, Hash32, Signature), bool>;

impl SignatureVerifier for SharedVerifier {
    fn verify(&mut self, signer: &PublicKey, digest: &Hash32, signature: &Signature) -> bool {
        let key = (*signer, *digest, *signature);
        if let Some(ok) = self.cache.borrow().get(&key) {
            return *ok;
        }
        let ok = signer.verify_digest(digest, signature).is_ok();
        self.cache.borrow_mut().insert(key, ok);
        ok
    }
}

/// What one validator did.
#[derive(Debug, Clone)]
pub struct NodeSummary {
    /// Its identity.
    pub public_key: PublicKey,
    /// Not Byzantine.
    pub honest: bool,
    /// Decided block hashes, by height.
    pub chain: Vec<Hash32>,
    /// When it decided each height (simulated microseconds).
    pub decided_at: Vec<u64>,
    /// The round of each decided block's certificate.
    pub rounds: Vec<Round>,
    /// The validator set it used at each height it started.
    pub sets: Vec<ValidatorSet>,
    /// Restarts.
    pub restarts: u32,
    /// Where its driver was at the end (`None`: crashed).
    pub final_state: Option<crate::round::RoundState>,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// The configuration.
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
    /// Honest decisions measured.
    pub decisions_measured: u64,
    /// Evidence honest validators produced.
    pub evidence: Vec<Evidence>,
    /// Highest round any decision needed.
    pub max_round: Round,
    /// Inputs the drivers refused (bad signatures, strangers, ...).
    pub refused_inputs: u64,
    /// Refused inputs by reason.
    pub refusals: BTreeMap<String, u64>,
    /// Messages delivered.
    pub messages_delivered: u64,
    /// Per validator.
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

#[derive(Debug)]
enum Event {
    Deliver {
        to: usize,
        from: usize,
        msg: Box<Message>,
    },
    Wake {
        node: usize,
        incarnation: u64,
    },
    Validity {
        node: usize,
        incarnation: u64,
        height: BlockNumber,
        id: Hash32,
        validity: Validity,
    },
    Crash {
        node: usize,
        down_us: u64,
        torn: bool,
    },
    Restart {
        node: usize,
    },
    StartHeight {
        node: usize,
        incarnation: u64,
        height: BlockNumber,
    },
}

#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    // Earliest first in a max-heap.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Debug)]
struct Node {
    key: SigningKey,
    pk: PublicKey,
    honest: bool,
    driver: Option<Driver<SharedVerifier>>,
    incarnation: u64,
    // Durable storage: survives crashes.
    chain: Vec<CommittedBlock>,
    decided_at: Vec<u64>,
    persisted: Option<PersistedState>,
    roster: Option<Roster>,
    // Bookkeeping.
    height_started_at: u64,
    torn_crash: Option<u64>,
    restarts: u32,
    sets: Vec<ValidatorSet>,
    // The driver's pending timeouts (at, arming order, timeout) and the
    // wake-up the host has scheduled for the earliest.
    timers: Vec<(u64, u64, Timeout)>,
    timer_seq: u64,
    wake_at: Option<u64>,
}

/// One batch of outputs, split as a `Ready` splits it.
#[derive(Debug, Default)]
struct Batch {
    immediate: Vec<Output>,
    persist: Option<PersistedState>,
    after_persist: Vec<Output>,
}

impl Batch {
    fn steps(&self) -> usize {
        self.immediate.len() + usize::from(self.persist.is_some()) + self.after_persist.len()
    }
}

/// Most events one run may process (a guard against a livelock bug, which
/// is then reported as a liveness violation).
const MAX_EVENTS: u64 = 20_000_000;

/// One simulation run.
#[derive(Debug)]
pub struct Simulation {
    config: SimConfig,
    driver_config: DriverConfig,
    nodes: Vec<Node>,
    index_of: BTreeMap<PublicKey, usize>,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    now: u64,
    rng: SimRng,
    coalition: Coalition,
    checker: Checker,
    verifier: SharedVerifier,
    static_set: Option<ValidatorSet>,
    genesis_hash: Hash32,
    delay_units_sum: f64,
    decisions_measured: u64,
    evidence: Vec<Evidence>,
    max_round: Round,
    refused: u64,
    refusals: BTreeMap<String, u64>,
    delivered: u64,
}

/// The fixed test key of node `i` (a small fixed key set keeps signatures
/// reproducible across runs).
pub fn node_key(i: usize) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    seed[8..16].copy_from_slice(b"undsimky");
    SigningKey::from_seed(seed)
}

impl Simulation {
    /// Sets up a run.
    pub fn new(config: SimConfig) -> Self {
        let total = config.nodes();
        let unit = config.unit_us.max(1);
        let mut driver_config = DriverConfig::new(SIM_CHAIN);
        driver_config.timeouts = TimeoutConfig::for_delay(unit);
        let genesis_hash = hash_parts(HashContext::Genesis, &[b"sim", &config.seed.to_le_bytes()]);
        let verifier = SharedVerifier::default();
        let keys: Vec<SigningKey> = (0..total).map(node_key).collect();
        let index_of = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.public(), i))
            .collect();
        let (static_set, roster) = match &config.rotation {
            None => {
                let ids: Vec<PublicKey> = keys[..config.n].iter().map(|k| k.public()).collect();
                (ValidatorSet::of_unknown(&ids).ok(), None)
            }
            Some(plan) => {
                let candidates: Vec<Candidate> = keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| Candidate {
                        id: k.public(),
                        trust: if i >= total.saturating_sub(plan.known) {
                            Trust::Known
                        } else {
                            Trust::Unknown
                        },
                        score: PerceptionScore::START,
                    })
                    .collect();
                let rc = RosterConfig {
                    active_seats: config.n,
                    max_known_active: config.n * 44 / 100,
                    missed_vote_threshold: plan.missed_vote_threshold,
                    blocks_per_period: plan.blocks_per_period.max(1),
                    floor: PerceptionScore::new(200).unwrap_or(PerceptionScore::MIN),
                    rules: ScoreRules::default(),
                    hash_algorithm: HashAlgorithm::Blake3,
                };
                (None, Roster::genesis(rc, &candidates, genesis_hash).ok())
            }
        };
        let nodes = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| Node {
                pk: key.public(),
                key,
                honest: i >= config.byzantine,
                driver: None,
                incarnation: 0,
                chain: Vec::new(),
                decided_at: Vec::new(),
                persisted: None,
                roster: roster.clone(),
                height_started_at: 0,
                torn_crash: None,
                restarts: 0,
                sets: Vec::new(),
                timers: Vec::new(),
                timer_seq: 0,
                wake_at: None,
            })
            .collect();
        Simulation {
            rng: SimRng::fork(config.seed, 2),
            coalition: Coalition::new(0..config.byzantine),
            driver_config,
            nodes,
            index_of,
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            checker: Checker::default(),
            verifier,
            static_set,
            genesis_hash,
            delay_units_sum: 0.0,
            decisions_measured: 0,
            evidence: Vec::new(),
            max_round: 0,
            refused: 0,
            refusals: BTreeMap::new(),
            delivered: 0,
            config,
        }
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> SimReport {
        for c in self.config.faults.crashes.clone() {
            self.push(
                c.at_us,
                Event::Crash {
                    node: c.node,
                    down_us: c.down_us,
                    torn: c.torn,
                },
            );
        }
        for i in 0..self.nodes.len() {
            self.boot(i);
        }
        let deadline = self
            .config
            .faults
            .heal_at_us
            .saturating_add(self.config.liveness_bound_us);
        let mut events = 0u64;
        while let Some(s) = self.queue.pop() {
            if s.at > deadline || events >= MAX_EVENTS {
                break;
            }
            events += 1;
            self.now = s.at;
            self.dispatch(s.event);
            if self.now >= self.config.faults.heal_at_us && self.all_reached() {
                break;
            }
        }
        self.report()
    }

    fn all_reached(&self) -> bool {
        self.nodes
            .iter()
            .filter(|n| n.honest)
            .all(|n| n.chain.len() as u64 >= self.config.heights)
    }

    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    fn set_for(&self, i: usize, height: BlockNumber) -> Option<ValidatorSet> {
        match (&self.static_set, &self.nodes[i].roster) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(r)) if r.height() == height => Some(r.validator_set().clone()),
            _ => None,
        }
    }

    fn parent_set_for(&self, i: usize, height: BlockNumber) -> Option<ValidatorSet> {
        if height.0 == 0 {
            return None;
        }
        match (&self.static_set, &self.nodes[i].roster) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(r)) if r.height() == height => r.previous_set().cloned(),
            _ => None,
        }
    }

    /// Starts (or restarts) node `i` from its storage.
    fn boot(&mut self, i: usize) {
        let tip = BlockNumber(self.nodes[i].chain.len() as u64);
        let Some(set) = self.set_for(i, tip) else {
            return;
        };
        let mut driver = Driver::with_verifier(
            self.driver_config.clone(),
            self.nodes[i].key.clone(),
            self.verifier.clone(),
        );
        let now = BlockTime(self.now);
        let resume = self.nodes[i]
            .persisted
            .clone()
            .filter(|p| p.round_state.height == tip && p.round_state.step != Step::Commit);
        self.nodes[i].timers.clear();
        let out = match resume {
            Some(p) => driver.resume(now, p, set.clone()),
            None => driver.start_height(now, tip, set.clone()),
        };
        let node = &mut self.nodes[i];
        node.driver = Some(driver);
        node.height_started_at = self.now;
        if node.sets.len() as u64 == tip.0 {
            node.sets.push(set.clone());
        }
        if node.honest {
            self.checker.set_used(i, tip, set.hash());
        }
        self.carry_out(i, out);
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, msg } => {
                if self.nodes[to].driver.is_none() {
                    return;
                }
                self.delivered += 1;
                if self.coalition.contains(to) && self.config.behaviour == Some(Behaviour::Replayer)
                {
                    self.coalition.observe(&msg);
                }
                let from_pk = self.nodes[from].pk;
                let now = BlockTime(self.now);
                let Some(d) = self.nodes[to].driver.as_mut() else {
                    return;
                };
                match d.handle_message(now, from_pk, *msg) {
                    Ok(out) => self.carry_out(to, out),
                    Err(e) => {
                        self.refused += 1;
                        let name = format!("{e:?}");
                        let name = name.split([' ', '{', '(']).next().unwrap_or("").to_string();
                        *self.refusals.entry(name).or_insert(0) += 1;
                    }
                }
            }
            Event::Wake { node, incarnation } => {
                if self.nodes[node].incarnation != incarnation
                    || self.nodes[node].wake_at != Some(self.now)
                {
                    return;
                }
                self.nodes[node].wake_at = None;
                let now = BlockTime(self.now);
                let t = self.now;
                let n = &mut self.nodes[node];
                let mut due: Vec<(u64, u64, Timeout)> =
                    n.timers.iter().copied().filter(|e| e.0 <= t).collect();
                due.sort_unstable();
                n.timers.retain(|e| e.0 > t);
                if let Some(d) = n.driver.as_mut() {
                    let mut out = Vec::new();
                    for (_, _, timeout) in due {
                        out.extend(d.handle_timeout(now, timeout));
                    }
                    self.carry_out(node, out);
                }
            }
            Event::Validity {
                node,
                incarnation,
                height,
                id,
                validity,
            } => {
                if self.nodes[node].incarnation != incarnation {
                    return;
                }
                let now = BlockTime(self.now);
                if let Some(d) = self.nodes[node].driver.as_mut() {
                    let out = d.handle_validity(now, height, id, validity);
                    self.carry_out(node, out);
                }
            }
            Event::Crash {
                node,
                down_us,
                torn,
            } => {
                if self.nodes[node].driver.is_none() {
                    return;
                }
                if torn {
                    self.nodes[node].torn_crash = Some(down_us);
                } else {
                    self.crash_now(node, down_us);
                }
            }
            Event::Restart { node } => {
                self.nodes[node].restarts += 1;
                self.boot(node);
            }
            Event::StartHeight {
                node,
                incarnation,
                height,
            } => {
                if self.nodes[node].incarnation != incarnation
                    || self.nodes[node].chain.len() as u64 != height.0
                {
                    return;
                }
                let Some(set) = self.set_for(node, height) else {
                    return;
                };
                let n = &mut self.nodes[node];
                n.height_started_at = self.now;
                n.sets.push(set.clone());
                if n.honest {
                    self.checker.set_used(node, height, set.hash());
                }
                let now = BlockTime(self.now);
                self.nodes[node].timers.clear();
                if let Some(d) = self.nodes[node].driver.as_mut() {
                    let out = d.start_height(now, height, set);
                    self.carry_out(node, out);
                }
            }
        }
    }

    fn crash_now(&mut self, i: usize, down_us: u64) {
        let node = &mut self.nodes[i];
        node.driver = None;
        node.timers.clear();
        node.wake_at = None;
        node.torn_crash = None;
        node.incarnation += 1;
        self.push(self.now + down_us, Event::Restart { node: i });
    }

    /// Splits a driver's outputs as a `Ready` batch does: timers go to
    /// the driver's pending list, own signed messages after the write.
    fn batch(&mut self, i: usize, outputs: Vec<Output>) -> Batch {
        let me = self.nodes[i].pk;
        let mut b = Batch::default();
        for o in outputs {
            match o {
                Output::Persist(s) => b.persist = Some(*s),
                Output::ScheduleTimeout { timeout, at } => {
                    let n = &mut self.nodes[i];
                    n.timer_seq += 1;
                    n.timers.push((at.0, n.timer_seq, timeout));
                }
                Output::Broadcast(ref m) | Output::Send { message: ref m, .. }
                    if signed_by(m, &me) =>
                {
                    b.after_persist.push(o)
                }
                o => b.immediate.push(o),
            }
        }
        b
    }

    /// Carries out a driver's batches as a node's host would: what
    /// promises nothing, then the write, then what needed it; answers to
    /// requests made meanwhile form the next batch. A torn crash hits after
    /// a drawn number of the first batch's steps.
    fn carry_out(&mut self, i: usize, outputs: Vec<Output>) {
        let mut batch = self.batch(i, outputs);
        let cut = self.nodes[i]
            .torn_crash
            .map(|down| (self.rng.below(batch.steps() as u64 + 1), down));
        let mut done = 0u64;
        loop {
            let mut next: Vec<Output> = Vec::new();
            let mut steps: Vec<Option<Output>> = batch.immediate.drain(..).map(Some).collect();
            if batch.persist.is_some() {
                steps.push(None);
            }
            steps.extend(batch.after_persist.drain(..).map(Some));
            if steps.is_empty() {
                break;
            }
            for step in steps {
                if let Some((at, down)) = cut {
                    if done == at {
                        self.crash_now(i, down);
                        return;
                    }
                }
                done += 1;
                if self.nodes[i].driver.is_none() {
                    return;
                }
                match step {
                    None => self.nodes[i].persisted = batch.persist.take(),
                    Some(o) => self.carry_out_one(i, o, &mut next),
                }
            }
            batch = self.batch(i, next);
        }
        if let Some((_, down)) = cut {
            if self.nodes[i].driver.is_some() {
                self.crash_now(i, down);
                return;
            }
        }
        self.schedule_wake(i);
    }

    /// Schedules a wake-up for the driver's earliest pending timeout that
    /// can still act, unless one is scheduled earlier already.
    fn schedule_wake(&mut self, i: usize) {
        let n = &self.nodes[i];
        let Some(d) = n.driver.as_ref() else {
            return;
        };
        let st = d.state();
        let due = n
            .timers
            .iter()
            .filter(|(_, _, t)| {
                t.height == st.height
                    && st.step != Step::Commit
                    && (t.kind == TimeoutKind::Rebroadcast || t.round >= st.round)
            })
            .map(|e| e.0)
            .min();
        if let Some(at) = due {
            if n.wake_at.is_none_or(|w| at < w) {
                let incarnation = n.incarnation;
                self.nodes[i].wake_at = Some(at);
                self.push(
                    at,
                    Event::Wake {
                        node: i,
                        incarnation,
                    },
                );
            }
        }
    }

    fn carry_out_one(&mut self, i: usize, o: Output, work: &mut Vec<Output>) {
        let now = BlockTime(self.now);
        match o {
            Output::Persist(_) => {}
            Output::Broadcast(msg) => {
                if self.nodes[i].honest {
                    let id = self.nodes[i].pk;
                    self.checker.sent(i, &id, &msg);
                }
                let recipients: Vec<usize> = (0..self.nodes.len()).filter(|r| *r != i).collect();
                self.route(i, &recipients, msg);
            }
            Output::Send { to, message } => {
                if let Some(&r) = self.index_of.get(&to) {
                    self.route(i, &[r], message);
                }
            }
            Output::ScheduleTimeout { .. } => {}
            Output::GetValue { height, round } => {
                if let Some(value) = self.build_value(i, height, round) {
                    if let Some(d) = self.nodes[i].driver.as_mut() {
                        work.extend(d.propose_value(now, height, round, value));
                    }
                }
            }
            Output::CheckValue {
                height, id, value, ..
            } => {
                let verdict = self.check_value(i, height, &value);
                let pending = self
                    .rng
                    .chance(self.config.faults.pending_validity_permille);
                let answer = if pending { Validity::Pending } else { verdict };
                if pending {
                    let later = self.now
                        + self.config.unit_us
                            * self.rng.range(1, self.config.faults.pending_units.max(1));
                    let incarnation = self.nodes[i].incarnation;
                    self.push(
                        later,
                        Event::Validity {
                            node: i,
                            incarnation,
                            height,
                            id,
                            validity: verdict,
                        },
                    );
                }
                if let Some(d) = self.nodes[i].driver.as_mut() {
                    work.extend(d.handle_validity(now, height, id, answer));
                }
            }
            Output::Decide(block) => self.on_decide(i, *block),
            Output::Evidence(e) => {
                if self.nodes[i].honest && self.evidence.len() < 256 {
                    self.evidence.push(*e);
                }
            }
            Output::ServeBlocks { to, request } => {
                let chain = &self.nodes[i].chain;
                let from = (request.from.0 as usize).min(chain.len());
                let max =
                    usize::from(request.max).min(undchain_types::msg::MAX_BLOCKS_PER_RESPONSE);
                let blocks: Vec<CommittedBlock> =
                    chain[from..(from + max).min(chain.len())].to_vec();
                if blocks.is_empty() {
                    return;
                }
                let resp = BlockResponse {
                    blocks: BoundedVec::truncating(blocks),
                    tip: BlockNumber(chain.len().saturating_sub(1) as u64),
                };
                if let Some(&r) = self.index_of.get(&to) {
                    self.route(i, &[r], Message::BlockResponse(resp));
                }
            }
        }
    }

    /// Sends from `i` to `recipients` through Byzantine rewriting (if `i` is
    /// Byzantine), partitions and the lossy network.
    fn route(&mut self, i: usize, recipients: &[usize], msg: Message) {
        let sends: Vec<(usize, Message)> = match (self.nodes[i].honest, self.config.behaviour) {
            (false, Some(b)) => transform(
                b,
                ActorCtx {
                    key: &self.nodes[i].key,
                    recipients,
                    rng: &mut self.rng,
                    hash_algorithm: HashAlgorithm::Blake3,
                },
                &mut self.coalition,
                msg,
            ),
            _ => recipients.iter().map(|r| (*r, msg.clone())).collect(),
        };
        for (to, m) in sends {
            if to == i || self.config.faults.partitioned(self.now, i, to) {
                continue;
            }
            let delays =
                self.config
                    .faults
                    .deliveries(&mut self.rng, self.now, self.config.unit_us);
            for d in delays {
                self.push(
                    self.now + d,
                    Event::Deliver {
                        to,
                        from: i,
                        msg: Box::new(m.clone()),
                    },
                );
            }
        }
    }

    /// The host's `getValue()`: a header on top of node `i`'s chain.
    fn build_value(&self, i: usize, height: BlockNumber, round: Round) -> Option<Value> {
        let node = &self.nodes[i];
        if node.chain.len() as u64 != height.0 {
            return None;
        }
        let set = self.set_for(i, height)?;
        let prev = node.chain.last();
        let parent_set = self.parent_set_for(i, height);
        let parent_signers = match (prev, &parent_set) {
            (Some(b), Some(ps)) => ps.bitmap(b.certificate.signatures.iter().map(|s| &s.validator)),
            _ => 0,
        };
        let header = BlockHeader {
            chain_id: SIM_CHAIN,
            epoch: 0,
            number: height,
            time: BlockTime(height.0),
            parent: prev.map_or(self.genesis_hash, |b| b.header.hash()),
            job_root: hash_parts(
                HashContext::JobFileNode,
                &[
                    &self.config.seed.to_le_bytes(),
                    &height.0.to_le_bytes(),
                    &round.to_le_bytes(),
                    &(i as u64).to_le_bytes(),
                ],
            ),
            job_count: (height.0 + u64::from(round)) % 7,
            ledger_root: Hash32::ZERO,
            validator_set_hash: set.hash(),
            links: BoundedVec::new(),
            parent_signers,
        };
        Some(Value {
            header,
            parent_certificate: prev.map(|b| b.certificate.clone()),
        })
    }

    /// What is wrong with `header` as block `height` on node `i`'s chain.
    fn header_problem(
        &self,
        i: usize,
        height: BlockNumber,
        header: &BlockHeader,
    ) -> Option<String> {
        let node = &self.nodes[i];
        if header.chain_id != SIM_CHAIN || header.epoch != 0 {
            return Some("wrong chain or epoch".into());
        }
        if header.number != height || node.chain.len() as u64 != height.0 {
            return Some(format!("block {} at height {height}", header.number));
        }
        if header.time != BlockTime(height.0) {
            return Some("wrong block time".into());
        }
        let parent = node
            .chain
            .last()
            .map_or(self.genesis_hash, |b| b.header.hash());
        if header.parent != parent {
            return Some("parent is not the previous block".into());
        }
        let Some(set) = self.set_for(i, height) else {
            return Some("no validator set".into());
        };
        if header.validator_set_hash != set.hash() {
            return Some("validator set hash differs".into());
        }
        None
    }

    /// The host's `valid(v)`.
    fn check_value(&mut self, i: usize, height: BlockNumber, value: &Value) -> Validity {
        if self.header_problem(i, height, &value.header).is_some() {
            return Validity::Invalid;
        }
        let parent_set = self.parent_set_for(i, height);
        match check_parent_commit(
            &value.header,
            value.parent_certificate.as_ref(),
            parent_set.as_ref(),
            &mut self.verifier,
        ) {
            Ok(()) => Validity::Valid,
            Err(_) => Validity::Invalid,
        }
    }

    fn on_decide(&mut self, i: usize, block: CommittedBlock) {
        let height = block.header.number;
        if self.nodes[i].chain.len() as u64 != height.0 {
            return;
        }
        let Some(set) = self.set_for(i, height) else {
            return;
        };
        let block_hash = block.header.hash();
        if self.nodes[i].honest {
            if let Some(reason) = self.header_problem(i, height, &block.header) {
                self.checker.flag(Violation::Validity {
                    node: i,
                    height,
                    reason,
                });
            }
            if let Err(e) = verify_committed_block(
                &block,
                SIM_CHAIN,
                height,
                &set,
                HashAlgorithm::Blake3,
                &mut self.verifier,
            ) {
                self.checker.flag(Violation::Certificate {
                    node: i,
                    height,
                    reason: e.to_string(),
                });
            }
            self.checker.decided(i, height, block_hash);
            let started = self.nodes[i].height_started_at;
            self.delay_units_sum += (self.now - started) as f64 / self.config.unit_us as f64;
            self.decisions_measured += 1;
            self.max_round = self.max_round.max(block.certificate.round);
        }
        let node = &mut self.nodes[i];
        if let Some(r) = node.roster.as_mut() {
            // A roster error (impossible on a chain built here) leaves the
            // roster behind; the next start then finds no set and the node
            // stops, which the liveness check reports.
            let _ = r.apply_block(&block.header, block_hash, &[]);
        }
        node.chain.push(block);
        node.decided_at.push(self.now);
        // A validator stops two heights past the target: with nothing to
        // wait for (n = 1, no delays) it would otherwise decide forever
        // without the clock moving. Laggards still catch up from its blocks.
        if node.chain.len() as u64 >= self.config.heights.saturating_add(2) {
            return;
        }
        // The next height starts as a fresh event (at the same instant), so
        // a validator that decides alone still yields to the clock.
        let incarnation = node.incarnation;
        self.push(
            self.now,
            Event::StartHeight {
                node: i,
                incarnation,
                height: height.next(),
            },
        );
    }

    fn report(mut self) -> SimReport {
        let heights_decided = self
            .nodes
            .iter()
            .filter(|n| n.honest)
            .map(|n| n.chain.len() as u64)
            .min()
            .unwrap_or(0);
        for (i, n) in self.nodes.iter().enumerate() {
            if n.honest && (n.chain.len() as u64) < self.config.heights {
                self.checker.flag(Violation::Liveness {
                    node: i,
                    decided: n.chain.len() as u64,
                    target: self.config.heights,
                });
            }
        }
        let (safety, liveness): (Vec<Violation>, Vec<Violation>) = self
            .checker
            .violations
            .iter()
            .cloned()
            .partition(Violation::is_safety);
        let nodes = self
            .nodes
            .iter()
            .map(|n| NodeSummary {
                public_key: n.pk,
                honest: n.honest,
                chain: n.chain.iter().map(|b| b.header.hash()).collect(),
                decided_at: n.decided_at.clone(),
                rounds: n.chain.iter().map(|b| b.certificate.round).collect(),
                sets: n.sets.clone(),
                restarts: n.restarts,
                final_state: n.driver.as_ref().map(|d| d.state().clone()),
            })
            .collect();
        SimReport {
            config: self.config,
            safety_violations: safety,
            liveness_violations: liveness,
            heights_decided,
            delay_units_sum: self.delay_units_sum,
            decisions_measured: self.decisions_measured,
            evidence: self.evidence,
            max_round: self.max_round,
            refused_inputs: self.refused,
            refusals: self.refusals,
            messages_delivered: self.delivered,
            nodes,
            end_us: self.now,
        }
    }
}

/// Runs `seeds` drawn seeds from `first` for `n` validators with
/// `byzantine` Byzantine ones and returns the reports (the seed-sweep
/// tests and the `sim` example share this).
pub fn sweep(
    n: usize,
    byzantine: usize,
    first: u64,
    seeds: u64,
    fault_free: bool,
) -> Vec<SimReport> {
    (first..first.saturating_add(seeds))
        .map(|seed| {
            let cfg = if fault_free {
                SimConfig::fault_free(n, byzantine, seed)
            } else {
                SimConfig::drawn(n, byzantine, seed)
            };
            Simulation::new(cfg).run()
        })
        .collect()
}

/// A stable digest of a run's decided chains (for replay tests).
pub fn fingerprint(report: &SimReport) -> Hash32 {
    let mut bytes = Vec::new();
    for n in &report.nodes {
        for h in &n.chain {
            bytes.extend_from_slice(h.as_bytes());
        }
        bytes.push(0xff);
    }
    bytes.extend_from_slice(&report.end_us.to_le_bytes());
    bytes.extend_from_slice(&report.messages_delivered.to_le_bytes());
    hash(HashContext::Genesis, &bytes)
}

/// Whether `m` is a proposal or vote signed by `me`.
fn signed_by(m: &Message, me: &PublicKey) -> bool {
    match m {
        Message::Proposal(p) => p.proposal.proposer == *me,
        Message::Vote(v) => v.vote.validator == *me,
        _ => false,
    }
}
