//! The running network's periodic rounds (docs/PROTOCOL.md "Time
//! consensus", *Running*): at every multiple of the period of agreed time,
//! each active validator runs one Welch-Lynch round and moves its logical
//! clock to the fault-tolerant midpoint. The driver slews its
//! [`crate::BlockClock`] towards the new correction; only a quorum-approved
//! resync ([`crate::Resync`]) steps it.
//!
//! With reading error at most `u/2` (one-way delays in `[a, a+u]`) and drift
//! at most `rho`, the honest clocks stay within `3u + 4 rho R` of each other
//! (`R` the period): one round maps skew `y` to at most
//! `(y + u)/2 + u`, and the clocks drift apart by `2 rho R` between rounds.

use std::collections::BTreeSet;

use undchain_types::msg::{TimeProbe, TimeReply};

use crate::exchange::{ConfigError, Output, SyncConfig};
use crate::rounds::{Engine, Mode};

/// The running-phase time machine of one active validator.
#[derive(Debug, Clone)]
pub struct Running<P> {
    engine: Engine<P>,
}

impl<P: Ord + Clone> Running<P> {
    /// A validator `me` among `members` (`me` included) whose clock is
    /// `local + correction`, `correction` coming from bootstrap or join.
    pub fn new(
        me: P,
        members: BTreeSet<P>,
        cfg: SyncConfig,
        correction: i64,
        nonce_seed: u64,
    ) -> Result<Self, ConfigError> {
        Ok(Running {
            engine: Engine::new(me, members, cfg, correction, nonce_seed, Mode::Running)?,
        })
    }

    pub(crate) fn from_engine(engine: Engine<P>) -> Self {
        Running { engine }
    }

    /// Schedules the first round (at the next period boundary of agreed
    /// time after local time `now`).
    pub fn start(&mut self, now: i64) -> Vec<Output<P>> {
        self.engine.start(now)
    }

    /// A probe arrived: the reply carries this validator's agreed clock.
    /// Anyone may probe (a joining validator is not a member yet); the
    /// transport rate-limits.
    pub fn handle_probe(&self, now: i64, from: P, probe: &TimeProbe) -> Vec<Output<P>> {
        self.engine.handle_probe(now, from, probe)
    }

    /// A reply arrived. Bootstrap-phase readings are refused
    /// ([`crate::ExchangeError::NotSynced`]).
    pub fn handle_reply(&mut self, now: i64, from: P, reply: &TimeReply) -> Vec<Output<P>> {
        self.engine.handle_reply(now, from, reply)
    }

    /// The timer fired (calling early is harmless). A finished round yields
    /// [`Output::Adjusted`] or [`Output::RoundFailed`].
    pub fn handle_timer(&mut self, now: i64) -> Vec<Output<P>> {
        let (mut out, outcome) = self.engine.handle_timer(now);
        if let Some(Ok(result)) = outcome {
            out.insert(0, Output::Adjusted(result));
        }
        out
    }

    /// A quorum-approved resync step ([`crate::Resync`]) moves the logical
    /// clock too.
    pub fn apply_step(&mut self, step_us: i64) {
        self.engine.correction = self.engine.correction.saturating_add(step_us);
    }

    /// The active set changed (rotation at a payout-period boundary).
    pub fn set_members(&mut self, members: BTreeSet<P>) -> Result<(), ConfigError> {
        self.engine.set_members(members)
    }

    /// The logical clock's correction: agreed time = local + correction.
    pub fn correction(&self) -> i64 {
        self.engine.correction
    }

    /// Rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.engine.round
    }

    /// Whether a round is collecting replies now.
    pub fn is_collecting(&self) -> bool {
        self.engine.is_collecting()
    }

    /// The member set.
    pub fn members(&self) -> &BTreeSet<P> {
        &self.engine.members
    }
}
