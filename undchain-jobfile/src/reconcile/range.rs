//! Implicit key ranges (prefixes of the job-id space) and the fingerprints
//! of their contents, unkeyed (from the file's incremental index) or keyed
//! (recomputed from the entries with a session key).

use undchain_types::msg::{MAX_SHARED_BITS, SharedPrefix};
use undchain_types::{Hash32, HashContext, JobId, hash_parts};

use crate::file::{JobFile, Sum256};
use crate::index::{Summary, unkeyed_parts};

/// The ids whose first `len` bits equal the first `len` bits of `bits`
/// (the bits after `len` are zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Prefix {
    pub(crate) bits: u64,
    pub(crate) len: u8,
}

/// Top 64 bits of an id.
#[inline]
pub(crate) fn top64(id: &JobId) -> u64 {
    crate::index::top64_of(&id.0.0)
}

impl Prefix {
    /// The whole id space.
    pub(crate) const ROOT: Prefix = Prefix { bits: 0, len: 0 };

    /// The first `len` bits of this prefix (`len` at most its own).
    #[inline]
    pub(crate) fn truncate(self, len: u8) -> Prefix {
        let len = len.min(self.len);
        Prefix {
            bits: self.bits & !u64::MAX.checked_shr(u32::from(len)).unwrap_or(0),
            len,
        }
    }

    /// The longest prefix (at most [`MAX_SHARED_BITS`]) that every id of
    /// `file` has; the whole space for an empty file.
    pub(crate) fn shared_by(file: &JobFile) -> Prefix {
        match file.edge_tops() {
            None => Prefix::ROOT,
            Some((lo, hi)) => {
                let len = ((lo ^ hi).leading_zeros() as u8).min(MAX_SHARED_BITS);
                Prefix { bits: lo, len }.truncate(len)
            }
        }
    }

    /// The longest start of this prefix that every id of `file` has too
    /// (this prefix itself for an empty file).
    pub(crate) fn narrowed_to(self, file: &JobFile) -> Prefix {
        match file.edge_tops() {
            None => self,
            Some((lo, hi)) => {
                let lo_len = (lo ^ self.bits).leading_zeros() as u8;
                let hi_len = (hi ^ self.bits).leading_zeros() as u8;
                self.truncate(lo_len.min(hi_len))
            }
        }
    }

    /// The wire form (`None` for the whole space).
    pub(crate) fn to_shared(self) -> Option<SharedPrefix> {
        (self.len > 0).then(|| SharedPrefix {
            len: self.len,
            bits: self.bits >> (64 - u32::from(self.len)),
        })
    }

    /// The prefix a `Start` announced, refused when its length is out of
    /// range or its bits do not fit it.
    pub(crate) fn from_shared(s: Option<SharedPrefix>) -> Result<Prefix, &'static str> {
        let Some(s) = s else {
            return Ok(Prefix::ROOT);
        };
        if s.len == 0 || s.len > MAX_SHARED_BITS {
            return Err("shared prefix length out of range");
        }
        if s.bits >> s.len != 0 {
            return Err("shared prefix bits longer than its length");
        }
        Ok(Prefix {
            bits: s.bits << (64 - u32::from(s.len)),
            len: s.len,
        })
    }

    /// The `i`-th of the `2^b` equal parts of this prefix.
    #[inline]
    pub(crate) fn child(self, b: u8, i: u64) -> Prefix {
        if b == 0 {
            return self;
        }
        let len = self.len + b;
        let shift = 64 - u32::from(len);
        Prefix {
            bits: self.bits | (i << shift),
            len,
        }
    }

    /// Whether an id whose top 64 bits are `top` lies in the prefix.
    #[inline]
    pub(crate) fn contains_top(self, top: u64) -> bool {
        self.len == 0 || (top ^ self.bits) >> (64 - u32::from(self.len)) == 0
    }

    #[inline]
    pub(crate) fn contains(self, id: &JobId) -> bool {
        self.contains_top(top64(id))
    }
}

/// How entry fingerprints and short ids are derived in a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// From the leaf hash itself (kept inline in the file's index).
    Unkeyed,
    /// From blake3 keyed with the session key over the leaf hash.
    Keyed([u8; 32]),
}

