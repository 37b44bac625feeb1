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
    /// Send an invertible Bloom lookup table of this many cells.
    Iblt(u16),
}

/// An IBLT size chosen for the parts of one split: cells and the
/// expected bytes (cells plus the odds of a failure times its cost).
pub(crate) type IbltPlan = Option<(usize, f64)>;

/// Expected differences in a part, given that `m` of `k` sibling parts
/// differ (Poisson occupancy). Returns (estimate, saturated).
pub(crate) fn estimate(m: usize, k: usize) -> (f64, bool) {
    let (lambda, saturated) = poisson_mean(m, k);
    (lambda / (1.0 - (-lambda).exp()), saturated)
}

/// The Poisson mean of differences a part, given that `m` of `k` sibling
/// parts differ, and whether every part differs (the mean is then a floor).
pub(crate) fn poisson_mean(m: usize, k: usize) -> (f64, bool) {
    let k = k.max(1) as f64;
    let m = m as f64;
    let (lambda, saturated) = if m >= k {
        (k.ln() + 1.0, true)
    } else {
        (-(1.0 - m / k).ln(), false)
    };
    (lambda.max(1e-9), saturated)
}

/// The IBLT size for the parts (about `c` entries each) of a split in
/// which `m` of `k` parts differ, for ops opened in message `stage`; none
/// when every part differs (the estimate is only a floor) or the parts
/// are opened too late for an IBLT's answer to end the pass in time.
pub(crate) fn iblt_plan(m: usize, k: usize, c: u64, stage: u8) -> IbltPlan {
    let (lambda, saturated) = poisson_mean(m, k);
    if saturated || stage >= LAST_STAGE {
        return None;
    }
    // Each table reads every entry of its range on both sides: past a
    // budget a split (fingerprints from the index) comes first, and the
    // tables go to its smaller parts a message later.
    if stage <= 2 && (m as u64).saturating_mul(c) > IBLT_SCAN_MAX {
        return None;
    }
    plan_for(lambda, c, stage)
}

/// The IBLT size for a range of about `c` entries whose differences are
/// Poisson with mean `lambda` (at least one), opened in message `stage`.
fn plan_for(lambda: f64, c: u64, stage: u8) -> IbltPlan {
    if stage >= LAST_STAGE {
        return None;
    }
    let cf = c.max(1) as f64;
    // A table that does not peel is answered with the op the range would
    // have had a message later: in message 2, a split whose parts are
    // shipped whole (about 60 sqrt(c) bytes) or a short-id list; in
    // message 3, a list, and a round trip more.
    let fallback = if stage <= 2 {
        (4.0 * cf).min(60.0 * cf.sqrt()) + 100.0
    } else if c <= FALLBACK_SHIP {
        ENTRY_BYTES * cf
    } else {
        4.0 * cf + 2000.0
    };
    super::iblt::size_for(lambda, fallback)
}

/// Most entries the IBLTs of one split's parts may read in message 2
/// (measured: at N = 1M, d = 100, tables over the opening split's parts
/// read 540,000 entries a side and cost more CPU than negentropy's walk).
pub(crate) const IBLT_SCAN_MAX: u64 = 1 << 16;

/// Most entries of a range whose IBLT, opened in message 3, did not peel
/// that the answer ships whole: a list would need a delivery, and so a
/// round trip more.
pub(crate) const FALLBACK_SHIP: u64 = 256;

/// Id bits after a part of the opening split that all its entries must
/// share for the part to count as crowded (no split of 16 bits separates
/// them, so the opening split's estimate says nothing about it).
pub(crate) const CROWDED_BITS: u8 = 16;

/// The op for a crowded part of the opening split holding `c` entries:
/// an IBLT of about sqrt(c) / 3 cells. It peels a few differences at
/// once, and when it does not, the share of its cells left non-empty
/// estimates the difference for the larger table that follows (a split
/// would find every entry in one part, level after level).
pub(crate) fn crowded(c: u64) -> Op {
    let m = ((c as f64).sqrt() / 9.0).ceil() as usize * 3;
    Op::Iblt(m.clamp(6, super::iblt::MAX_CELLS) as u16)
}

/// The op a range is opened with instead when the peer's IBLT of it (with
/// `depth` splits above it, `failed` cells) did not peel; `e` differences
/// are expected. A table is only tried again larger than the one that
/// failed: the cells a key lands in depend on the key and the table size
/// alone, so a table of the same size over the same keys fails the same
/// way (with ids sharing a long prefix the estimate can suggest the same
/// size again and again); past the largest size, the range is split or
/// listed, which always moves on.
pub(crate) fn after_iblt(cfg: &Config, c: u64, e: f64, at: (u8, u8), b0: u8, failed: usize) -> Op {
    let (len, depth) = at;
    match next_after_iblt(cfg, c, e, len, depth, b0) {
        Op::Iblt(m) if usize::from(m) <= failed => {
            let largest = super::iblt::MAX_CELLS / 3 * 3;
            let grown = ((failed + failed / 2).max(6).div_ceil(3) * 3).min(largest);
            if grown > failed {
                Op::Iblt(grown as u16)
            } else {
                let est = Estimate {
                    e,
                    saturated: false,
                    iblt: None,
                };
                choose(cfg, c, est, len, depth, stage(b0, depth))
            }
        }
        op => op,
    }
}

