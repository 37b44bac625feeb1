//! The time host (validator story item 2): the time machine brings the
//! agreed time online (bootstrap among the genesis validators, the
//! correction a restarted validator persisted, or, for a validator that
//! joins a running network, the time it inherits from the active set:
//! [`Join`]) and keeps it agreed; the block clock slews towards each
//! round's correction and never runs backwards.

use std::collections::{BTreeMap, BTreeSet};

use undchain_timesync::{BlockClock, Join, Output as TimeOutput, SyncConfig, TimeMsg, TimeSync};
use undchain_types::msg::{TimeProbe, TimeReply};
use undchain_types::{BlockTime, ChainParams, LocalTime, Message, PublicKey};

use super::Validator;
use crate::config::{ConfigError, NodeConfig};
use crate::output::NodeEvent;
use crate::store::StoreOp;

/// The time machine and the block clock it feeds.
#[derive(Debug)]
pub(crate) struct TimeHost {
    pub sync: TimeSync<PublicKey>,
    pub clock: Option<BlockClock>,
    /// A joining validator's join of the running network's time, while it
    /// runs.
    pub join: Option<Join<PublicKey>>,
    /// A joining validator that has not begun (or must begin again) its
    /// join: it waits for discovery to name the active set.
    pub awaiting_join: bool,
    me: PublicKey,
    /// The genesis validators: every validator keeps time with them (and
    /// with the active set of the moment).
    genesis: BTreeSet<PublicKey>,
    sync_cfg: SyncConfig,
    nonce_seed: u64,
    params: ChainParams,
    slew_ppm: u32,
    drift_ppm: u32,
    /// The latest round-trip delay measured to each peer by an accepted
    /// time reply, microseconds.
    rtt: BTreeMap<PublicKey, u64>,
}

impl TimeHost {
    /// Bootstrapping with the other genesis validators, running from a
    /// persisted correction, or (`joining`, nothing persisted) waiting to
    /// join the running network's time.
    pub fn new(
        me: PublicKey,
        genesis: BTreeSet<PublicKey>,
        cfg: &NodeConfig,
        now: LocalTime,
        stored: Option<i64>,
        nonce_seed: u64,
        joining: bool,
    ) -> Result<Self, ConfigError> {
        let sync_cfg = cfg.timing.sync.clone();
        let drift_ppm = sync_cfg.limits.drift_ppm;
        let params = cfg.genesis.params.clone();
        let slew_ppm = cfg.timing.slew_ppm;
        let mut members = genesis.clone();
        members.insert(me);
        let awaiting_join = joining && stored.is_none();
        let (sync, clock) = match stored {
            // Not started until the join hands over its correction.
            None if awaiting_join => (
                TimeSync::running(me, members, sync_cfg.clone(), 0, nonce_seed)?,
                None,
            ),
            Some(c) => {
                let clock = BlockClock::new(&params, now, c, slew_ppm, drift_ppm)
                    .map_err(|e| ConfigError::Restore(e.to_string()))?;
                (
                    TimeSync::running(me, members, sync_cfg.clone(), c, nonce_seed)?,
                    Some(clock),
                )
            }
            None => (
                TimeSync::bootstrap(me, members, sync_cfg.clone(), nonce_seed)?,
                None,
            ),
        };
        Ok(TimeHost {
            sync,
            clock,
            join: None,
            awaiting_join,
            me,
            genesis,
            sync_cfg,
            nonce_seed,
            params,
            slew_ppm,
            drift_ppm,
            rtt: BTreeMap::new(),
        })
    }

    /// The median round trip to the peers measured by time probes.
    pub fn median_rtt_us(&self) -> Option<u32> {
        let mut v: Vec<u64> = self.rtt.values().copied().collect();
        v.sort_unstable();
        v.get(v.len() / 2)
            .map(|x| (*x).min(u64::from(u32::MAX)) as u32)
    }

    /// When the time machine next wants to run.
    pub fn poll_timeout(&self) -> Option<LocalTime> {
        match &self.join {
            Some(j) => j.poll_timeout(),
            None => self.sync.poll_timeout(),
        }
    }

    /// Whether this validator's clock is still to be joined (it then
    /// answers no time probes: it has no time to give).
    pub fn joining(&self) -> bool {
        self.awaiting_join || self.join.is_some()
    }

    /// The validators whose clocks this one keeps with: the genesis
    /// validators, the active set of the moment (`active`), itself.
    /// Passive validators that registered later never count in the others'
    /// clocks until they hold a seat, so registrations cannot load or
    /// sway the time rounds.
    pub fn set_members(&mut self, active: impl IntoIterator<Item = PublicKey>) {
        if self.joining() {
            return;
        }
        let mut members = self.genesis.clone();
        members.extend(active);
        members.insert(self.me);
        // Always holds `me`, so never refused.
        let _ = self.sync.set_members(members);
    }

    /// The local time at which the block clock reads about `t` (it slews,
    /// so the caller re-checks then).
    pub fn local_at(&self, t: BlockTime) -> Option<LocalTime> {
        let c = self.clock.as_ref()?;
        let local = i128::from(t.0) - i128::from(c.correction());
        Some(LocalTime::from_micros(
            local.clamp(0, i128::from(i64::MAX)) as i64
        ))
    }
}

impl Validator {
    /// Starts the time machine (the bootstrap's first probes go out); a
    /// joining validator's starts when its join hands over.
    pub(crate) fn start_time_sync(&mut self, now: LocalTime) {
        if self.time.joining() {
            return;
        }
        let outs = self.time.sync.start(now);
        self.time_outputs(now, outs);
        if let Some(c) = self.time.clock.as_ref() {
            let correction = c.correction();
            self.event(NodeEvent::TimeSynced { correction });
        }
    }

