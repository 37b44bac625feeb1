//! The ordered index of a job file: a 16-way burst trie over the job id's
//! nibbles whose every node keeps the count and the wrapping 64-bit sum of
//! the entry fingerprints below it (DESIGN.md "Reconciliation":
//! fingerprints maintained incrementally, unkeyed, O(log n) per insert and
//! per range query).
//!
//! Layout (chosen by measurement, `docs/BENCHMARKS.md` "undchain-jobfile"):
//! - the entries themselves live in one dense `store` vector (no allocation
//!   per entry); the trie only holds 24-byte slots: the id's first 8
//!   bytes, the entry's unkeyed fingerprint and short id (both cut from its
//!   leaf hash at insert) and the entry's place in the store, so that range
//!   summaries and short-id lists never touch the entries;
//! - the 16 children of an inner node are allocated as one block, and the
//!   node summaries, node kinds and slot chunks sit in parallel arrays, so
//!   the summaries of the parts of a range are a few contiguous reads and
//!   sibling leaves' slots are adjacent in memory;
//! - every node owns a fixed chunk of `LEAF_CAP` (32) slots, used while it is
//!   a leaf (sorted by id): no leaf ever allocates; a full leaf bursts into
//!   16 children by the next nibble, and a subtree that shrinks to half of
//!   it collapses back into one leaf.
//!
//! Job ids are blake3 outputs, so the depth is about `log16(n / 16)`; the
//! trie never looks at more than the id's 64 nibbles, so even crafted ids
//! cannot make a path longer than 64 nodes.

use core::cmp::Ordering;

mod root;

use root::NodeHashes;
pub(crate) use root::trie_root;

use undchain_types::{Hash32, JobEntry, JobId};

/// Most entries in one leaf bucket before it bursts.
pub(crate) const LEAF_CAP: usize = 32;
const FANOUT: usize = 16;
const NIBBLES: usize = 64;

/// The index's view of one entry: inline key data and where the entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The id's first 8 bytes, big-endian (its top 64 bits).
    pub(crate) top: u64,
    /// The unkeyed 64-bit fingerprint: leaf hash bytes 0..8, little-endian.
    pub(crate) fp: u64,
    /// The unkeyed short id: leaf hash bytes 8..12, little-endian.
    pub(crate) short: u32,
    /// Position of the entry in the store.
    pub(crate) idx: u32,
}

/// An entry with its leaf hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) entry: JobEntry,
    pub(crate) leaf: Hash32,
}

/// The unkeyed (fingerprint, short id) of a leaf hash.
#[inline]
pub(crate) fn unkeyed_parts(leaf: &Hash32) -> (u64, u32) {
    let b = &leaf.0;
    let fp = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let short = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    (fp, short)
}

/// Count and wrapping sum of fingerprints of a set of entries. Both form a
/// group, so the summary of `[lo, hi)` is `below(hi) - below(lo)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// How many entries the set holds.
    pub count: u64,
    /// Wrapping sum of their 64-bit fingerprints.
    pub sum: u64,
}

impl Summary {
    #[inline]
    pub(crate) fn add(&mut self, o: Summary) {
        self.count = self.count.wrapping_add(o.count);
        self.sum = self.sum.wrapping_add(o.sum);
    }

    #[inline]
    fn add_fp(&mut self, fp: u64) {
        self.count = self.count.wrapping_add(1);
        self.sum = self.sum.wrapping_add(fp);
    }

    /// `self - o` (wrapping; exact when `o` is a subset's summary).
    #[inline]
    pub fn minus(self, o: Summary) -> Summary {
        Summary {
            count: self.count.wrapping_sub(o.count),
            sum: self.sum.wrapping_sub(o.sum),
        }
    }
}

/// `kinds[n]` of an inner node: this bit plus the first of its 16
/// children (`base..base + 16`); of a leaf: its length.
const INNER: u32 = 1 << 31;

