//! Storage for real (DESIGN.md "Utility sessions": storage): a blob is cut
//! into chunks of [`CHUNK_SIZE`] bytes, its **content root** is the
//! rs_merkle root over the chunks' leaf hashes (the same tree layout and
//! proof format as closed job files, [`undchain_jobfile::proof_of`] and
//! [`undchain_jobfile::verify_inclusion_with`], under the content
//! contexts), the client uploads it chunk by chunk ([`Upload`]), the partner
//! keeps it ([`BlobStore`]) and serves each chunk back with its proof,
//! which the client checks on fetch ([`Fetch`]) and a validator checks on a
//! challenge ([`check_answer`]).
//!
//! Every chunk but the last is exactly [`CHUNK_SIZE`] bytes, so count and
//! size follow from the chunks and a store can bound a blob before taking
//! any of it.

use std::collections::BTreeMap;

use rs_merkle::{Hasher, MerkleTree};
use undchain_jobfile::{proof_of, verify_inclusion_with};
use undchain_types::msg::{MAX_CHUNK, MerkleProof, StorageAnswer, StorageChallenge};
use undchain_types::{BoundedBytes, Hash32, HashContext, JobId, hash};

use super::UtilityError;

/// Bytes per chunk (every chunk but the last has exactly this many).
pub const CHUNK_SIZE: usize = 16 * 1024;
/// Most chunks in one blob (1 GiB at [`CHUNK_SIZE`]).
pub const MAX_CHUNKS: u32 = 64 * 1024;

const _: () = assert!(CHUNK_SIZE <= MAX_CHUNK);

/// The rs_merkle hasher of content trees.
#[derive(Debug, Clone, Copy)]
pub struct ContentHasher;

impl Hasher for ContentHasher {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        hash(HashContext::ContentNode, data).0
    }
}

/// The leaf hash of one chunk.
pub fn chunk_leaf(bytes: &[u8]) -> Hash32 {
    hash(HashContext::ContentChunk, bytes)
}

/// Chunks a blob of `size` bytes has; `None` when empty or too large.
pub fn chunk_count(size: u64) -> Option<u32> {
    if size == 0 {
        return None;
    }
    let n = size.div_ceil(CHUNK_SIZE as u64);
    u32::try_from(n).ok().filter(|n| *n <= MAX_CHUNKS)
}

/// Length chunk `index` of a blob of `size` bytes must have.
fn expected_len(size: u64, index: u32) -> usize {
    let start = u64::from(index) * CHUNK_SIZE as u64;
    (size.saturating_sub(start)).min(CHUNK_SIZE as u64) as usize
}

/// A blob's content tree.
#[derive(Clone)]
pub struct ContentTree {
    tree: MerkleTree<ContentHasher>,
    root: Hash32,
    size: u64,
}

impl core::fmt::Debug for ContentTree {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ContentTree")
            .field("root", &self.root)
            .field("chunks", &self.tree.leaves_len())
            .finish()
    }
}

impl ContentTree {
    fn from_leaves(leaves: &[[u8; 32]], size: u64) -> Self {
        let tree = MerkleTree::<ContentHasher>::from_leaves(leaves);
        let root = tree.root().map_or(Hash32::ZERO, Hash32);
        ContentTree { tree, root, size }
    }

    /// The tree of `blob`; refused when empty or over [`MAX_CHUNKS`].
    pub fn of(blob: &[u8]) -> Result<Self, UtilityError> {
        let size = blob.len() as u64;
        chunk_count(size).ok_or(UtilityError::BlobSize { size })?;
        let leaves: Vec<[u8; 32]> = blob.chunks(CHUNK_SIZE).map(|c| chunk_leaf(c).0).collect();
        Ok(Self::from_leaves(&leaves, size))
    }

    /// The content root.
    pub fn root(&self) -> Hash32 {
        self.root
    }

