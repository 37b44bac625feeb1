//! The time host (validator story item 2): the time machine brings the
//! agreed time online (bootstrap among the genesis validators, or the
//! correction a restarted validator persisted) and keeps it agreed; the
//! block clock slews towards each round's correction and never runs
//! backwards.

use std::collections::{BTreeMap, BTreeSet};

use undchain_timesync::{BlockClock, Output as TimeOutput, TimeMsg, TimeSync};
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
    params: ChainParams,
    slew_ppm: u32,
    drift_ppm: u32,
    /// The latest round-trip delay measured to each peer by an accepted
    /// time reply, microseconds.
    rtt: BTreeMap<PublicKey, u64>,
}

impl TimeHost {
    /// Bootstrapping with the other genesis validators, or running from a
    /// persisted correction.
    pub fn new(
        me: PublicKey,
        members: BTreeSet<PublicKey>,
        cfg: &NodeConfig,
        now: LocalTime,
        stored: Option<i64>,
        nonce_seed: u64,
    ) -> Result<Self, ConfigError> {
        let sync_cfg = cfg.timing.sync.clone();
        let drift_ppm = sync_cfg.limits.drift_ppm;
        let params = cfg.genesis.params.clone();
        let slew_ppm = cfg.timing.slew_ppm;
        let (sync, clock) = match stored {
            Some(c) => {
                let clock = BlockClock::new(&params, now, c, slew_ppm, drift_ppm)
                    .map_err(|e| ConfigError::Restore(e.to_string()))?;
                (
                    TimeSync::running(me, members, sync_cfg, c, nonce_seed)?,
                    Some(clock),
                )
            }
            None => (
                TimeSync::bootstrap(me, members, sync_cfg, nonce_seed)?,
                None,
            ),
        };
        Ok(TimeHost {
            sync,
            clock,
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
        self.sync.poll_timeout()
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
    /// Starts the time machine (the bootstrap's first probes go out).
    pub(crate) fn start_time_sync(&mut self, now: LocalTime) {
        let outs = self.time.sync.start(now);
        self.time_outputs(now, outs);
        if let Some(c) = self.time.clock.as_ref() {
            let correction = c.correction();
            self.event(NodeEvent::TimeSynced { correction });
        }
    }

    /// The time machine's timers.
    pub(crate) fn time_timeout(&mut self, now: LocalTime) {
        let outs = self.time.sync.handle_timeout(now);
        self.time_outputs(now, outs);
    }

    /// A time probe or reply from `from`.
    pub(crate) fn handle_time(&mut self, now: LocalTime, from: PublicKey, msg: Message) {
        match msg {
            Message::TimeProbe(p) => {
                let outs = self.time.sync.handle_probe(now, from, &p);
                self.time_outputs(now, outs);
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
                    if let Some(c) = self.time.clock.as_mut() {
                        c.set_target(now, r.correction);
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
