//! The roster: every registered validator (active and passive), their
//! scores and missed votes, and the validator set of the next height;
//! rotation at payout-period boundaries and replacement after missed votes
//! (DESIGN.md "Rotation", "Discovery"; docs/PROTOCOL.md "Agreement,
//! validator sets and perception scores").
//!
//! Everything here is a function of committed data: the genesis candidates,
//! each committed header (its `parent_signers` says who signed the parent)
//! and the committed events the host passes with it. Two validators that
//! applied the same blocks hold identical rosters and compute the same
//! validator set hash for the next header.
//!
//! Rules, in the order [`Roster::apply_block`] runs them for block `h`:
//! 1. Seats of `h-1`'s set whose bit is set in `h`'s `parent_signers` signed
//!    (score event, missed counter reset); the others missed one vote.
//! 2. The block's other committed events (registrations, departures, score
//!    events) apply.
//! 3. If `h+1` starts a payout period, the active set is chosen afresh
//!    ([`Roster::apply_block`], "rotation"): known seats (at most
//!    floor(44% n)) keep their holders while eligible, free known seats go to
//!    passive known validators; every unknown seat goes first to passive
//!    unknown validators above the floor, ranked by score, ties broken by
//!    `hash(last block hash, id)`; only if those run out do current unknown
//!    holders stay, and only if those run out too do known validators fill
//!    unknown seats, flagged as fillers. Passive validators recover a little.
//!    If nobody at all is eligible, the set stays as it is (a chain never
//!    stops for want of validators).
//! 4. Otherwise each active validator that missed `missed_vote_threshold`
//!    blocks in a row, fell under the floor or left is replaced by the best
//!    ranked eligible passive validator of its seat's kind (an unknown seat
//!    may take a flagged known filler when no unknown one is left). A seat
//!    whose holder left and that nobody can take is dropped.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use undchain_types::{
    BlockHeader, BlockNumber, ChainParams, Hash32, HashAlgorithm, HashContext, PerceptionScore,
    PublicKey, Trust,
};

use crate::score::{ScoreBook, ScoreEvent, ScoreNotice, ScoreRules};
use crate::validator_set::{Seat, ValidatorSet, ValidatorSetError};

/// The chain settings rotation depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterConfig {
    /// How many seats are active, n.
    pub active_seats: usize,
    /// Most known seats: floor(known share % of n), at most 44%.
    pub max_known_active: usize,
    /// Blocks missed in a row before replacement.
    pub missed_vote_threshold: u32,
    /// Blocks per payout period.
    pub blocks_per_period: u64,
    /// The perception score under which a validator loses its seat and
    /// cannot rotate in.
    pub floor: PerceptionScore,
    /// How committed events move perception scores.
    pub rules: ScoreRules,
    /// Hash algorithm for tie-breaks and the set hash.
    pub hash_algorithm: HashAlgorithm,
}

impl RosterConfig {
    /// The settings of a chain, with the default score rules.
    pub fn from_params(p: &ChainParams) -> Self {
        RosterConfig {
            active_seats: usize::from(p.active_seats),
            max_known_active: p.max_known_active(),
            missed_vote_threshold: p.missed_vote_threshold,
            blocks_per_period: p.blocks_per_period().max(1),
            floor: p.perception_floor,
            rules: ScoreRules::default(),
            hash_algorithm: p.hash_algorithm,
        }
    }
}

/// A validator named at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The validator's key.
    pub id: PublicKey,
    /// Known (appointed) or unknown.
    pub trust: Trust,
    /// The perception score it starts with.
    pub score: PerceptionScore,
}

/// A committed event, other than the header itself, that the roster reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RosterEvent {
    /// A validator registered (starts passive).
    Registered {
        /// The new validator's key.
        id: PublicKey,
        /// Known (appointed by the chain owner) or unknown.
        trust: Trust,
    },
    /// A validator signed off for good.
    Left {
        /// The departing validator's key.
        id: PublicKey,
    },
    /// Something that moves a perception score.
    Score(ScoreEvent),
}

/// Why a validator left its seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplacementReason {
    /// Missed votes for `missed_vote_threshold` blocks in a row.
    MissedVotes,
    /// Its score fell under the floor.
    BelowFloor,
    /// It signed off for good.
    Left,
}

