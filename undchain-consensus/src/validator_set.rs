//! Validator sets: the active seats that propose and sign one height
//! (DESIGN.md "Vocabulary", "Quorum"; docs/PROTOCOL.md "Agreement,
//! validator sets and perception scores").
//!
//! A [`ValidatorSet`] is an ordered list of 1..=10 seats. Every seat weighs
//! one vote; a quorum is q = floor(2n/3)+1 and at most f = floor((n-1)/3)
//! seats may be Byzantine ([`undchain_types::quorum`],
//! [`undchain_types::max_faulty`]); for n = 5, 6, 8, 9 q is *not* 2f+1.
//! The set's hash ([`HashContext::ValidatorSet`]) goes into every block
//! header, so a certificate can be checked against the set it names.

use serde::{Deserialize, Serialize};
use undchain_types::msg::MAX_ACTIVE;
use undchain_types::{
    BlockNumber, Hash32, HashAlgorithm, HashContext, PublicKey, Trust, max_faulty, msg::Round,
    quorum, wire,
};

/// One active seat.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Seat {
    /// The validator holding the seat.
    pub id: PublicKey,
    /// Known (appointed by the chain owner) or unknown.
    pub trust: Trust,
    /// A known validator sitting in an unknown seat because too few unknown
    /// validators exist (DESIGN.md "Discovery": "and say so").
    pub filling_unknown: bool,
}

impl Seat {
    /// An unknown validator's seat.
    pub fn unknown(id: PublicKey) -> Self {
        Seat {
            id,
            trust: Trust::Unknown,
            filling_unknown: false,
        }
    }

    /// A known validator in a known seat.
    pub fn known(id: PublicKey) -> Self {
        Seat {
            id,
            trust: Trust::Known,
            filling_unknown: false,
        }
    }

    /// Whether this seat counts against the known share (a known validator
    /// in a known seat; fillers are flagged and counted apart).
    pub fn is_known_seat(&self) -> bool {
        self.trust == Trust::Known && !self.filling_unknown
    }
}

/// Why a list of seats is not a usable validator set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidatorSetError {
    /// No seats: nobody could propose or sign.
    #[error("validator set is empty")]
    Empty,
    /// More than [`MAX_ACTIVE`] seats.
    #[error("validator set has {count} seats, more than {MAX_ACTIVE}")]
    TooMany {
        /// How many seats were given.
        count: usize,
    },
    /// One validator in two seats.
    #[error("validator {validator:?} holds two seats")]
    Duplicate {
        /// The validator listed twice.
        validator: PublicKey,
    },
    /// Only a known validator can fill an unknown seat.
    #[error("validator {validator:?} is flagged as filling an unknown seat but is not known")]
    FillerNotKnown {
        /// The unknown validator flagged as a filler.
        validator: PublicKey,
    },
}

/// The active validators of one height, in seat order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ValidatorSet {
    seats: Vec<Seat>,
}

impl ValidatorSet {
    /// A set from its seats, in seat order (the order proposers rotate in and
    /// bits of [`undchain_types::BlockHeader::parent_signers`] refer to).
    pub fn new(seats: Vec<Seat>) -> Result<Self, ValidatorSetError> {
        if seats.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        if seats.len() > MAX_ACTIVE {
            return Err(ValidatorSetError::TooMany { count: seats.len() });
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &seats {
            if !seen.insert(s.id) {
                return Err(ValidatorSetError::Duplicate { validator: s.id });
            }
            if s.filling_unknown && s.trust != Trust::Known {
                return Err(ValidatorSetError::FillerNotKnown { validator: s.id });
            }
        }
        Ok(ValidatorSet { seats })
    }

    /// A set of unknown validators, in the given order.
    pub fn of_unknown(ids: &[PublicKey]) -> Result<Self, ValidatorSetError> {
        Self::new(ids.iter().copied().map(Seat::unknown).collect())
    }

    /// The seats, in order.
    pub fn seats(&self) -> &[Seat] {
        &self.seats
    }

    /// Number of seats n.
    pub fn len(&self) -> usize {
        self.seats.len()
    }

    /// Always false: a set has at least one seat.
    pub fn is_empty(&self) -> bool {
        self.seats.is_empty()
    }

    /// The quorum q = floor(2n/3)+1 of this set's n seats.
    pub fn quorum(&self) -> usize {
        quorum(self.len())
    }

    /// How many faulty seats it tolerates, f = floor((n-1)/3).
    pub fn max_faulty(&self) -> usize {
        max_faulty(self.len())
    }

    /// The seat index of `id`, if it holds a seat.
    pub fn index_of(&self, id: &PublicKey) -> Option<usize> {
        self.seats.iter().position(|s| &s.id == id)
    }

    /// Whether `id` holds a seat.
    pub fn contains(&self, id: &PublicKey) -> bool {
        self.index_of(id).is_some()
    }

    /// The proposer of `height`, `round`: seat (height + round) mod n, so the
    /// role rotates by height and by round.
    pub fn proposer(&self, height: BlockNumber, round: Round) -> PublicKey {
        let n = self.len() as u64;
        let i = (height.0 % n + u64::from(round) % n) % n;
        self.seats[i as usize].id
    }

    /// The set's hash under blake3, for the block header.
    pub fn hash(&self) -> Hash32 {
        self.hash_with(HashAlgorithm::Blake3)
    }

    /// The set's hash under the chain's hash algorithm.
    pub fn hash_with(&self, algo: HashAlgorithm) -> Hash32 {
        algo.hash(HashContext::ValidatorSet, &wire::encode_bare(&self.seats))
    }

    /// Seats that count against the known share.
    pub fn known_seats(&self) -> usize {
        self.seats.iter().filter(|s| s.is_known_seat()).count()
    }

    /// Known validators filling unknown seats.
    pub fn fillers(&self) -> usize {
        self.seats.iter().filter(|s| s.filling_unknown).count()
    }

    /// The bitmap of seats among `signers` (ids outside the set are ignored).
    pub fn bitmap<'a>(&self, signers: impl IntoIterator<Item = &'a PublicKey>) -> u16 {
        let mut bits = 0u16;
        for id in signers {
            if let Some(i) = self.index_of(id) {
                bits |= 1 << i;
            }
        }
        bits
    }

