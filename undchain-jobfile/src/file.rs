//! One job file: the jobs of one block, as an ordered set (by job id) with
//! incrementally maintained fingerprints (DESIGN.md "Job files",
//! "Reconciliation", "Two roots, two jobs").
//!
//! While a file is open its identity is the *fingerprint root*: a hash of
//! the entry count and the collision-resistant hash of the canonical
//! binary (crit-bit) trie of its entries, each insert marking its path
//! and a read of the root rehashing the marked paths (`index/root.rs`;
//! `docs/PROTOCOL.md` "Two roots"); the count and 64-bit fingerprint of
//! any key range come from the [`crate::index`] trie in O(log n). At block
//! close the *Merkle root* ([`crate::merkle`]) over the sorted entries goes
//! into the block header and gives clients inclusion proofs.

use undchain_types::{Hash32, JobEntry, JobId};

use crate::index::{Index, Refused, Slot, Stored, Summary};
use crate::merkle::{ClosedFile, merkle_root};

/// Why an entry could not be inserted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// The file already holds an entry with this id.
    #[error("job {id} is already in the file")]
    Duplicate {
        /// The id the file already holds.
        id: JobId,
    },
    /// The file holds the most entries it can index (`u32::MAX - 1`).
    #[error("the file is full")]
    Full,
}

/// The leaf hash of an entry: blake3 under
/// [`undchain_types::HashContext::JobEntry`] of
/// its canonical encoding (equal to [`JobEntry::leaf_hash`], computed
/// without serde or allocation by the crate's hand-written encoder).
pub fn leaf_hash(entry: &JobEntry) -> Hash32 {
    crate::codec::leaf_hash_of(entry)
}

/// A 256-bit wrapping sum of leaf hashes (little-endian limbs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sum256([u64; 4]);

impl Sum256 {
    pub(crate) fn add(&mut self, h: &Hash32) {
        let mut carry = false;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let v = u64::from_le_bytes(limb_bytes(h, i));
            let (s1, c1) = limb.overflowing_add(v);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *limb = s2;
            carry = c1 || c2;
        }
    }

    pub(crate) fn sub(&mut self, h: &Hash32) {
        let mut borrow = false;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let v = u64::from_le_bytes(limb_bytes(h, i));
            let (s1, b1) = limb.overflowing_sub(v);
            let (s2, b2) = s1.overflowing_sub(u64::from(borrow));
            *limb = s2;
            borrow = b1 || b2;
        }
    }

    pub(crate) fn to_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        out
    }
}

fn limb_bytes(h: &Hash32, i: usize) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.0[i * 8..i * 8 + 8]);
    b
}

/// A job file: an ordered set of [`JobEntry`] keyed by job id.
///
/// ```
/// use undchain_jobfile::JobFile;
/// use undchain_types::{BlockTime, Hash32, JobEntry, JobId, JobState, TokenAmount, UtilityKind};
///
/// let entry = |n: u8| JobEntry {
///     id: JobId::from_request_digest(&Hash32([n; 32])),
///     initiated_at: BlockTime(1_000 + u64::from(n)),
///     kind: UtilityKind::Storage,
///     client_pool: Default::default(),
///     partner_pool: Default::default(),
///     fee: TokenAmount(10),
///     state: JobState::Requested,
/// };
/// let mut a = JobFile::new();
/// let mut b = JobFile::new();
/// for n in 0..10 {
///     a.insert(entry(n)).unwrap();
///     b.insert(entry(9 - n)).unwrap();
/// }
/// assert_eq!(a.root(), b.root()); // insertion order does not matter
/// assert!(a.insert(entry(3)).is_err()); // nor can a job be filed twice
/// ```
#[derive(Debug, Clone, Default)]
pub struct JobFile {
    index: Index,
    sum: Sum256,
    version: u64,
    /// The Merkle root, once read, until the next change: a validator
    /// compares its open file with every decided header while it waits for
    /// a block's body, and a tree of thousands of leaves costs milliseconds.
    merkle: std::sync::OnceLock<Hash32>,
}

impl JobFile {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a file from entries (later duplicates of an id are refused).
    pub fn from_entries(entries: impl IntoIterator<Item = JobEntry>) -> Result<Self, InsertError> {
        let mut f = JobFile::new();
        for e in entries {
            f.insert(e)?;
        }
        Ok(f)
    }

