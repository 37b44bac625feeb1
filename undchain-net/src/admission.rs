//! Connection admission: who gets a connection slot, pure and shared by
//! every transport (docs/PROTOCOL.md "Connection admission"). The QUIC
//! transport and the in-memory network both ask an [`Admission`] and only
//! carry out its answers, so a flood is refused for the same reasons in a
//! simulation and on the wire.
//!
//! Two stages:
//! - **Before the handshake** ([`Admission::handle_incoming`]): a bounded
//!   number of handshakes may be under way at once, per host and in total.
//!   A source at the address a validator key was last seen at draws on a
//!   separate pool, so a flood of strangers' handshakes never delays a
//!   validator's. Under load ([`AdmissionConfig::retry_above`] handshakes
//!   under way) a source whose address is not validated yet is asked to
//!   prove it first ([`Incoming::Retry`], QUIC's Retry packet), so a
//!   spoofed-source flood holds no state.
//! - **After the handshake** ([`Admission::admit_inbound`],
//!   [`Admission::admit_outbound`]): the authenticated key decides. A
//!   validator claim under an unlisted key is refused; validators (keys of
//!   the validator set or bootstrap list) and everyone else have **separate
//!   budgets** ([`AdmissionConfig::validator_slots`],
//!   [`AdmissionConfig::client_slots`]), so clients can never take a
//!   validator's slot, and clients are limited per host. A key has **one
//!   connection**: a newer one from the same dialer replaces the older (a
//!   peer that reconnected); when both sides dial each other at once (the
//!   older was admitted less than [`AdmissionConfig::race_window_us`] ago)
//!   both keep the connection dialed by the lower key, so exactly one
//!   survives; after the window the newer wins.
//!
//! Client connections that dialed us and carried no frame either way for
//! [`AdmissionConfig::client_idle_us`] are closed
//! ([`Admission::handle_timeout`]): they hold a slot of ours for nothing.
//! Validators' connections stay (keep-alives), and so do connections this
//! side dialed (it closes those itself).
//! Refusals are typed ([`AdmissionError`]) and change nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use undchain_types::{LocalTime, PublicKey};

use crate::transport::{Claim, PeerClass, classify};

/// Where a connection comes from, and the host that per-host limits count
/// it under.
pub trait Source: Clone + Ord + core::fmt::Debug {
    /// What per-host limits are keyed by.
    type Host: Clone + Ord + core::fmt::Debug;
    /// The host of this source.
    fn host(&self) -> Self::Host;
}

impl Source for SocketAddr {
    type Host = IpAddr;
    /// The IP address; for IPv6 its /64 prefix, the unit a single
    /// subscriber usually holds.
    fn host(&self) -> IpAddr {
        match self.ip() {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        }
    }
}

impl Source for String {
    type Host = String;
    /// The text before the last `:` (`"10.0.0.5:7"` is host
    /// `"10.0.0.5"`), or the whole address.
    fn host(&self) -> String {
        self.rsplit_once(':')
            .map_or(self.as_str(), |(h, _)| h)
            .to_owned()
    }
}

/// Admission settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Connections to validator keys (default 128: every active and
    /// passive validator of a domain, with room).
    pub validator_slots: usize,
    /// Connections to everyone else (default 1,024).
    pub client_slots: usize,
    /// Client connections per host (default 16).
    pub per_host: usize,
    /// Handshakes under way from sources not known as validators
    /// (default 128).
    pub handshakes: usize,
    /// Handshakes under way from sources known as validators (default 32).
    pub validator_handshakes: usize,
    /// Handshakes under way per host, validators' sources apart (default 8).
    pub handshakes_per_host: usize,
    /// With this many handshakes under way, sources not yet validated must
    /// prove their address first (default 16).
    pub retry_above: usize,
    /// A client connection that dialed us and carried no frame either way
    /// for this long is closed (default 30 s).
    pub client_idle_us: u64,
    /// Two connections of one key dialed by the two sides within this
    /// window are a simultaneous dial (default 5 s).
    pub race_window_us: u64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            validator_slots: 128,
            client_slots: 1024,
            per_host: 16,
            handshakes: 128,
            validator_handshakes: 32,
            handshakes_per_host: 8,
            retry_above: 16,
            client_idle_us: 30_000_000,
            race_window_us: 5_000_000,
        }
    }
}

/// A handshake the admission let start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HandshakeId(u64);

/// An admitted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(u64);

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dialer {
    /// This side dialed.
    Local,
    /// The peer dialed.
    Remote,
}

/// What to do with a new inbound connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// Run the handshake, then report it with [`Admission::finish_handshake`]
    /// or [`Admission::handle_handshake_failed`].
    Accept(HandshakeId),
    /// Ask the source to prove its address first (QUIC Retry); it comes
    /// back validated.
    Retry,
}

