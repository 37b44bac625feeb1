//! The driver's contract with its host: settings, what goes in
//! ([`Validity`], [`PersistedState`] on restart), what comes out
//! ([`Output`] in a [`DriverReady`] batch) and why an input is refused
//! ([`InputError`]). The rules for carrying a batch out are in the module
//! doc of [`crate::driver`].

use serde::{Deserialize, Serialize};
use undchain_types::msg::{
    BlockRequest, CommittedBlock, Evidence, Round, SignedProposal, SignedVote,
};
use undchain_types::{
    BlockNumber, ChainId, Hash32, HashAlgorithm, Message, MessageKind, PublicKey, Ready,
};

use crate::certificate::CertificateError;
use crate::round::{RoundState, TimeoutKind, Value};

/// Timeout lengths: `base + delta * round`, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutConfig {
    /// `timeoutPropose(0)`: how long round 0 waits for the proposal.
    pub propose_us: u64,
    /// How much longer `timeoutPropose` is in each later round.
    pub propose_delta_us: u64,
    /// `timeoutPrevote(0)`: how long round 0 waits for more prevotes once
    /// q of any kind have arrived (paper line 34).
    pub prevote_us: u64,
    /// How much longer `timeoutPrevote` is in each later round.
    pub prevote_delta_us: u64,
    /// `timeoutPrecommit(0)`: how long round 0 waits for more precommits
    /// once q of any kind have arrived (paper line 47).
    pub precommit_us: u64,
    /// How much longer `timeoutPrecommit` is in each later round.
    pub precommit_delta_us: u64,
    /// Interval between re-sends of this validator's own messages (and of
    /// catch-up requests), for networks that lose messages.
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

    /// Timeouts sized by the block interval `block_us` rather than by the
    /// wire delay, for hosts whose delay is mostly their own queueing (a
    /// loaded node answers in hundreds of milliseconds over a loopback
    /// that takes microseconds): propose B/5 + B/10 per round, prevote and
    /// precommit B/10 + B/20 per round, re-send every B/2. A round that
    /// goes well waits on none of them; one that times out costs a share
    /// of a block, not a burst of re-sends. The devnet at 7 validators and
    /// 200 req/s stalled with `for_delay(5 ms)`: a re-send every 40 ms
    /// from every validator was most of its signatures (docs/BENCHMARKS.md
    /// "Agreement timeouts under load").
    pub fn for_block_interval(block_us: u64) -> Self {
        let b = block_us.max(1);
        TimeoutConfig {
            propose_us: b / 5,
            propose_delta_us: b / 10,
            prevote_us: b / 10,
            prevote_delta_us: b / 20,
            precommit_us: b / 10,
            precommit_delta_us: b / 20,
            rebroadcast_us: (b / 2).max(1),
        }
    }

    /// The longer of each timeout of `self` and `other`.
    pub fn max(self, other: TimeoutConfig) -> Self {
        TimeoutConfig {
            propose_us: self.propose_us.max(other.propose_us),
            propose_delta_us: self.propose_delta_us.max(other.propose_delta_us),
            prevote_us: self.prevote_us.max(other.prevote_us),
            prevote_delta_us: self.prevote_delta_us.max(other.prevote_delta_us),
            precommit_us: self.precommit_us.max(other.precommit_us),
            precommit_delta_us: self.precommit_delta_us.max(other.precommit_delta_us),
            rebroadcast_us: self.rebroadcast_us.max(other.rebroadcast_us),
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
    /// The chain whose messages this driver accepts and signs.
    pub chain_id: ChainId,
    /// The algorithm that hashes block headers into the ids votes name.
    pub hash_algorithm: HashAlgorithm,
    /// How long each step waits, and how often own messages are re-sent.
    pub timeouts: TimeoutConfig,
    /// Messages for rounds further ahead than this are refused (bounds the
    /// memory a Byzantine validator can make us spend).
    pub max_rounds_ahead: Round,
}

impl DriverConfig {
    /// The default settings for `chain_id` (timeouts for a 250 ms delay,
    /// 64 rounds ahead at most).
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

/// A Tendermint timeout the driver keeps pending until it is due
/// ([`crate::driver::Driver::pending_timeouts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timeout {
    /// The height it was started in; at another height it does nothing.
    pub height: BlockNumber,
    /// The round it was started in; in a later round it does nothing
    /// (always 0 for [`TimeoutKind::Rebroadcast`], which spans rounds).
    pub round: Round,
    /// Which of the paper's timeouts (or the re-send interval) it is.
    pub kind: TimeoutKind,
}

/// The host's verdict on a proposed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Validity {
    /// Valid: may be voted for.
    Valid,
    /// Invalid: prevote nil for it.
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

/// One batch of work for the host: [`PersistedState`] to write, then
/// [`Output`]s (see [`crate::driver`] for the order).
pub type DriverReady = Ready<PersistedState, Output>;

/// What the host must do (carried out as [`DriverReady`] says: `immediate`
/// at once, `after_persist` once the batch's state is durable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `msg` to every validator of the height (and any observers).
    Broadcast {
        /// The proposal, vote or block request to send.
        msg: Message,
    },
    /// Send `msg` to one peer only.
    Send {
        /// The peer that needs it (a lagging validator, or one that knows
        /// blocks this validator missed).
        to: PublicKey,
        /// The votes or block request it needs.
        msg: Message,
    },
    /// Build a block header for this height and round and pass it to
    /// [`crate::driver::Driver::propose_value`] (paper line 18).
    GetValue {
        /// The height the value is for.
        height: BlockNumber,
        /// The round this validator proposes in.
        round: Round,
    },
    /// Check this value, header and parent certificate together, and
    /// answer with [`crate::driver::Driver::handle_validity`] naming `key`.
    CheckValue {
        /// The height the value is proposed for.
        height: BlockNumber,
        /// Round of the proposal that carried it.
        round: Round,
        /// The block hash (what votes name).
        id: Hash32,
        /// The whole value's key ([`Value::key`]), which the answer names:
        /// the same header with another parent certificate is another
        /// value with a verdict of its own.
        key: Hash32,
        /// The header and the parent certificate it relies on.
        value: Box<Value>,
    },
    /// Decided: store the block, then start the next height.
    Decide(Box<CommittedBlock>),
    /// Conflicting signed messages: store and forward as evidence.
    Evidence(Box<Evidence>),
    /// A peer asked for decided blocks: answer from storage with a
    /// [`undchain_types::msg::BlockResponse`].
    ServeBlocks {
        /// The peer that asked.
        to: PublicKey,
        /// The first block it wants and how many.
        request: BlockRequest,
    },
}