/// One seat change outside a period rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// Who left the seat.
    pub out: PublicKey,
    /// Who took it (`None`: the seat was dropped).
    pub taken_by: Option<PublicKey>,
    /// Why it left the seat.
    pub reason: ReplacementReason,
}

/// What applying one block changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterUpdate {
    /// The height the new set signs.
    pub height: BlockNumber,
    /// A period rotation ran.
    pub rotated: bool,
    /// Seat changes by replacement.
    pub replaced: Vec<Replacement>,
    /// Notices for identities that fell under the floor.
    pub notices: Vec<ScoreNotice>,
}

/// Why the roster refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// No eligible validator could take any seat.
    #[error("no eligible validator for any active seat")]
    NoEligibleValidators,
    /// A genesis candidate appears twice.
    #[error("genesis candidate {id:?} appears twice")]
    DuplicateCandidate {
        /// The key listed twice.
        id: PublicKey,
    },
    /// A block applied out of order.
    #[error("block {got} applied, but the roster is at height {expected}")]
    OutOfOrder {
        /// The height the roster is at (the next block it can apply).
        expected: BlockNumber,
        /// The number of the block applied.
        got: BlockNumber,
    },
    /// The chosen seats do not form a set (cannot happen with valid
    /// settings; kept as data rather than a panic).
    #[error("validator set: {0}")]
    Set(#[from] ValidatorSetError),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Member {
    trust: Trust,
    missed_in_a_row: u32,
}

/// Every validator, its score and the set of the next height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    config: RosterConfig,
    members: BTreeMap<PublicKey, Member>,
    scores: ScoreBook,
    height: BlockNumber,
    current: ValidatorSet,
    previous: Option<ValidatorSet>,
}

impl Roster {
    /// The roster at genesis: the active set of block 0 chosen from
    /// `candidates` as at a period boundary, ties broken by `genesis_hash`.
    pub fn genesis(
        config: RosterConfig,
        candidates: &[Candidate],
        genesis_hash: Hash32,
    ) -> Result<Self, RosterError> {
        let mut members = BTreeMap::new();
        let mut scores = ScoreBook::new(config.floor, config.rules);
        for c in candidates {
            let m = Member {
                trust: c.trust,
                missed_in_a_row: 0,
            };
            if members.insert(c.id, m).is_some() {
                return Err(RosterError::DuplicateCandidate { id: c.id });
            }
            scores.set(c.id, c.score);
        }
        let mut roster = Roster {
            config,
            members,
            scores,
            height: BlockNumber(0),
            // Placeholder, replaced just below.
            current: ValidatorSet::new(vec![Seat::unknown(
                candidates
                    .first()
                    .ok_or(RosterError::NoEligibleValidators)?
                    .id,
            )])?,
            previous: None,
        };
        roster.current = roster.rotate(None, genesis_hash)?;
        Ok(roster)
    }

    /// The validator set of [`Roster::height`].
    pub fn validator_set(&self) -> &ValidatorSet {
        &self.current
    }

    /// The validator set of the height before, if any.
    pub fn previous_set(&self) -> Option<&ValidatorSet> {
        self.previous.as_ref()
    }

    /// The height whose set [`Roster::validator_set`] is (the next block to
    /// commit).
    pub fn height(&self) -> BlockNumber {
        self.height
    }

    /// Every validator's perception score.
    pub fn scores(&self) -> &ScoreBook {
        &self.scores
    }

    /// The settings the roster was made with.
    pub fn config(&self) -> &RosterConfig {
        &self.config
    }

    /// Registered validators not in the current set.
    pub fn passive(&self) -> Vec<PublicKey> {
        self.members
            .keys()
            .filter(|id| !self.current.contains(id))
            .copied()
            .collect()
    }

    /// A registered validator's trust class.
    pub fn trust(&self, id: &PublicKey) -> Option<Trust> {
        self.members.get(id).map(|m| m.trust)
    }

    /// Blocks in a row `id` missed.
    pub fn missed_in_a_row(&self, id: &PublicKey) -> u32 {
        self.members.get(id).map_or(0, |m| m.missed_in_a_row)
    }

