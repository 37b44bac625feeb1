//! Byzantine validators as reusable actors (Commonware's `mocks`,
//! Malachite's middleware), for any simulator that runs agreement: this
//! crate's [`crate::sim`] and the validator-role simulator alike.
//!
//! A Byzantine validator runs the honest [`crate::Driver`] and an
//! [`Adversary`] between it and the network: every message the driver
//! sends passes through [`Adversary::outgoing`], which may drop, rewrite
//! (signing with the validator's real key), readdress or add to it; every
//! message the validator receives is shown to [`Adversary::observe`],
//! which may answer with sends of its own. Until the network heals (the
//! partially synchronous model's GST) the coalition also controls delays:
//! a simulator asks [`Adversary::hold`] how long to hold back each message
//! between validators. An adversary is a list of
//! [`Actor`]s applied in order, each a small, documented misbehaviour:
//!
//! | actor | misbehaviour |
//! | --- | --- |
//! | [`Silent`] | sends nothing |
//! | [`NilVoter`] | votes nil whatever it saw |
//! | [`Replayer`] | also re-sends old messages (its own and others') at random |
//! | [`Amnesia`] | forgets its lock and valid value: proposes a fresh value, votes for the round's value (the coalition's target) against its lock |
//! | [`FakeValidRound`] | proposes a fresh value claiming a proof-of-lock round (`vr = round - 1`) that had no polka |
//! | [`SplitHalves`] | as proposer, shows its value to "lockers" (just enough honest validators to lock with the coalition) and another value to the rest, and prevotes only to the lockers; in others' rounds, sends its prevote for a value only to those seen prevoting it, so that only they lock |
//! | [`Equivocator`] | sends different proposals and votes to the two halves of the honest validators (in every step, or only following a split) and both to one, for evidence |
//! | [`WithholdPrecommits`] | keeps its precommits for a value back, and releases them to one victim once a later round proposes another value |
//! | [`Flood`] | junk (bad signatures, strangers, non-proposers, bogus blocks and evidence), spam (its own signed votes over many rounds, block requests) or far-future traffic (heights and rounds ahead) |
//! | [`DelayProposal`] | the network, until it heals: holds an honest proposal back from the honest validators beyond those that lock with the coalition, in the round before a coalition member proposes |
//!
//! Byzantine validators collude through one [`Coalition`]: the splits a
//! proposer made, the value each round is attacked with, the precommits
//! held back and the history a replayer draws from. [`Behaviour`] names the
//! compositions the simulators draw per seed; with at most f Byzantine
//! validators none of them may break safety, and against an agreement with
//! its lock or proof-of-lock check removed (the `planted-bugs` feature)
//! the fork attacks find a fork.
//!
//! Everything is deterministic: randomness comes from the caller's
//! [`SplitMix64`] stream.

mod actors;
mod flood;
mod network;

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::msg::{Round, SignedVote};
use undchain_types::{
    BlockNumber, ChainId, Hash32, HashAlgorithm, HashContext, Message, PublicKey, SigningKey,
    SplitMix64, hash_parts,
};

use crate::driver::TimeoutConfig;
use crate::validator_set::ValidatorSet;

pub use actors::{
    Amnesia, Equivocator, FakeValidRound, NilVoter, Replayer, Silent, SplitHalves,
    WithholdPrecommits,
};
pub use flood::{Flood, FloodKind};
pub use network::DelayProposal;

/// One message to one validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// The recipient.
    pub to: PublicKey,
    /// What it gets.
    pub msg: Message,
}

/// What an actor knows when it acts: whose key it signs with, the height's
/// validator set (proposer order, who is honest), the chain and its hash
/// algorithm, the time and the run's random stream.
#[derive(Debug)]
pub struct ActorCtx<'a> {
    /// The Byzantine validator's key (real: what it signs verifies).
    pub key: &'a SigningKey,
    /// The set of the height the validator runs.
    pub set: &'a ValidatorSet,
    /// The height the validator runs.
    pub height: BlockNumber,
    /// The chain its messages are for.
    pub chain_id: ChainId,
    /// The chain's hash algorithm (block ids).
    pub hash_algorithm: HashAlgorithm,
    /// Everyone the validator talks to (the set and any observers).
    pub peers: &'a [PublicKey],
    /// The run's random stream (what actors draw stays reproducible).
    pub rng: &'a mut SplitMix64,
    /// The agreement's timeouts (attacks on the network time their delays
    /// by them).
    pub timeouts: TimeoutConfig,
}

