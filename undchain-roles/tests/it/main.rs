//! The validator role and the whole-network simulator: one test binary.

mod node_core;
mod simulator;
mod validator_story;
