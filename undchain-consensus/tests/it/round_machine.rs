//! The round state machine is a table (src/round.rs: one `match (step,
//! input)`): one row per arm, and per input an arm's guard turns away, by
//! the paper's line (Tendermint, arXiv 1807.04938, Algorithm 1).

use undchain_consensus::round::{
    Info, ProposalView, RoundInput as I, RoundOutput, RoundState, RoundValue, apply,
};
use undchain_consensus::{Step, TimeoutKind, Value};
use undchain_types::msg::{Round, VoteKind};
use undchain_types::{BlockNumber, Hash32};

use crate::support::{header, keys, set_of};

/// Value `tag` of height 1 and its id.
fn value(tag: u8) -> (Value, Hash32) {
    let h = header(1, tag, &set_of(&keys(1)));
    let id = h.hash();
    (
        Value {
            header: h,
            parent_certificate: None,
        },
        id,
    )
}

fn view(round: Round, tag: u8, pol: Option<Round>) -> ProposalView {
    let (value, id) = value(tag);
    ProposalView {
        round,
        id,
        value,
        pol_round: pol,
    }
}

fn round_value(round: Round, tag: u8) -> RoundValue {
    let (value, id) = value(tag);
    RoundValue { round, id, value }
}

/// A state at `step` of `round`, locked on value `locked` (from round 0)
/// if given.
fn at(step: Step, round: Round, locked: Option<u8>) -> RoundState {
    RoundState {
        height: BlockNumber(1),
        round,
        step,
        locked: locked.map(|t| round_value(0, t)),
        valid: None,
        decision: None,
    }
}

/// A state at `step` of `round`, locked on value `tag` since round
/// `locked_round`.
fn locked_at(step: Step, round: Round, tag: u8, locked_round: Round) -> RoundState {
    let mut s = at(step, round, None);
    s.locked = Some(round_value(locked_round, tag));
    s
}

fn info(input_round: Round) -> Info {
    Info {
        input_round,
        is_proposer: false,
    }
}

fn proposer(input_round: Round) -> Info {
    Info {
        input_round,
        is_proposer: true,
    }
}

fn vote(round: Round, kind: VoteKind, tag: Option<u8>) -> RoundOutput {
    RoundOutput::Vote {
        round,
        kind,
        value: tag.map(|t| value(t).1),
    }
}

fn timeout(round: Round, kind: TimeoutKind) -> RoundOutput {
    RoundOutput::StartTimeout { round, kind }
}

/// A row: its name (paper line), the state, the input's facts, the input,
/// and the outputs and step it leads to (`None`: the input does not apply).
type Row = (
    &'static str,
    RoundState,
    Info,
    I,
    Option<(Vec<RoundOutput>, Step)>,
);

