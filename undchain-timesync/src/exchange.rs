//! The probe exchange shared by [`crate::TimeSync`] and [`crate::Join`]:
//! configuration, the messages and outputs they produce, and the prober
//! that matches replies to probes (docs/PROTOCOL.md "Time consensus",
//! *Samples*).
//!
//! A probe is a nonce challenge: the reply must echo the nonce and the send
//! time and come from the peer that was probed. The replier's clock reading
//! travels inside the reply, so the sample and the reading are of the same
//! instant.

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::msg::{TimePhase, TimeProbe, TimeReply};
use undchain_types::{LocalTime, Message, SplitMix64};

use crate::agree::{AgreeError, Agreement, Method, Reading};
use crate::rounds::clamp_i64;
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
    /// Bootstrap stops after a round that read every member and found all
    /// their clocks, each reading widened by its error bound, within a
    /// span of at most this many microseconds
    /// ([`crate::span_with_errors_us`]), or after
    /// [`Self::bootstrap_max_rounds`] successful rounds, whichever comes
    /// first. The error bounds are half a round trip each, so on paths
    /// with round trips above this target only the round limit ends the
    /// bootstrap.
    pub bootstrap_target_spread_us: u64,
    /// The most successful bootstrap rounds before the machine announces
    /// its clock whatever the spread: one liar (a reading out of the
    /// target, or none) can keep every validator from passing the test,
    /// and must not keep it bootstrapping forever. The rounds halve the
    /// honest spread, so 40 bring clocks that started up to 2^40 us
    /// (12 days) apart to within a microsecond of the reading error.
    pub bootstrap_max_rounds: u32,
    /// How many times a joiner probes the active set before it gives up.
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
        /// The number of probes per round that was given.
        got: u8,
    },
    /// The collection window cannot hold the probes and a round trip.
    #[error("collect_us = {collect}: must exceed the probing span plus max_delay_us ({needed})")]
    Collect {
        /// The collection window that was given, microseconds.
        collect: u64,
        /// The probing span plus the delay limit, microseconds: the window
        /// must be longer than this.
        needed: u64,
    },
    /// Rounds would overlap.
    #[error("period_us = {period}: must exceed collect_us = {collect}")]
    Period {
        /// The round period that was given, microseconds.
        period: u64,
        /// The collection window it must exceed, microseconds.
        collect: u64,
    },
    /// A zero where a positive number is needed.
    #[error("{field} = 0: must be positive")]
    Zero {
        /// The name of the field that is zero.
        field: &'static str,
    },
    /// The member set does not contain this validator, or is empty.
    #[error("the member set must be non-empty and (for a member's machine) contain this validator")]
    Members,
    /// A joiner was turned into a member's machine before it agreed on the
    /// network's time.
    #[error("no agreed time yet: join has not finished")]
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
    /// A probe: a nonce challenge carrying the prober's send time.
    Probe(TimeProbe),
    /// The answer to a probe, with the replier's timestamps and reading.
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

/// Why a reply was refused (nothing changed). Faults are data: the node may
/// lower the sender's perception score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The reply's nonce matches no outstanding probe (late, replayed or
    /// forged).
    #[error("no outstanding probe with nonce {nonce}")]
    UnknownNonce {
        /// The nonce the reply carried.
        nonce: u64,
    },
    /// The nonce was sent to another peer.
    #[error("nonce {nonce} was sent to another peer")]
    WrongPeer {
        /// The nonce the reply carried.
        nonce: u64,
    },
    /// The echoed send time differs from the one sent.
    #[error("echoed t1 = {echoed}, sent {sent}")]
    EchoMismatch {
        /// The send time the probe carried.
        sent: i64,
        /// The send time the reply echoed.
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

/// What a round (or a join attempt) agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundResult {
    /// Round counter of the machine that computed it (from 0).
    pub round: u64,
    /// The new correction: agreed clock = local clock + correction,
    /// microseconds.
    pub correction: i64,
    /// The agreement the correction came from (spread, bound, survivors).
    pub agreement: Agreement,
}

