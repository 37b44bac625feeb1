//! The open file's collision-resistant root: a hash over the canonical
//! binary trie of its entries (`docs/PROTOCOL.md` "Job files and
//! reconciliation", "Two roots").
//!
//! The trie is the binary trie of the job ids' bits with every node that
//! has one empty child replaced by the other child (a crit-bit tree): an
//! empty set hashes to zero, one entry to its leaf hash, and a set that
//! splits at a bit into two non-empty halves to blake3 (`JobFileTrie`) of
//! the halves' hashes. The shape depends on the set alone, not on the
//! order of inserts or on the 16-way index that computes it.
//!
//! Each node of the 16-way index caches the hash of the entries below it
//! (a 16-way node combines its children's hashes over the nibble's four
//! bits, a leaf bucket builds the crit-bit tree of its at most 32 entries)
//! and is marked stale by every insert or removal below it, so an insert
//! costs a flag per level and the root recomputes only the stale paths.
//! The same walk merges in entries that are not in the file (a
//! reconciliation's learned entries) without touching the cache of any
//! node they do not fall in.

use std::sync::{Mutex, PoisonError};

use undchain_types::{Hash32, HashContext, JobId, hash_parts};

use super::{FANOUT, Index, nib};

/// The hash of the empty set.
const EMPTY: Hash32 = Hash32::ZERO;

/// Inner hashes of a 16-way node's binary combination of its children
/// (levels of 8, 4 and 2), kept for the node whose children block it is.
type Mid = [Hash32; 14];

/// Cached node hashes of an index, with which of them are current, and the
/// inner hashes of every block of children (valid while its parent is
/// fresh), so that merging one entry below a fresh node costs four hashes
/// there, not fifteen.
#[derive(Debug, Default, Clone)]
struct Cache {
    hash: Vec<Hash32>,
    fresh: Vec<bool>,
    mid: Vec<Mid>,
    /// Per node, while it is a leaf bucket: the hashes of its 16 groups by
    /// the next nibble, then their 14 inner hashes (valid while fresh), so
    /// that merging an entry into a fresh bucket rehashes one group.
    groups: Vec<[Hash32; FANOUT + 14]>,
    /// Per node: its inner hashes (`mid` of its children block, or its
    /// `groups`) were computed for its current shape, and only the
    /// children (or groups) whose bits are set in `dirty` changed since.
    valid: Vec<bool>,
    dirty: Vec<u16>,
    /// Per leaf bucket: the slots (a bit a position) inserted since its
    /// group hashes were written, and the groups an entry left since
    /// (`cut`). A changed group that only gained entries is the crit-bit
    /// merge of its cached hash (its entries before) with the new ones
    /// wherever these do not fall between the old ([`merge_block`]), so
    /// the old entries are not read from the store.
    added: Vec<u32>,
    cut: Vec<u16>,
}

/// The node-hash cache (behind a lock, so that [`Index::trie_hash`] can
/// refresh it through a shared reference; inserts reach it without
/// locking).
#[derive(Debug)]
pub(crate) struct NodeHashes(Mutex<Cache>);

impl Default for NodeHashes {
    fn default() -> Self {
        NodeHashes(Mutex::new(Cache {
            hash: vec![EMPTY],
            fresh: vec![false],
            mid: Vec::new(),
            groups: vec![[EMPTY; FANOUT + 14]],
            valid: vec![false],
            dirty: vec![0],
            added: vec![0],
            cut: vec![0],
        }))
    }
}

impl Clone for NodeHashes {
    fn clone(&self) -> Self {
        let c = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        NodeHashes(Mutex::new(c))
    }
}

