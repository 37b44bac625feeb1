//! The vote keeper: tallies the prevotes and precommits of one height, says
//! when a threshold is crossed (each threshold once), and records conflicting
//! votes as evidence instead of counting them (Tendermint, arXiv 1807.04938,
//! Algorithm 1: the "2f+1" and "f+1" guards; here q = floor(2n/3)+1 and
//! f+1 with f = floor((n-1)/3), DESIGN.md "Quorum").
//!
//! Equivocation: a validator's second, different vote for a slot (height,
//! round, step) is evidence ([`VoteOutcome::evidence`]), and it is *also*
//! counted for its value, as the paper counts messages from distinct
//! processes per value. This matters for liveness: a polka that some
//! correct validator saw (with a Byzantine validator's vote in it) must be
//! a polka for everyone it is relayed to, even for those who first got the
//! equivocator's other vote; otherwise a proposal naming that polka as its
//! `vr` could never pass line 28 there. "Any" thresholds count distinct
//! validators, never votes. At most [`MAX_VOTES_PER_SLOT`] distinct votes
//! per validator and slot are kept (a bound on what a Byzantine validator
//! can make us store); a further one takes the place of a kept one (never
//! the first) whose value fewer validators voted for, if its own value has
//! more, and is refused as [`RecordVoteError::ConflictingVote`] otherwise:
//! an equivocator's spam cannot keep its vote in a relayed polka from
//! counting.
//!
//! The keeper trusts its input: signatures and set membership are checked
//! by the [`crate::driver::Driver`] before a vote gets here.

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::msg::{Evidence, Round, SignedVote, VoteKind};
use undchain_types::{BlockNumber, Hash32, PublicKey};

use crate::validator_set::ValidatorSet;

/// A threshold of votes in one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Threshold {
    /// q prevotes, any values (paper line 34).
    PolkaAny,
    /// q prevotes for nil (line 44).
    PolkaNil,
    /// q prevotes for one value (lines 28, 36).
    PolkaValue(Hash32),
    /// q precommits, any values (line 47).
    PrecommitAny,
    /// q precommits for one value (line 49).
    PrecommitValue(Hash32),
    /// f+1 distinct validators sent something in this round (line 55).
    SkipRound,
}

/// Why a vote was not counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordVoteError {
    /// The vote is for another height.
    #[error("vote for height {got}, keeper is at {expected}")]
    WrongHeight {
        /// The height this keeper tallies.
        expected: BlockNumber,
        /// The height the vote names.
        got: BlockNumber,
    },
    /// The voter holds no seat in this height's set.
    #[error("voter {validator:?} is not in this height's validator set")]
    UnknownValidator {
        /// The key that signed the vote.
        validator: PublicKey,
    },
    /// The voter already cast [`MAX_VOTES_PER_SLOT`] different votes of
    /// this kind in this round; this one is not counted (the pair is still
    /// evidence).
    #[error("conflicting {:?} from {:?} in round {}", existing.vote.kind, existing.vote.validator, existing.vote.round)]
    ConflictingVote {
        /// The validator's first vote for the slot (the one counted).
        existing: Box<SignedVote>,
        /// The further, different vote that was not counted.
        conflicting: Box<SignedVote>,
    },
}

/// Most distinct votes kept per validator, round and step.
pub const MAX_VOTES_PER_SLOT: usize = 4;

/// What counting a vote did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VoteOutcome {
    /// Thresholds this vote made true for the first time in its round.
    pub thresholds: Vec<Threshold>,
    /// The validator's first vote for this slot and this different one.
    pub evidence: Option<Evidence>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KindVotes {
    /// Each voter's votes, first one first.
    by_voter: BTreeMap<PublicKey, Vec<SignedVote>>,
    /// Distinct voters per value.
    tally: BTreeMap<Option<Hash32>, usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RoundVotes {
    prevotes: KindVotes,
    precommits: KindVotes,
    /// Validators that sent any message (vote or proposal) in this round.
    senders: BTreeSet<PublicKey>,
    emitted: BTreeSet<Threshold>,
}

impl RoundVotes {
    fn kind(&self, kind: VoteKind) -> &KindVotes {
        match kind {
            VoteKind::Prevote => &self.prevotes,
            VoteKind::Precommit => &self.precommits,
        }
    }
}

/// Votes of one height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteKeeper {
    height: BlockNumber,
    set: ValidatorSet,
    rounds: BTreeMap<Round, RoundVotes>,
}

