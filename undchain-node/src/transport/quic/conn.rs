//! The transport's tasks: accepting (admission before and after the
//! handshake), one writer and one reader per connection, and the idle
//! clock. Each reader decodes and verifies its own frames on the runtime's
//! threads, with no lock held, so connections verify in parallel.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use quinn::crypto::rustls::HandshakeData;
use quinn::{ConnectionError, VarInt};
use rustls::pki_types::CertificateDer;
use undchain_net::admission::{ConnId, HandshakeId, Incoming};
use undchain_net::frame::FrameDecoder;
use undchain_net::{Claim, FrameReader, PeerClass, TransportError, TransportEvent};
use undchain_types::PublicKey;

use super::close_code;
use super::shared::{Installed, Shared, SharedRx, count, is_current, refusal_code};
use crate::transport::tls::{self, ALPN_VALIDATOR};

/// Bytes of queued frames coalesced into one stream write.
const WRITE_BATCH: usize = 64 * 1024;

pub(super) async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        let addr = incoming.remote_address();
        let verdict = shared
            .lock()
            .admission
            .handle_incoming(&addr, incoming.remote_address_validated());
        match verdict {
            Ok(Incoming::Accept(id)) => {
                tokio::spawn(handshake(shared.clone(), incoming, id));
            }
            Ok(Incoming::Retry) => {
                count(&shared.counters.retries);
                if let Err(e) = incoming.retry() {
                    // Already validated (cannot happen: only unvalidated
                    // sources are asked); refuse rather than hold state.
                    e.into_incoming().refuse();
                }
            }
            Err(e) => {
                count(&shared.counters.refused);
                tracing::debug!(%addr, error = %e, "refused a connection attempt");
                incoming.refuse();
            }
        }
    }
}

/// Gives the handshake's place back if the task ends before the handshake
/// finished, whichever way.
struct Place<'a> {
    shared: &'a Shared,
    id: Option<HandshakeId>,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let _ = self.shared.lock().admission.handle_handshake_failed(id);
        }
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

async fn handshake(shared: Arc<Shared>, incoming: quinn::Incoming, id: HandshakeId) {
    let mut place = Place {
        shared: &shared,
        id: Some(id),
    };
    let addr = incoming.remote_address();
    let conn = match incoming.accept() {
        Ok(connecting) => match connecting.await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "inbound handshake failed");
                return;
            }
        },
        Err(e) => {
            tracing::debug!(%addr, error = %e, "inbound attempt failed");
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
    let now = shared.now();
    let admitted = {
        let mut state = shared.lock();
        let Some(id) = place.id.take() else { return };
        let source = state.admission.finish_handshake(id);
        source.and_then(|src| {
            state
                .admission
                .admit_inbound(now, key, claim_of(&conn), &src)
                .map(|a| shared.install(&mut state, key, a, &conn, addr, true))
        })
    };
    match admitted {
        Ok(inst) => {
            let ev = TransportEvent::Connected {
                peer: key,
                class: inst.class,
                inbound: true,
                address: addr.to_string(),
            };
            shared.events.control(inst.class, ev).await;
            run(shared.clone(), conn, key, inst);
        }
        // Our own dial won: read what the peer wrote on its connection,
        // then let it go.
        Err(undchain_net::AdmissionError::Duplicate { .. }) => {
            count(&shared.counters.refused);
            shared.retire(conn.clone(), None);
            drain(shared.clone(), conn, key);
        }
        Err(e) => {
            let reason = match &e {
                undchain_net::AdmissionError::NotAListedValidator { .. } => format!(
                    "not a listed validator: {key} is named by neither the validator set nor \
                     the bootstrap list"
                ),
                other => other.to_string(),
            };
            conn.close(VarInt::from_u32(refusal_code(&e)), reason.as_bytes());
            count(&shared.counters.refused);
            tracing::info!(%addr, %key, error = %e, "refused a connection");
            shared.events.refused(TransportEvent::Refused {
                peer: key,
                error: e.into(),
            });
        }
    }
}

/// Starts an installed connection's writer and reader.
pub(super) fn run(shared: Arc<Shared>, conn: quinn::Connection, peer: PublicKey, inst: Installed) {
    tokio::spawn(write_loop(
        shared.clone(),
        conn.clone(),
        inst.id,
        inst.rx,
        inst.queued,
        inst.retire,
    ));
    tokio::spawn(read_loop(shared, conn, peer, inst.class, Some(inst.id)));
}

/// Reads a connection that lost a simultaneous dial until the peer's
/// stream ends, then closes it; nothing is written on it.
pub(super) fn drain(shared: Arc<Shared>, conn: quinn::Connection, peer: PublicKey) {
    let class = undchain_net::transport::classify(&peer, shared.lock().admission.validator_keys());
    tokio::spawn(read_loop(shared, conn, peer, class, None));
}

