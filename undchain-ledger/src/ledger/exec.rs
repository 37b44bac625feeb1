//! Block execution over a copy-on-write overlay: every read goes to the
//! overlay first and the committed ledger second, every write to the
//! overlay. [`Exec::run`] returns what changed ([`Done`]) and the new root;
//! the ledger commits it, or drops it for a preview.

use std::collections::{BTreeMap, BTreeSet};

use undchain_jobfile::{Completion, JobFile};
use undchain_types::msg::{DomainProofKind, DomainTransferTerms};
use undchain_types::{
    BlockNumber, ChainId, Hash32, HashAlgorithm, HashContext, JobEntry, JobId, PublicKey,
    TokenAmount, wire,
};

use super::ops::{ChainEvent, LedgerOp, Verified};
use super::root::{self, Account, InboundState, Leaf, LeafKey, Meta, OutboundState, Supply};
use super::{Applied, Block, BlockError, BlockOutcome, Claim, Ledger, LedgerError, Refused};
use crate::links::domain_link::{DomainInfo, DomainLinkError};
use crate::settle;

/// Hash of a period's signed-block tally.
pub(crate) fn tally_hash(algo: HashAlgorithm, tally: &BTreeMap<PublicKey, u64>) -> Hash32 {
    algo.hash(HashContext::LedgerAccount, &wire::encode_bare(tally))
}

/// The overlay of one block's execution.
pub(crate) struct Exec<'a> {
    pub(crate) base: &'a Ledger,
    pub(crate) number: BlockNumber,
    jobs: &'a JobFile,
    pub(crate) accounts: BTreeMap<PublicKey, Account>,
    marks: BTreeMap<JobId, Completion>,
    pub(crate) claims: BTreeMap<JobId, Claim>,
    outbound: BTreeMap<Hash32, (DomainTransferTerms, OutboundState)>,
    inbound: BTreeMap<Hash32, InboundState>,
    domains: BTreeMap<ChainId, DomainInfo>,
    pub(crate) fee_pool: TokenAmount,
    pub(crate) signed: BTreeMap<PublicKey, u64>,
    supply: Supply,
    op_ids: Vec<Hash32>,
}

/// What a block changed, ready to commit.
pub(crate) struct Done {
    pub(crate) accounts: BTreeMap<PublicKey, Account>,
    pub(crate) marks: BTreeMap<JobId, Completion>,
    pub(crate) claims: BTreeMap<JobId, Claim>,
    pub(crate) outbound: BTreeMap<Hash32, (DomainTransferTerms, OutboundState)>,
    pub(crate) inbound: BTreeMap<Hash32, InboundState>,
    pub(crate) domains: BTreeMap<ChainId, DomainInfo>,
    pub(crate) fee_pool: TokenAmount,
    pub(crate) signed: BTreeMap<PublicKey, u64>,
    pub(crate) supply: Supply,
    pub(crate) ops_digest: Hash32,
    pub(crate) leaf_changes: BTreeMap<LeafKey, Option<[u8; 32]>>,
    pub(crate) root: Hash32,
    pub(crate) outcome: BlockOutcome,
}

fn add(a: TokenAmount, b: TokenAmount) -> Result<TokenAmount, LedgerError> {
    a.checked_add(b).ok_or(LedgerError::Overflow)
}

impl<'a> Exec<'a> {
    pub(crate) fn new(base: &'a Ledger, number: BlockNumber, jobs: &'a JobFile) -> Self {
        Exec {
            base,
            number,
            jobs,
            accounts: BTreeMap::new(),
            marks: BTreeMap::new(),
            claims: BTreeMap::new(),
            outbound: BTreeMap::new(),
            inbound: BTreeMap::new(),
            domains: BTreeMap::new(),
            fee_pool: base.fee_pool,
            signed: base.signed.clone(),
            supply: base.supply,
            op_ids: Vec::new(),
        }
    }

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

    fn domain(&self, chain: &ChainId) -> Option<&DomainInfo> {
        self.domains
            .get(chain)
            .or_else(|| self.base.domains.get(chain))
    }

    fn job(&self, job: &JobId) -> Option<(&'a JobEntry, Completion)> {
        let base = self.base;
        let (entry, committed) = match base.payout.get(job) {
            Some(r) => (&r.entry, r.completion),
            None => (self.jobs.get(job)?, Completion::Open),
        };
        Some((entry, self.marks.get(job).copied().unwrap_or(committed)))
    }