const EMPTY: Slot = Slot {
    top: 0,
    fp: 0,
    short: 0,
    idx: 0,
};

#[inline]
pub(crate) fn top64_of(key: &[u8; 32]) -> u64 {
    u64::from_be_bytes([
        key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
    ])
}

#[inline]
fn nib(key: &[u8; 32], depth: usize) -> usize {
    let b = key[depth / 2];
    usize::from(if depth % 2 == 0 { b >> 4 } else { b & 15 })
}

/// [`nib`], or 0 past the last nibble (a bucket there has no groups).
#[inline]
fn nib_or_zero(key: &[u8; 32], depth: usize) -> usize {
    if depth < NIBBLES { nib(key, depth) } else { 0 }
}

/// Nibble `depth` (< 16) of a 64-bit top.
#[inline]
fn top_nib(top: u64, depth: usize) -> usize {
    ((top >> (60 - 4 * depth)) & 15) as usize
}

/// The part (of `2^b`) a top falls into, for parts at prefix length
/// `target = len + b`.
#[inline]
fn part_of(top: u64, target: u32, mask: u64) -> usize {
    ((top >> (64 - target)) & mask) as usize
}

/// Whether `top` has the first `len` bits of `bits`.
#[inline]
fn in_prefix(top: u64, bits: u64, len: u32) -> bool {
    len == 0 || (top ^ bits) >> (64 - len) == 0
}

/// The inner nodes passed on the way to a leaf (at most one per nibble).
struct Path {
    nodes: [u32; NIBBLES + 1],
    len: usize,
}

impl Path {
    fn new() -> Self {
        Path {
            nodes: [0; NIBBLES + 1],
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, n: u32) {
        if self.len < self.nodes.len() {
            self.nodes[self.len] = n;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[u32] {
        &self.nodes[..self.len]
    }
}

/// Why the index refused an entry.
pub(crate) enum Refused {
    /// The id is already present.
    Duplicate(JobEntry),
    /// The store holds `u32::MAX` entries (or the trie `2^31` nodes).
    Full,
}

/// The trie. Node 0 is the root; every node owns a fixed chunk of
/// [`LEAF_CAP`] slots (used while it is a leaf), so that a burst writes its
/// 16 children's slots next to each other and no leaf allocates.
#[derive(Debug, Clone)]
pub(crate) struct Index {
    aggs: Vec<Summary>,
    kinds: Vec<u32>,
    chunks: Vec<[Slot; LEAF_CAP]>,
    free_blocks: Vec<u32>,
    store: Vec<Stored>,
    /// Each node's cached trie hash ([`root`]).
    hashes: NodeHashes,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            aggs: vec![Summary::default()],
            kinds: vec![0],
            chunks: vec![[EMPTY; LEAF_CAP]],
            free_blocks: Vec::new(),
            store: Vec::new(),
            hashes: NodeHashes::default(),
        }
    }
}

/// Orders `s` against the key whose top 64 bits are `top`.
#[inline]
fn cmp_slot(store: &[Stored], s: &Slot, top: u64, key: &[u8; 32]) -> Ordering {
    match s.top.cmp(&top) {
        Ordering::Equal => store[s.idx as usize].entry.id.0.0.cmp(key),
        o => o,
    }
}

/// Nibble `depth` of the slot's id.
#[inline]
fn slot_nib(store: &[Stored], s: &Slot, depth: usize) -> usize {
    if depth < 16 {
        top_nib(s.top, depth)
    } else {
        nib(&store[s.idx as usize].entry.id.0.0, depth)
    }
}

impl Index {
    pub(crate) fn total(&self) -> Summary {
        self.aggs[0]
    }

    /// The stored entry at `idx` (an index taken from a slot of this index).
    #[inline]
    pub(crate) fn stored(&self, idx: u32) -> &Stored {
        &self.store[idx as usize]
    }