/// [`after_iblt`] before the rule that a table must grow.
fn next_after_iblt(cfg: &Config, c: u64, e: f64, len: u8, depth: u8, b0: u8) -> Op {
    let stage = self::stage(b0, depth);
    if stage >= LAST_STAGE && c <= FALLBACK_SHIP.min(u64::from(cfg.entries_max)) {
        return Op::Entries;
    }
    if stage >= LAST_STAGE && c > u64::from(cfg.ids_max) {
        // Too large to ship or list: a larger table, even a message late,
        // beats splits that may all land in one part (crowded ids).
        let fallback = 4.0 * c as f64 + 2000.0;
        if let Some((m, cost)) = super::iblt::size_for(e.max(1.0), fallback)
            && cost < 4.0 * c as f64
        {
            return Op::Iblt(m as u16);
        }
    }
    // A larger table, sized by what the failed one suggests.
    let iblt = plan_for(e, c, stage);
    choose(
        cfg,
        c,
        Estimate {
            e,
            saturated: false,
            iblt,
        },
        len,
        depth,
        stage,
    )
}

/// The message at which ranges must be leaves: an op opened in the 4th
/// message of a pass is answered in the 5th, and the 6th confirms the
/// roots (three round trips). A range opened there is shipped whole when
/// it is small ([`LEAF_SHIP`]) and listed otherwise; one too large to list
/// ([`Config::ids_max`]) is split again whatever the message (ids sharing
/// a long prefix, or one side nearly empty), at most 64 bits deep.
pub(crate) const LAST_STAGE: u8 = 4;

/// Most entries of a leaf range shipped whole in the last stage.
pub(crate) const LEAF_SHIP: u64 = 48;

/// A range is listed by short ids instead of split when listing costs at
/// most this many times the expected bytes of splitting it: the extra bytes
/// buy a level of the walk on both sides (measured: N = 100k, d = 10k takes
/// about 30% less CPU; the byte ratio stays at 0.24x of negentropy's).
pub(crate) const DENSE_IDS_FACTOR: f64 = 2.0;

/// Bits of the opening split a file of `n` entries sends in its `Start`
/// (0: none, the whole file is one range).
pub(crate) fn opening_bits(cfg: &Config, n: u64) -> u8 {
    if n <= cfg.leaf_max {
        return 0;
    }
    let b = ((n as f64).log2() / 2.0 - 3.0).round();
    (b.max(1.0) as u8).min(cfg.root_bits_max).min(12)
}

/// The message of a pass at which a range under `depth` splits is opened,
/// when the pass's `Start` had an opening split of `b0` bits.
pub(crate) fn stage(b0: u8, depth: u8) -> u8 {
    depth.saturating_add(if b0 > 0 { 1 } else { 2 })
}

/// The op of a list for a range of `c` entries that is not split.
fn list(cfg: &Config, c: u64) -> Op {
    if c <= u64::from(cfg.ids_max) || c > u64::from(cfg.entries_max) {
        Op::Ids
    } else {
        Op::Entries
    }
}

/// The split width that leaves parts of about `target` entries.
fn width_for(c: u64, target: u64, max_b: u8) -> u8 {
    let b = (c as f64 / target.max(1) as f64).log2().ceil().max(1.0);
    (b as u8).clamp(1, max_b.max(1))
}

/// What a range's parent split says about its differences.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Estimate {
    /// Expected differences, given that the range differs.
    pub(crate) e: f64,
    /// Every sibling differed: `e` is only a floor.
    pub(crate) saturated: bool,
    /// The IBLT size for the range, if one may be sent.
    pub(crate) iblt: IbltPlan,
}

impl Estimate {
    /// `e` expected differences (a floor if `saturated`), no IBLT.
    pub(crate) fn plain(e: f64, saturated: bool) -> Self {
        Estimate {
            e,
            saturated,
            iblt: None,
        }
    }
}

/// The op for a mismatching range holding `c` of my entries, with the
/// estimate `est`, at prefix length `len` bits, with `depth` splits above
/// it (0: the whole space), opened in message `stage` of the pass.
pub(crate) fn choose(cfg: &Config, c: u64, est: Estimate, len: u8, depth: u8, stage: u8) -> Op {
    let Estimate { e, saturated, iblt } = est;
    if c == 0 {
        return Op::Entries;
    }
    if len >= 64 {
        return list(cfg, c);
    }
    let cf = c as f64;
    let max_b = (64 - len).min(16);
    if depth == 0 {
        if c <= cfg.leaf_max {
            return if c <= 2 { Op::Entries } else { Op::Ids };
        }
        let parts = (cf / cfg.root_part as f64).max(2.0);
        let b = (parts.log2().round() as u8).clamp(1, max_b.min(cfg.root_bits_max));
        return Op::Split(b);
    }
    let op = choose_below(cfg, c, e, saturated, max_b, stage, iblt);
    // Too many to list: split, whatever the stage.
    if op == Op::Ids && c > u64::from(cfg.ids_max) {
        return Op::Split(width_for(c, cfg.leaf_target, max_b));
    }
    op
}

