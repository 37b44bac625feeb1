//! Helpers shared by the driver-level scenario tests: keys, headers,
//! signed proposals and votes, and output inspection.
#![allow(dead_code, unreachable_pub)]

use undchain_consensus::sim::node_key;
use undchain_consensus::{Driver, DriverConfig, Output, TimeoutConfig, ValidatorSet, Value};
use undchain_types::msg::{Proposal, Round, SignedProposal, SignedVote, Vote, VoteKind};
use undchain_types::{BlockHeader, BlockNumber, BlockTime, ChainId, Hash32, Message, SigningKey};

pub const CHAIN: ChainId = ChainId(7);
pub const UNIT: u64 = 1_000;

pub fn keys(n: usize) -> Vec<SigningKey> {
    (0..n).map(node_key).collect()
}

pub fn set_of(keys: &[SigningKey]) -> ValidatorSet {
    let ids: Vec<_> = keys.iter().map(|k| k.public()).collect();
    ValidatorSet::of_unknown(&ids).unwrap()
}

pub fn config() -> DriverConfig {
    let mut c = DriverConfig::new(CHAIN);
    c.timeouts = TimeoutConfig::for_delay(UNIT);
    c
}

pub fn driver(k: &SigningKey) -> Driver {
    Driver::new(config(), k.clone())
}

pub fn header(height: u64, tag: u8, set: &ValidatorSet) -> BlockHeader {
    BlockHeader {
        chain_id: CHAIN,
        epoch: 0,
        number: BlockNumber(height),
        time: BlockTime(height),
        parent: Hash32::ZERO,
        job_root: Hash32([tag; 32]),
        job_count: u64::from(tag),
        ledger_root: Hash32::ZERO,
        validator_set_hash: set.hash(),
        links: Default::default(),
        parent_signers: 0,
    }
}

pub fn value(h: &BlockHeader) -> Value {
    Value {
        header: h.clone(),
        parent_certificate: None,
    }
}

pub fn proposal(
    k: &SigningKey,
    round: Round,
    h: &BlockHeader,
    pol: Option<Round>,
) -> SignedProposal {
    Proposal {
        chain_id: CHAIN,
        height: h.number,
        round,
        pol_round: pol,
        header: h.clone(),
        proposer: k.public(),
        parent_certificate: None,
    }
    .sign(k)
}

pub fn vote(
    k: &SigningKey,
    height: u64,
    round: Round,
    kind: VoteKind,
    value: Option<Hash32>,
) -> SignedVote {
    Vote {
        chain_id: CHAIN,
        height: BlockNumber(height),
        round,
        kind,
        value,
        validator: k.public(),
    }
    .sign(k)
}

/// The votes a batch broadcasts.
pub fn broadcast_votes(out: &[Output]) -> Vec<SignedVote> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast(Message::Vote(v)) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

/// Every message the batch broadcasts that `me` signed comes after a
/// `Persist` that already holds it (persist before send).
pub fn assert_persist_before_send(out: &[Output], me: &SigningKey) {
    let me = me.public();
    let mut persisted: Vec<Message> = Vec::new();
    for o in out {
        match o {
            Output::Persist(s) => {
                persisted = s
                    .own_votes
                    .iter()
                    .cloned()
                    .map(Message::Vote)
                    .chain(s.own_proposal.clone().map(Message::Proposal))
                    .collect();
            }
            Output::Broadcast(m) => {
                let mine = match m {
                    Message::Vote(v) => v.vote.validator == me,
                    Message::Proposal(p) => p.proposal.proposer == me,
                    _ => false,
                };
                if mine {
                    assert!(
                        persisted.contains(m),
                        "broadcast of {m:?} before it was persisted"
                    );
                }
            }
            _ => {}
        }
    }
}
