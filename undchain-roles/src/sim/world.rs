//! The simulated world: validators' [`NodeCore`]s and their hosts (disk,
//! drifting clock, timer), clients, and a seeded network, all on one
//! virtual clock ([`EventQueue`]).

mod byzantine;
mod chaos;
mod claims;
mod late;
mod partners;
mod script;
mod users;
mod verify;
pub use partners::PartnerConduct;
pub use users::Conduct;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use undchain_consensus::adversary::{Behaviour, Coalition};

use undchain_sim::{DriftingClock, EventQueue, FaultPlan, node_key};
use undchain_types::{
    BlockTime, ChainParams, Hash32, JobId, LocalTime, PublicKey, SignedEnvelope, SplitMix64,
    TokenAmount,
};

use super::SimConfig;
use super::campaign::{self, Chaos, FaultProfile};
use super::disk::SimDisk;
use super::load::{Load, client_key};
use crate::config::{Genesis, GenesisValidator, NodeConfig, ValidatorTiming};
use crate::node::{EnvelopeCheck, NodeCore};
use crate::output::{NodeEvent, Output};
use crate::store::Storage;
use chaos::victims;
use verify::SharedCheck;

/// Local clocks read about this at virtual time 0 (microseconds).
pub(crate) const T0: i64 = 1_700_000_000_000_000;
/// Virtual time from the start to genesis (the time bootstrap runs first).
pub(crate) const GENESIS_AFTER_US: u64 = 15_000_000;
/// Each client starts with this balance.
const CLIENT_BALANCE: u64 = 1_000_000_000;

/// One simulated validator and its host.
#[derive(Debug)]
pub(crate) struct Node {
    pub core: Option<NodeCore>,
    pub cfg: NodeConfig,
    pub clock: DriftingClock,
    pub disk: SimDisk,
    timer: Option<LocalTime>,
    /// What this node committed: height -> (block hash, ledger root).
    pub commits: BTreeMap<u64, (Hash32, Hash32)>,
    /// A height this node committed twice with different blocks.
    pub recommitted: u64,
    pub diverged: bool,
    pub restart_failures: Vec<String>,
    /// The actors between a Byzantine validator and the network.
    pub byzantine: Option<byzantine::Byzantine>,
    /// The set changes, clock steps, capacity tests and bootstrap notices
    /// it reported.
    pub notices: Vec<NodeEvent>,
    /// The score evidence its partner desk emitted, with the virtual time.
    pub scored: Vec<(u64, undchain_consensus::ScoreEvent)>,
}

#[derive(Debug)]
enum Ev {
    Deliver {
        to: usize,
        from: usize,
        env: Arc<SignedEnvelope>,
    },
    Timer {
        node: usize,
        at: LocalTime,
    },
    Send {
        client: usize,
        nonce: u64,
    },
    Check {
        job: JobId,
    },
    /// A committed block's receipts go out.
    Receipts {
        node: usize,
        height: u64,
    },
    ReceiptCheck {
        job: JobId,
    },
    /// A real client requests its next blob's storage.
    UserRequest {
        user: usize,
        nonce: u64,
    },
    UserTimer {
        user: usize,
        at: LocalTime,
    },
    Crash {
        node: usize,
        torn: bool,
    },
    Restart {
        node: usize,
    },
    /// The node's clock jumps forward (the campaign's chaos).
    ClockJump {
        node: usize,
        by_us: i64,
    },
}

/// Decides whether a message sent at virtual time `now` from `from` to
/// `to` is delivered (indices: validators `0..n`, then clients); scenario
/// tests use it to cut links: `filter(now, from, to, envelope)`.
pub type Filter = Box<dyn FnMut(u64, usize, usize, &SignedEnvelope) -> bool>;

