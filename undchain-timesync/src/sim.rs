//! A seeded precision simulator: `n` validators, `f` of them two-faced
//! liars, running [`TimeSync`] rounds over a network whose one-way delays
//! are a fixed part per directed link (drawn per seed in
//! `[0, asymmetry_us]`, so a path may be slower one way than the other)
//! plus random jitter, with drifting local clocks that start up to a
//! second apart (docs/BENCHMARKS.md "undchain-timesync: precision
//! simulation").
//!
//! It drives the very machine a node runs ([`TimeSync`]); only the
//! network, the clocks and the liars are simulated, with the project's
//! simulation kit (`undchain-sim`: [`SplitMix64`], [`EventQueue`],
//! [`DriftingClock`], [`LinkDelays`]). As in a real network the validators first bootstrap
//! (rounds back to back, from clocks up to a second apart) and then run the
//! `rounds` periodic rounds; [`SimConfig::bootstrap`] `= false` skips the
//! bootstrap and starts the periodic rounds straight from the initial
//! offsets. Everything is a function of the seed (one [`SplitMix64`]
//! stream for clocks and jitter, a fork of it for the links' fixed parts,
//! so that a run with asymmetry differs from the symmetric run of the same
//! seed only by the links), so a run replays exactly.
//!
//! The liars are omniscient and two-faced: to the honest validators whose
//! clocks are in the upper half they report a clock `liar_push_us` above
//! the highest honest clock, to the others one as far below the lowest.
//! This is the adversary that keeps a trimmed mean from converging as fast
//! as the midpoint (the two-faced test in `tests/it/agreement_laws.rs`).
//!
//! Measured: the largest pairwise skew between honest logical clocks
//! (`local + correction`) over the last half of the periodic rounds,
//! sampled just before and after every round result, and whether every
//! round result (bootstrap rounds included) lay
//! inside the range the honest clocks spanned during that round, widened by
//! the reading error `(u + a)/2` and the drift over the round; and the
//! honest skew at every instant a validator ended its bootstrap (what the
//! stop rule let through).

use std::collections::BTreeSet;
use std::fmt;

use undchain_sim::{DriftingClock, EventQueue, LinkDelays, SplitMix64};
use undchain_types::msg::{TimePhase, TimeProbe};
use undchain_types::{LocalTime, max_faulty};

use crate::agree::Method;
use crate::exchange::{Output, SyncConfig, SyncEvent, TimeMsg, reply_to};
use crate::rounds::{TimeSync, precision_bound_us};
use crate::sample::{PPM, SampleLimits};

/// Simulation settings (the `precision_sim` example's flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Validators in all (`--n`).
    pub n: usize,
    /// Of them two-faced liars (`--f`).
    pub f: usize,
    /// The seed every random draw of the run comes from (`--seed`).
    pub seed: u64,
    /// Least jitter of a one-way delay, microseconds (`--delay-min-us`).
    pub delay_min_us: u64,
    /// Largest jitter of a one-way delay, microseconds (`--delay-max-us`).
    pub delay_max_us: u64,
    /// Each directed link's fixed delay, added to every message's jitter,
    /// is drawn per seed uniformly in `[0, asymmetry_us]`, so the two
    /// directions of a path differ by up to this (`--asymmetry-us`; 0, the
    /// default: every link alike).
    pub asymmetry_us: u64,
    /// Largest honest drift, ppm (`--drift-ppm`).
    pub drift_ppm: u32,
    /// Round period, milliseconds of agreed time (`--resync-ms`).
    pub resync_ms: u64,
    /// Rounds to run (`--rounds`).
    pub rounds: u32,
    /// Initial local clocks are spread uniformly over this, microseconds.
    pub max_initial_offset_us: u64,
    /// How far beyond the honest range the liars report, microseconds.
    pub liar_push_us: u64,
    /// Whether the validators first bring the network online with
    /// bootstrap rounds (back to back, [`TimeSync::bootstrap`]) before the
    /// `rounds` periodic rounds, as a real network does; `false` starts the
    /// periodic rounds straight from the initial offsets
    /// ([`TimeSync::running`]).
    pub bootstrap: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            n: 10,
            f: 3,
            seed: 1,
            delay_min_us: 1_000,
            delay_max_us: 3_000,
            asymmetry_us: 0,
            drift_ppm: 50,
            resync_ms: 10_000,
            rounds: 50,
            max_initial_offset_us: 1_000_000,
            liar_push_us: 1_000_000,
            bootstrap: true,
        }
    }
}

