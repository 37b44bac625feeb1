//! The actors that rewrite what a Byzantine validator sends (see the
//! table in [`super`]). Each signs with the validator's real key, so the
//! network sees genuinely signed misbehaviour; messages it relays (signed
//! by others) pass unchanged, since only its own signature is at its
//! disposal.

use undchain_types::Message;
use undchain_types::msg::{Proposal, Round, SignedProposal, SignedVote, Vote, VoteKind};
use undchain_types::{BlockNumber, Hash32, HashContext, PublicKey, hash};

use super::{Actor, ActorCtx, Coalition, Send, Split, fresh_header};

/// Whether `msg` is a proposal or vote signed by the actor's validator.
fn own(ctx: &ActorCtx<'_>, msg: &Message) -> bool {
    let me = ctx.key.public();
    match msg {
        Message::Proposal(p) => p.proposal.proposer == me,
        Message::Vote(v) => v.vote.validator == me,
        _ => false,
    }
}

/// `v` re-signed for `value`.
pub(super) fn revote(ctx: &ActorCtx<'_>, v: &SignedVote, value: Option<Hash32>) -> Message {
    Message::Vote(
        Vote {
            value,
            ..v.vote.clone()
        }
        .sign(ctx.key),
    )
}

/// `p` re-signed after `change`.
fn repropose(
    ctx: &ActorCtx<'_>,
    p: &SignedProposal,
    change: impl FnOnce(&mut Proposal),
) -> SignedProposal {
    let mut proposal = p.proposal.clone();
    change(&mut proposal);
    proposal.sign(ctx.key)
}

/// The same message to everyone `sends` goes to.
pub(super) fn to_all(sends: &[Send], msg: &Message) -> Vec<Send> {
    sends
        .iter()
        .map(|s| Send {
            to: s.to,
            msg: msg.clone(),
        })
        .collect()
}

/// Applies `f` to the first of `sends` when it is the validator's own
/// proposal or vote (an output goes to all its recipients at once, so the
/// first tells what it is), else passes them on.
pub(super) fn on_own(
    ctx: &mut ActorCtx<'_>,
    sends: Vec<Send>,
    f: impl FnOnce(&mut ActorCtx<'_>, Vec<Send>, Message) -> Vec<Send>,
) -> Vec<Send> {
    match sends.first().map(|s| s.msg.clone()) {
        Some(m) if own(ctx, &m) => f(ctx, sends, m),
        _ => sends,
    }
}

/// Sends nothing at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Actor for Silent {
    fn name(&self) -> &'static str {
        "silent"
    }

    fn outgoing(&mut self, _: &mut ActorCtx<'_>, _: &mut Coalition, _: Vec<Send>) -> Vec<Send> {
        Vec::new()
    }
}

/// Votes nil whatever it saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct NilVoter;

impl Actor for NilVoter {
    fn name(&self) -> &'static str {
        "nil-voter"
    }

    fn outgoing(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        _: &mut Coalition,
        sends: Vec<Send>,
    ) -> Vec<Send> {
        on_own(ctx, sends, |ctx, sends, m| match &m {
            Message::Vote(v) if v.vote.value.is_some() => to_all(&sends, &revote(ctx, v, None)),
            _ => sends,
        })
    }
}

/// Behaves, but also re-sends up to two old messages (its own and others',
/// from the coalition's history) to random validators with each output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Replayer;

impl Actor for Replayer {
    fn name(&self) -> &'static str {
        "replayer"
    }

    fn outgoing(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        mut sends: Vec<Send>,
    ) -> Vec<Send> {
        if let Some(first) = sends.first() {
            c.remember(&first.msg);
        }
        for _ in 0..ctx.rng.below(3) {
            if c.history.is_empty() || ctx.peers.is_empty() {
                break;
            }
            let old = ctx.rng.below(c.history.len() as u64) as usize;
            if let Some(to) = ctx.rng.pick(ctx.peers) {
                sends.push(Send {
                    to,
                    msg: c.history[old].clone(),
                });
            }
        }
        sends
    }

    fn observe(
        &mut self,
        _: &mut ActorCtx<'_>,
        c: &mut Coalition,
        _: PublicKey,
        msg: &Message,
    ) -> Vec<Send> {
        c.remember(msg);
        Vec::new()
    }
}

