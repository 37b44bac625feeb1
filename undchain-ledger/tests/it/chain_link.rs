//! Chain link scenarios (design notes, validator story item 8; DESIGN.md
//! "Chain link"): a header carries the latest known block of up to two
//! co-chains; a silent co-chain never stalls this chain, and its hash is
//! included once it arrives.

use crate::support::*;
use undchain_ledger::links::{ChainLinkError, ChainLinks};
use undchain_types::msg::ChainLink;
use undchain_types::{
    BlockHeader, BlockNumber, BlockTime, ChainId, Hash32, HashAlgorithm, LinkRef,
};

const X: ChainId = ChainId(1);
const Y: ChainId = ChainId(2);
const Z: ChainId = ChainId(3);

fn co_hash(chain: ChainId, block: u64) -> Hash32 {
    let mut h = [0u8; 32];
    h[..4].copy_from_slice(&chain.0.to_le_bytes());
    h[4..12].copy_from_slice(&block.to_le_bytes());
    Hash32(h)
}

/// Produces X's block `n` from what it knows right now: the header never
/// waits for a co-chain.
fn produce(
    links: &mut ChainLinks,
    ledger: &mut undchain_ledger::Ledger,
    parent: Hash32,
    n: u64,
) -> BlockHeader {
    let out = empty(ledger);
    let header = BlockHeader {
        chain_id: X,
        epoch: 0,
        number: BlockNumber(n),
        time: BlockTime(n * 2_000_000),
        parent,
        job_root: Hash32::ZERO,
        job_count: 0,
        ops_root: Hash32::ZERO,
        ops_count: 0,
        ledger_root: out.ledger_root,
        validator_set_hash: Hash32::ZERO,
        links: links.header_links(),
        parent_signers: 0,
        evidence: Default::default(),
    };
    // Every validator's check of the proposal passes whatever links it
    // lacks, and committing records the anchors.
    links.check_header(header.links.as_slice()).unwrap();
    links.handle_committed(&header);
    header
}

#[test]
fn chain_link_silent_linked_chain_never_stalls_block_production() {
    let mut links = ChainLinks::new(X, &[Y, Z]).unwrap();
    let mut ledger = ledger_on(X, HashAlgorithm::Blake3, &[]);
    let mut parent = Hash32::ZERO;
    let mut headers = Vec::new();
    for n in 0..20u64 {
        // Y reports every block; Z is silent until block 12.
        links
            .handle_link(&ChainLink {
                chain: Y,
                block: BlockNumber(n),
                block_hash: co_hash(Y, n),
            })
            .unwrap();
        if n >= 12 {
            links
                .handle_link(&ChainLink {
                    chain: Z,
                    block: BlockNumber(n - 2),
                    block_hash: co_hash(Z, n - 2),
                })
                .unwrap();
        }
        let h = produce(&mut links, &mut ledger, parent, n);
        parent = h.hash();
        headers.push(h);
        // X tells its co-chains about its own block.
        let out = links.outgoing(BlockNumber(n), parent);
        assert_eq!(out.iter().map(|(c, _)| *c).collect::<Vec<_>>(), vec![Y, Z]);
        assert!(
            out.iter()
                .all(|(_, m)| m.chain == X && m.block_hash == parent)
        );
    }
    // All 20 blocks were produced, one per step.
    assert_eq!(headers.len(), 20);
    assert_eq!(ledger.next_block(), BlockNumber(20));
    for (n, h) in headers.iter().enumerate() {
        let n = n as u64;
        let expect_y = LinkRef {
            chain: Y,
            block: BlockNumber(n),
            hash: co_hash(Y, n),
        };
        if n < 12 {
            assert_eq!(
                h.links.as_slice(),
                &[expect_y],
                "block {n}: only Y is known"
            );
        } else {
            let expect_z = LinkRef {
                chain: Z,
                block: BlockNumber(n - 2),
                hash: co_hash(Z, n - 2),
            };
            assert_eq!(
                h.links.as_slice(),
                &[expect_y, expect_z],
                "block {n}: Z included"
            );
        }
    }
    assert_eq!(links.anchored(&Z).map(|r| r.block), Some(BlockNumber(17)));
}

