//! The node's runtime: one tokio task per node driving its [`NodeCore`]
//! (DESIGN.md "The reference node": runtime). The task only moves things
//! between the core and its effects; every decision is the core's.
//!
//! One turn of the loop:
//!
//! 1. carry out every [`NodeReady`](undchain_roles::NodeReady) the core
//!    hands out, in order: its `immediate` sends, then its `persist` batch
//!    as one redb write transaction (durable when the write returns), then
//!    its `after_persist` sends (votes, acks: what promises), then
//!    [`NodeCore::advance`];
//! 2. wait for the first of: an envelope or connection event from the QUIC
//!    transport (fed to [`NodeCore::handle_verified`]: the transport
//!    verified the signature; every further event already waiting is fed
//!    too, up to [`TURN_EVENTS`], so that they share one durable write),
//!    the core's [`NodeCore::poll_timeout`]
//!    deadline ([`NodeCore::handle_timeout`]), a redial of a validator
//!    whose connection failed or closed, a [`NodeCommand`].
//!
//! `now` is read once per input from the node's clock
//! ([`MonotonicClock::from_unix_time`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use undchain_net::{Claim, Transport, TransportConfig, TransportError, TransportEvent};
use undchain_roles::{
    CachedCheck, Command, NodeConfig, NodeCore, NodeEvent, Output, Storage, StoreOp,
};
use undchain_types::msg::Endpoint;
use undchain_types::{BlockNumber, JobId, PublicKey};

use crate::api::feed::{self, Feed, Query};
use crate::clock::MonotonicClock;
use crate::store::RedbStore;
use crate::transport::{QuicConfig, QuicTransport};

/// The most transport events fed to the core in one turn before its batch
/// is carried out. Every request the core acknowledges is made durable
/// before its ack goes out; one write per event made the fsync the intake's
/// limit (about a thousand requests a second, and a backlog that delayed
/// the votes behind it). The events that wait when the node turns share one
/// write instead (group commit); the bound keeps a turn's outputs, and the
/// wait of its first ack, short.
pub const TURN_EVENTS: usize = 512;

/// Senders' prepared keys the core's signature check keeps.
pub const KEY_CACHE: usize = 16_384;

/// How long after a failed or closed connection to a validator it is
/// dialled again.
pub const REDIAL_AFTER: Duration = Duration::from_millis(500);

/// What a running node can be told.
#[derive(Debug)]
pub enum NodeCommand {
    /// A command for the core.
    Core(Command),
    /// Stop the node (after the batch under way).
    Stop,
}

/// What a node reports to whoever watches it (the devnet, tests).
#[derive(Debug, Clone)]
pub enum Observed {
    /// An event of the core.
    Event(NodeEvent),
    /// A decided block was made durable, with the jobs of its file.
    BlockStored {
        /// Its height.
        number: BlockNumber,
        /// Its jobs.
        jobs: Vec<JobId>,
    },
}