/// StartRound and the proposal rules (lines 11-33).
#[rustfmt::skip]
fn propose_rows() -> Vec<Row> {
    use VoteKind::Prevote;
    let (a, a_id) = value(1);
    let mut with_valid = at(Step::Unstarted, 2, None);
    with_valid.valid = Some(round_value(1, 1));
    vec![
        ("L11 non-proposer", at(Step::Unstarted, 0, None), info(0), I::NewRound(0),
         Some((vec![timeout(0, TimeoutKind::Propose)], Step::Propose))),
        ("L18 proposer without a valid value", at(Step::Unstarted, 2, None), proposer(2), I::NewRound(2),
         Some((vec![RoundOutput::GetValue { round: 2 }, timeout(2, TimeoutKind::Propose)], Step::Propose))),
        ("L16 proposer re-proposes its valid value", with_valid, proposer(2), I::NewRound(2),
         Some((vec![RoundOutput::Proposal { round: 2, id: a_id, value: a.clone(), pol_round: Some(1) },
                    timeout(2, TimeoutKind::Propose)], Step::Propose))),
        ("L19 the host's value", at(Step::Propose, 0, None), proposer(0), I::ProposeValue(a.clone(), a_id),
         Some((vec![RoundOutput::Proposal { round: 0, id: a_id, value: a.clone(), pol_round: None }], Step::Propose))),
        ("L19 only for the proposer", at(Step::Propose, 0, None), info(0), I::ProposeValue(a.clone(), a_id), None),
        ("L19 not in this round", at(Step::Propose, 1, None), proposer(0), I::ProposeValue(a, a_id), None),
        ("L24 not locked", at(Step::Propose, 0, None), info(0), I::Proposal(view(0, 1, None)),
         Some((vec![vote(0, Prevote, Some(1))], Step::Prevote))),
        ("L24 locked on it", at(Step::Propose, 1, Some(1)), info(1), I::Proposal(view(1, 1, None)),
         Some((vec![vote(1, Prevote, Some(1))], Step::Prevote))),
        ("L26 locked on another", at(Step::Propose, 1, Some(2)), info(1), I::Proposal(view(1, 1, None)),
         Some((vec![vote(1, Prevote, None)], Step::Prevote))),
        ("L26 invalid", at(Step::Propose, 0, None), info(0), I::InvalidProposal,
         Some((vec![vote(0, Prevote, None)], Step::Prevote))),
        ("L22 not in this round", at(Step::Propose, 1, None), info(0), I::Proposal(view(0, 1, None)), None),
        ("L26 invalid, not in this round", at(Step::Propose, 1, None), info(0), I::InvalidProposal, None),
        ("L30 locked no later than vr", at(Step::Propose, 2, Some(2)), info(2), I::ProposalAndPolkaPrevious(view(2, 1, Some(1))),
         Some((vec![vote(2, Prevote, Some(1))], Step::Prevote))),
        ("L30 locked after vr, on it", locked_at(Step::Propose, 3, 1, 2), info(3), I::ProposalAndPolkaPrevious(view(3, 1, Some(1))),
         Some((vec![vote(3, Prevote, Some(1))], Step::Prevote))),
        ("L32 locked after vr, on another", locked_at(Step::Propose, 3, 2, 2), info(3), I::ProposalAndPolkaPrevious(view(3, 1, Some(1))),
         Some((vec![vote(3, Prevote, None)], Step::Prevote))),
        ("L28 vr not below the round", at(Step::Propose, 2, None), info(2), I::ProposalAndPolkaPrevious(view(2, 1, Some(2))), None),
        ("L28 not in this round", at(Step::Propose, 3, None), info(2), I::ProposalAndPolkaPrevious(view(2, 1, Some(1))), None),
        ("L32 invalid, not in this round", at(Step::Propose, 3, None), info(2), I::InvalidProposalAndPolkaPrevious, None),
        ("L32 invalid", at(Step::Propose, 2, None), info(2), I::InvalidProposalAndPolkaPrevious,
         Some((vec![vote(2, Prevote, None)], Step::Prevote))),
    ]
}

/// The vote rules (lines 34-56).
#[rustfmt::skip]
fn vote_rows() -> Vec<Row> {
    use VoteKind::Precommit;
    vec![
        ("L34", at(Step::Prevote, 0, None), info(0), I::PolkaAny,
         Some((vec![timeout(0, TimeoutKind::Prevote)], Step::Prevote))),
        ("L34 only at step prevote", at(Step::Precommit, 0, None), info(0), I::PolkaAny, None),
        ("L34 not in this round", at(Step::Prevote, 1, None), info(0), I::PolkaAny, None),
        ("L36 not in this round", at(Step::Prevote, 1, None), info(0), I::ProposalAndPolkaCurrent(view(0, 1, None)), None),
        ("L42 not in this round", at(Step::Precommit, 1, None), info(0), I::ProposalAndPolkaCurrent(view(0, 1, None)), None),
        ("L44 not in this round", at(Step::Prevote, 1, None), info(0), I::PolkaNil, None),
        ("L47 not in this round", at(Step::Propose, 1, None), info(0), I::PrecommitAny, None),
        ("L36 at prevote: lock and precommit", at(Step::Prevote, 0, None), info(0), I::ProposalAndPolkaCurrent(view(0, 1, None)),
         Some((vec![vote(0, Precommit, Some(1))], Step::Precommit))),
        ("L42 at precommit: the valid value only", at(Step::Precommit, 0, None), info(0), I::ProposalAndPolkaCurrent(view(0, 1, None)),
         Some((vec![], Step::Precommit))),
        ("L44", at(Step::Prevote, 0, None), info(0), I::PolkaNil,
         Some((vec![vote(0, Precommit, None)], Step::Precommit))),
        ("L47 in any step", at(Step::Propose, 0, None), info(0), I::PrecommitAny,
         Some((vec![timeout(0, TimeoutKind::Precommit)], Step::Propose))),
        ("L49 in any round", at(Step::Prevote, 3, None), info(1), I::ProposalAndPrecommitValue(view(1, 1, None)),
         Some((vec![RoundOutput::Decision(round_value(1, 1))], Step::Commit))),
        ("L55 forward", at(Step::Precommit, 1, None), info(4), I::SkipRound(4),
         Some((vec![RoundOutput::NewRound(4)], Step::Unstarted))),
        ("L55 never back", at(Step::Propose, 4, None), info(2), I::SkipRound(2), None),
    ]
}

