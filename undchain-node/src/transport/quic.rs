//! The QUIC transport: quinn 0.11 over one UDP socket per node, TLS 1.3 with
//! raw ed25519 keys ([`super::tls`]), length-prefixed envelope frames
//! ([`undchain_net::frame`]) on one unidirectional stream per direction
//! (docs/PROTOCOL.md "Transport, framing, retries and scream cast").
//!
//! The same endpoint accepts and dials. Per connection:
//! - the connecting side states its claim in ALPN (`undchain/1+validator`
//!   or `undchain/1`); after the handshake the accepting side applies
//!   [`admit_peer`]: a validator claim under a key the validator set (or
//!   bootstrap list) does not name is refused by closing the connection with
//!   code [`close_code::REFUSED`] and the reason. TLS 1.3 lets the client
//!   finish its handshake first, so the refused client's `connect` succeeds
//!   and its first read reports [`TransportError::RefusedByPeer`], whose text
//!   says exactly that;
//! - each side opens one unidirectional stream and writes frames from a
//!   bounded queue ([`TransportConfig::queue_per_peer`]); the reader feeds a
//!   [`FrameDecoder`] and hands each frame to [`admit_frame`] (rate limit,
//!   decode, verify), so a corrupt envelope is dropped with
//!   [`TransportEvent::Dropped`] and the connection survives, while a frame
//!   header over the limit loses the framing and closes the connection with
//!   code [`close_code::FRAME`] and the reason;
//! - the newest connection to a key is the one sends use. An older one is
//!   not closed (two nodes that dial each other at once would otherwise
//!   close both); it is read until its peer finishes its stream.
//!
//! Events go through a bounded channel: a peer that floods faster than the
//! runtime reads is slowed down by QUIC flow control, not buffered without
//! bound.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use quinn::{ConnectionError, VarInt};
use rustls::pki_types::CertificateDer;
use tokio::sync::mpsc;
use undchain_net::RateLimiter;
use undchain_net::frame::{FrameDecoder, frame_envelope};
use undchain_net::transport::{
    Claim, PeerClass, Transport, TransportConfig, TransportError, TransportEvent, admit_frame,
    admit_peer, classify,
};
use undchain_types::msg::{Endpoint, MediumKind};
use undchain_types::{LocalTime, PublicKey, SignedEnvelope, SigningKey};

use crate::clock::MonotonicClock;

use super::tls::{self, ALPN_USER, ALPN_VALIDATOR};

/// The QUIC application close codes this transport sends, so the peer can
/// tell a refusal and a framing error from a normal close.
pub mod close_code {
    /// A normal close (disconnect, shutdown, a superseded connection).
    pub const NORMAL: u32 = 0;
    /// Refused: a validator claim under an unlisted key.
    pub const REFUSED: u32 = 1;
    /// Framing lost (a frame header over the limit, or zero).
    pub const FRAME: u32 = 2;
}

/// Bytes of queued frames coalesced into one stream write.
const WRITE_BATCH: usize = 64 * 1024;

/// The TLS server name sent: with raw keys it names nothing, the key does.
const SERVER_NAME: &str = "undchain";

/// Settings of the QUIC transport.
#[derive(Debug, Clone)]
pub struct QuicConfig {
    /// What every transport shares (frame limit, verification, rate, queue).
    pub transport: TransportConfig,
    /// A connection (or handshake) with no traffic for this long is dead
    /// (default 10 s).
    pub idle_timeout: Duration,
    /// Keep-alive interval (default 4 s; `None` to let idle connections die).
    pub keep_alive: Option<Duration>,
    /// Events buffered before readers wait (default 4,096).
    pub event_queue: usize,
}

impl Default for QuicConfig {
    fn default() -> Self {
        QuicConfig {
            transport: TransportConfig::default(),
            idle_timeout: Duration::from_secs(10),
            keep_alive: Some(Duration::from_secs(4)),
            event_queue: 4096,
        }
    }
}