/// A connection that got its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// Its id, for activity and close reports.
    pub conn: ConnId,
    /// What the peer is taken for.
    pub class: PeerClass,
    /// The connection of the same key it replaces: close it.
    pub replaces: Option<ConnId>,
}

/// Why a connection (or handshake) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// Too many handshakes under way in the pool this source draws on.
    #[error("busy: {pending} handshakes under way (cap {cap}); try again later")]
    HandshakesFull {
        /// Handshakes under way in the pool.
        pending: usize,
        /// The pool's cap.
        cap: usize,
    },
    /// Too many handshakes under way from this host.
    #[error("busy: {cap} handshakes already under way from host {host}; try again later")]
    HostHandshakesFull {
        /// The host, as text.
        host: String,
        /// The per-host cap.
        cap: usize,
    },
    /// A validator claim under a key no list names.
    #[error(
        "refused {key}: it claims to be a validator, but neither the validator set nor the \
         bootstrap list names that key"
    )]
    NotAListedValidator {
        /// The key the peer presented.
        key: PublicKey,
    },
    /// Every validator slot is taken.
    #[error("all {cap} validator connection slots are taken")]
    ValidatorSlotsFull {
        /// The cap.
        cap: usize,
    },
    /// Every client slot is taken.
    #[error("busy: all {cap} client connection slots are taken; try again later")]
    ClientSlotsFull {
        /// The cap.
        cap: usize,
    },
    /// The host has its share of client connections.
    #[error("busy: host {host} already holds {cap} client connections")]
    HostFull {
        /// The host, as text.
        host: String,
        /// The per-host cap.
        cap: usize,
    },
    /// The key is connected already and the other connection wins.
    #[error(
        "{key} is already connected: both sides dialed at once and the connection dialed by the \
         lower key is kept"
    )]
    Duplicate {
        /// The key both connections are under.
        key: PublicKey,
    },
    /// The handshake id is not one under way (the host's bug).
    #[error("unknown handshake {0:?}")]
    UnknownHandshake(HandshakeId),
}

#[derive(Debug, Clone)]
struct Pending<A: Source> {
    source: A,
    /// Drawn from the validators' pool.
    validator_pool: bool,
}

#[derive(Debug, Clone)]
struct Conn<A: Source> {
    key: PublicKey,
    class: PeerClass,
    dialer: Dialer,
    host: A::Host,
    admitted_at: LocalTime,
    last_active: LocalTime,
}

/// How many handshakes and connections the admission holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdmissionCounts {
    /// Handshakes under way (both pools).
    pub handshakes: usize,
    /// Connections to validator keys.
    pub validators: usize,
    /// Connections to everyone else.
    pub clients: usize,
}

/// The admission policy of one node's transport (one per endpoint).
#[derive(Debug, Clone)]
pub struct Admission<A: Source> {
    cfg: AdmissionConfig,
    local: PublicKey,
    validators: BTreeSet<PublicKey>,
    /// The address each validator key was last connected at.
    validator_sources: BTreeMap<A, PublicKey>,
    pending: BTreeMap<HandshakeId, Pending<A>>,
    pending_pool: [usize; 2],
    pending_per_host: BTreeMap<A::Host, usize>,
    conns: BTreeMap<ConnId, Conn<A>>,
    by_key: BTreeMap<PublicKey, ConnId>,
    clients_per_host: BTreeMap<A::Host, usize>,
    counts: [usize; 2],
    idle: BTreeSet<(LocalTime, ConnId)>,
    next_id: u64,
}

fn class_index(c: PeerClass) -> usize {
    match c {
        PeerClass::Validator => 0,
        PeerClass::ClientOrPartner => 1,
    }
}

fn bump<K: Ord + Clone>(m: &mut BTreeMap<K, usize>, k: &K, up: bool) {
    if up {
        *m.entry(k.clone()).or_default() += 1;
    } else if let Some(n) = m.get_mut(k) {
        *n -= 1;
        if *n == 0 {
            m.remove(k);
        }
    }
}

impl<A: Source> Admission<A> {
    /// The admission of the node whose key is `local` (which decides
    /// simultaneous dials).
    pub fn new(cfg: AdmissionConfig, local: PublicKey) -> Self {
        Admission {
            cfg,
            local,
            validators: BTreeSet::new(),
            validator_sources: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_pool: [0, 0],
            pending_per_host: BTreeMap::new(),
            conns: BTreeMap::new(),
            by_key: BTreeMap::new(),
            clients_per_host: BTreeMap::new(),
            counts: [0, 0],
            idle: BTreeSet::new(),
            next_id: 1,
        }
    }

    /// The settings.
    pub fn config(&self) -> &AdmissionConfig {
        &self.cfg
    }

