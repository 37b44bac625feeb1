//! The node task's side of the API: it owns the [`NodeCore`], so it is
//! the only writer. After each batch it publishes a [`Snapshot`] on a
//! `tokio::sync::watch` channel (readers never lock anything the task
//! holds), sends each event as one JSON object on a broadcast channel
//! (the `/events` stream), updates the [`Metrics`], and answers the
//! lookups the snapshot does not carry ([`Query`]: an account with its
//! proof, a job, an envelope to hand to the core) one at a time between
//! inputs, from a bounded queue.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use undchain_ledger::StateKey;
use undchain_net::{PeerClass, TransportEvent};
use undchain_roles::{NodeCore, NodeEvent, StoreOp};
use undchain_types::msg::Evidence;
use undchain_types::{
    JobId, LocalTime, Message, MessageKind, PublicKey, SignedEnvelope, TokenAmount,
};

use super::metrics::Metrics;
use super::view::{
    self, AccountView, BlockSummary, JobView, PartnerView, PayoutView, Snapshot, SubmitView,
};

/// Lookups queued for the node task before `503` is answered.
pub const QUERY_QUEUE: usize = 64;
/// Events buffered for a slow `/events` reader before it skips some.
pub const EVENT_BUFFER: usize = 1024;
/// The snapshot is rebuilt after a batch that changed the height, or
/// when this long passed since the last one (batches come per input: at a
/// few thousand inputs a second, rebuilding each time would cost the node
/// more than it serves), microseconds.
pub const REFRESH_EVERY_US: u64 = 100_000;

/// A lookup the node task answers.
#[derive(Debug)]
pub enum Query {
    /// An account, with its state proof.
    Account(PublicKey, oneshot::Sender<AccountView>),
    /// A job, with the chain's transaction fee (its job entry's `fee`, to
    /// rebuild its block's job file for the inclusion proof).
    Job(JobId, oneshot::Sender<Option<(JobView, TokenAmount)>>),
    /// A signed envelope (wire bytes) for the core, as from the network.
    Submit(Vec<u8>, oneshot::Sender<Result<SubmitView, String>>),
}

/// The HTTP side's handles onto one node.
#[derive(Debug, Clone)]
pub struct ApiShared {
    /// The latest snapshot.
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Events, one JSON object each (`{"type": ..., ...}`); weak, so the
    /// streams end when the node task drops its feed.
    pub events: broadcast::WeakSender<Arc<str>>,
    /// Lookups into the node task.
    pub queries: mpsc::Sender<Query>,
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    /// Decided blocks from the node's database.
    pub blocks: Option<crate::store::BlockReader>,
}

/// The node task's side.
#[derive(Debug)]
pub struct Feed {
    snapshot: watch::Sender<Arc<Snapshot>>,
    events: broadcast::Sender<Arc<str>>,
    queries: mpsc::Receiver<Query>,
    metrics: Arc<Metrics>,
    recent: VecDeque<BlockSummary>,
    payouts: BTreeMap<u64, PayoutView>,
    round: u32,
    peers: BTreeMap<PublicKey, PeerClass>,
    last_signers: Vec<PublicKey>,
    last_time: Option<u64>,
    /// The envelope sent last and its size: one envelope goes to several
    /// peers in a row, and is measured once.
    last_sent: Option<(Arc<SignedEnvelope>, u64)>,
    /// The byte counters by message tag (looked up once per kind).
    received: BTreeMap<u16, prometheus_client::metrics::counter::Counter>,
    sent: BTreeMap<u16, prometheus_client::metrics::counter::Counter>,
    /// The height of the last snapshot, and when the next is due anyway.
    published: Option<(u64, LocalTime)>,
}

/// A feed and the handles the HTTP side reads it with.
pub fn channel(blocks: Option<crate::store::BlockReader>) -> (Feed, ApiShared) {
    let (stx, srx) = watch::channel(Arc::new(Snapshot::default()));
    let (etx, _) = broadcast::channel(EVENT_BUFFER);
    let (qtx, qrx) = mpsc::channel(QUERY_QUEUE);
    let metrics = Arc::new(Metrics::new());
    let feed = Feed {
        snapshot: stx,
        events: etx.clone(),
        queries: qrx,
        metrics: metrics.clone(),
        recent: VecDeque::new(),
        payouts: BTreeMap::new(),
        round: 0,
        peers: BTreeMap::new(),
        last_signers: Vec::new(),
        last_time: None,
        last_sent: None,
        received: BTreeMap::new(),
        sent: BTreeMap::new(),
        published: None,
    };
    let shared = ApiShared {
        snapshot: srx,
        events: etx.downgrade(),
        queries: qtx,
        metrics,
        blocks,
    };
    (feed, shared)
}