struct Link {
    id: u64,
    tx: mpsc::Sender<Vec<u8>>,
    /// Bytes queued and not yet handed to quinn.
    queued: Arc<AtomicUsize>,
    conn: Option<quinn::Connection>,
}

/// The receiving half of a link's queue.
struct Queue {
    rx: mpsc::Receiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

struct Shared {
    identity: SigningKey,
    key: PublicKey,
    cfg: QuicConfig,
    quic_transport: Arc<quinn::TransportConfig>,
    validators: RwLock<BTreeSet<PublicKey>>,
    links: Mutex<BTreeMap<PublicKey, Link>>,
    limiter: Mutex<RateLimiter>,
    events: mpsc::Sender<TransportEvent>,
    next_id: AtomicU64,
    clock: MonotonicClock,
    endpoint: quinn::Endpoint,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A node's QUIC transport. Create it inside a tokio runtime.
pub struct QuicTransport {
    shared: Arc<Shared>,
    events: mpsc::Receiver<TransportEvent>,
    accept: tokio::task::JoinHandle<()>,
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

impl QuicTransport {
    /// Binds a UDP socket at `addr` (port 0 picks one) and starts accepting
    /// connections, presenting `identity` as the TLS raw public key. Must be
    /// called inside a tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        identity: SigningKey,
        cfg: QuicConfig,
    ) -> Result<Self, TransportError> {
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_idle_timeout(Some(cfg.idle_timeout.try_into().map_err(io)?))
            .keep_alive_interval(cfg.keep_alive)
            .max_concurrent_uni_streams(VarInt::from_u32(8))
            .max_concurrent_bidi_streams(VarInt::from_u32(0));
        let transport = Arc::new(transport);
        let tls = tls::server_config(&identity).map_err(io)?;
        let tls = QuicServerConfig::try_from(tls).map_err(io)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(tls));
        server.transport_config(transport.clone());
        let endpoint = quinn::Endpoint::server(server, addr).map_err(io)?;
        let (events_tx, events) = mpsc::channel(cfg.event_queue.max(1));
        let shared = Arc::new(Shared {
            key: identity.public(),
            identity,
            limiter: Mutex::new(RateLimiter::new(cfg.transport.rate)),
            cfg,
            quic_transport: transport,
            validators: RwLock::new(BTreeSet::new()),
            links: Mutex::new(BTreeMap::new()),
            events: events_tx,
            next_id: AtomicU64::new(1),
            clock: MonotonicClock::new(),
            endpoint,
        });
        let accept = tokio::spawn(accept_loop(shared.clone()));
        Ok(QuicTransport {
            shared,
            events,
            accept,
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
        *self
            .shared
            .validators
            .write()
            .unwrap_or_else(PoisonError::into_inner) = keys;
    }

    /// Connects to `peer` at `addr`, expecting its key, as `claim`; returns
    /// once the handshake is done. A wrong key fails here
    /// ([`TransportError::WrongKey`]); a refusal of our claim arrives later,
    /// on the first read, as [`TransportEvent::Closed`] with
    /// [`TransportError::RefusedByPeer`] (the TLS 1.3 quirk).
    pub async fn connect(
        &self,
        peer: PublicKey,
        addr: SocketAddr,
        claim: Claim,
    ) -> Result<(), TransportError> {
        let (id, rx) = self.shared.register(peer, None);
        match self.shared.dial(peer, addr, claim).await {
            Ok(conn) => {
                self.shared
                    .established(peer, id, conn, addr, false, rx)
                    .await;
                Ok(())
            }
            Err(e) => {
                self.shared.unregister(&peer, id);
                Err(e)
            }
        }
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
        if let Some(link) = lock(&self.shared.links).remove(peer)
            && let Some(conn) = link.conn
        {
            conn.close(VarInt::from_u32(close_code::NORMAL), b"bye");
        }
    }

    /// Whether a connection (or one being made) to `peer` is registered.
    pub fn is_connected(&self, peer: &PublicKey) -> bool {
        lock(&self.shared.links)
            .get(peer)
            .is_some_and(|l| l.conn.is_some())
    }

    /// The next event; `None` once the transport is shut down.
    pub async fn next_event(&mut self) -> Option<TransportEvent> {
        self.events.recv().await
    }

    /// Closes every connection and the socket, and waits until the peers
    /// were told.
    pub async fn shutdown(self) {
        self.accept.abort();
        self.shared
            .endpoint
            .close(VarInt::from_u32(close_code::NORMAL), b"shutdown");
        self.shared.endpoint.wait_idle().await;
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        self.accept.abort();
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
        let (id, rx) = shared.register(peer, None);
        tokio::spawn(async move {
            match shared.dial(peer, addr, claim).await {
                Ok(conn) => shared.established(peer, id, conn, addr, false, rx).await,
                Err(error) => {
                    shared.unregister(&peer, id);
                    shared
                        .emit(TransportEvent::ConnectFailed {
                            peer,
                            address: addr.to_string(),
                            error,
                        })
                        .await;
                }
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
        self.events.try_recv().ok()
    }
}

impl Shared {
    /// The transport's clock, read once per received frame.
    fn now(&self) -> LocalTime {
        self.clock.now()
    }

    async fn emit(&self, ev: TransportEvent) {
        // The receiver is gone only when the transport was dropped.
        let _ = self.events.send(ev).await;
    }

    /// Registers a (new or replacing) link to `peer`; sends queue on it.
    fn register(&self, peer: PublicKey, conn: Option<quinn::Connection>) -> (u64, Queue) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.cfg.transport.queue_per_peer.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        lock(&self.links).insert(
            peer,
            Link {
                id,
                tx,
                queued: queued.clone(),
                conn,
            },
        );
        (id, Queue { rx, queued })
    }

    fn unregister(&self, peer: &PublicKey, id: u64) -> bool {
        let mut links = lock(&self.links);
        if links.get(peer).is_some_and(|l| l.id == id) {
            links.remove(peer);
            return true;
        }
        false
    }

    fn is_current(&self, peer: &PublicKey, id: u64) -> bool {
        lock(&self.links).get(peer).is_some_and(|l| l.id == id)
    }

    fn push(&self, peer: &PublicKey, bytes: Vec<u8>) -> Result<(), TransportError> {
        let links = lock(&self.links);
        let link = links
            .get(peer)
            .ok_or(TransportError::NotConnected { peer: *peer })?;
        let full = TransportError::QueueFull {
            peer: *peer,
            cap: self.cfg.transport.queue_per_peer,
            cap_bytes: self.cfg.transport.queue_bytes_per_peer,
        };
        let len = bytes.len();
        let before = link.queued.fetch_add(len, Ordering::AcqRel);
        if before.saturating_add(len) > self.cfg.transport.queue_bytes_per_peer {
            link.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(full);
        }
        link.tx.try_send(bytes).map_err(|e| {
            link.queued.fetch_sub(len, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(_) => full,
                mpsc::error::TrySendError::Closed(_) => {
                    TransportError::NotConnected { peer: *peer }
                }
            }
        })
    }

    async fn dial(
        &self,
        peer: PublicKey,
        addr: SocketAddr,
        claim: Claim,
    ) -> Result<quinn::Connection, TransportError> {
        let address = addr.to_string();
        let handshake = |reason: String| TransportError::Handshake {
            address: address.clone(),
            reason,
        };
        let alpn = match claim {
            Claim::Validator => ALPN_VALIDATOR,
            Claim::ClientOrPartner => ALPN_USER,
        };
        let (tls, presented) =
            tls::client_config(&self.identity, peer, alpn).map_err(|e| handshake(e.to_string()))?;
        let tls = QuicClientConfig::try_from(tls).map_err(|e| handshake(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(tls));
        client.transport_config(self.quic_transport.clone());
        let connecting = self
            .endpoint
            .connect_with(client, addr, SERVER_NAME)
            .map_err(|e| TransportError::Unreachable {
                address: address.clone(),
                reason: e.to_string(),
            })?;
        match connecting.await {
            Ok(conn) => Ok(conn),
            Err(e) => {
                let shown = *lock(&presented);
                Err(match (shown, e) {
                    (Some(k), _) if k != peer => TransportError::WrongKey {
                        address,
                        expected: peer,
                        presented: k,
                    },
                    (_, ConnectionError::TimedOut) => TransportError::Unreachable {
                        address,
                        reason: format!(
                            "no answer within the idle timeout of {:?}",
                            self.cfg.idle_timeout
                        ),
                    },
                    (_, e) => handshake(e.to_string()),
                })
            }
        }
    }

    /// A handshake finished (either way): record it, tell the runtime, start
    /// the stream tasks.
    async fn established(
        self: &Arc<Self>,
        peer: PublicKey,
        id: u64,
        conn: quinn::Connection,
        addr: SocketAddr,
        inbound: bool,
        rx: Queue,
    ) {
        let class = {
            let validators = self
                .validators
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            classify(&peer, &validators)
        };
        {
            let mut links = lock(&self.links);
            match links.get_mut(&peer) {
                Some(l) if l.id == id => l.conn = Some(conn.clone()),
                // Replaced or disconnected while the handshake ran.
                _ => {
                    drop(links);
                    conn.close(VarInt::from_u32(close_code::NORMAL), b"superseded");
                    return;
                }
            }
        }
        self.emit(TransportEvent::Connected {
            peer,
            class,
            inbound,
            address: addr.to_string(),
        })
        .await;
        tokio::spawn(write_loop(conn.clone(), rx));
        tokio::spawn(read_loop(self.clone(), conn, peer, class, id));
    }

    async fn closed(&self, peer: PublicKey, id: u64, error: TransportError) {
        if self.unregister(&peer, id) {
            self.emit(TransportEvent::Closed { peer, error }).await;
        }
    }
}

async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        tokio::spawn(handle_incoming(shared.clone(), incoming));
    }
}

fn peer_key(conn: &quinn::Connection) -> Result<PublicKey, String> {
    let certs = conn
        .peer_identity()
        .ok_or("no client key presented")?
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| "unexpected peer identity type")?;
    let first = certs.first().ok_or("empty peer identity")?;
    tls::key_from_spki(first.as_ref())
}

fn claim_of(conn: &quinn::Connection) -> Claim {
    let alpn = conn
        .handshake_data()
        .and_then(|d| d.downcast::<HandshakeData>().ok())
        .and_then(|d| d.protocol);
    match alpn.as_deref() {
        Some(p) if p == ALPN_VALIDATOR => Claim::Validator,
        _ => Claim::ClientOrPartner,
    }
}

async fn handle_incoming(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let addr = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%addr, error = %e, "inbound handshake failed");
            return;
        }
    };
    let key = match peer_key(&conn) {
        Ok(k) => k,
        Err(reason) => {
            conn.close(VarInt::from_u32(close_code::REFUSED), reason.as_bytes());
            return;
        }
    };
    let verdict = {
        let validators = shared
            .validators
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        admit_peer(&key, claim_of(&conn), &validators)
    };
    match verdict {
        Ok(_) => {
            let (id, rx) = shared.register(key, None);
            shared.established(key, id, conn, addr, true, rx).await;
        }
        Err(error) => {
            let reason = format!(
                "not a listed validator: {key} is named by neither the validator set nor the \
                 bootstrap list"
            );
            conn.close(VarInt::from_u32(close_code::REFUSED), reason.as_bytes());
            tracing::info!(%addr, %key, "refused an unlisted validator claim");
            shared
                .emit(TransportEvent::Refused { peer: key, error })
                .await;
        }
    }
}

