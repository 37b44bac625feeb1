//! What a node starts from: the chain's genesis (parameters, validators,
//! balances) and the node's own settings (key, timing, seed).

use undchain_consensus::{
    Candidate, Roster, RosterConfig, RosterError, TimeoutConfig, ValidatorSet, ValidatorSetError,
};
use undchain_ledger::ledger::GenesisError;
use undchain_ledger::links::{ChainLinkError, ChainLinks};
use undchain_ledger::{Ledger, LedgerConfig};
use undchain_timesync::{ConfigError as SyncConfigError, SyncConfig};
use undchain_types::{
    ChainId, ChainParams, Hash32, HashContext, ParamsError, PerceptionScore, PublicKey, SigningKey,
    TokenAmount, Trust,
};

/// A co-chain this chain links to (design notes, validator story item 8):
/// its id and the validators whose end-of-block `ChainLink`s are taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoChain {
    /// The co-chain's id.
    pub chain: ChainId,
    /// Its validators (a link from anyone else is refused).
    pub validators: Vec<PublicKey>,
}

/// One validator of the genesis set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisValidator {
    /// Its identity.
    pub key: PublicKey,
    /// Appointed by the chain owner (a known validator).
    pub known: bool,
}

/// The chain's genesis: every parameter, the first validator set (seat
/// order) and the first balances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    /// The chain parameters.
    pub params: ChainParams,
    /// The validators, in seat order; the first `params.active_seats` are
    /// active, the rest passive.
    pub validators: Vec<GenesisValidator>,
    /// Opening balances.
    pub balances: Vec<(PublicKey, TokenAmount)>,
    /// Co-chains linked to this one (at most two), whose latest block
    /// hashes the headers anchor.
    pub co_chains: Vec<CoChain>,
}