    /// The inner node's first child, or `None` for a leaf.
    #[inline]
    fn inner(&self, n: usize) -> Option<usize> {
        let k = self.kinds[n];
        (k & INNER != 0).then_some((k & !INNER) as usize)
    }

    /// The slots of leaf `n` (empty for an inner node).
    #[inline]
    fn leaf(&self, n: usize) -> &[Slot] {
        let k = self.kinds[n];
        if k & INNER != 0 {
            return &[];
        }
        &self.chunks[n][..(k as usize).min(LEAF_CAP)]
    }

    fn alloc_block(&mut self) -> Option<u32> {
        if let Some(b) = self.free_blocks.pop() {
            return Some(b);
        }
        let base = u32::try_from(self.kinds.len()).ok()?;
        if base.checked_add(FANOUT as u32)? >= INNER {
            return None;
        }
        for _ in 0..FANOUT {
            self.aggs.push(Summary::default());
            self.kinds.push(0);
            self.chunks.push([EMPTY; LEAF_CAP]);
        }
        Some(base)
    }

    /// Walks to the leaf that holds (or would hold) `key`; records the
    /// inner nodes passed; returns the leaf and its depth.
    #[inline]
    fn walk(&self, key: &[u8; 32], path: &mut Path) -> (usize, usize) {
        let mut n = 0usize;
        let mut depth = 0;
        while let Some(base) = self.inner(n) {
            path.push(n as u32);
            n = base + nib(key, depth);
            depth += 1;
        }
        (n, depth)
    }

    fn find(&self, id: &JobId) -> Option<&Slot> {
        let key = &id.0.0;
        let top = top64_of(key);
        let mut n = 0usize;
        let mut depth = 0;
        while let Some(base) = self.inner(n) {
            n = base + nib(key, depth);
            depth += 1;
        }
        let v = self.leaf(n);
        v.binary_search_by(|s| cmp_slot(&self.store, s, top, key))
            .ok()
            .map(|i| &v[i])
    }

    pub(crate) fn get(&self, id: &JobId) -> Option<&Stored> {
        self.find(id).map(|s| &self.store[s.idx as usize])
    }

    /// Inserts `entry` with its leaf hash; refuses an id already present.
    pub(crate) fn insert(&mut self, entry: JobEntry, leaf: Hash32) -> Result<(), Refused> {
        let key = entry.id.0.0;
        let top = top64_of(&key);
        let idx = match u32::try_from(self.store.len()) {
            Ok(i) if i < u32::MAX => i,
            _ => return Err(Refused::Full),
        };
        let mut path = Path::new();
        let n = loop {
            path.len = 0;
            let (n, depth) = self.walk(&key, &mut path);
            if (self.kinds[n] as usize) < LEAF_CAP {
                break n;
            }
            // A full leaf bursts first (ids are unique, so a leaf at the
            // last nibble never fills).
            if depth >= NIBBLES || !self.burst(n, depth) {
                return Err(Refused::Full);
            }
        };
        let (fp, short) = unkeyed_parts(&leaf);
        let len = self.kinds[n] as usize;
        let pos = {
            let v = &self.chunks[n][..len];
            match v.binary_search_by(|s| cmp_slot(&self.store, s, top, &key)) {
                Ok(_) => return Err(Refused::Duplicate(entry)),
                Err(p) => p,
            }
        };
        let chunk = &mut self.chunks[n];
        chunk.copy_within(pos..len, pos + 1);
        chunk[pos] = Slot {
            top,
            fp,
            short,
            idx,
        };
        self.kinds[n] += 1;
        self.store.push(Stored { entry, leaf });
        self.aggs[n].add_fp(fp);
        let depth = path.len;
        self.hashes.stale(n as u32, nib_or_zero(&key, depth));
        self.hashes.inserted(n as u32, pos);
        for (d, &p) in path.as_slice().iter().enumerate() {
            self.aggs[p as usize].add_fp(fp);
            self.hashes.stale(p, nib(&key, d));
        }
        Ok(())
    }

