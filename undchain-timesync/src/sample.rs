//! Clock samples from the NTP-style four-timestamp exchange and the
//! per-peer lowest-delay filter (DESIGN.md "Time consensus";
//! docs/PROTOCOL.md "Time consensus", *Samples*).
//!
//! A prober sends at `t1` (its local clock), the replier receives at `t2` and
//! answers at `t3` (its local clock), the prober receives at `t4`. With true
//! offset `theta` (replier local minus prober local) and one-way delays `d1`
//! (out) and `d2` (back):
//!
//! * `2 * offset = (t2 - t1) + (t3 - t4) = 2*theta + d1 - d2`, so the
//!   estimate is off by `(d1 - d2) / 2`, at most half the round trip and at
//!   most half the spread of one-way delays;
//! * `delay = (t4 - t1) - (t3 - t2) = d1 + d2`.
//!
//! The doubled offset is kept exactly ([`Sample::offset_x2`]) so that the
//! bound holds without rounding; [`Sample::offset_us`] floors it and
//! [`Sample::error_us`] covers the half microsecond that floor can cost.

use std::collections::{BTreeMap, VecDeque};

use undchain_types::LocalTime;

/// Parts per million: the unit of drift rates.
pub const PPM: i128 = 1_000_000;

/// Most samples kept per peer by a [`SampleWindow`].
pub const MAX_SAMPLES_PER_PEER: usize = 64;

/// What a sample must satisfy to be believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleLimits {
    /// Round trips longer than this (microseconds) are refused as absurd: a
    /// reply that slow says nothing useful about the clock, and a liar could
    /// use a huge delay to widen its error bound.
    pub max_delay_us: u64,
    /// The largest drift either clock may have, in parts per million; the
    /// error bound grows by it over the exchange and with the sample's age.
    pub drift_ppm: u32,
}

impl Default for SampleLimits {
    fn default() -> Self {
        SampleLimits {
            max_delay_us: 200_000,
            drift_ppm: 100,
        }
    }
}

/// Why four timestamps do not make a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    /// The reply came back before the probe left (`t4 < t1`): the prober's
    /// own clock went backwards or the timestamps are mixed up.
    #[error("round trip runs backwards: t1 = {t1}, t4 = {t4}")]
    RoundTripReversed {
        /// When the probe left, on the prober's local clock.
        t1: i64,
        /// When the reply arrived, on the prober's local clock.
        t4: i64,
    },
    /// The replier claims to have sent before it received (`t3 < t2`).
    #[error("replier's timestamps run backwards: t2 = {t2}, t3 = {t3}")]
    ReplierReversed {
        /// When the probe arrived, on the replier's local clock.
        t2: i64,
        /// When the reply left, on the replier's local clock.
        t3: i64,
    },
    /// The replier claims to have held the probe longer than the whole
    /// round trip took: `(t4 - t1) - (t3 - t2) < 0`.
    #[error("negative delay {delay_us} us: replier's hold time exceeds the round trip")]
    NegativeDelay {
        /// The delay the four timestamps give, microseconds (negative).
        delay_us: i128,
    },
    /// The round trip is longer than [`SampleLimits::max_delay_us`].
    #[error("absurd delay {delay_us} us (limit {max_us} us)")]
    AbsurdDelay {
        /// The delay the four timestamps give, microseconds.
        delay_us: i128,
        /// The longest round trip believed, microseconds.
        max_us: u64,
    },
    /// The timestamps are so far apart that the offset does not fit the
    /// clock's range (about 146,000 years).
    #[error("offset out of range: twice the offset is {offset_x2}")]
    OffsetOutOfRange {
        /// Twice the offset the four timestamps give, microseconds.
        offset_x2: i128,
    },
}

/// One clock sample: the replier's local clock relative to the prober's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sample {
    /// Twice the estimated offset, `(t2 - t1) + (t3 - t4)`, exact.
    pub offset_x2: i64,
    /// Round-trip delay `(t4 - t1) - (t3 - t2)`, microseconds.
    pub delay_us: u64,
    /// Bound on `|offset_us - true offset|` at the time of the exchange:
    /// half the delay, plus one for flooring, plus the drift of both clocks
    /// over the exchange.
    pub error_us: u64,
    /// When the sample was taken: `t4`, the prober's local clock.
    pub at: LocalTime,
}

