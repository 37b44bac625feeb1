//! The round state machine: Tendermint's Algorithm 1 (Buchman, Kwon,
//! Milosevic, "The latest gossip on BFT consensus", arXiv 1807.04938) as one
//! `match (step, input)`. Every arm cites the paper's line numbers.
//!
//! The machine is pure and small: it holds the height, round, step, lock and
//! valid value, and turns an already-qualified input (the
//! [`crate::driver::Driver`] has matched proposals with vote thresholds,
//! checked validity and timeouts' heights) into outputs. It never signs,
//! sends or reads a clock.
//!
//! Deviations from the paper, all on the liveness side: "2f+1" is the quorum
//! q = floor(2n/3)+1 and "f+1" is f+1 with f = floor((n-1)/3) (DESIGN.md
//! "Quorum"); the proposer also starts `timeoutPropose` (while it waits
//! for the host's value, as Malachite does, and after re-proposing its
//! valid value), so neither a slow host nor a proof of lock it cannot see
//! stalls a round.

use serde::{Deserialize, Serialize};
use undchain_types::msg::{CommitCertificate, Round, VoteKind};
use undchain_types::{BlockHeader, BlockNumber, Hash32, HashAlgorithm, HashContext, wire};

/// A proposed value: the block header and the parent certificate that
/// justifies its `parent_signers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    /// The header (the agreed value).
    pub header: BlockHeader,
    /// The parent block's certificate the proposer chose.
    pub parent_certificate: Option<CommitCertificate>,
}

impl Value {
    /// The key of the value as a whole: the header's hash under `algo` and
    /// the parent certificate together. Votes name the header's hash (the
    /// id); validity is decided on the whole value, since a Byzantine
    /// proposer can send an honest header with a bad parent certificate,
    /// so the driver keeps verdicts by this key
    /// ([`crate::driver::Output::CheckValue`]). A local map key, never
    /// signed.
    pub fn key(&self, algo: HashAlgorithm) -> Hash32 {
        let id = self.header.hash_with(algo);
        algo.hash(
            HashContext::Proposal,
            &wire::encode_bare(&(VALUE_KEY_TAG, id, &self.parent_certificate)),
        )
    }
}

/// Sets a value's key apart from the proposal digests hashed under the
/// same context.
const VALUE_KEY_TAG: &str = "proposed value";

/// A value with its id (block hash) and the round it was seen valid or
/// locked in (the paper's `lockedValue/lockedRound`, `validValue/validRound`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundValue {
    /// The round the value was locked, seen valid or decided in.
    pub round: Round,
    /// The value's block hash, which votes name.
    pub id: Hash32,
    /// The header and parent certificate themselves.
    pub value: Value,
}

/// Where a round is (the paper's `step_p`, plus the ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Step {
    /// Before `StartRound` (line 11).
    Unstarted,
    /// `step = propose`: waiting for the round's proposal.
    Propose,
    /// `step = prevote`: prevoted, waiting for the round's prevotes.
    Prevote,
    /// `step = precommit`: precommitted, waiting for the round's
    /// precommits.
    Precommit,
    /// Decided (line 51); the height is over.
    Commit,
}

/// The state of one height (lines 2-9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundState {
    /// The height being agreed on (`h_p`).
    pub height: BlockNumber,
    /// The round this validator is in (`round_p`).
    pub round: Round,
    /// Where in the round it is (`step_p`).
    pub step: Step,
    /// The value it is locked on and the round it locked in
    /// (`lockedValue_p`, `lockedRound_p`), if any.
    pub locked: Option<RoundValue>,
    /// The latest value it saw a polka for, and that polka's round
    /// (`validValue_p`, `validRound_p`), if any.
    pub valid: Option<RoundValue>,
    /// The decided value, once decided (`decision_p[h_p]`).
    pub decision: Option<RoundValue>,
}

impl RoundState {
    /// The state at the start of `height` (lines 2-9).
    pub fn new(height: BlockNumber) -> Self {
        RoundState {
            height,
            round: 0,
            step: Step::Unstarted,
            locked: None,
            valid: None,
            decision: None,
        }
    }
}

/// A proposal as the state machine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalView {
    /// The round the proposal is for.
    pub round: Round,
    /// The proposed value's block hash.
    pub id: Hash32,
    /// The proposed header and parent certificate.
    pub value: Value,
    /// `vr`: the proof-of-lock round, if any.
    pub pol_round: Option<Round>,
}