    /// Splits full leaf `n` (at `depth`) into 16 children by the next
    /// nibble; false if the trie cannot grow.
    fn burst(&mut self, n: usize, depth: usize) -> bool {
        let Some(base) = self.alloc_block() else {
            return false;
        };
        let len = (self.kinds[n] as usize).min(LEAF_CAP);
        let slots = self.chunks[n];
        let base_n = base as usize;
        for c in base..base + FANOUT as u32 {
            self.hashes.reshaped(c);
        }
        self.hashes.reshaped(n as u32);
        for s in &slots[..len] {
            let c = base_n + slot_nib(&self.store, s, depth);
            let at = self.kinds[c] as usize;
            self.chunks[c][at] = *s;
            self.kinds[c] += 1;
            self.aggs[c].add_fp(s.fp);
        }
        self.kinds[n] = INNER | base;
        true
    }

    /// Removes the entry with `id`, if present.
    pub(crate) fn remove(&mut self, id: &JobId) -> Option<Stored> {
        let key = id.0.0;
        let top = top64_of(&key);
        let mut path = Path::new();
        let (n, _) = self.walk(&key, &mut path);
        let len = self.leaf(n).len();
        let pos = self
            .leaf(n)
            .binary_search_by(|s| cmp_slot(&self.store, s, top, &key))
            .ok()?;
        let slot = self.chunks[n][pos];
        self.chunks[n].copy_within(pos + 1..len, pos);
        self.kinds[n] -= 1;
        let sub = Summary {
            count: 1,
            sum: slot.fp,
        };
        self.aggs[n] = self.aggs[n].minus(sub);
        let depth = path.len;
        self.hashes.stale(n as u32, nib_or_zero(&key, depth));
        self.hashes.removed(n as u32, nib_or_zero(&key, depth), pos);
        for (d, &p) in path.as_slice().iter().enumerate() {
            self.aggs[p as usize] = self.aggs[p as usize].minus(sub);
            self.hashes.stale(p, nib(&key, d));
        }
        // Collapse the highest inner node on the path that became small.
        if let Some(&high) = path
            .as_slice()
            .iter()
            .find(|&&p| self.aggs[p as usize].count as usize <= LEAF_CAP / 2)
        {
            let mut slots = [EMPTY; LEAF_CAP];
            let mut len = 0usize;
            self.drain_into(high as usize, &mut slots, &mut len);
            self.chunks[high as usize] = slots;
            self.kinds[high as usize] = len as u32;
            self.hashes.reshaped(high);
        }
        // Keep the store dense: the last entry moves into the freed place
        // (its slot is repointed first, while the store still holds it).
        let last = self.store.len() - 1;
        if slot.idx as usize != last {
            let moved_key = self.store[last].entry.id.0.0;
            let moved_top = top64_of(&moved_key);
            let mut path = Path::new();
            let (m, _) = self.walk(&moved_key, &mut path);
            if let Ok(i) = self
                .leaf(m)
                .binary_search_by(|s| cmp_slot(&self.store, s, moved_top, &moved_key))
            {
                self.chunks[m][i].idx = slot.idx;
            }
        }
        Some(self.store.swap_remove(slot.idx as usize))
    }

    /// Moves every slot below inner node `n` into `out[len..]` (in order;
    /// the caller checked that they fit) and frees the blocks below `n`.
    fn drain_into(&mut self, n: usize, out: &mut [Slot; LEAF_CAP], len: &mut usize) {
        match self.inner(n) {
            None => {
                let k = (self.kinds[n] as usize).min(LEAF_CAP);
                for s in &self.chunks[n][..k] {
                    if *len < LEAF_CAP {
                        out[*len] = *s;
                        *len += 1;
                    }
                }
            }
            Some(base) => {
                for c in base..base + FANOUT {
                    self.drain_into(c, out, len);
                    self.aggs[c] = Summary::default();
                    self.kinds[c] = 0;
                }
                self.free_blocks.push(base as u32);
            }
        }
    }