/// The agreed time of `core` at `now`, microseconds.
fn agreed_us(core: &NodeCore, now: LocalTime) -> i64 {
    now.micros()
        .saturating_add(core.validator().time_correction().unwrap_or(0))
}

impl Feed {
    /// The next lookup (pending forever once every handle is gone).
    pub async fn next_query(&mut self) -> Query {
        match self.queries.recv().await {
            Some(q) => q,
            None => std::future::pending().await,
        }
    }

    fn emit(&self, v: serde_json::Value) {
        // No reader is not an error.
        let _ = self.events.send(Arc::from(v.to_string()));
    }

    /// A transport event (peers by class, refusals, drops, vote latency).
    pub fn on_transport(&mut self, core: &NodeCore, now: LocalTime, ev: &TransportEvent) {
        let m = &self.metrics;
        match ev {
            TransportEvent::Connected { peer, class, .. } => {
                self.peers.insert(*peer, *class);
                self.count_peers();
            }
            TransportEvent::Closed { peer, .. } => {
                self.peers.remove(peer);
                self.count_peers();
            }
            TransportEvent::Received { envelope, .. } => {
                let kind = envelope.envelope().kind;
                let bytes = envelope.to_bytes().len() as u64;
                self.received
                    .entry(kind.tag())
                    .or_insert_with(|| Metrics::labelled(&m.received_bytes, "kind", kind.name()))
                    .inc_by(bytes);
                if kind == MessageKind::Vote && core.validator().time_synced() {
                    let sent = envelope.envelope().sent_at.0 as i64;
                    let late = agreed_us(core, now).saturating_sub(sent).max(0);
                    m.vote_latency.observe(late as f64 / 1e6);
                }
            }
            TransportEvent::Dropped { .. } => {
                m.dropped_frames.inc();
            }
            TransportEvent::ConnectFailed { .. } => {
                m.connect_failures.inc();
            }
            TransportEvent::Refused { .. } => {
                m.refusals.inc();
            }
        }
    }

    fn count_peers(&self) {
        let v = self
            .peers
            .values()
            .filter(|c| **c == PeerClass::Validator)
            .count();
        let m = &self.metrics;
        Metrics::labelled(&m.peers, "class", "validator").set(v as i64);
        let c = (self.peers.len() - v) as i64;
        Metrics::labelled(&m.peers, "class", "client_or_partner").set(c);
    }

    /// `envelope` was handed to the transport for one peer.
    pub fn on_send(&mut self, envelope: &Arc<SignedEnvelope>) {
        let bytes = match &self.last_sent {
            Some((e, n)) if Arc::ptr_eq(e, envelope) => *n,
            _ => {
                let n = envelope.to_bytes().len() as u64;
                self.last_sent = Some((envelope.clone(), n));
                n
            }
        };
        let kind = envelope.envelope().kind;
        let m = &self.metrics;
        self.sent
            .entry(kind.tag())
            .or_insert_with(|| Metrics::labelled(&m.sent_bytes, "kind", kind.name()))
            .inc_by(bytes);
    }

    /// A batch was made durable.
    pub fn on_persist(&mut self, core: &NodeCore, now: LocalTime, ops: &[StoreOp]) {
        for op in ops {
            match op {
                StoreOp::Consensus(s) => self.round = s.round_state.round,
                StoreOp::Block(b) => self.on_block(core, now, b),
                _ => {}
            }
        }
    }

