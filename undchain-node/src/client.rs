//! `client --home DIR request`: a client home asks the chain for utility
//! (client story steps 1-3) over the real protocol: the signed
//! `UtilityRequest` goes over QUIC to the ack fan-out (the three
//! lowest-latency active validators of the home's list); if fewer than
//! f + 1 acknowledge it within half the wait, the same envelope goes to
//! the other active validators (a retried request gets the identical ack,
//! and validators gossip it among themselves). It succeeds once f + 1
//! validators acknowledged it, so an honest validator holds the request.
//!
//! `client --home DIR status JOB --block B`: where the job was committed,
//! checked rather than believed. For each block from `B` on (the job lands
//! in the acknowledged block or a later one), every active validator is
//! asked for the block's closed job file, page by page
//! (`JobFileRequest` / `JobFileReply`); a validator's answer counts only
//! if the Merkle root of the entries it sent is the root it names (the
//! header's `job_root`), and the block's file is settled once f + 1
//! validators, so at least one honest one, gave the same checked root.
//! The job's entry in that file is then its inclusion proof.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use undchain_net::{Claim, Transport, TransportEvent};
use undchain_types::msg::{Endpoint, JobFileRequest, MediumKind, UtilityRequest};
use undchain_types::{
    BlockNumber, BlockTime, BoundedString, BoundedVec, Envelope, Hash32, JobEntry, JobId, Message,
    PerceptionScore, PublicKey, TokenAmount, UtilityKind,
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

/// Why a status check did not settle.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// See [`ClientError`].
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Too few validators served a block's file with a checked root.
    #[error(
        "block {block}: {agreeing} of the {needed} validators needed served its closed job file with the same checked root within {wait_ms} ms"
    )]
    Unsettled {
        /// The block.
        block: u64,
        /// Validators agreeing on the most common checked root.
        agreeing: usize,
        /// f + 1.
        needed: usize,
        /// The wait, milliseconds.
        wait_ms: u64,
    },
    /// The job is in none of the blocks checked.
    #[error("job {job} is in none of the committed job files of blocks {from}..={to}")]
    NotFound {
        /// The job.
        job: String,
        /// First block checked.
        from: u64,
        /// Last block checked.
        to: u64,
    },
}

/// Where a job was committed, as f + 1 validators' checked files say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    /// The job's entry in the block's file (its state, pools, fee).
    pub entry: JobEntry,
    /// The block that committed it.
    pub block: BlockNumber,
    /// The block's job root (the Merkle root of its file).
    pub root: Hash32,
    /// Validators that served that file with that root.
    pub agreeing: usize,
    /// f + 1.
    pub needed: usize,
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
    let mut t = bind_near(home, &validators)?;
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
            let _ = Transport::connect(t, *v, &quic(a), Claim::ClientOrPartner);
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

/// One validator's pages of one block's file.
#[derive(Debug, Default)]
struct Pages {
    entries: Vec<JobEntry>,
    /// The page asked for last (`after`), and when.
    asked: Option<(Option<JobId>, tokio::time::Instant)>,
    /// The checked root, once the file is complete.
    done: Option<Hash32>,
}

/// What a validator's file counts as when its entries do not have the root
/// it names (no honest validator serves it, and it is never counted:
/// blake3 gives no file this root).
const UNCHECKED: Hash32 = Hash32([0xFF; 32]);

/// Most entries of one block's file the status check accepts from one
/// validator (the chain's cap on a block's jobs is far below).
const MAX_FILE_ENTRIES: usize = 1 << 20;

/// A page request is sent again after this long without its reply (a
/// validator serves each requester one page a gossip round and drops the
/// rest).
const PAGE_RETRY: Duration = Duration::from_millis(300);

/// Checks where `job` was committed, from block `from` on, `blocks` blocks.
pub async fn status(
    home: &Loaded,
    job: JobId,
    from: BlockNumber,
    blocks: u64,
    wait: Duration,
) -> Result<JobStatus, StatusError> {
    if home.role != RoleName::Client {
        return Err(ClientError::NotAClient(home.role).into());
    }
    let validators = active_addresses(home)?;
    let needed = home.genesis.params.max_faulty() + 1;
    let mut t = bind_near(home, &validators)?;
    for (v, a) in &validators {
        let _ = Transport::connect(&mut t, *v, &quic(a), Claim::ClientOrPartner);
    }
    let last = from.0.saturating_add(blocks.max(1) - 1);
    let mut out = Err(StatusError::NotFound {
        job: job.0.to_hex(),
        from: from.0,
        to: last,
    });
    for b in from.0..=last {
        let (root, entries, agreeing) =
            settle_block(home, &mut t, &validators, BlockNumber(b), needed, wait).await?;
        if let Some(entry) = entries.into_iter().find(|e| e.id == job) {
            out = Ok(JobStatus {
                entry,
                block: BlockNumber(b),
                root,
                agreeing,
                needed,
            });
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), t.shutdown()).await;
    out
}

