//! A proposal whose job file is still being reconciled is not voted for
//! until it arrives, or until `timeoutPropose` gives a nil prevote (issue 5,
//! "Agreement"; design notes, validator story item 4).

use crate::support::*;
use undchain_consensus::{Output, TimeoutKind, Validity};
use undchain_types::BlockNumber;
use undchain_types::msg::VoteKind;

#[test]
fn pending_job_file_holds_the_prevote_until_it_arrives() {
    let (ks, set, mut d) = started(4, 1, 0);
    take(&mut d);
    let h = header(0, 1, &set);
    let id = h.hash();
    offer_proposal(&mut d, &ks[0], 0, &h, at(100));
    let out = take(&mut d).outputs();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::CheckValue { id: x, .. } if *x == id)),
        "the host is asked about the value: {out:?}"
    );
    assert!(
        broadcast_votes(&out).is_empty(),
        "no vote before the verdict"
    );

    d.handle_validity(at(200), BlockNumber(0), key_of(&h), Validity::Pending)
        .unwrap();
    assert!(take(&mut d).votes().is_empty(), "pending: still no vote");

    d.handle_validity(at(300), BlockNumber(0), key_of(&h), Validity::Valid)
        .unwrap();
    let handed = take(&mut d);
    let votes = handed.votes();
    assert_eq!(votes.len(), 1);
    assert_eq!(
        (votes[0].vote.kind, votes[0].vote.round, votes[0].vote.value),
        (VoteKind::Prevote, 0, Some(id))
    );
    let batch = &handed.batches[0];
    assert!(
        batch.persist[0].own_votes.contains(&votes[0]),
        "the batch that sends the prevote persists it"
    );
}

#[test]
fn pending_job_file_times_out_to_a_nil_prevote() {
    let (ks, set, mut d) = started(4, 2, 0);
    take(&mut d);
    let timeout = due(&d, TimeoutKind::Propose, 0);
    let h = header(0, 1, &set);
    offer_proposal(&mut d, &ks[0], 0, &h, at(100));
    d.handle_validity(at(200), BlockNumber(0), key_of(&h), Validity::Pending)
        .unwrap();
    take(&mut d);
    d.handle_timeout(timeout);
    let votes = take(&mut d).votes();
    assert_eq!(votes.len(), 1);
    assert_eq!(
        (votes[0].vote.kind, votes[0].vote.value),
        (VoteKind::Prevote, None)
    );
    // The file arriving late changes nothing: the prevote is cast.
    d.handle_validity(timeout.plus(1), BlockNumber(0), key_of(&h), Validity::Valid)
        .unwrap();
    assert!(take(&mut d).votes().is_empty());
}

#[test]
fn invalid_value_gets_a_nil_prevote_at_once() {
    let (ks, set, mut d) = started(4, 3, 0);
    let h = header(0, 9, &set);
    offer_proposal(&mut d, &ks[0], 0, &h, at(1));
    take(&mut d);
    d.handle_validity(at(2), BlockNumber(0), key_of(&h), Validity::Invalid)
        .unwrap();
    let votes = take(&mut d).votes();
    assert_eq!(votes.len(), 1);
    assert_eq!(votes[0].vote.value, None);
}

#[test]
fn timeouts_grow_per_round() {
    let t = config().timeouts;
    for kind in [
        TimeoutKind::Propose,
        TimeoutKind::Prevote,
        TimeoutKind::Precommit,
    ] {
        assert!(t.duration(kind, 1) > t.duration(kind, 0), "{kind:?}");
        assert!(t.duration(kind, 10) > t.duration(kind, 1), "{kind:?}");
    }
    assert!(
        t.duration(TimeoutKind::Propose, u32::MAX) >= t.duration(TimeoutKind::Propose, 10),
        "saturates, never wraps"
    );
}
