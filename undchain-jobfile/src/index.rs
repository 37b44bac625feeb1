//! The ordered index of a job file: a 16-way burst trie over the job id's
//! nibbles whose every node keeps the count and the wrapping 64-bit sum of
//! the entry fingerprints below it (DESIGN.md "Reconciliation":
//! fingerprints maintained incrementally, unkeyed, O(log n) per insert and
//! per range query).
//!
//! Entries live in sorted leaf buckets of at most 32 entries; a bucket
//! that grows past it bursts into 16 children by the next nibble, and a
//! subtree that shrinks below half of it collapses back into one bucket.
//! Job ids are blake3 outputs, so the depth is about `log16(n / 16)`; the
//! trie never looks at more than the id's 64 nibbles, so even crafted ids
//! cannot make a path longer than 64 nodes.

use undchain_types::{Hash32, JobEntry, JobId};

/// Most entries in one leaf bucket before it bursts.
pub(crate) const LEAF_CAP: usize = 32;
const FANOUT: usize = 16;
const NIBBLES: usize = 64;

/// One stored entry with its leaf hash (computed once at insert). The
/// first 8 bytes of the id and the fingerprint sit inline so that range
/// scans touch 24 bytes per entry; the rest is boxed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    top: u64,
    fp: u64,
    body: Box<(JobEntry, Hash32)>,
}

impl Slot {
    pub(crate) fn new(entry: JobEntry, leaf: Hash32) -> Self {
        Slot {
            top: top64_of(&entry.id.0.0),
            fp: leaf.short(),
            body: Box::new((entry, leaf)),
        }
    }

    #[inline]
    pub(crate) fn id(&self) -> &[u8; 32] {
        &self.body.0.id.0.0
    }

    #[inline]
    pub(crate) fn entry(&self) -> &JobEntry {
        &self.body.0
    }

    #[inline]
    pub(crate) fn leaf(&self) -> &Hash32 {
        &self.body.1
    }

    pub(crate) fn into_entry(self) -> JobEntry {
        self.body.0
    }

    /// The entry's unkeyed 64-bit fingerprint: the leaf hash's first 8 bytes.
    #[inline]
    pub(crate) fn fp(&self) -> u64 {
        self.fp
    }

    /// Orders the slot against a key whose first 8 bytes are `top`.
    #[inline]
    fn cmp_key(&self, top: u64, key: &[u8; 32]) -> core::cmp::Ordering {
        self.top.cmp(&top).then_with(|| self.id().cmp(key))
    }
}

/// Count and wrapping sum of fingerprints of a set of entries. Both form a
/// group, so the summary of `[lo, hi)` is `below(hi) - below(lo)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Entries.
    pub count: u64,
    /// Wrapping sum of their 64-bit fingerprints.
    pub sum: u64,
}

impl Summary {
    #[inline]
    fn add(&mut self, o: Summary) {
        self.count = self.count.wrapping_add(o.count);
        self.sum = self.sum.wrapping_add(o.sum);
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

#[derive(Debug, Clone)]
enum Kind {
    Leaf(Vec<Slot>),
    Inner([u32; FANOUT]),
}

#[derive(Debug, Clone)]
struct Node {
    agg: Summary,
    kind: Kind,
}

#[inline]
fn top64_of(key: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[..8]);
    u64::from_be_bytes(b)
}

#[inline]
fn nib(key: &[u8; 32], depth: usize) -> usize {
    let b = key[depth / 2];
    usize::from(if depth % 2 == 0 { b >> 4 } else { b & 15 })
}

/// The inner nodes passed on the way to a leaf (at most one per nibble).
struct Path {
    nodes: [u32; NIBBLES + 1],
    len: usize,
}

impl Default for Path {
    fn default() -> Self {
        Path {
            nodes: [0; NIBBLES + 1],
            len: 0,
        }
    }
}

impl Path {
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

/// The trie. Node 0 is the root.
#[derive(Debug, Clone)]
pub(crate) struct Index {
    nodes: Vec<Node>,
    free: Vec<u32>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            nodes: vec![Node {
                agg: Summary::default(),
                kind: Kind::Leaf(Vec::new()),
            }],
            free: Vec::new(),
        }
    }
}

impl Index {
    pub(crate) fn total(&self) -> Summary {
        self.nodes[0].agg
    }

    fn alloc(&mut self, node: Node) -> u32 {
        if let Some(i) = self.free.pop() {
            self.nodes[i as usize] = node;
            i
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        }
    }

