//! The validator role (design notes, validator story items 1-10; DESIGN.md
//! "Validator to validator"), composing the library crates:
//!
//! * `time`: the time machine ([`undchain_timesync::TimeSync`]: bootstrap,
//!   or a joining validator's [`undchain_timesync::Join`], then running
//!   rounds) feeding the [`undchain_timesync::BlockClock`];
//! * `discovery`: hellos and discovery replies, a joining validator's
//!   time join and its own registration, the bounded book of hello
//!   senders;
//! * `intake`: client requests (verify, replay, escrow check, file by the
//!   cutoff rule, ack, gossip) and gossiped requests from other validators;
//! * `files`: job-file deltas, reconciliation with
//!   [`undchain_jobfile::Session`] and fetching the signed requests behind
//!   entries;
//! * `agree`: the host of the agreement [`undchain_consensus::Driver`]:
//!   building headers, checking proposals against this validator's file
//!   (fetching what it lacks), deciding;
//! * `resync`: quorum-approved steps of the agreed clock;
//! * `capacity`: capacity tests run by passive validators, answered by
//!   any validator;
//! * `serve`: pages of any block's job file for any user;
//! * `status`: network status to and from the others, the domain-overloaded
//!   signal;
//! * `rotation`: the roster's set of each height, passive validators
//!   following the chain;
//! * `converge`: convergence at a period boundary when the epoch's chain
//!   passed the size threshold (new genesis, epoch, signatures);
//! * `evidence`: double votes pooled, relayed, committed in headers and
//!   turned into perception-score events;
//! * `chain`: applying decided blocks to the ledger and the job book,
//!   inclusion notices, serving blocks to lagging validators.
//!
//! All of it is one sans-IO machine driven by [`crate::NodeCore`].

mod agree;
mod capacity;
mod chain;
mod converge;
mod discovery;
mod evidence;
mod files;
mod intake;
mod ops;
pub mod partners;
mod resync;
mod rotation;
mod serve;
mod status;
mod time;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use undchain_consensus::{Driver, DriverConfig, Roster, ValidatorSet};
use undchain_jobfile::{JobBook, JobFile, Session};
use undchain_ledger::Ledger;
use undchain_types::msg::{CommitCertificate, CommittedBlock, GossipedRequest};
use undchain_types::{
    BlockNumber, BlockTime, ChainParams, Hash32, JobId, LocalTime, Message, Outbox, PublicKey,
    SignedEnvelope, SplitMix64,
};

use crate::config::{ConfigError, NodeConfig, ValidatorTiming};
use crate::node::EnvelopeCheck;
use crate::output::{NodeEvent, Output};
use crate::signer::Signer;
use crate::store::{StoreOp, Stored};

pub use capacity::{
    CapacityError, CapacityFailure, MAX_OUTSTANDING, MAX_TEST_REQUESTS, run_capacity_test,
};
pub use converge::ConvergenceRefusal;
pub use discovery::{
    DiscoveryError, Greeted, MAX_GREETED, MAX_REPLIES_PER_BLOCK, REGISTER_RETRY_BLOCKS,
};
pub use evidence::{EVIDENCE_WINDOW, EvidencePool, EvidenceRefusal};
pub use intake::{IntakeError, entry_of};
pub use ops::{MAX_POOL_OPS, OpError, POOL_BLOCKS};
pub use partners::{
    DeskError, DeskEvent, DeskOutput, MAX_RECHECKS, PartnerDesk, RECHALLENGE_BLOCKS,
};
pub use serve::MAX_PAGE;
pub(crate) use time::TimeHost;

/// A signature verifier for envelopes this validator already checked
/// (every request it holds passed its [`EnvelopeCheck`] on arrival), so
/// the ledger's request check does not pay for ed25519 twice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AlreadyChecked;

impl undchain_consensus::SignatureVerifier for AlreadyChecked {
    fn verify(&mut self, _: &PublicKey, _: &Hash32, _: &undchain_types::Signature) -> bool {
        true
    }
}

/// Most decided blocks kept in memory to serve lagging validators.
pub const SERVE_BLOCKS: usize = 256;

/// A proposal value this validator checked or built: the job file and
/// the operations it stands for.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub file: JobFile,
    pub ops: Vec<undchain_ledger::Verified>,
}

