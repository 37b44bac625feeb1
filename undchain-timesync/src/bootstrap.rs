//! Bootstrap: bringing a network's time online (design notes, validator
//! story item 2; docs/PROTOCOL.md "Time consensus", *Bootstrap*).
//!
//! Every active validator probes every other one, reads their clocks from
//! the replies (the reading travels inside the reply), and sets its clock to
//! the fault-tolerant midpoint of all of them, its own included. One round
//! at least halves the honest spread (plus the reading error), so rounds run
//! back to back until the kept readings' spread is small, then the machine
//! announces the result ([`Output::Synced`]) and hands over to
//! [`Running`] with [`Bootstrap::into_running`].

use std::collections::BTreeSet;

use undchain_types::msg::{TimeProbe, TimeReply};

use crate::exchange::{ConfigError, Output, RoundResult, SyncConfig};
use crate::rounds::{Engine, Mode};
use crate::running::Running;

/// The bootstrap machine of one validator.
#[derive(Debug, Clone)]
pub struct Bootstrap<P> {
    engine: Engine<P>,
    successes: u32,
    synced: Option<RoundResult>,
}

impl<P: Ord + Clone> Bootstrap<P> {
    /// Bootstrap for `me` among the active validators `members` (`me`
    /// included). The clock starts at the local clock (correction 0).
    /// `nonce_seed` is fresh randomness for probe nonces.
    pub fn new(
        me: P,
        members: BTreeSet<P>,
        cfg: SyncConfig,
        nonce_seed: u64,
    ) -> Result<Self, ConfigError> {
        Ok(Bootstrap {
            engine: Engine::new(me, members, cfg, 0, nonce_seed, Mode::Bootstrap)?,
            successes: 0,
            synced: None,
        })
    }

    /// Starts the first round at local time `now`.
    pub fn start(&mut self, now: i64) -> Vec<Output<P>> {
        self.drive(now, true)
    }

    /// A probe arrived at local time `now`: the reply carries this
    /// validator's current (tentative) clock.
    pub fn handle_probe(&self, now: i64, from: P, probe: &TimeProbe) -> Vec<Output<P>> {
        self.engine.handle_probe(now, from, probe)
    }

    /// A reply arrived at local time `now`.
    pub fn handle_reply(&mut self, now: i64, from: P, reply: &TimeReply) -> Vec<Output<P>> {
        self.engine.handle_reply(now, from, reply)
    }

    /// The timer set by the last [`Output::SetTimer`] fired (calling early
    /// is harmless).
    pub fn handle_timer(&mut self, now: i64) -> Vec<Output<P>> {
        self.drive(now, false)
    }

    fn drive(&mut self, now: i64, start: bool) -> Vec<Output<P>> {
        let (mut out, outcome) = if start {
            (self.engine.start(now), None)
        } else {
            self.engine.handle_timer(now)
        };
        if let Some(Ok(result)) = outcome {
            self.successes += 1;
            let cfg = &self.engine.cfg;
            if result.agreement.spread_us <= cfg.bootstrap_target_spread_us
                || self.successes >= cfg.bootstrap_max_rounds
            {
                self.engine.halt();
                out.retain(|o| !matches!(o, Output::SetTimer { .. } | Output::Send { .. }));
                self.synced = Some(result);
                out.push(Output::Synced(result));
            } else {
                out.insert(0, Output::Adjusted(result));
            }
        }
        out
    }

    /// The announced result, once bootstrap finished.
    pub fn synced(&self) -> Option<RoundResult> {
        self.synced
    }

    /// The current (tentative) correction: clock = local + correction.
    pub fn correction(&self) -> i64 {
        self.engine.correction
    }

    /// Whether a round is collecting replies now.
    pub fn is_collecting(&self) -> bool {
        self.engine.is_collecting()
    }

    /// Rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.engine.round
    }

    /// After [`Output::Synced`]: the running machine that keeps the clock
    /// agreed, its first round at the next period boundary after `now`, and
    /// the outputs of that scheduling. Before that,
    /// [`ConfigError::NotSynced`] (check [`Self::synced`] first).
    pub fn into_running(self, now: i64) -> Result<Handover<P>, ConfigError> {
        if self.synced.is_none() {
            return Err(ConfigError::NotSynced);
        }
        let mut engine = self.engine;
        let out = engine.resume_running(now);
        Ok((Running::from_engine(engine), out))
    }
}

/// A running machine and the outputs of starting it.
pub type Handover<P> = (Running<P>, Vec<Output<P>>);
