//! [`TimeSync`]: the time machine of one active validator, from the first
//! bootstrap round to the running network's periodic rounds
//! (docs/PROTOCOL.md "Time consensus", *Rounds*).
//!
//! A Welch-Lynch round probes every other member, collects replies for
//! [`SyncConfig::collect_us`], then sets the correction to the
//! fault-tolerant midpoint of every member's reading, one's own included.
//! The machine is in one of two phases, the one its replies state
//! ([`TimePhase`]):
//!
//! * **Bootstrap** (design notes, validator story item 2): the network's
//!   time is being brought online. The clock starts at the local clock
//!   (correction 0) and rounds run back to back; one round at least halves
//!   the honest spread (plus the reading error). Once a round read every
//!   member and all their clocks, error bounds included, lie within
//!   [`SyncConfig::bootstrap_target_spread_us`] (the survivors' spread
//!   alone proves nothing: the trimming may have dropped honest clocks
//!   that are far off), or after [`SyncConfig::bootstrap_max_rounds`]
//!   successful rounds, the machine announces its clock
//!   ([`Output::Synced`]), forgets the bootstrap's probes and turns itself
//!   into a running machine at the same instant: the host swaps nothing.
//! * **Running** (`Synced`): a round starts at every multiple of
//!   [`SyncConfig::period_us`] of agreed time, so all honest validators
//!   start within their skew of one another, and only `Synced` readings
//!   count. A result ([`Output::Adjusted`]) moves the logical clock; the
//!   host slews its [`crate::BlockClock`] towards it, and only a
//!   quorum-approved resync ([`crate::Resync`], [`TimeSync::apply_step`])
//!   steps it.
//!
//! With reading error at most `e = (u + a)/2` (one-way delays jitter over a
//! spread `u`; `a` the largest fixed delay asymmetry of a path, which no
//! exchange can see) and drift at most `rho`, the honest clocks stay within
//! [`precision_bound_us`] `= 3(u + a) + 4 rho R` of each other (`R` the
//! period): one round maps skew `y` to at most `y/2 + 3e`, and the clocks
//! drift apart by `2 rho R` between rounds.
//!
//! Timers follow the machine vocabulary: [`TimeSync::poll_timeout`] says
//! when the next probe wave, round end or round start is due, and
//! [`TimeSync::handle_timeout`] does what is due at `now` (calling it early
//! does nothing).

use std::collections::BTreeSet;

use undchain_types::LocalTime;
use undchain_types::msg::{TimePhase, TimeProbe, TimeReply};

use crate::agree::{Reading, agree_among, span_with_errors_us};
use crate::exchange::{
    Collecting, ConfigError, ExchangeError, Output, Prober, RoundResult, SyncConfig, SyncEvent,
    TimeMsg, reply_to,
};
use crate::sample::PPM;

/// What the machine waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schedule {
    /// [`TimeSync::start`] has not been called.
    NotStarted,
    /// The next round starts at local time `start_at`.
    Idle { start_at: LocalTime },
    /// A round is probing and collecting replies.
    Collecting(Collecting),
}

/// The time machine of one active validator: bootstrap, then running.
///
/// Of its `n` members it tolerates `f = floor((n - 1) / 3)` faulty ones
/// (DESIGN.md "Quorum"), taken from the member set itself, so no
/// configuration can ask it for more than `n >= 3f + 1` allows.
#[derive(Debug, Clone)]
pub struct TimeSync<P> {
    me: P,
    members: BTreeSet<P>,
    cfg: SyncConfig,
    correction: i64,
    round: u64,
    phase: TimePhase,
    prober: Prober<P>,
    schedule: Schedule,
    /// The period boundary (index) of the last scheduled running round.
    last_boundary: Option<i128>,
    /// Successful bootstrap rounds so far.
    bootstrap_successes: u32,
    synced: Option<RoundResult>,
}

impl<P: Ord + Clone> TimeSync<P> {
    /// The machine of `me` among the active validators `members` (`me`
    /// included) bringing a new network's time online: it starts in the
    /// bootstrap phase with the local clock (correction 0). `nonce_seed` is
    /// fresh randomness for probe nonces.
    pub fn bootstrap(
        me: P,
        members: BTreeSet<P>,
        cfg: SyncConfig,
        nonce_seed: u64,
    ) -> Result<Self, ConfigError> {
        Self::new(me, members, cfg, 0, nonce_seed, TimePhase::Bootstrap)
    }

    /// The machine of `me` among `members` (`me` included) whose clock
    /// already agrees with the network's: agreed time is `local +
    /// correction`, the correction coming from [`crate::Join`] or from
    /// storage. It starts in the running phase.
    pub fn running(
        me: P,
        members: BTreeSet<P>,
        cfg: SyncConfig,
        correction: i64,
        nonce_seed: u64,
    ) -> Result<Self, ConfigError> {
        Self::new(me, members, cfg, correction, nonce_seed, TimePhase::Synced)
    }

