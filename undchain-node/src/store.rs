//! The node's durable storage: one redb database per node under its home
//! (DESIGN.md "The reference node": storage), implementing the store model
//! of `undchain-roles` ([`Storage`]: the same trait the simulator's disk
//! implements), so a restart restores exactly what the simulator's restarts
//! restore.
//!
//! Every [`StoreOp`] batch is one redb write transaction, committed with
//! redb's default (immediate) durability before [`Storage::write`] returns;
//! an empty batch writes nothing. Tables:
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `blocks` | height | versioned postcard of the header, certificate and request envelopes |
//! | `accepted` | job id | open block (8 bytes, little endian) + request envelope |
//! | `meta` | name | `consensus` (postcard), `seq_reserved`, `time_correction` (8 bytes LE), `archived` and `genesis_certificates` (postcard lists, one entry per epoch) |
//! | `partner_jobs` | job id | versioned postcard of the partner's record of the job ([`PartnerJob`]: the notification, its response's digest, the relayed client, the session) |
//! | `partner_chunks` | job id + chunk index (4 bytes, big endian) | versioned postcard of the kept chunk ([`StoredChunk`], at most [`MAX_CHUNK_VALUE`] bytes) |
//!
//! The tables fold ops exactly as [`Stored::apply`] does (a block only at
//! the next height, removing its jobs from `accepted`; a partner's job op
//! through [`PartnerJob::fold`], a chunk kept once, a dropped blob's chunks
//! removed), and
//! [`Storage::load`] reads them back into a [`Stored`]. A file that is not
//! a redb database, is truncated, or holds a value that does not decode is
//! an error naming the file (and the table and key).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use undchain_jobfile::{ClosedFile, JobFile};
use undchain_roles::partner::stored::{PartnerJob, PartnerOp, StoredChunk};
use undchain_roles::validator::entry_of;
use undchain_roles::{BlockRecord, Storage, StoreError, StoreOp, Stored};
use undchain_types::msg::{CommittedBlock, MerkleProof, Operation};
use undchain_types::{BlockNumber, Hash32, JobId, SignedEnvelope, TokenAmount, wire};

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const ACCEPTED: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("accepted");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const PARTNER_JOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("partner_jobs");
const PARTNER_CHUNKS: TableDefinition<&[u8; 36], &[u8]> = TableDefinition::new("partner_chunks");

/// Largest stored partner chunk value decoded (a chunk of at most
/// `MAX_CHUNK` bytes with its blob's root, count and size), bytes.
pub const MAX_CHUNK_VALUE: usize = undchain_types::msg::MAX_CHUNK + 64;
/// Largest stored partner job record decoded, bytes.
const MAX_JOB_VALUE: usize = 1 << 16;

/// Largest stored value decoded (a block with its requests), bytes.
const MAX_VALUE: usize = 1 << 30;

/// A block as stored: the decided block and its requests' envelope bytes.
#[derive(Serialize, Deserialize)]
struct StoredBlock {
    block: CommittedBlock,
    requests: Vec<Vec<u8>>,
    ops: Vec<Operation>,
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// redb refused the file (corrupt, truncated, not a database, locked).
    #[error("cannot open the node database {path}: {reason}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What redb said.
        reason: String,
    },
    /// The file opened but its contents do not decode.
    #[error("the node database {path} is corrupt: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What did not decode.
        reason: String,
    },
}

/// A node's redb database.
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
    writes: u64,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .field("writes", &self.writes)
            .finish()
    }
}

fn open_err(path: &Path, e: impl std::fmt::Display) -> OpenError {
    OpenError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn write_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Write(e.to_string())
}

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

