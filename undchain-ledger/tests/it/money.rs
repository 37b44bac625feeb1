//! The money attacks of issue 11, each performed for real against the
//! ledger and shown refused or harmless, with balances before and after;
//! and the intake refusal of a client that cannot cover its request.

use crate::support::*;
use undchain_ledger::ledger::state::verify_leaf;
use undchain_ledger::{Block, BlockError, LedgerError, RequestError, StateKey, VerifiedRequest};
use undchain_types::msg::TxOp;
use undchain_types::msg::{PartialCompletion, UsageCheckpoint};
use undchain_types::{BlockNumber, BlockTime, ChainId, HashAlgorithm, TokenAmount};

const CLIENT: u64 = 1;
const PARTNER: u64 = 2;
const OTHER: u64 = 3;

#[test]
fn client_with_too_little_free_balance_is_refused_at_intake() {
    let mut l = ledger(&[(CLIENT, 100)]);
    // Budget 10 x 10 = 100 plus the fee 10: 110 > 100.
    let r = request(&l, CLIENT, 1, 10, 10, &[PARTNER]);
    let before = l.root();
    assert_eq!(
        l.check_request(&r.verified),
        Err(RequestError::InsufficientFreeBalance {
            client: pk(CLIENT),
            needed: TokenAmount(110),
            available: TokenAmount(100),
        })
    );
    // A proposer leaves it out, and a block that carries it anyway is
    // refused whole: nothing is committed.
    let f = file(std::slice::from_ref(&r));
    let rs = [r.verified.clone()];
    let left_out = l.unaffordable_jobs(&f, &rs);
    assert_eq!(left_out.len(), 1);
    assert_eq!(left_out[0].0, r.id());
    let err = l
        .apply_block(&Block::new(l.next_block(), &f, &rs))
        .unwrap_err();
    assert!(matches!(
        err,
        BlockError::Request {
            error: RequestError::InsufficientFreeBalance { .. },
            ..
        }
    ));
    assert_eq!(l.root(), before);
    assert_eq!(l.open_jobs(), 0);
    assert_eq!(balance(&l, CLIENT), 100);
    // A request it can cover (9 x 10 + 10 = 100) passes.
    let ok = request(&l, CLIENT, 2, 9, 10, &[PARTNER]);
    assert_eq!(l.check_request(&ok.verified), Ok(()));
}

#[test]
fn proposer_cannot_bill_a_client_without_its_signed_request() {
    let mut l = ledger(&[(CLIENT, 1_000), (OTHER, 1_000)]);
    let r = request(&l, CLIENT, 1, 5, 10, &[PARTNER]);
    // The job alone, without the request: refused.
    let f = file(std::slice::from_ref(&r));
    let err = l
        .apply_block(&Block::new(l.next_block(), &f, &[]))
        .unwrap_err();
    assert_eq!(err, BlockError::MissingRequest { job: r.id() });
    // The job billed to another client than the one who signed: refused.
    let mut forged = r.clone();
    forged.entry.client_pool = undchain_types::BoundedVec::try_from_vec(vec![pk(OTHER)]).unwrap();
    let f = file(std::slice::from_ref(&forged));
    let rs = [r.verified.clone()];
    let err = l
        .apply_block(&Block::new(l.next_block(), &f, &rs))
        .unwrap_err();
    assert!(matches!(err, BlockError::RequestMismatch { .. }), "{err:?}");
    // Another client's request beside an unrelated job: refused.
    let stray = request(&l, OTHER, 1, 1, 1, &[]);
    let rs = [r.verified.clone(), stray.verified.clone()];
    let f = file(std::slice::from_ref(&r));
    let err = l
        .apply_block(&Block::new(l.next_block(), &f, &rs))
        .unwrap_err();
    assert_eq!(err, BlockError::StrayRequest { job: stray.id() });
    assert_eq!((balance(&l, CLIENT), balance(&l, OTHER)), (1_000, 1_000));
    // With its own request the job commits: fee paid, budget escrowed.
    commit(&mut l, &[r]);
    assert_eq!(
        (balance(&l, CLIENT), escrow(&l, CLIENT)),
        (1_000 - 10 - 50, 50)
    );
    assert_conserved(&l);
}

