//! `undchain-node`: the reference node's shell around the pure crates: the
//! QUIC transport ([`transport`]), the monotonic clock the shell reads
//! `now` from ([`clock`]), the runtime ([`runtime`]), storage ([`store`]),
//! homes, testnet (also of containers: [`compose`]) and devnet, and the
//! HTTP API with its metrics and live explorer ([`api`]).
//!
//! ```
//! use undchain_net::{Claim, TransportEvent};
//! use undchain_node::transport::{QuicConfig, QuicTransport};
//! use undchain_types::{BlockTime, ChainId, Envelope, Role, SigningKey, msg::Hello};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (v, c) = (SigningKey::from_seed([1; 32]), SigningKey::from_seed([2; 32]));
//! let any = "127.0.0.1:0".parse().unwrap();
//! let mut validator = QuicTransport::bind(any, v.clone(), QuicConfig::default()).unwrap();
//! let client = QuicTransport::bind(any, c.clone(), QuicConfig::default()).unwrap();
//! // The client expects the validator's key at its address.
//! client
//!     .connect(v.public(), validator.local_addr().unwrap(), Claim::ClientOrPartner)
//!     .await
//!     .unwrap();
//! let hello = Envelope::new(c.public(), ChainId(1), 1, BlockTime(0), Hello { role: Role::Client, nonce: 1 })
//!     .sign(&c);
//! client.send(&v.public(), &hello).unwrap();
//! loop {
//!     if let Some(TransportEvent::Received { peer, envelope, .. }) = validator.next_event().await {
//!         assert_eq!((peer, *envelope), (c.public(), hello));
//!         break;
//!     }
//! }
//! # });
//! ```
//!
//! Dependencies and why: `tokio` (runtime), `quinn` 0.11 and `rustls` 0.23
//! with the `ring` provider (QUIC with TLS 1.3 raw public keys, as DESIGN.md
//! names them), `ed25519-dalek` (signs the TLS handshake with the identity
//! key itself), `thiserror`, `tracing` (logs), `redb` (storage), `clap`
//! (CLI), `serde_json` and `toml` (files, JSON). The API: `axum` 0.8
//! (tokio's own HTTP layer over hyper: the API runs on the node's runtime,
//! with no second executor, and gives JSON, typed routes and server-sent
//! events; the API is REST plus an event stream, which curl, Prometheus,
//! browsers and schemathesis all speak, so JSON-RPC (jsonrpsee) would buy
//! nothing), `tokio-stream` (the SSE stream over a broadcast channel),
//! `prometheus-client` (the metrics registry, the Prometheus project's own
//! Rust client), `undchain-ledger` (state keys for the proofs).
#![forbid(unsafe_code)]

pub mod api;
pub mod client;
pub mod clock;
pub mod compose;
pub mod devnet;
pub mod duration;
pub mod home;
pub mod load;
pub mod runtime;
pub mod sim;
pub mod store;
pub mod testnet;
pub mod transport;

pub use clock::MonotonicClock;