/// Settings the simulator refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// `n` outside 1..=64.
    #[error("n = {n}: need 1 <= n <= 64")]
    Size {
        /// The number of validators asked for.
        n: usize,
    },
    /// More liars than the agreement tolerates: `n < 3f + 1` (DESIGN.md
    /// "Quorum"), so the liars could outvote the honest clocks and no
    /// precision bound holds.
    #[error("n = {n} validators cannot tolerate f = {f} liars: need n >= 3f + 1 = {need}")]
    TooManyLiars {
        /// The number of validators asked for.
        n: usize,
        /// How many of them were to be liars.
        f: usize,
        /// The least `n` that tolerates `f` liars, `3f + 1`.
        need: usize,
    },
    /// `delay_min_us > delay_max_us`, or delays above 10 s.
    #[error("delays [{min}, {max}] us: need min <= max <= 10 s")]
    Delays {
        /// The least one-way delay asked for, microseconds.
        min: u64,
        /// The largest one-way delay asked for, microseconds.
        max: u64,
    },
    /// A link asymmetry above 10 s.
    #[error("asymmetry {0} us: at most 10 s")]
    Asymmetry(u64),
    /// A round period too short for the probing and the delays, or above
    /// one day.
    #[error("resync period {ms} ms is too short for the delays, or above one day")]
    Period {
        /// The round period asked for, milliseconds.
        ms: u64,
    },
    /// Zero or more than 100,000 rounds.
    #[error("rounds = {0}: need 1..=100000")]
    Rounds(u32),
    /// Drift above 1000 ppm.
    #[error("drift {0} ppm: at most 1000")]
    Drift(u32),
    /// The machines refused the derived configuration.
    #[error("configuration: {0}")]
    Config(#[from] crate::exchange::ConfigError),
}

/// What one run with one agreement method measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimReport {
    /// The agreement method the run used.
    pub method: Method,
    /// Largest pairwise honest skew over the last half of the rounds, us.
    pub max_honest_skew_us: u64,
    /// The precision bound `3(u + a) + 4 rho R` for the run's settings
    /// ([`bound_us`]), us.
    pub bound_us: u64,
    /// Whether every round result stayed inside the honest range.
    pub within_honest_range: bool,
    /// Rounds every honest validator completed.
    pub rounds_completed: u64,
    /// Rounds that could not agree (all validators together).
    pub failed_rounds: u64,
    /// Honest skew at the end of the run, us.
    pub final_skew_us: u64,
    /// The largest fixed delay asymmetry the seed drew for a path between
    /// two honest validators, us (at most [`SimConfig::asymmetry_us`]).
    pub max_link_asymmetry_us: u64,
    /// The largest honest skew at the instant an honest validator ended
    /// its bootstrap ([`Output::Synced`]), us: how far apart the clocks
    /// were when one of them started to run (0 without bootstrap).
    pub max_handover_skew_us: u64,
    /// The most rounds an honest validator ran before it ended its
    /// bootstrap, failed ones included (0 without bootstrap): what the stop
    /// rule cost.
    pub max_bootstrap_rounds: u64,
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "method={} max_honest_skew_us={} bound_us={} within_honest_range={}",
            self.method.name(),
            self.max_honest_skew_us,
            self.bound_us,
            self.within_honest_range
        )
    }
}

/// The protocol's precision bound [`precision_bound_us`] `= 3(u + a) +
/// 4 rho R` for `cfg`, in microseconds: `u` the jitter spread
/// (`delay_max_us - delay_min_us`), `a` the asymmetry (`asymmetry_us`: two
/// fixed parts in `[0, a]` differ by at most `a`), `R` the period.
pub fn bound_us(cfg: &SimConfig) -> u64 {
    precision_bound_us(
        cfg.delay_max_us.saturating_sub(cfg.delay_min_us),
        cfg.asymmetry_us,
        cfg.drift_ppm,
        cfg.resync_ms.saturating_mul(1_000),
    )
}

/// The label of the stream the links' fixed parts are drawn from
/// ([`SplitMix64::fork`] of the seed).
const LINKS_STREAM: u64 = 0x4c49_4e4b; // "LINK"

