//! Fault-tolerant agreement over clock readings: the Welch-Lynch
//! fault-tolerant midpoint, with the trimmed mean, the median and the plain
//! mean for comparison (DESIGN.md "Time consensus"; docs/PROTOCOL.md "Time
//! consensus", *Agreement*).
//!
//! With `n` readings of which at most `f` are faulty (`n >= 3f + 1`), sort
//! the readings by value then peer id, drop the `f` lowest and the `f`
//! highest and take the midpoint of what is left. Every survivor lies inside
//! the honest range (at least `f + 1` values sit at or beyond it on each
//! side, one of them honest), so no `f` liars can drag the result out of
//! it. Two honest observers whose readings of each honest clock differ by at
//! most `x` agree to within `y/2 + x`, `y` being the spread of the honest
//! readings (Welch and Lynch 1988, lemma on `mid(reduce(.))`); a trimmed
//! mean has no such bound (see the two-faced test).
//!
//! All arithmetic is integer (i128 for sums); results are floored.

use undchain_types::max_faulty;

/// How readings are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// Welch-Lynch fault-tolerant midpoint: drop `f` at each end, take the
    /// midpoint of the survivors. The protocol's method.
    Ftm,
    /// Drop `f` at each end, average the survivors (no precision bound under
    /// two-faced liars; for comparison).
    TrimmedMean,
    /// The median of all readings (for comparison).
    Median,
    /// The mean of all readings (no fault tolerance; for comparison).
    Mean,
}

impl Method {
    /// Every method, the protocol's first.
    pub const ALL: [Method; 4] = [
        Method::Ftm,
        Method::TrimmedMean,
        Method::Median,
        Method::Mean,
    ];

    /// The short name used by the simulator's output.
    pub const fn name(self) -> &'static str {
        match self {
            Method::Ftm => "ftm",
            Method::TrimmedMean => "trimmed_mean",
            Method::Median => "median",
            Method::Mean => "mean",
        }
    }
}

/// One reading: the estimated difference between `peer`'s clock and the
/// local clock, with a bound on the estimate's error.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reading<P> {
    /// The peer whose clock was read.
    pub peer: P,
    /// The estimated clock difference, microseconds.
    pub value: i64,
    /// Bound on `|value - truth|`, microseconds (0 for one's own clock).
    pub error_us: u64,
}

/// The outcome of one agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Agreement {
    /// The agreed value, microseconds.
    pub value: i64,
    /// Spread (max - min) of the readings the method kept.
    pub spread_us: u64,
    /// Every kept reading's true value lies within this of [`Self::value`]:
    /// the farthest kept reading's distance plus the largest kept error
    /// bound. For the FTM this is `ceil(spread / 2)` plus that error.
    pub bound_us: u64,
    /// How many readings the method kept.
    pub kept: usize,
    /// Readings dropped at each end (`f` for FTM and trimmed mean).
    pub trimmed: usize,
}

/// Why readings cannot be agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AgreeError {
    /// Fewer than `3f + 1` readings for the `f` faults to tolerate.
    #[error("{got} readings cannot tolerate {f} faults: need at least {need} (3f + 1)")]
    TooFewReadings {
        /// How many readings were given.
        got: usize,
        /// How many faulty readings were to be tolerated.
        f: usize,
        /// The least number of readings that tolerates them, `3f + 1`.
        need: usize,
    },
    /// Of `members` clocks only `got` answered: more than `f` are missing
    /// (a quorum `members - f` must answer).
    #[error("only {got} of {members} clocks answered: need {need}")]
    TooFewReplies {
        /// How many member clocks answered.
        got: usize,
        /// How many clocks the member set has.
        members: usize,
        /// Needed answers (`members - f`, the quorum).
        need: usize,
    },
    /// More readings than members.
    #[error("{got} readings for {members} members")]
    TooManyReadings {
        /// How many readings were given.
        got: usize,
        /// How many clocks the member set has.
        members: usize,
    },
    /// Two readings name the same peer.
    #[error("two readings from one peer")]
    DuplicatePeer,
}

