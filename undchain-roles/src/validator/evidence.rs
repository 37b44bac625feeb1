//! Evidence to perception scores (validator story item 8; DESIGN.md
//! "Agreement": conflicting signed votes are evidence; docs/PROTOCOL.md
//! "Evidence in blocks").
//!
//! A double vote the driver surfaces (seen directly, or relayed by a peer)
//! goes into this validator's pool and, the first time, to the other
//! active validators. A proposer puts up to [`MAX_BLOCK_EVIDENCE`] pooled
//! pieces into its header; every validator checks them before it votes
//! (both signatures, this chain, a height within [`EVIDENCE_WINDOW`], an
//! offender seated at that height, not committed before, one per offender
//! and height). Applying the block feeds one `Equivocation` score event
//! per piece to the roster, so every honest validator lowers the same
//! score by the same amount at the same height, and an offender under the
//! floor loses its seat by the roster's replacement rule.
//!
//! Double proposals are surfaced as events but never committed: a
//! proposal's signature covers a whole header, and committing headers
//! inside headers would make the header a recursive type. A proposer that
//! equivocates without double voting cannot commit anything (CometBFT
//! commits only duplicate votes for the same reason).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use undchain_consensus::{Roster, RosterEvent, ScoreEvent, ValidatorSet};
use undchain_types::msg::{DuplicateVote, EvidenceError};
use undchain_types::{
    BlockHeader, BlockNumber, BoundedVec, ChainId, MAX_BLOCK_EVIDENCE, PublicKey,
};

/// How many heights back committed evidence may reach: a double vote of
/// height `h` can be committed by blocks `h` to `h + EVIDENCE_WINDOW`, so
/// one offending or silent proposer cannot keep it out.
pub const EVIDENCE_WINDOW: u64 = 8;

/// Why a header's evidence was refused (the proposal is invalid).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceRefusal {
    /// A pair that is not evidence (signers, slots, values, signatures).
    #[error("evidence against {offender} at height {height}: {error}")]
    NotEvidence {
        /// Who the pair names.
        offender: PublicKey,
        /// The height it names.
        height: BlockNumber,
        /// What is wrong with it.
        error: EvidenceError,
    },
    /// Votes of another chain.
    #[error("evidence for chain {got}, this chain is {expected}")]
    WrongChain {
        /// This chain.
        expected: ChainId,
        /// The votes' chain.
        got: ChainId,
    },
    /// A height outside `[number - EVIDENCE_WINDOW, number]`.
    #[error("evidence of height {height} in block {number} (window {EVIDENCE_WINDOW})")]
    OutOfWindow {
        /// The evidence's height.
        height: BlockNumber,
        /// The block carrying it.
        number: BlockNumber,
    },
    /// The offender held no seat at that height.
    #[error("{offender} was not active at height {height}")]
    NotSeated {
        /// The named validator.
        offender: PublicKey,
        /// The evidence's height.
        height: BlockNumber,
    },
    /// Already committed, or twice in this header.
    #[error("evidence against {offender} at height {height} is already committed")]
    Repeated {
        /// The named validator.
        offender: PublicKey,
        /// The evidence's height.
        height: BlockNumber,
    },
}

/// The pool of uncommitted evidence, what was committed within the window,
/// and the active sets of the window's heights.
#[derive(Debug, Clone, Default)]
pub struct EvidencePool {
    pool: BTreeMap<(BlockNumber, PublicKey), DuplicateVote>,
    committed: BTreeSet<(BlockNumber, PublicKey)>,
    sets: VecDeque<(BlockNumber, ValidatorSet)>,
}

impl EvidencePool {
    /// Records that `set` is the active set of `height` (called for every
    /// height in order, replay included).
    pub fn note_set(&mut self, height: BlockNumber, set: &ValidatorSet) {
        if self.sets.back().is_some_and(|(h, _)| *h >= height) {
            return;
        }
        self.sets.push_back((height, set.clone()));
        while self.sets.len() as u64 > EVIDENCE_WINDOW + 1 {
            self.sets.pop_front();
        }
        let floor = BlockNumber(height.0.saturating_sub(EVIDENCE_WINDOW));
        self.pool.retain(|(h, _), _| *h >= floor);
        self.committed.retain(|(h, _)| *h >= floor);
    }

