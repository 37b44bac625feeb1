//! The coalition as the network: partial synchrony lets an adversary
//! choose message delays until the network heals (GST), so a simulator
//! asks the coalition, for every message while its faults last, how long
//! to hold it back ([`super::Actor::hold`]). After the heal nothing is
//! held, so liveness is still owed.

use undchain_types::msg::{Round, Vote, VoteKind};
use undchain_types::{BlockNumber, Message, PublicKey};

use super::actors::{on_own, revote, to_all};
use super::{Actor, ActorCtx, Coalition, Send};
use crate::round::TimeoutKind;

/// At a height whose first rounds honest validators propose (at most
/// three of them), makes those rounds fail by delay and
/// splits the honest validators' locks in the last of them, just before a
/// coalition member proposes. This is what a single Byzantine validator at
/// n = 4, which proposes one round in four, needs to attack a claimed
/// proof-of-lock round: over a synchronous network the three honest
/// validators are a quorum of their own and lock together. The parts:
///
/// * the network: each such round's proposal (the proposer's and every
///   relay of it) is held back until `timeoutPropose` and
///   `timeoutPrevote` have passed, from every other honest validator in
///   the rounds that are to fail, and in the last one from the honest
///   validators beyond the q - b that can lock with the coalition: they
///   prevote nil, never see the value, and only the others lock;
/// * in the rounds that are to fail it votes nil;
/// * in a split round (this one, or one the coalition's proposer split
///   with another member proposing next, [`super::SplitHalves`]) its own
///   driver does not get the honest prevotes for the round's target, so it
///   neither locks nor decides there (with its own precommit the lockers'
///   would be a quorum) and reaches the next round on time; the precommit
///   for the target is signed here instead and held back with the
///   coalition's others ([`super::WithholdPrecommits`] releases them to
///   one locker when the next round proposes another value), and what
///   would tell the others that this locker decided (its messages of the
///   next height, decided blocks) is held back too.
#[derive(Debug, Clone, Copy, Default)]
pub struct DelayProposal;

/// Most rounds made to fail before the split (each takes longer than the
/// one before; the network heals meanwhile).
const MAX_FAILED: Round = 2;

impl DelayProposal {
    /// The honest validators the proposal of (`height`, `round`) is held
    /// back from: at a height whose round 0 an honest validator proposes,
    /// in each honest round before the coalition's first, everyone but the
    /// proposer (the round fails: nobody else sees the value), and in the
    /// last of them the honest validators beyond the q - b that lock with
    /// the coalition (the split). Empty in every other round.
    pub fn slowed(
        ctx: &ActorCtx<'_>,
        c: &Coalition,
        height: BlockNumber,
        round: Round,
    ) -> Vec<PublicKey> {
        Self::plan(ctx, c, height, round).map_or_else(Vec::new, |(slowed, _)| slowed)
    }

    /// The split round of `height` if `from` is the locker the coalition's
    /// held-back precommits go to: what would tell the others that it
    /// decided there (its messages of the next height, decided blocks) is
    /// held back too, so that they meet the next round's value first.
    fn gagged(
        ctx: &ActorCtx<'_>,
        c: &Coalition,
        from: PublicKey,
        height: BlockNumber,
    ) -> Option<Round> {
        let r = *c.withheld_round.get(&height)?;
        (Self::attacked(ctx, c, height, r) && c.victim(ctx.set, height, r) == Some(from))
            .then_some(r)
    }

    /// Whether (`height`, `round`) is a round whose locks are split just
    /// before a coalition member proposes: split here by delay, or by the
    /// coalition's own proposer ([`super::SplitHalves`]) with another
    /// member proposing next.
    fn attacked(ctx: &ActorCtx<'_>, c: &Coalition, height: BlockNumber, round: Round) -> bool {
        let own_split = c
            .splits
            .get(&(height, round))
            .is_some_and(|s| s.other.is_some())
            && height == ctx.height
            && c.contains(&ctx.set.proposer(height, round))
            && c.contains(&ctx.set.proposer(height, round.saturating_add(1)));
        own_split || Self::splits(ctx, c, height, round)
    }

    /// Whether (`height`, `round`) is the round whose locks are split by
    /// delay.
    fn splits(ctx: &ActorCtx<'_>, c: &Coalition, height: BlockNumber, round: Round) -> bool {
        Self::plan(ctx, c, height, round).is_some_and(|(_, split)| split)
    }