/// What the simulator's event queue holds, in virtual time.
#[derive(Debug, Clone)]
enum Ev {
    /// Honest `node`'s timer for local time `at_local` (stale if the node
    /// has armed another since).
    Timer { node: usize, at_local: i64 },
    /// A message arrives at `to`.
    Deliver {
        to: usize,
        from: usize,
        msg: TimeMsg,
    },
}

struct Honest {
    clock: DriftingClock,
    machine: TimeSync<usize>,
    /// The local time the node's timer is armed for.
    timer: Option<i64>,
    completed: u64,
    /// Range of honest `clock - real time` seen during the current round.
    hull: Option<(i128, i128)>,
    /// The correction after the last batch of outputs.
    prev: i64,
}

struct World {
    cfg: SimConfig,
    rng: SplitMix64,
    /// Steered by a fuzz input ([`run_steered`]): honest messages may be
    /// lost and the liars answer anything.
    steered: bool,
    links: LinkDelays,
    honest: Vec<Honest>,
    /// Events by virtual time (microseconds from the run's start).
    queue: EventQueue<Ev, i64>,
    now: i64,
    tol: i128,
    half: u64,
    max_skew: i128,
    /// The largest honest skew seen at a `Synced`.
    handover_skew: i128,
    /// The most rounds a validator's bootstrap took.
    bootstrap_rounds: u64,
    within: bool,
    failed: u64,
}

/// The derived machine configuration for `cfg` and `method`.
pub fn sync_config(cfg: &SimConfig, method: Method) -> SyncConfig {
    let period = cfg.resync_ms.saturating_mul(1_000);
    let spacing = (period / 10_000).clamp(100, 2_000);
    let longest = cfg.delay_max_us.saturating_add(cfg.asymmetry_us);
    let max_delay = longest.saturating_mul(4).saturating_add(1_000);
    // A short window: a reading ages (drifts) until the round applies it.
    let collect = spacing * 3 + max_delay + 1_000;
    SyncConfig {
        method,
        probes_per_round: 4,
        probe_spacing_us: spacing,
        collect_us: collect,
        period_us: period,
        limits: SampleLimits {
            max_delay_us: max_delay,
            drift_ppm: cfg.drift_ppm,
        },
        // bootstrap until every reading, error bounds included, is within
        // half the bound: below the bound minus one period's drift, which
        // the running rounds need (docs/PROTOCOL.md, *Precision*)
        bootstrap_target_spread_us: (bound_us(cfg) / 2).max(1),
        ..SyncConfig::default()
    }
}

/// Refuses settings the simulator cannot run, then derives the machine
/// configuration ([`sync_config`]) and refuses it too if the machines
/// would.
fn checked_sync_config(cfg: &SimConfig, method: Method) -> Result<SyncConfig, SimError> {
    if cfg.n == 0 || cfg.n > 64 {
        return Err(SimError::Size { n: cfg.n });
    }
    if cfg.f > max_faulty(cfg.n) {
        return Err(SimError::TooManyLiars {
            n: cfg.n,
            f: cfg.f,
            need: 3 * cfg.f + 1,
        });
    }
    if cfg.delay_min_us > cfg.delay_max_us || cfg.delay_max_us > 10_000_000 {
        return Err(SimError::Delays {
            min: cfg.delay_min_us,
            max: cfg.delay_max_us,
        });
    }
    if cfg.asymmetry_us > 10_000_000 {
        return Err(SimError::Asymmetry(cfg.asymmetry_us));
    }
    if cfg.rounds == 0 || cfg.rounds > 100_000 {
        return Err(SimError::Rounds(cfg.rounds));
    }
    if cfg.drift_ppm > 1_000 {
        return Err(SimError::Drift(cfg.drift_ppm));
    }
    if cfg.resync_ms > 86_400_000 {
        return Err(SimError::Period { ms: cfg.resync_ms });
    }
    let sync = sync_config(cfg, method);
    if sync.validate().is_err() {
        return Err(SimError::Period { ms: cfg.resync_ms });
    }
    Ok(sync)
}

/// Runs the simulation for one method.
pub fn run(cfg: &SimConfig, method: Method) -> Result<SimReport, SimError> {
    run_with(cfg, method, None)
}

