//! The probe exchange shared by the bootstrap, running and join machines:
//! configuration, the messages and outputs they produce, and the prober
//! that matches replies to probes (docs/PROTOCOL.md "Time consensus",
//! *Exchange*).
//!
//! A probe is a nonce challenge: the reply must echo the nonce and the send
//! time and come from the peer that was probed. The replier's clock reading
//! travels inside the reply, so the sample and the reading are of the same
//! instant.

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::Message;
use undchain_types::msg::{TimePhase, TimeProbe, TimeReply};

use crate::agree::{AgreeError, Agreement, Method, Reading};
use crate::sample::{Sample, SampleError, SampleLimits, SampleWindow};

/// Most probes a round may send to each peer.
pub const MAX_PROBES_PER_ROUND: u8 = 16;

/// How the time machines probe and agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// How readings are combined ([`Method::Ftm`] in the protocol; the others
    /// exist for the comparison simulator).
    pub method: Method,
    /// Probes sent to each peer per round (1..=16); the lowest-delay sample
    /// is used.
    pub probes_per_round: u8,
    /// Local time between two probes of one round, microseconds.
    pub probe_spacing_us: u64,
    /// From a round's start to its computation, microseconds: every honest
    /// probe of the round must have been answered by then, so it must exceed
    /// the clocks' skew plus the probing span plus a round trip. Keep it
    /// short: a reading drifts until the round applies it.
    pub collect_us: u64,
    /// Running rounds start at every multiple of this much agreed time,
    /// microseconds.
    pub period_us: u64,
    /// What a sample must satisfy (delay limit, assumed drift).
    pub limits: SampleLimits,
    /// Bootstrap stops once the kept readings' spread is at most this,
    /// microseconds ...
    pub bootstrap_target_spread_us: u64,
    /// ... or after this many rounds.
    pub bootstrap_max_rounds: u32,
    /// Join attempts before giving up.
    pub join_attempts: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            method: Method::Ftm,
            probes_per_round: 4,
            probe_spacing_us: 10_000,
            collect_us: 300_000,
            period_us: 10_000_000,
            limits: SampleLimits::default(),
            bootstrap_target_spread_us: 10_000,
            bootstrap_max_rounds: 40,
            join_attempts: 5,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `probes_per_round` outside 1..=16.
    #[error("probes_per_round = {got}: must be 1..={MAX_PROBES_PER_ROUND}")]
    Probes {
        /// The value given.
        got: u8,
    },
    /// The collection window cannot hold the probes and a round trip.
    #[error("collect_us = {collect}: must exceed the probing span plus max_delay_us ({needed})")]
    Collect {
        /// The value given.
        collect: u64,
        /// Probing span plus the delay limit.
        needed: u64,
    },
    /// Rounds would overlap.
    #[error("period_us = {period}: must exceed collect_us = {collect}")]
    Period {
        /// The value given.
        period: u64,
        /// The collection window.
        collect: u64,
    },
    /// A zero where a positive number is needed.
    #[error("{field} = 0: must be positive")]
    Zero {
        /// The field.
        field: &'static str,
    },
    /// The member set does not contain this validator, or is empty.
    #[error(
        "the member set must be non-empty and (for bootstrap and running) contain this validator"
    )]
    Members,
    /// A running machine was asked for before bootstrap or join agreed.
    #[error("no agreed time yet: bootstrap or join has not finished")]
    NotSynced,
}

impl SyncConfig {
    /// Refuses settings that cannot work; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.probes_per_round == 0 || self.probes_per_round > MAX_PROBES_PER_ROUND {
            return Err(ConfigError::Probes {
                got: self.probes_per_round,
            });
        }
        for (field, v) in [
            ("period_us", self.period_us),
            ("limits.max_delay_us", self.limits.max_delay_us),
            ("bootstrap_max_rounds", u64::from(self.bootstrap_max_rounds)),
            ("join_attempts", u64::from(self.join_attempts)),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        let needed = self
            .probe_spacing_us
            .saturating_mul(u64::from(self.probes_per_round - 1))
            .saturating_add(self.limits.max_delay_us);
        if self.collect_us <= needed {
            return Err(ConfigError::Collect {
                collect: self.collect_us,
                needed,
            });
        }
        if self.period_us <= self.collect_us {
            return Err(ConfigError::Period {
                period: self.period_us,
                collect: self.collect_us,
            });
        }
        Ok(())
    }
}

/// A time message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeMsg {
    /// A probe.
    Probe(TimeProbe),
    /// A reply to a probe.
    Reply(TimeReply),
}

impl From<TimeMsg> for Message {
    fn from(m: TimeMsg) -> Message {
        match m {
            TimeMsg::Probe(p) => Message::TimeProbe(p),
            TimeMsg::Reply(r) => Message::TimeReply(r),
        }
    }
}

