//! A validator's job book: the two open job files (this block and the
//! next), the cutoff rule and block close (DESIGN.md "Job files"; design
//! notes, client story step 2 and validator story item 4). The book keeps
//! no payout file: the ledger's payout file is the one copy of what was
//! committed, and the host asks it whether a job id is already committed
//! before filing (DESIGN.md "Payout file").
//!
//! Cutoff rule: a request arriving at block time `t` belongs to block
//! `c = block_at(t)`, unless it arrives within the cutoff (`cutoff_us`)
//! before `c` ends, in which case it goes to `c + 1`. A request whose block
//! is already closed (a late arrival) lands in the oldest open file; one
//! whose block is not open yet (the caller is behind on closing) lands in
//! the newest. Nothing is dropped, and a job id that is already open is
//! reported, never filed twice.

use undchain_types::{BlockNumber, BlockTime, ChainParams, JobEntry, JobId};

use crate::file::JobFile;
use crate::merkle::ClosedFile;

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
    /// Already filed in the open file of `block`. A retried request gets
    /// the same answer.
    Duplicate {
        /// The block whose open file holds it.
        block: BlockNumber,
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
}

/// What committing the oldest open block produced.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The committed file with its Merkle tree.
    pub file: ClosedFile,
    /// Jobs this book held for the block that the decided file lacks: they
    /// moved to the next open file (DESIGN.md "Agreement").
    pub deferred: Vec<JobId>,
    /// Jobs of the decided file that this book held in the next open file:
    /// they left it (they are committed now).
    pub pulled: Vec<JobId>,
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

/// Two open job files.
#[derive(Debug, Clone)]
pub struct JobBook {
    params: ChainParams,
    current: BlockNumber,
    open: [JobFile; 2],
}

impl JobBook {
    /// A book whose oldest open block is `current`, both files empty.
    pub fn new(params: ChainParams, current: BlockNumber) -> Self {
        JobBook {
            params,
            current,
            open: [JobFile::new(), JobFile::new()],
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

    /// The open block whose file holds job `id`.
    pub fn locate(&self, id: &JobId) -> Option<BlockNumber> {
        self.open
            .iter()
            .position(|f| f.contains(id))
            .map(|i| BlockNumber(self.current.0 + i as u64))
    }

    /// The entry of job `id` in either open file.
    pub fn get(&self, id: &JobId) -> Option<&JobEntry> {
        self.open.iter().find_map(|f| f.get(id))
    }

    /// Removes job `id` from whichever open file holds it.
    pub fn remove(&mut self, id: &JobId) -> Option<(BlockNumber, JobEntry)> {
        let i = self.open.iter().position(|f| f.contains(id))?;
        let e = self.open[i].remove(id)?;
        Some((BlockNumber(self.current.0 + i as u64), e))
    }

    /// Files `entry`, which arrived at block time `now`, by the cutoff rule.
    pub fn file(&mut self, entry: JobEntry, now: BlockTime) -> Filed {
        if let Some(block) = self.locate(&entry.id) {
            return Filed::Duplicate { block };
        }
        let wanted = target_block(&self.params, now);
        let block = wanted.clamp(self.current, self.current.next());
        let i = usize::from(block != self.current);
        match self.open[i].insert(entry) {
            Ok(_) => Filed::Filed { block, wanted },
            // `locate` found no copy, so the insert cannot collide.
            Err(_) => Filed::Duplicate { block },
        }
    }

    /// Files an entry into the open file of `block` directly (an entry
    /// learned from a peer by delta or reconciliation); refuses duplicates
    /// like [`JobBook::file`].
    pub fn file_at(&mut self, entry: JobEntry, block: BlockNumber) -> Result<Filed, BookError> {
        if let Some(b) = self.locate(&entry.id) {
            return Ok(Filed::Duplicate { block: b });
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

    /// Closes the oldest open block with the file this book holds for it
    /// (no agreement: tests and single-node use): a new file opens two
    /// blocks ahead.
    pub fn close_current(&mut self) -> ClosedFile {
        let decided = self.open[0].clone();
        self.commit_current(decided).file
    }

    /// Commits the oldest open block with the `decided` file agreement
    /// chose: this book's jobs for the block that `decided` lacks move to
    /// the next open file, jobs of `decided` held in the next file leave
    /// it, and a new file opens two blocks ahead.
    pub fn commit_current(&mut self, decided: JobFile) -> Committed {
        let block = self.current;
        let mine = core::mem::take(&mut self.open[0]);
        let mut deferred = Vec::new();
        for e in mine.entries() {
            if !decided.contains(&e.id) {
                deferred.push(e.id);
            }
        }
        let mut pulled = Vec::new();
        for e in decided.entries() {
            if self.open[1].remove(&e.id).is_some() {
                pulled.push(e.id);
            }
        }
        let mut mine = mine;
        for id in &deferred {
            if let Some(e) = mine.remove(id) {
                // Ids are unique across both open files.
                let _ = self.open[1].insert(e);
            }
        }
        self.open.swap(0, 1);
        self.current = block.next();
        Committed {
            file: decided.close(block),
            deferred,
            pulled,
        }
    }
}
