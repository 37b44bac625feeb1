//! Laws of the fault-tolerant agreement (docs/PROTOCOL.md "Time
//! consensus", *Agreement*): liars cannot leave the honest range,
//! translation invariance, two-faced precision (where the trimmed mean
//! fails), determinism under permutation.

use proptest::prelude::*;
use undchain_timesync::{Method, Reading, agree, agree_among};
use undchain_types::max_faulty;

fn readings(values: &[i64]) -> Vec<Reading<u32>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &value)| Reading {
            peer: i as u32,
            value,
            error_us: 0,
        })
        .collect()
}

fn extreme_or_any() -> impl Strategy<Value = i64> {
    prop_oneof![Just(i64::MIN), Just(i64::MAX), any::<i64>()]
}

/// Honest values, and up to f liars with any values (i64 extremes often).
fn honest_and_liars() -> impl Strategy<Value = (usize, Vec<i64>, Vec<i64>)> {
    (4usize..=31).prop_flat_map(|n| {
        let f = max_faulty(n);
        (
            Just(n),
            prop::collection::vec(extreme_or_any(), n - f..=n),
            prop::collection::vec(extreme_or_any(), f..=f),
        )
    })
}

proptest! {
    #[test]
    fn up_to_f_liars_never_move_the_result_outside_the_honest_range(
        (n, honest, liars) in honest_and_liars(),
        liar_count in 0usize..=10,
    ) {
        let f = max_faulty(n);
        let k = liar_count.min(f).min(n - honest.len().min(n));
        let k = k.min(liars.len());
        let mut all = honest.clone();
        all.extend_from_slice(&liars[..k]);
        all.truncate(n);
        let honest_part = &all[..honest.len().min(all.len())];
        let lo = *honest_part.iter().min().unwrap();
        let hi = *honest_part.iter().max().unwrap();
        for m in [Method::Ftm, Method::TrimmedMean, Method::Median] {
            // all n members answered
            if all.len() > 3 * f {
                let a = agree(&readings(&all), f, m).unwrap();
                prop_assert!(lo <= a.value && a.value <= hi, "{:?}: {} not in [{}, {}]", m, a.value, lo, hi);
            }
            // some members missing: they count as faults
            let a = agree_among(&readings(&all), n, m);
            if all.len() >= n - f {
                let a = a.unwrap();
                prop_assert!(lo <= a.value && a.value <= hi, "{:?} among: {} not in [{}, {}]", m, a.value, lo, hi);
            } else {
                prop_assert!(a.is_err());
            }
        }
    }

    #[test]
    fn agreement_is_translation_invariant(
        values in prop::collection::vec(-(1i64 << 61)..(1i64 << 61), 4..=31),
        c in -(1i64 << 61)..(1i64 << 61),
    ) {
        let f = max_faulty(values.len());
        let shifted: Vec<i64> = values.iter().map(|v| v + c).collect();
        for m in Method::ALL {
            let a = agree(&readings(&values), f, m).unwrap();
            let b = agree(&readings(&shifted), f, m).unwrap();
            prop_assert_eq!(b.value, a.value + c, "{:?}", m);
            prop_assert_eq!(b.spread_us, a.spread_us);
            prop_assert_eq!(b.bound_us, a.bound_us);
        }
    }

    /// Honest values are seen by p and q up to `x` apart; the liars show
    /// each observer whatever they like. The midpoints then differ by at
    /// most `y/2 + x` (`y` the honest spread an observer sees; the `+ 1` in
    /// the doubled form is the floor of the midpoint).
    #[test]
    fn two_faced_liars_cannot_split_ftm_by_more_than_half_the_spread_plus_x(
        n in 4usize..=31,
        base in prop::collection::vec(-1_000_000_000i64..1_000_000_000, 31),
        x in 0i64..1_000_000,
        noise in prop::collection::vec((0.0f64..=1.0, 0.0f64..=1.0), 31),
        liars_p in prop::collection::vec(extreme_or_any(), 10),
        liars_q in prop::collection::vec(extreme_or_any(), 10),
    ) {
        let f = max_faulty(n);
        let h = n - f;
        let seen_p: Vec<i64> = (0..h).map(|i| base[i] + (x as f64 * noise[i].0) as i64).collect();
        let seen_q: Vec<i64> = (0..h).map(|i| base[i] + (x as f64 * noise[i].1) as i64).collect();
        let spread = |v: &[i64]| v.iter().max().unwrap() - v.iter().min().unwrap();
        let y = spread(&seen_p).max(spread(&seen_q));
        let mut all_p = seen_p.clone();
        all_p.extend_from_slice(&liars_p[..f]);
        let mut all_q = seen_q.clone();
        all_q.extend_from_slice(&liars_q[..f]);
        let ap = agree(&readings(&all_p), f, Method::Ftm).unwrap().value;
        let aq = agree(&readings(&all_q), f, Method::Ftm).unwrap().value;
        let gap = (i128::from(ap) - i128::from(aq)).abs();
        prop_assert!(2 * gap <= i128::from(y) + 2 * i128::from(x) + 1,
            "|A_p - A_q| = {} > y/2 + x = {}/2 + {}", gap, y, x);
    }

    /// The issue's counterexample for every spread y: honest
    /// {0,0,0,y,y,y,y}, three liars above everything for p and below
    /// everything for q. FTM stays within y/2; the trimmed mean does not.
    #[test]
    fn trimmed_mean_breaks_the_two_faced_bound_where_ftm_holds(y in 4i64..1_000_000_000_000) {
        let (ftm, tm) = two_faced_split(y);
        // doubled, with + 1 for the midpoint's floor as above (x = 0)
        prop_assert!(2 * ftm <= y + 1, "ftm gap {} > y/2 for y = {}", ftm, y);
        prop_assert!(2 * tm > y + 1, "trimmed mean gap {} <= y/2 for y = {}", tm, y);
    }

    #[test]
    fn any_permutation_gives_identical_output(
        values in prop::collection::vec(extreme_or_any(), 4..=31)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        errors in prop::collection::vec(0u64..1_000, 31),
    ) {
        let (orig, shuffled) = values;
        // give each value a peer id and an error; the shuffle keeps pairs
        let with = |vals: &[i64]| -> Vec<Reading<u64>> {
            let mut seen = std::collections::BTreeMap::<i64, u64>::new();
            vals.iter().map(|&v| {
                // equal values get distinct peers deterministically
                let k = seen.entry(v).or_insert(0);
                *k += 1;
                let peer = (v as u64).rotate_left(7) ^ *k;
                Reading { peer, value: v, error_us: errors[(peer % 31) as usize] }
            }).collect()
        };
        let a_in = with(&orig);
        let mut b_in = a_in.clone();
        // permute the (peer, value, error) triples the same way as values
        b_in.sort_by_key(|r| shuffled.iter().position(|&v| v == r.value));
        let f = max_faulty(orig.len());
        for m in Method::ALL {
            let a = agree(&a_in, f, m);
            let mut rev = a_in.clone();
            rev.reverse();
            prop_assert_eq!(a, agree(&b_in, f, m));
            prop_assert_eq!(a, agree(&rev, f, m));
            let members = orig.len() + f / 2;
            prop_assert_eq!(agree_among(&a_in, members, m), agree_among(&b_in, members, m));
        }
    }
}

/// (|A_p - A_q| for FTM, the same for the trimmed mean) on the issue's
/// two-faced configuration.
fn two_faced_split(y: i64) -> (i64, i64) {
    let honest = [0, 0, 0, y, y, y, y];
    let mut p = honest.to_vec();
    p.extend([i64::MAX; 3]);
    let mut q = honest.to_vec();
    q.extend([i64::MIN; 3]);
    let gap = |m| {
        let a = agree(&readings(&p), 3, m).unwrap().value;
        let b = agree(&readings(&q), 3, m).unwrap().value;
        (a - b).abs()
    };
    (gap(Method::Ftm), gap(Method::TrimmedMean))
}

#[test]
fn issue_counterexample_with_y_1000() {
    // p keeps {y,y,y,y}: FTM y, TM y. q keeps {0,0,0,y}: FTM y/2, TM y/4.
    let (ftm, tm) = two_faced_split(1_000);
    assert_eq!(ftm, 500);
    assert_eq!(tm, 750);
}