/// The inputs the driver feeds, each already qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundInput {
    /// Start round r (line 11; also after lines 55 and 65).
    NewRound(Round),
    /// The host's answer to `getValue()` (line 18).
    ProposeValue(Value, Hash32),
    /// A proposal with `vr = -1` and a valid value (line 22).
    Proposal(ProposalView),
    /// A proposal with `vr = -1` and an invalid value (line 22, `else`).
    InvalidProposal,
    /// A proposal with `vr` in the past, q prevotes for it in `vr`, valid
    /// value (line 28).
    ProposalAndPolkaPrevious(ProposalView),
    /// The same with an invalid value (line 28, `else`).
    InvalidProposalAndPolkaPrevious,
    /// q prevotes of any kind in this round (line 34).
    PolkaAny,
    /// q prevotes for nil in this round (line 44).
    PolkaNil,
    /// The proposal of this round and q prevotes for it (line 36).
    ProposalAndPolkaCurrent(ProposalView),
    /// q precommits of any kind in this round (line 47).
    PrecommitAny,
    /// A valid value and q precommits for it in some round (line 49).
    ProposalAndPrecommitValue(ProposalView),
    /// f+1 validators are in a higher round (line 55).
    SkipRound(Round),
    /// `OnTimeoutPropose` (line 57).
    TimeoutPropose,
    /// `OnTimeoutPrevote` (line 61).
    TimeoutPrevote,
    /// `OnTimeoutPrecommit` (line 65).
    TimeoutPrecommit,
}

/// Which timeout to schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimeoutKind {
    /// `timeoutPropose`: how long to wait for the round's proposal.
    Propose,
    /// `timeoutPrevote`: how long to wait for more prevotes after q of any
    /// kind.
    Prevote,
    /// `timeoutPrecommit`: how long to wait for more precommits after q of
    /// any kind.
    Precommit,
    /// Not in the paper: re-send own messages of the current round (gossip
    /// over a lossy network).
    Rebroadcast,
}

/// What the state machine asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundOutput {
    /// Start this round (the driver feeds [`RoundInput::NewRound`] back with
    /// the new round's proposer).
    NewRound(Round),
    /// Broadcast a proposal (line 19).
    Proposal {
        /// The round proposed in.
        round: Round,
        /// The proposed value's block hash.
        id: Hash32,
        /// The proposed header and parent certificate.
        value: Value,
        /// The proof-of-lock round `vr` (`validRound_p`), if re-proposing.
        pol_round: Option<Round>,
    },
    /// Ask the host for a value (line 18).
    GetValue {
        /// The round this validator proposes in.
        round: Round,
    },
    /// Sign and broadcast a vote (lines 24-67).
    Vote {
        /// The round voted in.
        round: Round,
        /// Prevote or precommit.
        kind: VoteKind,
        /// The block hash voted for, or `None` for nil.
        value: Option<Hash32>,
    },
    /// Start a timeout for a round (the driver keeps it pending).
    StartTimeout {
        /// The round the timeout belongs to.
        round: Round,
        /// Which of the paper's timeouts.
        kind: TimeoutKind,
    },
    /// Decided this value (line 51).
    Decision(RoundValue),
}

/// Facts about the input the machine cannot know itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// The round the input belongs to.
    pub input_round: Round,
    /// Whether this validator proposes in that round.
    pub is_proposer: bool,
}

