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
//! O(leaves). Nodes live in two arenas with free lists; nothing is hashed
//! in the order of a hash map.

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

/// A leaf's hash from its key hash and value hash.
pub fn leaf_hash(algo: HashAlgorithm, key: &Digest, value: &Digest) -> Digest {
    algo.hash_parts(HashContext::LedgerKey, &[key, value]).0
}

/// An inner node's hash from its children's.
pub fn node_hash(algo: HashAlgorithm, left: &Digest, right: &Digest) -> Digest {
    algo.hash_parts(HashContext::LedgerNode, &[left, right]).0
}

const EMPTY: Digest = [0; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Child {
    Empty,
    Leaf(u32),
    Node(u32),
}

#[derive(Debug, Clone)]
struct Inner {
    left: Child,
    right: Child,
    hash: Digest,
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
    len: usize,
}

/// Where the leaves of `changes` whose key bit `depth` is 1 start (the
/// slice is sorted by key, so all keys with the bit 0 come first).
fn split(changes: &[Change], depth: usize) -> usize {
    changes.partition_point(|(k, _)| !bit(k, depth))
}

/// Sorts `changes` by key and keeps the last change of each key.
pub fn normalize(mut changes: Vec<Change>) -> Vec<Change> {
    changes.reverse();
    changes.sort_by_key(|c| c.0);
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
            len: 0,
        }
    }

    /// The tree over `leaves` (key hash, leaf hash), built from scratch.
    pub fn build(algo: HashAlgorithm, leaves: Vec<(Digest, Digest)>) -> Self {
        let mut t = StateTree::new(algo);
        let changes = normalize(leaves.into_iter().map(|(k, h)| (k, Some(h))).collect());
        t.inner.reserve(changes.len());
        t.leaves.reserve(changes.len());
        t.root = t.build_from(0, &changes);
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

    fn hash_of(&self, c: Child) -> &Digest {
        match c {
            Child::Empty => &EMPTY,
            Child::Leaf(i) => &self.leaves[i as usize].hash,
            Child::Node(n) => &self.inner[n as usize].hash,
        }
    }

    /// The root hash ([`Hash32::ZERO`] for an empty tree).
    pub fn root(&self) -> Hash32 {
        Hash32(*self.hash_of(self.root))
    }

    /// The leaf hash stored under key hash `key`.
    pub fn get(&self, key: &Digest) -> Option<Digest> {
        let mut c = self.root;
        let mut depth = 0;
        loop {
            match c {
                Child::Empty => return None,
                Child::Leaf(i) => {
                    let l = &self.leaves[i as usize];
                    return (l.key == *key).then_some(l.hash);
                }
                Child::Node(n) => {
                    let node = &self.inner[n as usize];
                    c = if bit(key, depth) {
                        node.right
                    } else {
                        node.left
                    };
                    depth += 1;
                }
            }
        }
    }

    /// The root the tree would have after `changes` (sorted by key, one
    /// change per key: see [`normalize`]), without changing it.
    pub fn root_after(&self, changes: &[Change]) -> Hash32 {
        Hash32(*self.sub_after(self.root, 0, changes).hash())
    }

    /// Applies `changes` (sorted by key, one change per key: see
    /// [`normalize`]) and returns the new root.
    pub fn apply(&mut self, changes: &[Change]) -> Hash32 {
        self.root = self.update(self.root, 0, changes);
        self.root()
    }

    /// The leaf hash under `key` and its inclusion proof under
    /// [`StateTree::root`].
    pub fn prove(&self, key: &Digest) -> Option<(Digest, StateProof)> {
        let mut siblings = Vec::new();
        let mut c = self.root;
        loop {
            match c {
                Child::Empty => return None,
                Child::Leaf(i) => {
                    let l = &self.leaves[i as usize];
                    if l.key != *key {
                        return None;
                    }
                    let siblings = BoundedVec::try_from_vec(siblings).ok()?;
                    return Some((l.hash, StateProof { siblings }));
                }
                Child::Node(n) => {
                    let node = &self.inner[n as usize];
                    let (next, other) = if bit(key, siblings.len()) {
                        (node.right, node.left)
                    } else {
                        (node.left, node.right)
                    };
                    siblings.push(Hash32(*self.hash_of(other)));
                    c = next;
                }
            }
        }
    }

    fn sub_of(&self, c: Child) -> Sub {
        match c {
            Child::Empty => Sub::Empty,
            Child::Leaf(i) => Sub::Leaf(self.leaves[i as usize].hash),
            Child::Node(n) => Sub::Node(self.inner[n as usize].hash),
        }
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

    fn sub_after(&self, c: Child, depth: usize, changes: &[Change]) -> Sub {
        if changes.is_empty() {
            return self.sub_of(c);
        }
        match c {
            Child::Empty => self.sub_build(depth, changes),
            Child::Leaf(i) => {
                let merged = self.merge_leaf(i, changes);
                self.sub_build(depth, merged.as_deref().unwrap_or(changes))
            }
            Child::Node(n) => {
                let node = &self.inner[n as usize];
                let s = split(changes, depth);
                let l = self.sub_after(node.left, depth + 1, &changes[..s]);
                let r = self.sub_after(node.right, depth + 1, &changes[s..]);
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

    fn alloc_leaf(&mut self, key: Digest, hash: Digest) -> Child {
        self.len += 1;
        let cell = LeafCell { key, hash };
        match self.free_leaves.pop() {
            Some(i) => {
                self.leaves[i as usize] = cell;
                Child::Leaf(i)
            }
            None => {
                self.leaves.push(cell);
                Child::Leaf((self.leaves.len() - 1) as u32)
            }
        }
    }

    fn alloc_node(&mut self, left: Child, right: Child) -> Child {
        let hash = node_hash(self.algo, self.hash_of(left), self.hash_of(right));
        let node = Inner { left, right, hash };
        match self.free_inner.pop() {
            Some(n) => {
                self.inner[n as usize] = node;
                Child::Node(n)
            }
            None => {
                self.inner.push(node);
                Child::Node((self.inner.len() - 1) as u32)
            }
        }
    }

    fn free_leaf(&mut self, i: u32) {
        self.len -= 1;
        self.free_leaves.push(i);
    }

    /// Joins two rebuilt children at an existing node `n` (or frees it).
    fn join(&mut self, n: u32, l: Child, r: Child) -> Child {
        match (l, r) {
            (Child::Empty, Child::Empty) => {
                self.free_inner.push(n);
                Child::Empty
            }
            (Child::Empty, leaf @ Child::Leaf(_)) | (leaf @ Child::Leaf(_), Child::Empty) => {
                self.free_inner.push(n);
                leaf
            }
            (l, r) => {
                let hash = node_hash(self.algo, self.hash_of(l), self.hash_of(r));
                self.inner[n as usize] = Inner {
                    left: l,
                    right: r,
                    hash,
                };
                Child::Node(n)
            }
        }
    }

    fn build_from(&mut self, depth: usize, changes: &[Change]) -> Child {
        let mut present = changes.iter().filter_map(|(k, h)| h.map(|h| (k, h)));
        match (present.next(), present.next()) {
            (None, _) => Child::Empty,
            (Some((k, h)), None) => self.alloc_leaf(*k, h),
            _ => {
                let s = split(changes, depth);
                let l = self.build_from(depth + 1, &changes[..s]);
                let r = self.build_from(depth + 1, &changes[s..]);
                // Two or more leaves: at least one side is a node, or both
                // are leaves, so this never wraps a lone leaf.
                self.alloc_node(l, r)
            }
        }
    }

    fn update(&mut self, c: Child, depth: usize, changes: &[Change]) -> Child {
        if changes.is_empty() {
            return c;
        }
        match c {
            Child::Empty => self.build_from(depth, changes),
            Child::Leaf(i) => {
                let merged = self.merge_leaf(i, changes);
                self.free_leaf(i);
                self.build_from(depth, merged.as_deref().unwrap_or(changes))
            }
            Child::Node(n) => {
                let (left, right) = {
                    let node = &self.inner[n as usize];
                    (node.left, node.right)
                };
                let s = split(changes, depth);
                let l = self.update(left, depth + 1, &changes[..s]);
                let r = self.update(right, depth + 1, &changes[s..]);
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
}
