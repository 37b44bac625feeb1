//! Votes for rounds ahead of the current one, kept with their signatures
//! not yet checked (docs/PROTOCOL.md "Agreement", "Receiving").
//!
//! A vote of a later round of this height does nothing until this
//! validator reaches its round, or until f+1 validators are seen in that
//! round (line 55; a quorum of precommits there, line 49, takes more).
//! Checking its signature on arrival let one member's spam over many
//! rounds cost every receiver a signature check per vote. Instead it is
//! kept unchecked, at most [`PER_VOTER`] per voter (the latest rounds
//! win, so a voter can only push out its own), and checked when its round
//! is reached, or when its round has f+1 distinct voters: a single
//! spammer's votes for rounds the height never reaches are never checked.

use std::collections::BTreeMap;

use undchain_types::PublicKey;
use undchain_types::msg::{Round, SignedVote};

/// Most unchecked votes kept per voter: a prevote and a precommit for
/// each of four rounds ahead.
pub(super) const PER_VOTER: usize = 8;

/// Unchecked votes of later rounds of the current height, by voter.
#[derive(Debug, Clone, Default)]
pub(super) struct AheadVotes {
    by_voter: BTreeMap<PublicKey, Vec<SignedVote>>,
}

/// What offering a vote did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kept {
    /// Kept (possibly in place of the voter's vote of the lowest round).
    Yes,
    /// The same vote is kept already (under any signature).
    Duplicate,
    /// Not kept: the voter's places hold later rounds.
    Full,
}

impl AheadVotes {
    /// Keeps `sv` unchecked within its voter's places.
    pub(super) fn offer(&mut self, sv: SignedVote) -> Kept {
        let votes = self.by_voter.entry(sv.vote.validator).or_default();
        if votes.iter().any(|x| x.vote == sv.vote) {
            return Kept::Duplicate;
        }
        if votes.len() >= PER_VOTER {
            let lowest = votes
                .iter()
                .enumerate()
                .min_by_key(|(_, x)| x.vote.round)
                .map(|(i, x)| (i, x.vote.round));
            match lowest {
                Some((i, r)) if r < sv.vote.round => {
                    votes.remove(i);
                }
                _ => return Kept::Full,
            }
        }
        votes.push(sv);
        Kept::Yes
    }

    /// The voters with a vote kept for `round`.
    pub(super) fn voters_in(&self, round: Round) -> impl Iterator<Item = &PublicKey> {
        self.by_voter
            .iter()
            .filter(move |(_, vs)| vs.iter().any(|v| v.vote.round == round))
            .map(|(k, _)| k)
    }

    /// Takes out every kept vote whose round `pick` selects, in voter
    /// order.
    pub(super) fn take(&mut self, pick: impl Fn(Round) -> bool) -> Vec<SignedVote> {
        let mut out = Vec::new();
        for votes in self.by_voter.values_mut() {
            let (taken, kept): (Vec<_>, Vec<_>) = votes.drain(..).partition(|v| pick(v.vote.round));
            *votes = kept;
            out.extend(taken);
        }
        self.by_voter.retain(|_, vs| !vs.is_empty());
        out
    }

    /// How many votes are kept.
    pub(super) fn len(&self) -> usize {
        self.by_voter.values().map(Vec::len).sum()
    }

    /// Whether `sv` (the vote, under any signature) is kept.
    pub(super) fn has(&self, sv: &SignedVote) -> bool {
        self.by_voter
            .get(&sv.vote.validator)
            .is_some_and(|vs| vs.iter().any(|x| x.vote == sv.vote))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::msg::{Vote, VoteKind};
    use undchain_types::{BlockNumber, ChainId, Hash32, SigningKey};

    fn vote(k: &SigningKey, round: Round, value: u8) -> SignedVote {
        Vote {
            chain_id: ChainId(1),
            height: BlockNumber(1),
            round,
            kind: VoteKind::Prevote,
            value: Some(Hash32([value; 32])),
            validator: k.public(),
        }
        .sign(k)
    }

    #[test]
    fn a_voter_holds_its_places_and_the_latest_rounds_win() {
        let (a, b) = (
            SigningKey::from_seed([1; 32]),
            SigningKey::from_seed([2; 32]),
        );
        let mut ahead = AheadVotes::default();
        assert_eq!(ahead.offer(vote(&b, 2, 0)), Kept::Yes);
        for i in 0..PER_VOTER as u8 {
            assert_eq!(ahead.offer(vote(&a, 5, i)), Kept::Yes);
        }
        assert_eq!(ahead.offer(vote(&a, 5, 0)), Kept::Duplicate);
        assert_eq!(
            ahead.offer(vote(&a, 5, 99)),
            Kept::Full,
            "no lower round to give way"
        );
        assert_eq!(ahead.offer(vote(&a, 6, 99)), Kept::Yes);
        assert_eq!(ahead.len(), PER_VOTER + 1, "b's vote stays");
        assert!(ahead.has(&vote(&b, 2, 0)));
        assert_eq!(ahead.voters_in(6).count(), 1);
        assert_eq!(ahead.voters_in(2).count(), 1);
        let taken = ahead.take(|r| r <= 5);
        assert_eq!(taken.len(), PER_VOTER);
        assert_eq!(ahead.len(), 1);
        assert!(ahead.has(&vote(&a, 6, 99)));
    }
}
