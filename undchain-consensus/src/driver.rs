//! The driver: one validator's agreement across rounds and heights, as a
//! sans-IO state machine (DESIGN.md "Agreement"; docs/PROTOCOL.md
//! "Agreement, validator sets and perception scores").
//!
//! The host feeds inputs (`start_height`, `handle_message`, `handle_timeout`,
//! `propose_value`, `handle_validity`, each with `now`) and carries out the
//! returned [`Output`]s **in order**. The order is the contract:
//!
//! * [`Output::Persist`] comes before the [`Output::Broadcast`] of every
//!   message this validator signs, and the host must make it durable before
//!   it sends anything that follows. A validator restarted from its last
//!   persisted state ([`Driver::resume`]) therefore never signs a second,
//!   different message for a height, round and step it already signed in
//!   (no equivocation across restarts), and keeps its lock.
//! * [`Output::GetValue`] asks the host to build the block header (paper
//!   line 18); the answer comes back through [`Driver::propose_value`].
//! * [`Output::CheckValue`] asks whether a proposed value is valid; the
//!   answer comes back through [`Driver::handle_validity`]. While the host
//!   is still reconciling the proposal's job file it answers
//!   [`Validity::Pending`]: the driver then does not vote for the proposal,
//!   and `timeoutPropose` gives a nil prevote if the file does not arrive in
//!   time (design notes, validator story item 4).
//! * [`Output::Decide`] carries the decided header with its commit
//!   certificate (q precommit signatures, [`crate::certificate`]). The host
//!   stores it, works out the next height's validator set
//!   ([`crate::roster::Roster`]) and calls [`Driver::start_height`].
//!
//! Inside, a [`VoteKeeper`] tallies votes and the round state machine
//! ([`crate::round`]) decides what to do; the driver matches proposals with
//! thresholds (the paper's `upon` guards), checks signatures and rounds, and
//! signs. Timeouts grow by a fixed step per round ([`TimeoutConfig`]), so
//! rounds eventually outlast any network delay after it heals.
//!
//! Lossy networks: every `rebroadcast_us` the driver re-sends its own
//! messages of the current round (and the polka behind its valid value); it
//! sends a validator it hears from in an older round the votes that let it
//! catch up; and a validator that hears about a later height, or has been
//! stuck in one for four intervals, asks for the decided blocks it missed
//! ([`undchain_types::msg::BlockRequest`]), which it accepts only with a
//! certificate that verifies against its own validator set.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use undchain_types::msg::{
    BlockRequest, CommitCertificate, CommittedBlock, Evidence, MAX_BLOCKS_PER_RESPONSE, Proposal,
    Round, SignedProposal, SignedVote, Vote, VoteKind,
};
use undchain_types::{
    BlockNumber, BlockTime, ChainId, Hash32, HashAlgorithm, Message, MessageKind, PublicKey,
    SigningKey,
};

use crate::certificate::{
    CertificateError, SignatureVerifier, StrictVerifier, certificate_from_precommits,
    verify_committed_block,
};
use crate::round::{
    self, Info, ProposalView, RoundInput, RoundOutput, RoundState, RoundValue, Step, TimeoutKind,
    Value,
};
use crate::validator_set::ValidatorSet;
use crate::votekeeper::{RecordVoteError, VoteKeeper};

/// Timeout lengths: `base + delta * round`, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutConfig {
    /// `timeoutPropose(0)`.
    pub propose_us: u64,
    /// Growth of `timeoutPropose` per round.
    pub propose_delta_us: u64,
    /// `timeoutPrevote(0)`.
    pub prevote_us: u64,
    /// Growth of `timeoutPrevote` per round.
    pub prevote_delta_us: u64,
    /// `timeoutPrecommit(0)`.
    pub precommit_us: u64,
    /// Growth of `timeoutPrecommit` per round.
    pub precommit_delta_us: u64,
    /// Interval between re-sends of own messages.
    pub rebroadcast_us: u64,
}

impl TimeoutConfig {
    /// Timeouts scaled to a one-way network delay of `delay_us`: propose
    /// 4 delays + 2 per round, prevote and precommit 2 + 1 per round,
    /// re-send every 8 delays.
    pub fn for_delay(delay_us: u64) -> Self {
        TimeoutConfig {
            propose_us: 4 * delay_us,
            propose_delta_us: 2 * delay_us,
            prevote_us: 2 * delay_us,
            prevote_delta_us: delay_us,
            precommit_us: 2 * delay_us,
            precommit_delta_us: delay_us,
            rebroadcast_us: 8 * delay_us,
        }
    }

    /// How long `kind` waits in `round`.
    pub fn duration(&self, kind: TimeoutKind, round: Round) -> u64 {
        let r = u64::from(round);
        let (base, delta) = match kind {
            TimeoutKind::Propose => (self.propose_us, self.propose_delta_us),
            TimeoutKind::Prevote => (self.prevote_us, self.prevote_delta_us),
            TimeoutKind::Precommit => (self.precommit_us, self.precommit_delta_us),
            TimeoutKind::Rebroadcast => (self.rebroadcast_us, 0),
        };
        base.saturating_add(delta.saturating_mul(r))
    }
}

impl Default for TimeoutConfig {
    /// Scaled to a 250 ms one-way delay (a 2 s block leaves room for about
    /// two rounds).
    fn default() -> Self {
        Self::for_delay(250_000)
    }
}

