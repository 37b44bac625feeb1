//! Scenarios for the time machines (docs/PROTOCOL.md "Time consensus"):
//! bootstrap with a two-faced liar, a joiner inheriting the running time,
//! crashed members counted as faults, and a join that gives up.

use std::collections::{BTreeMap, BTreeSet};

use undchain_timesync::sim::SimRng;
use undchain_timesync::{
    AgreeError, Bootstrap, ExchangeError, Join, Output, RoundResult, Running, SyncConfig, TimeMsg,
    reply_to,
};
use undchain_types::msg::{TimePhase, TimeProbe};

enum Node {
    Boot(Bootstrap<usize>),
    Run(Running<usize>),
    Join(Join<usize>),
    /// Two-faced: tells even probers +10 s, odd ones -10 s.
    Liar,
    Off,
}

struct Net {
    nodes: Vec<Node>,
    offsets: Vec<i64>,
    queue: BTreeMap<(i64, u64), (usize, usize, Option<TimeMsg>)>,
    timers: Vec<Option<i64>>,
    seq: u64,
    now: i64,
    rng: SimRng,
    synced: Vec<Option<RoundResult>>,
    adjusted: Vec<u32>,
    round_failed: Vec<Vec<AgreeError>>,
    refused: Vec<Vec<ExchangeError>>,
    join_failed: Vec<bool>,
}

impl Net {
    fn new(nodes: Vec<Node>, offsets: Vec<i64>, seed: u64) -> Self {
        let n = nodes.len();
        Net {
            nodes,
            offsets,
            queue: BTreeMap::new(),
            timers: vec![None; n],
            seq: 0,
            now: 0,
            rng: SimRng::new(seed),
            synced: vec![None; n],
            adjusted: vec![0; n],
            round_failed: vec![Vec::new(); n],
            refused: vec![Vec::new(); n],
            join_failed: vec![false; n],
        }
    }

    fn local(&self, i: usize) -> i64 {
        self.now + self.offsets[i]
    }

    fn start(&mut self) {
        for i in 0..self.nodes.len() {
            let local = self.local(i);
            let out = match &mut self.nodes[i] {
                Node::Boot(m) => m.start(local),
                Node::Run(m) => m.start(local),
                Node::Join(m) => m.start(local),
                Node::Liar | Node::Off => Vec::new(),
            };
            self.feed(i, out);
        }
    }

    fn feed(&mut self, i: usize, out: Vec<Output<usize>>) {
        for o in out {
            match o {
                Output::Send { to, msg } => {
                    let d = self.rng.range(1_000, 3_000);
                    self.seq += 1;
                    self.queue
                        .insert((self.now + d, self.seq), (to, i, Some(msg)));
                }
                Output::SetTimer { at_local_us } => {
                    self.timers[i] = Some(at_local_us);
                    self.seq += 1;
                    let t = (at_local_us - self.offsets[i]).max(self.now);
                    self.queue.insert((t, self.seq), (i, i, None));
                }
                Output::Synced(r) => self.synced[i] = Some(r),
                Output::Adjusted(_) => self.adjusted[i] += 1,
                Output::RoundFailed { error, .. } => self.round_failed[i].push(error),
                Output::Refused { error, .. } => self.refused[i].push(error),
                Output::JoinFailed { .. } => self.join_failed[i] = true,
            }
        }
    }

