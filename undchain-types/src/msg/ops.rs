//! The operations a block commits besides its job file (docs/PROTOCOL.md
//! "Block operations"): receipts and partial completions (claims on a
//! job's escrow) and signed transactions. A header commits them by
//! [`ops_root`] and count; validators relay them to one another in
//! [`OpsBatch`]es and fetch a block's list with [`OpsFetch`].

use serde::{Deserialize, Serialize};

use super::client::Receipt;
use super::ledger::Transaction;
use super::partner::PartialCompletion;
use crate::bounded::BoundedVec;
use crate::hash::{Hash32, HashAlgorithm, HashContext};
use crate::ids::JobId;

/// Most operations one block commits (and one [`OpsBatch`] carries).
pub const MAX_BLOCK_OPS: usize = 2048;

/// Most encoded bytes of one block's operations: a proposer stops adding
/// operations there, so the block's [`OpsBatch`] always fits one frame
/// (1 MiB) with room for the envelope.
pub const MAX_BLOCK_OPS_BYTES: usize = 768 * 1024;

/// A user operation a block commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum Operation {
    /// Client story step 5 / partner story "utility complete": the receipt
    /// signed by both; either side may submit it.
    Receipt(Receipt),
    /// Partner story "client refuses to sign": the last client-signed usage
    /// checkpoint, claimed by the partner's signature.
    Partial(PartialCompletion),
    /// A signed transaction (fee and nonce).
    Transaction(Transaction),
}

impl Operation {
    /// The operation's id: what makes a repeated submission recognisable
    /// (the digest its signers signed; a partial's is set apart from the
    /// checkpoint's own).
    pub fn id(&self) -> Hash32 {
        match self {
            Operation::Receipt(r) => r.terms.digest(),
            Operation::Partial(p) => HashAlgorithm::Blake3.hash_parts(
                HashContext::UsageCheckpoint,
                &[b"partial", p.last_checkpoint.checkpoint.digest().as_bytes()],
            ),
            Operation::Transaction(t) => t.id(),
        }
    }

    /// The job this operation claims on, if it is a receipt or a partial.
    pub fn job(&self) -> Option<JobId> {
        match self {
            Operation::Receipt(r) => Some(r.terms.job),
            Operation::Partial(p) => Some(p.last_checkpoint.checkpoint.job),
            Operation::Transaction(_) => None,
        }
    }

    /// The block that committed the job this operation claims on, if it
    /// is a receipt or a partial.
    pub fn commit_block(&self) -> Option<crate::ids::BlockNumber> {
        match self {
            Operation::Receipt(r) => Some(r.terms.commit_block),
            Operation::Partial(p) => Some(p.last_checkpoint.checkpoint.commit_block),
            Operation::Transaction(_) => None,
        }
    }

    /// The operation carried by a user message, if `msg` is one.
    pub fn from_message(msg: &super::Message) -> Option<Operation> {
        match msg {
            super::Message::Receipt(r) => Some(Operation::Receipt(r.clone())),
            super::Message::PartialCompletion(p) => Some(Operation::Partial(p.clone())),
            super::Message::Transaction(t) => Some(Operation::Transaction(t.clone())),
            _ => None,
        }
    }
}

/// The root a header commits its operations by: the hash (under the
/// chain's algorithm) of their canonical encoding, in block order, so it
/// binds every byte of every operation (signatures too) and their order.
/// The root of no operations is the hash of the empty list.
pub fn ops_root(algo: HashAlgorithm, ops: &[Operation]) -> Hash32 {
    algo.hash(HashContext::BlockOps, &crate::wire::encode_bare(&ops))
}

/// Validator -> validators: operations. With `block`, the complete,
/// ordered operations of that block (a proposer's push with its proposal,
/// or the answer to an [`OpsFetch`]); without, operations users submitted
/// that the sender took into its pool (relay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct OpsBatch {
    /// The block (header hash) whose operations these are, if any.
    pub block: Option<Hash32>,
    /// The operations, in block order when `block` is set.
    pub ops: BoundedVec<Operation, MAX_BLOCK_OPS>,
}

/// Validator -> validator: the operations of the block with this header
/// hash (a proposal being checked, or a decided block being caught up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct OpsFetch {
    /// The block's header hash.
    pub block: Hash32,
}