/// Runs the simulation for one method with every draw steered by `bytes`
/// ([`SplitMix64::scripted`]; the `time_sync` fuzz target): the clocks,
/// the delays, which honest messages are lost (one in twenty, drawn) and
/// what each liar answers a probe, the two-faced lie or anything at all
/// (no answer, any reading, any timestamps, any delay, two answers).
pub fn run_steered(cfg: &SimConfig, method: Method, bytes: &[u8]) -> Result<SimReport, SimError> {
    run_with(cfg, method, Some(bytes))
}

fn run_with(cfg: &SimConfig, method: Method, bytes: Option<&[u8]>) -> Result<SimReport, SimError> {
    let sync = checked_sync_config(cfg, method)?;
    let mut w = World::new(cfg, &sync, bytes)?;
    for i in 0..w.honest.len() {
        let local = LocalTime(w.honest[i].clock.at(0));
        let out = w.honest[i].machine.start(local);
        w.handle_outputs(i, out);
        w.arm(i);
    }
    let target = u64::from(cfg.rounds);
    let deadline = i64::try_from(
        (u128::from(cfg.rounds) + 3) * u128::from(cfg.resync_ms) * 1_000
            + u128::from(cfg.max_initial_offset_us) * 2,
    )
    .unwrap_or(i64::MAX);
    while let Some((t, ev)) = w.queue.pop() {
        if t > deadline || w.honest.iter().all(|n| n.completed >= target) {
            break;
        }
        w.now = t;
        w.dispatch(ev);
    }
    let final_skew = w.skew(None).2;
    Ok(SimReport {
        method,
        max_honest_skew_us: u64::try_from(w.max_skew).unwrap_or(u64::MAX),
        bound_us: bound_us(cfg),
        within_honest_range: w.within,
        rounds_completed: w.honest.iter().map(|n| n.completed).min().unwrap_or(0),
        failed_rounds: w.failed,
        final_skew_us: u64::try_from(final_skew).unwrap_or(u64::MAX),
        max_link_asymmetry_us: w.links.max_asymmetry_us(w.honest.len()),
        max_handover_skew_us: u64::try_from(w.handover_skew).unwrap_or(u64::MAX),
        max_bootstrap_rounds: w.bootstrap_rounds,
    })
}

impl World {
    /// The honest validators' clocks and machines, drawn from the seed.
    fn new(cfg: &SimConfig, sync: &SyncConfig, bytes: Option<&[u8]>) -> Result<World, SimError> {
        let mut rng = match bytes {
            Some(b) => SplitMix64::scripted(cfg.seed, b),
            None => SplitMix64::new(cfg.seed),
        };
        let h = cfg.n - cfg.f;
        let members: BTreeSet<usize> = (0..cfg.n).collect();
        let epoch: i64 = 1_700_000_000_000_000;
        let spread = i64::try_from(cfg.max_initial_offset_us).unwrap_or(i64::MAX / 4);
        let rho = i64::from(cfg.drift_ppm);
        let mut honest = Vec::with_capacity(h);
        for i in 0..h {
            let clock = DriftingClock {
                base: epoch + rng.range_i64(0, spread),
                drift_ppm: rng.range_i64(-rho, rho),
            };
            let seed = rng.next_u64();
            let machine = if cfg.bootstrap {
                TimeSync::bootstrap(i, members.clone(), sync.clone(), seed)?
            } else {
                TimeSync::running(i, members.clone(), sync.clone(), 0, seed)?
            };
            honest.push(Honest {
                clock,
                machine,
                timer: None,
                completed: 0,
                hull: None,
                prev: 0,
            });
        }
        let links = LinkDelays::draw(
            &mut SplitMix64::fork(cfg.seed, LINKS_STREAM),
            cfg.n,
            cfg.asymmetry_us,
            cfg.delay_min_us,
            cfg.delay_max_us,
        );
        // A reading is off by at most (u + a)/2: jitter and asymmetry.
        let reading_error = i128::from(cfg.delay_max_us - cfg.delay_min_us + cfg.asymmetry_us) / 2;
        let longest = i128::from(cfg.delay_max_us + cfg.asymmetry_us);
        let drift_span = i128::from(sync.collect_us) + 4 * longest;
        let tol = reading_error + (2 * i128::from(cfg.drift_ppm) * drift_span + PPM - 1) / PPM + 2;
        Ok(World {
            steered: bytes.is_some(),
            cfg: cfg.clone(),
            rng,
            links,
            honest,
            queue: EventQueue::new(),
            now: 0,
            tol,
            half: u64::from(cfg.rounds / 2),
            max_skew: 0,
            handover_skew: 0,
            bootstrap_rounds: 0,
            within: true,
            failed: 0,
        })
    }