impl NodeHashes {
    fn cache(&mut self) -> &mut Cache {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks node `n` stale because its child (or group) `part` changed
    /// (a node the cache does not cover yet is stale).
    #[inline]
    pub(crate) fn stale(&mut self, n: u32, part: usize) {
        let c = self.cache();
        let n = n as usize;
        if n < c.fresh.len() {
            c.fresh[n] = false;
            c.dirty[n] |= 1 << (part % FANOUT);
        }
    }

    /// Records that leaf bucket `n` gained the slot at `pos` (the slots
    /// from `pos` on moved up one place).
    #[inline]
    pub(crate) fn inserted(&mut self, n: u32, pos: usize) {
        let c = self.cache();
        let n = n as usize;
        if n < c.added.len() {
            let low = (1u32 << pos) - 1;
            let a = c.added[n];
            c.added[n] = (a & low) | ((a & !low) << 1) | (1 << pos);
        }
    }

    /// Records that leaf bucket `n` lost the slot at `pos` of group
    /// `group` (the slots after it moved down one place).
    #[inline]
    pub(crate) fn removed(&mut self, n: u32, group: usize, pos: usize) {
        let c = self.cache();
        let n = n as usize;
        if n < c.added.len() {
            let low = (1u32 << pos) - 1;
            let a = c.added[n];
            c.added[n] = (a & low) | ((a >> 1) & !low);
            c.cut[n] |= 1 << (group % FANOUT);
        }
    }

    /// Marks node `n` stale with every cached inner hash of it (its shape
    /// changed: a leaf burst, an inner node collapsed, a block reused).
    #[inline]
    pub(crate) fn reshaped(&mut self, n: u32) {
        let c = self.cache();
        let n = n as usize;
        if n < c.fresh.len() {
            c.fresh[n] = false;
            c.valid[n] = false;
        }
    }
}

/// The hash of two sibling subtrees (an empty one passes the other on).
#[inline]
fn node(l: &Hash32, r: &Hash32) -> Hash32 {
    if *l == EMPTY {
        *r
    } else if *r == EMPTY {
        *l
    } else {
        // The same value as `hash_parts(JobFileTrie, [l, r])`: blake3 keyed
        // by the context's key over the 64 bytes, in one call that skips
        // the streaming hasher (the trie's hot path).
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(&l.0);
        buf[32..].copy_from_slice(&r.0);
        Hash32(*blake3::keyed_hash(HashContext::JobFileTrie.key(), &buf).as_bytes())
    }
}

/// Bit `bit` (0 = the most significant) of an id.
#[inline]
fn bit_at(id: &JobId, bit: u32) -> bool {
    (id.0.0[(bit / 8) as usize] >> (7 - bit % 8)) & 1 == 1
}

/// The first bit at or after `from` where `a` and `b` differ.
fn first_difference(a: &JobId, b: &JobId, from: u32) -> Option<u32> {
    let mut byte = (from / 8) as usize;
    let mut mask = 0xFFu8 >> (from % 8);
    while byte < 32 {
        let x = (a.0.0[byte] ^ b.0.0[byte]) & mask;
        if x != 0 {
            return Some(byte as u32 * 8 + x.leading_zeros());
        }
        byte += 1;
        mask = 0xFF;
    }
    None
}

/// The crit-bit hash of `list` (sorted by id, then leaf hash; every id
/// shares its bits before `from`). Two versions of one id (a file's entry
/// and a learned one) hash as siblings, in leaf-hash order.
fn crit(list: &[(JobId, Hash32)], from: u32) -> Hash32 {
    match list {
        [] => EMPTY,
        [(_, leaf)] => *leaf,
        [first, .., last] => match first_difference(&first.0, &last.0, from) {
            None => list[1..]
                .iter()
                .fold(list[0].1, |acc, (_, leaf)| node(&acc, leaf)),
            Some(p) => {
                let k = list.partition_point(|(id, _)| !bit_at(id, p));
                node(&crit(&list[..k], p + 1), &crit(&list[k..], p + 1))
            }
        },
    }
}

/// The hash of a 16-way node from its children's `h`, over the nibble's
/// bits, into `mid` (its inner hashes). Where `reuse` is given, only the
/// pairs above a child in `changed` (a bit a child) are hashed again; the
/// others are taken from `reuse`.
fn combine(h: &[Hash32; FANOUT], changed: u16, reuse: Option<&Mid>, mid: &mut Mid) -> Hash32 {
    let mut changed = u32::from(changed);
    let mut level = *h;
    let mut n = FANOUT;
    let mut at = 0;
    while n > 1 {
        let mut next = 0u32;
        for i in 0..n / 2 {
            let dirty = changed >> (2 * i) & 3 != 0;
            level[i] = match reuse {
                Some(old) if !dirty && n > 2 => old[at + i],
                _ => node(&level[2 * i], &level[2 * i + 1]),
            };
            if dirty {
                next |= 1 << i;
            }
            if n > 2 {
                mid[at + i] = level[i];
            }
        }
        at += n / 2;
        changed = next;
        n /= 2;
    }
    level[0]
}

/// The slots of `slots` (sorted, none with a nibble `depth` below `g`)
/// whose nibble `depth` is `g`, and the rest after them.
#[inline]
fn split_group<'a>(
    store: &[super::Stored],
    slots: &'a [super::Slot],
    depth: usize,
    g: usize,
) -> (&'a [super::Slot], &'a [super::Slot]) {
    let k = slots.partition_point(|s| super::slot_nib(store, s, depth) <= g);
    slots.split_at(k)
}

