//! Block execution over a copy-on-write overlay: every read goes to the
//! overlay first and the committed ledger second, every write to the
//! overlay. [`Exec::run`] returns what changed ([`Done`]) with the state
//! tree's leaf changes; the ledger commits it, or only computes the root
//! it leads to for a preview.

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::msg::{DomainTransferTerms, TxOp};
use undchain_types::{
    BlockNumber, BlockTime, ChainId, Hash32, HashAlgorithm, HashContext, JobId, PublicKey,
    TokenAmount, wire,
};

use super::keyed::{self, Map};
use super::ops::{LedgerOp, Verified};
use super::request::Spent;
use super::state::{self, Account, InboundRecord, Meta, OpenJob, StateKey, Supply};
use super::validators::ValidatorRecord;
use super::{Applied, Block, BlockError, BlockOutcome, Ledger, LedgerError, Refused};
use crate::links::domain_link::DomainClient;
use crate::settle;
use crate::tree::{self, Change};

/// Hash of a period's signed-block tally.
pub(crate) fn tally_hash(algo: HashAlgorithm, tally: &BTreeMap<PublicKey, u64>) -> Hash32 {
    algo.hash(HashContext::LedgerAccount, &wire::encode_bare(tally))
}

/// Looks up, in the committed maps, every account and job the block's
/// requests and operations name, before the block runs them one after the
/// other: these lookups do not depend on each other, so their cache misses
/// overlap, and the run then finds the entries cached. Returns a value of
/// what was read (only so that the reads are not optimised away).
fn read_ahead(base: &Ledger, block: &Block<'_>) -> u64 {
    let account = |k: &PublicKey| base.accounts.get(k).map_or(0, |a| a.nonce);
    // A job's map entry and the lists a claim reads or copies.
    let first = |keys: &[PublicKey]| keys.first().map_or(0, |k| u64::from(k.as_bytes()[0]));
    let job = |j: &JobId| {
        base.jobs.get(j).map_or(0, |j| {
            j.commit_block.0
                ^ first(&j.entry.partner_pool)
                ^ first(&j.entry.client_pool)
                ^ j.claims.first().map_or(0, |c| c.amount.0)
        })
    };
    let mut seen = 0u64;
    for r in block.requests {
        seen ^= account(&r.client) ^ job(&r.job);
    }
    for v in block.ops {
        seen ^= match &v.op {
            LedgerOp::Receipt(r) => job(&r.terms.job),
            LedgerOp::Partial(p) => job(&p.last_checkpoint.checkpoint.job),
            LedgerOp::Transaction(t) => {
                let to = match &t.body.op {
                    TxOp::Transfer { to, .. } | TxOp::Mint { to, .. } => account(to),
                    _ => 0,
                };
                account(&t.body.sender) ^ to
            }
        };
    }
    seen
}

/// The overlay of one block's execution.
pub(crate) struct Exec<'a> {
    pub(crate) base: &'a Ledger,
    pub(crate) number: BlockNumber,
    pub(crate) now: BlockTime,
    pub(crate) accounts: Map<PublicKey, Account>,
    pub(crate) jobs: Map<JobId, Option<OpenJob>>,
    /// Committed jobs the block's settlement closed (kept out of `jobs`: a
    /// settlement closes up to the whole payout file, and nothing reads a
    /// job after it).
    pub(crate) jobs_settled: Vec<JobId>,
    /// Whether the block's settlement ran: then every job open before it
    /// was closed (`jobs_settled`, or `None` in `jobs`) or carried (in
    /// `jobs`), so what stays open is exactly the `Some` entries of `jobs`.
    pub(crate) settled_period: bool,
    /// Settled ids to remember, with the block from which they are forgotten.
    pub(crate) settled_add: Vec<(JobId, BlockNumber)>,
    pub(crate) settled_drop: Vec<JobId>,
    pub(crate) outbound: Map<Hash32, Option<DomainTransferTerms>>,
    pub(crate) inbound: Map<Hash32, Option<InboundRecord>>,
    pub(crate) domains: BTreeMap<ChainId, DomainClient>,
    /// Validators the block registered.
    pub(crate) validators: BTreeMap<PublicKey, ValidatorRecord>,
    pub(crate) fee_pool: TokenAmount,
    pub(crate) signed: BTreeMap<PublicKey, u64>,
    pub(crate) supply: Supply,
}

