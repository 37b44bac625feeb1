//! The block clock: agreed time to block number, block start and end,
//! cutoff instant and payout period (DESIGN.md "Vocabulary", "Job files";
//! docs/PROTOCOL.md "Time consensus", *Block clock*).
//!
//! The clock reads `local + correction`. Round results move a target
//! correction; the clock slews towards it at a bounded rate, so it never
//! runs backwards and never jumps. Two things step it: a quorum-approved
//! resync ([`BlockClock::step`]), and a round result further than
//! [`STEP_THRESHOLD_US`] from the correction in use (this host's own clock
//! jumped, e.g. a suspended host: the agreed time did not move, so slewing
//! back at 500 ppm would keep this validator hours off it). A backward
//! step holds the clock still until the stepped time catches up, so even
//! then it never runs backwards.

use undchain_types::{BlockNumber, BlockTime, ChainParams, LocalTime, PayoutPeriod};

use crate::sample::PPM;

/// Most slew rate a block clock accepts, ppm (10%).
pub const MAX_SLEW_PPM: u32 = 100_000;

/// A round result further than this from the correction in use steps the
/// clock instead of slewing it, microseconds (NTP's step threshold is
/// 128 ms). Far above what honest rounds move (the agreement's precision
/// bound, a few milliseconds to tens of them) and well below the replay
/// window's 2 s future bound, past which a validator's envelopes are
/// refused.
pub const STEP_THRESHOLD_US: u64 = 250_000;

/// Where a block-clock reading falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPosition {
    /// The agreed time this position describes.
    pub time: BlockTime,
    /// The block whose span holds `time`.
    pub block: BlockNumber,
    /// When that block starts (inclusive).
    pub block_start: BlockTime,
    /// When that block ends: the next block's start (exclusive).
    pub block_end: BlockTime,
    /// The cutoff instant: a request arriving at or after it goes to the
    /// next block's job file.
    pub cutoff: BlockTime,
    /// Whether `time` is at or past the cutoff.
    pub past_cutoff: bool,
    /// The payout period the block belongs to.
    pub period: PayoutPeriod,
}

/// A block clock that cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// Slew rate above [`MAX_SLEW_PPM`]: the clock would run visibly fast
    /// or slow for whoever reads block times.
    #[error("slew_ppm = {got}: at most {MAX_SLEW_PPM}")]
    Slew {
        /// The slew rate that was given, ppm.
        got: u32,
    },
    /// Slew rate not above the drift the correction has to follow, `2 rho`
    /// (this clock and the agreed one may each drift by `rho`, the other
    /// way): the block clock would fall ever further behind the logical
    /// clock, or, at exactly `2 rho`, never close a gap once opened.
    #[error(
        "slew_ppm = {slew_ppm} cannot follow clocks drifting by {drift_ppm} ppm each: must exceed {}",
        2 * u64::from(*drift_ppm)
    )]
    SlewNotAboveDrift {
        /// The slew rate that was given, ppm.
        slew_ppm: u32,
        /// The assumed drift of each clock, ppm.
        drift_ppm: u32,
    },
}

/// The node's block clock.
#[derive(Debug, Clone)]
pub struct BlockClock {
    params: ChainParams,
    slew_ppm: u32,
    effective: i64,
    target: i64,
    /// Unused slew allowance, in ppm-microseconds (kept so that frequent
    /// reads still slew).
    credit: i128,
    last_local: LocalTime,
    last_time: u64,
}

