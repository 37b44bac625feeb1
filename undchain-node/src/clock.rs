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
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }

    /// The current reading: microseconds since the origin (saturating after
    /// some 292,000 years).
    pub fn now(&self) -> LocalTime {
        LocalTime::from_micros(i64::try_from(self.origin.elapsed().as_micros()).unwrap_or(i64::MAX))
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