/// Agrees on `readings` tolerating `f` faulty ones with `method`.
///
/// Refuses fewer than `3f + 1` readings and duplicate peers. The result
/// does not depend on the order of `readings` (total order: value, then
/// peer).
pub fn agree<P: Ord>(
    readings: &[Reading<P>],
    f: usize,
    method: Method,
) -> Result<Agreement, AgreeError> {
    let need = f.saturating_mul(3).saturating_add(1);
    if readings.len() < need {
        return Err(AgreeError::TooFewReadings {
            got: readings.len(),
            f,
            need,
        });
    }
    let sorted = sorted_checked(readings)?;
    let vals: Vec<(i64, u64)> = sorted.iter().map(|r| (r.value, r.error_us)).collect();
    Ok(combine(&vals, f, method))
}

/// Agrees over a set of `members` clocks of which `readings` answered
/// (one's own included, if one is a member), tolerating
/// `f = floor((members - 1) / 3)` faults (DESIGN.md "Quorum").
///
/// A missing clock counts as one of the `f` faults: at least
/// `members - f` (the quorum) must answer. Each missing slot is filled
/// with the lower median of the answers, which lies inside the honest range
/// whenever at most `f` clocks are faulty, so a missing reading can never
/// help a liar.
pub fn agree_among<P: Ord>(
    readings: &[Reading<P>],
    members: usize,
    method: Method,
) -> Result<Agreement, AgreeError> {
    if readings.len() > members {
        return Err(AgreeError::TooManyReadings {
            got: readings.len(),
            members,
        });
    }
    let f = max_faulty(members);
    let need = members - f;
    if readings.len() < need || readings.is_empty() {
        return Err(AgreeError::TooFewReplies {
            got: readings.len(),
            members,
            need: need.max(1),
        });
    }
    let sorted = sorted_checked(readings)?;
    let mut vals: Vec<(i64, u64)> = sorted.iter().map(|r| (r.value, r.error_us)).collect();
    let stand_in = vals[(vals.len() - 1) / 2];
    let missing = members - vals.len();
    // Stand-ins sort after the real readings of equal value: the order
    // among equal values only decides whose error bound is counted.
    let at = vals.partition_point(|v| v.0 <= stand_in.0);
    vals.splice(at..at, std::iter::repeat_n(stand_in, missing));
    Ok(combine(&vals, f, method))
}

/// The span, microseconds, that holds the true value of every clock in
/// `readings`: from the lowest `value - error_us` to the highest `value +
/// error_us` (0 for no readings), saturating.
///
/// [`Agreement::spread_us`] and [`Agreement::bound_us`] describe only the
/// survivors, and the trimming may have dropped honest clocks that are far
/// off; this covers every clock that was read, liars included, so no
/// honest clock among them lies outside it whatever the liars said. A
/// member that was not read is not covered: a caller that needs every
/// member's clock checks that all of them are in `readings`
/// (docs/PROTOCOL.md "Time consensus", *Rounds*, the bootstrap's stop
/// rule).
pub fn span_with_errors_us<P>(readings: &[Reading<P>]) -> u64 {
    let lo = readings
        .iter()
        .map(|r| i128::from(r.value) - i128::from(r.error_us))
        .min();
    let hi = readings
        .iter()
        .map(|r| i128::from(r.value) + i128::from(r.error_us))
        .max();
    match (lo, hi) {
        (Some(lo), Some(hi)) => u64::try_from(hi - lo).unwrap_or(u64::MAX),
        _ => 0,
    }
}

fn sorted_checked<P: Ord>(readings: &[Reading<P>]) -> Result<Vec<&Reading<P>>, AgreeError> {
    let mut by_peer: Vec<&Reading<P>> = readings.iter().collect();
    by_peer.sort_by(|a, b| a.peer.cmp(&b.peer));
    if by_peer.windows(2).any(|w| w[0].peer == w[1].peer) {
        return Err(AgreeError::DuplicatePeer);
    }
    by_peer.sort_by(|a, b| a.value.cmp(&b.value).then_with(|| a.peer.cmp(&b.peer)));
    Ok(by_peer)
}

