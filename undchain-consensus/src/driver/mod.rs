//! The driver: one validator's agreement across rounds and heights, as a
//! sans-IO state machine (DESIGN.md "Agreement"; docs/PROTOCOL.md
//! "Agreement, validator sets and perception scores") speaking the machine
//! vocabulary of docs/ARCHITECTURE.md.
//!
//! # Inputs
//!
//! [`Driver::start_height`], [`Driver::resume`], [`Driver::handle_message`],
//! [`Driver::propose_value`], [`Driver::handle_validity`] and
//! [`Driver::handle_timeout`], each with `now`, the host's
//! [`LocalTime`]. A refused input returns an [`InputError`] saying what was
//! wrong and changes nothing: the state, the vote keeper, the pending
//! timeouts and the next batch are exactly as before it.
//!
//! # Timers
//!
//! The driver keeps its own pending Tendermint timeouts (and the re-send
//! interval). [`Driver::poll_timeout`] says when the next one that can
//! still act is due; [`Driver::handle_timeout`] fires every one due at
//! `now`. Calling it early, late or twice is harmless. Timeouts grow by a
//! fixed step per round ([`TimeoutConfig`]), so rounds eventually outlast
//! any network delay after it heals.
//!
//! # Outputs: one batch at a time
//!
//! [`Driver::ready`] hands out a [`DriverReady`] batch (raft-rs's `Ready`):
//!
//! * `persist`: at most one [`PersistedState`], as of the last message this
//!   validator signed (or round it started) in the batch. The host makes it
//!   durable in one write. A validator restarted from its last persisted
//!   state ([`Driver::resume`]) never signs a second, different message
//!   for a height, round and step it already signed in (no equivocation
//!   across restarts), and keeps its lock.
//! * `after_persist`: every [`Output::Broadcast`] or [`Output::Send`] of a
//!   proposal or vote this validator signed, in order; carried out only
//!   once `persist` is durable.
//! * `immediate`: everything else, in order, which may go at once: relays of
//!   others' votes, block requests, [`Output::GetValue`] (build the block
//!   header, paper line 18, and answer with [`Driver::propose_value`]),
//!   [`Output::CheckValue`] (answer with [`Driver::handle_validity`]; while
//!   the host is still reconciling the proposal's job file it answers
//!   [`Validity::Pending`], the driver does not vote for the proposal, and
//!   `timeoutPropose` gives a nil prevote if the file does not arrive in
//!   time: design notes, validator story item 4), [`Output::Decide`] (the
//!   decided header with its commit certificate, [`crate::certificate`]:
//!   store it, work out the next height's set with
//!   [`crate::roster::Roster`] and call [`Driver::start_height`]),
//!   [`Output::Evidence`] and [`Output::ServeBlocks`].
//!
//! The host acknowledges a batch with [`Driver::advance`]. Until then
//! `ready` hands out nothing more, and whatever later inputs produce waits
//! for the next batch, so nothing that promises can overtake the write it
//! depends on however slowly storage answers.
//!
//! ```
//! use undchain_consensus::{Driver, DriverConfig, Output, ValidatorSet, Value};
//! use undchain_types::{
//!     BlockHeader, BlockNumber, BlockTime, ChainId, Hash32, LocalTime, SigningKey,
//! };
//!
//! // A validator that is the whole set decides alone.
//! let key = SigningKey::from_seed([7; 32]);
//! let set = ValidatorSet::of_unknown(&[key.public()]).unwrap();
//! let mut driver = Driver::new(DriverConfig::new(ChainId(1)), key);
//! let now = LocalTime::ZERO;
//! driver.start_height(now, BlockNumber(0), set.clone());
//! let mut stored = None;
//! let mut decided = None;
//! while let Some(batch) = driver.ready() {
//!     let number = batch.number();
//!     for o in batch.immediate {
//!         match o {
//!             Output::GetValue { height, round } => {
//!                 let header = BlockHeader {
//!                     chain_id: ChainId(1),
//!                     epoch: 0,
//!                     number: height,
//!                     time: BlockTime(0),
//!                     parent: Hash32::ZERO,
//!                     job_root: Hash32::ZERO,
//!                     job_count: 0,
//!                     ops_root: Hash32::ZERO,
//!                     ops_count: 0,
//!                     ledger_root: Hash32::ZERO,
//!                     validator_set_hash: set.hash(),
//!                     links: Default::default(),
//!                     parent_signers: 0,
//!                     evidence: Default::default(),
//!                 };
//!                 let value = Value { header, parent_certificate: None };
//!                 driver.propose_value(now, height, round, value).unwrap();
//!             }
//!             Output::Decide(block) => decided = Some(block),
//!             _ => {}
//!         }
//!     }
//!     // The write, then what needed it (a network would get these).
//!     if let Some(state) = batch.persist.last() {
//!         stored = Some(state.clone());
//!     }
//!     assert!(batch.after_persist.iter().all(|o| matches!(o, Output::Broadcast { .. })));
//!     driver.advance(number).unwrap();
//! }
//! assert_eq!(decided.unwrap().header.number, BlockNumber(0));
//! assert!(stored.is_some());
//! assert_eq!(driver.poll_timeout(), None, "a decided height waits for nothing");
//! ```
//!
//! # Inside
//!
//! A [`VoteKeeper`] tallies votes and the round state machine
//! ([`crate::round`]) decides what to do. `contract` holds the types
//! above; `inputs` the input methods and their checks (chain, height,
//! round, membership, signature: all before anything changes); `mux` the
//! multiplexer that matches proposals with vote thresholds (the paper's
//! `upon` rules, with a rule table) and signs; `gossip` what lossy networks
//! need beyond the paper; `timers` the pending timeouts.
//!
//! Lossy networks: every `rebroadcast_us` the driver re-sends its own
//! messages of the current round (and the polka behind its valid value); it
//! sends a validator it hears from in an older round the votes that let it
//! catch up; and a validator that hears about a later height, or has been
//! stuck in one for four intervals, asks for the decided blocks it missed
//! ([`undchain_types::msg::BlockRequest`]), which it accepts only with a
//! certificate that verifies against its own validator set.

