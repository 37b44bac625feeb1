//! The multiplexer's rule table, row by row (src/driver/mux.rs; Tendermint,
//! arXiv 1807.04938, Algorithm 1): each row drives one validator of four to
//! the point where one `upon` rule applies, feeds the input that makes it
//! apply, and checks what the rule did.

use undchain_consensus::{Driver, Output, Step, TimeoutKind, Validity};
use undchain_types::msg::{Round, VoteKind};
use undchain_types::{BlockNumber, Hash32, Message};

use crate::support::*;

/// One input of a row. Validators are named by their turn: `P(r)` is the
/// proposer of round r, `O(i)` the i-th of the three validators other than
/// the one under test.
#[derive(Debug, Clone, Copy)]
enum In {
    /// The round's proposer proposes value `tag` (with proof-of-lock round
    /// `pol`).
    Proposal(Round, u8, Option<Round>),
    /// The host's verdict on value `tag`.
    Verdict(u8, Validity),
    /// Votes of `kind` in a round from some of the others, for value `tag`
    /// (`None`: nil).
    Votes(&'static [usize], Round, VoteKind, Option<u8>),
    /// The pending timeout of `kind` for `round` fires.
    Fire(TimeoutKind, Round),
    /// The host's value `tag` for a round this validator proposes in.
    Value(Round, u8),
}

/// The values the rows propose, by tag.
const A: u8 = 1;
const B: u8 = 2;
const C: u8 = 3;

/// What the last input of a row must have done.
#[derive(Debug)]
struct Expect {
    step: Step,
    round: Round,
    votes: Vec<(VoteKind, Option<u8>)>,
    starts: Vec<(TimeoutKind, Round)>,
    locked: Option<u8>,
    valid: Option<u8>,
    decides: bool,
    proposes: bool,
    asks_value: bool,
}

fn expect(step: Step, round: Round) -> Expect {
    Expect {
        step,
        round,
        votes: Vec::new(),
        starts: Vec::new(),
        locked: None,
        valid: None,
        decides: false,
        proposes: false,
        asks_value: false,
    }
}

/// A row: the paper's line, what it is, whether the validator under test
/// proposes round 0, the inputs (the last one triggers the rule) and the
/// outcome.
type Row = (&'static str, bool, Vec<In>, Expect);

/// Lines 11-33: starting a round and the proposal rules.
fn proposal_rows() -> Vec<Row> {
    use In::*;
    use TimeoutKind::{Precommit as ToPrecommit, Prevote as ToPrevote, Propose as ToPropose};
    use VoteKind::{Precommit, Prevote};
    vec![
        (
            "L11/L18: the proposer starts its round by asking for a value",
            true,
            vec![],
            Expect {
                asks_value: true,
                starts: vec![(ToPropose, 0), (TimeoutKind::Rebroadcast, 0)],
                ..expect(Step::Propose, 0)
            },
        ),
        (
            "L19: the host's value is proposed",
            true,
            vec![Value(0, A)],
            Expect {
                proposes: true,
                // Its own proposal passes line 22 at once.
                votes: vec![(Prevote, Some(A))],
                ..expect(Step::Prevote, 0)
            },
        ),
        (
            "L22: a valid proposal, not locked: prevote it",
            false,
            vec![Proposal(0, A, None), Verdict(A, Validity::Valid)],
            Expect {
                votes: vec![(Prevote, Some(A))],
                ..expect(Step::Prevote, 0)
            },
        ),
        (
            "L22 else: an invalid proposal: prevote nil",
            false,
            vec![Proposal(0, A, None), Verdict(A, Validity::Invalid)],
            Expect {
                votes: vec![(Prevote, None)],
                ..expect(Step::Prevote, 0)
            },
        ),
        (
            "L22 while the job file reconciles: no vote yet",
            false,
            vec![Proposal(0, A, None), Verdict(A, Validity::Pending)],
            expect(Step::Propose, 0),
        ),
        (
            "L26: locked on another value: prevote nil",
            false,
            vec![
                Proposal(0, A, None),
                Verdict(A, Validity::Valid),
                Votes(&[0, 1], 0, Prevote, Some(A)),
                Votes(&[0, 1, 2], 0, Precommit, None),
                Fire(ToPrecommit, 0),
                Proposal(1, B, None),
                Verdict(B, Validity::Valid),
            ],
            Expect {
                votes: vec![(Prevote, None)],
                locked: Some(A),
                valid: Some(A),
                ..expect(Step::Prevote, 1)
            },
        ),
        (
            "L28: a proposal with a polka in an earlier round: prevote it",
            false,
            vec![
                Votes(&[0, 1, 2], 0, Prevote, Some(B)),
                Votes(&[0, 1], 1, Prevote, None),
                Proposal(1, B, Some(0)),
                Verdict(B, Validity::Valid),
            ],
            Expect {
                votes: vec![(Prevote, Some(B))],
                starts: vec![(ToPrevote, 1)],
                ..expect(Step::Prevote, 1)
            },
        ),
        (
            "L28 else: the same with an invalid value: prevote nil",
            false,
            vec![
                Votes(&[0, 1, 2], 0, Prevote, Some(B)),
                Votes(&[0, 1], 1, Prevote, None),
                Proposal(1, B, Some(0)),
                Verdict(B, Validity::Invalid),
            ],
            Expect {
                // With the two nil prevotes of round 1, line 44 follows.
                votes: vec![(Prevote, None), (Precommit, None)],
                ..expect(Step::Precommit, 1)
            },
        ),
    ]
}

/// Lines 34-56: the vote thresholds.
fn vote_rows() -> Vec<Row> {
    use In::*;
    use TimeoutKind::{Precommit as ToPrecommit, Prevote as ToPrevote, Propose as ToPropose};
    use VoteKind::{Precommit, Prevote};
    vec![
        (
            "L34: q prevotes of any kind: start timeoutPrevote",
            false,
            vec![
                Proposal(0, A, None),
                Verdict(A, Validity::Valid),
                Votes(&[0], 0, Prevote, None),
                Votes(&[1], 0, Prevote, Some(C)),
            ],
            Expect {
                starts: vec![(ToPrevote, 0)],
                ..expect(Step::Prevote, 0)
            },
        ),
        (
            "L36: q prevotes for the proposal: lock and precommit it",
            false,
            vec![
                Proposal(0, A, None),
                Verdict(A, Validity::Valid),
                Votes(&[0, 1], 0, Prevote, Some(A)),
            ],
            Expect {
                votes: vec![(Precommit, Some(A))],
                locked: Some(A),
                valid: Some(A),
                ..expect(Step::Precommit, 0)
            },
        ),
        (
            "L36 at step precommit: only the valid value moves",
            false,
            vec![
                Proposal(0, A, None),
                Verdict(A, Validity::Pending),
                Fire(ToPropose, 0),
                Votes(&[0, 1], 0, Prevote, Some(A)),
                Fire(ToPrevote, 0),
                Votes(&[2], 0, Prevote, Some(A)),
                Verdict(A, Validity::Valid),
            ],
            Expect {
                valid: Some(A),
                ..expect(Step::Precommit, 0)
            },
        ),
        (
            "L44: q prevotes for nil: precommit nil",
            false,
            vec![Fire(ToPropose, 0), Votes(&[0, 1], 0, Prevote, None)],
            Expect {
                votes: vec![(Precommit, None)],
                ..expect(Step::Precommit, 0)
            },
        ),
        (
            "L47: q precommits of any kind: start timeoutPrecommit",
            false,
            vec![Votes(&[0, 1, 2], 0, Precommit, None)],
            Expect {
                starts: vec![(ToPrecommit, 0)],
                ..expect(Step::Propose, 0)
            },
        ),
        (
            "L49: a valid value with q precommits: decide it",
            false,
            vec![
                Proposal(0, A, None),
                Verdict(A, Validity::Valid),
                Votes(&[0, 1, 2], 0, Precommit, Some(A)),
            ],
            Expect {
                decides: true,
                ..expect(Step::Commit, 0)
            },
        ),
        (
            "L55: f+1 validators in a later round: skip to it",
            false,
            vec![Votes(&[0, 1], 2, Prevote, None)],
            Expect {
                starts: vec![(ToPropose, 2)],
                ..expect(Step::Propose, 2)
            },
        ),
    ]
}

/// Lines 57-67: the timeouts.
fn timeout_rows() -> Vec<Row> {
    use In::*;
    use TimeoutKind::{Precommit as ToPrecommit, Prevote as ToPrevote, Propose as ToPropose};
    use VoteKind::{Precommit, Prevote};
    vec![
        (
            "L57: timeoutPropose: prevote nil",
            false,
            vec![Fire(ToPropose, 0)],
            Expect {
                votes: vec![(Prevote, None)],
                ..expect(Step::Prevote, 0)
            },
        ),
        (
            "L61: timeoutPrevote: precommit nil",
            false,
            vec![
                Fire(ToPropose, 0),
                Votes(&[0], 0, Prevote, Some(A)),
                Votes(&[1], 0, Prevote, Some(C)),
                Fire(ToPrevote, 0),
            ],
            Expect {
                votes: vec![(Precommit, None)],
                ..expect(Step::Precommit, 0)
            },
        ),
        (
            "L65: timeoutPrecommit: start the next round",
            false,
            vec![Votes(&[0, 1, 2], 0, Precommit, None), Fire(ToPrecommit, 0)],
            Expect {
                starts: vec![(ToPropose, 1)],
                ..expect(Step::Propose, 1)
            },
        ),
    ]
}

/// The validators of the rows: four, at height 0.
struct Net {
    ks: Vec<undchain_types::SigningKey>,
    set: undchain_consensus::ValidatorSet,
    me: usize,
    others: Vec<usize>,
}

impl Net {
    fn new(proposer: bool) -> Net {
        let ks = keys(4);
        let set = set_of(&ks);
        let p = |r| Net::seat_of(&ks, &set, r);
        let me = if proposer {
            p(0)
        } else {
            (0..4).find(|i| ![p(0), p(1), p(2)].contains(i)).unwrap()
        };
        let others = (0..4).filter(|i| *i != me).collect();
        Net {
            ks,
            set,
            me,
            others,
        }
    }

    fn seat_of(
        ks: &[undchain_types::SigningKey],
        set: &undchain_consensus::ValidatorSet,
        r: Round,
    ) -> usize {
        let id = set.proposer(BlockNumber(0), r);
        ks.iter().position(|k| k.public() == id).unwrap()
    }

    fn id(&self, tag: u8) -> Hash32 {
        header(0, tag, &self.set).hash()
    }

    /// Feeds one input at the clock's next microsecond (a timeout: when it
    /// is due) and moves the clock on.
    fn feed(&self, d: &mut Driver, input: In, clock: &mut i64) {
        *clock += 1;
        let now = *clock;
        match input {
            In::Proposal(r, tag, pol) => {
                let k = &self.ks[Net::seat_of(&self.ks, &self.set, r)];
                let p = proposal(k, r, &header(0, tag, &self.set), pol);
                d.handle_message(at(now), k.public(), Message::Proposal(p))
                    .unwrap();
            }
            In::Verdict(tag, v) => d
                .handle_validity(
                    at(now),
                    BlockNumber(0),
                    key_of(&header(0, tag, &self.set)),
                    v,
                )
                .unwrap(),
            In::Votes(who, r, kind, tag) => {
                for i in who {
                    let k = &self.ks[self.others[*i]];
                    let v = vote(k, 0, r, kind, tag.map(|t| self.id(t)));
                    d.handle_message(at(now), k.public(), Message::Vote(v))
                        .unwrap();
                }
            }
            In::Fire(kind, r) => {
                let when = due(d, kind, r);
                *clock = when.micros();
                d.handle_timeout(when);
            }
            In::Value(r, tag) => d
                .propose_value(
                    at(now),
                    BlockNumber(0),
                    r,
                    value(&header(0, tag, &self.set)),
                )
                .unwrap(),
        }
    }
}

#[test]
fn each_upon_rule_does_what_the_table_says() {
    for (name, proposer, inputs, want) in proposal_rows()
        .into_iter()
        .chain(vote_rows())
        .chain(timeout_rows())
    {
        let net = Net::new(proposer);
        let mut d = driver(&net.ks[net.me]);
        let mut before = d.pending_timeouts();
        d.start_height(at(0), BlockNumber(0), net.set.clone());
        let mut last = take(&mut d);
        let mut clock = 0;
        for input in &inputs {
            before = d.pending_timeouts();
            net.feed(&mut d, *input, &mut clock);
            last = take(&mut d);
        }
        let out = last.outputs();
        let tag_of = |id: Option<Hash32>| id.map(|x| (1..=3).find(|t| net.id(*t) == x).unwrap());
        let votes: Vec<_> = last
            .votes()
            .iter()
            .filter(|v| v.vote.validator == net.ks[net.me].public())
            .map(|v| (v.vote.kind, tag_of(v.vote.value)))
            .collect();
        let starts: Vec<_> = d
            .pending_timeouts()
            .into_iter()
            .filter(|p| !before.contains(p))
            .map(|(_, t)| (t.kind, t.round))
            .collect();
        let s = d.state();
        assert_eq!((s.step, s.round), (want.step, want.round), "{name}");
        assert_eq!(votes, want.votes, "{name}");
        assert_eq!(starts, want.starts, "{name}");
        assert_eq!(
            s.locked.as_ref().map(|l| tag_of(Some(l.id)).unwrap()),
            want.locked,
            "{name}"
        );
        assert_eq!(
            s.valid.as_ref().map(|l| tag_of(Some(l.id)).unwrap()),
            want.valid,
            "{name}"
        );
        let decides = out.iter().any(|o| matches!(o, Output::Decide(_)));
        assert_eq!(decides, want.decides, "{name}");
        let proposes = out.iter().any(|o| {
            matches!(o, Output::Broadcast { msg: Message::Proposal(p) }
                if p.proposal.proposer == net.ks[net.me].public())
        });
        assert_eq!(proposes, want.proposes, "{name}");
        let asks = out.iter().any(|o| matches!(o, Output::GetValue { .. }));
        assert_eq!(asks, want.asks_value, "{name}");
    }
}
