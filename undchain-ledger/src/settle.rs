//! Period-end settlement over the payout file (design notes, validator story
//! item 5; DESIGN.md "Payout file", "Money"; docs/PROTOCOL.md
//! "Settlement").
//!
//! It runs with the last block of each payout period, inside
//! [`crate::Ledger::apply_block`], over every open job:
//!
//! 1. A job with claims is **settled**: each partner's claim (its receipt,
//!    or its partial with the highest checkpoint counter) moves from the
//!    client's escrow to that partner, and the rest of the escrow goes back
//!    to the client's free balance.
//! 2. A job without claims committed in this period **carries over** once.
//! 3. A job without claims already carried over is **cancelled**: its whole
//!    escrow goes back; it cost only the fee paid at commit.
//! 4. The fee pool goes to the validators that signed the period's blocks,
//!    pro rata ([`fee_shares`]); the integer remainder stays in the pool.
//!
//! Settled and cancelled job ids are remembered while their requests could
//! still be committed (the request window), so a job pays once. Every sum
//! is checked: a broken invariant refuses the block
//! ([`crate::BlockError::Invariant`]) instead of saturating. Signatures are
//! not re-checked: settlement runs over verified records.

use std::collections::BTreeMap;

use undchain_types::{JobId, PayoutPeriod, PublicKey, TokenAmount};

use crate::ledger::BlockError;
use crate::ledger::exec::Exec;
use crate::ledger::state::{ClaimKind, OpenJob};

/// The result of a period's settlement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settlement {
    /// The payout period this settlement closed.
    pub period: PayoutPeriod,
    /// Jobs paid by full receipts only.
    pub completed: u64,
    /// Jobs paid with at least one partial claim.
    pub partial: u64,
    /// Claims paid (one per partner and job).
    pub claims: u64,
    /// Total paid from escrow to partners.
    pub paid: TokenAmount,
    /// Unused escrow returned to clients (settled and cancelled jobs).
    pub refunded: TokenAmount,
    /// Fee shares paid to validators, by key.
    pub fees: Vec<(PublicKey, TokenAmount)>,
    /// Fees left in the pool (integer remainder, or no signer).
    pub fee_remainder: TokenAmount,
    /// Jobs settled (paid), by id.
    pub settled: Vec<JobId>,
    /// Jobs cancelled (fee only), by id.
    pub cancelled: Vec<JobId>,
    /// Jobs carried into the next period, by id.
    pub carried: Vec<JobId>,
}

/// Splits `pool` among validators pro rata to the blocks each signed:
/// `pool * signed / total`, rounded down; returns the shares (zero shares
/// left out) and the remainder.
pub fn fee_shares(
    pool: TokenAmount,
    tally: &BTreeMap<PublicKey, u64>,
) -> (Vec<(PublicKey, TokenAmount)>, TokenAmount) {
    let total: u128 = tally.values().map(|n| u128::from(*n)).sum();
    if total == 0 {
        return (Vec::new(), pool);
    }
    let mut paid: u64 = 0;
    let mut shares = Vec::with_capacity(tally.len());
    for (id, n) in tally {
        // share <= pool because n <= total, so it fits in u64.
        let share = (u128::from(pool.0) * u128::from(*n) / total) as u64;
        if share > 0 {
            paid += share;
            shares.push((*id, TokenAmount(share)));
        }
    }
    (shares, TokenAmount(pool.0 - paid))
}

fn add(a: &mut u64, b: u64, what: &'static str) -> Result<(), BlockError> {
    *a = a.checked_add(b).ok_or(BlockError::Invariant(what))?;
    Ok(())
}

/// What settling one job did.
enum Fate {
    Settled,
    Cancelled,
    Carried(Box<OpenJob>),
}