    /// Walks to the leaf that holds (or would hold) `key`; returns the
    /// inner nodes passed, the leaf and its depth.
    fn walk(&self, key: &[u8; 32], path: &mut Path) -> (u32, usize) {
        let mut n = 0u32;
        let mut depth = 0;
        while let Kind::Inner(ch) = &self.nodes[n as usize].kind {
            path.push(n);
            n = ch[nib(key, depth)];
            depth += 1;
        }
        (n, depth)
    }

    pub(crate) fn get(&self, id: &JobId) -> Option<&Slot> {
        let key = &id.0.0;
        let top = top64_of(key);
        let mut n = 0usize;
        let mut depth = 0;
        while let Kind::Inner(ch) = &self.nodes[n].kind {
            n = ch[nib(key, depth)] as usize;
            depth += 1;
        }
        match &self.nodes[n].kind {
            Kind::Leaf(v) => v
                .binary_search_by(|s| s.cmp_key(top, key))
                .ok()
                .map(|i| &v[i]),
            Kind::Inner(_) => None,
        }
    }

    /// Inserts `slot`; returns it back if its id is already present.
    pub(crate) fn insert(&mut self, slot: Slot) -> Result<(), Slot> {
        let mut path = Path::default();
        let key = *slot.id();
        let top = slot.top;
        let (leaf, depth) = self.walk(&key, &mut path);
        let add = Summary {
            count: 1,
            sum: slot.fp(),
        };
        let len = match &mut self.nodes[leaf as usize].kind {
            Kind::Leaf(v) => match v.binary_search_by(|s| s.cmp_key(top, &key)) {
                Ok(_) => return Err(slot),
                Err(i) => {
                    v.insert(i, slot);
                    v.len()
                }
            },
            Kind::Inner(_) => return Err(slot),
        };
        self.nodes[leaf as usize].agg.add(add);
        for &p in path.as_slice() {
            self.nodes[p as usize].agg.add(add);
        }
        if len > LEAF_CAP && depth < NIBBLES {
            self.burst(leaf, depth);
        }
        Ok(())
    }

    fn burst(&mut self, n: u32, depth: usize) {
        let slots = match &mut self.nodes[n as usize].kind {
            Kind::Leaf(v) => core::mem::take(v),
            Kind::Inner(_) => return,
        };
        let mut buckets: [Vec<Slot>; FANOUT] = Default::default();
        for s in slots {
            let c = nib(s.id(), depth);
            buckets[c].push(s);
        }
        let mut children = [0u32; FANOUT];
        for (c, bucket) in buckets.into_iter().enumerate() {
            let mut agg = Summary::default();
            for s in &bucket {
                agg.add(Summary {
                    count: 1,
                    sum: s.fp(),
                });
            }
            children[c] = self.alloc(Node {
                agg,
                kind: Kind::Leaf(bucket),
            });
        }
        self.nodes[n as usize].kind = Kind::Inner(children);
    }

    /// Removes the entry with `id`, if present.
    pub(crate) fn remove(&mut self, id: &JobId) -> Option<Slot> {
        let mut path = Path::default();
        let key = id.0.0;
        let top = top64_of(&key);
        let (leaf, _) = self.walk(&key, &mut path);
        let slot = match &mut self.nodes[leaf as usize].kind {
            Kind::Leaf(v) => match v.binary_search_by(|s| s.cmp_key(top, &key)) {
                Ok(i) => v.remove(i),
                Err(_) => return None,
            },
            Kind::Inner(_) => return None,
        };
        let sub = Summary {
            count: 1,
            sum: slot.fp(),
        };
        self.nodes[leaf as usize].agg = self.nodes[leaf as usize].agg.minus(sub);
        for &p in path.as_slice() {
            self.nodes[p as usize].agg = self.nodes[p as usize].agg.minus(sub);
        }
        // Collapse the highest inner node on the path that became small.
        if let Some(&top) = path
            .as_slice()
            .iter()
            .find(|&&p| self.nodes[p as usize].agg.count as usize <= LEAF_CAP / 2)
        {
            let mut slots = Vec::with_capacity(LEAF_CAP / 2);
            self.drain_into(top, &mut slots, true);
            self.nodes[top as usize].kind = Kind::Leaf(slots);
        }
        Some(slot)
    }

    /// Moves every slot below `n` into `out` (in order) and frees the
    /// nodes below `n` (not `n` itself when `keep_self`).
    fn drain_into(&mut self, n: u32, out: &mut Vec<Slot>, keep_self: bool) {
        let kind = core::mem::replace(&mut self.nodes[n as usize].kind, Kind::Leaf(Vec::new()));
        match kind {
            Kind::Leaf(v) => out.extend(v),
            Kind::Inner(ch) => {
                for c in ch.iter() {
                    self.drain_into(*c, out, false);
                }
            }
        }
        if !keep_self {
            self.free.push(n);
        }
    }

