//! Chain parameters, with the defaults of DESIGN.md, and their validation.
//!
//! The chain owner sets these at genesis. [`ChainParams::validate`] refuses
//! settings that could never work (a quorum of zero, a cutoff longer than a
//! block, a payout period that is not a whole number of blocks, ...) with an
//! error that says which field and why.

use serde::{Deserialize, Serialize};

use crate::crypto::PublicKey;
use crate::hash::HashAlgorithm;
use crate::ids::{BlockNumber, BlockTime, ChainId, PayoutPeriod, PerceptionScore, TokenAmount};

/// Most active validators one domain may have (DESIGN.md "Vocabulary").
pub const MAX_ACTIVE_SEATS: u8 = 10;
/// Upper bound on the known share of active seats, in percent.
pub const MAX_KNOWN_SHARE_PERCENT: u8 = 44;
/// Smallest frame a chain may configure (a receipt must fit).
pub const MIN_FRAME_BYTES: u32 = 4 * 1024;
/// Largest frame a chain may configure.
pub const MAX_FRAME_BYTES: u32 = 64 * 1024 * 1024;
/// Most offers a chain may allow a client to ask for.
pub const MAX_PARTNER_LIST_CAP: u16 = 256;
/// The default bound on the jobs of one block.
pub const DEFAULT_MAX_BLOCK_JOBS: u32 = 4_096;

/// Every setting a chain owner chooses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ChainParams {
    /// This chain's id.
    pub chain_id: ChainId,
    /// The chain owner's key: appoints known validators, receives censorship
    /// complaints.
    pub chain_owner: PublicKey,
    /// Genesis block time: block 0 starts here.
    pub genesis_time: BlockTime,
    /// Active validator seats n (1..=10; default 7).
    pub active_seats: u8,
    /// Most active seats known validators may hold, in percent, floored
    /// (at most 44).
    pub known_share_percent: u8,
    /// Block interval B in microseconds (default 2 s).
    pub block_interval_us: u64,
    /// Cutoff before a block ends, in percent of B (default 25): a request
    /// arriving within it goes to the next block's job file.
    pub cutoff_percent: u8,
    /// Payout period in microseconds of block time (default 4 h); a whole
    /// number of blocks.
    pub payout_period_us: u64,
    /// Send attempts before a scream cast (default 4).
    pub retry_attempts: u8,
    /// Timeout of each attempt in microseconds (default 6 s).
    pub retry_timeout_us: u64,
    /// How many lowest-latency validators a client sends a request to
    /// (default 3).
    pub ack_fanout: u8,
    /// Partner still-active heartbeat interval in microseconds (default 60 s).
    pub heartbeat_us: u64,
    /// Heartbeats missed before a partner counts as gone (default 3).
    pub heartbeat_misses: u8,
    /// Least time between two at-capacity messages of one partner, in
    /// microseconds (default 30 s).
    pub capacity_cooldown_us: u64,
    /// Perception score below which an identity may not take part (default 200).
    pub perception_floor: PerceptionScore,
    /// Most partner offers streamed to one client (default 16).
    pub partner_list_cap: u16,
    /// Validator envelopes older than this many blocks are refused (default 2).
    pub replay_past_blocks: u8,
    /// Validator envelopes more than this many blocks ahead are refused
    /// (default 1).
    pub replay_ahead_blocks: u8,
    /// Window for client and partner envelopes, either side of now, in
    /// microseconds of wall-clock time (default 10 min).
    pub user_replay_window_us: u64,
    /// Largest frame in bytes (default 1 MiB).
    pub max_frame_bytes: u32,
    /// Fee per job, paid to the signing active validators (default 10).
    pub transaction_fee: TokenAmount,
    /// Consecutive blocks an active validator may miss votes for before it is
    /// replaced by the next passive one (default 30).
    pub missed_vote_threshold: u32,
    /// Largest step a time resync may make, in microseconds (default 1 s).
    pub max_resync_step_us: u64,
    /// Stored chain size in bytes past which a convergence runs at the next
    /// payout-period boundary (default 16 GiB).
    pub convergence_size_threshold: u64,
    /// Hash algorithm in force (a change forces a convergence).
    pub hash_algorithm: HashAlgorithm,
    /// Most jobs one block may carry (default 4,096). A proposal with more
    /// is invalid; a proposer over it takes the oldest jobs and the rest
    /// wait for the next block; intake files into the next open block when
    /// one is full, and refuses when both are (docs/PROTOCOL.md "Block
    /// size"). It bounds the work of agreeing on one block.
    pub max_block_jobs: u32,
}

