//! Fixtures shared by the time-sync tests: chain parameters, member sets
//! and a small network that drives the time machines as a host would
//! (inputs, `poll_timeout` / `handle_timeout`, outputs carried out), with
//! the kit's per-link delays (`undchain_sim::LinkDelays`), fixed clock
//! offsets and optional two-faced liars.

use std::collections::BTreeSet;

use undchain_sim::{EventQueue, LinkDelays, SplitMix64, node_key};
use undchain_timesync::{
    AgreeError, ExchangeError, Join, Output, RoundResult, SyncConfig, SyncEvent, TimeMsg, TimeSync,
    reply_to,
};
use undchain_types::msg::TimePhase;
use undchain_types::{BlockTime, ChainId, ChainParams, LocalTime, PublicKey, SigningKey};

/// The chain every resync and block-clock test runs on: genesis at
/// 1,000,000 us of agreed time, default block and payout periods.
pub fn params() -> ChainParams {
    ChainParams::new(ChainId(7), key(200).public(), BlockTime(1_000_000))
}

/// Test validator `i`'s key: the kit's `undchain_sim::node_key`, by the
/// small index the proptests draw.
pub fn key(i: u8) -> SigningKey {
    node_key(usize::from(i))
}

/// The public keys of test validators `0..n`.
pub fn active(n: u8) -> BTreeSet<PublicKey> {
    (0..n).map(|i| key(i).public()).collect()
}

/// Validators `0..n` by index, as the time machines' peer ids.
pub fn members(n: usize) -> BTreeSet<usize> {
    (0..n).collect()
}

/// The time machines' settings for the scenarios: the defaults, with
/// bootstrap stopping once its survivors are within 3 ms.
pub fn cfg() -> SyncConfig {
    SyncConfig {
        bootstrap_target_spread_us: 3_000,
        ..SyncConfig::default()
    }
}

/// One node of the test network.
pub enum Node {
    /// An active validator's time machine.
    Sync(TimeSync<usize>),
    /// A validator inheriting the running network's time.
    Join(Join<usize>),
    /// Two-faced: tells even probers +10 s, odd ones -10 s.
    Liar,
    /// Crashed: answers nothing.
    Off,
}

/// What the network's queue delivers.
enum Event {
    /// The node's timer armed for this local time.
    Timer(LocalTime),
    /// A message from another node.
    Msg { from: usize, msg: TimeMsg },
}

/// A network of time machines with fixed clock offsets (local clock = real
/// time + offset) and one-way delays drawn uniformly from 1..=3 ms, or as
/// [`Net::with_links`] says.
pub struct Net {
    /// The nodes, by index.
    pub nodes: Vec<Node>,
    /// Each node's local clock minus real time, microseconds.
    pub offsets: Vec<i64>,
    queue: EventQueue<(usize, Event), i64>,
    timers: Vec<Option<LocalTime>>,
    /// Real time now, microseconds.
    pub now: i64,
    rng: SplitMix64,
    links: LinkDelays,
    /// The last `Synced` result per node.
    pub synced: Vec<Option<RoundResult>>,
    /// How many `Adjusted` results each node had.
    pub adjusted: Vec<u32>,
    /// The last `Adjusted` result per node.
    pub last_adjusted: Vec<Option<RoundResult>>,
    /// Each node's failed rounds, in order.
    pub round_failed: Vec<Vec<AgreeError>>,
    /// Each node's refused replies, in order.
    pub refused: Vec<Vec<ExchangeError>>,
    /// Whether each node's join gave up.
    pub join_failed: Vec<bool>,
}

impl Net {
    /// A network of `nodes` with `offsets`, delays drawn from `seed`.
    pub fn new(nodes: Vec<Node>, offsets: Vec<i64>, seed: u64) -> Self {
        let n = nodes.len();
        Net {
            nodes,
            offsets,
            queue: EventQueue::new(),
            timers: vec![None; n],
            now: 0,
            rng: SplitMix64::new(seed),
            links: LinkDelays::symmetric(1_000, 3_000),
            synced: vec![None; n],
            adjusted: vec![0; n],
            last_adjusted: vec![None; n],
            round_failed: vec![Vec::new(); n],
            refused: vec![Vec::new(); n],
            join_failed: vec![false; n],
        }
    }

    /// The same network with one-way delays from `links` (call before
    /// [`Self::start`]).
    pub fn with_links(mut self, links: LinkDelays) -> Self {
        self.links = links;
        self
    }

    fn local(&self, i: usize) -> LocalTime {
        LocalTime(self.now + self.offsets[i])
    }