/// `vals` sorted by value, `len >= 3f + 1 >= 1`.
fn combine(vals: &[(i64, u64)], f: usize, method: Method) -> Agreement {
    let n = vals.len();
    let (kept, trimmed): (&[(i64, u64)], usize) = match method {
        Method::Ftm | Method::TrimmedMean => (&vals[f..n - f], f),
        Method::Median => {
            let lo = (n - 1) / 2;
            (&vals[lo..=n / 2], lo)
        }
        Method::Mean => (vals, 0),
    };
    let lo = i128::from(kept[0].0);
    let hi = i128::from(kept[kept.len() - 1].0);
    let sum = || kept.iter().map(|v| i128::from(v.0)).sum::<i128>();
    let count = i128::try_from(kept.len()).unwrap_or(i128::MAX);
    let value = match method {
        Method::Ftm | Method::Median => (lo + hi).div_euclid(2),
        Method::TrimmedMean | Method::Mean => sum().div_euclid(count),
    };
    let max_err = kept.iter().map(|v| v.1).max().unwrap_or(0);
    let reach = (value - lo).max(hi - value);
    Agreement {
        // A floored mean or midpoint of i64 values lies between them.
        value: i64::try_from(value).unwrap_or(kept[0].0),
        spread_us: u64::try_from(hi - lo).unwrap_or(u64::MAX),
        bound_us: u64::try_from(reach)
            .unwrap_or(u64::MAX)
            .saturating_add(max_err),
        kept: kept.len(),
        trimmed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(peer: u32, value: i64) -> Reading<u32> {
        Reading {
            peer,
            value,
            error_us: 0,
        }
    }

    #[test]
    fn ftm_drops_f_each_side_and_takes_midpoint() {
        let rs = [r(1, 10), r(2, 20), r(3, 30), r(4, 1_000_000)];
        let a = agree(&rs, 1, Method::Ftm).unwrap();
        assert_eq!(a.value, 25);
        assert_eq!(a.spread_us, 10);
        assert_eq!(a.bound_us, 5);
        assert_eq!((a.kept, a.trimmed), (2, 1));
        assert_eq!(agree(&rs, 1, Method::TrimmedMean).unwrap().value, 25);
        assert_eq!(agree(&rs, 1, Method::Median).unwrap().value, 25);
        assert_eq!(agree(&rs, 1, Method::Mean).unwrap().value, 250_015);
    }

    #[test]
    fn too_few_readings_and_duplicates_are_refused() {
        let rs = [r(1, 0), r(2, 0), r(3, 0)];
        assert_eq!(
            agree(&rs, 1, Method::Ftm),
            Err(AgreeError::TooFewReadings {
                got: 3,
                f: 1,
                need: 4
            })
        );
        let rs = [r(1, 0), r(1, 5), r(3, 0), r(4, 0)];
        assert_eq!(agree(&rs, 1, Method::Ftm), Err(AgreeError::DuplicatePeer));
    }

    #[test]
    fn missing_members_count_as_faults() {
        // 7 members, f = 2: 5 answers suffice, 4 do not
        let rs: Vec<_> = (0..5).map(|i| r(i, i64::from(i) * 10)).collect();
        let a = agree_among(&rs, 7, Method::Ftm).unwrap();
        // filled with the lower median 20: 0 10 20 20 20 30 40 -> keep 20..20
        assert_eq!(a.value, 20);
        assert_eq!(
            agree_among(&rs[..4], 7, Method::Ftm),
            Err(AgreeError::TooFewReplies {
                got: 4,
                members: 7,
                need: 5
            })
        );
        assert_eq!(
            agree_among(&rs, 4, Method::Ftm),
            Err(AgreeError::TooManyReadings { got: 5, members: 4 })
        );
    }

    #[test]
    fn the_span_with_errors_covers_every_reading_not_just_the_survivors() {
        let e = |peer: u32, value: i64, error_us: u64| Reading {
            peer,
            value,
            error_us,
        };
        // Survivors 11 and 12 (spread 1); the trimmed 400 ms clock and
        // every error bound still count: [10 - 3, 400_000 + 5].
        let rs = [e(1, 10, 3), e(2, 12, 0), e(3, 11, 1), e(4, 400_000, 5)];
        assert_eq!(agree(&rs, 1, Method::Ftm).unwrap().spread_us, 1);
        assert_eq!(span_with_errors_us(&rs), 400_005 - 7);
        assert_eq!(span_with_errors_us::<u32>(&[]), 0);
        let wide = [e(1, i64::MIN, u64::MAX), e(2, i64::MAX, u64::MAX)];
        assert_eq!(span_with_errors_us(&wide), u64::MAX);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let rs = [
            r(1, i64::MAX),
            r(2, i64::MAX),
            r(3, i64::MIN),
            r(4, i64::MIN),
        ];
        for m in Method::ALL {
            let a = agree(&rs, 1, m).unwrap();
            assert!(a.value == -1 || a.value == 0, "{m:?} {a:?}");
        }
    }
}
