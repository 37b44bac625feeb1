//! The ledger: accounts, escrow, the payout file of open jobs with their
//! claims, domain light clients and records, and the state root of every
//! header (DESIGN.md "Money: what a token may never do", "Payout file",
//! "Domain link"; docs/PROTOCOL.md "Ledger, payouts, convergence and
//! links").
//!
//! Money moves at these moments only, and never without a signature:
//!
//! * **Job commit**: a job enters the payout file only beside its client's
//!   signed request ([`VerifiedRequest`]); the request's budget moves from
//!   the client's free balance to its escrow and the chain's fee to the fee
//!   pool. A request the client cannot cover is refused at intake
//!   ([`Ledger::check_request`]) and never committed; a block holding one
//!   is refused whole ([`Ledger::unaffordable_jobs`] tells a proposer).
//! * **Claims** (receipts, partial completions) are recorded per partner
//!   and move nothing until settlement (docs/PROTOCOL.md "Claims").
//! * **Settlement** ([`crate::settle`]), with the last block of a period:
//!   claims are paid from escrow, unused escrow goes back, fees go to the
//!   validators that signed.
//! * **Transactions** (fee and nonce): transfers, the chain owner's mints
//!   and domain registrations, domain locks, proofs and light-client
//!   updates.
//!
//! A block is [`Ledger::preview`]ed (its root for a proposal, or the check
//! of someone else's) or [`Ledger::apply_block`]ed; both run the same code
//! over a copy-on-write overlay, so a refused block or operation changes
//! nothing. The state root is a sparse Merkle tree ([`crate::tree`])
//! updated along the touched leaves only.
//!
//! ```
//! use undchain_jobfile::JobFile;
//! use undchain_ledger::{Block, Ledger, LedgerConfig, LedgerOp};
//! use undchain_types::msg::{Receipt, ReceiptTerms, UtilityRequest};
//! use undchain_types::{
//!     BlockNumber, BlockTime, BoundedBytes, BoundedVec, ChainId, Envelope, JobEntry, JobState,
//!     PerceptionScore, SigningKey, TokenAmount, UtilityKind,
//! };
//!
//! let owner = SigningKey::from_seed([9; 32]);
//! let (client, partner) = (SigningKey::from_seed([1; 32]), SigningKey::from_seed([2; 32]));
//! let mut config = LedgerConfig::new(ChainId(1), owner.public());
//! config.blocks_per_period = 2;
//! let mut ledger =
//!     Ledger::genesis(config, BlockNumber(0), [(client.public(), TokenAmount(500))]).unwrap();
//! // The client signs its request: 10 units at most 20 each, 200 escrowed.
//! let request = UtilityRequest {
//!     kind: UtilityKind::Storage,
//!     units: 10,
//!     max_price_per_unit: TokenAmount(20),
//!     min_partner_score: PerceptionScore::START,
//!     partner_threshold: 1,
//!     co_clients: BoundedVec::new(),
//!     spec: BoundedBytes::try_from_slice(b"").unwrap(),
//! };
//! let env = Envelope::new(client.public(), ChainId(1), 1, BlockTime(0), request).sign(&client);
//! let request = ledger.verify_request(&env).unwrap();
//! ledger.check_request(&request).unwrap();
//! let job = JobEntry {
//!     id: request.job(),
//!     initiated_at: BlockTime(0),
//!     kind: UtilityKind::Storage,
//!     client_pool: BoundedVec::try_from_vec(vec![client.public()]).unwrap(),
//!     partner_pool: BoundedVec::try_from_vec(vec![partner.public()]).unwrap(),
//!     fee: ledger.config().transaction_fee,
//!     state: JobState::Started,
//! };
//! let jobs = JobFile::from_entries([job.clone()]).unwrap();
//! let requests = [request];
//! // Block 0 commits the job: 200 escrowed, the fee paid.
//! let block = Block::new(BlockNumber(0), &jobs, &requests);
//! assert_eq!(ledger.preview(&block).unwrap(), ledger.apply_block(&block).unwrap());
//! assert_eq!(ledger.account(&client.public()).escrow, TokenAmount(200));
//! // Block 1 carries the receipt for 150 and ends the period.
//! let terms = ReceiptTerms {
//!     chain_id: ChainId(1),
//!     job: job.id,
//!     commit_block: BlockNumber(0),
//!     client: client.public(),
//!     partner: partner.public(),
//!     units: 10,
//!     amount: TokenAmount(150),
//!     finished_at: BlockTime(1),
//! };
//! let receipt = ledger.verify(LedgerOp::Receipt(Receipt::sign(terms, &client, &partner))).unwrap();
//! let (empty, ops) = (JobFile::new(), [receipt]);
//! let out = ledger.apply_block(&Block::new(BlockNumber(1), &empty, &[]).with_ops(&ops)).unwrap();
//! assert_eq!(out.settlement.unwrap().paid, TokenAmount(150));
//! assert_eq!(ledger.account(&partner.public()).balance, TokenAmount(150));
//! // 500 - 10 fee - 150 paid: the unused 50 of the escrow came back.
//! assert_eq!(ledger.account(&client.public()).balance, TokenAmount(340));
//! assert_eq!(ledger.root(), ledger.rebuilt_root());
//! ```