    /// Chunks in the blob.
    pub fn count(&self) -> u32 {
        self.tree.leaves_len() as u32
    }

    /// Bytes in the blob.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The proof of chunk `index`.
    pub fn proof(&self, index: u32) -> Option<MerkleProof> {
        proof_of(&self.tree, index as usize)
    }
}

/// Checks chunk `index` (its bytes and proof) against `root`.
pub fn verify_chunk(
    root: &Hash32,
    index: u32,
    bytes: &[u8],
    proof: &MerkleProof,
) -> Result<(), UtilityError> {
    if proof.leaf_index != u64::from(index) {
        return Err(UtilityError::BadProof { index });
    }
    if verify_inclusion_with::<ContentHasher>(root, &chunk_leaf(bytes), proof) {
        Ok(())
    } else {
        Err(UtilityError::BadProof { index })
    }
}

/// The client's side of an upload: the blob, its tree, its chunks.
#[derive(Debug, Clone)]
pub struct Upload {
    blob: Vec<u8>,
    tree: ContentTree,
}

impl Upload {
    /// An upload of `blob`.
    pub fn new(blob: Vec<u8>) -> Result<Self, UtilityError> {
        let tree = ContentTree::of(&blob)?;
        Ok(Upload { blob, tree })
    }

    /// The blob's tree.
    pub fn tree(&self) -> &ContentTree {
        &self.tree
    }

    /// Chunk `index`.
    pub fn chunk(&self, index: u32) -> Option<&[u8]> {
        self.blob.chunks(CHUNK_SIZE).nth(index as usize)
    }
}

/// One blob a partner keeps.
#[derive(Debug, Clone)]
struct Blob {
    job: JobId,
    size: u64,
    count: u32,
    chunks: BTreeMap<u32, Vec<u8>>,
    /// Set once every chunk arrived and the tree matched the root.
    tree: Option<ContentTree>,
}

/// A partner's store of blobs, bounded in bytes (reserved when a blob's
/// first chunk names its size, before anything is kept).
#[derive(Debug, Clone)]
pub struct BlobStore {
    capacity: u64,
    reserved: u64,
    blobs: BTreeMap<Hash32, Blob>,
}

/// What storing a chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Kept; this many chunks of the blob are stored now.
    Kept(u32),
    /// The last chunk arrived and the blob's tree has the named root.
    Complete(u32),
    /// The chunk was already stored (a retry): nothing changed.
    Duplicate(u32),
}

