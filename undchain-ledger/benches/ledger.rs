//! Ledger cost at scale (issue 11):
//!
//! * `apply_block_1000_ops`: one block of 1,000 operations (334 job commits
//!   from signed requests, 333 receipts on open jobs, 333 transfers) on a
//!   ledger holding 1,000,000 accounts and 1,000,000 open jobs;
//! * `full_root_rebuild`: the state root of that same ledger rebuilt from
//!   every leaf, in the same run (the incremental root must beat it by
//!   100x or more);
//! * `settle_period_1m_jobs`: the last block of a payout period whose
//!   payout file holds 1,000,000 jobs: 90% paid by one receipt below the
//!   escrow (the rest refunded), 5% by two partners' receipts, 3% by a
//!   partial, 2% unclaimed (carried over).
//!
//! `cargo bench -p undchain-ledger --bench ledger`
//!
//! Each figure is taken twice: group `ledger` in wall-clock time, group
//! `ledger_cpu` in the bench thread's own CPU time (`ThreadCpu`), which the
//! other work on a shared machine does not inflate.
//!
//! Signatures are checked once at submission (`verify_with`, here with a
//! verifier that accepts the bench's placeholder signatures), so no figure
//! includes ed25519. The big ledgers are built with `Ledger::from_state`.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion};
use undchain_consensus::certificate::SignatureVerifier;
use undchain_jobfile::JobFile;
use undchain_ledger::ledger::state::{Account, Claim, ClaimKind, OpenJob, Supply};
use undchain_ledger::{
    Block, Ledger, LedgerConfig, LedgerOp, LedgerState, Verified, VerifiedRequest,
};
use undchain_types::msg::{Receipt, ReceiptTerms, TransactionBody, TxOp, UtilityRequest};
use undchain_types::{
    BlockNumber, BlockTime, BoundedBytes, BoundedVec, ChainId, Envelope, Hash32, HashContext,
    JobEntry, JobId, JobState, PerceptionScore, PublicKey, Signature, SigningKey, TokenAmount,
    UtilityKind, hash,
};

const CHAIN: ChainId = ChainId(1);
const ACCOUNTS: u64 = 1_000_000;
const JOBS: u64 = 1_000_000;
const BALANCE: u64 = 1_000_000_000;
const ESCROW: u64 = 1_000;

struct TrustAll;

impl SignatureVerifier for TrustAll {
    fn verify(&mut self, _: &PublicKey, _: &Hash32, _: &Signature) -> bool {
        true
    }
}

/// Account `n`'s key: a canonical encoding taken from a hash (the ledger
/// never verifies under it here, so no key derivation); a real signing key
/// only where requests are signed.
fn account(n: u64) -> PublicKey {
    (0u64..)
        .find_map(|salt| {
            let h = hash(
                HashContext::LedgerKey,
                &[n.to_le_bytes(), salt.to_le_bytes()].concat(),
            );
            PublicKey::from_bytes(&h.0).ok()
        })
        .unwrap()
}

/// The default parameters (2 s blocks, 10 min request window, fee 10),
/// with `bpp` blocks per period.
fn config(bpp: u64) -> LedgerConfig {
    let mut c = LedgerConfig::new(CHAIN, account(u64::MAX));
    c.blocks_per_period = bpp;
    c
}

fn entry(id: JobId, client: PublicKey, partners: &[PublicKey]) -> JobEntry {
    JobEntry {
        id,
        initiated_at: BlockTime(0),
        kind: UtilityKind::Storage,
        client_pool: BoundedVec::try_from_vec(vec![client]).unwrap(),
        partner_pool: BoundedVec::try_from_vec(partners.to_vec()).unwrap(),
        fee: TokenAmount(10),
        state: JobState::Started,
    }
}

fn open_job(n: u64, clients: u64, partners: &[PublicKey], claims: Vec<Claim>) -> OpenJob {
    let id = JobId(hash(HashContext::JobId, &n.to_le_bytes()));
    let client = account(n % clients);
    let e = entry(id, client, partners);
    // Committed over the period's blocks, each at its block's time.
    let commit_block = BlockNumber(n % 7_000);
    OpenJob {
        entry_hash: e.leaf_hash(),
        entry: e,
        commit_block,
        client,
        escrow: TokenAmount(ESCROW),
        sent_at: config(1).block_start(commit_block),
        carried_from: None,
        claims,
    }
}

