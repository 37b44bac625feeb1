//! Perception scores: deterministic updates from committed events, the
//! floor, and the notices that follow (DESIGN.md "Vocabulary", "Scores";
//! docs/PROTOCOL.md "Agreement, validator sets and perception scores").
//!
//! A score is 0..=1000 per identity, 500 at the start. Only committed events
//! move it, so every validator computes the same scores. An identity that
//! falls under the chain's floor may not take part in its role; the book
//! returns a [`LowPerception`] notice for it, once per crossing, which the
//! host sends (design notes, partner story: "validators have to send a low
//! perception score message to that partner").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use undchain_types::msg::LowPerception;
use undchain_types::{PerceptionScore, PublicKey, Role};

/// A committed event that moves someone's perception score.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScoreEvent {
    /// An active validator's precommit is in a block's committed signer set
    /// (the next header's `parent_signers`).
    SignedBlock {
        /// The validator whose precommit counted.
        validator: PublicKey,
    },
    /// An active validator's precommit is missing from it.
    MissedVote {
        /// The validator whose precommit is missing.
        validator: PublicKey,
    },
    /// Committed equivocation evidence (double vote or double proposal).
    Equivocation {
        /// The validator that signed both messages.
        offender: PublicKey,
    },
    /// A partner (or candidate validator) failed a resource challenge or a
    /// capacity test.
    FailedChallenge {
        /// The identity that failed.
        identity: PublicKey,
        /// The role it failed in (its score there moves).
        role: Role,
    },
    /// Committed censorship evidence against a validator (DESIGN.md
    /// "Partner to validator": jobs existed and validators ignored it).
    CensorshipEvidence {
        /// The validator that ignored the jobs.
        validator: PublicKey,
    },
    /// A receipt signed by both sides completed a job.
    ReceiptCompleted {
        /// The client that asked for the job.
        client: PublicKey,
        /// The partner that did it.
        partner: PublicKey,
    },
    /// A side refused to sign a receipt (proven by a partial completion) or
    /// vanished without signing off.
    ReceiptRefused {
        /// The identity that did not sign.
        identity: PublicKey,
        /// The role it held in the job (client or partner).
        role: Role,
    },
    /// A passive validator recovers a little at each payout-period boundary
    /// (DESIGN.md "Scores": passive validators recover slowly).
    PassiveRecovery {
        /// The passive validator that recovers.
        validator: PublicKey,
    },
}

impl ScoreEvent {
    /// Who the event moves, in which role, by how much under `rules`.
    pub fn effects(&self, rules: &ScoreRules) -> Vec<(PublicKey, Role, i32)> {
        use ScoreEvent::*;
        match *self {
            SignedBlock { validator } => vec![(validator, Role::Validator, rules.signed_block)],
            MissedVote { validator } => vec![(validator, Role::Validator, rules.missed_vote)],
            Equivocation { offender } => vec![(offender, Role::Validator, rules.equivocation)],
            FailedChallenge { identity, role } => vec![(identity, role, rules.failed_challenge)],
            CensorshipEvidence { validator } => {
                vec![(validator, Role::Validator, rules.censorship)]
            }
            ReceiptCompleted { client, partner } => vec![
                (client, Role::Client, rules.receipt_completed),
                (partner, Role::Partner, rules.receipt_completed),
            ],
            ReceiptRefused { identity, role } => vec![(identity, role, rules.receipt_refused)],
            PassiveRecovery { validator } => {
                vec![(validator, Role::Validator, rules.passive_recovery)]
            }
        }
    }
}

/// How much each event moves a score. Chain-wide constants: every validator
/// must use the same rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreRules {
    /// Signed a block (default +1).
    pub signed_block: i32,
    /// Missed a block's vote (default -10).
    pub missed_vote: i32,
    /// Equivocated (default -400: one offence takes a fresh validator under
    /// the default floor of 200).
    pub equivocation: i32,
    /// Failed a challenge (default -50).
    pub failed_challenge: i32,
    /// Censorship evidence (default -100).
    pub censorship: i32,
    /// Completed a receipt (default +2 to each side).
    pub receipt_completed: i32,
    /// Refused a receipt or vanished (default -25).
    pub receipt_refused: i32,
    /// Passive recovery per payout period (default +25).
    pub passive_recovery: i32,
}

impl Default for ScoreRules {
    fn default() -> Self {
        ScoreRules {
            signed_block: 1,
            missed_vote: -10,
            equivocation: -400,
            failed_challenge: -50,
            censorship: -100,
            receipt_completed: 2,
            receipt_refused: -25,
            passive_recovery: 25,
        }
    }
}

/// A notice the host sends to an identity that fell under the floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreNotice {
    /// The identity that fell under the floor, to whom it goes.
    pub identity: PublicKey,
    /// The `LowPerception` message to send it.
    pub notice: LowPerception,
}

/// Everyone's perception score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreBook {
    scores: BTreeMap<PublicKey, PerceptionScore>,
    floor: PerceptionScore,
    rules: ScoreRules,
}

