//! The ledger: accounts (balance, escrow, nonce), the per-job transaction
//! fee, receipts and partial completions over the payout file, domain-link
//! steps, and the Merkle state root that goes into every block header
//! (design notes, client story step 3, partner story "utility complete",
//! validator story items 5 and 9; DESIGN.md "Client to validator" step 5,
//! "Payout file", "Domain link"; docs/PROTOCOL.md "Ledger, payouts,
//! convergence and links").
//!
//! Money moves at four moments, and only there:
//!
//! * **Job commit** (a block's job file): the requester (first of the
//!   client pool) pays the chain's transaction fee into the period's fee
//!   pool. A block whose requesters cannot all pay is refused as a whole;
//!   proposers leave such jobs out ([`Ledger::unaffordable_jobs`]).
//! * **Receipt or partial completion**: the amount moves from the client's
//!   balance into its escrow (`reserved`) and the payout file's completion
//!   column records the block. The first counts; a second is refused with
//!   [`LedgerError::AlreadyCompleted`] naming the block of the first.
//! * **Period end** (the last block of a payout period): escrow goes to the
//!   partners, the fee pool goes pro rata to the validators that signed the
//!   period's blocks ([`crate::settle`]), open jobs carry over once and are
//!   cancelled the period after (fee only).
//! * **Domain link** steps and chain-owner events (minting, domain
//!   registration).
//!
//! A block is [`Ledger::preview`]ed (dry run: the root for the proposal, the
//! check of someone else's proposal) or [`Ledger::apply_block`]ed; both run
//! the same code over a copy-on-write overlay of the touched state, so a
//! refused block or operation changes nothing. Operations are verified
//! (signatures, certificates, proofs) once when submitted
//! ([`Ledger::verify`]); a block carries only [`Verified`] ones and refuses
//! an operation that no longer fits the state with a typed error in its
//! outcome, leaving everything else of the block in force.
//!
//! ```
//! use undchain_ledger::ledger::{Block, Ledger, LedgerConfig, LedgerOp};
//! use undchain_jobfile::JobFile;
//! use undchain_types::msg::{Receipt, ReceiptTerms};
//! use undchain_types::{
//!     BlockNumber, BlockTime, BoundedVec, ChainId, Hash32, HashAlgorithm, JobEntry, JobId,
//!     JobState, SigningKey, TokenAmount, UtilityKind,
//! };
//!
//! let (client, partner) = (SigningKey::from_seed([1; 32]), SigningKey::from_seed([2; 32]));
//! let config = LedgerConfig {
//!     chain_id: ChainId(1),
//!     transaction_fee: TokenAmount(10),
//!     blocks_per_period: 2,
//!     hash_algorithm: HashAlgorithm::Blake3,
//! };
//! let mut ledger =
//!     Ledger::genesis(config, BlockNumber(0), [(client.public(), TokenAmount(500))]).unwrap();
//! let job = JobEntry {
//!     id: JobId::from_request_digest(&Hash32([7; 32])),
//!     initiated_at: BlockTime(0),
//!     kind: UtilityKind::Storage,
//!     client_pool: BoundedVec::try_from_vec(vec![client.public()]).unwrap(),
//!     partner_pool: BoundedVec::try_from_vec(vec![partner.public()]).unwrap(),
//!     fee: TokenAmount(10),
//!     state: JobState::Started,
//! };
//! let terms = ReceiptTerms {
//!     chain_id: ChainId(1),
//!     job: job.id,
//!     client: client.public(),
//!     partner: partner.public(),
//!     units: 1,
//!     amount: TokenAmount(100),
//!     finished_at: BlockTime(1),
//! };
//! // Verified once on submission; the block commits the job and completes it.
//! let receipt = ledger.verify(LedgerOp::Receipt(Receipt::sign(terms, &client, &partner))).unwrap();
//! let jobs = JobFile::from_entries([job]).unwrap();
//! let ops = [receipt];
//! let block = Block { number: BlockNumber(0), jobs: &jobs, ops: &ops, signers: &[], events: &[] };
//! let out = ledger.apply_block(&block).unwrap();
//! assert_eq!(out.ledger_root, ledger.root());
//! // Block 1 ends the period: the partner is paid.
//! let empty = JobFile::new();
//! let out = ledger.apply_block(&Block::jobs(BlockNumber(1), &empty)).unwrap();
//! assert_eq!(out.settlement.unwrap().paid, TokenAmount(100));
//! assert_eq!(ledger.account(&partner.public()).balance, TokenAmount(100));
//! assert_eq!(ledger.account(&client.public()).balance, TokenAmount(390));
//! ```

