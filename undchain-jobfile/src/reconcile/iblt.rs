//! Invertible Bloom lookup tables (IBLT) of a range's entry keys, the
//! answer to a mismatching range with few expected differences
//! (`docs/PROTOCOL.md` "Job files and reconciliation", op `0xC0`).
//!
//! A table of `m` cells (`m = 1`, or a multiple of 3 from 6) adds each
//! entry's 64-bit key (its fingerprint in the pass's mode) to one cell of
//! each of three equal subtables (one cell in all when `m = 1`): the cell
//! XORs the key and a 25-bit check of it and counts the keys modulo 128.
//! Subtracting the peer's table from one's own leaves the keys of the
//! symmetric difference, which peeling recovers when the table is large
//! enough: a cell whose count is +-1 and whose check matches its key holds
//! that key alone. Peeling is bounded by the table's size; a table that
//! does not peel to empty is a failure, never an error (the walk goes on
//! with a split), and a wrong key only ever costs the keyed pass.

/// Most cells of one table a peer may send (and this side sends).
pub(crate) const MAX_CELLS: usize = 1024;

/// Words of a cell on the wire: key low, key high, check and count.
pub(crate) const CELL_WORDS: usize = 3;

/// Bits of the count kept in a cell's third word.
const COUNT_BITS: u32 = 7;
const COUNT_MASK: u32 = (1 << COUNT_BITS) - 1;

/// One cell: XOR of keys, XOR of their checks, count of keys (mod 128).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cell {
    pub(crate) key: u64,
    pub(crate) check: u32,
    pub(crate) count: u32,
}

impl Cell {
    /// The cell from its three wire words.
    pub(crate) fn from_words(w: [u32; 3]) -> Cell {
        Cell {
            key: u64::from(w[0]) | (u64::from(w[1]) << 32),
            check: w[2] >> COUNT_BITS,
            count: w[2] & COUNT_MASK,
        }
    }

    /// The cell's three wire words.
    pub(crate) fn words(&self) -> [u32; 3] {
        [
            self.key as u32,
            (self.key >> 32) as u32,
            (self.check << COUNT_BITS) | (self.count & COUNT_MASK),
        ]
    }

    #[inline]
    fn toggle(&mut self, key: u64, check: u32, up: bool) {
        self.key ^= key;
        self.check ^= check;
        self.count = if up {
            self.count.wrapping_add(1)
        } else {
            self.count.wrapping_sub(1)
        } & COUNT_MASK;
    }

    fn is_zero(&self) -> bool {
        self.key == 0 && self.check == 0 && self.count == 0
    }

    /// The key this cell holds alone, with its sign (+1: `true`).
    fn pure(&self) -> Option<(u64, bool)> {
        let up = match self.count {
            1 => true,
            COUNT_MASK => false,
            _ => return None,
        };
        (check_of(self.key) == self.check).then_some((self.key, up))
    }
}

#[inline]
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The 25-bit check of a key.
#[inline]
fn check_of(key: u64) -> u32 {
    (mix(key) >> 39) as u32
}

/// Whether `m` is a table size the protocol allows.
pub(crate) fn valid_size(m: usize) -> bool {
    m == 1 || (m >= 6 && m % 3 == 0 && m <= MAX_CELLS)
}

/// The check of a key and the cells it lands in, in a table of `m`
/// cells: one mix of the key gives the 25-bit check (its top bits) and
/// three 13-bit slices, one a subtable.
#[inline]
fn place(key: u64, m: usize) -> (u32, [usize; 3]) {
    let h = mix(key);
    let check = (h >> 39) as u32;
    if m < 3 {
        return (check, [0, 0, 0]);
    }
    let s = (m / 3) as u64;
    let pos = |i: u64| (i * s + ((((h >> (13 * i)) & 0x1FFF) * s) >> 13)) as usize;
    (check, [pos(0), pos(1), pos(2)])
}

/// Adds `key` to the table (`up`) or removes it.
#[inline]
pub(crate) fn insert(cells: &mut [Cell], key: u64, up: bool) {
    let m = cells.len();
    if m == 0 {
        return;
    }
    let (check, at) = place(key, m);
    if m < 3 {
        cells[0].toggle(key, check, up);
        return;
    }
    for c in at {
        cells[c].toggle(key, check, up);
    }
}

