//! Scenarios for the time machines (docs/PROTOCOL.md "Time consensus"):
//! bootstrap with a two-faced liar handing over to the running phase by
//! itself, a joiner inheriting the running time, crashed members counted
//! as faults, a join that gives up, and the machine vocabulary's timer and
//! refusal rules.

use undchain_timesync::{AgreeError, ExchangeError, Join, Output, TimeMsg, TimeSync, reply_to};
use undchain_types::LocalTime;
use undchain_types::msg::{TimePhase, TimeProbe};

use crate::support::{Net, Node, cfg, members, running_network};

#[test]
fn bootstrap_with_a_two_faced_liar_converges_announces_and_keeps_running() {
    let offsets = vec![0, 400_000, 900_000, 0];
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| Node::Sync(TimeSync::bootstrap(i, members(4), cfg(), 100 + i as u64).unwrap()))
        .collect();
    nodes.push(Node::Liar);
    let mut net = Net::new(nodes, offsets, 1);
    net.start();
    net.run_until(60_000_000, |n| n.synced[..3].iter().all(Option::is_some));
    for i in 0..3 {
        let r = net.synced[i].expect("every honest validator announces");
        assert!(r.agreement.spread_us <= 3_000, "{r:?}");
        // never outside the initial honest range [0, 900 ms]
        assert!(
            (0..=900_000).contains(&net.rel(i)),
            "node {i}: {}",
            net.rel(i)
        );
    }
    assert!(
        net.skew(&[0, 1, 2]) <= 6_000,
        "skew {}",
        net.skew(&[0, 1, 2])
    );
    // each machine handed over to the running phase by itself; keep
    // precision for 5 periods
    for i in 0..3 {
        let Node::Sync(m) = &net.nodes[i] else {
            unreachable!()
        };
        assert_eq!(m.phase(), TimePhase::Synced, "node {i}");
        assert_eq!(m.synced(), net.synced[i]);
    }
    let now = net.now;
    net.run_until(now + 55_000_000, |_| false);
    for i in 0..3 {
        assert!(
            net.adjusted[i] >= 4,
            "node {i} ran {} rounds",
            net.adjusted[i]
        );
        assert!(net.round_failed[i].is_empty());
    }
    // u = 2000 us, no drift: 3u
    assert!(
        net.skew(&[0, 1, 2]) <= 6_000,
        "skew {}",
        net.skew(&[0, 1, 2])
    );
}

#[test]
fn joiner_inherits_the_running_time_and_never_trusts_its_own_clock() {
    let active = members(4);
    let join = Join::new(active, cfg(), 42).unwrap();
    // the joiner's local clock is 7 s behind real time, the network's 5 s ahead
    let mut net = running_network(
        &[0, 1_000, 2_000, 3_000],
        Some(3),
        &[],
        vec![Node::Join(join)],
    );
    net.run_until(2_000_000, |n| n.synced[4].is_some());
    let r = net.synced[4].expect("joined");
    // honest clocks read real + 5 s; the joiner within the reading error
    let err = (net.rel(4) - 5_000_000).abs();
    assert!(err <= 1_500, "joiner off by {err} us ({r:?})");
    // it becomes a running member with that correction
    let Node::Join(j) = std::mem::replace(&mut net.nodes[4], Node::Off) else {
        unreachable!()
    };
    let run = j.into_time_sync(4, members(5), 7).expect("synced");
    assert_eq!(run.correction(), r.correction);
    assert_eq!(run.phase(), TimePhase::Synced);
}

