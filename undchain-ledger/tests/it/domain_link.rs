//! Domain links under the light-client rules: each attack of issue 11 on
//! them performed for real (expiry without a lock, a set certifying later
//! heights forever, proofs not re-checked at apply), plus hand-off,
//! freezing, refunds and the bounds on records.

use crate::support::*;
use undchain_ledger::links::domain_link::DomainLinkError;
use undchain_ledger::{Applied, LedgerError, StateKey};
use undchain_types::msg::{
    DomainMisbehaviour, DomainProofKind, DomainTransferProof, DomainTransferTerms, DomainUpdate,
    SignedHeader, TxOp,
};
use undchain_types::{BlockNumber, ChainId, HashAlgorithm, TokenAmount};

const A: ChainId = ChainId(1);
const B: ChainId = ChainId(2);
const PAYER: u64 = 1;
const PAYEE: u64 = 2;
const RELAYER: u64 = 3;
/// A day: long enough for every test that does not test expiry.
const DAY_US: u64 = 86_400_000_000;

fn chain(id: ChainId, algo: HashAlgorithm, first_key: u64) -> Foreign {
    let mut f = Foreign::new(
        id,
        algo,
        &[(PAYER, 1_000), (OWNER, 1_000), (RELAYER, 1_000)],
        first_key,
    );
    empty(&mut f.ledger);
    f
}

/// Chains A (blake3) and B (SHA-256), each registered on the other with
/// trusting period `period_us`.
fn pair(period_us: u64) -> (Foreign, Foreign) {
    let mut a = chain(A, HashAlgorithm::Blake3, 100);
    let mut b = chain(B, HashAlgorithm::Sha256, 200);
    let (ra, rb) = (a.registration(period_us), b.registration(period_us));
    let t = tx(&a.ledger, OWNER, TxOp::RegisterDomain(Box::new(rb)));
    assert_eq!(
        ops(&mut a.ledger, &[t]).applied,
        vec![Applied::DomainRegistered { chain: B }]
    );
    let t = tx(&b.ledger, OWNER, TxOp::RegisterDomain(Box::new(ra)));
    assert_eq!(
        ops(&mut b.ledger, &[t]).applied,
        vec![Applied::DomainRegistered { chain: A }]
    );
    (a, b)
}

/// PAYER locks `amount` on A for PAYEE on B, expiring `expires_in` blocks on.
fn lock(a: &mut Foreign, amount: u64, expires_in: u64) -> DomainTransferTerms {
    let op = TxOp::DomainLock {
        target: B,
        to: pk(PAYEE),
        amount: TokenAmount(amount),
        expires_at: BlockNumber(a.ledger.next_block().0 + expires_in),
    };
    let t = tx(&a.ledger, PAYER, op);
    let out = ops(&mut a.ledger, &[t]);
    let Applied::Locked { id } = out.applied[0] else {
        panic!("{out:?}");
    };
    a.ledger.outbound(&id).unwrap().clone()
}

fn proof_op(
    on: &Foreign,
    terms: &DomainTransferTerms,
    kind: DomainProofKind,
    block: SignedHeader,
) -> undchain_ledger::Verified {
    let p = DomainTransferProof {
        terms: terms.clone(),
        kind,
        block,
    };
    tx(&on.ledger, RELAYER, TxOp::DomainProof(Box::new(p)))
}

fn credit(a: &Foreign, b: &Foreign, terms: &DomainTransferTerms) -> undchain_ledger::Verified {
    let proof = a.ledger.prove(&StateKey::Outbound(terms.id())).unwrap();
    proof_op(b, terms, DomainProofKind::Credit { proof }, a.header())
}

fn refused(out: &undchain_ledger::BlockOutcome) -> LedgerError {
    out.refused.first().expect("refused").error.clone()
}

#[test]
fn transfer_is_credited_once_with_supply_moved() {
    let (mut a, mut b) = pair(DAY_US);
    let terms = lock(&mut a, 100, 4);
    assert_eq!(balance(&a.ledger, PAYER), 1_000 - 100 - FEE);
    assert_eq!(a.ledger.supply().exported, 100);
    let c = credit(&a, &b, &terms);
    let out = ops(&mut b.ledger, &[c]);
    assert_eq!(out.applied, vec![Applied::Credited { id: terms.id() }]);
    assert_eq!(balance(&b.ledger, PAYEE), 100);
    assert_eq!(balance(&b.ledger, RELAYER), 1_000 - 2 * FEE + FEE);
    // The replay (another relayer nonce, same proof) is refused.
    let again = credit(&a, &b, &terms);
    let out = ops(&mut b.ledger, &[again]);
    assert!(matches!(
        refused(&out),
        LedgerError::Domain(DomainLinkError::AlreadyCredited { .. })
    ));
    assert_eq!(balance(&b.ledger, PAYEE), 100);
    assert_conserved(&a.ledger);
    assert_conserved(&b.ledger);
}

