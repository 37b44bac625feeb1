//! Domain link scenarios (design notes, validator story item 9; DESIGN.md
//! "Domain link"): a transfer locked on the source is credited on the
//! target exactly once, only with a valid certificate of a registered
//! domain and a valid inclusion proof; an expired one is refunded.

use crate::support::*;
use undchain_consensus::CertificateError;
use undchain_ledger::ledger::{Applied, ChainEvent, Ledger, LedgerError, LedgerOp};
use undchain_ledger::ledger::{InboundState, LeafKey, OutboundState};
use undchain_ledger::links::DomainLinkError;
use undchain_types::msg::{
    CommitSignature, DomainProofKind, DomainTransfer, DomainTransferProof, DomainTransferTerms,
};
use undchain_types::{
    BlockNumber, BoundedVec, ChainId, HashAlgorithm, Signature, SigningKey, TokenAmount,
};

const A: ChainId = ChainId(1);
const B: ChainId = ChainId(2);
const PAYER: u64 = 1;
const PAYEE: u64 = 2;

struct World {
    a: Ledger,
    b: Ledger,
    a_keys: Vec<SigningKey>,
    b_keys: Vec<SigningKey>,
}

/// Two domains, each registered on the other; source A uses blake3, target
/// B uses SHA-256 (proofs are checked under the other domain's algorithm).
fn world() -> World {
    let a_keys = validator_keys(1_000, 4);
    let b_keys = validator_keys(2_000, 4);
    let mut a = ledger_on(A, HashAlgorithm::Blake3, &[(PAYER, 1_000)]);
    let mut b = ledger_on(B, HashAlgorithm::Sha256, &[]);
    apply_events(
        &mut a,
        0,
        &[ChainEvent::RegisterDomain {
            chain: B,
            algorithm: HashAlgorithm::Sha256,
            from: BlockNumber(0),
            set: set_of(&b_keys),
        }],
    );
    apply_events(
        &mut b,
        0,
        &[ChainEvent::RegisterDomain {
            chain: A,
            algorithm: HashAlgorithm::Blake3,
            from: BlockNumber(0),
            set: set_of(&a_keys),
        }],
    );
    World {
        a,
        b,
        a_keys,
        b_keys,
    }
}

fn transfer(amount: u64, expires_at: u64, nonce: u64) -> DomainTransfer {
    DomainTransferTerms {
        source: A,
        target: B,
        nonce,
        from: pk(PAYER),
        to: pk(PAYEE),
        amount: TokenAmount(amount),
        expires_at: BlockNumber(expires_at),
    }
    .sign(&sk(PAYER))
}

/// Locks `t` on A in the next block; returns the credit proof for B, signed
/// by the first `signers` of A's validators.
fn lock_and_prove(w: &mut World, t: &DomainTransfer, signers: usize) -> DomainTransferProof {
    let lock = w.a.verify(LedgerOp::DomainLock(t.clone())).unwrap();
    let n = w.a.next_block().0;
    let out = apply(&mut w.a, n, vec![], &[lock], &[]);
    assert_eq!(out.applied, vec![Applied::Locked { id: t.id() }]);
    let proof = w.a.prove(&LeafKey::Outbound(t.id())).unwrap();
    let (header, certificate) = committed_header(
        A,
        n,
        w.a.root(),
        &w.a_keys,
        &w.a_keys[..signers],
        HashAlgorithm::Blake3,
    );
    DomainTransferProof {
        transfer: t.clone(),
        kind: DomainProofKind::Credit { proof },
        header,
        certificate,
    }
}

fn submit(l: &mut Ledger, p: DomainTransferProof) -> Result<Applied, LedgerError> {
    let v = l.verify(LedgerOp::DomainProof(Box::new(p)))?;
    let n = l.next_block().0;
    let mut out = apply(l, n, vec![], &[v], &[]);
    match out.refused.pop() {
        Some(r) => Err(r.error),
        None => Ok(out.applied.remove(0)),
    }
}

#[test]
fn domain_link_credits_once_and_conserves_across_domains() {
    let mut w = world();
    let t = transfer(100, 50, 0);
    let p = lock_and_prove(&mut w, &t, 3);
    assert_eq!(w.a.account(&pk(PAYER)).balance, TokenAmount(900));
    assert_eq!(w.a.account(&pk(PAYER)).nonce, 1);
    assert_eq!(
        submit(&mut w.b, p.clone()),
        Ok(Applied::Credited { id: t.id() })
    );
    assert_eq!(w.b.account(&pk(PAYEE)).balance, TokenAmount(100));
    assert_eq!(w.b.inbound(&t.id()), Some(InboundState::Credited));
    // Supply left A and entered B: the pair together still holds 1000.
    assert_eq!(w.a.supply().exported, 100);
    assert_eq!(w.b.supply().imported, 100);
    assert_eq!(w.a.total_held() + w.b.total_held(), 1_000);
    assert_conserved(&w.a);
    assert_conserved(&w.b);
}