    fn on_block(&mut self, core: &NodeCore, now: LocalTime, b: &undchain_roles::BlockRecord) {
        let h = &b.block.header;
        let m = &self.metrics;
        let jobs: Vec<JobId> = b
            .requests
            .iter()
            .map(|r| JobId::from_request_digest(r.digest()))
            .collect();
        let bytes: u64 = b.requests.iter().map(|r| r.to_bytes().len() as u64).sum();
        m.blocks.inc();
        m.file_jobs.observe(h.job_count as f64);
        m.file_bytes.observe(bytes as f64);
        if let Some(prev) = self.last_time {
            m.block_interval
                .observe(h.time.0.saturating_sub(prev) as f64 / 1e6);
        }
        if core.validator().time_synced() {
            let delay = agreed_us(core, now).saturating_sub(h.time.0 as i64).max(0);
            m.commit_delay.observe(delay as f64 / 1e6);
        }
        self.last_time = Some(h.time.0);
        self.last_signers = b
            .block
            .certificate
            .signatures
            .iter()
            .map(|s| s.validator)
            .collect();
        let summary = BlockSummary {
            height: h.number.0,
            hash: h.hash().to_hex(),
            time_us: h.time.0,
            jobs: h.job_count,
            job_ids: jobs
                .iter()
                .take(view::LISTED_JOBS)
                .map(|j| j.0.to_hex())
                .collect(),
            file_bytes: bytes,
            signers: self.last_signers.len(),
            round: b.block.certificate.round,
            evidence: h.evidence.iter().count(),
        };
        let mut ev = serde_json::to_value(&summary).unwrap_or_default();
        ev["type"] = "block".into();
        self.emit(ev);
        self.recent.push_back(summary);
        while self.recent.len() > view::RECENT_BLOCKS {
            self.recent.pop_front();
        }
    }

    /// An event of the core.
    pub fn on_event(&mut self, e: &NodeEvent) {
        let m = &self.metrics;
        match e {
            NodeEvent::RequestAcked { job, block } => {
                m.acked.inc();
                // One per request: built only when someone listens.
                if self.events.receiver_count() == 0 {
                    return;
                }
                self.emit(serde_json::json!({
                    "type": "job", "job": job.0.to_hex(), "state": "accepted", "block": block.0,
                }));
            }
            NodeEvent::RequestRefused { .. } => {
                m.requests_refused.inc();
            }
            NodeEvent::Refused { .. } => {
                m.refused.inc();
            }
            NodeEvent::Evidence(ev) => {
                m.evidence_seen.inc();
                let (validator, height) = match &**ev {
                    Evidence::DoubleVote { first, .. } => {
                        (first.vote.validator.to_hex(), first.vote.height.0)
                    }
                    #[allow(unreachable_patterns)]
                    _ => (String::new(), 0),
                };
                self.emit(serde_json::json!({
                    "type": "evidence", "validator": validator, "height": height,
                }));
            }
            NodeEvent::EvidenceCommitted {
                number,
                offender,
                score,
            } => {
                m.evidence_committed.inc();
                self.emit(serde_json::json!({
                    "type": "evidence", "committed_in": number.0,
                    "validator": offender.to_hex(), "score": score,
                }));
            }
            NodeEvent::PeriodSettled {
                number,
                period,
                completed,
                partial,
                paid,
                refunded,
                cancelled,
                carried,
            } => {
                m.periods.inc();
                m.paid.inc_by(paid.0);
                m.refunded.inc_by(refunded.0);
                for (o, n) in [
                    ("completed", completed),
                    ("partial", partial),
                    ("cancelled", cancelled),
                    ("carried", carried),
                ] {
                    Metrics::labelled(&m.payout_jobs, "outcome", o).inc_by(*n);
                }
                let p = PayoutView {
                    period: period.0,
                    block: number.0,
                    completed: *completed,
                    partial: *partial,
                    paid: paid.0,
                    refunded: refunded.0,
                    cancelled: *cancelled,
                    carried: *carried,
                };
                let mut ev = serde_json::to_value(&p).unwrap_or_default();
                ev["type"] = "payout".into();
                self.emit(ev);
                self.payouts.insert(period.0, p);
                while self.payouts.len() > view::KEPT_PERIODS {
                    self.payouts.pop_first();
                }
            }
            NodeEvent::SetChanged {
                height, rotated, ..
            } => {
                self.emit(serde_json::json!({
                    "type": "validators", "height": height.0, "rotated": rotated,
                }));
            }
            _ => {}
        }
    }