/// Forgets its lock and valid value. As proposer it proposes a fresh
/// value instead of re-proposing its valid one (no proof-of-lock round);
/// it prevotes and precommits the coalition's target of the round (the
/// round's proposal as first seen, or the coalition's own fresh value),
/// whatever it is locked on and whatever polka it saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Amnesia;

impl Actor for Amnesia {
    fn name(&self) -> &'static str {
        "amnesia"
    }

    fn outgoing(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        sends: Vec<Send>,
    ) -> Vec<Send> {
        on_own(ctx, sends, |ctx, sends, m| match &m {
            Message::Proposal(p) => {
                let slot = (p.proposal.height, p.proposal.round);
                if p.proposal.pol_round.is_some() && !c.targets.contains_key(&slot) {
                    let salt = p.proposal.round.to_le_bytes();
                    let fresh = repropose(ctx, p, |q| {
                        q.header = fresh_header(&q.header, &salt);
                        q.pol_round = None;
                    });
                    c.targets
                        .insert(slot, fresh.proposal.header.hash_with(ctx.hash_algorithm));
                    to_all(&sends, &Message::Proposal(fresh))
                } else {
                    c.targets
                        .entry(slot)
                        .or_insert_with(|| p.proposal.header.hash_with(ctx.hash_algorithm));
                    sends
                }
            }
            Message::Vote(v) => {
                let (h, r) = (v.vote.height, v.vote.round);
                let Some(t) = c.targets.get(&(h, r)).copied() else {
                    return sends;
                };
                let mut out = if v.vote.value != Some(t) {
                    to_all(&sends, &revote(ctx, v, Some(t)))
                } else {
                    sends
                };
                // Once the coalition holds precommits of an earlier round
                // back, the round is the attack: precommit the target at
                // once, with the prevote, not after its own timeouts.
                let attack = c.withheld_round.get(&h).is_some_and(|w| *w < r);
                if attack && v.vote.kind == VoteKind::Prevote {
                    let pc = Vote {
                        kind: VoteKind::Precommit,
                        value: Some(t),
                        ..v.vote.clone()
                    }
                    .sign(ctx.key);
                    let extra = to_all(&out, &Message::Vote(pc));
                    out.extend(extra);
                }
                out
            }
            _ => sends,
        })
    }

    fn observe(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        _: PublicKey,
        msg: &Message,
    ) -> Vec<Send> {
        if let Message::Proposal(p) = msg {
            let (h, r) = (p.proposal.height, p.proposal.round);
            let proposer_ok = h != ctx.height || ctx.set.proposer(h, r) == p.proposal.proposer;
            if proposer_ok && p.verify().is_ok() {
                c.targets
                    .entry((h, r))
                    .or_insert_with(|| p.proposal.header.hash_with(ctx.hash_algorithm));
            }
        }
        Vec::new()
    }
}

/// As proposer in a round after the first, proposes a fresh value and
/// claims the previous round as its proof-of-lock round (`vr = round -
/// 1`), though no polka for it exists there; the value becomes the
/// coalition's target of the round.
#[derive(Debug, Clone, Copy, Default)]
pub struct FakeValidRound;

impl Actor for FakeValidRound {
    fn name(&self) -> &'static str {
        "fake-valid-round"
    }

    fn outgoing(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        sends: Vec<Send>,
    ) -> Vec<Send> {
        on_own(ctx, sends, |ctx, sends, m| match &m {
            Message::Proposal(p) if p.proposal.round > 0 => {
                let round = p.proposal.round;
                let fake = repropose(ctx, p, |q| {
                    q.header = fresh_header(&q.header, b"fake valid round");
                    q.pol_round = Some(round - 1);
                });
                c.targets.insert(
                    (p.proposal.height, round),
                    fake.proposal.header.hash_with(ctx.hash_algorithm),
                );
                to_all(&sends, &Message::Proposal(fake))
            }
            _ => sends,
        })
    }
}