/// A validity check waiting for entries or requests.
#[derive(Debug, Clone)]
pub(crate) struct PendingCheck {
    pub height: BlockNumber,
    pub header: undchain_types::BlockHeader,
    /// Who has the file (the proposer, or a signer of a decided block).
    pub from: Vec<PublicKey>,
    /// The file assembled so far (after reconciliation).
    pub file: Option<JobFile>,
    /// The block's operations, once held (pushed, fetched or pooled).
    pub ops: Option<Vec<undchain_ledger::Verified>>,
    /// A decided block waiting for its body (no validity answer owed).
    pub decided: bool,
    /// The whole-value key the validity answer names.
    pub key: Hash32,
    /// When to ask the next peer.
    pub retry_at: LocalTime,
    /// How many peers were asked.
    pub attempts: u32,
}

/// One reconciliation session with the file it runs over.
#[derive(Debug)]
pub(crate) struct SessionSlot {
    pub session: Session,
    /// The snapshot of this validator's file the session runs over.
    pub file: JobFile,
    /// The pending check its outcome serves.
    pub check: Option<Hash32>,
    /// When its last message came or went (sessions quiet for twice
    /// `timing.fetch_retry_us` are dropped; a long session that keeps
    /// moving is not).
    pub active_at: LocalTime,
}

/// A decided block kept to serve others.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub block: CommittedBlock,
    pub file: JobFile,
    pub ops: Vec<undchain_types::msg::Operation>,
}

/// One validator.
#[derive(Debug)]
pub struct Validator {
    pub(crate) me: PublicKey,
    pub(crate) params: ChainParams,
    pub(crate) timing: ValidatorTiming,
    pub(crate) rng: SplitMix64,
    pub(crate) time: TimeHost,
    /// The resync machine (quorum-approved clock steps).
    pub(crate) resync: undchain_timesync::Resync,
    pub(crate) book: JobBook,
    /// Signed requests of every job this validator holds open or was
    /// offered by reconciliation, by job.
    pub(crate) requests: BTreeMap<JobId, Arc<SignedEnvelope>>,
    /// Jobs this validator acknowledged: the client and the block named.
    pub(crate) acks: BTreeMap<JobId, (PublicKey, BlockNumber)>,
    /// Budget plus fee of each client's filed, uncommitted jobs (the
    /// intake's escrow check).
    pub(crate) open_by_client: BTreeMap<PublicKey, u128>,
    /// Checks inner (client) envelopes.
    pub(crate) check: Arc<dyn EnvelopeCheck>,
    /// The (count, root) of the last delta sent per open block.
    pub(crate) last_delta: BTreeMap<BlockNumber, (u64, Hash32)>,
    pub(crate) gossip_out: Vec<GossipedRequest>,
    pub(crate) next_gossip_at: LocalTime,
    /// Reconciliation sessions, by (peer, session id).
    pub(crate) sessions: BTreeMap<(PublicKey, u64), SessionSlot>,
    /// Values this validator proposed, (height, block hash).
    pub(crate) own_proposals: Vec<(BlockNumber, Hash32)>,
    /// Signed requests of the served blocks' jobs.
    pub(crate) served_requests: BTreeMap<JobId, Arc<SignedEnvelope>>,
    /// Checks and decided blocks waiting for a job file, by block hash.
    pub(crate) pending: BTreeMap<Hash32, PendingCheck>,
    pub(crate) candidates: BTreeMap<Hash32, Candidate>,
    /// The oldest `max_block_jobs` of an open file that holds more, keyed
    /// by block and file version: what a proposer holding the same file
    /// proposes, so a checker compares without reconciling.
    pub(crate) capped: Option<((BlockNumber, u64), JobFile)>,
    pub(crate) driver: Driver,
    /// Every registered validator, the scores, and the set of each next
    /// height (rotation at period ends, replacement).
    pub(crate) roster: Roster,
    /// The active set of `height`.
    pub(crate) set: ValidatorSet,
    /// The active set of `height - 1` (whose signers the header of
    /// `height` names); `None` at block 0.
    pub(crate) prev_set: Option<ValidatorSet>,
    /// The next height to decide.
    pub(crate) height: BlockNumber,
    /// Whether the driver runs `height`.
    pub(crate) started: bool,
    /// Decided blocks waiting for their job file, in height order.
    pub(crate) decided: VecDeque<CommittedBlock>,
    pub(crate) ledger: Ledger,
    pub(crate) last_hash: Hash32,
    pub(crate) last_cert: Option<CommitCertificate>,
    pub(crate) served: VecDeque<Served>,
    pub(crate) halted: bool,
    pub(crate) signer: Signer,
    pub(crate) outbox: Outbox<StoreOp, Output>,
    pub(crate) session_counter: u64,
    /// When a passive validator next asks for blocks.
    pub(crate) next_follow_at: LocalTime,
    /// Which active validator it asks next.
    pub(crate) follow_turn: usize,
    /// Capacity tests this validator has outstanding, by test id.
    pub(crate) probes: BTreeMap<u64, capacity::Probe>,
    /// When a passive validator runs its next capacity test.
    pub(crate) next_capacity_at: LocalTime,
    /// Which candidate it tests next.
    pub(crate) capacity_turn: usize,
    /// When this validator last answered each tester.
    pub(crate) capacity_answered: BTreeMap<PublicKey, LocalTime>,
    /// The co-chains' latest block hashes and what the headers anchored.
    pub(crate) links: undchain_ledger::links::ChainLinks,
    /// The co-chains and their validators (who may send links, and to
    /// whom ours go).
    pub(crate) co_chains: Vec<crate::config::CoChain>,
    /// How often each job-file requester was served.
    pub(crate) serve_limits: serve::ServeLimits,
    /// The others' network status and the overloaded signal.
    pub(crate) status: status::StatusBook,
    /// When this validator next sends its status alone.
    pub(crate) next_status_at: LocalTime,
    /// The partner story's desk (registry, matching, challenges).
    pub(crate) partners: partners::PartnerDesk,
    /// Uncommitted and recently committed equivocation evidence.
    pub(crate) evidence: EvidencePool,
    /// The running epoch, its size and its genesis's signatures.
    pub(crate) epoch: converge::EpochState,
    /// Submitted operations waiting for a block, and blocks' lists.
    pub(crate) ops: ops::OpsPool,
    /// Hello senders remembered (served catch-up before registration).
    pub(crate) greeted: Greeted,
    /// A validator that is not in the genesis: its discovery and
    /// registration.
    pub(crate) joining: Option<discovery::Newcomer>,
}