impl RedbStore {
    /// Opens (or creates) the database at `path` and checks that every
    /// stored value decodes.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        // redb treats some damage it cannot expect as unreachable and
        // panics; a damaged file is input, so that is an error here.
        std::panic::catch_unwind(|| Self::open_unguarded(path)).unwrap_or_else(|_| {
            Err(OpenError::Corrupt {
                path: path.to_path_buf(),
                reason: "redb could not read its own structures (the file is damaged)".into(),
            })
        })
    }

    fn open_unguarded(path: &Path) -> Result<Self, OpenError> {
        let db = Database::create(path).map_err(|e| open_err(path, e))?;
        let tx = db.begin_write().map_err(|e| open_err(path, e))?;
        {
            tx.open_table(BLOCKS).map_err(|e| open_err(path, e))?;
            tx.open_table(ACCEPTED).map_err(|e| open_err(path, e))?;
            tx.open_table(META).map_err(|e| open_err(path, e))?;
            tx.open_table(PARTNER_JOBS).map_err(|e| open_err(path, e))?;
            tx.open_table(PARTNER_CHUNKS)
                .map_err(|e| open_err(path, e))?;
        }
        tx.commit().map_err(|e| open_err(path, e))?;
        let store = RedbStore {
            db: Arc::new(db),
            path: path.to_path_buf(),
            writes: 0,
        };
        store.load().map_err(|e| OpenError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A reader of its decided blocks, usable while the node writes. It
    /// does not keep the database open: once this store is dropped, its
    /// reads answer an error.
    pub fn reader(&self) -> BlockReader {
        BlockReader {
            db: Arc::downgrade(&self.db),
        }
    }

    /// Batches written since it was opened.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    fn apply(tx: &redb::WriteTransaction, op: &StoreOp) -> Result<(), StoreError> {
        match op {
            StoreOp::Block(record) => {
                let mut blocks = tx.open_table(BLOCKS).map_err(write_err)?;
                let next = blocks
                    .last()
                    .map_err(write_err)?
                    .map_or(0, |(k, _)| k.value() + 1);
                if record.block.header.number.0 != next {
                    return Ok(());
                }
                let value = wire::encode(&StoredBlock {
                    block: record.block.clone(),
                    requests: record.requests.iter().map(|r| r.to_bytes()).collect(),
                    ops: record.ops.clone(),
                });
                blocks.insert(next, value.as_slice()).map_err(write_err)?;
                let mut accepted = tx.open_table(ACCEPTED).map_err(write_err)?;
                for r in &record.requests {
                    let id = JobId::from_request_digest(r.digest());
                    accepted.remove(id.0.as_bytes()).map_err(write_err)?;
                }
            }
            StoreOp::Consensus(state) => {
                let mut meta = tx.open_table(META).map_err(write_err)?;
                let value = wire::encode(&**state);
                meta.insert("consensus", value.as_slice())
                    .map_err(write_err)?;
            }
            StoreOp::Accepted {
                job,
                block,
                request,
            } => {
                let mut accepted = tx.open_table(ACCEPTED).map_err(write_err)?;
                let mut value = block.0.to_le_bytes().to_vec();
                value.extend_from_slice(&request.to_bytes());
                accepted
                    .insert(job.0.as_bytes(), value.as_slice())
                    .map_err(write_err)?;
            }
            StoreOp::SeqReserved(s) => {
                let mut meta = tx.open_table(META).map_err(write_err)?;
                let old = meta
                    .get("seq_reserved")
                    .map_err(write_err)?
                    .and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes))
                    .unwrap_or(0);
                meta.insert("seq_reserved", old.max(*s).to_le_bytes().as_slice())
                    .map_err(write_err)?;
            }
            StoreOp::TimeCorrection(c) => {
                let mut meta = tx.open_table(META).map_err(write_err)?;
                meta.insert("time_correction", c.to_le_bytes().as_slice())
                    .map_err(write_err)?;
            }
            StoreOp::Archive {
                epoch,
                last_block,
                last_hash,
            } => push_meta(tx, "archived", (*epoch, *last_block, *last_hash), |a, b| {
                a.0 == b.0
            })?,
            StoreOp::GenesisCertificate(c) => {
                push_meta(tx, "genesis_certificates", (**c).clone(), |a, b| {
                    a.counter == b.counter
                })?
            }
            StoreOp::Partner(op) => apply_partner(tx, op)?,
        }
        Ok(())
    }
}