pub(crate) mod exec;
pub mod ops;
pub mod root;

use std::collections::BTreeMap;

use undchain_jobfile::{Completion, JobFile, PayoutError, PayoutFile};
use undchain_types::msg::{DomainTransferTerms, MerkleProof};
use undchain_types::{
    BlockNumber, ChainId, ChainParams, Hash32, HashAlgorithm, JobId, PayoutPeriod, PublicKey,
    TokenAmount,
};

use crate::links::domain_link::{DomainInfo, DomainLinkError, DomainRegistry, verify_proof};
use crate::settle::Settlement;
use undchain_consensus::certificate::{SignatureVerifier, StrictVerifier};

pub use ops::{ChainEvent, LedgerOp, Verified};
pub use root::{Account, InboundState, LeafKey, Meta, OutboundState, Supply};

/// The chain settings the ledger depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    /// This chain.
    pub chain_id: ChainId,
    /// Fee per job ([`ChainParams::transaction_fee`]).
    pub transaction_fee: TokenAmount,
    /// Blocks per payout period.
    pub blocks_per_period: u64,
    /// Hash algorithm of the state root.
    pub hash_algorithm: HashAlgorithm,
}

impl LedgerConfig {
    /// The settings of `params`.
    pub fn from_params(params: &ChainParams) -> Self {
        LedgerConfig {
            chain_id: params.chain_id,
            transaction_fee: params.transaction_fee,
            blocks_per_period: params.blocks_per_period().max(1),
            hash_algorithm: params.hash_algorithm,
        }
    }

    /// The payout period of block `b`.
    pub fn period_of(&self, b: BlockNumber) -> PayoutPeriod {
        PayoutPeriod(b.0 / self.blocks_per_period.max(1))
    }

    /// Whether `b` is the last block of its payout period.
    pub fn ends_period(&self, b: BlockNumber) -> bool {
        (b.0 + 1) % self.blocks_per_period.max(1) == 0
    }
}

/// What a completed job owes: recorded with the receipt (or partial), paid
/// at the period's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    /// The paying client (its escrow holds `amount`).
    pub client: PublicKey,
    /// The partner paid.
    pub partner: PublicKey,
    /// The amount.
    pub amount: TokenAmount,
    /// Whether it pays a partial completion (the proven part).
    pub partial: bool,
}

/// Why an operation was refused. A refused operation changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Signed for another chain.
    #[error("signed for {got}, this chain is {expected}")]
    WrongChain {
        /// This chain.
        expected: ChainId,
        /// The chain named.
        got: ChainId,
    },
    /// A signature does not verify.
    #[error("signature of {signer:?} does not verify")]
    BadSignature {
        /// Whose signature.
        signer: PublicKey,
    },
    /// The job is not in the payout file (nor in the block's job file).
    #[error("job {job} is not committed")]
    UnknownJob {
        /// The job.
        job: JobId,
    },
    /// The job already has its completion (the first receipt counts).
    #[error("job {job} is already {state:?}")]
    AlreadyCompleted {
        /// The job.
        job: JobId,
        /// Its completion, with the block that recorded it.
        state: Completion,
    },
    /// The paying client is not in the job's client pool.
    #[error("{client:?} is not a client of job {job}")]
    NotAClient {
        /// The job.
        job: JobId,
        /// The key named as client.
        client: PublicKey,
    },
    /// The partner is not in the job's (non-empty) partner pool.
    #[error("{partner:?} is not a partner of job {job}")]
    NotAPartner {
        /// The job.
        job: JobId,
        /// The key named as partner.
        partner: PublicKey,
    },
    /// The payer's balance does not cover the amount.
    #[error("{account:?} holds {available}, needs {needed}")]
    InsufficientBalance {
        /// The payer.
        account: PublicKey,
        /// What it needs.
        needed: TokenAmount,
        /// What it holds.
        available: TokenAmount,
    },
    /// A transfer with another nonce than the account's next.
    #[error("{account:?} expects nonce {expected}, got {got}")]
    BadNonce {
        /// The account.
        account: PublicKey,
        /// Its next nonce.
        expected: u64,
        /// The transfer's.
        got: u64,
    },
    /// A credit or mint would overflow the supply.
    #[error("amount overflows the token supply")]
    Overflow,
    /// A domain-link step was refused.
    #[error("domain link: {0}")]
    Domain(#[from] DomainLinkError),
}