mod block;
pub(crate) mod claims;
mod config;
mod domain;
mod error;
pub(crate) mod exec;
pub(crate) mod keyed;
pub mod ops;
pub mod request;
pub mod state;
mod submit;
mod tx;
pub mod validators;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use undchain_jobfile::JobFile;
use undchain_types::msg::{DomainTransferTerms, StateProof};
use undchain_types::{
    BlockNumber, ChainId, Hash32, HashContext, JobId, PayoutPeriod, PublicKey, TokenAmount, wire,
};

use crate::links::domain_link::{DomainClient, DomainRegistry};
use crate::tree::{Digest, StateTree};
use keyed::Map;

pub use block::{Applied, Block, BlockOutcome, Refused};
pub use config::LedgerConfig;
pub use error::{BlockError, GenesisError, LedgerError, RequestError};
pub use ops::{LedgerOp, Verified};
pub use request::VerifiedRequest;
pub use state::{
    Account, Claim, ClaimKind, InboundRecord, InboundState, JobLeaf, Meta, OpenJob, StateKey,
    Supply,
};
pub use validators::{MAX_VALIDATORS, ValidatorRecord};

/// The ledger of one chain.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub(crate) config: LedgerConfig,
    config_hash: Hash32,
    next_block: BlockNumber,
    // Hash maps for the big tables, keyed per process (`keyed`): nothing
    // hashed, signed or sent depends on their order (the tree orders leaves
    // by key hash; lists handed out are sorted).
    accounts: Map<PublicKey, Account>,
    pub(crate) jobs: Map<JobId, OpenJob>,
    settled: Map<JobId, BlockNumber>,
    settled_prune: BTreeMap<BlockNumber, Vec<JobId>>,
    fee_pool: TokenAmount,
    signed: BTreeMap<PublicKey, u64>,
    outbound: Map<Hash32, DomainTransferTerms>,
    outbound_prune: BTreeMap<BlockNumber, Vec<Hash32>>,
    inbound: Map<Hash32, InboundRecord>,
    inbound_prune: BTreeMap<(ChainId, BlockNumber), Vec<Hash32>>,
    domains: DomainRegistry,
    /// Every registered validator (genesis and committed registrations).
    validators: BTreeMap<PublicKey, ValidatorRecord>,
    supply: Supply,
    tree: StateTree,
}