/// The `partner_chunks` key of chunk `index` of `job` (job, then index in
/// order).
fn chunk_key(job: &JobId, index: u32) -> [u8; 36] {
    let mut k = [0; 36];
    k[..32].copy_from_slice(job.0.as_bytes());
    k[32..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Folds a partner op into its tables as `PartnerStored::apply` does.
fn apply_partner(tx: &redb::WriteTransaction, op: &PartnerOp) -> Result<(), StoreError> {
    match op {
        PartnerOp::Chunk { job, index, chunk } => {
            let mut chunks = tx.open_table(PARTNER_CHUNKS).map_err(write_err)?;
            let key = chunk_key(job, *index);
            if chunks.get(&key).map_err(write_err)?.is_none() {
                let value = wire::encode(chunk);
                chunks.insert(&key, value.as_slice()).map_err(write_err)?;
            }
        }
        PartnerOp::Dropped { job } => {
            let mut chunks = tx.open_table(PARTNER_CHUNKS).map_err(write_err)?;
            let (lo, hi) = (chunk_key(job, 0), chunk_key(job, u32::MAX));
            chunks
                .retain_in::<&[u8; 36], _>(&lo..=&hi, |_, _| false)
                .map_err(write_err)?;
        }
        op => {
            let mut jobs = tx.open_table(PARTNER_JOBS).map_err(write_err)?;
            let job = op.job();
            let key = job.0.as_bytes();
            let mut slot: Option<PartnerJob> = match jobs.get(key).map_err(write_err)? {
                Some(v) => Some(
                    wire::decode(v.value(), MAX_JOB_VALUE)
                        .map_err(|e| corrupt(format!("table partner_jobs, job {}: {e}", job.0)))?,
                ),
                None => None,
            };
            PartnerJob::fold(&mut slot, op);
            if let Some(j) = slot {
                let value = wire::encode(&j);
                jobs.insert(key, value.as_slice()).map_err(write_err)?;
            }
        }
    }
    Ok(())
}

/// Appends `item` to the postcard list under meta key `name` unless an
/// entry `same` as it is there (ops fold as `Stored::apply` folds them).
fn push_meta<T>(
    tx: &redb::WriteTransaction,
    name: &str,
    item: T,
    same: impl Fn(&T, &T) -> bool,
) -> Result<(), StoreError>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    let mut meta = tx.open_table(META).map_err(write_err)?;
    let mut list: Vec<T> = match meta.get(name).map_err(write_err)? {
        Some(v) => wire::decode(v.value(), MAX_VALUE)
            .map_err(|e| corrupt(format!("table meta, {name}: {e}")))?,
        None => Vec::new(),
    };
    if !list.iter().any(|x| same(x, &item)) {
        list.push(item);
    }
    let value = wire::encode(&list);
    meta.insert(name, value.as_slice()).map_err(write_err)?;
    Ok(())
}

/// Reads decided blocks from a node's database while the node runs: each
/// read is its own redb read transaction, beside the node's writes.
#[derive(Clone)]
pub struct BlockReader {
    db: std::sync::Weak<Database>,
}

impl std::fmt::Debug for BlockReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockReader")
    }
}

impl BlockReader {
    /// Block `n` as stored, or `None` when it is not decided (stored) yet;
    /// an error once the node's store is dropped.
    fn stored(&self, n: BlockNumber) -> Result<Option<StoredBlock>, StoreError> {
        let Some(db) = self.db.upgrade() else {
            return Err(StoreError::Write(
                "the node stopped: its database is closed".into(),
            ));
        };
        let tx = db.begin_read().map_err(|e| corrupt(e.to_string()))?;
        let blocks = tx.open_table(BLOCKS).map_err(|e| corrupt(e.to_string()))?;
        let Some(v) = blocks
            .get(n.0)
            .map_err(|e| corrupt(format!("table blocks: {e}")))?
        else {
            return Ok(None);
        };
        wire::decode(v.value(), MAX_VALUE)
            .map(Some)
            .map_err(|e| corrupt(format!("table blocks, height {}: {e}", n.0)))
    }

