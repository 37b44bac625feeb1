//! Helpers shared by the test modules.

use undchain_jobfile::JobFile;
use undchain_jobfile::testkit::entry;
use undchain_types::{BlockTime, ChainId, ChainParams, JobEntry, SigningKey};

/// A file of `n` entries, the `i`-th being `entry(i, i)`.
pub fn file(n: u64) -> JobFile {
    JobFile::from_entries((0..n).map(|i| entry(i, i))).unwrap()
}

/// A copy of `file` with the entries `add` inserted (what a side does with
/// its outcome's `only_remote`).
pub fn apply(file: &JobFile, add: &[JobEntry]) -> JobFile {
    let mut f = file.clone();
    for e in add {
        f.insert(e.clone()).unwrap();
    }
    f
}

/// `v` in entry order.
pub fn sorted(mut v: Vec<JobEntry>) -> Vec<JobEntry> {
    v.sort();
    v
}

/// Chain parameters with the genesis validator keyed from `key_seed`,
/// genesis at `genesis`, and payout periods of `blocks_per_period` blocks.
pub fn params(key_seed: u8, genesis: BlockTime, blocks_per_period: u64) -> ChainParams {
    let mut p = ChainParams::new(
        ChainId(1),
        SigningKey::from_seed([key_seed; 32]).public(),
        genesis,
    );
    p.payout_period_us = blocks_per_period * p.block_interval_us;
    p
}

/// What a table-driven case expects of the error it ends with.
pub type ExpectErr = fn(&undchain_jobfile::ReconcileError) -> bool;

/// A round that answers nothing and carries nothing.
pub fn empty_round() -> undchain_types::msg::ReconcileRound {
    undchain_types::msg::ReconcileRound {
        answered: 0,
        bits: Default::default(),
        ops: Default::default(),
        fingerprints: Default::default(),
        counts: Default::default(),
        short_ids: Default::default(),
        entries: Default::default(),
        done: None,
    }
}
