//! Shared set-ups of the client, partner and utility-session scenarios:
//! validators as signed messages from test keys, a client and a partner
//! wired to each other directly, and what each sent to the validators.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use undchain_net::PeerBook;
use undchain_roles::client::{Client, ClientConfig, UserEvent, UserOutput};
use undchain_roles::partner::{Partner, PartnerConfig};
use undchain_sim::node_key;
use undchain_types::msg::{
    ConnectionDetails, Endpoint, JobNotification, MediumKind, PartnerOffer, ReadyToProvide,
    RequestAck, UtilityRequest, ValidatorInfo,
};
use undchain_types::{
    BlockNumber, BlockTime, BoundedBytes, BoundedString, BoundedVec, ChainId, ChainParams,
    Envelope, JobId, LocalTime, Message, PerceptionScore, PublicKey, SignedEnvelope, TokenAmount,
    UtilityKind, ValidatorBook, ValidatorClass,
};

/// Index of the client's test key.
pub const CLIENT: usize = 50;
/// Index of the partner's test key.
pub const PARTNER: usize = 60;
/// Index of the chain owner's test key.
pub const OWNER: usize = 99;

static SEQ: AtomicU64 = AtomicU64::new(1);

/// The chain's parameters (DESIGN.md defaults).
pub fn params() -> ChainParams {
    ChainParams::new(ChainId(1), node_key(OWNER).public(), BlockTime(0))
}

/// Validator `i`'s key.
pub fn v(i: usize) -> PublicKey {
    node_key(i).public()
}

/// An endpoint on loopback.
pub fn ep(port: u16) -> Endpoint {
    Endpoint {
        medium: MediumKind::Quic,
        address: BoundedString::try_new(format!("127.0.0.1:{port}")).unwrap(),
    }
}

/// A peer book of validators `0..n`, validator `i` at `10 * (i + 1)` ms.
pub fn book(n: usize) -> PeerBook {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "[[validator]]\nalias = \"v{i}\"\nid = \"{}\"\n[[validator.media]]\ntype = \"quic\"\naddress = \"127.0.0.1:{}\"\nlatency_ms = {}\nreliability = 0.9\n",
            v(i).to_hex(),
            7100 + i,
            10 * (i + 1)
        ));
    }
    PeerBook::from_bootstrap(&ValidatorBook::parse(&s).unwrap())
}

/// A client knowing validators `0..n`, K = 4.
pub fn client_with(n: usize, params: ChainParams) -> Client {
    Client::new(
        ClientConfig {
            key: node_key(CLIENT),
            params,
            book: book(n),
            seed: 7,
            wall_at_zero: 1_700_000_000_000_000,
            checkpoint_every: 4,
            session_idle_us: SESSION_IDLE_US,
        },
        0,
    )
}

/// How long the test clients wait on a silent partner.
pub const SESSION_IDLE_US: u64 = 30_000_000;

/// A client knowing validators `0..n` under the default parameters.
pub fn client(n: usize) -> Client {
    client_with(n, params())
}

/// A partner of `kinds` with `capacity`, price 2, validators `0..n`, K = 4.
pub fn partner(n: usize, kinds: &[UtilityKind], capacity: u32) -> Partner {
    Partner::new(partner_config(n, kinds, capacity), 0)
}

/// The settings of [`partner`].
pub fn partner_config(n: usize, kinds: &[UtilityKind], capacity: u32) -> PartnerConfig {
    PartnerConfig {
        key: node_key(PARTNER),
        params: params(),
        validators: (0..n).map(v).collect(),
        offer: ReadyToProvide {
            kinds: BoundedVec::try_from_vec(kinds.to_vec()).unwrap(),
            capacity,
            price_per_unit: TokenAmount(2),
            centralized: None,
            media: BoundedVec::try_from_vec(vec![ep(7600)]).unwrap(),
        },
        store_bytes: 1 << 22,
        wall_at_zero: 1_700_000_000_000_000,
        checkpoint_every: 4,
        receipt_wait_us: 10_000_000,
        response_wait_us: 4_000_000,
        compute_stride: 16,
    }
}