/// Gathers block `b`'s closed file from the validators until f + 1 gave
/// the same checked root: (root, entries, how many agree).
async fn settle_block(
    home: &Loaded,
    t: &mut QuicTransport,
    validators: &[(PublicKey, SocketAddr)],
    b: BlockNumber,
    needed: usize,
    wait: Duration,
) -> Result<(Hash32, Vec<JobEntry>, usize), StatusError> {
    let mut pages: BTreeMap<PublicKey, Pages> = validators
        .iter()
        .map(|(v, _)| (*v, Pages::default()))
        .collect();
    let deadline = tokio::time::Instant::now() + wait;
    let ask = |t: &mut QuicTransport, v: &PublicKey, after: Option<JobId>| {
        let req = JobFileRequest {
            block: b,
            after,
            limit: 2048,
        };
        let env = Envelope::new(
            home.key.public(),
            home.genesis.params.chain_id,
            unix_us(),
            BlockTime(unix_us()),
            req,
        )
        .sign(&home.key);
        let _ = t.send(v, &env);
    };
    let mut tick = tokio::time::interval(PAGE_RETRY / 3);
    loop {
        let mut roots: BTreeMap<Hash32, Vec<PublicKey>> = BTreeMap::new();
        for (v, p) in &pages {
            if let Some(r) = p.done {
                roots.entry(r).or_default().push(*v);
            }
        }
        roots.remove(&UNCHECKED);
        let best = roots.iter().max_by_key(|(_, vs)| vs.len());
        if let Some((root, vs)) = best {
            if vs.len() >= needed {
                let entries = pages.remove(&vs[0]).map(|p| p.entries).unwrap_or_default();
                return Ok((*root, entries, vs.len()));
            }
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(StatusError::Unsettled {
                block: b.0,
                agreeing: best.map_or(0, |(_, vs)| vs.len()),
                needed,
                wait_ms: wait.as_millis() as u64,
            });
        }
        tokio::select! {
            _ = tick.tick() => {
                for (v, p) in pages.iter_mut() {
                    if p.done.is_some() {
                        continue;
                    }
                    let after = p.entries.last().map(|e| e.id);
                    if p.asked.is_none_or(|(_, at)| now.duration_since(at) >= PAGE_RETRY) {
                        ask(t, v, after);
                        p.asked = Some((after, now));
                    }
                }
            }
            ev = t.next_event() => {
                let Some(TransportEvent::Received { peer, envelope, .. }) = ev else { continue };
                let Message::JobFileReply(r) = envelope.body() else { continue };
                let Some(p) = pages.get_mut(&peer) else { continue };
                let expected = p.entries.last().map(|e| e.id);
                if r.block != b || !r.closed || p.done.is_some() || p.asked.map(|(a, _)| a) != Some(expected) {
                    continue;
                }
                if !r.entries.iter().all(|e| expected.is_none_or(|x| e.id > x)) {
                    // An earlier page again (a retried request answered twice).
                    continue;
                }
                if p.entries.len() + r.entries.len() > MAX_FILE_ENTRIES {
                    // A file larger than any block's is not counted.
                    p.done = Some(UNCHECKED);
                    continue;
                }
                p.entries.extend(r.entries.iter().cloned());
                p.asked = None;
                if r.next.is_none() {
                    p.done = Some(checked_root(&p.entries, r.total, r.root));
                } else {
                    let after = p.entries.last().map(|e| e.id);
                    ask(t, &peer, after);
                    p.asked = Some((after, tokio::time::Instant::now()));
                }
            }
        }
    }
}

/// The root `named` if `entries` (all `total` of them) have it as their
/// Merkle root; otherwise [`UNCHECKED`].
fn checked_root(entries: &[JobEntry], total: u64, named: Hash32) -> Hash32 {
    let Ok(file) = undchain_jobfile::JobFile::from_entries(entries.iter().cloned()) else {
        return UNCHECKED;
    };
    if file.len() == total && file.merkle_root() == named {
        named
    } else {
        UNCHECKED
    }
}

/// A transport on loopback for validators on loopback, else on every
/// interface.
fn bind_near(
    home: &Loaded,
    validators: &[(PublicKey, SocketAddr)],
) -> Result<QuicTransport, ClientError> {
    let local = validators.iter().all(|(_, a)| a.ip().is_loopback());
    let ip = if local {
        std::net::Ipv4Addr::LOCALHOST
    } else {
        std::net::Ipv4Addr::UNSPECIFIED
    };
    Ok(QuicTransport::bind(
        (ip, 0).into(),
        home.key.clone(),
        QuicConfig::default(),
    )?)
}

/// The QUIC endpoint of an address.
fn quic(a: &SocketAddr) -> Endpoint {
    Endpoint {
        medium: MediumKind::Quic,
        address: BoundedString::truncating(&a.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_jobfile::testkit::entry;

    #[test]
    fn a_file_counts_only_with_the_root_its_entries_have() {
        let es: Vec<JobEntry> = (0..50).map(|i| entry(i, 1)).collect();
        let root = undchain_jobfile::JobFile::from_entries(es.clone())
            .unwrap()
            .merkle_root();
        assert_eq!(checked_root(&es, 50, root), root);
        // One entry changed, one left out, a wrong total, a wrong root.
        let mut changed = es.clone();
        changed[7].fee = TokenAmount(11);
        assert_eq!(checked_root(&changed, 50, root), UNCHECKED);
        assert_eq!(checked_root(&es[1..], 49, root), UNCHECKED);
        assert_eq!(checked_root(&es, 51, root), UNCHECKED);
        assert_eq!(checked_root(&es, 50, Hash32([3; 32])), UNCHECKED);
        // The empty file's root is the zero hash.
        assert_eq!(checked_root(&[], 0, Hash32::ZERO), Hash32::ZERO);
    }
}