/// The whole simulated network. [`super::run`] runs it to the end;
/// scenario tests script it: [`World::start`], [`World::run_until`],
/// [`World::send_request`], [`World::set_filter`], [`World::crash_now`],
/// [`World::restart_now`], and read the nodes back.
pub struct World {
    pub(crate) cfg: SimConfig,
    pub(crate) nodes: Vec<Node>,
    pub(crate) load: Load,
    pub(crate) plan: FaultPlan,
    /// The campaign's faults beyond the plan.
    pub(crate) chaos: Chaos,
    /// The injected fork went in ([`SimConfig::inject_fork`]).
    forged: bool,
    queue: EventQueue<Ev>,
    rng: SplitMix64,
    index: BTreeMap<PublicKey, usize>,
    check: Arc<SharedCheck>,
    now: u64,
    pub(crate) deadline_us: u64,
    pub(crate) load_end_us: u64,
    pub(crate) refused: u64,
    pub(crate) events: u64,
    pub(crate) finished_at_us: u64,
    pub(crate) params: ChainParams,
    filter: Option<Filter>,
    started: bool,
    /// What the Byzantine validators share.
    coalition: Coalition,
    /// Envelopes for a linked co-chain's validators, waiting for the
    /// caller to carry them to that chain's world.
    foreign: Vec<(PublicKey, Arc<SignedEnvelope>)>,
    /// The lowest height whose receipts have not gone out yet.
    receipts_from: u64,
    /// Real clients and partners (after the scripted load's clients).
    pub(crate) users: Vec<users::User>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

impl World {
    /// Nodes, clients and faults for `cfg`.
    pub fn new(cfg: &SimConfig) -> Result<Self, crate::ConfigError> {
        let mut rng = SplitMix64::fork(cfg.seed, 0x776f_726c);
        let active = cfg.validators;
        let genesis_n = active + cfg.passive;
        let n = genesis_n + cfg.newcomers.len();
        let chain = cfg.chain_id;
        let load = Load::new(cfg.clients, cfg.seed, chain);
        let mut params = ChainParams::new(
            chain,
            node_key(100).public(),
            BlockTime((T0 + GENESIS_AFTER_US as i64) as u64),
        );
        params.active_seats = active as u8;
        params.block_interval_us = cfg.block_interval_us;
        params.payout_period_us = cfg.blocks_per_period * cfg.block_interval_us;
        params.retry_timeout_us = params.retry_timeout_us.max(cfg.block_interval_us);
        params.ack_fanout = 3.min(active) as u8;
        if let Some(b) = cfg.convergence_bytes {
            params.convergence_size_threshold = b;
        }
        if let Some(m) = cfg.max_block_jobs {
            params.max_block_jobs = m;
        }
        let max_known = params.max_known_active();
        let genesis = Genesis {
            params: params.clone(),
            validators: (0..genesis_n)
                .map(|i| GenesisValidator {
                    key: node_key(cfg.key_offset + i).public(),
                    known: i < cfg.known.unwrap_or(max_known.min(active)),
                })
                .collect(),
            balances: load
                .clients
                .iter()
                .map(|c| c.key.public())
                .chain((0..cfg.users).map(|i| client_key(cfg.seed, cfg.clients + i).public()))
                .chain((genesis_n..n).map(|i| node_key(cfg.key_offset + i).public()))
                .map(|k| (k, TokenAmount(CLIENT_BALANCE)))
                .collect(),
            co_chains: cfg.co_chains.clone(),
        };
        let mut timing = ValidatorTiming::for_delay(&params, 4 * cfg.delay_us);
        timing.sync.bootstrap_target_spread_us = 20 * cfg.delay_us;
        if let Some(c) = cfg.load_capacity_jobs {
            timing.load_capacity_jobs = c;
        }
        let unit = cfg.block_interval_us / 4;
        let (plan, chaos) = match (cfg.faults, cfg.profile) {
            (false, _) => (FaultPlan::none(), Chaos::calm(2_000, 20)),
            (true, FaultProfile::Standard) => (
                FaultPlan::draw(&mut rng, genesis_n, 0, unit),
                Chaos::calm(20_000, 80),
            ),
            (true, FaultProfile::Campaign) => campaign::draw(&mut rng, genesis_n, unit),
        };
        let (plan, chaos) = (
            shifted(plan, GENESIS_AFTER_US),
            chaos.shifted(GENESIS_AFTER_US),
        );
        let (skew, drift) = (chaos.max_skew_us, chaos.max_drift_ppm);
        let bad = byzantine_draw(cfg, &mut rng);
        let censor =
            bad.is_some() && chaos.censor_permille > 0 && rng.chance(chaos.censor_permille);
        let check = Arc::new(SharedCheck::default());
        let mut nodes = Vec::new();
        let mut index = BTreeMap::new();
        for i in 0..n {
            let key = node_key(cfg.key_offset + i);
            index.insert(key.public(), i);
            let ncfg = NodeConfig {
                key,
                genesis: genesis.clone(),
                timing: timing.clone(),
                seed: cfg.seed ^ ((i as u64 + 1) << 32),
                joining: late::joining(cfg, &genesis, i),
            };
            let clock = DriftingClock {
                base: T0 + rng.range_i64(-skew, skew),
                drift_ppm: rng.range_i64(-drift, drift),
            };
            let core = match ncfg.joining {
                // A newcomer is down until the script starts it.
                Some(_) => None,
                None => Some(NodeCore::restore(
                    &ncfg,
                    LocalTime::from_micros(clock.at(0)),
                    &crate::Stored::default(),
                    check.clone(),
                )?),
            };
            nodes.push(Node {
                core,
                cfg: ncfg,
                clock,
                disk: SimDisk::new(),
                timer: None,
                commits: BTreeMap::new(),
                recommitted: 0,
                diverged: false,
                restart_failures: Vec::new(),
                notices: Vec::new(),
                scored: Vec::new(),
                byzantine: bad
                    .filter(|(k, _)| i < active && i + k >= active)
                    .map(|(_, b)| byzantine::Byzantine::new(b, censor.then(|| victims(cfg)))),
            });
        }
        let coalition = Coalition::new(
            nodes
                .iter()
                .filter(|n| n.byzantine.is_some())
                .map(|n| n.cfg.key.public()),
        );
        for (i, c) in load.clients.iter().enumerate() {
            index.insert(c.key.public(), n + i);
        }
        let b = cfg.block_interval_us;
        let load_blocks = cfg.blocks.saturating_sub(2).max(1);
        let load_end_us = GENESIS_AFTER_US + load_blocks * b;
        let deadline_us = GENESIS_AFTER_US + (cfg.blocks + 30) * b + plan.heal_at_us;
        let mut w = World {
            cfg: cfg.clone(),
            nodes,
            load,
            plan,
            chaos,
            forged: false,
            queue: EventQueue::new(),
            rng,
            index,
            check,
            now: 0,
            deadline_us,
            load_end_us,
            refused: 0,
            events: 0,
            finished_at_us: 0,
            params,
            filter: None,
            started: false,
            coalition,
            foreign: Vec::new(),
            receipts_from: 0,
            users: Vec::new(),
        };
        w.make_users();
        Ok(w)
    }