    /// Block `n` with the job ids of its file, or `None` when it is not
    /// decided (stored) yet; an error once the node's store is dropped.
    pub fn block(
        &self,
        n: BlockNumber,
    ) -> Result<Option<(CommittedBlock, Vec<JobId>)>, StoreError> {
        let Some(b) = self.stored(n)? else {
            return Ok(None);
        };
        let jobs = b
            .requests
            .iter()
            .map(|r| {
                envelope(r, || format!("table blocks, height {}", n.0))
                    .map(|e| JobId::from_request_digest(e.digest()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((b.block, jobs)))
    }

    /// Job `id`'s inclusion proof in block `n`'s job file, rebuilt from
    /// the stored requests (each entry at the chain's `fee`, as every
    /// validator derives it): the header's `job_root`, the job's leaf and
    /// the proof; `None` when block `n` is not stored or its file holds no
    /// job `id`. A file whose root is not its header's is corrupt.
    pub fn inclusion(
        &self,
        n: BlockNumber,
        id: &JobId,
        fee: TokenAmount,
    ) -> Result<Option<(Hash32, Hash32, MerkleProof)>, StoreError> {
        let Some(b) = self.stored(n)? else {
            return Ok(None);
        };
        let what = || format!("table blocks, height {}", n.0);
        let mut entries = Vec::with_capacity(b.requests.len());
        for r in &b.requests {
            let env = envelope(r, what)?;
            entries.push(entry_of(&env, fee).map_err(|e| corrupt(format!("{}: {e}", what())))?);
        }
        let file =
            JobFile::from_entries(entries).map_err(|e| corrupt(format!("{}: {e}", what())))?;
        let closed = ClosedFile::new(n, file);
        let root = b.block.header.job_root;
        if closed.merkle_root() != root {
            return Err(corrupt(format!(
                "{}: its requests' job file does not have the header's job_root",
                what()
            )));
        }
        Ok(closed.proof(id).map(|(leaf, proof)| (root, leaf, proof)))
    }
}

fn envelope(bytes: &[u8], what: impl Fn() -> String) -> Result<Arc<SignedEnvelope>, StoreError> {
    SignedEnvelope::from_bytes(bytes, MAX_VALUE)
        .map(Arc::new)
        .map_err(|e| corrupt(format!("{}: {e}", what())))
}

fn eight(bytes: &[u8], what: &str) -> Result<[u8; 8], StoreError> {
    bytes
        .get(..8)
        .filter(|_| bytes.len() >= 8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt(format!("{what}: {} bytes, expected 8", bytes.len())))
}

impl Storage for RedbStore {
    fn write(&mut self, batch: &[StoreOp]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(write_err)?;
        for op in batch {
            Self::apply(&tx, op)?;
        }
        tx.commit().map_err(write_err)?;
        self.writes += 1;
        Ok(())
    }

    fn load(&self) -> Result<Stored, StoreError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.load_unguarded()))
            .unwrap_or_else(|_| {
                Err(corrupt(format!(
                    "{}: redb could not read its own structures (the file is damaged)",
                    self.path.display()
                )))
            })
    }
}