    /// The validators whose bits are set in `bits` (bits beyond n ignored).
    pub fn from_bitmap(&self, bits: u16) -> Vec<PublicKey> {
        self.seats
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, s)| s.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::SigningKey;

    fn ids(n: u8) -> Vec<PublicKey> {
        (1..=n)
            .map(|i| SigningKey::from_seed([i; 32]).public())
            .collect()
    }

    #[test]
    fn quorum_follows_design_not_2f_plus_1() {
        for (n, q, f) in [
            (1, 1, 0),
            (4, 3, 1),
            (5, 4, 1),
            (6, 5, 1),
            (8, 6, 2),
            (9, 7, 2),
            (10, 7, 3),
        ] {
            let set = ValidatorSet::of_unknown(&ids(n)).unwrap();
            assert_eq!((set.quorum(), set.max_faulty()), (q, f), "n={n}");
        }
    }

    #[test]
    fn refuses_bad_sets() {
        assert_eq!(ValidatorSet::new(vec![]), Err(ValidatorSetError::Empty));
        let v = ids(11);
        assert_eq!(
            ValidatorSet::of_unknown(&v),
            Err(ValidatorSetError::TooMany { count: 11 })
        );
        assert_eq!(
            ValidatorSet::of_unknown(&[v[0], v[1], v[0]]),
            Err(ValidatorSetError::Duplicate { validator: v[0] })
        );
        let mut s = Seat::unknown(v[0]);
        s.filling_unknown = true;
        assert_eq!(
            ValidatorSet::new(vec![s]),
            Err(ValidatorSetError::FillerNotKnown { validator: v[0] })
        );
    }

    #[test]
    fn proposer_rotates_by_height_and_round() {
        let v = ids(4);
        let set = ValidatorSet::of_unknown(&v).unwrap();
        assert_eq!(set.proposer(BlockNumber(0), 0), v[0]);
        assert_eq!(set.proposer(BlockNumber(1), 0), v[1]);
        assert_eq!(set.proposer(BlockNumber(1), 1), v[2]);
        assert_eq!(set.proposer(BlockNumber(3), 2), v[1]);
        assert_eq!(set.proposer(BlockNumber(u64::MAX), u32::MAX), {
            let i = (u64::MAX % 4 + u64::from(u32::MAX) % 4) % 4;
            v[i as usize]
        });
    }

    #[test]
    fn hash_and_bitmap() {
        let v = ids(5);
        let a = ValidatorSet::of_unknown(&v).unwrap();
        let b = ValidatorSet::of_unknown(&[v[1], v[0], v[2], v[3], v[4]]).unwrap();
        assert_ne!(a.hash(), b.hash(), "seat order is part of the set");
        assert_ne!(a.hash(), a.hash_with(HashAlgorithm::Sha256));
        let bits = a.bitmap([&v[0], &v[3]]);
        assert_eq!(bits, 0b1001);
        assert_eq!(a.from_bitmap(bits), vec![v[0], v[3]]);
    }
}
