//! Block headers: the value validators agree on (DESIGN.md "Agreement").

use serde::{Deserialize, Serialize};

use crate::bounded::BoundedVec;
use crate::hash::{Hash32, HashAlgorithm, HashContext};
use crate::ids::{BlockNumber, BlockTime, ChainId};
use crate::msg::DuplicateVote;

/// Most co-chains one chain links to (DESIGN.md "Chain link").
pub const MAX_CHAIN_LINKS: usize = 2;

/// Most pieces of equivocation evidence one header commits
/// (docs/PROTOCOL.md "Evidence in blocks"): enough for every Byzantine
/// validator of a ten-seat set (f = 3) plus one, small enough that a header
/// stays under 2 KiB.
pub const MAX_BLOCK_EVIDENCE: usize = 4;

/// The latest known block of a linked co-chain, anchored in a header.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct LinkRef {
    /// The linked chain.
    pub chain: ChainId,
    /// Its block number.
    pub block: BlockNumber,
    /// Its block hash.
    pub hash: Hash32,
}

/// A block header: block number, parent hash, job file root and count,
/// operations root and count, ledger root, validator set hash, co-chain link hashes, which
/// validators signed the parent's commit certificate, and the equivocation
/// evidence it commits.
///
/// `parent_signers` is what makes "who signed block b" committed data: each
/// validator assembles its own certificate (any q of the precommits), so only
/// the proposer's choice, agreed with the next block, is the same everywhere.
/// Missed-vote replacement, perception scores and fee shares read it
/// (docs/PROTOCOL.md "Agreement, validator sets and perception scores").
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct BlockHeader {
    /// The chain this header belongs to (a header is never valid on another chain).
    pub chain_id: ChainId,
    /// Convergence counter: 0 for the first genesis, +1 per convergence.
    pub epoch: u32,
    /// Block number within the epoch.
    pub number: BlockNumber,
    /// Block start time.
    pub time: BlockTime,
    /// Hash of the previous block (or of the genesis).
    pub parent: Hash32,
    /// rs_merkle root over the block's sorted job entries.
    pub job_root: Hash32,
    /// Number of jobs in the block's job file.
    pub job_count: u64,
    /// The block's operations (receipts, partial completions,
    /// transactions), committed by [`crate::msg::ops_root`].
    pub ops_root: Hash32,
    /// Number of operations the block commits (at most
    /// [`crate::msg::MAX_BLOCK_OPS`]).
    pub ops_count: u32,
    /// Ledger state root after applying the block.
    pub ledger_root: Hash32,
    /// Hash of the validator set that signs this block.
    pub validator_set_hash: Hash32,
    /// Latest known blocks of up to two linked co-chains.
    pub links: BoundedVec<LinkRef, MAX_CHAIN_LINKS>,
    /// Bit i set: seat i of the parent block's validator set signed the
    /// parent's commit certificate (carried with the proposal). Zero for the
    /// first block of an epoch. Seats are at most 10, so 16 bits suffice.
    pub parent_signers: u16,
    /// Equivocation evidence committed by this block (double votes of
    /// validators of this or a recent height); each lowers the offender's
    /// perception score when the block is applied.
    pub evidence: BoundedVec<DuplicateVote, MAX_BLOCK_EVIDENCE>,
}

impl BlockHeader {
    /// The block hash under `algo` (the chain's hash algorithm).
    pub fn hash_with(&self, algo: HashAlgorithm) -> Hash32 {
        algo.hash(HashContext::BlockHeader, &crate::wire::encode_bare(self))
    }

    /// The block hash under blake3.
    pub fn hash(&self) -> Hash32 {
        self.hash_with(HashAlgorithm::Blake3)
    }
}
