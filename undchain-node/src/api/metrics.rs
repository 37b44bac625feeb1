//! The node's Prometheus metrics (`prometheus-client`, one [`Registry`]
//! per node), served at `GET /metrics` in the text exposition format.
//! Names follow CometBFT and Malachite: `undchain_<subsystem>_<name>`,
//! counters end in `_total`, durations are seconds, sizes bytes.
//!
//! | metric | type | what |
//! | --- | --- | --- |
//! | `undchain_consensus_height` | gauge | the next height to decide |
//! | `undchain_consensus_round` | gauge | the agreement round at that height (from the driver's persisted state) |
//! | `undchain_consensus_blocks_committed_total` | counter | blocks decided and made durable |
//! | `undchain_consensus_block_interval_seconds` | histogram | header time of a block minus its parent's (agreed clock) |
//! | `undchain_consensus_block_commit_delay_seconds` | histogram | agreed time when the block was stored minus its header time |
//! | `undchain_consensus_vote_latency_seconds` | histogram | agreed time a vote arrived minus its `sent_at` |
//! | `undchain_timesync_offset_seconds` | gauge | the block clock's correction (agreed = local + offset) |
//! | `undchain_p2p_peers{class}` | gauge | connected peers, `validator` or `client_or_partner` |
//! | `undchain_p2p_received_bytes_total{kind}` | counter | envelope bytes received, by message kind (`Reconcile`, `JobFileDelta`, `RequestBatch` are the reconciliation bytes) |
//! | `undchain_p2p_sent_bytes_total{kind}` | counter | envelope bytes sent, by kind (one per peer sent to) |
//! | `undchain_p2p_connection_refusals_total` | counter | inbound peers this node refused |
//! | `undchain_p2p_connect_failures_total` | counter | outbound dials that failed |
//! | `undchain_p2p_dropped_frames_total` | counter | incoming frames dropped (framing, rate limit, envelope) |
//! | `undchain_jobfile_jobs` | histogram | jobs in each decided block's file |
//! | `undchain_jobfile_size_bytes` | histogram | bytes of the signed requests behind each decided block's file |
//! | `undchain_requests_acked_total` | counter | client requests filed and acknowledged |
//! | `undchain_requests_refused_total` | counter | client requests refused at intake |
//! | `undchain_envelopes_refused_total` | counter | inputs the core refused |
//! | `undchain_payouts_periods_settled_total` | counter | payout periods settled |
//! | `undchain_payouts_paid_tokens_total` | counter | tokens paid from escrow to partners |
//! | `undchain_payouts_refunded_tokens_total` | counter | unused escrow returned to clients |
//! | `undchain_payouts_jobs_total{outcome}` | counter | settled jobs: `completed`, `partial`, `cancelled`, `carried` |
//! | `undchain_evidence_seen_total` | counter | conflicting signed messages seen |
//! | `undchain_evidence_committed_total` | counter | equivocation evidence committed by blocks |

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// One label, `name=value`.
pub type Labels = Vec<(&'static str, String)>;

/// Every metric of one node, registered in its own registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `undchain_consensus_height`.
    pub height: Gauge,
    /// `undchain_consensus_round`.
    pub round: Gauge,
    /// `undchain_consensus_blocks_committed_total`.
    pub blocks: Counter,
    /// `undchain_consensus_block_interval_seconds`.
    pub block_interval: Histogram,
    /// `undchain_consensus_block_commit_delay_seconds`.
    pub commit_delay: Histogram,
    /// `undchain_consensus_vote_latency_seconds`.
    pub vote_latency: Histogram,
    /// `undchain_timesync_offset_seconds`.
    pub offset: Gauge<f64, AtomicU64>,
    /// `undchain_p2p_peers{class}`.
    pub peers: Family<Labels, Gauge>,
    /// `undchain_p2p_received_bytes_total{kind}`.
    pub received_bytes: Family<Labels, Counter>,
    /// `undchain_p2p_sent_bytes_total{kind}`.
    pub sent_bytes: Family<Labels, Counter>,
    /// `undchain_p2p_connection_refusals_total`.
    pub refusals: Counter,
    /// `undchain_p2p_connect_failures_total`.
    pub connect_failures: Counter,
    /// `undchain_p2p_dropped_frames_total`.
    pub dropped_frames: Counter,
    /// `undchain_jobfile_jobs`.
    pub file_jobs: Histogram,
    /// `undchain_jobfile_size_bytes`.
    pub file_bytes: Histogram,
    /// `undchain_requests_acked_total`.
    pub acked: Counter,
    /// `undchain_requests_refused_total`.
    pub requests_refused: Counter,
    /// `undchain_envelopes_refused_total`.
    pub refused: Counter,
    /// `undchain_payouts_periods_settled_total`.
    pub periods: Counter,
    /// `undchain_payouts_paid_tokens_total`.
    pub paid: Counter,
    /// `undchain_payouts_refunded_tokens_total`.
    pub refunded: Counter,
    /// `undchain_payouts_jobs_total{outcome}`.
    pub payout_jobs: Family<Labels, Counter>,
    /// `undchain_evidence_seen_total`.
    pub evidence_seen: Counter,
    /// `undchain_evidence_committed_total`.
    pub evidence_committed: Counter,
}

