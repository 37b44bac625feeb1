//! Closed job files: the rs_merkle tree over the sorted entries, whose root
//! goes into the block header, and inclusion proofs that let a client prove
//! its job was in block b (DESIGN.md "Two roots, two jobs"; client story
//! step 2).
//!
//! Leaves are the entries' leaf hashes ([`HashContext::JobEntry`]); inner
//! nodes are blake3 under [`HashContext::JobFileNode`] of the two children,
//! and an odd node is promoted unchanged (rs_merkle's layout).

use rs_merkle::{Hasher, MerkleTree};
use undchain_types::msg::MerkleProof;
use undchain_types::{BlockNumber, BoundedVec, Hash32, HashContext, JobId, hash};

use crate::file::JobFile;

/// The rs_merkle hasher of closed job files.
#[derive(Debug, Clone, Copy)]
pub struct JobFileHasher;

impl Hasher for JobFileHasher {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        hash(HashContext::JobFileNode, data).0
    }
}

/// The Merkle root over `leaves` (sorted entries' leaf hashes);
/// [`Hash32::ZERO`] when there are none.
pub fn merkle_root(leaves: &[Hash32]) -> Hash32 {
    let raw: Vec<[u8; 32]> = leaves.iter().map(|h| h.0).collect();
    MerkleTree::<JobFileHasher>::from_leaves(&raw)
        .root()
        .map_or(Hash32::ZERO, Hash32)
}

/// A closed (frozen) job file with its Merkle tree.
#[derive(Clone)]
pub struct ClosedFile {
    block: BlockNumber,
    file: JobFile,
    ids: Vec<JobId>,
    tree: MerkleTree<JobFileHasher>,
    root: Hash32,
}

impl core::fmt::Debug for ClosedFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClosedFile")
            .field("block", &self.block)
            .field("len", &self.ids.len())
            .field("root", &self.root)
            .finish()
    }
}

impl ClosedFile {
    /// Closes `file` as block `block`'s job file.
    pub fn new(block: BlockNumber, file: JobFile) -> Self {
        let mut ids = Vec::with_capacity(file.len() as usize);
        let mut leaves = Vec::with_capacity(file.len() as usize);
        file.for_each_slot(&mut |e, l| {
            ids.push(e.id);
            leaves.push(l.0);
        });
        let tree = MerkleTree::<JobFileHasher>::from_leaves(&leaves);
        let root = tree.root().map_or(Hash32::ZERO, Hash32);
        ClosedFile {
            block,
            file,
            ids,
            tree,
            root,
        }
    }

    /// The block whose job file this is (closed at that block's end).
    pub fn block(&self) -> BlockNumber {
        self.block
    }

    /// The closed file's entries, as a job file (roots and range
    /// summaries still available).
    pub fn file(&self) -> &JobFile {
        &self.file
    }

    /// Gives the entries back.
    pub fn into_file(self) -> JobFile {
        self.file
    }

    /// The Merkle root (the block header's `job_root`).
    pub fn merkle_root(&self) -> Hash32 {
        self.root
    }

    /// Entries (the block header's `job_count`).
    pub fn len(&self) -> u64 {
        self.ids.len() as u64
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The inclusion proof of job `id`, with its leaf hash.
    pub fn proof(&self, id: &JobId) -> Option<(Hash32, MerkleProof)> {
        let index = self.ids.binary_search(id).ok()?;
        let leaf = self.file.leaf_of(id)?;
        Some((leaf, proof_of(&self.tree, index)?))
    }

    /// A client-facing notice that job `id` was committed in this block.
    pub fn inclusion_notice(&self, id: &JobId) -> Option<undchain_types::msg::InclusionNotice> {
        let (leaf, proof) = self.proof(id)?;
        Some(undchain_types::msg::InclusionNotice {
            job: *id,
            block: self.block,
            job_root: self.root,
            leaf,
            proof,
        })
    }
}

/// Checks that `leaf` is in the tree with root `root` according to
/// `proof`. Never panics on a malformed proof; returns `false` instead.
pub fn verify_inclusion(root: &Hash32, leaf: &Hash32, proof: &MerkleProof) -> bool {
    verify_inclusion_with::<JobFileHasher>(root, leaf, proof)
}

/// The proof of leaf `index` of `tree` as a message; `None` when the
/// index is out of range. Every rs_merkle tree of the workspace (closed job
/// files, stored blobs' content trees) proves its leaves this way.
pub fn proof_of<H: Hasher<Hash = [u8; 32]>>(
    tree: &MerkleTree<H>,
    index: usize,
) -> Option<MerkleProof> {
    let count = tree.leaves_len();
    if index >= count {
        return None;
    }
    let p = tree.proof(&[index]);
    let siblings =
        BoundedVec::try_from_vec(p.proof_hashes().iter().map(|h| Hash32(*h)).collect()).ok()?;
    Some(MerkleProof {
        leaf_index: index as u64,
        leaf_count: count as u64,
        siblings,
    })
}

/// [`verify_inclusion`] for a tree whose inner nodes `H` hashes (a content
/// tree's hasher, say). Never panics on a malformed proof.
pub fn verify_inclusion_with<H: Hasher<Hash = [u8; 32]>>(
    root: &Hash32,
    leaf: &Hash32,
    proof: &MerkleProof,
) -> bool {
    let Some((index, count)) = proof.shape() else {
        return false;
    };
    rs_merkle::MerkleProof::<H>::new(proof.sibling_bytes()).verify(
        root.0,
        &[index],
        &[leaf.0],
        count,
    )
}