    /// Summary of every entry whose id is strictly below `key`.
    pub(crate) fn below(&self, key: &[u8; 32]) -> Summary {
        let mut acc = Summary::default();
        let mut n = 0usize;
        let mut depth = 0;
        loop {
            match &self.nodes[n].kind {
                Kind::Inner(ch) => {
                    let k = nib(key, depth);
                    for c in &ch[..k] {
                        acc.add(self.nodes[*c as usize].agg);
                    }
                    n = ch[k] as usize;
                    depth += 1;
                }
                Kind::Leaf(v) => {
                    let top = top64_of(key);
                    for s in v {
                        if s.cmp_key(top, key).is_lt() {
                            acc.add(Summary {
                                count: 1,
                                sum: s.fp(),
                            });
                        } else {
                            break;
                        }
                    }
                    return acc;
                }
            }
        }
    }

    /// Summaries of the `2^b` equal parts of the ids whose top `len` bits
    /// equal those of `bits`, in one walk (O(2^b + depth) nodes).
    pub(crate) fn child_aggs(&self, bits: u64, len: u8, b: u8) -> Vec<Summary> {
        let mut out = vec![Summary::default(); 1usize << b];
        self.child_walk(0, 0, 0, bits, len, b, &mut out);
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn child_walk(
        &self,
        n: u32,
        depth: usize,
        path: u64,
        bits: u64,
        len: u8,
        b: u8,
        out: &mut [Summary],
    ) {
        let node = &self.nodes[n as usize];
        if node.agg.count == 0 {
            return;
        }
        let depth_bits = 4 * depth as u32;
        let target = u32::from(len) + u32::from(b);
        if depth_bits >= target {
            // The whole node lies inside one part.
            let i = ((path >> (64 - target)) & ((1u64 << b) - 1)) as usize;
            out[i].add(node.agg);
            return;
        }
        match &node.kind {
            Kind::Leaf(v) => {
                for s in v {
                    let t = s.top;
                    if len > 0 && (t ^ bits) >> (64 - u32::from(len)) != 0 {
                        continue;
                    }
                    let i = ((t >> (64 - target)) & ((1u64 << b) - 1)) as usize;
                    out[i].add(Summary {
                        count: 1,
                        sum: s.fp(),
                    });
                }
            }
            Kind::Inner(ch) => {
                for (c, &child) in ch.iter().enumerate() {
                    let child_path = path | ((c as u64) << (60 - depth_bits));
                    // Skip children outside the prefix.
                    let fixed = (depth_bits + 4).min(u32::from(len));
                    if fixed > 0 && (child_path ^ bits) >> (64 - fixed) != 0 {
                        continue;
                    }
                    self.child_walk(child, depth + 1, child_path, bits, len, b, out);
                }
            }
        }
    }

    /// Calls `f` on every slot with `lo <= id < hi` (`hi = None`: no upper
    /// bound), in id order.
    pub(crate) fn for_each_in<'a>(
        &'a self,
        lo: &[u8; 32],
        hi: Option<&[u8; 32]>,
        f: &mut dyn FnMut(&'a Slot),
    ) {
        self.visit(0, 0, Some(lo), hi, f);
    }

    fn visit<'a>(
        &'a self,
        n: u32,
        depth: usize,
        lo: Option<&[u8; 32]>,
        hi: Option<&[u8; 32]>,
        f: &mut dyn FnMut(&'a Slot),
    ) {
        match &self.nodes[n as usize].kind {
            Kind::Leaf(v) => {
                let start = match lo {
                    Some(lo) => {
                        let t = top64_of(lo);
                        v.partition_point(|s| s.cmp_key(t, lo).is_lt())
                    }
                    None => 0,
                };
                let hi = hi.map(|h| (top64_of(h), h));
                for s in &v[start..] {
                    if let Some((t, h)) = hi
                        && !s.cmp_key(t, h).is_lt()
                    {
                        break;
                    }
                    f(s);
                }
            }
            Kind::Inner(ch) => {
                if self.nodes[n as usize].agg.count == 0 {
                    return;
                }
                let from = lo.map_or(0, |k| nib(k, depth));
                let to = hi.map_or(FANOUT - 1, |k| nib(k, depth));
                for (c, &child) in ch.iter().enumerate().take(to + 1).skip(from) {
                    let clo = lo.filter(|_| c == from);
                    let chi = hi.filter(|_| c == to);
                    self.visit(child, depth + 1, clo, chi, f);
                }
            }
        }
    }

    /// Calls `f` on every slot, in id order.
    pub(crate) fn for_each<'a>(&'a self, f: &mut dyn FnMut(&'a Slot)) {
        self.visit(0, 0, None, None, f);
    }
}