/// The 4-byte range fingerprint: the sum with the count folded in (the
/// count is implicit: a range with another count almost surely has another
/// fingerprint).
#[inline]
pub(crate) fn fp32(a: Summary) -> u32 {
    let x = a
        .sum
        .wrapping_add(a.count.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let x = (x ^ (x >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x ^ (x >> 32)) as u32
}

/// Id bits at the front of an unkeyed short id.
pub(crate) const SHORT_ID_BITS: u32 = 12;

/// The unkeyed short id of an entry in a range of prefix length `len`: the
/// 12 id bits right after the prefix, then 20 bits of the leaf hash (its
/// bytes 8..12, little-endian, low bits). A range's entries in id order
/// thus come (nearly) sorted by short id, so both sides compare lists by
/// merging them; two entries collide only if they share those 12 id bits
/// and 20 leaf-hash bits (about 2^-32 for different ids, 2^-20 for two
/// versions of one job), and a collision only costs the keyed pass.
#[inline]
pub(crate) fn unkeyed_short(len: u8, top: u64, leaf_short: u32) -> u32 {
    let id_bits = if len >= 64 {
        0
    } else {
        ((top << len) >> (64 - SHORT_ID_BITS)) as u32
    };
    (id_bits << (32 - SHORT_ID_BITS)) | (leaf_short & ((1 << (32 - SHORT_ID_BITS)) - 1))
}

impl Mode {
    /// The short id of an entry (top 64 id bits `top`, leaf hash `leaf`)
    /// in a range of prefix length `len`.
    #[inline]
    pub(crate) fn short(&self, len: u8, top: u64, leaf: &Hash32) -> u32 {
        match self {
            Mode::Unkeyed => unkeyed_short(len, top, unkeyed_parts(leaf).1),
            Mode::Keyed(_) => self.derive(leaf).1,
        }
    }

    /// The (64-bit fingerprint, 32-bit short id) of an entry's leaf hash
    /// (the short id is the keyed one in a keyed pass; unkeyed short ids
    /// also depend on the range, see [`unkeyed_short`]).
    #[inline]
    pub(crate) fn derive(&self, leaf: &Hash32) -> (u64, u32) {
        match self {
            Mode::Unkeyed => unkeyed_parts(leaf),
            Mode::Keyed(key) => {
                unkeyed_parts(&Hash32(*blake3::keyed_hash(key, &leaf.0).as_bytes()))
            }
        }
    }

    /// The full 32-byte value an entry adds to the pass root.
    pub(crate) fn root_part(&self, leaf: &Hash32) -> Hash32 {
        match self {
            Mode::Unkeyed => *leaf,
            Mode::Keyed(key) => Hash32(*blake3::keyed_hash(key, &leaf.0).as_bytes()),
        }
    }

    /// The keyed pass root of a set of `count` entries whose keyed root
    /// parts sum to `sum` (the key is secret until the pass starts, so no
    /// entry could have been crafted against it; the unkeyed root is the
    /// file's trie root, `View::root`).
    pub(crate) fn keyed_root(&self, count: u64, sum: &Sum256) -> Hash32 {
        let key = match self {
            Mode::Unkeyed => &[0u8; 32],
            Mode::Keyed(key) => key,
        };
        hash_parts(
            HashContext::ReconcileKeyed,
            &[key, &count.to_le_bytes(), &sum.to_bytes()],
        )
    }

    /// The sum of the root parts of every entry of `file` (O(1) unkeyed,
    /// one keyed hash per entry keyed).
    pub(crate) fn file_sum(&self, file: &JobFile) -> Sum256 {
        match self {
            Mode::Unkeyed => file.sum256(),
            Mode::Keyed(_) => {
                let mut sum = Sum256::default();
                file.for_each_slot(&mut |_, l| sum.add(&self.root_part(l)));
                sum
            }
        }
    }

    /// Adds the summaries of the `2^b` parts of `p` in `file` to `out`.
    pub(crate) fn child_aggs(&self, file: &JobFile, p: Prefix, b: u8, out: &mut [Summary]) {
        match self {
            Mode::Unkeyed => file.child_aggs(p.bits, p.len, b, out),
            Mode::Keyed(_) => {
                let target = u32::from(p.len) + u32::from(b);
                let mask = (1u64 << b) - 1;
                file.for_each_prefix(p.bits, p.len, &mut |s| {
                    let i = ((s.top >> (64 - target)) & mask) as usize;
                    let (f, _) = self.derive(&file.stored(s.idx).leaf);
                    out[i].count += 1;
                    out[i].sum = out[i].sum.wrapping_add(f);
                });
            }
        }
    }
}

/// Count of entries of `file` in `p` (the count does not depend on the
/// mode); O(depth).
pub(crate) fn count_in(file: &JobFile, p: Prefix) -> u64 {
    file.prefix_summary(p.bits, p.len).count
}
