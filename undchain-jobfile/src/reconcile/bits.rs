//! Bit and byte column readers and writers for `ReconcileRound`
//! (`undchain_types::msg::ReconcileRound`). Readers never panic: running
//! past the end of a column is a typed error.

use super::ReconcileError;

/// Appends bits least-significant first.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    used: u32,
}

impl BitWriter {
    pub(crate) fn push(&mut self, bit: bool) {
        if self.used % 8 == 0 {
            self.bytes.push(0);
        }
        if bit {
            if let Some(last) = self.bytes.last_mut() {
                *last |= 1 << (self.used % 8);
            }
        }
        self.used = self.used.wrapping_add(1);
    }

    /// Makes room for `bits` more bits.
    pub(crate) fn reserve(&mut self, bits: usize) {
        self.bytes.reserve(bits.div_ceil(8));
    }

    pub(crate) fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads bits least-significant first.
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The current byte, shifted so that the next bit is bit 0.
    cur: u8,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            pos: 0,
            cur: 0,
        }
    }

    #[inline]
    pub(crate) fn next(&mut self) -> Result<bool, ReconcileError> {
        if self.pos % 8 == 0 {
            self.cur = *self
                .bytes
                .get(self.pos / 8)
                .ok_or(ReconcileError::Malformed("bit column too short"))?;
        }
        let bit = self.cur & 1 == 1;
        self.cur >>= 1;
        self.pos += 1;
        Ok(bit)
    }

    /// Whether every byte was used (padding bits of the last byte aside).
    pub(crate) fn finished(&self) -> bool {
        self.pos.div_ceil(8) == self.bytes.len()
    }
}

/// Reads fixed-size little-endian `u32`s from a byte column.
#[derive(Debug)]
pub(crate) struct U32Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> U32Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        U32Reader {
            bytes,
            pos: 0,
            what,
        }
    }

    /// Appends the next `n` values to `out`.
    pub(crate) fn take_into(&mut self, n: usize, out: &mut Vec<u32>) -> Result<(), ReconcileError> {
        let end = n
            .checked_mul(4)
            .and_then(|b| b.checked_add(self.pos))
            .ok_or(ReconcileError::Malformed(self.what))?;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or(ReconcileError::Malformed(self.what))?;
        out.extend(
            s.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        self.pos = end;
        Ok(())
    }

    pub(crate) fn remaining(&self) -> usize {
        (self.bytes.len() - self.pos.min(self.bytes.len())) / 4
    }

    pub(crate) fn finished(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

/// Bits of the Elias-gamma code of `x` (at least 1).
#[inline]
fn gamma_len(x: usize) -> usize {
    2 * x.ilog2() as usize + 1
}

/// Writes the Elias-gamma code of `x` (at least 1): `floor(log2 x)` zero
/// bits, then `x` from its leading one bit down.
fn write_gamma(w: &mut BitWriter, x: usize) {
    let l = x.ilog2();
    for _ in 0..l {
        w.push(false);
    }
    for i in (0..=l).rev() {
        w.push((x >> i) & 1 == 1);
    }
}

/// Writes the want bits of a short-id answer (`docs/PROTOCOL.md`, "Job
/// files and reconciliation"): a flag bit, then either one bit per listed
/// id (flag clear) or, flag set, the wanted positions as the Elias-gamma
/// codes of `gap + 1` for each gap between them (from the start, and
/// last to the end of the list), whichever is shorter. Few wants in a
/// long list (the usual answer) cost a few bits each instead of one bit
/// an id.
pub(crate) fn write_wants(w: &mut BitWriter, wants: &[bool]) {
    let mut sparse = 0usize;
    let mut last = 0usize;
    for (i, _) in wants.iter().enumerate().filter(|(_, x)| **x) {
        sparse += gamma_len(i - last + 1);
        last = i + 1;
    }
    sparse += gamma_len(wants.len() - last + 1);
    if sparse < wants.len() {
        w.push(true);
        let mut last = 0usize;
        for (i, _) in wants.iter().enumerate().filter(|(_, x)| **x) {
            write_gamma(w, i - last + 1);
            last = i + 1;
        }
        write_gamma(w, wants.len() - last + 1);
    } else {
        w.push(false);
        for &x in wants {
            w.push(x);
        }
    }
}

/// Reads the want bits of an answer to a list of `n` short ids (see
/// [`write_wants`]), calling `want` with each wanted position in order.
pub(crate) fn read_wants(
    r: &mut BitReader<'_>,
    n: usize,
    want: &mut impl FnMut(usize),
) -> Result<(), ReconcileError> {
    if !r.next()? {
        for i in 0..n {
            if r.next()? {
                want(i);
            }
        }
        return Ok(());
    }
    let mut pos = 0usize;
    loop {
        let mut l = 0u32;
        while !r.next()? {
            l += 1;
            if l > 32 {
                return Err(ReconcileError::Malformed("want gap too long"));
            }
        }
        let mut x = 1usize;
        for _ in 0..l {
            x = (x << 1) | usize::from(r.next()?);
        }
        // `x - 1` ids not wanted, then a wanted one (or the end).
        pos = pos
            .checked_add(x - 1)
            .filter(|p| *p <= n)
            .ok_or(ReconcileError::Malformed("want gap past the list"))?;
        if pos == n {
            return Ok(());
        }
        want(pos);
        pos += 1;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Want bits come back as written, in at most one bit more than
        /// a bit an id, and the next bit is read after them.
        #[test]
        fn wants_round_trip(
            wants in proptest::collection::vec(prop_oneof![9 => Just(false), 1 => Just(true)], 0..300),
            dense in any::<bool>(),
        ) {
            let wants: Vec<bool> = if dense { wants.iter().map(|x| !x).collect() } else { wants };
            let mut w = BitWriter::default();
            write_wants(&mut w, &wants);
            prop_assert!(w.used as usize <= wants.len() + 1);
            w.push(true);
            let bytes = w.into_bytes();
            let mut r = BitReader::new(&bytes);
            let mut got = vec![false; wants.len()];
            read_wants(&mut r, wants.len(), &mut |i| got[i] = true).unwrap();
            prop_assert_eq!(got, wants);
            prop_assert!(r.next().unwrap());
        }

        /// Any bits are wants inside the list or a typed error.
        #[test]
        fn any_want_bits_stay_in_the_list(
            bytes in proptest::collection::vec(any::<u8>(), 0..40),
            n in 0usize..200,
        ) {
            let mut r = BitReader::new(&bytes);
            let mut last = None;
            let res = read_wants(&mut r, n, &mut |i| {
                assert!(i < n && last.is_none_or(|l| l < i));
                last = Some(i);
            });
            if let Err(e) = res {
                prop_assert!(matches!(e, ReconcileError::Malformed(_)));
            }
        }
    }

    #[test]
    fn few_wants_in_a_long_list_are_short() {
        let mut wants = vec![false; 40];
        wants[7] = true;
        wants[30] = true;
        let mut w = BitWriter::default();
        write_wants(&mut w, &wants);
        // Flag, gaps of 8, 23 and 10: 1 + 7 + 9 + 7 bits, not 41.
        assert_eq!(w.used, 24);
    }
}