/// One misbehaviour, applied to what a Byzantine validator sends and
/// sees. Actors are chained: each gets the sends the previous one made.
pub trait Actor: std::fmt::Debug {
    /// The actor's name in reports.
    fn name(&self) -> &'static str;

    /// Rewrites the validator's outgoing `sends` (already addressed, one
    /// message per recipient).
    fn outgoing(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        sends: Vec<Send>,
    ) -> Vec<Send>;

    /// Sees a message the validator received from `from`; may answer with
    /// sends of its own (the default: nothing).
    fn observe(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        from: PublicKey,
        msg: &Message,
    ) -> Vec<Send> {
        let _ = (ctx, c, from, msg);
        Vec::new()
    }

    /// Whether the validator's own driver gets `msg`, which it received
    /// from `from` (the default: yes). An actor hides what would make the
    /// honest driver underneath do what the attack needs it not to (lock,
    /// decide).
    fn admits(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        from: PublicKey,
        msg: &Message,
    ) -> bool {
        let _ = (ctx, c, from, msg);
        true
    }

    /// Whether this actor holds messages back ([`Actor::hold`]); a
    /// simulator asks only adversaries with such an actor (the default:
    /// no).
    fn controls_network(&self) -> bool {
        false
    }

    /// While the network is faulty (before it heals), how many extra
    /// microseconds the coalition holds back `msg` from `from` to `to`
    /// (the default: none).
    fn hold(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        from: PublicKey,
        to: PublicKey,
        msg: &Message,
    ) -> u64 {
        let _ = (ctx, c, from, to, msg);
        0
    }
}

/// How the coalition split a round: the lockers were shown `value`, the
/// rest `other` (if anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Honest validators shown the coalition's value (and sent its
    /// prevotes): just enough to reach q with the coalition.
    pub lockers: Vec<PublicKey>,
    /// The other honest validators.
    pub rest: Vec<PublicKey>,
    /// The block hash the lockers were shown.
    pub value: Hash32,
    /// The block hash the rest were shown, if any.
    pub other: Option<Hash32>,
}

/// What colluding Byzantine validators share.
#[derive(Debug, Clone, Default)]
pub struct Coalition {
    members: BTreeSet<PublicKey>,
    /// Splits made by a Byzantine proposer, by (height, round).
    pub splits: BTreeMap<(BlockNumber, Round), Split>,
    /// The value the coalition votes for in a round (the round's
    /// proposal as first seen, or its own fresh value).
    pub targets: BTreeMap<(BlockNumber, Round), Hash32>,
    /// Precommits held back, by (height, round), with the value they name.
    pub withheld: BTreeMap<(BlockNumber, Round), Vec<SignedVote>>,
    /// The round of each height whose precommits were held back (one per
    /// height: later precommits go out).
    pub withheld_round: BTreeMap<BlockNumber, Round>,
    /// Messages seen, for replays (bounded by [`HISTORY`]).
    pub history: Vec<Message>,
}

/// Most messages the coalition remembers for replays.
pub const HISTORY: usize = 512;

impl Coalition {
    /// A coalition of the given validators.
    pub fn new(members: impl IntoIterator<Item = PublicKey>) -> Self {
        Coalition {
            members: members.into_iter().collect(),
            ..Coalition::default()
        }
    }

    /// Whether `who` is Byzantine.
    pub fn contains(&self, who: &PublicKey) -> bool {
        self.members.contains(who)
    }

    /// How many validators collude.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether nobody colludes.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The honest members of `set`, in seat order.
    pub fn honest(&self, set: &ValidatorSet) -> Vec<PublicKey> {
        set.seats()
            .iter()
            .map(|s| s.id)
            .filter(|id| !self.contains(id))
            .collect()
    }

    /// Remembers a proposal or vote for replays.
    pub fn remember(&mut self, msg: &Message) {
        if matches!(msg, Message::Proposal(_) | Message::Vote(_)) {
            if self.history.len() >= HISTORY {
                self.history.remove(0);
            }
            self.history.push(msg.clone());
        }
    }

    /// The two halves of the honest validators among `peers` (by key
    /// order; the coalition's own members go with the left half).
    pub fn halves(&self, peers: &[PublicKey]) -> (Vec<PublicKey>, Vec<PublicKey>) {
        let mut honest: Vec<PublicKey> = peers
            .iter()
            .copied()
            .filter(|p| !self.contains(p))
            .collect();
        honest.sort_unstable();
        let right = honest.split_off(honest.len().div_ceil(2));
        let mut left = honest;
        left.extend(peers.iter().copied().filter(|p| self.contains(p)));
        (left, right)
    }