#[test]
fn expiry_without_a_real_lock_is_refused_and_writes_nothing() {
    let (mut a, mut b) = pair(DAY_US);
    // The attack: invent transfer terms, take one public header of A past
    // their expiry and ask B to record them expired.
    let invented = DomainTransferTerms {
        source: A,
        target: B,
        nonce: 77,
        from: pk(PAYER),
        to: pk(PAYEE),
        amount: TokenAmount(5),
        expires_at: BlockNumber(0),
    };
    empty(&mut a.ledger);
    let no_lock = a.ledger.prove(&StateKey::Outbound(invented.id()));
    assert!(no_lock.is_none(), "there is no lock to prove");
    // Any proof (here: one of a real lock) fails for the invented terms.
    let real = lock(&mut a, 10, 0);
    empty(&mut a.ledger);
    let proof = a.ledger.prove(&StateKey::Outbound(real.id())).unwrap();
    let records = b.ledger.domain_records();
    let relayer = balance(&b.ledger, RELAYER);
    let fake = proof_op(&b, &invented, DomainProofKind::Expire { proof }, a.header());
    let out = ops(&mut b.ledger, &[fake]);
    assert!(matches!(
        refused(&out),
        LedgerError::Domain(DomainLinkError::BadInclusionProof { .. })
    ));
    assert_eq!(b.ledger.domain_records(), records);
    assert_eq!(balance(&b.ledger, RELAYER), relayer);
}

#[test]
fn expired_lock_is_refunded_once_and_never_credited() {
    let (mut a, mut b) = pair(DAY_US);
    let terms = lock(&mut a, 100, 0);
    empty(&mut a.ledger);
    empty(&mut b.ledger);
    // A header past expires_at still shows the lock: B records it expired.
    let proof = a.ledger.prove(&StateKey::Outbound(terms.id())).unwrap();
    let exp = proof_op(&b, &terms, DomainProofKind::Expire { proof }, a.header());
    let relayer = balance(&b.ledger, RELAYER);
    let out = ops(&mut b.ledger, &[exp]);
    assert_eq!(out.applied, vec![Applied::Expired { id: terms.id() }]);
    // Recording an expiry is a transaction: its relayer paid the fee.
    assert_eq!(balance(&b.ledger, RELAYER), relayer - FEE);
    // A late credit is refused (too late, and expired anyway).
    let late = credit(&a, &b, &terms);
    assert!(matches!(
        refused(&ops(&mut b.ledger, &[late])),
        LedgerError::Domain(_)
    ));
    assert_eq!(balance(&b.ledger, PAYEE), 0);
    // B's header shows the expiry record: A refunds the payer, once.
    let key = StateKey::Inbound(terms.id());
    let proof = b.ledger.prove(&key).unwrap();
    let refund = proof_op(
        &a,
        &terms,
        DomainProofKind::Refund {
            proof: proof.clone(),
        },
        b.header(),
    );
    let out = ops(&mut a.ledger, &[refund]);
    assert_eq!(out.applied, vec![Applied::Refunded { id: terms.id() }]);
    assert_eq!(balance(&a.ledger, PAYER), 1_000 - FEE);
    let again = proof_op(&a, &terms, DomainProofKind::Refund { proof }, b.header());
    assert!(matches!(
        refused(&ops(&mut a.ledger, &[again])),
        LedgerError::Domain(DomainLinkError::UnknownTransfer { .. })
    ));
    assert_eq!(a.ledger.supply().refunded, 100);
    assert_conserved(&a.ledger);
    assert_conserved(&b.ledger);
}

#[test]
fn a_trusted_set_stops_certifying_after_its_trusting_period() {
    // Trust for 20 s = 10 blocks of A's time.
    let (mut a, mut b) = pair(20_000_000);
    let terms = lock(&mut a, 100, 8);
    let c = credit(&a, &b, &terms);
    for _ in 0..12 {
        empty(&mut b.ledger);
    }
    let out = ops(&mut b.ledger, &[c]);
    assert!(matches!(
        refused(&out),
        LedgerError::Domain(
            DomainLinkError::TrustExpired { .. } | DomainLinkError::NoTrustedHeader { .. }
        )
    ));
    assert_eq!(balance(&b.ledger, PAYEE), 0);
    // Relayed updates keep a link alive: a header trusted in time proves
    // the lock later.
    let (mut a, mut b) = pair(20_000_000);
    let terms = lock(&mut a, 100, 8);
    for _ in 0..6 {
        empty(&mut a.ledger);
        empty(&mut b.ledger);
    }
    let fresh = a.header();
    let proof = a.ledger.prove(&StateKey::Outbound(terms.id())).unwrap();
    let update = DomainUpdate {
        block: fresh.clone(),
        new_seats: None,
    };
    let t = tx(&b.ledger, RELAYER, TxOp::UpdateDomain(Box::new(update)));
    assert!(matches!(
        ops(&mut b.ledger, &[t]).applied[0],
        Applied::DomainUpdated { .. }
    ));
    for _ in 0..6 {
        empty(&mut b.ledger);
    }
    let c = proof_op(&b, &terms, DomainProofKind::Credit { proof }, fresh);
    assert_eq!(
        ops(&mut b.ledger, &[c]).applied,
        vec![Applied::Credited { id: terms.id() }]
    );
}