impl Validator {
    /// A validator restored from `stored` (empty for a fresh node).
    pub fn restore(
        cfg: &NodeConfig,
        now: LocalTime,
        stored: &Stored,
        check: Arc<dyn EnvelopeCheck>,
    ) -> Result<Self, ConfigError> {
        cfg.genesis.validate()?;
        cfg.timing.validate()?;
        let me = cfg.key.public();
        let roster = cfg.genesis.roster()?;
        let set = roster.validator_set().clone();
        let in_genesis = cfg.genesis.validators.iter().any(|v| v.key == me);
        if !in_genesis && cfg.joining.is_none() {
            return Err(ConfigError::NotAValidator { key: me });
        }
        let joining = (!in_genesis)
            .then(|| cfg.joining.clone())
            .flatten()
            .map(|j| discovery::Newcomer::new(j, cfg.key.clone(), now));
        let params = cfg.genesis.params.clone();
        let mut rng = SplitMix64::fork(cfg.seed, 0x7661_6c69);
        // Every genesis validator keeps time, the passive ones too: a
        // passive validator takes a seat at the next rotation on time. A
        // joining validator inherits the running network's time first.
        let members: BTreeSet<PublicKey> = cfg.genesis.validators.iter().map(|v| v.key).collect();
        let time = TimeHost::new(
            me,
            members,
            cfg,
            now,
            stored.time_correction,
            rng.next_u64(),
            joining.is_some(),
        )?;
        let mut driver_cfg = DriverConfig::from_params(&params);
        driver_cfg.timeouts = cfg.timing.timeouts;
        let resync = undchain_timesync::Resync::new(
            &params,
            cfg.key.clone(),
            set.seats().iter().map(|s| s.id).collect(),
            cfg.timing.resync_tolerance_us,
        );
        let mut v = Validator {
            me,
            timing: cfg.timing.clone(),
            time,
            resync,
            book: JobBook::new(params.clone(), BlockNumber(0)),
            requests: BTreeMap::new(),
            acks: BTreeMap::new(),
            open_by_client: BTreeMap::new(),
            check,
            last_delta: BTreeMap::new(),
            gossip_out: Vec::new(),
            next_gossip_at: now,
            sessions: BTreeMap::new(),
            own_proposals: Vec::new(),
            served_requests: BTreeMap::new(),
            pending: BTreeMap::new(),
            candidates: BTreeMap::new(),
            capped: None,
            driver: Driver::new(driver_cfg, cfg.key.clone()),
            roster,
            set,
            prev_set: None,
            height: BlockNumber(0),
            started: false,
            decided: VecDeque::new(),
            ledger: cfg.genesis.ledger()?,
            last_hash: cfg.genesis.hash(),
            last_cert: None,
            served: VecDeque::new(),
            halted: false,
            signer: Signer::new(cfg.key.clone(), params.chain_id, stored.seq_reserved),
            outbox: Outbox::new(),
            session_counter: rng.next_u64() >> 16,
            next_follow_at: now,
            follow_turn: 0,
            probes: BTreeMap::new(),
            next_capacity_at: now.plus(cfg.timing.capacity_every_us),
            capacity_turn: 0,
            capacity_answered: BTreeMap::new(),
            status: status::StatusBook::default(),
            serve_limits: serve::ServeLimits::default(),
            links: cfg.genesis.chain_links()?,
            co_chains: cfg.genesis.co_chains.clone(),
            next_status_at: now,
            partners: partners::PartnerDesk::new(
                cfg.key.public(),
                params.clone(),
                cfg.seed ^ 0x5a5a,
            ),
            evidence: EvidencePool::default(),
            epoch: converge::EpochState::default(),
            ops: ops::OpsPool::default(),
            greeted: Greeted::default(),
            joining,
            rng,
            params,
        };
        v.partners.rechallenge_us = cfg.timing.rechallenge_us;
        v.evidence.note_set(BlockNumber(0), &v.set);
        v.replay_blocks(stored)?;
        v.refile_accepted(stored);
        if let Some(state) = &stored.consensus {
            if state.round_state.height == v.height {
                v.driver.resume(now, state.clone(), v.set.clone());
                v.started = true;
            }
        }
        Ok(v)
    }

