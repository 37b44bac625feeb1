//! Issue 13, the spam flood: a member's own signed votes for rounds ahead
//! of the current one used to cost every receiver a signature check each
//! (until the member's places in each slot were full). Now a vote of a
//! round ahead is kept unchecked within its voter's places and checked
//! only once its round is reached or has f+1 voters: spam for rounds the
//! height never reaches costs no signature check, and honest votes of a
//! round ahead still move the validator there (line 55).

use std::cell::Cell;
use std::rc::Rc;

use crate::support::*;
use undchain_consensus::{Driver, InputError, Output, SignatureVerifier, StrictVerifier};
use undchain_types::msg::VoteKind;
use undchain_types::{BlockNumber, Hash32, Message, PublicKey, Signature};

/// Strict verification that counts its checks.
#[derive(Debug, Clone, Default)]
struct Counting(Rc<Cell<u64>>);

impl SignatureVerifier for Counting {
    fn verify(&mut self, signer: &PublicKey, digest: &Hash32, signature: &Signature) -> bool {
        self.0.set(self.0.get() + 1);
        StrictVerifier.verify(signer, digest, signature)
    }
}

#[test]
fn spam_for_rounds_ahead_costs_no_signature_check_until_its_round_has_f_plus_1_voters() {
    let ks = keys(4);
    let set = set_of(&ks);
    let checks = Counting::default();
    let mut d = Driver::with_verifier(config(), ks[1].clone(), checks.clone());
    d.start_height(at(0), BlockNumber(3), set);
    while let Some(b) = d.ready() {
        d.advance(b.number()).unwrap();
    }

    // Validator 0 spams 400 different signed votes over rounds 1..=8, with
    // one forged signature among them.
    let spammer = ks[0].public();
    let mut quota_full = 0;
    for i in 0..400u32 {
        let round = 1 + i % 8;
        let kind = if i % 2 == 0 {
            VoteKind::Prevote
        } else {
            VoteKind::Precommit
        };
        let mut v = vote(&ks[0], 3, round, kind, Some(Hash32([(i % 250) as u8; 32])));
        if i == 397 {
            v.signature.0[4] ^= 1;
        }
        match d.handle_message(at(10), spammer, Message::Vote(v)) {
            Ok(()) => {}
            Err(InputError::QuotaFull { signer, .. }) if signer == spammer => quota_full += 1,
            other => panic!("spam: {other:?}"),
        }
    }
    assert_eq!(checks.0.get(), 0, "no spam signature was checked");
    assert!(d.unchecked_ahead() <= 8, "{}", d.unchecked_ahead());
    assert!(quota_full > 350, "{quota_full}");
    assert_eq!(d.state().round, 0);

    // An honest validator in round 8 too: with the spammer, f+1 = 2 voters
    // there. Their round-8 votes are checked and the driver skips to it.
    let before = checks.0.get();
    let honest = vote(&ks[2], 3, 8, VoteKind::Prevote, None);
    d.handle_message(at(20), ks[2].public(), Message::Vote(honest))
        .unwrap();
    assert_eq!(d.state().round, 8, "line 55 moved the validator on");
    let spent = checks.0.get() - before;
    assert!(
        (2..=9).contains(&spent),
        "round 8's kept votes only: {spent}"
    );
    let kept = d.vote_keeper().unwrap();
    assert!(kept.has_sent(8, &ks[2].public()));
    assert!(kept.has_sent(8, &spammer));
    assert!(d.unchecked_ahead() <= 8);
    // Once checked, the spammer's conflicting votes of round 8 are
    // evidence.
    let mut evidence = Vec::new();
    while let Some(b) = d.ready() {
        d.advance(b.number()).unwrap();
        evidence.extend(b.immediate.into_iter().filter_map(|o| match o {
            Output::Evidence(e) => Some(*e),
            _ => None,
        }));
    }
    assert!(
        evidence
            .iter()
            .any(|e| e.offender() == spammer && e.round() == 8),
        "{evidence:?}"
    );
}

#[test]
fn a_forged_vote_kept_ahead_is_dropped_when_its_round_comes() {
    let ks = keys(4);
    let set = set_of(&ks);
    let mut d = driver(&ks[1]);
    d.start_height(at(0), BlockNumber(3), set);
    take(&mut d);
    // Forged round-2 prevotes "from" validators 0 and 3: kept unchecked,
    // and although they are f+1 voters, neither verifies.
    for k in [&ks[0], &ks[3]] {
        let mut v = vote(k, 3, 2, VoteKind::Prevote, None);
        v.signature.0[9] ^= 1;
        d.handle_message(at(5), k.public(), Message::Vote(v))
            .unwrap();
    }
    assert_eq!(d.state().round, 0, "forged votes move nobody");
    assert_eq!(d.unchecked_ahead(), 0, "checked and dropped");
    assert_eq!(d.vote_keeper().unwrap().senders(2), 0);
    // The real votes of the same slots still count.
    for k in [&ks[0], &ks[3]] {
        let v = vote(k, 3, 2, VoteKind::Prevote, None);
        d.handle_message(at(6), k.public(), Message::Vote(v))
            .unwrap();
    }
    assert_eq!(d.state().round, 2);
}
