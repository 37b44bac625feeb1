//! The round engine behind [`crate::Bootstrap`] and [`crate::Running`]: one
//! Welch-Lynch round probes every member, collects for a window, then sets
//! the correction to the fault-tolerant midpoint of the readings, one's own
//! included (docs/PROTOCOL.md "Time consensus", *Rounds*).

use std::collections::BTreeSet;

use undchain_types::msg::{TimePhase, TimeProbe, TimeReply};

use crate::agree::{AgreeError, Reading, agree_among};
use crate::exchange::{ExchangeError, Output, Prober, RoundResult, SyncConfig, TimeMsg, reply_to};

/// How rounds are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Back to back, from the local clock; replies say `Bootstrap`.
    Bootstrap,
    /// At every multiple of `period_us` of agreed time; replies say `Synced`.
    Running,
    /// No more rounds (bootstrap finished, waiting to be turned into a
    /// running machine); replies say `Synced`.
    Halted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle { start_at: i64 },
    Collecting { started: i64, sent: u8 },
    Halted,
}

#[derive(Debug, Clone)]
pub(crate) struct Engine<P> {
    pub(crate) me: P,
    pub(crate) members: BTreeSet<P>,
    pub(crate) cfg: SyncConfig,
    pub(crate) correction: i64,
    pub(crate) round: u64,
    pub(crate) mode: Mode,
    prober: Prober<P>,
    state: State,
    /// The period boundary (index) of the last scheduled running round.
    last_boundary: Option<i128>,
}

impl<P: Ord + Clone> Engine<P> {
    pub(crate) fn new(
        me: P,
        members: BTreeSet<P>,
        cfg: SyncConfig,
        correction: i64,
        nonce_seed: u64,
        mode: Mode,
    ) -> Result<Self, crate::ConfigError> {
        cfg.validate()?;
        if !members.contains(&me) {
            return Err(crate::ConfigError::Members);
        }
        Ok(Engine {
            prober: Prober::new(&cfg, nonce_seed, mode == Mode::Bootstrap),
            me,
            members,
            cfg,
            correction,
            round: 0,
            mode,
            state: State::Halted,
            last_boundary: None,
        })
    }

    fn phase(&self) -> TimePhase {
        match self.mode {
            Mode::Bootstrap => TimePhase::Bootstrap,
            Mode::Running | Mode::Halted => TimePhase::Synced,
        }
    }

    /// Local time at which the next round starts, seen from `now`. A
    /// running round starts at the next period boundary of agreed time that
    /// has not had a round yet (a correction may move the clock back across
    /// the boundary just used).
    fn next_start(&mut self, now: i64) -> i64 {
        match self.mode {
            Mode::Bootstrap => now,
            Mode::Running | Mode::Halted => {
                let period = i128::from(self.cfg.period_us.max(1));
                let agreed = i128::from(now) + i128::from(self.correction);
                let mut k = agreed.div_euclid(period) + 1;
                if let Some(last) = self.last_boundary {
                    k = k.max(last + 1);
                }
                self.last_boundary = Some(k);
                clamp_i64(k * period - i128::from(self.correction))
            }
        }
    }

    pub(crate) fn start(&mut self, now: i64) -> Vec<Output<P>> {
        self.state = State::Idle {
            start_at: self.next_start(now),
        };
        self.handle_timer(now).0
    }

    pub(crate) fn halt(&mut self) {
        self.mode = Mode::Halted;
        self.state = State::Halted;
    }

    pub(crate) fn resume_running(&mut self, now: i64) -> Vec<Output<P>> {
        self.mode = Mode::Running;
        self.prober.accept_bootstrap = false;
        self.start(now)
    }

    /// Answers any prober (joiners are not members yet).
    pub(crate) fn handle_probe(&self, now: i64, from: P, probe: &TimeProbe) -> Vec<Output<P>> {
        vec![Output::Send {
            to: from,
            msg: TimeMsg::Reply(reply_to(probe, now, now, self.correction, self.phase())),
        }]
    }

