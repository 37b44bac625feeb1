//! Helpers shared by the ledger, settlement, convergence and link tests:
//! keys, signed requests with their job entries, receipts, checkpoints and
//! transactions, a block driver, and a foreign domain that certifies its
//! own headers.

#![allow(dead_code)]

use undchain_consensus::validator_set::ValidatorSet;
use undchain_jobfile::JobFile;
use undchain_ledger::{
    Block, BlockOutcome, Ledger, LedgerConfig, LedgerOp, Verified, VerifiedRequest,
};
use undchain_types::msg::{
    CommitCertificate, DomainRegistration, PartialCompletion, Receipt, ReceiptTerms, SeatRecord,
    SignedCheckpoint, SignedHeader, TransactionBody, TxOp, UsageCheckpoint, UtilityRequest, Vote,
    VoteKind,
};
use undchain_types::{
    BlockHeader, BlockNumber, BlockTime, BoundedBytes, BoundedVec, ChainId, Envelope, Hash32,
    HashAlgorithm, JobEntry, JobId, JobState, PerceptionScore, PublicKey, SigningKey, TokenAmount,
    Trust, UtilityKind,
};

pub const CHAIN: ChainId = ChainId(1);
pub const FEE: u64 = 10;
pub const BPP: u64 = 4;
/// The chain owner's key index.
pub const OWNER: u64 = 1000;

pub fn sk(n: u64) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    seed[31] = 0x5a;
    SigningKey::from_seed(seed)
}

pub fn pk(n: u64) -> PublicKey {
    sk(n).public()
}

pub fn config_on(chain: ChainId, algo: HashAlgorithm) -> LedgerConfig {
    let mut c = LedgerConfig::new(chain, pk(OWNER));
    c.transaction_fee = TokenAmount(FEE);
    c.blocks_per_period = BPP;
    c.hash_algorithm = algo;
    c.max_lock_blocks = 8;
    c.lock_retention_blocks = 16;
    c
}

pub fn config() -> LedgerConfig {
    config_on(CHAIN, HashAlgorithm::Blake3)
}

pub fn ledger_with(config: LedgerConfig, alloc: &[(u64, u64)]) -> Ledger {
    Ledger::genesis(
        config,
        BlockNumber(0),
        alloc.iter().map(|(k, a)| (pk(*k), TokenAmount(*a))),
    )
    .unwrap()
}

pub fn ledger(alloc: &[(u64, u64)]) -> Ledger {
    ledger_with(config(), alloc)
}

pub fn ledger_on(chain: ChainId, algo: HashAlgorithm, alloc: &[(u64, u64)]) -> Ledger {
    ledger_with(config_on(chain, algo), alloc)
}

pub fn balance(l: &Ledger, n: u64) -> u64 {
    l.account(&pk(n)).balance.0
}

pub fn escrow(l: &Ledger, n: u64) -> u64 {
    l.account(&pk(n)).escrow.0
}

/// A client's signed request, verified, with the job entry a validator
/// files for it.
#[derive(Debug, Clone)]
pub struct Req {
    pub verified: VerifiedRequest,
    pub entry: JobEntry,
}

impl Req {
    pub fn id(&self) -> JobId {
        self.entry.id
    }
}

/// Client `client` asks (envelope sequence `seq`) for `units` at most
/// `price` each, to be served by `partners`, sent at the next block's time.
pub fn request(l: &Ledger, client: u64, seq: u64, units: u64, price: u64, partners: &[u64]) -> Req {
    let at = l.config().block_start(l.next_block());
    request_at(l, client, seq, units, price, partners, at)
}

pub fn request_at(
    l: &Ledger,
    client: u64,
    seq: u64,
    units: u64,
    price: u64,
    partners: &[u64],
    sent_at: BlockTime,
) -> Req {
    let body = UtilityRequest {
        kind: UtilityKind::Computation,
        units,
        max_price_per_unit: TokenAmount(price),
        min_partner_score: PerceptionScore::START,
        partner_threshold: 1,
        co_clients: BoundedVec::new(),
        spec: BoundedBytes::try_from_slice(b"").unwrap(),
    };
    let env = Envelope::new(pk(client), l.config().chain_id, seq, sent_at, body).sign(&sk(client));
    let verified = l.verify_request(&env).unwrap();
    let entry = JobEntry {
        id: verified.job(),
        initiated_at: sent_at,
        kind: UtilityKind::Computation,
        client_pool: BoundedVec::try_from_vec(vec![pk(client)]).unwrap(),
        partner_pool: BoundedVec::try_from_vec(partners.iter().map(|p| pk(*p)).collect()).unwrap(),
        fee: l.config().transaction_fee,
        state: JobState::Started,
    };
    Req { verified, entry }
}

