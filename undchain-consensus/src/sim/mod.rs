//! A deterministic, seeded, in-process simulator for agreement, reusable by
//! later issues (TigerBeetle-style: faults drawn per seed, a failing run
//! prints "reproduce with seed=...").
//!
//! n validators run the real [`Driver`]s over a virtual clock (simulated
//! microseconds, the kit's `EventQueue`) and a network ([`FaultPlan`],
//! from `undchain-sim`) that drops, duplicates, delays, reorders and
//! partitions messages; honest validators crash (between inputs, or "torn"
//! in the middle of carrying out a batch) and restart from what they
//! persisted; the first `byzantine` validators run a
//! [`Behaviour`] of [`crate::adversary`] actors, drawn per seed. The simulator is the host, as a node's runtime
//! would be: it carries out each [`crate::driver::DriverReady`] batch
//! (what promises nothing, the write, then what needed it) and
//! acknowledges it, wakes each driver when its `poll_timeout` says, builds
//! block headers on request, checks their validity (sometimes answering
//! "pending" while a job file is being reconciled), stores decided blocks,
//! serves catch-up requests and, with a [`RotationPlan`], drives each
//! validator's own [`crate::roster::Roster`] so validator sets rotate and
//! replace members exactly as on a real chain.
//!
//! Files: `config` (what a run is told and reports), `world` (the nodes
//! and the event loop), `host` (carrying out outputs, the network),
//! `values` (building and checking block headers), [`checker`].
//!
//! The [`checker::Checker`] watches every honest validator: agreement,
//! validity of each decided header on the validator's own chain, no two
//! different messages signed for one slot (across restarts), certificates
//! that verify against the height's set, identical validator sets; and
//! after the network heals every honest validator must reach the target
//! height (liveness).
//!
//! Same [`SimConfig`] (including the seed), same run, event for event.

pub mod checker;
mod config;
mod host;
mod values;
mod world;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use undchain_types::{ChainId, Hash32, HashContext, PublicKey, Signature, hash};

use crate::certificate::SignatureVerifier;

pub use crate::adversary::{Adversary, Behaviour, Coalition};
pub use checker::{Checker, Violation};
pub use config::{NodeSummary, RotationPlan, SimConfig, SimReport, SweepSummary};
pub use undchain_sim::{Crash, FaultPlan, Partition};
pub use world::Simulation;

#[cfg(doc)]
use crate::driver::Driver;

/// The simulated chain's id.
pub const SIM_CHAIN: ChainId = ChainId(0x51);

/// Checks signatures once per (signer, digest, signature) for all
/// simulated validators together: ed25519 is most of a simulation's cost,
/// and every validator would otherwise check the same broadcast again.
#[derive(Debug, Clone, Default)]
pub struct SharedVerifier {
    cache: Rc<RefCell<VerifyCache>>,
}

/// Verdicts by (signer, digest, signature).
type VerifyCache = BTreeMap<(PublicKey, Hash32, Signature), bool>;

impl SignatureVerifier for SharedVerifier {
    fn verify(&mut self, signer: &PublicKey, digest: &Hash32, signature: &Signature) -> bool {
        let key = (*signer, *digest, *signature);
        if let Some(ok) = self.cache.borrow().get(&key) {
            return *ok;
        }
        let ok = signer.verify_digest(digest, signature).is_ok();
        self.cache.borrow_mut().insert(key, ok);
        ok
    }
}

/// Runs `seeds` drawn seeds from `first` for `n` validators with
/// `byzantine` Byzantine ones and returns the reports (the seed-sweep
/// tests and the `sim` example share this).
pub fn sweep(
    n: usize,
    byzantine: usize,
    first: u64,
    seeds: u64,
    fault_free: bool,
) -> Vec<SimReport> {
    (first..first.saturating_add(seeds))
        .map(|seed| {
            let cfg = if fault_free {
                SimConfig::fault_free(n, byzantine, seed)
            } else {
                SimConfig::drawn(n, byzantine, seed)
            };
            Simulation::new(cfg).run()
        })
        .collect()
}

/// A stable digest of a run's decided chains (for replay tests).
pub fn fingerprint(report: &SimReport) -> Hash32 {
    let mut bytes = Vec::new();
    for n in &report.nodes {
        for h in &n.chain {
            bytes.extend_from_slice(h.as_bytes());
        }
        bytes.push(0xff);
    }
    bytes.extend_from_slice(&report.end_us.to_le_bytes());
    bytes.extend_from_slice(&report.messages_delivered.to_le_bytes());
    hash(HashContext::Genesis, &bytes)
}