/// What a block changed, ready to commit (owned: no borrow of the ledger).
pub(crate) struct Delta {
    pub(crate) number: BlockNumber,
    pub(crate) accounts: Map<PublicKey, Account>,
    pub(crate) jobs: Map<JobId, Option<OpenJob>>,
    pub(crate) settled_period: bool,
    pub(crate) settled_add: Vec<(JobId, BlockNumber)>,
    pub(crate) settled_drop: Vec<JobId>,
    pub(crate) outbound: Map<Hash32, Option<DomainTransferTerms>>,
    pub(crate) inbound: Map<Hash32, Option<InboundRecord>>,
    pub(crate) domains: BTreeMap<ChainId, DomainClient>,
    pub(crate) validators: BTreeMap<PublicKey, ValidatorRecord>,
    pub(crate) fee_pool: TokenAmount,
    pub(crate) signed: BTreeMap<PublicKey, u64>,
    pub(crate) supply: Supply,
    /// The state tree's leaf changes, sorted by key hash.
    pub(crate) changes: Vec<Change>,
    pub(crate) outcome: BlockOutcome,
}

impl<'a> Exec<'a> {
    /// The empty overlay of block `number`, sized for a block of
    /// `requests` job commits and `ops` operations (each touches about two
    /// accounts and one job), so it does not grow while the block runs.
    pub(crate) fn new(base: &'a Ledger, number: BlockNumber, requests: usize, ops: usize) -> Self {
        Exec {
            base,
            number,
            now: base.config.block_start(number),
            accounts: keyed::with_capacity(requests.saturating_add(ops.saturating_mul(2))),
            jobs: keyed::with_capacity(requests.saturating_add(ops)),
            jobs_settled: Vec::new(),
            settled_period: false,
            settled_add: Vec::new(),
            settled_drop: Vec::new(),
            outbound: Map::default(),
            inbound: Map::default(),
            domains: BTreeMap::new(),
            validators: BTreeMap::new(),
            fee_pool: base.fee_pool,
            signed: base.signed.clone(),
            supply: base.supply,
        }
    }

    /// `id`'s account as the block has it so far.
    pub(crate) fn account(&self, id: &PublicKey) -> Account {
        match self.accounts.get(id) {
            Some(a) => *a,
            None => self.base.account(id),
        }
    }

    /// The overlay's copy of `id`'s account, made on first touch.
    pub(crate) fn account_mut(&mut self, id: &PublicKey) -> &mut Account {
        let base = self.base;
        self.accounts.entry(*id).or_insert_with(|| base.account(id))
    }

    /// Job `id` as the block has it so far (`None`: not open).
    pub(crate) fn job(&self, id: &JobId) -> Option<&OpenJob> {
        match self.jobs.get(id) {
            Some(j) => j.as_ref(),
            None => self.base.jobs.get(id),
        }
    }

    /// A domain's light client as the block has it so far.
    pub(crate) fn domain(&self, chain: &ChainId) -> Option<&DomainClient> {
        self.domains
            .get(chain)
            .or_else(|| self.base.domains.get(chain))
    }

    /// Outgoing transfer `id`, if still locked.
    pub(crate) fn outbound(&self, id: &Hash32) -> Option<&DomainTransferTerms> {
        match self.outbound.get(id) {
            Some(t) => t.as_ref(),
            None => self.base.outbound.get(id),
        }
    }

    /// Incoming transfer `id`'s record.
    pub(crate) fn inbound(&self, id: &Hash32) -> Option<InboundRecord> {
        match self.inbound.get(id) {
            Some(r) => *r,
            None => self.base.inbound.get(id).copied(),
        }
    }