    /// Starts every machine at real time now.
    pub fn start(&mut self) {
        for i in 0..self.nodes.len() {
            let local = self.local(i);
            let out = match &mut self.nodes[i] {
                Node::Sync(m) => m.start(local),
                Node::Join(m) => m.start(local),
                Node::Liar | Node::Off => Vec::new(),
            };
            self.feed(i, out);
            self.arm(i);
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: TimeMsg) {
        let d = i64::try_from(self.links.delay_us(&mut self.rng, from, to)).unwrap_or(i64::MAX / 4);
        self.queue
            .push(self.now + d, (to, Event::Msg { from, msg }));
    }

    /// Carries out node `i`'s outputs and records what they report.
    pub fn feed(&mut self, i: usize, out: Vec<Output<usize>>) {
        for o in out {
            match o {
                Output::Send { to, msg } => self.send(i, to, msg),
                Output::Synced(r) => self.synced[i] = Some(r),
                Output::Adjusted(r) => {
                    self.adjusted[i] += 1;
                    self.last_adjusted[i] = Some(r);
                }
                Output::Event(SyncEvent::RoundFailed { error, .. }) => {
                    self.round_failed[i].push(error)
                }
                Output::Event(SyncEvent::JoinFailed { .. }) => self.join_failed[i] = true,
            }
        }
    }

    /// Arms node `i`'s timer for what its machine asks, if that changed.
    fn arm(&mut self, i: usize) {
        let want = match &self.nodes[i] {
            Node::Sync(m) => m.poll_timeout(),
            Node::Join(m) => m.poll_timeout(),
            Node::Liar | Node::Off => None,
        };
        if want == self.timers[i] {
            return;
        }
        self.timers[i] = want;
        if let Some(at) = want {
            let t = (at.micros() - self.offsets[i]).max(self.now);
            self.queue.push(t, (i, Event::Timer(at)));
        }
    }

    /// Runs until real time `end` or until `stop` says so (checked before
    /// every event).
    pub fn run_until(&mut self, end: i64, mut stop: impl FnMut(&Net) -> bool) {
        while let Some(t) = self.queue.peek_time() {
            if t > end || stop(self) {
                break;
            }
            let Some((_, (to, ev))) = self.queue.pop() else {
                break;
            };
            self.now = t;
            self.dispatch(to, ev);
        }
    }

    fn dispatch(&mut self, to: usize, ev: Event) {
        let local = self.local(to);
        let out = match (&mut self.nodes[to], ev) {
            (Node::Off, _) => Vec::new(),
            (Node::Liar, Event::Msg { from, msg }) => {
                if let TimeMsg::Probe(p) = msg {
                    let lie = if from % 2 == 0 {
                        10_000_000
                    } else {
                        -10_000_000
                    };
                    let t = LocalTime(self.now + self.offsets[from]);
                    let reply = reply_to(&p, t, t, lie, TimePhase::Synced);
                    self.send(to, from, TimeMsg::Reply(reply));
                }
                Vec::new()
            }
            (Node::Liar, Event::Timer(_)) => Vec::new(),
            (node, Event::Timer(at)) => {
                // a timer re-armed since is stale
                if self.timers[to] != Some(at) {
                    return;
                }
                self.timers[to] = None;
                match node {
                    Node::Sync(m) => m.handle_timeout(local),
                    Node::Join(m) => m.handle_timeout(local),
                    Node::Liar | Node::Off => Vec::new(),
                }
            }
            (Node::Sync(m), Event::Msg { from, msg }) => match msg {
                TimeMsg::Probe(p) => m.handle_probe(local, from, &p),
                TimeMsg::Reply(r) => {
                    if let Err(e) = m.handle_reply(local, from, &r) {
                        self.refused[to].push(e);
                    }
                    Vec::new()
                }
            },
            (Node::Join(m), Event::Msg { from, msg }) => {
                if let TimeMsg::Reply(r) = msg
                    && let Err(e) = m.handle_reply(local, from, &r)
                {
                    self.refused[to].push(e);
                }
                Vec::new()
            }
        };
        self.feed(to, out);
        self.arm(to);
    }

    /// Node `i`'s correction (a joiner's once joined, else 0).
    pub fn correction(&self, i: usize) -> i64 {
        match &self.nodes[i] {
            Node::Sync(m) => m.correction(),
            Node::Join(m) => m.synced().map_or(0, |r| r.correction),
            Node::Liar | Node::Off => 0,
        }
    }

    /// Clock minus real time, per node.
    pub fn rel(&self, i: usize) -> i64 {
        self.offsets[i] + self.correction(i)
    }

    /// The largest difference between the clocks of `nodes`.
    pub fn skew(&self, nodes: &[usize]) -> i64 {
        let r: Vec<i64> = nodes.iter().map(|&i| self.rel(i)).collect();
        r.iter().max().unwrap() - r.iter().min().unwrap()
    }
}

/// A running network whose clocks already agree (each correction cancels
/// its offset: every clock reads real time + 5 s), `liar` two-faced, `off`
/// crashed, and `extra` nodes appended with their local clocks 7 s behind
/// real time. Started.
pub fn running_network(
    offsets: &[i64],
    liar: Option<usize>,
    off: &[usize],
    extra: Vec<Node>,
) -> Net {
    let n = offsets.len();
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            if Some(i) == liar {
                Node::Liar
            } else if off.contains(&i) {
                Node::Off
            } else {
                let c = 5_000_000 - offsets[i];
                Node::Sync(TimeSync::running(i, members(n), cfg(), c, i as u64).unwrap())
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
