//! undchain-node's integration tests, one binary (shared helpers in
//! [`support`]).

mod quic_transport;
mod support;