/// Peels `cells` (a difference of two tables, peer's minus mine): keys
/// the peer has go to `theirs`, keys only I have to `mine`. Whether the
/// table peeled to empty; on `false` the lists are partial and must not
/// be used. At most `cells.len()` keys are peeled.
pub(crate) fn peel(
    cells: &mut [Cell],
    stack: &mut Vec<usize>,
    theirs: &mut Vec<u64>,
    mine: &mut Vec<u64>,
) -> bool {
    let m = cells.len();
    stack.clear();
    stack.extend((0..m).filter(|&i| cells[i].pure().is_some()));
    let mut peeled = 0usize;
    while let Some(i) = stack.pop() {
        let Some((key, up)) = cells[i].pure() else {
            continue;
        };
        peeled += 1;
        if peeled > m {
            return false;
        }
        if up {
            theirs.push(key)
        } else {
            mine.push(key)
        }
        let (check, at) = place(key, m);
        if m < 3 {
            cells[0].toggle(key, check, !up);
            if cells[0].pure().is_some() {
                stack.push(0);
            }
            continue;
        }
        for c in at {
            cells[c].toggle(key, check, !up);
            if cells[c].pure().is_some() {
                stack.push(c);
            }
        }
    }
    cells.iter().all(Cell::is_zero)
}

/// Differences a table that failed to peel suggests: from the share of
/// its cells that are not empty (each difference lands in three).
pub(crate) fn failed_estimate(cells: &[Cell]) -> f64 {
    let m = cells.len().max(1) as f64;
    let z = cells.iter().filter(|c| !c.is_zero()).count() as f64;
    if cells.len() < 3 {
        return 2.0;
    }
    if z >= m {
        return 2.0 * m;
    }
    (-(1.0 - z / m).ln() * m / 3.0).max(2.0)
}

/// Measured failure rates (per mille) of peeling `t` keys (2..=16, rows)
/// in `m` cells (6, 9, ..., 48, columns): 6,000 random trials each.
const FAIL_PERMILLE: [[u16; 15]; 15] = [
    [121, 36, 18, 7, 5, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1],
    [344, 116, 49, 24, 15, 8, 8, 7, 2, 2, 1, 1, 1, 1, 1],
    [667, 212, 91, 50, 30, 16, 11, 8, 5, 5, 5, 2, 2, 1, 1],
    [1000, 383, 161, 86, 53, 34, 19, 14, 9, 7, 6, 4, 4, 2, 2],
    [1000, 588, 254, 130, 77, 47, 31, 22, 12, 16, 8, 6, 5, 5, 4],
    [
        1000, 840, 385, 193, 104, 68, 40, 26, 21, 18, 14, 10, 8, 7, 4,
    ],
    [
        1000, 1000, 545, 268, 144, 92, 56, 40, 31, 24, 18, 13, 9, 7, 7,
    ],
    [
        1000, 1000, 749, 381, 206, 119, 80, 57, 36, 28, 25, 16, 14, 10, 10,
    ],
    [
        1000, 1000, 918, 516, 270, 152, 102, 72, 51, 37, 26, 20, 16, 12, 10,
    ],
    [
        1000, 1000, 1000, 672, 363, 208, 127, 85, 59, 45, 32, 32, 20, 15, 15,
    ],
    [
        1000, 1000, 1000, 832, 484, 265, 163, 100, 68, 49, 43, 32, 25, 20, 17,
    ],
    [
        1000, 1000, 1000, 956, 609, 338, 204, 133, 90, 69, 54, 40, 30, 24, 19,
    ],
    [
        1000, 1000, 1000, 1000, 778, 448, 257, 165, 110, 72, 62, 46, 36, 28, 24,
    ],
    [
        1000, 1000, 1000, 1000, 908, 570, 323, 202, 127, 102, 66, 55, 44, 35, 28,
    ],
    [
        1000, 1000, 1000, 1000, 979, 703, 417, 258, 157, 116, 83, 61, 47, 42, 28,
    ],
];

/// Probability that `t` keys do not peel from `m` cells.
fn fail_rate(t: u64, m: usize) -> f64 {
    if t <= 1 {
        return 0.0;
    }
    if m < 6 {
        return 1.0;
    }
    if t <= 16 && m <= 48 {
        return f64::from(FAIL_PERMILLE[t as usize - 2][m / 3 - 2]) / 1000.0;
    }
    // Beyond the table: 1.5 cells a key plus a margin peel (a few per cent
    // at the table's edge), fewer do not.
    if m as f64 >= 1.5 * t as f64 + 24.0 {
        0.01
    } else {
        1.0
    }
}

