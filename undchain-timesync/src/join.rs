//! Join: a new validator inherits the running network's time (design notes,
//! validator story item 2: "we should just inherit what the other active
//! validators say the time is"; docs/PROTOCOL.md "Time consensus", *Join*).
//!
//! The joiner probes every active validator, takes only synced readings,
//! and sets its clock to the fault-tolerant midpoint over the active set by
//! the same rule as a round, but without a reading of its own: its own
//! clock is never trusted. At least a quorum (`n - f`) must answer; missing
//! answers count as faults.

use std::collections::BTreeSet;

use undchain_types::msg::TimeReply;

use crate::agree::{AgreeError, agree_among};
use crate::exchange::{ConfigError, ExchangeError, Output, Prober, RoundResult, SyncConfig};
use crate::running::Running;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Collecting { started: i64, sent: u8 },
    Done,
    Failed,
}

/// The join machine of a validator that is not (yet) part of the active
/// set's clock.
#[derive(Debug, Clone)]
pub struct Join<P> {
    active: BTreeSet<P>,
    cfg: SyncConfig,
    prober: Prober<P>,
    attempts: u32,
    state: State,
    synced: Option<RoundResult>,
}

impl<P: Ord + Clone> Join<P> {
    /// A joiner that will inherit the time of the `active` validators.
    pub fn new(active: BTreeSet<P>, cfg: SyncConfig, nonce_seed: u64) -> Result<Self, ConfigError> {
        cfg.validate()?;
        if active.is_empty() {
            return Err(ConfigError::Members);
        }
        Ok(Join {
            prober: Prober::new(&cfg, nonce_seed, false),
            active,
            cfg,
            attempts: 0,
            state: State::Idle,
            synced: None,
        })
    }

    /// Probes every active validator (first attempt).
    pub fn start(&mut self, now: i64) -> Vec<Output<P>> {
        let mut out = Vec::new();
        if self.state == State::Idle {
            self.begin(now, &mut out);
        }
        out
    }

    fn begin(&mut self, now: i64, out: &mut Vec<Output<P>>) {
        self.prober.new_round(now);
        self.prober.probe_all(now, self.active.iter(), out);
        self.state = State::Collecting {
            started: now,
            sent: 1,
        };
        out.push(Output::SetTimer {
            at_local_us: self.wake_at(now),
        });
    }

    fn wake_at(&self, started: i64) -> i64 {
        let State::Collecting { sent, .. } = self.state else {
            return started;
        };
        let end = i128::from(started) + i128::from(self.cfg.collect_us);
        let next = if sent < self.cfg.probes_per_round {
            i128::from(started) + i128::from(sent) * i128::from(self.cfg.probe_spacing_us)
        } else {
            end
        };
        crate::rounds::clamp_i64(next.min(end))
    }

    /// A reply arrived: only synced readings of active validators count.
    pub fn handle_reply(&mut self, now: i64, from: P, reply: &TimeReply) -> Vec<Output<P>> {
        if !self.active.contains(&from) {
            return vec![Output::Refused {
                from,
                error: ExchangeError::NotMember,
            }];
        }
        if !matches!(self.state, State::Collecting { .. }) {
            return vec![Output::Refused {
                from,
                error: ExchangeError::UnknownNonce { nonce: reply.nonce },
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

    /// The timer fired (calling early is harmless).
    pub fn handle_timer(&mut self, now: i64) -> Vec<Output<P>> {
        let mut out = Vec::new();
        let State::Collecting { started, mut sent } = self.state else {
            return out;
        };
        while sent < self.cfg.probes_per_round
            && i128::from(now)
                >= i128::from(started) + i128::from(sent) * i128::from(self.cfg.probe_spacing_us)
        {
            self.prober.probe_all(now, self.active.iter(), &mut out);
            sent += 1;
        }
        self.state = State::Collecting { started, sent };
        if i128::from(now) < i128::from(started) + i128::from(self.cfg.collect_us) {
            out.push(Output::SetTimer {
                at_local_us: self.wake_at(started),
            });
            return out;
        }
        let readings = self.prober.readings(now, self.cfg.limits.drift_ppm);
        let round = u64::from(self.attempts);
        self.attempts += 1;
        match agree_among(&readings, self.active.len(), self.cfg.method) {
            Ok(agreement) => {
                let result = RoundResult {
                    round,
                    correction: agreement.value,
                    agreement,
                };
                self.state = State::Done;
                self.synced = Some(result);
                out.push(Output::Synced(result));
            }
            Err(error) => self.retry_or_fail(now, error, &mut out),
        }
        out
    }

    fn retry_or_fail(&mut self, now: i64, error: AgreeError, out: &mut Vec<Output<P>>) {
        out.push(Output::RoundFailed {
            round: u64::from(self.attempts - 1),
            error,
        });
        if self.attempts >= self.cfg.join_attempts {
            self.state = State::Failed;
            out.push(Output::JoinFailed {
                attempts: self.attempts,
                error,
            });
        } else {
            self.begin(now, out);
        }
    }

    /// The inherited correction (agreed time = local + correction), once
    /// joined.
    pub fn synced(&self) -> Option<RoundResult> {
        self.synced
    }

    /// Whether the joiner gave up.
    pub fn has_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// After [`Output::Synced`]: the running machine of `me`, now one of
    /// `members`. Before that, [`ConfigError::NotSynced`] (check
    /// [`Self::synced`] first).
    pub fn into_running(
        self,
        me: P,
        members: BTreeSet<P>,
        nonce_seed: u64,
    ) -> Result<Running<P>, ConfigError> {
        let r = self.synced.ok_or(ConfigError::NotSynced)?;
        Running::new(me, members, self.cfg, r.correction, nonce_seed)
    }
}