impl ScoreBook {
    /// An empty book (everyone at [`PerceptionScore::START`]).
    pub fn new(floor: PerceptionScore, rules: ScoreRules) -> Self {
        ScoreBook {
            scores: BTreeMap::new(),
            floor,
            rules,
        }
    }

    /// The score under which an identity is below the floor.
    pub fn floor(&self) -> PerceptionScore {
        self.floor
    }

    /// How events move scores in this book.
    pub fn rules(&self) -> &ScoreRules {
        &self.rules
    }

    /// `id`'s score (500 if never moved).
    pub fn score(&self, id: &PublicKey) -> PerceptionScore {
        self.scores.get(id).copied().unwrap_or_default()
    }

    /// Sets a score outright (genesis or convergence snapshot).
    pub fn set(&mut self, id: PublicKey, score: PerceptionScore) {
        self.scores.insert(id, score);
    }

    /// Whether `id` is at or above the floor and may take part.
    pub fn eligible(&self, id: &PublicKey) -> bool {
        self.score(id) >= self.floor
    }

    /// Every score that was ever moved, by identity.
    pub fn iter(&self) -> impl Iterator<Item = (&PublicKey, &PerceptionScore)> {
        self.scores.iter()
    }

    /// Applies one committed event; returns a notice for each identity that
    /// crossed under the floor with it.
    pub fn apply(&mut self, event: &ScoreEvent) -> Vec<ScoreNotice> {
        let mut notices = Vec::new();
        for (id, role, delta) in event.effects(&self.rules) {
            let before = self.score(&id);
            let after = before.adjust(delta);
            self.scores.insert(id, after);
            if before >= self.floor && after < self.floor {
                notices.push(ScoreNotice {
                    identity: id,
                    notice: LowPerception {
                        role,
                        score: after,
                        floor: self.floor,
                    },
                });
            }
        }
        notices
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::SigningKey;

    fn floor() -> PerceptionScore {
        PerceptionScore::new(200).unwrap()
    }

    #[test]
    fn equivocation_crosses_floor_once_with_a_notice() {
        let v = SigningKey::from_seed([1; 32]).public();
        let mut book = ScoreBook::new(floor(), ScoreRules::default());
        let n = book.apply(&ScoreEvent::Equivocation { offender: v });
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].identity, v);
        assert_eq!(n[0].notice.role, Role::Validator);
        assert_eq!(n[0].notice.score.get(), 100);
        assert_eq!(n[0].notice.floor, floor());
        assert!(!book.eligible(&v));
        // Already under: no second notice.
        assert!(
            book.apply(&ScoreEvent::MissedVote { validator: v })
                .is_empty()
        );
        assert_eq!(book.score(&v).get(), 90);
        // Recovery back over the floor, then a new crossing notifies again.
        for _ in 0..5 {
            book.apply(&ScoreEvent::PassiveRecovery { validator: v });
        }
        assert!(book.eligible(&v));
        assert_eq!(
            book.apply(&ScoreEvent::CensorshipEvidence { validator: v })
                .len(),
            1
        );
    }

    #[test]
    fn receipts_move_both_sides_and_clamp() {
        let c = SigningKey::from_seed([2; 32]).public();
        let p = SigningKey::from_seed([3; 32]).public();
        let mut book = ScoreBook::new(floor(), ScoreRules::default());
        book.set(p, PerceptionScore::MAX);
        book.apply(&ScoreEvent::ReceiptCompleted {
            client: c,
            partner: p,
        });
        assert_eq!(book.score(&c).get(), 502);
        assert_eq!(book.score(&p), PerceptionScore::MAX);
        let n = book.apply(&ScoreEvent::FailedChallenge {
            identity: c,
            role: Role::Partner,
        });
        assert!(n.is_empty());
        assert_eq!(book.score(&c).get(), 452);
    }

    #[test]
    fn same_events_same_scores() {
        let ids: Vec<_> = (0..4u8)
            .map(|i| SigningKey::from_seed([i + 10; 32]).public())
            .collect();
        let events: Vec<ScoreEvent> = (0..200usize)
            .map(|k| match k % 4 {
                0 => ScoreEvent::SignedBlock {
                    validator: ids[k % 3],
                },
                1 => ScoreEvent::MissedVote {
                    validator: ids[(k / 4) % 4],
                },
                2 => ScoreEvent::ReceiptRefused {
                    identity: ids[k % 4],
                    role: Role::Client,
                },
                _ => ScoreEvent::PassiveRecovery { validator: ids[3] },
            })
            .collect();
        let mut a = ScoreBook::new(floor(), ScoreRules::default());
        let mut b = a.clone();
        let na: Vec<_> = events.iter().flat_map(|e| a.apply(e)).collect();
        let nb: Vec<_> = events.iter().flat_map(|e| b.apply(e)).collect();
        assert_eq!(a, b);
        assert_eq!(na, nb);
    }
}
