//! The campaign's faults in the world ([`super::super::campaign`]): clock
//! jumps, replays of old messages, the partners a censoring Byzantine
//! validator targets, and the negative control's injected fork.

use std::sync::Arc;

use undchain_consensus::adversary::fresh_header;
use undchain_types::{PublicKey, SignedEnvelope};

use super::{Ev, World};
use crate::sim::load::partner_key;
use crate::sim::{ForkKind, SimConfig};

/// The partners a censoring Byzantine validator of `cfg`'s run targets:
/// the first scripted partner and the first real one.
pub(super) fn victims(cfg: &SimConfig) -> Vec<PublicKey> {
    vec![
        partner_key(cfg.seed, 0).public(),
        partner_key(cfg.seed, 100).public(),
    ]
}

impl World {
    /// Node `node`'s monotonic clock jumps `by_us` forward: its timer is
    /// set again on the new reading.
    pub(super) fn clock_jump(&mut self, node: usize, by_us: i64) {
        if self.cfg.trace {
            eprintln!("t={} node={node} clock jumps {by_us} us", self.now);
        }
        self.nodes[node].clock.base += by_us;
        self.nodes[node].timer = None;
        self.schedule_timer(node);
    }

    /// Before the heal, one message in `replay_permille` is delivered once
    /// more at a random later time, still before the heal (a replay).
    pub(super) fn replay(&mut self, from: usize, to: usize, env: Arc<SignedEnvelope>) {
        let p = self.chaos.replay_permille;
        if p == 0 || self.now >= self.plan.heal_at_us || !self.rng.chance(p) {
            return;
        }
        let at = self.rng.range(self.now + 1, self.plan.heal_at_us);
        self.push(at, Ev::Deliver { to, from, env });
    }

    /// The negative control ([`SimConfig::inject_fork`]): once honest
    /// `validator` stored block `height`, the block it stored and
    /// announced becomes another one.
    pub(super) fn forge_injected(&mut self, node: usize) {
        let Some(fork) = self.cfg.inject_fork else {
            return;
        };
        if self.forged || fork.validator != node || self.nodes[node].byzantine.is_some() {
            return;
        }
        let alg = self.params.hash_algorithm;
        let n = &mut self.nodes[node];
        let Some(record) = n.disk.block_mut(fork.height) else {
            return;
        };
        let body = matches!(fork.kind, ForkKind::Body);
        let header_too = !body || (record.requests.pop().is_none() && record.ops.pop().is_none());
        if header_too {
            let header = fresh_header(&record.block.header, b"injected fork");
            record.block.header = header;
            let hash = record.block.header.hash_with(alg);
            if let Some(c) = n.commits.get_mut(&fork.height) {
                c.0 = hash;
            }
        }
        self.forged = true;
    }
}
