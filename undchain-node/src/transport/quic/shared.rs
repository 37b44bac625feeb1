//! What the transport's tasks share: the admission policy, the links (one
//! outbound queue per key, carried by the key's current connection), the
//! event sink, the clock and the counters.
//!
//! One `std::sync::Mutex` guards the admission and the links; it is held
//! only for bookkeeping (admitting, installing, closing, finding a key's
//! outbox), never across an await, a write, a decode or a signature check.
//!
//! A connection that stops being its key's current one (replaced, or the
//! loser of a simultaneous dial) is **drained**, not cut: its writer
//! finishes its stream and stops, its reader delivers what the peer had
//! already written and closes the connection when the peer's stream ends
//! (or after [`undchain_net::AdmissionConfig::race_window_us`] at the
//! latest). So envelopes sent in the moment both sides dialed are not
//! lost.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use quinn::crypto::rustls::QuicClientConfig;
use quinn::{ConnectionError, VarInt};
use undchain_net::admission::{Admission, AdmissionError, Admitted, ConnId};
use undchain_net::{Claim, PeerClass, TransportError, TransportEvent, TransportStats};
use undchain_types::{LocalTime, PublicKey, SigningKey};

use super::events::EventSink;
use super::lane::Hub;
use super::outbox::{Activity, Full, Outbox, Retire};
use super::{QuicConfig, close_code};
use crate::clock::MonotonicClock;
use crate::transport::tls::{self, ALPN_USER, ALPN_VALIDATOR};

/// The TLS server name sent: with raw keys it names nothing, the key does.
const SERVER_NAME: &str = "undchain";

/// A key's current connection.
pub(super) struct Current {
    pub(super) id: ConnId,
    pub(super) class: PeerClass,
    pub(super) inbound: bool,
    pub(super) address: SocketAddr,
}

/// One key's outbound queue and the connection carrying it.
pub(super) struct Link {
    pub(super) outbox: Arc<Outbox>,
    pub(super) current: Option<Current>,
    /// Dials to the key under way.
    dials: usize,
    /// When frames sent to the key were last reported to the admission's
    /// idle clock.
    sent: Activity,
}

/// An admitted connection, and the signal that retires its writer.
pub(super) struct ConnEntry {
    conn: quinn::Connection,
    retire: Arc<Retire>,
}

/// What the admission and the links hold, under one lock.
pub(super) struct State {
    pub(super) admission: Admission<SocketAddr>,
    pub(super) links: BTreeMap<PublicKey, Link>,
    /// Every admitted connection that is its key's current one.
    pub(super) conns: BTreeMap<ConnId, ConnEntry>,
}

/// The transport's counters.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) frames_shed: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) idle_closed: AtomicU64,
    pub(super) superseded: AtomicU64,
}

pub(super) fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Everything the transport's tasks share.
pub(super) struct Shared {
    pub(super) identity: SigningKey,
    pub(super) key: PublicKey,
    pub(super) cfg: QuicConfig,
    pub(super) quic_transport: Arc<quinn::TransportConfig>,
    pub(super) state: Mutex<State>,
    pub(super) events: EventSink,
    /// Idle connections whose next frame the runtime reads itself.
    pub(super) hub: Arc<Hub>,
    pub(super) clock: MonotonicClock,
    pub(super) endpoint: quinn::Endpoint,
    pub(super) counters: Counters,
}

/// A connection admitted and made its key's current one: what its tasks
/// need.
pub(super) struct Installed {
    pub(super) id: ConnId,
    pub(super) class: PeerClass,
    pub(super) outbox: Arc<Outbox>,
    pub(super) retire: Arc<Retire>,
}

/// What became of a finished dial.
pub(super) enum Dialed {
    /// The connection is the key's current one.
    Installed(quinn::Connection, Installed),
    /// The peer's own dial won: drain this one (we are connected through
    /// the other).
    Lost(quinn::Connection),
}

fn close(conn: &quinn::Connection, code: u32, reason: &str) {
    conn.close(VarInt::from_u32(code), reason.as_bytes());
}

/// Whether `id` is still its key's current connection.
pub(super) fn is_current(state: &State, id: ConnId) -> bool {
    state.conns.contains_key(&id)
}

/// The close code a refusal is sent with.
pub(super) fn refusal_code(e: &AdmissionError) -> u32 {
    match e {
        AdmissionError::NotAListedValidator { .. } => close_code::REFUSED,
        AdmissionError::Duplicate { .. } => close_code::SUPERSEDED,
        _ => close_code::BUSY,
    }
}