/// A utility request.
pub fn request(kind: UtilityKind, units: u64, threshold: u16, min_score: u16) -> UtilityRequest {
    UtilityRequest {
        kind,
        units,
        max_price_per_unit: TokenAmount(3),
        min_partner_score: PerceptionScore::new(min_score).unwrap(),
        partner_threshold: threshold,
        co_clients: BoundedVec::default(),
        spec: BoundedBytes::default(),
    }
}

/// `body` signed by test key `i`.
pub fn signed(i: usize, body: impl Into<Message>) -> SignedEnvelope {
    let k = node_key(i);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    Envelope::new(k.public(), ChainId(1), seq, BlockTime(1_000), body).sign(&k)
}

/// The active validators `0..n` as an ack lists them.
pub fn active(n: usize) -> BoundedVec<ValidatorInfo, 10> {
    BoundedVec::try_from_vec(
        (0..n)
            .map(|i| ValidatorInfo {
                id: v(i),
                class: ValidatorClass {
                    activity: undchain_types::Activity::Active,
                    trust: undchain_types::Trust::Unknown,
                },
                media: BoundedVec::try_from_vec(vec![ep(7100 + i as u16)]).unwrap(),
            })
            .collect(),
    )
    .unwrap()
}

/// Validator `i`'s ack of `job` in `block`, listing validators `0..n`.
pub fn ack(i: usize, job: JobId, block: u64, n: usize) -> SignedEnvelope {
    signed(
        i,
        RequestAck {
            job,
            block: BlockNumber(block),
            period: undchain_types::PayoutPeriod(0),
            active: active(n),
        },
    )
}

/// Validator `i`'s offer of `partner` for `job`.
pub fn offer(
    i: usize,
    job: JobId,
    partner: PublicKey,
    score: u16,
    price: u64,
    index: u16,
) -> SignedEnvelope {
    signed(
        i,
        PartnerOffer {
            job,
            partner,
            score: PerceptionScore::new(score).unwrap(),
            price_per_unit: TokenAmount(price),
            preferred: None,
            index,
            last: false,
        },
    )
}

/// A notification of `job` (kind, units, block) from validator `i`.
pub fn notification(
    i: usize,
    job: JobId,
    kind: UtilityKind,
    units: u64,
    block: u64,
) -> SignedEnvelope {
    signed(
        i,
        JobNotification {
            job,
            kind,
            units,
            max_price_per_unit: TokenAmount(3),
            min_partner_score: PerceptionScore::MIN,
            block: BlockNumber(block),
        },
    )
}

/// Validator `i` relays the client's details to the partner.
pub fn details(i: usize, job: JobId) -> SignedEnvelope {
    signed(
        i,
        ConnectionDetails {
            job,
            peer: node_key(CLIENT).public(),
            endpoint: ep(7500),
        },
    )
}

/// Everything a machine's batches held, each batch advanced.
pub trait Drain {
    /// The outputs of every batch waiting, in order.
    fn drain(&mut self) -> Vec<UserOutput>;
}

impl Drain for Client {
    fn drain(&mut self) -> Vec<UserOutput> {
        let mut out = Vec::new();
        while let Some(r) = self.ready() {
            let n = r.number();
            out.extend(r.immediate);
            out.extend(r.after_persist);
            self.advance(n).unwrap();
        }
        out
    }
}

impl Drain for Partner {
    fn drain(&mut self) -> Vec<UserOutput> {
        let mut out = Vec::new();
        while let Some(r) = self.ready() {
            let n = r.number();
            out.extend(r.immediate);
            out.extend(r.after_persist);
            self.advance(n).unwrap();
        }
        out
    }
}

/// The envelopes among `out` sent to `to`.
pub fn sent_to(out: &[UserOutput], to: &PublicKey) -> Vec<Arc<SignedEnvelope>> {
    out.iter()
        .filter_map(|o| match o {
            UserOutput::Send {
                to: t, envelope, ..
            } if t == to => Some(envelope.clone()),
            _ => None,
        })
        .collect()
}

