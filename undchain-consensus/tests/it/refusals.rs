//! A refused input changes nothing (docs/ARCHITECTURE.md "The machine
//! vocabulary"): for each way an input can be refused, the driver returns
//! the typed reason, shows the same state, votes, pending timeouts and
//! (empty) next batch as before, and afterwards behaves exactly like a copy
//! that never saw the input.

use undchain_consensus::certificate::certificate_from_precommits;
use undchain_consensus::{CertificateError, Driver, InputError, Validity};
use undchain_sim::node_key;
use undchain_types::msg::{
    BlockResponse, CommittedBlock, Evidence, EvidenceError, Hello, VoteKind,
};
use undchain_types::{
    BlockHeader, BlockNumber, BoundedVec, ChainId, Hash32, Message, PublicKey, Role, SigningKey,
};

use crate::support::*;

/// The height the refusals are tried at.
const H: u64 = 3;

/// A driver in round 1 of height 3 that prevoted for the round-0 value,
/// with a member (`lagging`) it could help, and what the rows need.
struct Setup {
    ks: Vec<SigningKey>,
    set: undchain_consensus::ValidatorSet,
    me: usize,
    lagging: usize,
    round1_proposer: usize,
    value: BlockHeader,
    driver: Driver,
}

fn setup() -> Setup {
    let ks = keys(4);
    let set = set_of(&ks);
    let seat = |r| {
        let p = set.proposer(BlockNumber(H), r);
        ks.iter().position(|k| k.public() == p).unwrap()
    };
    let (p0, p1) = (seat(0), seat(1));
    let me = (0..4).find(|i| *i != p0 && *i != p1).unwrap();
    let mut d = driver(&ks[me]);
    d.start_height(at(0), BlockNumber(H), set.clone());
    let value = header(H, 1, &set);
    d.handle_message(
        at(1),
        ks[p0].public(),
        Message::Proposal(proposal(&ks[p0], 0, &value, None)),
    )
    .unwrap();
    d.handle_validity(at(2), BlockNumber(H), key_of(&value), Validity::Valid)
        .unwrap();
    // f+1 = 2 validators in round 1: skip to it (line 55).
    for k in (0..4).filter(|i| *i != me && *i != p0).take(2) {
        d.handle_message(
            at(3),
            ks[k].public(),
            Message::Vote(vote(&ks[k], H, 1, VoteKind::Prevote, None)),
        )
        .unwrap();
    }
    take(&mut d);
    assert_eq!(d.state().round, 1);
    Setup {
        ks,
        set,
        me,
        lagging: p0,
        round1_proposer: p1,
        value,
        driver: d,
    }
}

/// A block for `height` certified by the precommits of `signers`.
fn block(s: &Setup, height: u64, signers: &[usize]) -> CommittedBlock {
    let h = header(height, 9, &s.set);
    let votes: Vec<_> = signers
        .iter()
        .map(|i| vote(&s.ks[*i], height, 0, VoteKind::Precommit, Some(h.hash())))
        .collect();
    CommittedBlock {
        certificate: certificate_from_precommits(CHAIN, BlockNumber(height), 0, h.hash(), &votes),
        header: h,
    }
}

fn blocks(list: Vec<CommittedBlock>) -> Message {
    Message::BlockResponse(BlockResponse {
        tip: BlockNumber(H + 1),
        blocks: BoundedVec::try_from_vec(list).unwrap(),
    })
}

fn from(s: &Setup, i: usize) -> PublicKey {
    s.ks[i].public()
}

type Input = fn(&mut Driver, &Setup) -> Result<(), InputError>;
type Expect = fn(&InputError) -> bool;