impl BlobStore {
    /// A store of at most `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        BlobStore {
            capacity,
            reserved: 0,
            blobs: BTreeMap::new(),
        }
    }

    /// Bytes reserved by the blobs held.
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// Stores chunk `index` of the blob `root` (`count` chunks, `size`
    /// bytes) for `job`. A refused chunk changes nothing, except that a
    /// complete blob whose tree is not `root` is dropped whole.
    pub fn put(
        &mut self,
        job: JobId,
        root: Hash32,
        index: u32,
        count: u32,
        size: u64,
        bytes: &[u8],
    ) -> Result<Put, UtilityError> {
        if chunk_count(size) != Some(count) {
            return Err(UtilityError::BlobSize { size });
        }
        if index >= count || bytes.len() != expected_len(size, index) {
            return Err(UtilityError::BadChunk { index });
        }
        match self.blobs.get(&root) {
            Some(b) if b.job != job || b.size != size || b.count != count => {
                return Err(UtilityError::RootInUse { root });
            }
            Some(b) if b.chunks.contains_key(&index) => {
                return Ok(Put::Duplicate(b.chunks.len() as u32));
            }
            Some(_) => {}
            None => {
                let after = self.reserved.saturating_add(size);
                if after > self.capacity {
                    return Err(UtilityError::StoreFull {
                        capacity: self.capacity,
                        wanted: after,
                    });
                }
                self.reserved = after;
                self.blobs.insert(
                    root,
                    Blob {
                        job,
                        size,
                        count,
                        chunks: BTreeMap::new(),
                        tree: None,
                    },
                );
            }
        }
        let Some(b) = self.blobs.get_mut(&root) else {
            return Err(UtilityError::UnknownBlob { root });
        };
        b.chunks.insert(index, bytes.to_vec());
        let held = b.chunks.len() as u32;
        if held < count {
            return Ok(Put::Kept(held));
        }
        let leaves: Vec<[u8; 32]> = b.chunks.values().map(|c| chunk_leaf(c).0).collect();
        let tree = ContentTree::from_leaves(&leaves, size);
        if tree.root() != root {
            let size = b.size;
            self.blobs.remove(&root);
            self.reserved = self.reserved.saturating_sub(size);
            return Err(UtilityError::RootMismatch {
                named: root,
                computed: tree.root(),
            });
        }
        b.tree = Some(tree);
        Ok(Put::Complete(held))
    }

    /// Chunk `index` of the complete blob `root` with its proof.
    pub fn serve(&self, root: &Hash32, index: u32) -> Result<(&[u8], MerkleProof), UtilityError> {
        let b = self
            .blobs
            .get(root)
            .ok_or(UtilityError::UnknownBlob { root: *root })?;
        let tree = b
            .tree
            .as_ref()
            .ok_or(UtilityError::Incomplete { root: *root })?;
        let bytes = b
            .chunks
            .get(&index)
            .ok_or(UtilityError::MissingChunk { index })?;
        let proof = tree
            .proof(index)
            .ok_or(UtilityError::MissingChunk { index })?;
        Ok((bytes, proof))
    }

    /// Whether the blob `root` is complete here.
    pub fn is_complete(&self, root: &Hash32) -> bool {
        self.blobs.get(root).is_some_and(|b| b.tree.is_some())
    }

    /// Forgets chunk `index` of `root` (the operator evicts it; the sim's
    /// lying partner drops chunks this way). Its proof is still in the
    /// tree, so a challenge of it now fails. Returns whether it was held.
    pub fn evict_chunk(&mut self, root: &Hash32, index: u32) -> bool {
        self.blobs
            .get_mut(root)
            .is_some_and(|b| b.chunks.remove(&index).is_some())
    }

    /// The answer to a storage challenge, if this store can prove it.
    pub fn answer(&self, c: &StorageChallenge) -> Result<StorageAnswer, UtilityError> {
        let (bytes, proof) = self.serve(&c.root, c.index)?;
        Ok(StorageAnswer {
            bytes: BoundedBytes::try_from_slice(bytes)
                .map_err(|_| UtilityError::BadChunk { index: c.index })?,
            proof,
        })
    }
}

/// Checks a storage challenge's answer: the chunk asked for, proven under
/// the challenged root.
pub fn check_answer(c: &StorageChallenge, a: &StorageAnswer) -> Result<(), UtilityError> {
    verify_chunk(&c.root, c.index, a.bytes.as_bytes(), &a.proof)
}

/// The client's side of a fetch: chunks checked against the root as they
/// come, the blob reassembled once all arrived.
#[derive(Debug, Clone)]
pub struct Fetch {
    root: Hash32,
    count: u32,
    size: u64,
    chunks: BTreeMap<u32, Vec<u8>>,
}

impl Fetch {
    /// A fetch of the blob `root` of `size` bytes.
    pub fn new(root: Hash32, size: u64) -> Result<Self, UtilityError> {
        let count = chunk_count(size).ok_or(UtilityError::BlobSize { size })?;
        Ok(Fetch {
            root,
            count,
            size,
            chunks: BTreeMap::new(),
        })
    }

    /// The root the chunks are checked against.
    pub fn root(&self) -> Hash32 {
        self.root
    }

