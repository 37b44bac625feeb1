//! The replay guard under the attacks of issue 14: a flood of fresh
//! identities dated 10 minutes ahead, replays moved across clock domains,
//! and its memory bound.

use undchain_types::replay::{SEQ_WINDOW, Window};
use undchain_types::{
    BlockTime, ChainId, ChainParams, ClockDomain, PublicKey, ReplayConfig, ReplayError,
    ReplayGuard, Verdict,
};

const NOW: BlockTime = BlockTime(1_700_000_000_000_000);
const MIN: u64 = 60_000_000;

/// A distinct identity per `i` (the guard never checks signatures, so the
/// bytes need only be a valid key encoding).
fn ident(tag: u8, i: u64) -> PublicKey {
    let mut b = *blake3::hash(&[&[tag][..], &i.to_le_bytes()].concat()).as_bytes();
    b[31] &= 0x3f; // canonical y, never one of the weak encodings' top bytes
    PublicKey::from_bytes(&b).unwrap()
}

fn params() -> ChainParams {
    ChainParams::new(ChainId(1), ident(9, 9), NOW)
}

fn small(max_senders: usize, horizon_buckets: usize) -> ReplayConfig {
    ReplayConfig {
        max_senders,
        horizon_buckets,
        ..ReplayConfig::from_params(&params(), 0x5eed)
    }
}

#[test]
fn replay_flood_of_future_dated_identities_does_not_refuse_an_honest_client() {
    // The defaults scaled down 10x (100,000 senders : 2^22 slots), so the
    // test runs in a second; the flood is 3x what the guard remembers.
    let mut g = ReplayGuard::new(small(10_000, 1 << 19));
    let wall = ClockDomain::Wall;
    let regular = ident(0, 0);
    let mut regular_seq = 0;
    assert_eq!(
        g.check(&regular, regular_seq, NOW, wall, NOW),
        Ok(Verdict::Fresh)
    );
    let flood = 30_000u64;
    let ahead = NOW.plus(10 * MIN);
    let mut now = NOW;
    let mut flood_refused = 0;
    for i in 0..flood {
        now = NOW.plus(i * 10); // the flood takes 0.3 s of wall time
        // Late in the flood its own fresh identities start to land on slots
        // its evicted ones took: those are refused, which is the flood's
        // problem, and safe.
        match g.check(&ident(1, i), 1, ahead, wall, now) {
            Ok(Verdict::Fresh) => {}
            Err(ReplayError::Forgotten { .. }) => flood_refused += 1,
            other => panic!("flood envelope {i}: {other:?}"),
        }
        if i % 100 == 0 {
            regular_seq += 1;
            assert_eq!(
                g.check(&regular, regular_seq, now, wall, now),
                Ok(Verdict::Fresh),
                "the regular client, during the flood"
            );
        }
    }
    assert!(g.senders() <= 10_000);
    assert!(flood_refused < flood / 100, "{flood_refused} refused");
    // Newcomers after the flood, and the regular client, are not refused.
    let later = now.plus(1_000_000);
    for j in 0..200 {
        assert_eq!(
            g.check(&ident(2, j), 0, later, wall, later),
            Ok(Verdict::Fresh),
            "honest newcomer {j}"
        );
    }
    assert_eq!(
        g.check(&regular, regular_seq + 1, later, wall, later),
        Ok(Verdict::Fresh)
    );
    // And nothing of the flood applies twice, remembered or evicted.
    for i in 0..flood {
        let again = g.check(&ident(1, i), 1, ahead, wall, later);
        assert!(
            matches!(
                again,
                Ok(Verdict::Duplicate) | Err(ReplayError::Forgotten { .. })
            ),
            "flood envelope {i} replayed: {again:?}"
        );
    }
}

#[test]
fn replay_across_clock_domains_is_a_duplicate() {
    let mut g = ReplayGuard::new(small(1000, 1 << 10));
    let (block, wall) = (ClockDomain::Block, ClockDomain::Wall);
    let client = ident(3, 0);
    assert_eq!(g.check(&client, 5, NOW, wall, NOW), Ok(Verdict::Fresh));
    // The same (sender, seq) judged on the other clock: a duplicate.
    assert_eq!(g.check(&client, 5, NOW, block, NOW), Ok(Verdict::Duplicate));
    // Block-time traffic moves the block clock a minute on, far past the
    // block window (4 s): the wall-clock envelope is not pruned by that
    // cutoff, so its replay within its own 10 minutes is still a duplicate.
    let validator = ident(3, 1);
    for s in 0..60u64 {
        let t = NOW.plus(s * 1_000_000);
        g.check(&validator, s, t, block, t).unwrap();
    }
    let minute = NOW.plus(MIN);
    assert_eq!(
        g.check(&client, 5, NOW, wall, minute),
        Ok(Verdict::Duplicate)
    );
    // A block-time envelope stale on the block clock is still remembered
    // for the wall window: replayed as wall-clock, a duplicate.
    assert_eq!(
        g.check(&validator, 0, NOW, wall, minute),
        Ok(Verdict::Duplicate)
    );
    // Once stale on both clocks the log goes, and a replay is stale.
    let much_later = NOW.plus(11 * MIN);
    g.check(&ident(3, 2), 0, much_later, wall, much_later)
        .unwrap();
    g.check(&ident(3, 2), 1, much_later, block, much_later)
        .unwrap();
    assert_eq!(g.senders(), 1, "the two old logs were pruned");
    assert!(matches!(
        g.check(&client, 5, NOW, wall, much_later),
        Err(ReplayError::Stale { .. })
    ));
    assert!(matches!(
        g.check(&client, 5, NOW, block, much_later),
        Err(ReplayError::Stale { .. })
    ));
}

#[test]
fn replay_guard_default_memory_is_at_most_64_mib() {
    let cfg = ReplayConfig::from_params(&params(), 1);
    let bound = cfg.memory_bound();
    assert!(bound <= 64 << 20, "{bound} bytes");
    // It counts what the config asks for: twice the senders, more bytes.
    let twice = ReplayConfig {
        max_senders: 2 * cfg.max_senders,
        ..cfg
    };
    assert!(twice.memory_bound() > bound + 100 * cfg.max_senders);
}

#[test]
fn replay_refusals_change_nothing() {
    let cfg = ReplayConfig {
        block: Window {
            past_us: 4_000_000,
            ahead_us: 2_000_000,
        },
        ..small(4, 1 << 8)
    };
    let mut g = ReplayGuard::new(cfg);
    let b = ClockDomain::Block;
    let k = ident(4, 0);
    g.check(&k, SEQ_WINDOW + 10, NOW, b, NOW).unwrap();
    // Behind the window: refused, and the log is as it was.
    assert_eq!(
        g.check(&k, 5, NOW, b, NOW),
        Err(ReplayError::Forgotten { seq: 5 })
    );
    // A refused envelope dated far ahead does not move the clock the guard
    // prunes with.
    assert!(matches!(
        g.check(&k, SEQ_WINDOW + 11, NOW.plus(MIN), b, NOW),
        Err(ReplayError::Future { .. })
    ));
    assert_eq!(
        g.check(&k, SEQ_WINDOW + 10, NOW, b, NOW),
        Ok(Verdict::Duplicate)
    );
    assert_eq!(g.senders(), 1);
}