    /// Publishes the snapshot of `core` after a batch: at once when the
    /// height changed, otherwise at most every [`REFRESH_EVERY_US`].
    pub fn refresh(&mut self, core: &NodeCore, now: LocalTime) {
        let height = core.validator().height().0;
        if let Some((h, due)) = self.published {
            if h == height && now < due {
                return;
            }
        }
        self.published = Some((height, now.plus(REFRESH_EVERY_US)));
        self.publish(core, now);
    }

    fn publish(&mut self, core: &NodeCore, now: LocalTime) {
        let v = core.validator();
        let ledger = v.ledger();
        let params = ledger.config();
        let m = &self.metrics;
        m.height.set(v.height().0 as i64);
        m.round.set(i64::from(self.round));
        m.offset.set(v.time_correction().unwrap_or(0) as f64 / 1e6);
        let validator_peers = self
            .peers
            .values()
            .filter(|c| **c == PeerClass::Validator)
            .count();
        let status = view::Status {
            chain_id: params.chain_id.0,
            node_id: v.id().to_hex(),
            role: if v.is_active() {
                "validator"
            } else {
                "passive"
            },
            height: v.height().0,
            latest_block_hash: v.last_hash().to_hex(),
            latest_block_time_us: self.last_time,
            block_time_us: agreed_us(core, now).max(0) as u64,
            block_interval_us: params.block_interval_us,
            round: self.round,
            peers: self.peers.len(),
            validator_peers,
            client_peers: self.peers.len() - validator_peers,
            time_synced: v.time_synced(),
            time_offset_us: v.time_correction().unwrap_or(0),
            period: params.period_of(v.height()).0,
            ledger_root: ledger.root().to_hex(),
            open_jobs: ledger.open_jobs(),
            accounts: ledger.account_count(),
            epoch: v.epoch().0,
            domain_overloaded: v.domain_overloaded(),
        };
        let partners = v
            .partner_desk()
            .registered()
            .into_iter()
            .map(
                |(id, kinds, running, capacity, failed, score)| PartnerView {
                    id: id.to_hex(),
                    kinds: kinds.iter().map(|k| k.to_string()).collect(),
                    running,
                    capacity,
                    failed,
                    score: score.get(),
                },
            )
            .collect();
        let snap = Snapshot {
            status,
            validators: view::validators(core, &self.last_signers),
            partners,
            recent_blocks: self.recent.iter().cloned().collect(),
            payouts: self.payouts.values().cloned().collect(),
        };
        self.snapshot.send_if_modified(|old| {
            if **old == snap {
                false
            } else {
                *old = Arc::new(snap);
                true
            }
        });
    }

    /// Answers `q` from `core`; a submitted envelope goes to the core.
    pub fn answer(&mut self, core: &mut NodeCore, now: LocalTime, q: Query) {
        match q {
            Query::Account(key, reply) => {
                let ledger = core.validator().ledger();
                let a = ledger.account(&key);
                let proof = if a.is_empty() {
                    None
                } else {
                    ledger
                        .prove(&StateKey::Account(key))
                        .map(|p| view::proof_hex(&p))
                };
                let _ = reply.send(AccountView {
                    key: key.to_hex(),
                    balance: a.balance.0,
                    escrow: a.escrow.0,
                    nonce: a.nonce,
                    ledger_root: ledger.root().to_hex(),
                    height: core.validator().height().0,
                    proof,
                });
            }
            Query::Job(id, reply) => {
                let fee = core.validator().ledger().config().transaction_fee;
                let _ = reply.send(job_view(core, &id).map(|v| (v, fee)));
            }
            Query::Submit(bytes, reply) => {
                let _ = reply.send(submit(core, now, &bytes));
            }
        }
    }
}