impl RedbStore {
    fn load_unguarded(&self) -> Result<Stored, StoreError> {
        let tx = self.db.begin_read().map_err(|e| corrupt(e.to_string()))?;
        let mut stored = Stored::default();
        let blocks = tx.open_table(BLOCKS).map_err(|e| corrupt(e.to_string()))?;
        for (i, row) in blocks
            .iter()
            .map_err(|e| corrupt(e.to_string()))?
            .enumerate()
        {
            let (k, v) = row.map_err(|e| corrupt(format!("table blocks: {e}")))?;
            let height = k.value();
            if height != i as u64 {
                return Err(corrupt(format!(
                    "table blocks: height {height} where {i} was expected"
                )));
            }
            let b: StoredBlock = wire::decode(v.value(), MAX_VALUE)
                .map_err(|e| corrupt(format!("table blocks, height {height}: {e}")))?;
            let requests = b
                .requests
                .iter()
                .enumerate()
                .map(|(j, r)| envelope(r, || format!("table blocks, height {height}, request {j}")))
                .collect::<Result<Vec<_>, _>>()?;
            stored.blocks.push(BlockRecord {
                block: b.block,
                requests,
                ops: b.ops,
            });
        }
        let accepted = tx
            .open_table(ACCEPTED)
            .map_err(|e| corrupt(e.to_string()))?;
        for row in accepted.iter().map_err(|e| corrupt(e.to_string()))? {
            let (k, v) = row.map_err(|e| corrupt(format!("table accepted: {e}")))?;
            let job = JobId(Hash32(*k.value()));
            let v = v.value();
            let what = || format!("table accepted, job {}", job.0);
            let block = BlockNumber(u64::from_le_bytes(eight(v, &what())?));
            let env = envelope(&v[8..], what)?;
            stored.accepted.insert(job, (block, env));
        }
        let meta = tx.open_table(META).map_err(|e| corrupt(e.to_string()))?;
        let get = |name: &str| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(meta
                .get(name)
                .map_err(|e| corrupt(format!("table meta, {name}: {e}")))?
                .map(|v| v.value().to_vec()))
        };
        if let Some(v) = get("consensus")? {
            stored.consensus = Some(
                wire::decode(&v, MAX_VALUE)
                    .map_err(|e| corrupt(format!("table meta, consensus: {e}")))?,
            );
        }
        if let Some(v) = get("seq_reserved")? {
            stored.seq_reserved = u64::from_le_bytes(eight(&v, "table meta, seq_reserved")?);
        }
        if let Some(v) = get("archived")? {
            stored.archived = wire::decode(&v, MAX_VALUE)
                .map_err(|e| corrupt(format!("table meta, archived: {e}")))?;
        }
        if let Some(v) = get("genesis_certificates")? {
            stored.genesis_certificates = wire::decode(&v, MAX_VALUE)
                .map_err(|e| corrupt(format!("table meta, genesis_certificates: {e}")))?;
        }
        Self::load_partner(&tx, &mut stored)?;
        if let Some(v) = get("time_correction")? {
            stored.time_correction = Some(i64::from_le_bytes(eight(
                &v,
                "table meta, time_correction",
            )?));
        }
        Ok(stored)
    }
}

impl RedbStore {
    fn load_partner(tx: &redb::ReadTransaction, stored: &mut Stored) -> Result<(), StoreError> {
        let jobs = tx
            .open_table(PARTNER_JOBS)
            .map_err(|e| corrupt(e.to_string()))?;
        for row in jobs.iter().map_err(|e| corrupt(e.to_string()))? {
            let (k, v) = row.map_err(|e| corrupt(format!("table partner_jobs: {e}")))?;
            let job = JobId(Hash32(*k.value()));
            let j: PartnerJob = wire::decode(v.value(), MAX_JOB_VALUE)
                .map_err(|e| corrupt(format!("table partner_jobs, job {}: {e}", job.0)))?;
            if j.notification.job != job {
                return Err(corrupt(format!(
                    "table partner_jobs, job {}: the record is of job {}",
                    job.0, j.notification.job.0
                )));
            }
            stored.partner.jobs.insert(job, j);
        }
        let chunks = tx
            .open_table(PARTNER_CHUNKS)
            .map_err(|e| corrupt(e.to_string()))?;
        for row in chunks.iter().map_err(|e| corrupt(e.to_string()))? {
            let (k, v) = row.map_err(|e| corrupt(format!("table partner_chunks: {e}")))?;
            let k = k.value();
            let mut id = [0; 32];
            id.copy_from_slice(&k[..32]);
            let job = JobId(Hash32(id));
            let index = u32::from_be_bytes([k[32], k[33], k[34], k[35]]);
            let what = || format!("table partner_chunks, job {} chunk {index}", job.0);
            // Bounded: a value over one chunk is refused before decoding.
            let c: StoredChunk = wire::decode(v.value(), MAX_CHUNK_VALUE)
                .map_err(|e| corrupt(format!("{}: {e}", what())))?;
            stored.partner.chunks.insert((job, index), c);
        }
        Ok(())
    }
}