    /// Sets the keys accepted as validators (the validator set, or the
    /// bootstrap list before the chain). Connections keep the class they
    /// were admitted with; addresses of keys no longer listed stop counting
    /// as validators' sources.
    pub fn set_validator_keys(&mut self, keys: BTreeSet<PublicKey>) {
        self.validator_sources.retain(|_, k| keys.contains(k));
        self.validators = keys;
    }

    /// The keys accepted as validators.
    pub fn validator_keys(&self) -> &BTreeSet<PublicKey> {
        &self.validators
    }

    /// What the admission holds now.
    pub fn counts(&self) -> AdmissionCounts {
        AdmissionCounts {
            handshakes: self.pending.len(),
            validators: self.counts[0],
            clients: self.counts[1],
        }
    }

    /// The connection that carries `key`'s traffic, if any.
    pub fn current(&self, key: &PublicKey) -> Option<ConnId> {
        self.by_key.get(key).copied()
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn is_validator_source(&self, source: &A) -> bool {
        self.validator_sources
            .get(source)
            .is_some_and(|k| self.validators.contains(k))
    }

    /// A connection attempt from `source` arrived; `validated` says
    /// whether the source has proved its address (a QUIC Retry token).
    pub fn handle_incoming(
        &mut self,
        source: &A,
        validated: bool,
    ) -> Result<Incoming, AdmissionError> {
        let validator_pool = self.is_validator_source(source);
        let pool = usize::from(!validator_pool);
        let pending = self.pending_pool[pool];
        if !validated && self.pending.len() >= self.cfg.retry_above {
            return Ok(Incoming::Retry);
        }
        let cap = if validator_pool {
            self.cfg.validator_handshakes
        } else {
            self.cfg.handshakes
        };
        if pending >= cap {
            return Err(AdmissionError::HandshakesFull { pending, cap });
        }
        let host = source.host();
        if !validator_pool {
            let here = self.pending_per_host.get(&host).copied().unwrap_or(0);
            if here >= self.cfg.handshakes_per_host {
                return Err(AdmissionError::HostHandshakesFull {
                    host: format!("{host:?}"),
                    cap: self.cfg.handshakes_per_host,
                });
            }
            let held = self.clients_per_host.get(&host).copied().unwrap_or(0);
            if held >= self.cfg.per_host {
                return Err(AdmissionError::HostFull {
                    host: format!("{host:?}"),
                    cap: self.cfg.per_host,
                });
            }
            bump(&mut self.pending_per_host, &host, true);
        }
        self.pending_pool[pool] += 1;
        let id = HandshakeId(self.fresh_id());
        self.pending.insert(
            id,
            Pending {
                source: source.clone(),
                validator_pool,
            },
        );
        Ok(Incoming::Accept(id))
    }

    fn release(&mut self, id: HandshakeId) -> Result<A, AdmissionError> {
        let p = self
            .pending
            .remove(&id)
            .ok_or(AdmissionError::UnknownHandshake(id))?;
        self.pending_pool[usize::from(!p.validator_pool)] -= 1;
        if !p.validator_pool {
            bump(&mut self.pending_per_host, &p.source.host(), false);
        }
        Ok(p.source)
    }

    /// The handshake failed (or was abandoned): its place is free.
    pub fn handle_handshake_failed(&mut self, id: HandshakeId) -> Result<(), AdmissionError> {
        self.release(id).map(|_| ())
    }

    /// The handshake finished: its place is free; returns the source it
    /// came from, for [`Admission::admit_inbound`].
    pub fn finish_handshake(&mut self, id: HandshakeId) -> Result<A, AdmissionError> {
        self.release(id)
    }

    /// A peer that dialed us from `source` authenticated as `key`, claiming
    /// `claim`: its slot, or the refusal.
    pub fn admit_inbound(
        &mut self,
        now: LocalTime,
        key: PublicKey,
        claim: Claim,
        source: &A,
    ) -> Result<Admitted, AdmissionError> {
        let class = classify(&key, &self.validators);
        if claim == Claim::Validator && class != PeerClass::Validator {
            return Err(AdmissionError::NotAListedValidator { key });
        }
        self.admit(now, key, class, Dialer::Remote, source)
    }

    /// A connection we dialed to `source` authenticated as `key`: its slot,
    /// or the refusal.
    pub fn admit_outbound(
        &mut self,
        now: LocalTime,
        key: PublicKey,
        source: &A,
    ) -> Result<Admitted, AdmissionError> {
        let class = classify(&key, &self.validators);
        self.admit(now, key, class, Dialer::Local, source)
    }

    /// Which existing connection of `key` a new one from `dialer` replaces,
    /// or why the new one loses.
    fn replaced(
        &self,
        now: LocalTime,
        key: PublicKey,
        dialer: Dialer,
    ) -> Result<Option<ConnId>, AdmissionError> {
        let Some(&old) = self.by_key.get(&key) else {
            return Ok(None);
        };
        let Some(c) = self.conns.get(&old) else {
            return Ok(None);
        };
        let racing = now.since(c.admitted_at) < self.cfg.race_window_us;
        if c.dialer == dialer || !racing {
            return Ok(Some(old));
        }
        let dialer_key = |d: Dialer| match d {
            Dialer::Local => self.local,
            Dialer::Remote => key,
        };
        if dialer_key(dialer) < dialer_key(c.dialer) {
            Ok(Some(old))
        } else {
            Err(AdmissionError::Duplicate { key })
        }
    }

    fn admit(
        &mut self,
        now: LocalTime,
        key: PublicKey,
        class: PeerClass,
        dialer: Dialer,
        source: &A,
    ) -> Result<Admitted, AdmissionError> {
        let replaces = self.replaced(now, key, dialer)?;
        let host = source.host();
        let old = replaces.and_then(|id| self.conns.get(&id));
        let freed = |c: PeerClass| old.is_some_and(|o| o.class == c);
        let i = class_index(class);
        let held = self.counts[i] - usize::from(freed(class));
        match class {
            PeerClass::Validator if held >= self.cfg.validator_slots => {
                return Err(AdmissionError::ValidatorSlotsFull {
                    cap: self.cfg.validator_slots,
                });
            }
            PeerClass::ClientOrPartner => {
                if held >= self.cfg.client_slots {
                    return Err(AdmissionError::ClientSlotsFull {
                        cap: self.cfg.client_slots,
                    });
                }
                let here =
                    self.clients_per_host.get(&host).copied().unwrap_or(0)
                        - usize::from(old.is_some_and(|o| {
                            o.class == PeerClass::ClientOrPartner && o.host == host
                        }));
                if here >= self.cfg.per_host {
                    return Err(AdmissionError::HostFull {
                        host: format!("{host:?}"),
                        cap: self.cfg.per_host,
                    });
                }
            }
            PeerClass::Validator => {}
        }
        if let Some(old) = replaces {
            self.remove(old);
        }
        let conn = ConnId(self.fresh_id());
        self.counts[i] += 1;
        if class == PeerClass::ClientOrPartner {
            bump(&mut self.clients_per_host, &host, true);
            if dialer == Dialer::Remote {
                self.idle.insert((now, conn));
            }
        } else {
            self.validator_sources.retain(|_, k| *k != key);
            self.validator_sources.insert(source.clone(), key);
        }
        self.by_key.insert(key, conn);
        self.conns.insert(
            conn,
            Conn {
                key,
                class,
                dialer,
                host,
                admitted_at: now,
                last_active: now,
            },
        );
        Ok(Admitted {
            conn,
            class,
            replaces,
        })
    }

    fn remove(&mut self, id: ConnId) -> Option<Conn<A>> {
        let c = self.conns.remove(&id)?;
        self.counts[class_index(c.class)] -= 1;
        if c.class == PeerClass::ClientOrPartner {
            bump(&mut self.clients_per_host, &c.host, false);
            self.idle.remove(&(c.last_active, id));
        }
        if self.by_key.get(&c.key) == Some(&id) {
            self.by_key.remove(&c.key);
        }
        Some(c)
    }

    /// A frame went either way on `conn` at `now` (a host may report at
    /// most a few times per idle period; the clock only needs to be that
    /// fine).
    pub fn handle_activity(&mut self, now: LocalTime, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn)
            && now > c.last_active
        {
            if self.idle.remove(&(c.last_active, conn)) {
                self.idle.insert((now, conn));
            }
            c.last_active = now;
        }
    }

    /// `conn` closed; its slot is free. Returns its key if it was the
    /// key's current connection (the key is now unconnected).
    pub fn handle_closed(&mut self, conn: ConnId) -> Option<PublicKey> {
        let current = self
            .conns
            .get(&conn)
            .is_some_and(|c| self.by_key.get(&c.key) == Some(&conn));
        let c = self.remove(conn)?;
        current.then_some(c.key)
    }

    /// When the next idle client connection is due to be closed.
    pub fn poll_timeout(&self) -> Option<LocalTime> {
        self.idle
            .first()
            .map(|(t, _)| t.plus(self.cfg.client_idle_us))
    }

    /// Closes the client connections idle at `now`: the host closes each
    /// returned connection (with its key); their slots are already free.
    pub fn handle_timeout(&mut self, now: LocalTime) -> Vec<(ConnId, PublicKey)> {
        let mut out = Vec::new();
        while let Some(&(t, id)) = self.idle.first() {
            if t.plus(self.cfg.client_idle_us) > now {
                break;
            }
            if let Some(c) = self.remove(id) {
                out.push((id, c.key));
            }
        }
        out
    }
}