/// The bodies among `out`, with their recipients.
pub fn bodies(out: &[UserOutput]) -> Vec<(PublicKey, Message)> {
    out.iter()
        .filter_map(|o| match o {
            UserOutput::Send { to, envelope, .. } => Some((*to, envelope.body().clone())),
            _ => None,
        })
        .collect()
}

/// The events among `out`.
pub fn events(out: &[UserOutput]) -> Vec<UserEvent> {
    out.iter()
        .filter_map(|o| match o {
            UserOutput::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// A client and a partner talking directly; what either sent to anyone
/// else (the validators) is kept in `to_validators`.
pub struct Pair {
    /// The client.
    pub client: Client,
    /// The partner.
    pub partner: Partner,
    /// Envelopes to validators: (from client?, to, envelope).
    pub to_validators: Vec<(bool, PublicKey, Arc<SignedEnvelope>)>,
    /// Every event of either side: (from client?, event).
    pub events: Vec<(bool, UserEvent)>,
    /// Drop the client's session messages to the partner (a vanished or
    /// refusing client) when this says so.
    pub client_silent: bool,
    /// The local clock.
    pub now: LocalTime,
}

impl Pair {
    /// A client and a partner of `kind`, the job requested, acked by
    /// validator 0 in `block`, offered, notified and connected.
    pub fn connected(kind: UtilityKind, units: u64, block: u64) -> (Pair, JobId) {
        let mut client = client(4);
        let mut partner = partner(4, &[kind], 4);
        let now = LocalTime(1_000);
        partner.start(now);
        let job = client.request(now, request(kind, units, 1, 0)).unwrap();
        client.handle_verified(now, &ack(0, job, block, 4)).unwrap();
        client
            .handle_verified(now, &offer(0, job, partner.key(), 500, 2, 0))
            .unwrap();
        partner
            .handle_verified(now, &notification(0, job, kind, units, block))
            .unwrap();
        partner.handle_verified(now, &details(0, job)).unwrap();
        let mut pair = Pair {
            client,
            partner,
            to_validators: Vec::new(),
            events: Vec::new(),
            client_silent: false,
            now,
        };
        pair.run();
        (pair, job)
    }

    /// Moves messages between the two until both are quiet.
    pub fn run(&mut self) {
        let ck = self.client.key();
        let pk = self.partner.key();
        for _ in 0..10_000 {
            let from_client = self.client.drain();
            let from_partner = self.partner.drain();
            if from_client.is_empty() && from_partner.is_empty() {
                return;
            }
            for o in from_client {
                match o {
                    UserOutput::Send { to, envelope, .. } if to == pk => {
                        if !self.client_silent {
                            let _ = self.partner.handle_verified(self.now, &envelope);
                        }
                    }
                    UserOutput::Send { to, envelope, .. } => {
                        self.to_validators.push((true, to, envelope))
                    }
                    UserOutput::Event(e) => self.events.push((true, e)),
                    UserOutput::Connect { .. } => {}
                }
            }
            for o in from_partner {
                match o {
                    UserOutput::Send { to, envelope, .. } if to == ck => {
                        let _ = self.client.handle_verified(self.now, &envelope);
                    }
                    UserOutput::Send { to, envelope, .. } => {
                        self.to_validators.push((false, to, envelope))
                    }
                    UserOutput::Event(e) => self.events.push((false, e)),
                    UserOutput::Connect { .. } => {}
                }
            }
        }
        panic!("the pair never went quiet");
    }

    /// Moves the clock to `t`, wakes both, and runs.
    pub fn advance_to(&mut self, t: LocalTime) {
        self.now = t;
        self.client.handle_timeout(t);
        self.partner.handle_timeout(t);
        self.run();
    }

    /// Bodies sent to validators by the client (`true`) or the partner.
    pub fn validator_bodies(&self, by_client: bool) -> Vec<Message> {
        self.to_validators
            .iter()
            .filter(|(c, _, _)| *c == by_client)
            .map(|(_, _, e)| e.body().clone())
            .collect()
    }
}
