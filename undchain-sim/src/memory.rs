//! An in-memory network for tests and the simulator: the same
//! [`Transport`] contract as the QUIC transport, without sockets.
//!
//! Nodes join a [`MemoryNetwork`] under an address and a key. Connecting
//! checks the key found at the address against the expected one (an impostor
//! is refused with [`TransportError::WrongKey`]), and both sides ask their
//! [`Admission`], the policy the QUIC transport carries out too: handshake
//! places, separate validator and client budgets, per-host limits (the host
//! of `"10.0.0.5:7"` is `"10.0.0.5"`), one connection per key, idle clients
//! closed. A client refused after its handshake sees `Connected` and then
//! `Closed` with [`TransportError::RefusedByPeer`], as the TLS 1.3 quirk
//! makes it over QUIC. Envelopes travel as frames through a
//! [`FrameDecoder`] per connection and each received frame goes through
//! that connection's [`FrameReader`], so framing, load shedding and
//! verification behave as on the wire; a peer with
//! [`TransportConfig::events_per_peer`] events waiting at the receiver is
//! refused with [`TransportError::QueueFull`] (what QUIC flow control does
//! to a sender whose reader waits). Delivery is immediate and in order;
//! time (for rate limits and idle clients) is the network's clock, set
//! with [`MemoryNetwork::set_now`]. A node can be taken down
//! ([`MemoryNetwork::set_down`]) to model a dead validator.
//!
//! Shared state sits behind an `Arc<Mutex<_>>` so transports can move
//! between threads; nothing here spawns one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use undchain_types::msg::Endpoint;
use undchain_types::{LocalTime, PublicKey, SignedEnvelope};

use undchain_net::admission::{Admission, AdmissionError, ConnId, Incoming};
use undchain_net::frame::{FrameDecoder, FrameError, frame_envelope};
use undchain_net::transport::{
    Claim, FrameReader, PeerClass, Transport, TransportConfig, TransportError, TransportEvent,
    TransportStats,
};

#[derive(Debug)]
struct Conn {
    id: ConnId,
    remote_addr: String,
    class: PeerClass,
    inbound: bool,
    decoder: FrameDecoder,
    reader: FrameReader,
    /// Received events of this peer waiting in the node's queue.
    waiting: usize,
}

#[derive(Debug)]
struct Node {
    key: PublicKey,
    cfg: TransportConfig,
    down: bool,
    events: VecDeque<TransportEvent>,
    conns: BTreeMap<PublicKey, Conn>,
    admission: Admission<String>,
    stats: TransportStats,
}

impl Node {
    fn conn(
        &self,
        id: ConnId,
        remote_addr: String,
        class: PeerClass,
        inbound: bool,
        peer: PublicKey,
        now: LocalTime,
    ) -> Conn {
        Conn {
            id,
            remote_addr,
            class,
            inbound,
            decoder: FrameDecoder::new(self.cfg.max_frame),
            reader: FrameReader::new(&self.cfg, peer, class, now),
            waiting: 0,
        }
    }

    /// Forgets the connection to `peer` and tells this node's runtime.
    fn close(&mut self, peer: PublicKey, error: TransportError) {
        if let Some(c) = self.conns.remove(&peer) {
            self.admission.handle_closed(c.id);
            self.events
                .push_back(TransportEvent::Closed { peer, error });
        }
    }
}

#[derive(Debug, Default)]
struct Net {
    nodes: BTreeMap<String, Node>,
    now: LocalTime,
}

impl Net {
    /// Closes `from`'s connection to the node at `to` (if any) with `error`
    /// on that side, and `from`'s side with `local`.
    fn close_both(
        &mut self,
        from: &str,
        peer_addr: &str,
        local: TransportError,
        remote: TransportError,
    ) {
        let Some(me) = self.nodes.get(from).map(|n| n.key) else {
            return;
        };
        let mut peer = None;
        if let Some(n) = self.nodes.get_mut(peer_addr) {
            peer = Some(n.key);
            n.close(me, remote);
        }
        if let (Some(peer), Some(n)) = (peer, self.nodes.get_mut(from)) {
            n.close(peer, local);
        }
    }
}

