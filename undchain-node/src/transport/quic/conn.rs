//! The transport's tasks: accepting (admission before and after the
//! handshake), one writer and one reader per connection, and the idle
//! clock. Each reader decodes and verifies its own frames on the runtime's
//! threads, with no lock held, so connections verify in parallel.

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::HandshakeData;
use quinn::{ConnectionError, VarInt};
use rustls::pki_types::CertificateDer;
use undchain_net::admission::{ConnId, HandshakeId, Incoming};
use undchain_net::frame::FrameDecoder;
use undchain_net::{Claim, FrameReader, PeerClass, TransportError, TransportEvent};
use undchain_types::PublicKey;

use super::close_code;
use super::events::PeerQuota;
use super::lane::{Lane, ReadSide};
use super::outbox::{Activity, Outbox, Retire};
use super::shared::{Installed, Shared, count, is_current, refusal_code};
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
    tokio::spawn(write_loop(conn.clone(), inst.outbox, inst.retire));
    tokio::spawn(read_loop(shared, conn, peer, inst.class, Some(inst.id)));
}

/// Reads a connection that lost a simultaneous dial until the peer's
/// stream ends, then closes it; nothing is written on it.
pub(super) fn drain(shared: Arc<Shared>, conn: quinn::Connection, peer: PublicKey) {
    let class = undchain_net::transport::classify(&peer, shared.lock().admission.validator_keys());
    tokio::spawn(read_loop(shared, conn, peer, class, None));
}

/// Carries the key's outbox on this connection: parks the stream for
/// senders to write onto directly ([`Outbox::push`]) and writes what they
/// queued when the stream could not take it at once.
async fn write_loop(conn: quinn::Connection, outbox: Arc<Outbox>, retire: Arc<Retire>) {
    let Ok(stream) = conn.open_uni().await else {
        return;
    };
    let mut stream = Some(stream);
    // The key's outbox: carried by its current connection's writer; a
    // retired writer finishes its stream and lets go.
    let _carrying = tokio::select! {
        g = outbox.writer().lock_owned() => g,
        _ = retire.retired() => {
            finish(stream);
            return;
        }
        _ = conn.closed() => return,
    };
    while !retire.is_retired() {
        match outbox.take_batch(&mut stream, WRITE_BATCH) {
            Some(buf) => {
                let Some(s) = stream.as_mut() else { return };
                if s.write_all(&buf).await.is_err() {
                    outbox.unpark();
                    return;
                }
            }
            None => tokio::select! {
                biased;
                _ = retire.retired() => break,
                _ = outbox.queued() => {}
                _ = conn.closed() => {
                    outbox.unpark();
                    return;
                }
            },
        }
    }
    finish(stream.or_else(|| outbox.unpark()));
}

fn finish(stream: Option<quinn::SendStream>) {
    if let Some(mut s) = stream {
        let _ = s.finish();
    }
}

/// One connection's reading, by its task (module `lane`: the runtime
/// reads the single frames of an idle connection itself).
struct ConnReader {
    shared: Arc<Shared>,
    conn: quinn::Connection,
    peer: PublicKey,
    class: PeerClass,
    /// `None` for a drained connection (not its key's current one).
    id: Option<ConnId>,
    lane: Arc<Lane>,
    quota: PeerQuota,
}

/// How reading one stream ended.
enum StreamEnd {
    /// The stream ended: the peer may open the next.
    Next,
    /// The connection is closed (and reported).
    Closed,
}

async fn read_loop(
    shared: Arc<Shared>,
    conn: quinn::Connection,
    peer: PublicKey,
    class: PeerClass,
    id: Option<ConnId>,
) {
    let cfg = &shared.cfg.transport;
    let now = shared.now();
    let side = ReadSide::new(
        FrameDecoder::new(cfg.max_frame),
        FrameReader::new(cfg, peer, class, now),
        Activity::new(now, cfg.admission.client_idle_us),
    );
    let lane = Lane::new(shared.hub.clone(), side, id);
    // quinn may hold the last reference to the lane (in the stream's waker)
    // and drop it under its connection lock: the stream must be gone by
    // then, dropped here, where the lock is free.
    let _stream = DropStream(lane.clone());
    let r = ConnReader {
        lane,
        quota: shared.events.quota(),
        shared,
        conn,
        peer,
        class,
        id,
    };
    // One unidirectional stream at a time (the transport allows one); the
    // rate bucket and key cache are the connection's.
    loop {
        let recv = match r.conn.accept_uni().await {
            Ok(recv) => recv,
            Err(e) => {
                if let Some(id) = r.id {
                    r.shared.conn_closed(r.peer, id, map_close(e, r.peer)).await;
                }
                return;
            }
        };
        {
            let mut side = r.lane.lock();
            side.recv = Some(recv);
            side.dec = FrameDecoder::new(r.shared.cfg.transport.max_frame);
        }
        if let StreamEnd::Closed = r.read_stream().await {
            return;
        }
    }
}