    fn run_until(&mut self, end: i64, mut stop: impl FnMut(&Net) -> bool) {
        while let Some((&(t, s), _)) = self.queue.first_key_value() {
            if t > end || stop(self) {
                break;
            }
            let (to, from, msg) = self.queue.remove(&(t, s)).unwrap();
            self.now = t;
            let local = self.local(to);
            let out = match (&mut self.nodes[to], msg) {
                (Node::Off, _) => Vec::new(),
                (Node::Liar, Some(TimeMsg::Probe(p))) => {
                    let lie = if from % 2 == 0 {
                        10_000_000
                    } else {
                        -10_000_000
                    };
                    let t = self.now + self.offsets[from];
                    let reply = reply_to(&p, t, t, lie, TimePhase::Synced);
                    let d = self.rng.range(1_000, 3_000);
                    self.seq += 1;
                    self.queue.insert(
                        (self.now + d, self.seq),
                        (from, to, Some(TimeMsg::Reply(reply))),
                    );
                    Vec::new()
                }
                (Node::Liar, _) => Vec::new(),
                (node, None) => {
                    // a replaced, later timer: calling early is harmless, but skip
                    if self.timers[to].is_some_and(|x| x > local) {
                        continue;
                    }
                    match node {
                        Node::Boot(m) => m.handle_timer(local),
                        Node::Run(m) => m.handle_timer(local),
                        Node::Join(m) => m.handle_timer(local),
                        _ => Vec::new(),
                    }
                }
                (Node::Boot(m), Some(TimeMsg::Probe(p))) => m.handle_probe(local, from, &p),
                (Node::Run(m), Some(TimeMsg::Probe(p))) => m.handle_probe(local, from, &p),
                (Node::Join(_), Some(TimeMsg::Probe(_))) => Vec::new(),
                (Node::Boot(m), Some(TimeMsg::Reply(r))) => m.handle_reply(local, from, &r),
                (Node::Run(m), Some(TimeMsg::Reply(r))) => m.handle_reply(local, from, &r),
                (Node::Join(m), Some(TimeMsg::Reply(r))) => m.handle_reply(local, from, &r),
            };
            self.feed(to, out);
        }
    }

    fn correction(&self, i: usize) -> i64 {
        match &self.nodes[i] {
            Node::Boot(m) => m.correction(),
            Node::Run(m) => m.correction(),
            Node::Join(m) => m.synced().map_or(0, |r| r.correction),
            _ => 0,
        }
    }

    /// Clock minus real time, per node.
    fn rel(&self, i: usize) -> i64 {
        self.offsets[i] + self.correction(i)
    }

    fn skew(&self, nodes: &[usize]) -> i64 {
        let r: Vec<i64> = nodes.iter().map(|&i| self.rel(i)).collect();
        r.iter().max().unwrap() - r.iter().min().unwrap()
    }
}

fn members(n: usize) -> BTreeSet<usize> {
    (0..n).collect()
}

fn cfg() -> SyncConfig {
    SyncConfig {
        bootstrap_target_spread_us: 3_000,
        ..SyncConfig::default()
    }
}

#[test]
fn bootstrap_with_a_two_faced_liar_converges_announces_and_keeps_running() {
    let offsets = vec![0, 400_000, 900_000, 0];
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| Node::Boot(Bootstrap::new(i, members(4), cfg(), 100 + i as u64).unwrap()))
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
    // hand over to the running machines and keep precision for 5 periods
    let now = net.now;
    for i in 0..3 {
        let Node::Boot(b) = std::mem::replace(&mut net.nodes[i], Node::Off) else {
            unreachable!()
        };
        let local = now + net.offsets[i];
        let (run, out) = b.into_running(local).expect("synced");
        net.nodes[i] = Node::Run(run);
        net.feed(i, out);
    }
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

fn running_network(offsets: &[i64], liar: Option<usize>, off: &[usize], extra: Vec<Node>) -> Net {
    let n = offsets.len();
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            if Some(i) == liar {
                Node::Liar
            } else if off.contains(&i) {
                Node::Off
            } else {
                // clocks already agree: correction cancels the offset
                let c = 5_000_000 - offsets[i];
                Node::Run(Running::new(i, members(n), cfg(), c, i as u64).unwrap())
            }
        })
        .collect();
    let mut all_offsets = offsets.to_vec();
    for node in extra {
        nodes.push(node);
        all_offsets.push(-7_000_000);
    }
    let mut net = Net::new(nodes, all_offsets, 9);
    net.start();
    net
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
    let run = j.into_running(4, members(5), 7).expect("synced");
    assert_eq!(run.correction(), r.correction);
}

#[test]
fn join_refuses_bootstrap_readings() {
    let mut j = Join::new(members(4), cfg(), 1).unwrap();
    let out = j.start(0);
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
    let reply = reply_to(&probe, 10, 10, 0, TimePhase::Bootstrap);
    assert_eq!(
        j.handle_reply(20, 0, &reply),
        vec![Output::Refused {
            from: 0,
            error: ExchangeError::NotSynced
        }]
    );
    // a stranger's reply is not counted either
    assert_eq!(
        j.handle_reply(20, 9, &reply),
        vec![Output::Refused {
            from: 9,
            error: ExchangeError::NotMember
        }]
    );
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
