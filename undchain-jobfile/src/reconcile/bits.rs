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
