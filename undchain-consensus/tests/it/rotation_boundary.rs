//! Rotation at payout-period boundaries, live: validators run their own
//! rosters from committed headers, passive validators follow as observers,
//! unknown seats rotate at each boundary, a silent validator is replaced
//! after missing votes, and every validator uses the same set at every
//! height (issue 5: "rotation-boundary").

use undchain_consensus::sim::{Behaviour, FaultPlan, RotationPlan, SimConfig, Simulation};
use undchain_types::{PublicKey, Trust};

fn plan() -> RotationPlan {
    RotationPlan {
        passive: 3,
        known: 3,
        blocks_per_period: 4,
        missed_vote_threshold: 3,
    }
}

#[test]
fn rotation_boundary_sets_rotate_identically_and_keep_the_known_share() {
    let cfg = SimConfig {
        heights: 14,
        faults: FaultPlan::none(),
        rotation: Some(plan()),
        ..SimConfig::drawn(4, 0, 11)
    };
    let report = Simulation::new(cfg).run();
    assert!(report.ok(), "{}", report.reproduce_hint());
    let sets = &report.nodes[0].sets;
    assert!(sets.len() >= 14);
    for node in &report.nodes {
        assert_eq!(
            node.sets[..14],
            sets[..14],
            "every validator, passive ones too, holds the same sets"
        );
    }
    for (h, set) in sets.iter().enumerate().take(14) {
        assert!(
            set.known_seats() <= 1,
            "n = 4: floor(44%) = 1 known seat (height {h})"
        );
        assert_eq!(set.len(), 4);
        if h % 4 != 0 {
            assert_eq!(
                set,
                &sets[h - 1],
                "no change inside a period without missed votes (height {h})"
            );
        }
    }
    // Unknown seats rotate: 4 unknown validators for 3 unknown seats, so
    // the passive one comes in at the first boundary.
    let unknown = |s: &undchain_consensus::ValidatorSet| -> Vec<PublicKey> {
        s.seats()
            .iter()
            .filter(|x| x.trust == Trust::Unknown)
            .map(|x| x.id)
            .collect()
    };
    assert_ne!(unknown(&sets[0]), unknown(&sets[4]));
    let came_in: Vec<_> = unknown(&sets[4])
        .into_iter()
        .filter(|x| !sets[3].contains(x))
        .collect();
    assert!(!came_in.is_empty());
    // The newcomer really takes part: blocks keep being decided after it
    // came in, at round 0 (no proposer of the new set is missing).
    assert!(report.nodes[0].rounds[4..14].iter().all(|r| *r == 0));
}

#[test]
fn rotation_boundary_silent_validator_is_replaced_after_missed_votes() {
    let cfg = SimConfig {
        heights: 14,
        faults: FaultPlan::none(),
        rotation: Some(RotationPlan {
            blocks_per_period: 1000,
            ..plan()
        }),
        ..SimConfig::drawn(4, 1, 2).with_behaviour(Behaviour::Silent)
    };
    let report = Simulation::new(cfg).run();
    assert!(report.ok(), "{}", report.reproduce_hint());
    let silent = report.nodes[0].public_key;
    let sets = &report.nodes[1].sets;
    let first_in = sets
        .iter()
        .position(|s| s.contains(&silent))
        .expect("silent validator holds a seat at genesis");
    let out = sets
        .iter()
        .enumerate()
        .skip(first_in)
        .find(|(_, s)| !s.contains(&silent))
        .map(|(h, _)| h)
        .expect("replaced");
    // It misses block h (reported in h+1's header); three in a row, then
    // replaced for the next height.
    assert!(out <= first_in + 3 + 2, "replaced at height {out}");
    assert!(
        sets[out..]
            .iter()
            .all(|s| !s.contains(&silent) && s.known_seats() <= 1 && s.len() == 4)
    );
}

#[test]
fn rotation_boundary_under_drawn_faults() {
    for seed in 0..12u64 {
        let cfg = SimConfig {
            heights: 10,
            rotation: Some(plan()),
            ..SimConfig::drawn(4 + (seed % 4) as usize, 0, seed)
        };
        let report = Simulation::new(cfg).run();
        assert!(report.ok(), "{}", report.reproduce_hint());
    }
}