/// The crit-bit hash of a group's entries (`members`, sorted slots, whose
/// crit-bit hash is `held`) merged with `extra` (sorted, not among them;
/// every id shares its bits before `from`), found from the ids' top 64
/// bits alone wherever the extra entries do not fall between the members:
/// the members then stay one subtree, `held`, and their entries are not
/// read. `None` where they would be split, or where 64 bits do not decide
/// (the caller then hashes the merged list).
fn merge_block(
    members: &[super::Slot],
    held: &Hash32,
    extra: &[(JobId, Hash32)],
    from: u32,
) -> Option<Hash32> {
    let top = |e: &(JobId, Hash32)| super::top64_of(&e.0.0.0);
    match (members, extra) {
        ([], _) => Some(crit(extra, from)),
        (_, []) => Some(*held),
        ([m0, .., ml] | [m0 @ ml], [e0, .., el] | [e0 @ el]) => {
            if from >= 64 {
                return None;
            }
            let (first, last) = (m0.top.min(top(e0)), ml.top.max(top(el)));
            let x = (first ^ last) & (u64::MAX >> from);
            if x == 0 {
                return None;
            }
            let p = x.leading_zeros();
            let right = |t: u64| (t >> (63 - p)) & 1 == 1;
            let m = members.partition_point(|s| !right(s.top));
            if m != 0 && m != members.len() {
                return None;
            }
            let e = extra.partition_point(|x| !right(top(x)));
            let (ml, mr) = members.split_at(m);
            let l = merge_block(ml, held, &extra[..e], p + 1)?;
            let r = merge_block(mr, held, &extra[e..], p + 1)?;
            Some(node(&l, &r))
        }
    }
}

/// The hash of a bucket's 16 groups from its cached combination
/// (`cached`: the group hashes, then the 14 inner hashes as [`combine`]
/// lays them out) with the groups of `changed` (ascending, distinct)
/// replaced: only the pairs above a changed group are hashed again, each
/// from its new child and its cached sibling. With `write` the new hashes
/// go into the cache.
fn patch(cached: &mut [Hash32; FANOUT + 14], changed: &[(u8, Hash32)], write: bool) -> Hash32 {
    // Where each level of the combination sits in `cached` (16, 8, 4, 2).
    const LEVEL: [usize; 4] = [0, FANOUT, FANOUT + 8, FANOUT + 12];
    let mut cur = [(0u8, EMPTY); FANOUT];
    cur[..changed.len()].copy_from_slice(changed);
    let mut len = changed.len();
    for at in LEVEL {
        let value = |cur: &[(u8, Hash32)], i: u8| {
            cur.iter()
                .find(|(j, _)| *j == i)
                .map_or(cached[at + usize::from(i)], |(_, h)| *h)
        };
        let mut next = [(0u8, EMPTY); FANOUT];
        let mut k = 0;
        for i in 0..len {
            let p = cur[i].0 / 2;
            if k > 0 && next[k - 1].0 == p {
                continue;
            }
            let h = node(&value(&cur[..len], 2 * p), &value(&cur[..len], 2 * p + 1));
            next[k] = (p, h);
            k += 1;
        }
        if write {
            for (i, h) in &cur[..len] {
                cached[at + usize::from(*i)] = *h;
            }
        }
        if len == 0 {
            // Nothing changed: the top pair from the cache.
            return node(&cached[FANOUT + 12], &cached[FANOUT + 13]);
        }
        cur = next;
        len = k;
    }
    cur[0].1
}