/// The shared in-memory network.
#[derive(Debug, Clone, Default)]
pub struct MemoryNetwork {
    inner: Arc<Mutex<Net>>,
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Net> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters for tests; carry on with the inner value.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the network at `address` under `key`.
    pub fn join(
        &self,
        address: &str,
        key: PublicKey,
        cfg: TransportConfig,
    ) -> Result<MemoryTransport, TransportError> {
        let mut net = self.lock();
        if net.nodes.contains_key(address) {
            return Err(TransportError::BadAddress {
                address: address.to_owned(),
                reason: "already in use".into(),
            });
        }
        net.nodes.insert(
            address.to_owned(),
            Node {
                key,
                cfg,
                down: false,
                events: VecDeque::new(),
                conns: BTreeMap::new(),
                admission: Admission::new(cfg.admission, key),
                stats: TransportStats::default(),
            },
        );
        Ok(MemoryTransport {
            net: self.clone(),
            address: address.to_owned(),
            key,
        })
    }

    /// Sets the network's clock, which the rate limits of every node read
    /// (a simulator passes its virtual time), and closes the client
    /// connections that are idle by then.
    pub fn set_now(&self, now: LocalTime) {
        let mut net = self.lock();
        net.now = now;
        let mut idle = Vec::new();
        for (addr, node) in &mut net.nodes {
            for (_, key) in node.admission.handle_timeout(now) {
                if let Some(c) = node.conns.get(&key) {
                    idle.push((addr.clone(), c.remote_addr.clone()));
                }
            }
        }
        for (addr, remote) in idle {
            if let Some(n) = net.nodes.get_mut(&addr) {
                n.stats.idle_closed += 1;
            }
            let reason = "closed for being idle".to_owned();
            let (me, peer) = match (net.nodes.get(&addr), net.nodes.get(&remote)) {
                (Some(a), Some(b)) => (a.key, b.key),
                _ => continue,
            };
            net.close_both(
                &addr,
                &remote,
                TransportError::Closed {
                    peer,
                    reason: reason.clone(),
                },
                TransportError::Closed {
                    peer: me,
                    reason: format!("closed by peer: {reason}"),
                },
            );
        }
    }

    /// Takes the node at `address` down (connections to it close, new ones
    /// fail as unreachable) or brings it back.
    pub fn set_down(&self, address: &str, down: bool) {
        let mut net = self.lock();
        let Some(node) = net.nodes.get_mut(address) else {
            return;
        };
        node.down = down;
        if !down {
            return;
        }
        let key = node.key;
        let remotes: Vec<String> = node.conns.values().map(|c| c.remote_addr.clone()).collect();
        for remote in remotes {
            net.close_both(
                address,
                &remote,
                TransportError::Shutdown,
                TransportError::Closed {
                    peer: key,
                    reason: "peer went down".into(),
                },
            );
        }
        if let Some(node) = net.nodes.get_mut(address) {
            node.events.clear();
        }
    }

    /// Writes raw `bytes` onto the stream from the node at `from` to the node
    /// at `to`, as if the sender had put them on the wire: for framing tests.
    pub fn inject_raw(&self, from: &str, to: &str, bytes: &[u8]) -> Result<(), TransportError> {
        let mut net = self.lock();
        let from_key = net
            .nodes
            .get(from)
            .map(|n| n.key)
            .ok_or_else(|| unreachable(from))?;
        deliver(&mut net, from, from_key, to, bytes)
    }
}

fn unreachable(address: &str) -> TransportError {
    TransportError::Unreachable {
        address: address.to_owned(),
        reason: "no node listens there".into(),
    }
}

/// Feeds `bytes` from `from_key` into `to`'s decoder for that connection.
fn deliver(
    net: &mut Net,
    from_addr: &str,
    from_key: PublicKey,
    to: &str,
    mut bytes: &[u8],
) -> Result<(), TransportError> {
    let now = net.now;
    let node = net.nodes.get_mut(to).ok_or_else(|| unreachable(to))?;
    let to_key = node.key;
    let Node {
        conns,
        events,
        cfg,
        admission,
        stats,
        ..
    } = node;
    let conn = conns
        .get_mut(&from_key)
        .ok_or(TransportError::NotConnected { peer: to_key })?;
    admission.handle_activity(now, conn.id);
    let mut framing_lost: Option<FrameError> = None;
    while !bytes.is_empty() {
        match conn.decoder.decode(&mut bytes) {
            Ok(Some(frame)) => match conn.reader.admit(cfg, &frame, now) {
                Some(ev) => {
                    conn.waiting += 1;
                    events.push_back(ev);
                }
                None => stats.frames_shed += 1,
            },
            Ok(None) => break,
            Err(e) => {
                framing_lost = Some(e);
                break;
            }
        }
    }
    if let Some(e) = framing_lost {
        // Framing lost: close the connection on both sides, with the reason.
        net.close_both(
            to,
            from_addr,
            TransportError::Frame(e.clone()),
            TransportError::Closed {
                peer: to_key,
                reason: format!("closed by peer: {e}"),
            },
        );
    }
    Ok(())
}

