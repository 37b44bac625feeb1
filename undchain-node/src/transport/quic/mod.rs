//! The QUIC transport: quinn 0.11 over one UDP socket per node, TLS 1.3 with
//! raw ed25519 keys ([`super::tls`]), length-prefixed envelope frames
//! ([`undchain_net::frame`]) on one unidirectional stream per direction
//! (docs/PROTOCOL.md "Transport, framing, retries and scream cast",
//! "Connection admission", "Load shedding").
//!
//! quinn carries out what the pure policy of `undchain-net` decides:
//! - **Admission** ([`undchain_net::Admission`]): each connection attempt
//!   asks for a handshake place before any cryptography runs; under load a
//!   source that has not proved its address gets a QUIC Retry; a refused
//!   attempt is refused (`CONNECTION_REFUSED`) and holds nothing. After the
//!   handshake the authenticated key gets a slot from its class's budget
//!   (validators apart from everyone else), within per-host limits, and a
//!   key keeps one connection: the one replaced is closed with
//!   [`close_code::SUPERSEDED`], and when both sides dial at once both keep
//!   the one dialed by the lower key. A refusal after the handshake closes
//!   the connection with [`close_code::REFUSED`] (an unlisted validator
//!   claim) or [`close_code::BUSY`] and the reason: TLS 1.3 lets the client
//!   finish first, so its `connect` succeeds and its first read reports
//!   [`TransportError::RefusedByPeer`], whose text says exactly that.
//!   Client connections that dialed us and carried no frame either way for
//!   the idle timeout are closed with [`close_code::IDLE`].
//! - **Reading**: one task per connection feeds a [`FrameDecoder`] and a
//!   [`FrameReader`] of its own: a frame over the peer's rate is shed and
//!   counted before decoding; the rest are decoded and verified in that
//!   task, on the runtime's threads, with no lock, so connections verify in
//!   parallel. The event goes to the runtime through a channel bounded per
//!   connection and per class (`events`): a peer over its share waits, and
//!   flow control slows that peer alone. A frame header over the limit
//!   loses the framing and closes the connection with [`close_code::FRAME`].
//!   One shortcut (`lane`): while the runtime waits in
//!   [`QuicTransport::next_event`], a connection whose reader is idle has
//!   its next chunk read by the runtime itself, if that chunk is one whole
//!   frame (shed, decoded and verified the same way), so a lone envelope
//!   skips the reader task.
//! - **Writing**: one queue per key (bounded, [`TransportConfig`]), written
//!   by the key's current connection, coalescing queued frames; a frame
//!   sent after a pause with nothing queued is written onto the stream by
//!   the sender itself (`outbox`).
//! - **Hardening**: no TLS session resumption and no 0-RTT (both sides,
//!   explicitly), no QUIC datagrams (no receive buffer, no send buffer),
//!   one unidirectional stream per direction and none bidirectional, no
//!   connection migration (per-host limits hold on the address a connection
//!   was admitted from), a small connection receive window for clients
//!   ([`QuicConfig::client_receive_window`]) and a wide one for validators.
//!
//! [`FrameDecoder`]: undchain_net::FrameDecoder
//! [`FrameReader`]: undchain_net::FrameReader
//! [`TransportConfig`]: undchain_net::TransportConfig

mod conn;
mod events;
mod lane;
mod outbox;
mod shared;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use quinn::VarInt;
use quinn::crypto::rustls::QuicServerConfig;
use undchain_net::admission::{Admission, AdmissionCounts};
use undchain_net::frame::frame_envelope;
use undchain_net::{
    Claim, Transport, TransportConfig, TransportError, TransportEvent, TransportStats,
};
use undchain_types::msg::{Endpoint, MediumKind};
use undchain_types::{PublicKey, SignedEnvelope, SigningKey};

use self::events::{EventSink, Inbox};
use self::shared::{Counters, Dialed, Shared, State};
use super::tls;
use crate::clock::MonotonicClock;

