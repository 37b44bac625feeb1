//! Payment scenarios, one per "what could go wrong" of the design notes that
//! touches money (client story step 3; partner story "utility complete";
//! DESIGN.md "Client to validator" step 5, "Payout file").

use crate::support::*;
use undchain_jobfile::{Completion, JobFile};
use undchain_ledger::ledger::{Applied, Block, BlockError, LedgerError, LedgerOp};
use undchain_types::msg::Receipt;
use undchain_types::{BlockNumber, ChainId, Signature, TokenAmount};

const CLIENT: u64 = 1;
const PARTNER: u64 = 2;
const V1: u64 = 100;
const V2: u64 = 101;

#[test]
fn client_never_sends_but_partner_does_and_is_paid_at_period_end() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    apply(&mut l, 0, vec![job(7, CLIENT, Some(PARTNER))], &[], &[]);
    // The client goes silent; the partner holds the receipt both signed
    // and submits it itself.
    let r = verified(&l, LedgerOp::Receipt(receipt(7, CLIENT, PARTNER, 300)));
    l.check(&r).unwrap();
    let out = apply(&mut l, 1, vec![], &[r], &[]);
    assert_eq!(
        out.applied,
        vec![Applied::Completed {
            job: job_id(7),
            block: BlockNumber(1)
        }]
    );
    assert_eq!(
        l.payout().get(&job_id(7)).unwrap().completion,
        Completion::Complete {
            block: BlockNumber(1)
        }
    );
    // Escrowed until the period ends, then paid.
    assert_eq!(l.account(&pk(CLIENT)).reserved, TokenAmount(300));
    assert_eq!(l.account(&pk(PARTNER)).balance, TokenAmount(0));
    let outs = empty_until(&mut l, BPP - 1, &[pk(V1)]);
    let s = outs.last().unwrap().settlement.as_ref().unwrap();
    assert_eq!((s.completed, s.partial, s.paid), (1, 0, TokenAmount(300)));
    assert_eq!(l.account(&pk(PARTNER)).balance, TokenAmount(300));
    assert_eq!(
        l.account(&pk(CLIENT)).balance,
        TokenAmount(1_000 - FEE - 300)
    );
    assert_eq!(l.account(&pk(CLIENT)).reserved, TokenAmount(0));
    assert_conserved(&l);
}

#[test]
fn neither_sends_the_receipt_so_the_job_is_cancelled_with_the_fee_only() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    apply(
        &mut l,
        0,
        vec![job(7, CLIENT, Some(PARTNER))],
        &[],
        &[pk(V1)],
    );
    // End of period 0: no receipt, the job carries over once.
    let outs = empty_until(&mut l, BPP - 1, &[pk(V1)]);
    let s = outs.last().unwrap().settlement.as_ref().unwrap();
    assert_eq!(s.carried, vec![job_id(7)]);
    assert!(s.cancelled.is_empty());
    assert!(l.payout().contains(&job_id(7)));
    // End of period 1: still nothing, cancelled.
    let outs = empty_until(&mut l, 2 * BPP - 1, &[pk(V1)]);
    let s = outs.last().unwrap().settlement.as_ref().unwrap();
    assert_eq!(s.cancelled, vec![job_id(7)]);
    assert!(
        s.settled
            .as_ref()
            .unwrap()
            .get(&job_id(7))
            .is_some_and(|r| r.completion == Completion::Cancelled)
    );
    assert!(!l.payout().contains(&job_id(7)));
    // Only the fee moved: client to the validator that signed.
    assert_eq!(l.account(&pk(CLIENT)).balance, TokenAmount(1_000 - FEE));
    assert_eq!(l.account(&pk(PARTNER)).balance, TokenAmount(0));
    assert_eq!(l.account(&pk(V1)).balance, TokenAmount(FEE));
    assert_conserved(&l);
    // A receipt after the cancellation finds no job.
    let late = verified(&l, LedgerOp::Receipt(receipt(7, CLIENT, PARTNER, 5)));
    assert_eq!(
        l.check(&late),
        Err(LedgerError::UnknownJob { job: job_id(7) })
    );
}

