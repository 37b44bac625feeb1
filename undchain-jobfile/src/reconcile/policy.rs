//! Which op to open a mismatching range with: split it (and into how many
//! parts), list its short ids, or ship it whole. The constants were chosen
//! by measurement (`docs/BENCHMARKS.md` "undchain-jobfile"); the cost model
//! counts 4-byte fingerprints and short ids and ~48-byte entries.

use super::Config;

/// Bytes an entry costs on the wire (a `JobEntry` with small pools).
pub(crate) const ENTRY_BYTES: f64 = 48.0;

/// What to open a range with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Split into `2^b` parts and send their fingerprints.
    Split(u8),
    /// Send the short ids of every entry.
    Ids,
    /// Send every entry.
    Entries,
}

/// Expected differences in a part, given that `m` of `k` sibling parts
/// differ (Poisson occupancy). Returns (estimate, saturated).
pub(crate) fn estimate(m: usize, k: usize) -> (f64, bool) {
    let k = k.max(1) as f64;
    let m = m as f64;
    let (lambda, saturated) = if m >= k {
        (k.ln() + 1.0, true)
    } else {
        (-(1.0 - m / k).ln(), false)
    };
    let lambda = lambda.max(1e-9);
    (lambda / (1.0 - (-lambda).exp()), saturated)
}

/// The op for a mismatching range holding `c` of my entries, with `e`
/// expected differences, at prefix length `len` bits.
pub(crate) fn choose(cfg: &Config, c: u64, e: f64, saturated: bool, len: u8, root: bool) -> Op {
    if c == 0 {
        return Op::Entries;
    }
    let cf = c as f64;
    let can_split = len < 64;
    if !can_split {
        return if c <= u64::from(cfg.ids_max) {
            Op::Ids
        } else {
            Op::Entries
        };
    }
    let max_b = (64 - len).min(16);
    if root {
        if c <= cfg.leaf_max {
            return if c <= 2 { Op::Entries } else { Op::Ids };
        }
        let parts = (cf / cfg.root_part as f64).max(2.0);
        let b = (parts.log2().round() as u8).clamp(1, max_b.min(cfg.root_bits_max));
        return Op::Split(b);
    }
    // Most of the range differs: shipping it whole costs about what the
    // short ids plus the missing entries would, and saves half a round trip.
    let mostly_different = e >= 0.75 * cf || (saturated && cf <= 4.0);
    if c <= cfg.leaf_max {
        if mostly_different && c <= u64::from(cfg.entries_max) {
            return Op::Entries;
        }
        return if c <= u64::from(cfg.ids_max) {
            Op::Ids
        } else {
            Op::Entries
        };
    }
    if saturated && e >= 0.9 * cf && c <= u64::from(cfg.entries_max) {
        return Op::Entries;
    }
    // Enough parts that the next level is leaves (keeps the round trips
    // down), and about sqrt(e * c) parts, which balances fingerprints
    // against short ids.
    let b_min = (cf / cfg.leaf_target as f64).log2().ceil().max(1.0);
    let b_opt = (e * cf).sqrt().log2().round().max(1.0);
    let b = (b_min.max(b_opt) as u8).clamp(1, max_b);
    let _ = ENTRY_BYTES;
    Op::Split(b)
}