    pub(crate) fn handle_reply(&mut self, now: i64, from: P, reply: &TimeReply) -> Vec<Output<P>> {
        if from == self.me || !self.members.contains(&from) {
            return vec![Output::Refused {
                from,
                error: ExchangeError::NotMember,
            }];
        }
        match self
            .prober
            .handle_reply(now, &from, reply, &self.cfg.limits)
        {
            Ok(()) => Vec::new(),
            Err(error) => vec![Output::Refused { from, error }],
        }
    }

    fn begin_round(&mut self, now: i64, out: &mut Vec<Output<P>>) {
        self.prober.new_round(now);
        let me = self.me.clone();
        self.prober
            .probe_all(now, self.members.iter().filter(|p| **p != me), out);
        self.state = State::Collecting {
            started: now,
            sent: 1,
        };
    }

    /// Does what is due at `now`; returns the outputs and, if a round ended,
    /// its outcome (the correction is already updated on success).
    pub(crate) fn handle_timer(
        &mut self,
        now: i64,
    ) -> (Vec<Output<P>>, Option<Result<RoundResult, AgreeError>>) {
        let mut out = Vec::new();
        let mut outcome = None;
        // At most: start a round, finish it, start the next (bootstrap).
        for _ in 0..3 {
            match self.state {
                State::Halted => break,
                State::Idle { start_at } => {
                    if now < start_at {
                        break;
                    }
                    self.begin_round(now, &mut out);
                }
                State::Collecting { started, sent } => {
                    let mut sent = sent;
                    while sent < self.cfg.probes_per_round
                        && i128::from(now)
                            >= i128::from(started)
                                + i128::from(sent) * i128::from(self.cfg.probe_spacing_us)
                    {
                        let me = self.me.clone();
                        self.prober.probe_all(
                            now,
                            self.members.iter().filter(|p| **p != me),
                            &mut out,
                        );
                        sent += 1;
                    }
                    self.state = State::Collecting { started, sent };
                    if i128::from(now) < i128::from(started) + i128::from(self.cfg.collect_us) {
                        break;
                    }
                    if outcome.is_some() {
                        break;
                    }
                    outcome = Some(self.finish_round(now, &mut out));
                }
            }
        }
        if let Some(at) = self.wake_at() {
            out.push(Output::SetTimer { at_local_us: at });
        }
        (out, outcome)
    }

    fn finish_round(
        &mut self,
        now: i64,
        out: &mut Vec<Output<P>>,
    ) -> Result<RoundResult, AgreeError> {
        let mut readings = self.prober.readings(now, self.cfg.limits.drift_ppm);
        readings.push(Reading {
            peer: self.me.clone(),
            value: self.correction,
            error_us: 0,
        });
        let round = self.round;
        self.round += 1;
        let result = agree_among(&readings, self.members.len(), self.cfg.method).map(|a| {
            self.correction = a.value;
            RoundResult {
                round,
                correction: a.value,
                agreement: a,
            }
        });
        if let Err(error) = result {
            out.push(Output::RoundFailed { round, error });
        }
        self.state = State::Idle {
            start_at: self.next_start(now),
        };
        result
    }

    fn wake_at(&self) -> Option<i64> {
        match self.state {
            State::Halted => None,
            State::Idle { start_at } => Some(start_at),
            State::Collecting { started, sent } => {
                let end = i128::from(started) + i128::from(self.cfg.collect_us);
                let next_probe = if sent < self.cfg.probes_per_round {
                    i128::from(started) + i128::from(sent) * i128::from(self.cfg.probe_spacing_us)
                } else {
                    end
                };
                Some(clamp_i64(next_probe.min(end)))
            }
        }
    }

    pub(crate) fn set_members(&mut self, members: BTreeSet<P>) -> Result<(), crate::ConfigError> {
        if !members.contains(&self.me) {
            return Err(crate::ConfigError::Members);
        }
        self.prober.retain_members(&members);
        self.members = members;
        Ok(())
    }

    pub(crate) fn is_collecting(&self) -> bool {
        matches!(self.state, State::Collecting { .. })
    }
}

pub(crate) fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}
