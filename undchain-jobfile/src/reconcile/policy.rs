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
    /// Send every entry of the range (a whole-range transfer).
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

/// Splits a range may have above it: the whole space is split once, its
/// mismatching parts at most once more, and the ranges below are always
/// listed (short ids or entries). That bounds an honest session to three
/// round trips: start, split, split, list, answer, deliver.
pub(crate) const MAX_SPLITS: u8 = 2;

/// A range is listed by short ids instead of split when listing costs at
/// most this many times the expected bytes of splitting it: the extra bytes
/// buy a level of the walk on both sides (measured: N = 100k, d = 10k takes
/// about 30% less CPU; the byte ratio stays at 0.24x of negentropy's).
pub(crate) const DENSE_IDS_FACTOR: f64 = 2.0;

/// The op for a mismatching range holding `c` of my entries, with `e`
/// expected differences, at prefix length `len` bits, with `depth` splits
/// above it (0: the whole space).
pub(crate) fn choose(cfg: &Config, c: u64, e: f64, saturated: bool, len: u8, depth: u8) -> Op {
    let list = |c: u64| {
        if c <= u64::from(cfg.ids_max) {
            Op::Ids
        } else {
            Op::Entries
        }
    };
    if c == 0 {
        return Op::Entries;
    }
    let cf = c as f64;
    if len >= 64 {
        return list(c);
    }
    let max_b = (64 - len).min(16);
    if depth == 0 {
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
    if (mostly_different || c <= 2) && c <= u64::from(cfg.entries_max) {
        return Op::Entries;
    }
    if depth >= MAX_SPLITS || c <= cfg.leaf_target {
        return list(c);
    }
    // Enough parts that the next level is leaves (short lists), and about
    // sqrt(e * c) parts, which balances fingerprints against short ids.
    let b_min = (cf / cfg.leaf_target as f64).log2().ceil().max(1.0);
    let b_opt = (e * cf).sqrt().log2().round().max(1.0);
    let b = (b_min.max(b_opt) as u8).clamp(1, max_b);
    // Listing the whole range costs 4c bytes; splitting costs the parts'
    // fingerprints plus the short ids of the parts that differ.
    let parts = f64::from(1u32 << b);
    let split_bytes = 4.0 * parts + 4.0 * cf * (1.0 - (-e / parts).exp());
    if c <= u64::from(cfg.ids_max) && 4.0 * cf <= DENSE_IDS_FACTOR * split_bytes {
        return Op::Ids;
    }
    let _ = ENTRY_BYTES;
    Op::Split(b)
}

/// Settles the ops of the mismatching parts of one split together: when
/// nearly all of them (7 in 8) are lists, the few splits become lists too,
/// so that the session ends a level (and half a round trip) earlier; a
/// third level for a handful of parts costs more than their extra bytes.
pub(crate) fn settle_level(cfg: &Config, ops: &mut [Op], counts: impl Iterator<Item = u64>) {
    let splits = ops.iter().filter(|o| matches!(o, Op::Split(_))).count();
    if splits == 0 || splits * 8 > ops.len() {
        return;
    }
    for (op, c) in ops.iter_mut().zip(counts) {
        if matches!(op, Op::Split(_)) && c <= u64::from(cfg.ids_max) {
            *op = Op::Ids;
        }
    }
}
