//! A node's local clock in a simulator: offset from virtual time and
//! drifting against it, read and inverted with integer arithmetic only.

/// Parts per million.
const PPM: i128 = 1_000_000;

/// A drifting local clock that reads `base + t + drift_ppm * t / 10^6` at
/// virtual time `t` (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriftingClock {
    /// The reading at virtual time 0.
    pub base: i64,
    /// How fast the clock runs against virtual time, parts per million
    /// (positive: fast).
    pub drift_ppm: i64,
}

impl DriftingClock {
    /// The reading at virtual time `t`.
    pub fn at(&self, t: i64) -> i64 {
        let t = i128::from(t);
        let v = i128::from(self.base) + t + (i128::from(self.drift_ppm) * t).div_euclid(PPM);
        v as i64
    }

    /// The first virtual time, not before `not_before`, at which the clock
    /// reads at least `local` (when a timer set on this clock fires).
    pub fn real_at(&self, local: i64, not_before: i64) -> i64 {
        let num = (i128::from(local) - i128::from(self.base)) * PPM;
        let mut t = num.div_euclid(PPM + i128::from(self.drift_ppm)) as i64;
        while self.at(t) < local {
            t += 1;
        }
        while t > not_before && self.at(t - 1) >= local {
            t -= 1;
        }
        t.max(not_before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_at_inverts_at() {
        for drift in [-1000, -50, 0, 37, 1000] {
            let c = DriftingClock {
                base: 1_700_000_000_000_000,
                drift_ppm: drift,
            };
            for t in [0, 1, 999_999, 10_000_000_007] {
                let local = c.at(t);
                let back = c.real_at(local, 0);
                assert!(c.at(back) >= local);
                assert!(back == 0 || c.at(back - 1) < local);
                assert!(back <= t);
            }
            assert_eq!(c.real_at(c.at(5), 10), 10, "never before not_before");
        }
    }
}