#[test]
fn client_partial_cannot_preempt_the_partners_full_receipt() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    let r = request(&l, CLIENT, 1, 10, 50, &[PARTNER]);
    commit(&mut l, std::slice::from_ref(&r));
    // The attack: after the work, the client signs a fresh 1-token
    // checkpoint and submits it as a partial before the receipt lands.
    let cp = checkpoint(&l, r.id(), CLIENT, PARTNER, 1, 99);
    // Without the partner's signature it is not a claim at all.
    let forged = PartialCompletion {
        partner_sig: sk(CLIENT).sign_digest(&cp.checkpoint.digest()),
        last_checkpoint: cp.clone(),
    };
    assert_eq!(
        l.verify(undchain_ledger::LedgerOp::Partial(forged)),
        Err(LedgerError::BadSignature {
            signer: pk(PARTNER)
        })
    );
    // Even one the partner did sign earlier is superseded by the receipt.
    let early = partial(&l, r.id(), CLIENT, PARTNER, 1, 1);
    let full = receipt(&l, r.id(), CLIENT, PARTNER, 400);
    let out = ops(&mut l, &[early, full]);
    assert!(out.refused.is_empty(), "{:?}", out.refused);
    let before = (balance(&l, CLIENT), balance(&l, PARTNER));
    assert_eq!(before, (1_000 - 10 - 500, 0));
    let s = to_period_end(&mut l).settlement.unwrap();
    assert_eq!(s.paid, TokenAmount(400));
    assert_eq!(balance(&l, PARTNER), 400);
    // 100 of the 500 escrow came back.
    assert_eq!(balance(&l, CLIENT), 1_000 - 10 - 400);
    assert_eq!(escrow(&l, CLIENT), 0);
    assert_conserved(&l);
}

#[test]
fn partials_resolve_to_the_highest_counter_and_never_beat_a_receipt() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    let r = request(&l, CLIENT, 1, 10, 50, &[PARTNER]);
    commit(&mut l, std::slice::from_ref(&r));
    let p5 = partial(&l, r.id(), CLIENT, PARTNER, 300, 5);
    let p3 = partial(&l, r.id(), CLIENT, PARTNER, 450, 3);
    let out = ops(&mut l, &[p5, p3]);
    assert_eq!(
        out.refused[0].error,
        LedgerError::StaleCheckpoint {
            job: r.id(),
            have: 5,
            got: 3
        }
    );
    let full = receipt(&l, r.id(), CLIENT, PARTNER, 350);
    let p9 = partial(&l, r.id(), CLIENT, PARTNER, 450, 9);
    let out = ops(&mut l, &[full, p9]);
    assert!(matches!(
        out.refused[0].error,
        LedgerError::AlreadyReceipted { .. }
    ));
    let s = to_period_end(&mut l).settlement.unwrap();
    assert_eq!((s.paid, s.completed, s.partial), (TokenAmount(350), 1, 0));
    assert_eq!(balance(&l, PARTNER), 350);
    assert_conserved(&l);
}

#[test]
fn no_claim_pays_beyond_the_escrow() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    let r = request(&l, CLIENT, 1, 10, 10, &[PARTNER, OTHER]);
    commit(&mut l, std::slice::from_ref(&r));
    // Client and partner both sign more than the escrow of 100.
    let greedy = receipt(&l, r.id(), CLIENT, PARTNER, 101);
    let a = receipt(&l, r.id(), CLIENT, PARTNER, 70);
    let b = receipt(&l, r.id(), CLIENT, OTHER, 40);
    let out = ops(&mut l, &[greedy, a, b]);
    assert_eq!(out.refused.len(), 2);
    assert!(
        out.refused
            .iter()
            .all(|r| matches!(r.error, LedgerError::ExceedsEscrow { .. }))
    );
    let s = to_period_end(&mut l).settlement.unwrap();
    assert_eq!(s.paid, TokenAmount(70));
    assert_eq!((balance(&l, PARTNER), balance(&l, OTHER)), (70, 0));
    assert_eq!(balance(&l, CLIENT), 1_000 - 10 - 70);
    assert_conserved(&l);
}