/// One node's handle on a [`MemoryNetwork`].
#[derive(Debug)]
pub struct MemoryTransport {
    net: MemoryNetwork,
    address: String,
    key: PublicKey,
}

impl MemoryTransport {
    /// This node's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether a connection to `peer` is up.
    pub fn is_connected(&self, peer: &PublicKey) -> bool {
        self.net
            .lock()
            .nodes
            .get(&self.address)
            .is_some_and(|n| n.conns.contains_key(peer))
    }

    /// Drains every ready event.
    pub fn drain_events(&mut self) -> Vec<TransportEvent> {
        core::iter::from_fn(|| self.poll_event()).collect()
    }

    /// What this node's admission holds now.
    pub fn admission_counts(&self) -> undchain_net::AdmissionCounts {
        self.net
            .lock()
            .nodes
            .get(&self.address)
            .map(|n| n.admission.counts())
            .unwrap_or_default()
    }
}

/// The accepting side's answer to a connection from `me` (key `my_key`,
/// claiming `claim`): the class it was admitted as, or why not, and
/// whether the refusal came after the handshake (the dialer then sees the
/// TLS 1.3 quirk).
fn accept(
    n: &mut Node,
    me: &str,
    my_key: PublicKey,
    claim: Claim,
    now: LocalTime,
) -> Result<PeerClass, (AdmissionError, bool)> {
    let id = match n.admission.handle_incoming(&me.to_owned(), true) {
        Ok(Incoming::Accept(id)) => id,
        // A validated source is never asked to retry.
        Ok(Incoming::Retry) => unreachable!("validated sources are not asked to retry"),
        Err(e) => return Err((e, false)),
    };
    let source = n.admission.finish_handshake(id).map_err(|e| (e, false))?;
    let admitted = n
        .admission
        .admit_inbound(now, my_key, claim, &source)
        .map_err(|e| (e, true))?;
    if admitted.replaces.is_some() {
        n.stats.superseded += 1;
    }
    let conn = n.conn(
        admitted.conn,
        me.to_owned(),
        admitted.class,
        true,
        my_key,
        now,
    );
    n.conns.insert(my_key, conn);
    n.events.push_back(TransportEvent::Connected {
        peer: my_key,
        class: admitted.class,
        inbound: true,
        address: me.to_owned(),
    });
    Ok(admitted.class)
}

impl Transport for MemoryTransport {
    fn local_key(&self) -> PublicKey {
        self.key
    }

    fn set_validator_keys(&mut self, keys: BTreeSet<PublicKey>) {
        if let Some(n) = self.net.lock().nodes.get_mut(&self.address) {
            n.admission.set_validator_keys(keys);
        }
    }