    /// Entries in the file.
    pub fn len(&self) -> u64 {
        self.index.total().count
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A counter bumped by every change, so a reconciliation session can
    /// tell that its file moved under it.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Inserts `entry`; O(log n). Refuses a second entry with the same id.
    pub fn insert(&mut self, entry: JobEntry) -> Result<Hash32, InsertError> {
        let leaf = leaf_hash(&entry);
        self.insert_hashed(entry, leaf)
    }

    /// Inserts an entry whose leaf hash the caller already computed.
    pub(crate) fn insert_hashed(
        &mut self,
        entry: JobEntry,
        leaf: Hash32,
    ) -> Result<Hash32, InsertError> {
        match self.index.insert(entry, leaf) {
            Ok(()) => {
                self.sum.add(&leaf);
                self.version += 1;
                self.merkle.take();
                Ok(leaf)
            }
            Err(Refused::Duplicate(e)) => Err(InsertError::Duplicate { id: e.id }),
            Err(Refused::Full) => Err(InsertError::Full),
        }
    }

    /// Removes and returns the entry with `id`; O(log n).
    pub fn remove(&mut self, id: &JobId) -> Option<JobEntry> {
        let stored = self.index.remove(id)?;
        self.sum.sub(&stored.leaf);
        self.version += 1;
        self.merkle.take();
        Some(stored.entry)
    }

    /// The entry with `id`.
    pub fn get(&self, id: &JobId) -> Option<&JobEntry> {
        self.index.get(id).map(|s| &s.entry)
    }

    /// Whether the file holds `id`.
    pub fn contains(&self, id: &JobId) -> bool {
        self.index.get(id).is_some()
    }

    /// The leaf hash of the entry with `id`.
    pub fn leaf_of(&self, id: &JobId) -> Option<Hash32> {
        self.index.get(id).map(|s| s.leaf)
    }

    /// The fingerprint root: identifies the open file's content whatever the
    /// insertion order, collision-resistant (the hash of the canonical
    /// binary trie of the entries, [`crate::index`]'s `root`); recomputes
    /// only the paths that changed since the last call.
    pub fn root(&self) -> Hash32 {
        crate::index::trie_root(self.len(), &self.index.trie_hash(&[]))
    }

    /// The root of this file with `extra` added (sorted by id, then leaf
    /// hash; none of them in the file), without changing the file.
    pub(crate) fn root_with(&self, extra: &[(JobId, Hash32)]) -> Hash32 {
        let count = self.len() + extra.len() as u64;
        crate::index::trie_root(count, &self.index.trie_hash(extra))
    }

    /// Count and 64-bit fingerprint sum of the entries with
    /// `lo <= id < hi` (`hi = None`: to the end); O(log n).
    pub fn range_summary(&self, lo: &JobId, hi: Option<&JobId>) -> Summary {
        let upper = match hi {
            Some(h) => self.index.below(&h.0.0),
            None => self.index.total(),
        };
        upper.minus(self.index.below(&lo.0.0))
    }

    /// Adds the summaries of the `2^b` parts of the id prefix (`bits`,
    /// `len`) to `out`.
    pub(crate) fn child_aggs(&self, bits: u64, len: u8, b: u8, out: &mut [Summary]) {
        self.index.child_aggs(bits, len, b, out)
    }

    /// The top 64 id bits of the first and of the last entry, if any.
    pub(crate) fn edge_tops(&self) -> Option<(u64, u64)> {
        self.index.edge_tops()
    }

    /// Summary of the id prefix (`bits`, `len`).
    pub(crate) fn prefix_summary(&self, bits: u64, len: u8) -> Summary {
        self.index.prefix_summary(bits, len)
    }

    /// Calls `f` with every slot of the id prefix (`bits`, `len`), in id
    /// order.
    pub(crate) fn for_each_prefix<'a>(&'a self, bits: u64, len: u8, f: &mut impl FnMut(&'a Slot)) {
        self.index.for_each_prefix(bits, len, f)
    }

    /// The entry and leaf hash behind a slot of this file.
    #[inline]
    pub(crate) fn stored(&self, idx: u32) -> &Stored {
        self.index.stored(idx)
    }

    /// The 256-bit sum of the leaf hashes (a quick inequality test, not
    /// the root: [`JobFile::root`] is the trie hash).
    pub(crate) fn sum256(&self) -> Sum256 {
        self.sum
    }

    /// Summary of the whole file.
    pub fn summary(&self) -> Summary {
        self.index.total()
    }

    /// Every entry, in id order.
    pub fn entries(&self) -> Vec<&JobEntry> {
        let mut out = Vec::with_capacity(self.len() as usize);
        self.index
            .for_each(&mut |s| out.push(&self.index.stored(s.idx).entry));
        out
    }

    /// Every (entry, leaf hash), in id order.
    pub(crate) fn for_each_slot<'a>(&'a self, f: &mut dyn FnMut(&'a JobEntry, &'a Hash32)) {
        self.index.for_each(&mut |s| {
            let st = self.index.stored(s.idx);
            f(&st.entry, &st.leaf)
        });
    }

    /// Leaf hashes in id order.
    pub fn leaf_hashes(&self) -> Vec<Hash32> {
        let mut out = Vec::with_capacity(self.len() as usize);
        self.index
            .for_each(&mut |s| out.push(self.index.stored(s.idx).leaf));
        out
    }

    /// The Merkle root over the sorted entries' leaf hashes (what a block
    /// header carries); O(n) on the first read after a change, then kept.
    /// [`Hash32::ZERO`] for an empty file.
    pub fn merkle_root(&self) -> Hash32 {
        *self.merkle.get_or_init(|| merkle_root(&self.leaf_hashes()))
    }

    /// Freezes the file: builds its Merkle tree once so that inclusion
    /// proofs are cheap.
    pub fn close(self, block: undchain_types::BlockNumber) -> ClosedFile {
        ClosedFile::new(block, self)
    }
}

impl PartialEq for JobFile {
    /// Two files are equal when they hold the same entries.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.sum == other.sum && self.entries() == other.entries()
    }
}

impl Eq for JobFile {}
