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
        let mut list = Vec::with_capacity(64);
        self.hash_of(&mut c, &mut list, 0, 0, extra)
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
        }
        h
    }
}

impl Index {
    /// The trie hash of leaf bucket `n` (at `depth`) with `extra` merged
    /// in, over its 16 groups by nibble `depth`: a fresh bucket rehashes
    /// only the groups `extra` falls in.
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
        // Fresh, a merge rehashes the groups `extra` falls in; stale with
        // its shape held, also the groups changed since (`dirty`).
        let dirty = if c.fresh[n] { 0 } else { c.dirty[n] };
        let reuse = (c.fresh[n] && !extra.is_empty()) || (!c.fresh[n] && c.valid[n]);
        let mut hs = [EMPTY; FANOUT];
        if reuse {
            hs.copy_from_slice(&c.groups[n][..FANOUT]);
        }
        let mut changed = 0u16;
        let (mut slots_rest, mut extra_rest) = (slots, extra);
        for (g, h) in hs.iter_mut().enumerate() {
            let k = slots_rest.partition_point(|s| super::slot_nib(&self.store, s, depth) <= g);
            let (group, tail) = slots_rest.split_at(k);
            slots_rest = tail;
            let k = extra_rest.partition_point(|(id, _)| nib(&id.0.0, depth) <= g);
            let (more, tail) = extra_rest.split_at(k);
            extra_rest = tail;
            if reuse && more.is_empty() && dirty & (1 << g) == 0 {
                continue;
            }
            changed |= 1 << g;
            self.merged(list, group, more);
            *h = crit(list, 4 * depth as u32 + 4);
        }
        let mut mid = [EMPTY; 14];
        let old: Option<Mid> = reuse.then(|| {
            let mut m = [EMPTY; 14];
            m.copy_from_slice(&c.groups[n][FANOUT..]);
            m
        });
        let h = combine(&hs, changed, old.as_ref(), &mut mid);
        if extra.is_empty() {
            c.groups[n][..FANOUT].copy_from_slice(&hs);
            c.groups[n][FANOUT..].copy_from_slice(&mid);
        }
        h
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