/// Why a whole block was refused. A refused block changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Blocks apply in order, every number once (empty blocks too, so that
    /// period ends are never skipped).
    #[error("expected block {expected}, got {got}")]
    OutOfOrder {
        /// The next block.
        expected: BlockNumber,
        /// The block given.
        got: BlockNumber,
    },
    /// A job of the file is already in the payout file.
    #[error("job {job} is already committed")]
    JobAlreadyCommitted {
        /// The job.
        job: JobId,
    },
    /// A job carries another fee than the chain's.
    #[error("job {job} carries fee {fee}, the chain's is {expected}")]
    WrongFee {
        /// The job.
        job: JobId,
        /// Its fee.
        fee: TokenAmount,
        /// The chain's.
        expected: TokenAmount,
    },
    /// A job with an empty client pool (nobody pays the fee).
    #[error("job {job} has no client")]
    NoClient {
        /// The job.
        job: JobId,
    },
    /// A requester cannot pay the fees of its jobs in the block.
    #[error("{payer:?} owes {needed} in fees, holds {available}")]
    UnaffordableFees {
        /// The requester.
        payer: PublicKey,
        /// Fees of its jobs in the block.
        needed: TokenAmount,
        /// Its balance.
        available: TokenAmount,
    },
    /// A chain event cannot apply.
    #[error("chain event {index}: {error}")]
    Event {
        /// Its index in the block.
        index: usize,
        /// Why.
        error: LedgerError,
    },
    /// The payout file refused the job file.
    #[error("payout file: {0}")]
    Payout(#[from] PayoutError),
    /// Totals overflow.
    #[error("block totals overflow")]
    Overflow,
}

/// Why a genesis allocation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// An account listed twice.
    #[error("account {account:?} is allocated twice")]
    Duplicate {
        /// The account.
        account: PublicKey,
    },
    /// The allocations overflow the supply.
    #[error("allocations overflow the token supply")]
    Overflow,
}

/// One block as the ledger applies it.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    /// Its number.
    pub number: BlockNumber,
    /// Its committed job file.
    pub jobs: &'a JobFile,
    /// Verified user operations, in block order.
    pub ops: &'a [Verified],
    /// Active validators that signed (a block's `parent_signers` mapped
    /// through the parent's set); they share the period's fees.
    pub signers: &'a [PublicKey],
    /// Chain-owner events, applied first.
    pub events: &'a [ChainEvent],
}

impl<'a> Block<'a> {
    /// A block with only a job file.
    pub fn jobs(number: BlockNumber, jobs: &'a JobFile) -> Self {
        Block {
            number,
            jobs,
            ops: &[],
            signers: &[],
            events: &[],
        }
    }
}

/// What one accepted operation did (the host answers the submitter from
/// it: client story step 5's block number of completion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A receipt completed the job in this block.
    Completed {
        /// The job.
        job: JobId,
        /// The block.
        block: BlockNumber,
    },
    /// A partial completion recorded the proven part.
    Partial {
        /// The job.
        job: JobId,
        /// The block.
        block: BlockNumber,
        /// The proven amount.
        amount: TokenAmount,
    },
    /// A domain transfer was locked here (source).
    Locked {
        /// The transfer.
        id: Hash32,
    },
    /// A domain transfer was credited here (target).
    Credited {
        /// The transfer.
        id: Hash32,
    },
    /// A domain transfer was recorded as expired here (target).
    Expired {
        /// The transfer.
        id: Hash32,
    },
    /// A domain transfer was refunded here (source).
    Refunded {
        /// The transfer.
        id: Hash32,
    },
}