/// As proposer, shows its value to the "lockers", just enough honest
/// validators to reach q with the coalition (never the next round's
/// proposer, who should stay without a valid value), and a fresh value to
/// the other honest validators; prevotes for the lockers' value go to the
/// lockers (and the coalition) only. The lockers lock, nobody else sees
/// the polka.
#[derive(Debug, Clone, Copy, Default)]
pub struct SplitHalves;

impl SplitHalves {
    /// The split of `round` at the actor's height, made now if this
    /// validator proposes `value` there.
    fn plan(
        ctx: &ActorCtx<'_>,
        c: &Coalition,
        round: Round,
        value: Hash32,
        other: Hash32,
    ) -> Option<Split> {
        let b = ctx.set.seats().iter().filter(|s| c.contains(&s.id)).count();
        let next = ctx.set.proposer(ctx.height, round.saturating_add(1));
        let mut honest = c.honest(ctx.set);
        // One locker more than q needs, if some honest validator is left
        // over, so a lost message does not spoil the locks.
        let want = (ctx.set.quorum().checked_sub(b)? + 1).min(honest.len().saturating_sub(1));
        if want == 0 || want + b < ctx.set.quorum() {
            return None;
        }
        // The next round's proposer (if honest) goes to the rest.
        honest.sort_by_key(|id| *id == next);
        let rest = honest.split_off(want);
        Some(Split {
            lockers: honest,
            rest,
            value,
            other: Some(other),
        })
    }
}

impl Actor for SplitHalves {
    fn name(&self) -> &'static str {
        "split-halves"
    }

    fn outgoing(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        sends: Vec<Send>,
    ) -> Vec<Send> {
        on_own(ctx, sends, |ctx, sends, m| match &m {
            // Not once precommits are held back at this height: the
            // coalition's later proposal is the attack, shown to all.
            Message::Proposal(p)
                if p.proposal.height == ctx.height
                    && !c.withheld_round.contains_key(&ctx.height) =>
            {
                let round = p.proposal.round;
                let alt = repropose(ctx, p, |q| q.header = fresh_header(&q.header, b"split"));
                let (value, other) = (
                    p.proposal.header.hash_with(ctx.hash_algorithm),
                    alt.proposal.header.hash_with(ctx.hash_algorithm),
                );
                let Some(split) = Self::plan(ctx, c, round, value, other) else {
                    return sends;
                };
                let out = sends
                    .iter()
                    .map(|s| Send {
                        to: s.to,
                        msg: if split.rest.contains(&s.to) {
                            Message::Proposal(alt.clone())
                        } else {
                            s.msg.clone()
                        },
                    })
                    .collect();
                c.splits.insert((ctx.height, round), split);
                c.targets.entry((ctx.height, round)).or_insert(value);
                out
            }
            Message::Vote(v) if v.vote.kind == VoteKind::Prevote => {
                let slot = (v.vote.height, v.vote.round);
                let Some(value) = v.vote.value else {
                    return sends;
                };
                match c.splits.get(&slot) {
                    // Its own split: the prevote goes to the lockers.
                    Some(s) if s.other.is_some() => {
                        if value != s.value {
                            return sends;
                        }
                        let rest = s.rest.clone();
                        sends
                            .into_iter()
                            .filter(|x| !rest.contains(&x.to))
                            .collect()
                    }
                    Some(s) if value != s.value => sends,
                    _ if !Self::setting_up(ctx, c, v.vote.height, v.vote.round) => sends,
                    // An honest proposer's round, locks not set up yet: the
                    // honest get this prevote only once seen prevoting the
                    // same value (see `observe`).
                    _ => sends.into_iter().filter(|x| c.contains(&x.to)).collect(),
                }
            }
            _ => sends,
        })
    }

    /// An honest validator prevoted the coalition's target in an honest
    /// proposer's round, before any lock was set up at this height: this
    /// validator's own prevote for it goes to that validator (it may lock),
    /// and the validator joins the round's lockers.
    fn observe(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        _: PublicKey,
        msg: &Message,
    ) -> Vec<Send> {
        let Message::Vote(v) = msg else {
            return Vec::new();
        };
        let (voter, h, r) = (v.vote.validator, v.vote.height, v.vote.round);
        let Some(value) = v.vote.value else {
            return Vec::new();
        };
        if v.vote.kind != VoteKind::Prevote
            || c.contains(&voter)
            || !Self::setting_up(ctx, c, h, r)
            || v.verify().is_err()
        {
            return Vec::new();
        }
        let target = *c.targets.entry((h, r)).or_insert(value);
        if target != value {
            return Vec::new();
        }
        let honest = c.honest(ctx.set);
        let split = c.splits.entry((h, r)).or_insert_with(|| Split {
            lockers: Vec::new(),
            rest: honest,
            value,
            other: None,
        });
        if split.other.is_some() || split.value != value || !split.rest.contains(&voter) {
            return Vec::new();
        }
        split.rest.retain(|x| *x != voter);
        split.lockers.push(voter);
        let mine = Vote {
            chain_id: ctx.chain_id,
            height: h,
            round: r,
            kind: VoteKind::Prevote,
            value: Some(value),
            validator: ctx.key.public(),
        }
        .sign(ctx.key);
        vec![Send {
            to: voter,
            msg: Message::Vote(mine),
        }]
    }
}

