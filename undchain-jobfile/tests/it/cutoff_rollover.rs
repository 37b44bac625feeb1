//! Cutoff and rollover: every request lands in exactly one open file, at
//! the block the cutoff rule names; late arrivals land in the oldest open
//! file; nothing is dropped or counted twice, across block closes and
//! payout-period boundaries.

use std::collections::BTreeMap;

use proptest::prelude::*;
use undchain_jobfile::testkit::entry;
use undchain_jobfile::{Filed, JobBook, target_block};
use undchain_types::{BlockNumber, BlockTime, ChainParams};

/// Genesis at 1 s, 10 blocks per payout period.
fn params() -> ChainParams {
    crate::helpers::params(1, BlockTime(1_000_000), 10)
}

#[test]
fn cutoff_rule_at_the_edges() {
    let p = params();
    let b0 = p.block_start(BlockNumber(3));
    let end = p.block_start(BlockNumber(4));
    let cases = [
        ("start of the block", b0, BlockNumber(3)),
        (
            "one microsecond before the cutoff starts",
            end.minus(p.cutoff_us() + 1),
            BlockNumber(3),
        ),
        (
            "exactly at the cutoff",
            end.minus(p.cutoff_us()),
            BlockNumber(4),
        ),
        ("inside the cutoff", end.minus(1), BlockNumber(4)),
    ];
    for (what, t, want) in cases {
        assert_eq!(target_block(&p, t), want, "{what}");
    }
    // The cutoff of the last block of a period rolls into the next period.
    let last = p.period_start(undchain_types::PayoutPeriod(1)).0 - 1;
    let t = p.block_start(BlockNumber(last + 1)).minus(1);
    assert_eq!(
        p.period_of(target_block(&p, t)),
        undchain_types::PayoutPeriod(1)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Requests arrive at random times (some late, some early, some
    /// repeated) while blocks close in order; every distinct job ends up in
    /// exactly one closed file, in the block the rule named unless that
    /// block was already closed (then the oldest open one).
    #[test]
    fn every_request_lands_in_exactly_one_file(
        arrivals in proptest::collection::vec((0u64..40, 0u64..2_000_000, 0u64..60), 1..200),
    ) {
        // Periods of 20 blocks: one rollover happens, and no job lives long
        // enough to be cancelled and forgotten (then it could be filed anew).
        let mut p = params();
        p.payout_period_us = 20 * p.block_interval_us;
        let mut book = JobBook::new(p.clone(), BlockNumber(0));
        let mut sorted = arrivals.clone();
        sorted.sort_by_key(|(b, off, _)| (*b, *off));
        let mut expected: BTreeMap<u64, BlockNumber> = BTreeMap::new();
        let mut closed_in: BTreeMap<u64, BlockNumber> = BTreeMap::new();
        for (block, offset, job) in sorted {
            let now = p.block_start(BlockNumber(block)).plus(offset);
            // Close every block that ended before `now` (late arrivals are
            // those whose rule block is already closed).
            while book.open_blocks()[0].0 + 1 < block {
                let c = book.close_current();
                for e in c.file().entries() {
                    prop_assert!(closed_in.insert(e.initiated_at.0, c.block()).is_none());
                }
            }
            // The host checks the ledger's payout file for committed ids
            // before filing (the book keeps no payout file).
            if closed_in.contains_key(&job) {
                prop_assert!(expected.contains_key(&job));
                continue;
            }
            let e = entry(job, job);
            let filed = book.file(e, now);
            let rule = target_block(&p, now);
            match filed {
                Filed::Filed { block: at, wanted } => {
                    prop_assert_eq!(wanted, rule);
                    let [cur, next] = book.open_blocks();
                    prop_assert_eq!(at, rule.clamp(cur, next));
                    prop_assert!(expected.insert(job, at).is_none());
                }
                Filed::Duplicate { block: at, .. } => {
                    prop_assert_eq!(expected.get(&job), Some(&at));
                }
            }
        }
        for _ in 0..3 {
            let c = book.close_current();
            for e in c.file().entries() {
                prop_assert!(closed_in.insert(e.initiated_at.0, c.block()).is_none());
            }
        }
        prop_assert_eq!(&closed_in, &expected);
    }
}

#[test]
fn deferred_jobs_move_to_the_next_file_once() {
    let p = params();
    let mut book = JobBook::new(p.clone(), BlockNumber(0));
    let now = p.block_start(BlockNumber(0));
    assert!(matches!(
        book.file(entry(1, 1), now),
        Filed::Filed {
            block: BlockNumber(0),
            ..
        }
    ));
    assert_eq!(book.defer(&entry(1, 1).id), Ok(BlockNumber(1)));
    assert!(book.defer(&entry(1, 1).id).is_err());
    let c0 = book.close_current();
    assert!(c0.is_empty());
    // Filing it again while it waits in block 1 is a duplicate.
    assert_eq!(
        book.file(entry(1, 1), p.block_start(BlockNumber(1))),
        Filed::Duplicate {
            block: BlockNumber(1)
        }
    );
    let c1 = book.close_current();
    assert_eq!(c1.len(), 1);
}

#[test]
fn committing_a_decided_file_defers_what_it_lacks_and_pulls_what_it_has() {
    let p = params();
    let mut book = JobBook::new(p.clone(), BlockNumber(0));
    let t0 = p.block_start(BlockNumber(0));
    let t1 = p.block_start(BlockNumber(1));
    for j in 0..3 {
        book.file(entry(j, j), t0);
    }
    book.file(entry(7, 7), t1);
    // Agreement decided jobs 0, 1 and 7 for block 0 (job 7 was filed late
    // here, job 2 is missing from the proposal).
    let decided =
        undchain_jobfile::JobFile::from_entries([entry(0, 0), entry(1, 1), entry(7, 7)]).unwrap();
    let c = book.commit_current(decided.clone());
    assert_eq!(c.file.file(), &decided);
    assert_eq!(c.deferred, vec![entry(2, 2).id]);
    assert_eq!(c.pulled, vec![entry(7, 7).id]);
    assert_eq!(book.open_blocks()[0], BlockNumber(1));
    assert_eq!(book.locate(&entry(2, 2).id), Some(BlockNumber(1)));
    assert_eq!(book.locate(&entry(7, 7).id), None);
    assert_eq!(book.open_file(BlockNumber(1)).unwrap().len(), 1);
}
