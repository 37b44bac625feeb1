//! Helpers shared by the ledger, settlement, convergence and link tests:
//! keys, jobs, signed receipts and checkpoints, and a block driver.
#![allow(dead_code)]

use undchain_consensus::ledger::{Block, BlockOutcome, ChainEvent, Ledger, LedgerConfig, LedgerOp, Verified};
use undchain_jobfile::JobFile;
use undchain_types::msg::{PartialCompletion, Receipt, ReceiptTerms, UsageCheckpoint};
use undchain_types::{
    BlockNumber, BlockTime, BoundedVec, ChainId, Hash32, HashAlgorithm, HashContext, JobEntry,
    JobId, JobState, PublicKey, SigningKey, TokenAmount, UtilityKind, hash,
};

/// The chain of most tests.
pub const CHAIN: ChainId = ChainId(1);
/// The fee of most tests.
pub const FEE: u64 = 10;
/// Blocks per payout period in most tests.
pub const BPP: u64 = 4;

pub fn sk(n: u64) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    seed[31] = 0x5a;
    SigningKey::from_seed(seed)
}

pub fn pk(n: u64) -> PublicKey {
    sk(n).public()
}

pub fn config() -> LedgerConfig {
    LedgerConfig {
        chain_id: CHAIN,
        transaction_fee: TokenAmount(FEE),
        blocks_per_period: BPP,
        hash_algorithm: HashAlgorithm::Blake3,
    }
}

pub fn ledger(alloc: &[(u64, u64)]) -> Ledger {
    Ledger::genesis(
        config(),
        BlockNumber(0),
        alloc.iter().map(|(k, a)| (pk(*k), TokenAmount(*a))),
    )
    .unwrap()
}

pub fn job_id(n: u64) -> JobId {
    JobId(hash(HashContext::JobId, &n.to_le_bytes()))
}

/// Job `n` requested by `client`, served by `partner` (empty pool if None).
pub fn job(n: u64, client: u64, partner: Option<u64>) -> JobEntry {
    JobEntry {
        id: job_id(n),
        initiated_at: BlockTime(n),
        kind: UtilityKind::Computation,
        client_pool: BoundedVec::try_from_vec(vec![pk(client)]).unwrap(),
        partner_pool: BoundedVec::try_from_vec(partner.map(pk).into_iter().collect()).unwrap(),
        fee: TokenAmount(FEE),
        state: JobState::Started,
    }
}

pub fn file(entries: Vec<JobEntry>) -> JobFile {
    JobFile::from_entries(entries).unwrap()
}

pub fn receipt(n: u64, client: u64, partner: u64, amount: u64) -> Receipt {
    Receipt::sign(
        ReceiptTerms {
            chain_id: CHAIN,
            job: job_id(n),
            client: pk(client),
            partner: pk(partner),
            units: amount,
            amount: TokenAmount(amount),
            finished_at: BlockTime(1),
        },
        &sk(client),
        &sk(partner),
    )
}

pub fn partial(n: u64, client: u64, partner: u64, amount: u64, counter: u32) -> PartialCompletion {
    PartialCompletion {
        last_checkpoint: UsageCheckpoint {
            chain_id: CHAIN,
            job: job_id(n),
            client: pk(client),
            partner: pk(partner),
            units: amount,
            amount: TokenAmount(amount),
            counter,
            at: BlockTime(1),
        }
        .sign(&sk(client)),
    }
}

pub fn verified(l: &Ledger, op: LedgerOp) -> Verified {
    l.verify(op).unwrap()
}

/// Applies block `number` with `jobs`, `ops`, `signers`.
pub fn apply(
    l: &mut Ledger,
    number: u64,
    jobs: Vec<JobEntry>,
    ops: &[Verified],
    signers: &[PublicKey],
) -> BlockOutcome {
    let f = file(jobs);
    let b = Block {
        number: BlockNumber(number),
        jobs: &f,
        ops,
        signers,
        events: &[],
    };
    l.apply_block(&b).unwrap()
}

/// Applies block `number` with only chain events.
pub fn apply_events(l: &mut Ledger, number: u64, events: &[ChainEvent]) -> BlockOutcome {
    let f = JobFile::new();
    let b = Block {
        number: BlockNumber(number),
        jobs: &f,
        ops: &[],
        signers: &[],
        events,
    };
    l.apply_block(&b).unwrap()
}

/// Applies empty blocks up to and including `last`.
pub fn empty_until(l: &mut Ledger, last: u64, signers: &[PublicKey]) -> Vec<BlockOutcome> {
    let mut out = Vec::new();
    while l.next_block().0 <= last {
        let n = l.next_block().0;
        out.push(apply(l, n, vec![], &[], signers));
    }
    out
}

/// Conservation: every token held equals the supply counters say.
pub fn assert_conserved(l: &Ledger) {
    assert_eq!(l.total_held(), l.supply().circulating(), "tokens held != circulating supply");
}

pub fn zero_hash() -> Hash32 {
    Hash32::ZERO
}