/// Drops a lane's stream when its reader task ends, whichever way.
struct DropStream(Arc<Lane>);

impl Drop for DropStream {
    fn drop(&mut self) {
        let recv = self.0.lock().recv.take();
        drop(recv);
    }
}

impl ConnReader {
    async fn read_stream(&self) -> StreamEnd {
        let shared = &self.shared;
        loop {
            let Some(read) = self.lane.next_read() else {
                self.lane.wait().await;
                continue;
            };
            let chunk = match read {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    self.stream_finished().await;
                    return StreamEnd::Next;
                }
                // A reset stream just ends; the connection's fate comes
                // from `accept_uni`.
                Err(_) => {
                    self.lane.lock().recv = None;
                    return StreamEnd::Next;
                }
            };
            self.lane.note_chunk(&self.lane.lock(), &chunk.bytes);
            let Some(frames) = self.frames(&chunk.bytes).await else {
                return StreamEnd::Closed;
            };
            // Only whole frames are traffic: a peer dripping the bytes of
            // one frame slowly keeps no slot of ours (an idle client).
            if frames == 0 {
                continue;
            }
            let now = shared.now();
            let report = self.lane.lock().activity.due(now);
            if let Some(id) = self.id
                && report
            {
                shared.lock().admission.handle_activity(now, id);
            }
        }
    }

    /// Sheds, decodes and verifies the frames of one chunk, queueing their
    /// events; how many frames the chunk ended, `None` once the connection
    /// is closed (a framing error).
    async fn frames(&self, mut input: &[u8]) -> Option<usize> {
        let shared = &self.shared;
        let cfg = &shared.cfg.transport;
        let mut frames = 0;
        while !input.is_empty() {
            let now = shared.now();
            let step = {
                let mut side = self.lane.lock();
                let side = &mut *side;
                side.dec
                    .decode(&mut input)
                    .map(|frame| frame.map(|f| (side.reader.admit(cfg, &f, now), f.len())))
            };
            match step {
                Ok(None) => break,
                Ok(Some((Some(ev), len))) => {
                    frames += 1;
                    shared.events.frame(self.class, &self.quota, ev, len).await;
                }
                Ok(Some((None, _))) => {
                    frames += 1;
                    count(&shared.counters.frames_shed);
                }
                Err(e) => {
                    self.conn.close(
                        VarInt::from_u32(close_code::FRAME),
                        e.to_string().as_bytes(),
                    );
                    if let Some(id) = self.id {
                        shared
                            .conn_closed(self.peer, id, TransportError::Frame(e))
                            .await;
                    }
                    return None;
                }
            }
            // Verification takes tens of microseconds: let the other
            // connections' tasks run between frames when due.
            tokio::task::coop::consume_budget().await;
        }
        Some(frames)
    }

    /// The peer finished its stream: a frame cut short is reported; a
    /// drained connection is done.
    async fn stream_finished(&self) {
        let finished = {
            let mut side = self.lane.lock();
            side.recv = None;
            side.dec.finish()
        };
        if let Err(e) = finished {
            let ev = TransportEvent::Dropped {
                peer: self.peer,
                error: TransportError::Frame(e),
            };
            self.shared
                .events
                .frame(self.class, &self.quota, ev, 0)
                .await;
        }
        if !self
            .id
            .is_some_and(|id| is_current(&self.shared.lock(), id))
        {
            self.conn
                .close(VarInt::from_u32(close_code::SUPERSEDED), b"superseded");
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