#[test]
fn multi_partner_job_pays_each_partner_by_its_own_receipt() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    let r = request(&l, CLIENT, 1, 10, 30, &[PARTNER, OTHER]);
    commit(&mut l, std::slice::from_ref(&r));
    let a = receipt(&l, r.id(), CLIENT, PARTNER, 120);
    let b = partial(&l, r.id(), CLIENT, OTHER, 90, 4);
    let c = receipt(&l, r.id(), CLIENT, OTHER, 100);
    let out = ops(&mut l, &[a, b, c]);
    assert!(out.refused.is_empty());
    let s = to_period_end(&mut l).settlement.unwrap();
    assert_eq!((s.paid, s.claims, s.completed), (TokenAmount(220), 2, 1));
    assert_eq!((balance(&l, PARTNER), balance(&l, OTHER)), (120, 100));
    // 300 escrowed, 220 paid, 80 refunded.
    assert_eq!(balance(&l, CLIENT), 1_000 - 10 - 220);
    assert_eq!(s.refunded, TokenAmount(80));
    assert_conserved(&l);
}

#[test]
fn replayed_receipt_after_rollover_pays_nothing_and_the_job_cannot_recommit() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    let r = request(&l, CLIENT, 1, 10, 10, &[PARTNER]);
    commit(&mut l, std::slice::from_ref(&r));
    let full = receipt(&l, r.id(), CLIENT, PARTNER, 100);
    ops(&mut l, std::slice::from_ref(&full));
    to_period_end(&mut l);
    assert_eq!((balance(&l, CLIENT), balance(&l, PARTNER)), (890, 100));
    assert!(l.is_settled(&r.id()));
    // The attack: commit the same request again after the rollover, then
    // replay the same receipt bytes.
    assert_eq!(
        l.check_request(&r.verified),
        Err(RequestError::AlreadySettled { job: r.id() })
    );
    let f = file(std::slice::from_ref(&r));
    let rs = [r.verified.clone()];
    let err = l
        .apply_block(&Block::new(l.next_block(), &f, &rs))
        .unwrap_err();
    assert_eq!(
        err,
        BlockError::Request {
            job: r.id(),
            error: RequestError::AlreadySettled { job: r.id() }
        }
    );
    let out = ops(&mut l, std::slice::from_ref(&full));
    assert_eq!(
        out.refused[0].error,
        LedgerError::UnknownJob { job: r.id() }
    );
    // Once the request's window is over the id is forgotten, and the
    // request is then refused for its time instead.
    while l.is_settled(&r.id()) {
        empty(&mut l);
    }
    assert!(matches!(
        l.check_request(&r.verified),
        Err(RequestError::OutsideWindow { .. })
    ));
    assert_eq!((balance(&l, CLIENT), balance(&l, PARTNER)), (890, 100));
    assert_conserved(&l);
}

#[test]
fn a_receipt_binds_the_commit_block() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    let r = request(&l, CLIENT, 1, 10, 10, &[PARTNER]);
    commit(&mut l, std::slice::from_ref(&r));
    let mut terms = receipt_terms(&l, r.id(), PARTNER, 50);
    terms.commit_block = BlockNumber(7);
    let wrong = undchain_types::msg::Receipt::sign(terms, &sk(CLIENT), &sk(PARTNER));
    let v = l.verify(undchain_ledger::LedgerOp::Receipt(wrong)).unwrap();
    let out = ops(&mut l, &[v]);
    assert_eq!(
        out.refused[0].error,
        LedgerError::WrongCommitBlock {
            job: r.id(),
            committed: BlockNumber(0),
            named: BlockNumber(7)
        }
    );
    // So does a checkpoint.
    let cp = UsageCheckpoint {
        chain_id: CHAIN,
        job: r.id(),
        commit_block: BlockNumber(3),
        client: pk(CLIENT),
        partner: pk(PARTNER),
        units: 1,
        amount: TokenAmount(5),
        counter: 1,
        at: BlockTime(0),
    }
    .sign(&sk(CLIENT));
    let p = l
        .verify(undchain_ledger::LedgerOp::Partial(PartialCompletion::sign(
            cp,
            &sk(PARTNER),
        )))
        .unwrap();
    let out = ops(&mut l, &[p]);
    assert!(matches!(
        out.refused[0].error,
        LedgerError::WrongCommitBlock { .. }
    ));
}