    /// [`Self::slowed`], and whether the round is the split.
    fn plan(
        ctx: &ActorCtx<'_>,
        c: &Coalition,
        height: BlockNumber,
        round: Round,
    ) -> Option<(Vec<PublicKey>, bool)> {
        let proposer = ctx.set.proposer(height, round);
        if height != ctx.height || c.contains(&proposer) {
            return None;
        }
        // The coalition's first round of the height (n rounds visit every
        // seat); none at round 0, which it would rather split itself.
        let n = Round::try_from(ctx.set.len()).ok()?;
        let first = (0..n).find(|r| c.contains(&ctx.set.proposer(height, *r)))?;
        if first == 0 || first > MAX_FAILED + 1 || round >= first {
            return None;
        }
        let mut others: Vec<PublicKey> = c
            .honest(ctx.set)
            .into_iter()
            .filter(|id| *id != proposer)
            .collect();
        if round + 1 < first {
            return Some((others, false));
        }
        let b = ctx.set.seats().iter().filter(|s| c.contains(&s.id)).count();
        // The proposer and `keep - 1` others lock with the coalition.
        let keep = ctx.set.quorum().saturating_sub(b);
        if keep == 0 || others.len() < keep {
            return None;
        }
        Some((others.split_off(keep - 1), true))
    }
}

impl Actor for DelayProposal {
    fn name(&self) -> &'static str {
        "delay-proposal"
    }

    /// In a round that is to fail, its own votes are nil (whatever the
    /// actors before it made of them), so no precommit is held back there.
    fn outgoing(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        sends: Vec<Send>,
    ) -> Vec<Send> {
        on_own(ctx, sends, |ctx, sends, m| match &m {
            Message::Vote(v)
                if v.vote.value.is_some()
                    && Self::plan(ctx, c, v.vote.height, v.vote.round)
                        .is_some_and(|(_, split)| !split) =>
            {
                to_all(&sends, &revote(ctx, v, None))
            }
            _ => sends,
        })
    }

    fn controls_network(&self) -> bool {
        true
    }

    fn admits(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        from: PublicKey,
        msg: &Message,
    ) -> bool {
        let Message::Vote(v) = msg else {
            return true;
        };
        let (h, r) = (v.vote.height, v.vote.round);
        let hidden = v.vote.kind == VoteKind::Prevote
            && !c.contains(&from)
            && !c.contains(&v.vote.validator)
            && v.vote.value.is_some()
            && v.vote.value == c.targets.get(&(h, r)).copied()
            && Self::attacked(ctx, c, h, r);
        !hidden
    }

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
        let (h, r) = (v.vote.height, v.vote.round);
        let Some(target) = c.targets.get(&(h, r)).copied() else {
            return Vec::new();
        };
        // An honest precommit for the target: the lockers have their
        // polka, so the coalition's precommits are due (and held).
        // Once released (the round's entry is gone), never again.
        let released = c.withheld_round.get(&h) == Some(&r) && !c.withheld.contains_key(&(h, r));
        if v.vote.kind != VoteKind::Precommit
            || v.vote.value != Some(target)
            || c.contains(&v.vote.validator)
            || c.withheld_round.get(&h).is_some_and(|w| *w != r)
            || released
            || !Self::attacked(ctx, c, h, r)
        {
            return Vec::new();
        }
        let mine = Vote {
            chain_id: ctx.chain_id,
            height: h,
            round: r,
            kind: VoteKind::Precommit,
            value: Some(target),
            validator: ctx.key.public(),
        }
        .sign(ctx.key);
        c.withheld_round.insert(h, r);
        let held = c.withheld.entry((h, r)).or_default();
        if !held.iter().any(|x| x.vote == mine.vote) {
            held.push(mine);
        }
        Vec::new()
    }

    fn hold(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        c: &mut Coalition,
        from: PublicKey,
        to: PublicKey,
        msg: &Message,
    ) -> u64 {
        let next_of = |h: BlockNumber| BlockNumber(h.0.saturating_sub(1));
        let told = match msg {
            Message::Proposal(p) => Some(next_of(p.proposal.height)),
            Message::Vote(v) => Some(next_of(v.vote.height)),
            Message::BlockResponse(_) => Some(ctx.height),
            _ => None,
        };
        if let Some(r) = told.and_then(|h| Self::gagged(ctx, c, from, h)) {
            return ctx
                .timeouts
                .duration(TimeoutKind::Propose, r.saturating_add(1));
        }
        let Message::Proposal(p) = msg else {
            return 0;
        };
        let (h, r) = (p.proposal.height, p.proposal.round);
        if !Self::slowed(ctx, c, h, r).contains(&to) {
            return 0;
        }
        ctx.timeouts
            .duration(TimeoutKind::Propose, r)
            .saturating_add(ctx.timeouts.duration(TimeoutKind::Prevote, r))
    }
}
