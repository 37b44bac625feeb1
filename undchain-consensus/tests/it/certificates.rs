//! Commit certificates: q precommit signatures, verifiable by anyone who
//! knows the height's validator set; duplicate, unknown or previous-set
//! signers, bad signatures and insufficient weight are refused (issue 5).

use crate::support::*;
use undchain_consensus::certificate::certificate_from_precommits;
use undchain_consensus::{
    CertificateError, ParentCommitError, StrictVerifier, ValidatorSet, check_parent_commit,
    verify_certificate, verify_committed_block,
};
use undchain_sim::node_key;
use undchain_types::msg::{CommitCertificate, CommitSignature, CommittedBlock, VoteKind};
use undchain_types::{BlockNumber, BoundedVec, ChainId, HashAlgorithm, SigningKey};

/// n = 6: q = 5 (2f+1 would be 3).
fn six() -> (Vec<SigningKey>, ValidatorSet) {
    let ks = keys(6);
    let set = set_of(&ks);
    (ks, set)
}

fn cert(signers: &[&SigningKey], set: &ValidatorSet) -> CommitCertificate {
    let h = header(4, 1, set);
    let votes: Vec<_> = signers
        .iter()
        .map(|k| vote(k, 4, 2, VoteKind::Precommit, Some(h.hash())))
        .collect();
    certificate_from_precommits(CHAIN, BlockNumber(4), 2, h.hash(), &votes)
}

#[test]
fn quorum_of_distinct_members_verifies() {
    let (ks, set) = six();
    let c = cert(&[&ks[0], &ks[1], &ks[2], &ks[4], &ks[5]], &set);
    assert_eq!(c.signatures.len(), 5);
    verify_certificate(&c, CHAIN, BlockNumber(4), &set, StrictVerifier).unwrap();
    let block = CommittedBlock {
        header: header(4, 1, &set),
        certificate: c,
    };
    verify_committed_block(
        &block,
        CHAIN,
        BlockNumber(4),
        &set,
        HashAlgorithm::Blake3,
        StrictVerifier,
    )
    .unwrap();
}

#[test]
fn a_certificate_for_another_chain_or_height_is_refused() {
    let (ks, set) = six();
    let c = cert(&[&ks[0], &ks[1], &ks[2], &ks[4], &ks[5]], &set);
    assert_eq!(
        verify_certificate(&c, ChainId(99), BlockNumber(4), &set, StrictVerifier),
        Err(CertificateError::WrongChain {
            expected: ChainId(99),
            got: CHAIN
        })
    );
    assert_eq!(
        verify_certificate(&c, CHAIN, BlockNumber(5), &set, StrictVerifier),
        Err(CertificateError::WrongHeight {
            expected: BlockNumber(5),
            got: BlockNumber(4)
        })
    );
}

#[test]
fn insufficient_weight_is_refused_even_at_2f_plus_1() {
    let (ks, set) = six();
    let c = cert(&[&ks[0], &ks[1], &ks[2], &ks[3]], &set);
    assert_eq!(
        verify_certificate(&c, CHAIN, BlockNumber(4), &set, StrictVerifier),
        Err(CertificateError::InsufficientWeight {
            signers: 4,
            quorum: 5
        })
    );
    let c = cert(&[&ks[0], &ks[1], &ks[2]], &set);
    assert!(matches!(
        verify_certificate(&c, CHAIN, BlockNumber(4), &set, StrictVerifier),
        Err(CertificateError::InsufficientWeight {
            signers: 3,
            quorum: 5
        })
    ));
}

#[test]
fn duplicate_signer_is_refused() {
    let (ks, set) = six();
    let mut c = cert(&[&ks[0], &ks[1], &ks[2], &ks[3]], &set);
    let dup = c.signatures[0].clone();
    let mut sigs = c.signatures.clone().into_vec();
    sigs.push(dup.clone());
    c.signatures = BoundedVec::try_from_vec(sigs).unwrap();
    assert_eq!(
        verify_certificate(&c, CHAIN, BlockNumber(4), &set, StrictVerifier),
        Err(CertificateError::DuplicateSigner {
            validator: dup.validator
        })
    );
}

#[test]
fn unknown_signer_is_refused() {
    let (ks, set) = six();
    let stranger = node_key(99);
    let c = cert(&[&ks[0], &ks[1], &ks[2], &ks[3], &stranger], &set);
    assert_eq!(
        verify_certificate(&c, CHAIN, BlockNumber(4), &set, StrictVerifier),
        Err(CertificateError::NotInSet {
            validator: stranger.public()
        })
    );
}