    /// The next block starts a new epoch (after a convergence): it names
    /// no parent signers, so nobody's vote counts as missed in it.
    pub fn start_epoch(&mut self) {
        self.previous = None;
    }

    /// Applies committed block `header` (whose hash is `block_hash`) and its
    /// committed `events`; afterwards [`Roster::validator_set`] is the set of
    /// the next height.
    pub fn apply_block(
        &mut self,
        header: &BlockHeader,
        block_hash: Hash32,
        events: &[RosterEvent],
    ) -> Result<RosterUpdate, RosterError> {
        if header.number != self.height {
            return Err(RosterError::OutOfOrder {
                expected: self.height,
                got: header.number,
            });
        }
        let mut notices = Vec::new();
        if let Some(prev) = &self.previous {
            for (i, seat) in prev.seats().iter().enumerate() {
                let signed = header.parent_signers & (1 << i) != 0;
                let event = if signed {
                    ScoreEvent::SignedBlock { validator: seat.id }
                } else {
                    ScoreEvent::MissedVote { validator: seat.id }
                };
                if let Some(m) = self.members.get_mut(&seat.id) {
                    m.missed_in_a_row = if signed {
                        0
                    } else {
                        m.missed_in_a_row.saturating_add(1)
                    };
                }
                notices.extend(self.scores.apply(&event));
            }
        }
        let mut left = BTreeSet::new();
        for e in events {
            match e {
                RosterEvent::Registered { id, trust } => {
                    self.members.entry(*id).or_insert(Member {
                        trust: *trust,
                        missed_in_a_row: 0,
                    });
                    left.remove(id);
                }
                RosterEvent::Left { id } => {
                    self.members.remove(id);
                    left.insert(*id);
                }
                RosterEvent::Score(ev) => notices.extend(self.scores.apply(ev)),
            }
        }
        let next = self.height.next();
        let rotated = next.0 % self.config.blocks_per_period == 0;
        let mut replaced = Vec::new();
        let new_set = if rotated {
            let passive: Vec<PublicKey> = self.passive();
            for id in passive {
                let ev = ScoreEvent::PassiveRecovery { validator: id };
                notices.extend(self.scores.apply(&ev));
            }
            let current = self.current.clone();
            self.rotate(Some(&current), block_hash)?
        } else {
            self.replace(block_hash, &mut replaced)?
        };
        self.previous = Some(std::mem::replace(&mut self.current, new_set));
        self.height = next;
        Ok(RosterUpdate {
            height: next,
            rotated,
            replaced,
            notices,
        })
    }

    fn eligible(&self, id: &PublicKey) -> bool {
        self.members.contains_key(id) && self.scores.eligible(id)
    }

    /// Best first: higher score, then lower `hash(tie, id)`.
    fn ranked(&self, ids: impl IntoIterator<Item = PublicKey>, tie: Hash32) -> Vec<PublicKey> {
        let mut v: Vec<(Reverse<PerceptionScore>, Hash32, PublicKey)> = ids
            .into_iter()
            .map(|id| {
                let h = self.config.hash_algorithm.hash_parts(
                    HashContext::ValidatorSet,
                    &[b"rank", tie.as_bytes(), id.as_bytes()],
                );
                (Reverse(self.scores.score(&id)), h, id)
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, _, id)| id).collect()
    }

