//! One block in, its outcome out: the [`Block`] the ledger applies, what
//! each operation did ([`Applied`], [`Refused`]), the [`BlockOutcome`],
//! and [`Ledger::preview`] / [`Ledger::apply_block`], which run the block
//! over a copy-on-write overlay ([`super::exec`]) and, when applying, commit
//! the overlay in one infallible pass.

use undchain_jobfile::{Completion, JobFile, PayoutFile};
use undchain_types::{BlockNumber, Hash32, JobId, PayoutPeriod, PublicKey, TokenAmount};

use super::exec;
use super::ops::{ChainEvent, Verified};
use super::{BlockError, Ledger, LedgerError};
use crate::settle::Settlement;

/// One block as the ledger applies it.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    /// The block's number; blocks apply in order, each once.
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
        /// The job the receipt completed.
        job: JobId,
        /// The block that recorded the completion (what the client is told).
        block: BlockNumber,
    },
    /// A partial completion recorded the proven part.
    Partial {
        /// The job the partial completion recorded.
        job: JobId,
        /// The block that recorded the partial completion.
        block: BlockNumber,
        /// The amount the client's last signed checkpoint proves, held in escrow until settlement.
        amount: TokenAmount,
    },
    /// A domain transfer was locked here (source).
    Locked {
        /// The id of the transfer now locked on this chain.
        id: Hash32,
    },
    /// A domain transfer was credited here (target).
    Credited {
        /// The id of the transfer credited to its payee on this chain.
        id: Hash32,
    },
    /// A domain transfer was recorded as expired here (target).
    Expired {
        /// The id of the transfer recorded as expired, never to be credited here.
        id: Hash32,
    },
    /// A domain transfer was refunded here (source).
    Refunded {
        /// The id of the transfer whose tokens went back to the payer.
        id: Hash32,
    },
}

/// An operation of the block that was refused (and changed nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Its index among the block's operations.
    pub index: usize,
    /// The refused operation's id ([`Verified::id`]).
    pub op: Hash32,
    /// Why it was refused; the error a submitter is answered with.
    pub error: LedgerError,
}

/// The result of a block.
#[derive(Debug, Clone)]
pub struct BlockOutcome {
    /// The number of the block this outcome is for.
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

impl Ledger {
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