    /// Starts the nodes, the scripted load and the faults (once).
    pub fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        self.schedule_load();
        self.start_users();
        for c in self.plan.crashes.clone() {
            self.push(
                c.at_us,
                Ev::Crash {
                    node: c.node,
                    torn: c.torn,
                },
            );
            self.push(c.at_us + c.down_us, Ev::Restart { node: c.node });
        }
        for j in self.chaos.jumps.clone() {
            let (node, by_us) = (j.node, j.by_us);
            self.push(j.at_us, Ev::ClockJump { node, by_us });
        }
        for i in 0..self.nodes.len() {
            let local = self.local(i);
            if let Some(core) = self.nodes[i].core.as_mut() {
                core.start(local);
            }
            self.drain(i);
        }
    }

    /// Processes every event up to virtual time `t_us`.
    pub fn run_until(&mut self, t_us: u64) {
        self.start();
        while let Some(t) = self.queue.peek_time() {
            let t = t.micros().max(0) as u64;
            if t > t_us {
                break;
            }
            let Some((_, ev)) = self.queue.pop() else {
                break;
            };
            self.now = t;
            self.events += 1;
            self.step(ev);
        }
        self.now = self.now.max(t_us);
    }

    fn local(&self, node: usize) -> LocalTime {
        LocalTime::from_micros(self.nodes[node].clock.at(self.now as i64))
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.queue.push(LocalTime::from_micros(at as i64), ev);
    }

    /// Runs until every validator committed the blocks and every
    /// acknowledged request (the scripted load's and the lifecycle
    /// clients'), or the deadline.
    pub fn run(&mut self) {
        self.start();
        let mut last_min = 0;
        while let Some((t, ev)) = self.queue.pop() {
            let t = t.micros().max(0) as u64;
            if t > self.deadline_us {
                break;
            }
            self.now = t;
            self.events += 1;
            self.step(ev);
            let min = self.min_committed();
            if min != last_min {
                last_min = min;
                if self.done() {
                    break;
                }
            }
        }
        self.finished_at_us = self.now;
        if self.cfg.trace {
            for (i, n) in self.nodes.iter().enumerate() {
                if let Some(c) = n.core.as_ref() {
                    eprintln!("end node={i} {}", c.validator().debug_state());
                }
            }
        }
    }