/// The QUIC application close codes this transport sends, so the peer can
/// tell a refusal and a framing error from a normal close.
pub mod close_code {
    /// A normal close (disconnect, shutdown).
    pub const NORMAL: u32 = 0;
    /// Refused: a validator claim under an unlisted key.
    pub const REFUSED: u32 = 1;
    /// Framing lost (a frame header over the limit, or zero).
    pub const FRAME: u32 = 2;
    /// Refused for load: no slot in the peer's budget, or its host's
    /// share is taken. Try again later.
    pub const BUSY: u32 = 3;
    /// Another connection of the same key replaced this one (a reconnect,
    /// or the losing side of a simultaneous dial).
    pub const SUPERSEDED: u32 = 4;
    /// A client connection closed for carrying no frame for the idle
    /// timeout.
    pub const IDLE: u32 = 5;
}

/// Settings of the QUIC transport.
#[derive(Debug, Clone)]
pub struct QuicConfig {
    /// What every transport shares (frame limit, verification, rate, queue,
    /// event quota per peer, admission).
    pub transport: TransportConfig,
    /// A connection (or handshake) with no traffic for this long is dead
    /// (default 10 s).
    pub idle_timeout: Duration,
    /// Keep-alive interval (default 4 s; `None` to let idle connections
    /// die). Keep-alives keep QUIC alive, not a client slot: a client with
    /// no frames is closed after the admission's idle timeout anyway.
    pub keep_alive: Option<Duration>,
    /// Bytes of one connection's events waiting for the runtime (default
    /// 4 MiB, raised to fit one frame).
    pub event_bytes_per_peer: usize,
    /// Bytes of all validators' events waiting for the runtime (default
    /// 64 MiB).
    pub validator_event_bytes: usize,
    /// Bytes of all other peers' events waiting for the runtime (default
    /// 32 MiB).
    pub client_event_bytes: usize,
    /// QUIC connection receive window of a client (and of every connection
    /// until it is admitted as a validator's), bytes (default 256 KiB).
    pub client_receive_window: u32,
    /// QUIC connection receive window of a validator, bytes (default
    /// 16 MiB).
    pub validator_receive_window: u32,
}

impl Default for QuicConfig {
    fn default() -> Self {
        QuicConfig {
            transport: TransportConfig::default(),
            idle_timeout: Duration::from_secs(10),
            keep_alive: Some(Duration::from_secs(4)),
            event_bytes_per_peer: 4 << 20,
            validator_event_bytes: 64 << 20,
            client_event_bytes: 32 << 20,
            client_receive_window: 256 << 10,
            validator_receive_window: 16 << 20,
        }
    }
}

/// A node's QUIC transport. Create it inside a tokio runtime.
pub struct QuicTransport {
    shared: Arc<Shared>,
    events: Inbox,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl core::fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("key", &self.shared.key)
            .field("addr", &self.shared.endpoint.local_addr().ok())
            .finish()
    }
}

fn io(e: impl core::fmt::Display) -> TransportError {
    TransportError::Io(e.to_string())
}

fn quic_transport_config(cfg: &QuicConfig) -> Result<quinn::TransportConfig, TransportError> {
    let mut t = quinn::TransportConfig::default();
    let window = VarInt::from_u32(cfg.client_receive_window);
    t.max_idle_timeout(Some(cfg.idle_timeout.try_into().map_err(io)?))
        .keep_alive_interval(cfg.keep_alive)
        .max_concurrent_uni_streams(VarInt::from_u32(1))
        .max_concurrent_bidi_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(cfg.validator_receive_window))
        .receive_window(window)
        .datagram_receive_buffer_size(None)
        .datagram_send_buffer_size(0);
    Ok(t)
}

