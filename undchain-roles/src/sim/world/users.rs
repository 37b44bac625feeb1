//! Real clients and partners in the simulated network (issue 16's
//! `lifecycle_sim`): the [`Client`] and [`Partner`] machines, driven like
//! the validators (their batches carried out, their timers scheduled),
//! talk to the validators and to each other through the same faulty
//! network. Each client stores a blob with a partner it was offered, the
//! two sign the receipt, a block commits it, and the client fetches the
//! blob back and checks it equals what it stored.

use std::collections::BTreeMap;

use undchain_net::PeerBook;
use undchain_types::msg::ReadyToProvide;
use undchain_types::{
    BoundedVec, JobId, LocalTime, PerceptionScore, PublicKey, TokenAmount, UtilityKind,
    ValidatorBook,
};

use super::partners::{PartnerConduct, PartnerLog};
use super::{Ev, T0, World};
use crate::client::{Client, ClientConfig, SessionFailure, UserEvent, UserOutput};
use crate::partner::{Partner, PartnerConfig};
use crate::utility::CHUNK_SIZE;

/// One client or partner machine.
#[derive(Debug)]
pub(crate) enum Machine {
    Client(Box<Client>),
    Partner(Box<Partner>),
}

/// What a client stored, to check the fetch against.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub partner: Option<PublicKey>,
    pub data: Vec<u8>,
    pub root: undchain_types::Hash32,
    /// The fetch went out (on the first confirmation).
    pub fetching: bool,
    pub fetched: bool,
}

/// How a simulated client behaves ([`super::super::SimConfig::first_client`],
/// else drawn per seed for the first client with faults on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conduct {
    /// Follows the protocol.
    Honest,
    /// Vanishes after its first signed checkpoint: nothing it sends
    /// arrives any more (the partner claims that checkpoint as a partial
    /// completion).
    Vanishes,
    /// Uploads everything, then never countersigns a receipt (partner
    /// story "client refuses to sign").
    RefusesToSign,
}

/// A simulated user and what it saw.
#[derive(Debug)]
pub(crate) struct User {
    pub machine: Machine,
    pub conduct: Conduct,
    /// A vanishing client after its first checkpoint.
    vanished: bool,
    timer: Option<LocalTime>,
    /// Every event it reported.
    pub events: Vec<UserEvent>,
    /// Blobs a client stored, by job.
    pub stored: BTreeMap<JobId, Stored>,
    /// Fetched blobs that differ from the stored one.
    pub bad_fetches: u64,
    /// How a partner behaves (honest for a client).
    pub partner: PartnerConduct,
    /// What a partner's wrapper did.
    pub log: PartnerLog,
    /// Requests a client made again after a silent session.
    pub retries: u64,
}

/// Most chunks a simulated client stores per job.
pub(super) const MAX_CHUNKS: u64 = 3;

impl User {
    fn ready(&mut self) -> Option<crate::client::UserReady> {
        match &mut self.machine {
            Machine::Client(c) => c.ready(),
            Machine::Partner(p) => p.ready(),
        }
    }

    fn advance(&mut self, n: undchain_types::ReadyNumber) {
        let _ = match &mut self.machine {
            Machine::Client(c) => c.advance(n),
            Machine::Partner(p) => p.advance(n),
        };
    }

    fn poll_timeout(&self) -> Option<LocalTime> {
        match &self.machine {
            Machine::Client(c) => c.poll_timeout(),
            Machine::Partner(p) => p.poll_timeout(),
        }
    }
}

/// The validators' bootstrap list as a client reads it (addresses are
/// never dialled in the simulator: envelopes route by key).
fn bootstrap(validators: &[PublicKey]) -> PeerBook {
    let mut s = String::new();
    for (i, v) in validators.iter().enumerate() {
        s.push_str(&format!(
            "[[validator]]\nalias = \"v{i}\"\nid = \"{}\"\n[[validator.media]]\ntype = \"quic\"\naddress = \"127.0.0.1:{}\"\nlatency_ms = {}\nreliability = 0.9\n",
            v.to_hex(),
            7100 + i,
            10 * (i + 1)
        ));
    }
    ValidatorBook::parse(&s).map_or_else(|_| PeerBook::default(), |b| PeerBook::from_bootstrap(&b))
}

