//! The payout file: the committed jobs of one payout period with a
//! completion column (design notes, validator story item 5; DESIGN.md
//! "Payout file"). Only this file needs storing: the job file of any block
//! is derived from it ([`PayoutFile::job_file`]).
//!
//! At the period's end ([`PayoutFile::roll_over`]) complete jobs pay client
//! to partner, partial ones pay the proven part, and open ones carry over
//! into the next period's file once; an open job that was already carried
//! over is cancelled (only its fee is paid). Settlement itself
//! (`undchain-ledger`) iterates [`PayoutFile::records`].

use std::collections::BTreeMap;

use undchain_types::msg::PayoutFileSummary;
use undchain_types::{
    BlockNumber, Hash32, HashContext, JobEntry, JobId, PayoutPeriod, TokenAmount, hash_parts,
};

use crate::file::{JobFile, Sum256};

/// Where a committed job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Completion {
    /// No receipt has been recorded for the job yet.
    Open,
    /// Receipt signed by client and partner, recorded in `block`.
    Complete {
        /// The block whose ledger records the completion.
        block: BlockNumber,
    },
    /// Partial completion proven by a client-signed usage checkpoint.
    Partial {
        /// The block that recorded it.
        block: BlockNumber,
        /// Units the checkpoint proves.
        units: u64,
        /// Amount the proven part pays.
        amount: TokenAmount,
    },
    /// Open at the end of the period after the one it was committed in:
    /// only the fee is paid.
    Cancelled,
}

impl Completion {
    fn tag_bytes(&self) -> Vec<u8> {
        match self {
            Completion::Open => vec![0],
            Completion::Complete { block } => {
                let mut v = vec![1];
                v.extend(block.0.to_le_bytes());
                v
            }
            Completion::Partial {
                block,
                units,
                amount,
            } => {
                let mut v = vec![2];
                v.extend(block.0.to_le_bytes());
                v.extend(units.to_le_bytes());
                v.extend(amount.0.to_le_bytes());
                v
            }
            Completion::Cancelled => vec![3],
        }
    }
}

/// One row of the payout file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutRecord {
    /// The job as committed.
    pub entry: JobEntry,
    /// The block whose job file committed it.
    pub block: BlockNumber,
    /// Where the job stands: open, complete, partly complete or
    /// cancelled (the completion column).
    pub completion: Completion,
    /// The period it was carried over from (a job carries over once).
    pub carried_from: Option<PayoutPeriod>,
}

/// Why a payout-file change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayoutError {
    /// The job is already in the file.
    #[error("job {id} is already committed (block {block})")]
    AlreadyCommitted {
        /// The job that was to be committed.
        id: JobId,
        /// The block whose job file already committed it.
        block: BlockNumber,
    },
    /// The block belongs to another payout period.
    #[error("block {block} belongs to {got}, not to this file's {period}")]
    WrongPeriod {
        /// The block the change named.
        block: BlockNumber,
        /// The payout period that block belongs to.
        got: PayoutPeriod,
        /// The payout period this file covers.
        period: PayoutPeriod,
    },
    /// No such job in the file.
    #[error("job {id} is not in the payout file")]
    UnknownJob {
        /// The job the change named.
        id: JobId,
    },
    /// The job already has a final completion state; the first receipt
    /// counts (DESIGN.md "Client to validator" step 5).
    #[error("job {id} is already settled as {state:?}")]
    AlreadySettled {
        /// The job the change named.
        id: JobId,
        /// The final state already recorded for it.
        state: Completion,
    },
    /// A completion recorded before the job was committed.
    #[error("completion at block {at} precedes the job's commit block {committed}")]
    CompletionBeforeCommit {
        /// The block the completion was to be recorded in.
        at: BlockNumber,
        /// The block whose job file committed the job.
        committed: BlockNumber,
    },
}

/// The outcome of a period boundary.
#[derive(Debug, Clone)]
pub struct Rollover {
    /// The finished period's file with final states: complete, partial,
    /// cancelled, or open (carried over, settled in the next period).
    pub settled: PayoutFile,
    /// The next period's file, holding the carried-over jobs.
    pub next: PayoutFile,
    /// Jobs carried into the next period.
    pub carried: Vec<JobId>,
    /// Jobs cancelled now (fee only).
    pub cancelled: Vec<JobId>,
}

/// The payout file of one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutFile {
    period: PayoutPeriod,
    blocks_per_period: u64,
    records: BTreeMap<JobId, PayoutRecord>,
}

impl PayoutFile {
    /// An empty file for `period` (`blocks_per_period` from
    /// [`undchain_types::ChainParams::blocks_per_period`]).
    pub fn new(period: PayoutPeriod, blocks_per_period: u64) -> Self {
        PayoutFile {
            period,
            blocks_per_period: blocks_per_period.max(1),
            records: BTreeMap::new(),
        }
    }

    /// The payout period this file covers.
    pub fn period(&self) -> PayoutPeriod {
        self.period
    }

    fn period_of(&self, b: BlockNumber) -> PayoutPeriod {
        PayoutPeriod(b.0 / self.blocks_per_period)
    }