#[test]
fn a_new_set_is_trusted_only_through_a_hand_off_by_the_old_set() {
    let (mut a, mut b) = pair(DAY_US);
    let old = a.keys.clone();
    // A rotates: two old validators stay, two new ones come.
    let new: Vec<_> = [old[0].clone(), old[1].clone(), sk(150), sk(151)].to_vec();
    let terms = lock(&mut a, 100, 8);
    let n = a.ledger.next_block().0 - 1;
    let root = a.ledger.root();
    let under_new = signed_header(A, HashAlgorithm::Blake3, n, root, &new, &new);
    // A proof under a set the client does not trust is refused.
    let proof = a.ledger.prove(&StateKey::Outbound(terms.id())).unwrap();
    let c = proof_op(
        &b,
        &terms,
        DomainProofKind::Credit {
            proof: proof.clone(),
        },
        under_new.clone(),
    );
    assert!(matches!(
        refused(&ops(&mut b.ledger, &[c])),
        LedgerError::Domain(DomainLinkError::SetMismatch { .. })
    ));
    // A hand-off signed by the new set alone (no old member) is refused.
    let outsiders: Vec<_> = [sk(150), sk(151), sk(152), sk(153)].to_vec();
    let coup = signed_header(A, HashAlgorithm::Blake3, n, root, &outsiders, &outsiders);
    let upd = DomainUpdate {
        block: coup,
        new_seats: Some(seats(&outsiders)),
    };
    let t = tx(&b.ledger, RELAYER, TxOp::UpdateDomain(Box::new(upd)));
    assert!(matches!(
        refused(&ops(&mut b.ledger, &[t])),
        LedgerError::Domain(DomainLinkError::NoHandOff {
            signers: 0,
            needed: 2
        })
    ));
    // With f+1 = 2 of the old set among a quorum of the new: trusted.
    let upd = DomainUpdate {
        block: under_new.clone(),
        new_seats: Some(seats(&new)),
    };
    let t = tx(&b.ledger, RELAYER, TxOp::UpdateDomain(Box::new(upd)));
    assert!(matches!(
        ops(&mut b.ledger, &[t]).applied[0],
        Applied::DomainUpdated { .. }
    ));
    let c = proof_op(&b, &terms, DomainProofKind::Credit { proof }, under_new);
    assert_eq!(
        ops(&mut b.ledger, &[c]).applied,
        vec![Applied::Credited { id: terms.id() }]
    );
    // The old set can no longer certify later heights on its own.
    empty(&mut a.ledger);
    let later = signed_header(A, HashAlgorithm::Blake3, n + 1, a.ledger.root(), &old, &old);
    let upd = DomainUpdate {
        block: later,
        new_seats: None,
    };
    let t = tx(&b.ledger, RELAYER, TxOp::UpdateDomain(Box::new(upd)));
    assert!(matches!(
        refused(&ops(&mut b.ledger, &[t])),
        LedgerError::Domain(DomainLinkError::SetMismatch { .. })
    ));
}