    /// Runs the whole block.
    pub(crate) fn run(base: &'a Ledger, block: &Block<'a>) -> Result<Done, BlockError> {
        if block.number != base.next_block {
            return Err(BlockError::OutOfOrder {
                expected: base.next_block,
                got: block.number,
            });
        }
        let mut x = Exec::new(base, block.number, block.jobs);
        for (index, e) in block.events.iter().enumerate() {
            x.apply_event(e)
                .map_err(|error| BlockError::Event { index, error })?;
        }
        let fees_collected = x.commit_jobs()?;
        let mut applied = Vec::new();
        let mut refused = Vec::new();
        for (index, op) in block.ops.iter().enumerate() {
            match x.apply_op(op) {
                Ok(a) => {
                    x.op_ids.push(op.id);
                    applied.push(a);
                }
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
            Some(settle::settle(&mut x))
        } else {
            None
        };
        Ok(x.finish(block, fees_collected, applied, refused, settlement))
    }

    fn apply_event(&mut self, e: &ChainEvent) -> Result<(), LedgerError> {
        match e {
            ChainEvent::Mint { to, amount } => {
                let minted = self
                    .supply
                    .minted
                    .checked_add(amount.0)
                    .ok_or(LedgerError::Overflow)?;
                if self.supply.circulating() + u128::from(amount.0) > u128::from(u64::MAX) {
                    return Err(LedgerError::Overflow);
                }
                let mut a = self.account(to);
                a.balance = add(a.balance, *amount)?;
                self.supply.minted = minted;
                self.accounts.insert(*to, a);
            }
            ChainEvent::RegisterDomain {
                chain,
                algorithm,
                from,
                set,
            } => {
                if *chain == self.base.config.chain_id {
                    return Err(DomainLinkError::SelfRegistration { chain: *chain }.into());
                }
                let mut info = self.domain(chain).cloned().unwrap_or(DomainInfo {
                    algorithm: *algorithm,
                    sets: BTreeMap::new(),
                });
                info.algorithm = *algorithm;
                info.sets.insert(*from, set.clone());
                self.domains.insert(*chain, info);
            }
        }
        Ok(())
    }

    /// Charges the block's job fees: all or nothing.
    fn commit_jobs(&mut self) -> Result<TokenAmount, BlockError> {
        let fee = self.base.config.transaction_fee;
        let mut per_payer: BTreeMap<PublicKey, u64> = BTreeMap::new();
        let mut total: u64 = 0;
        for e in self.jobs.entries() {
            if self.base.payout.contains(&e.id) {
                return Err(BlockError::JobAlreadyCommitted { job: e.id });
            }
            if e.fee != fee {
                return Err(BlockError::WrongFee {
                    job: e.id,
                    fee: e.fee,
                    expected: fee,
                });
            }
            let payer = e
                .client_pool
                .first()
                .ok_or(BlockError::NoClient { job: e.id })?;
            let s = per_payer.entry(*payer).or_insert(0);
            *s = s.checked_add(fee.0).ok_or(BlockError::Overflow)?;
            total = total.checked_add(fee.0).ok_or(BlockError::Overflow)?;
        }
        let mut charged = Vec::with_capacity(per_payer.len());
        for (payer, needed) in per_payer {
            let mut a = self.account(&payer);
            let Some(rest) = a.balance.checked_sub(TokenAmount(needed)) else {
                return Err(BlockError::UnaffordableFees {
                    payer,
                    needed: TokenAmount(needed),
                    available: a.balance,
                });
            };
            a.balance = rest;
            charged.push((payer, a));
        }
        self.accounts.extend(charged);
        let total = TokenAmount(total);
        self.fee_pool = self
            .fee_pool
            .checked_add(total)
            .ok_or(BlockError::Overflow)?;
        Ok(total)
    }

    /// Applies one operation: checks everything first, then writes, so a
    /// refusal leaves the overlay as it was.
    pub(crate) fn apply_op(&mut self, v: &Verified) -> Result<Applied, LedgerError> {
        match &v.op {
            LedgerOp::Receipt(r) => {
                let t = &r.terms;
                self.complete(
                    t.job,
                    t.client,
                    t.partner,
                    t.amount,
                    Completion::Complete { block: self.number },
                )?;
                Ok(Applied::Completed {
                    job: t.job,
                    block: self.number,
                })
            }
            LedgerOp::Partial(p) => {
                let c = &p.last_checkpoint.checkpoint;
                self.complete(
                    c.job,
                    c.client,
                    c.partner,
                    c.amount,
                    Completion::Partial {
                        block: self.number,
                        units: c.units,
                        amount: c.amount,
                    },
                )?;
                Ok(Applied::Partial {
                    job: c.job,
                    block: self.number,
                    amount: c.amount,
                })
            }
            LedgerOp::DomainLock(t) => self.lock(&t.terms),
            LedgerOp::DomainProof(p) => {
                let terms = &p.transfer.terms;
                match p.kind {
                    DomainProofKind::Credit { .. } => self.credit(terms),
                    DomainProofKind::Expire => self.expire(terms),
                    DomainProofKind::Refund { .. } => self.refund(terms),
                }
            }
        }
    }

    fn complete(
        &mut self,
        job: JobId,
        client: PublicKey,
        partner: PublicKey,
        amount: TokenAmount,
        mark: Completion,
    ) -> Result<(), LedgerError> {
        let (entry, state) = self.job(&job).ok_or(LedgerError::UnknownJob { job })?;
        if state != Completion::Open {
            return Err(LedgerError::AlreadyCompleted { job, state });
        }
        if !entry.client_pool.contains(&client) {
            return Err(LedgerError::NotAClient { job, client });
        }
        if !entry.partner_pool.is_empty() && !entry.partner_pool.contains(&partner) {
            return Err(LedgerError::NotAPartner { job, partner });
        }
        let mut a = self.account(&client);
        let Some(rest) = a.balance.checked_sub(amount) else {
            return Err(LedgerError::InsufficientBalance {
                account: client,
                needed: amount,
                available: a.balance,
            });
        };
        a.balance = rest;
        a.reserved = add(a.reserved, amount)?;
        self.accounts.insert(client, a);
        self.marks.insert(job, mark);
        self.claims.insert(
            job,
            Claim {
                client,
                partner,
                amount,
                partial: matches!(mark, Completion::Partial { .. }),
            },
        );
        Ok(())
    }

    fn lock(&mut self, t: &DomainTransferTerms) -> Result<Applied, LedgerError> {
        let id = t.id();
        if t.source == t.target {
            return Err(DomainLinkError::SameDomain { chain: t.source }.into());
        }
        if t.amount == TokenAmount::ZERO {
            return Err(DomainLinkError::ZeroAmount.into());
        }
        if self.domain(&t.target).is_none() {
            return Err(DomainLinkError::UnknownDomain { chain: t.target }.into());
        }
        if t.expires_at < self.number {
            return Err(DomainLinkError::ExpiryPassed {
                expires_at: t.expires_at,
                block: self.number,
            }
            .into());
        }
        if self.outbound.contains_key(&id) || self.base.outbound.contains_key(&id) {
            return Err(DomainLinkError::AlreadyLocked { id }.into());
        }
        let mut a = self.account(&t.from);
        if a.nonce != t.nonce {
            return Err(LedgerError::BadNonce {
                account: t.from,
                expected: a.nonce,
                got: t.nonce,
            });
        }
        let Some(rest) = a.balance.checked_sub(t.amount) else {
            return Err(LedgerError::InsufficientBalance {
                account: t.from,
                needed: t.amount,
                available: a.balance,
            });
        };
        let exported = self
            .supply
            .exported
            .checked_add(t.amount.0)
            .ok_or(LedgerError::Overflow)?;
        a.balance = rest;
        a.nonce = a.nonce.saturating_add(1);
        self.accounts.insert(t.from, a);
        self.supply.exported = exported;
        self.outbound.insert(id, (t.clone(), OutboundState::Locked));
        Ok(Applied::Locked { id })
    }

    fn inbound_state(&self, id: &Hash32) -> Option<InboundState> {
        self.inbound
            .get(id)
            .copied()
            .or_else(|| self.base.inbound.get(id).copied())
    }

    fn fresh_inbound(&self, id: Hash32) -> Result<(), LedgerError> {
        match self.inbound_state(&id) {
            None => Ok(()),
            Some(InboundState::Credited) => Err(DomainLinkError::AlreadyCredited { id }.into()),
            Some(InboundState::Expired) => Err(DomainLinkError::AlreadyExpired { id }.into()),
        }
    }

    fn credit(&mut self, t: &DomainTransferTerms) -> Result<Applied, LedgerError> {
        let id = t.id();
        self.fresh_inbound(id)?;
        if self.supply.circulating() + u128::from(t.amount.0) > u128::from(u64::MAX) {
            return Err(LedgerError::Overflow);
        }
        let imported = self
            .supply
            .imported
            .checked_add(t.amount.0)
            .ok_or(LedgerError::Overflow)?;
        let mut a = self.account(&t.to);
        a.balance = add(a.balance, t.amount)?;
        self.accounts.insert(t.to, a);
        self.supply.imported = imported;
        self.inbound.insert(id, InboundState::Credited);
        Ok(Applied::Credited { id })
    }

    fn expire(&mut self, t: &DomainTransferTerms) -> Result<Applied, LedgerError> {
        let id = t.id();
        self.fresh_inbound(id)?;
        self.inbound.insert(id, InboundState::Expired);
        Ok(Applied::Expired { id })
    }

    fn refund(&mut self, t: &DomainTransferTerms) -> Result<Applied, LedgerError> {
        let id = t.id();
        let state = self
            .outbound
            .get(&id)
            .or_else(|| self.base.outbound.get(&id))
            .map(|(_, s)| *s)
            .ok_or(DomainLinkError::UnknownTransfer { id })?;
        if state == OutboundState::Refunded {
            return Err(DomainLinkError::AlreadyRefunded { id }.into());
        }
        let refunded = self
            .supply
            .refunded
            .checked_add(t.amount.0)
            .ok_or(LedgerError::Overflow)?;
        let mut a = self.account(&t.from);
        a.balance = add(a.balance, t.amount)?;
        self.accounts.insert(t.from, a);
        self.supply.refunded = refunded;
        self.outbound
            .insert(id, (t.clone(), OutboundState::Refunded));
        Ok(Applied::Refunded { id })
    }

    fn finish(
        self,
        block: &Block<'_>,
        fees_collected: TokenAmount,
        applied: Vec<Applied>,
        refused: Vec<Refused>,
        settlement: Option<settle::Settlement>,
    ) -> Done {
        let base = self.base;
        let algo = base.config.hash_algorithm;
        // Inner nodes hash exactly 64 bytes; this preimage is never 64 bytes
        // long, so the digest cannot pass for a node.
        let ops_digest = algo.hash(
            HashContext::LedgerNode,
            &wire::encode_bare(&(
                "ops",
                base.ops_digest,
                block.number,
                block.jobs.len(),
                &self.op_ids,
                block.events,
                settlement.is_some(),
            )),
        );
        let meta = Meta {
            chain_id: base.config.chain_id,
            next_block: block.number.0.saturating_add(1),
            fee_pool: self.fee_pool,
            supply: self.supply,
            signed_blocks: tally_hash(algo, &self.signed),
            ops_digest,
        };
        let mut changes: BTreeMap<LeafKey, Option<[u8; 32]>> = BTreeMap::new();
        changes.insert(LeafKey::Meta, Some(Leaf::Meta(&meta).hash(algo).0));
        for (id, account) in &self.accounts {
            let v = (!account.is_empty()).then(|| Leaf::Account { id, account }.hash(algo).0);
            changes.insert(LeafKey::Account(*id), v);
        }
        for (id, (terms, state)) in &self.outbound {
            let h = Leaf::Outbound {
                terms,
                state: *state,
            }
            .hash(algo);
            changes.insert(LeafKey::Outbound(*id), Some(h.0));
        }
        for (id, state) in &self.inbound {
            let h = Leaf::Inbound { id, state: *state }.hash(algo);
            changes.insert(LeafKey::Inbound(*id), Some(h.0));
        }
        for (chain, info) in &self.domains {
            let ih = info.hash_with(algo);
            let h = Leaf::Domain { chain, info: &ih }.hash(algo);
            changes.insert(LeafKey::Domain(*chain), Some(h.0));
        }
        let flat = merged_leaves(&base.leaves, &changes);
        let root = root::merkle_root(algo, &flat);
        let outcome = BlockOutcome {
            number: block.number,
            ledger_root: root,
            applied,
            refused,
            fees_collected,
            settlement,
        };
        Done {
            accounts: self.accounts,
            marks: self.marks,
            claims: self.claims,
            outbound: self.outbound,
            inbound: self.inbound,
            domains: self.domains,
            fee_pool: self.fee_pool,
            signed: self.signed,
            supply: self.supply,
            ops_digest,
            leaf_changes: changes,
            root,
            outcome,
        }
    }
}

/// The committed leaves with `changes` applied, in key order.
fn merged_leaves(
    base: &BTreeMap<LeafKey, [u8; 32]>,
    changes: &BTreeMap<LeafKey, Option<[u8; 32]>>,
) -> Vec<[u8; 32]> {
    let mut out = Vec::with_capacity(base.len() + changes.len());
    let mut ch = changes.iter().peekable();
    for (k, h) in base {
        while let Some((ck, cv)) = ch.next_if(|(ck, _)| *ck < k) {
            let _ = ck;
            if let Some(v) = cv {
                out.push(*v);
            }
        }
        match ch.next_if(|(ck, _)| *ck == k) {
            Some((_, Some(v))) => out.push(*v),
            Some((_, None)) => {}
            None => out.push(*h),
        }
    }
    for (_, cv) in ch {
        if let Some(v) = cv {
            out.push(*v);
        }
    }
    out
}