    /// The honest validator that gets withheld precommits of (`height`,
    /// `round`): the first locker of the round's split, else the first
    /// honest member of the set.
    pub fn victim(
        &self,
        set: &ValidatorSet,
        height: BlockNumber,
        round: Round,
    ) -> Option<PublicKey> {
        self.splits
            .get(&(height, round))
            .and_then(|s| s.lockers.first().copied())
            .or_else(|| self.honest(set).first().copied())
    }
}

/// A Byzantine validator's actors, applied in order.
#[derive(Debug, Default)]
pub struct Adversary {
    actors: Vec<Box<dyn Actor>>,
}

impl Adversary {
    /// An adversary applying `actors` in order.
    pub fn new(actors: Vec<Box<dyn Actor>>) -> Self {
        Adversary { actors }
    }

    /// The actors' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.actors.iter().map(|a| a.name()).collect()
    }

    /// What the validator sends instead of `msg` to `to` (every recipient
    /// of one output at once).
    pub fn outgoing(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        to: &[PublicKey],
        msg: Message,
    ) -> Vec<Send> {
        let mut sends: Vec<Send> = to
            .iter()
            .map(|t| Send {
                to: *t,
                msg: msg.clone(),
            })
            .collect();
        for a in &mut self.actors {
            sends = a.outgoing(ctx, c, sends);
        }
        sends
    }

    /// Whether the validator's own driver gets `msg` (every actor admits
    /// it, [`Actor::admits`]).
    pub fn admits(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        from: PublicKey,
        msg: &Message,
    ) -> bool {
        self.actors.iter_mut().all(|a| a.admits(ctx, c, from, msg))
    }

    /// Whether some actor holds messages back ([`Actor::hold`]).
    pub fn controls_network(&self) -> bool {
        self.actors.iter().any(|a| a.controls_network())
    }

    /// How long the actors hold back `msg` from `from` to `to` while the
    /// network is faulty (the longest any of them asks for).
    pub fn hold(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        from: PublicKey,
        to: PublicKey,
        msg: &Message,
    ) -> u64 {
        self.actors
            .iter_mut()
            .map(|a| a.hold(ctx, c, from, to, msg))
            .max()
            .unwrap_or(0)
    }

    /// Shows every actor a message the validator received; returns what
    /// they send in answer.
    pub fn observe(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        from: PublicKey,
        msg: &Message,
    ) -> Vec<Send> {
        let mut out = Vec::new();
        for a in &mut self.actors {
            out.extend(a.observe(ctx, c, from, msg));
        }
        out
    }
}

/// A named composition of actors, as the simulators draw them per seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Behaviour {
    /// As proposer, shows one value to each half and votes for each
    /// half's value to that half ([`Equivocator`] following its splits).
    EquivocatingProposer,
    /// Every vote also goes out conflicting to half the validators
    /// ([`Equivocator`] in every vote).
    DoubleVoter,
    /// Always votes nil ([`NilVoter`]).
    NilVoter,
    /// Sends nothing ([`Silent`]).
    Silent,
    /// Behaves, and re-sends old messages ([`Replayer`]).
    Replayer,
    /// Forgets its lock ([`Amnesia`]).
    Amnesia,
    /// Claims proof-of-lock rounds that had no polka ([`FakeValidRound`]).
    FakeValidRound,
    /// Holds its precommits back for one victim ([`WithholdPrecommits`]).
    WithholdPrecommits,
    /// Shows its proposals to lockers only, another value to the rest
    /// ([`SplitHalves`]).
    SplitHalves,
    /// Different proposals and votes to the two halves in every step
    /// ([`Equivocator`] everywhere).
    EquivocateEveryStep,
    /// Junk traffic beside honest behaviour ([`Flood`]).
    JunkFlood,
    /// Its own signed spam beside honest behaviour ([`Flood`]).
    SpamFlood,
    /// Far-future traffic beside honest behaviour ([`Flood`]).
    FarFutureFlood,
    /// The attack on the lock: split a round so that some honest
    /// validators lock, hold the precommits back, then vote for the next
    /// round's fresh value and release the precommits to one locker
    /// ([`SplitHalves`], [`Amnesia`], [`WithholdPrecommits`]).
    ForkLock,
    /// The same with a fake proof-of-lock round on the fresh value
    /// ([`SplitHalves`], [`FakeValidRound`], [`Amnesia`],
    /// [`WithholdPrecommits`]); until the network heals, the round before
    /// a coalition member proposes has its proposal held back from the
    /// honest validators beyond those that lock ([`DelayProposal`]), so
    /// that even one Byzantine validator meets split locks.
    ForkValidRound,
}

