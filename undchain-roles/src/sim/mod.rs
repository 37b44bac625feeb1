//! The whole-network simulator (DESIGN.md "Simulation: one harness"):
//! real [`crate::NodeCore`]s on a virtual clock, a seeded network with the
//! faults of [`undchain_sim::FaultPlan`] (loss, duplication, delay and
//! reorder, a partition that heals, crashes with lost unsynced writes),
//! drifting local clocks, simulated disks and a scripted client load of
//! signed requests. Everything is a function of the seed: a failing run
//! prints `reproduce with --seed S`.
//!
//! * `world`: the event loop, the network and the nodes' hosts;
//! * `disk`: a node's simulated storage;
//! * `load`: the clients and their requests ([`client_key`] and
//!   [`request_body`] are public: the node's devnet clients sign the same
//!   requests);
//! * `check`: the invariants checked on every run;
//! * [`campaign`]: the seeded fault campaign (its harsher fault profile,
//!   the per-seed draw of sizes, the summary over many seeds).

pub mod campaign;
mod check;
mod disk;
mod load;
mod world;

pub use campaign::FaultProfile;
pub use check::{Lifecycle, Report, seeds_line};
pub use disk::SimDisk;
pub use load::{client_key, partner_key, request_body};
pub use world::{Conduct, Filter, PartnerConduct, World};

/// One simulated run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Active validators (1..=10).
    pub validators: usize,
    /// Blocks to commit.
    pub blocks: u64,
    /// The run's seed.
    pub seed: u64,
    /// Client requests per block of load.
    pub requests_per_block: u32,
    /// Draw faults from the seed.
    pub faults: bool,
    /// Clients sending the load.
    pub clients: usize,
    /// One-way network delay, microseconds.
    pub delay_us: u64,
    /// Block interval, microseconds.
    pub block_interval_us: u64,
    /// Blocks per payout period.
    pub blocks_per_period: u64,
    /// Print every node event and refusal to stderr (debugging a seed).
    pub trace: bool,
    /// Passive validators beyond the active seats (genesis validators
    /// `validators..validators + passive`, unknown): they follow the chain
    /// and rotate in at period ends.
    pub passive: usize,
    /// Requests held at which a validator reports full load (`None`: the
    /// default of [`crate::ValidatorTiming`]).
    pub load_capacity_jobs: Option<u64>,
    /// The chain's id (two worlds of different chains can be linked).
    pub chain_id: undchain_types::ChainId,
    /// Validator keys are `node_key(key_offset + i)` (linked worlds need
    /// distinct keys).
    pub key_offset: usize,
    /// Co-chains linked to this one.
    pub co_chains: Vec<crate::CoChain>,
    /// Known (appointed) validators among them, the first ones (`None`:
    /// the known share of the active seats).
    pub known: Option<usize>,
    /// Byzantine validators (the last active ones): `None` draws 0..=f per seed
    /// when `faults` is on, none otherwise. More than f is the negative
    /// control: safety may break.
    pub byzantine: Option<usize>,
    /// Their behaviour (`None`: drawn per seed).
    pub behaviour: Option<undchain_consensus::adversary::Behaviour>,
    /// The chain's convergence size threshold in bytes (`None`: the
    /// chain default, far beyond any simulated run).
    pub convergence_bytes: Option<u64>,
    /// The chain's `max_block_jobs` (`None`: the chain default).
    pub max_block_jobs: Option<u32>,
    /// The clients submit a partner-countersigned receipt for every
    /// committed job (client story step 5), which the blocks commit.
    pub receipts: bool,
    /// Real client machines ([`crate::client::Client`], funded at
    /// genesis), each storing blobs with the partners it is offered.
    pub users: usize,
    /// Real storage partner machines ([`crate::partner::Partner`]).
    pub partners: usize,
    /// How the first real client behaves (`None`: honest, or drawn per
    /// seed when `faults` is on).
    pub first_client: Option<Conduct>,
    /// How the first real partner behaves (`None`: honest, or drawn per
    /// seed when `faults` is on: [`PartnerConduct::ALL`] by `seed / 3`).
    pub first_partner: Option<PartnerConduct>,
    /// Validators that are not in the genesis (funded at genesis, with the
    /// genesis validators as their bootstrap list), one per entry with its
    /// class: nodes after the genesis ones, down until
    /// [`World::start_late`] starts them (validator story item 1).
    pub newcomers: Vec<undchain_types::Trust>,
    /// Which faults `faults` draws.
    pub profile: FaultProfile,
    /// The negative control of the checker: one honest validator's commit
    /// of one height is replaced by another block ([`InjectedFork`]).
    pub inject_fork: Option<InjectedFork>,
}

/// A fork injected into one honest validator (the negative control: the
/// checker must report it). When `validator` commits `height`, what it
/// announced and what it stored become another block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedFork {
    /// The honest validator that commits the other block.
    pub validator: usize,
    /// The height.
    pub height: u64,
    /// What differs.
    pub kind: ForkKind,
}

/// What an [`InjectedFork`] changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkKind {
    /// Another header (another job root): the block hash differs.
    Header,
    /// The same header over other contents: the block's last request (or,
    /// without requests, its last operation) is dropped from the stored
    /// block, so only the committed bytes differ. A block with neither is
    /// forged in its header instead.
    Body,
}

impl SimConfig {
    /// A run with the defaults: 2 s blocks, 10 ms links, 16 clients,
    /// 30-block payout periods.
    pub fn new(validators: usize, blocks: u64, seed: u64) -> Self {
        SimConfig {
            validators,
            blocks,
            seed,
            requests_per_block: 20,
            faults: false,
            clients: 16,
            delay_us: 10_000,
            block_interval_us: 2_000_000,
            blocks_per_period: 30,
            trace: false,
            passive: 0,
            known: None,
            chain_id: undchain_types::ChainId(7),
            key_offset: 0,
            co_chains: Vec::new(),
            load_capacity_jobs: None,
            byzantine: None,
            behaviour: None,
            convergence_bytes: None,
            max_block_jobs: None,
            receipts: true,
            users: 0,
            partners: 0,
            first_client: None,
            first_partner: None,
            profile: FaultProfile::Standard,
            inject_fork: None,
            newcomers: Vec::new(),
        }
    }
}

/// Why a simulation could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// Active validators outside 1..=10 (or more than 10 passive ones).
    #[error("--validators {0}: must be 1..=10 (and --passive at most 10)")]
    Validators(usize),
    /// More than 64 real clients or partners.
    #[error("--clients {clients} / --partners {partners}: at most 64 each")]
    Users {
        /// Clients asked for.
        clients: usize,
        /// Partners asked for.
        partners: usize,
    },
    /// No blocks asked for.
    #[error("--blocks 0: must be positive")]
    Blocks,
    /// The generated configuration was refused.
    #[error("configuration: {0}")]
    Config(#[from] crate::ConfigError),
}

/// Runs one simulation.
pub fn run(cfg: &SimConfig) -> Result<Report, SimError> {
    if cfg.validators == 0 || cfg.validators > 10 || cfg.passive > 10 {
        return Err(SimError::Validators(cfg.validators));
    }
    if cfg.users > 64 || cfg.partners > 64 {
        return Err(SimError::Users {
            clients: cfg.users,
            partners: cfg.partners,
        });
    }
    if cfg.blocks == 0 {
        return Err(SimError::Blocks);
    }
    let mut w = World::new(cfg)?;
    w.run();
    Ok(check::report(cfg, &w))
}