#[test]
fn join_refuses_bootstrap_readings_and_strangers_and_a_refusal_changes_nothing() {
    let t = LocalTime::from_micros;
    let mut j = Join::new(members(4), cfg(), 1).unwrap();
    let out = j.start(t(0));
    let probe: TimeProbe = out
        .iter()
        .find_map(|o| match o {
            Output::Send {
                to: 0,
                msg: TimeMsg::Probe(p),
            } => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    let bootstrap = reply_to(&probe, t(10), t(10), 0, TimePhase::Bootstrap);
    // (sender, why refused): a bootstrap reading, and a stranger's reply
    for (from, error) in [(0, ExchangeError::NotSynced), (9, ExchangeError::NotMember)] {
        assert_eq!(j.handle_reply(t(20), from, &bootstrap), Err(error));
    }
    // the probe is still outstanding: a synced reply to it counts
    let synced = reply_to(&probe, t(10), t(10), 0, TimePhase::Synced);
    assert_eq!(j.handle_reply(t(20), 0, &synced), Ok(()));
}

#[test]
fn join_gives_up_without_a_quorum_of_synced_replies() {
    let join = Join::new(members(4), cfg(), 3).unwrap();
    let mut net = running_network(&[0, 0, 0, 0], None, &[2, 3], vec![Node::Join(join)]);
    net.run_until(30_000_000, |n| n.join_failed[4]);
    assert!(net.join_failed[4]);
    assert!(net.synced[4].is_none());
    assert_eq!(net.round_failed[4].len(), cfg().join_attempts as usize);
    assert_eq!(
        net.round_failed[4][0],
        AgreeError::TooFewReplies {
            got: 2,
            members: 4,
            need: 3
        }
    );
}

#[test]
fn one_crashed_member_counts_as_the_fault_and_two_stop_the_round() {
    let mut net = running_network(&[0, 500, 1_000, 1_500], None, &[3], vec![]);
    net.run_until(35_000_000, |_| false);
    for i in 0..3 {
        assert!(net.adjusted[i] >= 3, "node {i}: {}", net.adjusted[i]);
        assert!(net.round_failed[i].is_empty());
    }
    let mut net = running_network(&[0, 500, 1_000, 1_500], None, &[2, 3], vec![]);
    net.run_until(35_000_000, |_| false);
    for i in 0..2 {
        assert_eq!(net.adjusted[i], 0);
        assert!(matches!(
            net.round_failed[i][..],
            [
                AgreeError::TooFewReplies {
                    got: 2,
                    members: 4,
                    need: 3
                },
                ..
            ]
        ));
    }
}

#[test]
fn timers_are_polled_early_wakes_do_nothing_and_refusals_change_nothing() {
    let t = LocalTime::from_micros;
    let cfg = cfg();
    // agreed time = local + 2.5 s: the first running round starts at the
    // next 10 s boundary of agreed time, local 7.5 s
    let mut m = TimeSync::running(0, members(4), cfg.clone(), 2_500_000, 5).unwrap();
    assert_eq!(m.poll_timeout(), None, "nothing before start");
    assert!(m.start(t(1_000)).is_empty());
    assert_eq!(m.poll_timeout(), Some(t(7_500_000)));
    assert!(m.handle_timeout(t(7_499_999)).is_empty(), "early: nothing");
    assert_eq!(m.poll_timeout(), Some(t(7_500_000)));
    // due: one probe to each other member, then the next wave is due
    let out = m.handle_timeout(t(7_500_000));
    assert_eq!(out.len(), 3);
    assert!(m.is_collecting());
    assert_eq!(m.poll_timeout(), Some(t(7_500_000 + 10_000)));
    // a reply from a non-member or from itself is refused, and the schedule
    // and the correction are as they were
    let Output::Send {
        msg: TimeMsg::Probe(probe),
        ..
    } = &out[0]
    else {
        panic!("expected a probe, got {:?}", out[0]);
    };
    let reply = reply_to(probe, t(7_501_000), t(7_501_000), 0, TimePhase::Synced);
    for from in [0, 9] {
        assert_eq!(
            m.handle_reply(t(7_502_000), from, &reply),
            Err(ExchangeError::NotMember)
        );
    }
    assert_eq!(m.poll_timeout(), Some(t(7_510_000)));
    assert_eq!(m.correction(), 2_500_000);
    // the bootstrap phase starts at once and says so in its replies
    let mut b = TimeSync::bootstrap(0, members(4), cfg, 6).unwrap();
    assert_eq!(b.start(t(1_000)).len(), 3);
    assert_eq!(b.phase(), TimePhase::Bootstrap);
    let Output::Send {
        msg: TimeMsg::Reply(r),
        ..
    } = &b.handle_probe(t(2_000), 7, probe)[0]
    else {
        panic!("expected a reply");
    };
    assert_eq!(r.phase, TimePhase::Bootstrap);
}