impl SplitHalves {
    /// Whether locks are still to be set up in (`height`, `round`): the
    /// validator's own height, an honest proposer's round, and no
    /// precommits held back at this height yet.
    fn setting_up(ctx: &ActorCtx<'_>, c: &Coalition, height: BlockNumber, round: Round) -> bool {
        height == ctx.height
            && !c.contains(&ctx.set.proposer(height, round))
            && !c.withheld_round.contains_key(&height)
    }
}

/// Sends different proposals and votes to the two halves of the honest
/// validators, and both versions of a vote to one of them (evidence).
/// Three modes: following its own splits only (an equivocating proposer
/// and its coalition), in every vote, or everywhere.
#[derive(Debug, Clone, Copy)]
pub struct Equivocator {
    proposals: bool,
    every_vote: bool,
}

impl Equivocator {
    /// As proposer, one value to each half; votes follow the split.
    pub fn following_splits() -> Self {
        Equivocator {
            proposals: true,
            every_vote: false,
        }
    }

    /// Every vote also goes out conflicting to one half.
    pub fn votes() -> Self {
        Equivocator {
            proposals: false,
            every_vote: true,
        }
    }

    /// Both: split proposals and conflicting votes in every step.
    pub fn everywhere() -> Self {
        Equivocator {
            proposals: true,
            every_vote: true,
        }
    }

    fn proposal(
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        sends: Vec<Send>,
        p: &SignedProposal,
    ) -> Vec<Send> {
        let alt = repropose(ctx, p, |q| {
            q.header = fresh_header(&q.header, b"equivocation")
        });
        let peers: Vec<PublicKey> = sends.iter().map(|s| s.to).collect();
        let (left, right) = c.halves(&peers);
        let (value, other) = (
            p.proposal.header.hash_with(ctx.hash_algorithm),
            alt.proposal.header.hash_with(ctx.hash_algorithm),
        );
        c.splits.insert(
            (p.proposal.height, p.proposal.round),
            Split {
                lockers: left.clone(),
                rest: right.clone(),
                value,
                other: Some(other),
            },
        );
        sends
            .into_iter()
            .map(|s| Send {
                msg: if right.contains(&s.to) {
                    Message::Proposal(alt.clone())
                } else {
                    s.msg
                },
                to: s.to,
            })
            .collect()
    }

    fn vote(
        &self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        sends: Vec<Send>,
        v: &SignedVote,
    ) -> Vec<Send> {
        let peers: Vec<PublicKey> = sends.iter().map(|s| s.to).collect();
        let split = c.splits.get(&(v.vote.height, v.vote.round)).cloned();
        let (left, right, lv, rv) = match (split, v.vote.value) {
            (Some(s), Some(_)) => (s.lockers, s.rest, Some(s.value), s.other),
            _ if self.every_vote => {
                let (l, r) = c.halves(&peers);
                let alt = match v.vote.value {
                    Some(_) => None,
                    None => Some(hash(HashContext::JobFileNode, &v.vote.digest().0)),
                };
                (l, r, v.vote.value, alt)
            }
            _ => return sends,
        };
        let (ml, mr) = (revote(ctx, v, lv), revote(ctx, v, rv));
        let mut out: Vec<Send> = sends
            .iter()
            .map(|s| Send {
                to: s.to,
                msg: if right.contains(&s.to) && !left.contains(&s.to) {
                    mr.clone()
                } else {
                    ml.clone()
                },
            })
            .collect();
        if self.every_vote {
            if let Some(first) = right.iter().find(|r| peers.contains(r)) {
                out.push(Send {
                    to: *first,
                    msg: ml.clone(),
                });
            }
        }
        out
    }
}