/// Why a reply was not used. Faults are data: the node may lower the
/// sender's perception score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The reply's nonce matches no outstanding probe (late, replayed or
    /// forged).
    #[error("no outstanding probe with nonce {nonce}")]
    UnknownNonce {
        /// The nonce.
        nonce: u64,
    },
    /// The nonce was sent to another peer.
    #[error("nonce {nonce} was sent to another peer")]
    WrongPeer {
        /// The nonce.
        nonce: u64,
    },
    /// The echoed send time differs from the one sent.
    #[error("echoed t1 = {echoed}, sent {sent}")]
    EchoMismatch {
        /// What was sent.
        sent: i64,
        /// What came back.
        echoed: i64,
    },
    /// The timestamps make no sample.
    #[error("bad timestamps: {0}")]
    Sample(#[from] SampleError),
    /// The sender is not one of the clocks this machine listens to.
    #[error("sender is not a member")]
    NotMember,
    /// The reading is a bootstrap round's tentative clock, and this machine
    /// only takes the running network's agreed time.
    #[error("reading is not synced")]
    NotSynced,
    /// The reading is so far off that applying it would overflow.
    #[error("reading out of range")]
    ReadingOutOfRange,
}

/// A round's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundResult {
    /// Round counter of the machine that computed it (from 0).
    pub round: u64,
    /// The new correction: agreed clock = local clock + correction,
    /// microseconds.
    pub correction: i64,
    /// The agreement it came from.
    pub agreement: Agreement,
}

/// What a time machine asks its driver to do, or tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<P> {
    /// Send `msg` to `to` (in a signed envelope). For a reply the driver may
    /// restamp `t3` at the moment it actually sends.
    Send {
        /// The peer.
        to: P,
        /// The message.
        msg: TimeMsg,
    },
    /// Call `handle_timer` once the local clock reads `at_local_us` (a
    /// later `SetTimer` replaces an earlier one).
    SetTimer {
        /// Local clock time, microseconds.
        at_local_us: i64,
    },
    /// A reply was refused.
    Refused {
        /// The sender.
        from: P,
        /// Why.
        error: ExchangeError,
    },
    /// A round could not agree (too few answers); the next round retries.
    RoundFailed {
        /// The round.
        round: u64,
        /// Why.
        error: AgreeError,
    },
    /// A round agreed: the logical clock's correction changed (slew the
    /// block clock towards it, [`crate::BlockClock::set_target`]).
    Adjusted(RoundResult),
    /// Bootstrap or join finished: this is the network's time. Announce it
    /// and start the block clock with this correction.
    Synced(RoundResult),
    /// Join gave up after its attempts (too few synced replies).
    JoinFailed {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        error: AgreeError,
    },
}

/// `splitmix64`: nonces from a caller-given seed (randomness is an input).
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The reply to `probe` received at local time `t2` and sent at `t3`, with
/// the replier's `reading` (its clock minus its local clock) and `phase`.
pub fn reply_to(probe: &TimeProbe, t2: i64, t3: i64, reading: i64, phase: TimePhase) -> TimeReply {
    TimeReply {
        nonce: probe.nonce,
        t1: probe.t1,
        t2,
        t3,
        reading,
        phase,
    }
}

/// Probes a set of peers round by round and turns replies into readings.
#[derive(Debug, Clone)]
pub(crate) struct Prober<P> {
    nonce_state: u64,
    /// nonce -> (peer, t1); bounded by peers x probes per round, cleared
    /// each round.
    outstanding: BTreeMap<u64, (P, i64)>,
    window: SampleWindow<P>,
    /// Latest reading per peer this round.
    readings: BTreeMap<P, i64>,
    /// Whether bootstrap-phase readings count (bootstrap only).
    pub(crate) accept_bootstrap: bool,
}

impl<P: Ord + Clone> Prober<P> {
    pub(crate) fn new(cfg: &SyncConfig, nonce_seed: u64, accept_bootstrap: bool) -> Self {
        Prober {
            nonce_state: nonce_seed,
            outstanding: BTreeMap::new(),
            window: SampleWindow::new(cfg.collect_us, usize::from(cfg.probes_per_round)),
            readings: BTreeMap::new(),
            accept_bootstrap,
        }
    }

    /// Forgets the previous round's probes and readings.
    pub(crate) fn new_round(&mut self, now: i64) {
        self.outstanding.clear();
        self.readings.clear();
        self.window.prune(now);
    }