fn job_view(core: &NodeCore, id: &JobId) -> Option<JobView> {
    let v = core.validator();
    let ledger = v.ledger();
    let root = ledger.root().to_hex();
    if let Some(j) = ledger.job(id) {
        return Some(JobView {
            id: id.0.to_hex(),
            state: "committed",
            block: Some(j.commit_block.0),
            client: Some(j.client.to_hex()),
            escrow: Some(j.escrow.0),
            claims: j.claims.len(),
            ledger_root: root,
            proof: ledger
                .prove(&StateKey::Job(*id))
                .map(|p| view::proof_hex(&p)),
            inclusion: None,
        });
    }
    if ledger.is_settled(id) {
        return Some(JobView {
            id: id.0.to_hex(),
            state: "settled",
            block: None,
            client: None,
            escrow: None,
            claims: 0,
            ledger_root: root,
            proof: ledger
                .prove(&StateKey::Settled(*id))
                .map(|p| view::proof_hex(&p)),
            inclusion: None,
        });
    }
    v.acked_block(id).map(|b| JobView {
        id: id.0.to_hex(),
        state: "accepted",
        block: Some(b.0),
        client: None,
        escrow: None,
        claims: 0,
        ledger_root: root,
        proof: None,
        inclusion: None,
    })
}

/// Whether `kind` is a message a user (client, partner, wallet) sends;
/// validator-to-validator traffic is refused at the API.
pub fn user_kind(kind: MessageKind) -> bool {
    kind.tag() < MessageKind::Hello.tag() || kind == MessageKind::Transaction
}

fn submit(core: &mut NodeCore, now: LocalTime, bytes: &[u8]) -> Result<SubmitView, String> {
    let env = SignedEnvelope::from_bytes(bytes, bytes.len().max(1))
        .map_err(|e| format!("envelope: {e}"))?;
    let kind = env.envelope().kind;
    if !user_kind(kind) {
        return Err(format!(
            "{kind} is validator traffic: the API takes user messages only"
        ));
    }
    let job = matches!(env.body(), Message::UtilityRequest(_))
        .then(|| JobId::from_request_digest(env.digest()).0.to_hex());
    let digest = env.digest().to_hex();
    core.handle_envelope(now, bytes)
        .map_err(|e| format!("refused by the node: {e}"))?;
    Ok(SubmitView {
        digest,
        kind: kind.name().to_owned(),
        job,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::{BlockNumber, PayoutPeriod, TokenAmount};

    fn settled(period: u64, paid: u64) -> NodeEvent {
        NodeEvent::PeriodSettled {
            number: BlockNumber(period * 10 + 9),
            period: PayoutPeriod(period),
            completed: 2,
            partial: 1,
            paid: TokenAmount(paid),
            refunded: TokenAmount(5),
            cancelled: 0,
            carried: 3,
        }
    }

    #[test]
    fn settlements_feed_the_payouts_the_metrics_and_the_stream() {
        let (mut feed, shared) = channel(None);
        let mut rx = shared.events.upgrade().unwrap().subscribe();
        feed.on_event(&settled(0, 40));
        feed.on_event(&settled(1, 60));
        let ev: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(
            (ev["type"].as_str(), ev["paid"].as_u64()),
            (Some("payout"), Some(40))
        );
        assert_eq!(feed.payouts[&1].paid, 60);
        let text = feed.metrics.encode();
        assert!(
            text.contains("undchain_payouts_paid_tokens_total 100"),
            "{text}"
        );
        assert!(
            text.contains("undchain_payouts_periods_settled_total 2"),
            "{text}"
        );
        assert!(
            text.contains("undchain_payouts_jobs_total{outcome=\"carried\"} 6"),
            "{text}"
        );
        // Only the latest periods are kept.
        for p in 2..(view::KEPT_PERIODS as u64 + 10) {
            feed.on_event(&settled(p, 1));
        }
        assert_eq!(feed.payouts.len(), view::KEPT_PERIODS);
        assert_eq!(feed.payouts.keys().next(), Some(&10));
    }

    #[test]
    fn the_stream_ends_when_the_feed_is_dropped() {
        let (feed, shared) = channel(None);
        let mut rx = shared.events.upgrade().unwrap().subscribe();
        drop(feed);
        assert!(shared.events.upgrade().is_none());
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Closed)
        ));
    }

    #[test]
    fn only_user_messages_are_taken_from_the_api() {
        assert!(user_kind(MessageKind::UtilityRequest));
        assert!(user_kind(MessageKind::Transaction));
        assert!(!user_kind(MessageKind::Vote));
        assert!(!user_kind(MessageKind::Proposal));
        assert!(!user_kind(MessageKind::Hello));
        assert!(!user_kind(MessageKind::RequestBatch));
    }
}
