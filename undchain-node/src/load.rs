//! The devnet's (and the tests') load: clients on their own QUIC endpoints
//! sending signed utility requests at a fixed rate, each to `fanout`
//! validators, as the simulator's scripted load builds them
//! (`undchain_roles::sim::request_body`; client story steps 1-2). A client
//! reports what it sent and which validators acknowledged it.
//!
//! With a `partner` key it also plays the scripted partner: once a request
//! is acknowledged it submits the receipt both sign (client story step 5),
//! naming the acknowledged block, and again with the block an
//! `InclusionNotice` names when the job landed later; validators pool a
//! receipt whose block they have not applied yet, commit it in a block and
//! confirm it with a `CompletionAck`; the period's settlement pays the
//! partner.
//!
//! This is not the client machine ([`undchain_roles::client::Client`]); it
//! does not forward unacknowledged requests (step 3), so a request no
//! validator acknowledged is counted as unacknowledged, never as lost.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::debug;
use undchain_net::{Claim, Transport, TransportEvent};
use undchain_types::msg::{Endpoint, MediumKind, Receipt, ReceiptTerms, UtilityRequest};
use undchain_types::{
    BlockNumber, BlockTime, BoundedString, ChainId, Envelope, JobId, Message, PublicKey,
    SigningKey, TokenAmount,
};

use crate::transport::{QuicConfig, QuicTransport};

/// Most jobs a load client keeps waiting for their receipt's confirmation.
const MAX_OPEN_RECEIPTS: usize = 65_536;

/// The shortest interval between the client's ticks (tokio's timers are
/// millisecond-grained; a faster rate sends several requests a tick).
const MIN_TICK: Duration = Duration::from_millis(1);

/// What a client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadEvent {
    /// A request went out.
    Sent {
        /// Its job.
        job: JobId,
        /// When (the client's clock, Unix microseconds).
        at_us: u64,
    },
    /// A validator acknowledged it.
    Acked {
        /// The job.
        job: JobId,
        /// The validator.
        by: PublicKey,
    },
    /// A validator confirmed its receipt was committed.
    Confirmed {
        /// The job.
        job: JobId,
        /// The block that committed the receipt.
        block: BlockNumber,
    },
}

/// One load client.
#[derive(Debug, Clone)]
pub struct LoadClient {
    /// Its key (funded at genesis).
    pub key: SigningKey,
    /// The chain.
    pub chain: ChainId,
    /// The active validators and their addresses, in seat order.
    pub validators: Vec<(PublicKey, SocketAddr)>,
    /// Validators each request goes to.
    pub fanout: usize,
    /// Requests per second.
    pub rate: f64,
    /// Nonces are `first_nonce + k * stride` (distinct across clients and
    /// runs).
    pub first_nonce: u64,
    /// See `first_nonce`.
    pub stride: u64,
    /// The scripted partner that serves every job and countersigns its
    /// receipts (`None`: no receipts are sent).
    pub partner: Option<SigningKey>,
}

/// The receipt of `job` (request body `body`, committed in `block`) for its
/// whole budget, signed by `client` and `partner`.
fn receipt(
    chain: ChainId,
    job: JobId,
    block: BlockNumber,
    body: &UtilityRequest,
    client: &SigningKey,
    partner: &SigningKey,
) -> Receipt {
    let terms = ReceiptTerms {
        chain_id: chain,
        job,
        commit_block: block,
        client: client.public(),
        partner: partner.public(),
        units: body.units,
        amount: TokenAmount(body.units.saturating_mul(body.max_price_per_unit.0)),
        finished_at: BlockTime(unix_us()),
    };
    let d = terms.digest();
    Receipt {
        client_sig: client.sign_digest(&d),
        partner_sig: partner.sign_digest(&d),
        terms,
    }
}

/// A QUIC endpoint at `a`.
fn endpoint_of(a: &SocketAddr) -> Endpoint {
    Endpoint {
        medium: MediumKind::Quic,
        address: BoundedString::truncating(&a.to_string()),
    }
}

