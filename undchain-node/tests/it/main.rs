//! undchain-node's integration tests, one binary (shared helpers in
//! [`support`]).

mod api;
mod bad_input;
mod client_cmd;
mod containers;
mod e2e;
mod flood;
mod flood_node;
mod fuzz_seeds;
mod kill;
mod net;
mod partner_store;
mod quic_transport;
mod support;
