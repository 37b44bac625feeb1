//! Small typed numbers: chain id, block number, block time, payout period,
//! job id, token amount, perception score.

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::hash::{Hash32, HashContext, hash};
use crate::wire::{Invalid, note_invalid};

/// Identifies one chain (a domain's co-chain); signed into every envelope so
/// that a message for one chain is never valid on another.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ChainId(pub u32);

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chain-{}", self.0)
    }
}

/// A block number. Block `b` covers block time
/// `[genesis + b*B, genesis + (b+1)*B)` (DESIGN.md "Vocabulary").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct BlockNumber(pub u64);

impl BlockNumber {
    /// The next block (saturating).
    pub const fn next(self) -> Self {
        BlockNumber(self.0.saturating_add(1))
    }
}

impl fmt::Display for BlockNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A point in time, integer microseconds since the Unix epoch. For
/// validators this is the agreed block time; clients and partners put their
/// own wall-clock time here (DESIGN.md "Replay").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct BlockTime(pub u64);

impl BlockTime {
    /// Microseconds since the epoch.
    pub const fn micros(self) -> u64 {
        self.0
    }

    /// `self + us`, saturating.
    pub const fn plus(self, us: u64) -> Self {
        BlockTime(self.0.saturating_add(us))
    }

    /// `self - us`, saturating at zero.
    pub const fn minus(self, us: u64) -> Self {
        BlockTime(self.0.saturating_sub(us))
    }
}

impl fmt::Display for BlockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}us", self.0)
    }
}

/// A payout period index (4 h of block time by default).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct PayoutPeriod(pub u64);

impl fmt::Display for PayoutPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "period-{}", self.0)
    }
}

/// A job's id: the hash of the signed utility request's envelope digest, so
/// every validator derives the same id from the same request, and a retried
/// request (same sender and sequence) maps to the same job.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct JobId(pub Hash32);

impl JobId {
    /// The id of the job created by the signed request whose envelope digest
    /// is `request_digest`.
    pub fn from_request_digest(request_digest: &Hash32) -> Self {
        JobId(hash(HashContext::JobId, request_digest.as_bytes()))
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job:{:?}", self.0)
    }
}

/// An amount of the chain's token, in its smallest unit.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct TokenAmount(pub u64);

impl TokenAmount {
    /// No tokens at all.
    pub const ZERO: TokenAmount = TokenAmount(0);

    /// `self + o`, or `None` on overflow.
    pub const fn checked_add(self, o: TokenAmount) -> Option<TokenAmount> {
        match self.0.checked_add(o.0) {
            Some(v) => Some(TokenAmount(v)),
            None => None,
        }
    }

    /// `self - o`, or `None` if it would go negative.
    pub const fn checked_sub(self, o: TokenAmount) -> Option<TokenAmount> {
        match self.0.checked_sub(o.0) {
            Some(v) => Some(TokenAmount(v)),
            None => None,
        }
    }
}

impl fmt::Display for TokenAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} und", self.0)
    }
}

/// A perception score, 0..=1000 (DESIGN.md "Vocabulary"; start 500).
/// Decoding refuses values above 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PerceptionScore(u16);

impl PerceptionScore {
    /// The highest score.
    pub const MAX: PerceptionScore = PerceptionScore(1000);
    /// The score of a new identity.
    pub const START: PerceptionScore = PerceptionScore(500);
    /// The lowest score.
    pub const MIN: PerceptionScore = PerceptionScore(0);

    /// A score, or `None` above 1000.
    pub const fn new(v: u16) -> Option<Self> {
        if v <= 1000 {
            Some(PerceptionScore(v))
        } else {
            None
        }
    }

    /// A score, clamped into 0..=1000.
    pub fn saturating(v: i64) -> Self {
        PerceptionScore(v.clamp(0, 1000) as u16)
    }

    /// The score, 0..=1000.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// `self + delta`, clamped into 0..=1000.
    pub fn adjust(self, delta: i32) -> Self {
        Self::saturating(i64::from(self.0) + i64::from(delta))
    }
}

impl Default for PerceptionScore {
    fn default() -> Self {
        Self::START
    }
}

impl fmt::Display for PerceptionScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/1000", self.0)
    }
}

impl<'de> Deserialize<'de> for PerceptionScore {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u16::deserialize(d)?;
        PerceptionScore::new(v).ok_or_else(|| {
            note_invalid(Invalid::ScoreOutOfRange(v));
            serde::de::Error::custom("perception score above 1000")
        })
    }
}

#[cfg(feature = "proptest")]
impl proptest::arbitrary::Arbitrary for PerceptionScore {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;
    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::strategy::Strategy;
        (0u16..=1000).prop_map(PerceptionScore).boxed()
    }
}

/// Number of tolerated Byzantine validators among `n` active ones:
/// f = floor((n-1)/3) (DESIGN.md "Quorum").
pub const fn max_faulty(n: usize) -> usize {
    n.saturating_sub(1) / 3
}

/// Quorum among `n` active validators: q = floor(2n/3) + 1, more than two
/// thirds (DESIGN.md "Quorum"). Only for n = 3f+1 is this 2f+1.
pub const fn quorum(n: usize) -> usize {
    2 * n / 3 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_table() {
        let table = [
            (1, 0, 1),
            (2, 0, 2),
            (3, 0, 3),
            (4, 1, 3),
            (5, 1, 4),
            (6, 1, 5),
            (7, 2, 5),
            (8, 2, 6),
            (9, 2, 7),
            (10, 3, 7),
        ];
        for (n, f, q) in table {
            assert_eq!(max_faulty(n), f, "f({n})");
            assert_eq!(quorum(n), q, "q({n})");
            // Two quorums always share an honest validator.
            assert!(2 * q > n + f, "n={n}");
        }
    }

    #[test]
    fn score_bounds() {
        assert_eq!(PerceptionScore::new(1001), None);
        assert_eq!(PerceptionScore::START.adjust(-10_000), PerceptionScore::MIN);
        assert_eq!(PerceptionScore::START.adjust(10_000), PerceptionScore::MAX);
    }
}