/// The timeouts (lines 57-67) and the end of a height.
#[rustfmt::skip]
fn timeout_rows() -> Vec<Row> {
    use VoteKind::{Precommit, Prevote};
    vec![
        ("L57", at(Step::Propose, 0, None), info(0), I::TimeoutPropose,
         Some((vec![vote(0, Prevote, None)], Step::Prevote))),
        ("L57 stale round", at(Step::Propose, 1, None), info(0), I::TimeoutPropose, None),
        ("L57 after the prevote", at(Step::Prevote, 0, None), info(0), I::TimeoutPropose, None),
        ("L61", at(Step::Prevote, 0, None), info(0), I::TimeoutPrevote,
         Some((vec![vote(0, Precommit, None)], Step::Precommit))),
        ("L61 not in this round", at(Step::Prevote, 1, None), info(0), I::TimeoutPrevote, None),
        ("L65 not in this round", at(Step::Precommit, 2, None), info(1), I::TimeoutPrecommit, None),
        ("L65", at(Step::Precommit, 2, None), info(2), I::TimeoutPrecommit,
         Some((vec![RoundOutput::NewRound(3)], Step::Unstarted))),
        ("nothing moves a decided height", at(Step::Commit, 0, None), info(0), I::TimeoutPrecommit, None),
    ]
}

#[test]
fn every_arm_by_paper_line() {
    let rows = propose_rows()
        .into_iter()
        .chain(vote_rows())
        .chain(timeout_rows());
    for (name, mut state, info, input, want) in rows {
        let before = state.clone();
        let got = apply(&mut state, info, input);
        match want {
            None => {
                assert_eq!(got, None, "{name}");
                assert_eq!(
                    state, before,
                    "{name}: an input that does not apply changes nothing"
                );
            }
            Some((outputs, step)) => {
                assert_eq!(got, Some(outputs), "{name}");
                assert_eq!(state.step, step, "{name}");
            }
        }
    }
}

// Scenarios through several arms.

#[test]
fn happy_path_lines_11_22_36_49() {
    let mut s = RoundState::new(BlockNumber(1));
    let out = apply(&mut s, info(0), I::NewRound(0)).unwrap();
    assert!(matches!(
        out[0],
        RoundOutput::StartTimeout {
            kind: TimeoutKind::Propose,
            ..
        }
    ));
    let p = view(0, 1, None);
    let out = apply(&mut s, info(0), I::Proposal(p.clone())).unwrap();
    assert_eq!(
        out,
        vec![RoundOutput::Vote {
            round: 0,
            kind: VoteKind::Prevote,
            value: Some(p.id)
        }]
    );
    let out = apply(&mut s, info(0), I::ProposalAndPolkaCurrent(p.clone())).unwrap();
    assert_eq!(s.step, Step::Precommit);
    assert_eq!(s.locked.as_ref().map(|l| (l.round, l.id)), Some((0, p.id)));
    assert!(matches!(
        out[0],
        RoundOutput::Vote {
            kind: VoteKind::Precommit,
            value: Some(_),
            ..
        }
    ));
    let out = apply(&mut s, info(0), I::ProposalAndPrecommitValue(p.clone())).unwrap();
    assert!(matches!(out[0], RoundOutput::Decision(_)));
    assert_eq!(s.step, Step::Commit);
    assert_eq!(apply(&mut s, info(0), I::TimeoutPrecommit), None);
}