/// A genesis or node setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A chain parameter is out of range.
    #[error("genesis params: {0}")]
    Params(#[from] ParamsError),
    /// The validator set cannot be formed.
    #[error("genesis validators: {0}")]
    Roster(#[from] ValidatorSetError),
    /// The co-chains are not a valid link set (more than two, the chain
    /// itself, one listed twice).
    #[error("genesis co-chains: {0}")]
    ChainLinks(#[from] ChainLinkError),
    /// The roster refused the genesis validators (a key listed twice, or
    /// nobody eligible for a seat).
    #[error("genesis validators: {0}")]
    Rotation(#[from] RosterError),
    /// The ledger refused the genesis balances.
    #[error("genesis balances: {0}")]
    Ledger(#[from] GenesisError),
    /// The time machine refused its settings.
    #[error("timing.sync: {0}")]
    Time(#[from] SyncConfigError),
    /// A timing field that must be positive is zero.
    #[error("timing.{field} = 0: must be positive")]
    ZeroTiming {
        /// The field.
        field: &'static str,
    },
    /// This node's key is not a validator of the genesis (and the node
    /// is not configured to join).
    #[error("the node key {key:?} is not a genesis validator and has no joining settings")]
    NotAValidator {
        /// The node's key.
        key: PublicKey,
    },
    /// Stored state that does not fit this genesis.
    #[error("stored state: {0}")]
    Restore(String),
}

impl Genesis {
    /// Checks parameters and the validator list.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.params.validate()?;
        self.roster()?;
        self.chain_links()?;
        Ok(())
    }

    /// The co-chain link book of this chain (empty when nothing is linked).
    pub fn chain_links(&self) -> Result<ChainLinks, ConfigError> {
        let linked: Vec<ChainId> = self.co_chains.iter().map(|c| c.chain).collect();
        Ok(ChainLinks::new(self.params.chain_id, &linked)?)
    }

    /// The roster at genesis: every listed validator (active or passive),
    /// its score, and the active set of block 0 chosen as at a payout-period
    /// boundary (DESIGN.md rotation rules): at most the known share of seats
    /// go to known validators, unknown seats to unknown ones, and known
    /// validators fill the unknown seats nobody unknown can take.
    pub fn roster(&self) -> Result<Roster, ConfigError> {
        let candidates: Vec<Candidate> = self
            .validators
            .iter()
            .map(|v| Candidate {
                id: v.key,
                trust: if v.known {
                    Trust::Known
                } else {
                    Trust::Unknown
                },
                score: PerceptionScore::START,
            })
            .collect();
        Ok(Roster::genesis(
            RosterConfig::from_params(&self.params),
            &candidates,
            self.hash(),
        )?)
    }

    /// The active validator set of block 0, in seat order.
    pub fn validator_set(&self) -> Result<ValidatorSet, ConfigError> {
        Ok(self.roster()?.validator_set().clone())
    }

    /// The genesis hash: the parent of block 0.
    pub fn hash(&self) -> Hash32 {
        let mut bytes = undchain_types::wire::encode_bare(&self.params);
        for v in &self.validators {
            bytes.extend_from_slice(v.key.as_bytes());
            bytes.push(u8::from(v.known));
        }
        for (k, amount) in &self.balances {
            bytes.extend_from_slice(k.as_bytes());
            bytes.extend_from_slice(&amount.0.to_le_bytes());
        }
        for c in &self.co_chains {
            bytes.extend_from_slice(&c.chain.0.to_le_bytes());
            for k in &c.validators {
                bytes.extend_from_slice(k.as_bytes());
            }
        }
        self.params
            .hash_algorithm
            .hash(HashContext::Genesis, &bytes)
    }

    /// The ledger at genesis, the genesis validators in its registry.
    pub fn ledger(&self) -> Result<Ledger, ConfigError> {
        Ok(Ledger::genesis_with_validators(
            LedgerConfig::from_params(&self.params),
            undchain_types::BlockNumber(0),
            self.balances.iter().copied(),
            self.validators.iter().map(|v| {
                let trust = if v.known {
                    Trust::Known
                } else {
                    Trust::Unknown
                };
                (v.key, trust)
            }),
        )?)
    }
}

/// How a validator paces its own work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorTiming {
    /// Local time between two gossip rounds (request batches and job-file
    /// deltas), microseconds.
    pub gossip_every_us: u64,
    /// Block time a validator waits after a block ends before it starts
    /// agreeing on it (late gossip settles), microseconds.
    pub start_grace_us: u64,
    /// How long a fetch (reconciliation, requests, a decided block's body)
    /// waits for an answer before it asks the next validator.
    pub fetch_retry_us: u64,
    /// Agreement timeouts.
    pub timeouts: TimeoutConfig,
    /// The time machines' settings.
    pub sync: SyncConfig,
    /// Slew rate of the block clock, parts per million.
    pub slew_ppm: u32,
    /// How far a resync proposal's step may be from this validator's own
    /// reference (wall clock minus agreed time) for it to approve,
    /// microseconds.
    pub resync_tolerance_us: u64,
    /// How often a passive validator runs a capacity test, microseconds.
    pub capacity_every_us: u64,
    /// Simulated requests in a capacity test (a quarter as many payouts).
    pub capacity_requests: u32,
    /// How long a candidate has to answer a capacity test, microseconds.
    pub capacity_deadline_us: u64,
    /// Requests held open at which this validator reports full load
    /// (1000 per mille) in its network status.
    pub load_capacity_jobs: u64,
    /// Filed, uncommitted requests at which this validator refuses new
    /// client requests (`IntakeError::AtCapacity`) until blocks take some.
    pub intake_limit_jobs: u64,
    /// Load (per mille) at or above which a validator counts as loaded for
    /// the domain-overloaded signal.
    pub overload_permille: u16,
    /// About how often the partner desk challenges a live storage job's
    /// partner again for a random chunk, microseconds (each time jittered
    /// to 1/2..3/2 of it; default 10 blocks).
    pub rechallenge_us: u64,
}

impl ValidatorTiming {
    /// Settings for a chain whose one-way message delay is about
    /// `delay_us`.
    pub fn for_delay(params: &ChainParams, delay_us: u64) -> Self {
        ValidatorTiming {
            gossip_every_us: (params.block_interval_us / 8).max(1),
            start_grace_us: (params.block_interval_us / 10).max(4 * delay_us),
            fetch_retry_us: (20 * delay_us).max(50_000),
            timeouts: TimeoutConfig::for_delay(delay_us),
            sync: SyncConfig::default(),
            slew_ppm: 500,
            resync_tolerance_us: (10 * delay_us).max(50_000),
            capacity_every_us: 5 * params.block_interval_us,
            capacity_requests: 256,
            capacity_deadline_us: (50 * delay_us).max(params.block_interval_us),
            load_capacity_jobs: 10_000,
            intake_limit_jobs: 10_000,
            overload_permille: 800,
            rechallenge_us: crate::validator::RECHALLENGE_BLOCKS * params.block_interval_us,
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("gossip_every_us", self.gossip_every_us),
            ("fetch_retry_us", self.fetch_retry_us),
            ("capacity_every_us", self.capacity_every_us),
            ("capacity_deadline_us", self.capacity_deadline_us),
            ("rechallenge_us", self.rechallenge_us),
            ("intake_limit_jobs", self.intake_limit_jobs),
        ] {
            if v == 0 {
                return Err(ConfigError::ZeroTiming { field });
            }
        }
        self.sync.validate()?;
        Ok(())
    }
}

/// How a validator that is not in the genesis joins the running network
/// (design notes, validator story item 1; docs/PROTOCOL.md "Discovery and
/// registration").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joining {
    /// The validators of the bootstrap list it says hello to (in list
    /// order); only their discovery replies are taken.
    pub bootstrap: Vec<PublicKey>,
    /// Its class: an unknown validator registers itself once it caught up;
    /// a known one waits for the chain owner's registration.
    pub trust: Trust,
    /// Its alias (in its registration).
    pub alias: String,
    /// How others reach it (in its hello and its registration).
    pub media: Vec<undchain_types::msg::Endpoint>,
}

/// Everything one node starts from.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's identity key.
    pub key: SigningKey,
    /// The chain it belongs to.
    pub genesis: Genesis,
    /// How it paces its work.
    pub timing: ValidatorTiming,
    /// Seed of the node's randomness (nonces, session ids).
    pub seed: u64,
    /// Set for a validator that is not in the genesis: how it discovers
    /// the network and registers (`None`: a genesis validator).
    pub joining: Option<Joining>,
}