impl Actor for Equivocator {
    fn name(&self) -> &'static str {
        match (self.proposals, self.every_vote) {
            (true, false) => "equivocating-proposer",
            (false, _) => "double-voter",
            (true, true) => "equivocate-every-step",
        }
    }

    fn outgoing(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        sends: Vec<Send>,
    ) -> Vec<Send> {
        let this = *self;
        on_own(ctx, sends, |ctx, sends, m| match &m {
            Message::Proposal(p) if this.proposals => Self::proposal(ctx, c, sends, p),
            Message::Vote(v) => this.vote(ctx, c, sends, v),
            _ => sends,
        })
    }
}

/// Keeps back its precommits for a value in the first round of a height
/// in which the coalition precommits one, and releases them (all the
/// coalition's, together) to one victim, the first locker of that round's
/// split, as soon as a later round of the height proposes another value:
/// the victim may then decide the old value while the others move on.
#[derive(Debug, Clone, Copy, Default)]
pub struct WithholdPrecommits;

impl WithholdPrecommits {
    /// The sends that release precommits held for `height` before `round`
    /// against a proposal of `value` in `round`.
    fn release(
        ctx: &ActorCtx<'_>,
        c: &mut Coalition,
        height: BlockNumber,
        round: Round,
        value: Hash32,
    ) -> Vec<Send> {
        let due: Vec<(BlockNumber, Round)> = c
            .withheld
            .iter()
            .filter(|((h, r), votes)| {
                *h == height && *r < round && votes.iter().any(|v| v.vote.value != Some(value))
            })
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::new();
        for (h, r) in due {
            let Some(victim) = c.victim(ctx.set, h, r) else {
                continue;
            };
            // Twice: a lossy network should not save the victim.
            for v in c.withheld.remove(&(h, r)).unwrap_or_default() {
                for _ in 0..2 {
                    out.push(Send {
                        to: victim,
                        msg: Message::Vote(v.clone()),
                    });
                }
            }
        }
        out
    }
}

impl Actor for WithholdPrecommits {
    fn name(&self) -> &'static str {
        "withhold-precommits"
    }

    fn outgoing(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        sends: Vec<Send>,
    ) -> Vec<Send> {
        let height = ctx.height;
        c.withheld.retain(|(h, _), _| *h >= height);
        c.withheld_round.retain(|h, _| *h >= height);
        on_own(ctx, sends, |ctx, mut sends, m| match &m {
            Message::Vote(v) if v.vote.kind == VoteKind::Precommit && v.vote.value.is_some() => {
                let (h, r) = (v.vote.height, v.vote.round);
                if *c.withheld_round.entry(h).or_insert(r) != r {
                    return sends;
                }
                let held = c.withheld.entry((h, r)).or_default();
                if !held.contains(v) {
                    held.push(v.clone());
                }
                Vec::new()
            }
            Message::Proposal(p) => {
                let value = p.proposal.header.hash_with(ctx.hash_algorithm);
                sends.extend(Self::release(
                    ctx,
                    c,
                    p.proposal.height,
                    p.proposal.round,
                    value,
                ));
                sends
            }
            _ => sends,
        })
    }

    fn observe(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        _: PublicKey,
        msg: &Message,
    ) -> Vec<Send> {
        match msg {
            Message::Proposal(p) if p.proposal.height == ctx.height => {
                let value = p.proposal.header.hash_with(ctx.hash_algorithm);
                Self::release(ctx, c, p.proposal.height, p.proposal.round, value)
            }
            _ => Vec::new(),
        }
    }
}
