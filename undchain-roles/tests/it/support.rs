//! Shared set-ups of the scenario tests.

use undchain_roles::sim::{SimConfig, World};

/// `n` validators, no scripted load, no drawn faults.
pub fn world(n: usize) -> World {
    let mut cfg = SimConfig::new(n, 40, 9);
    cfg.requests_per_block = 0;
    World::new(&cfg).unwrap()
}

/// Every validator committed the same blocks up to height `h`.
pub fn assert_same_chain(w: &World, n: usize, h: u64) {
    for i in 0..n {
        for height in 0..h {
            assert_eq!(
                w.commits(i).get(&height),
                w.commits(0).get(&height),
                "validator {i} height {height}"
            );
            assert!(
                w.commits(i).contains_key(&height),
                "validator {i} lacks {height}"
            );
        }
    }
}
