//! The ledger's state tree: a sparse Merkle tree over 256-bit key hashes,
//! updated incrementally (DESIGN.md "Money": "the state root is updated
//! incrementally"; docs/PROTOCOL.md "State root").
//!
//! The tree is defined by its set of leaves alone, whatever order they were
//! inserted or removed in. For the leaves `S` under the key prefix `p` of
//! length `d`:
//!
//! * no leaf: the subtree hashes to [`Hash32::ZERO`];
//! * one leaf: the subtree hashes to that leaf's hash (a leaf sits as high
//!   as it can: no chain of single-child nodes above it);
//! * more: `node(h(S0), h(S1))`, where `S0`, `S1` are the leaves whose key
//!   bit `d` is 0 and 1.
//!
//! A leaf's hash is the chain's algorithm under [`HashContext::LedgerKey`]
//! of `key_hash || value_hash`, an inner node's under
//! [`HashContext::LedgerNode`] of `left || right`; both inputs are exactly
//! 64 bytes and the contexts differ, so a leaf never passes for a node
//! (key hashes use [`HashContext::LedgerKey`] too, over encodings of at
//! most 33 bytes, and value hashes [`HashContext::LedgerAccount`]).
//!
//! [`StateTree::root_after`] computes the root a set of changes leads to
//! without changing the tree (a proposer's preview, a validator's check of
//! a proposal); [`StateTree::apply`] makes the changes. Both walk only the
//! paths of the changed keys, sharing the upper levels, so a block costs
//! O(changes x log(leaves)) hashes and a full rebuild ([`StateTree::build`])
//! O(leaves). Nodes live in two arenas with free lists; an inner node
//! holds both children's hashes, so a walk down a path reads one node per
//! level and never its untouched sibling. Nothing is hashed in the order of
//! a hash map.
//!
//! A walk down one path waits for each node before it can read the next,
//! and in a tree of millions of leaves nearly every node below the shared
//! top is a cache miss; so wherever a walk reaches a subtree with at most
//! 64 changes (`WARM_CHUNK`), it first reads that subtree's paths one level at
//! a time across all of them (`warm`), whose reads do not wait for each
//! other, and then walks them as before with the nodes cached. The result
//! is the same tree; only the order of the reads changes.

use undchain_types::msg::StateProof;
use undchain_types::{BoundedVec, Hash32, HashAlgorithm, HashContext};

/// A 32-byte hash as the tree stores it.
pub type Digest = [u8; 32];

/// One change of the tree: a key hash and its new leaf hash (`None`
/// removes the leaf; removing an absent key does nothing).
pub type Change = (Digest, Option<Digest>);

/// Bit `depth` (0 = most significant bit of byte 0) of `key`.
pub fn bit(key: &Digest, depth: usize) -> bool {
    (key[depth / 8] >> (7 - depth % 8)) & 1 == 1
}

/// `data` hashed under `ctx` with `algo`: the same digest as
/// [`HashAlgorithm::hash`], with blake3's one-call keyed hash (no streaming
/// hasher to set up for the 64-byte inputs of the tree).
pub fn hash(algo: HashAlgorithm, ctx: HashContext, data: &[u8]) -> Digest {
    match algo {
        HashAlgorithm::Blake3 => *blake3::keyed_hash(ctx.key(), data).as_bytes(),
        HashAlgorithm::Sha256 => algo.hash(ctx, data).0,
    }
}

/// The canonical (postcard) encoding of `value`, as
/// [`undchain_types::wire::encode_bare`] gives it, written into a buffer
/// sized up front (the state's leaves are small; no growth on the way).
pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_extend(value, Vec::with_capacity(512))
        .unwrap_or_else(|_| undchain_types::wire::encode_bare(value))
}

fn hash_pair(algo: HashAlgorithm, ctx: HashContext, a: &Digest, b: &Digest) -> Digest {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(a);
    buf[32..].copy_from_slice(b);
    hash(algo, ctx, &buf)
}

/// A leaf's hash from its key hash and value hash.
pub fn leaf_hash(algo: HashAlgorithm, key: &Digest, value: &Digest) -> Digest {
    hash_pair(algo, HashContext::LedgerKey, key, value)
}

/// An inner node's hash from its children's.
pub fn node_hash(algo: HashAlgorithm, left: &Digest, right: &Digest) -> Digest {
    hash_pair(algo, HashContext::LedgerNode, left, right)
}

const EMPTY: Digest = [0; 32];

/// The most paths the tree reads ahead at once: few enough that
/// their nodes stay in the core's cache until the walk reaches them.
const WARM_CHUNK: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Child {
    Empty,
    Leaf(u32),
    Node(u32),
}