#[test]
fn proofs_are_checked_again_when_applied() {
    let (mut a, mut b) = pair(DAY_US);
    let terms = lock(&mut a, 100, 8);
    // Verified at submission, while the link is sound...
    let c = credit(&a, &b, &terms);
    assert!(b.ledger.check(&c).is_ok());
    // ...but before it is applied someone proves A signed two headers of
    // one height, and the block applies that first.
    let n = a.ledger.next_block().0 - 1;
    let forked = signed_header(
        A,
        HashAlgorithm::Blake3,
        n,
        undchain_types::Hash32([9; 32]),
        &a.keys,
        &a.keys,
    );
    let m = DomainMisbehaviour {
        first: a.header(),
        second: forked,
    };
    let freeze = tx(&b.ledger, OWNER, TxOp::DomainMisbehaviour(Box::new(m)));
    let out = ops(&mut b.ledger, &[freeze, c]);
    assert_eq!(out.applied, vec![Applied::DomainFrozen { chain: A }]);
    assert_eq!(
        out.refused[0].error,
        LedgerError::Domain(DomainLinkError::Frozen { chain: A })
    );
    assert_eq!(balance(&b.ledger, PAYEE), 0);
    // Frozen: locks towards A are refused too, until the owner registers A
    // again.
    let t = tx(
        &b.ledger,
        PAYER,
        TxOp::DomainLock {
            target: A,
            to: pk(PAYEE),
            amount: TokenAmount(1),
            expires_at: b.ledger.next_block(),
        },
    );
    assert!(matches!(
        refused(&ops(&mut b.ledger, &[t])),
        LedgerError::Domain(DomainLinkError::Frozen { .. })
    ));
    let reg = tx(
        &b.ledger,
        OWNER,
        TxOp::RegisterDomain(Box::new(a.registration(DAY_US))),
    );
    ops(&mut b.ledger, &[reg]);
    let c = credit(&a, &b, &terms);
    assert_eq!(
        ops(&mut b.ledger, &[c]).applied,
        vec![Applied::Credited { id: terms.id() }]
    );
}

#[test]
fn a_conflicting_update_freezes_the_link() {
    let (a, mut b) = pair(DAY_US);
    // A header of the height B trusts (A's registration), with another root.
    let n = b.ledger.domains()[&A].trusted.keys().next().unwrap().0;
    let forked = signed_header(
        A,
        HashAlgorithm::Blake3,
        n,
        undchain_types::Hash32([1; 32]),
        &a.keys,
        &a.keys,
    );
    let upd = DomainUpdate {
        block: forked,
        new_seats: None,
    };
    let t = tx(&b.ledger, RELAYER, TxOp::UpdateDomain(Box::new(upd)));
    assert_eq!(
        ops(&mut b.ledger, &[t]).applied,
        vec![Applied::DomainFrozen { chain: A }]
    );
    assert!(b.ledger.domains()[&A].frozen);
}

#[test]
fn only_the_chain_owner_registers_domains() {
    let mut a = chain(A, HashAlgorithm::Blake3, 100);
    let b = chain(B, HashAlgorithm::Sha256, 200);
    let t = tx(
        &a.ledger,
        RELAYER,
        TxOp::RegisterDomain(Box::new(b.registration(DAY_US))),
    );
    assert_eq!(
        refused(&ops(&mut a.ledger, &[t])),
        LedgerError::NotChainOwner {
            sender: pk(RELAYER)
        }
    );
    assert!(a.ledger.domains().is_empty());
}

#[test]
fn domain_records_are_pruned_when_no_proof_can_need_them() {
    // Trust for 20 s: B's floor rises as A's trusted headers expire.
    let (mut a, mut b) = pair(20_000_000);
    let terms = lock(&mut a, 100, 2);
    let (early, proof) = (
        a.header(),
        a.ledger.prove(&StateKey::Outbound(terms.id())).unwrap(),
    );
    let c = credit(&a, &b, &terms);
    ops(&mut b.ledger, &[c]);
    assert!(b.ledger.inbound(&terms.id()).is_some());
    // A lock that is never resolved is forgotten after its retention;
    // meanwhile B's client follows A's headers, and its floor rises past
    // the credited transfer's expiry as old trusted headers expire.
    let stuck = lock(&mut a, 50, 0);
    let prune_at = a
        .ledger
        .config()
        .lock_prune_block(terms.expires_at.max(stuck.expires_at));
    while a.ledger.next_block() <= prune_at {
        empty(&mut a.ledger);
        let upd = DomainUpdate {
            block: a.header(),
            new_seats: None,
        };
        let t = tx(&b.ledger, RELAYER, TxOp::UpdateDomain(Box::new(upd)));
        let out = ops(&mut b.ledger, &[t]);
        assert!(out.refused.is_empty(), "{:?}", out.refused);
    }
    assert!(a.ledger.outbound(&stuck.id()).is_none());
    assert!(a.ledger.outbound(&terms.id()).is_none());
    let client = &b.ledger.domains()[&A];
    assert!(client.floor > terms.expires_at, "floor {}", client.floor);
    assert!(client.trusted.len() <= undchain_ledger::links::domain_link::MAX_TRUSTED);
    assert!(b.ledger.inbound(&terms.id()).is_none());
    // And a replayed credit of it stays refused: below the floor.
    let replay = proof_op(&b, &terms, DomainProofKind::Credit { proof }, early);
    assert!(matches!(
        refused(&ops(&mut b.ledger, &[replay])),
        LedgerError::Domain(DomainLinkError::BelowFloor { .. })
    ));
    assert_eq!(balance(&b.ledger, PAYEE), 100);
    assert_conserved(&a.ledger);
    assert_conserved(&b.ledger);
}
