//! Issue 13, third hole: validity used to be cached by header hash while
//! `valid(v)` also checks the parent certificate, which the hash does not
//! cover. The attack: the Byzantine proposer of a later round sends the
//! honest header with a bad parent certificate and it arrives first; the
//! victim used to vote nil on the honest proposal for the whole height.
//! Now validity is decided on the whole value, and the victim prevotes the
//! honest proposal.

use crate::net::Net;
use crate::support::*;
use undchain_types::BoundedVec;
use undchain_types::Message;

#[test]
fn an_honest_header_with_a_bad_parent_certificate_does_not_spoil_the_honest_proposal() {
    let mut net = Net::new(4, &[]);
    net.stop_at = 1;
    net.start(0);
    net.run(1_000 * UNIT as i64);
    assert!(net.chains.iter().all(|c| c.len() == 1));

    // Height 1: node 1 proposes in round 0, node 2 in round 1. Node 3's
    // deliveries are held until node 2's round-1 proposal is in.
    net.stop_at = 2;
    net.holding[3] = true;
    net.start(1);
    let honest = net.value_for(1, 1, 1);
    let round0 = net
        .held
        .iter()
        .find_map(|(_, _, m)| match m {
            Message::Proposal(p) if p.proposal.round == 0 => Some(p.proposal.header.clone()),
            _ => None,
        })
        .expect("node 1 proposed");
    assert_eq!(round0, honest.header);
    let mut bad = honest.clone();
    let cert = bad.parent_certificate.as_mut().unwrap();
    let mut sigs = cert.signatures.clone().into_vec();
    sigs.truncate(2);
    cert.signatures = BoundedVec::truncating(sigs);
    let attack = net.propose(2, 1, &bad);
    let byz = net.ks[2].public();
    net.inject(3, byz, Message::Proposal(attack)).unwrap();

    net.holding[3] = false;
    for (to, from, msg) in std::mem::take(&mut net.held) {
        net.send(to, from, msg);
    }
    net.run(2_000 * UNIT as i64);
    let id = honest.header.hash();
    assert_eq!(
        net.prevotes_of(3, 1, 0),
        vec![Some(id)],
        "the victim prevotes the honest proposal"
    );
    for i in 0..4 {
        assert_eq!(net.chains[i][1].header.hash(), id, "node {i}");
        assert_eq!(net.chains[i][1].certificate.round, 0, "decided in round 0");
    }
}