    /// This validator's identity.
    pub fn id(&self) -> PublicKey {
        self.me
    }

    /// The next height to decide.
    pub fn height(&self) -> BlockNumber {
        self.height
    }

    /// The ledger as of the last applied block.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The job book (the two open files).
    pub fn book(&self) -> &JobBook {
        &self.book
    }

    /// The hash of the last decided block (the genesis hash before block 0).
    pub fn last_hash(&self) -> Hash32 {
        self.last_hash
    }

    /// Whether the agreed time is online.
    pub fn time_synced(&self) -> bool {
        self.time.clock.is_some()
    }

    /// The block this validator's ack named for uncommitted job `job`.
    pub fn acked_block(&self, job: &JobId) -> Option<BlockNumber> {
        self.acks.get(job).map(|(_, b)| *b)
    }

    /// The block clock's correction in use (agreed time = local time +
    /// correction), once the agreed time is online.
    pub fn time_correction(&self) -> Option<i64> {
        self.time.clock.as_ref().map(|c| c.correction())
    }

    /// One line on where this validator stands (for debugging a run).
    pub fn debug_state(&self) -> String {
        let st = self.driver.state();
        format!(
            "height={} started={} driver=h{}/r{}/{:?} pending={} decided={} sessions={} requests={} open=[{},{}] halted={}",
            self.height.0,
            self.started,
            st.height.0,
            st.round,
            st.step,
            self.pending.len(),
            self.decided.len(),
            self.sessions.len(),
            self.requests.len(),
            self.book
                .open_file(self.book.open_blocks()[0])
                .map_or(0, |f| f.len()),
            self.book
                .open_file(self.book.open_blocks()[1])
                .map_or(0, |f| f.len()),
            self.halted,
        )
    }

    /// The ledger's checked requests behind `file`'s jobs, or the first
    /// job whose request this validator lacks or that does not check.
    pub(crate) fn requests_for(
        &self,
        file: &JobFile,
    ) -> Result<Vec<undchain_ledger::VerifiedRequest>, JobId> {
        file.entries()
            .iter()
            .map(|e| {
                self.request_of(&e.id)
                    .and_then(|r| self.ledger.verify_request_with(&r, AlreadyChecked).ok())
                    .ok_or(e.id)
            })
            .collect()
    }

    /// The other active validators.
    pub(crate) fn peers(&self) -> Vec<PublicKey> {
        self.set
            .seats()
            .iter()
            .map(|s| s.id)
            .filter(|k| *k != self.me)
            .collect()
    }

    /// Whether `key` is a registered validator, active or passive (its
    /// block requests, job-file traffic and time are served; agreement
    /// messages are checked against the height's active set by the
    /// driver).
    pub(crate) fn is_validator(&self, key: &PublicKey) -> bool {
        self.set.contains(key) || self.roster.trust(key).is_some()
    }