#[test]
fn carried_job_completed_in_the_next_period_is_paid_then() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    apply(&mut l, 0, vec![job(7, CLIENT, Some(PARTNER))], &[], &[]);
    empty_until(&mut l, BPP - 1, &[]);
    let r = verified(&l, LedgerOp::Receipt(receipt(7, CLIENT, PARTNER, 50)));
    apply(&mut l, BPP, vec![], &[r], &[]);
    empty_until(&mut l, 2 * BPP - 1, &[]);
    assert_eq!(l.account(&pk(PARTNER)).balance, TokenAmount(50));
    assert_conserved(&l);
}

#[test]
fn client_refuses_to_sign_so_the_partial_proven_part_is_paid() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    apply(&mut l, 0, vec![job(7, CLIENT, Some(PARTNER))], &[], &[]);
    // The client signed checkpoints up to 40 tokens' worth, then refused to
    // sign the receipt; the partner submits the last checkpoint.
    let p = verified(&l, LedgerOp::Partial(partial(7, CLIENT, PARTNER, 40, 4)));
    let out = apply(&mut l, 1, vec![], &[p], &[]);
    assert_eq!(
        out.applied,
        vec![Applied::Partial {
            job: job_id(7),
            block: BlockNumber(1),
            amount: TokenAmount(40)
        }]
    );
    // A full receipt arriving later does not count: the first one did.
    let r = verified(&l, LedgerOp::Receipt(receipt(7, CLIENT, PARTNER, 100)));
    let out = apply(&mut l, 2, vec![], &[r], &[]);
    assert!(matches!(
        out.refused[0].error,
        LedgerError::AlreadyCompleted {
            state: Completion::Partial { .. },
            ..
        }
    ));
    let outs = empty_until(&mut l, BPP - 1, &[]);
    let s = outs.last().unwrap().settlement.as_ref().unwrap();
    assert_eq!((s.completed, s.partial, s.paid), (0, 1, TokenAmount(40)));
    assert_eq!(l.account(&pk(PARTNER)).balance, TokenAmount(40));
    assert_eq!(
        l.account(&pk(CLIENT)).balance,
        TokenAmount(1_000 - FEE - 40)
    );
    assert_conserved(&l);
}

#[test]
fn partial_with_a_forged_client_signature_is_refused() {
    let l = ledger(&[(CLIENT, 1_000)]);
    let mut p = partial(7, CLIENT, PARTNER, 40, 4);
    // The partner signs the checkpoint itself.
    p.last_checkpoint.client_sig = sk(PARTNER).sign_digest(&p.last_checkpoint.checkpoint.digest());
    assert_eq!(
        l.verify(LedgerOp::Partial(p)),
        Err(LedgerError::BadSignature { signer: pk(CLIENT) })
    );
}

#[test]
fn validator_gets_the_receipt_twice_and_applies_it_once() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    apply(&mut l, 0, vec![job(7, CLIENT, Some(PARTNER))], &[], &[]);
    let r = verified(&l, LedgerOp::Receipt(receipt(7, CLIENT, PARTNER, 300)));
    // Twice in one block (from client and from partner): the first counts.
    let mut twin = l.clone();
    let out = apply(&mut l, 1, vec![], &[r.clone(), r.clone()], &[]);
    assert_eq!(out.applied.len(), 1);
    assert_eq!(out.refused.len(), 1);
    assert_eq!(out.refused[0].index, 1);
    assert_eq!(
        out.refused[0].error,
        LedgerError::AlreadyCompleted {
            job: job_id(7),
            state: Completion::Complete {
                block: BlockNumber(1)
            }
        }
    );
    // The refused copy changed nothing: same state as applying it once.
    apply(&mut twin, 1, vec![], std::slice::from_ref(&r), &[]);
    assert_eq!(l.root(), twin.root());
    assert_eq!(l, twin);
    // Once more in a later block: refused, naming the completion block, so
    // the validator answers "not first, completed in block 1".
    assert_eq!(
        l.check(&r),
        Err(LedgerError::AlreadyCompleted {
            job: job_id(7),
            state: Completion::Complete {
                block: BlockNumber(1)
            }
        })
    );
    let before = l.clone();
    let out = apply(&mut l, 2, vec![], &[r], &[]);
    assert_eq!(out.refused.len(), 1);
    apply(&mut twin, 2, vec![], &[], &[]);
    assert_eq!(l.root(), twin.root());
    assert_eq!(l.account(&pk(CLIENT)), before.account(&pk(CLIENT)));
    empty_until(&mut l, BPP - 1, &[]);
    assert_eq!(l.account(&pk(PARTNER)).balance, TokenAmount(300));
    assert_conserved(&l);
}

