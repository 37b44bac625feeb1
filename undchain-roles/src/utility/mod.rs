//! Utility sessions between a client and a partner (DESIGN.md "Utility
//! sessions"). The validators never carry utility bytes: client and
//! partner talk directly ([`undchain_types::msg::SessionMessage`]).
//!
//! * [`storage`]: chunked upload, the content root (an rs_merkle tree over
//!   the chunks, in the layout of closed job files), per-chunk proofs
//!   checked on fetch and on challenge.
//! * [`Utility`]: computation and access behind one trait, with a built-in
//!   each: [`compute::HashChain`] (a deterministic job the client
//!   spot-checks) and [`relay::Relay`] (a metered relay).
//! * [`meter`]: signed cumulative usage checkpoints every K units.
//!
//! Everything here is pure and bounded; a refused input is a typed
//! [`UtilityError`] and changes nothing.

pub mod compute;
pub mod meter;
pub mod relay;
pub mod storage;

use undchain_types::{Hash32, UtilityKind};

pub use compute::{ComputeCheck, HashChain};
pub use meter::{ClientMeter, DEFAULT_CHECKPOINT_UNITS, MeterTerms, PartnerMeter};
pub use relay::{Destination, Echo, Relay};
pub use storage::{BlobStore, CHUNK_SIZE, ContentTree, Fetch, Put, Upload, check_answer};

/// What one input of a session produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The output for the client.
    pub output: Vec<u8>,
    /// Units the input delivered.
    pub units: u64,
}

/// Computation or access that a partner provides (storage has its own
/// shape: [`storage`]). A provider implements it for its own work; the
/// reference implementation has [`HashChain`] and [`Relay`].
pub trait Utility: core::fmt::Debug + Send {
    /// The kind of utility served.
    fn kind(&self) -> UtilityKind;

    /// Serves input `seq` (inputs come in order from 0); a refused input
    /// changes nothing.
    fn serve(&mut self, seq: u32, input: &[u8]) -> Result<Served, UtilityError>;

    /// Whether the work the job asked for is done.
    fn is_done(&self) -> bool;
}

/// Why a utility step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UtilityError {
    /// A blob must have 1 byte to `MAX_CHUNKS` chunks.
    #[error("a blob of {size} bytes is empty or over the chunk limit")]
    BlobSize {
        /// The size named.
        size: u64,
    },
    /// A chunk outside the blob, or of the wrong length for its position.
    #[error("chunk {index} is outside the blob or has the wrong length")]
    BadChunk {
        /// The chunk's position.
        index: u32,
    },
    /// A chunk's proof does not hold under the content root.
    #[error("chunk {index} does not prove under the content root")]
    BadProof {
        /// The chunk's position.
        index: u32,
    },
    /// The chunks' tree is not the root the client named.
    #[error("the chunks hash to {computed}, not the named root {named}")]
    RootMismatch {
        /// The root named in the chunks.
        named: Hash32,
        /// The root of the chunks received.
        computed: Hash32,
    },
    /// The root is stored for another job or with another shape.
    #[error("content root {root} is already stored with other terms")]
    RootInUse {
        /// The root.
        root: Hash32,
    },
    /// The store cannot take the blob.
    #[error("store of {capacity} bytes cannot hold {wanted}")]
    StoreFull {
        /// The store's capacity.
        capacity: u64,
        /// Bytes the blob would bring it to.
        wanted: u64,
    },
    /// No blob under this root.
    #[error("no blob under root {root}")]
    UnknownBlob {
        /// The root.
        root: Hash32,
    },
    /// The blob has not been completely uploaded.
    #[error("blob {root} is not complete")]
    Incomplete {
        /// The root.
        root: Hash32,
    },
    /// The store no longer holds this chunk.
    #[error("chunk {index} is not held")]
    MissingChunk {
        /// The chunk's position.
        index: u32,
    },
    /// Units times price overflows.
    #[error("{units} units overflow the amount")]
    AmountOverflow {
        /// The units.
        units: u64,
    },
    /// The checkpoint is for another chain, job, commit, client or partner,
    /// or its amount is not its units at the price.
    #[error("checkpoint is not this session's")]
    ForeignCheckpoint,
    /// The checkpoint's signature is not the client's.
    #[error("checkpoint signature does not verify")]
    BadSignature,
    /// Not newer than the last checkpoint, or more than was delivered.
    #[error("checkpoint {counter} for {units} units is stale or over what was delivered")]
    StaleCheckpoint {
        /// Its counter.
        counter: u32,
        /// Its units.
        units: u64,
    },
    /// The client is more than one interval behind on checkpoints.
    #[error("{delivered} units delivered, only {proven} proven: waiting for a checkpoint")]
    CheckpointOverdue {
        /// Units delivered.
        delivered: u64,
        /// Units the last checkpoint proves.
        proven: u64,
    },
    /// The receipt's terms are not what the client counted.
    #[error("receipt claims {claimed} units, the client counted {counted}")]
    ReceiptMismatch {
        /// Units claimed.
        claimed: u64,
        /// Units counted.
        counted: u64,
    },
    /// An input out of order.
    #[error("input {got} out of order (expected {expected})")]
    OutOfOrder {
        /// The input's position.
        got: u32,
        /// The position expected.
        expected: u32,
    },
    /// An input the utility cannot read, or one after the work is done.
    #[error("input refused: {0}")]
    BadInput(&'static str),
    /// A computation's output failed the client's spot check.
    #[error("output {seq} fails the spot check")]
    SpotCheckFailed {
        /// The output's position.
        seq: u32,
    },
}
