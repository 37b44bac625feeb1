//! A validator's job book: the two open job files (this block and the
//! next), the cutoff rule, block close, and the payout file the closed
//! files flow into (DESIGN.md "Job files", "Payout file"; design notes,
//! client story step 2 and validator story items 4 and 5).
//!
//! Cutoff rule: a request arriving at block time `t` belongs to block
//! `c = block_at(t)`, unless it arrives within the cutoff (`cutoff_us`)
//! before `c` ends, in which case it goes to `c + 1`. A request whose block
//! is already closed (a late arrival) lands in the oldest open file; one
//! whose block is not open yet (the caller is behind on closing) lands in
//! the newest. Nothing is dropped, and a job id that is already open or
//! committed in the current payout file is reported, never filed twice.

use undchain_types::{BlockNumber, BlockTime, ChainParams, JobEntry, JobId};

use crate::file::JobFile;
use crate::merkle::ClosedFile;
use crate::payout::{PayoutError, PayoutFile, Rollover};

/// Where a filed request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filed {
    /// Filed in the open file of `block`.
    Filed {
        /// The block whose open file holds it now.
        block: BlockNumber,
        /// The block the cutoff rule named (differs when it was late or
        /// early).
        wanted: BlockNumber,
    },
    /// Already filed: in the open file of `block`, or committed in `block`
    /// (`committed`). A retried request gets the same answer.
    Duplicate {
        /// The block whose open file holds it, or that committed it.
        block: BlockNumber,
        /// Whether that block is closed.
        committed: bool,
    },
}

/// Why a book operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// The job is not in the current block's open file.
    #[error("job {id} is not in the open file of block {block}")]
    NotOpen {
        /// The job the operation named.
        id: JobId,
        /// The current block, whose open file lacks the job.
        block: BlockNumber,
    },
    /// The block is not one of the two open blocks.
    #[error("block {block} is not open (open: {current} and the next)")]
    BlockNotOpen {
        /// The block the operation named.
        block: BlockNumber,
        /// The oldest open block.
        current: BlockNumber,
    },
    /// The payout file refused the closed block.
    #[error("payout file: {0}")]
    Payout(#[from] PayoutError),
}

/// What closing a block produced.
#[derive(Debug, Clone)]
pub struct Closed {
    /// The closed file with its Merkle tree.
    pub file: ClosedFile,
    /// Present when the closed block was the last of its payout period.
    pub rollover: Option<Rollover>,
}

/// The block a request arriving at `now` belongs to under the cutoff rule.
pub fn target_block(params: &ChainParams, now: BlockTime) -> BlockNumber {
    let c = params.block_at(now);
    let end = params.block_start(c.next());
    if now.0.saturating_add(params.cutoff_us()) >= end.0 && params.cutoff_us() > 0 {
        c.next()
    } else {
        c
    }
}

/// Two open job files and the payout file of the current period.
#[derive(Debug, Clone)]
pub struct JobBook {
    params: ChainParams,
    current: BlockNumber,
    open: [JobFile; 2],
    payout: PayoutFile,
}

impl JobBook {
    /// A book whose oldest open block is `current` (its payout file starts
    /// empty).
    pub fn new(params: ChainParams, current: BlockNumber) -> Self {
        let payout = PayoutFile::new(params.period_of(current), params.blocks_per_period());
        JobBook {
            params,
            current,
            open: [JobFile::new(), JobFile::new()],
            payout,
        }
    }

    /// The two open blocks, oldest first.
    pub fn open_blocks(&self) -> [BlockNumber; 2] {
        [self.current, self.current.next()]
    }

    /// The open file of `block`.
    pub fn open_file(&self, block: BlockNumber) -> Option<&JobFile> {
        self.slot(block).map(|i| &self.open[i])
    }

    /// The open file of `block`, mutably (to apply a reconciliation's
    /// outcome).
    pub fn open_file_mut(&mut self, block: BlockNumber) -> Option<&mut JobFile> {
        self.slot(block).map(|i| &mut self.open[i])
    }

    fn slot(&self, block: BlockNumber) -> Option<usize> {
        if block == self.current {
            Some(0)
        } else if block == self.current.next() {
            Some(1)
        } else {
            None
        }
    }

    /// The current period's payout file.
    pub fn payout(&self) -> &PayoutFile {
        &self.payout
    }

    /// The current period's payout file, mutably (to mark completions).
    pub fn payout_mut(&mut self) -> &mut PayoutFile {
        &mut self.payout
    }

    /// Where job `id` is: an open block or a committed one.
    pub fn locate(&self, id: &JobId) -> Option<(BlockNumber, bool)> {
        for (i, f) in self.open.iter().enumerate() {
            if f.contains(id) {
                return Some((BlockNumber(self.current.0 + i as u64), false));
            }
        }
        self.payout.get(id).map(|r| (r.block, true))
    }

    /// Files `entry`, which arrived at block time `now`, by the cutoff rule.
    pub fn file(&mut self, entry: JobEntry, now: BlockTime) -> Filed {
        if let Some((block, committed)) = self.locate(&entry.id) {
            return Filed::Duplicate { block, committed };
        }
        let wanted = target_block(&self.params, now);
        let block = wanted.clamp(self.current, self.current.next());
        let i = usize::from(block != self.current);
        match self.open[i].insert(entry) {
            Ok(_) => Filed::Filed { block, wanted },
            // `locate` found no copy, so the insert cannot collide.
            Err(_) => Filed::Duplicate {
                block,
                committed: false,
            },
        }
    }

    /// Files an entry into the open file of `block` directly (an entry
    /// learned from a peer by delta or reconciliation); refuses duplicates
    /// like [`JobBook::file`].
    pub fn file_at(&mut self, entry: JobEntry, block: BlockNumber) -> Result<Filed, BookError> {
        if let Some((b, committed)) = self.locate(&entry.id) {
            return Ok(Filed::Duplicate {
                block: b,
                committed,
            });
        }
        let i = self.slot(block).ok_or(BookError::BlockNotOpen {
            block,
            current: self.current,
        })?;
        let _ = self.open[i].insert(entry);
        Ok(Filed::Filed {
            block,
            wanted: block,
        })
    }

    /// Moves job `id` from the oldest open file to the next one (DESIGN.md
    /// "Agreement": a job the decided proposal lacks goes into the next
    /// job file).
    pub fn defer(&mut self, id: &JobId) -> Result<BlockNumber, BookError> {
        let entry = self.open[0].remove(id).ok_or(BookError::NotOpen {
            id: *id,
            block: self.current,
        })?;
        // Ids are unique across both open files, so this cannot collide.
        let _ = self.open[1].insert(entry);
        Ok(self.current.next())
    }

    /// Closes the oldest open block: its file is frozen (Merkle root for
    /// the header, inclusion proofs), committed into the payout file, and a
    /// new file opens two blocks ahead. Closing the last block of a payout
    /// period also rolls the payout file over.
    pub fn close_current(&mut self) -> Result<Closed, BookError> {
        let block = self.current;
        self.payout.commit_block(block, &self.open[0])?;
        let file = core::mem::take(&mut self.open[0]);
        self.open.swap(0, 1);
        self.current = block.next();
        let rollover = if self.params.period_of(self.current) != self.payout.period() {
            let fresh = PayoutFile::new(self.payout.period(), self.params.blocks_per_period());
            let r = core::mem::replace(&mut self.payout, fresh).roll_over();
            self.payout = r.next.clone();
            Some(r)
        } else {
            None
        };
        Ok(Closed {
            file: file.close(block),
            rollover,
        })
    }
}
