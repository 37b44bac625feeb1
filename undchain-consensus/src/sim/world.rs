//! The simulated world: n validators, their durable storage, and the
//! event loop on the kit's [`EventQueue`] (virtual microseconds; events
//! due at the same time pop in the order they were pushed).

use std::collections::BTreeMap;

use undchain_sim::{EventQueue, SplitMix64, node_key};
use undchain_types::msg::{CommittedBlock, Evidence, Round};
use undchain_types::{
    BlockNumber, Hash32, HashAlgorithm, HashContext, LocalTime, Message, PerceptionScore,
    PublicKey, SigningKey, Trust, hash_parts,
};

use super::SIM_CHAIN;
use super::SharedVerifier;
use super::checker::{Checker, Violation};
use super::config::{NodeSummary, SimConfig, SimReport};
use crate::adversary::{Adversary, Coalition};
use crate::driver::{Driver, DriverConfig, PersistedState, TimeoutConfig, Validity};
use crate::roster::{Candidate, Roster, RosterConfig};
use crate::round::Step;
use crate::score::ScoreRules;
use crate::validator_set::ValidatorSet;

/// Something that happens at a moment of virtual time.
#[derive(Debug)]
pub(super) enum Event {
    /// A message arrives at `to`.
    Deliver {
        to: usize,
        from: usize,
        msg: Box<Message>,
    },
    /// The wake-up a node's host scheduled for its driver's earliest
    /// pending timeout.
    Wake { node: usize, incarnation: u64 },
    /// A delayed verdict on a value whose job file was still being
    /// reconciled.
    Validity {
        node: usize,
        incarnation: u64,
        height: BlockNumber,
        key: Hash32,
        validity: Validity,
    },
    /// A planned crash (torn: it hits in the middle of the node's next
    /// batch).
    Crash {
        node: usize,
        down_us: u64,
        torn: bool,
    },
    /// A crashed node comes back from its storage.
    Restart { node: usize },
    /// A node that decided starts the next height.
    StartHeight {
        node: usize,
        incarnation: u64,
        height: BlockNumber,
    },
}

/// One validator and its host: the driver (gone while crashed) and what
/// survives a crash.
#[derive(Debug)]
pub(super) struct Node {
    pub(super) key: SigningKey,
    pub(super) pk: PublicKey,
    pub(super) honest: bool,
    /// A Byzantine node's actors (`None` for an honest one).
    pub(super) adversary: Option<Adversary>,
    pub(super) driver: Option<Driver<SharedVerifier>>,
    /// Counts restarts, so that events meant for an earlier run of the
    /// driver are dropped.
    pub(super) incarnation: u64,
    // Durable storage: survives crashes.
    pub(super) chain: Vec<CommittedBlock>,
    pub(super) decided_at: Vec<u64>,
    pub(super) persisted: Option<PersistedState>,
    pub(super) roster: Option<Roster>,
    // Bookkeeping.
    pub(super) height_started_at: u64,
    pub(super) torn_crash: Option<u64>,
    pub(super) restarts: u32,
    pub(super) sets: Vec<ValidatorSet>,
    /// When the host's wake-up for the driver is scheduled.
    pub(super) wake_at: Option<u64>,
}

/// Most events one run may process (a guard against a livelock bug, which
/// is then reported as a liveness violation).
const MAX_EVENTS: u64 = 20_000_000;

/// One simulation run.
#[derive(Debug)]
pub struct Simulation {
    pub(super) config: SimConfig,
    pub(super) driver_config: DriverConfig,
    pub(super) nodes: Vec<Node>,
    pub(super) index_of: BTreeMap<PublicKey, usize>,
    pub(super) queue: EventQueue<Event, u64>,
    pub(super) now: u64,
    pub(super) rng: SplitMix64,
    pub(super) coalition: Coalition,
    pub(super) checker: Checker,
    pub(super) verifier: SharedVerifier,
    pub(super) static_set: Option<ValidatorSet>,
    pub(super) genesis_hash: Hash32,
    pub(super) delay_units_sum: f64,
    pub(super) decisions_measured: u64,
    pub(super) evidence: Vec<Evidence>,
    pub(super) max_round: Round,
    pub(super) refused: u64,
    pub(super) refusals: BTreeMap<String, u64>,
    pub(super) delivered: u64,
    /// The first Byzantine node whose actors hold messages back, if any.
    pub(super) network_adversary: Option<usize>,
}

