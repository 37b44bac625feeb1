//! `undchain-net`: how a client, partner or validator reaches a validator,
//! and what happens when it cannot (docs/PROTOCOL.md "Transport, framing,
//! retries and scream cast"; DESIGN.md "Validator list and connections";
//! design notes, client story step 1).
//!
//! Pure policy, no sockets, clocks, files, threads or RNG: time and seeds
//! are inputs. Every machine here speaks the workspace's machine vocabulary
//! (docs/ARCHITECTURE.md "The machine vocabulary"): `now` is a
//! [`LocalTime`](undchain_types::LocalTime), a machine with timers says when
//! to wake it with `poll_timeout()` and is woken with `handle_timeout(now)`
//! (early or twice is harmless), and a refused input returns a typed error
//! and changes nothing. Jitter is drawn from a caller-given seed with the
//! workspace's one stream, [`SplitMix64`](undchain_types::SplitMix64).
//!
//! - [`frame`]: length-prefixed envelopes on a stream, limit checked before
//!   allocating, partial reads, typed errors.
//! - [`peer_book`]: the validators with their media and observed latency and
//!   reliability (integer moving averages); lowest-latency selection; the
//!   scream cast order.
//! - [`retry`], [`scream`], [`outreach`]: 4 attempts x 6 s with seeded
//!   backoff jitter, then a scream cast of a signed public hello.
//! - [`correlate`], [`queue`], [`rate`], [`cooldown`]: request correlation,
//!   bounded outbound queues, per-peer rate limits, at-capacity cooldowns and
//!   heartbeat expiry.
//! - [`transport`], [`admission`]: the trait the node's QUIC transport and
//!   the simulation kit's in-memory network (`undchain-sim`) implement, the
//!   frame rules both readers apply ([`FrameReader`]: shed over-rate frames,
//!   decode, verify) and the connection admission both ask ([`Admission`]:
//!   handshake limits, separate validator and client budgets, per-host
//!   limits, one connection per key, idle clients closed).
//!
//! ```
//! use undchain_net::{Outreach, OutreachAction, PeerBook, RetryPolicy};
//! use undchain_types::{BlockTime, ChainId, Envelope, LocalTime, Role, SigningKey, ValidatorBook, msg::Hello};
//!
//! let v = SigningKey::from_seed([1; 32]).public();
//! let list = ValidatorBook::parse(&format!(
//!     "[[validator]]\nalias = \"a\"\nid = \"{}\"\n[[validator.media]]\n\
//!      type = \"quic\"\naddress = \"127.0.0.1:7101\"\nlatency_ms = 12\nreliability = 0.99\n",
//!     v.to_hex()
//! ))
//! .unwrap();
//! let mut book = PeerBook::from_bootstrap(&list);
//! let me = SigningKey::from_seed([9; 32]);
//! let hello = Envelope::new(me.public(), ChainId(1), 1, BlockTime(0), Hello { role: Role::Client, nonce: 5 })
//!     .sign(&me);
//! let mut out = Outreach::new(v, &book, RetryPolicy::default(), 42, hello).unwrap();
//! let first = out.start(LocalTime::ZERO).unwrap();
//! let OutreachAction::Send { id, to, .. } = &first[0] else { unreachable!() };
//! assert_eq!(*to, v);
//! // The validator answered within 3 ms: delivered, latency recorded.
//! let done = out.handle_success(*id, LocalTime::from_micros(3_000), &mut book).unwrap();
//! assert!(matches!(done[0], OutreachAction::Reached { .. }));
//! assert_eq!(book.get(&v).unwrap().best_latency_us(), 3_000);
//! // Anything after that is refused and changes nothing.
//! assert!(out.handle_success(*id, LocalTime::from_micros(4_000), &mut book).is_err());
//! ```
//!
//! Dependencies: `undchain-types` (envelopes, keys, the validator list) and
//! `thiserror` (typed errors); nothing else.
#![forbid(unsafe_code)]

pub mod admission;
pub mod cooldown;
pub mod correlate;
pub mod frame;
pub mod outreach;
pub mod peer_book;
pub mod queue;
pub mod rate;
pub mod retry;
pub mod scream;
pub mod transport;

pub use admission::{
    Admission, AdmissionConfig, AdmissionCounts, AdmissionError, Admitted, ConnId, Dialer,
    HandshakeId, Incoming, Source,
};
pub use cooldown::{CapacityCooldown, Liveness, TooSoon};
pub use correlate::{CorrelateError, Correlation, CorrelationKey, Correlator, correlation};
pub use frame::{FrameDecoder, FrameError, decode_envelope, encode_frame, frame_envelope};
pub use outreach::{
    AttemptId, Outreach, OutreachAction, OutreachError, OutreachInputError, Payload,
};
pub use peer_book::{PeerBook, PeerBookConfig, PeerEntry, ScreamTarget};
pub use queue::{OutboundQueues, QueueError, QueueLimits};
pub use rate::{RateLimit, RateLimited, RateLimiter, TokenBucket};
pub use retry::{Retry, RetryAction, RetryPolicy, RetryState};
pub use scream::{ScreamAction, ScreamCast, ScreamError};
pub use transport::{
    Claim, FrameReader, PeerClass, Transport, TransportConfig, TransportError, TransportEvent,
    TransportStats,
};