/// A chain parameter that cannot work, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// Active seats outside 1..=10.
    #[error("active_seats = {got}: must be 1..={MAX_ACTIVE_SEATS}")]
    ActiveSeats {
        /// The value given.
        got: u8,
    },
    /// Known share above 44%.
    #[error("known_share_percent = {got}: must be at most {MAX_KNOWN_SHARE_PERCENT}")]
    KnownShare {
        /// The value given.
        got: u8,
    },
    /// A duration that must be positive is zero.
    #[error("{field} = 0: must be positive")]
    Zero {
        /// The name of the zero field.
        field: &'static str,
    },
    /// Cutoff of 100% or more would leave no time to file a request.
    #[error("cutoff_percent = {got}: must be below 100")]
    Cutoff {
        /// The value given.
        got: u8,
    },
    /// Payout period is not a whole, positive number of blocks.
    #[error(
        "payout_period_us = {period}: must be a positive multiple of block_interval_us = {block}"
    )]
    PayoutPeriod {
        /// The payout period.
        period: u64,
        /// The block interval.
        block: u64,
    },
    /// The retry timeout must outlast at least one block.
    #[error("retry_timeout_us = {timeout} is shorter than block_interval_us = {block}")]
    RetryTimeout {
        /// The retry timeout.
        timeout: u64,
        /// The block interval.
        block: u64,
    },
    /// Ack fan-out must be 1..=active seats.
    #[error("ack_fanout = {got}: must be 1..={seats} (active_seats)")]
    AckFanout {
        /// The value given.
        got: u8,
        /// The number of active seats (`active_seats`).
        seats: u8,
    },
    /// Partner list cap outside 1..=256.
    #[error("partner_list_cap = {got}: must be 1..={MAX_PARTNER_LIST_CAP}")]
    PartnerListCap {
        /// The value given.
        got: u16,
    },
    /// Frame size outside the supported range.
    #[error("max_frame_bytes = {got}: must be {MIN_FRAME_BYTES}..={MAX_FRAME_BYTES}")]
    MaxFrame {
        /// The value given.
        got: u32,
    },
    /// Resync step must be positive and smaller than the payout period.
    #[error("max_resync_step_us = {got}: must be positive and below the payout period {period}")]
    ResyncStep {
        /// The value given.
        got: u64,
        /// The payout period.
        period: u64,
    },
    /// A missed-vote threshold of zero.
    #[error("missed_vote_threshold = 0: a validator would be replaced for one missed vote")]
    MissedVotes,
}

impl ChainParams {
    /// Parameters with every DESIGN.md default, for `chain_id` owned by
    /// `chain_owner`, starting at `genesis_time`.
    pub fn new(chain_id: ChainId, chain_owner: PublicKey, genesis_time: BlockTime) -> Self {
        ChainParams {
            chain_id,
            chain_owner,
            genesis_time,
            active_seats: 7,
            known_share_percent: 44,
            block_interval_us: 2_000_000,
            cutoff_percent: 25,
            payout_period_us: 4 * 3600 * 1_000_000,
            retry_attempts: 4,
            retry_timeout_us: 6_000_000,
            ack_fanout: 3,
            heartbeat_us: 60_000_000,
            heartbeat_misses: 3,
            capacity_cooldown_us: 30_000_000,
            perception_floor: PerceptionScore::new(200).unwrap_or(PerceptionScore::MIN),
            partner_list_cap: 16,
            replay_past_blocks: 2,
            replay_ahead_blocks: 1,
            user_replay_window_us: 600_000_000,
            max_frame_bytes: 1024 * 1024,
            transaction_fee: TokenAmount(10),
            missed_vote_threshold: 30,
            max_resync_step_us: 1_000_000,
            convergence_size_threshold: 16 * 1024 * 1024 * 1024,
            hash_algorithm: HashAlgorithm::Blake3,
            max_block_jobs: DEFAULT_MAX_BLOCK_JOBS,
        }
    }