    fn new(
        me: P,
        members: BTreeSet<P>,
        cfg: SyncConfig,
        correction: i64,
        nonce_seed: u64,
        phase: TimePhase,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        if !members.contains(&me) {
            return Err(ConfigError::Members);
        }
        Ok(TimeSync {
            prober: Prober::new(&cfg, nonce_seed, phase == TimePhase::Bootstrap),
            me,
            members,
            cfg,
            correction,
            round: 0,
            phase,
            schedule: Schedule::NotStarted,
            last_boundary: None,
            bootstrap_successes: 0,
            synced: None,
        })
    }

    /// Schedules the first round from local time `now`: at once in the
    /// bootstrap phase (the outputs are its probes), at the next period
    /// boundary of agreed time in the running phase.
    pub fn start(&mut self, now: LocalTime) -> Vec<Output<P>> {
        self.schedule = Schedule::Idle {
            start_at: self.next_start(now),
        };
        self.handle_timeout(now)
    }

    /// A probe arrived at local time `now`: the reply carries this
    /// validator's clock and phase (tentative while bootstrapping). Anyone
    /// may probe (a joining validator is not a member yet); the transport
    /// rate-limits.
    pub fn handle_probe(&self, now: LocalTime, from: P, probe: &TimeProbe) -> Vec<Output<P>> {
        vec![Output::Send {
            to: from,
            msg: TimeMsg::Reply(reply_to(probe, now, now, self.correction, self.phase)),
        }]
    }

    /// A reply arrived at local time `now`. It is refused, changing
    /// nothing, when the sender is not another member, when it answers no
    /// outstanding probe, and (in the running phase) when its reading is a
    /// bootstrap one ([`ExchangeError::NotSynced`]).
    pub fn handle_reply(
        &mut self,
        now: LocalTime,
        from: P,
        reply: &TimeReply,
    ) -> Result<(), ExchangeError> {
        if from == self.me || !self.members.contains(&from) {
            return Err(ExchangeError::NotMember);
        }
        self.prober
            .handle_reply(now, &from, reply, &self.cfg.limits)
    }

    /// When the machine next wants [`Self::handle_timeout`]: the next wave
    /// of probes, the end of collection or the next round's start. `None`
    /// before [`Self::start`].
    pub fn poll_timeout(&self) -> Option<LocalTime> {
        match self.schedule {
            Schedule::NotStarted => None,
            Schedule::Idle { start_at } => Some(start_at),
            Schedule::Collecting(c) => Some(c.wake_at(&self.cfg)),
        }
    }

    /// Does what is due at local time `now` (calling early does nothing).
    /// A finished round yields [`Output::Adjusted`], the bootstrap's last
    /// one [`Output::Synced`], a failed one [`SyncEvent::RoundFailed`].
    pub fn handle_timeout(&mut self, now: LocalTime) -> Vec<Output<P>> {
        let mut out = Vec::new();
        let mut finished = false;
        // At most: start a round, finish it, start the next (bootstrap).
        for _ in 0..3 {
            match self.schedule {
                Schedule::NotStarted => break,
                Schedule::Idle { start_at } => {
                    if now < start_at {
                        break;
                    }
                    self.begin_round(now, &mut out);
                }
                Schedule::Collecting(mut c) => {
                    if !c.is_over(now, &self.cfg) {
                        for _ in 0..c.take_due(now, &self.cfg) {
                            self.probe_others(now, &mut out);
                        }
                        self.schedule = Schedule::Collecting(c);
                        break;
                    }
                    // A probe still due now could only be answered after
                    // its round is computed: it is not sent.
                    if finished {
                        break;
                    }
                    finished = true;
                    self.finish_round(now, &mut out);
                }
            }
        }
        out
    }

    /// A quorum-approved resync step ([`crate::Resync`]) moves the logical
    /// clock too.
    pub fn apply_step(&mut self, step_us: i64) {
        self.correction = self.correction.saturating_add(step_us);
    }

    /// The active set changed (rotation at a payout-period boundary); a set
    /// without this validator is refused and changes nothing.
    pub fn set_members(&mut self, members: BTreeSet<P>) -> Result<(), ConfigError> {
        if !members.contains(&self.me) {
            return Err(ConfigError::Members);
        }
        self.prober.retain_members(&members);
        self.members = members;
        Ok(())
    }

    /// The logical clock's correction: this validator's clock reads local
    /// time plus this (tentative while bootstrapping).
    pub fn correction(&self) -> i64 {
        self.correction
    }

    /// The phase this validator's replies state: `Bootstrap` until the
    /// bootstrap announced its clock, `Synced` after.
    pub fn phase(&self) -> TimePhase {
        self.phase
    }

    /// The announced bootstrap result, once bootstrap finished (`None` for a
    /// machine built with [`Self::running`]).
    pub fn synced(&self) -> Option<RoundResult> {
        self.synced
    }

    /// Rounds run so far, bootstrap rounds and failed rounds included.
    pub fn rounds(&self) -> u64 {
        self.round
    }

    /// Whether a round is collecting replies now.
    pub fn is_collecting(&self) -> bool {
        matches!(self.schedule, Schedule::Collecting(_))
    }

