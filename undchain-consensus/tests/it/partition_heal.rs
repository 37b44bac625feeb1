//! Partitions: while no side holds a quorum nothing is decided and nothing
//! forks; once the network heals every honest validator catches up and the
//! chain moves again (issue 5: "liveness after the network heals").

use undchain_consensus::sim::{FaultPlan, Partition, SimConfig, Simulation};

const UNIT: u64 = 1_000;

#[test]
fn even_split_decides_nothing_until_heal_then_recovers() {
    for seed in 0..10u64 {
        // n = 4, q = 3: a 2/2 split leaves no quorum anywhere.
        let mut cfg = SimConfig::drawn(4, 0, seed);
        cfg.faults = FaultPlan {
            heal_at_us: 80 * UNIT,
            jitter_percent: 50,
            partitions: vec![Partition {
                start_us: 0,
                end_us: 80 * UNIT,
                side: vec![0, 2],
            }],
            ..FaultPlan::none()
        };
        let report = Simulation::new(cfg).run();
        assert!(report.ok(), "{}", report.reproduce_hint());
        for n in &report.nodes {
            assert!(
                n.decided_at.iter().all(|t| *t >= 80 * UNIT),
                "decided inside the partition: {:?}",
                n.decided_at
            );
        }
    }
}

#[test]
fn majority_side_goes_on_and_minority_catches_up() {
    for seed in 0..10u64 {
        // n = 7, q = 5: the five on one side keep deciding.
        let mut cfg = SimConfig::drawn(7, 0, seed);
        cfg.heights = 8;
        cfg.faults = FaultPlan {
            heal_at_us: 60 * UNIT,
            drop_permille: 50,
            jitter_percent: 25,
            partitions: vec![Partition {
                start_us: 0,
                end_us: 60 * UNIT,
                side: vec![1, 4],
            }],
            ..FaultPlan::none()
        };
        let report = Simulation::new(cfg).run();
        assert!(report.ok(), "{}", report.reproduce_hint());
        let majority_before_heal = report.nodes[0]
            .decided_at
            .iter()
            .filter(|t| **t < 60 * UNIT)
            .count();
        assert!(
            majority_before_heal > 0,
            "the majority decided during the partition"
        );
        for minority in [1, 4] {
            assert!(
                report.nodes[minority]
                    .decided_at
                    .iter()
                    .all(|t| *t >= 60 * UNIT)
            );
            assert_eq!(report.nodes[minority].chain[..], report.nodes[0].chain[..8]);
        }
    }
}

#[test]
fn partition_heal_drawn_faults_all_sizes() {
    for n in 4..=10usize {
        for seed in 0..8u64 {
            let mut cfg = SimConfig::drawn(n, 0, seed);
            let heal = cfg.faults.heal_at_us;
            cfg.faults.partitions = vec![Partition {
                start_us: 0,
                end_us: heal,
                side: (0..n / 2).collect(),
            }];
            let report = Simulation::new(cfg).run();
            assert!(report.ok(), "{}", report.reproduce_hint());
        }
    }
}