#[test]
fn utility_may_complete_in_the_block_it_started_in() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    let r = verified(&l, LedgerOp::Receipt(receipt(7, CLIENT, PARTNER, 25)));
    // Not yet committed: the desk check says so ...
    assert_eq!(l.check(&r), Err(LedgerError::UnknownJob { job: job_id(7) }));
    // ... but in the block that commits the job, the receipt applies.
    let out = apply(&mut l, 0, vec![job(7, CLIENT, Some(PARTNER))], &[r], &[]);
    assert_eq!(
        out.applied,
        vec![Applied::Completed {
            job: job_id(7),
            block: BlockNumber(0)
        }]
    );
    assert_eq!(
        l.payout().get(&job_id(7)).unwrap().completion,
        Completion::Complete {
            block: BlockNumber(0)
        }
    );
}

#[test]
fn refused_operations_get_typed_errors_and_change_nothing() {
    let mut l = ledger(&[(CLIENT, 100)]);
    apply(&mut l, 0, vec![job(7, CLIENT, Some(PARTNER))], &[], &[]);
    let before = l.clone();

    // Bad signatures: caught at submission, never enter a block.
    let mut forged = receipt(7, CLIENT, PARTNER, 5);
    forged.client_sig = Signature([7; 64]);
    assert_eq!(
        l.verify(LedgerOp::Receipt(forged)),
        Err(LedgerError::BadSignature { signer: pk(CLIENT) })
    );
    let mut forged = receipt(7, CLIENT, PARTNER, 5);
    forged.terms.amount = TokenAmount(6); // signed for 5
    assert!(matches!(
        l.verify(LedgerOp::Receipt(forged)),
        Err(LedgerError::BadSignature { .. })
    ));
    let mut other_chain = receipt(7, CLIENT, PARTNER, 5).terms;
    other_chain.chain_id = ChainId(2);
    let other_chain = Receipt::sign(other_chain, &sk(CLIENT), &sk(PARTNER));
    assert_eq!(
        l.verify(LedgerOp::Receipt(other_chain)),
        Err(LedgerError::WrongChain {
            expected: CHAIN,
            got: ChainId(2)
        })
    );

    // State errors: refused inside the block, everything else applies.
    let too_much = verified(&l, LedgerOp::Receipt(receipt(7, CLIENT, PARTNER, 91)));
    let unknown = verified(&l, LedgerOp::Receipt(receipt(8, CLIENT, PARTNER, 1)));
    let stranger = verified(&l, LedgerOp::Receipt(receipt(7, 3, PARTNER, 1)));
    let wrong_partner = verified(&l, LedgerOp::Receipt(receipt(7, CLIENT, 4, 1)));
    let out = apply(
        &mut l,
        1,
        vec![],
        &[too_much, unknown, stranger, wrong_partner],
        &[],
    );
    let errors: Vec<_> = out.refused.iter().map(|r| r.error.clone()).collect();
    assert_eq!(
        errors,
        vec![
            LedgerError::InsufficientBalance {
                account: pk(CLIENT),
                needed: TokenAmount(91),
                available: TokenAmount(90),
            },
            LedgerError::UnknownJob { job: job_id(8) },
            LedgerError::NotAClient {
                job: job_id(7),
                client: pk(3)
            },
            LedgerError::NotAPartner {
                job: job_id(7),
                partner: pk(4)
            },
        ]
    );
    assert!(out.applied.is_empty());
    let mut twin = before.clone();
    apply(&mut twin, 1, vec![], &[], &[]);
    assert_eq!(l, twin, "refused operations changed the state");
    assert_eq!(l.root(), twin.root());
    assert_eq!(
        l.payout().get(&job_id(7)).unwrap().completion,
        Completion::Open
    );
}