    fn of_trust(&self, trust: Trust) -> impl Iterator<Item = PublicKey> + '_ {
        self.members
            .iter()
            .filter(move |(id, m)| m.trust == trust && self.eligible(id))
            .map(|(id, _)| *id)
    }

    /// Period rotation (rule 3); `current` is `None` at genesis.
    fn rotate(
        &self,
        current: Option<&ValidatorSet>,
        tie: Hash32,
    ) -> Result<ValidatorSet, RosterError> {
        let seats_n = self.config.active_seats;
        let known_cap = self.config.max_known_active.min(seats_n);
        let is_known_seat = |id: &PublicKey| {
            current.is_some_and(|s| s.seats().iter().any(|x| &x.id == id && x.is_known_seat()))
        };
        let is_active = |id: &PublicKey| current.is_some_and(|s| s.contains(id));

        // Known seats: eligible holders keep them, then passive known ones.
        let (holders, others): (Vec<_>, Vec<_>) =
            self.of_trust(Trust::Known).partition(is_known_seat);
        let mut known: Vec<PublicKey> = self.ranked(holders, tie);
        known.extend(self.ranked(others, tie));
        known.truncate(known_cap);

        // Unknown seats: passive unknown first, then current holders.
        let unknown_seats = seats_n - known.len();
        let (active_u, passive_u): (Vec<_>, Vec<_>) =
            self.of_trust(Trust::Unknown).partition(is_active);
        let mut unknown: Vec<PublicKey> = self.ranked(passive_u, tie);
        unknown.extend(self.ranked(active_u, tie));
        unknown.truncate(unknown_seats);

        // Fillers: known validators not in a known seat.
        let short = unknown_seats - unknown.len();
        let spare = self
            .of_trust(Trust::Known)
            .filter(|id| !known.contains(id))
            .collect::<Vec<_>>();
        let mut fillers = self.ranked(spare, tie);
        fillers.truncate(short);

        let mut seats: Vec<Seat> = known.into_iter().map(Seat::known).collect();
        seats.extend(unknown.into_iter().map(Seat::unknown));
        seats.extend(fillers.into_iter().map(|id| Seat {
            id,
            trust: Trust::Known,
            filling_unknown: true,
        }));
        if seats.is_empty() {
            // Nobody is eligible: a running chain keeps its set rather
            // than stop; a genesis without validators is refused.
            return match current {
                Some(set) => Ok(set.clone()),
                None => Err(RosterError::NoEligibleValidators),
            };
        }
        seats.sort_by_key(|s| s.id);
        Ok(ValidatorSet::new(seats)?)
    }

    /// Replacement between boundaries (rule 4).
    fn replace(
        &mut self,
        tie: Hash32,
        replaced: &mut Vec<Replacement>,
    ) -> Result<ValidatorSet, RosterError> {
        let mut seats: Vec<Seat> = self.current.seats().to_vec();
        let mut i = 0;
        while i < seats.len() {
            let seat = seats[i].clone();
            let reason = if !self.members.contains_key(&seat.id) {
                Some(ReplacementReason::Left)
            } else if !self.scores.eligible(&seat.id) {
                Some(ReplacementReason::BelowFloor)
            } else if self.missed_in_a_row(&seat.id) >= self.config.missed_vote_threshold {
                Some(ReplacementReason::MissedVotes)
            } else {
                None
            };
            let Some(reason) = reason else {
                i += 1;
                continue;
            };
            let taken: BTreeSet<PublicKey> = seats.iter().map(|s| s.id).collect();
            let passive_of = |trust| {
                self.of_trust(trust)
                    .filter(|id| !taken.contains(id))
                    .collect::<Vec<_>>()
            };
            let pick = if seat.is_known_seat() {
                self.ranked(passive_of(Trust::Known), tie)
                    .first()
                    .map(|id| Seat::known(*id))
            } else {
                self.ranked(passive_of(Trust::Unknown), tie)
                    .first()
                    .map(|id| Seat::unknown(*id))
                    .or_else(|| {
                        self.ranked(passive_of(Trust::Known), tie)
                            .first()
                            .map(|id| Seat {
                                id: *id,
                                trust: Trust::Known,
                                filling_unknown: true,
                            })
                    })
            };
            match pick {
                Some(new_seat) => {
                    replaced.push(Replacement {
                        out: seat.id,
                        taken_by: Some(new_seat.id),
                        reason,
                    });
                    if let Some(m) = self.members.get_mut(&seat.id) {
                        m.missed_in_a_row = 0;
                    }
                    seats[i] = new_seat;
                    i += 1;
                }
                None if reason == ReplacementReason::Left && seats.len() > 1 => {
                    replaced.push(Replacement {
                        out: seat.id,
                        taken_by: None,
                        reason,
                    });
                    seats.remove(i);
                }
                // Nobody can take the seat: the holder keeps it rather than
                // shrinking the set (a smaller set is not safer).
                None => i += 1,
            }
        }
        seats.sort_by_key(|s| s.id);
        Ok(ValidatorSet::new(seats)?)
    }
}