#[test]
fn locked_validator_prevotes_nil_for_other_value_line_26() {
    let mut s = RoundState::new(BlockNumber(1));
    let a = view(0, 1, None);
    s.locked = Some(RoundValue {
        round: 0,
        id: a.id,
        value: a.value,
    });
    s.round = 1;
    s.step = Step::Propose;
    let b = view(1, 2, None);
    let out = apply(&mut s, info(1), I::Proposal(b)).unwrap();
    assert_eq!(
        out,
        vec![RoundOutput::Vote {
            round: 1,
            kind: VoteKind::Prevote,
            value: None
        }]
    );
}

#[test]
fn polka_previous_unlocks_lines_28_30() {
    let mut s = RoundState::new(BlockNumber(1));
    let a = view(0, 1, None);
    s.locked = Some(RoundValue {
        round: 0,
        id: a.id,
        value: a.value,
    });
    s.round = 2;
    s.step = Step::Propose;
    // vr = 1 >= lockedRound = 0: prevote the new value.
    let b = view(2, 2, Some(1));
    let out = apply(&mut s, info(2), I::ProposalAndPolkaPrevious(b.clone())).unwrap();
    assert_eq!(
        out,
        vec![RoundOutput::Vote {
            round: 2,
            kind: VoteKind::Prevote,
            value: Some(b.id)
        }]
    );
    // vr not below the round: the arm does not apply.
    let mut s2 = RoundState::new(BlockNumber(1));
    s2.step = Step::Propose;
    assert_eq!(
        apply(
            &mut s2,
            info(0),
            I::ProposalAndPolkaPrevious(view(0, 3, Some(0)))
        ),
        None
    );
}

#[test]
fn timeouts_lines_57_61_65() {
    let mut s = RoundState::new(BlockNumber(1));
    apply(&mut s, info(0), I::NewRound(0)).unwrap();
    let out = apply(&mut s, info(0), I::TimeoutPropose).unwrap();
    assert_eq!(
        out,
        vec![RoundOutput::Vote {
            round: 0,
            kind: VoteKind::Prevote,
            value: None
        }]
    );
    // A stale timeout of another round does nothing.
    assert_eq!(apply(&mut s, info(3), I::TimeoutPrevote), None);
    let out = apply(&mut s, info(0), I::TimeoutPrevote).unwrap();
    assert_eq!(
        out,
        vec![RoundOutput::Vote {
            round: 0,
            kind: VoteKind::Precommit,
            value: None
        }]
    );
    let out = apply(&mut s, info(0), I::TimeoutPrecommit).unwrap();
    assert_eq!(out, vec![RoundOutput::NewRound(1)]);
    assert_eq!((s.round, s.step), (1, Step::Unstarted));
    let proposer = Info {
        input_round: 1,
        is_proposer: true,
    };
    let out = apply(&mut s, proposer, I::NewRound(1)).unwrap();
    assert_eq!(out[0], RoundOutput::GetValue { round: 1 });
}

#[test]
fn proposer_reproposes_valid_value_line_16() {
    let mut s = RoundState::new(BlockNumber(1));
    let a = view(0, 1, None);
    s.valid = Some(RoundValue {
        round: 0,
        id: a.id,
        value: a.value.clone(),
    });
    s.round = 1;
    let proposer = Info {
        input_round: 1,
        is_proposer: true,
    };
    let out = apply(&mut s, proposer, I::NewRound(1)).unwrap();
    assert_eq!(
        out[0],
        RoundOutput::Proposal {
            round: 1,
            id: a.id,
            value: a.value,
            pol_round: Some(0)
        }
    );
    assert_eq!(
        out[1],
        RoundOutput::StartTimeout {
            round: 1,
            kind: TimeoutKind::Propose
        }
    );
}

#[test]
fn skip_round_line_55_only_forward() {
    let mut s = RoundState::new(BlockNumber(1));
    apply(&mut s, info(0), I::NewRound(0)).unwrap();
    assert_eq!(apply(&mut s, info(0), I::SkipRound(0)), None);
    let out = apply(&mut s, info(4), I::SkipRound(4)).unwrap();
    assert_eq!(out, vec![RoundOutput::NewRound(4)]);
}
