//! `client --home DIR request`: a client home asks the chain for utility
//! (client story steps 1-3) over the real protocol: the signed
//! `UtilityRequest` goes over QUIC to the ack fan-out (the three
//! lowest-latency active validators of the home's list); if fewer than
//! f + 1 acknowledge it within half the wait, the same envelope goes to
//! the other active validators (a retried request gets the identical ack,
//! and validators gossip it among themselves). It succeeds once f + 1
//! validators acknowledged it, so an honest validator holds the request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use undchain_net::{Claim, Transport, TransportEvent};
use undchain_types::msg::{Endpoint, MediumKind, UtilityRequest};
use undchain_types::{
    BlockNumber, BlockTime, BoundedString, BoundedVec, Envelope, JobId, Message, PerceptionScore,
    PublicKey, TokenAmount, UtilityKind,
};

use crate::home::{Loaded, RoleName};
use crate::load::unix_us;
use crate::transport::{QuicConfig, QuicTransport};

/// Validators a request goes to first (client story step 1).
pub const ACK_FANOUT: usize = 3;

/// Why a request did not get its acknowledgements.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The home is not a client's.
    #[error("the home is a {0:?} home; `client` needs a client home (init --role client)")]
    NotAClient(RoleName),
    /// No active validator of the genesis has an address in the home's
    /// validator list.
    #[error("no active validator of the genesis has a QUIC address in validators.toml")]
    NoValidators,
    /// A validator's address in the list does not parse.
    #[error("validators.toml: validator {alias}: address {address:?}: {error}")]
    Address {
        /// The validator's alias.
        alias: String,
        /// The listed address.
        address: String,
        /// What is wrong with it.
        error: String,
    },
    /// The transport could not start.
    #[error("transport: {0}")]
    Transport(#[from] undchain_net::TransportError),
    /// Too few validators acknowledged the request in time.
    #[error(
        "job {job}: {acks} of the {needed} acknowledgements needed within {wait_ms} ms (validators not running, or the request refused: see their logs)"
    )]
    TooFewAcks {
        /// The job the request would be.
        job: String,
        /// Acknowledgements received.
        acks: usize,
        /// f + 1.
        needed: usize,
        /// The wait, milliseconds.
        wait_ms: u64,
    },
}

/// What to ask for.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// The utility.
    pub kind: UtilityKind,
    /// Units wanted.
    pub units: u64,
    /// Most paid per unit.
    pub max_price_per_unit: TokenAmount,
    /// How long to wait for f + 1 acknowledgements.
    pub wait: Duration,
}

/// A request's acknowledgements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// The job id (from the signed envelope's digest).
    pub job: JobId,
    /// The block each acknowledging validator filed it in.
    pub acks: BTreeMap<PublicKey, BlockNumber>,
    /// f + 1 for the genesis' active set.
    pub needed: usize,
}

impl Acknowledged {
    /// The block most acknowledgements name (the lowest on a tie).
    pub fn block(&self) -> Option<BlockNumber> {
        let mut counts: BTreeMap<BlockNumber, usize> = BTreeMap::new();
        for b in self.acks.values() {
            *counts.entry(*b).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(b, _)| b)
    }
}

/// The active validators of the genesis with their listed QUIC addresses,
/// lowest expected latency first.
fn active_addresses(home: &Loaded) -> Result<Vec<(PublicKey, SocketAddr)>, ClientError> {
    let seats = usize::from(home.genesis.params.active_seats);
    let mut out = Vec::new();
    let mut records: Vec<_> = home
        .genesis
        .validators
        .iter()
        .take(seats)
        .filter_map(|v| home.book.get(&v.key))
        .collect();
    records.sort_by_key(|r| (r.best_latency_us(), r.id));
    for r in records {
        let Some(m) = r
            .media
            .iter()
            .find(|m| m.endpoint.medium == MediumKind::Quic)
        else {
            continue;
        };
        let a: SocketAddr =
            m.endpoint
                .address
                .as_str()
                .parse()
                .map_err(|e: std::net::AddrParseError| ClientError::Address {
                    alias: r.alias.clone(),
                    address: m.endpoint.address.as_str().to_string(),
                    error: e.to_string(),
                })?;
        out.push((r.id, a));
    }
    if out.is_empty() {
        return Err(ClientError::NoValidators);
    }
    Ok(out)
}

/// Sends the request and waits for f + 1 acknowledgements.
pub async fn request(home: &Loaded, spec: &RequestSpec) -> Result<Acknowledged, ClientError> {
    if home.role != RoleName::Client {
        return Err(ClientError::NotAClient(home.role));
    }
    let validators = active_addresses(home)?;
    let needed = home.genesis.params.max_faulty() + 1;
    let local = validators.iter().all(|(_, a)| a.ip().is_loopback());
    let ip = if local {
        std::net::Ipv4Addr::LOCALHOST
    } else {
        std::net::Ipv4Addr::UNSPECIFIED
    };
    let mut t = QuicTransport::bind((ip, 0).into(), home.key.clone(), QuicConfig::default())?;
    let endpoint = |a: &SocketAddr| Endpoint {
        medium: MediumKind::Quic,
        address: BoundedString::truncating(&a.to_string()),
    };
    let body = UtilityRequest {
        kind: spec.kind,
        units: spec.units,
        max_price_per_unit: spec.max_price_per_unit,
        min_partner_score: PerceptionScore::MIN,
        partner_threshold: 1,
        co_clients: BoundedVec::default(),
        spec: Default::default(),
    };
    let now = unix_us();
    let env = Envelope::new(
        home.key.public(),
        home.genesis.params.chain_id,
        now,
        BlockTime(now),
        body,
    )
    .sign(&home.key);
    let job = JobId::from_request_digest(env.digest());
    let send_to = |t: &mut QuicTransport, to: &[(PublicKey, SocketAddr)]| {
        for (v, a) in to {
            let _ = Transport::connect(t, *v, &endpoint(a), Claim::ClientOrPartner);
            let _ = t.send(v, &env);
        }
    };
    let first = validators.len().min(ACK_FANOUT);
    send_to(&mut t, &validators[..first]);
    let mut acks = BTreeMap::new();
    let start = tokio::time::Instant::now();
    let deadline = start + spec.wait;
    let mut widened = first == validators.len();
    while acks.len() < needed {
        let half = start + spec.wait / 2;
        let until = if widened {
            deadline
        } else {
            half.min(deadline)
        };
        match tokio::time::timeout_at(until, t.next_event()).await {
            Ok(Some(TransportEvent::Received { peer, envelope, .. })) => {
                if let Message::RequestAck(a) = envelope.body() {
                    if a.job == job && validators.iter().any(|(v, _)| *v == peer) {
                        acks.insert(peer, a.block);
                    }
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) if !widened => {
                // Step 3: fewer than f + 1 acks came; the rest of the list.
                widened = true;
                send_to(&mut t, &validators[first..]);
            }
            Err(_) => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), t.shutdown()).await;
    if acks.len() < needed {
        return Err(ClientError::TooFewAcks {
            job: job.0.to_hex(),
            acks: acks.len(),
            needed,
            wait_ms: spec.wait.as_millis() as u64,
        });
    }
    Ok(Acknowledged { job, acks, needed })
}