    /// Probes every peer once.
    pub(crate) fn probe_all<'a>(
        &mut self,
        now: i64,
        peers: impl Iterator<Item = &'a P>,
        out: &mut Vec<Output<P>>,
    ) where
        P: 'a,
    {
        for peer in peers {
            let mut nonce = splitmix64(&mut self.nonce_state);
            while self.outstanding.contains_key(&nonce) {
                nonce = splitmix64(&mut self.nonce_state);
            }
            self.outstanding.insert(nonce, (peer.clone(), now));
            out.push(Output::Send {
                to: peer.clone(),
                msg: TimeMsg::Probe(TimeProbe { nonce, t1: now }),
            });
        }
    }

    /// Checks a reply received at local time `now` and records its sample
    /// and reading.
    pub(crate) fn handle_reply(
        &mut self,
        now: i64,
        from: &P,
        reply: &TimeReply,
        limits: &SampleLimits,
    ) -> Result<(), ExchangeError> {
        let (peer, t1) = self
            .outstanding
            .get(&reply.nonce)
            .ok_or(ExchangeError::UnknownNonce { nonce: reply.nonce })?;
        if peer != from {
            return Err(ExchangeError::WrongPeer { nonce: reply.nonce });
        }
        if *t1 != reply.t1 {
            return Err(ExchangeError::EchoMismatch {
                sent: *t1,
                echoed: reply.t1,
            });
        }
        if reply.phase == TimePhase::Bootstrap && !self.accept_bootstrap {
            return Err(ExchangeError::NotSynced);
        }
        let sample = Sample::from_exchange(reply.t1, reply.t2, reply.t3, now, limits)?;
        // offset + reading must fit: keep both within a quarter of i64.
        let lim = i64::MAX / 4;
        if reply.reading.unsigned_abs() > lim.unsigned_abs()
            || sample.offset_us().unsigned_abs() > lim.unsigned_abs()
        {
            return Err(ExchangeError::ReadingOutOfRange);
        }
        self.outstanding.remove(&reply.nonce);
        self.window.insert(from.clone(), sample);
        self.readings.insert(from.clone(), reply.reading);
        Ok(())
    }

    /// This round's readings: per peer, the lowest-delay sample's offset
    /// plus the peer's latest reading.
    pub(crate) fn readings(&self, now: i64, drift_ppm: u32) -> Vec<Reading<P>> {
        self.readings
            .iter()
            .filter_map(|(peer, reading)| {
                let s = self.window.best(peer, now)?;
                Some(Reading {
                    peer: peer.clone(),
                    value: s.offset_us() + reading,
                    error_us: s.error_at(now, drift_ppm),
                })
            })
            .collect()
    }

    /// Forgets peers that left the member set.
    pub(crate) fn retain_members(&mut self, members: &BTreeSet<P>) {
        self.outstanding.retain(|_, (p, _)| members.contains(p));
        self.readings.retain(|p, _| members.contains(p));
        let gone: Vec<P> = self
            .window
            .peers()
            .filter(|p| !members.contains(p))
            .cloned()
            .collect();
        for p in gone {
            self.window.remove(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_bad_ones_name_the_field() {
        SyncConfig::default().validate().unwrap();
        let c = SyncConfig {
            probes_per_round: 0,
            ..SyncConfig::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::Probes { got: 0 }));
        let c = SyncConfig {
            collect_us: 100,
            ..SyncConfig::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::Collect { .. })));
        let c = SyncConfig {
            period_us: 300_000,
            ..SyncConfig::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::Period { .. })));
    }

    #[test]
    fn replies_must_match_an_outstanding_probe() {
        let cfg = SyncConfig::default();
        let mut p = Prober::new(&cfg, 7, true);
        let mut out = Vec::new();
        p.probe_all(1_000, [1u32, 2].iter(), &mut out);
        let Output::Send {
            msg: TimeMsg::Probe(probe),
            ..
        } = out[0].clone()
        else {
            panic!("expected a probe, got {:?}", out[0]);
        };
        let good = reply_to(&probe, 5_000, 5_010, 0, TimePhase::Synced);
        assert_eq!(
            p.handle_reply(1_100, &2, &good, &cfg.limits),
            Err(ExchangeError::WrongPeer { nonce: probe.nonce })
        );
        let mut bad = good.clone();
        bad.t1 += 1;
        assert!(matches!(
            p.handle_reply(1_100, &1, &bad, &cfg.limits),
            Err(ExchangeError::EchoMismatch { .. })
        ));
        p.handle_reply(1_100, &1, &good, &cfg.limits).unwrap();
        // a replay of the same reply finds no outstanding probe
        assert!(matches!(
            p.handle_reply(1_100, &1, &good, &cfg.limits),
            Err(ExchangeError::UnknownNonce { .. })
        ));
        let rs = p.readings(1_100, 0);
        assert_eq!(rs.len(), 1);
        // offset ((5000-1000) + (5010-1100)) / 2 = 3955
        assert_eq!(rs[0].value, 3_955);
    }
}
