//! The short-id column's code (`docs/PROTOCOL.md` "Job files and
//! reconciliation", short-id list): a list of `n` short ids, sorted, is
//! sent as the Rice code of its gaps, so that the order the list has
//! anyway is not paid for a second time. The ids themselves are the same
//! 32-bit values: the code only drops the ~log2(n) bits a sorted list of
//! random values wastes, about 4 of 32 bits an id for the lists of ~48
//! entries the walk sends, and weakens nothing.
//!
//! With `k = 31 - floor(log2 n)` (the Rice parameter closest to a gap's
//! expected size, `2^32 / n`, times ln 2), each gap `g` (the first from
//! zero) is `g >> k` zero bits, a one bit, then the low `k` bits of `g`,
//! most significant bit first; bits fill bytes from the top, and the list
//! ends on a byte boundary with zero padding. A list of `n` ids takes at
//! most `n (k + 3)` bits plus the padding: never more than the `4 n + 5`
//! bytes a round reserves for it.

use super::ReconcileError;

/// The Rice parameter of a list of `n` (at least 1) ids.
#[inline]
fn param(n: usize) -> u32 {
    31u32.saturating_sub(n.max(1).ilog2())
}

/// Appends the code of `ids` (sorted, `n` of them) to `out`.
pub(crate) fn write_sorted(out: &mut Vec<u8>, n: usize, ids: impl Iterator<Item = u32>) {
    let k = param(n);
    let mut acc = 0u64;
    let mut used = 0u32;
    let mut put = |v: u64, w: u32, out: &mut Vec<u8>| {
        acc = (acc << w) | v;
        used += w;
        while used >= 8 {
            out.push((acc >> (used - 8)) as u8);
            used -= 8;
        }
    };
    let mut prev = 0u32;
    for id in ids {
        let g = id.wrapping_sub(prev);
        prev = id;
        let mut q = g >> k;
        while q >= 32 {
            put(0, 32, out);
            q -= 32;
        }
        put(1, q + 1, out);
        if k > 0 {
            put(u64::from(g) & ((1u64 << k) - 1), k, out);
        }
    }
    if used > 0 {
        out.push((acc << (8 - used)) as u8);
    }
}

/// Reads Rice-coded lists from the short-id column.
#[derive(Debug)]
pub(crate) struct RiceReader<'a> {
    bytes: &'a [u8],
    /// The next list's first byte.
    pos: usize,
}

const TOO_SHORT: ReconcileError = ReconcileError::Malformed("short-id column too short");