    fn set_of(&self, height: BlockNumber) -> Option<&ValidatorSet> {
        self.sets.iter().find(|(h, _)| *h == height).map(|(_, s)| s)
    }

    /// Adds checked evidence `dv`; true when it is new (then it is relayed
    /// to the other validators once). Pieces of heights outside the window
    /// or already committed are dropped; at most one per offender and
    /// height is kept, so the pool holds at most `(EVIDENCE_WINDOW + 1) *
    /// MAX_ACTIVE` pieces.
    pub fn offer(&mut self, dv: DuplicateVote) -> bool {
        let slot = (dv.height(), dv.offender());
        if self.committed.contains(&slot) || self.pool.contains_key(&slot) {
            return false;
        }
        if !self
            .set_of(dv.height())
            .is_some_and(|s| s.contains(&dv.offender()))
        {
            return false;
        }
        self.pool.insert(slot, dv);
        true
    }

    /// What a proposer of block `number` commits: the oldest pooled
    /// pieces within the window, at most [`MAX_BLOCK_EVIDENCE`].
    pub fn for_header(&self, number: BlockNumber) -> BoundedVec<DuplicateVote, MAX_BLOCK_EVIDENCE> {
        let mut out = BoundedVec::new();
        for ((h, _), dv) in &self.pool {
            if h.0 > number.0 || number.0 - h.0 > EVIDENCE_WINDOW {
                continue;
            }
            if out.push(dv.clone()).is_err() {
                break;
            }
        }
        out
    }

    /// Checks the evidence in `header` of chain `chain`.
    pub fn check_header(
        &self,
        header: &BlockHeader,
        chain: ChainId,
    ) -> Result<(), EvidenceRefusal> {
        let mut seen = BTreeSet::new();
        for dv in header.evidence.iter() {
            let (height, offender) = (dv.height(), dv.offender());
            if dv.chain_id() != chain {
                return Err(EvidenceRefusal::WrongChain {
                    expected: chain,
                    got: dv.chain_id(),
                });
            }
            if height.0 > header.number.0 || header.number.0 - height.0 > EVIDENCE_WINDOW {
                return Err(EvidenceRefusal::OutOfWindow {
                    height,
                    number: header.number,
                });
            }
            if !self.set_of(height).is_some_and(|s| s.contains(&offender)) {
                return Err(EvidenceRefusal::NotSeated { offender, height });
            }
            if self.committed.contains(&(height, offender)) || !seen.insert((height, offender)) {
                return Err(EvidenceRefusal::Repeated { offender, height });
            }
            dv.verify().map_err(|error| EvidenceRefusal::NotEvidence {
                offender,
                height,
                error,
            })?;
        }
        Ok(())
    }

    /// Marks the evidence of applied block `header` committed and returns
    /// the roster events it causes (one score event per piece).
    pub fn commit(&mut self, header: &BlockHeader) -> Vec<RosterEvent> {
        header
            .evidence
            .iter()
            .filter_map(|dv| {
                let slot = (dv.height(), dv.offender());
                self.pool.remove(&slot);
                self.committed.insert(slot).then_some(RosterEvent::Score(
                    ScoreEvent::Equivocation {
                        offender: dv.offender(),
                    },
                ))
            })
            .collect()
    }

    /// Pooled, uncommitted pieces.
    pub fn pooled(&self) -> usize {
        self.pool.len()
    }
}