impl Index {
    /// The trie hash of the index's entries plus `extra` (sorted by id,
    /// then leaf hash; entries not in the index). Refreshes the stale
    /// cached hashes of nodes `extra` does not fall in.
    pub(crate) fn trie_hash(&self, extra: &[(JobId, Hash32)]) -> Hash32 {
        let mut c = self.hashes.0.lock().unwrap_or_else(PoisonError::into_inner);
        // The cache covers the nodes allocated since the last read (new
        // nodes are stale), so that an insert never grows it.
        let nodes = self.kinds.len();
        c.hash.resize(nodes, EMPTY);
        c.fresh.resize(nodes, false);
        c.mid.resize(nodes / FANOUT, [EMPTY; 14]);
        c.groups.resize(nodes, [EMPTY; FANOUT + 14]);
        c.valid.resize(nodes, false);
        c.dirty.resize(nodes, 0);
        c.added.resize(nodes, 0);
        c.cut.resize(nodes, 0);
        let mut list = Vec::with_capacity(64);
        if extra.is_empty() && !c.fresh[0] {
            self.refresh_buckets(&mut c, &mut list);
        }
        self.hash_of(&mut c, &mut list, 0, 0, extra)
    }

    /// Rehashes every stale leaf bucket, a batch at a time, before the
    /// inner nodes: the buckets the inserts since the last read fell in
    /// lie scattered over the slots, the group hashes and the store, and
    /// hashed one after the other each would wait for its own cache
    /// misses. Here the reads of a batch are issued together (the slots
    /// and group hashes of every bucket, then the stored entries of the
    /// groups that will be hashed whole), so their misses overlap; the hashing then
    /// finds them cached. The inner nodes above are left stale for
    /// [`Index::hash_of`], which finds these buckets fresh.
    fn refresh_buckets(&self, c: &mut Cache, list: &mut Vec<(JobId, Hash32)>) {
        /// Buckets whose reads are issued together.
        const BATCH: usize = 16;
        let mut stale = Vec::new();
        self.stale_buckets(c, 0, 0, &mut stale);
        for batch in stale.chunks(BATCH) {
            let mut seen = 0u8;
            for &(n, _) in batch {
                let n = n as usize;
                for s in self.leaf(n).iter().step_by(2) {
                    seen ^= s.top as u8;
                }
                for h in c.groups[n].iter().step_by(2) {
                    seen ^= h.0[0];
                }
            }
            for &(n, depth) in batch {
                let (n, depth) = (n as usize, usize::from(depth));
                // Groups that will be hashed from their entries: all of
                // a bucket without cached groups, those an entry left.
                let all = c.fresh[n] || !c.valid[n] || depth >= 64;
                if !all && c.cut[n] == 0 {
                    continue;
                }
                for s in self.leaf(n) {
                    if all || c.cut[n] >> super::slot_nib(&self.store, s, depth) & 1 == 1 {
                        let st = self.stored(s.idx);
                        seen ^= st.leaf.0[0] ^ st.entry.id.0.0[0];
                    }
                }
            }
            std::hint::black_box(seen);
            for &(n, depth) in batch {
                self.hash_of(c, list, n as usize, usize::from(depth), &[]);
            }
        }
    }

    /// Appends the stale non-empty leaf buckets below node `n` (at
    /// `depth`), with their depths, to `out`.
    fn stale_buckets(&self, c: &Cache, n: usize, depth: usize, out: &mut Vec<(u32, u8)>) {
        if c.fresh[n] {
            return;
        }
        match self.inner(n) {
            None => out.push((n as u32, depth as u8)),
            Some(base) => {
                for ch in base..base + FANOUT {
                    if self.aggs[ch].count != 0 {
                        self.stale_buckets(c, ch, depth + 1, out);
                    }
                }
            }
        }
    }

