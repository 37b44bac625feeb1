//! Faults of a simulated world: a network that drops, duplicates, delays,
//! reorders and partitions messages, nodes that crash and restart, and job
//! files that are still being reconciled when a proposal arrives. Times are
//! virtual microseconds since the run's start.
//!
//! All faults happen before `heal_at_us`; afterwards the network only
//! jitters within its bound (partial synchrony: after the global
//! stabilisation time every delay is at most `(100 + jitter)%` of the unit),
//! so the run can check liveness after the heal.

use undchain_types::SplitMix64 as SimRng;

/// A window during which `side` cannot talk with the other nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Start, microseconds of simulated time.
    pub start_us: u64,
    /// End (the heal).
    pub end_us: u64,
    /// Node indices on one side; everyone else is on the other.
    pub side: Vec<usize>,
}

impl Partition {
    /// Whether `a` and `b` are cut off from each other at `t`.
    pub fn separates(&self, t: u64, a: usize, b: usize) -> bool {
        t >= self.start_us && t < self.end_us && self.side.contains(&a) != self.side.contains(&b)
    }
}

/// A validator crash and restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crash {
    /// The node.
    pub node: usize,
    /// When it crashes.
    pub at_us: u64,
    /// How long it stays down.
    pub down_us: u64,
    /// Torn: the crash hits in the middle of carrying out a batch of
    /// outputs (after some, before others), not between two inputs.
    pub torn: bool,
}

/// Every fault of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    /// Faults stop here.
    pub heal_at_us: u64,
    /// Chance a message is lost, per mille (before the heal).
    pub drop_permille: u32,
    /// Chance a message is delivered twice, per mille (before the heal).
    pub duplicate_permille: u32,
    /// Delays are uniform in `unit * (100 ± jitter)%` (always).
    pub jitter_percent: u32,
    /// Chance a message is held back by up to `long_delay_units` (reorder),
    /// per mille (before the heal).
    pub long_delay_permille: u32,
    /// Longest extra hold-back, in delay units.
    pub long_delay_units: u64,
    /// Partitions.
    pub partitions: Vec<Partition>,
    /// Crashes.
    pub crashes: Vec<Crash>,
    /// Chance a validator's first validity check of a value says
    /// "pending" (its job file is still being reconciled), per mille.
    pub pending_validity_permille: u32,
    /// How long such reconciliation takes at most, in delay units.
    pub pending_units: u64,
}

impl FaultPlan {
    /// A perfect network: every message takes exactly one delay unit.
    pub fn none() -> Self {
        FaultPlan {
            heal_at_us: 0,
            drop_permille: 0,
            duplicate_permille: 0,
            jitter_percent: 0,
            long_delay_permille: 0,
            long_delay_units: 0,
            partitions: Vec::new(),
            crashes: Vec::new(),
            pending_validity_permille: 0,
            pending_units: 0,
        }
    }

    /// Faults drawn from `rng` for `nodes` nodes whose first `byzantine`
    /// are Byzantine (only honest nodes crash: a Byzantine one may do worse
    /// anyway).
    pub fn draw(rng: &mut SimRng, nodes: usize, byzantine: usize, unit_us: u64) -> Self {
        let heal_at_us = unit_us * rng.range(20, 80);
        let mut plan = FaultPlan {
            heal_at_us,
            drop_permille: rng.pick(&[0, 20, 50, 100, 250]).unwrap_or(0),
            duplicate_permille: rng.pick(&[0, 20, 100]).unwrap_or(0),
            jitter_percent: rng.pick(&[0, 25, 50, 90]).unwrap_or(0),
            long_delay_permille: rng.pick(&[0, 10, 50]).unwrap_or(0),
            long_delay_units: 10,
            partitions: Vec::new(),
            crashes: Vec::new(),
            pending_validity_permille: rng.pick(&[0, 100, 300]).unwrap_or(0),
            pending_units: 6,
        };
        if nodes >= 2 && rng.chance(500) {
            let start = rng.below(heal_at_us / 2);
            let end = rng.range(start + unit_us, heal_at_us);
            let size = rng.range(1, (nodes / 2) as u64) as usize;
            let mut side: Vec<usize> = Vec::new();
            while side.len() < size {
                let i = rng.below(nodes as u64) as usize;
                if !side.contains(&i) {
                    side.push(i);
                }
            }
            side.sort_unstable();
            plan.partitions.push(Partition {
                start_us: start,
                end_us: end,
                side,
            });
        }
        let honest = nodes.saturating_sub(byzantine);
        if honest > 0 && rng.chance(500) {
            for _ in 0..rng.range(1, 2) {
                let node = byzantine + rng.below(honest as u64) as usize;
                let latest = heal_at_us.saturating_sub(10 * unit_us);
                let at_us = rng.below(latest.max(1));
                let down_us = unit_us * rng.range(2, 15);
                plan.crashes.push(Crash {
                    node,
                    at_us,
                    down_us: down_us.min(heal_at_us.saturating_sub(at_us).max(unit_us)),
                    torn: rng.chance(500),
                });
            }
        }
        plan
    }

    /// Whether a message from `a` to `b` sent at `t` is cut by a partition.
    pub fn partitioned(&self, t: u64, a: usize, b: usize) -> bool {
        self.partitions.iter().any(|p| p.separates(t, a, b))
    }

    /// The delivery delays (none: lost; two: duplicated) of a message sent
    /// at `t`.
    pub fn deliveries(&self, rng: &mut SimRng, t: u64, unit_us: u64) -> Vec<u64> {
        let faulty = t < self.heal_at_us;
        if faulty && rng.chance(self.drop_permille) {
            return Vec::new();
        }
        let copies = if faulty && rng.chance(self.duplicate_permille) {
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| {
                let j = u64::from(self.jitter_percent.min(99));
                let lo = unit_us * (100 - j) / 100;
                let hi = unit_us * (100 + j) / 100;
                let mut d = rng.range(lo, hi);
                if faulty && rng.chance(self.long_delay_permille) {
                    d += rng.range(1, self.long_delay_units.max(1) * unit_us);
                }
                d.max(1)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_network_takes_one_unit() {
        let plan = FaultPlan::none();
        let mut rng = SimRng::new(1);
        for t in [0, 5, 1_000_000] {
            assert_eq!(plan.deliveries(&mut rng, t, 1000), vec![1000]);
        }
        assert!(!plan.partitioned(0, 0, 1));
    }

    #[test]
    fn faults_stop_at_heal_and_draws_replay() {
        for seed in 0..50 {
            let a = FaultPlan::draw(&mut SimRng::new(seed), 7, 2, 1000);
            let b = FaultPlan::draw(&mut SimRng::new(seed), 7, 2, 1000);
            assert_eq!(a, b);
            for c in &a.crashes {
                assert!(c.node >= 2, "only honest nodes crash");
                assert!(c.at_us + c.down_us <= a.heal_at_us.max(c.at_us + 1000));
            }
            for p in &a.partitions {
                assert!(p.end_us <= a.heal_at_us);
                assert!(!p.side.is_empty() && p.side.len() <= 3);
            }
            let mut rng = SimRng::new(seed);
            for _ in 0..100 {
                let d = a.deliveries(&mut rng, a.heal_at_us, 1000);
                assert_eq!(d.len(), 1, "no loss or duplication after the heal");
                assert!(d[0] <= 1990);
            }
        }
    }
}