/// The offenders of `events` with their scores after `roster` applied them.
pub(crate) fn scored(events: &[RosterEvent], roster: &Roster) -> Vec<(PublicKey, u16)> {
    events
        .iter()
        .filter_map(|e| match e {
            RosterEvent::Score(ScoreEvent::Equivocation { offender }) => {
                Some((*offender, roster.scores().score(offender).get()))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_consensus::Seat;
    use undchain_sim::node_key;
    use undchain_types::Hash32;
    use undchain_types::msg::{Vote, VoteKind};

    const CHAIN: ChainId = ChainId(7);

    fn set(n: usize) -> ValidatorSet {
        ValidatorSet::new(
            (0..n)
                .map(|i| Seat::unknown(node_key(i).public()))
                .collect(),
        )
        .unwrap()
    }

    fn double_vote(i: usize, height: u64, chain: ChainId) -> DuplicateVote {
        let key = node_key(i);
        let vote = |value: Option<Hash32>| {
            Vote {
                chain_id: chain,
                height: BlockNumber(height),
                round: 0,
                kind: VoteKind::Prevote,
                value,
                validator: key.public(),
            }
            .sign(&key)
        };
        DuplicateVote {
            first: vote(None),
            second: vote(Some(Hash32([height as u8 + 1; 32]))),
        }
    }

    fn header(number: u64, evidence: Vec<DuplicateVote>) -> BlockHeader {
        BlockHeader {
            chain_id: CHAIN,
            epoch: 0,
            number: BlockNumber(number),
            time: undchain_types::BlockTime(0),
            parent: Hash32::ZERO,
            job_root: Hash32::ZERO,
            job_count: 0,
            ops_root: Hash32::ZERO,
            ops_count: 0,
            ledger_root: Hash32::ZERO,
            validator_set_hash: Hash32::ZERO,
            links: BoundedVec::new(),
            parent_signers: 0,
            evidence: evidence.into_iter().collect::<Vec<_>>().try_into().unwrap(),
        }
    }

    fn pool_to(height: u64) -> EvidencePool {
        let mut p = EvidencePool::default();
        for h in 0..=height {
            p.note_set(BlockNumber(h), &set(4));
        }
        p
    }

    #[test]
    fn good_evidence_is_accepted_and_scores_once() {
        let mut p = pool_to(3);
        assert!(p.offer(double_vote(2, 3, CHAIN)));
        assert!(
            !p.offer(double_vote(2, 3, CHAIN)),
            "one per offender and height"
        );
        let h = header(3, p.for_header(BlockNumber(3)).to_vec());
        assert_eq!(h.evidence.len(), 1);
        assert_eq!(p.check_header(&h, CHAIN), Ok(()));
        let events = p.commit(&h);
        assert_eq!(events.len(), 1);
        assert_eq!(p.pooled(), 0);
        // Committed: the same piece again is refused and not pooled.
        p.note_set(BlockNumber(4), &set(4));
        let again = header(4, vec![double_vote(2, 3, CHAIN)]);
        assert!(matches!(
            p.check_header(&again, CHAIN),
            Err(EvidenceRefusal::Repeated { .. })
        ));
        assert!(!p.offer(double_vote(2, 3, CHAIN)));
    }

    #[test]
    fn bad_evidence_in_a_header_is_refused() {
        let p = pool_to(10);
        let forged = {
            let mut dv = double_vote(1, 10, CHAIN);
            dv.second.signature = dv.first.signature;
            dv
        };
        let same = {
            let mut dv = double_vote(1, 10, CHAIN);
            dv.second = dv.first.clone();
            dv
        };
        let cases = [
            (vec![forged], "NotEvidence"),
            (vec![same], "NotEvidence"),
            (vec![double_vote(1, 10, ChainId(8))], "WrongChain"),
            (vec![double_vote(1, 1, CHAIN)], "OutOfWindow"),
            (vec![double_vote(1, 11, CHAIN)], "OutOfWindow"),
            (vec![double_vote(6, 10, CHAIN)], "NotSeated"),
            (
                vec![double_vote(1, 9, CHAIN), double_vote(1, 9, CHAIN)],
                "Repeated",
            ),
        ];
        for (evidence, want) in cases {
            let err = p.check_header(&header(10, evidence), CHAIN).unwrap_err();
            assert!(
                format!("{err:?}").starts_with(want),
                "{err:?} (wanted {want})"
            );
        }
        let fine = header(10, vec![double_vote(1, 2, CHAIN), double_vote(1, 9, CHAIN)]);
        assert_eq!(p.check_header(&fine, CHAIN), Ok(()));
    }

    #[test]
    fn the_pool_is_bounded_by_the_window() {
        let mut p = pool_to(0);
        for h in 0..100u64 {
            p.note_set(BlockNumber(h), &set(4));
            for i in 0..4 {
                p.offer(double_vote(i, h, CHAIN));
            }
        }
        assert!(p.pooled() <= (EVIDENCE_WINDOW as usize + 1) * 4);
        // A proposer of block 99 commits the oldest within the window.
        let picked = p.for_header(BlockNumber(99));
        assert_eq!(picked.len(), MAX_BLOCK_EVIDENCE);
        assert!(picked.iter().all(|d| d.height().0 >= 99 - EVIDENCE_WINDOW));
    }
}
