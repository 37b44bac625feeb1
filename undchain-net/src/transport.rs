//! The transport trait that the node's QUIC transport and the in-memory
//! network both implement, with the events and errors they share
//! (docs/PROTOCOL.md "Transport, framing, retries and scream cast";
//! DESIGN.md "Validator list and connections").
//!
//! A transport is non-blocking: [`Transport::connect`] and
//! [`Transport::send`] only start work; outcomes come back as
//! [`TransportEvent`]s from [`Transport::poll_event`]. The node's runtime
//! and the simulator both run the same loop: feed events to the state
//! machines, carry out what they ask.
//!
//! Identity rules, the same in every implementation:
//! - Every connection is authenticated under a key: with QUIC, the peer's
//!   ed25519 identity is its TLS 1.3 raw public key (RFC 7250).
//! - The connecting side names the key it expects; a peer that presents
//!   another key is refused during the handshake
//!   ([`TransportError::WrongKey`]): that is how an impostor at a listed
//!   validator's address is caught.
//! - A peer is a [`PeerClass::Validator`] only under a key the validator set
//!   (or, before the chain exists, the bootstrap list) names; anyone else is
//!   a client or partner, whose key is its identity. A connecting side that
//!   claims to be a validator ([`Claim::Validator`]) under an unlisted key is
//!   refused ([`TransportError::NotAListedValidator`] on the accepting side).
//!   TLS 1.3 quirk: the client's handshake completes before the server has
//!   judged the client, so the refused client sees its connect succeed and
//!   learns of the refusal on its first read
//!   ([`TransportError::RefusedByPeer`] says so).
//! - Who gets a connection slot at all is [`crate::admission`]'s decision,
//!   the same in every implementation.
//!
//! Load rules, the same in every implementation:
//! - Each connection's reader holds its peer's [`TokenBucket`]; a frame
//!   over the peer's rate is **shed** there, before decoding, and only
//!   counted ([`TransportStats::frames_shed`]): it never becomes an event.
//! - A peer has at most [`TransportConfig::events_per_peer`] received
//!   envelopes (or dropped frames) waiting for the runtime; past that its
//!   reader stops reading and its sender is slowed by flow control (QUIC)
//!   or refused with [`TransportError::QueueFull`] (in memory). One peer's
//!   backlog never holds up another's envelopes.

use std::collections::BTreeSet;

use undchain_types::msg::MediumKind;
use undchain_types::{ChainId, EnvelopeError, KeyCache, LocalTime, PublicKey, SignedEnvelope};

use crate::admission::{AdmissionConfig, AdmissionError};
use crate::frame::{FrameError, decode_envelope};
use crate::rate::{RateLimit, TokenBucket};

/// What the accepting side takes a peer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerClass {
    /// Named by the validator set (or, before the chain, the bootstrap list).
    Validator,
    /// Anyone else: a client or partner; its key is its identity.
    ClientOrPartner,
}

/// What the connecting side asks to be taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Claim {
    /// A validator: refused unless the accepting side lists the key.
    Validator,
    /// A client or partner: accepted under any valid key.
    ClientOrPartner,
}

/// The TLS 1.3 quirk, spelled out in every refusal a client sees.
pub const REFUSED_ON_FIRST_READ: &str = "TLS 1.3: the client's handshake completes before the \
     server judges the client, so a refused client learns it on its first read, not at connect";

