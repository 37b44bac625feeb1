//! Floods: traffic a Byzantine validator adds beside what its driver
//! sends, meant to cost the others work and memory or push honest
//! messages out of their buffers. Every flood message must be refused or
//! ignored cheaply and bounded by the driver's quotas.

use undchain_types::msg::{
    BlockRequest, BlockResponse, CommittedBlock, Evidence, Proposal, Round, SignedVote, Vote,
    VoteKind,
};
use undchain_types::{BlockNumber, BoundedVec, Hash32, Message, SigningKey};

use super::{Actor, ActorCtx, Coalition, Send, fresh_header};
use crate::certificate::certificate_from_precommits;

/// What a [`Flood`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FloodKind {
    /// Messages nobody should accept: votes with broken signatures
    /// claiming members, votes signed by strangers, proposals by a
    /// validator that does not propose the round, decided blocks
    /// certified by strangers, evidence that does not verify.
    Junk,
    /// Its own validly signed traffic: votes for random values in the
    /// next rounds (equivocation up to the per-slot cap), repeats of what
    /// it sent, block requests.
    Spam,
    /// Its own signed votes for the next height (over many rounds, some
    /// beyond the round window) and for heights far ahead.
    FarFuture,
}

/// Adds `per_send` flood messages per recipient to each of the
/// validator's own proposals and votes.
#[derive(Debug, Clone)]
pub struct Flood {
    kind: FloodKind,
    per_send: u32,
    strangers: Vec<SigningKey>,
}

impl Flood {
    /// A flood of `kind`, `per_send` messages per recipient and output.
    pub fn new(kind: FloodKind, per_send: u32) -> Self {
        let strangers = (0..4u8)
            .map(|i| SigningKey::from_seed([0xf0 ^ i; 32]))
            .collect();
        Flood {
            kind,
            per_send,
            strangers,
        }
    }

    /// The kind of traffic it sends.
    pub fn kind(&self) -> FloodKind {
        self.kind
    }

    /// A vote of the validator for height `height`, round `round`.
    fn own_vote(ctx: &mut ActorCtx<'_>, height: BlockNumber, round: Round) -> SignedVote {
        let kind = if ctx.rng.chance(500) {
            VoteKind::Prevote
        } else {
            VoteKind::Precommit
        };
        let value = ctx.rng.chance(800).then(|| random_hash(ctx));
        Vote {
            chain_id: ctx.chain_id,
            height,
            round,
            kind,
            value,
            validator: ctx.key.public(),
        }
        .sign(ctx.key)
    }

    fn junk(&self, ctx: &mut ActorCtx<'_>, sample: &Message) -> Message {
        let h = ctx.height;
        match ctx.rng.below(5) {
            0 => {
                let mut v = Self::own_vote(ctx, h, 0);
                let seat = ctx.rng.below(ctx.set.len() as u64) as usize;
                v.vote.validator = ctx.set.seats()[seat].id;
                v.signature.0[ctx.rng.below(64) as usize] ^= 1;
                Message::Vote(v)
            }
            1 => {
                let k = &self.strangers[ctx.rng.below(self.strangers.len() as u64) as usize];
                let mut v = Self::own_vote(ctx, h, 0);
                v.vote.validator = k.public();
                Message::Vote(v.vote.sign(k))
            }
            2 => match sample {
                Message::Proposal(p) => {
                    // Its own proposal for a round it does not propose.
                    let round = p.proposal.round + 1 + ctx.rng.below(3) as Round;
                    let q = Proposal {
                        round,
                        header: fresh_header(&p.proposal.header, b"junk"),
                        ..p.proposal.clone()
                    };
                    Message::Proposal(q.sign(ctx.key))
                }
                _ => self.bogus_block(ctx),
            },
            3 => self.bogus_block(ctx),
            _ => {
                let a = Self::own_vote(ctx, h, 0);
                let mut b = a.clone();
                b.vote.value = Some(random_hash(ctx));
                Message::Evidence(Evidence::DoubleVote {
                    first: a,
                    second: b,
                })
            }
        }
    }