impl Shared {
    /// The transport's clock, read once per event fed to the policy.
    pub(super) fn now(&self) -> LocalTime {
        self.clock.now()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn stats(&self) -> TransportStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TransportStats {
            frames_shed: get(&c.frames_shed),
            refused: get(&c.refused),
            retries: get(&c.retries),
            idle_closed: get(&c.idle_closed),
            superseded: get(&c.superseded),
        }
    }

    fn new_link(&self) -> Link {
        let t = &self.cfg.transport;
        Link {
            outbox: Arc::new(Outbox::new(t.queue_per_peer, t.queue_bytes_per_peer)),
            current: None,
            dials: 0,
            sent: Activity::new(self.now(), t.admission.client_idle_us),
        }
    }

    /// The key's current connection, as a `Connected` event, if it has one.
    pub(super) fn connected_event(&self, peer: &PublicKey) -> Option<TransportEvent> {
        let state = self.lock();
        let c = state.links.get(peer)?.current.as_ref()?;
        Some(TransportEvent::Connected {
            peer: *peer,
            class: c.class,
            inbound: c.inbound,
            address: c.address.to_string(),
        })
    }

    /// A dial to `peer` starts: sends queue on its link meanwhile.
    pub(super) fn start_dial(&self, peer: PublicKey) {
        let mut state = self.lock();
        state
            .links
            .entry(peer)
            .or_insert_with(|| self.new_link())
            .dials += 1;
    }

    /// A dial to `peer` ended without a connection; the link goes unless
    /// the key is connected or dialed otherwise.
    fn dial_failed(&self, state: &mut State, peer: &PublicKey) {
        if let Some(l) = state.links.get_mut(peer) {
            l.dials = l.dials.saturating_sub(1);
            if l.dials == 0 && l.current.is_none() {
                state.links.remove(peer);
            }
        }
    }

    /// Sends `bytes` to `peer` (written at once if nothing waits, else
    /// queued), or says why not.
    pub(super) fn push(&self, peer: &PublicKey, bytes: Vec<u8>) -> Result<(), TransportError> {
        let now = self.now();
        let outbox = {
            let mut guard = self.lock();
            let State {
                admission, links, ..
            } = &mut *guard;
            let link = links
                .get_mut(peer)
                .ok_or(TransportError::NotConnected { peer: *peer })?;
            // Traffic either way keeps a client's connection (the reader
            // reports what comes in).
            if let Some(c) = &link.current
                && link.sent.due(now)
            {
                admission.handle_activity(now, c.id);
            }
            link.outbox.clone()
        };
        // Written with the transport's lock released: the lock is for
        // bookkeeping, the outbox has its own.
        outbox
            .push(bytes, now)
            .map_err(|Full| TransportError::QueueFull {
                peer: *peer,
                cap: self.cfg.transport.queue_per_peer,
                cap_bytes: self.cfg.transport.queue_bytes_per_peer,
            })
    }

    /// Runs the TLS/QUIC handshake to `peer` at `addr`.
    pub(super) async fn dial(
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
        connecting.await.map_err(|e| {
            let shown = *presented.lock().unwrap_or_else(PoisonError::into_inner);
            match (shown, e) {
                (Some(k), _) if k != peer => TransportError::WrongKey {
                    address: address.clone(),
                    expected: peer,
                    presented: k,
                },
                (_, ConnectionError::TimedOut) => TransportError::Unreachable {
                    address: address.clone(),
                    reason: format!(
                        "no answer within the idle timeout of {:?}",
                        self.cfg.idle_timeout
                    ),
                },
                (_, ConnectionError::ConnectionClosed(c)) if c.error_code == CONNECTION_REFUSED => {
                    handshake(
                        "the peer refused the connection attempt (busy: no handshake place or \
                         connection slot); try again later"
                            .into(),
                    )
                }
                (_, e) => handshake(e.to_string()),
            }
        })
    }

