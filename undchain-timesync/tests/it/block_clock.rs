//! The block clock never runs backwards (docs/PROTOCOL.md "Time
//! consensus", *Block clock*), whatever corrections, steps and local-clock
//! glitches it is fed, and it maps time to blocks by DESIGN.md's rule.

use proptest::prelude::*;
use undchain_timesync::{BlockClock, position_of};
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

proptest! {
    #[test]
    fn block_clock_never_runs_backwards(
        start in 0i64..1_000_000_000,
        correction in 0i64..10_000_000_000,
        slew in 1u32..=100_000,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let p = params();
        let mut c = BlockClock::new(&p, LocalTime(start), correction, slew).unwrap();
        let mut local = start;
        let mut last = c.now(LocalTime(local));
        let mut base = correction;
        for (dt, op) in ops {
            local += dt; // the local clock may even glitch backwards
            match op {
                Op::Read => {}
                Op::Target(d) => c.set_target(LocalTime(local), base + d),
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
        gap in -1_000_000i64..1_000_000,
        slew in 1u32..=1_000,
        reads in prop::collection::vec(1i64..100_000, 1..100),
    ) {
        let mut c = BlockClock::new(&params(), LocalTime(0), 0, slew).unwrap();
        c.set_target(LocalTime(0), gap);
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