/// Why a transport operation or connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer at `address` presented another key than the one expected:
    /// an impostor (or a stale validator list). Refused in the handshake.
    #[error(
        "refused {address}: it presented key {presented}, but {expected} was expected there \
         (impostor or stale validator list); refused during the TLS handshake"
    )]
    WrongKey {
        /// The address that was dialled.
        address: String,
        /// The key the list names for that address.
        expected: PublicKey,
        /// The key the peer at that address presented instead.
        presented: PublicKey,
    },
    /// A peer claimed to be a validator under a key no list names (seen by
    /// the accepting side).
    #[error(
        "refused {key}: it claims to be a validator, but neither the validator set nor the \
         bootstrap list names that key"
    )]
    NotAListedValidator {
        /// The key the peer presented with its validator claim.
        key: PublicKey,
    },
    /// The accepting side refused this connection (seen by the connecting
    /// side, on its first read).
    #[error("{peer} refused the connection: {reason} ({REFUSED_ON_FIRST_READ})")]
    RefusedByPeer {
        /// The peer that refused us.
        peer: PublicKey,
        /// Its reason, as it sent it.
        reason: String,
    },
    /// The peer presented something that is not a usable ed25519 raw key.
    #[error("{address} presented no usable ed25519 raw public key: {reason}")]
    BadPeerKey {
        /// The address of the peer.
        address: String,
        /// What was wrong with the key it presented.
        reason: String,
    },
    /// Nobody answered at `address`.
    #[error("{address} is unreachable: {reason}")]
    Unreachable {
        /// The address nobody answered at.
        address: String,
        /// What the transport saw (no listener, a timeout, ...).
        reason: String,
    },
    /// The handshake failed for another reason.
    #[error("handshake with {address} failed: {reason}")]
    Handshake {
        /// The address of the peer.
        address: String,
        /// What the TLS or QUIC layer reported.
        reason: String,
    },
    /// This transport does not speak the medium.
    #[error("medium {medium:?} is not supported by this transport")]
    UnsupportedMedium {
        /// The medium the endpoint named.
        medium: MediumKind,
    },
    /// The address does not parse.
    #[error("address {address:?} is not usable: {reason}")]
    BadAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection (or connection under way) to the peer.
    #[error("not connected to {peer}")]
    NotConnected {
        /// The peer there is no connection to.
        peer: PublicKey,
    },
    /// The peer's outbound queue is full.
    #[error("outbound queue to {peer} is full ({cap} envelopes or {cap_bytes} bytes)")]
    QueueFull {
        /// The peer whose queue is full.
        peer: PublicKey,
        /// The cap in envelopes.
        cap: usize,
        /// The cap in bytes.
        cap_bytes: usize,
    },
    /// A frame was refused (see [`FrameError::stream_survives`]).
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    /// An envelope was refused: bad signature or wrong chain.
    #[error("envelope refused: {0}")]
    Envelope(EnvelopeError),
    /// The connection closed, by either side or by an idle timeout.
    #[error("connection to {peer} closed: {reason}")]
    Closed {
        /// The peer at the other end.
        peer: PublicKey,
        /// Who closed it and why, as far as this side knows.
        reason: String,
    },
    /// The accepting side refused the connection a slot (or a handshake
    /// place).
    #[error("connection refused: {0}")]
    Admission(AdmissionError),
    /// The transport was shut down.
    #[error("transport shut down")]
    Shutdown,
    /// A local I/O failure (binding a socket, ...).
    #[error("local I/O: {0}")]
    Io(String),
}

impl From<AdmissionError> for TransportError {
    fn from(e: AdmissionError) -> Self {
        match e {
            AdmissionError::NotAListedValidator { key } => {
                TransportError::NotAListedValidator { key }
            }
            other => TransportError::Admission(other),
        }
    }
}

/// What a transport reports through [`Transport::poll_event`]: connections
/// coming up or going down, envelopes received, frames dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// A connection is up, under the peer's authenticated key.
    Connected {
        /// The peer's authenticated key.
        peer: PublicKey,
        /// What this side takes the peer for.
        class: PeerClass,
        /// Whether the peer connected to us.
        inbound: bool,
        /// The peer's address (as dialled, or as seen on an inbound
        /// connection).
        address: String,
    },
    /// An envelope arrived (decoded; verified when the config says so).
    Received {
        /// The authenticated key of the connection it came on.
        peer: PublicKey,
        /// What this side takes the peer for.
        class: PeerClass,
        /// The envelope (boxed: events are moved around a lot).
        envelope: Box<SignedEnvelope>,
    },
    /// An incoming frame was dropped; the connection survives.
    Dropped {
        /// The peer the frame came from.
        peer: PublicKey,
        /// Why the frame was dropped (framing, rate limit, envelope).
        error: TransportError,
    },
    /// An outbound connection attempt failed.
    ConnectFailed {
        /// The key that was expected.
        peer: PublicKey,
        /// The address that was dialled.
        address: String,
        /// Why the attempt failed (wrong key, unreachable, handshake).
        error: TransportError,
    },
    /// This side refused an inbound peer.
    Refused {
        /// The key the refused peer presented.
        peer: PublicKey,
        /// Why it was refused.
        error: TransportError,
    },
    /// A connection closed; envelopes to the peer need a new connection.
    Closed {
        /// The peer at the other end.
        peer: PublicKey,
        /// What closed it: the peer, this side, an idle timeout or a
        /// framing error.
        error: TransportError,
    },
}

/// Settings every transport shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportConfig {
    /// Largest frame, bytes (the chain's `max_frame_bytes`, default 1 MiB).
    pub max_frame: usize,
    /// Verify each received envelope's signature before reporting it
    /// (default true; the runtime may verify later instead).
    pub verify_signatures: bool,
    /// Refuse envelopes for another chain (default: accept any).
    pub chain: Option<ChainId>,
    /// Inbound rate limit per client or partner connection.
    pub rate: RateLimit,
    /// Inbound rate limit per validator connection (default burst 4,096,
    /// 4,096 per second: gossip, votes and reconciliation are heavier than
    /// a client's traffic).
    pub validator_rate: RateLimit,
    /// Envelopes queued per peer before [`TransportError::QueueFull`].
    pub queue_per_peer: usize,
    /// Bytes queued per peer before [`TransportError::QueueFull`] (default
    /// 8 MiB), so a slow peer never holds `queue_per_peer` full frames.
    pub queue_bytes_per_peer: usize,
    /// Received events (envelopes, dropped frames) of one peer waiting for
    /// the runtime before that peer's reader waits (default 64).
    pub events_per_peer: usize,
    /// Who gets a connection slot.
    pub admission: AdmissionConfig,
}

