//! The bootstrap's stop rule (docs/PROTOCOL.md "Time consensus", *Rounds*):
//! a validator ends its bootstrap only when every member's clock, error
//! bounds included, lies within the target, or after the round limit. A
//! rule on the survivors' spread let a two-faced liar end it while honest
//! clocks were still far apart: the trimming drops the far honest clock,
//! so the survivors of the validators on the other side agree in every
//! round (the precision simulator's seed 33, `tests/it/precision_sim.rs`).

use undchain_timesync::{SyncConfig, TimeSync};

use crate::support::{Net, Node, cfg, members};

/// Per announcement, in order: who announced, after how many rounds, and
/// the skew of the `honest` clocks at that instant. Runs `net` until
/// every honest node announced or real time `end`.
fn handovers(net: &mut Net, honest: &[usize], end: i64) -> Vec<(usize, u64, i64)> {
    let announced = |n: &Net| honest.iter().filter(|&&i| n.synced[i].is_some()).count();
    let mut seen = Vec::new();
    while seen.len() < honest.len() {
        let before = announced(net);
        net.run_until(end, |n| announced(n) > before);
        if announced(net) == before {
            break;
        }
        for &i in honest {
            if net.synced[i].is_some() && !seen.iter().any(|&(j, _, _)| j == i) {
                let Node::Sync(m) = &net.nodes[i] else {
                    unreachable!()
                };
                seen.push((i, m.rounds(), net.skew(honest)));
            }
        }
    }
    seen
}

fn bootstrapping(config: &SyncConfig, n: usize, liar: Option<usize>, offsets: Vec<i64>) -> Net {
    let nodes = (0..n)
        .map(|i| {
            if Some(i) == liar {
                Node::Liar
            } else {
                Node::Sync(
                    TimeSync::bootstrap(i, members(n), config.clone(), 50 + i as u64).unwrap(),
                )
            }
        })
        .collect();
    let mut net = Net::new(nodes, offsets, 2);
    net.start();
    net
}

#[test]
fn bootstrap_does_not_stop_while_clocks_are_far_apart() {
    // Validators 0 and 2 are 1 ms apart, validator 1 is 400 ms behind
    // them. The liar (3) tells the even ones +10 s and the odd one -10 s:
    // 0 and 2 trim the liar above and validator 1 below, so their
    // survivors are each other, 1 ms apart, in every round. By the
    // survivors' spread (target 3 ms) they would announce after their
    // first round with the clocks 400 ms apart.
    let config = cfg();
    let mut net = bootstrapping(&config, 4, Some(3), vec![400_000, 0, 401_000, 0]);
    let seen = handovers(&mut net, &[0, 1, 2], 60_000_000);
    assert_eq!(seen.len(), 3, "every honest validator announces: {seen:?}");
    for &(i, rounds, skew) in &seen {
        // The liar's readings are never within the target, so only the
        // round limit ends the bootstrap, and by then the halving has
        // brought the clocks to within the reading error (3u, u = 2 ms).
        assert_eq!(
            rounds,
            u64::from(config.bootstrap_max_rounds),
            "validator {i} announced early: {seen:?}"
        );
        assert!(skew <= 6_000, "validator {i} announced at skew {skew} us");
    }
}

#[test]
fn without_a_liar_bootstrap_stops_early_once_every_clock_is_within_the_target() {
    // Four honest validators up to 900 ms apart, 1..3 ms delays: each
    // reading's error bound is half a round trip (1..3 ms), so a 10 ms
    // target is within reach and the test ends the bootstrap long before
    // the round limit, with every clock inside the target.
    let config = SyncConfig {
        bootstrap_target_spread_us: 10_000,
        ..cfg()
    };
    let mut net = bootstrapping(&config, 4, None, vec![0, 400_000, 401_000, 900_000]);
    let seen = handovers(&mut net, &[0, 1, 2, 3], 60_000_000);
    assert_eq!(seen.len(), 4, "{seen:?}");
    for &(i, rounds, skew) in &seen {
        assert!(rounds < 20, "validator {i} took {rounds} rounds");
        assert!(skew <= 10_000, "validator {i} announced at skew {skew} us");
    }
}

#[test]
fn a_member_that_does_not_answer_keeps_the_bootstrap_going_to_the_round_limit() {
    // A silent member may be an honest clock that is far off: the three
    // that answer agree, yet no one may conclude that every clock does.
    let config = SyncConfig {
        bootstrap_target_spread_us: 10_000,
        ..cfg()
    };
    let mut net = bootstrapping(&config, 4, None, vec![0, 1_000, 2_000, 0]);
    net.nodes[3] = Node::Off;
    let seen = handovers(&mut net, &[0, 1, 2], 60_000_000);
    assert_eq!(seen.len(), 3, "{seen:?}");
    for &(i, rounds, _) in &seen {
        assert_eq!(
            rounds,
            u64::from(config.bootstrap_max_rounds),
            "validator {i}"
        );
    }
}