impl Sample {
    /// The sample of one exchange. `t1` and `t4` are the prober's local
    /// clock, `t2` and `t3` the replier's. Refuses timestamps that cannot
    /// come from an honest exchange.
    pub fn from_exchange(
        t1: i64,
        t2: i64,
        t3: i64,
        t4: i64,
        limits: &SampleLimits,
    ) -> Result<Sample, SampleError> {
        let (w1, w2, w3, w4) = (
            i128::from(t1),
            i128::from(t2),
            i128::from(t3),
            i128::from(t4),
        );
        if w4 < w1 {
            return Err(SampleError::RoundTripReversed { t1, t4 });
        }
        if w3 < w2 {
            return Err(SampleError::ReplierReversed { t2, t3 });
        }
        let round_trip = w4 - w1;
        let delay = round_trip - (w3 - w2);
        if delay < 0 {
            return Err(SampleError::NegativeDelay { delay_us: delay });
        }
        if delay > i128::from(limits.max_delay_us) {
            return Err(SampleError::AbsurdDelay {
                delay_us: delay,
                max_us: limits.max_delay_us,
            });
        }
        let offset_x2 = (w2 - w1) + (w3 - w4);
        let offset_x2 =
            i64::try_from(offset_x2).map_err(|_| SampleError::OffsetOutOfRange { offset_x2 })?;
        let drift = drift_us(round_trip, limits.drift_ppm);
        // 0 <= delay <= max_delay_us, checked above.
        let delay_us = u64::try_from(delay).unwrap_or(limits.max_delay_us);
        Ok(Sample {
            offset_x2,
            delay_us,
            error_us: (delay_us / 2).saturating_add(1).saturating_add(drift),
            at: LocalTime(t4),
        })
    }

    /// The offset estimate in whole microseconds (floor of the exact
    /// half-microsecond value).
    pub fn offset_us(&self) -> i64 {
        self.offset_x2.div_euclid(2)
    }

    /// The error bound at local time `now`: the bound at the exchange plus
    /// both clocks' drift since (an old sample grows stale).
    pub fn error_at(&self, now: LocalTime, drift_ppm: u32) -> u64 {
        let age = (i128::from(now.micros()) - i128::from(self.at.micros())).max(0);
        self.error_us.saturating_add(drift_us(age, drift_ppm))
    }
}

/// Worst-case divergence of two clocks drifting at `drift_ppm` in opposite
/// directions over `span_us`: `ceil(2 * rho * span)`, saturating.
pub(crate) fn drift_us(span_us: i128, drift_ppm: u32) -> u64 {
    let prod = span_us.max(0).saturating_mul(2 * i128::from(drift_ppm));
    let ceil = (prod + (PPM - 1)) / PPM;
    u64::try_from(ceil).unwrap_or(u64::MAX)
}

/// Keeps each peer's recent samples and answers with the lowest-delay one
/// inside a sliding window (NTP's clock filter, simplified): the sample with
/// the smallest round trip has the tightest error bound.
#[derive(Debug, Clone)]
pub struct SampleWindow<P> {
    window_us: u64,
    per_peer: usize,
    samples: BTreeMap<P, VecDeque<Sample>>,
}

impl<P: Ord + Clone> SampleWindow<P> {
    /// A window of `window_us` microseconds keeping at most `per_peer`
    /// samples per peer (clamped into `1..=MAX_SAMPLES_PER_PEER`). The caller
    /// bounds the number of peers (only members are inserted).
    pub fn new(window_us: u64, per_peer: usize) -> Self {
        SampleWindow {
            window_us,
            per_peer: per_peer.clamp(1, MAX_SAMPLES_PER_PEER),
            samples: BTreeMap::new(),
        }
    }