#[test]
fn unaffordable_fees_refuse_the_block_and_change_nothing() {
    let mut l = ledger(&[(CLIENT, 15)]);
    let before = l.clone();
    let f = file(vec![job(1, CLIENT, None), job(2, CLIENT, None)]);
    assert_eq!(l.unaffordable_jobs(&f).len(), 1);
    let err = l.apply_block(&Block::jobs(BlockNumber(0), &f)).unwrap_err();
    assert_eq!(
        err,
        BlockError::UnaffordableFees {
            payer: pk(CLIENT),
            needed: TokenAmount(20),
            available: TokenAmount(15)
        }
    );
    assert_eq!(l, before);
    // Out of order, and a job committed twice, are refused too.
    let empty = JobFile::new();
    assert_eq!(
        l.apply_block(&Block::jobs(BlockNumber(3), &empty))
            .unwrap_err(),
        BlockError::OutOfOrder {
            expected: BlockNumber(0),
            got: BlockNumber(3)
        }
    );
    apply(&mut l, 0, vec![job(1, CLIENT, None)], &[], &[]);
    let again = file(vec![job(1, CLIENT, None)]);
    assert_eq!(
        l.apply_block(&Block::jobs(BlockNumber(1), &again))
            .unwrap_err(),
        BlockError::JobAlreadyCommitted { job: job_id(1) }
    );
    let mut cheap = job(3, CLIENT, None);
    cheap.fee = TokenAmount(0);
    let cheap = file(vec![cheap]);
    assert!(matches!(
        l.apply_block(&Block::jobs(BlockNumber(1), &cheap)),
        Err(BlockError::WrongFee { .. })
    ));
}

#[test]
fn fees_go_pro_rata_to_the_validators_that_signed() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    let jobs: Vec<_> = (0..8).map(|n| job(n, CLIENT, None)).collect();
    apply(&mut l, 0, jobs, &[], &[pk(V1), pk(V2)]);
    apply(&mut l, 1, vec![], &[], &[pk(V1), pk(V2)]);
    apply(&mut l, 2, vec![], &[], &[pk(V1)]);
    let out = apply(&mut l, 3, vec![], &[], &[pk(V1)]);
    let s = out.settlement.unwrap();
    // 80 tokens of fees, V1 signed 4 blocks, V2 signed 2: 53 and 26, 1 left.
    assert_eq!(l.account(&pk(V1)).balance, TokenAmount(53));
    assert_eq!(l.account(&pk(V2)).balance, TokenAmount(26));
    assert_eq!(s.fee_remainder, TokenAmount(1));
    assert_eq!(l.fee_pool(), TokenAmount(1));
    assert!(l.signed_blocks().is_empty());
    assert_conserved(&l);
}

#[test]
fn preview_matches_apply_and_changes_nothing() {
    let mut l = ledger(&[(CLIENT, 1_000)]);
    let f = file(vec![job(7, CLIENT, Some(PARTNER))]);
    let r = verified(&l, LedgerOp::Receipt(receipt(7, CLIENT, PARTNER, 30)));
    let ops = [r];
    let b = Block {
        number: BlockNumber(0),
        jobs: &f,
        ops: &ops,
        signers: &[],
        events: &[],
    };
    let before = l.clone();
    let p = l.preview(&b).unwrap();
    assert_eq!(l, before);
    assert_eq!(l.root(), before.root());
    let a = l.apply_block(&b).unwrap();
    assert_eq!(p.ledger_root, a.ledger_root);
    assert_eq!(a.ledger_root, l.root());
    assert_ne!(l.root(), before.root());
}
