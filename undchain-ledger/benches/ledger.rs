//! Ledger throughput: applying a block of 100,000 jobs (fees, payout-file
//! commit, state root) and settling a payout period of 1,000,000 jobs (95%
//! paid in full, 5% partially, the rest carried over), beside a plain
//! `BTreeMap` doing the same balance moves as the peer.
//!
//! `cargo bench -p undchain-ledger --bench ledger`
//!
//! Receipts are built with placeholder signatures and admitted with a
//! verifier that accepts them: signatures are checked once at submission
//! (`Ledger::verify`), and neither block application nor settlement does
//! cryptography, so neither figure includes it.

use std::collections::BTreeMap;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use undchain_consensus::certificate::SignatureVerifier;
use undchain_jobfile::JobFile;
use undchain_ledger::ledger::{Block, Ledger, LedgerConfig, LedgerOp, Verified};
use undchain_types::msg::{PartialCompletion, Receipt, ReceiptTerms, UsageCheckpoint};
use undchain_types::{
    BlockNumber, BlockTime, BoundedVec, ChainId, Hash32, HashAlgorithm, HashContext, JobEntry,
    JobId, JobState, PublicKey, Signature, SigningKey, TokenAmount, UtilityKind, hash,
};

const CHAIN: ChainId = ChainId(1);
const FEE: u64 = 10;
const BLOCK_JOBS: u64 = 100_000;
const PERIOD_JOBS: u64 = 1_000_000;
const CLIENTS: u64 = 10_000;
const PARTNERS: u64 = 10_000;
const BPP: u64 = 32;

/// Accepts every signature: the bench's operations are valid by
/// construction and signature cost is not what is measured.
struct TrustAll;

impl SignatureVerifier for TrustAll {
    fn verify(&mut self, _: &PublicKey, _: &Hash32, _: &Signature) -> bool {
        true
    }
}

struct Parties {
    clients: Vec<PublicKey>,
    partners: Vec<PublicKey>,
}

fn parties() -> Parties {
    let key = |tag: u8, n: u64| {
        let mut seed = [tag; 32];
        seed[..8].copy_from_slice(&n.to_le_bytes());
        SigningKey::from_seed(seed).public()
    };
    Parties {
        clients: (0..CLIENTS).map(|n| key(1, n)).collect(),
        partners: (0..PARTNERS).map(|n| key(2, n)).collect(),
    }
}

fn config() -> LedgerConfig {
    LedgerConfig {
        chain_id: CHAIN,
        transaction_fee: TokenAmount(FEE),
        blocks_per_period: BPP,
        hash_algorithm: HashAlgorithm::Blake3,
    }
}

fn genesis(p: &Parties) -> Ledger {
    Ledger::genesis(
        config(),
        BlockNumber(0),
        p.clients.iter().map(|c| (*c, TokenAmount(1_000_000_000))),
    )
    .unwrap()
}

fn job(p: &Parties, n: u64) -> JobEntry {
    JobEntry {
        id: JobId(hash(HashContext::JobId, &n.to_le_bytes())),
        initiated_at: BlockTime(n),
        kind: UtilityKind::Storage,
        client_pool: BoundedVec::try_from_vec(vec![p.clients[(n % CLIENTS) as usize]]).unwrap(),
        partner_pool: BoundedVec::try_from_vec(vec![p.partners[(n % PARTNERS) as usize]]).unwrap(),
        fee: TokenAmount(FEE),
        state: JobState::Started,
    }
}

fn op(l: &Ledger, p: &Parties, n: u64) -> Option<Verified> {
    let e = job(p, n);
    let (client, partner) = (e.client_pool[0], e.partner_pool[0]);
    let amount = TokenAmount(100 + n % 50);
    let op = match n % 100 {
        0..95 => LedgerOp::Receipt(Receipt {
            terms: ReceiptTerms {
                chain_id: CHAIN,
                job: e.id,
                client,
                partner,
                units: 1,
                amount,
                finished_at: BlockTime(n),
            },
            client_sig: Signature([0; 64]),
            partner_sig: Signature([0; 64]),
        }),
        95..98 => LedgerOp::Partial(PartialCompletion {
            last_checkpoint: UsageCheckpoint {
                chain_id: CHAIN,
                job: e.id,
                client,
                partner,
                units: 1,
                amount: TokenAmount(amount.0 / 2),
                counter: 1,
                at: BlockTime(n),
            }
            .sign_placeholder(),
        }),
        _ => return None,
    };
    Some(l.verify_with(op, TrustAll).unwrap())
}