/// An inner node: its children and their hashes (its own hash is kept by
/// its parent, or as the root hash).
#[derive(Debug, Clone)]
struct Inner {
    left: Child,
    right: Child,
    left_hash: Digest,
    right_hash: Digest,
}

#[derive(Debug, Clone)]
struct LeafCell {
    key: Digest,
    hash: Digest,
}

/// What a subtree became, for the pure root computation.
#[derive(Debug, Clone, Copy)]
enum Sub {
    Empty,
    Leaf(Digest),
    Node(Digest),
}

impl Sub {
    fn hash(&self) -> &Digest {
        match self {
            Sub::Empty => &EMPTY,
            Sub::Leaf(h) | Sub::Node(h) => h,
        }
    }
}

/// The sparse Merkle state tree of one ledger.
#[derive(Debug, Clone)]
pub struct StateTree {
    algo: HashAlgorithm,
    inner: Vec<Inner>,
    leaves: Vec<LeafCell>,
    free_inner: Vec<u32>,
    free_leaves: Vec<u32>,
    root: Child,
    root_hash: Digest,
    len: usize,
}

/// Where the leaves of `changes` whose key bit `depth` is 1 start (the
/// slice is sorted by key, so all keys with the bit 0 come first).
fn split(changes: &[Change], depth: usize) -> usize {
    changes.partition_point(|(k, _)| !bit(k, depth))
}

/// The order of key hashes (byte order), decided on the first eight bytes
/// read as one number whenever they differ, as they nearly always do for
/// hashes: the same order as comparing the arrays, without a byte-wise
/// compare per step of a sort.
pub fn key_cmp(a: &Digest, b: &Digest) -> std::cmp::Ordering {
    let head = |k: &Digest| u64::from_be_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]]);
    head(a).cmp(&head(b)).then_with(|| a[8..].cmp(&b[8..]))
}

/// Sorts `changes` by key ([`key_cmp`]), one change per key (no
/// duplicates: see [`normalize`]).
pub fn sort_changes(changes: &mut [Change]) {
    changes.sort_unstable_by(|a, b| key_cmp(&a.0, &b.0));
}

/// Sorts `changes` by key and keeps the last change of each key.
pub fn normalize(mut changes: Vec<Change>) -> Vec<Change> {
    changes.reverse();
    changes.sort_by(|a, b| key_cmp(&a.0, &b.0));
    changes.dedup_by(|later, first| later.0 == first.0);
    changes
}

impl StateTree {
    /// An empty tree under `algo`.
    pub fn new(algo: HashAlgorithm) -> Self {
        StateTree {
            algo,
            inner: Vec::new(),
            leaves: Vec::new(),
            free_inner: Vec::new(),
            free_leaves: Vec::new(),
            root: Child::Empty,
            root_hash: EMPTY,
            len: 0,
        }
    }

    /// The tree over `leaves` (key hash, leaf hash), built from scratch.
    pub fn build(algo: HashAlgorithm, leaves: Vec<(Digest, Digest)>) -> Self {
        let mut t = StateTree::new(algo);
        let changes = normalize(leaves.into_iter().map(|(k, h)| (k, Some(h))).collect());
        t.inner.reserve(changes.len());
        t.leaves.reserve(changes.len());
        (t.root, t.root_hash) = t.build_from(0, &changes);
        t
    }