/// An operation of the block that was refused (and changed nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Its index among the block's operations.
    pub index: usize,
    /// Its id.
    pub op: Hash32,
    /// Why.
    pub error: LedgerError,
}

/// The result of a block.
#[derive(Debug, Clone)]
pub struct BlockOutcome {
    /// The block.
    pub number: BlockNumber,
    /// The state root after it (the header's `ledger_root`).
    pub ledger_root: Hash32,
    /// Accepted operations, in order.
    pub applied: Vec<Applied>,
    /// Refused operations, in order.
    pub refused: Vec<Refused>,
    /// Fees the block's jobs paid.
    pub fees_collected: TokenAmount,
    /// The period's settlement, if the block ended one.
    pub settlement: Option<Settlement>,
}

/// The ledger of one chain.
#[derive(Debug, Clone)]
pub struct Ledger {
    config: LedgerConfig,
    next_block: BlockNumber,
    accounts: BTreeMap<PublicKey, Account>,
    payout: PayoutFile,
    claims: BTreeMap<JobId, Claim>,
    fee_pool: TokenAmount,
    signed: BTreeMap<PublicKey, u64>,
    outbound: BTreeMap<Hash32, (DomainTransferTerms, OutboundState)>,
    inbound: BTreeMap<Hash32, InboundState>,
    domains: DomainRegistry,
    supply: Supply,
    ops_digest: Hash32,
    leaves: BTreeMap<LeafKey, [u8; 32]>,
    root: Hash32,
}

/// The ledger's content, without caches: what two validators must agree on,
/// and what a convergence genesis carries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LedgerState {
    /// The next block.
    pub next_block: BlockNumber,
    /// Accounts, by key.
    pub accounts: Vec<(PublicKey, Account)>,
    /// Fees collected and not yet paid.
    pub fee_pool: TokenAmount,
    /// Blocks signed per validator in the current period.
    pub signed: Vec<(PublicKey, u64)>,
    /// Outgoing domain transfers.
    pub outbound: Vec<(DomainTransferTerms, OutboundState)>,
    /// Incoming domain transfers.
    pub inbound: Vec<(Hash32, InboundState)>,
    /// Registered domains.
    pub domains: Vec<(ChainId, DomainInfo)>,
    /// Supply counters.
    pub supply: Supply,
    /// Running digest of applied operations.
    pub ops_digest: Hash32,
}

impl Ledger {
    /// The ledger at a first genesis: `allocations` credited, the first
    /// block to apply is `start`.
    pub fn genesis(
        config: LedgerConfig,
        start: BlockNumber,
        allocations: impl IntoIterator<Item = (PublicKey, TokenAmount)>,
    ) -> Result<Self, GenesisError> {
        let mut accounts = BTreeMap::new();
        let mut total: u64 = 0;
        for (id, amount) in allocations {
            total = total.checked_add(amount.0).ok_or(GenesisError::Overflow)?;
            let acct = Account {
                balance: amount,
                ..Account::default()
            };
            if accounts.insert(id, acct).is_some() {
                return Err(GenesisError::Duplicate { account: id });
            }
        }
        accounts.retain(|_, a: &mut Account| !a.is_empty());
        let payout = PayoutFile::new(config.period_of(start), config.blocks_per_period);
        let mut l = Ledger {
            config,
            next_block: start,
            accounts,
            payout,
            claims: BTreeMap::new(),
            fee_pool: TokenAmount::ZERO,
            signed: BTreeMap::new(),
            outbound: BTreeMap::new(),
            inbound: BTreeMap::new(),
            domains: BTreeMap::new(),
            supply: Supply {
                genesis: total,
                ..Supply::default()
            },
            ops_digest: Hash32::ZERO,
            leaves: BTreeMap::new(),
            root: Hash32::ZERO,
        };
        l.rebuild_leaves();
        Ok(l)
    }

