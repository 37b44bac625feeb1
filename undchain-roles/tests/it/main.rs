//! The client, partner and validator roles, the utility sessions and the
//! whole-network simulator: one test binary.

mod block_ops;
mod campaign;
mod client_story;
mod discovery;
mod lifecycle;
mod node_core;
mod node_partners;
mod partner_desk;
mod partner_restart;
mod partner_story;
mod simulator;
mod support;
mod users;
mod utility_laws;
mod utility_sessions;
mod validator_duties;
mod validator_story;