    /// Refuses impossible settings; the error names the field.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.active_seats == 0 || self.active_seats > MAX_ACTIVE_SEATS {
            return Err(ParamsError::ActiveSeats {
                got: self.active_seats,
            });
        }
        if self.known_share_percent > MAX_KNOWN_SHARE_PERCENT {
            return Err(ParamsError::KnownShare {
                got: self.known_share_percent,
            });
        }
        for (field, v) in [
            ("block_interval_us", self.block_interval_us),
            ("retry_timeout_us", self.retry_timeout_us),
            ("heartbeat_us", self.heartbeat_us),
            ("user_replay_window_us", self.user_replay_window_us),
            ("retry_attempts", u64::from(self.retry_attempts)),
            ("heartbeat_misses", u64::from(self.heartbeat_misses)),
            ("replay_past_blocks", u64::from(self.replay_past_blocks)),
            ("replay_ahead_blocks", u64::from(self.replay_ahead_blocks)),
            ("max_block_jobs", u64::from(self.max_block_jobs)),
            (
                "convergence_size_threshold",
                self.convergence_size_threshold,
            ),
        ] {
            if v == 0 {
                return Err(ParamsError::Zero { field });
            }
        }
        if self.cutoff_percent >= 100 {
            return Err(ParamsError::Cutoff {
                got: self.cutoff_percent,
            });
        }
        if self.payout_period_us == 0 || self.payout_period_us % self.block_interval_us != 0 {
            return Err(ParamsError::PayoutPeriod {
                period: self.payout_period_us,
                block: self.block_interval_us,
            });
        }
        if self.retry_timeout_us < self.block_interval_us {
            return Err(ParamsError::RetryTimeout {
                timeout: self.retry_timeout_us,
                block: self.block_interval_us,
            });
        }
        if self.ack_fanout == 0 || self.ack_fanout > self.active_seats {
            return Err(ParamsError::AckFanout {
                got: self.ack_fanout,
                seats: self.active_seats,
            });
        }
        if self.partner_list_cap == 0 || self.partner_list_cap > MAX_PARTNER_LIST_CAP {
            return Err(ParamsError::PartnerListCap {
                got: self.partner_list_cap,
            });
        }
        if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&self.max_frame_bytes) {
            return Err(ParamsError::MaxFrame {
                got: self.max_frame_bytes,
            });
        }
        if self.max_resync_step_us == 0 || self.max_resync_step_us >= self.payout_period_us {
            return Err(ParamsError::ResyncStep {
                got: self.max_resync_step_us,
                period: self.payout_period_us,
            });
        }
        if self.missed_vote_threshold == 0 {
            return Err(ParamsError::MissedVotes);
        }
        Ok(())
    }

    /// f = floor((n-1)/3) for the configured active seats.
    pub fn max_faulty(&self) -> usize {
        crate::ids::max_faulty(usize::from(self.active_seats))
    }

    /// q = floor(2n/3)+1 for the configured active seats.
    pub fn quorum(&self) -> usize {
        crate::ids::quorum(usize::from(self.active_seats))
    }

    /// Most known validators among the active seats: floor(44% of n).
    pub fn max_known_active(&self) -> usize {
        usize::from(self.active_seats) * usize::from(self.known_share_percent) / 100
    }

    /// The cutoff, in microseconds before a block's end.
    pub fn cutoff_us(&self) -> u64 {
        self.block_interval_us * u64::from(self.cutoff_percent) / 100
    }

    /// Blocks in one payout period.
    pub fn blocks_per_period(&self) -> u64 {
        self.payout_period_us / self.block_interval_us.max(1)
    }

    /// The block whose interval contains `t` (times before genesis map to 0).
    pub fn block_at(&self, t: BlockTime) -> BlockNumber {
        BlockNumber(t.0.saturating_sub(self.genesis_time.0) / self.block_interval_us.max(1))
    }

    /// When block `b` starts.
    pub fn block_start(&self, b: BlockNumber) -> BlockTime {
        BlockTime(
            self.genesis_time
                .0
                .saturating_add(b.0.saturating_mul(self.block_interval_us)),
        )
    }

    /// The payout period block `b` belongs to.
    pub fn period_of(&self, b: BlockNumber) -> PayoutPeriod {
        PayoutPeriod(b.0 / self.blocks_per_period().max(1))
    }

    /// The first block of payout period `p`.
    pub fn period_start(&self, p: PayoutPeriod) -> BlockNumber {
        BlockNumber(p.0.saturating_mul(self.blocks_per_period()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SigningKey;

    fn params() -> ChainParams {
        ChainParams::new(
            ChainId(1),
            SigningKey::from_seed([9; 32]).public(),
            BlockTime(1_000_000),
        )
    }

    #[test]
    fn defaults_are_valid_and_match_design() {
        let p = params();
        p.validate().unwrap();
        assert_eq!(p.max_faulty(), 2);
        assert_eq!(p.quorum(), 5);
        assert_eq!(p.max_known_active(), 3); // floor(7 * 0.44)
        assert_eq!(p.cutoff_us(), 500_000);
        assert_eq!(p.blocks_per_period(), 7200);
        assert_eq!(p.max_block_jobs, DEFAULT_MAX_BLOCK_JOBS);
    }

    #[test]
    fn a_block_bound_of_zero_jobs_is_refused() {
        let mut p = params();
        p.max_block_jobs = 0;
        assert_eq!(
            p.validate(),
            Err(ParamsError::Zero {
                field: "max_block_jobs"
            })
        );
    }

    #[test]
    fn impossible_settings_are_refused_by_field() {
        let mut p = params();
        p.active_seats = 11;
        assert_eq!(p.validate(), Err(ParamsError::ActiveSeats { got: 11 }));
        let mut p = params();
        p.known_share_percent = 45;
        assert_eq!(p.validate(), Err(ParamsError::KnownShare { got: 45 }));
        let mut p = params();
        p.block_interval_us = 0;
        assert_eq!(
            p.validate(),
            Err(ParamsError::Zero {
                field: "block_interval_us"
            })
        );
        let mut p = params();
        p.cutoff_percent = 100;
        assert_eq!(p.validate(), Err(ParamsError::Cutoff { got: 100 }));
        let mut p = params();
        p.payout_period_us += 1;
        assert!(matches!(
            p.validate(),
            Err(ParamsError::PayoutPeriod { .. })
        ));
        let mut p = params();
        p.ack_fanout = 8;
        assert_eq!(
            p.validate(),
            Err(ParamsError::AckFanout { got: 8, seats: 7 })
        );
        let mut p = params();
        p.max_frame_bytes = 100;
        assert_eq!(p.validate(), Err(ParamsError::MaxFrame { got: 100 }));
        let mut p = params();
        p.max_resync_step_us = p.payout_period_us;
        assert!(matches!(p.validate(), Err(ParamsError::ResyncStep { .. })));
        let mut p = params();
        p.retry_timeout_us = 1;
        assert!(matches!(
            p.validate(),
            Err(ParamsError::RetryTimeout { .. })
        ));
        let mut p = params();
        p.missed_vote_threshold = 0;
        assert_eq!(p.validate(), Err(ParamsError::MissedVotes));
        let err = ParamsError::ActiveSeats { got: 0 }.to_string();
        assert!(err.contains("active_seats"), "{err}");
    }

    #[test]
    fn block_arithmetic() {
        let p = params();
        assert_eq!(p.block_at(BlockTime(1_000_000)), BlockNumber(0));
        assert_eq!(p.block_at(BlockTime(2_999_999)), BlockNumber(0));
        assert_eq!(p.block_at(BlockTime(3_000_000)), BlockNumber(1));
        assert_eq!(p.block_start(BlockNumber(2)), BlockTime(5_000_000));
        assert_eq!(p.period_of(BlockNumber(7199)), PayoutPeriod(0));
        assert_eq!(p.period_of(BlockNumber(7200)), PayoutPeriod(1));
        assert_eq!(p.period_start(PayoutPeriod(2)), BlockNumber(14_400));
    }
}