    /// Rebuilds a ledger from its state and open payout file (convergence).
    pub(crate) fn from_parts(config: LedgerConfig, state: LedgerState, payout: PayoutFile) -> Self {
        let mut l = Ledger {
            config,
            next_block: state.next_block,
            accounts: state.accounts.into_iter().collect(),
            payout,
            claims: BTreeMap::new(),
            fee_pool: state.fee_pool,
            signed: state.signed.into_iter().collect(),
            outbound: state
                .outbound
                .into_iter()
                .map(|(t, s)| (t.id(), (t, s)))
                .collect(),
            inbound: state.inbound.into_iter().collect(),
            domains: state.domains.into_iter().collect(),
            supply: state.supply,
            ops_digest: state.ops_digest,
            leaves: BTreeMap::new(),
            root: Hash32::ZERO,
        };
        l.rebuild_leaves();
        l
    }

    fn meta(&self) -> Meta {
        Meta {
            chain_id: self.config.chain_id,
            next_block: self.next_block.0,
            fee_pool: self.fee_pool,
            supply: self.supply,
            signed_blocks: exec::tally_hash(self.config.hash_algorithm, &self.signed),
            ops_digest: self.ops_digest,
        }
    }

    fn rebuild_leaves(&mut self) {
        let algo = self.config.hash_algorithm;
        let mut leaves = BTreeMap::new();
        leaves.insert(LeafKey::Meta, root::Leaf::Meta(&self.meta()).hash(algo).0);
        for (id, account) in &self.accounts {
            leaves.insert(
                LeafKey::Account(*id),
                root::Leaf::Account { id, account }.hash(algo).0,
            );
        }
        for (id, (terms, state)) in &self.outbound {
            leaves.insert(
                LeafKey::Outbound(*id),
                root::Leaf::Outbound {
                    terms,
                    state: *state,
                }
                .hash(algo)
                .0,
            );
        }
        for (id, state) in &self.inbound {
            leaves.insert(
                LeafKey::Inbound(*id),
                root::Leaf::Inbound { id, state: *state }.hash(algo).0,
            );
        }
        for (chain, info) in &self.domains {
            let h = info.hash_with(algo);
            leaves.insert(
                LeafKey::Domain(*chain),
                root::Leaf::Domain { chain, info: &h }.hash(algo).0,
            );
        }
        let flat: Vec<[u8; 32]> = leaves.values().copied().collect();
        self.root = root::merkle_root(algo, &flat);
        self.leaves = leaves;
    }

    /// The settings.
    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    /// The next block to apply.
    pub fn next_block(&self) -> BlockNumber {
        self.next_block
    }

    /// The state root after the last applied block.
    pub fn root(&self) -> Hash32 {
        self.root
    }

    /// `id`'s account (empty if it holds nothing).
    pub fn account(&self, id: &PublicKey) -> Account {
        self.accounts.get(id).copied().unwrap_or_default()
    }

    /// Every non-empty account, by key.
    pub fn accounts(&self) -> impl Iterator<Item = (&PublicKey, &Account)> {
        self.accounts.iter()
    }

    /// The open payout file (the current period's).
    pub fn payout(&self) -> &PayoutFile {
        &self.payout
    }

    /// Recorded completions awaiting the period's settlement.
    pub fn claims(&self) -> &BTreeMap<JobId, Claim> {
        &self.claims
    }

    /// Fees collected and not yet paid to validators.
    pub fn fee_pool(&self) -> TokenAmount {
        self.fee_pool
    }

    /// Blocks signed per validator in the current period.
    pub fn signed_blocks(&self) -> &BTreeMap<PublicKey, u64> {
        &self.signed
    }

    /// Supply counters.
    pub fn supply(&self) -> Supply {
        self.supply
    }

    /// Every token held on this chain: balances, escrow and the fee pool.
    /// Equals [`Supply::circulating`] at all times.
    pub fn total_held(&self) -> u128 {
        self.accounts
            .values()
            .map(|a| u128::from(a.balance.0) + u128::from(a.reserved.0))
            .sum::<u128>()
            + u128::from(self.fee_pool.0)
    }

    /// Registered foreign domains.
    pub fn domains(&self) -> &DomainRegistry {
        &self.domains
    }

