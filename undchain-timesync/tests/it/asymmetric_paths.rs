//! A path that is slower one way than the other (docs/PROTOCOL.md "Time
//! consensus", *Precision*): the four-timestamp exchange sees only the
//! round trip, so every offset estimate over the path is off by half its
//! asymmetry, and no number of samples or rounds can tell. The clocks of
//! the two ends settle that far apart while every reading says they agree:
//! the error the `3a` term of the precision bound is there for.

use undchain_sim::LinkDelays;
use undchain_timesync::{TimeSync, precision_bound_us};

use crate::support::{Net, Node, cfg, members};

/// Two sites of two validators each, clocks in exact agreement (every
/// clock reads real time + 5 s), no drift, no jitter: 1 ms on every path,
/// plus `a_to_b_us` from site A (0, 1) to site B (2, 3) and `b_to_a_us`
/// back. Runs five periodic rounds.
fn two_sites(a_to_b_us: u64, b_to_a_us: u64) -> Net {
    let offsets: Vec<i64> = vec![0, 40_000, -25_000, 7_000];
    let nodes = (0..4)
        .map(|i| {
            let c = 5_000_000 - offsets[i];
            Node::Sync(TimeSync::running(i, members(4), cfg(), c, i as u64).unwrap())
        })
        .collect();
    let links = LinkDelays::with_fixed(
        4,
        |from, to| match (from < 2, to < 2) {
            (true, false) => a_to_b_us,
            (false, true) => b_to_a_us,
            _ => 0,
        },
        1_000,
        1_000,
    );
    let mut net = Net::new(nodes, offsets, 3).with_links(links);
    net.start();
    // agreed time = real + 5 s: rounds at 5, 15, .., 45 s of real time
    net.run_until(50_500_000, |_| false);
    assert!(net.adjusted.iter().all(|&k| k == 5), "{:?}", net.adjusted);
    net
}

#[test]
fn a_path_slower_one_way_skews_the_clocks_by_half_its_asymmetry_unseen() {
    let net = two_sites(8_000, 0);
    // Site A reads site B's clocks 4 ms late and moves forward 2 ms; site B
    // reads A's 4 ms early and moves back 2 ms. Then each side's readings
    // of the other match its own clock: nothing moves again.
    assert_eq!(net.rel(0), net.rel(1));
    assert_eq!(net.rel(2), net.rel(3));
    assert_eq!(net.rel(0) - net.rel(2), 4_000, "half the 8 ms asymmetry");
    for i in 0..4 {
        let r = net.last_adjusted[i].unwrap();
        assert_eq!(r.agreement.spread_us, 0, "node {i} sees full agreement");
    }
    // The skew breaks the bound without the asymmetry term (0 here: no
    // jitter, no drift) and stays within the documented one.
    let skew = u64::try_from(net.skew(&[0, 1, 2, 3])).unwrap();
    assert!(skew > precision_bound_us(0, 0, 0, 10_000_000));
    assert!(skew <= precision_bound_us(0, 8_000, 0, 10_000_000));
}

#[test]
fn a_long_path_that_is_equally_long_both_ways_costs_nothing() {
    // The same 8 ms, both ways: the round trip is longer, the estimate
    // exact.
    let net = two_sites(8_000, 8_000);
    assert_eq!(net.skew(&[0, 1, 2, 3]), 0);
}
