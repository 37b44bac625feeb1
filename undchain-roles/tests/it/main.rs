//! The validator role and the whole-network simulator: one test binary.

mod node_core;
mod simulator;
mod support;
mod validator_duties;
mod validator_story;