/// Why a node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The HTTP API could not be bound.
    #[error("cannot serve the API on {addr}: {error}")]
    Api {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: String,
    },
    /// The QUIC endpoint could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: TransportError,
    },
    /// The core refused its configuration or stored state.
    #[error("node core: {0}")]
    Core(#[from] undchain_roles::ConfigError),
    /// The database refused a read or a write (the node stops: it may
    /// not send what it could not make durable).
    #[error("storage {path}: {error}")]
    Store {
        /// The database file.
        path: String,
        /// Why.
        error: undchain_roles::StoreError,
    },
    /// The core refused an acknowledgement of its batch (a host bug).
    #[error("advance: {0}")]
    Advance(#[from] undchain_types::AdvanceError),
}

/// Everything one node is started from.
#[derive(Debug)]
pub struct NodeSetup {
    /// The core's configuration.
    pub cfg: NodeConfig,
    /// Where its QUIC endpoint binds.
    pub listen: SocketAddr,
    /// The validators it dials, with their endpoints (itself is skipped).
    pub peers: BTreeMap<PublicKey, Endpoint>,
    /// Its database.
    pub store: RedbStore,
    /// Every peer is on this host (a devnet or a local testnet): the
    /// per-host admission limits are lifted ([`quic_config`]).
    pub loopback: bool,
    /// Where the HTTP API ([`crate::api`]) binds, if it runs.
    pub api: Option<SocketAddr>,
}

/// The QUIC settings of a node on a chain with `params`; `loopback` lifts
/// the per-host limits (every client of a devnet is on 127.0.0.1).
pub fn quic_config(params: &undchain_types::ChainParams, loopback: bool) -> QuicConfig {
    let mut q = QuicConfig {
        transport: TransportConfig::from_params(params),
        ..QuicConfig::default()
    };
    if loopback {
        let a = &mut q.transport.admission;
        a.per_host = a.client_slots;
        a.handshakes_per_host = a.handshakes;
    }
    q
}

/// A started node.
#[derive(Debug)]
pub struct NodeHandle {
    /// Its identity.
    pub id: PublicKey,
    /// The address its QUIC endpoint is bound to.
    pub addr: SocketAddr,
    /// The height it restored to (the next block it decides).
    pub restored_height: BlockNumber,
    /// The address the HTTP API is bound to, if it runs.
    pub api_addr: Option<SocketAddr>,
    commands: mpsc::UnboundedSender<NodeCommand>,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
    api_task: Option<tokio::task::JoinHandle<()>>,
}

impl NodeHandle {
    /// Sends the node a command (ignored once it stopped).
    pub fn command(&self, c: NodeCommand) {
        let _ = self.commands.send(c);
    }

    /// Stops the node and waits for its task.
    pub async fn stop(self) -> Result<(), RunError> {
        let _ = self.commands.send(NodeCommand::Stop);
        self.wait().await
    }

    /// Waits for the node's task to end (the API stops with it).
    pub async fn wait(self) -> Result<(), RunError> {
        let r = self.task.await;
        if let Some(api) = self.api_task {
            // The listener is closed once the aborted task is gone.
            api.abort();
            let _ = api.await;
        }
        match r {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// How long binding waits for the address to be released (a node that
/// stopped a moment ago still drains its connections on it).
pub const BIND_PATIENCE: Duration = Duration::from_secs(5);

/// Restores the core from the store, binds the endpoint and starts the
/// node's task. `observer` gets the node's events.
pub async fn start(
    setup: NodeSetup,
    observer: Option<mpsc::UnboundedSender<Observed>>,
) -> Result<NodeHandle, RunError> {
    let clock = MonotonicClock::from_unix_time();
    let store_err = |path: &std::path::Path, error| RunError::Store {
        path: path.display().to_string(),
        error,
    };
    let stored = setup
        .store
        .load()
        .map_err(|e| store_err(setup.store.path(), e))?;
    let restored_height = stored.next_height();
    let store_reader = setup.store.reader();
    // Clients' keys are prepared once, not per gossiped request or receipt.
    let check = Arc::new(CachedCheck::new(KEY_CACHE));
    let core = NodeCore::restore(&setup.cfg, clock.now(), &stored, check)?;
    drop(stored);
    let qcfg = quic_config(&setup.cfg.genesis.params, setup.loopback);
    let patience = tokio::time::Instant::now() + BIND_PATIENCE;
    let transport = loop {
        match QuicTransport::bind(setup.listen, setup.cfg.key.clone(), qcfg.clone()) {
            Ok(t) => break t,
            Err(TransportError::Io(e))
                if e.contains("in use") && tokio::time::Instant::now() < patience =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => {
                return Err(RunError::Bind {
                    addr: setup.listen,
                    error,
                });
            }
        }
    };
    let addr = transport.local_addr().map_err(|error| RunError::Bind {
        addr: setup.listen,
        error,
    })?;
    let id = setup.cfg.key.public();
    let mut keys: std::collections::BTreeSet<PublicKey> =
        setup.cfg.genesis.validators.iter().map(|v| v.key).collect();
    keys.extend(setup.peers.keys().copied());
    transport.set_validator_keys(keys);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut peers = setup.peers;
    peers.remove(&id);
    let (feed, api_addr, api_task) = match setup.api {
        Some(a) => {
            let (mut feed, shared) = feed::channel(Some(store_reader));
            feed.refresh(&core, clock.now());
            let (bound, task) = crate::api::start(a, shared, BIND_PATIENCE)
                .await
                .map_err(|e| RunError::Api {
                    addr: a,
                    error: e.to_string(),
                })?;
            (Some(feed), Some(bound), Some(task))
        }
        None => (None, None, None),
    };
    let node = Node {
        feed,
        core,
        store: Some(setup.store),
        transport,
        clock,
        peers,
        redial: BTreeMap::new(),
        observer,
    };
    let task = tokio::spawn(node.run(rx));
    Ok(NodeHandle {
        id,
        addr,
        restored_height,
        api_addr,
        commands: tx,
        task,
        api_task,
    })
}

struct Node {
    core: NodeCore,
    /// The API's view of this node, when the API runs.
    feed: Option<Feed>,
    /// `None` only while a write runs on the blocking pool.
    store: Option<RedbStore>,
    transport: QuicTransport,
    clock: MonotonicClock,
    peers: BTreeMap<PublicKey, Endpoint>,
    /// Validators to dial again, and when.
    redial: BTreeMap<PublicKey, tokio::time::Instant>,
    observer: Option<mpsc::UnboundedSender<Observed>>,
}

impl Node {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<NodeCommand>,
    ) -> Result<(), RunError> {
        let peers: Vec<PublicKey> = self.peers.keys().copied().collect();
        for p in peers {
            self.dial(p);
        }
        self.core.start(self.clock.now());
        loop {
            self.carry_out().await?;
            let deadline = self.core.poll_timeout().map(|t| self.clock.instant_at(t));
            let redial = self.redial.values().min().copied();
            tokio::select! {
                ev = self.transport.next_event() => match ev {
                    Some(ev) => {
                        self.handle_transport(ev);
                        self.take_waiting_events();
                    }
                    None => break,
                },
                _ = sleep_until(deadline) => self.core.handle_timeout(self.clock.now()),
                _ = sleep_until(redial) => {
                    let now = tokio::time::Instant::now();
                    let due: Vec<PublicKey> = self
                        .redial
                        .iter()
                        .filter(|(_, t)| **t <= now)
                        .map(|(k, _)| *k)
                        .collect();
                    for k in due {
                        self.redial.remove(&k);
                        self.dial(k);
                    }
                }
                q = next_query(&mut self.feed) => {
                    let now = self.clock.now();
                    if let Some(f) = self.feed.as_mut() {
                        f.answer(&mut self.core, now, q);
                    }
                }
                c = commands.recv() => match c {
                    Some(NodeCommand::Core(c)) => {
                        if let Err(e) = self.core.handle_command(self.clock.now(), c) {
                            warn!(error = %e, "command refused");
                        }
                    }
                    Some(NodeCommand::Stop) | None => break,
                },
            }
        }
        self.carry_out().await?;
        // Peers are told, and the connections drain (a local timer).
        self.transport.shutdown().await;
        Ok(())
    }

    fn dial(&mut self, peer: PublicKey) {
        let Some(endpoint) = self.peers.get(&peer).cloned() else {
            return;
        };
        if self.transport.is_connected(&peer) {
            return;
        }
        if let Err(error) =
            Transport::connect(&mut self.transport, peer, &endpoint, Claim::Validator)
        {
            warn!(peer = %peer.to_hex(), %error, "cannot dial");
        }
    }

    /// Feeds the events that already wait, up to [`TURN_EVENTS`] in the
    /// turn, without waiting for more.
    fn take_waiting_events(&mut self) {
        for _ in 1..TURN_EVENTS {
            match Transport::poll_event(&mut self.transport) {
                Some(ev) => self.handle_transport(ev),
                None => break,
            }
        }
    }

    fn handle_transport(&mut self, ev: TransportEvent) {
        if let Some(f) = self.feed.as_mut() {
            f.on_transport(&self.core, self.clock.now(), &ev);
        }
        match ev {
            TransportEvent::Received { peer, envelope, .. } => {
                let kind = envelope.envelope().kind;
                let now = self.clock.now();
                if let Err(e) = self.core.handle_verified(now, Arc::new(*envelope)) {
                    debug!(from = %peer.to_hex(), %kind, error = %e, "envelope refused");
                }
            }
            TransportEvent::Connected {
                peer,
                inbound,
                address,
                ..
            } => {
                debug!(peer = %peer.to_hex(), inbound, %address, "connected");
                self.redial.remove(&peer);
            }
            TransportEvent::ConnectFailed { peer, error, .. } => {
                debug!(peer = %peer.to_hex(), %error, "connect failed");
                self.schedule_redial(peer);
            }
            TransportEvent::Closed { peer, error } => {
                if matches!(error, TransportError::Frame(_)) {
                    // Malformed bytes: that connection is closed, the node
                    // goes on.
                    warn!(peer = %peer.to_hex(), %error, "connection closed: malformed frame");
                } else {
                    debug!(peer = %peer.to_hex(), %error, "connection closed");
                }
                self.schedule_redial(peer);
            }
            TransportEvent::Dropped { peer, error } => {
                warn!(peer = %peer.to_hex(), %error, "frame dropped");
            }
            TransportEvent::Refused { peer, error } => {
                debug!(peer = %peer.to_hex(), %error, "peer refused");
            }
        }
    }

    fn schedule_redial(&mut self, peer: PublicKey) {
        if self.peers.contains_key(&peer) {
            self.redial
                .entry(peer)
                .or_insert_with(|| tokio::time::Instant::now() + REDIAL_AFTER);
        }
    }

    /// Carries out every batch the core has: immediate sends, the durable
    /// write, the promises, `advance`.
    async fn carry_out(&mut self) -> Result<(), RunError> {
        while let Some(ready) = self.core.ready() {
            let number = ready.number();
            for o in ready.immediate {
                self.output(o);
            }
            let persist = ready.persist;
            if !persist.is_empty() {
                self.write(&persist).await?;
            }
            if let Some(f) = self.feed.as_mut() {
                f.on_persist(&self.core, self.clock.now(), &persist);
            }
            if let Some(obs) = &self.observer {
                for op in &persist {
                    if let StoreOp::Block(b) = op {
                        let jobs = b
                            .requests
                            .iter()
                            .map(|r| JobId::from_request_digest(r.digest()))
                            .collect();
                        let _ = obs.send(Observed::BlockStored {
                            number: b.block.header.number,
                            jobs,
                        });
                    }
                }
            }
            for o in ready.after_persist {
                self.output(o);
            }
            self.core.advance(number)?;
            if let Some(f) = self.feed.as_mut() {
                f.refresh(&self.core, self.clock.now());
            }
        }
        Ok(())
    }

    /// One redb transaction, on the blocking pool: an fsync must not stall
    /// the runtime's workers (the other nodes of a devnet, the transport).
    /// This node takes no input until it is durable.
    async fn write(&mut self, persist: &[StoreOp]) -> Result<(), RunError> {
        let Some(mut store) = self.store.take() else {
            return Err(RunError::Store {
                path: String::new(),
                error: undchain_roles::StoreError::Write(
                    "the store was lost by a failed write".into(),
                ),
            });
        };
        let batch = persist.to_vec();
        let (store, result) = tokio::task::spawn_blocking(move || {
            let r = store.write(&batch);
            (store, r)
        })
        .await
        .map_err(|e| RunError::Store {
            path: String::new(),
            error: undchain_roles::StoreError::Write(format!("write task: {e}")),
        })?;
        let path = store.path().display().to_string();
        self.store = Some(store);
        result.map_err(|error| RunError::Store { path, error })
    }

    fn output(&mut self, o: Output) {
        match o {
            Output::Send { to, envelope } => {
                if let Some(f) = self.feed.as_mut() {
                    f.on_send(&envelope);
                }
                self.send(to, envelope)
            }
            Output::Event(e) => {
                if let NodeEvent::ValidatorRegistered { validator, .. } = &e {
                    self.admit_registered(*validator);
                }
                log_event(&e);
                if let Some(f) = self.feed.as_mut() {
                    f.on_event(&e);
                }
                if let Some(obs) = &self.observer {
                    let _ = obs.send(Observed::Event(e));
                }
            }
        }
    }

    /// A committed registration (docs/PROTOCOL.md "Discovery and
    /// registration"): the key is accepted as a validator's from now on,
    /// and reached at the first QUIC endpoint it registered.
    fn admit_registered(&mut self, key: PublicKey) {
        let ledger = self.core.validator().ledger();
        let endpoint = ledger
            .validator(&key)
            .and_then(|r| {
                r.media
                    .iter()
                    .find(|m| m.medium == undchain_types::msg::MediumKind::Quic)
            })
            .cloned();
        let mut keys: std::collections::BTreeSet<PublicKey> =
            ledger.validators().map(|(k, _)| *k).collect();
        if let Some(ep) = endpoint {
            if key != self.core.validator().id() {
                self.peers.entry(key).or_insert(ep);
            }
        }
        keys.extend(self.peers.keys().copied());
        self.transport.set_validator_keys(keys);
    }

    fn send(&mut self, to: PublicKey, envelope: Arc<undchain_types::SignedEnvelope>) {
        match self.transport.send(&to, &envelope) {
            Ok(()) => {}
            Err(TransportError::NotConnected { .. }) if self.peers.contains_key(&to) => {
                // The dial queues sends from its start.
                self.redial.remove(&to);
                self.dial(to);
                if let Err(error) = self.transport.send(&to, &envelope) {
                    debug!(to = %to.to_hex(), %error, "send failed");
                }
            }
            Err(error) => debug!(to = %to.to_hex(), %error, "send failed"),
        }
    }
}

async fn next_query(feed: &mut Option<Feed>) -> Query {
    match feed {
        Some(f) => f.next_query().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn log_event(e: &NodeEvent) {
    match e {
        NodeEvent::BlockCommitted {
            number, hash, jobs, ..
        } => {
            info!(height = number.0, %hash, jobs, "block committed")
        }
        NodeEvent::TimeSynced { correction } => info!(correction_us = correction, "time synced"),
        NodeEvent::RequestAcked { .. } => {}
        NodeEvent::Diverged { number, .. } => warn!(height = number.0, "diverged: {e:?}"),
        NodeEvent::Evidence(_) => warn!("evidence: {e:?}"),
        NodeEvent::PeriodSettled { .. } | NodeEvent::SetChanged { .. } => info!("{e:?}"),
        _ => debug!("{e:?}"),
    }
}
