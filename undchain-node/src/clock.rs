//! The node's one clock: the host's monotonic clock, read as the
//! [`LocalTime`] every pure state machine takes as `now`
//! (docs/ARCHITECTURE.md "The machine vocabulary").
//!
//! The origin is the moment the clock was made (process start, in
//! practice); readings never run backwards, whatever the wall clock does.
//! The shell reads it once per event it feeds to a machine, so one event is
//! judged at one instant.

use std::time::Instant;

use undchain_types::LocalTime;

/// A monotonic clock reporting [`LocalTime`] microseconds since it was made.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
    /// The reading at the origin, microseconds.
    base: i64,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        MonotonicClock {
            origin: Instant::now(),
            base: 0,
        }
    }

    /// A clock whose origin reads the wall clock's Unix time at this
    /// moment (microseconds), then runs on the monotonic clock: the clock a
    /// node core runs on, because the agreed block time is made from the
    /// validators' local clocks and genesis times are Unix times. The wall
    /// clock is read once; later steps of it do not move this clock.
    pub fn from_unix_time() -> Self {
        let base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        MonotonicClock {
            origin: Instant::now(),
            base,
        }
    }

    /// The current reading: microseconds since the origin plus the origin's
    /// reading (saturating after some 292,000 years).
    pub fn now(&self) -> LocalTime {
        let elapsed = i64::try_from(self.origin.elapsed().as_micros()).unwrap_or(i64::MAX);
        LocalTime::from_micros(self.base.saturating_add(elapsed))
    }
}

impl MonotonicClock {
    /// The tokio instant at which this clock reads `t` (now, if `t` is
    /// past): how the runtime sleeps until a core's `poll_timeout`.
    pub fn instant_at(&self, t: LocalTime) -> tokio::time::Instant {
        let ahead = t.micros().saturating_sub(self.now().micros()).max(0) as u64;
        tokio::time::Instant::now() + std::time::Duration::from_micros(ahead)
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_start_at_the_origin_and_never_run_backwards() {
        let clock = MonotonicClock::new();
        let mut last = clock.now();
        assert!(last >= LocalTime::ZERO);
        for _ in 0..1000 {
            let t = clock.now();
            assert!(t >= last, "{t} after {last}");
            last = t;
        }
    }
}
