//! Issue 13, fourth hole: evidence for any chain and any signer used to be
//! surfaced, and a second valid signature over the same vote became
//! "DoubleVote" evidence that `Evidence::verify` rejects. Now evidence
//! counts only for this chain, this height and a member of its set, once
//! per offender and slot; the same vote under another signature is the
//! same vote. The attacks are performed with real signatures (a second
//! ed25519 signature made with another nonce).

use ed25519_dalek::hazmat::{ExpandedSecretKey, raw_sign};
use undchain_consensus::{InputError, Output};
use undchain_sim::node_key;
use undchain_types::msg::{Evidence, SignedVote, VoteKind};
use undchain_types::{BlockNumber, ChainId, Hash32, Message, Signature, SigningKey};

use crate::net::Net;
use crate::support::*;

/// A second valid signature of `k` over `v`'s vote (another nonce).
fn resigned(k: &SigningKey, v: &SignedVote) -> SignedVote {
    let mut esk = ExpandedSecretKey::from(&k.to_seed());
    esk.hash_prefix[0] ^= 0x5a;
    let vk = ed25519_dalek::SigningKey::from_bytes(&k.to_seed()).verifying_key();
    let sig = raw_sign::<sha2::Sha512>(&esk, v.vote.digest().as_bytes(), &vk);
    let again = SignedVote {
        vote: v.vote.clone(),
        signature: Signature(sig.to_bytes()),
    };
    assert_ne!(again.signature, v.signature);
    again.verify().expect("a genuine second signature");
    again
}

fn double_vote(k: &SigningKey, height: u64, chain: ChainId) -> Evidence {
    let mut a = vote(k, height, 0, VoteKind::Prevote, Some(Hash32([1; 32])));
    let mut b = vote(k, height, 0, VoteKind::Prevote, None);
    a.vote.chain_id = chain;
    b.vote.chain_id = chain;
    Evidence::DoubleVote {
        first: a.vote.clone().sign(k),
        second: b.vote.clone().sign(k),
    }
}

fn surfaced(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Evidence(_)))
        .count()
}

#[test]
fn evidence_counts_only_for_this_chain_height_and_set_and_once() {
    let (ks, _, mut d) = started(4, 1, 5);
    take(&mut d);
    let from = ks[0].public();
    let ev = |e: Evidence| Message::Evidence(e);
    assert!(matches!(
        d.handle_message(at(1), from, ev(double_vote(&ks[3], 5, ChainId(99)))),
        Err(InputError::WrongChain { .. })
    ));
    assert!(matches!(
        d.handle_message(at(1), from, ev(double_vote(&node_key(50), 5, CHAIN))),
        Err(InputError::NotInSet { .. })
    ));
    assert_eq!(
        d.handle_message(at(1), from, ev(double_vote(&ks[3], 4, CHAIN))),
        Err(InputError::EvidenceHeight {
            height: BlockNumber(4),
            current: BlockNumber(5)
        })
    );
    assert_eq!(surfaced(&take(&mut d).outputs()), 0);
    let real = double_vote(&ks[3], 5, CHAIN);
    d.handle_message(at(2), from, ev(real.clone())).unwrap();
    assert_eq!(surfaced(&take(&mut d).outputs()), 1);
    // Again, or the same slot in other words: surfaced once only.
    d.handle_message(at(3), from, ev(real)).unwrap();
    assert_eq!(surfaced(&take(&mut d).outputs()), 0);
}

#[test]
fn the_same_vote_under_a_second_valid_signature_is_no_evidence() {
    let (ks, _, mut d) = started(4, 1, 5);
    take(&mut d);
    let v = vote(&ks[3], 5, 0, VoteKind::Prevote, Some(Hash32([1; 32])));
    let again = resigned(&ks[3], &v);
    d.handle_message(at(1), ks[3].public(), Message::Vote(v))
        .unwrap();
    d.handle_message(at(2), ks[3].public(), Message::Vote(again))
        .unwrap();
    assert_eq!(surfaced(&take(&mut d).outputs()), 0);
    let keeper = d.vote_keeper().unwrap();
    assert_eq!(keeper.count(0, VoteKind::Prevote, Some(Hash32([1; 32]))), 1);
    assert_eq!(keeper.votes_in(0, VoteKind::Prevote).len(), 1);
}

#[test]
fn a_validator_resigning_its_votes_to_everyone_gets_no_evidence_and_the_height_decides() {
    // Node 0 proposes height 0 and sends each of its votes twice, under
    // two valid signatures.
    let mut net = Net::new(4, &[0]);
    net.stop_at = 1;
    net.start(0);
    let value = net.value_for(1, 0, 9);
    let p = net.propose(0, 0, &value);
    let byz = net.ks[0].public();
    let id = value.header.hash();
    for to in 1..4 {
        net.inject(to, byz, Message::Proposal(p.clone())).unwrap();
    }
    for kind in [VoteKind::Prevote, VoteKind::Precommit] {
        let v = vote(&net.ks[0], 0, 0, kind, Some(id));
        let again = resigned(&net.ks[0], &v);
        for to in 1..4 {
            net.inject(to, byz, Message::Vote(v.clone())).unwrap();
            net.inject(to, byz, Message::Vote(again.clone())).unwrap();
        }
    }
    net.run(1_000 * UNIT as i64);
    for i in 1..4 {
        assert_eq!(net.decided(i), vec![id], "node {i}");
        assert_eq!(surfaced(&net.outputs[i]), 0, "node {i}");
    }
}
