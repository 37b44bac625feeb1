//! The block clock never runs backwards (docs/PROTOCOL.md "Time
//! consensus", *Block clock*), whatever corrections, steps and local-clock
//! glitches it is fed, and it maps time to blocks by DESIGN.md's rule. A
//! slew rate that could not follow the drifting correction is refused.

use proptest::prelude::*;
use undchain_timesync::{BlockClock, ClockError, STEP_THRESHOLD_US, position_of};
use undchain_types::LocalTime;

use crate::support::params;

#[derive(Debug, Clone)]
enum Op {
    Read,
    Target(i64),
    Step(i64),
}

fn op() -> impl Strategy<Value = (i64, Op)> {
    (
        prop_oneof![4 => 0i64..5_000_000, 1 => -1_000_000i64..0],
        prop_oneof![
            3 => Just(Op::Read),
            2 => (-10_000i64..10_000).prop_map(Op::Target),
            1 => (-1_000_000i64..=1_000_000).prop_map(Op::Step),
        ],
    )
}

#[test]
fn a_slew_rate_not_above_the_drift_bound_is_refused() {
    // (slew ppm, drift ppm per clock, the refusal): the correction follows
    // up to 2 rho of relative drift, so the slew must exceed 2 rho.
    let refused = |slew_ppm, drift_ppm| {
        Some(ClockError::SlewNotAboveDrift {
            slew_ppm,
            drift_ppm,
        })
    };
    let table = [
        (0, 0, refused(0, 0)),
        (1, 0, None),
        (100, 100, refused(100, 100)),
        (200, 100, refused(200, 100)),
        (201, 100, None),
        (500, 100, None),
        (100_000, 50_000, refused(100_000, 50_000)),
        (100_001, 0, Some(ClockError::Slew { got: 100_001 })),
    ];
    for (slew, drift, want) in table {
        let got = BlockClock::new(&params(), LocalTime(0), 0, slew, drift).err();
        assert_eq!(got, want, "slew {slew} ppm, drift {drift} ppm");
    }
    let msg = refused(200, 100).unwrap().to_string();
    assert!(msg.contains("must exceed 200"), "{msg}");
}

#[test]
fn the_slowest_accepted_slew_still_catches_up_with_a_drifting_correction() {
    // rho = 100 ppm: the logical clock's correction runs away at the full
    // relative drift, 200 us a second, from a 1 ms head start. At 201 ppm
    // the block clock closes the gap by 1 us a second; at 200 (refused)
    // it never would.
    let t = |s: i64| LocalTime(s * 1_000_000);
    let mut c = BlockClock::new(&params(), t(0), 0, 201, 100).unwrap();
    let mut target = 1_000;
    c.set_target(t(0), target);
    let mut last_gap = i64::MAX;
    for s in 1..=1_200 {
        target += 200;
        c.set_target(t(s), target);
        c.now(t(s));
        let gap = target - c.correction();
        assert!(gap <= last_gap, "gap grew to {gap} at {s} s");
        last_gap = gap;
    }
    // down to the last second's 200 us (plus the 1 us the rate leaves)
    assert!(last_gap <= 201, "gap {last_gap}");
}

proptest! {
    #[test]
    fn block_clock_never_runs_backwards(
        start in 0i64..1_000_000_000,
        correction in 0i64..10_000_000_000,
        slew in 1u32..=100_000,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let p = params();
        let mut c = BlockClock::new(&p, LocalTime(start), correction, slew, 0).unwrap();
        let mut local = start;
        let mut last = c.now(LocalTime(local));
        let mut base = correction;
        for (dt, op) in ops {
            local += dt; // the local clock may even glitch backwards
            match op {
                Op::Read => {}
                Op::Target(d) => {
                    c.set_target(LocalTime(local), base + d);
                }
                Op::Step(s) => {
                    c.step(LocalTime(local), s);
                    base += s;
                }
            }
            let t = c.now(LocalTime(local));
            prop_assert!(t >= last, "{:?} < {:?}", t, last);
            last = t;
            let pos = c.position(LocalTime(local));
            prop_assert!(pos.block_start <= pos.time || pos.time < p.genesis_time);
            prop_assert!(pos.time < pos.block_end);
            prop_assert_eq!(pos, position_of(&p, pos.time));
        }
    }

    #[test]
    fn slewing_never_moves_faster_than_the_rate(
        gap in -(STEP_THRESHOLD_US as i64)..=STEP_THRESHOLD_US as i64,
        slew in 1u32..=1_000,
        reads in prop::collection::vec(1i64..100_000, 1..100),
    ) {
        let mut c = BlockClock::new(&params(), LocalTime(0), 0, slew, 0).unwrap();
        prop_assert!(!c.set_target(LocalTime(0), gap), "inside the threshold: no step");
        let mut local = 0;
        for dt in reads {
            local += dt;
            c.now(LocalTime(local));
            let allowed = i128::from(local) * i128::from(slew) / 1_000_000;
            prop_assert!(i128::from(c.correction().abs()) <= allowed);
            prop_assert!(c.correction().abs() <= gap.abs());
        }
    }
}

proptest! {
    #[test]
    fn a_round_beyond_the_step_threshold_steps_and_never_runs_backwards(
        gap in prop_oneof![
            -100_000_000i64..-(STEP_THRESHOLD_US as i64) - 1,
            STEP_THRESHOLD_US as i64 + 1..100_000_000
        ],
        reads in prop::collection::vec(1i64..1_000_000, 1..50),
    ) {
        let mut c = BlockClock::new(&params(), LocalTime(0), 0, 500, 0).unwrap();
        let before = c.now(LocalTime(0));
        prop_assert!(c.set_target(LocalTime(0), gap));
        prop_assert_eq!(c.correction(), gap);
        let mut local = 0;
        let mut last = before;
        for dt in reads {
            local += dt;
            let t = c.now(LocalTime(local));
            prop_assert!(t >= last);
            // stepped: the agreed time, or held still at the reading before
            let stepped = (local + gap).max(0) as u64;
            prop_assert_eq!(t.0, stepped.max(before.0));
            last = t;
        }
    }
}
