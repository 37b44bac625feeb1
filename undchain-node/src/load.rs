//! The devnet's (and the tests') load: clients on their own QUIC endpoints
//! sending signed utility requests at a fixed rate, each to `fanout`
//! validators, as the simulator's scripted load builds them
//! (`undchain_roles::sim::request_body`; client story steps 1-2). A client
//! reports what it sent and which validators acknowledged it.
//!
//! Until the client machine exists (issue 16) this is the one client the
//! node runs; it does not forward unacknowledged requests (step 3), so a
//! request no validator acknowledged is counted as unacknowledged, never as
//! lost.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::debug;
use undchain_net::{Claim, Transport, TransportEvent};
use undchain_types::msg::{Endpoint, MediumKind};
use undchain_types::{
    BlockTime, BoundedString, ChainId, Envelope, JobId, Message, PublicKey, SigningKey,
};

use crate::transport::{QuicConfig, QuicTransport};

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
}

/// The Unix time now, microseconds.
pub fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl LoadClient {
    /// Runs until `stop` turns true, reporting to `events`.
    pub async fn run(
        self,
        mut stop: watch::Receiver<bool>,
        events: mpsc::UnboundedSender<LoadEvent>,
    ) -> Result<(), undchain_net::TransportError> {
        let any: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, 0).into();
        let mut t = QuicTransport::bind(any, self.key.clone(), QuicConfig::default())?;
        let endpoint = |a: &SocketAddr| Endpoint {
            medium: MediumKind::Quic,
            address: BoundedString::truncating(&a.to_string()),
        };
        for (k, a) in &self.validators {
            Transport::connect(&mut t, *k, &endpoint(a), Claim::ClientOrPartner)?;
        }
        let every = Duration::from_secs_f64(1.0 / self.rate.max(1e-3));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut k = 0u64;
        let mut seq = 0u64;
        let n = self.validators.len().max(1);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let nonce = self.first_nonce + k * self.stride;
                    k += 1;
                    let at_us = unix_us();
                    seq = seq.max(at_us).saturating_add(1);
                    let body = undchain_roles::sim::request_body(nonce);
                    let env = Envelope::new(self.key.public(), self.chain, seq, BlockTime(at_us), body)
                        .sign(&self.key);
                    let job = JobId::from_request_digest(env.digest());
                    let _ = events.send(LoadEvent::Sent { job, at_us });
                    for i in 0..self.fanout.min(n) {
                        let (v, a) = &self.validators[(nonce as usize + i) % n];
                        if t.send(v, &env).is_err() {
                            // Reconnect; the dial queues what is sent meanwhile.
                            let _ = Transport::connect(&mut t, *v, &endpoint(a), Claim::ClientOrPartner);
                            let _ = t.send(v, &env);
                        }
                    }
                }
                ev = t.next_event() => match ev {
                    Some(TransportEvent::Received { peer, envelope, .. }) => {
                        if let Message::RequestAck(a) = envelope.body() {
                            let _ = events.send(LoadEvent::Acked { job: a.job, by: peer });
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
