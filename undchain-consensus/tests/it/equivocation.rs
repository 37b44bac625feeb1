//! Equivocation: an equivocating proposer or double voter (at most f of
//! them) cannot fork the chain; conflicting signed messages become evidence
//! naming the validator, height and round (issue 5, "Evidence").

use crate::support::*;
use undchain_consensus::Output;
use undchain_consensus::sim::{Behaviour, SimConfig, Simulation};
use undchain_types::msg::{Evidence, VoteKind};
use undchain_types::{BlockNumber, Hash32, Message};

/// The evidence among `out`.
fn evidence(out: &[Output]) -> Vec<Evidence> {
    out.iter()
        .filter_map(|o| match o {
            Output::Evidence(e) => Some((**e).clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn double_vote_yields_evidence_naming_validator_height_and_round() {
    let (ks, _, mut d) = started(4, 1, 5);
    take(&mut d);
    let a = Some(Hash32([1; 32]));
    // In the current round (votes of rounds ahead are checked, and their
    // evidence found, once their round comes: `vote_flood`).
    let first = vote(&ks[3], 5, 0, VoteKind::Prevote, a);
    let second = vote(&ks[3], 5, 0, VoteKind::Prevote, None);
    d.handle_message(at(1), ks[3].public(), Message::Vote(first.clone()))
        .unwrap();
    assert!(evidence(&take(&mut d).outputs()).is_empty());
    d.handle_message(at(2), ks[3].public(), Message::Vote(second.clone()))
        .unwrap();
    let ev = evidence(&take(&mut d).outputs());
    assert_eq!(ev.len(), 1);
    let ev = &ev[0];
    assert_eq!(ev.offender(), ks[3].public());
    assert_eq!(ev.height(), BlockNumber(5));
    assert_eq!(ev.round(), 0);
    assert_eq!(ev, &Evidence::DoubleVote { first, second });
    ev.verify().unwrap();
    // The same pair again is not reported twice.
    d.handle_message(
        at(3),
        ks[3].public(),
        Message::Vote(vote(&ks[3], 5, 0, VoteKind::Prevote, None)),
    )
    .unwrap();
    assert!(evidence(&take(&mut d).outputs()).is_empty());
}

#[test]
fn double_proposal_yields_evidence() {
    let (ks, set, mut d) = started(4, 2, 0);
    let a = header(0, 1, &set);
    let b = header(0, 2, &set);
    offer_proposal(&mut d, &ks[0], 0, &a, at(1));
    take(&mut d);
    offer_proposal(&mut d, &ks[0], 0, &b, at(2));
    let ev = evidence(&take(&mut d).outputs());
    let ev = ev.first().expect("evidence");
    assert!(matches!(ev, Evidence::DoubleProposal { .. }));
    assert_eq!(
        (ev.offender(), ev.height(), ev.round()),
        (ks[0].public(), BlockNumber(0), 0)
    );
    ev.verify().unwrap();
}

#[test]
fn equivocating_proposers_up_to_f_never_fork() {
    for (n, f) in [(4, 1), (5, 1), (7, 2), (10, 3)] {
        let mut evidence = 0;
        for seed in 0..15u64 {
            let cfg = SimConfig::drawn(n, f, seed).with_behaviour(Behaviour::EquivocatingProposer);
            let report = Simulation::new(cfg).run();
            assert!(report.ok(), "{}", report.reproduce_hint());
            let byzantine: Vec<_> = report.nodes[..f].iter().map(|x| x.public_key).collect();
            for e in &report.evidence {
                // Only Byzantine validators are ever named, and rightly.
                assert!(byzantine.contains(&e.offender()), "{e:?}");
                e.verify().unwrap();
                evidence += 1;
            }
        }
        // The coalition's split votes (and, where relays carry both, its
        // split proposals) are caught.
        assert!(evidence > 0, "n={n}");
    }
}

#[test]
fn double_voters_up_to_f_never_fork_and_are_caught() {
    for (n, f) in [(4, 1), (6, 1), (8, 2), (9, 2)] {
        for seed in 0..15u64 {
            let cfg = SimConfig::drawn(n, f, seed).with_behaviour(Behaviour::DoubleVoter);
            let report = Simulation::new(cfg).run();
            assert!(report.ok(), "{}", report.reproduce_hint());
            assert!(
                report
                    .evidence
                    .iter()
                    .any(|e| matches!(e, Evidence::DoubleVote { .. })
                        && e.offender() == report.nodes[0].public_key),
                "{}",
                report.reproduce_hint()
            );
        }
    }
}