    /// The trie hash of node `n` (at `depth`) with `extra` merged in;
    /// `list` is scratch for a leaf bucket's entries.
    fn hash_of(
        &self,
        c: &mut Cache,
        list: &mut Vec<(JobId, Hash32)>,
        n: usize,
        depth: usize,
        extra: &[(JobId, Hash32)],
    ) -> Hash32 {
        if extra.is_empty() && c.fresh[n] {
            return c.hash[n];
        }
        let h = match self.inner(n) {
            None => self.bucket_hash(c, list, n, depth, extra),
            Some(base) => {
                if !extra.is_empty() && depth < 64 {
                    std::hint::black_box(self.warm_children(c, base, depth, extra));
                }
                let fresh = c.fresh[n];
                let mut hs = [EMPTY; FANOUT];
                let mut changed = 0u16;
                let mut rest = extra;
                for (i, h) in hs.iter_mut().enumerate() {
                    let k = if depth < 64 {
                        rest.partition_point(|(id, _)| nib(&id.0.0, depth) <= i)
                    } else {
                        rest.len()
                    };
                    let (part, tail) = rest.split_at(k);
                    rest = tail;
                    if self.aggs[base + i].count != 0 || !part.is_empty() {
                        *h = self.hash_of(c, list, base + i, depth + 1, part);
                    }
                    if !part.is_empty() {
                        changed |= 1 << i;
                    }
                }
                // The block's inner hashes match its children while the
                // node is fresh (any change below made it stale).
                // A stale node whose shape held keeps the inner hashes
                // of the children that did not change.
                let block = (base - 1) / FANOUT;
                let mut mid = [EMPTY; 14];
                let h = if fresh || c.valid[n] {
                    let changed = if fresh { changed } else { changed | c.dirty[n] };
                    combine(&hs, changed, Some(&c.mid[block]), &mut mid)
                } else {
                    combine(&hs, u16::MAX, None, &mut mid)
                };
                if extra.is_empty() {
                    c.mid[block] = mid;
                }
                h
            }
        };
        if extra.is_empty() {
            c.hash[n] = h;
            c.fresh[n] = true;
            c.valid[n] = true;
            c.dirty[n] = 0;
            c.added[n] = 0;
            c.cut[n] = 0;
        }
        h
    }
}

impl Index {
    /// Reads ahead what merging `extra` (entries not in the file, sorted)
    /// into the leaf children of an inner node (its children block `base`,
    /// at `depth`) will read: the slots and cached group hashes of each
    /// child that `extra` falls in. The merge goes bucket after bucket,
    /// each read waiting for the one before it; here the reads of all 16
    /// children are independent, so their cache misses overlap, and the
    /// merge then finds them cached. Only the order of the reads changes.
    /// Returns a value of what was read (only so that the reads are not
    /// optimised away).
    fn warm_children(&self, c: &Cache, base: usize, depth: usize, extra: &[(JobId, Hash32)]) -> u8 {
        let mut seen = 0u8;
        let mut rest = extra;
        for i in 0..FANOUT {
            let k = rest.partition_point(|(id, _)| nib(&id.0.0, depth) <= i);
            let (part, tail) = rest.split_at(k);
            rest = tail;
            let n = base + i;
            if part.is_empty() || self.inner(n).is_some() {
                continue;
            }
            // Every cache line of the slots (two 24-byte slots a line)
            // and of the group hashes (two a line).
            for s in self.leaf(n).iter().step_by(2) {
                seen ^= s.top as u8;
            }
            for h in c.groups[n].iter().step_by(2) {
                seen ^= h.0[0];
            }
        }
        seen
    }
}

