//! Block operations (docs/PROTOCOL.md "Block operations"): receipts,
//! partial completions and transactions submitted to validators are
//! committed by a block's `ops_root`, applied once, acknowledged with the
//! block, fetched by validators that lack them, and paid at settlement.

use undchain_roles::NodeEvent;
use undchain_roles::sim::{SimConfig, World, client_key, partner_key};
use undchain_types::msg::{Operation, Receipt, TransactionBody, TxOp};
use undchain_types::{JobId, TokenAmount};

use crate::support::assert_same_chain;

/// (job, block) pairs.
type Placed = Vec<(JobId, u64)>;

/// Jobs of `w`'s validator `i`'s stored blocks, and the receipts its
/// blocks committed, as (job, block).
fn stored_claims(w: &World, i: usize) -> (Placed, Placed) {
    let mut jobs = Vec::new();
    let mut claims = Vec::new();
    for b in &w.stored(i).blocks {
        let h = b.block.header.number.0;
        for r in &b.requests {
            jobs.push((JobId::from_request_digest(r.digest()), h));
        }
        for op in &b.ops {
            if let Operation::Receipt(r) = op {
                claims.push((r.terms.job, h));
            }
        }
    }
    (jobs, claims)
}

#[test]
fn receipts_are_committed_once_and_pay_partners_at_settlement() {
    let mut cfg = SimConfig::new(4, 16, 31);
    cfg.blocks_per_period = 4;
    cfg.requests_per_block = 4;
    let mut w = World::new(&cfg).unwrap();
    w.run_until(w.block_start_us(17));
    assert_same_chain(&w, 4, 16);
    let (jobs, claims) = stored_claims(&w, 0);
    assert!(jobs.len() > 20, "{} jobs", jobs.len());
    // Every job of the first 12 blocks has its receipt committed, once,
    // in a later block than the job's.
    let mut seen = std::collections::BTreeSet::new();
    for (job, b) in &claims {
        assert!(seen.insert(*job), "receipt of {job} committed twice");
        let jb = jobs.iter().find(|(j, _)| j == job).map(|(_, b)| *b);
        assert!(
            jb.is_some_and(|jb| jb < *b),
            "{job}: job {jb:?}, receipt {b}"
        );
    }
    for (job, b) in &jobs {
        if *b < 12 {
            assert!(seen.contains(job), "receipt of {job} (block {b}) missing");
        }
    }
    // Every validator's ledger paid the scripted partners the same amounts.
    let paid: Vec<TokenAmount> = (0..4)
        .map(|p| {
            let key = partner_key(cfg.seed, p).public();
            w.core(0)
                .unwrap()
                .validator()
                .ledger()
                .account(&key)
                .balance
        })
        .collect();
    assert!(paid.iter().any(|a| a.0 > 0), "{paid:?}");
    for i in 1..4 {
        for (p, a) in paid.iter().enumerate() {
            let key = partner_key(cfg.seed, p).public();
            let l = w.core(i).unwrap().validator().ledger();
            assert_eq!(l.account(&key).balance, *a, "validator {i} partner {p}");
        }
    }
    let completed: u64 = w
        .notices(0)
        .iter()
        .filter_map(|e| match e {
            NodeEvent::PeriodSettled { completed, .. } => Some(*completed),
            _ => None,
        })
        .sum();
    assert!(completed > 0, "{:?}", w.notices(0));
}

/// A world whose load sends no receipts by itself, run until its jobs of
/// block 1 are committed; one of them.
fn world_with_a_committed_job(seed: u64) -> (World, JobId) {
    let mut cfg = SimConfig::new(4, 40, seed);
    cfg.requests_per_block = 2;
    cfg.receipts = false;
    let mut w = World::new(&cfg).unwrap();
    w.run_until(w.block_start_us(4));
    let (jobs, _) = stored_claims(&w, 0);
    let job = jobs.first().map(|(j, _)| *j).expect("a committed job");
    (w, job)
}