    /// The hash algorithm of the tree.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algo
    }

    /// How many leaves the tree holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree holds no leaf.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The root hash ([`Hash32::ZERO`] for an empty tree).
    pub fn root(&self) -> Hash32 {
        Hash32(self.root_hash)
    }

    /// Walks from the root towards `key`: the child reached at each depth
    /// and the sibling hashes passed (root side first).
    fn walk(&self, key: &Digest, mut visit: impl FnMut(&Digest)) -> Option<&LeafCell> {
        let mut c = self.root;
        let mut depth = 0;
        loop {
            match c {
                Child::Empty => return None,
                Child::Leaf(i) => {
                    let l = &self.leaves[i as usize];
                    return (l.key == *key).then_some(l);
                }
                Child::Node(n) => {
                    let node = &self.inner[n as usize];
                    let (next, sibling) = if bit(key, depth) {
                        (node.right, &node.left_hash)
                    } else {
                        (node.left, &node.right_hash)
                    };
                    visit(sibling);
                    c = next;
                    depth += 1;
                }
            }
        }
    }

    /// The leaf hash stored under key hash `key`.
    pub fn get(&self, key: &Digest) -> Option<Digest> {
        self.walk(key, |_| {}).map(|l| l.hash)
    }

    /// Reads the nodes on the paths of `changes` (at most [`WARM_CHUNK`]
    /// of them) below `from` at `depth`, one level at a time across all the
    /// paths, before the walk that changes or hashes them. The walk goes
    /// down one path after another, each read waiting for the one above it;
    /// here the reads of one level are independent, so their cache misses
    /// overlap, and the walk then finds the nodes cached. Returns a value of
    /// what was read (only so that the reads are not optimised away).
    fn warm(&self, from: Child, depth: usize, changes: &[Change]) -> u8 {
        let n = changes.len().min(WARM_CHUNK);
        let mut at = [from; WARM_CHUNK];
        let mut seen = 0u8;
        for depth in depth..256 {
            let mut live = false;
            for (c, (key, _)) in at[..n].iter_mut().zip(changes) {
                match *c {
                    Child::Node(i) => {
                        let node = &self.inner[i as usize];
                        // Both ends of the node: its child links and the
                        // far end of its second hash.
                        seen ^= node.right_hash[31];
                        *c = if bit(key, depth) {
                            node.right
                        } else {
                            node.left
                        };
                        live = true;
                    }
                    Child::Leaf(i) => {
                        seen ^= self.leaves[i as usize].hash[0];
                        *c = Child::Empty;
                    }
                    Child::Empty => {}
                }
            }
            if !live {
                break;
            }
        }
        seen
    }

    /// Warms the subtree `c` at `depth` for `changes` ([`StateTree::warm`])
    /// if that is not done yet (`cold`) and the changes are few enough;
    /// whether the walk below still has to.
    fn warm_once(&self, cold: bool, c: Child, depth: usize, changes: &[Change]) -> bool {
        if cold && changes.len() <= WARM_CHUNK {
            std::hint::black_box(self.warm(c, depth, changes));
            return false;
        }
        cold
    }

    /// The root the tree would have after `changes` (sorted by key, one
    /// change per key: see [`normalize`]), without changing it.
    pub fn root_after(&self, changes: &[Change]) -> Hash32 {
        Hash32(
            *self
                .sub_after(self.root, &self.root_hash, 0, changes, true)
                .hash(),
        )
    }

    /// Applies `changes` (sorted by key, one change per key: see
    /// [`normalize`]) and returns the new root.
    pub fn apply(&mut self, changes: &[Change]) -> Hash32 {
        let (root, hash) = self.update(self.root, self.root_hash, 0, changes, true);
        (self.root, self.root_hash) = (root, hash);
        self.root()
    }

    /// The leaf hash under `key` and its inclusion proof under
    /// [`StateTree::root`].
    pub fn prove(&self, key: &Digest) -> Option<(Digest, StateProof)> {
        let mut siblings = Vec::new();
        let leaf = self.walk(key, |h| siblings.push(Hash32(*h)))?.hash;
        let siblings = BoundedVec::try_from_vec(siblings).ok()?;
        Some((leaf, StateProof { siblings }))
    }

    fn combine(&self, l: Sub, r: Sub) -> Sub {
        match (l, r) {
            (Sub::Empty, Sub::Empty) => Sub::Empty,
            (Sub::Empty, Sub::Leaf(h)) | (Sub::Leaf(h), Sub::Empty) => Sub::Leaf(h),
            (l, r) => Sub::Node(node_hash(self.algo, l.hash(), r.hash())),
        }
    }

    /// The subtree at `depth` made of the present leaves of `changes` only.
    fn sub_build(&self, depth: usize, changes: &[Change]) -> Sub {
        let mut present = changes.iter().filter_map(|(_, h)| *h);
        match (present.next(), present.next()) {
            (None, _) => Sub::Empty,
            (Some(h), None) => Sub::Leaf(h),
            _ => {
                let s = split(changes, depth);
                let l = self.sub_build(depth + 1, &changes[..s]);
                let r = self.sub_build(depth + 1, &changes[s..]);
                self.combine(l, r)
            }
        }
    }

    /// What subtree `c` (whose hash is `h`) becomes after `changes`.
    /// `cold`: the nodes below were not read ahead yet ([`StateTree::warm`]).
    fn sub_after(&self, c: Child, h: &Digest, depth: usize, changes: &[Change], cold: bool) -> Sub {
        let cold = self.warm_once(cold, c, depth, changes);
        match c {
            _ if changes.is_empty() => match c {
                Child::Empty => Sub::Empty,
                Child::Leaf(_) => Sub::Leaf(*h),
                Child::Node(_) => Sub::Node(*h),
            },
            Child::Empty => self.sub_build(depth, changes),
            Child::Leaf(i) => {
                let merged = self.merge_leaf(i, changes);
                self.sub_build(depth, merged.as_deref().unwrap_or(changes))
            }
            Child::Node(n) => {
                let node = &self.inner[n as usize];
                let s = split(changes, depth);
                let (lo, hi) = changes.split_at(s);
                let l = self.sub_after(node.left, &node.left_hash, depth + 1, lo, cold);
                let r = self.sub_after(node.right, &node.right_hash, depth + 1, hi, cold);
                self.combine(l, r)
            }
        }
    }

    /// `changes` with leaf `i` added in key order, unless a change names
    /// its key (then `None`: the changes alone decide).
    fn merge_leaf(&self, i: u32, changes: &[Change]) -> Option<Vec<Change>> {
        let l = &self.leaves[i as usize];
        match changes.binary_search_by(|(k, _)| k.cmp(&l.key)) {
            Ok(_) => None,
            Err(at) => {
                let mut v = Vec::with_capacity(changes.len() + 1);
                v.extend_from_slice(&changes[..at]);
                v.push((l.key, Some(l.hash)));
                v.extend_from_slice(&changes[at..]);
                Some(v)
            }
        }
    }

    fn alloc_leaf(&mut self, key: Digest, hash: Digest) -> (Child, Digest) {
        self.len += 1;
        let cell = LeafCell { key, hash };
        let c = match self.free_leaves.pop() {
            Some(i) => {
                self.leaves[i as usize] = cell;
                Child::Leaf(i)
            }
            None => {
                self.leaves.push(cell);
                Child::Leaf((self.leaves.len() - 1) as u32)
            }
        };
        (c, hash)
    }

    fn put_node(
        &mut self,
        at: Option<u32>,
        l: (Child, Digest),
        r: (Child, Digest),
    ) -> (Child, Digest) {
        let hash = node_hash(self.algo, &l.1, &r.1);
        let node = Inner {
            left: l.0,
            right: r.0,
            left_hash: l.1,
            right_hash: r.1,
        };
        let n = match at.or_else(|| self.free_inner.pop()) {
            Some(n) => {
                self.inner[n as usize] = node;
                n
            }
            None => {
                self.inner.push(node);
                (self.inner.len() - 1) as u32
            }
        };
        (Child::Node(n), hash)
    }

    fn free_leaf(&mut self, i: u32) {
        self.len -= 1;
        self.free_leaves.push(i);
    }

    /// Joins two rebuilt children at an existing node `n` (or frees it).
    fn join(&mut self, n: u32, l: (Child, Digest), r: (Child, Digest)) -> (Child, Digest) {
        match (l.0, r.0) {
            (Child::Empty, Child::Empty) => {
                self.free_inner.push(n);
                (Child::Empty, EMPTY)
            }
            (Child::Empty, Child::Leaf(_)) => {
                self.free_inner.push(n);
                r
            }
            (Child::Leaf(_), Child::Empty) => {
                self.free_inner.push(n);
                l
            }
            _ => self.put_node(Some(n), l, r),
        }
    }

    fn build_from(&mut self, depth: usize, changes: &[Change]) -> (Child, Digest) {
        let mut present = changes.iter().filter_map(|(k, h)| h.map(|h| (k, h)));
        match (present.next(), present.next()) {
            (None, _) => (Child::Empty, EMPTY),
            (Some((k, h)), None) => self.alloc_leaf(*k, h),
            _ => {
                let s = split(changes, depth);
                let l = self.build_from(depth + 1, &changes[..s]);
                let r = self.build_from(depth + 1, &changes[s..]);
                // Two or more leaves: at least one side is a node, or both
                // are leaves, so this never wraps a lone leaf.
                self.put_node(None, l, r)
            }
        }
    }

    /// `cold`: the nodes below were not read ahead yet ([`StateTree::warm`]).
    fn update(
        &mut self,
        c: Child,
        h: Digest,
        depth: usize,
        changes: &[Change],
        cold: bool,
    ) -> (Child, Digest) {
        if changes.is_empty() {
            return (c, h);
        }
        let cold = self.warm_once(cold, c, depth, changes);
        match c {
            Child::Empty => self.build_from(depth, changes),
            Child::Leaf(i) => {
                let merged = self.merge_leaf(i, changes);
                self.free_leaf(i);
                self.build_from(depth, merged.as_deref().unwrap_or(changes))
            }
            Child::Node(n) => {
                let node = &self.inner[n as usize];
                let (l, r) = ((node.left, node.left_hash), (node.right, node.right_hash));
                let s = split(changes, depth);
                let l = self.update(l.0, l.1, depth + 1, &changes[..s], cold);
                let r = self.update(r.0, r.1, depth + 1, &changes[s..], cold);
                self.join(n, l, r)
            }
        }
    }
}

