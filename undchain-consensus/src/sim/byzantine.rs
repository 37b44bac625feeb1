//! Byzantine actors, reusable across simulations (in the manner of
//! Commonware's `mocks/equivocator.rs`, `nuller.rs`): each wraps an honest
//! driver and rewrites what it sends, signing with the validator's real key,
//! so the rest of the network sees genuinely signed misbehaviour.
//!
//! Byzantine validators collude through a [`Coalition`]: an equivocating
//! proposer tells the others which value it showed to which half of the
//! honest validators, and they vote accordingly. With at most f of them this
//! must never fork the chain; with f+1 (for n = 3f+1) it does, which is the
//! simulator's negative control.

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::msg::{Round, Vote};
use undchain_types::{BlockNumber, Hash32, HashAlgorithm, HashContext, Message, SigningKey, hash};

use undchain_sim::SplitMix64;

/// One Byzantine behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Behaviour {
    /// As proposer, shows one value to half of the honest validators and
    /// another to the other half; votes for each half's value to that half.
    EquivocatingProposer,
    /// Sends its vote to half the validators and a conflicting one to the
    /// other half (and both to one, so evidence appears).
    DoubleVoter,
    /// Always votes nil.
    NilVoter,
    /// Sends nothing at all.
    Silent,
    /// Behaves, but also re-sends old messages (its own and others') to
    /// random validators.
    Replayer,
}

impl Behaviour {
    /// Every behaviour, in the order seeds draw them.
    pub const ALL: [Behaviour; 5] = [
        Behaviour::EquivocatingProposer,
        Behaviour::DoubleVoter,
        Behaviour::NilVoter,
        Behaviour::Silent,
        Behaviour::Replayer,
    ];

    /// The behaviour's name on the command line and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Behaviour::EquivocatingProposer => "equivocating-proposer",
            Behaviour::DoubleVoter => "double-voter",
            Behaviour::NilVoter => "nil-voter",
            Behaviour::Silent => "silent",
            Behaviour::Replayer => "replayer",
        }
    }

    /// The behaviour of a name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == s)
    }
}

/// Most messages a replayer remembers.
const HISTORY: usize = 512;

/// What colluding Byzantine validators share.
#[derive(Debug, Clone, Default)]
pub struct Coalition {
    members: BTreeSet<usize>,
    /// (height, round) -> (value shown to the left half, to the right half).
    splits: BTreeMap<(BlockNumber, Round), (Hash32, Hash32)>,
    history: Vec<Message>,
}

impl Coalition {
    /// A coalition of the given node indices.
    pub fn new(members: impl IntoIterator<Item = usize>) -> Self {
        Coalition {
            members: members.into_iter().collect(),
            ..Coalition::default()
        }
    }

    /// Whether `node` is Byzantine.
    pub fn contains(&self, node: usize) -> bool {
        self.members.contains(&node)
    }

    /// Remembers a message a replayer saw.
    pub fn observe(&mut self, msg: &Message) {
        if matches!(msg, Message::Proposal(_) | Message::Vote(_)) {
            if self.history.len() >= HISTORY {
                self.history.remove(0);
            }
            self.history.push(msg.clone());
        }
    }

    /// The halves: honest recipients split in two by index; Byzantine
    /// recipients go with the left half.
    fn halves(&self, recipients: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let mut honest: Vec<usize> = recipients
            .iter()
            .copied()
            .filter(|r| !self.members.contains(r))
            .collect();
        honest.sort_unstable();
        let right = honest.split_off(honest.len().div_ceil(2));
        let mut left = honest;
        left.extend(
            recipients
                .iter()
                .copied()
                .filter(|r| self.members.contains(r)),
        );
        (left, right)
    }
}

/// What an actor needs to rewrite one outgoing message.
#[derive(Debug)]
pub struct ActorCtx<'a> {
    /// The Byzantine node's key.
    pub key: &'a SigningKey,
    /// Everyone the message would go to.
    pub recipients: &'a [usize],
    /// The run's random stream (rewrites that draw stay reproducible).
    pub rng: &'a mut SplitMix64,
    /// The chain's hash algorithm, to name rewritten values by their id.
    pub hash_algorithm: HashAlgorithm,
}

