//! What a node makes durable, as a typed model (DESIGN.md "The node core":
//! "what a `Persist` batch holds"). The node's storage and the simulator's
//! disk both implement [`Storage`]; a restarted node is rebuilt from a
//! [`Stored`] only ([`crate::NodeCore::restore`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use undchain_consensus::PersistedState;
use undchain_ledger::convergence::GenesisCertificate;
use undchain_types::msg::{CommittedBlock, Operation};
use undchain_types::{BlockNumber, Hash32, JobId, SignedEnvelope};

use crate::partner::stored::{PartnerOp, PartnerStored};

/// A decided block as stored: header and certificate, the signed client
/// requests behind its jobs (the job file is derived from them) and its
/// operations (receipts, partial completions, transactions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    /// The decided header with its commit certificate.
    pub block: CommittedBlock,
    /// The signed request of every job of the block, in job-id order.
    pub requests: Vec<Arc<SignedEnvelope>>,
    /// The block's operations, in block order (the header's `ops_root`).
    pub ops: Vec<Operation>,
}

/// One durable write of a [`crate::NodeReady`] batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// A decided block, applied to the ledger.
    Block(Box<BlockRecord>),
    /// The agreement driver's state (replaces the previous one).
    Consensus(Box<PersistedState>),
    /// A request filed into an open job file (acknowledged to its client
    /// when this validator took it in).
    Accepted {
        /// The job.
        job: JobId,
        /// The open block it was filed in.
        block: BlockNumber,
        /// The signed request.
        request: Arc<SignedEnvelope>,
    },
    /// Envelope sequence numbers below this may have been used.
    SeqReserved(u64),
    /// The agreed time correction (agreed time = local + correction).
    TimeCorrection(i64),
    /// A convergence ended epoch `epoch` with block `last_block` (hash
    /// `last_hash`): its blocks may move to the archive (they stay
    /// readable: a restart replays them).
    Archive {
        /// The epoch that ended.
        epoch: u32,
        /// Its last block.
        last_block: BlockNumber,
        /// That block's hash.
        last_hash: Hash32,
    },
    /// A quorum's signatures over a new epoch's genesis.
    GenesisCertificate(Box<GenesisCertificate>),
    /// A partner's job, session or kept chunk ([`crate::partner::stored`]).
    Partner(Box<PartnerOp>),
}

/// Everything a node has made durable, folded from its [`StoreOp`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Decided blocks, in height order from block 0.
    pub blocks: Vec<BlockRecord>,
    /// The last agreement state.
    pub consensus: Option<PersistedState>,
    /// Requests filed and not yet committed, by job.
    pub accepted: BTreeMap<JobId, (BlockNumber, Arc<SignedEnvelope>)>,
    /// Sequence numbers below this may have been used.
    pub seq_reserved: u64,
    /// The last agreed time correction.
    pub time_correction: Option<i64>,
    /// Ended epochs: (epoch, last block, its hash), in order.
    pub archived: Vec<(u32, BlockNumber, Hash32)>,
    /// Certified geneses of later epochs, in order.
    pub genesis_certificates: Vec<GenesisCertificate>,
    /// A partner's jobs, sessions and kept chunks.
    pub partner: PartnerStored,
}

impl Stored {
    /// Folds one write into the state.
    pub fn apply(&mut self, op: &StoreOp) {
        match op {
            StoreOp::Block(record) => {
                let next = self.blocks.len() as u64;
                if record.block.header.number.0 == next {
                    for r in &record.requests {
                        let id = JobId::from_request_digest(r.digest());
                        self.accepted.remove(&id);
                    }
                    self.blocks.push((**record).clone());
                }
            }
            StoreOp::Consensus(s) => self.consensus = Some((**s).clone()),
            StoreOp::Accepted {
                job,
                block,
                request,
            } => {
                // The validator files only jobs that are not committed.
                self.accepted.insert(*job, (*block, request.clone()));
            }
            StoreOp::SeqReserved(s) => self.seq_reserved = self.seq_reserved.max(*s),
            StoreOp::TimeCorrection(c) => self.time_correction = Some(*c),
            StoreOp::Archive {
                epoch,
                last_block,
                last_hash,
            } => {
                if !self.archived.iter().any(|(e, _, _)| e == epoch) {
                    self.archived.push((*epoch, *last_block, *last_hash));
                }
            }
            StoreOp::GenesisCertificate(c) => {
                if !self
                    .genesis_certificates
                    .iter()
                    .any(|x| x.counter == c.counter)
                {
                    self.genesis_certificates.push((**c).clone());
                }
            }
            StoreOp::Partner(op) => self.partner.apply(op),
        }
    }

    /// The height of the next block to decide.
    pub fn next_height(&self) -> BlockNumber {
        BlockNumber(self.blocks.len() as u64)
    }
}

/// Why storage failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The medium refused the write.
    #[error("storage write failed: {0}")]
    Write(String),
    /// Stored bytes that do not decode.
    #[error("stored state is corrupt: {0}")]
    Corrupt(String),
}

/// A node's durable storage: one batch is one atomic write.
pub trait Storage {
    /// Makes `batch` durable, all of it or none of it.
    fn write(&mut self, batch: &[StoreOp]) -> Result<(), StoreError>;
    /// Everything durable so far.
    fn load(&self) -> Result<Stored, StoreError>;
}

/// Storage in memory (tests, embedders that persist elsewhere).
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    stored: Stored,
    writes: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many batches were written.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// What is durable, without a copy.
    pub fn stored(&self) -> &Stored {
        &self.stored
    }
}

impl Storage for MemoryStore {
    fn write(&mut self, batch: &[StoreOp]) -> Result<(), StoreError> {
        for op in batch {
            self.stored.apply(op);
        }
        self.writes += 1;
        Ok(())
    }

    fn load(&self) -> Result<Stored, StoreError> {
        Ok(self.stored.clone())
    }
}
