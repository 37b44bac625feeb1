//! Issue 13, first hole: messages for the next height used to go into one
//! shared 256-slot buffer before any check, so 256 unsigned votes from a
//! stranger pushed out the honest next proposal. Now a next-height message
//! is kept only with a valid signature and within its signer's quota.
//! The attack: a validator that is behind is flooded (unsigned votes,
//! signed votes from many strangers, a Byzantine member's spam over many
//! rounds) before the honest messages of the next height reach it; it
//! still decides that height from what it kept, with nobody re-sending.

use crate::net::Net;
use crate::support::*;
use undchain_consensus::InputError;
use undchain_sim::node_key;
use undchain_types::msg::VoteKind;
use undchain_types::{Hash32, Message};

#[test]
fn a_flood_before_the_next_height_cannot_push_its_honest_messages_out() {
    // Node 3 is behind: what the others send it is held back.
    let mut net = Net::new(4, &[]);
    net.stop_at = 2;
    net.holding[3] = true;
    net.start(0);
    net.run(1_000 * UNIT as i64);
    for i in 0..3 {
        assert_eq!(net.chains[i].len(), 2, "nodes 0-2 decide heights 0 and 1");
    }
    assert!(net.chains[3].is_empty());

    // The flood, all for height 1, before anything honest arrives.
    let from = node_key(70).public();
    let mut refused = (0, 0);
    for i in 0..300u32 {
        let mut v = vote(&net.ks[i as usize % 4], 1, i % 60, VoteKind::Prevote, None);
        v.signature.0[7] ^= 1;
        match net.inject(3, from, Message::Vote(v)) {
            Err(InputError::BadSignature { .. }) => refused.0 += 1,
            other => panic!("unsigned vote: {other:?}"),
        }
    }
    for s in 0..40 {
        let stranger = node_key(100 + s);
        for r in 0..10 {
            let v = vote(
                &stranger,
                1,
                r,
                VoteKind::Precommit,
                Some(Hash32([s as u8; 32])),
            );
            match net.inject(3, from, Message::Vote(v)) {
                Ok(()) => {}
                Err(InputError::QuotaFull { .. }) => refused.1 += 1,
                other => panic!("stranger's vote: {other:?}"),
            }
        }
    }
    // Node 0 turns Byzantine: 200 different signed votes of its own.
    for r in 0..50 {
        for (kind, tag) in [(VoteKind::Prevote, 1u8), (VoteKind::Precommit, 2)] {
            let v = vote(&net.ks[0], 1, r, kind, Some(Hash32([tag; 32])));
            let _ = net.inject(3, from, Message::Vote(v.clone()));
            let v = vote(&net.ks[0], 1, r, kind, None);
            let _ = net.inject(3, from, Message::Vote(v));
        }
    }
    assert_eq!(refused.0, 300, "unsigned votes take no space");
    assert_eq!(refused.1, 300, "30 strangers found no place");
    let (kept, _) = net.drivers[3].as_ref().unwrap().buffered();
    assert!(kept <= 12 * (10 + 1), "quotas bound the buffer: {kept}");

    // The held honest proposals and votes arrive, the next height's
    // first (the blocks node 3 asked for while stuck stay lost); then the
    // others go quiet (no re-sends, no blocks to serve).
    let mut held = std::mem::take(&mut net.held);
    held.retain(|(_, _, m)| matches!(m, Message::Proposal(_) | Message::Vote(_)));
    net.holding[3] = false;
    let (later, now): (Vec<_>, Vec<_>) = held.into_iter().partition(|(_, _, m)| height_of(m) == 1);
    for (to, from, msg) in later.into_iter().chain(now) {
        let _ = net.inject(to, from, msg);
    }
    for i in 0..3 {
        net.drivers[i] = None;
    }
    assert_eq!(
        net.decided(3),
        net.decided(1),
        "node 3 decides both heights from what it kept"
    );
}

fn height_of(m: &Message) -> u64 {
    match m {
        Message::Proposal(p) => p.proposal.height.0,
        Message::Vote(v) => v.vote.height.0,
        _ => u64::MAX,
    }
}