/// Why an input was refused. A refused input changes nothing: the driver's
/// state, its pending timeouts and its next batch are as if it never came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The message is for another chain.
    #[error("message for {got}, this is {expected}")]
    WrongChain {
        /// This driver's chain.
        expected: ChainId,
        /// The chain the message names.
        got: ChainId,
    },
    /// The message is not an agreement message.
    #[error("{kind} is not an agreement message")]
    NotAgreement {
        /// The kind of message that arrived.
        kind: MessageKind,
    },
    /// The signer holds no seat at this height.
    #[error("{validator:?} holds no seat at height {height}")]
    NotInSet {
        /// The key that signed the vote.
        validator: PublicKey,
        /// The height the vote is for.
        height: BlockNumber,
    },
    /// A proposal from someone who is not that round's proposer.
    #[error("proposal by {got:?}, but {expected:?} proposes height {height} round {round}")]
    NotProposer {
        /// The height the proposal is for.
        height: BlockNumber,
        /// The round the proposal is for.
        round: Round,
        /// The validator whose turn it is.
        expected: PublicKey,
        /// The validator that signed the proposal.
        got: PublicKey,
    },
    /// A proposal whose header is for another block number or chain.
    #[error("proposal for height {height} carries a header for block {number}")]
    HeaderMismatch {
        /// The height the proposal names.
        height: BlockNumber,
        /// The block number its header names.
        number: BlockNumber,
    },
    /// The signature does not verify.
    #[error("signature of {signer:?} does not verify")]
    BadSignature {
        /// The key the message claims signed it.
        signer: PublicKey,
    },
    /// A round too far ahead of ours.
    #[error("round {round} is more than {max} rounds ahead of {current}")]
    RoundTooFar {
        /// The round the message names.
        round: Round,
        /// This driver's round.
        current: Round,
        /// How far ahead a message may be ([`DriverConfig::max_rounds_ahead`]).
        max: Round,
    },
    /// Evidence whose two messages do not conflict, or do not verify.
    #[error("evidence refused: {0}")]
    Evidence(#[from] undchain_types::msg::EvidenceError),
    /// A decided block whose certificate does not verify.
    #[error("decided block refused: {0}")]
    Certificate(#[from] CertificateError),
    /// A host answer (value or verdict) for a height that is not running.
    #[error("answer for height {height}, the driver runs height {current}")]
    WrongHeight {
        /// The height the answer names.
        height: BlockNumber,
        /// The height the driver runs.
        current: BlockNumber,
    },
    /// A value for a round the driver is not in.
    #[error("value for round {round}, the driver is in round {current}")]
    WrongRound {
        /// The round the value names.
        round: Round,
        /// The driver's round.
        current: Round,
    },
    /// A value nobody asked for: this validator does not propose in the
    /// round, has proposed already, or the round has left its propose step.
    #[error("no value wanted for height {height} round {round}")]
    ValueNotWanted {
        /// The height the value names.
        height: BlockNumber,
        /// The round the value names.
        round: Round,
    },
    /// A verdict on a value the driver never asked about.
    #[error("verdict on value {key:?}, which was never asked about")]
    NotAsked {
        /// The value key the verdict names.
        key: Hash32,
    },
    /// A next-height message, or a vote for a round ahead of the current
    /// one, not kept: its signer's quota holds later rounds, or the places
    /// for signers outside the current set are taken.
    #[error("no room for more messages of height {height} signed by {signer:?}")]
    QuotaFull {
        /// The key that signed the message.
        signer: PublicKey,
        /// The height the message is for.
        height: BlockNumber,
    },
    /// A block request from a peer that was served too recently (or from
    /// non-members beyond their shared budget).
    #[error("block requests from {peer:?} come too often")]
    RateLimited {
        /// The peer that asked.
        peer: PublicKey,
    },
    /// Evidence for a height other than the running one (the driver knows
    /// only that height's set).
    #[error("evidence for height {height}, the driver runs height {current}")]
    EvidenceHeight {
        /// The height the evidence is about.
        height: BlockNumber,
        /// The height the driver runs.
        current: BlockNumber,
    },
}