impl BlockClock {
    /// A clock reading `local + correction` from local time `now`, slewing
    /// at most `slew_ppm` (e.g. 500, as NTP) towards the logical clock's
    /// corrections. `drift_ppm` is the drift the time machines assume for
    /// every clock ([`crate::SampleLimits::drift_ppm`]): the correction
    /// moves by up to `2 drift_ppm` on its own (this clock one way, the
    /// agreed time the other), so a slew rate not above that is refused
    /// ([`ClockError::SlewNotAboveDrift`]), as is one above
    /// [`MAX_SLEW_PPM`].
    pub fn new(
        params: &ChainParams,
        now: LocalTime,
        correction: i64,
        slew_ppm: u32,
        drift_ppm: u32,
    ) -> Result<Self, ClockError> {
        if slew_ppm > MAX_SLEW_PPM {
            return Err(ClockError::Slew { got: slew_ppm });
        }
        if u64::from(slew_ppm) <= 2 * u64::from(drift_ppm) {
            return Err(ClockError::SlewNotAboveDrift {
                slew_ppm,
                drift_ppm,
            });
        }
        let mut c = BlockClock {
            params: params.clone(),
            slew_ppm,
            effective: correction,
            target: correction,
            credit: 0,
            last_local: now,
            last_time: 0,
        };
        c.last_time = c.raw(now);
        Ok(c)
    }

    fn raw(&self, local: LocalTime) -> u64 {
        let t = i128::from(local.micros()) + i128::from(self.effective);
        u64::try_from(t.max(0)).unwrap_or(u64::MAX)
    }

    /// Advances the slew to local time `now` (a local time earlier than the
    /// last one is treated as no time passing).
    fn advance(&mut self, now: LocalTime) {
        let elapsed = i128::from(now.micros()) - i128::from(self.last_local.micros());
        if elapsed <= 0 {
            return;
        }
        self.last_local = now;
        let gap = i128::from(self.target) - i128::from(self.effective);
        if gap == 0 {
            self.credit = 0;
            return;
        }
        self.credit = self
            .credit
            .saturating_add(elapsed.saturating_mul(i128::from(self.slew_ppm)));
        let movable = self.credit / PPM;
        let step = gap.clamp(-movable, movable);
        self.credit -= step.abs() * PPM;
        // |step| <= |gap| and both ends are i64
        self.effective = crate::rounds::clamp_i64(i128::from(self.effective) + step);
        if self.effective == self.target {
            self.credit = 0;
        }
    }

    /// The agreed time at local time `now`; never less than any earlier
    /// reading.
    pub fn now(&mut self, now: LocalTime) -> BlockTime {
        self.advance(now);
        let t = self.raw(now).max(self.last_time);
        self.last_time = t;
        BlockTime(t)
    }

    /// A round moved the logical clock: slew towards `correction`, or
    /// step to it when it is more than [`STEP_THRESHOLD_US`] from the
    /// correction in use (a backward step holds the clock still until the
    /// agreed time catches up). Returns whether it stepped.
    pub fn set_target(&mut self, now: LocalTime, correction: i64) -> bool {
        self.advance(now);
        self.target = correction;
        let gap = i128::from(correction) - i128::from(self.effective);
        if gap.unsigned_abs() > u128::from(STEP_THRESHOLD_US) {
            self.effective = correction;
            self.credit = 0;
            return true;
        }
        false
    }

    /// A quorum-approved resync: step by `step_us` at local time `now`.
    pub fn step(&mut self, now: LocalTime, step_us: i64) {
        self.advance(now);
        self.effective = self.effective.saturating_add(step_us);
        self.target = self.target.saturating_add(step_us);
    }

    /// The correction in use (agreed time = local + correction, before the
    /// monotonic hold).
    pub fn correction(&self) -> i64 {
        self.effective
    }

    /// The correction being slewed to.
    pub fn target(&self) -> i64 {
        self.target
    }

    /// Where local time `now` falls: block, bounds, cutoff, payout period.
    pub fn position(&mut self, now: LocalTime) -> BlockPosition {
        let time = self.now(now);
        position_of(&self.params, time)
    }

    /// The chain parameters in use.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }
}

/// Where agreed time `time` falls under `params`.
pub fn position_of(params: &ChainParams, time: BlockTime) -> BlockPosition {
    let block = params.block_at(time);
    let block_start = params.block_start(block);
    let block_end = params.block_start(block.next());
    let cutoff = block_end.minus(params.cutoff_us());
    BlockPosition {
        time,
        block,
        block_start,
        block_end,
        cutoff,
        past_cutoff: time >= cutoff,
        period: params.period_of(block),
    }
}