#[test]
fn domain_link_replayed_proof_is_refused() {
    let mut w = world();
    let t = transfer(100, 50, 0);
    let p = lock_and_prove(&mut w, &t, 3);
    submit(&mut w.b, p.clone()).unwrap();
    let before = w.b.clone();
    // The same proof again (any relayer may replay it): refused, no change.
    let err = submit(&mut w.b, p).unwrap_err();
    assert_eq!(
        err,
        LedgerError::Domain(DomainLinkError::AlreadyCredited { id: t.id() })
    );
    assert_eq!(w.b.account(&pk(PAYEE)), before.account(&pk(PAYEE)));
    // A replayed lock on the source is refused too (nonce, then id).
    let again = w.a.verify(LedgerOp::DomainLock(t.clone())).unwrap();
    assert!(matches!(
        w.a.check(&again),
        Err(LedgerError::Domain(DomainLinkError::AlreadyLocked { .. }))
    ));
}

#[test]
fn domain_link_forged_certificate_is_refused() {
    let mut w = world();
    let t = transfer(100, 50, 0);
    let honest = lock_and_prove(&mut w, &t, 3);

    // Signed by keys that are not A's validators.
    let mut p = honest.clone();
    let outsiders = validator_keys(9_000, 4);
    let (_, forged) = committed_header(
        A,
        p.header.number.0,
        p.header.ledger_root,
        &w.a_keys,
        &outsiders,
        HashAlgorithm::Blake3,
    );
    p.certificate = forged;
    assert!(matches!(
        w.b.verify(LedgerOp::DomainProof(Box::new(p))),
        Err(LedgerError::Domain(DomainLinkError::Certificate(
            CertificateError::NotInSet { .. }
        )))
    ));

    // Right signers, garbage signatures.
    let mut p = honest.clone();
    let sigs: Vec<CommitSignature> = p
        .certificate
        .signatures
        .iter()
        .map(|s| CommitSignature {
            validator: s.validator,
            signature: Signature([3; 64]),
        })
        .collect();
    p.certificate.signatures = BoundedVec::try_from_vec(sigs).unwrap();
    assert!(matches!(
        w.b.verify(LedgerOp::DomainProof(Box::new(p))),
        Err(LedgerError::Domain(DomainLinkError::Certificate(
            CertificateError::BadSignature { .. }
        )))
    ));

    // A certificate of another header (the forger rewrote the ledger root to
    // prove a lock that never happened).
    let mut p = honest.clone();
    p.header.ledger_root = undchain_types::Hash32([9; 32]);
    assert!(matches!(
        w.b.verify(LedgerOp::DomainProof(Box::new(p))),
        Err(LedgerError::Domain(DomainLinkError::CertificateMismatch(
            CertificateError::WrongBlock { .. }
        )))
    ));

    // A valid certificate, but the proof claims more tokens than locked.
    let mut p = honest;
    p.transfer.terms.amount = TokenAmount(1_000_000);
    assert!(matches!(
        w.b.verify(LedgerOp::DomainProof(Box::new(p))),
        Err(LedgerError::Domain(
            DomainLinkError::BadInclusionProof { .. }
        ))
    ));
    assert_eq!(w.b.account(&pk(PAYEE)).balance, TokenAmount(0));
}

#[test]
fn domain_link_insufficient_signatures_are_refused() {
    let mut w = world();
    let t = transfer(100, 50, 0);
    // n = 4, q = 3: two signatures are not enough.
    let p = lock_and_prove(&mut w, &t, 2);
    assert_eq!(
        w.b.verify(LedgerOp::DomainProof(Box::new(p))).unwrap_err(),
        LedgerError::Domain(DomainLinkError::Certificate(
            CertificateError::InsufficientWeight {
                signers: 2,
                quorum: 3
            }
        ))
    );
}

#[test]
fn domain_link_proof_from_an_unknown_domain_is_refused() {
    let w = world();
    // Chain C is not registered on B.
    const C: ChainId = ChainId(3);
    let c_keys = validator_keys(3_000, 4);
    let mut c = ledger_on(C, HashAlgorithm::Blake3, &[(PAYER, 1_000)]);
    apply_events(
        &mut c,
        0,
        &[ChainEvent::RegisterDomain {
            chain: B,
            algorithm: HashAlgorithm::Sha256,
            from: BlockNumber(0),
            set: set_of(&w.b_keys),
        }],
    );
    let t = DomainTransferTerms {
        source: C,
        target: B,
        nonce: 0,
        from: pk(PAYER),
        to: pk(PAYEE),
        amount: TokenAmount(10),
        expires_at: BlockNumber(50),
    }
    .sign(&sk(PAYER));
    let lock = c.verify(LedgerOp::DomainLock(t.clone())).unwrap();
    apply(&mut c, 1, vec![], &[lock], &[]);
    let proof = c.prove(&LeafKey::Outbound(t.id())).unwrap();
    let (header, certificate) =
        committed_header(C, 1, c.root(), &c_keys, &c_keys, HashAlgorithm::Blake3);
    let p = DomainTransferProof {
        transfer: t,
        kind: DomainProofKind::Credit { proof },
        header,
        certificate,
    };
    assert_eq!(
        w.b.verify(LedgerOp::DomainProof(Box::new(p))).unwrap_err(),
        LedgerError::Domain(DomainLinkError::UnknownDomain { chain: C })
    );
    // A proof meant for another target is refused too.
    let mut w2 = world();
    let t = transfer(5, 50, 0);
    let p = lock_and_prove(&mut w2, &t, 4);
    assert!(matches!(
        w2.a.verify(LedgerOp::DomainProof(Box::new(p))),
        Err(LedgerError::Domain(DomainLinkError::NotForThisChain { .. }))
    ));
}