mod ahead;
mod buffer;
mod contract;
mod gossip;
mod inputs;
mod later;
mod mux;
mod timers;

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::msg::{Round, SignedProposal, SignedVote, VoteKind};
use undchain_types::{
    AdvanceError, BlockNumber, Hash32, HashAlgorithm, LocalTime, Message, Outbox, PublicKey,
    ReadyNumber, SigningKey,
};

pub use contract::{
    DriverConfig, DriverReady, InputError, Output, PersistedState, Timeout, TimeoutConfig, Validity,
};

use crate::certificate::{SignatureVerifier, StrictVerifier};
use crate::round::{RoundState, Step, TimeoutKind, Value};
use crate::validator_set::ValidatorSet;
use crate::votekeeper::VoteKeeper;
use ahead::AheadVotes;
use buffer::{FutureMessages, LaterBlocks};
use timers::Timers;

/// A proposal with its block hash and its value's key (computed once).
#[derive(Debug, Clone)]
struct Proposed {
    id: Hash32,
    key: Hash32,
    signed: SignedProposal,
}

impl Proposed {
    /// `signed` with its id and key under `algo`.
    fn new(signed: SignedProposal, algo: HashAlgorithm) -> Self {
        let value = proposal_value(&signed);
        Proposed {
            id: value.header.hash_with(algo),
            key: value.key(algo),
            signed,
        }
    }
}

/// The value a proposal carries.
fn proposal_value(sp: &SignedProposal) -> Value {
    Value {
        header: sp.proposal.header.clone(),
        parent_certificate: sp.proposal.parent_certificate.clone(),
    }
}

/// The `upon` rules that fire once per round (the paper's "for the first
/// time"), by the paper's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rule {
    L34,
    L36,
    L47,
}

/// Per-height bookkeeping. Values, verdicts and questions are by value
/// key ([`Value::key`]): validity is decided on the whole value, header
/// and parent certificate.
#[derive(Debug, Clone)]
struct HeightState {
    set: ValidatorSet,
    keeper: VoteKeeper,
    /// Votes for rounds ahead, signatures not yet checked.
    ahead: AheadVotes,
    proposals: BTreeMap<Round, Vec<Proposed>>,
    /// Value key -> (block hash, value).
    values: BTreeMap<Hash32, (Hash32, Value)>,
    validity: BTreeMap<Hash32, Validity>,
    asked: BTreeSet<Hash32>,
    fired: BTreeSet<(Round, Rule)>,
    reported: BTreeSet<(PublicKey, Round, Option<VoteKind>)>,
    helped: BTreeMap<PublicKey, LocalTime>,
    own_proposal: Option<SignedProposal>,
    own_votes: Vec<SignedVote>,
    started_at: LocalTime,
}

impl HeightState {
    /// A value with block hash `id` that the host found valid, if any
    /// (one valid value for a header is enough: votes name the header).
    fn valid_value(&self, id: &Hash32) -> Option<&Value> {
        self.values
            .iter()
            .find(|(key, (vid, _))| vid == id && self.validity.get(*key) == Some(&Validity::Valid))
            .map(|(_, (_, v))| v)
    }

    /// The verdict on a proposal's value: valid if any value with its
    /// header is valid, else the host's verdict on this value, if given.
    fn verdict(&self, p: &Proposed) -> Option<Validity> {
        if self.valid_value(&p.id).is_some() {
            return Some(Validity::Valid);
        }
        self.validity.get(&p.key).copied()
    }