    /// The active validators whose clocks this machine agrees with.
    pub fn members(&self) -> &BTreeSet<P> {
        &self.members
    }

    /// Local time at which the next round starts, seen from `now`. A
    /// running round starts at the next period boundary of agreed time that
    /// has not had a round yet (a correction may move the clock back across
    /// the boundary just used).
    fn next_start(&mut self, now: LocalTime) -> LocalTime {
        if self.phase == TimePhase::Bootstrap {
            return now;
        }
        let period = i128::from(self.cfg.period_us.max(1));
        let agreed = i128::from(now.micros()) + i128::from(self.correction);
        let mut k = agreed.div_euclid(period) + 1;
        if let Some(last) = self.last_boundary {
            k = k.max(last + 1);
        }
        self.last_boundary = Some(k);
        LocalTime(clamp_i64(k * period - i128::from(self.correction)))
    }

    fn probe_others(&mut self, now: LocalTime, out: &mut Vec<Output<P>>) {
        let me = &self.me;
        self.prober
            .probe_all(now, self.members.iter().filter(|p| *p != me), out);
    }

    fn begin_round(&mut self, now: LocalTime, out: &mut Vec<Output<P>>) {
        self.prober.new_round(now);
        self.probe_others(now, out);
        self.schedule = Schedule::Collecting(Collecting::begun(now));
    }

    /// Computes the round from the readings collected and schedules the
    /// next one.
    fn finish_round(&mut self, now: LocalTime, out: &mut Vec<Output<P>>) {
        let mut readings = self.prober.readings(now, self.cfg.limits.drift_ppm);
        readings.push(Reading {
            peer: self.me.clone(),
            value: self.correction,
            error_us: 0,
        });
        let round = self.round;
        self.round += 1;
        let all_within_target = self.all_within_target(&readings);
        match agree_among(&readings, self.members.len(), self.cfg.method) {
            Ok(agreement) => {
                self.correction = agreement.value;
                let result = RoundResult {
                    round,
                    correction: agreement.value,
                    agreement,
                };
                let o = self.conclude(now, result, all_within_target);
                out.push(o);
            }
            Err(error) => out.push(Output::Event(SyncEvent::RoundFailed { round, error })),
        }
        self.schedule = Schedule::Idle {
            start_at: self.next_start(now),
        };
    }

    /// The bootstrap's stop test (docs/PROTOCOL.md "Time consensus",
    /// *Rounds*): every member was read this round, one's own clock
    /// included, and the span that holds all their true clocks
    /// ([`span_with_errors_us`]) is within the target. The survivors'
    /// spread would not do: under two-faced liars the trimming drops the
    /// far honest clocks, and the survivors of the validators on one side
    /// are close together in every round while the other side is still far
    /// off. A reading that is missing may be such a clock, so it fails the
    /// test too.
    fn all_within_target(&self, readings: &[Reading<P>]) -> bool {
        readings.len() == self.members.len()
            && span_with_errors_us(readings) <= self.cfg.bootstrap_target_spread_us
    }

    /// What a successful round means in this phase; the bootstrap's last
    /// round hands over to the running phase: the first whose readings
    /// were all within the target, or the last one
    /// [`SyncConfig::bootstrap_max_rounds`] allows, by which the halving
    /// has brought any plausible initial spread down to the reading error
    /// (a liar can keep the test from passing, never make it pass).
    fn conclude(
        &mut self,
        now: LocalTime,
        result: RoundResult,
        all_within_target: bool,
    ) -> Output<P> {
        if self.phase == TimePhase::Bootstrap {
            self.bootstrap_successes += 1;
            if all_within_target || self.bootstrap_successes >= self.cfg.bootstrap_max_rounds {
                self.phase = TimePhase::Synced;
                self.prober.accept_bootstrap = false;
                self.prober.new_round(now);
                self.synced = Some(result);
                return Output::Synced(result);
            }
        }
        Output::Adjusted(result)
    }
}

/// The precision bound of docs/PROTOCOL.md "Time consensus", *Precision*:
/// the largest skew between two honest logical clocks once the rounds
/// run, `3(u + a) + 4 rho R` microseconds, rounded up and saturating.
///
/// `jitter_spread_us` is `u`, how much one path's one-way delay varies
/// from message to message; `asymmetry_us` is `a`, the largest difference
/// between the fixed delays of the two directions of a path between honest
/// validators (an offset estimate is off by up to `(u + a)/2`); `drift_ppm`
/// is `rho`; `period_us` is `R`. `a` is an assumption about the network,
/// like `rho`: the exchange measures only round trips, so no validator can
/// measure it.
pub fn precision_bound_us(
    jitter_spread_us: u64,
    asymmetry_us: u64,
    drift_ppm: u32,
    period_us: u64,
) -> u64 {
    let reading = 3 * (i128::from(jitter_spread_us) + i128::from(asymmetry_us));
    let drift = (4 * i128::from(drift_ppm) * i128::from(period_us) + PPM - 1) / PPM;
    u64::try_from(reading + drift).unwrap_or(u64::MAX)
}

/// `v` saturated into the i64 range.
pub(crate) fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}
