//! An in-memory network for tests and the simulator: the same
//! [`Transport`] contract as the QUIC transport, without sockets.
//!
//! Nodes join a [`MemoryNetwork`] under an address and a key. Connecting
//! checks the key found at the address against the expected one (an impostor
//! is refused with [`TransportError::WrongKey`]), and the accepting side
//! applies [`admit_peer`]; a refused client sees `Connected` and then
//! `Closed` with [`TransportError::RefusedByPeer`], as the TLS 1.3 quirk
//! makes it over QUIC. Envelopes travel as frames through a
//! [`FrameDecoder`] per connection and each received frame goes through
//! [`admit_frame`], so framing, rate limits and verification behave as on
//! the wire. Delivery is immediate and in order; time (for rate limits) is
//! the network's clock, set with [`MemoryNetwork::set_now`]. A node can be
//! taken down ([`MemoryNetwork::set_down`]) to model a dead validator.
//!
//! Shared state sits behind an `Arc<Mutex<_>>` so transports can move
//! between threads; nothing here spawns one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use undchain_types::msg::Endpoint;
use undchain_types::{LocalTime, PublicKey, SignedEnvelope};

use undchain_net::frame::{FrameDecoder, FrameError, frame_envelope};
use undchain_net::rate::RateLimiter;
use undchain_net::transport::{
    Claim, PeerClass, Transport, TransportConfig, TransportError, TransportEvent, admit_frame,
    admit_peer, classify,
};

#[derive(Debug)]
struct Conn {
    remote_addr: String,
    class: PeerClass,
    decoder: FrameDecoder,
}

#[derive(Debug)]
struct Node {
    key: PublicKey,
    cfg: TransportConfig,
    validators: BTreeSet<PublicKey>,
    down: bool,
    events: VecDeque<TransportEvent>,
    conns: BTreeMap<PublicKey, Conn>,
    limiter: RateLimiter,
}