impl Index {
    /// The trie hash of leaf bucket `n` (at `depth`) with `extra` merged
    /// in, over its 16 groups by nibble `depth`. While the bucket's cached
    /// group hashes hold (fresh, or stale with its shape held), only the
    /// groups `extra` falls in and those changed since (`dirty`) are
    /// hashed again, and only their paths up the bucket's combination
    /// ([`patch`]): a merge of one entry reads one group and four
    /// siblings, not the bucket's 30 cached hashes.
    fn bucket_hash(
        &self,
        c: &mut Cache,
        list: &mut Vec<(JobId, Hash32)>,
        n: usize,
        depth: usize,
        extra: &[(JobId, Hash32)],
    ) -> Hash32 {
        let slots = self.leaf(n);
        if depth >= 64 {
            self.merged(list, slots, extra);
            return crit(list, 256);
        }
        let fresh = c.fresh[n];
        let reuse = (fresh && !extra.is_empty()) || (!fresh && c.valid[n]);
        let write = extra.is_empty();
        if !reuse {
            let mut hs = [EMPTY; FANOUT];
            let (mut slots_rest, mut extra_rest) = (slots, extra);
            for (g, h) in hs.iter_mut().enumerate() {
                let (group, tail) = split_group(&self.store, slots_rest, depth, g);
                slots_rest = tail;
                let k = extra_rest.partition_point(|(id, _)| nib(&id.0.0, depth) <= g);
                let (more, tail) = extra_rest.split_at(k);
                extra_rest = tail;
                self.merged(list, group, more);
                *h = crit(list, 4 * depth as u32 + 4);
            }
            let mut mid = [EMPTY; 14];
            let h = combine(&hs, u16::MAX, None, &mut mid);
            if write {
                c.groups[n][..FANOUT].copy_from_slice(&hs);
                c.groups[n][FANOUT..].copy_from_slice(&mid);
            }
            return h;
        }
        let mut todo = if fresh { 0u16 } else { c.dirty[n] };
        for (id, _) in extra {
            todo |= 1 << nib(&id.0.0, depth);
        }
        let mut changed = [(0u8, EMPTY); FANOUT];
        let mut k = 0;
        let (mut slots_rest, mut extra_rest) = (slots, extra);
        for g in 0..FANOUT {
            if todo >> g & 1 == 0 {
                continue;
            }
            let skip = slots_rest.partition_point(|s| super::slot_nib(&self.store, s, depth) < g);
            let off = slots.len() - slots_rest.len() + skip;
            let (group, tail) = split_group(&self.store, &slots_rest[skip..], depth, g);
            slots_rest = tail;
            let skip = extra_rest.partition_point(|(id, _)| nib(&id.0.0, depth) < g);
            let more_len = extra_rest[skip..].partition_point(|(id, _)| nib(&id.0.0, depth) == g);
            let (more, tail) = extra_rest[skip..].split_at(more_len);
            extra_rest = tail;
            let from = 4 * depth as u32 + 4;
            // An unchanged group's cached hash stands for its entries
            // wherever the merged entries do not split them.
            let held = fresh || c.dirty[n] >> g & 1 == 0;
            let h = if held {
                merge_block(group, &c.groups[n][g], more, from)
            } else {
                self.grown(c, n, g, (group, off), more, from, list)
            };
            let h = h.unwrap_or_else(|| {
                self.merged(list, group, more);
                crit(list, from)
            });
            changed[k] = (g as u8, h);
            k += 1;
        }
        patch(&mut c.groups[n], &changed[..k], write)
    }

    /// The hash of changed group `g` of leaf bucket `n` (its slots
    /// `group`, at `off` in the bucket) with `more` merged in, when the
    /// group only gained entries since its cached hash was written: the
    /// old entries' cached hash merged with the new ones ([`merge_block`]),
    /// reading only the new entries from the store (the ones inserted
    /// last). `None` where an entry left the group or the new entries
    /// fall between the old ones (the caller hashes the whole group).
    #[allow(clippy::too_many_arguments)]
    fn grown(
        &self,
        c: &Cache,
        n: usize,
        g: usize,
        (group, off): (&[super::Slot], usize),
        more: &[(JobId, Hash32)],
        from: u32,
        list: &mut Vec<(JobId, Hash32)>,
    ) -> Option<Hash32> {
        if c.cut[n] >> g & 1 == 1 {
            return None;
        }
        let added = c.added[n].checked_shr(off as u32).unwrap_or(0);
        let mut old = [super::Slot {
            top: 0,
            fp: 0,
            short: 0,
            idx: 0,
        }; super::LEAF_CAP];
        let mut k = 0;
        list.clear();
        for (i, s) in group.iter().enumerate() {
            if added >> i & 1 == 1 {
                let st = self.stored(s.idx);
                list.push((st.entry.id, st.leaf));
            } else if k < old.len() {
                old[k] = *s;
                k += 1;
            }
        }
        if !more.is_empty() {
            list.extend_from_slice(more);
            list.sort_unstable();
        }
        merge_block(&old[..k], &c.groups[n][g], list, from)
    }