    /// The delay of one message `from -> to`: the link's fixed part plus
    /// jitter (at most 20 s, checked).
    fn delay(&mut self, from: usize, to: usize) -> i64 {
        let d = self.links.delay_us(&mut self.rng, from, to);
        i64::try_from(d).unwrap_or(i64::MAX / 4)
    }

    /// Honest node `i`'s local clock now.
    fn local(&self, i: usize) -> LocalTime {
        LocalTime(self.honest[i].clock.at(self.now))
    }

    /// Arms honest node `i`'s timer for what its machine asks
    /// ([`TimeSync::poll_timeout`]), if that changed.
    fn arm(&mut self, i: usize) {
        let want = self.honest[i].machine.poll_timeout().map(LocalTime::micros);
        if want == self.honest[i].timer {
            return;
        }
        self.honest[i].timer = want;
        if let Some(at_local) = want {
            let t = self.honest[i].clock.real_at(at_local, self.now);
            self.queue.push(t, Ev::Timer { node: i, at_local });
        }
    }

    /// `clock - real time` of honest node `i`, with an optional override of
    /// its correction.
    fn rel(&self, i: usize, correction: Option<i64>) -> i128 {
        let n = &self.honest[i];
        let c = correction.unwrap_or_else(|| n.machine.correction());
        i128::from(n.clock.at(self.now)) + i128::from(c) - i128::from(self.now)
    }

    /// (min, max, max - min) of the honest `rel`, `over` overriding one
    /// node's correction.
    fn skew(&self, over: Option<(usize, i64)>) -> (i128, i128, i128) {
        let mut lo = i128::MAX;
        let mut hi = i128::MIN;
        for i in 0..self.honest.len() {
            let c = over.and_then(|(j, c)| (j == i).then_some(c));
            let r = self.rel(i, c);
            lo = lo.min(r);
            hi = hi.max(r);
        }
        (lo, hi, hi - lo)
    }