/// A ledger of `accounts` accounts and the given open jobs (escrow
/// consistent with them), next block `next`.
fn build(bpp: u64, accounts: u64, jobs: Vec<OpenJob>, next: u64) -> Ledger {
    let mut acc: Vec<(PublicKey, Account)> = (0..accounts)
        .map(|n| {
            let a = Account {
                balance: TokenAmount(BALANCE),
                escrow: TokenAmount::ZERO,
                nonce: 0,
            };
            (account(n), a)
        })
        .collect();
    acc.sort_unstable_by_key(|(k, _)| *k);
    for j in &jobs {
        let i = acc.binary_search_by_key(&j.client, |(k, _)| *k).unwrap();
        acc[i].1.escrow.0 += j.escrow.0;
    }
    let total: u64 = acc.iter().map(|(_, a)| a.balance.0 + a.escrow.0).sum();
    let mut jobs = jobs;
    jobs.sort_unstable_by_key(|j| j.entry.id);
    let state = LedgerState {
        next_block: BlockNumber(next),
        accounts: acc,
        jobs,
        settled: Vec::new(),
        fee_pool: TokenAmount::ZERO,
        signed: Vec::new(),
        outbound: Vec::new(),
        inbound: Vec::new(),
        domains: Vec::new(),
        supply: Supply {
            genesis: total,
            ..Supply::default()
        },
        validators: Vec::new(),
    };
    Ledger::from_state(config(bpp), state).unwrap()
}

/// The partners of every job of the block bench; each receipts a job once.
const PARTNERS: u64 = 4;

/// The big ledger of the block bench: a period long enough that no block
/// of the bench settles.
fn big_ledger() -> Ledger {
    let p: Vec<PublicKey> = (1..=PARTNERS).map(|n| account(ACCOUNTS + n)).collect();
    let jobs = (0..JOBS)
        .map(|n| open_job(n, ACCOUNTS, &p, Vec::new()))
        .collect();
    build(1 << 40, ACCOUNTS, jobs, 7_000)
}

struct BlockInput {
    jobs: JobFile,
    requests: Vec<VerifiedRequest>,
    ops: Vec<Verified>,
}

/// Block `i`'s 1,000 operations against `l`.
fn block_input(l: &Ledger, i: u64, signer: &SigningKey) -> BlockInput {
    let mut entries = Vec::new();
    let mut requests = Vec::new();
    let now = l.config().block_start(l.next_block());
    for k in 0..334u64 {
        let body = UtilityRequest {
            kind: UtilityKind::Storage,
            units: 1,
            max_price_per_unit: TokenAmount(ESCROW),
            min_partner_score: PerceptionScore::START,
            partner_threshold: 1,
            co_clients: BoundedVec::new(),
            spec: BoundedBytes::try_from_slice(b"").unwrap(),
        };
        let env = Envelope::new(signer.public(), CHAIN, i * 1_000 + k, now, body).sign(signer);
        let r = l.verify_request_with(&env, TrustAll).unwrap();
        entries.push(entry(r.job(), signer.public(), &[]));
        requests.push(r);
    }
    let mut ops = Vec::new();
    for k in 0..333u64 {
        // Every receipt of the bench is a partner's first on its job: the
        // jobs in an order that is injective over 10^6 receipts (2654435761
        // is coprime to 10^6), then again by the next partner, so any
        // number of iterations up to 12,000 blocks applies in full.
        let (round, t) = ((i * 333 + k) / JOBS, (i * 333 + k) % JOBS);
        assert!(round < PARTNERS, "the bench ran out of fresh receipts");
        let n = (t * 2_654_435_761) % JOBS;
        let id = JobId(hash(HashContext::JobId, &n.to_le_bytes()));
        let j = l.job(&id).unwrap();
        let terms = ReceiptTerms {
            chain_id: CHAIN,
            job: id,
            commit_block: j.commit_block,
            client: j.client,
            partner: j.entry.partner_pool[round as usize],
            units: 1,
            amount: TokenAmount(ESCROW / PARTNERS),
            finished_at: BlockTime(1),
        };
        let r = Receipt {
            terms,
            client_sig: Signature([0; 64]),
            partner_sig: Signature([0; 64]),
        };
        ops.push(l.verify_with(LedgerOp::Receipt(r), TrustAll).unwrap());
    }
    for k in 0..333u64 {
        let from = account((i * 333 + k) % ACCOUNTS);
        let t = TransactionBody {
            chain_id: CHAIN,
            sender: from,
            nonce: l.account(&from).nonce,
            fee: TokenAmount(10),
            op: TxOp::Transfer {
                to: account((i * 333 + k + 500_000) % ACCOUNTS),
                amount: TokenAmount(5),
            },
        };
        let t = undchain_types::msg::Transaction {
            body: t,
            signature: Signature([0; 64]),
        };
        ops.push(l.verify_with(LedgerOp::Transaction(t), TrustAll).unwrap());
    }
    BlockInput {
        jobs: JobFile::from_entries(entries).unwrap(),
        requests,
        ops,
    }
}

fn apply(l: &mut Ledger, b: &BlockInput) {
    let block = Block::new(l.next_block(), &b.jobs, &b.requests).with_ops(&b.ops);
    let out = l.apply_block(&block).unwrap();
    assert!(out.refused.is_empty(), "{:?}", out.refused.first());
}