/// What a time machine asks its host to do, or tells it (docs/ARCHITECTURE.md
/// "The machine vocabulary").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<P> {
    /// Send `msg` to `to` (in a signed envelope). For a reply the host may
    /// restamp `t3` at the moment it actually sends.
    Send {
        /// The peer to send to.
        to: P,
        /// The probe or reply to send.
        msg: TimeMsg,
    },
    /// A round agreed: the logical clock's correction changed (slew the
    /// block clock towards it, [`crate::BlockClock::set_target`]).
    Adjusted(RoundResult),
    /// Bootstrap or join finished: this is the network's time. Announce it
    /// and start the block clock with this correction.
    Synced(RoundResult),
    /// Something an operator should see; nothing for the host to carry out.
    Event(SyncEvent),
}

/// What a time machine reports to an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncEvent {
    /// A round could not agree (too few answers); the next round retries.
    RoundFailed {
        /// The counter of the round that failed.
        round: u64,
        /// Why the readings could not be agreed on.
        error: AgreeError,
    },
    /// Join gave up after its attempts (too few synced replies); the
    /// machine stays idle.
    JoinFailed {
        /// How many attempts were made.
        attempts: u32,
        /// Why the last attempt could not agree.
        error: AgreeError,
    },
}

/// The reply to `probe` received at local time `t2` and sent at `t3`, with
/// the replier's `reading` (its clock minus its local clock) and `phase`.
pub fn reply_to(
    probe: &TimeProbe,
    t2: LocalTime,
    t3: LocalTime,
    reading: i64,
    phase: TimePhase,
) -> TimeReply {
    TimeReply {
        nonce: probe.nonce,
        t1: probe.t1,
        t2: t2.micros(),
        t3: t3.micros(),
        reading,
        phase,
    }
}

/// A round that is collecting replies: when it started and how many waves
/// of probes it sent. The probe waves and the end of collection are due at
/// fixed offsets from the start ([`SyncConfig::probe_spacing_us`],
/// [`SyncConfig::collect_us`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Collecting {
    started: LocalTime,
    sent: u8,
}

impl Collecting {
    /// A round that started at `now` and sent its first wave of probes.
    pub(crate) fn begun(now: LocalTime) -> Self {
        Collecting {
            started: now,
            sent: 1,
        }
    }

    fn probe_due_at(&self, cfg: &SyncConfig) -> i128 {
        i128::from(self.started.micros()) + i128::from(self.sent) * i128::from(cfg.probe_spacing_us)
    }

    fn end(&self, cfg: &SyncConfig) -> i128 {
        i128::from(self.started.micros()) + i128::from(cfg.collect_us)
    }

    /// Whether the collection window is over at `now`: the round is to be
    /// computed.
    pub(crate) fn is_over(&self, now: LocalTime, cfg: &SyncConfig) -> bool {
        i128::from(now.micros()) >= self.end(cfg)
    }

    /// Counts off the waves of probes due by `now` and returns how many to
    /// send.
    pub(crate) fn take_due(&mut self, now: LocalTime, cfg: &SyncConfig) -> u8 {
        let mut due = 0;
        while self.sent < cfg.probes_per_round && i128::from(now.micros()) >= self.probe_due_at(cfg)
        {
            self.sent += 1;
            due += 1;
        }
        due
    }

    /// When the next wave of probes or the end of collection is due.
    pub(crate) fn wake_at(&self, cfg: &SyncConfig) -> LocalTime {
        let end = self.end(cfg);
        let next = if self.sent < cfg.probes_per_round {
            self.probe_due_at(cfg)
        } else {
            end
        };
        LocalTime(clamp_i64(next.min(end)))
    }
}