impl<'a> RiceReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        RiceReader { bytes, pos: 0 }
    }

    /// The 64 bits from bit `bit` of the column on (zeros past its end).
    #[inline]
    fn window(&self, bit: usize) -> u64 {
        let at = bit / 8;
        let mut b = [0u8; 8];
        let have = self.bytes.len().saturating_sub(at).min(8);
        b[..have].copy_from_slice(&self.bytes[at..at + have]);
        u64::from_be_bytes(b) << (bit % 8)
    }

    /// Appends the next list of `n` ids to `out`. A list that would need
    /// more bits than the column has left is refused before anything is
    /// allocated; so are ids past `u32::MAX` and padding that is not zero.
    pub(crate) fn take_into(&mut self, n: usize, out: &mut Vec<u32>) -> Result<(), ReconcileError> {
        if n == 0 {
            return Ok(());
        }
        let k = param(n);
        let end = self.bytes.len() * 8;
        let mut bit = self.pos * 8;
        let need = n.checked_mul(k as usize + 1).ok_or(TOO_SHORT)?;
        if need > end - bit {
            return Err(TOO_SHORT);
        }
        out.reserve(n);
        let mut prev = 0u64;
        for _ in 0..n {
            // The unary quotient: zero bits up to a one.
            let mut q = 0u64;
            loop {
                let z = u64::from(self.window(bit).leading_zeros()).min(56);
                if bit + z as usize >= end {
                    return Err(TOO_SHORT);
                }
                q += z;
                bit += z as usize;
                if z < 56 {
                    break;
                }
                if q > u64::from(u32::MAX) >> k {
                    return Err(ReconcileError::Malformed("short id out of range"));
                }
            }
            bit += 1;
            if bit + k as usize > end {
                return Err(TOO_SHORT);
            }
            let r = if k == 0 {
                0
            } else {
                self.window(bit) >> (64 - k)
            };
            bit += k as usize;
            let v = prev + ((q << k) | r);
            if v > u64::from(u32::MAX) {
                return Err(ReconcileError::Malformed("short id out of range"));
            }
            out.push(v as u32);
            prev = v;
        }
        let next = bit.div_ceil(8);
        if bit % 8 != 0 && self.window(bit) >> (64 - (8 - bit % 8)) != 0 {
            return Err(ReconcileError::Malformed("short-id padding not zero"));
        }
        self.pos = next;
        Ok(())
    }

    /// Whether every byte of the column was read.
    pub(crate) fn finished(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any sorted list comes back whole, in at most the bytes a round
        /// reserves for it, and lists follow each other byte-aligned.
        #[test]
        fn sorted_lists_round_trip(
            mut a in proptest::collection::vec(any::<u32>(), 0..300),
            mut b in proptest::collection::vec(prop_oneof![any::<u32>(), 0u32..4, (u32::MAX - 3)..=u32::MAX], 1..40),
        ) {
            a.sort_unstable();
            b.sort_unstable();
            let mut col = Vec::new();
            write_sorted(&mut col, a.len(), a.iter().copied());
            prop_assert!(col.len() <= 4 * a.len() + 5);
            let first = col.len();
            write_sorted(&mut col, b.len(), b.iter().copied());
            prop_assert!(col.len() - first <= 4 * b.len() + 5);
            let mut r = RiceReader::new(&col);
            let mut out = Vec::new();
            r.take_into(a.len(), &mut out).unwrap();
            prop_assert_eq!(&out, &a);
            prop_assert!(!r.finished() || b.is_empty());
            out.clear();
            r.take_into(b.len(), &mut out).unwrap();
            prop_assert_eq!(&out, &b);
            prop_assert!(r.finished());
        }

        /// Whatever the bytes, reading is a list or a typed error, never
        /// a panic, and never more ids than asked.
        #[test]
        fn any_bytes_are_a_list_or_an_error(
            col in proptest::collection::vec(any::<u8>(), 0..64),
            n in 0usize..100,
        ) {
            let mut out = Vec::new();
            let mut r = RiceReader::new(&col);
            match r.take_into(n, &mut out) {
                Ok(()) => {
                    prop_assert_eq!(out.len(), n);
                    prop_assert!(out.windows(2).all(|w| w[0] <= w[1]));
                }
                Err(e) => prop_assert!(matches!(e, ReconcileError::Malformed(_))),
            }
        }
    }

    #[test]
    fn the_code_is_shorter_than_four_bytes_an_id() {
        // 48 ids spread like short ids: about 28 bits each, not 32.
        let ids: Vec<u32> = (0..48u32).map(|i| i * (u32::MAX / 48) + i * 7).collect();
        let mut col = Vec::new();
        write_sorted(&mut col, ids.len(), ids.iter().copied());
        assert!(col.len() <= 48 * 29 / 8 + 1, "{} bytes", col.len());
    }

    #[test]
    fn malformed_lists_are_refused() {
        let mut r = RiceReader::new(&[0u8; 8]);
        // Ten ids need at least 10 (k + 1) = 290 bits.
        assert_eq!(r.take_into(10, &mut Vec::new()), Err(TOO_SHORT));
        // One id of value 1 (k = 31): a one bit, then 31 bits; padding
        // after it must be zero.
        let mut col = Vec::new();
        write_sorted(&mut col, 1, [1u32].into_iter());
        assert_eq!(col.len(), 4);
        let mut out = Vec::new();
        RiceReader::new(&col).take_into(1, &mut out).unwrap();
        assert_eq!(out, [1]);
        let mut bad = col.clone();
        bad.push(0x80);
        let mut r = RiceReader::new(&bad);
        r.take_into(1, &mut Vec::new()).unwrap();
        assert!(!r.finished());
        // A quotient that carries an id past u32::MAX.
        let big = [
            0x00u8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        assert!(RiceReader::new(&big).take_into(1, &mut Vec::new()).is_err());
    }
}