/// [`choose`] for a range below the whole space.
fn choose_below(
    cfg: &Config,
    c: u64,
    e: f64,
    saturated: bool,
    max_b: u8,
    stage: u8,
    iblt: IbltPlan,
) -> Op {
    let cf = c as f64;
    // Most of the range differs: shipping it whole costs about what the
    // short ids plus the missing entries would, and saves half a round trip.
    let mostly_different = e >= 0.75 * cf || (saturated && cf <= 4.0);
    if (mostly_different || c <= 2) && c <= u64::from(cfg.entries_max) {
        return Op::Entries;
    }
    // Few differences: a table of their keys ends the walk here, for less
    // than listing (or splitting, then listing) the range.
    if let Some((cells, cost)) = iblt
        && stage < LAST_STAGE
        && cost < 4.0 * cf
        && (stage + 1 < LAST_STAGE || cost < split_leaves_bytes(cf, e, max_b))
    {
        return Op::Iblt(cells as u16);
    }
    if stage >= LAST_STAGE {
        return if c <= LEAF_SHIP.min(u64::from(cfg.entries_max)) {
            Op::Entries
        } else {
            list(cfg, c)
        };
    }
    if c <= cfg.leaf_target {
        return list(cfg, c);
    }
    if stage + 1 == LAST_STAGE {
        // The parts will be shipped whole: split if that costs less than
        // listing the range's short ids.
        let b = leaves_width(cf, e, max_b);
        let parts = f64::from(1u32 << b);
        return if split_leaves_bytes(cf, e, max_b) < 4.0 * cf
            && cf / parts <= LEAF_SHIP as f64 / 4.0
        {
            Op::Split(b)
        } else {
            Op::Ids
        };
    }
    // Two levels below: about (3.35 e sqrt(c))^(2/3) parts balances these
    // fingerprints against the next split's and the shipped leaves (at
    // least enough that every part can be listed).
    let b_min = (cf / f64::from(cfg.ids_max)).log2().ceil().max(1.0);
    let b_opt = (3.35 * e * cf.sqrt())
        .powf(2.0 / 3.0)
        .log2()
        .round()
        .max(1.0);
    let b = (b_min.max(b_opt) as u8).clamp(1, max_b);
    // Listing the whole range costs 4c bytes; splitting costs the parts'
    // fingerprints plus the short ids of the parts that differ. (The model
    // counts 4 bytes a short id; the Rice code sends about 3.5, but
    // counting that here chose ops that sent more: `docs/BENCHMARKS.md`.)
    let parts = f64::from(1u32 << b);
    let split_bytes = 4.0 * parts + 4.0 * cf * (1.0 - (-e / parts).exp());
    if 4.0 * cf <= DENSE_IDS_FACTOR * split_bytes {
        return Op::Ids;
    }
    Op::Split(b)
}

/// The width of a split whose parts are shipped whole: about
/// sqrt(ENTRY_BYTES / 4 * e * c) parts balances their fingerprints against
/// the entries of the parts that differ.
fn leaves_width(cf: f64, e: f64, max_b: u8) -> u8 {
    let p = (ENTRY_BYTES / 4.0 * e.max(1.0) * cf).sqrt();
    // At least enough parts to ship each whole (a quarter of a leaf).
    let small = (cf / (LEAF_SHIP as f64 / 4.0)).log2().ceil();
    (p.log2().round().max(small).max(1.0) as u8).clamp(1, max_b)
}

/// Expected bytes of splitting a range of `cf` entries with `e`
/// differences into parts that are shipped whole.
fn split_leaves_bytes(cf: f64, e: f64, max_b: u8) -> f64 {
    let parts = f64::from(1u32 << leaves_width(cf, e, max_b));
    let differing = parts * (1.0 - (-e / parts).exp());
    4.0 * parts + ENTRY_BYTES * differing * (cf / parts)
}

/// The op for a part of the opening split (`m` of its `k` parts differ)
/// holding `c` of my entries at prefix length `len`: sized by the
/// difference the opening split shows, or, when every part differs (too
/// many differences to count), split into parts of about
/// [`Config::root_part`] entries, so that the next message lists them.
pub(crate) fn choose_opened(
    cfg: &Config,
    c: u64,
    m: usize,
    k: usize,
    len: u8,
    iblt: IbltPlan,
) -> Op {
    let (e, saturated) = estimate(m, k);
    if !saturated || c <= cfg.leaf_max || len >= 64 {
        return choose(cfg, c, Estimate { e, saturated, iblt }, len, 1, 2);
    }
    let max_b = (64 - len).min(16);
    let parts = (c as f64 / cfg.root_part as f64).max(2.0);
    Op::Split((parts.log2().round() as u8).clamp(1, max_b))
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