#[test]
fn previous_set_signer_is_refused() {
    // The set rotated: ks[5] left, ks[6] took its seat.
    let ks = keys(7);
    let previous = set_of(&ks[..6]);
    let current = set_of(&[&ks[..5], &ks[6..]].concat());
    let c = cert(&[&ks[0], &ks[1], &ks[2], &ks[3], &ks[5]], &previous);
    verify_certificate(&c, CHAIN, BlockNumber(4), &previous, StrictVerifier).unwrap();
    assert_eq!(
        verify_certificate(&c, CHAIN, BlockNumber(4), &current, StrictVerifier),
        Err(CertificateError::NotInSet {
            validator: ks[5].public()
        })
    );
}

#[test]
fn forged_signature_is_refused() {
    let (ks, set) = six();
    let mut c = cert(&[&ks[0], &ks[1], &ks[2], &ks[3], &ks[4]], &set);
    // ks[4]'s slot carries ks[0]'s signature.
    let mut sigs = c.signatures.clone().into_vec();
    let victim = sigs
        .iter()
        .position(|s| s.validator == ks[4].public())
        .unwrap();
    let other = sigs
        .iter()
        .position(|s| s.validator == ks[0].public())
        .unwrap();
    sigs[victim] = CommitSignature {
        validator: ks[4].public(),
        signature: sigs[other].signature,
    };
    c.signatures = BoundedVec::try_from_vec(sigs).unwrap();
    assert_eq!(
        verify_certificate(&c, CHAIN, BlockNumber(4), &set, StrictVerifier),
        Err(CertificateError::BadSignature {
            validator: ks[4].public()
        })
    );
}

#[test]
fn certificate_for_another_block_height_or_chain_is_refused() {
    let (ks, set) = six();
    let c = cert(&[&ks[0], &ks[1], &ks[2], &ks[3], &ks[4]], &set);
    let other = header(4, 2, &set);
    let block = CommittedBlock {
        header: other.clone(),
        certificate: c.clone(),
    };
    assert!(matches!(
        verify_committed_block(
            &block,
            CHAIN,
            BlockNumber(4),
            &set,
            HashAlgorithm::Blake3,
            StrictVerifier
        ),
        Err(CertificateError::WrongBlock { .. })
    ));
    let block = CommittedBlock {
        header: header(4, 1, &set),
        certificate: c,
    };
    assert!(matches!(
        verify_committed_block(
            &block,
            CHAIN,
            BlockNumber(5),
            &set,
            HashAlgorithm::Blake3,
            StrictVerifier
        ),
        Err(CertificateError::WrongHeight { .. })
    ));
    assert!(matches!(
        verify_committed_block(
            &block,
            ChainId(8),
            BlockNumber(4),
            &set,
            HashAlgorithm::Blake3,
            StrictVerifier
        ),
        Err(CertificateError::WrongChain { .. })
    ));
}

#[test]
fn parent_signers_must_match_the_carried_certificate() {
    let (ks, set) = six();
    let c = cert(&[&ks[0], &ks[1], &ks[2], &ks[4], &ks[5]], &set);
    let mut child = header(5, 3, &set);
    child.parent = c.block_hash;
    child.parent_signers = set.bitmap(c.signatures.iter().map(|s| &s.validator));
    assert_eq!(child.parent_signers, 0b110111);
    check_parent_commit(&child, Some(&c), Some(&set), StrictVerifier).unwrap();
    // A proposer claiming a signer it has no signature for is caught.
    let mut lying = child.clone();
    lying.parent_signers |= 1 << 3;
    assert_eq!(
        check_parent_commit(&lying, Some(&c), Some(&set), StrictVerifier),
        Err(ParentCommitError::SignerMismatch {
            header: 0b111111,
            certificate: 0b110111
        })
    );
    assert_eq!(
        check_parent_commit(&child, None, Some(&set), StrictVerifier),
        Err(ParentCommitError::Missing {
            height: BlockNumber(5)
        })
    );
    let mut genesis_child = header(0, 1, &set);
    genesis_child.parent_signers = 1;
    assert_eq!(
        check_parent_commit(&genesis_child, None, None, StrictVerifier),
        Err(ParentCommitError::Unexpected)
    );
    // Too few signers behind the parent.
    let thin = cert(&[&ks[0], &ks[1], &ks[2], &ks[4]], &set);
    let mut thin_child = child.clone();
    thin_child.parent_signers = set.bitmap(thin.signatures.iter().map(|s| &s.validator));
    assert!(matches!(
        check_parent_commit(&thin_child, Some(&thin), Some(&set), StrictVerifier),
        Err(ParentCommitError::Certificate(
            CertificateError::InsufficientWeight { .. }
        ))
    ));
}

#[test]
fn every_simulated_decision_carries_a_verifying_certificate() {
    use undchain_consensus::sim::{SimConfig, Simulation, Violation};
    for seed in 0..10 {
        let report = Simulation::new(SimConfig::drawn(5, 1, seed)).run();
        assert!(
            !report
                .safety_violations
                .iter()
                .any(|v| matches!(v, Violation::Certificate { .. })),
            "{}",
            report.reproduce_hint()
        );
        assert!(report.heights_decided > 0);
    }
}