    /// Runs the whole block.
    pub(crate) fn run(base: &'a Ledger, block: &Block<'_>) -> Result<Delta, BlockError> {
        if block.number != base.next_block {
            return Err(BlockError::OutOfOrder {
                expected: base.next_block,
                got: block.number,
            });
        }
        std::hint::black_box(read_ahead(base, block));
        let mut x = Exec::new(base, block.number, block.requests.len(), block.ops.len());
        let (fees, escrowed) = x.commit_jobs(block)?;
        let mut applied = Vec::new();
        let mut refused = Vec::new();
        for (index, op) in block.ops.iter().enumerate() {
            match x.apply_op(op) {
                Ok(a) => applied.push(a),
                Err(error) => refused.push(Refused {
                    index,
                    op: op.id,
                    error,
                }),
            }
        }
        let signers: BTreeSet<&PublicKey> = block.signers.iter().collect();
        for s in signers {
            let n = x.signed.entry(*s).or_insert(0);
            *n = n.saturating_add(1);
        }
        let settlement = if base.config.ends_period(block.number) {
            Some(settle::settle(&mut x)?)
        } else {
            None
        };
        x.prune();
        let changes = x.changes();
        let outcome = BlockOutcome {
            number: block.number,
            ledger_root: Hash32::ZERO,
            applied,
            refused,
            fees_collected: fees,
            escrowed,
            settlement,
        };
        Ok(Delta {
            number: x.number,
            accounts: x.accounts,
            jobs: x.jobs,
            settled_period: x.settled_period,
            settled_add: x.settled_add,
            settled_drop: x.settled_drop,
            outbound: x.outbound,
            inbound: x.inbound,
            domains: x.domains,
            validators: x.validators,
            fee_pool: x.fee_pool,
            signed: x.signed,
            supply: x.supply,
            changes,
            outcome,
        })
    }

    /// Commits the block's jobs with their requests: budget to escrow, fee
    /// to the pool. All or nothing.
    fn commit_jobs(&mut self, block: &Block<'_>) -> Result<(TokenAmount, TokenAmount), BlockError> {
        let base = self.base;
        let mut by_job: Map<JobId, &super::VerifiedRequest> =
            keyed::with_capacity(block.requests.len());
        for r in block.requests {
            if by_job.insert(r.job, r).is_some() || !block.jobs.contains(&r.job) {
                return Err(BlockError::StrayRequest { job: r.job });
            }
        }
        let fee = base.config.transaction_fee;
        let mut spent = Spent::default();
        let (mut fees, mut escrowed) = (0u64, 0u64);
        let mut new_jobs = Vec::with_capacity(block.requests.len());
        // The file keeps each entry's leaf hash (`JobEntry::leaf_hash`);
        // both lists are in id order.
        let leaves = block.jobs.leaf_hashes();
        for (e, leaf) in block.jobs.entries().into_iter().zip(leaves) {
            let r = by_job
                .get(&e.id)
                .ok_or(BlockError::MissingRequest { job: e.id })?;
            base.entry_matches(e, r)?;
            let total = base
                .request_fits(r, self.now, &spent)
                .map_err(|error| BlockError::Request { job: e.id, error })?;
            spent.insert(r.client, total);
            fees = fees.checked_add(fee.0).ok_or(BlockError::Overflow)?;
            escrowed = escrowed
                .checked_add(r.budget.0)
                .ok_or(BlockError::Overflow)?;
            new_jobs.push(OpenJob {
                entry: e.clone(),
                entry_hash: leaf,
                commit_block: block.number,
                client: r.client,
                escrow: r.budget,
                sent_at: r.sent_at,
                carried_from: None,
                claims: Vec::new(),
            });
        }
        self.fee_pool = self
            .fee_pool
            .checked_add(TokenAmount(fees))
            .ok_or(BlockError::Overflow)?;
        for j in new_jobs {
            let a = self.account_mut(&j.client);
            // Covered: request_fits checked budget + fee against the balance.
            a.balance = TokenAmount(a.balance.0 - j.escrow.0 - fee.0);
            a.escrow = a.escrow.checked_add(j.escrow).ok_or(BlockError::Overflow)?;
            self.jobs.insert(j.entry.id, Some(j));
        }
        Ok((TokenAmount(fees), TokenAmount(escrowed)))
    }

