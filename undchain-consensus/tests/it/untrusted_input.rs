//! Untrusted input: whatever a peer sends, the driver never panics, and
//! every refusal is a typed error saying what was wrong (STYLE.md "Errors
//! and faults are data").

use crate::support::*;
use proptest::prelude::*;
use undchain_consensus::certificate::certificate_from_precommits;
use undchain_consensus::{CertificateError, InputError, Output};
use undchain_sim::node_key;
use undchain_types::msg::{BlockResponse, CommittedBlock, Hello, VoteKind};
use undchain_types::{BlockNumber, BoundedVec, ChainId, Message, Role};

fn started(k: usize) -> (Vec<undchain_types::SigningKey>, undchain_consensus::Driver) {
    let ks = keys(4);
    let mut d = driver(&ks[k]);
    d.start_height(at(0), BlockNumber(3), set_of(&ks));
    take(&mut d);
    (ks, d)
}

#[test]
fn each_refusal_names_what_was_wrong() {
    let (ks, mut d) = started(1);
    let set = set_of(&ks);
    let from = ks[0].public();

    let mut bad = vote(&ks[2], 3, 0, VoteKind::Prevote, None);
    bad.signature.0[5] ^= 1;
    assert_eq!(
        d.handle_message(at(1), from, Message::Vote(bad)),
        Err(InputError::BadSignature {
            signer: ks[2].public()
        })
    );

    let stranger = node_key(40);
    assert!(matches!(
        d.handle_message(
            at(1),
            from,
            Message::Vote(vote(&stranger, 3, 0, VoteKind::Prevote, None))
        ),
        Err(InputError::NotInSet { .. })
    ));

    let h = header(3, 1, &set);
    assert!(matches!(
        d.handle_message(
            at(1),
            from,
            Message::Proposal(proposal(&ks[2], 0, &h, None))
        ),
        Err(InputError::NotProposer { .. })
    ));

    let mut wrong_height = h.clone();
    wrong_height.number = BlockNumber(9);
    let mut p = proposal(&ks[3], 0, &wrong_height, None);
    p.proposal.height = BlockNumber(3);
    assert!(matches!(
        d.handle_message(at(1), from, Message::Proposal(p)),
        Err(InputError::HeaderMismatch { .. })
    ));

    assert!(matches!(
        d.handle_message(
            at(1),
            from,
            Message::Vote(vote(&ks[2], 3, 1_000, VoteKind::Prevote, None))
        ),
        Err(InputError::RoundTooFar { round: 1_000, .. })
    ));

    let mut other_chain = vote(&ks[2], 3, 0, VoteKind::Prevote, None);
    other_chain.vote.chain_id = ChainId(99);
    assert!(matches!(
        d.handle_message(at(1), from, Message::Vote(other_chain)),
        Err(InputError::WrongChain { .. })
    ));

    assert!(matches!(
        d.handle_message(
            at(1),
            from,
            Message::Hello(Hello {
                role: Role::Client,
                nonce: 1
            })
        ),
        Err(InputError::NotAgreement { .. })
    ));

    // A decided block whose certificate has too few signers.
    let votes: Vec<_> = [&ks[0], &ks[2]]
        .iter()
        .map(|k| vote(k, 3, 0, VoteKind::Precommit, Some(h.hash())))
        .collect();
    let cert = certificate_from_precommits(CHAIN, BlockNumber(3), 0, h.hash(), &votes);
    let resp = BlockResponse {
        blocks: BoundedVec::try_from_vec(vec![CommittedBlock {
            header: h.clone(),
            certificate: cert,
        }])
        .unwrap(),
        tip: BlockNumber(3),
    };
    assert_eq!(
        d.handle_message(at(1), from, Message::BlockResponse(resp)),
        Err(InputError::Certificate(
            CertificateError::InsufficientWeight {
                signers: 2,
                quorum: 3
            }
        ))
    );
    assert_eq!(d.state().height, BlockNumber(3), "nothing decided");

    // Stale heights are ignored quietly; nothing to refuse.
    assert_eq!(
        d.handle_message(
            at(1),
            from,
            Message::Vote(vote(&ks[2], 1, 0, VoteKind::Prevote, None))
        ),
        Ok(())
    );
}

#[test]
fn a_good_block_response_decides() {
    let (ks, mut d) = started(1);
    let set = set_of(&ks);
    let h = header(3, 1, &set);
    let votes: Vec<_> = [&ks[0], &ks[2], &ks[3]]
        .iter()
        .map(|k| vote(k, 3, 0, VoteKind::Precommit, Some(h.hash())))
        .collect();
    let cert = certificate_from_precommits(CHAIN, BlockNumber(3), 0, h.hash(), &votes);
    let block = CommittedBlock {
        header: h,
        certificate: cert,
    };
    let resp = BlockResponse {
        blocks: BoundedVec::try_from_vec(vec![block.clone()]).unwrap(),
        tip: BlockNumber(3),
    };
    d.handle_message(at(1), ks[0].public(), Message::BlockResponse(resp))
        .unwrap();
    assert_eq!(
        take(&mut d).outputs(),
        vec![Output::Decide(Box::new(block))]
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Arbitrary messages never panic the driver.
    #[test]
    fn arbitrary_messages_never_panic(msgs in proptest::collection::vec(any::<Message>(), 1..4)) {
        let (ks, mut d) = started(2);
        for m in msgs {
            let _ = d.handle_message(at(5), ks[0].public(), m);
            take(&mut d);
        }
        prop_assert_eq!(d.state().height, BlockNumber(3));
    }

    /// Well-formed but hostile votes and proposals from members (any
    /// height, round, value, kind) never panic and never decide without q
    /// honest-looking precommits.
    #[test]
    fn hostile_members_never_panic(
        items in proptest::collection::vec((0usize..4, 0u64..6, 0u32..80, any::<bool>(), any::<Option<u8>>(), any::<bool>()), 1..40)
    ) {
        let (ks, mut d) = started(1);
        let set = set_of(&ks);
        for (who, height, round, precommit, value, as_proposal) in items {
            let k = &ks[who];
            let msg = if as_proposal {
                let h = header(height, value.unwrap_or(0), &set);
                Message::Proposal(proposal(k, round, &h, value.map(|v| u32::from(v) % 4)))
            } else {
                let kind = if precommit { VoteKind::Precommit } else { VoteKind::Prevote };
                let v = value.map(|t| header(height, t, &set).hash());
                Message::Vote(vote(k, height, round, kind, v))
            };
            if d.handle_message(at(7), k.public(), msg).is_ok() {
                for o in take(&mut d).outputs() {
                    if let Output::Decide(b) = o {
                        prop_assert!(b.certificate.signatures.len() >= 3);
                    }
                }
            }
        }
    }
}