/// Settings every validator of a chain shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverConfig {
    /// The chain.
    pub chain_id: ChainId,
    /// The block hash algorithm.
    pub hash_algorithm: HashAlgorithm,
    /// Timeouts.
    pub timeouts: TimeoutConfig,
    /// Messages for rounds further ahead than this are refused (bounds the
    /// memory a Byzantine validator can make us spend).
    pub max_rounds_ahead: Round,
}

impl DriverConfig {
    /// Defaults for `chain_id`.
    pub fn new(chain_id: ChainId) -> Self {
        DriverConfig {
            chain_id,
            hash_algorithm: HashAlgorithm::Blake3,
            timeouts: TimeoutConfig::default(),
            max_rounds_ahead: 64,
        }
    }

    /// The settings of a chain: its id and hash algorithm, default
    /// timeouts.
    pub fn from_params(params: &undchain_types::ChainParams) -> Self {
        DriverConfig {
            hash_algorithm: params.hash_algorithm,
            ..Self::new(params.chain_id)
        }
    }
}

/// A timeout the host schedules and hands back when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timeout {
    /// Height.
    pub height: BlockNumber,
    /// Round.
    pub round: Round,
    /// Which.
    pub kind: TimeoutKind,
}

/// The host's verdict on a proposed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Validity {
    /// Valid: may be voted for.
    Valid,
    /// Invalid: prevote nil.
    Invalid,
    /// Not known yet (the job file is being reconciled): do not vote for it
    /// yet; a later call says Valid or Invalid.
    Pending,
}

/// What a validator must have on disk to restart without equivocating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    /// Height, round, step, lock and valid value.
    pub round_state: RoundState,
    /// This validator's proposal in the current round, if it sent one.
    pub own_proposal: Option<SignedProposal>,
    /// This validator's votes in the current round.
    pub own_votes: Vec<SignedVote>,
    /// The prevotes that made the valid value valid (its polka), so that
    /// after a restart the validator can still show others why it
    /// re-proposes it (line 28 needs them at every receiver).
    pub polka: Vec<SignedVote>,
}

/// What the host must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Store this state durably before carrying out any later output.
    Persist(Box<PersistedState>),
    /// Send to every validator of the height (and any observers).
    Broadcast(Message),
    /// Send to one peer.
    Send {
        /// The peer.
        to: PublicKey,
        /// The message.
        message: Message,
    },
    /// Call [`Driver::handle_timeout`] with `timeout` at `at`.
    ScheduleTimeout {
        /// The timeout.
        timeout: Timeout,
        /// When it fires.
        at: BlockTime,
    },
    /// Build a block header for this height and round and pass it to
    /// [`Driver::propose_value`] (paper line 18).
    GetValue {
        /// Height.
        height: BlockNumber,
        /// Round.
        round: Round,
    },
    /// Check this value and answer with [`Driver::handle_validity`].
    CheckValue {
        /// Height.
        height: BlockNumber,
        /// Round of the proposal that carried it.
        round: Round,
        /// The block hash.
        id: Hash32,
        /// The value.
        value: Box<Value>,
    },
    /// Decided: store the block, then start the next height.
    Decide(Box<CommittedBlock>),
    /// Conflicting signed messages: store and forward as evidence.
    Evidence(Box<Evidence>),
    /// A peer asked for decided blocks: answer from storage with a
    /// [`undchain_types::msg::BlockResponse`].
    ServeBlocks {
        /// The peer.
        to: PublicKey,
        /// What it asked for.
        request: BlockRequest,
    },
}

