//! Implicit key ranges (prefixes of the job-id space) and the fingerprints
//! of their contents, unkeyed (from the file's incremental index) or keyed
//! (recomputed from the entries with a session key).

use undchain_types::{Hash32, HashContext, JobEntry, JobId, hash_parts};

use crate::file::{JobFile, Sum256};

/// The ids whose first `len` bits equal the first `len` bits of `bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Prefix {
    pub(crate) bits: u64,
    pub(crate) len: u8,
}

/// Top 64 bits of an id.
#[inline]
pub(crate) fn top64(id: &JobId) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0.0[..8]);
    u64::from_be_bytes(b)
}

fn key_of(bits: u64) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&bits.to_be_bytes());
    k
}

impl Prefix {
    /// The whole id space.
    pub(crate) const ROOT: Prefix = Prefix { bits: 0, len: 0 };

    /// The `i`-th of the `2^b` equal parts of this prefix.
    pub(crate) fn child(self, b: u8, i: u64) -> Prefix {
        let len = self.len + b;
        let shift = 64 - u32::from(len);
        Prefix {
            bits: self.bits | (i << shift),
            len,
        }
    }

    pub(crate) fn lo_key(self) -> [u8; 32] {
        key_of(self.bits)
    }

    /// The first key after the prefix, or `None` at the end of the space.
    pub(crate) fn hi_key(self) -> Option<[u8; 32]> {
        if self.len == 0 {
            return None;
        }
        let step = 1u64 << (64 - u32::from(self.len));
        self.bits.checked_add(step).map(key_of)
    }

    pub(crate) fn contains(self, id: &JobId) -> bool {
        if self.len == 0 {
            return true;
        }
        (top64(id) ^ self.bits) >> (64 - u32::from(self.len)) == 0
    }
}

/// How entry fingerprints and short ids are derived in a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// From the leaf hash itself (incrementally maintained).
    Unkeyed,
    /// From blake3 keyed with the session key over the leaf hash.
    Keyed([u8; 32]),
}

/// Count and 64-bit sum of a range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Agg {
    pub(crate) count: u64,
    pub(crate) sum: u64,
}

/// The 4-byte range fingerprint: the sum with the count folded in (the
/// count is implicit: a range with another count almost surely has another
/// fingerprint).
pub(crate) fn fp32(a: Agg) -> u32 {
    let x = a
        .sum
        .wrapping_add(a.count.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let x = (x ^ (x >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x ^ (x >> 32)) as u32
}

impl Mode {
    /// The (64-bit fingerprint, 32-bit short id) of an entry's leaf hash.
    pub(crate) fn derive(&self, leaf: &Hash32) -> (u64, u32) {
        let bytes = match self {
            Mode::Unkeyed => leaf.0,
            Mode::Keyed(key) => *blake3::keyed_hash(key, &leaf.0).as_bytes(),
        };
        let mut f = [0u8; 8];
        f.copy_from_slice(&bytes[..8]);
        let mut s = [0u8; 4];
        s.copy_from_slice(&bytes[8..12]);
        (u64::from_le_bytes(f), u32::from_le_bytes(s))
    }

    /// The full 32-byte value an entry adds to the pass root.
    pub(crate) fn root_part(&self, leaf: &Hash32) -> Hash32 {
        match self {
            Mode::Unkeyed => *leaf,
            Mode::Keyed(key) => Hash32(*blake3::keyed_hash(key, &leaf.0).as_bytes()),
        }
    }

    /// The pass root of a set of `count` entries whose root parts sum to
    /// `sum`.
    pub(crate) fn root(&self, count: u64, sum: &Sum256) -> Hash32 {
        match self {
            Mode::Unkeyed => crate::file::fingerprint_root(count, sum),
            Mode::Keyed(key) => hash_parts(
                HashContext::ReconcileKeyed,
                &[key, &count.to_le_bytes(), &sum.to_bytes()],
            ),
        }
    }

    /// The pass root of `file` and the sum behind it.
    pub(crate) fn file_root(&self, file: &JobFile) -> (Hash32, Sum256) {
        match self {
            Mode::Unkeyed => (file.root(), file_sum(file)),
            Mode::Keyed(_) => {
                let mut sum = Sum256::default();
                file.for_each_slot(&mut |_, l| sum.add(&self.root_part(l)));
                (self.root(file.len(), &sum), sum)
            }
        }
    }

    /// Aggregates of the `2^b` parts of `p` in `file`.
    pub(crate) fn child_aggs(&self, file: &JobFile, p: Prefix, b: u8) -> Vec<Agg> {
        let k = 1usize << b;
        match self {
            Mode::Unkeyed => file
                .child_aggs(p.bits, p.len, b)
                .into_iter()
                .map(|s| Agg {
                    count: s.count,
                    sum: s.sum,
                })
                .collect(),
            Mode::Keyed(_) => {
                let mut out = vec![Agg::default(); k];
                let shift = 64 - u32::from(p.len) - u32::from(b);
                let mask = (k as u64) - 1;
                let hi = p.hi_key();
                file.for_each_in(&p.lo_key(), hi.as_ref(), &mut |e, l| {
                    let i = ((top64(&e.id) >> shift) & mask) as usize;
                    let (f, _) = self.derive(l);
                    out[i].count += 1;
                    out[i].sum = out[i].sum.wrapping_add(f);
                });
                out
            }
        }
    }

    /// Count of entries in `p` (cheap for unkeyed passes; the count does not
    /// depend on the mode).
    pub(crate) fn count(&self, file: &JobFile, p: Prefix) -> u64 {
        let hi = match p.hi_key() {
            Some(h) => file.below(&h),
            None => file.summary(),
        };
        hi.minus(file.below(&p.lo_key())).count
    }
}

/// Every entry of `p` with its leaf hash.
pub(crate) fn entries_in(file: &JobFile, p: Prefix) -> Vec<(&JobEntry, &Hash32)> {
    let mut out = Vec::new();
    let hi = p.hi_key();
    file.for_each_in(&p.lo_key(), hi.as_ref(), &mut |e, l| out.push((e, l)));
    out
}

fn file_sum(file: &JobFile) -> Sum256 {
    file.sum256()
}