impl VoteKeeper {
    /// An empty keeper for `height`, signed by `set`.
    pub fn new(height: BlockNumber, set: ValidatorSet) -> Self {
        VoteKeeper {
            height,
            set,
            rounds: BTreeMap::new(),
        }
    }

    /// The height whose votes this keeper tallies.
    pub fn height(&self) -> BlockNumber {
        self.height
    }

    /// The validator set whose members' votes count.
    pub fn validator_set(&self) -> &ValidatorSet {
        &self.set
    }

    /// Whether exactly this signed vote is already counted (a duplicate
    /// delivery, safe to drop before checking its signature again).
    pub fn has_vote(&self, vote: &SignedVote) -> bool {
        self.rounds.get(&vote.vote.round).is_some_and(|r| {
            r.kind(vote.vote.kind)
                .by_voter
                .get(&vote.vote.validator)
                .is_some_and(|vs| vs.contains(vote))
        })
    }

    /// Whether [`VoteKeeper::add_vote`] would count `vote` (or take it as
    /// evidence): not already here under any signature, and either room in
    /// its slot or a value with more votes than the weakest one kept. The
    /// driver asks before checking a signature, so an equivocator's spam
    /// beyond its slot costs no signature check.
    pub fn would_count(&self, vote: &SignedVote) -> bool {
        let Some(r) = self.rounds.get(&vote.vote.round) else {
            return true;
        };
        let kv = r.kind(vote.vote.kind);
        let Some(votes) = kv.by_voter.get(&vote.vote.validator) else {
            return true;
        };
        if votes.iter().any(|x| x.vote == vote.vote) {
            return false;
        }
        if votes.len() < MAX_VOTES_PER_SLOT {
            return true;
        }
        let tally = |v: &Option<Hash32>| kv.tally.get(v).copied().unwrap_or(0);
        let weakest = votes.iter().skip(1).map(|x| tally(&x.vote.value)).min();
        weakest.is_some_and(|w| tally(&vote.vote.value) > w)
    }

    /// The first vote `validator` cast of `kind` in `round`, if any.
    pub fn vote_of(
        &self,
        round: Round,
        kind: VoteKind,
        validator: &PublicKey,
    ) -> Option<&SignedVote> {
        self.rounds
            .get(&round)?
            .kind(kind)
            .by_voter
            .get(validator)?
            .first()
    }