/// The Unix time now, microseconds.
pub fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl LoadClient {
    /// Signs and sends the request of `nonce` to its `fanout` validators,
    /// reconnecting one that is not connected; returns the sequence number
    /// used.
    fn send_request(
        &self,
        t: &mut QuicTransport,
        nonce: u64,
        seq: u64,
        open: &mut std::collections::BTreeMap<JobId, (UtilityRequest, Option<BlockNumber>)>,
        events: &mpsc::UnboundedSender<LoadEvent>,
    ) -> u64 {
        let at_us = unix_us();
        let seq = seq.max(at_us).saturating_add(1);
        let body = undchain_roles::sim::request_body(nonce);
        let env = Envelope::new(
            self.key.public(),
            self.chain,
            seq,
            BlockTime(at_us),
            body.clone(),
        )
        .sign(&self.key);
        let job = JobId::from_request_digest(env.digest());
        if self.partner.is_some() && open.len() < MAX_OPEN_RECEIPTS {
            open.insert(job, (body, None));
        }
        let _ = events.send(LoadEvent::Sent { job, at_us });
        let n = self.validators.len().max(1);
        for i in 0..self.fanout.min(n) {
            let (v, a) = &self.validators[(nonce as usize + i) % n];
            if t.send(v, &env).is_err() {
                // Reconnect; the dial queues what is sent meanwhile.
                let _ = Transport::connect(t, *v, &endpoint_of(a), Claim::ClientOrPartner);
                let _ = t.send(v, &env);
            }
        }
        seq
    }

    /// Runs until `stop` turns true, reporting to `events`.
    pub async fn run(
        self,
        mut stop: watch::Receiver<bool>,
        events: mpsc::UnboundedSender<LoadEvent>,
    ) -> Result<(), undchain_net::TransportError> {
        // Loopback for validators on loopback (a devnet); otherwise every
        // interface, so validators elsewhere (containers) are reachable.
        let local = self.validators.iter().all(|(_, a)| a.ip().is_loopback());
        let ip = if local {
            std::net::Ipv4Addr::LOCALHOST
        } else {
            std::net::Ipv4Addr::UNSPECIFIED
        };
        let any: SocketAddr = (ip, 0).into();
        let mut t = QuicTransport::bind(any, self.key.clone(), QuicConfig::default())?;
        for (k, a) in &self.validators {
            Transport::connect(&mut t, *k, &endpoint_of(a), Claim::ClientOrPartner)?;
        }
        // Open loop: the requests due by now are sent, whatever the
        // scheduler did to the ticks (a starved tick sends what it missed,
        // at most one second's worth: the rest of a longer stall is not
        // sent).
        let rate = self.rate.max(1e-3);
        let every = Duration::from_secs_f64(1.0 / rate).max(MIN_TICK);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let began = tokio::time::Instant::now();
        let backlog = rate.ceil().max(1.0) as u64;
        let mut due_from = 0u64;
        let mut k = 0u64;
        let mut seq = 0u64;
        let n = self.validators.len().max(1);
        // Jobs waiting for a receipt: the request body and the block last
        // named for it (bounded: a confirmed or re-named job is replaced).
        let mut open: std::collections::BTreeMap<JobId, (UtilityRequest, Option<BlockNumber>)> =
            Default::default();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let due = (began.elapsed().as_secs_f64() * rate) as u64 + 1;
                    if due.saturating_sub(due_from + k) > backlog {
                        due_from = due - backlog - k;
                    }
                    while due_from + k < due {
                        let nonce = self.first_nonce + k * self.stride;
                        k += 1;
                        seq = self.send_request(&mut t, nonce, seq, &mut open, &events);
                    }
                }
                ev = t.next_event() => match ev {
                    Some(TransportEvent::Received { peer, envelope, .. }) => {
                        let named = match envelope.body() {
                            Message::RequestAck(a) => {
                                let _ = events.send(LoadEvent::Acked { job: a.job, by: peer });
                                Some((a.job, a.block))
                            }
                            Message::InclusionNotice(i) => Some((i.job, i.block)),
                            Message::CompletionAck(c) => {
                                if open.remove(&c.job).is_some() {
                                    let _ = events.send(LoadEvent::Confirmed { job: c.job, block: c.block });
                                }
                                None
                            }
                            _ => None,
                        };
                        let Some((job, block)) = named else { continue };
                        let (Some(partner), Some((body, last))) = (&self.partner, open.get_mut(&job)) else {
                            continue;
                        };
                        if *last == Some(block) {
                            continue;
                        }
                        *last = Some(block);
                        let r = receipt(self.chain, job, block, body, &self.key, partner);
                        seq = seq.max(unix_us()).saturating_add(1);
                        let env = Envelope::new(self.key.public(), self.chain, seq, BlockTime(unix_us()), r)
                            .sign(&self.key);
                        for i in 0..self.fanout.min(n) {
                            let (v, _) = &self.validators[(seq as usize + i) % n];
                            let _ = t.send(v, &env);
                        }
                    }
                    Some(TransportEvent::ConnectFailed { peer, error, .. }) => {
                        debug!(peer = %peer.to_hex(), %error, "client: connect failed");
                    }
                    Some(_) => {}
                    None => break,
                },
                _ = stop.changed() => if *stop.borrow() { break },
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), t.shutdown()).await;
        Ok(())
    }
}