    fn schedule_load(&mut self) {
        let b = self.cfg.block_interval_us;
        let r = u64::from(self.cfg.requests_per_block);
        let load_blocks = (self.load_end_us - GENESIS_AFTER_US) / b;
        let mut nonce = 0u64;
        for blk in 0..load_blocks {
            for k in 0..r {
                let at =
                    GENESIS_AFTER_US + blk * b + k * b / r.max(1) + self.rng.below(b / r.max(1));
                let client = (nonce % self.cfg.clients.max(1) as u64) as usize;
                self.push(at, Ev::Send { client, nonce });
                nonce += 1;
            }
        }
    }

    /// Heights every honest validator has committed.
    pub fn min_committed(&self) -> u64 {
        self.nodes
            .iter()
            .filter(|n| n.byzantine.is_none())
            .map(|n| n.commits.keys().next_back().map_or(0, |h| h + 1))
            .min()
            .unwrap_or(0)
    }

    fn done(&self) -> bool {
        if self.min_committed() < self.cfg.blocks || self.now < self.load_end_us {
            return false;
        }
        let committed = super::check::committed_jobs(self);
        if !self.honestly_acked().all(|id| committed.contains_key(id)) {
            return false;
        }
        // The lifecycle clients' acknowledged jobs too: `lost` counts them.
        if self
            .user_jobs()
            .iter()
            .any(|(id, acked)| *acked && !committed.contains_key(id))
        {
            return false;
        }
        let (receipts, _) = super::check::committed_receipts(self);
        self.receipts_due(&committed, &receipts).next().is_none()
            && self
                .honestly_confirmed()
                .all(|id| receipts.contains_key(id))
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { to, from, env } => self.deliver(to, from, env),
            Ev::Timer { node, at } => {
                if self.nodes[node].timer == Some(at) {
                    self.nodes[node].timer = None;
                    let local = self.local(node);
                    if let Some(core) = self.nodes[node].core.as_mut() {
                        core.handle_timeout(local);
                    }
                    self.drain(node);
                }
            }
            Ev::Send { client, nonce } => self.client_send(client, nonce),
            Ev::Check { job } => self.client_check(job),
            Ev::Receipts { node, height } => self.receipts_for(node, height),
            Ev::ReceiptCheck { job } => self.receipt_check(job),
            Ev::UserRequest { user, nonce } => self.user_request(user, nonce),
            Ev::UserTimer { user, at } => self.user_timer(user, at),
            Ev::Crash { node, torn } => {
                if self.cfg.trace {
                    eprintln!("t={} node={node} crash torn={torn}", self.now);
                }
                self.crash(node, torn)
            }
            Ev::Restart { node } => {
                if self.cfg.trace {
                    eprintln!("t={} node={node} restart", self.now);
                }
                self.restart(node)
            }
            Ev::ClockJump { node, by_us } => self.clock_jump(node, by_us),
        }
    }

    fn deliver(&mut self, to: usize, from: usize, env: Arc<SignedEnvelope>) {
        let n = self.nodes.len();
        let scripted = self.load.clients.len();
        if to >= n && to < n + scripted {
            self.load.deliver(from, env.body());
            return;
        }
        if self.check.check(&env).is_err() {
            self.refused += 1;
            return;
        }
        if to >= n {
            self.deliver_user(to - n - scripted, &env);
            return;
        }
        let local = self.local(to);
        let observed = (self.nodes[to].byzantine.is_some() && from < n).then(|| env.clone());
        if self.nodes[to]
            .byzantine
            .as_ref()
            .is_some_and(|b| b.censors(env.body()))
        {
            return;
        }
        let Some(core) = self.nodes[to].core.as_mut() else {
            return;
        };
        let kind = env.envelope().kind;
        if let Err(e) = core.handle_verified(local, env) {
            self.refused += 1;
            if self.cfg.trace {
                eprintln!("t={} node={to} refused {kind} from {from}: {e}", self.now);
            }
        }
        self.drain(to);
        if let Some(env) = observed {
            self.byzantine_observe(to, &env);
        }
    }

    fn client_send(&mut self, client: usize, nonce: u64) {
        let wall = BlockTime((T0 + self.now as i64) as u64);
        let (job, env) = self.load.request(client, wall, nonce);
        let n = self.nodes.len();
        let active = self.active_indices();
        let fanout = usize::from(self.params.ack_fanout).min(active.len());
        let mut targets = BTreeSet::new();
        while targets.len() < fanout {
            targets.insert(active[self.rng.below(active.len() as u64) as usize]);
        }
        for to in targets {
            if let Some(j) = self.load.jobs.get_mut(&job) {
                j.sent_to.insert(to);
            }
            self.route(n + client, to, env.clone());
        }
        let retry = self.params.retry_timeout_us;
        self.push(self.now + retry, Ev::Check { job });
    }

    /// Client story step 3: fewer than f+1 acks, forward to the others.
    fn client_check(&mut self, job: JobId) {
        let n = self.nodes.len();
        let f = (self.cfg.validators.max(1) - 1) / 3;
        let Some(j) = self.load.jobs.get(&job) else {
            return;
        };
        if j.acks.len() > f {
            return;
        }
        let client = j.client;
        let others: Vec<usize> = self
            .active_indices()
            .into_iter()
            .filter(|v| !j.acks.contains(v))
            .collect();
        let wall = BlockTime((T0 + self.now as i64) as u64);
        if let Some(env) = self.load.forward(&job, wall) {
            for to in others {
                self.route(n + client, to, env.clone());
            }
        }
        let retry = self.params.retry_timeout_us;
        self.push(self.now + retry, Ev::Check { job });
    }

    fn crash(&mut self, node: usize, torn: bool) {
        let Some(mut core) = self.nodes[node].core.take() else {
            return;
        };
        if torn {
            if let Some(r) = core.ready() {
                // The crash hits while the batch is carried out: half of
                // what could go at once went, the write never synced.
                let len = r.immediate.len();
                let half = if self.chaos.torn_at_random {
                    self.rng.range(0, len as u64) as usize
                } else {
                    len / 2
                };
                self.outputs(node, r.immediate.into_iter().take(half).collect());
                self.nodes[node].disk.lose(&r.persist);
            }
        }
        self.nodes[node].timer = None;
    }

    fn restart(&mut self, node: usize) {
        let local = self.local(node);
        let stored = match self.nodes[node].disk.load() {
            Ok(s) => s,
            Err(e) => {
                self.nodes[node].restart_failures.push(e.to_string());
                return;
            }
        };
        let check: Arc<dyn EnvelopeCheck> = self.check.clone();
        match NodeCore::restore(&self.nodes[node].cfg, local, &stored, check) {
            Ok(mut core) => {
                core.start(local);
                self.nodes[node].core = Some(core);
                self.drain(node);
            }
            Err(e) => self.nodes[node].restart_failures.push(e.to_string()),
        }
    }

    /// Carries out every batch of `node` the way a real host does: the
    /// immediate outputs, the write, the promises, then `advance`.
    fn drain(&mut self, node: usize) {
        loop {
            let Some(core) = self.nodes[node].core.as_mut() else {
                return;
            };
            let Some(r) = core.ready() else { break };
            let number = r.number();
            let immediate = r.immediate;
            let after = r.after_persist;
            let persist = r.persist;
            self.outputs(node, immediate);
            if self.nodes[node].disk.write(&persist).is_err() {
                return;
            }
            self.forge_injected(node);
            self.outputs(node, after);
            if let Some(core) = self.nodes[node].core.as_mut() {
                let _ = core.advance(number);
            }
        }
        self.schedule_timer(node);
    }

    fn schedule_timer(&mut self, node: usize) {
        let Some(deadline) = self.nodes[node]
            .core
            .as_ref()
            .and_then(|c| c.poll_timeout())
        else {
            return;
        };
        if self.nodes[node].timer == Some(deadline) {
            return;
        }
        let local = self.local(node);
        let clock = self.nodes[node].clock;
        let at = if deadline <= local {
            self.now + 1_000
        } else {
            (clock.real_at(deadline.micros(), self.now as i64).max(0) as u64).max(self.now)
        };
        self.nodes[node].timer = Some(deadline);
        self.push(at, Ev::Timer { node, at: deadline });
    }

    fn outputs(&mut self, node: usize, outs: Vec<Output>) {
        if self.nodes[node].byzantine.is_some() {
            self.byzantine_outputs(node, outs);
        } else {
            for o in outs {
                self.output(node, o);
            }
        }
    }

    fn output(&mut self, node: usize, o: Output) {
        match o {
            Output::Send { to, envelope } => {
                if let Some(&to) = self.index.get(&to) {
                    self.route(node, to, envelope);
                } else if self
                    .cfg
                    .co_chains
                    .iter()
                    .any(|c| c.validators.contains(&to))
                {
                    self.foreign.push((to, envelope));
                }
            }
            Output::Event(e) => self.record(node, e),
        }
    }

    fn record(&mut self, node: usize, e: NodeEvent) {
        if self.cfg.trace && !matches!(e, NodeEvent::RequestAcked { .. }) {
            eprintln!("t={} node={node} {e:?}", self.now);
        }
        match e {
            NodeEvent::BlockCommitted {
                number,
                hash,
                ledger_root,
                ..
            } => {
                let n = &mut self.nodes[node];
                if let Some(prev) = n.commits.insert(number.0, (hash, ledger_root)) {
                    if prev.0 != hash {
                        n.recommitted += 1;
                    }
                }
                if number.0 >= self.receipts_from && n.byzantine.is_none() {
                    // After the block's write (this event comes before it).
                    let height = number.0;
                    self.push(self.now + 1_000, Ev::Receipts { node, height });
                }
            }
            NodeEvent::Diverged { .. } => self.nodes[node].diverged = true,
            NodeEvent::ScoreEvidence(s) => self.nodes[node].scored.push((self.now, s)),
            e @ (NodeEvent::SetChanged { .. }
            | NodeEvent::KnownFillUnknownSeats { .. }
            | NodeEvent::TimeStepped { .. }
            | NodeEvent::PeriodSettled { .. }
            | NodeEvent::DomainOverloaded { .. }
            | NodeEvent::DomainRecovered { .. }
            | NodeEvent::CapacityTestPassed { .. }
            | NodeEvent::CapacityTestFailed { .. }
            | NodeEvent::Evidence(_)
            | NodeEvent::Converged { .. }
            | NodeEvent::GenesisCertified { .. }
            | NodeEvent::EvidenceCommitted { .. }
            | NodeEvent::Discovered { .. }
            | NodeEvent::RegistrationSent { .. }
            | NodeEvent::ValidatorRegistered { .. }) => self.nodes[node].notices.push(e),
            _ => {}
        }
    }

    /// Sends `env` from `from` to `to` through the faulty network.
    fn route(&mut self, from: usize, to: usize, env: Arc<SignedEnvelope>) {
        let n = self.nodes.len();
        let (a, b) = (from.min(n), to.min(n));
        if from < n && to < n && self.plan.partitioned(self.now, a, b) {
            return;
        }
        if from < n && to < n && self.chaos.clogged(self.now, from, to) {
            return;
        }
        if let Some(f) = self.filter.as_mut() {
            if !f(self.now, from, to, &env) {
                return;
            }
        }
        let unit = self.cfg.delay_us;
        for d in self.plan.deliveries(&mut self.rng, self.now, unit) {
            self.push(
                self.now + d,
                Ev::Deliver {
                    to,
                    from,
                    env: env.clone(),
                },
            );
        }
        self.replay(from, to, env);
    }
}

/// How many validators are Byzantine (the last ones) and how: as the
/// configuration says, else drawn per seed when faults are on (0..=f).
fn byzantine_draw(cfg: &SimConfig, rng: &mut SplitMix64) -> Option<(usize, Behaviour)> {
    let f = (cfg.validators.saturating_sub(1)) / 3;
    let count = match cfg.byzantine {
        Some(k) => k,
        None if cfg.faults => rng.below(f as u64 + 1) as usize,
        None => 0,
    };
    let behaviour = cfg
        .behaviour
        .unwrap_or_else(|| Behaviour::ALL[rng.below(Behaviour::ALL.len() as u64) as usize]);
    (count > 0).then_some((count.min(cfg.validators), behaviour))
}

/// `plan` with every time moved `by` later (faults start after genesis).
fn shifted(mut plan: FaultPlan, by: u64) -> FaultPlan {
    plan.heal_at_us += by;
    for p in &mut plan.partitions {
        p.start_us += by;
        p.end_us += by;
    }
    for c in &mut plan.crashes {
        c.at_us += by;
    }
    plan
}