    /// Chunks still missing, in order.
    pub fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.count).filter(|i| !self.chunks.contains_key(i))
    }

    /// A chunk came back: kept only if its proof holds under the root and
    /// it has the length its position needs.
    pub fn handle_chunk(
        &mut self,
        index: u32,
        bytes: &[u8],
        proof: &MerkleProof,
    ) -> Result<(), UtilityError> {
        if index >= self.count || bytes.len() != expected_len(self.size, index) {
            return Err(UtilityError::BadChunk { index });
        }
        if proof.leaf_count != u64::from(self.count) {
            return Err(UtilityError::BadProof { index });
        }
        verify_chunk(&self.root, index, bytes, proof)?;
        self.chunks.insert(index, bytes.to_vec());
        Ok(())
    }

    /// Whether every chunk arrived.
    pub fn is_complete(&self) -> bool {
        self.chunks.len() as u32 == self.count
    }

    /// The blob, once complete.
    pub fn into_blob(self) -> Option<Vec<u8>> {
        if !self.is_complete() {
            return None;
        }
        Some(self.chunks.into_values().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn upload_store_fetch_round_trip_and_root_matches() {
        let data = blob(3 * CHUNK_SIZE + 17);
        let up = Upload::new(data.clone()).unwrap();
        let t = up.tree();
        assert_eq!(t.count(), 4);
        let mut store = BlobStore::new(1 << 20);
        let job = JobId(Hash32([1; 32]));
        for i in 0..t.count() {
            let r = store
                .put(job, t.root(), i, t.count(), t.size(), up.chunk(i).unwrap())
                .unwrap();
            assert_eq!(r == Put::Complete(4), i == 3);
        }
        let mut f = Fetch::new(t.root(), t.size()).unwrap();
        for i in 0..t.count() {
            let (b, p) = store.serve(&t.root(), i).unwrap();
            f.handle_chunk(i, b, &p).unwrap();
        }
        assert_eq!(f.into_blob().unwrap(), data);
    }

    #[test]
    fn tampered_chunk_fails_its_proof_and_a_wrong_root_drops_the_blob() {
        let data = blob(2 * CHUNK_SIZE);
        let up = Upload::new(data).unwrap();
        let t = up.tree();
        let mut f = Fetch::new(t.root(), t.size()).unwrap();
        let mut bad = up.chunk(1).unwrap().to_vec();
        bad[5] ^= 1;
        let p = t.proof(1).unwrap();
        assert_eq!(
            f.handle_chunk(1, &bad, &p),
            Err(UtilityError::BadProof { index: 1 })
        );
        // The proof of chunk 0 presented for chunk 1.
        let p0 = t.proof(0).unwrap();
        assert!(f.handle_chunk(1, up.chunk(1).unwrap(), &p0).is_err());
        let mut store = BlobStore::new(1 << 20);
        let job = JobId(Hash32([2; 32]));
        let lie = Hash32([9; 32]);
        store
            .put(job, lie, 0, 2, t.size(), up.chunk(0).unwrap())
            .unwrap();
        let e = store.put(job, lie, 1, 2, t.size(), up.chunk(1).unwrap());
        assert!(matches!(e, Err(UtilityError::RootMismatch { .. })));
        assert_eq!(store.reserved(), 0, "the bad blob's space is freed");
    }

    #[test]
    fn store_bounds_blobs_before_keeping_them() {
        let mut store = BlobStore::new(CHUNK_SIZE as u64);
        let job = JobId(Hash32([3; 32]));
        let e = store.put(
            job,
            Hash32([1; 32]),
            0,
            2,
            2 * CHUNK_SIZE as u64,
            &blob(CHUNK_SIZE),
        );
        assert!(matches!(e, Err(UtilityError::StoreFull { .. })));
        assert_eq!(store.reserved(), 0);
        let e = store.put(job, Hash32([1; 32]), 0, 1, 10, &blob(9));
        assert_eq!(e, Err(UtilityError::BadChunk { index: 0 }));
        assert_eq!(chunk_count(0), None);
        assert_eq!(chunk_count(u64::MAX), None);
    }
}