/// The ledger's content, sorted, without caches or indexes: what two
/// validators must agree on, and what a convergence genesis carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerState {
    /// The block number the ledger applies next.
    pub next_block: BlockNumber,
    /// Every non-empty account, by key.
    pub accounts: Vec<(PublicKey, Account)>,
    /// The open payout file: every open job, by id.
    pub jobs: Vec<OpenJob>,
    /// Settled job ids still remembered, with the block they are forgotten at.
    pub settled: Vec<(JobId, BlockNumber)>,
    /// Fees collected and not yet paid.
    pub fee_pool: TokenAmount,
    /// Blocks signed per validator in the current period.
    pub signed: Vec<(PublicKey, u64)>,
    /// Outgoing domain transfers still locked, by id.
    pub outbound: Vec<DomainTransferTerms>,
    /// Incoming domain transfers' records, by id.
    pub inbound: Vec<(Hash32, InboundRecord)>,
    /// Registered domains' light clients, by chain id.
    pub domains: Vec<(ChainId, DomainClient)>,
    /// The supply counters.
    pub supply: Supply,
    /// Registered validators, by key.
    pub validators: Vec<(PublicKey, ValidatorRecord)>,
}

fn sorted<K: Ord + Copy, V: Clone>(m: &Map<K, V>) -> Vec<(K, V)> {
    let mut v: Vec<(K, V)> = m.iter().map(|(k, v)| (*k, v.clone())).collect();
    v.sort_unstable_by_key(|(k, _)| *k);
    v
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
            let a = Account {
                balance: amount,
                ..Account::default()
            };
            if accounts.insert(id, a).is_some() {
                return Err(GenesisError::Duplicate { account: id });
            }
        }
        let state = LedgerState {
            next_block: start,
            accounts: accounts
                .into_iter()
                .filter(|(_, a)| !a.is_empty())
                .collect(),
            jobs: Vec::new(),
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
        Ledger::from_state(config, state)
    }

    /// [`Ledger::genesis`] with the genesis validators in the registry
    /// (a registration of one of them is then `AlreadyRegistered`).
    pub fn genesis_with_validators(
        config: LedgerConfig,
        start: BlockNumber,
        allocations: impl IntoIterator<Item = (PublicKey, TokenAmount)>,
        validators: impl IntoIterator<Item = (PublicKey, undchain_types::Trust)>,
    ) -> Result<Self, GenesisError> {
        let l = Ledger::genesis(config, start, allocations)?;
        let mut state = l.state();
        let mut registry = BTreeMap::new();
        for (id, trust) in validators {
            let record = ValidatorRecord::genesis(trust, start);
            if registry.insert(id, record).is_some() || registry.len() > MAX_VALIDATORS {
                return Err(GenesisError::BadValidator { validator: id });
            }
        }
        state.validators = registry.into_iter().collect();
        Ledger::from_state(l.config, state)
    }

    /// The ledger holding `state` under `config` (a convergence genesis);
    /// indexes and the state tree are rebuilt.
    pub fn from_state(config: LedgerConfig, state: LedgerState) -> Result<Self, GenesisError> {
        config.validate()?;
        let algo = config.hash_algorithm;
        let mut l = Ledger {
            config_hash: config.hash(),
            config,
            next_block: state.next_block,
            accounts: state.accounts.into_iter().collect(),
            jobs: state.jobs.into_iter().map(|j| (j.entry.id, j)).collect(),
            settled: Map::default(),
            settled_prune: BTreeMap::new(),
            fee_pool: state.fee_pool,
            signed: state.signed.into_iter().collect(),
            outbound: Map::default(),
            outbound_prune: BTreeMap::new(),
            inbound: Map::default(),
            inbound_prune: BTreeMap::new(),
            domains: state.domains.into_iter().collect(),
            validators: state.validators.into_iter().collect(),
            supply: state.supply,
            tree: StateTree::new(algo),
        };
        for (id, forget) in state.settled {
            l.settled.insert(id, forget);
            l.settled_prune.entry(forget).or_default().push(id);
        }
        for t in state.outbound {
            let at = l.config.lock_prune_block(t.expires_at);
            l.outbound_prune.entry(at).or_default().push(t.id());
            l.outbound.insert(t.id(), t);
        }
        for (id, r) in state.inbound {
            l.inbound_prune
                .entry((r.source, r.expires_at))
                .or_default()
                .push(id);
            l.inbound.insert(id, r);
        }
        l.check_books()?;
        l.tree = StateTree::build(l.config.hash_algorithm, l.leaves());
        Ok(l)
    }

    /// Refuses a state whose books do not balance: every account's escrow
    /// is the sum of its open jobs' budgets, and the tokens held are what
    /// the supply counters say.
    fn check_books(&self) -> Result<(), GenesisError> {
        let mut owed: Map<PublicKey, u128> = Map::default();
        for j in self.jobs.values() {
            *owed.entry(j.client).or_default() += u128::from(j.escrow.0);
        }
        for (id, a) in &self.accounts {
            let jobs = owed.remove(id).unwrap_or(0);
            if u128::from(a.escrow.0) != jobs {
                return Err(GenesisError::EscrowMismatch {
                    account: *id,
                    escrow: a.escrow,
                    jobs,
                });
            }
        }
        if let Some((id, jobs)) = owed.into_iter().min() {
            return Err(GenesisError::EscrowMismatch {
                account: id,
                escrow: TokenAmount::ZERO,
                jobs,
            });
        }
        let (held, circulating) = (self.total_held(), self.supply.circulating());
        if held != circulating {
            return Err(GenesisError::Unbalanced { held, circulating });
        }
        Ok(())
    }

    /// The chain settings this ledger applies blocks under.
    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    /// The next block to apply.
    pub fn next_block(&self) -> BlockNumber {
        self.next_block
    }

    /// The payout period of the next block.
    pub fn period(&self) -> PayoutPeriod {
        self.config.period_of(self.next_block)
    }

    /// The state root after the last applied block.
    pub fn root(&self) -> Hash32 {
        self.tree.root()
    }

    /// `id`'s account (empty if it holds nothing).
    pub fn account(&self, id: &PublicKey) -> Account {
        self.accounts.get(id).copied().unwrap_or_default()
    }

    /// How many accounts hold something.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Open job `id` of the payout file.
    pub fn job(&self, id: &JobId) -> Option<&OpenJob> {
        self.jobs.get(id)
    }

    /// How many jobs are open.
    pub fn open_jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Every open job, by id (sorted: a copy of the references).
    pub fn jobs(&self) -> Vec<&OpenJob> {
        let mut v: Vec<&OpenJob> = self.jobs.values().collect();
        v.sort_unstable_by_key(|j| j.entry.id);
        v
    }

    /// The job file of `block`, derived from the open payout file (jobs of
    /// that block not yet settled).
    pub fn job_file(&self, block: BlockNumber) -> JobFile {
        let mut f = JobFile::new();
        for j in self.jobs.values().filter(|j| j.commit_block == block) {
            // Ids are unique in the map, so the insert cannot collide.
            let _ = f.insert(j.entry.clone());
        }
        f
    }

    /// Whether job `id` was settled and is still remembered.
    pub fn is_settled(&self, id: &JobId) -> bool {
        self.settled.contains_key(id)
    }

    /// Fees collected and not yet paid to validators.
    pub fn fee_pool(&self) -> TokenAmount {
        self.fee_pool
    }

    /// Blocks signed per validator in the current period.
    pub fn signed_blocks(&self) -> &BTreeMap<PublicKey, u64> {
        &self.signed
    }

    /// The supply counters; [`Supply::circulating`] always equals
    /// [`Ledger::total_held`].
    pub fn supply(&self) -> Supply {
        self.supply
    }

    /// Every token held on this chain: free balances, escrow and the fee
    /// pool.
    pub fn total_held(&self) -> u128 {
        self.accounts
            .values()
            .map(|a| u128::from(a.balance.0) + u128::from(a.escrow.0))
            .sum::<u128>()
            + u128::from(self.fee_pool.0)
    }

    /// Registered domains' light clients.
    pub fn domains(&self) -> &DomainRegistry {
        &self.domains
    }

    /// An outgoing domain transfer still locked here, by id.
    pub fn outbound(&self, id: &Hash32) -> Option<&DomainTransferTerms> {
        self.outbound.get(id)
    }

    /// An incoming domain transfer's record.
    pub fn inbound(&self, id: &Hash32) -> Option<InboundRecord> {
        self.inbound.get(id).copied()
    }

    /// How many domain-link records the ledger keeps (outgoing and
    /// incoming).
    pub fn domain_records(&self) -> usize {
        self.outbound.len() + self.inbound.len()
    }

    /// The summary leaf of the committed state.
    pub fn meta(&self) -> Meta {
        Meta {
            chain_id: self.config.chain_id,
            next_block: self.next_block,
            fee_pool: self.fee_pool,
            supply: self.supply,
            signed_blocks: exec::tally_hash(self.config.hash_algorithm, &self.signed),
            config: self.config_hash,
        }
    }

    /// The inclusion proof of leaf `key` under [`Ledger::root`]; check it
    /// with [`state::verify_leaf`] and the leaf's value (for a job,
    /// [`OpenJob::leaf`]).
    pub fn prove(&self, key: &StateKey) -> Option<StateProof> {
        self.tree
            .prove(&key.hash(self.config.hash_algorithm))
            .map(|(_, p)| p)
    }

    /// Every leaf of the state, computed from scratch (key hash, leaf hash).
    fn leaves(&self) -> Vec<(Digest, Digest)> {
        let algo = self.config.hash_algorithm;
        let mut out = Vec::with_capacity(1 + self.accounts.len() + self.jobs.len());
        let mut push = |c: crate::tree::Change| {
            if let (k, Some(h)) = c {
                out.push((k, h));
            }
        };
        push(state::leaf(algo, &StateKey::Meta, &self.meta()));
        for (id, a) in &self.accounts {
            push(state::leaf(algo, &StateKey::Account(*id), a));
        }
        for (id, j) in &self.jobs {
            push(state::leaf(algo, &StateKey::Job(*id), &j.leaf()));
        }
        for (id, f) in &self.settled {
            push(state::leaf(algo, &StateKey::Settled(*id), f));
        }
        for (id, t) in &self.outbound {
            push(state::leaf(algo, &StateKey::Outbound(*id), t));
        }
        for (id, r) in &self.inbound {
            push(state::leaf(algo, &StateKey::Inbound(*id), r));
        }
        for (chain, c) in &self.domains {
            push(state::leaf(
                algo,
                &StateKey::Domain(*chain),
                &c.hash_with(algo),
            ));
        }
        for (id, r) in &self.validators {
            push(state::leaf(algo, &StateKey::Validator(*id), r));
        }
        out
    }

    /// The state root rebuilt from every leaf (what [`Ledger::root`], kept
    /// incrementally, must always equal).
    pub fn rebuilt_root(&self) -> Hash32 {
        StateTree::build(self.config.hash_algorithm, self.leaves()).root()
    }

    /// The ledger's content without caches.
    pub fn state(&self) -> LedgerState {
        let mut jobs: Vec<OpenJob> = self.jobs.values().cloned().collect();
        jobs.sort_unstable_by_key(|j| j.entry.id);
        let mut outbound: Vec<DomainTransferTerms> = self.outbound.values().cloned().collect();
        outbound.sort_unstable_by_key(|t| t.id());
        LedgerState {
            next_block: self.next_block,
            accounts: sorted(&self.accounts),
            jobs,
            settled: sorted(&self.settled),
            fee_pool: self.fee_pool,
            signed: self.signed.iter().map(|(k, n)| (*k, *n)).collect(),
            outbound,
            inbound: sorted(&self.inbound),
            domains: self.domains.iter().map(|(c, d)| (*c, d.clone())).collect(),
            supply: self.supply,
            validators: self
                .validators
                .iter()
                .map(|(k, r)| (*k, r.clone()))
                .collect(),
        }
    }

    /// The hash of [`Ledger::state`] (what validators compare).
    pub fn state_hash(&self) -> Hash32 {
        self.config
            .hash_algorithm
            .hash(HashContext::Genesis, &wire::encode_bare(&self.state()))
    }
}

impl PartialEq for Ledger {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config && self.state() == other.state()
    }
}

impl Eq for Ledger {}
