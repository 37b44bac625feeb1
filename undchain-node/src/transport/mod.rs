//! The node's transport: QUIC (quinn 0.11) with TLS 1.3 raw public keys
//! (rustls 0.23, RFC 7250), implementing [`undchain_net::Transport`]
//! (DESIGN.md "Validator list and connections"; docs/PROTOCOL.md
//! "Transport, framing, retries and scream cast").
//!
//! [`tls`] turns the node's ed25519 identity into the TLS key and checks the
//! peer's; [`quic`] runs the connections and carries envelope frames.

pub mod quic;
pub mod tls;

pub use quic::{QuicConfig, QuicTransport, close_code};