pub fn file(reqs: &[Req]) -> JobFile {
    JobFile::from_entries(reqs.iter().map(|r| r.entry.clone())).unwrap()
}

/// Runs the next block with `reqs` committed, `ops` and `signers`, and
/// checks that its preview gave the same outcome.
pub fn run(l: &mut Ledger, reqs: &[Req], ops: &[Verified], signers: &[PublicKey]) -> BlockOutcome {
    let f = file(reqs);
    let rs: Vec<VerifiedRequest> = reqs.iter().map(|r| r.verified.clone()).collect();
    let b = Block::new(l.next_block(), &f, &rs)
        .with_ops(ops)
        .with_signers(signers);
    let preview = l.preview(&b).unwrap();
    let out = l.apply_block(&b).unwrap();
    assert_eq!(preview, out, "preview and apply differ");
    assert_eq!(out.ledger_root, l.root());
    out
}

pub fn commit(l: &mut Ledger, reqs: &[Req]) -> BlockOutcome {
    run(l, reqs, &[], &[])
}

pub fn ops(l: &mut Ledger, ops: &[Verified]) -> BlockOutcome {
    run(l, &[], ops, &[])
}

pub fn empty(l: &mut Ledger) -> BlockOutcome {
    run(l, &[], &[], &[])
}

/// Runs empty blocks until one ends a period; its outcome.
pub fn to_period_end(l: &mut Ledger) -> BlockOutcome {
    loop {
        let out = empty(l);
        if out.settlement.is_some() {
            return out;
        }
    }
}

pub fn receipt_terms(l: &Ledger, job: JobId, partner: u64, amount: u64) -> ReceiptTerms {
    let j = l.job(&job).expect("open job");
    ReceiptTerms {
        chain_id: l.config().chain_id,
        job,
        commit_block: j.commit_block,
        client: j.client,
        partner: pk(partner),
        units: 1,
        amount: TokenAmount(amount),
        finished_at: BlockTime(1),
    }
}

/// A receipt for open job `job` signed by its client `client` and `partner`.
pub fn receipt(l: &Ledger, job: JobId, client: u64, partner: u64, amount: u64) -> Verified {
    let r = Receipt::sign(
        receipt_terms(l, job, partner, amount),
        &sk(client),
        &sk(partner),
    );
    l.verify(LedgerOp::Receipt(r)).unwrap()
}

pub fn checkpoint(
    l: &Ledger,
    job: JobId,
    client: u64,
    partner: u64,
    amount: u64,
    counter: u32,
) -> SignedCheckpoint {
    let j = l.job(&job).expect("open job");
    UsageCheckpoint {
        chain_id: l.config().chain_id,
        job,
        commit_block: j.commit_block,
        client: pk(client),
        partner: pk(partner),
        units: amount,
        amount: TokenAmount(amount),
        counter,
        at: BlockTime(1),
    }
    .sign(&sk(client))
}

/// A partial completion of `job` claimed by `partner`.
pub fn partial(
    l: &Ledger,
    job: JobId,
    client: u64,
    partner: u64,
    amount: u64,
    counter: u32,
) -> Verified {
    let p = PartialCompletion::sign(
        checkpoint(l, job, client, partner, amount, counter),
        &sk(partner),
    );
    l.verify(LedgerOp::Partial(p)).unwrap()
}

/// A transaction of `sender` at its current nonce paying the chain's fee.
pub fn tx(l: &Ledger, sender: u64, op: TxOp) -> Verified {
    let nonce = l.account(&pk(sender)).nonce;
    tx_nonce(l, sender, nonce, op)
}

pub fn tx_nonce(l: &Ledger, sender: u64, nonce: u64, op: TxOp) -> Verified {
    let t = TransactionBody {
        chain_id: l.config().chain_id,
        sender: pk(sender),
        nonce,
        fee: l.config().transaction_fee,
        op,
    }
    .sign(&sk(sender));
    l.verify(LedgerOp::Transaction(t)).unwrap()
}

