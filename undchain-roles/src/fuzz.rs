//! The `node_core` fuzz target's body ([`fuzz_node_core`], shared by
//! `fuzz/fuzz_targets/node_core.rs` and the seed-corpus test): the
//! whole-network simulator ([`crate::sim::World`], real
//! [`crate::NodeCore`]s) scripted by the input.
//!
//! The bytes ([`SplitMix64::scripted`]) choose the world (its seed, whether
//! it draws faults, a Byzantine validator and its behaviour), which share
//! of messages every link loses, and a sequence of operations: let time
//! pass, crash a validator, restart one from its disk, jump a validator's
//! clock forward, send a client's request to some validators. After every
//! operation, and after a last stretch with everyone restarted, the
//! honest validators must agree: the blocks each stored form one chain
//! from block 0 (numbers in order, each naming its parent's hash), and at
//! every height every honest validator that committed or stored a block
//! has the same one (hash and ledger root). Liveness is not asserted: the
//! operations may keep the network down.

use std::collections::BTreeMap;

use undchain_consensus::adversary::Behaviour;
use undchain_types::{Hash32, SplitMix64};

use crate::sim::{SimConfig, World};

/// Validators of a fuzz world.
pub const FUZZ_VALIDATORS: usize = 4;
/// Most operations one input runs.
pub const MAX_OPS: usize = 48;

/// Runs the world `data` scripts; panics when honest validators disagree
/// or a stored chain is broken.
pub fn fuzz_node_core(data: &[u8]) {
    let mut ops = SplitMix64::scripted(0, data);
    let mut cfg = SimConfig::new(FUZZ_VALIDATORS, 4, ops.next_u64());
    cfg.requests_per_block = 2;
    cfg.clients = 2;
    cfg.faults = ops.chance(500);
    cfg.byzantine = Some(ops.below(2) as usize);
    cfg.behaviour = ops.pick(&Behaviour::ALL);
    let Ok(mut w) = World::new(&cfg) else {
        panic!("the fuzz configuration is valid");
    };
    // Links lose a drawn share of messages, each loss drawn from the
    // second half of the input.
    let loss_permille = ops.below(300) as u32;
    let mut losses = SplitMix64::scripted(1, data.get(data.len() / 2..).unwrap_or_default());
    w.set_filter(Box::new(move |_, _, _, _| !losses.chance(loss_permille)));
    w.start();
    let block = cfg.block_interval_us;
    let mut done = 0;
    while ops.is_steered() && done < MAX_OPS {
        done += 1;
        let i = ops.below(FUZZ_VALIDATORS as u64) as usize;
        match ops.below(6) {
            0 | 1 => w.run_until(w.now_us() + ops.range(1, 4) * block / 2),
            2 => w.crash_now(i),
            3 if w.core(i).is_none() => w.restart_now(i),
            3 => {}
            4 => w.clock_jump_now(i, ops.range_i64(0, 5 * block as i64)),
            _ => {
                let to: Vec<usize> = (0..FUZZ_VALIDATORS).filter(|_| ops.chance(500)).collect();
                w.send_request(ops.below(2) as usize, &to);
            }
        }
        check_agreement(&w);
    }
    for i in 0..FUZZ_VALIDATORS {
        if w.core(i).is_none() {
            w.restart_now(i);
        }
    }
    w.run_until(w.now_us() + 8 * block);
    check_agreement(&w);
}

/// The honest validators' stored chains are chains and agree with each
/// other and with what each announced as committed.
fn check_agreement(w: &World) {
    let algo = w.params().hash_algorithm;
    // height -> (block hash, the validator that had it first)
    let mut blocks: BTreeMap<u64, (Hash32, usize)> = BTreeMap::new();
    let mut agree = |height: u64, hash: Hash32, i: usize| {
        let (h, first) = *blocks.entry(height).or_insert((hash, i));
        assert!(
            h == hash,
            "height {height}: validator {i} has block {hash}, validator {first} has {h}"
        );
    };
    // height -> (ledger root announced, the validator that announced it first)
    let mut roots: BTreeMap<u64, (Hash32, usize)> = BTreeMap::new();
    for i in (0..FUZZ_VALIDATORS).filter(|&i| w.byzantine(i).is_none()) {
        let mut parent = None;
        for (k, record) in w.stored(i).blocks.iter().enumerate() {
            let header = &record.block.header;
            assert_eq!(
                header.number.0, k as u64,
                "validator {i}: stored out of order"
            );
            if let Some(p) = parent {
                assert_eq!(
                    header.parent, p,
                    "validator {i}: block {k} names another parent"
                );
            }
            let hash = header.hash_with(algo);
            parent = Some(hash);
            agree(k as u64, hash, i);
        }
        for (&height, &(hash, root)) in w.commits(i) {
            agree(height, hash, i);
            let (r, first) = *roots.entry(height).or_insert((root, i));
            assert!(
                r == root,
                "height {height}: validator {i} announced ledger {root}, validator {first} {r}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed corpus (fuzz/seeds/node_core) runs as an ordinary test,
    /// and so do a few inputs drawn from a seed.
    #[test]
    fn node_core_fuzz_seeds_and_drawn_inputs_keep_agreement() {
        let n = undchain_types::testkit::for_each_seed("node_core", fuzz_node_core);
        assert!(n >= 3, "expected the node_core seeds, found {n}");
        for data in undchain_types::testkit::drawn_inputs(19, 2, 200) {
            fuzz_node_core(&data);
        }
    }

    /// The check has teeth: a fork injected into one honest validator's
    /// commit (the simulator's negative control) is reported; the same run
    /// without it passes.
    #[test]
    fn an_injected_fork_is_reported() {
        let run = |fork| {
            let mut cfg = SimConfig::new(FUZZ_VALIDATORS, 3, 3);
            cfg.inject_fork = fork;
            let mut w = World::new(&cfg).unwrap();
            w.run_until(w.block_start_us(4));
            assert!(w.stored(0).blocks.len() >= 3, "the run stored blocks");
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_agreement(&w)))
        };
        assert!(run(None).is_ok());
        let fork = crate::sim::InjectedFork {
            validator: 1,
            height: 1,
            kind: crate::sim::ForkKind::Header,
        };
        assert!(run(Some(fork)).is_err(), "the injected fork went unnoticed");
    }
}