    /// Remembers a value and the host's verdict on it (own and restored
    /// values are valid).
    fn know(&mut self, key: Hash32, id: Hash32, value: Value, validity: Option<Validity>) {
        self.values.entry(key).or_insert((id, value));
        if let Some(v) = validity {
            self.validity.insert(key, v);
        }
    }

    fn new(height: BlockNumber, set: ValidatorSet, now: LocalTime) -> Self {
        HeightState {
            keeper: VoteKeeper::new(height, set.clone()),
            ahead: AheadVotes::default(),
            set,
            proposals: BTreeMap::new(),
            values: BTreeMap::new(),
            validity: BTreeMap::new(),
            asked: BTreeSet::new(),
            fired: BTreeSet::new(),
            reported: BTreeSet::new(),
            helped: BTreeMap::new(),
            own_proposal: None,
            own_votes: Vec::new(),
            started_at: now,
        }
    }
}

/// One validator's agreement engine. `V` checks signatures
/// ([`StrictVerifier`] by default).
#[derive(Debug, Clone)]
pub struct Driver<V = StrictVerifier> {
    config: DriverConfig,
    key: SigningKey,
    me: PublicKey,
    verifier: V,
    state: RoundState,
    cur: Option<HeightState>,
    future: FutureMessages,
    pending_blocks: LaterBlocks,
    last_block_request: Option<LocalTime>,
    /// When a stuck height last asked everyone (`ask_if_stuck`):
    /// its own clock, so that requests sent to the sender of a later
    /// message (a Byzantine one may flood them and answer with nothing)
    /// never hold back the broadcast to the others.
    last_stuck_request: Option<LocalTime>,
    /// When each member's block request was last served.
    served: BTreeMap<PublicKey, LocalTime>,
    /// Block requests of non-members served in the current interval
    /// (start of the interval, count).
    served_others: (LocalTime, usize),
    /// The `now` of the input being handled.
    now: LocalTime,
    timers: Timers,
    outbox: Outbox<PersistedState, Output>,
    /// The state to write with the next batch (the latest snapshot since
    /// the last batch was handed out).
    unsaved: Option<PersistedState>,
    /// The bug planted for the mutation check, if any.
    #[cfg(feature = "planted-bugs")]
    planted: Option<crate::planted::PlantedBug>,
}

impl Driver<StrictVerifier> {
    /// An idle driver that signs with `key`; call [`Driver::start_height`]
    /// or [`Driver::resume`].
    pub fn new(config: DriverConfig, key: SigningKey) -> Self {
        Self::with_verifier(config, key, StrictVerifier)
    }
}

impl<V: SignatureVerifier> Driver<V> {
    /// As [`Driver::new`], checking signatures with `verifier`.
    pub fn with_verifier(config: DriverConfig, key: SigningKey, verifier: V) -> Self {
        Driver {
            me: key.public(),
            config,
            key,
            verifier,
            state: RoundState::new(BlockNumber(0)),
            cur: None,
            future: FutureMessages::default(),
            pending_blocks: LaterBlocks::default(),
            last_block_request: None,
            last_stuck_request: None,
            served: BTreeMap::new(),
            served_others: (LocalTime::ZERO, 0),
            now: LocalTime::ZERO,
            timers: Timers::default(),
            outbox: Outbox::new(),
            unsaved: None,
            #[cfg(feature = "planted-bugs")]
            planted: None,
        }
    }

    /// Plants `bug` (mutation check, feature `planted-bugs`): from now on
    /// this driver runs a wrong Tendermint.
    #[cfg(feature = "planted-bugs")]
    pub fn plant(&mut self, bug: crate::planted::PlantedBug) {
        self.planted = Some(bug);
    }

    /// Whether line 28 checks the polka behind a proposal's `vr` (always,
    /// unless the mutation check planted its removal).
    fn checks_valid_round(&self) -> bool {
        #[cfg(feature = "planted-bugs")]
        if self.planted == Some(crate::planted::PlantedBug::AcceptUnprovenValidRound) {
            return false;
        }
        true
    }

    /// Whether lines 23 and 29 respect the lock (always, unless the
    /// mutation check planted its removal).
    fn respects_lock(&self) -> bool {
        #[cfg(feature = "planted-bugs")]
        if self.planted == Some(crate::planted::PlantedBug::IgnoreLock) {
            return false;
        }
        true
    }

    /// This validator's identity.
    pub fn public_key(&self) -> PublicKey {
        self.me
    }

    /// The settings this driver was made with.
    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// Height, round, step, lock and valid value.
    pub fn state(&self) -> &RoundState {
        &self.state
    }

    /// The current height's validator set, once started.
    pub fn validator_set(&self) -> Option<&ValidatorSet> {
        self.cur.as_ref().map(|c| &c.set)
    }