    /// Summary of every entry whose id is strictly below `key`.
    pub(crate) fn below(&self, key: &[u8; 32]) -> Summary {
        let mut acc = Summary::default();
        let mut n = 0usize;
        let mut depth = 0;
        while let Some(base) = self.inner(n) {
            let k = nib(key, depth);
            for a in &self.aggs[base..base + k] {
                acc.add(*a);
            }
            n = base + k;
            depth += 1;
        }
        let top = top64_of(key);
        for s in self.leaf(n) {
            if cmp_slot(&self.store, s, top, key).is_lt() {
                acc.add_fp(s.fp);
            } else {
                break;
            }
        }
        acc
    }

    /// Walks down along the prefix (`bits`, `len`) as far as nodes lie
    /// around it: returns the node at depth `len / 4` that holds the
    /// prefix (or the leaf above it) and its depth.
    #[inline]
    fn descend(&self, bits: u64, len: u32) -> (usize, usize) {
        let mut n = 0usize;
        let mut depth = 0usize;
        while 4 * (depth as u32 + 1) <= len {
            match self.inner(n) {
                Some(base) => {
                    n = base + top_nib(bits, depth);
                    depth += 1;
                }
                None => break,
            }
        }
        (n, depth)
    }

    /// The children of inner node (`base`, `depth`) that meet the prefix
    /// (`bits`, `len`), with `4 * depth < len < 4 * (depth + 1)`.
    #[inline]
    fn children_in(base: usize, depth: usize, bits: u64, len: u32) -> core::ops::Range<usize> {
        let fixed = len - 4 * depth as u32; // 1..=3 bits of the child nibble
        let width = 1usize << (4 - fixed);
        let first = top_nib(bits, depth) & !(width - 1);
        base + first..base + first + width
    }

    /// Adds the summaries of the `2^b` equal parts of the prefix (`bits`,
    /// `len`) to `out` (which has `2^b` elements), in one walk: O(nodes down
    /// to depth `(len + b) / 4`), plus the slots of leaves that straddle
    /// parts.
    pub(crate) fn child_aggs(&self, bits: u64, len: u8, b: u8, out: &mut [Summary]) {
        let len = u32::from(len);
        let target = len + u32::from(b);
        let mask = (1u64 << b) - 1;
        let (n, depth) = self.descend(bits, len);
        match self.inner(n) {
            None => {
                for s in prefix_slice(self.leaf(n), bits, len) {
                    out[part_of(s.top, target, mask)].add_fp(s.fp);
                }
            }
            Some(base) => {
                if 4 * depth as u32 == len {
                    self.parts_walk(n, depth, bits, target, mask, out);
                } else {
                    let shift = 60 - 4 * depth as u32;
                    let clear = bits & !(0xFu64 << shift);
                    for c in Self::children_in(base, depth, bits, len) {
                        let path = clear | (((c - base) as u64) << shift);
                        self.parts_walk(c, depth + 1, path, target, mask, out);
                    }
                }
            }
        }
    }

    /// Adds node `n` (at `depth`, all of whose ids start with the first
    /// `4 * depth` bits of `path`) to the parts at prefix length `target`.
    fn parts_walk(
        &self,
        n: usize,
        depth: usize,
        path: u64,
        target: u32,
        mask: u64,
        out: &mut [Summary],
    ) {
        let agg = self.aggs[n];
        if agg.count == 0 {
            return;
        }
        if 4 * depth as u32 >= target {
            out[part_of(path, target, mask)].add(agg);
            return;
        }
        match self.inner(n) {
            None => {
                for s in self.leaf(n) {
                    out[part_of(s.top, target, mask)].add_fp(s.fp);
                }
            }
            Some(base) => {
                let shift = 60 - 4 * depth as u32;
                let clear = path & !(0xFu64 << shift);
                if 4 * (depth as u32 + 1) >= target {
                    // The children are whole parts (or inside one).
                    for c in 0..FANOUT {
                        let a = self.aggs[base + c];
                        if a.count != 0 {
                            out[part_of(clear | ((c as u64) << shift), target, mask)].add(a);
                        }
                    }
                    return;
                }
                for c in 0..FANOUT {
                    self.parts_walk(
                        base + c,
                        depth + 1,
                        clear | ((c as u64) << shift),
                        target,
                        mask,
                        out,
                    );
                }
            }
        }
    }

