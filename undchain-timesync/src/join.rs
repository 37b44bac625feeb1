//! Join: a new validator inherits the running network's time (design notes,
//! validator story item 2: "we should just inherit what the other active
//! validators say the time is"; docs/PROTOCOL.md "Time consensus", *Join*).
//!
//! The joiner probes every active validator, takes only synced readings,
//! and sets its clock to the fault-tolerant midpoint over the active set by
//! the same rule as a round, but without a reading of its own: its own
//! clock is never trusted. At least a quorum (`n - f`) must answer; missing
//! answers count as faults.
//!
//! [`Join`] is its own machine, not a phase of [`TimeSync`]: a joiner is
//! not a member of the clock it reads (it answers no probes and its
//! reading counts nowhere), it can give up for good, and the member set it
//! runs in afterwards is the host's to name when rotation admits it
//! ([`Join::into_time_sync`]).

use std::collections::BTreeSet;

use undchain_types::LocalTime;
use undchain_types::msg::TimeReply;

use crate::agree::{AgreeError, agree_among};
use crate::exchange::{
    Collecting, ConfigError, ExchangeError, Output, Prober, RoundResult, SyncConfig, SyncEvent,
};
use crate::rounds::TimeSync;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Collecting(Collecting),
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
    /// A joiner that will inherit the time of the `active` validators;
    /// `nonce_seed` is fresh randomness for probe nonces.
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

    /// Probes every active validator (the first attempt) at local time
    /// `now`; a second call does nothing.
    pub fn start(&mut self, now: LocalTime) -> Vec<Output<P>> {
        let mut out = Vec::new();
        if self.state == State::Idle {
            self.begin(now, &mut out);
        }
        out
    }

    fn begin(&mut self, now: LocalTime, out: &mut Vec<Output<P>>) {
        self.prober.new_round(now);
        self.prober.probe_all(now, self.active.iter(), out);
        self.state = State::Collecting(Collecting::begun(now));
    }

    /// A reply arrived at local time `now`: only synced readings of active
    /// validators answering an outstanding probe count; anything else is
    /// refused and changes nothing.
    pub fn handle_reply(
        &mut self,
        now: LocalTime,
        from: P,
        reply: &TimeReply,
    ) -> Result<(), ExchangeError> {
        if !self.active.contains(&from) {
            return Err(ExchangeError::NotMember);
        }
        if !matches!(self.state, State::Collecting(_)) {
            return Err(ExchangeError::UnknownNonce { nonce: reply.nonce });
        }
        self.prober
            .handle_reply(now, &from, reply, &self.cfg.limits)
    }

    /// When the joiner next wants [`Self::handle_timeout`]: the next wave
    /// of probes or the end of the attempt. `None` before [`Self::start`]
    /// and once joined or given up.
    pub fn poll_timeout(&self) -> Option<LocalTime> {
        match self.state {
            State::Collecting(c) => Some(c.wake_at(&self.cfg)),
            State::Idle | State::Done | State::Failed => None,
        }
    }

    /// Does what is due at local time `now` (calling early does nothing):
    /// sends due probes, or ends the attempt with [`Output::Synced`], a
    /// retry, or [`SyncEvent::JoinFailed`] after the last attempt.
    pub fn handle_timeout(&mut self, now: LocalTime) -> Vec<Output<P>> {
        let mut out = Vec::new();
        let State::Collecting(mut c) = self.state else {
            return out;
        };
        if !c.is_over(now, &self.cfg) {
            for _ in 0..c.take_due(now, &self.cfg) {
                self.prober.probe_all(now, self.active.iter(), &mut out);
            }
            self.state = State::Collecting(c);
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

    fn retry_or_fail(&mut self, now: LocalTime, error: AgreeError, out: &mut Vec<Output<P>>) {
        out.push(Output::Event(SyncEvent::RoundFailed {
            round: u64::from(self.attempts - 1),
            error,
        }));
        if self.attempts >= self.cfg.join_attempts {
            self.state = State::Failed;
            out.push(Output::Event(SyncEvent::JoinFailed {
                attempts: self.attempts,
                error,
            }));
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

    /// After [`Output::Synced`]: the running-phase [`TimeSync`] of `me`,
    /// now one of `members`, with the inherited correction (the host calls
    /// [`TimeSync::start`]). Before that, [`ConfigError::NotSynced`] (check
    /// [`Self::synced`] first).
    pub fn into_time_sync(
        self,
        me: P,
        members: BTreeSet<P>,
        nonce_seed: u64,
    ) -> Result<TimeSync<P>, ConfigError> {
        let r = self.synced.ok_or(ConfigError::NotSynced)?;
        TimeSync::running(me, members, self.cfg, r.correction, nonce_seed)
    }
}