    /// The current height's vote keeper, once started.
    pub fn vote_keeper(&self) -> Option<&VoteKeeper> {
        self.cur.as_ref().map(|c| &c.keeper)
    }

    /// How many next-height messages and later-height decided blocks are
    /// kept for later (each checked before it was kept; bounded by the
    /// per-signer quotas and the block window).
    pub fn buffered(&self) -> (usize, usize) {
        (self.future.len(), self.pending_blocks.len())
    }

    /// How many votes for rounds ahead of the current one are kept with
    /// their signatures not yet checked (bounded per voter; checked when
    /// their round is reached or has f+1 voters).
    pub fn unchecked_ahead(&self) -> usize {
        self.cur.as_ref().map_or(0, |c| c.ahead.len())
    }

    /// The state a batch's `persist` would hold now.
    pub fn snapshot(&self) -> PersistedState {
        PersistedState {
            round_state: self.state.clone(),
            own_proposal: self.cur.as_ref().and_then(|c| c.own_proposal.clone()),
            own_votes: self
                .cur
                .as_ref()
                .map(|c| c.own_votes.clone())
                .unwrap_or_default(),
            polka: match (&self.cur, &self.state.valid) {
                (Some(c), Some(v)) => c
                    .keeper
                    .prevotes_for(v.round, v.id)
                    .into_iter()
                    .cloned()
                    .collect(),
                _ => Vec::new(),
            },
        }
    }

    /// When the earliest pending timeout that can still act is due (`None`:
    /// nothing to wait for). Call [`Driver::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<LocalTime> {
        self.pending_timeouts().first().map(|(at, _)| *at)
    }

    /// The pending timeouts that can still act, in the order they will
    /// fire (timeouts of an earlier round or of a decided height are never
    /// listed: firing them would do nothing).
    pub fn pending_timeouts(&self) -> Vec<(LocalTime, Timeout)> {
        self.timers
            .iter()
            .filter(|(_, t)| self.can_act(t))
            .collect()
    }

    /// The next batch for the host, or `None` when there is nothing to do
    /// or the last batch has not been acknowledged with
    /// [`Driver::advance`] yet.
    pub fn ready(&mut self) -> Option<DriverReady> {
        if !self.outbox.is_outstanding() {
            if let Some(state) = self.unsaved.take() {
                self.outbox.persist(state);
            }
        }
        self.outbox.take_ready()
    }

    /// The host made batch `number`'s `persist` durable and carried out its
    /// outputs. A wrong or repeated number is refused and changes nothing.
    pub fn advance(&mut self, number: ReadyNumber) -> Result<(), AdvanceError> {
        self.outbox.advance(number)
    }

    /// Queues an output: a proposal or vote this validator signed waits
    /// for the batch's write, anything else may go at once.
    fn emit(&mut self, output: Output) {
        let promises = match &output {
            Output::Broadcast { msg } | Output::Send { msg, .. } => self.signed_by_me(msg),
            _ => false,
        };
        if promises {
            self.outbox.after_persist(output);
        } else {
            self.outbox.immediate(output);
        }
    }

    /// Whether `msg` is a proposal or vote this validator signed.
    fn signed_by_me(&self, msg: &Message) -> bool {
        match msg {
            Message::Proposal(p) => p.proposal.proposer == self.me,
            Message::Vote(v) => v.vote.validator == self.me,
            _ => false,
        }
    }

    /// Takes a snapshot for the next batch's write (replacing an earlier
    /// one not handed out yet: each snapshot is complete).
    fn persist(&mut self) {
        self.unsaved = Some(self.snapshot());
    }

    /// Starts `kind` for `round` of the current height, due after its
    /// configured length, and forgets timeouts that can no longer act.
    fn start_timeout(&mut self, kind: TimeoutKind, round: Round) {
        let at = self.now.plus(self.config.timeouts.duration(kind, round));
        let timeout = Timeout {
            height: self.state.height,
            round,
            kind,
        };
        self.timers.start(at, timeout);
        let (height, current, step, started) = (
            self.state.height,
            self.state.round,
            self.state.step,
            self.cur.is_some(),
        );
        self.timers
            .retain(|t| can_act(t, started, height, current, step));
    }

    /// Whether firing `t` could still do anything: it is for the running,
    /// undecided height and for the current round (the re-send interval
    /// spans rounds).
    fn can_act(&self, t: &Timeout) -> bool {
        can_act(
            t,
            self.cur.is_some(),
            self.state.height,
            self.state.round,
            self.state.step,
        )
    }
}

/// See [`Driver::can_act`]; free of `self` so that `Timers::retain` can
/// call it while the driver is borrowed.
fn can_act(t: &Timeout, started: bool, height: BlockNumber, round: Round, step: Step) -> bool {
    started
        && t.height == height
        && step != Step::Commit
        && (t.kind == TimeoutKind::Rebroadcast || t.round >= round)
}
