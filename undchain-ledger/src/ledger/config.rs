//! The chain parameters the ledger applies blocks under. A genesis carries
//! all of them (DESIGN.md "Money": nothing comes from the caller's
//! config), and their hash is in the state root's summary leaf, so two
//! validators with other parameters never agree on a root.

use serde::{Deserialize, Serialize};
use undchain_types::{
    BlockNumber, BlockTime, ChainId, ChainParams, Hash32, HashAlgorithm, HashContext, PayoutPeriod,
    PublicKey, TokenAmount, wire,
};

use super::GenesisError;

/// Every parameter the ledger needs to apply the next block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerConfig {
    /// The chain this ledger keeps; anything signed for another is refused.
    pub chain_id: ChainId,
    /// The chain owner: the only sender of mints and domain registrations.
    pub chain_owner: PublicKey,
    /// Fee per job and least fee per transaction.
    pub transaction_fee: TokenAmount,
    /// Blocks per payout period.
    pub blocks_per_period: u64,
    /// Hash algorithm of the state tree.
    pub hash_algorithm: HashAlgorithm,
    /// Block 0's start time.
    pub genesis_time: BlockTime,
    /// Block interval B in microseconds.
    pub block_interval_us: u64,
    /// How far a request's `sent_at` may be from its commit block's time
    /// (the client replay window, default 10 min).
    pub request_window_us: u64,
    /// Latest expiry of a domain lock, in blocks after the lock.
    pub max_lock_blocks: u64,
    /// Blocks a lock stays recorded after its expiry (a refund must land
    /// within them).
    pub lock_retention_blocks: u64,
    /// How far ahead of this chain's block time a foreign header may be.
    pub max_clock_drift_us: u64,
}

impl LedgerConfig {
    /// The defaults of DESIGN.md (B = 2 s, 4 h periods, fee 10, 10 min
    /// window) for `chain_id` owned by `chain_owner`; locks expire within
    /// one period and stay recorded for four more; foreign headers may be
    /// 10 s ahead.
    pub fn new(chain_id: ChainId, chain_owner: PublicKey) -> Self {
        Self::from_params(&ChainParams::new(chain_id, chain_owner, BlockTime(0)))
    }

    /// The ledger's parameters from chain parameters `params`.
    pub fn from_params(params: &ChainParams) -> Self {
        let bpp = params.blocks_per_period().max(1);
        LedgerConfig {
            chain_id: params.chain_id,
            chain_owner: params.chain_owner,
            transaction_fee: params.transaction_fee,
            blocks_per_period: bpp,
            hash_algorithm: params.hash_algorithm,
            genesis_time: params.genesis_time,
            block_interval_us: params.block_interval_us,
            request_window_us: params.user_replay_window_us,
            max_lock_blocks: bpp,
            lock_retention_blocks: bpp.saturating_mul(4),
            max_clock_drift_us: 10_000_000,
        }
    }

    /// Refuses parameters that could never apply a block.
    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.blocks_per_period == 0 {
            return Err(GenesisError::BadParameter("blocks_per_period"));
        }
        if self.block_interval_us == 0 {
            return Err(GenesisError::BadParameter("block_interval_us"));
        }
        Ok(())
    }

    /// The parameters' hash under their own algorithm.
    pub fn hash(&self) -> Hash32 {
        self.hash_algorithm.hash(
            HashContext::Genesis,
            &wire::encode_bare(&("ledger config", self)),
        )
    }

    /// The payout period of block `b`.
    pub fn period_of(&self, b: BlockNumber) -> PayoutPeriod {
        PayoutPeriod(b.0 / self.blocks_per_period.max(1))
    }

    /// Whether `b` is the last block of its payout period.
    pub fn ends_period(&self, b: BlockNumber) -> bool {
        (b.0 + 1) % self.blocks_per_period.max(1) == 0
    }

    /// Block `b`'s start time.
    pub fn block_start(&self, b: BlockNumber) -> BlockTime {
        BlockTime(
            self.genesis_time
                .0
                .saturating_add(b.0.saturating_mul(self.block_interval_us)),
        )
    }

    /// The first block whose start is past a request's window (sent at
    /// `sent_at`): from then on it can never be committed, so a settled job
    /// id need not be remembered.
    pub fn forget_block(&self, sent_at: BlockTime) -> BlockNumber {
        let last = sent_at.0.saturating_add(self.request_window_us);
        match last.checked_sub(self.genesis_time.0) {
            None => BlockNumber(0),
            Some(d) => BlockNumber((d / self.block_interval_us.max(1)).saturating_add(1)),
        }
    }

    /// The block at which a lock expiring at `expires_at` is forgotten.
    pub fn lock_prune_block(&self, expires_at: BlockNumber) -> BlockNumber {
        BlockNumber(
            expires_at
                .0
                .saturating_add(self.lock_retention_blocks)
                .saturating_add(1),
        )
    }
}