    fn connect(
        &mut self,
        peer: PublicKey,
        endpoint: &Endpoint,
        claim: Claim,
    ) -> Result<(), TransportError> {
        let mut net = self.net.lock();
        let net = &mut *net;
        let now = net.now;
        let remote = endpoint.address.as_str().to_owned();
        let me = self.address.clone();
        let my_key = self.key;
        let failed = |error| TransportEvent::ConnectFailed {
            peer,
            address: remote.clone(),
            error,
        };
        let node = net.nodes.get_mut(&me).ok_or(TransportError::Shutdown)?;
        if let Some(c) = node.conns.get(&peer) {
            // Already connected: one connection per key; report it again.
            let ev = TransportEvent::Connected {
                peer,
                class: c.class,
                inbound: c.inbound,
                address: c.remote_addr.clone(),
            };
            node.events.push_back(ev);
            return Ok(());
        }
        let problem = match net.nodes.get(&remote) {
            None => Some(unreachable(&remote)),
            Some(n) if n.down => Some(unreachable(&remote)),
            Some(n) if n.key != peer => Some(TransportError::WrongKey {
                address: remote.clone(),
                expected: peer,
                presented: n.key,
            }),
            Some(_) => None,
        };
        let node = net.nodes.get_mut(&me).ok_or(TransportError::Shutdown)?;
        if let Some(error) = problem {
            node.events.push_back(failed(error));
            return Ok(());
        }
        let mine = match node.admission.admit_outbound(now, peer, &remote) {
            Ok(a) => a,
            Err(e) => {
                node.events.push_back(failed(e.into()));
                return Ok(());
            }
        };
        let Some(n) = net.nodes.get_mut(&remote) else {
            return Err(TransportError::Shutdown);
        };
        let outcome = accept(n, &me, my_key, claim, now);
        if let Err((error, _)) = &outcome {
            n.stats.refused += 1;
            n.events.push_back(TransportEvent::Refused {
                peer: my_key,
                error: error.clone().into(),
            });
        }
        let node = net.nodes.get_mut(&me).ok_or(TransportError::Shutdown)?;
        match outcome {
            Err((error, false)) => {
                node.admission.handle_closed(mine.conn);
                node.events.push_back(failed(TransportError::Handshake {
                    address: remote.clone(),
                    reason: format!("the peer refused the connection attempt: {error}"),
                }));
            }
            Err((error, true)) => {
                // The quirk: the client's connect succeeds first.
                node.admission.handle_closed(mine.conn);
                node.events.push_back(TransportEvent::Connected {
                    peer,
                    class: mine.class,
                    inbound: false,
                    address: remote,
                });
                let reason = match error {
                    AdmissionError::NotAListedValidator { .. } => format!(
                        "not a listed validator: {my_key} is named by neither the validator \
                         set nor the bootstrap list"
                    ),
                    other => other.to_string(),
                };
                node.events.push_back(TransportEvent::Closed {
                    peer,
                    error: TransportError::RefusedByPeer { peer, reason },
                });
            }
            Ok(_) => {
                node.events.push_back(TransportEvent::Connected {
                    peer,
                    class: mine.class,
                    inbound: false,
                    address: remote.clone(),
                });
                let conn = node.conn(mine.conn, remote, mine.class, false, peer, now);
                node.conns.insert(peer, conn);
            }
        }
        Ok(())
    }

    fn send(&mut self, peer: &PublicKey, envelope: &SignedEnvelope) -> Result<(), TransportError> {
        let mut net = self.net.lock();
        let node = net
            .nodes
            .get(&self.address)
            .ok_or(TransportError::Shutdown)?;
        let conn = node
            .conns
            .get(peer)
            .ok_or(TransportError::NotConnected { peer: *peer })?;
        let remote = conn.remote_addr.clone();
        let id = conn.id;
        let bytes = frame_envelope(envelope, node.cfg.max_frame)?;
        let (cap, cap_bytes) = (node.cfg.queue_per_peer, node.cfg.queue_bytes_per_peer);
        // The receiver's reader waits with events_per_peer of ours queued:
        // flow control stops us.
        let backed_up = net.nodes.get(&remote).is_some_and(|r| {
            r.conns
                .get(&self.key)
                .is_some_and(|c| c.waiting >= r.cfg.events_per_peer.max(1))
        });
        if backed_up {
            return Err(TransportError::QueueFull {
                peer: *peer,
                cap,
                cap_bytes,
            });
        }
        deliver(&mut net, &self.address, self.key, &remote, &bytes)?;
        let now = net.now;
        if let Some(n) = net.nodes.get_mut(&self.address) {
            n.admission.handle_activity(now, id);
        }
        Ok(())
    }

    fn disconnect(&mut self, peer: &PublicKey) {
        let mut net = self.net.lock();
        let Some(remote) = net
            .nodes
            .get(&self.address)
            .and_then(|n| n.conns.get(peer))
            .map(|c| c.remote_addr.clone())
        else {
            return;
        };
        if let Some(n) = net.nodes.get_mut(&self.address)
            && let Some(c) = n.conns.remove(peer)
        {
            n.admission.handle_closed(c.id);
        }
        if let Some(other) = net.nodes.get_mut(&remote) {
            other.close(
                self.key,
                TransportError::Closed {
                    peer: self.key,
                    reason: "closed by peer".into(),
                },
            );
        }
    }

    fn poll_event(&mut self) -> Option<TransportEvent> {
        let mut net = self.net.lock();
        let node = net.nodes.get_mut(&self.address)?;
        let ev = node.events.pop_front()?;
        if let TransportEvent::Received { peer, .. } | TransportEvent::Dropped { peer, .. } = &ev
            && let Some(c) = node.conns.get_mut(peer)
        {
            c.waiting = c.waiting.saturating_sub(1);
        }
        Some(ev)
    }

    fn stats(&self) -> TransportStats {
        self.net
            .lock()
            .nodes
            .get(&self.address)
            .map(|n| n.stats)
            .unwrap_or_default()
    }
}
