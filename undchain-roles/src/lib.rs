//! `undchain-roles`: the validator, client and partner roles as sans-IO
//! state machines composing the library crates, the [`NodeCore`] every host drives, and
//! the whole-network deterministic simulator ([`sim`]) (DESIGN.md "The
//! node core", "Simulation: one harness"; design notes, validator story
//! items 1-10).
//!
//! * [`config`]: the genesis and a node's settings.
//! * [`node`]: [`NodeCore`] (inputs with `now`, `Ready`/`advance` batches,
//!   `restore` from stored state only).
//! * [`store`]: what a batch makes durable ([`StoreOp`]) and what a
//!   restart reads ([`Stored`]); [`Storage`] is implemented by the node's
//!   database and the simulator's disk.
//! * [`validator`]: time, intake, job files, agreement, chain.
//! * [`client`] and [`partner`]: the client and partner stories, usable
//!   alone by embedders (a wallet, a provider's daemon).
//! * [`utility`]: the client-partner sessions: storage with content roots
//!   and chunk proofs, the [`utility::Utility`] trait with a compute job
//!   and a relay, metering by signed checkpoints.
//! * [`sim`]: many nodes on a virtual clock, a seeded faulty network and
//!   simulated disks, built on `undchain-sim`.
//!
//! Pure: no sockets, threads, files or ambient clocks; time and randomness
//! are inputs.
#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod fuzz;
pub mod node;
pub mod output;
pub mod partner;
mod signer;
pub mod sim;
pub mod store;
pub mod utility;
pub mod validator;

pub use config::{
    CoChain, ConfigError, Genesis, GenesisValidator, Joining, NodeConfig, ValidatorTiming,
};
pub use node::{CachedCheck, Command, EnvelopeCheck, NodeCore, NodeError, StrictCheck};
pub use output::{NodeEvent, NodeReady, Output};
pub use store::{BlockRecord, MemoryStore, Storage, StoreError, StoreOp, Stored};
pub use validator::Validator;