/// The table size for a range in which the differences are Poisson with
/// mean `lambda`, known to be at least one, when a failure costs
/// `fallback` bytes: the size with the least expected bytes (12 a cell).
/// `None` if no size up to [`MAX_CELLS`] peels with good odds.
pub(crate) fn size_for(lambda: f64, fallback: f64) -> Option<(usize, f64)> {
    let lambda = lambda.max(1e-9);
    // P(T = t | T >= 1) for t = 1.., until the tail is negligible.
    let norm = 1.0 - (-lambda).exp();
    let mut probs = Vec::new();
    let mut p = (-lambda).exp();
    let mut tail = 1.0;
    let mut t = 0u64;
    while tail > 1e-4 && t < 4096 {
        t += 1;
        p *= lambda / t as f64;
        let q = p / norm;
        probs.push(q);
        tail -= q;
    }
    let tail = tail.max(0.0);
    let mut best: Option<(usize, f64)> = None;
    let mut m = 1usize;
    while m <= MAX_CELLS {
        let fail: f64 = probs
            .iter()
            .enumerate()
            .map(|(i, q)| q * fail_rate(i as u64 + 1, m))
            .sum::<f64>()
            + tail;
        let cost = 12.0 * m as f64 + fail * fallback;
        if best.is_none_or(|(_, c)| cost < c) && fail < 0.5 {
            best = Some((m, cost));
        }
        m = if m == 1 {
            6
        } else if m < 48 {
            m + 3
        } else {
            m + m / 8 / 3 * 3
        };
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> u64 {
        mix(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 77)
    }

    #[test]
    fn the_difference_peels_back_out() {
        for m in [1usize, 30, 300] {
            let d = if m == 1 { 1 } else { m / 6 };
            let mut a = vec![Cell::default(); m];
            for i in 0..1000 {
                insert(&mut a, key(i), true);
            }
            for i in 0..d as u64 {
                insert(&mut a, key(5000 + i), true);
            }
            // a minus b: b's keys taken out of a's table, read from the
            // wire words.
            let mut cells: Vec<Cell> = a.iter().map(|x| Cell::from_words(x.words())).collect();
            for i in 0..1000 {
                insert(&mut cells, key(i), false);
            }
            insert(&mut cells, key(9000), false);
            insert(&mut cells, key(9001), false);
            let (mut theirs, mut mine, mut st) = (Vec::new(), Vec::new(), Vec::new());
            let ok = peel(&mut cells, &mut st, &mut theirs, &mut mine);
            if m == 1 {
                assert!(!ok, "three differences cannot peel from one cell");
                // One difference alone does.
                let mut one = a.clone();
                for i in 0..1000 {
                    insert(&mut one, key(i), false);
                }
                let (mut t, mut mi) = (Vec::new(), Vec::new());
                assert!(peel(&mut one, &mut st, &mut t, &mut mi));
                assert_eq!((t, mi), (vec![key(5000)], vec![]));
                continue;
            }
            assert!(ok, "m = {m}");
            theirs.sort_unstable();
            mine.sort_unstable();
            let mut want: Vec<u64> = (0..d as u64).map(|i| key(5000 + i)).collect();
            want.sort_unstable();
            assert_eq!(theirs, want);
            let mut gone = vec![key(9000), key(9001)];
            gone.sort_unstable();
            assert_eq!(mine, gone);
        }
    }

    #[test]
    fn wire_words_round_trip_and_garbage_stays_bounded() {
        let c = Cell {
            key: 0x0123_4567_89AB_CDEF,
            check: check_of(0x0123_4567_89AB_CDEF),
            count: 1,
        };
        assert_eq!(Cell::from_words(c.words()), c);
        // A table of garbage never peels more keys than it has cells.
        let mut cells: Vec<Cell> = (0..30u64)
            .map(|i| Cell {
                key: key(i),
                check: check_of(key(i)),
                count: 1 + (i as u32 % 2) * 126,
            })
            .collect();
        let (mut t, mut m, mut st) = (Vec::new(), Vec::new(), Vec::new());
        let _ = peel(&mut cells, &mut st, &mut t, &mut m);
        assert!(t.len() + m.len() <= 30);
    }

    #[test]
    fn sizes_grow_with_the_expected_difference() {
        let (small, _) = size_for(0.01, 5000.0).expect("a size");
        assert_eq!(small, 1, "one difference: one cell");
        let (mid, _) = size_for(1.0, 5000.0).expect("a size");
        let (big, _) = size_for(20.0, 5000.0).expect("a size");
        assert!(valid_size(mid) && valid_size(big));
        assert!(mid > small && big > mid, "{small} {mid} {big}");
    }
}