impl Simulation {
    /// Sets up a run.
    pub fn new(config: SimConfig) -> Self {
        let total = config.nodes();
        let unit = config.unit_us.max(1);
        let mut driver_config = DriverConfig::new(SIM_CHAIN);
        driver_config.timeouts = TimeoutConfig::for_delay(unit);
        let genesis_hash = hash_parts(HashContext::Genesis, &[b"sim", &config.seed.to_le_bytes()]);
        let keys: Vec<SigningKey> = (0..total).map(node_key).collect();
        let index_of = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.public(), i))
            .collect();
        let (static_set, roster) = genesis_sets(&config, &keys, genesis_hash);
        let nodes: Vec<Node> = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| Node {
                pk: key.public(),
                key,
                honest: i >= config.byzantine,
                adversary: (i < config.byzantine)
                    .then(|| config.behaviour.map(|b| b.adversary()))
                    .flatten(),
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
                wake_at: None,
            })
            .collect();
        let network_adversary = nodes.iter().position(|n| {
            n.adversary
                .as_ref()
                .is_some_and(Adversary::controls_network)
        });
        Simulation {
            network_adversary,
            rng: SplitMix64::fork(config.seed, 2),
            coalition: Coalition::new(
                (0..config.byzantine.min(total)).map(|i| node_key(i).public()),
            ),
            driver_config,
            nodes,
            index_of,
            queue: EventQueue::new(),
            now: 0,
            checker: Checker::default(),
            verifier: SharedVerifier::default(),
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

    /// Sets up a run whose network, crashes and Byzantine actors draw from
    /// `rng` instead of the seed's stream (the `driver` fuzz target hands
    /// it the input's [`SplitMix64::scripted`] stream).
    pub fn with_rng(config: SimConfig, rng: SplitMix64) -> Self {
        Simulation {
            rng,
            ..Simulation::new(config)
        }
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> SimReport {
        for c in self.config.faults.crashes.clone() {
            self.queue.push(
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
        while let Some((at, event)) = self.queue.pop() {
            if at > deadline || events >= MAX_EVENTS {
                break;
            }
            events += 1;
            self.now = at;
            self.dispatch(event);
            if self.now >= self.config.faults.heal_at_us && self.all_reached() {
                break;
            }
        }
        self.report()
    }

    /// The virtual time as every node's local clock reads it (the
    /// simulated clocks do not drift).
    pub(super) fn local_now(&self) -> LocalTime {
        LocalTime::from_micros(i64::try_from(self.now).unwrap_or(i64::MAX))
    }

    fn all_reached(&self) -> bool {
        self.nodes
            .iter()
            .filter(|n| n.honest)
            .all(|n| n.chain.len() as u64 >= self.config.heights)
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
        #[cfg(feature = "planted-bugs")]
        if let Some(bug) = self.config.planted {
            driver.plant(bug);
        }
        let now = self.local_now();
        let resume = self.nodes[i]
            .persisted
            .clone()
            .filter(|p| p.round_state.height == tip && p.round_state.step != Step::Commit);
        match resume {
            Some(p) => driver.resume(now, p, set.clone()),
            None => driver.start_height(now, tip, set.clone()),
        }
        let node = &mut self.nodes[i];
        node.driver = Some(driver);
        node.height_started_at = self.now;
        if node.sets.len() as u64 == tip.0 {
            node.sets.push(set.clone());
        }
        if node.honest {
            self.checker.set_used(i, tip, set.hash());
        }
        self.carry_out(i);
    }

    fn dispatch(&mut self, event: Event) {
        let now = self.local_now();
        match event {
            Event::Deliver { to, from, msg } => self.deliver(to, from, *msg),
            Event::Wake { node, incarnation } => {
                let n = &mut self.nodes[node];
                if n.incarnation != incarnation || n.wake_at != Some(self.now) {
                    return;
                }
                n.wake_at = None;
                if let Some(d) = n.driver.as_mut() {
                    d.handle_timeout(now);
                    self.carry_out(node);
                }
            }
            Event::Validity {
                node,
                incarnation,
                height,
                key,
                validity,
            } => {
                if self.nodes[node].incarnation != incarnation {
                    return;
                }
                if let Some(d) = self.nodes[node].driver.as_mut() {
                    // A stale answer is refused and changes nothing; the
                    // host still carries out (an empty batch).
                    let _ = d.handle_validity(now, height, key, validity);
                    self.carry_out(node);
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
            } => self.start_height(node, incarnation, height),
        }
    }

    /// Hands a message to node `to`'s driver (refusals are counted by
    /// reason).
    fn deliver(&mut self, to: usize, from: usize, msg: Message) {
        if self.nodes[to].driver.is_none() {
            return;
        }
        self.delivered += 1;
        let from_pk = self.nodes[from].pk;
        if self.nodes[to].adversary.is_some() {
            let (answers, admitted) = self.observe(to, from_pk, &msg);
            self.send_all(to, answers);
            if !admitted {
                return;
            }
        }
        let now = self.local_now();
        let Some(d) = self.nodes[to].driver.as_mut() else {
            return;
        };
        match d.handle_message(now, from_pk, msg) {
            Ok(()) => self.carry_out(to),
            Err(e) => {
                self.refused += 1;
                let name = format!("{e:?}");
                let name = name.split([' ', '{', '(']).next().unwrap_or("").to_string();
                *self.refusals.entry(name).or_insert(0) += 1;
            }
        }
    }

    /// Node `node` starts `height` after deciding the one before.
    fn start_height(&mut self, node: usize, incarnation: u64, height: BlockNumber) {
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
        let now = self.local_now();
        if let Some(d) = self.nodes[node].driver.as_mut() {
            d.start_height(now, height, set);
            self.carry_out(node);
        }
    }

    /// Node `i` goes down now (its driver and whatever it had not carried
    /// out are lost; its storage survives) and restarts after `down_us`.
    pub(super) fn crash_now(&mut self, i: usize, down_us: u64) {
        let node = &mut self.nodes[i];
        node.driver = None;
        node.wake_at = None;
        node.torn_crash = None;
        node.incarnation += 1;
        self.queue
            .push(self.now + down_us, Event::Restart { node: i });
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

/// The genesis validator set: fixed for every height, or (with a
/// [`super::RotationPlan`]) a roster every node then drives itself.
fn genesis_sets(
    config: &SimConfig,
    keys: &[SigningKey],
    genesis_hash: Hash32,
) -> (Option<ValidatorSet>, Option<Roster>) {
    let total = keys.len();
    let Some(plan) = &config.rotation else {
        let ids: Vec<PublicKey> = keys[..config.n].iter().map(|k| k.public()).collect();
        return (ValidatorSet::of_unknown(&ids).ok(), None);
    };
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