    /// A decided block for the next height, certified by strangers.
    fn bogus_block(&self, ctx: &mut ActorCtx<'_>) -> Message {
        let n = ctx.height.next();
        let header = undchain_types::BlockHeader {
            chain_id: ctx.chain_id,
            epoch: 0,
            number: n,
            time: Default::default(),
            parent: random_hash(ctx),
            job_root: random_hash(ctx),
            job_count: 0,
            ops_root: Hash32::ZERO,
            ops_count: 0,
            ledger_root: Hash32::ZERO,
            validator_set_hash: ctx.set.hash_with(ctx.hash_algorithm),
            links: Default::default(),
            parent_signers: 0,
            evidence: Default::default(),
        };
        let id = header.hash_with(ctx.hash_algorithm);
        let votes: Vec<SignedVote> = self
            .strangers
            .iter()
            .map(|k| {
                Vote {
                    chain_id: ctx.chain_id,
                    height: n,
                    round: 0,
                    kind: VoteKind::Precommit,
                    value: Some(id),
                    validator: k.public(),
                }
                .sign(k)
            })
            .collect();
        let certificate = certificate_from_precommits(ctx.chain_id, n, 0, id, &votes);
        Message::BlockResponse(BlockResponse {
            blocks: BoundedVec::truncating(vec![CommittedBlock {
                header,
                certificate,
            }]),
            tip: n,
        })
    }

    fn spam(ctx: &mut ActorCtx<'_>, sample: &Message) -> Message {
        let round = match sample {
            Message::Vote(v) => v.vote.round,
            Message::Proposal(p) => p.proposal.round,
            _ => 0,
        };
        match ctx.rng.below(4) {
            0 => sample.clone(),
            1 => Message::BlockRequest(BlockRequest {
                from: ctx.height,
                max: 64,
            }),
            _ => {
                let r = round + ctx.rng.below(8) as Round;
                Message::Vote(Self::own_vote(ctx, ctx.height, r))
            }
        }
    }

    fn far_future(ctx: &mut ActorCtx<'_>) -> Message {
        let (height, round) = if ctx.rng.chance(500) {
            (ctx.height.next(), ctx.rng.below(100) as Round)
        } else {
            let ahead = ctx.rng.range(2, 1_000);
            (
                BlockNumber(ctx.height.0.saturating_add(ahead)),
                ctx.rng.below(4) as Round,
            )
        };
        Message::Vote(Self::own_vote(ctx, height, round))
    }
}

/// 32 random bytes from the run's stream.
fn random_hash(ctx: &mut ActorCtx<'_>) -> Hash32 {
    let mut b = [0u8; 32];
    for chunk in b.chunks_mut(8) {
        chunk.copy_from_slice(&ctx.rng.next_u64().to_le_bytes());
    }
    Hash32(b)
}

impl Actor for Flood {
    fn name(&self) -> &'static str {
        match self.kind {
            FloodKind::Junk => "junk-flood",
            FloodKind::Spam => "spam-flood",
            FloodKind::FarFuture => "far-future-flood",
        }
    }

    fn outgoing(
        &mut self,
        ctx: &mut ActorCtx<'_>,
        _: &mut Coalition,
        mut sends: Vec<Send>,
    ) -> Vec<Send> {
        let Some(sample) = sends.first().map(|s| s.msg.clone()) else {
            return sends;
        };
        let me = ctx.key.public();
        let mine = match &sample {
            Message::Proposal(p) => p.proposal.proposer == me,
            Message::Vote(v) => v.vote.validator == me,
            _ => false,
        };
        if !mine {
            return sends;
        }
        let targets: Vec<_> = sends.iter().map(|s| s.to).collect();
        for to in targets {
            for _ in 0..self.per_send {
                let msg = match self.kind {
                    FloodKind::Junk => self.junk(ctx, &sample),
                    FloodKind::Spam => Self::spam(ctx, &sample),
                    FloodKind::FarFuture => Self::far_future(ctx),
                };
                sends.push(Send { to, msg });
            }
        }
        sends
    }
}