    /// The time machine's timers.
    pub(crate) fn time_timeout(&mut self, now: LocalTime) {
        if let Some(j) = self.time.join.as_mut() {
            let outs = j.handle_timeout(now);
            self.time_outputs(now, outs);
            self.finish_join(now);
            return;
        }
        let outs = self.time.sync.handle_timeout(now);
        self.time_outputs(now, outs);
    }

    /// A joining validator begins inheriting the time of `active` (named
    /// alike by its bootstrap validators' replies); nothing if its join
    /// runs already or it has its time.
    pub(crate) fn begin_join(&mut self, now: LocalTime, active: BTreeSet<PublicKey>) {
        if !self.time.awaiting_join {
            return;
        }
        let seed = self.rng.next_u64();
        match Join::new(active, self.time.sync_cfg.clone(), seed) {
            Ok(mut j) => {
                let outs = j.start(now);
                self.time.join = Some(j);
                self.time.awaiting_join = false;
                self.time_outputs(now, outs);
            }
            Err(e) => self.event(NodeEvent::Refused {
                from: None,
                reason: format!("time join: {e}"),
            }),
        }
    }

    /// After a join's timer: once synced, the running time machine takes
    /// over with the inherited correction (the block clock came online
    /// with [`TimeOutput::Synced`]); after a failed join, the next
    /// discovery reply starts another.
    fn finish_join(&mut self, now: LocalTime) {
        let Some(j) = self.time.join.as_ref() else {
            return;
        };
        if j.has_failed() {
            self.time.join = None;
            self.time.awaiting_join = true;
            if let Some(n) = self.joining.as_mut() {
                n.named.clear();
            }
            return;
        }
        if j.synced().is_none() {
            return;
        }
        let Some(j) = self.time.join.take() else {
            return;
        };
        let mut members = self.time.genesis.clone();
        members.extend(self.set.seats().iter().map(|s| s.id));
        members.insert(self.me);
        match j.into_time_sync(self.me, members, self.time.nonce_seed ^ 0x6a6f_696e) {
            Ok(sync) => {
                self.time.sync = sync;
                let outs = self.time.sync.start(now);
                self.time_outputs(now, outs);
            }
            Err(e) => self.event(NodeEvent::Refused {
                from: None,
                reason: format!("time join: {e}"),
            }),
        }
    }

    /// A time probe or reply from `from`.
    pub(crate) fn handle_time(&mut self, now: LocalTime, from: PublicKey, msg: Message) {
        match msg {
            Message::TimeProbe(p) => {
                if self.time.joining() {
                    return;
                }
                let outs = self.time.sync.handle_probe(now, from, &p);
                self.time_outputs(now, outs);
            }
            Message::TimeReply(r) if self.time.join.is_some() => {
                let accepted = self
                    .time
                    .join
                    .as_mut()
                    .map(|j| j.handle_reply(now, from, &r));
                if let Some(Err(e)) = accepted {
                    self.event(NodeEvent::Refused {
                        from: Some(from),
                        reason: format!("time reply (join): {e}"),
                    });
                }
            }
            Message::TimeReply(r) => match self.time.sync.handle_reply(now, from, &r) {
                Ok(_) => {
                    // Delay (t4 - t1) - (t3 - t2), the exchange's round trip.
                    let rtt = now
                        .micros()
                        .saturating_sub(r.t1)
                        .saturating_sub(r.t3.saturating_sub(r.t2));
                    // Only members' replies are accepted: bounded by the set.
                    if rtt >= 0 {
                        self.time.rtt.insert(from, rtt as u64);
                    }
                }
                Err(e) => self.event(NodeEvent::Refused {
                    from: Some(from),
                    reason: format!("time reply: {e}"),
                }),
            },
            _ => {}
        }
    }

    fn time_outputs(&mut self, now: LocalTime, outs: Vec<TimeOutput<PublicKey>>) {
        for out in outs {
            match out {
                TimeOutput::Send { to, msg } => {
                    let body = match msg {
                        TimeMsg::Probe(p) => Message::TimeProbe(TimeProbe { ..p }),
                        TimeMsg::Reply(r) => Message::TimeReply(TimeReply { ..r }),
                    };
                    self.send(now, &[to], body, false);
                }
                TimeOutput::Adjusted(r) => {
                    // A round far from this clock (its host's clock jumped)
                    // steps it back onto the agreed time: slewing would keep
                    // its envelopes outside everyone's replay window.
                    let stepped = self
                        .time
                        .clock
                        .as_mut()
                        .is_some_and(|c| c.set_target(now, r.correction));
                    if stepped {
                        self.event(NodeEvent::TimeSynced {
                            correction: r.correction,
                        });
                    }
                    self.outbox.persist(StoreOp::TimeCorrection(r.correction));
                }
                TimeOutput::Synced(r) => {
                    if self.time.clock.is_none() {
                        match BlockClock::new(
                            &self.time.params,
                            now,
                            r.correction,
                            self.time.slew_ppm,
                            self.time.drift_ppm,
                        ) {
                            Ok(c) => self.time.clock = Some(c),
                            Err(e) => {
                                self.event(NodeEvent::Refused {
                                    from: None,
                                    reason: format!("block clock: {e}"),
                                });
                                continue;
                            }
                        }
                    }
                    self.outbox.persist(StoreOp::TimeCorrection(r.correction));
                    self.event(NodeEvent::TimeSynced {
                        correction: r.correction,
                    });
                    self.next_gossip_at = now;
                }
                TimeOutput::Event(e) => self.event(NodeEvent::Refused {
                    from: None,
                    reason: format!("time: {e:?}"),
                }),
            }
        }
    }
}