/// Probes a set of peers round by round and turns replies into readings.
#[derive(Debug, Clone)]
pub(crate) struct Prober<P> {
    nonces: SplitMix64,
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
            nonces: SplitMix64::new(nonce_seed),
            outstanding: BTreeMap::new(),
            window: SampleWindow::new(cfg.collect_us, usize::from(cfg.probes_per_round)),
            readings: BTreeMap::new(),
            accept_bootstrap,
        }
    }

    /// Forgets the previous round's probes and readings.
    pub(crate) fn new_round(&mut self, now: LocalTime) {
        self.outstanding.clear();
        self.readings.clear();
        self.window.prune(now);
    }

    /// Probes every peer once.
    pub(crate) fn probe_all<'a>(
        &mut self,
        now: LocalTime,
        peers: impl Iterator<Item = &'a P>,
        out: &mut Vec<Output<P>>,
    ) where
        P: 'a,
    {
        for peer in peers {
            let mut nonce = self.nonces.next_u64();
            while self.outstanding.contains_key(&nonce) {
                nonce = self.nonces.next_u64();
            }
            self.outstanding.insert(nonce, (peer.clone(), now.micros()));
            out.push(Output::Send {
                to: peer.clone(),
                msg: TimeMsg::Probe(TimeProbe {
                    nonce,
                    t1: now.micros(),
                }),
            });
        }
    }

    /// Checks a reply received at local time `now` and records its sample
    /// and reading; a refused reply changes nothing.
    pub(crate) fn handle_reply(
        &mut self,
        now: LocalTime,
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
        let sample = Sample::from_exchange(reply.t1, reply.t2, reply.t3, now.micros(), limits)?;
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
    pub(crate) fn readings(&self, now: LocalTime, drift_ppm: u32) -> Vec<Reading<P>> {
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
        let d = SyncConfig::default;
        let table = [
            (
                SyncConfig {
                    probes_per_round: 0,
                    ..d()
                },
                ConfigError::Probes { got: 0 },
            ),
            (
                SyncConfig {
                    collect_us: 100,
                    ..d()
                },
                // three spacings of 10 ms plus the 200 ms delay limit
                ConfigError::Collect {
                    collect: 100,
                    needed: 230_000,
                },
            ),
            (
                SyncConfig {
                    period_us: 300_000,
                    ..d()
                },
                ConfigError::Period {
                    period: 300_000,
                    collect: 300_000,
                },
            ),
            (
                SyncConfig {
                    join_attempts: 0,
                    ..d()
                },
                ConfigError::Zero {
                    field: "join_attempts",
                },
            ),
        ];
        for (cfg, expected) in table {
            assert_eq!(cfg.validate(), Err(expected));
        }
    }

    #[test]
    fn replies_must_match_an_outstanding_probe() {
        let cfg = SyncConfig::default();
        let mut p = Prober::new(&cfg, 7, true);
        let mut out = Vec::new();
        p.probe_all(LocalTime(1_000), [1u32, 2].iter(), &mut out);
        let Output::Send {
            msg: TimeMsg::Probe(probe),
            ..
        } = out[0].clone()
        else {
            panic!("expected a probe, got {:?}", out[0]);
        };
        let good = reply_to(
            &probe,
            LocalTime(5_000),
            LocalTime(5_010),
            0,
            TimePhase::Synced,
        );
        let at = LocalTime(1_100);
        assert_eq!(
            p.handle_reply(at, &2, &good, &cfg.limits),
            Err(ExchangeError::WrongPeer { nonce: probe.nonce })
        );
        let mut bad = good.clone();
        bad.t1 += 1;
        assert!(matches!(
            p.handle_reply(at, &1, &bad, &cfg.limits),
            Err(ExchangeError::EchoMismatch { .. })
        ));
        p.handle_reply(at, &1, &good, &cfg.limits).unwrap();
        // a replay of the same reply finds no outstanding probe
        assert!(matches!(
            p.handle_reply(at, &1, &good, &cfg.limits),
            Err(ExchangeError::UnknownNonce { .. })
        ));
        let rs = p.readings(at, 0);
        assert_eq!(rs.len(), 1);
        // offset ((5000-1000) + (5010-1100)) / 2 = 3955
        assert_eq!(rs[0].value, 3_955);
    }

    #[test]
    fn collecting_sends_waves_at_their_offsets_and_wakes_for_the_next() {
        let cfg = SyncConfig::default();
        let mut c = Collecting::begun(LocalTime(0));
        assert_eq!(c.wake_at(&cfg), LocalTime(10_000));
        assert_eq!(c.take_due(LocalTime(9_999), &cfg), 0);
        assert_eq!(c.take_due(LocalTime(25_000), &cfg), 2);
        assert_eq!(c.wake_at(&cfg), LocalTime(30_000));
        assert_eq!(c.take_due(LocalTime(30_000), &cfg), 1);
        assert_eq!(c.wake_at(&cfg), LocalTime(300_000));
        assert!(!c.is_over(LocalTime(299_999), &cfg));
        assert!(c.is_over(LocalTime(300_000), &cfg));
    }
}