/// The first and one-past-last agreed times of payout period `period`.
pub fn period_bounds(params: &ChainParams, period: PayoutPeriod) -> (BlockTime, BlockTime) {
    let start = params.block_start(params.period_start(period));
    let end = params.block_start(params.period_start(PayoutPeriod(period.0.saturating_add(1))));
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::{ChainId, SigningKey};

    fn params() -> ChainParams {
        ChainParams::new(
            ChainId(1),
            SigningKey::from_seed([1; 32]).public(),
            BlockTime(1_000_000),
        )
    }

    #[test]
    fn position_names_block_cutoff_and_period() {
        let p = params();
        let pos = position_of(&p, BlockTime(1_000_000 + 2_000_000 * 3 + 1_600_000));
        assert_eq!(pos.block, BlockNumber(3));
        assert_eq!(pos.block_start, BlockTime(7_000_000));
        assert_eq!(pos.block_end, BlockTime(9_000_000));
        assert_eq!(pos.cutoff, BlockTime(8_500_000));
        assert!(pos.past_cutoff);
        assert_eq!(pos.period, PayoutPeriod(0));
        let (s, e) = period_bounds(&p, PayoutPeriod(1));
        assert_eq!(s, BlockTime(1_000_000 + 4 * 3600 * 1_000_000));
        assert_eq!(e.0 - s.0, p.payout_period_us);
    }

    #[test]
    fn small_corrections_slew_at_the_bounded_rate() {
        let t = LocalTime::from_micros;
        let mut c = BlockClock::new(&params(), t(0), 5_000_000, 500, 100).unwrap();
        assert_eq!(c.now(t(0)), BlockTime(5_000_000));
        c.set_target(t(0), 5_001_000);
        // 1 s at 500 ppm moves 500 us, read in 1 ms steps
        for ms in 1..=1_000 {
            c.now(t(ms * 1_000));
        }
        assert_eq!(c.correction(), 5_000_500);
        assert_eq!(c.now(t(3_000_000)), BlockTime(3_000_000 + 5_001_000));
        // slewing backwards still runs forwards
        c.set_target(t(3_000_000), 5_000_000);
        let a = c.now(t(3_000_001));
        let b = c.now(t(3_000_002));
        assert!(b >= a);
    }

    #[test]
    fn a_round_far_from_the_clock_steps_it_and_backwards_holds() {
        let t = LocalTime::from_micros;
        let mut c = BlockClock::new(&params(), t(0), 5_000_000, 500, 100).unwrap();
        // the host's clock jumped 3 s ahead: the round says 3 s less
        assert_eq!(c.now(t(3_000_000)), BlockTime(8_000_000));
        assert!(c.set_target(t(3_000_000), 2_000_000));
        assert_eq!(c.correction(), 2_000_000);
        for (local, block) in [
            (3_000_001, 8_000_000),
            (5_999_999, 8_000_000),
            (6_500_000, 8_500_000),
        ] {
            assert_eq!(c.now(t(local)), BlockTime(block), "at local {local}");
        }
        // just inside the threshold it slews
        assert!(!c.set_target(t(7_000_000), 2_000_000 + STEP_THRESHOLD_US as i64));
        assert_eq!(c.correction(), 2_000_000);
    }

    #[test]
    fn only_a_step_jumps_and_backward_steps_hold() {
        let t = LocalTime::from_micros;
        let mut c = BlockClock::new(&params(), t(0), 5_000_000, 500, 100).unwrap();
        c.step(t(0), 1_000_000);
        assert_eq!(c.now(t(0)), BlockTime(6_000_000));
        c.step(t(10), -500_000);
        // a table of (local time, block time): held until the stepped time
        // catches up, then running again
        for (local, block) in [(10, 6_000_000), (400_000, 6_000_000), (600_000, 6_100_000)] {
            assert_eq!(c.now(t(local)), BlockTime(block), "at local {local}");
        }
    }
}