/// The blob client `user` stores for its request number `nonce`.
fn blob(seed: u64, user: usize, nonce: u64) -> Vec<u8> {
    let chunks = 1 + (seed ^ nonce ^ user as u64) % MAX_CHUNKS;
    let len = (chunks as usize - 1) * CHUNK_SIZE + 1 + (nonce as usize * 37) % CHUNK_SIZE;
    let mut rng = undchain_types::SplitMix64::fork(seed ^ nonce, user as u64);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

impl World {
    /// The users of `cfg`: `cfg.users` clients (funded at genesis) and
    /// `cfg.partners` storage partners, all knowing the genesis validators.
    pub(super) fn make_users(&mut self) {
        let validators: Vec<PublicKey> = self.nodes.iter().map(|n| n.cfg.key.public()).collect();
        let active: Vec<PublicKey> = validators[..self.cfg.validators].to_vec();
        let base = self.nodes.len() + self.load.clients.len();
        for i in 0..self.cfg.users {
            let key = super::super::load::client_key(self.cfg.seed, self.cfg.clients + i);
            let client = Client::new(
                ClientConfig {
                    key,
                    params: self.params.clone(),
                    book: bootstrap(&active),
                    seed: self.cfg.seed ^ (i as u64) << 20,
                    wall_at_zero: T0 as u64,
                    checkpoint_every: 1,
                    session_idle_us: 3 * self.params.retry_timeout_us,
                },
                0,
            );
            self.index.insert(client.key(), base + self.users.len());
            let mut u = user(Machine::Client(Box::new(client)));
            // With faults, the first client misbehaves on two seeds of three.
            if i == 0 {
                u.conduct = match (self.cfg.first_client, self.cfg.faults) {
                    (Some(c), _) => c,
                    (None, true) if self.cfg.seed % 3 == 1 => Conduct::Vanishes,
                    (None, true) if self.cfg.seed % 3 == 2 => Conduct::RefusesToSign,
                    _ => Conduct::Honest,
                };
            }
            self.users.push(u);
        }
        for i in 0..self.cfg.partners {
            let key = super::super::load::partner_key(self.cfg.seed, 100 + i);
            let conduct = self.partner_conduct(i);
            // A partner lying about its resources offers storage it has not.
            let store_bytes = match conduct {
                PartnerConduct::LiesAboutResources => 0,
                _ => 1 << 24,
            };
            let partner = Partner::new(
                PartnerConfig {
                    key,
                    params: self.params.clone(),
                    validators: active.clone(),
                    offer: ReadyToProvide {
                        kinds: BoundedVec::try_from_vec(vec![UtilityKind::Storage])
                            .unwrap_or_default(),
                        capacity: 8,
                        price_per_unit: TokenAmount(2),
                        centralized: None,
                        media: BoundedVec::default(),
                    },
                    store_bytes,
                    wall_at_zero: T0 as u64,
                    checkpoint_every: 1,
                    receipt_wait_us: 4 * self.cfg.block_interval_us,
                    response_wait_us: 2 * self.cfg.block_interval_us,
                    compute_stride: 16,
                },
                0,
            );
            self.index.insert(partner.key(), base + self.users.len());
            let mut u = user(Machine::Partner(Box::new(partner)));
            u.partner = conduct;
            self.users.push(u);
        }
    }

    /// Starts the partners and schedules the clients' requests: one every
    /// other block of the load, each client in turn.
    pub(super) fn start_users(&mut self) {
        for u in 0..self.users.len() {
            if let Machine::Partner(p) = &mut self.users[u].machine {
                p.start(LocalTime::from_micros(self.now as i64));
                self.drain_user(u);
            }
        }
        let clients = self.cfg.users;
        if clients == 0 {
            return;
        }
        let b = self.cfg.block_interval_us;
        let blocks = (self.load_end_us - super::GENESIS_AFTER_US) / b;
        for (k, blk) in (1..blocks).step_by(2).enumerate() {
            let at = super::GENESIS_AFTER_US + blk * b + self.rng.below(b / 2);
            self.push(
                at,
                Ev::UserRequest {
                    user: k % clients,
                    nonce: k as u64,
                },
            );
        }
    }

    /// Client `user` requests storage for its next blob.
    pub(super) fn user_request(&mut self, user: usize, nonce: u64) {
        let now = LocalTime::from_micros(self.now as i64);
        let data = blob(self.cfg.seed, user, nonce);
        let units = data.len().div_ceil(CHUNK_SIZE) as u64;
        let body = undchain_types::msg::UtilityRequest {
            kind: UtilityKind::Storage,
            units,
            max_price_per_unit: TokenAmount(3),
            min_partner_score: PerceptionScore::MIN,
            partner_threshold: 1,
            co_clients: BoundedVec::default(),
            spec: undchain_types::BoundedBytes::try_from_vec(nonce.to_le_bytes().to_vec())
                .unwrap_or_default(),
        };
        let Some(u) = self.users.get_mut(user) else {
            return;
        };
        let Machine::Client(c) = &mut u.machine else {
            return;
        };
        if let Ok(job) = c.request(now, body) {
            u.stored.insert(
                job,
                Stored {
                    partner: None,
                    data,
                    root: undchain_types::Hash32::ZERO,
                    fetching: false,
                    fetched: false,
                },
            );
        }
        self.drain_user(user);
    }

    /// A message for user `user`.
    pub(super) fn deliver_user(
        &mut self,
        user: usize,
        env: &std::sync::Arc<undchain_types::SignedEnvelope>,
    ) {
        let now = LocalTime::from_micros(self.now as i64);
        let Some(u) = self.users.get_mut(user) else {
            return;
        };
        let refused = match &mut u.machine {
            Machine::Client(c) => c.handle_verified(now, env).is_err(),
            Machine::Partner(p) => p.handle_verified(now, env).is_err(),
        };
        if refused && self.cfg.trace {
            eprintln!("t={} user={user} refused {}", self.now, env.envelope().kind);
        }
        self.drain_user(user);
    }

    /// User `user`'s timer fired.
    pub(super) fn user_timer(&mut self, user: usize, at: LocalTime) {
        let Some(u) = self.users.get_mut(user) else {
            return;
        };
        if u.timer != Some(at) {
            return;
        }
        u.timer = None;
        let now = LocalTime::from_micros(self.now as i64);
        match &mut u.machine {
            Machine::Client(c) => c.handle_timeout(now),
            Machine::Partner(p) => p.handle_timeout(now),
        }
        self.drain_user(user);
    }

    /// Carries out user `user`'s batches, then reacts to its events.
    fn drain_user(&mut self, user: usize) {
        let from = self.nodes.len() + self.load.clients.len() + user;
        let mut events = Vec::new();
        while let Some(r) = self.users[user].ready() {
            let n = r.number();
            for o in r.immediate.into_iter().chain(r.after_persist) {
                match o {
                    UserOutput::Send { to, envelope, .. } => {
                        let u = &mut self.users[user];
                        if !lets_out(u.conduct, &mut u.vanished, envelope.body())
                            || u.log.silent_since.is_some()
                        {
                            continue;
                        }
                        if let Some(&i) = self.index.get(&to) {
                            self.route(from, i, envelope);
                        }
                    }
                    UserOutput::Connect { .. } => {}
                    UserOutput::Event(e) => events.push(e),
                }
            }
            self.users[user].advance(n);
        }
        for e in events {
            self.user_event(user, e);
        }
        let u = &mut self.users[user];
        if let Some(t) = u.poll_timeout() {
            if u.timer != Some(t) {
                u.timer = Some(t);
                let at = (t.micros().max(0) as u64).max(self.now + 1_000);
                self.push(at, Ev::UserTimer { user, at: t });
            }
        }
    }

    /// A client takes an offer: it stores its blob with that partner;
    /// once a validator confirmed the receipt it fetches the blob back.
    fn user_event(&mut self, user: usize, e: UserEvent) {
        if self.cfg.trace {
            eprintln!("t={} user={user} {e:?}", self.now);
        }
        let now = LocalTime::from_micros(self.now as i64);
        self.users[user].events.push(e.clone());
        if matches!(self.users[user].machine, Machine::Partner(_)) {
            self.partner_event(user, &e);
            return;
        }
        let u = &mut self.users[user];
        let Machine::Client(c) = &mut u.machine else {
            return;
        };
        let mut again = false;
        match e {
            UserEvent::OfferTaken { job, partner } => {
                let Some(s) = u.stored.get_mut(&job) else {
                    return;
                };
                if let Ok(root) = c.store(now, job, partner, s.data.clone()) {
                    s.partner = Some(partner);
                    s.root = root;
                }
            }
            UserEvent::Completed { job, .. } => {
                let Some(s) = u.stored.get_mut(&job).filter(|s| !s.fetching) else {
                    return;
                };
                let Some(partner) = s.partner else { return };
                s.fetching = true;
                let _ = c.fetch(now, job, partner, s.root, s.data.len() as u64);
            }
            UserEvent::Fetched { job, .. } => {
                let blob = c.take_blob(&job);
                if let Some(s) = u.stored.get_mut(&job) {
                    s.fetched = true;
                    if blob.as_ref() != Some(&s.data) {
                        u.bad_fetches += 1;
                    }
                }
            }
            UserEvent::SessionFailed {
                job,
                reason: SessionFailure::Silent { .. },
                ..
            } => {
                // The client's recourse: it asks again (the desks do not
                // offer a partner that failed its challenge).
                again = u.stored.get(&job).is_some_and(|s| !s.fetching);
                u.retries += u64::from(again);
            }
            _ => return,
        }
        if again && self.now < self.load_end_us {
            let nonce = (1 << 32) + self.users[user].retries;
            self.push(self.now + 1_000, Ev::UserRequest { user, nonce });
        }
        self.drain_user(user);
    }
}

impl World {
    /// Every job the real clients requested, and whether a validator
    /// acknowledged it (their validators are honest cores: an ack is a
    /// written promise).
    pub(crate) fn user_jobs(&self) -> Vec<(JobId, bool)> {
        let mut out = Vec::new();
        for u in &self.users {
            if let Machine::Client(c) = &u.machine {
                out.extend(u.stored.keys().map(|j| (*j, c.acks(j) > 0)));
            }
        }
        out
    }
}

/// Whether `conduct` lets `body` out (`vanished`: the client is gone; set
/// once its first checkpoint went).
fn lets_out(conduct: Conduct, vanished: &mut bool, body: &undchain_types::Message) -> bool {
    use undchain_types::Message;
    use undchain_types::msg::SessionBody;
    match conduct {
        Conduct::Honest => true,
        Conduct::Vanishes => {
            if *vanished {
                return false;
            }
            if let Message::Session(s) = body {
                *vanished = matches!(s.body, SessionBody::Checkpoint(_));
            }
            true
        }
        Conduct::RefusesToSign => {
            !matches!(body, Message::Receipt(_))
                && !matches!(body, Message::Session(s) if matches!(s.body, SessionBody::ReceiptSigned(_)))
        }
    }
}

fn user(machine: Machine) -> User {
    User {
        machine,
        conduct: Conduct::Honest,
        vanished: false,
        timer: None,
        events: Vec::new(),
        stored: BTreeMap::new(),
        bad_fetches: 0,
        partner: PartnerConduct::Honest,
        log: PartnerLog::default(),
        retries: 0,
    }
}