async fn write_loop(conn: quinn::Connection, mut queue: Queue) {
    let Ok(mut send) = conn.open_uni().await else {
        return;
    };
    while let Some(mut buf) = queue.rx.recv().await {
        // Coalesce what is already queued into one write: small envelopes
        // then share packets instead of waking the connection per frame.
        while buf.len() < WRITE_BATCH {
            match queue.rx.try_recv() {
                Ok(more) => buf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        queue.queued.fetch_sub(buf.len(), Ordering::AcqRel);
        if send.write_all(&buf).await.is_err() {
            return;
        }
    }
    // Replaced or disconnected: finish our direction cleanly.
    let _ = send.finish();
}

async fn read_loop(
    shared: Arc<Shared>,
    conn: quinn::Connection,
    peer: PublicKey,
    class: PeerClass,
    id: u64,
) {
    loop {
        match conn.accept_uni().await {
            Ok(recv) => {
                tokio::spawn(read_stream(
                    shared.clone(),
                    conn.clone(),
                    recv,
                    peer,
                    class,
                    id,
                ));
            }
            Err(e) => {
                shared.closed(peer, id, map_close(e, peer)).await;
                return;
            }
        }
    }
}

async fn read_stream(
    shared: Arc<Shared>,
    conn: quinn::Connection,
    mut recv: quinn::RecvStream,
    peer: PublicKey,
    class: PeerClass,
    id: u64,
) {
    let max = shared.cfg.transport.max_frame;
    let mut dec = FrameDecoder::new(max);
    loop {
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => {
                let mut input: &[u8] = &chunk.bytes;
                while !input.is_empty() {
                    match dec.decode(&mut input) {
                        Ok(Some(frame)) => {
                            let now = shared.now();
                            let ev = {
                                let mut limiter = lock(&shared.limiter);
                                admit_frame(
                                    &shared.cfg.transport,
                                    &mut limiter,
                                    peer,
                                    class,
                                    &frame,
                                    now,
                                )
                            };
                            shared.emit(ev).await;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            conn.close(
                                VarInt::from_u32(close_code::FRAME),
                                e.to_string().as_bytes(),
                            );
                            shared.closed(peer, id, TransportError::Frame(e)).await;
                            return;
                        }
                    }
                }
            }
            Ok(None) => {
                if let Err(e) = dec.finish() {
                    shared
                        .emit(TransportEvent::Dropped {
                            peer,
                            error: TransportError::Frame(e),
                        })
                        .await;
                }
                // The peer finished its direction; a superseded connection
                // has nothing left to do.
                if !shared.is_current(&peer, id) {
                    conn.close(VarInt::from_u32(close_code::NORMAL), b"superseded");
                }
                return;
            }
            // Connection-level errors are reported by `read_loop`; a reset
            // stream just ends.
            Err(_) => return,
        }
    }
}

/// What a closed connection means, from this side.
fn map_close(e: ConnectionError, peer: PublicKey) -> TransportError {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match e {
        ConnectionError::ApplicationClosed(c)
            if c.error_code == VarInt::from_u32(close_code::REFUSED) =>
        {
            TransportError::RefusedByPeer {
                peer,
                reason: text(&c.reason),
            }
        }
        ConnectionError::ApplicationClosed(c)
            if c.error_code == VarInt::from_u32(close_code::FRAME) =>
        {
            TransportError::Closed {
                peer,
                reason: format!("closed by peer on a framing error: {}", text(&c.reason)),
            }
        }
        ConnectionError::ApplicationClosed(c) => TransportError::Closed {
            peer,
            reason: format!("closed by peer: {}", text(&c.reason)),
        },
        // A TLS alert after our handshake finished: the server refused us.
        ConnectionError::ConnectionClosed(c)
            if (0x100..0x200).contains(&u64::from(c.error_code)) =>
        {
            TransportError::RefusedByPeer {
                peer,
                reason: format!("TLS alert: {c}"),
            }
        }
        ConnectionError::LocallyClosed => TransportError::Closed {
            peer,
            reason: "closed locally".into(),
        },
        ConnectionError::TimedOut => TransportError::Closed {
            peer,
            reason: "idle timeout: the peer stopped answering".into(),
        },
        other => TransportError::Closed {
            peer,
            reason: other.to_string(),
        },
    }
}
