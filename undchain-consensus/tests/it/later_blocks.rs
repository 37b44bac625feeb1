//! Issue 13, second hole: decided blocks for later heights used to be
//! stored unverified, one per height, last writer wins, so a bogus block
//! replaced the honest one. Now a later block is kept only with a
//! certificate that verifies, and the first one kept is never replaced.
//! The attack: a catching-up validator gets bogus blocks before and after
//! the honest ones; it decides the honest chain.

use crate::net::Net;
use crate::support::*;
use undchain_consensus::certificate::certificate_from_precommits;
use undchain_consensus::{CertificateError, InputError};
use undchain_sim::node_key;
use undchain_types::msg::{BlockResponse, CommittedBlock, VoteKind};
use undchain_types::{BlockNumber, BoundedVec, Message};

fn response(blocks: Vec<CommittedBlock>) -> Message {
    Message::BlockResponse(BlockResponse {
        tip: blocks.last().map_or(BlockNumber(0), |b| b.header.number),
        blocks: BoundedVec::truncating(blocks),
    })
}

/// `honest` with another header and a certificate signed by strangers for
/// it (what a Byzantine peer can make without the validators' keys).
fn bogus(honest: &CommittedBlock, tag: u8) -> CommittedBlock {
    let mut header = honest.header.clone();
    header.job_root.0[0] ^= tag;
    let n = header.number.0;
    let votes: Vec<_> = (0..3)
        .map(|s| {
            vote(
                &node_key(200 + s),
                n,
                0,
                VoteKind::Precommit,
                Some(header.hash()),
            )
        })
        .collect();
    let certificate = certificate_from_precommits(CHAIN, header.number, 0, header.hash(), &votes);
    CommittedBlock {
        header,
        certificate,
    }
}

#[test]
fn bogus_later_blocks_are_refused_and_never_replace_the_honest_ones() {
    // Nodes 0-2 decide three heights; node 3 was away.
    let mut net = Net::new(4, &[3]);
    net.stop_at = 3;
    net.start(0);
    net.run(1_000 * UNIT as i64);
    let honest = net.chains[0].clone();
    assert_eq!(honest.len(), 3);
    net.drivers[3] = Some(driver(&net.ks[3]));
    net.stop_at = 3;
    let set = set_of(&net.ks);
    net.drivers[3]
        .as_mut()
        .unwrap()
        .start_height(at(net.now), BlockNumber(0), set);
    net.carry_out(3);
    let peer = net.ks[1].public();

    // Bogus blocks first: nothing decided or kept.
    let r = net.inject(
        3,
        peer,
        response(vec![bogus(&honest[1], 1), bogus(&honest[2], 1)]),
    );
    assert!(
        matches!(
            r,
            Err(InputError::Certificate(CertificateError::NotInSet { .. }))
        ),
        "{r:?}"
    );
    assert_eq!(net.drivers[3].as_ref().unwrap().buffered().1, 0);
    // The honest later blocks are kept; a bogus one after them changes
    // nothing (and a forged signature in an honest-looking one neither).
    net.inject(3, peer, response(honest[1..].to_vec())).unwrap();
    assert_eq!(net.drivers[3].as_ref().unwrap().buffered().1, 2);
    let mut forged = honest[1].clone();
    forged.header.job_root.0[1] ^= 2;
    forged.certificate.block_hash = forged.header.hash();
    let r = net.inject(3, peer, response(vec![forged, bogus(&honest[2], 3)]));
    assert!(
        r.is_ok() || matches!(r, Err(InputError::Certificate(_))),
        "{r:?}"
    );
    assert_eq!(net.drivers[3].as_ref().unwrap().buffered().1, 2);
    assert!(net.chains[3].is_empty());
    // The block of height 0 arrives: node 3 decides it, then the kept ones.
    net.inject(3, peer, response(honest[..1].to_vec())).unwrap();
    assert_eq!(
        net.decided(3),
        net.decided(0),
        "node 3 decides the honest chain"
    );
}