    /// Whether this validator holds an active seat at `height`.
    pub fn is_active(&self) -> bool {
        self.set.contains(&self.me)
    }

    /// The active set of the next height to decide.
    pub fn validator_set(&self) -> &ValidatorSet {
        &self.set
    }

    /// The roster: every registered validator and its score.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// How many hello senders this validator remembers (bounded by
    /// [`MAX_GREETED`]).
    pub fn greeted_count(&self) -> usize {
        self.greeted.len()
    }

    /// Whether this validator is one that joined after the genesis and is
    /// not registered yet.
    pub fn is_joining(&self) -> bool {
        self.joining.is_some() && !self.registered()
    }

    /// The partner desk (read only; for the node's API).
    pub fn partner_desk(&self) -> &PartnerDesk {
        &self.partners
    }

    /// The set whose signers block `number`'s header names (the set of
    /// `number - 1`).
    pub(crate) fn parent_set(&self) -> &ValidatorSet {
        self.prev_set.as_ref().unwrap_or(&self.set)
    }

    /// The agreed time, or the local time before the agreed time is online.
    pub(crate) fn block_time(&mut self, now: LocalTime) -> BlockTime {
        match self.time.clock.as_mut() {
            Some(c) => c.now(now),
            None => BlockTime(now.micros().max(0) as u64),
        }
    }

    /// Signs `body` and sends it to every peer in `to`; `promise`: only
    /// after the batch's write.
    pub(crate) fn send(&mut self, now: LocalTime, to: &[PublicKey], body: Message, promise: bool) {
        if to.is_empty() {
            return;
        }
        let sent_at = self.block_time(now);
        let mut ops = Vec::new();
        let signed = self.signer.sign(sent_at, body, &mut ops);
        for op in ops {
            self.outbox.persist(op);
        }
        for peer in to {
            let out = Output::Send {
                to: *peer,
                envelope: signed.envelope.clone(),
            };
            if promise || !signed.immediate_ok {
                self.outbox.after_persist(out);
            } else {
                self.outbox.immediate(out);
            }
        }
    }

    /// Sends `body` to every other active validator.
    pub(crate) fn broadcast(&mut self, now: LocalTime, body: Message, promise: bool) {
        let peers = self.peers();
        self.send(now, &peers, body, promise);
    }

    /// Reports `event`.
    pub(crate) fn event(&mut self, event: NodeEvent) {
        self.outbox.immediate(Output::Event(event));
    }

    /// A fresh session id.
    pub(crate) fn next_session(&mut self) -> u64 {
        self.session_counter = self.session_counter.wrapping_add(1);
        self.session_counter
    }

    /// The earliest local time this validator needs to run again.
    pub fn poll_timeout(&self) -> Option<LocalTime> {
        let mut t = self.time.poll_timeout();
        let mut add = |x: Option<LocalTime>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t: LocalTime| t.min(x)));
            }
        };
        add(self.hello_deadline());
        if self.time.clock.is_some() {
            add(Some(self.next_gossip_at));
            add(self.driver.poll_timeout());
            add(self.pending.values().map(|p| p.retry_at).min());
            if !self.is_active() {
                add(Some(self.next_follow_at));
                add(Some(self.next_capacity_at));
            }
            add(self.probes.values().map(|p| p.deadline()).min());
            add(self.partners.poll_timeout());
            if self.is_active() {
                add(Some(self.next_status_at));
            }
            if !self.started && !self.halted {
                add(self.time.local_at(self.agree_time(self.height)));
            }
        }
        t
    }

    /// Runs everything due at local time `now`.
    pub fn handle_timeout(&mut self, now: LocalTime) {
        self.time_timeout(now);
        self.hello_timeout(now);
        if self.time.clock.is_none() {
            return;
        }
        self.maybe_register(now);
        if now >= self.next_gossip_at {
            self.gossip(now);
            self.next_gossip_at = now.plus(self.timing.gossip_every_us);
        }
        self.expire_sessions(now);
        self.follow_chain(now);
        self.capacity_timeout(now);
        self.partners_timeout(now);
        if self.is_active() {
            self.send_status(now);
        }
        self.retry_pending(now);
        self.maybe_start_height(now);
        self.driver.handle_timeout(now);
        self.pump_driver(now);
    }

    /// The block time at which agreement on `height` may start.
    pub(crate) fn agree_time(&self, height: BlockNumber) -> BlockTime {
        self.params
            .block_start(height.next())
            .plus(self.timing.start_grace_us)
    }
}
