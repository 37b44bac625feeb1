//! The seeded fault campaign (issue 19): 300 seeds of the whole network
//! under the campaign's faults (loss up to 30%, duplication and replay up
//! to 50%, reorder, partitions and clogged links healing one by one,
//! crashes with torn writes, clock skew, drift and jumps, up to f
//! Byzantine validators, some censoring a partner, clients that vanish or
//! refuse to sign) with no safety violation, nothing lost and nothing paid
//! twice; and the negative control: a fork injected into one honest
//! validator is caught.

use undchain_roles::sim::campaign::{self, Summary};
use undchain_roles::sim::{ForkKind, InjectedFork, Report, SimConfig, run};

/// Blocks of each test run: a little shorter than the command line's
/// default, to keep 300 seeds within a few minutes of a debug build.
const BLOCKS: u64 = 6;

/// Runs campaign seeds `seeds`, failing with every failing seed's lines.
fn campaign_seeds(seeds: std::ops::Range<u64>) -> (Summary, Vec<Report>) {
    let mut reports = Vec::new();
    let s = campaign::run(seeds.start, seeds.end - seeds.start, BLOCKS, |r| {
        reports.push(r.clone())
    })
    .unwrap();
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.ok())
        .flat_map(|r| std::iter::once(r.line()).chain(r.failure_lines()))
        .collect();
    assert!(s.ok(), "{}\n{}", s.line(), failed.join("\n"));
    assert_eq!(
        s.line(),
        format!(
            "seeds={} safety_violations=0 lost=0 double_paid=0 failed_seeds=none",
            seeds.end - seeds.start
        )
    );
    (s, reports)
}

#[test]
fn campaign_seeds_0_to_100() {
    let (_, reports) = campaign_seeds(0..100);
    // The draw reached what the campaign promises.
    assert!(reports.iter().any(|r| r.byzantine.is_some()));
    assert!(reports.iter().any(|r| r.censoring));
    assert!(reports.iter().any(|r| r.lifecycle.paid > 0));
    assert!(reports.iter().any(|r| r.faults.contains("clogs=0 ")));
    assert!(reports.iter().any(|r| !r.faults.contains("clogs=0 ")));
    assert!(reports.iter().any(|r| !r.faults.contains("jumps=0")));
    assert!(reports.iter().all(|r| r.committed_jobs > 0));
}

#[test]
fn campaign_seeds_100_to_200() {
    campaign_seeds(100..200);
}

#[test]
fn campaign_seeds_200_to_300() {
    campaign_seeds(200..300);
}

#[test]
fn campaign_seed_replays() {
    let cfg = campaign::config(123, BLOCKS);
    assert_eq!(run(&cfg).unwrap(), run(&cfg).unwrap());
}

fn forked(mut cfg: SimConfig, kind: ForkKind) -> Report {
    cfg.inject_fork = Some(InjectedFork {
        validator: 1,
        height: 2,
        kind,
    });
    run(&cfg).unwrap()
}

#[test]
fn injected_fork_of_a_header_is_caught() {
    // Negative control: the checker sees a validator commit another block.
    let mut cfg = SimConfig::new(4, 6, 11);
    cfg.requests_per_block = 10;
    assert!(run(&cfg).unwrap().ok());
    let r = forked(cfg, ForkKind::Header);
    assert!(!r.ok());
    assert!(r.safety_violations >= 2, "{}", r.line());
    assert!(
        r.failures
            .iter()
            .any(|f| f == "safety: honest validators committed different blocks at height 2"),
        "{:?}",
        r.failures
    );
    assert!(
        r.failure_lines()
            .contains(&"reproduce with --seed 11".to_string())
    );
}