    /// An outgoing domain transfer.
    pub fn outbound(&self, id: &Hash32) -> Option<&(DomainTransferTerms, OutboundState)> {
        self.outbound.get(id)
    }

    /// An incoming domain transfer's record.
    pub fn inbound(&self, id: &Hash32) -> Option<InboundState> {
        self.inbound.get(id).copied()
    }

    /// The running digest of applied operations.
    pub fn ops_digest(&self) -> Hash32 {
        self.ops_digest
    }

    /// The inclusion proof of leaf `key` under [`Ledger::root`] (what a
    /// domain-link proof carries to the other domain).
    pub fn prove(&self, key: &LeafKey) -> Option<MerkleProof> {
        let index = self.leaves.keys().position(|k| k == key)?;
        let flat: Vec<[u8; 32]> = self.leaves.values().copied().collect();
        root::merkle_proof(self.config.hash_algorithm, &flat, index)
    }

    /// The ledger's content without caches.
    pub fn state(&self) -> LedgerState {
        LedgerState {
            next_block: self.next_block,
            accounts: self.accounts.iter().map(|(k, a)| (*k, *a)).collect(),
            fee_pool: self.fee_pool,
            signed: self.signed.iter().map(|(k, n)| (*k, *n)).collect(),
            outbound: self.outbound.values().cloned().collect(),
            inbound: self.inbound.iter().map(|(k, s)| (*k, *s)).collect(),
            domains: self.domains.iter().map(|(c, i)| (*c, i.clone())).collect(),
            supply: self.supply,
            ops_digest: self.ops_digest,
        }
    }

    /// Submission check, stateless part: signatures, chain, and for domain
    /// proofs the foreign certificate and inclusion proof. Done once, when
    /// an operation arrives; the result can go into any later block.
    pub fn verify(&self, op: LedgerOp) -> Result<Verified, LedgerError> {
        self.verify_with(op, StrictVerifier)
    }

    /// [`Ledger::verify`] with the host's signature verifier (a host that
    /// already checked these signatures, or a simulator generating valid
    /// operations, need not pay for ed25519 twice; see
    /// [`undchain_consensus::certificate::SignatureVerifier`]).
    pub fn verify_with(
        &self,
        op: LedgerOp,
        mut verifier: impl SignatureVerifier,
    ) -> Result<Verified, LedgerError> {
        let chain = self.config.chain_id;
        match &op {
            LedgerOp::Receipt(r) => {
                let t = &r.terms;
                if t.chain_id != chain {
                    return Err(LedgerError::WrongChain {
                        expected: chain,
                        got: t.chain_id,
                    });
                }
                let d = t.digest();
                if !verifier.verify(&t.client, &d, &r.client_sig) {
                    return Err(LedgerError::BadSignature { signer: t.client });
                }
                if !verifier.verify(&t.partner, &d, &r.partner_sig) {
                    return Err(LedgerError::BadSignature { signer: t.partner });
                }
            }
            LedgerOp::Partial(p) => {
                let c = &p.last_checkpoint.checkpoint;
                if c.chain_id != chain {
                    return Err(LedgerError::WrongChain {
                        expected: chain,
                        got: c.chain_id,
                    });
                }
                if !verifier.verify(&c.client, &c.digest(), &p.last_checkpoint.client_sig) {
                    return Err(LedgerError::BadSignature { signer: c.client });
                }
            }
            LedgerOp::DomainLock(t) => {
                if t.terms.source != chain {
                    return Err(DomainLinkError::NotForThisChain {
                        expected: t.terms.source,
                        here: chain,
                    }
                    .into());
                }
                if !verifier.verify(&t.terms.from, &t.id(), &t.signature) {
                    return Err(LedgerError::BadSignature {
                        signer: t.terms.from,
                    });
                }
            }
            LedgerOp::DomainProof(p) => verify_proof(&self.domains, chain, p, &mut verifier)?,
        }
        let id = op.id();
        Ok(Verified { op, id })
    }

