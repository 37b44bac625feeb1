//! `undchain-types`: the vocabulary every UndChain crate shares.
//!
//! Identities ([`PublicKey`], [`SigningKey`], [`Signature`]), domain-separated
//! hashes ([`Hash32`], [`HashContext`]), small typed numbers
//! ([`BlockNumber`], [`BlockTime`], [`JobId`], [`PerceptionScore`], ...),
//! chain parameters with the defaults of DESIGN.md ([`ChainParams`]), every
//! message of the three user stories ([`msg`]), signed envelopes
//! ([`Envelope`], [`SignedEnvelope`]), the wire encoding ([`wire`]), a pure
//! replay guard ([`ReplayGuard`]), the validator list ([`ValidatorBook`]),
//! and the machine vocabulary every pure state machine speaks
//! ([`machine`]: [`LocalTime`] as `now`, [`Ready`] batches, the one
//! deterministic random stream [`SplitMix64`]).
//!
//! The crate is pure: it never touches a socket, a clock, a file or a
//! thread. Randomness (key seeds) and time are arguments.
//!
//! ```
//! use undchain_types::{
//!     BlockTime, ChainId, Envelope, PerceptionScore, SignedEnvelope, SigningKey, TokenAmount,
//!     UtilityKind, msg::UtilityRequest, wire::DEFAULT_MAX_FRAME,
//! };
//!
//! let client = SigningKey::from_seed([7; 32]);
//! let request = UtilityRequest {
//!     kind: UtilityKind::Storage,
//!     units: 1024,
//!     max_price_per_unit: TokenAmount(3),
//!     min_partner_score: PerceptionScore::new(400).unwrap(),
//!     partner_threshold: 8,
//!     co_clients: Default::default(),
//!     spec: Default::default(),
//! };
//! let signed = Envelope::new(client.public(), ChainId(1), 1, BlockTime(1_000), request)
//!     .sign(&client);
//! let bytes = signed.to_bytes();
//! let back = SignedEnvelope::open(&bytes, DEFAULT_MAX_FRAME, ChainId(1)).unwrap();
//! assert_eq!(back, signed);
//! ```
//!
//! Dependencies: `serde` + `postcard` (wire format, named by the project),
//! `ed25519-dalek` 3 and `curve25519-dalek` (identities; the latter for the
//! canonical-encoding check of keys), `blake3` (hashes), `sha2` (the second
//! hash algorithm, so an algorithm switch is real), `thiserror` (typed
//! errors), `toml` (the validator list's text).
#![forbid(unsafe_code)]

pub mod block;
pub mod bounded;
pub mod crypto;
pub mod envelope;
pub mod hash;
pub mod ids;
pub mod job;
pub mod machine;
pub mod msg;
pub mod params;
pub mod replay;
pub mod rng;
pub mod roles;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod time;
pub mod validator_list;
pub mod wire;

pub use block::{BlockHeader, LinkRef, MAX_BLOCK_EVIDENCE};
pub use bounded::{BoundedBytes, BoundedString, BoundedVec, TooLong};
pub use crypto::{CryptoError, KeyCache, PreparedKey, PublicKey, Signature, SigningKey};
pub use envelope::{Envelope, EnvelopeError, SignedEnvelope};
pub use hash::{Hash32, HashAlgorithm, HashContext, hash, hash_parts};
pub use ids::{
    BlockNumber, BlockTime, ChainId, JobId, PayoutPeriod, PerceptionScore, TokenAmount, max_faulty,
    quorum,
};
pub use job::{JobEntry, JobState};
pub use machine::{AdvanceError, Outbox, Ready, ReadyNumber};
pub use msg::{Message, MessageKind};
pub use params::{ChainParams, ParamsError};
pub use replay::{ClockDomain, ReplayConfig, ReplayError, ReplayGuard, Verdict};
pub use rng::SplitMix64;
pub use roles::{Activity, Role, Trust, UtilityKind, ValidatorClass};
pub use time::LocalTime;
pub use validator_list::{ValidatorBook, ValidatorListError, ValidatorRecord};
pub use wire::{WIRE_VERSION, WireError};