#[test]
fn domain_link_expired_transfer_is_refunded_and_never_credited() {
    let mut w = world();
    let t = transfer(100, 3, 0);
    let credit = lock_and_prove(&mut w, &t, 3);
    // Nobody relays the credit. A reaches block 4 > expires_at 3.
    empty_until(&mut w.a, 4, &[]);
    let (h4, c4) = committed_header(
        A,
        4,
        w.a.root(),
        &w.a_keys,
        &w.a_keys,
        HashAlgorithm::Blake3,
    );
    // Block 3 is not past the expiry.
    let (h3, c3) = committed_header(
        A,
        3,
        w.a.root(),
        &w.a_keys,
        &w.a_keys,
        HashAlgorithm::Blake3,
    );
    let early = DomainTransferProof {
        transfer: t.clone(),
        kind: DomainProofKind::Expire,
        header: h3,
        certificate: c3,
    };
    assert!(matches!(
        w.b.verify(LedgerOp::DomainProof(Box::new(early))),
        Err(LedgerError::Domain(DomainLinkError::NotExpired { .. }))
    ));
    let expire = DomainTransferProof {
        transfer: t.clone(),
        kind: DomainProofKind::Expire,
        header: h4,
        certificate: c4,
    };
    assert_eq!(
        submit(&mut w.b, expire),
        Ok(Applied::Expired { id: t.id() })
    );
    // The credit proof now arrives late: never credited.
    assert_eq!(
        submit(&mut w.b, credit).unwrap_err(),
        LedgerError::Domain(DomainLinkError::AlreadyExpired { id: t.id() })
    );
    assert_eq!(w.b.account(&pk(PAYEE)).balance, TokenAmount(0));
    // B's committed expiry record refunds the payer on A.
    let proof = w.b.prove(&LeafKey::Inbound(t.id())).unwrap();
    let bn = w.b.next_block().0 - 1;
    let (hb, cb) = committed_header(
        B,
        bn,
        w.b.root(),
        &w.b_keys,
        &w.b_keys,
        HashAlgorithm::Sha256,
    );
    let refund = DomainTransferProof {
        transfer: t.clone(),
        kind: DomainProofKind::Refund { proof },
        header: hb,
        certificate: cb,
    };
    assert_eq!(
        submit(&mut w.a, refund.clone()),
        Ok(Applied::Refunded { id: t.id() })
    );
    assert_eq!(w.a.account(&pk(PAYER)).balance, TokenAmount(1_000));
    assert_eq!(
        w.a.outbound(&t.id()).map(|(_, s)| *s),
        Some(OutboundState::Refunded)
    );
    // Refunded once only.
    assert_eq!(
        submit(&mut w.a, refund).unwrap_err(),
        LedgerError::Domain(DomainLinkError::AlreadyRefunded { id: t.id() })
    );
    assert_eq!(w.a.total_held() + w.b.total_held(), 1_000);
    assert_conserved(&w.a);
    assert_conserved(&w.b);
}

#[test]
fn domain_link_lock_errors_change_nothing() {
    let mut w = world();
    let before = w.a.clone();
    // Bad nonce, too much, payer's signature forged.
    let bad_nonce =
        w.a.verify(LedgerOp::DomainLock(transfer(10, 50, 5)))
            .unwrap();
    assert!(matches!(
        w.a.check(&bad_nonce),
        Err(LedgerError::BadNonce { .. })
    ));
    let too_much =
        w.a.verify(LedgerOp::DomainLock(transfer(5_000, 50, 0)))
            .unwrap();
    assert!(matches!(
        w.a.check(&too_much),
        Err(LedgerError::InsufficientBalance { .. })
    ));
    let mut forged = transfer(10, 50, 0);
    forged.signature = sk(PAYEE).sign_digest(&forged.id());
    assert_eq!(
        w.a.verify(LedgerOp::DomainLock(forged)).unwrap_err(),
        LedgerError::BadSignature { signer: pk(PAYER) }
    );
    let out = apply(&mut w.a, 1, vec![], &[bad_nonce, too_much], &[]);
    assert_eq!(out.refused.len(), 2);
    assert_eq!(w.a.account(&pk(PAYER)), before.account(&pk(PAYER)));
    assert_eq!(w.a.supply(), before.supply());
}
