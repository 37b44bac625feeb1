//! Payout file: the job file of any block derived from it equals the file
//! closed for that block; completions; carry over once, then cancel.

use undchain_jobfile::testkit::entry;
use undchain_jobfile::{Completion, JobBook, PayoutError, PayoutFile, Rollover};
use undchain_types::{BlockNumber, BlockTime, ChainParams, PayoutPeriod, TokenAmount};

/// Genesis at 0, 5 blocks per payout period.
fn params() -> ChainParams {
    crate::helpers::params(2, BlockTime(0), 5)
}

/// Files the requests of block `b` in `book`: `b * 37 % 11 + 1` of them,
/// 1 ms apart from the block's start, jobs numbered on from `*job`.
fn file_block(book: &mut JobBook, p: &ChainParams, b: u64, job: &mut u64) {
    for k in 0..(b * 37 % 11 + 1) {
        let t = p.block_start(BlockNumber(b)).plus(k * 1_000);
        book.file(entry(*job, t.0), t);
        *job += 1;
    }
}

/// The payout file as a ledger keeps it beside a job book: every closed
/// block is committed into it, and it rolls over at the period's end.
struct Payout {
    params: ChainParams,
    file: PayoutFile,
}

impl Payout {
    fn new(params: &ChainParams) -> Self {
        Payout {
            params: params.clone(),
            file: PayoutFile::new(PayoutPeriod(0), params.blocks_per_period()),
        }
    }

    /// Closes the book's oldest block into the payout file; the rollover
    /// when that block ended its period.
    fn close(&mut self, book: &mut JobBook) -> Option<Rollover> {
        let closed = book.close_current();
        self.file
            .commit_block(closed.block(), closed.file())
            .unwrap();
        let next = closed.block().next();
        if self.params.period_of(next) != self.file.period() {
            let fresh = PayoutFile::new(self.file.period(), self.params.blocks_per_period());
            let r = core::mem::replace(&mut self.file, fresh).roll_over();
            self.file = r.next.clone();
            Some(r)
        } else {
            None
        }
    }

    /// Closes `n` blocks; the rollover of the last period boundary among them.
    fn close_blocks(&mut self, book: &mut JobBook, n: usize) -> Option<Rollover> {
        let mut roll = None;
        for _ in 0..n {
            if let Some(r) = self.close(book) {
                roll = Some(r);
            }
        }
        roll
    }
}

#[test]
fn derived_job_files_equal_the_closed_ones() {
    let p = params();
    let mut book = JobBook::new(p.clone(), BlockNumber(0));
    let mut closed = Vec::new();
    let mut job = 0u64;
    for b in 0..5u64 {
        file_block(&mut book, &p, b, &mut job);
        closed.push(book.close_current());
    }
    // Block 4 closed the period. Check against the payout file of period 0
    // built by a second run that stops before the rollover.
    let mut book2 = JobBook::new(p.clone(), BlockNumber(0));
    let mut payout = Payout::new(&p);
    let mut job = 0u64;
    for b in 0..4u64 {
        file_block(&mut book2, &p, b, &mut job);
        assert!(payout.close(&mut book2).is_none());
    }
    for (b, c) in closed.iter().enumerate().take(4) {
        let derived = payout.file.job_file(BlockNumber(b as u64));
        assert_eq!(&derived, c.file(), "block {b}");
        assert_eq!(derived.merkle_root(), c.merkle_root());
        assert_eq!(derived.root(), c.file().root());
    }
}

#[test]
fn completion_column_and_carry_over_once_then_cancel() {
    let p = params();
    let mut book = JobBook::new(p.clone(), BlockNumber(0));
    let mut payout = Payout::new(&p);
    let t0 = p.block_start(BlockNumber(0));
    for j in 0..4 {
        book.file(entry(j, j), t0);
    }
    assert!(payout.close(&mut book).is_none());
    let pay = &mut payout.file;
    pay.mark_complete(&entry(0, 0).id, BlockNumber(1)).unwrap();
    pay.mark_partial(&entry(1, 1).id, BlockNumber(2), 5, TokenAmount(50))
        .unwrap();
    // The first receipt counts.
    assert!(matches!(
        pay.mark_complete(&entry(0, 0).id, BlockNumber(2)),
        Err(PayoutError::AlreadySettled { .. })
    ));
    assert!(matches!(
        pay.mark_complete(&entry(9, 9).id, BlockNumber(2)),
        Err(PayoutError::UnknownJob { .. })
    ));
    // Close the rest of period 0: rollover.
    let r = payout.close_blocks(&mut book, 4).expect("period 0 ended");
    assert_eq!(r.settled.period(), PayoutPeriod(0));
    assert_eq!(r.carried.len(), 2);
    assert!(r.cancelled.is_empty());
    let s = r.settled.summary();
    assert_eq!((s.complete, s.partial, s.open, s.cancelled), (1, 1, 2, 0));
    assert_eq!(payout.file.period(), PayoutPeriod(1));
    assert_eq!(payout.file.len(), 2);
    // Job 2 completes in period 1; job 3 never does.
    payout
        .file
        .mark_complete(&entry(2, 2).id, BlockNumber(6))
        .unwrap();
    let r = payout.close_blocks(&mut book, 5).expect("period 1 ended");
    assert_eq!(r.cancelled, vec![entry(3, 3).id]);
    assert!(r.carried.is_empty());
    assert_eq!(
        r.settled.get(&entry(3, 3).id).unwrap().completion,
        Completion::Cancelled
    );
    assert_eq!(
        r.settled.get(&entry(2, 2).id).unwrap().completion,
        Completion::Complete {
            block: BlockNumber(6)
        }
    );
    assert!(payout.file.is_empty());
}