    /// Retires a connection that is no longer its key's current one: its
    /// writer finishes, its reader drains; closed after the race window at
    /// the latest.
    pub(super) fn retire(&self, conn: quinn::Connection, retire: Option<&Retire>) {
        if let Some(r) = retire {
            r.retire();
        }
        count(&self.counters.superseded);
        let grace = std::time::Duration::from_micros(self.cfg.transport.admission.race_window_us);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            close(
                &conn,
                close_code::SUPERSEDED,
                "superseded by another connection",
            );
        });
    }

    /// Makes an admitted connection its key's current one (retiring the one
    /// it replaces) and returns what its tasks need.
    pub(super) fn install(
        &self,
        state: &mut State,
        peer: PublicKey,
        admitted: Admitted,
        conn: &quinn::Connection,
        address: SocketAddr,
        inbound: bool,
    ) -> Installed {
        if let Some(old) = admitted.replaces
            && let Some(e) = state.conns.remove(&old)
        {
            self.retire(e.conn, Some(&e.retire));
        }
        let retire = Arc::new(Retire::default());
        state.conns.insert(
            admitted.conn,
            ConnEntry {
                conn: conn.clone(),
                retire: retire.clone(),
            },
        );
        if admitted.class == PeerClass::Validator {
            conn.set_receive_window(VarInt::from_u32(self.cfg.validator_receive_window));
        }
        let link = state.links.entry(peer).or_insert_with(|| self.new_link());
        link.current = Some(Current {
            id: admitted.conn,
            class: admitted.class,
            inbound,
            address,
        });
        Installed {
            id: admitted.conn,
            class: admitted.class,
            outbox: link.outbox.clone(),
            retire,
        }
    }

    /// A dial to `peer` at `addr` finished with `result`: admits the
    /// connection (or says why not).
    pub(super) fn dial_done(
        &self,
        peer: PublicKey,
        addr: SocketAddr,
        result: Result<quinn::Connection, TransportError>,
    ) -> Result<Dialed, TransportError> {
        let mut state = self.lock();
        let conn = match result {
            Ok(c) => c,
            Err(e) => {
                self.dial_failed(&mut state, &peer);
                return Err(e);
            }
        };
        let now = self.now();
        match state.admission.admit_outbound(now, peer, &addr) {
            Ok(admitted) => {
                if let Some(l) = state.links.get_mut(&peer) {
                    l.dials = l.dials.saturating_sub(1);
                }
                let inst = self.install(&mut state, peer, admitted, &conn, addr, false);
                Ok(Dialed::Installed(conn, inst))
            }
            Err(e) => {
                let connected = state.links.get(&peer).is_some_and(|l| l.current.is_some());
                self.dial_failed(&mut state, &peer);
                match e {
                    // The peer's own dial won: we are connected through it.
                    AdmissionError::Duplicate { .. } if connected => {
                        self.retire(conn.clone(), None);
                        Ok(Dialed::Lost(conn))
                    }
                    other => {
                        close(&conn, refusal_code(&other), &other.to_string());
                        Err(other.into())
                    }
                }
            }
        }
    }

    /// Connection `id` to `peer` is gone (closed by either side or lost).
    /// Reports `Closed` with `error` if it was the key's current one.
    pub(super) async fn conn_closed(&self, peer: PublicKey, id: ConnId, error: TransportError) {
        let class = {
            let mut state = self.lock();
            state.conns.remove(&id);
            if state.admission.handle_closed(id).is_none() {
                return;
            }
            let Some(link) = state.links.get_mut(&peer) else {
                return;
            };
            let class = link.current.take().map(|c| c.class);
            if link.dials == 0 {
                state.links.remove(&peer);
            }
            class
        };
        if let Some(class) = class {
            self.events
                .control(class, TransportEvent::Closed { peer, error })
                .await;
        }
    }

    /// Closes the client connections that went idle; reports each.
    pub(super) async fn close_idle(&self) {
        let now = self.now();
        let closed: Vec<PublicKey> = {
            let mut state = self.lock();
            let due = state.admission.handle_timeout(now);
            let mut closed = Vec::new();
            for (id, key) in due {
                if let Some(e) = state.conns.remove(&id) {
                    close(&e.conn, close_code::IDLE, "closed for being idle");
                }
                if let Some(link) = state.links.get_mut(&key)
                    && link.current.as_ref().is_some_and(|c| c.id == id)
                {
                    link.current = None;
                    if link.dials == 0 {
                        state.links.remove(&key);
                    }
                    closed.push(key);
                }
            }
            closed
        };
        for peer in closed {
            count(&self.counters.idle_closed);
            let error = TransportError::Closed {
                peer,
                reason: "closed for being idle (no frame within the client idle timeout)".into(),
            };
            self.events
                .control(
                    PeerClass::ClientOrPartner,
                    TransportEvent::Closed { peer, error },
                )
                .await;
        }
    }

    /// Closes the connection to `peer` and forgets its link.
    pub(super) fn disconnect(&self, peer: &PublicKey) {
        let mut state = self.lock();
        if let Some(link) = state.links.remove(peer)
            && let Some(cur) = link.current
        {
            state.admission.handle_closed(cur.id);
            if let Some(e) = state.conns.remove(&cur.id) {
                close(&e.conn, close_code::NORMAL, "bye");
            }
        }
    }
}

/// QUIC's CONNECTION_REFUSED transport error: what `Incoming::refuse`
/// sends.
const CONNECTION_REFUSED: quinn::TransportErrorCode = quinn::TransportErrorCode::CONNECTION_REFUSED;