impl Exec<'_> {
    /// Settles one job: pays its claims, refunds the rest of its escrow.
    fn settle_job(&mut self, job: &OpenJob, s: &mut Settlement) -> Result<Fate, BlockError> {
        if job.claims.is_empty() && job.carried_from.is_none() {
            let mut next = job.clone();
            next.carried_from = Some(s.period);
            return Ok(Fate::Carried(Box::new(next)));
        }
        let mut paid = 0u64;
        for c in &job.claims {
            let partner = self.account_mut(&c.partner);
            add(
                &mut partner.balance.0,
                c.amount.0,
                "partner balance overflows",
            )?;
            add(&mut paid, c.amount.0, "a job's claims overflow")?;
        }
        let refund = job
            .escrow
            .0
            .checked_sub(paid)
            .ok_or(BlockError::Invariant("claims pass the job's escrow"))?;
        let client = self.account_mut(&job.client);
        client.escrow.0 = client
            .escrow
            .0
            .checked_sub(job.escrow.0)
            .ok_or(BlockError::Invariant("client escrow below a job's"))?;
        add(&mut client.balance.0, refund, "client balance overflows")?;
        add(&mut s.paid.0, paid, "paid total overflows")?;
        add(&mut s.refunded.0, refund, "refund total overflows")?;
        s.claims += job.claims.len() as u64;
        if job.claims.is_empty() {
            return Ok(Fate::Cancelled);
        }
        if job.claims.iter().all(|c| c.kind == ClaimKind::Full) {
            s.completed += 1;
        } else {
            s.partial += 1;
        }
        Ok(Fate::Settled)
    }

    fn record_fate(
        &mut self,
        id: JobId,
        sent_at: undchain_types::BlockTime,
        fate: Fate,
        s: &mut Settlement,
    ) {
        match fate {
            Fate::Carried(next) => {
                s.carried.push(id);
                self.jobs.insert(id, Some(*next));
                return;
            }
            Fate::Settled => s.settled.push(id),
            Fate::Cancelled => s.cancelled.push(id),
        }
        match self.jobs.get_mut(&id) {
            Some(touched) => *touched = None,
            None => self.jobs_settled.push(id),
        }
        let forget = self.base.config.forget_block(sent_at);
        if forget > self.number {
            self.settled_add.push((id, forget));
        }
    }
}

/// A set of job ids that answers "maybe" or "certainly not" from the
/// first 16 bits of an id (ids are hashes), so the settlement's pass over
/// the whole payout file asks the block's overlay only about the few ids
/// it may hold.
struct Prefilter(Vec<u64>);

impl Prefilter {
    fn slot(id: &JobId) -> usize {
        usize::from(u16::from_le_bytes([id.0.0[0], id.0.0[1]]))
    }

    fn new<'a>(ids: impl Iterator<Item = &'a JobId>) -> Self {
        let mut bits = vec![0u64; (1 << 16) / 64];
        for id in ids {
            let s = Prefilter::slot(id);
            bits[s / 64] |= 1 << (s % 64);
        }
        Prefilter(bits)
    }

    fn may_hold(&self, id: &JobId) -> bool {
        let s = Prefilter::slot(id);
        self.0[s / 64] & (1 << (s % 64)) != 0
    }
}

/// Settles the period into the overlay of the block that ends it.
pub(crate) fn settle(x: &mut Exec<'_>) -> Result<Settlement, BlockError> {
    let base = x.base;
    let open = base.jobs.len() + x.jobs.len();
    let mut s = Settlement {
        period: base.config.period_of(x.number),
        // Most jobs of a period settle: no regrowth of these lists.
        settled: Vec::with_capacity(open),
        ..Settlement::default()
    };
    x.jobs_settled.reserve(base.jobs.len());
    // Jobs new or changed in this block (an overlay entry wins over the
    // committed one), then the committed jobs nobody touched.
    let touched: Vec<(JobId, OpenJob)> = x
        .jobs
        .iter()
        .filter_map(|(id, j)| j.clone().map(|j| (*id, j)))
        .collect();
    for (id, job) in &touched {
        let fate = x.settle_job(job, &mut s)?;
        x.record_fate(*id, job.sent_at, fate, &mut s);
    }
    let maybe_touched = Prefilter::new(x.jobs.keys());
    for (id, job) in &base.jobs {
        // Touched above (settled, carried or removed): the overlay has it.
        if maybe_touched.may_hold(id) && x.jobs.contains_key(id) {
            continue;
        }
        let fate = x.settle_job(job, &mut s)?;
        x.record_fate(*id, job.sent_at, fate, &mut s);
    }
    x.settled_period = true;
    s.settled.sort_unstable();
    s.cancelled.sort_unstable();
    s.carried.sort_unstable();
    let (fees, remainder) = fee_shares(x.fee_pool, &x.signed);
    for (id, share) in &fees {
        let a = x.account_mut(id);
        add(&mut a.balance.0, share.0, "validator balance overflows")?;
    }
    x.fee_pool = remainder;
    x.signed.clear();
    s.fees = fees;
    s.fee_remainder = remainder;
    Ok(s)
}
