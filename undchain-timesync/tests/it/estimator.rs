//! Estimator soundness (docs/PROTOCOL.md "Time consensus", *Samples*):
//! for any true offset and one-way delays in `[a, b]`, the four-timestamp
//! estimate is off by at most half the delay and at most `(b - a) / 2`;
//! arbitrary timestamps never panic.

use proptest::prelude::*;
use undchain_timesync::{Sample, SampleError, SampleLimits};

const LIMITS: SampleLimits = SampleLimits {
    max_delay_us: 10_000_000,
    drift_ppm: 0,
};

proptest! {
    #[test]
    fn estimate_is_within_half_delay_and_half_delay_spread(
        theta in -1_000_000_000_000i64..1_000_000_000_000,
        t1 in -1_000_000_000_000_000i64..1_000_000_000_000_000,
        (a, b) in (0i64..2_000_000).prop_flat_map(|a| (Just(a), a..a + 2_000_000)),
        (u1, u2) in (0.0f64..=1.0, 0.0f64..=1.0),
        hold in 0i64..100_000,
    ) {
        let d1 = a + ((b - a) as f64 * u1) as i64;
        let d2 = a + ((b - a) as f64 * u2) as i64;
        let t2 = t1 + d1 + theta;
        let t3 = t2 + hold;
        let t4 = t3 - theta + d2;
        let s = Sample::from_exchange(t1, t2, t3, t4, &LIMITS).unwrap();
        prop_assert_eq!(s.delay_us, (d1 + d2) as u64);
        // |estimate - truth| <= delay / 2, exactly (the doubled offset is exact)
        let err_x2 = (i128::from(s.offset_x2) - 2 * i128::from(theta)).abs();
        prop_assert!(err_x2 <= i128::from(d1 + d2), "err*2 {} delay {}", err_x2, d1 + d2);
        // |estimate - truth| <= (b - a) / 2
        prop_assert!(err_x2 <= i128::from(b - a), "err*2 {} spread {}", err_x2, b - a);
        // the floored offset stays within the advertised error bound
        let err = (i128::from(s.offset_us()) - i128::from(theta)).unsigned_abs();
        prop_assert!(err <= u128::from(s.error_us));
    }

    #[test]
    fn any_timestamps_give_a_sample_or_a_typed_error(
        t in prop::array::uniform4(prop_oneof![
            Just(i64::MIN), Just(i64::MAX), Just(0i64), any::<i64>()
        ]),
    ) {
        match Sample::from_exchange(t[0], t[1], t[2], t[3], &LIMITS) {
            Ok(s) => {
                prop_assert!(s.delay_us <= LIMITS.max_delay_us);
                prop_assert!(t[3] >= t[0] && t[2] >= t[1]);
            }
            Err(
                SampleError::RoundTripReversed { .. }
                | SampleError::ReplierReversed { .. }
                | SampleError::NegativeDelay { .. }
                | SampleError::AbsurdDelay { .. }
                | SampleError::OffsetOutOfRange { .. },
            ) => {}
        }
    }
}