impl Behaviour {
    /// Every behaviour, in the order seeds draw them.
    pub const ALL: [Behaviour; 15] = [
        Behaviour::EquivocatingProposer,
        Behaviour::DoubleVoter,
        Behaviour::NilVoter,
        Behaviour::Silent,
        Behaviour::Replayer,
        Behaviour::Amnesia,
        Behaviour::FakeValidRound,
        Behaviour::WithholdPrecommits,
        Behaviour::SplitHalves,
        Behaviour::EquivocateEveryStep,
        Behaviour::JunkFlood,
        Behaviour::SpamFlood,
        Behaviour::FarFutureFlood,
        Behaviour::ForkLock,
        Behaviour::ForkValidRound,
    ];

    /// The behaviour's name on the command line and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Behaviour::EquivocatingProposer => "equivocating-proposer",
            Behaviour::DoubleVoter => "double-voter",
            Behaviour::NilVoter => "nil-voter",
            Behaviour::Silent => "silent",
            Behaviour::Replayer => "replayer",
            Behaviour::Amnesia => "amnesia",
            Behaviour::FakeValidRound => "fake-valid-round",
            Behaviour::WithholdPrecommits => "withhold-precommits",
            Behaviour::SplitHalves => "split-halves",
            Behaviour::EquivocateEveryStep => "equivocate-every-step",
            Behaviour::JunkFlood => "junk-flood",
            Behaviour::SpamFlood => "spam-flood",
            Behaviour::FarFutureFlood => "far-future-flood",
            Behaviour::ForkLock => "fork-lock",
            Behaviour::ForkValidRound => "fork-valid-round",
        }
    }

    /// The behaviour of a name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == s)
    }

    /// The actors this behaviour is made of, in the order they apply.
    pub fn actors(self) -> Vec<Box<dyn Actor>> {
        let flood = |kind| -> Vec<Box<dyn Actor>> { vec![Box::new(Flood::new(kind, 2))] };
        match self {
            Behaviour::EquivocatingProposer => vec![Box::new(Equivocator::following_splits())],
            Behaviour::DoubleVoter => vec![Box::new(Equivocator::votes())],
            Behaviour::NilVoter => vec![Box::new(NilVoter)],
            Behaviour::Silent => vec![Box::new(Silent)],
            Behaviour::Replayer => vec![Box::new(Replayer)],
            Behaviour::Amnesia => vec![Box::new(Amnesia)],
            Behaviour::FakeValidRound => vec![Box::new(FakeValidRound), Box::new(Amnesia)],
            Behaviour::WithholdPrecommits => vec![Box::new(WithholdPrecommits)],
            Behaviour::SplitHalves => vec![Box::new(SplitHalves)],
            Behaviour::EquivocateEveryStep => vec![Box::new(Equivocator::everywhere())],
            Behaviour::JunkFlood => flood(FloodKind::Junk),
            Behaviour::SpamFlood => flood(FloodKind::Spam),
            Behaviour::FarFutureFlood => flood(FloodKind::FarFuture),
            Behaviour::ForkLock => vec![
                Box::new(Amnesia),
                Box::new(SplitHalves),
                Box::new(WithholdPrecommits),
            ],
            Behaviour::ForkValidRound => vec![
                Box::new(FakeValidRound),
                Box::new(Amnesia),
                Box::new(SplitHalves),
                Box::new(DelayProposal),
                Box::new(WithholdPrecommits),
            ],
        }
    }

    /// An [`Adversary`] of this behaviour's actors.
    pub fn adversary(self) -> Adversary {
        Adversary::new(self.actors())
    }
}

/// Another valid-looking value for `header` (its job root changed): what a
/// Byzantine proposer shows instead of, or beside, its honest value.
pub fn fresh_header(
    header: &undchain_types::BlockHeader,
    salt: &[u8],
) -> undchain_types::BlockHeader {
    let mut h = header.clone();
    h.job_root = hash_parts(
        HashContext::JobFileNode,
        &[b"byzantine", salt, h.job_root.as_bytes()],
    );
    h
}