async fn write_loop(
    shared: Arc<Shared>,
    conn: quinn::Connection,
    id: ConnId,
    rx: SharedRx,
    queued: Arc<AtomicUsize>,
    retire: Arc<Notify>,
) {
    let mut activity = Activity::new(&shared);
    let Ok(mut send) = conn.open_uni().await else {
        return;
    };
    // The key's queue: held by its current connection's writer; a retired
    // writer finishes its stream and lets go.
    let mut rx = tokio::select! {
        g = rx.lock_owned() => g,
        _ = retire.notified() => {
            let _ = send.finish();
            return;
        }
        _ = conn.closed() => return,
    };
    loop {
        let mut buf = tokio::select! {
            biased;
            _ = retire.notified() => break,
            m = rx.recv() => match m {
                Some(b) => b,
                None => break,
            },
            _ = conn.closed() => return,
        };
        // Coalesce what is already queued into one write: small envelopes
        // then share packets instead of waking the connection per frame.
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(more) => buf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        queued.fetch_sub(buf.len(), Ordering::AcqRel);
        activity.seen(&shared, id);
        if send.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = send.finish();
}

async fn read_loop(
    shared: Arc<Shared>,
    conn: quinn::Connection,
    peer: PublicKey,
    class: PeerClass,
    id: Option<ConnId>,
) {
    let cfg = &shared.cfg.transport;
    let mut reader = FrameReader::new(cfg, peer, class, shared.now());
    let quota = shared.events.quota();
    let mut activity = Activity::new(&shared);
    // One unidirectional stream at a time (the transport allows one), read
    // in this task: the rate bucket and key cache are the connection's.
    loop {
        let mut recv = match conn.accept_uni().await {
            Ok(r) => r,
            Err(e) => {
                if let Some(id) = id {
                    shared.conn_closed(peer, id, map_close(e, peer)).await;
                }
                return;
            }
        };
        let mut dec = FrameDecoder::new(cfg.max_frame);
        loop {
            let chunk = match recv.read_chunk(64 * 1024, true).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    if let Err(e) = dec.finish() {
                        let ev = TransportEvent::Dropped {
                            peer,
                            error: TransportError::Frame(e),
                        };
                        shared.events.frame(class, &quota, ev, 0).await;
                    }
                    // A drained connection is done once its peer finished.
                    if !id.is_some_and(|id| is_current(&shared.lock(), id)) {
                        conn.close(VarInt::from_u32(close_code::SUPERSEDED), b"superseded");
                    }
                    break;
                }
                // A reset stream just ends; the connection's fate comes
                // from `accept_uni`.
                Err(_) => break,
            };
            if let Some(id) = id {
                activity.seen(&shared, id);
            }
            let mut input: &[u8] = &chunk.bytes;
            while !input.is_empty() {
                let frame = match dec.decode(&mut input) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => {
                        conn.close(
                            VarInt::from_u32(close_code::FRAME),
                            e.to_string().as_bytes(),
                        );
                        if let Some(id) = id {
                            shared.conn_closed(peer, id, TransportError::Frame(e)).await;
                        }
                        return;
                    }
                };
                match reader.admit(cfg, &frame, shared.now()) {
                    Some(ev) => shared.events.frame(class, &quota, ev, frame.len()).await,
                    None => count(&shared.counters.frames_shed),
                }
                // Verification takes tens of microseconds: let the other
                // connections' tasks run between frames when due.
                tokio::task::coop::consume_budget().await;
            }
        }
    }
}

/// Reports a connection's traffic to the admission's idle clock, a few
/// times per idle period at most (one lock per report, not per frame).
struct Activity {
    last: undchain_types::LocalTime,
    every: u64,
}

impl Activity {
    fn new(shared: &Shared) -> Self {
        Activity {
            last: shared.now(),
            every: shared.cfg.transport.admission.client_idle_us / 4,
        }
    }

    fn seen(&mut self, shared: &Shared, id: ConnId) {
        let now = shared.now();
        if now.since(self.last) >= self.every {
            self.last = now;
            shared.lock().admission.handle_activity(now, id);
        }
    }
}

/// Wakes when the admission says an idle client is due and closes it.
pub(super) async fn idle_loop(shared: Arc<Shared>) {
    loop {
        let due = shared.lock().admission.poll_timeout();
        let wait = due.map_or(Duration::from_secs(1), |t| {
            Duration::from_micros(t.since(shared.now())).min(Duration::from_secs(1))
        });
        tokio::time::sleep(wait).await;
        shared.close_idle().await;
    }
}

/// What a closed connection means, from this side.
pub(super) fn map_close(e: ConnectionError, peer: PublicKey) -> TransportError {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match e {
        ConnectionError::ApplicationClosed(c)
            if c.error_code == VarInt::from_u32(close_code::REFUSED)
                || c.error_code == VarInt::from_u32(close_code::BUSY) =>
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