fn seconds_buckets() -> impl Iterator<Item = f64> {
    // 1 ms .. ~65 s.
    exponential_buckets(0.001, 2.0, 17)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("undchain");
        let m = Metrics {
            height: Gauge::default(),
            round: Gauge::default(),
            blocks: Counter::default(),
            block_interval: Histogram::new(seconds_buckets()),
            commit_delay: Histogram::new(seconds_buckets()),
            vote_latency: Histogram::new(seconds_buckets()),
            offset: Gauge::default(),
            peers: Family::default(),
            received_bytes: Family::default(),
            sent_bytes: Family::default(),
            refusals: Counter::default(),
            connect_failures: Counter::default(),
            dropped_frames: Counter::default(),
            file_jobs: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            file_bytes: Histogram::new(exponential_buckets(256.0, 4.0, 12)),
            acked: Counter::default(),
            requests_refused: Counter::default(),
            refused: Counter::default(),
            periods: Counter::default(),
            paid: Counter::default(),
            refunded: Counter::default(),
            payout_jobs: Family::default(),
            evidence_seen: Counter::default(),
            evidence_committed: Counter::default(),
            registry: Registry::default(),
        };
        let h = "the next height to decide";
        r.register("consensus_height", h, m.height.clone());
        let h = "the agreement round at the current height";
        r.register("consensus_round", h, m.round.clone());
        let h = "blocks decided and made durable";
        r.register("consensus_blocks_committed", h, m.blocks.clone());
        let h = "header time of a block minus its parent's, seconds";
        r.register(
            "consensus_block_interval_seconds",
            h,
            m.block_interval.clone(),
        );
        let h = "agreed time when a block was stored minus its header time, seconds";
        r.register(
            "consensus_block_commit_delay_seconds",
            h,
            m.commit_delay.clone(),
        );
        let h = "agreed time a vote arrived minus its sent_at, seconds";
        r.register("consensus_vote_latency_seconds", h, m.vote_latency.clone());
        let h = "the block clock's correction: agreed time = local time + offset, seconds";
        r.register("timesync_offset_seconds", h, m.offset.clone());
        r.register("p2p_peers", "connected peers by class", m.peers.clone());
        let h = "envelope bytes received, by message kind";
        r.register("p2p_received_bytes", h, m.received_bytes.clone());
        let h = "envelope bytes sent, by message kind (once per peer)";
        r.register("p2p_sent_bytes", h, m.sent_bytes.clone());
        let h = "inbound peers this node refused";
        r.register("p2p_connection_refusals", h, m.refusals.clone());
        let h = "outbound dials that failed";
        r.register("p2p_connect_failures", h, m.connect_failures.clone());
        let h = "incoming frames dropped";
        r.register("p2p_dropped_frames", h, m.dropped_frames.clone());
        let h = "jobs in each decided block's file";
        r.register("jobfile_jobs", h, m.file_jobs.clone());
        let h = "bytes of the signed requests behind each decided block's file";
        r.register("jobfile_size_bytes", h, m.file_bytes.clone());
        let h = "client requests filed and acknowledged";
        r.register("requests_acked", h, m.acked.clone());
        let h = "client requests refused at intake";
        r.register("requests_refused", h, m.requests_refused.clone());
        let h = "inputs the node core refused";
        r.register("envelopes_refused", h, m.refused.clone());
        let h = "payout periods settled";
        r.register("payouts_periods_settled", h, m.periods.clone());
        let h = "tokens paid from escrow to partners";
        r.register("payouts_paid_tokens", h, m.paid.clone());
        let h = "unused escrow returned to clients";
        r.register("payouts_refunded_tokens", h, m.refunded.clone());
        let h = "settled jobs by outcome";
        r.register("payouts_jobs", h, m.payout_jobs.clone());
        let h = "conflicting signed messages seen";
        r.register("evidence_seen", h, m.evidence_seen.clone());
        let h = "equivocation evidence committed by blocks";
        r.register("evidence_committed", h, m.evidence_committed.clone());
        Metrics { registry: r, ..m }
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut s, &self.registry);
        s
    }

    /// The counter of `family` under label `name=value`.
    pub fn labelled<M: Clone + Default>(
        family: &Family<Labels, M>,
        name: &'static str,
        value: &str,
    ) -> M {
        family
            .get_or_create(&vec![(name, value.to_owned())])
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed_under_its_documented_name() {
        let m = Metrics::new();
        m.height.set(7);
        m.blocks.inc();
        m.block_interval.observe(1.0);
        Metrics::labelled(&m.peers, "class", "validator").set(3);
        Metrics::labelled(&m.received_bytes, "kind", "Reconcile").inc_by(100);
        let text = m.encode();
        for name in [
            "undchain_consensus_height 7",
            "undchain_consensus_round 0",
            "undchain_consensus_blocks_committed_total 1",
            "undchain_consensus_block_interval_seconds_count 1",
            "undchain_consensus_block_commit_delay_seconds_count 0",
            "undchain_consensus_vote_latency_seconds_count 0",
            "undchain_timesync_offset_seconds 0",
            "undchain_p2p_peers{class=\"validator\"} 3",
            "undchain_p2p_received_bytes_total{kind=\"Reconcile\"} 100",
            "undchain_p2p_connection_refusals_total 0",
            "undchain_p2p_connect_failures_total 0",
            "undchain_p2p_dropped_frames_total 0",
            "undchain_jobfile_jobs_count 0",
            "undchain_jobfile_size_bytes_count 0",
            "undchain_requests_acked_total 0",
            "undchain_requests_refused_total 0",
            "undchain_envelopes_refused_total 0",
            "undchain_payouts_periods_settled_total 0",
            "undchain_payouts_paid_tokens_total 0",
            "undchain_payouts_refunded_tokens_total 0",
            "undchain_evidence_seen_total 0",
            "undchain_evidence_committed_total 0",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