/// Applies `input`; returns the outputs, or `None` if the input does not
/// apply in the current step (the state is then unchanged).
pub fn apply(state: &mut RoundState, info: Info, input: RoundInput) -> Option<Vec<RoundOutput>> {
    let this_round = state.round == info.input_round;
    match (state.step, input) {
        // L11-L21: StartRound.
        (Step::Unstarted, RoundInput::NewRound(r)) => Some(start_round(state, r, info.is_proposer)),
        // L18-L19: the host's value arrives.
        (Step::Propose, RoundInput::ProposeValue(value, id)) if this_round && info.is_proposer => {
            Some(vec![RoundOutput::Proposal {
                round: state.round,
                id,
                value,
                pol_round: None,
            }])
        }
        // L22-L27: proposal with vr = -1.
        (Step::Propose, RoundInput::Proposal(p)) if this_round && p.pol_round.is_none() => {
            // L23: valid(v) ∧ (lockedRound = -1 ∨ lockedValue = v)
            let vote = match &state.locked {
                None => Some(p.id),
                Some(l) if l.id == p.id => Some(p.id),
                Some(_) => None, // L26
            };
            Some(prevote(state, vote))
        }
        // L22, L25-L26: invalid value.
        (Step::Propose, RoundInput::InvalidProposal) if this_round => Some(prevote(state, None)),
        // L28-L33: proposal with vr >= 0 and q prevotes for it in vr.
        (Step::Propose, RoundInput::ProposalAndPolkaPrevious(p))
            if this_round && p.pol_round.is_some_and(|vr| vr < state.round) =>
        {
            let vr = p.pol_round.unwrap_or(0);
            // L29: valid(v) ∧ (lockedRound <= vr ∨ lockedValue = v)
            let vote = match &state.locked {
                None => Some(p.id),
                Some(l) if l.round <= vr || l.id == p.id => Some(p.id),
                Some(_) => None, // L32
            };
            Some(prevote(state, vote))
        }
        // L28, L31-L32: invalid value.
        (Step::Propose, RoundInput::InvalidProposalAndPolkaPrevious) if this_round => {
            Some(prevote(state, None))
        }
        // L57-L60: OnTimeoutPropose.
        (Step::Propose, RoundInput::TimeoutPropose) if this_round => Some(prevote(state, None)),
        // L34-L35: q prevotes of any kind, first time: schedule timeoutPrevote.
        (Step::Prevote, RoundInput::PolkaAny) if this_round => {
            Some(vec![RoundOutput::StartTimeout {
                round: state.round,
                kind: TimeoutKind::Prevote,
            }])
        }
        // L44-L46: q prevotes for nil.
        (Step::Prevote, RoundInput::PolkaNil) if this_round => Some(precommit(state, None)),
        // L36-L41: q prevotes for the proposal, step = prevote: lock and precommit.
        (Step::Prevote, RoundInput::ProposalAndPolkaCurrent(p)) if this_round => {
            let rv = RoundValue {
                round: state.round,
                id: p.id,
                value: p.value,
            };
            state.locked = Some(rv.clone()); // L38-L39
            state.valid = Some(rv); // L42-L43
            Some(precommit(state, Some(p.id))) // L40-L41
        }
        // L36, L42-L43: the same with step = precommit: only the valid value.
        (Step::Precommit, RoundInput::ProposalAndPolkaCurrent(p)) if this_round => {
            state.valid = Some(RoundValue {
                round: state.round,
                id: p.id,
                value: p.value,
            });
            Some(vec![])
        }
        // L61-L64: OnTimeoutPrevote.
        (Step::Prevote, RoundInput::TimeoutPrevote) if this_round => Some(precommit(state, None)),
        // Nothing moves a decided height.
        (Step::Commit, _) => None,
        // L49-L54: a valid value and q precommits for it, in any round.
        (_, RoundInput::ProposalAndPrecommitValue(p)) => {
            let rv = RoundValue {
                round: info.input_round,
                id: p.id,
                value: p.value,
            };
            state.decision = Some(rv.clone());
            state.step = Step::Commit;
            Some(vec![RoundOutput::Decision(rv)])
        }
        // L47-L48: q precommits of any kind, first time: schedule timeoutPrecommit.
        (_, RoundInput::PrecommitAny) if this_round => Some(vec![RoundOutput::StartTimeout {
            round: state.round,
            kind: TimeoutKind::Precommit,
        }]),
        // L65-L67: OnTimeoutPrecommit: StartRound(round + 1).
        (_, RoundInput::TimeoutPrecommit) if this_round => {
            Some(round_skip(state, state.round.saturating_add(1)))
        }
        // L55-L56: f+1 messages of a higher round: StartRound(round).
        (_, RoundInput::SkipRound(r)) if r > state.round => Some(round_skip(state, r)),
        _ => None,
    }
}

/// L11-L21: `StartRound(r)`: step = propose; the proposer proposes its
/// valid value (L15-L16, L19) or asks the host for one (L18); everyone
/// starts `timeoutPropose` (L21; the proposer too, so that should its own
/// proposal not pass line 28, or the host be slow, line 57 still moves on).
fn start_round(state: &mut RoundState, r: Round, proposer: bool) -> Vec<RoundOutput> {
    state.round = r;
    state.step = Step::Propose;
    let timeout = RoundOutput::StartTimeout {
        round: r,
        kind: TimeoutKind::Propose,
    };
    if !proposer {
        return vec![timeout];
    }
    match &state.valid {
        Some(v) => vec![
            RoundOutput::Proposal {
                round: r,
                id: v.id,
                value: v.value.clone(),
                pol_round: Some(v.round),
            },
            timeout,
        ],
        None => vec![RoundOutput::GetValue { round: r }, timeout],
    }
}

/// L24/L26/L30/L32/L59: broadcast the prevote, step = prevote.
fn prevote(state: &mut RoundState, value: Option<Hash32>) -> Vec<RoundOutput> {
    state.step = Step::Prevote;
    vec![RoundOutput::Vote {
        round: state.round,
        kind: VoteKind::Prevote,
        value,
    }]
}

/// L40/L45/L63: broadcast the precommit, step = precommit.
fn precommit(state: &mut RoundState, value: Option<Hash32>) -> Vec<RoundOutput> {
    state.step = Step::Precommit;
    vec![RoundOutput::Vote {
        round: state.round,
        kind: VoteKind::Precommit,
        value,
    }]
}

/// L12-L13 via L56/L67: move to `round`, unstarted; the driver starts it.
fn round_skip(state: &mut RoundState, round: Round) -> Vec<RoundOutput> {
    state.round = round;
    state.step = Step::Unstarted;
    vec![RoundOutput::NewRound(round)]
}