#[derive(Debug, Default)]
struct Net {
    nodes: BTreeMap<String, Node>,
    now: LocalTime,
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
                validators: BTreeSet::new(),
                down: false,
                events: VecDeque::new(),
                conns: BTreeMap::new(),
                limiter: RateLimiter::new(cfg.rate),
            },
        );
        Ok(MemoryTransport {
            net: self.clone(),
            address: address.to_owned(),
            key,
        })
    }

    /// Sets the network's clock, which the rate limits of every node read
    /// (a simulator passes its virtual time).
    pub fn set_now(&self, now: LocalTime) {
        self.lock().now = now;
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
        let peers: Vec<(PublicKey, String)> = node
            .conns
            .iter()
            .map(|(k, c)| (*k, c.remote_addr.clone()))
            .collect();
        node.conns.clear();
        node.events.clear();
        for (_, remote) in peers {
            if let Some(other) = net.nodes.get_mut(&remote) {
                other.conns.remove(&key);
                other.events.push_back(TransportEvent::Closed {
                    peer: key,
                    error: TransportError::Closed {
                        peer: key,
                        reason: "peer went down".into(),
                    },
                });
            }
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
    let Node {
        conns,
        events,
        limiter,
        cfg,
        key: to_key,
        ..
    } = node;
    let to_key = *to_key;
    let conn = conns
        .get_mut(&from_key)
        .ok_or(TransportError::NotConnected { peer: to_key })?;
    let class = conn.class;
    let mut framing_lost: Option<FrameError> = None;
    while !bytes.is_empty() {
        match conn.decoder.decode(&mut bytes) {
            Ok(Some(frame)) => {
                events.push_back(admit_frame(cfg, limiter, from_key, class, &frame, now))
            }
            Ok(None) => break,
            Err(e) => {
                framing_lost = Some(e);
                break;
            }
        }
    }
    if let Some(e) = framing_lost {
        // Framing lost: close the connection on both sides, with the reason.
        conns.remove(&from_key);
        events.push_back(TransportEvent::Closed {
            peer: from_key,
            error: TransportError::Frame(e.clone()),
        });
        if let Some(sender) = net.nodes.get_mut(from_addr) {
            sender.conns.remove(&to_key);
            sender.events.push_back(TransportEvent::Closed {
                peer: to_key,
                error: TransportError::Closed {
                    peer: to_key,
                    reason: format!("closed by peer: {e}"),
                },
            });
        }
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
}

impl Transport for MemoryTransport {
    fn local_key(&self) -> PublicKey {
        self.key
    }

    fn set_validator_keys(&mut self, keys: BTreeSet<PublicKey>) {
        if let Some(n) = self.net.lock().nodes.get_mut(&self.address) {
            n.validators = keys;
        }
    }

    fn connect(
        &mut self,
        peer: PublicKey,
        endpoint: &Endpoint,
        claim: Claim,
    ) -> Result<(), TransportError> {
        let mut net = self.net.lock();
        let remote = endpoint.address.as_str().to_owned();
        let me = self.address.clone();
        let my_key = self.key;
        let (my_validators, my_max) = match net.nodes.get(&me) {
            Some(n) => (n.validators.clone(), n.cfg.max_frame),
            None => return Err(TransportError::Shutdown),
        };
        let failed = |error| TransportEvent::ConnectFailed {
            peer,
            address: remote.clone(),
            error,
        };
        let outcome = match net.nodes.get_mut(&remote) {
            None => Err(failed(unreachable(&remote))),
            Some(n) if n.down => Err(failed(unreachable(&remote))),
            Some(n) if n.key != peer => Err(failed(TransportError::WrongKey {
                address: remote.clone(),
                expected: peer,
                presented: n.key,
            })),
            Some(n) => match admit_peer(&my_key, claim, &n.validators) {
                Ok(class) => {
                    n.conns.insert(
                        my_key,
                        Conn {
                            remote_addr: me.clone(),
                            class,
                            decoder: FrameDecoder::new(n.cfg.max_frame),
                        },
                    );
                    n.events.push_back(TransportEvent::Connected {
                        peer: my_key,
                        class,
                        inbound: true,
                        address: me.clone(),
                    });
                    Ok(true)
                }
                Err(error) => {
                    n.events.push_back(TransportEvent::Refused {
                        peer: my_key,
                        error,
                    });
                    // The quirk: the client's connect succeeds first.
                    Ok(false)
                }
            },
        };
        let Some(node) = net.nodes.get_mut(&me) else {
            return Err(TransportError::Shutdown);
        };
        match outcome {
            Err(ev) => node.events.push_back(ev),
            Ok(accepted) => {
                let class = classify(&peer, &my_validators);
                node.events.push_back(TransportEvent::Connected {
                    peer,
                    class,
                    inbound: false,
                    address: remote.clone(),
                });
                if accepted {
                    node.conns.insert(
                        peer,
                        Conn {
                            remote_addr: remote,
                            class,
                            decoder: FrameDecoder::new(my_max),
                        },
                    );
                } else {
                    node.events.push_back(TransportEvent::Closed {
                        peer,
                        error: TransportError::RefusedByPeer {
                            peer,
                            reason: format!(
                                "not a listed validator: {my_key} is named by neither the \
                                 validator set nor the bootstrap list"
                            ),
                        },
                    });
                }
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
        let bytes = frame_envelope(envelope, node.cfg.max_frame)?;
        deliver(&mut net, &self.address, self.key, &remote, &bytes)
    }

    fn disconnect(&mut self, peer: &PublicKey) {
        let mut net = self.net.lock();
        let Some(conn) = net
            .nodes
            .get_mut(&self.address)
            .and_then(|n| n.conns.remove(peer))
        else {
            return;
        };
        if let Some(other) = net.nodes.get_mut(&conn.remote_addr) {
            other.conns.remove(&self.key);
            other.events.push_back(TransportEvent::Closed {
                peer: self.key,
                error: TransportError::Closed {
                    peer: self.key,
                    reason: "closed by peer".into(),
                },
            });
        }
    }

    fn poll_event(&mut self) -> Option<TransportEvent> {
        self.net
            .lock()
            .nodes
            .get_mut(&self.address)?
            .events
            .pop_front()
    }
}
