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

mod block;
mod error;
pub(crate) mod exec;
pub mod ops;
pub mod root;
mod submit;

use std::collections::BTreeMap;

use undchain_jobfile::PayoutFile;
use undchain_types::msg::{DomainTransferTerms, MerkleProof};
use undchain_types::{
    BlockNumber, ChainId, ChainParams, Hash32, HashAlgorithm, JobId, PayoutPeriod, PublicKey,
    TokenAmount,
};

use crate::links::domain_link::{DomainInfo, DomainRegistry};

pub use block::{Applied, Block, BlockOutcome, Refused};
pub use error::{BlockError, GenesisError, LedgerError};
pub use ops::{ChainEvent, LedgerOp, Verified};
pub use root::{Account, InboundState, LeafKey, Meta, OutboundState, Supply};

/// The chain settings the ledger depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    /// The chain this ledger keeps; operations signed for another are refused.
    pub chain_id: ChainId,
    /// Fee per job ([`ChainParams::transaction_fee`]).
    pub transaction_fee: TokenAmount,
    /// Blocks per payout period.
    pub blocks_per_period: u64,
    /// Hash algorithm of the state root.
    pub hash_algorithm: HashAlgorithm,
}

impl LedgerConfig {
    /// The ledger's settings from chain parameters `params` (a period has at least one block).
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
    /// The partner the escrowed amount goes to at settlement.
    pub partner: PublicKey,
    /// The amount held in the client's escrow and paid to the partner.
    pub amount: TokenAmount,
    /// Whether it pays a partial completion (the proven part).
    pub partial: bool,
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
    /// The block number the ledger applies next.
    pub next_block: BlockNumber,
    /// Every non-empty account, sorted by key.
    pub accounts: Vec<(PublicKey, Account)>,
    /// Fees collected and not yet paid.
    pub fee_pool: TokenAmount,
    /// Blocks signed per validator in the current period.
    pub signed: Vec<(PublicKey, u64)>,
    /// Outgoing domain transfers with their terms and state, sorted by transfer id.
    pub outbound: Vec<(DomainTransferTerms, OutboundState)>,
    /// Incoming domain transfers' records, by transfer id.
    pub inbound: Vec<(Hash32, InboundState)>,
    /// Registered foreign domains, by chain id.
    pub domains: Vec<(ChainId, DomainInfo)>,
    /// The supply counters (genesis, minted, imported, exported, refunded).
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

    /// The chain settings this ledger was built with.
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

    /// The supply counters; [`Supply::circulating`] always equals [`Ledger::total_held`].
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

    /// Registered foreign domains whose domain-link proofs this chain accepts.
    pub fn domains(&self) -> &DomainRegistry {
        &self.domains
    }

    /// An outgoing domain transfer's terms and state, by transfer id.
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