    /// Summary of the prefix (`bits`, `len`): O(depth).
    pub(crate) fn prefix_summary(&self, bits: u64, len: u8) -> Summary {
        let len = u32::from(len);
        let (n, depth) = self.descend(bits, len);
        match self.inner(n) {
            None => {
                let mut acc = Summary::default();
                for s in prefix_slice(self.leaf(n), bits, len) {
                    acc.add_fp(s.fp);
                }
                acc
            }
            Some(base) => {
                if 4 * depth as u32 == len {
                    self.aggs[n]
                } else {
                    let mut acc = Summary::default();
                    for c in Self::children_in(base, depth, bits, len) {
                        acc.add(self.aggs[c]);
                    }
                    acc
                }
            }
        }
    }

    /// Calls `f` on every slot whose id has the prefix (`bits`, `len`), in
    /// id order.
    pub(crate) fn for_each_prefix<'a>(&'a self, bits: u64, len: u8, f: &mut impl FnMut(&'a Slot)) {
        let len = u32::from(len);
        let (n, depth) = self.descend(bits, len);
        match self.inner(n) {
            None => {
                for s in prefix_slice(self.leaf(n), bits, len) {
                    f(s);
                }
            }
            Some(base) => {
                if 4 * depth as u32 == len {
                    self.visit_all(n, f);
                } else {
                    for c in Self::children_in(base, depth, bits, len) {
                        self.visit_all(c, f);
                    }
                }
            }
        }
    }

    fn visit_all<'a>(&'a self, n: usize, f: &mut impl FnMut(&'a Slot)) {
        match self.inner(n) {
            None => {
                for s in self.leaf(n) {
                    f(s);
                }
            }
            Some(base) => {
                for c in base..base + FANOUT {
                    if self.aggs[c].count != 0 {
                        self.visit_all(c, f);
                    }
                }
            }
        }
    }

    /// The top 64 id bits of the first and of the last entry (`None` when
    /// empty): O(depth).
    pub(crate) fn edge_tops(&self) -> Option<(u64, u64)> {
        Some((self.edge_top(false)?, self.edge_top(true)?))
    }

    fn edge_top(&self, last: bool) -> Option<u64> {
        let mut n = 0;
        while let Some(base) = self.inner(n) {
            let mut children = (base..base + FANOUT).filter(|&c| self.aggs[c].count != 0);
            n = if last {
                children.next_back()
            } else {
                children.next()
            }?;
        }
        let slots = self.leaf(n);
        let s = if last { slots.last() } else { slots.first() }?;
        Some(s.top)
    }

    /// Calls `f` on every slot, in id order.
    pub(crate) fn for_each<'a>(&'a self, f: &mut impl FnMut(&'a Slot)) {
        self.visit_all(0, f);
    }
}

/// The slots of a sorted leaf that lie in the prefix (`bits`, `len`).
#[inline]
fn prefix_slice(v: &[Slot], bits: u64, len: u32) -> &[Slot] {
    if len == 0 {
        return v;
    }
    let lo = bits & !u64::MAX.checked_shr(len).unwrap_or(0);
    let start = v.partition_point(|s| s.top < lo);
    let end = start + v[start..].partition_point(|s| in_prefix(s.top, bits, len));
    &v[start..end]
}