    /// Records a sample of `peer`; past the per-peer cap the peer's oldest
    /// sample is dropped.
    pub fn insert(&mut self, peer: P, sample: Sample) {
        let q = self.samples.entry(peer).or_default();
        if q.len() >= self.per_peer {
            q.pop_front();
        }
        q.push_back(sample);
    }

    /// The lowest-delay sample of `peer` taken within the window before
    /// `now` (ties: the newest).
    pub fn best(&self, peer: &P, now: LocalTime) -> Option<Sample> {
        let oldest = i128::from(now.micros()) - i128::from(self.window_us);
        self.samples
            .get(peer)?
            .iter()
            .filter(|s| i128::from(s.at.micros()) >= oldest && s.at <= now)
            .min_by(|a, b| a.delay_us.cmp(&b.delay_us).then(b.at.cmp(&a.at)))
            .copied()
    }

    /// Drops every sample older than the window at local time `now`.
    pub fn prune(&mut self, now: LocalTime) {
        let oldest = i128::from(now.micros()) - i128::from(self.window_us);
        for q in self.samples.values_mut() {
            q.retain(|s| i128::from(s.at.micros()) >= oldest);
        }
        self.samples.retain(|_, q| !q.is_empty());
    }

    /// Forgets `peer` (it left the active set).
    pub fn remove(&mut self, peer: &P) {
        self.samples.remove(peer);
    }

    /// Peers with at least one stored sample.
    pub fn peers(&self) -> impl Iterator<Item = &P> {
        self.samples.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_exchange_recovers_offset() {
        // replier 500 ahead, 100 us each way, 20 us hold
        let s =
            Sample::from_exchange(1_000, 1_600, 1_620, 1_220, &SampleLimits::default()).unwrap();
        assert_eq!(s.offset_us(), 500);
        assert_eq!(s.delay_us, 200);
        assert_eq!(s.at, LocalTime(1_220));
        assert!(s.error_us >= 100);
    }

    #[test]
    fn impossible_timestamps_are_refused_by_kind() {
        let l = SampleLimits::default();
        assert!(matches!(
            Sample::from_exchange(10, 0, 0, 9, &l),
            Err(SampleError::RoundTripReversed { .. })
        ));
        assert!(matches!(
            Sample::from_exchange(0, 10, 9, 20, &l),
            Err(SampleError::ReplierReversed { .. })
        ));
        assert!(matches!(
            Sample::from_exchange(0, 0, 50, 20, &l),
            Err(SampleError::NegativeDelay { delay_us: -30 })
        ));
        assert!(matches!(
            Sample::from_exchange(0, 0, 0, 200_001, &l),
            Err(SampleError::AbsurdDelay { .. })
        ));
        assert!(matches!(
            Sample::from_exchange(i64::MIN, i64::MAX, i64::MAX, i64::MIN, &l),
            Err(SampleError::OffsetOutOfRange { .. })
        ));
    }

    #[test]
    fn window_keeps_lowest_delay_and_forgets_old_samples() {
        let mut w = SampleWindow::new(1_000, 4);
        let s = |delay: u64, at: i64| Sample {
            offset_x2: 0,
            delay_us: delay,
            error_us: delay / 2 + 1,
            at: LocalTime(at),
        };
        w.insert(1u8, s(300, 100));
        w.insert(1u8, s(100, 200));
        w.insert(1u8, s(200, 900));
        assert_eq!(w.best(&1, LocalTime(1_000)).unwrap().delay_us, 100);
        // at 1_250 the 100-us sample (taken at 200) is out of the window
        assert_eq!(w.best(&1, LocalTime(1_250)).unwrap().delay_us, 200);
        w.prune(LocalTime(2_000));
        assert_eq!(w.best(&1, LocalTime(2_000)), None);
        assert_eq!(w.peers().count(), 0);
    }

    #[test]
    fn error_grows_with_age() {
        let s = Sample::from_exchange(0, 0, 0, 100, &SampleLimits::default()).unwrap();
        assert_eq!(s.error_at(LocalTime(100), 100), s.error_us);
        // 1 s later at 100 ppm: two clocks diverge by up to 200 us
        assert_eq!(s.error_at(LocalTime(1_000_100), 100), s.error_us + 200);
    }
}