#[test]
fn escrowed_budget_cannot_be_moved_away_before_the_receipt() {
    let mut l = ledger(&[(CLIENT, 200), (OWNER, 100)]);
    let mut other = Foreign::new(ChainId(2), HashAlgorithm::Blake3, &[], 300);
    empty(&mut other.ledger);
    let reg = tx(
        &l,
        OWNER,
        TxOp::RegisterDomain(Box::new(other.registration(1 << 40))),
    );
    ops(&mut l, &[reg]);
    let r = request(&l, CLIENT, 1, 10, 15, &[PARTNER]);
    commit(&mut l, std::slice::from_ref(&r));
    assert_eq!((balance(&l, CLIENT), escrow(&l, CLIENT)), (40, 150));
    // The attack: lock the balance away to another domain before the
    // partner's receipt lands, or transfer it.
    let lock = TxOp::DomainLock {
        target: ChainId(2),
        to: pk(CLIENT),
        amount: TokenAmount(150),
        expires_at: l.next_block(),
    };
    let t = tx(&l, CLIENT, lock);
    let out = ops(&mut l, &[t]);
    assert_eq!(
        out.refused[0].error,
        LedgerError::InsufficientFreeBalance {
            account: pk(CLIENT),
            needed: TokenAmount(160),
            available: TokenAmount(40),
        }
    );
    assert_eq!(l.supply().exported, 0);
    let t = tx(&l, CLIENT, transfer(OTHER, 150));
    let out = ops(&mut l, &[t]);
    assert_eq!(
        out.refused[0].error,
        LedgerError::InsufficientFreeBalance {
            account: pk(CLIENT),
            needed: TokenAmount(160),
            available: TokenAmount(40),
        }
    );
    // Only the free part moves.
    let t = tx(&l, CLIENT, transfer(OTHER, 30));
    let out = ops(&mut l, &[t]);
    assert!(out.refused.is_empty());
    let full = receipt(&l, r.id(), CLIENT, PARTNER, 150);
    ops(&mut l, &[full]);
    to_period_end(&mut l);
    assert_eq!(
        (
            balance(&l, CLIENT),
            balance(&l, OTHER),
            balance(&l, PARTNER)
        ),
        (0, 30, 150)
    );
    assert_conserved(&l);
}

#[test]
fn unclaimed_job_carries_once_then_is_cancelled_with_its_escrow_back() {
    let mut l = ledger(&[(CLIENT, 500)]);
    let r = request(&l, CLIENT, 1, 10, 20, &[PARTNER]);
    commit(&mut l, std::slice::from_ref(&r));
    let s = to_period_end(&mut l).settlement.unwrap();
    assert_eq!(s.carried, vec![r.id()]);
    assert_eq!(escrow(&l, CLIENT), 200);
    let s = to_period_end(&mut l).settlement.unwrap();
    assert_eq!(s.cancelled, vec![r.id()]);
    assert_eq!(s.refunded, TokenAmount(200));
    assert_eq!((balance(&l, CLIENT), escrow(&l, CLIENT)), (490, 0));
    assert_conserved(&l);
}