#[test]
fn injected_fork_of_a_body_is_caught_by_the_committed_bytes() {
    // Same header, one request fewer: only the byte comparison sees it.
    let mut cfg = SimConfig::new(4, 6, 12);
    cfg.requests_per_block = 10;
    let r = forked(cfg, ForkKind::Body);
    assert_eq!(r.safety_violations, 1, "{}", r.line());
    assert_eq!(
        r.failures,
        vec!["safety: validators 0 and 1 stored different committed bytes at height 2".to_string()]
    );
}

#[test]
fn injected_fork_in_a_campaign_seed_is_caught() {
    let mut s = Summary::default();
    for seed in 0..4 {
        s.add(&forked(campaign::config(seed, BLOCKS), ForkKind::Header));
    }
    assert!(!s.ok());
    assert_eq!(s.failed_seeds, vec![0, 1, 2, 3], "{}", s.line());
    assert!(s.safety_violations >= 4);
}

/// Campaign seed `seed` at `blocks` blocks passes every invariant and
/// commits all its blocks.
fn replay_passes(seed: u64, blocks: u64) -> Report {
    let r = run(&campaign::config(seed, blocks)).unwrap();
    assert!(r.ok(), "{} {:?}", r.line(), r.failure_lines());
    assert!(r.blocks >= blocks, "{}", r.line());
    r
}

#[test]
fn pending_decided_block_completed_between_retries_is_applied() {
    // Found by the campaign (seeds 172 and 263): an honest validator
    // decided a height whose body it lacked; its pending check's file and
    // operations became complete without a resolve, and each retry saw
    // nothing left to fetch, so the block was never applied and the
    // validator stopped for good. A retry now resolves complete checks.
    for (seed, blocks) in [(172, 8), (263, 6)] {
        replay_passes(seed, blocks);
    }
}

#[test]
fn a_value_whose_proposer_lost_its_body_is_checked_with_the_other_members() {
    // Found by the 10,000-seed run (seed 5613, 8 blocks): the proposer of
    // height 3 crashed after its lock was persisted but with the body of
    // its proposal in memory only. A pending check asked the proposer
    // alone, and a file request named only a block number, so the peers
    // that held the body were never asked and another file of that number
    // failed the root: two validators locked, two answering `Pending`, and
    // no round broke the split (every validator stopped at height 3).
    // A check now asks the other members in turn, by block id.
    replay_passes(5613, 8);
}

#[test]
fn seeds_6490_and_8228_of_the_10000_seed_run_pass() {
    // 6490: a partner went silent and the network replayed its old
    // session messages, which kept its client's session waiting (see
    // utility_sessions::a_replayed_message_of_a_silent_partner_...).
    // 8228 (`lost=1`, partitions and clogged links): passes since file
    // requests name the block id.
    for seed in [6490, 8228] {
        replay_passes(seed, 8);
    }
}

#[test]
fn a_flooding_byzantine_validator_cannot_starve_a_lagging_ones_catch_up() {
    // Found by the 10,000-seed run at 16d3855 (seed 9117): validator 3
    // flooded far-future votes; lagging validator 2 sent each flood's
    // sender a block request, which answered with nothing, and every such
    // request reset the interval that also held back its broadcast to the
    // honest others, so it never caught up and the two honest validators
    // ahead of it lacked a third voter for 90 s. A stuck height now asks
    // everyone on its own interval.
    replay_passes(9117, 8);
}

#[test]
fn request_acked_by_one_cut_off_validator_is_committed() {
    // Found by the 10,000-seed run (seed 1897, 8 blocks, clock jumps up to
    // 5 s): a vanishing client's request was acked by validator 0 alone,
    // whose clock jumped 5 s just after; it stayed cut off for 13 s (its
    // time rounds lacked a quorum while validator 1 was down), caught up
    // at the end of the run and deferred the job to each block it caught
    // up on. The run stopped there: its end waited for the scripted
    // load's jobs only, not for the lifecycle clients' acknowledged ones
    // that `lost` counts. It now runs on until those are committed too,
    // and the job is.
    let r = replay_passes(1897, 8);
    assert_eq!(r.lost, 0, "{}", r.line());
}
