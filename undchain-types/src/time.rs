//! Local time: the one time form every pure state machine takes as `now`
//! (docs/ARCHITECTURE.md "The machine vocabulary").
//!
//! A host reads its monotonic clock and passes the reading in; a simulator
//! passes virtual time. [`LocalTime`] is never compared across machines:
//! the agreed clock that validators share is [`crate::BlockTime`], which
//! `undchain-timesync` derives from local time.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A reading of the host's monotonic clock, in microseconds from an origin
/// the host picks (process start, boot, or a simulator's zero).
///
/// Signed so that clock arithmetic (offsets, corrections, a drifting
/// simulated clock that starts before zero) needs no casts; a host's
/// readings never run backwards. Durations are plain microsecond counts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct LocalTime(pub i64);

impl LocalTime {
    /// The origin of the host's clock.
    pub const ZERO: LocalTime = LocalTime(0);

    /// The reading `us` microseconds after the origin.
    pub const fn from_micros(us: i64) -> Self {
        LocalTime(us)
    }

    /// Microseconds after the origin (negative before it).
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// `us` microseconds later, saturating at the end of the range.
    pub const fn plus(self, us: u64) -> Self {
        let us = if us > i64::MAX as u64 {
            i64::MAX
        } else {
            us as i64
        };
        LocalTime(self.0.saturating_add(us))
    }

    /// `us` microseconds earlier, saturating at the start of the range.
    pub const fn minus(self, us: u64) -> Self {
        let us = if us > i64::MAX as u64 {
            i64::MAX
        } else {
            us as i64
        };
        LocalTime(self.0.saturating_sub(us))
    }

    /// Shifted by a signed number of microseconds, saturating.
    pub const fn offset(self, us: i64) -> Self {
        LocalTime(self.0.saturating_add(us))
    }

    /// Microseconds from `earlier` to `self`; 0 if `earlier` is later.
    pub const fn since(self, earlier: LocalTime) -> u64 {
        let d = self.0.saturating_sub(earlier.0);
        if d < 0 { 0 } else { d as u64 }
    }

    /// Signed microseconds from `other` to `self`, saturating.
    pub const fn diff(self, other: LocalTime) -> i64 {
        self.0.saturating_sub(other.0)
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}us local", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_never_goes_negative_in_since() {
        let t = LocalTime::from_micros(1_000);
        assert_eq!(t.plus(500).micros(), 1_500);
        assert_eq!(t.minus(1_500).micros(), -500);
        assert_eq!(t.offset(-2_000), LocalTime(-1_000));
        assert_eq!(t.since(LocalTime(400)), 600);
        assert_eq!(LocalTime(400).since(t), 0);
        assert_eq!(LocalTime(400).diff(t), -600);
        assert_eq!(LocalTime(i64::MAX).plus(u64::MAX), LocalTime(i64::MAX));
        assert_eq!(LocalTime(i64::MIN).minus(u64::MAX), LocalTime(i64::MIN));
        assert_eq!(
            LocalTime(i64::MAX).since(LocalTime(i64::MIN)),
            i64::MAX as u64
        );
    }
}