    /// Counts a vote and reports the thresholds it made true for the first
    /// time in its round (each threshold is reported once per round). A
    /// vote already counted is ignored, whatever its signature bytes (the
    /// comparison is of the votes); a different one for the same slot is
    /// counted for its value and returned as evidence with the first.
    pub fn add_vote(&mut self, vote: SignedVote) -> Result<VoteOutcome, RecordVoteError> {
        let v = &vote.vote;
        if v.height != self.height {
            return Err(RecordVoteError::WrongHeight {
                expected: self.height,
                got: v.height,
            });
        }
        if !self.set.contains(&v.validator) {
            return Err(RecordVoteError::UnknownValidator {
                validator: v.validator,
            });
        }
        let (round, kind, value, voter) = (v.round, v.kind, v.value, v.validator);
        let q = self.set.quorum();
        let skip = self.set.max_faulty() + 1;
        let rv = self.rounds.entry(round).or_default();
        let kv = match kind {
            VoteKind::Prevote => &mut rv.prevotes,
            VoteKind::Precommit => &mut rv.precommits,
        };
        let mut outcome = VoteOutcome::default();
        let votes = kv.by_voter.entry(voter).or_default();
        // The same vote under a second signature (ed25519 signatures are
        // not unique: a signer may pick another nonce) is the same vote:
        // not counted again and no evidence (`Evidence::verify` would
        // refuse the pair as not conflicting).
        if votes.iter().any(|x| x.vote == vote.vote) {
            return Ok(outcome);
        }
        if let Some(first) = votes.first() {
            if votes.len() >= MAX_VOTES_PER_SLOT {
                // Full: the new vote takes the place of the kept one (not
                // the first) whose value fewer validators voted for, if
                // its own value has more; otherwise it is not counted. A
                // polka some correct validator saw, relayed, must count
                // everywhere, however much the equivocator sent before.
                let weakest = votes
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(i, x)| (kv.tally.get(&x.vote.value).copied().unwrap_or(0), i))
                    .min();
                let mine = kv.tally.get(&value).copied().unwrap_or(0);
                match weakest {
                    Some((least, i)) if mine > least => {
                        let gone = votes.remove(i);
                        if !votes.iter().any(|x| x.vote.value == gone.vote.value) {
                            if let Some(c) = kv.tally.get_mut(&gone.vote.value) {
                                *c = c.saturating_sub(1);
                            }
                        }
                    }
                    _ => {
                        return Err(RecordVoteError::ConflictingVote {
                            existing: Box::new(first.clone()),
                            conflicting: Box::new(vote),
                        });
                    }
                }
            }
            let Some(first) = votes.first() else {
                return Ok(outcome);
            };
            outcome.evidence = Some(Evidence::DoubleVote {
                first: first.clone(),
                second: vote.clone(),
            });
        }
        // A validator counts once per value, however often it equivocates.
        let new_value = !votes.iter().any(|x| x.vote.value == value);
        votes.push(vote);
        if new_value {
            *kv.tally.entry(value).or_insert(0) += 1;
        }
        let for_value = kv.tally.get(&value).copied().unwrap_or(0);
        let total = kv.by_voter.len();
        rv.senders.insert(voter);