#[test]
fn repeated_receipt_is_acknowledged_with_its_block_and_applied_once() {
    let (mut w, job) = world_with_a_committed_job(32);
    w.submit_receipt(job, &[0]).unwrap();
    w.run_until(w.block_start_us(7));
    let acks = w.completion_acks(&job);
    let (_, block, first) = *acks.first().expect("an ack from validator 0");
    assert!(first, "{acks:?}");
    // The same receipt again, to another validator, after it applied.
    w.submit_receipt(job, &[2]).unwrap();
    w.run_until(w.block_start_us(9));
    let acks = w.completion_acks(&job);
    assert!(
        acks.contains(&(2, block, false)),
        "second submission: {acks:?}"
    );
    for i in 0..4 {
        let (_, claims) = stored_claims(&w, i);
        let n = claims.iter().filter(|(j, _)| *j == job).count();
        assert_eq!(n, 1, "validator {i} committed the receipt {n} times");
    }
}

#[test]
fn forged_receipt_is_refused_and_never_committed() {
    let (mut w, job) = world_with_a_committed_job(33);
    // A receipt whose partner signature is the client's: it never verifies.
    let seed = 33;
    let env = w.stored(0).blocks.iter().find_map(|b| {
        b.requests
            .iter()
            .find(|r| JobId::from_request_digest(r.digest()) == job)
            .cloned()
    });
    let env = env.unwrap();
    let client = (0..16)
        .find(|i| client_key(seed, *i).public() == *env.sender())
        .unwrap();
    let ck = client_key(seed, client);
    let terms = undchain_types::msg::ReceiptTerms {
        chain_id: w.params().chain_id,
        job,
        commit_block: undchain_types::BlockNumber(1),
        client: ck.public(),
        partner: partner_key(seed, 0).public(),
        units: 1,
        amount: TokenAmount(1),
        finished_at: undchain_types::BlockTime(0),
    };
    let d = terms.digest();
    let forged = Receipt {
        client_sig: ck.sign_digest(&d),
        partner_sig: ck.sign_digest(&d),
        terms,
    };
    w.send_signed(client, &[0, 1, 2, 3], forged);
    w.run_until(w.block_start_us(9));
    for i in 0..4 {
        let (_, claims) = stored_claims(&w, i);
        assert!(claims.is_empty(), "validator {i} committed {claims:?}");
    }
    assert_same_chain(&w, 4, 8);
}

#[test]
fn transfer_transaction_is_committed_and_moves_tokens_everywhere() {
    let (mut w, _) = world_with_a_committed_job(34);
    let from = client_key(34, 5);
    // A key the load never uses, so only the transfer moves its balance.
    let to = partner_key(34, 99).public();
    let before = w.core(0).unwrap().validator().ledger().account(&to).balance;
    let nonce = w
        .core(0)
        .unwrap()
        .validator()
        .ledger()
        .account(&from.public())
        .nonce;
    let fee = w.params().transaction_fee;
    let tx = TransactionBody {
        chain_id: w.params().chain_id,
        sender: from.public(),
        nonce,
        fee,
        op: TxOp::Transfer {
            to,
            amount: TokenAmount(777),
        },
    }
    .sign(&from);
    w.send_signed(5, &[1], tx);
    w.run_until(w.block_start_us(8));
    for i in 0..4 {
        let l = w.core(i).unwrap().validator().ledger();
        assert_eq!(l.account(&to).balance.0, before.0 + 777, "validator {i}");
        assert_eq!(l.account(&from.public()).nonce, nonce + 1, "validator {i}");
    }
    assert_same_chain(&w, 4, 7);
}

#[test]
fn validator_cut_off_while_receipts_commit_fetches_their_operations() {
    let mut cfg = SimConfig::new(4, 20, 35);
    cfg.requests_per_block = 4;
    let mut w = World::new(&cfg).unwrap();
    let (cut_from, cut_to) = (w.block_start_us(3), w.block_start_us(10));
    w.set_filter(Box::new(move |now, from, to, _| {
        !((from == 3 || to == 3) && now >= cut_from && now < cut_to)
    }));
    w.run_until(w.block_start_us(18));
    assert_same_chain(&w, 4, 16);
    let (_, claims0) = stored_claims(&w, 0);
    let (_, claims3) = stored_claims(&w, 3);
    assert!(
        claims0.iter().any(|(_, b)| (3..10).contains(b)),
        "receipts committed while validator 3 was away: {claims0:?}"
    );
    assert_eq!(claims3, claims0);
    let r0 = w.core(0).unwrap().validator().ledger().root();
    let r3 = w.core(3).unwrap().validator().ledger().root();
    assert_eq!(r0, r3);
}