    /// Fills `list` with the entries of `slots` (in id order) and `extra`
    /// (sorted), merged.
    fn merged(
        &self,
        list: &mut Vec<(JobId, Hash32)>,
        slots: &[super::Slot],
        extra: &[(JobId, Hash32)],
    ) {
        list.clear();
        let mut x = extra.iter().peekable();
        for s in slots {
            let st = self.stored(s.idx);
            let key = (st.entry.id, st.leaf);
            while let Some(&&e) = x.peek().filter(|e| ***e < key) {
                list.push(e);
                x.next();
            }
            list.push(key);
        }
        list.extend(x);
    }
}

/// The open file's root: the trie hash and the count, hashed together.
pub(crate) fn trie_root(count: u64, trie: &Hash32) -> Hash32 {
    hash_parts(HashContext::JobFileTrie, &[&trie.0, &count.to_le_bytes()])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::JobFile;
    use crate::testkit::{entry, with_prefix};

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// The root of a file with entries merged in (a session's view)
        /// equals the root of the file holding them, whether the file's
        /// cache is fresh or stale, for ids that share a long prefix too
        /// (where the top 64 bits do not decide and the merge reads the
        /// group's entries), and leaves the file's own root unchanged.
        #[test]
        fn merged_root_equals_the_root_of_the_union(
            file in proptest::collection::btree_set(0u64..4_000, 0..900),
            extra in proptest::collection::btree_set(4_000u64..8_000, 0..400),
            late in proptest::collection::btree_set(8_000u64..9_000, 0..60),
            prefix in prop_oneof![Just(0u8), Just(60u8), 0u8..=64],
        ) {
            let e = |n: u64| with_prefix(entry(n, n), prefix);
            let mut f = JobFile::new();
            for n in &file {
                f.insert(e(*n)).unwrap();
            }
            let fresh = f.root();
            // Inserts after the read leave some buckets stale.
            for n in &late {
                f.insert(e(*n)).unwrap();
            }
            let own = f.root();
            for n in &late {
                f.remove(&e(*n).id);
            }
            prop_assert_eq!(f.root(), fresh);
            for n in &late {
                f.insert(e(*n)).unwrap();
            }
            let mut merged: Vec<_> = extra.iter().map(|n| (e(*n).id, e(*n).leaf_hash())).collect();
            merged.sort_unstable();
            let with = f.root_with(&merged);
            let mut union = f.clone();
            for n in &extra {
                union.insert(e(*n)).unwrap();
            }
            prop_assert_eq!(with, union.root());
            prop_assert_eq!(f.root(), own);
            prop_assert_eq!(f.root_with(&merged), with);
        }

        /// Inserts and removals in any order, with the root read at any
        /// point between them (so that buckets are refreshed from the
        /// entries they gained since a read, or lost), end with the root
        /// of a file built at once from the entries that remain.
        #[test]
        fn root_after_interleaved_changes_equals_a_fresh_build(
            ops in proptest::collection::vec((any::<bool>(), 0u64..3_000, 0u8..8), 0..3_000),
            prefix in prop_oneof![Just(0u8), Just(60u8), 0u8..=64],
        ) {
            let e = |n: u64| with_prefix(entry(n, n), prefix);
            let mut f = JobFile::new();
            let mut held = std::collections::BTreeSet::new();
            for (add, n, read) in &ops {
                if *add || !held.contains(n) {
                    if held.insert(*n) {
                        f.insert(e(*n)).unwrap();
                    }
                } else {
                    held.remove(n);
                    prop_assert!(f.remove(&e(*n).id).is_some());
                }
                if *read == 0 {
                    let _ = f.root();
                }
            }
            let fresh = JobFile::from_entries(held.iter().map(|n| e(*n))).unwrap();
            prop_assert_eq!(f.root(), fresh.root());
        }
    }
}