/// Whether `leaf` (a leaf hash) sits under key hash `key` in the tree of
/// `root`, by `proof`, under `algo`. Never panics: a proof of any shape is
/// only hashed.
pub fn verify_proof(
    algo: HashAlgorithm,
    root: &Hash32,
    key: &Digest,
    leaf: &Digest,
    proof: &StateProof,
) -> bool {
    let mut h = *leaf;
    for (depth, sib) in proof.siblings.iter().enumerate().rev() {
        h = if bit(key, depth) {
            node_hash(algo, &sib.0, &h)
        } else {
            node_hash(algo, &h, &sib.0)
        };
    }
    h == root.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::SplitMix64;

    fn key(n: u64) -> Digest {
        HashAlgorithm::Blake3
            .hash(HashContext::LedgerKey, &n.to_le_bytes())
            .0
    }

    fn val(n: u64, v: u64) -> Digest {
        leaf_hash(HashAlgorithm::Blake3, &key(n), &[v as u8; 32])
    }

    #[test]
    fn incremental_equals_rebuild_and_preview_equals_apply() {
        let algo = HashAlgorithm::Blake3;
        let mut rng = SplitMix64::new(7);
        let mut t = StateTree::new(algo);
        let mut model = std::collections::BTreeMap::new();
        for round in 0..200u64 {
            let mut changes = Vec::new();
            for _ in 0..(rng.next_u64() % 20) {
                let k = rng.next_u64() % 64;
                if rng.next_u64() % 3 == 0 {
                    changes.push((key(k), None));
                } else {
                    changes.push((key(k), Some(val(k, round))));
                }
            }
            let changes = normalize(changes);
            let preview = t.root_after(&changes);
            let applied = t.apply(&changes);
            assert_eq!(preview, applied, "round {round}");
            for (k, v) in &changes {
                match v {
                    Some(h) => model.insert(*k, *h),
                    None => model.remove(k),
                };
            }
            let rebuilt = StateTree::build(algo, model.iter().map(|(k, v)| (*k, *v)).collect());
            assert_eq!(rebuilt.root(), t.root(), "round {round}");
            assert_eq!(t.len(), model.len());
            for (k, v) in &model {
                assert_eq!(t.get(k), Some(*v));
                let (leaf, proof) = t.prove(k).unwrap();
                assert!(verify_proof(algo, &t.root(), k, &leaf, &proof));
                assert!(!verify_proof(algo, &t.root(), k, &[9; 32], &proof));
            }
        }
    }

    #[test]
    fn empty_single_and_removed_trees() {
        let algo = HashAlgorithm::Sha256;
        let mut t = StateTree::new(algo);
        assert_eq!(t.root(), Hash32::ZERO);
        let one = [(key(1), Some(val(1, 1)))];
        assert_eq!(t.apply(&one).0, val(1, 1));
        let (_, p) = t.prove(&key(1)).unwrap();
        assert!(p.siblings.is_empty());
        assert!(t.prove(&key(2)).is_none());
        let both = normalize(vec![(key(2), Some(val(2, 2))), (key(3), None)]);
        t.apply(&both);
        assert_eq!(t.len(), 2);
        assert_eq!(t.apply(&[(key(2), None)]).0, val(1, 1));
        assert_eq!(t.apply(&[(key(1), None)]), Hash32::ZERO);
        assert!(t.is_empty());
    }

    #[test]
    fn key_order_is_byte_order() {
        let mut rng = SplitMix64::new(3);
        let mut keys: Vec<Digest> = (0..2_000u64).map(key).collect();
        // Keys that share their first eight bytes, or all but the last.
        for n in 0..50u64 {
            let mut k = key(n);
            k[8 + (rng.next_u64() % 24) as usize] ^= 1;
            keys.push(k);
            let mut k = key(n);
            k[31] ^= 0x80;
            keys.push(k);
        }
        for w in keys.windows(2) {
            assert_eq!(key_cmp(&w[0], &w[1]), w[0].cmp(&w[1]));
            assert_eq!(key_cmp(&w[1], &w[0]), w[1].cmp(&w[0]));
        }
        let mut changes: Vec<Change> = keys.iter().map(|k| (*k, None)).collect();
        sort_changes(&mut changes);
        keys.sort_unstable();
        assert!(changes.iter().map(|c| c.0).eq(keys.iter().copied()));
        assert_eq!(key_cmp(&keys[0], &keys[0]), std::cmp::Ordering::Equal);
    }
}