/// Rewrites one outgoing message of a Byzantine node with `behaviour`:
/// returns (recipient, message) pairs to send instead.
pub fn transform(
    behaviour: Behaviour,
    ctx: ActorCtx<'_>,
    coalition: &mut Coalition,
    msg: Message,
) -> Vec<(usize, Message)> {
    let everyone = |m: &Message| {
        ctx.recipients
            .iter()
            .map(|r| (*r, m.clone()))
            .collect::<Vec<_>>()
    };
    // Messages it relays (signed by others) cannot be rewritten: only its
    // own signature is at its disposal.
    let own = match &msg {
        Message::Proposal(p) => p.proposal.proposer == ctx.key.public(),
        Message::Vote(v) => v.vote.validator == ctx.key.public(),
        _ => true,
    };
    if !own && behaviour != Behaviour::Silent {
        return everyone(&msg);
    }
    match (behaviour, msg) {
        (Behaviour::Silent, _) => Vec::new(),
        (Behaviour::NilVoter, Message::Vote(v)) if v.vote.value.is_some() => {
            let nil = Vote {
                value: None,
                ..v.vote
            }
            .sign(ctx.key);
            everyone(&Message::Vote(nil))
        }
        (Behaviour::EquivocatingProposer, Message::Proposal(p)) => {
            let mut alt = p.proposal.clone();
            alt.header.job_root = hash(HashContext::JobFileNode, &{
                let mut b = b"equivocation".to_vec();
                b.extend_from_slice(p.proposal.header.job_root.as_bytes());
                b
            });
            let id_left = p.proposal.header.hash_with(ctx.hash_algorithm);
            let id_right = alt.header.hash_with(ctx.hash_algorithm);
            coalition
                .splits
                .insert((p.proposal.height, p.proposal.round), (id_left, id_right));
            let alt = Message::Proposal(alt.sign(ctx.key));
            let (left, right) = coalition.halves(ctx.recipients);
            let mut out: Vec<(usize, Message)> = left
                .into_iter()
                .map(|r| (r, Message::Proposal(p.clone())))
                .collect();
            out.extend(right.into_iter().map(|r| (r, alt.clone())));
            out
        }
        (Behaviour::EquivocatingProposer | Behaviour::DoubleVoter, Message::Vote(v)) => {
            let (left, right) = coalition.halves(ctx.recipients);
            let split = coalition
                .splits
                .get(&(v.vote.height, v.vote.round))
                .copied();
            let (lv, rv) = match (split, v.vote.value) {
                // Follow the proposer's split: each half sees votes for
                // the value it was shown.
                (Some((l, r)), Some(_)) => (Some(l), Some(r)),
                _ if behaviour == Behaviour::DoubleVoter => {
                    let alt = match v.vote.value {
                        Some(_) => None,
                        None => Some(hash(HashContext::JobFileNode, &v.vote.digest().0)),
                    };
                    (v.vote.value, alt)
                }
                _ => return everyone(&Message::Vote(v)),
            };
            let sign = |value| {
                Message::Vote(
                    Vote {
                        value,
                        ..v.vote.clone()
                    }
                    .sign(ctx.key),
                )
            };
            let (ml, mr) = (sign(lv), sign(rv));
            let mut out: Vec<(usize, Message)> = left.iter().map(|r| (*r, ml.clone())).collect();
            out.extend(right.iter().map(|r| (*r, mr.clone())));
            // One honest validator sees both: evidence.
            if behaviour == Behaviour::DoubleVoter {
                if let Some(first) = right.first() {
                    out.push((*first, ml.clone()));
                }
            }
            out
        }
        (Behaviour::Replayer, m) => {
            coalition.observe(&m);
            let mut out = everyone(&m);
            let replays = ctx.rng.below(3);
            for _ in 0..replays {
                if coalition.history.is_empty() || ctx.recipients.is_empty() {
                    break;
                }
                let old = ctx.rng.below(coalition.history.len() as u64) as usize;
                if let Some(to) = ctx.rng.pick(ctx.recipients) {
                    out.push((to, coalition.history[old].clone()));
                }
            }
            out
        }
        (_, m) => everyone(&m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::msg::{Proposal, VoteKind};
    use undchain_types::{BlockHeader, ChainId};

    fn header() -> BlockHeader {
        BlockHeader {
            chain_id: ChainId(1),
            epoch: 0,
            number: BlockNumber(0),
            time: Default::default(),
            parent: Hash32::ZERO,
            job_root: Hash32([5; 32]),
            job_count: 1,
            ledger_root: Hash32::ZERO,
            validator_set_hash: Hash32::ZERO,
            links: Default::default(),
            parent_signers: 0,
        }
    }

    #[test]
    fn equivocator_splits_the_honest_and_coalition_follows() {
        let k0 = SigningKey::from_seed([1; 32]);
        let k1 = SigningKey::from_seed([2; 32]);
        let mut c = Coalition::new([0, 1]);
        let mut rng = SplitMix64::new(3);
        let p = Proposal {
            chain_id: ChainId(1),
            height: BlockNumber(0),
            round: 0,
            pol_round: None,
            header: header(),
            proposer: k0.public(),
            parent_certificate: None,
        }
        .sign(&k0);
        let recipients = [1, 2, 3];
        let out = transform(
            Behaviour::EquivocatingProposer,
            ActorCtx {
                key: &k0,
                recipients: &recipients,
                rng: &mut rng,
                hash_algorithm: HashAlgorithm::Blake3,
            },
            &mut c,
            Message::Proposal(p.clone()),
        );
        let to = |i: usize| {
            out.iter()
                .find(|(r, _)| *r == i)
                .map(|(_, m)| m.clone())
                .unwrap()
        };
        assert_eq!(to(2), Message::Proposal(p.clone()));
        assert_eq!(
            to(1),
            Message::Proposal(p.clone()),
            "coalition sees the left value"
        );
        let Message::Proposal(alt) = to(3) else {
            panic!()
        };
        assert_ne!(alt.proposal.header, p.proposal.header);
        alt.verify().unwrap();
        // The other member's prevote for the left value goes right as the
        // right value.
        let v = Vote {
            chain_id: ChainId(1),
            height: BlockNumber(0),
            round: 0,
            kind: VoteKind::Prevote,
            value: Some(p.proposal.header.hash()),
            validator: k1.public(),
        }
        .sign(&k1);
        let out = transform(
            Behaviour::DoubleVoter,
            ActorCtx {
                key: &k1,
                recipients: &[0, 2, 3],
                rng: &mut rng,
                hash_algorithm: HashAlgorithm::Blake3,
            },
            &mut c,
            Message::Vote(v),
        );
        let votes: Vec<(usize, Option<Hash32>)> = out
            .iter()
            .map(|(r, m)| match m {
                Message::Vote(v) => {
                    v.verify().unwrap();
                    (*r, v.vote.value)
                }
                _ => panic!(),
            })
            .collect();
        assert!(votes.contains(&(2, Some(p.proposal.header.hash()))));
        assert!(votes.contains(&(3, Some(alt.proposal.header.hash()))));
        assert!(
            votes.contains(&(3, Some(p.proposal.header.hash()))),
            "evidence pair"
        );
    }

    #[test]
    fn names_roundtrip_and_silent_sends_nothing() {
        for b in Behaviour::ALL {
            assert_eq!(Behaviour::parse(b.name()), Some(b));
        }
        let k = SigningKey::from_seed([1; 32]);
        let out = transform(
            Behaviour::Silent,
            ActorCtx {
                key: &k,
                recipients: &[1, 2],
                rng: &mut SplitMix64::new(0),
                hash_algorithm: HashAlgorithm::Blake3,
            },
            &mut Coalition::new([0]),
            Message::BlockRequest(undchain_types::msg::BlockRequest {
                from: BlockNumber(0),
                max: 1,
            }),
        );
        assert!(out.is_empty());
    }
}