    fn widen_hulls(&mut self, lo: i128, hi: i128) {
        for n in &mut self.honest {
            if let Some((a, b)) = n.hull.as_mut() {
                *a = (*a).min(lo);
                *b = (*b).max(hi);
            }
        }
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Timer { node, at_local } => {
                if self.honest[node].timer != Some(at_local) {
                    return;
                }
                self.honest[node].timer = None;
                let local = self.local(node);
                let out = self.honest[node].machine.handle_timeout(local);
                self.handle_outputs(node, out);
                self.arm(node);
            }
            Ev::Deliver { to, from, msg } => {
                if to < self.honest.len() {
                    let local = self.local(to);
                    let m = &mut self.honest[to].machine;
                    let out = match &msg {
                        TimeMsg::Probe(p) => m.handle_probe(local, from, p),
                        // A refused reply changes nothing; the simulator
                        // has no perception score to lower.
                        TimeMsg::Reply(r) => {
                            let _ = m.handle_reply(local, from, r);
                            Vec::new()
                        }
                    };
                    self.handle_outputs(to, out);
                    self.arm(to);
                } else if let TimeMsg::Probe(p) = msg {
                    self.lie(to, from, &p);
                }
            }
        }
    }

    /// Liar `liar` answers honest `to`'s probe: with the two-faced
    /// reading, or when steered with whatever the stream draws.
    fn lie(&mut self, liar: usize, to: usize, probe: &TimeProbe) {
        if to >= self.honest.len() {
            return;
        }
        if self.steered {
            match self.rng.below(4) {
                0 => return,
                1 => {}
                2 => return self.lie_anything(liar, to, probe),
                _ => self.lie_anything(liar, to, probe),
            }
        }
        let mut rels: Vec<(i128, usize)> = (0..self.honest.len())
            .map(|i| (self.rel(i, None), i))
            .collect();
        rels.sort();
        let rank = rels.iter().position(|&(_, i)| i == to).unwrap_or(0);
        let high = rank >= self.honest.len() / 2;
        let push = i128::from(self.cfg.liar_push_us);
        let (lo, hi) = (rels[0].0, rels[rels.len() - 1].0);
        // The prober's value is offset + reading; with t2 = t3 = its own
        // local clock the offset is only delay noise, so the reading is the
        // lie itself: target clock minus the prober's local clock.
        let target_rel = if high { hi + push } else { lo - push };
        let local_to = i128::from(self.honest[to].clock.at(self.now));
        let reading = target_rel + i128::from(self.now) - local_to;
        let t = LocalTime(local_to as i64);
        let reply = reply_to(probe, t, t, reading as i64, TimePhase::Synced);
        let d = self.delay(liar, to);
        self.queue.push(
            self.now + d,
            Ev::Deliver {
                to,
                from: liar,
                msg: TimeMsg::Reply(reply),
            },
        );
    }

    /// A steered liar's answer: any reading (near the honest clocks or
    /// anywhere), any timestamps around the prober's clock, any phase, any
    /// delay up to twice the delay limit.
    fn lie_anything(&mut self, liar: usize, to: usize, probe: &TimeProbe) {
        let local_to = self.honest[to].clock.at(self.now);
        let reading = match self.rng.below(3) {
            0 => self.rng.next_u64() as i64,
            1 => self.rng.range_i64(-2_000_000, 2_000_000),
            _ => self.rng.range_i64(-10_000, 10_000) + self.honest[0].machine.correction(),
        };
        let max_delay = 2 * i64::try_from(self.cfg.delay_max_us).unwrap_or(i64::MAX / 8);
        let mut stamp =
            || LocalTime(local_to.saturating_add(self.rng.range_i64(-max_delay, max_delay)));
        let (t2, t3) = (stamp(), stamp());
        let phase = if self.rng.chance(500) {
            TimePhase::Synced
        } else {
            TimePhase::Bootstrap
        };
        let reply = reply_to(probe, t2, t3, reading, phase);
        let d = self.rng.range_i64(0, 2 * max_delay);
        self.queue.push(
            self.now + d,
            Ev::Deliver {
                to,
                from: liar,
                msg: TimeMsg::Reply(reply),
            },
        );
    }

    fn handle_outputs(&mut self, i: usize, out: Vec<Output<usize>>) {
        // By the time a batch arrives the correction already moved: the
        // state before is the one after the previous batch.
        let before = self.honest[i].prev;
        for o in out {
            match o {
                Output::Send { to, msg } => {
                    if self.steered && self.rng.chance(50) {
                        continue;
                    }
                    let d = self.delay(i, to);
                    self.queue
                        .push(self.now + d, Ev::Deliver { to, from: i, msg });
                }
                // A round of the running phase counts towards `rounds`;
                // bootstrap rounds (the last of which is `Synced`, after
                // which the machine already runs) do not.
                Output::Adjusted(_) => {
                    let running = self.honest[i].machine.phase() == TimePhase::Synced;
                    self.record_round(i, before, running);
                }
                Output::Synced(_) => {
                    self.record_round(i, before, false);
                    self.handover_skew = self.handover_skew.max(self.skew(None).2);
                    let rounds = self.honest[i].machine.rounds();
                    self.bootstrap_rounds = self.bootstrap_rounds.max(rounds);
                }
                Output::Event(SyncEvent::RoundFailed { .. }) => {
                    self.failed += 1;
                    if self.honest[i].machine.phase() == TimePhase::Synced {
                        self.honest[i].completed += 1;
                    }
                    self.honest[i].hull = None;
                }
                Output::Event(SyncEvent::JoinFailed { .. }) => {}
            }
        }
        if self.honest[i].machine.is_collecting() && self.honest[i].hull.is_none() {
            let (lo, hi, _) = self.skew(None);
            self.honest[i].hull = Some((lo, hi));
        }
        self.honest[i].prev = self.honest[i].machine.correction();
    }

    fn record_round(&mut self, i: usize, before: i64, counts: bool) {
        let (lo_b, hi_b, skew_before) = self.skew(Some((i, before)));
        let (lo_a, hi_a, skew_after) = self.skew(None);
        let new_rel = self.rel(i, None);
        if let Some((a, b)) = self.honest[i].hull.take() {
            let (a, b) = (a.min(lo_b), b.max(hi_b));
            if new_rel < a - self.tol || new_rel > b + self.tol {
                self.within = false;
            }
        }
        if counts {
            self.honest[i].completed += 1;
        }
        self.widen_hulls(lo_a.min(lo_b), hi_a.max(hi_b));
        if self.honest.iter().all(|n| n.completed >= self.half) {
            self.max_skew = self.max_skew.max(skew_before).max(skew_after);
        }
    }
}
