//! `undchain-sim`: the project's one simulation kit (DESIGN.md
//! "Simulation: one harness"; docs/ARCHITECTURE.md "undchain-sim").
//!
//! Every simulator of UndChain (the agreement simulator in
//! `undchain-consensus`, the precision simulator in `undchain-timesync`, the
//! whole-network simulator in `undchain-roles`) is built from these parts,
//! never from a copy of them:
//!
//! - [`SplitMix64`]: the deterministic random stream (re-exported from
//!   `undchain-types`, where the pure crates expand caller-given seeds with
//!   it), so a run is a function of its seed.
//! - [`EventQueue`]: virtual time; events pop in time order, and events due
//!   at the same time in the order they were pushed.
//! - [`DriftingClock`]: a node's local clock, offset and drifting against
//!   virtual time.
//! - [`FaultPlan`]: what the network and the nodes suffer in one run (loss,
//!   duplication, delay, reorder, partitions, crashes), drawn from a seed.
//! - [`LinkDelays`]: per directed link a fixed base delay of its own (so a
//!   path may be slower one way than the other) plus per-message jitter.
//! - [`MemoryNetwork`] / [`MemoryTransport`]: an in-memory network behind
//!   the same `undchain_net::Transport` trait as the node's QUIC transport.
//! - [`node_key`]: the fixed test identities every test and simulator uses.
//!
//! ```
//! use undchain_sim::{EventQueue, FaultPlan, SplitMix64, node_key};
//! use undchain_types::LocalTime;
//!
//! let mut rng = SplitMix64::new(7);
//! let plan = FaultPlan::draw(&mut rng, 4, 1, 1_000);
//! let mut queue = EventQueue::new();
//! for d in plan.deliveries(&mut rng, 0, 1_000) {
//!     queue.push(LocalTime::from_micros(d as i64), "deliver");
//! }
//! queue.push(LocalTime::ZERO, "start");
//! assert_eq!(queue.pop(), Some((LocalTime::ZERO, "start")));
//! assert_ne!(node_key(0).public(), node_key(1).public());
//! ```
//!
//! Dependencies: `undchain-types` and `undchain-net` (the transport trait
//! and the admission rules the in-memory network applies); nothing else.
#![forbid(unsafe_code)]

pub mod clock;
pub mod faults;
pub mod keys;
pub mod links;
pub mod memory;
pub mod queue;

pub use clock::DriftingClock;
pub use faults::{Crash, FaultPlan, Partition};
pub use keys::{node_key, node_keys};
pub use links::LinkDelays;
pub use memory::{MemoryNetwork, MemoryTransport};
pub use queue::EventQueue;
pub use undchain_types::SplitMix64;