impl QuicTransport {
    /// Binds a UDP socket at `addr` (port 0 picks one) and starts accepting
    /// connections, presenting `identity` as the TLS raw public key. Must be
    /// called inside a tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        identity: SigningKey,
        cfg: QuicConfig,
    ) -> Result<Self, TransportError> {
        let transport = Arc::new(quic_transport_config(&cfg)?);
        let tls = tls::server_config(&identity).map_err(io)?;
        let tls = QuicServerConfig::try_from(tls).map_err(io)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(tls));
        let a = cfg.transport.admission;
        server
            .transport_config(transport.clone())
            .migration(false)
            // Attempts waiting for the accept loop: a few times what the
            // admission lets start, each buffering little (no 0-RTT).
            .max_incoming((a.handshakes + a.validator_handshakes).max(1) * 8)
            .incoming_buffer_size(16 << 10);
        let endpoint = quinn::Endpoint::server(server, addr).map_err(io)?;
        let t = &cfg.transport;
        let (sink, events) = EventSink::new(
            t.events_per_peer,
            cfg.event_bytes_per_peer,
            [cfg.validator_event_bytes, cfg.client_event_bytes],
            t.max_frame,
        );
        let key = identity.public();
        let shared = Arc::new(Shared {
            key,
            identity,
            state: Mutex::new(State {
                admission: Admission::new(t.admission, key),
                links: Default::default(),
                conns: Default::default(),
            }),
            cfg,
            quic_transport: transport,
            events: sink,
            hub: Arc::default(),
            clock: MonotonicClock::new(),
            endpoint,
            counters: Counters::default(),
        });
        let tasks = vec![
            tokio::spawn(conn::accept_loop(shared.clone())),
            tokio::spawn(conn::idle_loop(shared.clone())),
        ];
        Ok(QuicTransport {
            shared,
            events,
            tasks,
        })
    }

    /// The address the UDP socket is bound to (with the port picked when
    /// binding to port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, TransportError> {
        self.shared.endpoint.local_addr().map_err(io)
    }

    /// This node's identity key, which it presents as its TLS raw public
    /// key.
    pub fn local_key(&self) -> PublicKey {
        self.shared.key
    }

    /// Sets the keys accepted as validators (validator set, or the bootstrap
    /// list before the chain exists).
    pub fn set_validator_keys(&self, keys: BTreeSet<PublicKey>) {
        self.shared.lock().admission.set_validator_keys(keys);
    }

    /// Connects to `peer` at `addr`, expecting its key, as `claim`; returns
    /// once the handshake is done (at once if `peer` is connected already:
    /// a key has one connection). A wrong key fails here
    /// ([`TransportError::WrongKey`]), and so does an attempt the peer
    /// refused before the handshake (busy); a refusal of our claim arrives
    /// later, on the first read, as [`TransportEvent::Closed`] with
    /// [`TransportError::RefusedByPeer`] (the TLS 1.3 quirk).
    pub async fn connect(
        &self,
        peer: PublicKey,
        addr: SocketAddr,
        claim: Claim,
    ) -> Result<(), TransportError> {
        if self.shared.connected_event(&peer).is_some() {
            return Ok(());
        }
        self.shared.start_dial(peer);
        dial(self.shared.clone(), peer, addr, claim).await
    }

    /// Queues `envelope` for `peer`.
    pub fn send(&self, peer: &PublicKey, envelope: &SignedEnvelope) -> Result<(), TransportError> {
        let frame = frame_envelope(envelope, self.shared.cfg.transport.max_frame)?;
        self.shared.push(peer, frame)
    }

    /// Writes `bytes` as they are onto the stream to `peer`, with no framing:
    /// for tests of how a peer copes with bad frames. Nodes send envelopes.
    pub fn send_raw(&self, peer: &PublicKey, bytes: Vec<u8>) -> Result<(), TransportError> {
        self.shared.push(peer, bytes)
    }

    /// Closes the connection to `peer`.
    pub fn disconnect(&self, peer: &PublicKey) {
        self.shared.disconnect(peer);
    }

    /// Whether `peer` has a connection (not merely a dial under way).
    pub fn is_connected(&self, peer: &PublicKey) -> bool {
        self.shared.connected_event(peer).is_some()
    }

    /// What the admission holds now: handshakes under way, validator and
    /// client connections.
    pub fn admission_counts(&self) -> AdmissionCounts {
        self.shared.lock().admission.counts()
    }

    /// What the transport counted instead of reporting.
    pub fn stats(&self) -> TransportStats {
        self.shared.stats()
    }

    /// The next event; `None` once the transport is shut down.
    ///
    /// While this waits, an idle connection's next frame is read by the
    /// caller itself rather than by the connection's reader task (one task
    /// hand-off less per envelope; module `lane`).
    pub async fn next_event(&mut self) -> Option<TransportEvent> {
        let hub = self.shared.hub.clone();
        let _waiting = lane::Waiting(&hub);
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Queued events first (they are older), then the lanes that woke for
    /// us; otherwise waits for either.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<TransportEvent>> {
        let hub = &self.shared.hub;
        loop {
            hub.stop_waiting();
            if let Poll::Ready(q) = self.events.poll_recv(cx) {
                hub.hand_to_tasks();
                return Poll::Ready(q.map(|q| q.event));
            }
            if let Some(lane) = hub.pop() {
                // One lane read here; the others' tasks read theirs in
                // parallel.
                hub.hand_to_tasks();
                let events = &self.events;
                if let Some(ev) = lane::read_for_runtime(&self.shared, &lane, || !events.is_empty())
                {
                    return Poll::Ready(Some(ev));
                }
                continue;
            }
            hub.start_waiting(cx.waker());
            if hub.is_empty() {
                return Poll::Pending;
            }
        }
    }

    /// Closes every connection and the socket, and waits until the peers
    /// were told.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.shared
            .endpoint
            .close(VarInt::from_u32(close_code::NORMAL), b"shutdown");
        self.shared.endpoint.wait_idle().await;
    }
}