/// Why an input was refused (nothing changed, except that evidence may have
/// been emitted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// For another chain.
    #[error("message for {got}, this is {expected}")]
    WrongChain {
        /// This chain.
        expected: ChainId,
        /// The message's chain.
        got: ChainId,
    },
    /// Not an agreement message.
    #[error("{kind} is not an agreement message")]
    NotAgreement {
        /// Its kind.
        kind: MessageKind,
    },
    /// The signer holds no seat at this height.
    #[error("{validator:?} holds no seat at height {height}")]
    NotInSet {
        /// The signer.
        validator: PublicKey,
        /// The height.
        height: BlockNumber,
    },
    /// A proposal from someone who is not that round's proposer.
    #[error("proposal by {got:?}, but {expected:?} proposes height {height} round {round}")]
    NotProposer {
        /// The height.
        height: BlockNumber,
        /// The round.
        round: Round,
        /// The proposer.
        expected: PublicKey,
        /// The signer.
        got: PublicKey,
    },
    /// A proposal whose header is for another block number or chain.
    #[error("proposal for height {height} carries a header for block {number}")]
    HeaderMismatch {
        /// The proposal's height.
        height: BlockNumber,
        /// The header's number.
        number: BlockNumber,
    },
    /// The signature does not verify.
    #[error("signature of {signer:?} does not verify")]
    BadSignature {
        /// The claimed signer.
        signer: PublicKey,
    },
    /// A round too far ahead of ours.
    #[error("round {round} is more than {max} rounds ahead of {current}")]
    RoundTooFar {
        /// The message's round.
        round: Round,
        /// Ours.
        current: Round,
        /// The window.
        max: Round,
    },
    /// Evidence that is not evidence.
    #[error("evidence refused: {0}")]
    Evidence(#[from] undchain_types::msg::EvidenceError),
    /// A decided block whose certificate does not verify.
    #[error("decided block refused: {0}")]
    Certificate(#[from] CertificateError),
}

/// At most this many distinct proposals are kept per round (the first is
/// "the" proposal; more only matter to follow an equivocating proposer's
/// polka and for evidence).
const MAX_PROPOSALS_PER_ROUND: usize = 3;
/// Messages for the next height kept until it starts.
const MAX_FUTURE_MESSAGES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rule {
    L34,
    L36,
    L47,
}

/// A proposal with its block hash (computed once).
#[derive(Debug, Clone)]
struct Proposed {
    id: Hash32,
    signed: SignedProposal,
}

/// Per-height bookkeeping.
#[derive(Debug, Clone)]
struct HeightState {
    set: ValidatorSet,
    keeper: VoteKeeper,
    proposals: BTreeMap<Round, Vec<Proposed>>,
    values: BTreeMap<Hash32, Value>,
    validity: BTreeMap<Hash32, Validity>,
    asked: BTreeSet<Hash32>,
    fired: BTreeSet<(Round, Rule)>,
    reported: BTreeSet<(PublicKey, Round, Option<VoteKind>)>,
    helped: BTreeMap<PublicKey, BlockTime>,
    own_proposal: Option<SignedProposal>,
    own_votes: Vec<SignedVote>,
    started_at: BlockTime,
}

/// One validator's agreement engine. `V` checks signatures
/// ([`StrictVerifier`] by default).
#[derive(Debug)]
pub struct Driver<V = StrictVerifier> {
    config: DriverConfig,
    key: SigningKey,
    me: PublicKey,
    verifier: V,
    state: RoundState,
    cur: Option<HeightState>,
    future: Vec<(PublicKey, Message)>,
    pending_blocks: BTreeMap<BlockNumber, CommittedBlock>,
    last_block_request: Option<BlockTime>,
    now: BlockTime,
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
            future: Vec::new(),
            pending_blocks: BTreeMap::new(),
            last_block_request: None,
            now: BlockTime(0),
        }
    }

    /// This validator's identity.
    pub fn public_key(&self) -> PublicKey {
        self.me
    }

    /// The settings.
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

    /// What [`Output::Persist`] would store now.
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

    /// Starts `height`, signed by `set` (after a decision, or at genesis).
    pub fn start_height(
        &mut self,
        now: BlockTime,
        height: BlockNumber,
        set: ValidatorSet,
    ) -> Vec<Output> {
        self.now = now;
        self.state = RoundState::new(height);
        self.cur = Some(HeightState::new(height, set, now));
        let mut out = Vec::new();
        self.schedule(TimeoutKind::Rebroadcast, 0, &mut out);
        self.apply_input(0, RoundInput::NewRound(0), &mut out);
        self.replay_buffered(&mut out);
        self.process(&mut out);
        out
    }

    /// Restarts from a persisted state for its height, signed by `set`:
    /// re-sends the messages it had signed in its round (never new,
    /// different ones) and re-arms the current step's timeout. Use it only
    /// when the host's chain has no block at that height yet; otherwise
    /// start the next height with [`Driver::start_height`].
    pub fn resume(
        &mut self,
        now: BlockTime,
        persisted: PersistedState,
        set: ValidatorSet,
    ) -> Vec<Output> {
        self.now = now;
        let height = persisted.round_state.height;
        self.state = persisted.round_state;
        let mut hs = HeightState::new(height, set, now);
        for rv in [&self.state.locked, &self.state.valid]
            .into_iter()
            .flatten()
        {
            hs.values.insert(rv.id, rv.value.clone());
            hs.validity.insert(rv.id, Validity::Valid);
        }
        let mut out = Vec::new();
        if let Some(p) = &persisted.own_proposal {
            let id = p.proposal.header.hash_with(self.config.hash_algorithm);
            hs.keeper.add_sender(p.proposal.round, self.me);
            hs.values.insert(
                id,
                Value {
                    header: p.proposal.header.clone(),
                    parent_certificate: p.proposal.parent_certificate.clone(),
                },
            );
            hs.validity.insert(id, Validity::Valid);
            hs.proposals
                .entry(p.proposal.round)
                .or_default()
                .push(Proposed {
                    id,
                    signed: p.clone(),
                });
            out.push(Output::Broadcast(Message::Proposal(p.clone())));
        }
        for v in &persisted.own_votes {
            // Our own, already signed: counting cannot conflict.
            let _ = hs.keeper.add_vote(v.clone());
            out.push(Output::Broadcast(Message::Vote(v.clone())));
        }
        for v in &persisted.polka {
            // Checked when they first arrived; only members' votes count.
            let _ = hs.keeper.add_vote(v.clone());
        }
        hs.own_proposal = persisted.own_proposal;
        hs.own_votes = persisted.own_votes;
        self.cur = Some(hs);
        self.schedule(TimeoutKind::Rebroadcast, 0, &mut out);
        let round = self.state.round;
        match self.state.step {
            Step::Unstarted => {
                self.apply_input(round, RoundInput::NewRound(round), &mut out);
            }
            Step::Propose => {
                let proposer = self.is_proposer(round);
                let has_own = self.cur.as_ref().is_some_and(|c| c.own_proposal.is_some());
                if proposer && !has_own {
                    // The host's value never came before the crash: ask again.
                    // (Starting the round again would re-propose a valid
                    // value, which is the same message if one was signed.)
                    self.state.step = Step::Unstarted;
                    self.apply_input(round, RoundInput::NewRound(round), &mut out);
                } else {
                    self.schedule(TimeoutKind::Propose, round, &mut out);
                }
            }
            Step::Prevote => self.schedule(TimeoutKind::Prevote, round, &mut out),
            Step::Precommit => self.schedule(TimeoutKind::Precommit, round, &mut out),
            Step::Commit => {}
        }
        self.replay_buffered(&mut out);
        self.process(&mut out);
        out
    }

    /// Any agreement message from peer `from`.
    pub fn handle_message(
        &mut self,
        now: BlockTime,
        from: PublicKey,
        message: Message,
    ) -> Result<Vec<Output>, InputError> {
        self.now = now;
        match message {
            Message::Proposal(p) => self.handle_proposal(now, from, p),
            Message::Vote(v) => self.handle_vote(now, from, v),
            Message::BlockRequest(request) => Ok(vec![Output::ServeBlocks { to: from, request }]),
            Message::BlockResponse(r) => self.handle_blocks(now, r.blocks.into_vec()),
            Message::CommitCertificate(c) => self.handle_certificate(now, c),
            Message::Evidence(e) => {
                e.verify()?;
                Ok(vec![Output::Evidence(Box::new(e))])
            }
            other => Err(InputError::NotAgreement { kind: other.kind() }),
        }
    }

    /// A signed proposal.
    pub fn handle_proposal(
        &mut self,
        now: BlockTime,
        from: PublicKey,
        sp: SignedProposal,
    ) -> Result<Vec<Output>, InputError> {
        self.now = now;
        let p = &sp.proposal;
        self.check_chain(p.chain_id)?;
        if p.header.number != p.height || p.header.chain_id != p.chain_id {
            return Err(InputError::HeaderMismatch {
                height: p.height,
                number: p.header.number,
            });
        }
        let mut out = Vec::new();
        if !self.is_current(p.height, &mut out, from, || Message::Proposal(sp.clone())) {
            return Ok(out);
        }
        let (height, round) = (p.height, p.round);
        self.check_round(round)?;
        let algo = self.config.hash_algorithm;
        let me = self.me;
        let Some(cur) = self.cur.as_mut() else {
            return Ok(out);
        };
        let expected = cur.set.proposer(height, round);
        if p.proposer != expected {
            return Err(InputError::NotProposer {
                height,
                round,
                expected,
                got: p.proposer,
            });
        }
        let known = cur.proposals.get(&round);
        if known.is_some_and(|ps| ps.iter().any(|x| x.signed == sp)) || p.proposer == me {
            return Ok(out);
        }
        if !self
            .verifier
            .verify(&p.proposer, &p.digest(), &sp.signature)
        {
            return Err(InputError::BadSignature { signer: p.proposer });
        }
        let id = p.header.hash_with(algo);
        let list = cur.proposals.entry(round).or_default();
        if let Some(first) = list.first() {
            if cur.reported.insert((p.proposer, round, None)) {
                out.push(Output::Evidence(Box::new(Evidence::DoubleProposal {
                    first: Box::new(first.signed.clone()),
                    second: Box::new(sp.clone()),
                })));
            }
        }
        if list.len() >= MAX_PROPOSALS_PER_ROUND {
            return Ok(out);
        }
        list.push(Proposed {
            id,
            signed: sp.clone(),
        });
        cur.values.entry(id).or_insert_with(|| Value {
            header: sp.proposal.header.clone(),
            parent_certificate: sp.proposal.parent_certificate.clone(),
        });
        cur.keeper.add_sender(round, sp.proposal.proposer);
        self.ask_validity(round, id, &mut out);
        self.process(&mut out);
        Ok(out)
    }

    /// A signed prevote or precommit.
    pub fn handle_vote(
        &mut self,
        now: BlockTime,
        from: PublicKey,
        sv: SignedVote,
    ) -> Result<Vec<Output>, InputError> {
        self.now = now;
        let v = &sv.vote;
        self.check_chain(v.chain_id)?;
        let mut out = Vec::new();
        if !self.is_current(v.height, &mut out, from, || Message::Vote(sv.clone())) {
            return Ok(out);
        }
        self.check_round(v.round)?;
        if v.round < self.state.round {
            self.help_lagging(from, v.round, &mut out);
        }
        let Some(cur) = self.cur.as_mut() else {
            return Ok(out);
        };
        if cur.keeper.has_vote(&sv) {
            return Ok(out);
        }
        if !cur.set.contains(&v.validator) {
            return Err(InputError::NotInSet {
                validator: v.validator,
                height: v.height,
            });
        }
        if !self
            .verifier
            .verify(&v.validator, &v.digest(), &sv.signature)
        {
            return Err(InputError::BadSignature {
                signer: v.validator,
            });
        }
        match cur.keeper.add_vote(sv) {
            Ok(outcome) => {
                if let Some(ev) = outcome.evidence {
                    if let Evidence::DoubleVote { first, .. } = &ev {
                        let slot = (
                            first.vote.validator,
                            first.vote.round,
                            Some(first.vote.kind),
                        );
                        if cur.reported.insert(slot) {
                            out.push(Output::Evidence(Box::new(ev)));
                        }
                    }
                }
            }
            // Over the per-slot cap: not counted; evidence went out before.
            Err(RecordVoteError::ConflictingVote { .. }) => return Ok(out),
            Err(RecordVoteError::UnknownValidator { validator }) => {
                return Err(InputError::NotInSet {
                    validator,
                    height: self.state.height,
                });
            }
            // Heights were matched above.
            Err(RecordVoteError::WrongHeight { .. }) => return Ok(out),
        }
        self.process(&mut out);
        Ok(out)
    }

    /// The host's value for `height`, `round` (answer to
    /// [`Output::GetValue`]).
    pub fn propose_value(
        &mut self,
        now: BlockTime,
        height: BlockNumber,
        round: Round,
        value: Value,
    ) -> Vec<Output> {
        self.now = now;
        let mut out = Vec::new();
        let has_own = self.cur.as_ref().is_some_and(|c| c.own_proposal.is_some());
        if height != self.state.height || round != self.state.round || has_own {
            return out;
        }
        let id = value.header.hash_with(self.config.hash_algorithm);
        self.apply_input(round, RoundInput::ProposeValue(value, id), &mut out);
        self.process(&mut out);
        out
    }

    /// The host's verdict on a value (answer to [`Output::CheckValue`]).
    pub fn handle_validity(
        &mut self,
        now: BlockTime,
        height: BlockNumber,
        id: Hash32,
        validity: Validity,
    ) -> Vec<Output> {
        self.now = now;
        let mut out = Vec::new();
        if height != self.state.height {
            return out;
        }
        if let Some(cur) = self.cur.as_mut() {
            cur.validity.insert(id, validity);
        }
        self.process(&mut out);
        out
    }

    /// A timeout the host scheduled fired.
    pub fn handle_timeout(&mut self, now: BlockTime, timeout: Timeout) -> Vec<Output> {
        self.now = now;
        let mut out = Vec::new();
        if timeout.height != self.state.height || self.cur.is_none() {
            return out;
        }
        let input = match timeout.kind {
            TimeoutKind::Rebroadcast => {
                if self.state.step != Step::Commit {
                    self.rebroadcast(&mut out);
                    self.ask_if_stuck(&mut out);
                    self.schedule(TimeoutKind::Rebroadcast, 0, &mut out);
                }
                return out;
            }
            TimeoutKind::Propose => RoundInput::TimeoutPropose,
            TimeoutKind::Prevote => RoundInput::TimeoutPrevote,
            TimeoutKind::Precommit => RoundInput::TimeoutPrecommit,
        };
        self.apply_input(timeout.round, input, &mut out);
        self.process(&mut out);
        out
    }

    /// Decided blocks from a peer (catch-up). The block of the current
    /// height is decided if its certificate verifies against this height's
    /// set; later ones wait for their height.
    pub fn handle_blocks(
        &mut self,
        now: BlockTime,
        blocks: Vec<CommittedBlock>,
    ) -> Result<Vec<Output>, InputError> {
        self.now = now;
        let mut out = Vec::new();
        for b in blocks {
            let n = b.header.number;
            if n > self.state.height || self.cur.is_none() {
                if self.pending_blocks.len() < MAX_BLOCKS_PER_RESPONSE {
                    self.pending_blocks.insert(n, b);
                }
            } else if n == self.state.height && self.state.step != Step::Commit {
                self.decide_from_block(b, &mut out)?;
            }
        }
        Ok(out)
    }

    /// A bare certificate: decides if it is for the current height, names a
    /// value this validator knows to be valid, and verifies.
    pub fn handle_certificate(
        &mut self,
        now: BlockTime,
        cert: CommitCertificate,
    ) -> Result<Vec<Output>, InputError> {
        self.now = now;
        self.check_chain(cert.chain_id)?;
        let mut out = Vec::new();
        let Some(cur) = self.cur.as_ref() else {
            return Ok(out);
        };
        if cert.height != self.state.height || self.state.step == Step::Commit {
            return Ok(out);
        }
        let Some(value) = cur.values.get(&cert.block_hash) else {
            return Ok(out);
        };
        if cur.validity.get(&cert.block_hash) != Some(&Validity::Valid) {
            return Ok(out);
        }
        let block = CommittedBlock {
            header: value.header.clone(),
            certificate: cert,
        };
        self.decide_from_block(block, &mut out)?;
        Ok(out)
    }

    // ------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------

    fn check_chain(&self, got: ChainId) -> Result<(), InputError> {
        if got != self.config.chain_id {
            return Err(InputError::WrongChain {
                expected: self.config.chain_id,
                got,
            });
        }
        Ok(())
    }

    fn check_round(&self, round: Round) -> Result<(), InputError> {
        let max = self.config.max_rounds_ahead;
        if round > self.state.round.saturating_add(max) {
            return Err(InputError::RoundTooFar {
                round,
                current: self.state.round,
                max,
            });
        }
        Ok(())
    }

    fn is_proposer(&self, round: Round) -> bool {
        self.cur
            .as_ref()
            .is_some_and(|c| c.set.proposer(self.state.height, round) == self.me)
    }

    /// Whether a message for `height` is for the running, undecided height.
    /// Buffers the next height's messages (and anything while idle), and
    /// asks the sender for decided blocks when this validator seems behind.
    fn is_current(
        &mut self,
        height: BlockNumber,
        out: &mut Vec<Output>,
        from: PublicKey,
        msg: impl FnOnce() -> Message,
    ) -> bool {
        let ours = self.state.height;
        let Some(started_at) = self.cur.as_ref().map(|c| c.started_at) else {
            if self.future.len() < MAX_FUTURE_MESSAGES {
                self.future.push((from, msg()));
            }
            return false;
        };
        let decided = self.state.step == Step::Commit;
        if height <= ours {
            return height == ours && !decided;
        }
        if height == ours.next() && self.future.len() < MAX_FUTURE_MESSAGES {
            self.future.push((from, msg()));
        }
        if decided {
            return false;
        }
        let every = self.config.timeouts.rebroadcast_us;
        let far = height.0 > ours.0.saturating_add(1);
        let stuck = self.now >= started_at.plus(every);
        let rate_ok = self
            .last_block_request
            .is_none_or(|t| self.now >= t.plus(every));
        if (far || stuck) && rate_ok {
            self.last_block_request = Some(self.now);
            out.push(Output::Send {
                to: from,
                message: Message::BlockRequest(BlockRequest {
                    from: ours,
                    max: MAX_BLOCKS_PER_RESPONSE as u16,
                }),
            });
        }
        false
    }

    fn replay_buffered(&mut self, out: &mut Vec<Output>) {
        let h = self.state.height;
        if let Some(b) = self.pending_blocks.remove(&h) {
            // A bad buffered block is simply dropped.
            let _ = self.decide_from_block(b, out);
        }
        self.pending_blocks.retain(|n, _| *n > h);
        let buffered = std::mem::take(&mut self.future);
        for (from, msg) in buffered {
            if self.state.step == Step::Commit {
                // Decided meanwhile: keep what is for later.
                if msg_height(&msg).is_some_and(|mh| mh > h) {
                    self.future.push((from, msg));
                }
                continue;
            }
            match msg_height(&msg) {
                Some(mh) if mh == h => {
                    // Refused buffered messages are dropped like fresh ones.
                    if let Ok(more) = self.handle_message(self.now, from, msg) {
                        out.extend(more);
                    }
                }
                Some(mh) if mh > h => self.future.push((from, msg)),
                _ => {}
            }
        }
    }

    fn ask_validity(&mut self, round: Round, id: Hash32, out: &mut Vec<Output>) {
        let height = self.state.height;
        let Some(cur) = self.cur.as_mut() else {
            return;
        };
        if cur.validity.contains_key(&id) || !cur.asked.insert(id) {
            return;
        }
        if let Some(value) = cur.values.get(&id) {
            out.push(Output::CheckValue {
                height,
                round,
                id,
                value: Box::new(value.clone()),
            });
        }
    }

    fn schedule(&self, kind: TimeoutKind, round: Round, out: &mut Vec<Output>) {
        let d = self.config.timeouts.duration(kind, round);
        out.push(Output::ScheduleTimeout {
            timeout: Timeout {
                height: self.state.height,
                round,
                kind,
            },
            at: self.now.plus(d),
        });
    }

    fn persist(&self, out: &mut Vec<Output>) {
        out.push(Output::Persist(Box::new(self.snapshot())));
    }

    /// Re-sends own messages of the current round, and the polka behind
    /// the valid value: Tendermint's liveness needs every correct validator
    /// to eventually see a polka some correct validator saw (the paper's
    /// gossip assumption), or a proposal naming it as `vr` could never pass
    /// line 28 at validators that missed those prevotes.
    fn rebroadcast(&self, out: &mut Vec<Output>) {
        let Some(cur) = self.cur.as_ref() else {
            return;
        };
        if let Some(p) = &cur.own_proposal {
            out.push(Output::Broadcast(Message::Proposal(p.clone())));
        }
        for v in &cur.own_votes {
            out.push(Output::Broadcast(Message::Vote(v.clone())));
        }
        if let Some(valid) = &self.state.valid {
            self.relay_polka(valid.round, valid.id, out);
        }
    }

    /// A validator of this height is still in `round`, behind us: send it
    /// the votes of its round (so it can move on: lines 34, 44, 47, 65, or
    /// decide, line 49) and the votes of our round (so f+1 of them
    /// let it skip ahead, line 55). Own messages are only re-sent while
    /// their round is current, so without this a validator left alone in a
    /// round by a partition could wait forever. Once per rebroadcast
    /// interval per peer.
    fn help_lagging(&mut self, peer: PublicKey, round: Round, out: &mut Vec<Output>) {
        let now = self.now;
        let every = self.config.timeouts.rebroadcast_us;
        let current = self.state.round;
        let Some(cur) = self.cur.as_mut() else {
            return;
        };
        if !cur.set.contains(&peer) || peer == self.me {
            return;
        }
        if cur.helped.get(&peer).is_some_and(|t| now < t.plus(every)) {
            return;
        }
        cur.helped.insert(peer, now);
        let mut msgs: Vec<Message> = cur
            .keeper
            .votes_in(round, VoteKind::Prevote)
            .into_iter()
            .chain(cur.keeper.votes_in(round, VoteKind::Precommit))
            .chain(cur.keeper.votes_in(current, VoteKind::Prevote))
            .chain(cur.keeper.votes_in(current, VoteKind::Precommit))
            .map(|v| Message::Vote(v.clone()))
            .collect();
        if let Some(p) = cur.proposals.get(&current).and_then(|ps| ps.first()) {
            msgs.push(Message::Proposal(p.signed.clone()));
        }
        out.extend(
            msgs.into_iter()
                .map(|message| Output::Send { to: peer, message }),
        );
    }

    /// A height that has run for four rebroadcast intervals may have been
    /// decided without us (and the others gone quiet): ask everyone for
    /// decided blocks, at most once per interval.
    fn ask_if_stuck(&mut self, out: &mut Vec<Output>) {
        let every = self.config.timeouts.rebroadcast_us;
        let Some(started_at) = self.cur.as_ref().map(|c| c.started_at) else {
            return;
        };
        let stuck = self.now >= started_at.plus(every.saturating_mul(4));
        let rate_ok = self
            .last_block_request
            .is_none_or(|t| self.now >= t.plus(every));
        if stuck && rate_ok {
            self.last_block_request = Some(self.now);
            out.push(Output::Broadcast(Message::BlockRequest(BlockRequest {
                from: self.state.height,
                max: MAX_BLOCKS_PER_RESPONSE as u16,
            })));
        }
    }

    /// Relays the prevotes of `round` for `id` (others' signed votes: they
    /// authenticate themselves).
    fn relay_polka(&self, round: Round, id: Hash32, out: &mut Vec<Output>) {
        let Some(cur) = self.cur.as_ref() else {
            return;
        };
        for v in cur.keeper.prevotes_for(round, id) {
            out.push(Output::Broadcast(Message::Vote(v.clone())));
        }
    }

    /// Runs the paper's `upon` rules until none applies.
    fn process(&mut self, out: &mut Vec<Output>) {
        // Every applied input moves the step, the round or a "first time"
        // flag forward, so this ends; the bound is a belt and braces.
        for _ in 0..256 {
            let Some((round, input)) = self.next_input() else {
                return;
            };
            if !self.apply_input(round, input, out) {
                return;
            }
        }
    }

    /// The next applicable rule, as a state machine input.
    fn next_input(&mut self) -> Option<(Round, RoundInput)> {
        let step = self.state.step;
        let r = self.state.round;
        let cur = self.cur.as_mut()?;
        if matches!(step, Step::Commit | Step::Unstarted) {
            return None;
        }
        let valid = |cur: &HeightState, id: &Hash32| cur.validity.get(id).copied();
        let view = |cur: &HeightState, round: Round, id: Hash32, pol: Option<Round>| {
            cur.values.get(&id).map(|v| ProposalView {
                round,
                id,
                value: v.clone(),
                pol_round: pol,
            })
        };

        // L49: a valid value with q precommits in any round. The value only
        // has to be known (from any proposal): the certificate is what makes
        // the decision safe.
        for (round, id) in cur.keeper.precommit_quorums() {
            if valid(cur, &id) == Some(Validity::Valid) {
                if let Some(p) = view(cur, round, id, None) {
                    return Some((round, RoundInput::ProposalAndPrecommitValue(p)));
                }
            }
        }
        // L55: f+1 validators in a higher round.
        if let Some(skip) = cur.keeper.skip_to(r) {
            return Some((skip, RoundInput::SkipRound(skip)));
        }
        // L22 / L28: the proposal of this round, while step = propose.
        if step == Step::Propose {
            if let Some(first) = cur.proposals.get(&r).and_then(|ps| ps.first()) {
                let id = first.id;
                let pol = first.signed.proposal.pol_round;
                match pol {
                    None => match valid(cur, &id) {
                        Some(Validity::Valid) => {
                            let p = view(cur, r, id, None)?;
                            return Some((r, RoundInput::Proposal(p)));
                        }
                        Some(Validity::Invalid) => return Some((r, RoundInput::InvalidProposal)),
                        _ => {}
                    },
                    Some(vr)
                        if vr < r && cur.keeper.has_quorum_for(vr, VoteKind::Prevote, Some(id)) =>
                    {
                        match valid(cur, &id) {
                            Some(Validity::Valid) => {
                                let p = view(cur, r, id, pol)?;
                                return Some((r, RoundInput::ProposalAndPolkaPrevious(p)));
                            }
                            Some(Validity::Invalid) => {
                                return Some((r, RoundInput::InvalidProposalAndPolkaPrevious));
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
        }
        if matches!(step, Step::Prevote | Step::Precommit) {
            // L36: this round's proposal, valid, with q prevotes for it.
            if !cur.fired.contains(&(r, Rule::L36)) {
                let ids: Vec<Hash32> = cur
                    .proposals
                    .get(&r)
                    .map(|ps| ps.iter().map(|p| p.id).collect())
                    .unwrap_or_default();
                for id in ids {
                    if valid(cur, &id) == Some(Validity::Valid)
                        && cur.keeper.has_quorum_for(r, VoteKind::Prevote, Some(id))
                    {
                        cur.fired.insert((r, Rule::L36));
                        let p = view(cur, r, id, None)?;
                        return Some((r, RoundInput::ProposalAndPolkaCurrent(p)));
                    }
                }
            }
            if step == Step::Prevote {
                // L44: q prevotes for nil.
                if cur.keeper.has_quorum_for(r, VoteKind::Prevote, None) {
                    return Some((r, RoundInput::PolkaNil));
                }
                // L34: q prevotes of any kind, first time.
                if cur.keeper.has_quorum_any(r, VoteKind::Prevote)
                    && cur.fired.insert((r, Rule::L34))
                {
                    return Some((r, RoundInput::PolkaAny));
                }
            }
        }
        // L47: q precommits of any kind, first time.
        if cur.keeper.has_quorum_any(r, VoteKind::Precommit) && cur.fired.insert((r, Rule::L47)) {
            return Some((r, RoundInput::PrecommitAny));
        }
        None
    }

    /// Feeds one input to the round state machine and carries out its
    /// outputs. Returns whether the input applied.
    fn apply_input(
        &mut self,
        input_round: Round,
        input: RoundInput,
        out: &mut Vec<Output>,
    ) -> bool {
        let info = Info {
            input_round,
            is_proposer: self.is_proposer(input_round),
        };
        let Some(outputs) = round::apply(&mut self.state, info, input) else {
            return false;
        };
        for o in outputs {
            self.carry_out(o, out);
        }
        true
    }

    fn carry_out(&mut self, o: RoundOutput, out: &mut Vec<Output>) {
        let height = self.state.height;
        let chain_id = self.config.chain_id;
        match o {
            RoundOutput::NewRound(r) => {
                if let Some(cur) = self.cur.as_mut() {
                    cur.own_proposal = None;
                    cur.own_votes.clear();
                }
                self.apply_input(r, RoundInput::NewRound(r), out);
                self.persist(out);
            }
            RoundOutput::GetValue { round } => out.push(Output::GetValue { height, round }),
            RoundOutput::ScheduleTimeout { round, kind } => self.schedule(kind, round, out),
            RoundOutput::Proposal {
                round,
                id,
                value,
                pol_round,
            } => {
                let Some(cur) = self.cur.as_mut() else {
                    return;
                };
                let sp = Proposal {
                    chain_id,
                    height,
                    round,
                    pol_round,
                    header: value.header.clone(),
                    proposer: self.me,
                    parent_certificate: value.parent_certificate.clone(),
                }
                .sign(&self.key);
                cur.values.entry(id).or_insert(value);
                cur.validity.insert(id, Validity::Valid);
                cur.proposals.entry(round).or_default().insert(
                    0,
                    Proposed {
                        id,
                        signed: sp.clone(),
                    },
                );
                cur.keeper.add_sender(round, self.me);
                cur.own_proposal = Some(sp.clone());
                self.persist(out);
                out.push(Output::Broadcast(Message::Proposal(sp)));
                if let Some(vr) = pol_round {
                    // Line 28 needs the polka of vr at every receiver.
                    self.relay_polka(vr, id, out);
                }
            }
            RoundOutput::Vote { round, kind, value } => {
                let Some(cur) = self.cur.as_mut() else {
                    return;
                };
                if !cur.set.contains(&self.me) {
                    // An observer follows the rounds but never votes.
                    return;
                }
                let sv = Vote {
                    chain_id,
                    height,
                    round,
                    kind,
                    value,
                    validator: self.me,
                }
                .sign(&self.key);
                // Our own vote never conflicts: the step only moves forward.
                let _ = cur.keeper.add_vote(sv.clone());
                cur.own_votes.push(sv.clone());
                self.persist(out);
                out.push(Output::Broadcast(Message::Vote(sv)));
            }
            RoundOutput::Decision(rv) => {
                let Some(cur) = self.cur.as_ref() else {
                    return;
                };
                let cert = certificate_from_precommits(
                    chain_id,
                    height,
                    rv.round,
                    rv.id,
                    cur.keeper.precommits_for(rv.round, rv.id),
                );
                out.push(Output::Decide(Box::new(CommittedBlock {
                    header: rv.value.header,
                    certificate: cert,
                })));
            }
        }
    }

    fn decide_from_block(
        &mut self,
        block: CommittedBlock,
        out: &mut Vec<Output>,
    ) -> Result<(), InputError> {
        let Some(cur) = self.cur.as_ref() else {
            return Ok(());
        };
        let height = self.state.height;
        verify_committed_block(
            &block,
            self.config.chain_id,
            height,
            &cur.set,
            self.config.hash_algorithm,
            &mut self.verifier,
        )?;
        self.state.step = Step::Commit;
        self.state.decision = Some(RoundValue {
            round: block.certificate.round,
            id: block.certificate.block_hash,
            value: Value {
                header: block.header.clone(),
                parent_certificate: None,
            },
        });
        out.push(Output::Decide(Box::new(block)));
        Ok(())
    }
}

impl HeightState {
    fn new(height: BlockNumber, set: ValidatorSet, now: BlockTime) -> Self {
        HeightState {
            keeper: VoteKeeper::new(height, set.clone()),
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

fn msg_height(m: &Message) -> Option<BlockNumber> {
    match m {
        Message::Proposal(p) => Some(p.proposal.height),
        Message::Vote(v) => Some(v.vote.height),
        _ => None,
    }
}
