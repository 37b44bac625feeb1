//! Issue 13, fifth hole: only 3 proposals were kept per round, so an
//! equivocating proposer could push the value with a polka out of the
//! proposal map. The attack: the proposer shows one validator ten
//! different values before the others' polka for another one arrives;
//! once that value's proposal reaches it (relayed with the polka), it
//! takes the place of a value nobody voted for, and the validator locks,
//! precommits and decides it.

use crate::support::*;
use undchain_consensus::{Output, Validity};
use undchain_types::msg::VoteKind;
use undchain_types::{BlockNumber, Message};

#[test]
fn an_equivocating_proposer_cannot_push_the_polka_value_out() {
    let (ks, set, mut d) = started(4, 3, 0);
    take(&mut d);
    let values: Vec<_> = (1..=10u8).map(|t| header(0, t, &set)).collect();
    let mut now = 1;
    for h in &values {
        offer_proposal(&mut d, &ks[0], 0, h, at(now));
        now += 1;
        for o in take(&mut d).outputs() {
            if let Output::CheckValue { key, .. } = o {
                d.handle_validity(at(now), BlockNumber(0), key, Validity::Valid)
                    .unwrap();
            }
        }
    }
    let polka = &values[6];
    let id = polka.hash();
    cast_votes(
        &mut d,
        &[&ks[0], &ks[1], &ks[2]],
        (0, 0),
        VoteKind::Prevote,
        Some(id),
        at(now),
    );
    assert!(
        take(&mut d)
            .votes()
            .iter()
            .all(|v| v.vote.kind == VoteKind::Prevote),
        "the polka's value is unknown here yet: no precommit"
    );
    // An honest validator relays the proposal with its polka.
    now += 1;
    d.handle_message(
        at(now),
        ks[1].public(),
        Message::Proposal(proposal(&ks[0], 0, polka, None)),
    )
    .unwrap();
    let mut out = take(&mut d).outputs();
    let key = out.iter().find_map(|o| match o {
        Output::CheckValue { key, id: x, .. } if *x == id => Some(*key),
        _ => None,
    });
    d.handle_validity(
        at(now),
        BlockNumber(0),
        key.expect("asked about it"),
        Validity::Valid,
    )
    .unwrap();
    out.extend(take(&mut d).outputs());
    let precommits: Vec<_> = broadcast_votes(&out)
        .into_iter()
        .filter(|v| v.vote.kind == VoteKind::Precommit)
        .collect();
    assert_eq!(precommits.len(), 1);
    assert_eq!(
        precommits[0].vote.value,
        Some(id),
        "locks and precommits it"
    );
    cast_votes(
        &mut d,
        &[&ks[1], &ks[2]],
        (0, 0),
        VoteKind::Precommit,
        Some(id),
        at(now + 1),
    );
    let decided = take(&mut d).outputs().into_iter().find_map(|o| match o {
        Output::Decide(b) => Some(b.header.hash()),
        _ => None,
    });
    assert_eq!(decided, Some(id));
}
