//! Helpers shared by the ledger, settlement, convergence and link tests:
//! keys, jobs, signed receipts and checkpoints, and a block driver.

use undchain_jobfile::JobFile;
use undchain_ledger::ledger::{
    Block, BlockOutcome, ChainEvent, Ledger, LedgerConfig, LedgerOp, Verified,
};
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
    assert_eq!(
        l.total_held(),
        l.supply().circulating(),
        "tokens held != circulating supply"
    );
}

/// A ledger of chain `chain` with `alloc`.
pub fn ledger_on(chain: ChainId, algo: HashAlgorithm, alloc: &[(u64, u64)]) -> Ledger {
    let cfg = LedgerConfig {
        chain_id: chain,
        hash_algorithm: algo,
        ..config()
    };
    Ledger::genesis(
        cfg,
        BlockNumber(0),
        alloc.iter().map(|(k, a)| (pk(*k), TokenAmount(*a))),
    )
    .unwrap()
}

/// Validator keys `first..first+n`.
pub fn validator_keys(first: u64, n: u64) -> Vec<SigningKey> {
    (first..first + n).map(sk).collect()
}

/// The set of `keys`, in order.
pub fn set_of(keys: &[SigningKey]) -> undchain_consensus::ValidatorSet {
    undchain_consensus::ValidatorSet::of_unknown(
        &keys.iter().map(|k| k.public()).collect::<Vec<_>>(),
    )
    .unwrap()
}

/// A committed header of `chain` at `number` with `ledger_root`, and a
/// commit certificate signed by `signers` (precommits for its hash).
pub fn committed_header(
    chain: ChainId,
    number: u64,
    ledger_root: Hash32,
    set_keys: &[SigningKey],
    signers: &[SigningKey],
    algo: HashAlgorithm,
) -> (
    undchain_types::BlockHeader,
    undchain_types::msg::CommitCertificate,
) {
    use undchain_types::msg::{Vote, VoteKind};
    let header = undchain_types::BlockHeader {
        chain_id: chain,
        epoch: 0,
        number: BlockNumber(number),
        time: BlockTime(number * 2_000_000),
        parent: Hash32::ZERO,
        job_root: Hash32::ZERO,
        job_count: 0,
        ledger_root,
        validator_set_hash: set_of(set_keys).hash_with(algo),
        links: Default::default(),
        parent_signers: 0,
    };
    let h = header.hash_with(algo);
    let votes: Vec<_> = signers
        .iter()
        .map(|k| {
            Vote {
                chain_id: chain,
                height: BlockNumber(number),
                round: 0,
                kind: VoteKind::Precommit,
                value: Some(h),
                validator: k.public(),
            }
            .sign(k)
        })
        .collect();
    let cert = undchain_consensus::certificate::certificate_from_precommits(
        chain,
        BlockNumber(number),
        0,
        h,
        votes.iter(),
    );
    (header, cert)
}