#[test]
fn chain_link_proposal_checks_refuse_only_bad_links() {
    let mut links = ChainLinks::new(X, &[Y, Z]).unwrap();
    // No links at all: fine.
    links.check_header(&[]).unwrap();
    let y5 = LinkRef {
        chain: Y,
        block: BlockNumber(5),
        hash: co_hash(Y, 5),
    };
    // A link this validator has not heard of yet: fine.
    links.check_header(std::slice::from_ref(&y5)).unwrap();
    let w = LinkRef {
        chain: ChainId(9),
        block: BlockNumber(1),
        hash: Hash32::ZERO,
    };
    assert_eq!(
        links.check_header(&[w]),
        Err(ChainLinkError::NotLinked { chain: ChainId(9) })
    );
    assert_eq!(
        links.check_header(&[y5.clone(), y5.clone()]),
        Err(ChainLinkError::Duplicate { chain: Y })
    );
    // Once anchored, going back or rewriting the block is refused.
    let header = BlockHeader {
        chain_id: X,
        epoch: 0,
        number: BlockNumber(0),
        time: BlockTime(0),
        parent: Hash32::ZERO,
        job_root: Hash32::ZERO,
        job_count: 0,
        ops_root: Hash32::ZERO,
        ops_count: 0,
        ledger_root: Hash32::ZERO,
        validator_set_hash: Hash32::ZERO,
        links: undchain_types::BoundedVec::try_from_vec(vec![y5.clone()]).unwrap(),
        parent_signers: 0,
        evidence: Default::default(),
    };
    links.handle_committed(&header);
    let y4 = LinkRef {
        chain: Y,
        block: BlockNumber(4),
        hash: co_hash(Y, 4),
    };
    assert!(matches!(
        links.check_header(&[y4]),
        Err(ChainLinkError::Stale { .. })
    ));
    let y5_other = LinkRef {
        hash: Hash32([1; 32]),
        ..y5.clone()
    };
    assert!(matches!(
        links.check_header(&[y5_other]),
        Err(ChainLinkError::Conflict { .. })
    ));
    // Messages: stale and conflicting ones are refused, repeats ignored.
    let m = |b: u64, h: Hash32| ChainLink {
        chain: Y,
        block: BlockNumber(b),
        block_hash: h,
    };
    assert_eq!(links.handle_link(&m(5, co_hash(Y, 5))), Ok(false));
    assert!(matches!(
        links.handle_link(&m(5, Hash32([2; 32]))),
        Err(ChainLinkError::Conflict { .. })
    ));
    assert!(matches!(
        links.handle_link(&m(3, co_hash(Y, 3))),
        Err(ChainLinkError::Stale { .. })
    ));
    assert_eq!(links.handle_link(&m(6, co_hash(Y, 6))), Ok(true));
    assert_eq!(
        links.handle_link(&ChainLink {
            chain: ChainId(9),
            block: BlockNumber(1),
            block_hash: Hash32::ZERO
        }),
        Err(ChainLinkError::NotLinked { chain: ChainId(9) })
    );
}

#[test]
fn chain_link_configuration_is_checked() {
    assert_eq!(
        ChainLinks::new(X, &[Y, Z, ChainId(4)]).unwrap_err(),
        ChainLinkError::TooMany { count: 3 }
    );
    assert_eq!(
        ChainLinks::new(X, &[X]).unwrap_err(),
        ChainLinkError::SelfLink { chain: X }
    );
    assert_eq!(
        ChainLinks::new(X, &[Y, Y]).unwrap_err(),
        ChainLinkError::Duplicate { chain: Y }
    );
    assert!(ChainLinks::new(X, &[]).unwrap().header_links().is_empty());
}