    /// Submission check, stateful part: whether `op` would apply in the next
    /// block against the committed state (unknown job, already completed,
    /// balance, nonce, replayed proof). The same checks run again when a
    /// block carries it; a receipt for a job of the block being built
    /// passes there.
    pub fn check(&self, op: &Verified) -> Result<(), LedgerError> {
        let empty = JobFile::new();
        let mut x = exec::Exec::new(self, self.next_block, &empty);
        x.apply_op(op).map(|_| ())
    }

    /// Jobs of `jobs` (in file order) whose requesters cannot pay the fee
    /// given the jobs before them: a proposer leaves these out.
    pub fn unaffordable_jobs(&self, jobs: &JobFile) -> Vec<JobId> {
        let fee = self.config.transaction_fee.0;
        let mut spent: BTreeMap<PublicKey, u64> = BTreeMap::new();
        let mut out = Vec::new();
        for e in jobs.entries() {
            let Some(payer) = e.client_pool.first() else {
                out.push(e.id);
                continue;
            };
            let s = spent.entry(*payer).or_insert(0);
            let want = s.saturating_add(fee);
            if want > self.account(payer).balance.0 {
                out.push(e.id);
            } else {
                *s = want;
            }
        }
        out
    }

    /// Runs `block` without changing anything: its outcome and the state
    /// root it leads to (a proposer's header, a validator's check of a
    /// proposal). A settlement in the outcome lists payments; its
    /// cancelled and carried jobs and settled file are filled only by
    /// [`Ledger::apply_block`].
    pub fn preview(&self, block: &Block<'_>) -> Result<BlockOutcome, BlockError> {
        let x = exec::Exec::run(self, block)?;
        Ok(x.outcome)
    }

    /// Applies committed `block`: all of it, or (on error) nothing.
    pub fn apply_block(&mut self, block: &Block<'_>) -> Result<BlockOutcome, BlockError> {
        let x = exec::Exec::run(self, block)?;
        self.commit(block, x)
    }

    fn commit(&mut self, block: &Block<'_>, x: exec::Done) -> Result<BlockOutcome, BlockError> {
        // The only fallible step comes first, so an error leaves the ledger
        // untouched (it cannot fail after the checks in `run`).
        self.payout.commit_block(block.number, block.jobs)?;
        let exec::Done {
            accounts,
            marks,
            claims,
            outbound,
            inbound,
            domains,
            fee_pool,
            signed,
            supply,
            ops_digest,
            leaf_changes,
            root,
            mut outcome,
        } = x;
        for (id, a) in accounts {
            if a.is_empty() {
                self.accounts.remove(&id);
            } else {
                self.accounts.insert(id, a);
            }
        }
        for (job, c) in marks {
            let r = match c {
                Completion::Complete { block } => self.payout.mark_complete(&job, block),
                Completion::Partial {
                    block,
                    units,
                    amount,
                } => self.payout.mark_partial(&job, block, units, amount),
                Completion::Open | Completion::Cancelled => Ok(()),
            };
            debug_assert!(r.is_ok(), "mark checked in run: {r:?}");
        }
        self.claims.extend(claims);
        for (id, v) in outbound {
            self.outbound.insert(id, v);
        }
        self.inbound.extend(inbound);
        self.domains.extend(domains);
        self.fee_pool = fee_pool;
        self.signed = signed;
        self.supply = supply;
        self.ops_digest = ops_digest;
        for (k, v) in leaf_changes {
            match v {
                Some(h) => self.leaves.insert(k, h),
                None => self.leaves.remove(&k),
            };
        }
        self.root = root;
        self.next_block = block.number.next();
        if let Some(s) = outcome.settlement.as_mut() {
            let next = PayoutFile::new(
                PayoutPeriod(self.payout.period().0.saturating_add(1)),
                self.config.blocks_per_period,
            );
            let roll = std::mem::replace(&mut self.payout, next).roll_over();
            self.payout = roll.next;
            self.claims.clear();
            s.cancelled = roll.cancelled;
            s.carried = roll.carried;
            s.settled = Some(roll.settled);
        }
        Ok(outcome)
    }
}

impl PartialEq for Ledger {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
            && self.state() == other.state()
            && self.payout == other.payout
            && self.claims == other.claims
    }
}

impl Eq for Ledger {}
