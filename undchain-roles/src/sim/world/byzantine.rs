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
use undchain_types::{Envelope, Message, PublicKey, SignedEnvelope};

use super::World;
use crate::output::Output;

/// A validator's Byzantine side.
#[derive(Debug)]
pub(crate) struct Byzantine {
    /// The name of what it runs (a [`Behaviour`]'s, or a test's own
    /// actors).
    pub name: &'static str,
    adversary: Adversary,
    /// The highest sequence number its core used so far.
    last_seq: u64,
    /// Partners whose receipts and partial completions it censors: it
    /// drops them on arrival, so it never confirms nor proposes them (the
    /// campaign draws it; clients then turn to the other validators).
    censored: Vec<PublicKey>,
}

impl Byzantine {
    /// A Byzantine side running `behaviour`'s actors, censoring the
    /// partners `censored` (if any).
    pub fn new(behaviour: Behaviour, censored: Option<Vec<PublicKey>>) -> Self {
        let mut b = Self::custom(behaviour.name(), behaviour.adversary());
        b.censored = censored.unwrap_or_default();
        b
    }

    /// Whether it drops `msg`: a receipt or partial completion of a
    /// censored partner.
    pub fn censors(&self, msg: &Message) -> bool {
        let partner = match msg {
            Message::Receipt(r) => r.terms.partner,
            Message::PartialCompletion(p) => p.last_checkpoint.checkpoint.partner,
            _ => return false,
        };
        self.censored.contains(&partner)
    }

    /// Whether it censors a partner.
    pub fn censoring(&self) -> bool {
        !self.censored.is_empty()
    }

    /// A Byzantine side running any `adversary` (a scenario's own actors).
    pub fn custom(name: &'static str, adversary: Adversary) -> Self {
        Byzantine {
            name,
            adversary,
            last_seq: 0,
            censored: Vec::new(),
        }
    }
}

impl World {
    /// Makes validator `i` Byzantine from now on, running `adversary` (a
    /// scenario's own actors, named `name` in reports); it joins the
    /// coalition and leaves the invariants, which hold over the honest.
    pub fn set_adversary(&mut self, i: usize, name: &'static str, adversary: Adversary) {
        let key = self.nodes[i].cfg.key.public();
        self.nodes[i].byzantine = Some(Byzantine::custom(name, adversary));
        let mut members: Vec<PublicKey> = self
            .nodes
            .iter()
            .filter(|n| n.byzantine.is_some())
            .map(|n| n.cfg.key.public())
            .collect();
        members.push(key);
        self.coalition = Coalition::new(members);
    }

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
            let seq = envelope.envelope().seq;
            if let Some(b) = self.nodes[node].byzantine.as_mut() {
                b.last_seq = b.last_seq.max(seq);
            }
            let sends = self.with_actor(node, |adv, ctx, c| adv.outgoing(ctx, c, &to, msg));
            self.send_rewritten(node, &envelope, seq, sends);
        }
    }

    /// Shows Byzantine `node` a message it received from a validator; what
    /// its actors answer goes out.
    pub(super) fn byzantine_observe(&mut self, node: usize, env: &Arc<SignedEnvelope>) {
        let from = *env.sender();
        let msg = env.body().clone();
        let seq = self.nodes[node]
            .byzantine
            .as_ref()
            .map_or(0, |b| b.last_seq);
        let sends = self.with_actor(node, |adv, ctx, c| adv.observe(ctx, c, from, &msg));
        self.send_rewritten(node, env, seq, sends);
    }

    /// Puts the actors' `sends` on the network: unchanged messages in
    /// their original envelope, anything else signed anew by `node` under
    /// sequence number `seq` (the original's: each recipient sees one
    /// envelope per number, so two recipients may get different messages
    /// under one number); a second message to the same recipient takes the
    /// next numbers, which the core will use too: the receiver then drops
    /// the core's later envelope as a duplicate, a cost the Byzantine
    /// validator bears, while a number far ahead would move the
    /// receiver's replay window past everything the core sends.
    fn send_rewritten(
        &mut self,
        node: usize,
        original: &Arc<SignedEnvelope>,
        seq: u64,
        sends: Vec<Send>,
    ) {
        let mut per_recipient: std::collections::BTreeMap<PublicKey, u64> = Default::default();
        for s in sends {
            let Some(&to) = self.index.get(&s.to) else {
                continue;
            };
            let k = per_recipient.entry(s.to).or_insert(0);
            let unchanged = original.sender() == &self.nodes[node].cfg.key.public()
                && s.msg == *original.body();
            let env = if unchanged && *k == 0 {
                *k += 1;
                original.clone()
            } else {
                // A recipient's second message (the original one too)
                // takes the next number: one number, one envelope.
                let seq = seq + *k;
                *k += 1;
                let key = &self.nodes[node].cfg.key;
                let e = Envelope::new(
                    key.public(),
                    self.params.chain_id,
                    seq,
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
            timeouts: self.nodes[node].cfg.timing.timeouts,
        };
        let out = f(&mut b.adversary, &mut ctx, &mut self.coalition);
        self.nodes[node].byzantine = Some(b);
        out
    }
}