impl TransportConfig {
    /// The defaults with the chain's frame limit, refusing other chains'
    /// envelopes.
    pub fn from_params(params: &undchain_types::ChainParams) -> Self {
        TransportConfig {
            max_frame: params.max_frame_bytes as usize,
            chain: Some(params.chain_id),
            ..TransportConfig::default()
        }
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_frame: undchain_types::wire::DEFAULT_MAX_FRAME,
            verify_signatures: true,
            chain: None,
            rate: RateLimit::default(),
            validator_rate: RateLimit {
                burst: 4096,
                per_second: 4096,
                ..RateLimit::default()
            },
            queue_per_peer: 1024,
            queue_bytes_per_peer: 8 << 20,
            events_per_peer: 64,
            admission: AdmissionConfig::default(),
        }
    }
}

/// The class of `key` given the keys accepted as validators.
pub fn classify(key: &PublicKey, validators: &BTreeSet<PublicKey>) -> PeerClass {
    if validators.contains(key) {
        PeerClass::Validator
    } else {
        PeerClass::ClientOrPartner
    }
}

/// What a transport counts instead of reporting as events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransportStats {
    /// Frames dropped at the reader for being over their peer's rate.
    pub frames_shed: u64,
    /// Inbound connections (or handshakes) refused by admission.
    pub refused: u64,
    /// Inbound attempts asked to prove their address first (QUIC Retry).
    pub retries: u64,
    /// Client connections closed for being idle.
    pub idle_closed: u64,
    /// Connections closed because another connection of the same key won.
    pub superseded: u64,
}

/// One connection's reader: its peer's rate bucket and the keys it has
/// prepared (the peer's own first), so decoding and verifying a frame
/// takes no lock and decompresses a sender's key once per connection.
#[derive(Debug, Clone)]
pub struct FrameReader {
    peer: PublicKey,
    class: PeerClass,
    bucket: TokenBucket,
    keys: KeyCache,
}

impl FrameReader {
    /// The reader of a connection to `peer`, opened at `now`, with the rate
    /// of its class.
    pub fn new(cfg: &TransportConfig, peer: PublicKey, class: PeerClass, now: LocalTime) -> Self {
        FrameReader {
            peer,
            class,
            bucket: TokenBucket::new(
                match class {
                    PeerClass::Validator => cfg.validator_rate,
                    PeerClass::ClientOrPartner => cfg.rate,
                },
                now,
            ),
            keys: KeyCache::new(8),
        }
    }

    /// What becomes of one frame received at `now`: `None` if it is over
    /// the peer's rate (shed before decoding: count it, report nothing),
    /// otherwise the event (decoded, on the right chain and, if the config
    /// says so, verified; or dropped with the reason). Every transport
    /// calls this, so every transport sheds and drops the same frames for
    /// the same reasons.
    pub fn admit(
        &mut self,
        cfg: &TransportConfig,
        frame: &[u8],
        now: LocalTime,
    ) -> Option<TransportEvent> {
        let peer = self.peer;
        if self.bucket.check(now, 1).is_err() {
            return None;
        }
        let dropped = |error| Some(TransportEvent::Dropped { peer, error });
        let envelope = match decode_envelope(frame, cfg.max_frame) {
            Ok(e) => e,
            Err(e) => return dropped(TransportError::Frame(e)),
        };
        if let Some(chain) = cfg.chain {
            let got = envelope.envelope().chain_id;
            if got != chain {
                return dropped(TransportError::Envelope(EnvelopeError::WrongChain {
                    got,
                    expected: chain,
                }));
            }
        }
        if cfg.verify_signatures
            && let Err(e) = envelope.verify_with(&mut self.keys)
        {
            return dropped(TransportError::Envelope(e));
        }
        Some(TransportEvent::Received {
            peer,
            class: self.class,
            envelope: Box::new(envelope),
        })
    }
}

/// A transport: the QUIC one in `undchain-node`, the in-memory one in
/// `undchain-sim`.
pub trait Transport {
    /// This side's identity (its TLS raw public key).
    fn local_key(&self) -> PublicKey;

    /// Sets the keys accepted as validators (the validator set, or the
    /// bootstrap list before the chain exists).
    fn set_validator_keys(&mut self, keys: BTreeSet<PublicKey>);

    /// Starts connecting to `peer` at `endpoint`, expecting its key, as
    /// `claim`. The outcome arrives as [`TransportEvent::Connected`] or
    /// [`TransportEvent::ConnectFailed`]. Envelopes sent meanwhile are
    /// queued. An error here means the attempt could not even start.
    fn connect(
        &mut self,
        peer: PublicKey,
        endpoint: &undchain_types::msg::Endpoint,
        claim: Claim,
    ) -> Result<(), TransportError>;

    /// Queues `envelope` for `peer` on the connection to it.
    fn send(&mut self, peer: &PublicKey, envelope: &SignedEnvelope) -> Result<(), TransportError>;

    /// Closes the connection to `peer`, if any.
    fn disconnect(&mut self, peer: &PublicKey);

    /// The next event, if one is ready.
    fn poll_event(&mut self) -> Option<TransportEvent>;

    /// What the transport counted instead of reporting.
    fn stats(&self) -> TransportStats;
}