    /// Jobs in the file (including carried-over ones).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records a closed block's job file: every entry becomes an open job
    /// committed in `block`. All or nothing.
    pub fn commit_block(&mut self, block: BlockNumber, file: &JobFile) -> Result<(), PayoutError> {
        let got = self.period_of(block);
        if got != self.period {
            return Err(PayoutError::WrongPeriod {
                block,
                got,
                period: self.period,
            });
        }
        for e in file.entries() {
            if let Some(r) = self.records.get(&e.id) {
                return Err(PayoutError::AlreadyCommitted {
                    id: e.id,
                    block: r.block,
                });
            }
        }
        for e in file.entries() {
            self.records.insert(
                e.id,
                PayoutRecord {
                    entry: e.clone(),
                    block,
                    completion: Completion::Open,
                    carried_from: None,
                },
            );
        }
        Ok(())
    }

    /// The record of job `id`.
    pub fn get(&self, id: &JobId) -> Option<&PayoutRecord> {
        self.records.get(id)
    }

    /// Whether job `id` is in the file.
    pub fn contains(&self, id: &JobId) -> bool {
        self.records.contains_key(id)
    }

    /// Every record, in job-id order.
    pub fn records(&self) -> impl Iterator<Item = &PayoutRecord> {
        self.records.values()
    }

    fn open_record(
        &mut self,
        id: &JobId,
        at: BlockNumber,
    ) -> Result<&mut PayoutRecord, PayoutError> {
        let r = self
            .records
            .get_mut(id)
            .ok_or(PayoutError::UnknownJob { id: *id })?;
        if r.completion != Completion::Open {
            return Err(PayoutError::AlreadySettled {
                id: *id,
                state: r.completion,
            });
        }
        if at < r.block {
            return Err(PayoutError::CompletionBeforeCommit {
                at,
                committed: r.block,
            });
        }
        Ok(r)
    }

    /// Marks job `id` complete at `block` (the first receipt counts).
    pub fn mark_complete(&mut self, id: &JobId, block: BlockNumber) -> Result<(), PayoutError> {
        self.open_record(id, block)?.completion = Completion::Complete { block };
        Ok(())
    }

    /// Marks job `id` partially complete at `block`, paying `amount` for
    /// `units` proven by a usage checkpoint.
    pub fn mark_partial(
        &mut self,
        id: &JobId,
        block: BlockNumber,
        units: u64,
        amount: TokenAmount,
    ) -> Result<(), PayoutError> {
        self.open_record(id, block)?.completion = Completion::Partial {
            block,
            units,
            amount,
        };
        Ok(())
    }

    /// The job file of `block`, derived from the committed entries.
    pub fn job_file(&self, block: BlockNumber) -> JobFile {
        let mut f = JobFile::new();
        for r in self.records.values().filter(|r| r.block == block) {
            // Ids are unique in the map, so the insert cannot collide.
            let _ = f.insert(r.entry.clone());
        }
        f
    }

    /// Ends the period: open jobs committed in this period carry over once
    /// into the next period's file; open jobs already carried over are
    /// cancelled.
    pub fn roll_over(mut self) -> Rollover {
        let next_period = PayoutPeriod(self.period.0.saturating_add(1));
        let mut next = PayoutFile::new(next_period, self.blocks_per_period);
        let mut carried = Vec::new();
        let mut cancelled = Vec::new();
        for (id, r) in self.records.iter_mut() {
            if r.completion != Completion::Open {
                continue;
            }
            if r.carried_from.is_some() {
                r.completion = Completion::Cancelled;
                cancelled.push(*id);
            } else {
                carried.push(*id);
                next.records.insert(
                    *id,
                    PayoutRecord {
                        entry: r.entry.clone(),
                        block: r.block,
                        completion: Completion::Open,
                        carried_from: Some(self.period),
                    },
                );
            }
        }
        Rollover {
            settled: self,
            next,
            carried,
            cancelled,
        }
    }

    /// A root over the whole file, completion column included.
    pub fn root(&self) -> Hash32 {
        let mut sum = Sum256::default();
        for r in self.records.values() {
            let mut h = HashContext::PayoutFile.hasher();
            h.update(r.entry.leaf_hash().as_bytes());
            h.update(&r.block.0.to_le_bytes());
            h.update(&r.completion.tag_bytes());
            h.update(&r.carried_from.map_or(u64::MAX, |p| p.0).to_le_bytes());
            sum.add(&Hash32(*h.finalize().as_bytes()));
        }
        hash_parts(
            HashContext::PayoutFile,
            &[
                &self.period.0.to_le_bytes(),
                &(self.records.len() as u64).to_le_bytes(),
                &sum.to_bytes(),
            ],
        )
    }

    /// The summary validators exchange (validator story 5).
    pub fn summary(&self) -> PayoutFileSummary {
        let mut s = PayoutFileSummary {
            period: self.period,
            count: self.records.len() as u64,
            root: self.root(),
            open: 0,
            complete: 0,
            partial: 0,
            cancelled: 0,
        };
        for r in self.records.values() {
            match r.completion {
                Completion::Open => s.open += 1,
                Completion::Complete { .. } => s.complete += 1,
                Completion::Partial { .. } => s.partial += 1,
                Completion::Cancelled => s.cancelled += 1,
            }
        }
        s
    }
}
