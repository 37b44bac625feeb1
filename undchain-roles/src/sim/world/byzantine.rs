//! Byzantine validators in the whole-network simulator (issue 15: "up to f
//! Byzantine validators using the actors of the agreement simulator").
//!
//! A Byzantine validator runs the honest [`crate::NodeCore`]; between it
//! and the network sits an [`Adversary`] of `undchain-consensus`'s
//! reusable actors, exactly as in the agreement simulator: every message
//! the node sends passes [`Adversary::outgoing`] (all recipients of one
//! output at once, so the splitting actors see whom they split), and
//! every message it receives is shown to [`Adversary::observe`]. What the
//! actors rewrite is signed again with the validator's real key, so it
//! verifies: the honest validators face a member of their own set, not a
//! stranger. All Byzantine validators share one [`Coalition`].

use std::sync::Arc;

use undchain_consensus::adversary::{ActorCtx, Adversary, Behaviour, Coalition, Send};
use undchain_types::{Envelope, PublicKey, SignedEnvelope};

use super::World;
use crate::output::Output;

/// First sequence number of the envelopes the actors' rewrites are signed
/// under: far above what the honest core reserves, so a rewrite never
/// collides with an honest envelope in the receivers' replay guards.
const REWRITE_SEQ: u64 = 1 << 48;

/// A validator's Byzantine side.
#[derive(Debug)]
pub(crate) struct Byzantine {
    /// The composition of actors it runs.
    pub behaviour: Behaviour,
    adversary: Adversary,
    seq: u64,
}

impl Byzantine {
    /// A Byzantine side running `behaviour`'s actors.
    pub fn new(behaviour: Behaviour) -> Self {
        Byzantine {
            behaviour,
            adversary: behaviour.adversary(),
            seq: REWRITE_SEQ,
        }
    }
}

impl World {
    /// Carries out Byzantine `node`'s outputs: each group of sends of one
    /// envelope goes through its actors, events are recorded as usual.
    pub(super) fn byzantine_outputs(&mut self, node: usize, outs: Vec<Output>) {
        let mut outs = outs.into_iter().peekable();
        while let Some(o) = outs.next() {
            let Output::Send { to, envelope } = o else {
                self.output(node, o);
                continue;
            };
            let mut to = vec![to];
            while let Some(Output::Send { to: t, envelope: e }) = outs.peek() {
                if !Arc::ptr_eq(e, &envelope) {
                    break;
                }
                to.push(*t);
                outs.next();
            }
            let msg = envelope.body().clone();
            let sends = self.with_actor(node, |adv, ctx, c| adv.outgoing(ctx, c, &to, msg));
            self.send_rewritten(node, &envelope, sends);
        }
    }

    /// Shows Byzantine `node` a message it received from a validator; what
    /// its actors answer goes out.
    pub(super) fn byzantine_observe(&mut self, node: usize, env: &Arc<SignedEnvelope>) {
        let from = *env.sender();
        let msg = env.body().clone();
        let sends = self.with_actor(node, |adv, ctx, c| adv.observe(ctx, c, from, &msg));
        self.send_rewritten(node, env, sends);
    }

    /// Puts the actors' `sends` on the network: unchanged messages in
    /// their original envelope, anything else signed anew by `node`.
    fn send_rewritten(&mut self, node: usize, original: &Arc<SignedEnvelope>, sends: Vec<Send>) {
        for s in sends {
            let Some(&to) = self.index.get(&s.to) else {
                continue;
            };
            let env = if original.sender() == &self.nodes[node].cfg.key.public()
                && s.msg == *original.body()
            {
                original.clone()
            } else {
                let n = &mut self.nodes[node];
                let Some(b) = n.byzantine.as_mut() else {
                    continue;
                };
                b.seq += 1;
                let key = &n.cfg.key;
                let e = Envelope::new(
                    key.public(),
                    self.params.chain_id,
                    b.seq,
                    original.envelope().sent_at,
                    s.msg,
                );
                Arc::new(e.sign(key))
            };
            self.route(node, to, env);
        }
    }

    /// Runs `f` with Byzantine `node`'s adversary, its context and the
    /// coalition (nothing while the node is down or honest).
    fn with_actor(
        &mut self,
        node: usize,
        f: impl FnOnce(&mut Adversary, &mut ActorCtx<'_>, &mut Coalition) -> Vec<Send>,
    ) -> Vec<Send> {
        let Some(core) = self.nodes[node].core.as_ref() else {
            return Vec::new();
        };
        let v = core.validator();
        let (set, height) = (v.set.clone(), v.height());
        let Some(mut b) = self.nodes[node].byzantine.take() else {
            return Vec::new();
        };
        let me = self.nodes[node].cfg.key.public();
        let peers: Vec<PublicKey> = self
            .nodes
            .iter()
            .map(|n| n.cfg.key.public())
            .filter(|k| *k != me)
            .collect();
        let key = self.nodes[node].cfg.key.clone();
        let mut ctx = ActorCtx {
            key: &key,
            set: &set,
            height,
            chain_id: self.params.chain_id,
            hash_algorithm: self.params.hash_algorithm,
            peers: &peers,
            rng: &mut self.rng,
        };
        let out = f(&mut b.adversary, &mut ctx, &mut self.coalition);
        self.nodes[node].byzantine = Some(b);
        out
    }
}
