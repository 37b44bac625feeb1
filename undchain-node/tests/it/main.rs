//! undchain-node's integration tests, one binary (shared helpers in
//! [`support`]).

mod flood;
mod quic_transport;
mod support;