/// Dials (after [`Shared::start_dial`]) and installs; the outcome is the
/// caller's to report.
async fn dial(
    shared: Arc<Shared>,
    peer: PublicKey,
    addr: SocketAddr,
    claim: Claim,
) -> Result<(), TransportError> {
    let result = shared.dial(peer, addr, claim).await;
    match shared.dial_done(peer, addr, result)? {
        Dialed::Installed(conn, inst) => {
            let ev = TransportEvent::Connected {
                peer,
                class: inst.class,
                inbound: false,
                address: addr.to_string(),
            };
            shared.events.control(inst.class, ev).await;
            conn::run(shared.clone(), conn, peer, inst);
        }
        Dialed::Lost(conn) => conn::drain(shared.clone(), conn, peer),
    }
    Ok(())
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.shared
            .endpoint
            .close(VarInt::from_u32(close_code::NORMAL), b"shutdown");
    }
}

fn endpoint_addr(endpoint: &Endpoint) -> Result<SocketAddr, TransportError> {
    if !matches!(endpoint.medium, MediumKind::Quic | MediumKind::Udp) {
        return Err(TransportError::UnsupportedMedium {
            medium: endpoint.medium,
        });
    }
    endpoint
        .address
        .as_str()
        .parse()
        .map_err(|_| TransportError::BadAddress {
            address: endpoint.address.as_str().to_owned(),
            reason: "expected ip:port (resolve host names before connecting)".into(),
        })
}

impl Transport for QuicTransport {
    fn local_key(&self) -> PublicKey {
        self.shared.key
    }

    fn set_validator_keys(&mut self, keys: BTreeSet<PublicKey>) {
        QuicTransport::set_validator_keys(self, keys);
    }

    fn connect(
        &mut self,
        peer: PublicKey,
        endpoint: &Endpoint,
        claim: Claim,
    ) -> Result<(), TransportError> {
        let addr = endpoint_addr(endpoint)?;
        let shared = self.shared.clone();
        if let Some(ev) = shared.connected_event(&peer) {
            // One connection per key: report the one there is.
            if let TransportEvent::Connected { class, .. } = ev {
                tokio::spawn(async move { shared.events.control(class, ev).await });
            }
            return Ok(());
        }
        // Sends queue from now on, while the handshake runs.
        shared.start_dial(peer);
        tokio::spawn(async move {
            if let Err(error) = dial(shared.clone(), peer, addr, claim).await {
                let class = undchain_net::transport::classify(
                    &peer,
                    shared.lock().admission.validator_keys(),
                );
                let ev = TransportEvent::ConnectFailed {
                    peer,
                    address: addr.to_string(),
                    error,
                };
                shared.events.control(class, ev).await;
            }
        });
        Ok(())
    }

    fn send(&mut self, peer: &PublicKey, envelope: &SignedEnvelope) -> Result<(), TransportError> {
        QuicTransport::send(self, peer, envelope)
    }

    fn disconnect(&mut self, peer: &PublicKey) {
        QuicTransport::disconnect(self, peer);
    }

    fn poll_event(&mut self) -> Option<TransportEvent> {
        let hub = self.shared.hub.clone();
        let _waiting = lane::Waiting(&hub);
        match self.poll_next(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(ev) => ev,
            Poll::Pending => None,
        }
    }

    fn stats(&self) -> TransportStats {
        self.shared.stats()
    }
}