#[test]
fn owed_claims_are_provable_against_the_committed_root() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    let r = request(&l, CLIENT, 1, 10, 10, &[PARTNER]);
    commit(&mut l, std::slice::from_ref(&r));
    let p = partial(&l, r.id(), CLIENT, PARTNER, 60, 2);
    ops(&mut l, &[p]);
    let algo = l.config().hash_algorithm;
    let job = l.job(&r.id()).unwrap();
    assert_eq!(job.claims[0].amount, TokenAmount(60));
    let key = StateKey::Job(r.id());
    let proof = l.prove(&key).unwrap();
    assert!(verify_leaf(algo, &l.root(), &key, &job.leaf(), &proof));
    // A partner claiming more than the record says fails the proof.
    let mut lie = job.clone();
    lie.claims[0].amount = TokenAmount(99);
    assert!(!verify_leaf(algo, &l.root(), &key, &lie.leaf(), &proof));
    // The escrow is in the client's account leaf, also provable.
    let ak = StateKey::Account(pk(CLIENT));
    let ap = l.prove(&ak).unwrap();
    assert!(verify_leaf(
        algo,
        &l.root(),
        &ak,
        &l.account(&pk(CLIENT)),
        &ap
    ));
    assert_eq!(l.account(&pk(CLIENT)).escrow, TokenAmount(100));
}

#[test]
fn plain_transfer_needs_fee_nonce_and_signature() {
    let mut l = ledger(&[(CLIENT, 100)]);
    let t = tx(&l, CLIENT, transfer(OTHER, 50));
    let out = ops(&mut l, &[t.clone(), t]);
    // The replay carries a used nonce.
    assert_eq!(
        out.refused[0].error,
        LedgerError::BadNonce {
            account: pk(CLIENT),
            expected: 1,
            got: 0
        }
    );
    assert_eq!(
        (balance(&l, CLIENT), balance(&l, OTHER), l.fee_pool().0),
        (40, 50, 10)
    );
    // A signature by someone else than the sender is refused at submission.
    let forged = undchain_types::msg::TransactionBody {
        chain_id: CHAIN,
        sender: pk(CLIENT),
        nonce: 1,
        fee: TokenAmount(FEE),
        op: transfer(OTHER, 1),
    }
    .sign(&sk(OTHER));
    assert_eq!(
        l.verify(undchain_ledger::LedgerOp::Transaction(forged)),
        Err(LedgerError::BadSignature { signer: pk(CLIENT) })
    );
    // A fee below the chain's is refused.
    let cheap = undchain_types::msg::TransactionBody {
        chain_id: CHAIN,
        sender: pk(CLIENT),
        nonce: 1,
        fee: TokenAmount(FEE - 1),
        op: transfer(OTHER, 1),
    }
    .sign(&sk(CLIENT));
    let v = l
        .verify(undchain_ledger::LedgerOp::Transaction(cheap))
        .unwrap();
    assert!(matches!(l.check(&v), Err(LedgerError::FeeTooLow { .. })));
    assert_conserved(&l);
}

#[test]
fn only_the_chain_owner_mints() {
    let mut l = ledger(&[(CLIENT, 100), (OWNER, 100)]);
    let op = undchain_types::msg::TxOp::Mint {
        to: pk(CLIENT),
        amount: TokenAmount(1_000),
    };
    let t = tx(&l, CLIENT, op.clone());
    let out = ops(&mut l, &[t]);
    assert_eq!(
        out.refused[0].error,
        LedgerError::NotChainOwner { sender: pk(CLIENT) }
    );
    assert_eq!(balance(&l, CLIENT), 100);
    let t = tx(&l, OWNER, op);
    let out = ops(&mut l, &[t]);
    assert!(out.refused.is_empty());
    assert_eq!((balance(&l, CLIENT), l.supply().minted), (1_100, 1_000));
    assert_conserved(&l);
}

#[test]
fn requests_outside_the_window_are_refused() {
    let l = ledger(&[(CLIENT, 1_000)]);
    let late = request_at(
        &l,
        CLIENT,
        1,
        1,
        1,
        &[],
        BlockTime(l.config().request_window_us + 1),
    );
    assert!(matches!(
        l.check_request(&late.verified),
        Err(RequestError::OutsideWindow { .. })
    ));
    let _: &VerifiedRequest = &late.verified;
}