trait Placeholder {
    fn sign_placeholder(self) -> undchain_types::msg::SignedCheckpoint;
}

impl Placeholder for UsageCheckpoint {
    fn sign_placeholder(self) -> undchain_types::msg::SignedCheckpoint {
        undchain_types::msg::SignedCheckpoint {
            checkpoint: self,
            client_sig: Signature([0; 64]),
        }
    }
}

/// The ledger just before the last block of a period whose payout file
/// holds `PERIOD_JOBS` jobs with their receipts and partials recorded.
fn period_ledger(p: &Parties) -> Ledger {
    let mut l = genesis(p);
    let per_block = BLOCK_JOBS;
    let blocks = PERIOD_JOBS / per_block;
    for b in 0..blocks {
        let f =
            JobFile::from_entries((b * per_block..(b + 1) * per_block).map(|n| job(p, n))).unwrap();
        l.apply_block(&Block::jobs(BlockNumber(b), &f)).unwrap();
    }
    let empty = JobFile::new();
    for b in 0..blocks {
        let ops: Vec<Verified> = (b * per_block..(b + 1) * per_block)
            .filter_map(|n| op(&l, p, n))
            .collect();
        let block = Block {
            number: l.next_block(),
            jobs: &empty,
            ops: &ops,
            signers: &[],
            events: &[],
        };
        let out = l.apply_block(&block).unwrap();
        assert!(out.refused.is_empty());
    }
    while l.next_block().0 < BPP - 1 {
        l.apply_block(&Block::jobs(l.next_block(), &empty)).unwrap();
    }
    assert_eq!(l.payout().len() as u64, PERIOD_JOBS);
    l
}

fn bench(c: &mut Criterion) {
    let p = parties();
    let validators: Vec<PublicKey> = (0..7u8)
        .map(|i| SigningKey::from_seed([200 + i; 32]).public())
        .collect();

    // A block of 100,000 jobs on a ledger of 10,000 funded clients.
    let base = genesis(&p);
    let file = JobFile::from_entries((0..BLOCK_JOBS).map(|n| job(&p, n))).unwrap();
    let block = Block {
        number: BlockNumber(0),
        jobs: &file,
        ops: &[],
        signers: &validators,
        events: &[],
    };
    let mut g = c.benchmark_group("ledger_apply_block");
    g.throughput(Throughput::Elements(BLOCK_JOBS));
    g.sample_size(10);
    g.bench_function("100k_jobs", |b| {
        b.iter_batched(
            || base.clone(),
            |mut l| {
                let out = l.apply_block(&block).unwrap();
                (l, out)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // The last block of a period of 1,000,000 jobs: settlement.
    let period = period_ledger(&p);
    let empty = JobFile::new();
    let last = Block {
        number: period.next_block(),
        jobs: &empty,
        ops: &[],
        signers: &validators,
        events: &[],
    };
    // The peer: the same balance moves (escrow out, partner in) on a plain
    // map of 20,000 accounts, without payout file, fees or state root.
    let claims: Vec<(PublicKey, PublicKey, u64)> = period
        .claims()
        .values()
        .map(|c| (c.client, c.partner, c.amount.0))
        .collect();
    let mut plain: BTreeMap<PublicKey, (u64, u64)> = BTreeMap::new();
    for (cl, _, a) in &claims {
        plain.entry(*cl).or_insert((0, 0)).1 += a;
    }
    let mut g = c.benchmark_group("ledger_settle_period");
    g.throughput(Throughput::Elements(PERIOD_JOBS));
    g.sample_size(10);
    g.bench_function("1m_jobs", |b| {
        b.iter_batched(
            || period.clone(),
            |mut l| {
                let out = l.apply_block(&last).unwrap();
                assert!(out.settlement.is_some());
                (l, out)
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("btreemap_peer_1m_moves", |b| {
        b.iter_batched(
            || plain.clone(),
            |mut m| {
                for (cl, pa, a) in &claims {
                    if let Some(x) = m.get_mut(cl) {
                        x.1 -= a;
                    }
                    m.entry(*pa).or_insert((0, 0)).0 += a;
                }
                m
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