    /// Applies one operation: checks everything first, then writes, so a
    /// refusal leaves the overlay as it was.
    pub(crate) fn apply_op(&mut self, v: &Verified) -> Result<Applied, LedgerError> {
        match &v.op {
            LedgerOp::Receipt(r) => self.receipt(r),
            LedgerOp::Partial(p) => self.partial(p),
            LedgerOp::Transaction(t) => self.transaction(t),
        }
    }

    /// Forgets what can no longer matter: settled ids whose requests are
    /// past the window, locks past their retention, inbound records below
    /// their link's floor, expired trusted headers.
    fn prune(&mut self) {
        let base = self.base;
        for (_, ids) in base.settled_prune.range(..=self.number) {
            self.settled_drop.extend(ids.iter().copied());
        }
        for (_, ids) in base.outbound_prune.range(..=self.number) {
            for id in ids {
                if self.outbound(id).is_some() {
                    self.outbound.insert(*id, None);
                }
            }
        }
        let chains: Vec<ChainId> = base
            .domains
            .keys()
            .chain(self.domains.keys())
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chain in chains {
            let Some(mut client) = self.domain(&chain).cloned() else {
                continue;
            };
            if client.prune(self.now) {
                self.domains.insert(chain, client.clone());
            }
            let lo = (chain, BlockNumber(0));
            for (_, ids) in base.inbound_prune.range(lo..(chain, client.floor)) {
                for id in ids {
                    if self.inbound(id).is_some() {
                        self.inbound.insert(*id, None);
                    }
                }
            }
        }
    }

    /// The state tree's leaf changes of everything the block touched.
    fn changes(&self) -> Vec<Change> {
        let base = self.base;
        let algo = base.config.hash_algorithm;
        let mut out =
            Vec::with_capacity(1 + self.accounts.len() + self.jobs.len() + self.settled_add.len());
        let meta = Meta {
            chain_id: base.config.chain_id,
            next_block: self.number.next(),
            fee_pool: self.fee_pool,
            supply: self.supply,
            signed_blocks: tally_hash(algo, &self.signed),
            config: base.config_hash,
        };
        out.push(state::leaf(algo, &StateKey::Meta, &meta));
        let gone = |k: StateKey| (k.hash(algo), None);
        for (id, a) in &self.accounts {
            let k = StateKey::Account(*id);
            out.push(if a.is_empty() {
                gone(k)
            } else {
                state::leaf(algo, &k, a)
            });
        }
        for (id, j) in &self.jobs {
            let k = StateKey::Job(*id);
            out.push(match j {
                Some(j) => state::leaf(algo, &k, &j.leaf()),
                None => gone(k),
            });
        }
        for id in &self.jobs_settled {
            out.push(gone(StateKey::Job(*id)));
        }
        for id in &self.settled_drop {
            out.push(gone(StateKey::Settled(*id)));
        }
        for (id, forget) in &self.settled_add {
            out.push(state::leaf(algo, &StateKey::Settled(*id), forget));
        }
        for (id, t) in &self.outbound {
            let k = StateKey::Outbound(*id);
            out.push(match t {
                Some(t) => state::leaf(algo, &k, t),
                None => gone(k),
            });
        }
        for (id, r) in &self.inbound {
            let k = StateKey::Inbound(*id);
            out.push(match r {
                Some(r) => state::leaf(algo, &k, r),
                None => gone(k),
            });
        }
        for (chain, c) in &self.domains {
            let k = StateKey::Domain(*chain);
            out.push(state::leaf(algo, &k, &c.hash_with(algo)));
        }
        for (id, r) in &self.validators {
            out.push(state::leaf(algo, &StateKey::Validator(*id), r));
        }
        // One change per key by construction (each comes from one map
        // entry or list item of its own key), so no stable sort is needed.
        tree::sort_changes(&mut out);
        debug_assert!(out.windows(2).all(|w| w[0].0 != w[1].0));
        out
    }
}