        let crossed = &mut outcome.thresholds;
        let mut check = |t: Threshold, met: bool| {
            if met && rv.emitted.insert(t) {
                crossed.push(t);
            }
        };
        match kind {
            VoteKind::Prevote => {
                match value {
                    Some(id) => check(Threshold::PolkaValue(id), for_value >= q),
                    None => check(Threshold::PolkaNil, for_value >= q),
                }
                check(Threshold::PolkaAny, total >= q);
            }
            VoteKind::Precommit => {
                if let Some(id) = value {
                    check(Threshold::PrecommitValue(id), for_value >= q);
                }
                check(Threshold::PrecommitAny, total >= q);
            }
        }
        check(Threshold::SkipRound, rv.senders.len() >= skip);
        Ok(outcome)
    }

    /// Notes that `validator` sent a proposal in `round` (it counts toward
    /// the f+1 of line 55). Returns [`Threshold::SkipRound`] the first time
    /// it is met.
    pub fn add_sender(&mut self, round: Round, validator: PublicKey) -> Option<Threshold> {
        if !self.set.contains(&validator) {
            return None;
        }
        let skip = self.set.max_faulty() + 1;
        let rv = self.rounds.entry(round).or_default();
        rv.senders.insert(validator);
        (rv.senders.len() >= skip && rv.emitted.insert(Threshold::SkipRound))
            .then_some(Threshold::SkipRound)
    }

    /// Votes of `kind` in `round` for `value` (`None`: nil).
    pub fn count(&self, round: Round, kind: VoteKind, value: Option<Hash32>) -> usize {
        self.rounds
            .get(&round)
            .and_then(|r| r.kind(kind).tally.get(&value).copied())
            .unwrap_or(0)
    }

    /// All votes of `kind` in `round`.
    pub fn total(&self, round: Round, kind: VoteKind) -> usize {
        self.rounds
            .get(&round)
            .map_or(0, |r| r.kind(kind).by_voter.len())
    }

    /// How many distinct validators voted for block `id`, in any round and
    /// step (how much a proposal of it is worth keeping).
    pub fn support(&self, id: &Hash32) -> usize {
        let mut voters = BTreeSet::new();
        for r in self.rounds.values() {
            for kv in [&r.prevotes, &r.precommits] {
                for (voter, votes) in &kv.by_voter {
                    if votes.iter().any(|v| v.vote.value.as_ref() == Some(id)) {
                        voters.insert(*voter);
                    }
                }
            }
        }
        voters.len()
    }

    /// Whether q votes of `kind` in `round` are for `value`.
    pub fn has_quorum_for(&self, round: Round, kind: VoteKind, value: Option<Hash32>) -> bool {
        self.count(round, kind, value) >= self.set.quorum()
    }

    /// Whether q votes of `kind` arrived in `round`, whatever their values.
    pub fn has_quorum_any(&self, round: Round, kind: VoteKind) -> bool {
        self.total(round, kind) >= self.set.quorum()
    }

    /// How many distinct validators sent something (vote or proposal) in
    /// `round`.
    pub fn senders(&self, round: Round) -> usize {
        self.rounds.get(&round).map_or(0, |r| r.senders.len())
    }

    /// Whether `validator` sent something (vote or proposal) in `round`.
    pub fn has_sent(&self, round: Round, validator: &PublicKey) -> bool {
        self.rounds
            .get(&round)
            .is_some_and(|r| r.senders.contains(validator))
    }

    /// The highest round above `current` in which f+1 distinct validators
    /// sent something (line 55), if any.
    pub fn skip_to(&self, current: Round) -> Option<Round> {
        let skip = self.set.max_faulty() + 1;
        self.rounds
            .range(current.saturating_add(1)..)
            .rev()
            .find(|(_, r)| r.senders.len() >= skip)
            .map(|(round, _)| *round)
    }

    /// Rounds in which q precommits name one value, with that value.
    pub fn precommit_quorums(&self) -> Vec<(Round, Hash32)> {
        let q = self.set.quorum();
        self.rounds
            .iter()
            .flat_map(|(round, r)| {
                r.precommits
                    .tally
                    .iter()
                    .filter(move |(v, c)| v.is_some() && **c >= q)
                    .filter_map(move |(v, _)| v.map(|id| (*round, id)))
            })
            .collect()
    }

    /// Every vote of `kind` in `round` (all of each validator's votes), in
    /// validator order.
    pub fn votes_in(&self, round: Round, kind: VoteKind) -> Vec<&SignedVote> {
        self.rounds.get(&round).map_or_else(Vec::new, |r| {
            r.kind(kind).by_voter.values().flatten().collect()
        })
    }

    /// The prevotes for `value` in `round`, in validator order (a polka's
    /// proof, relayed with a proposal that names `round` as its `vr`).
    pub fn prevotes_for(&self, round: Round, value: Hash32) -> Vec<&SignedVote> {
        self.rounds.get(&round).map_or_else(Vec::new, |r| {
            r.prevotes
                .by_voter
                .values()
                .filter_map(|vs| vs.iter().find(|v| v.vote.value == Some(value)))
                .collect()
        })
    }

    /// The precommits for `value` in `round`, in validator order.
    pub fn precommits_for(&self, round: Round, value: Hash32) -> Vec<&SignedVote> {
        self.rounds.get(&round).map_or_else(Vec::new, |r| {
            r.precommits
                .by_voter
                .values()
                .filter_map(|vs| vs.iter().find(|v| v.vote.value == Some(value)))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::msg::Vote;
    use undchain_types::{ChainId, SigningKey};

    fn keys(n: u8) -> Vec<SigningKey> {
        (1..=n).map(|i| SigningKey::from_seed([i; 32])).collect()
    }

    fn vote(k: &SigningKey, round: Round, kind: VoteKind, value: Option<Hash32>) -> SignedVote {
        Vote {
            chain_id: ChainId(1),
            height: BlockNumber(3),
            round,
            kind,
            value,
            validator: k.public(),
        }
        .sign(k)
    }

    fn keeper(keys: &[SigningKey]) -> VoteKeeper {
        let ids: Vec<_> = keys.iter().map(|k| k.public()).collect();
        VoteKeeper::new(BlockNumber(3), ValidatorSet::of_unknown(&ids).unwrap())
    }

    #[test]
    fn thresholds_once_with_q_not_2f_plus_1() {
        // n = 6: f = 1, q = 5 (2f+1 would be 3).
        let ks = keys(6);
        let mut vk = keeper(&ks);
        let v = Some(Hash32([7; 32]));
        let mut seen = Vec::new();
        for (i, k) in ks.iter().enumerate() {
            let t = vk.add_vote(vote(k, 0, VoteKind::Prevote, v)).unwrap();
            seen.push((i, t.thresholds));
        }
        assert_eq!(seen[0].1, vec![]);
        assert_eq!(seen[1].1, vec![Threshold::SkipRound], "f+1 = 2 senders");
        assert_eq!(seen[2].1, vec![], "3 = 2f+1 is not a quorum for n = 6");
        assert_eq!(seen[3].1, vec![]);
        assert_eq!(
            seen[4].1,
            vec![Threshold::PolkaValue(Hash32([7; 32])), Threshold::PolkaAny]
        );
        assert_eq!(seen[5].1, vec![], "each threshold is emitted once");
        assert!(vk.has_quorum_for(0, VoteKind::Prevote, v));
        assert!(!vk.has_quorum_any(0, VoteKind::Precommit));
    }

    #[test]
    fn the_same_vote_under_another_signature_is_no_evidence() {
        let ks = keys(4);
        let mut vk = keeper(&ks);
        let a = Some(Hash32([1; 32]));
        let first = vote(&ks[0], 0, VoteKind::Prevote, a);
        vk.add_vote(first.clone()).unwrap();
        // The keeper trusts signatures (the driver checks them): other
        // bytes over the same vote stand for a second valid signature.
        let mut again = first.clone();
        again.signature.0[0] ^= 1;
        assert_eq!(vk.add_vote(again), Ok(VoteOutcome::default()));
        assert_eq!(vk.count(0, VoteKind::Prevote, a), 1);
        assert_eq!(vk.votes_in(0, VoteKind::Prevote), vec![&first]);
        // A really different vote is still evidence.
        let other = vote(&ks[0], 0, VoteKind::Prevote, None);
        assert!(vk.add_vote(other).unwrap().evidence.is_some());
    }

    #[test]
    fn an_equivocators_spam_cannot_keep_its_polka_vote_from_counting() {
        let ks = keys(4);
        let mut vk = keeper(&ks);
        for t in 1..=4u8 {
            let _ = vk.add_vote(vote(&ks[0], 0, VoteKind::Prevote, Some(Hash32([t; 32]))));
        }
        let x = Some(Hash32([9; 32]));
        // No one else voted for x yet: the fifth vote is refused.
        assert!(matches!(
            vk.add_vote(vote(&ks[0], 0, VoteKind::Prevote, x)),
            Err(RecordVoteError::ConflictingVote { .. })
        ));
        vk.add_vote(vote(&ks[1], 0, VoteKind::Prevote, x)).unwrap();
        vk.add_vote(vote(&ks[2], 0, VoteKind::Prevote, x)).unwrap();
        // Relayed with the polka, it now takes a spam vote's place.
        let t = vk.add_vote(vote(&ks[0], 0, VoteKind::Prevote, x)).unwrap();
        assert!(
            t.thresholds
                .contains(&Threshold::PolkaValue(Hash32([9; 32])))
        );
        assert_eq!(vk.count(0, VoteKind::Prevote, x), 3);
        assert_eq!(vk.votes_in(0, VoteKind::Prevote).len(), 4 + 2);
        assert_eq!(
            vk.count(0, VoteKind::Prevote, Some(Hash32([1; 32]))),
            1,
            "the first stays"
        );
    }

    #[test]
    fn mixed_votes_reach_any_but_not_value() {
        let ks = keys(4);
        let mut vk = keeper(&ks);
        let a = Some(Hash32([1; 32]));
        vk.add_vote(vote(&ks[0], 2, VoteKind::Precommit, a))
            .unwrap();
        vk.add_vote(vote(&ks[1], 2, VoteKind::Precommit, None))
            .unwrap();
        let t = vk
            .add_vote(vote(&ks[2], 2, VoteKind::Precommit, a))
            .unwrap();
        assert_eq!(t.thresholds, vec![Threshold::PrecommitAny]);
        assert!(vk.precommit_quorums().is_empty());
        let t = vk
            .add_vote(vote(&ks[3], 2, VoteKind::Precommit, a))
            .unwrap();
        assert_eq!(
            t.thresholds,
            vec![Threshold::PrecommitValue(Hash32([1; 32]))]
        );
        assert_eq!(vk.precommit_quorums(), vec![(2, Hash32([1; 32]))]);
        assert_eq!(vk.precommits_for(2, Hash32([1; 32])).len(), 3);
        assert_eq!(vk.skip_to(0), Some(2));
        assert_eq!(vk.skip_to(2), None);
    }

    #[test]
    fn double_vote_is_evidence_naming_validator_height_round() {
        let ks = keys(4);
        let mut vk = keeper(&ks);
        let a = Some(Hash32([1; 32]));
        let first = vote(&ks[1], 5, VoteKind::Prevote, a);
        let second = vote(&ks[1], 5, VoteKind::Prevote, None);
        assert_eq!(vk.add_vote(first.clone()).unwrap().evidence, None);
        assert_eq!(
            vk.add_vote(first.clone()),
            Ok(VoteOutcome::default()),
            "duplicate ignored"
        );
        assert!(vk.has_vote(&first));
        let ev = vk.add_vote(second.clone()).unwrap().evidence.unwrap();
        assert_eq!(ev.offender(), ks[1].public());
        assert_eq!((ev.height(), ev.round()), (BlockNumber(3), 5));
        ev.verify().unwrap();
        assert_eq!(
            ev,
            Evidence::DoubleVote {
                first: first.clone(),
                second: second.clone()
            }
        );
        // Counted once per value, once in "any".
        assert_eq!(vk.count(5, VoteKind::Prevote, None), 1);
        assert_eq!(vk.count(5, VoteKind::Prevote, a), 1);
        assert_eq!(vk.total(5, VoteKind::Prevote), 1);
        assert_eq!(
            vk.vote_of(5, VoteKind::Prevote, &ks[1].public()),
            Some(&first)
        );
        // Beyond the per-slot cap: refused, not stored.
        for i in 2..MAX_VOTES_PER_SLOT as u8 {
            vk.add_vote(vote(&ks[1], 5, VoteKind::Prevote, Some(Hash32([i; 32]))))
                .unwrap();
        }
        let over = vote(&ks[1], 5, VoteKind::Prevote, Some(Hash32([99; 32])));
        assert!(matches!(
            vk.add_vote(over.clone()),
            Err(RecordVoteError::ConflictingVote { .. })
        ));
        assert!(!vk.has_vote(&over));
    }

    #[test]
    fn equivocator_vote_completes_a_relayed_polka() {
        // n = 4, q = 3: two honest prevotes for A and the equivocator's
        // vote for A make a polka even after its nil vote came first.
        let ks = keys(4);
        let mut vk = keeper(&ks);
        let a = Some(Hash32([1; 32]));
        vk.add_vote(vote(&ks[0], 0, VoteKind::Prevote, None))
            .unwrap();
        vk.add_vote(vote(&ks[1], 0, VoteKind::Prevote, a)).unwrap();
        vk.add_vote(vote(&ks[2], 0, VoteKind::Prevote, a)).unwrap();
        assert!(!vk.has_quorum_for(0, VoteKind::Prevote, a));
        let out = vk.add_vote(vote(&ks[0], 0, VoteKind::Prevote, a)).unwrap();
        assert!(out.evidence.is_some());
        assert_eq!(out.thresholds, vec![Threshold::PolkaValue(Hash32([1; 32]))]);
        assert_eq!(vk.prevotes_for(0, Hash32([1; 32])).len(), 3);
    }

    #[test]
    fn refuses_strangers_and_other_heights() {
        let ks = keys(5);
        let mut vk = keeper(&ks[..4]);
        let v = vote(&ks[4], 0, VoteKind::Prevote, None);
        assert_eq!(
            vk.add_vote(v),
            Err(RecordVoteError::UnknownValidator {
                validator: ks[4].public()
            })
        );
        let mut v = vote(&ks[0], 0, VoteKind::Prevote, None);
        v.vote.height = BlockNumber(4);
        assert!(matches!(
            vk.add_vote(v),
            Err(RecordVoteError::WrongHeight { .. })
        ));
        assert_eq!(vk.add_sender(1, ks[4].public()), None);
        assert_eq!(vk.add_sender(1, ks[0].public()), None);
        assert_eq!(vk.add_sender(1, ks[1].public()), Some(Threshold::SkipRound));
    }
}