/// A refused input: what it is, how to feed it, the reason it must give.
type Row = (&'static str, Input, Expect);

/// Refused proposals, votes and other messages.
fn message_rows() -> Vec<Row> {
    vec![
        (
            "a lagging member's vote with a bad signature",
            |d, s| {
                let mut v = vote(&s.ks[s.lagging], H, 0, VoteKind::Prevote, None);
                v.signature.0[3] ^= 1;
                d.handle_message(at(500), from(s, s.lagging), Message::Vote(v))
            },
            |e| matches!(e, InputError::BadSignature { .. }),
        ),
        (
            "a stranger's vote relayed by a lagging member",
            |d, s| {
                let v = vote(&node_key(40), H, 0, VoteKind::Prevote, None);
                d.handle_message(at(500), from(s, s.lagging), Message::Vote(v))
            },
            |e| matches!(e, InputError::NotInSet { .. }),
        ),
        (
            "a vote too many rounds ahead",
            |d, s| {
                let v = vote(&s.ks[s.lagging], H, 1_000, VoteKind::Prevote, None);
                d.handle_message(at(500), from(s, s.lagging), Message::Vote(v))
            },
            |e| matches!(e, InputError::RoundTooFar { round: 1_000, .. }),
        ),
        (
            "a vote for another chain",
            |d, s| {
                let mut v = vote(&s.ks[s.lagging], H, 0, VoteKind::Prevote, None);
                v.vote.chain_id = ChainId(99);
                d.handle_message(at(500), from(s, s.lagging), Message::Vote(v))
            },
            |e| matches!(e, InputError::WrongChain { .. }),
        ),
        (
            "a proposal by a validator whose turn it is not",
            |d, s| {
                let h = header(H, 2, &s.set);
                let p = proposal(&s.ks[s.lagging], 1, &h, None);
                d.handle_message(at(500), from(s, s.lagging), Message::Proposal(p))
            },
            |e| matches!(e, InputError::NotProposer { .. }),
        ),
        (
            "a proposal with a forged signature",
            |d, s| {
                let h = header(H, 2, &s.set);
                let mut p = proposal(&s.ks[s.round1_proposer], 1, &h, None);
                p.signature.0[9] ^= 1;
                d.handle_message(at(500), from(s, s.lagging), Message::Proposal(p))
            },
            |e| matches!(e, InputError::BadSignature { .. }),
        ),
        (
            "a proposal whose header is for another block",
            |d, s| {
                let mut h = header(H, 2, &s.set);
                h.number = BlockNumber(H + 5);
                let mut p = proposal(&s.ks[s.round1_proposer], 1, &h, None);
                p.proposal.height = BlockNumber(H);
                d.handle_message(at(500), from(s, s.lagging), Message::Proposal(p))
            },
            |e| matches!(e, InputError::HeaderMismatch { .. }),
        ),
        (
            "a message that is not about agreement",
            |d, s| {
                let hello = Hello {
                    role: Role::Client,
                    nonce: 5,
                };
                d.handle_message(at(500), from(s, s.lagging), Message::Hello(hello))
            },
            |e| matches!(e, InputError::NotAgreement { .. }),
        ),
    ]
}

/// Refused evidence, decided blocks and certificates, and the host's
/// answers that come too late or were never asked for.
fn other_rows() -> Vec<Row> {
    vec![
        (
            "evidence of two identical votes",
            |d, s| {
                let v = vote(&s.ks[s.lagging], H, 0, VoteKind::Prevote, None);
                let e = Evidence::DoubleVote {
                    first: v.clone(),
                    second: v,
                };
                d.handle_message(at(500), from(s, s.lagging), Message::Evidence(e))
            },
            |e| matches!(e, InputError::Evidence(EvidenceError::NotConflicting)),
        ),
        (
            "decided blocks, the current one short of a quorum",
            |d, s| {
                let later = block(s, H + 1, &[0, 1, 2]);
                let thin = block(s, H, &[0, 1]);
                d.handle_message(at(500), from(s, s.lagging), blocks(vec![later, thin]))
            },
            |e| {
                matches!(
                    e,
                    InputError::Certificate(CertificateError::InsufficientWeight { .. })
                )
            },
        ),
        (
            "a certificate for the known value, short of a quorum",
            |d, s| {
                let votes: Vec<_> = [0, 2]
                    .iter()
                    .map(|i| vote(&s.ks[*i], H, 0, VoteKind::Precommit, Some(s.value.hash())))
                    .collect();
                let c =
                    certificate_from_precommits(CHAIN, BlockNumber(H), 0, s.value.hash(), &votes);
                d.handle_message(at(500), from(s, s.lagging), Message::CommitCertificate(c))
            },
            |e| matches!(e, InputError::Certificate(_)),
        ),
        (
            "a value for another height",
            |d, s| d.propose_value(at(500), BlockNumber(9), 1, value(&header(9, 1, &s.set))),
            |e| matches!(e, InputError::WrongHeight { .. }),
        ),
        (
            "a value for another round",
            |d, s| d.propose_value(at(500), BlockNumber(H), 0, value(&s.value)),
            |e| {
                matches!(
                    e,
                    InputError::WrongRound {
                        round: 0,
                        current: 1
                    }
                )
            },
        ),
        (
            "a value from a validator that does not propose this round",
            |d, s| d.propose_value(at(500), BlockNumber(H), 1, value(&s.value)),
            |e| matches!(e, InputError::ValueNotWanted { .. }),
        ),
        (
            "a verdict for another height",
            |d, s| {
                d.handle_validity(
                    at(500),
                    BlockNumber(H - 1),
                    key_of(&s.value),
                    Validity::Invalid,
                )
            },
            |e| matches!(e, InputError::WrongHeight { .. }),
        ),
        (
            "a verdict on a value never asked about",
            |d, _| d.handle_validity(at(500), BlockNumber(H), Hash32([7; 32]), Validity::Valid),
            |e| matches!(e, InputError::NotAsked { .. }),
        ),
    ]
}

/// What follows the refused input, the same for the refused driver and its
/// untouched copy; each step's batches and state must agree.
fn follow_up(d: &mut Driver, s: &Setup) -> Vec<(Handed, Observed)> {
    let mut seen = Vec::new();
    let mut step = |d: &mut Driver| {
        let h = take(d);
        seen.push((h, observe(d)));
    };
    // The lagging member's genuine vote: it is helped (once per interval).
    let v = vote(
        &s.ks[s.lagging],
        H,
        0,
        VoteKind::Prevote,
        Some(s.value.hash()),
    );
    d.handle_message(at(600), from(s, s.lagging), Message::Vote(v))
        .unwrap();
    step(d);
    d.handle_timeout(at(1_000_000));
    step(d);
    d.handle_message(
        at(1_000_001),
        from(s, s.lagging),
        blocks(vec![block(s, H, &[0, 1, 2])]),
    )
    .unwrap();
    step(d);
    d.start_height(at(1_000_002), BlockNumber(H + 1), s.set.clone());
    step(d);
    seen
}

#[test]
fn each_refusal_changes_nothing() {
    for (name, input, expect) in message_rows().into_iter().chain(other_rows()) {
        let s = setup();
        let mut twin = s.driver.clone();
        let before = observe(&s.driver);
        let mut d = s.driver.clone();
        let err = input(&mut d, &s).expect_err(name);
        assert!(
            expect(&err),
            "{name}: refused for the wrong reason: {err:?}"
        );
        assert_eq!(observe(&d), before, "{name}: the state changed");
        assert_eq!(d.ready(), None, "{name}: a refused input queued output");
        let after_refusal = follow_up(&mut d, &s);
        let untouched = follow_up(&mut twin, &s);
        for (k, (a, b)) in after_refusal.iter().zip(&untouched).enumerate() {
            assert_eq!(a.0.batches, b.0.batches, "{name}: follow-up {k} differs");
            assert_eq!(a.1, b.1, "{name}: state after follow-up {k} differs");
        }
    }
}

#[test]
fn a_lagging_member_is_helped_even_after_a_refused_vote() {
    // The help_lagging fault: a refused vote used to record the peer as
    // helped, so its next genuine vote went unanswered for an interval.
    let s = setup();
    let mut d = s.driver.clone();
    let mut bad = vote(&s.ks[s.lagging], H, 0, VoteKind::Prevote, None);
    bad.signature.0[0] ^= 1;
    assert!(
        d.handle_message(at(500), from(&s, s.lagging), Message::Vote(bad))
            .is_err()
    );
    let seen = follow_up(&mut d, &s);
    let to_lagging = seen[0]
        .0
        .outputs()
        .into_iter()
        .filter(|o| {
            matches!(o, undchain_consensus::Output::Send { to, .. } if *to == from(&s, s.lagging))
        })
        .count();
    assert!(to_lagging > 0, "the lagging member got no help");
    assert_ne!(s.me, s.lagging);
}