pub fn transfer(to: u64, amount: u64) -> TxOp {
    TxOp::Transfer {
        to: pk(to),
        amount: TokenAmount(amount),
    }
}

/// Tokens held equal the circulating supply, and the incremental root
/// equals a rebuild from every leaf.
pub fn assert_conserved(l: &Ledger) {
    assert_eq!(
        l.total_held(),
        l.supply().circulating(),
        "tokens held != circulating supply"
    );
    assert_eq!(
        l.root(),
        l.rebuilt_root(),
        "incremental root != full rebuild"
    );
}

/// Another domain: its own ledger and validators, certifying its headers.
pub struct Foreign {
    pub ledger: Ledger,
    pub keys: Vec<SigningKey>,
}

pub fn seats(keys: &[SigningKey]) -> BoundedVec<SeatRecord, 10> {
    BoundedVec::try_from_vec(
        keys.iter()
            .map(|k| SeatRecord {
                id: k.public(),
                trust: Trust::Unknown,
                filling_unknown: false,
            })
            .collect(),
    )
    .unwrap()
}

pub fn set_of(keys: &[SigningKey]) -> ValidatorSet {
    ValidatorSet::of_unknown(&keys.iter().map(|k| k.public()).collect::<Vec<_>>()).unwrap()
}

/// Validator keys `first..first + n`.
pub fn validator_keys(first: u64, n: u64) -> Vec<SigningKey> {
    (first..first + n).map(sk).collect()
}

/// A header of `chain` at `number` (time `number` x 2 s) naming the set of
/// `set_keys`, certified by `signers`.
pub fn signed_header(
    chain: ChainId,
    algo: HashAlgorithm,
    number: u64,
    ledger_root: Hash32,
    set_keys: &[SigningKey],
    signers: &[SigningKey],
) -> SignedHeader {
    let header = BlockHeader {
        chain_id: chain,
        epoch: 0,
        number: BlockNumber(number),
        time: BlockTime(number * 2_000_000),
        parent: Hash32::ZERO,
        job_root: Hash32::ZERO,
        job_count: 0,
        ops_root: Hash32::ZERO,
        ops_count: 0,
        ledger_root,
        validator_set_hash: set_of(set_keys).hash_with(algo),
        links: Default::default(),
        parent_signers: 0,
        evidence: Default::default(),
    };
    let certificate = certify(&header, algo, signers);
    SignedHeader {
        header,
        certificate,
    }
}

pub fn certify(
    header: &BlockHeader,
    algo: HashAlgorithm,
    signers: &[SigningKey],
) -> CommitCertificate {
    let h = header.hash_with(algo);
    let votes: Vec<_> = signers
        .iter()
        .map(|k| {
            Vote {
                chain_id: header.chain_id,
                height: header.number,
                round: 0,
                kind: VoteKind::Precommit,
                value: Some(h),
                validator: k.public(),
            }
            .sign(k)
        })
        .collect();
    undchain_consensus::certificate::certificate_from_precommits(
        header.chain_id,
        header.number,
        0,
        h,
        votes.iter(),
    )
}

impl Foreign {
    pub fn new(chain: ChainId, algo: HashAlgorithm, alloc: &[(u64, u64)], first_key: u64) -> Self {
        Foreign {
            ledger: ledger_on(chain, algo, alloc),
            keys: validator_keys(first_key, 4),
        }
    }

    pub fn chain(&self) -> ChainId {
        self.ledger.config().chain_id
    }

    pub fn algo(&self) -> HashAlgorithm {
        self.ledger.config().hash_algorithm
    }

    /// The header of the last applied block, certified by all validators.
    pub fn header(&self) -> SignedHeader {
        let n = self.ledger.next_block().0 - 1;
        signed_header(
            self.chain(),
            self.algo(),
            n,
            self.ledger.root(),
            &self.keys,
            &self.keys,
        )
    }

    /// A registration of this domain trusting its last header.
    pub fn registration(&self, trusting_period_us: u64) -> DomainRegistration {
        DomainRegistration {
            algorithm: self.algo(),
            trusting_period_us,
            header: self.header().header,
            seats: seats(&self.keys),
        }
    }
}