fn block_and_rebuild(wall: &mut Criterion, cpu: &mut Criterion<ThreadCpu>) {
    let mut l = big_ledger();
    let signer = SigningKey::from_seed([7; 32]);
    // The requests' signer is funded by the first block's transfers: each
    // bench block escrows 334 x 1,010, so 16 x 500,000,000 last for 23,000
    // blocks, more than a fast run of both groups takes.
    let fund: Vec<Verified> = (0..16u64)
        .map(|n| {
            let body = TransactionBody {
                chain_id: CHAIN,
                sender: account(n),
                nonce: 0,
                fee: TokenAmount(10),
                op: TxOp::Transfer {
                    to: signer.public(),
                    amount: TokenAmount(BALANCE / 2),
                },
            };
            let t = undchain_types::msg::Transaction {
                body,
                signature: Signature([0; 64]),
            };
            l.verify_with(LedgerOp::Transaction(t), TrustAll).unwrap()
        })
        .collect();
    let empty = JobFile::new();
    let out = l
        .apply_block(&Block::new(l.next_block(), &empty, &[]).with_ops(&fund))
        .unwrap();
    assert!(out.refused.is_empty(), "{:?}", out.refused.first());
    let mut i = 1u64;
    block_group(wall, &WallTime, "ledger", &mut l, &signer, &mut i);
    block_group(cpu, &ThreadCpu, "ledger_cpu", &mut l, &signer, &mut i);
}

/// The block and rebuild benches on `l`, measured by `c`'s measurement.
fn block_group<M: Measurement>(
    c: &mut Criterion<M>,
    m: &M,
    name: &str,
    l: &mut Ledger,
    signer: &SigningKey,
    i: &mut u64,
) {
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("apply_block_1000_ops", |b| {
        b.iter_custom(|iters| {
            let mut total = m.zero();
            for _ in 0..iters {
                let input = block_input(l, *i, signer);
                *i += 1;
                let t = m.start();
                apply(l, &input);
                total = m.add(&total, &m.end(t));
            }
            total
        })
    });
    assert_eq!(l.root(), l.rebuilt_root());
    g.bench_function("full_root_rebuild", |b| b.iter(|| l.rebuilt_root()));
    g.finish();
}

fn settle(wall: &mut Criterion, cpu: &mut Criterion<ThreadCpu>) {
    // A 4 h period of 7,200 two-second blocks; the jobs were committed
    // over its blocks, so those of its last 10 minutes are remembered.
    let (clients, bpp) = (100_000u64, 7_200u64);
    let partner = |n: u64| account(ACCOUNTS * 2 + n % 100_000);
    let jobs = (0..JOBS)
        .map(|n| {
            let p = [partner(n), partner(n + 1)];
            let claim = |who: PublicKey, amount: u64, kind| Claim {
                partner: who,
                amount: TokenAmount(amount),
                kind,
                block: BlockNumber(1),
            };
            let claims = match n % 100 {
                0..90 => vec![claim(p[0], ESCROW * 3 / 4, ClaimKind::Full)],
                90..95 => {
                    let mut v = vec![
                        claim(p[0], ESCROW / 2, ClaimKind::Full),
                        claim(p[1], ESCROW / 3, ClaimKind::Full),
                    ];
                    v.sort_unstable_by_key(|c| c.partner);
                    v
                }
                95..98 => vec![claim(
                    p[0],
                    ESCROW / 4,
                    ClaimKind::Partial {
                        counter: 3,
                        units: 1,
                    },
                )],
                _ => Vec::new(),
            };
            open_job(n, clients, &p, claims)
        })
        .collect();
    let l = build(bpp, clients, jobs, bpp - 1);
    settle_group(wall, "ledger", &l, bpp);
    settle_group(cpu, "ledger_cpu", &l, bpp);
}

fn settle_group<M: Measurement>(c: &mut Criterion<M>, name: &str, l: &Ledger, bpp: u64) {
    let empty = JobFile::new();
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.bench_function("settle_period_1m_jobs", |b| {
        b.iter_batched(
            || l.clone(),
            |mut l| {
                let out = l
                    .apply_block(&Block::new(BlockNumber(bpp - 1), &empty, &[]))
                    .unwrap();
                let s = out.settlement.unwrap();
                assert_eq!(s.settled.len() + s.carried.len(), JOBS as usize);
                l
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// The bench thread's CPU time in nanoseconds (the scheduler's account in
/// `/proc/thread-self/schedstat`, kept at scheduler-tick granularity, so
/// short routines are averaged over many iterations).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat (Linux)")
}

/// Thread CPU time as a criterion measurement.
struct ThreadCpu;

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

fn main() {
    let mut wall = Criterion::default().configure_from_args();
    let mut cpu = Criterion::default()
        .with_measurement(ThreadCpu)
        .configure_from_args();
    block_and_rebuild(&mut wall, &mut cpu);
    settle(&mut wall, &mut cpu);
    wall.final_summary();
    cpu.final_summary();
}
