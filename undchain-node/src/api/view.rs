//! What the API shows, as JSON-serialisable views: the [`Snapshot`] the
//! node task publishes after each batch, and the answers to lookups. Keys,
//! hashes and job ids are lowercase hex (64 digits); times are Unix
//! microseconds on the agreed clock; amounts are token units.

use serde::Serialize;
use undchain_roles::NodeCore;
use undchain_types::msg::{CommittedBlock, MerkleProof};
use undchain_types::{Hash32, JobId, PublicKey};

/// Blocks kept in the snapshot's recent list.
pub const RECENT_BLOCKS: usize = 32;
/// Job ids a block summary lists (the rest are counted).
pub const LISTED_JOBS: usize = 64;
/// Settled periods kept for `GET /payouts/{period}`.
pub const KEPT_PERIODS: usize = 256;

/// `GET /status`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Status {
    /// The chain's id.
    pub chain_id: u32,
    /// This node's key.
    pub node_id: String,
    /// `validator` (holds an active seat) or `passive`.
    pub role: &'static str,
    /// The next height to decide (blocks decided so far).
    pub height: u64,
    /// The last decided block's hash (the genesis hash before block 0).
    pub latest_block_hash: String,
    /// The last decided block's header time, if any block was decided.
    pub latest_block_time_us: Option<u64>,
    /// The agreed time when this snapshot was taken.
    pub block_time_us: u64,
    /// Block interval, microseconds.
    pub block_interval_us: u64,
    /// The agreement round at `height`.
    pub round: u32,
    /// Connected peers.
    pub peers: usize,
    /// Connected peers that are validators.
    pub validator_peers: usize,
    /// Connected clients and partners.
    pub client_peers: usize,
    /// Whether the agreed time is online.
    pub time_synced: bool,
    /// Agreed time minus local time, microseconds (0 before sync).
    pub time_offset_us: i64,
    /// The payout period of `height`.
    pub period: u64,
    /// The ledger root after the last block.
    pub ledger_root: String,
    /// Jobs committed and not yet settled.
    pub open_jobs: usize,
    /// Accounts in the ledger.
    pub accounts: usize,
    /// The convergence epoch.
    pub epoch: u32,
    /// Whether a quorum reports the domain overloaded.
    pub domain_overloaded: bool,
}

/// One registered validator, in `GET /validators`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ValidatorView {
    /// Its key.
    pub id: String,
    /// Holds a seat in the active set.
    pub active: bool,
    /// Its seat, when active.
    pub seat: Option<usize>,
    /// `known` (appointed by the chain owner) or `unknown`.
    pub trust: &'static str,
    /// A known validator in an unknown seat.
    pub filling_unknown: bool,
    /// Its perception score.
    pub score: u16,
    /// Blocks it signed (as counted by the ledger).
    pub signed_blocks: u64,
    /// Whether its precommit is in the last block's certificate.
    pub signed_last_block: bool,
    /// Rounds it missed in a row.
    pub missed_in_a_row: u32,
    /// Its last reported load, per mille (active validators only).
    pub load_permille: Option<u16>,
    /// Its last reported lag, blocks.
    pub lag_blocks: Option<u32>,
}

/// One partner registered at this validator's desk, in `GET /partners`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartnerView {
    /// Its key.
    pub id: String,
    /// The utility kinds it offers.
    pub kinds: Vec<String>,
    /// Jobs it runs now (its load).
    pub running: u32,
    /// Jobs it offered to run at once.
    pub capacity: u32,
    /// Whether it failed a requirement check.
    pub failed: bool,
    /// Its perception score at this desk.
    pub score: u16,
}

/// One decided block, in the snapshot's recent list and the event stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BlockSummary {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: String,
    /// Its header time.
    pub time_us: u64,
    /// Jobs in its file.
    pub jobs: u64,
    /// The first [`LISTED_JOBS`] job ids of its file.
    pub job_ids: Vec<String>,
    /// Bytes of the signed requests behind its file.
    pub file_bytes: u64,
    /// Precommit signatures in its certificate.
    pub signers: usize,
    /// The round that decided it.
    pub round: u32,
    /// Evidence it committed.
    pub evidence: usize,
}

/// One settled payout period, in `GET /payouts/{period}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PayoutView {
    /// The period.
    pub period: u64,
    /// The block that ended it.
    pub block: u64,
    /// Jobs paid by full receipts.
    pub completed: u64,
    /// Jobs paid with partial claims.
    pub partial: u64,
    /// Tokens paid to partners.
    pub paid: u64,
    /// Unused escrow returned.
    pub refunded: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
    /// Jobs carried into the next period.
    pub carried: u64,
}

/// Everything the node task publishes after a batch.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Snapshot {
    /// The status.
    pub status: Status,
    /// Every registered validator: active ones in seat order, then passive.
    pub validators: Vec<ValidatorView>,
    /// Partners at this validator's desk.
    pub partners: Vec<PartnerView>,
    /// The last [`RECENT_BLOCKS`] blocks this node stored, oldest first.
    pub recent_blocks: Vec<BlockSummary>,
    /// Periods settled since the node started, oldest first.
    pub payouts: Vec<PayoutView>,
}

/// `GET /accounts/{key}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccountView {
    /// The key.
    pub key: String,
    /// Free balance.
    pub balance: u64,
    /// Escrowed budgets of its open jobs.
    pub escrow: u64,
    /// Its next transaction nonce.
    pub nonce: u64,
    /// The ledger root the proof is under (the last block's `ledger_root`).
    pub ledger_root: String,
    /// The height of the block whose ledger root that is, plus one.
    pub height: u64,
    /// Sibling hashes of the account's leaf, root side first; `null` when
    /// the account is empty (not stored).
    pub proof: Option<Vec<String>>,
}

/// `GET /jobs/{id}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobView {
    /// The job id.
    pub id: String,
    /// `accepted` (filed, not committed), `committed` (open in the
    /// ledger) or `settled`.
    pub state: &'static str,
    /// The block its file was committed in (committed jobs), or the block
    /// its acknowledgement named (accepted jobs).
    pub block: Option<u64>,
    /// The paying client (committed jobs).
    pub client: Option<String>,
    /// The escrowed budget (committed jobs).
    pub escrow: Option<u64>,
    /// Claims recorded so far (committed jobs).
    pub claims: usize,
    /// The ledger root the proof is under.
    pub ledger_root: String,
    /// Sibling hashes of the job's ledger leaf (open or settled), root
    /// side first; `null` for an accepted job.
    pub proof: Option<Vec<String>>,
    /// A committed job's inclusion proof in its block's job file; `null`
    /// for an accepted or settled job, or a block this node no longer
    /// stores.
    pub inclusion: Option<InclusionView>,
}

/// A job's inclusion proof in its block's job file (DESIGN.md "Two roots,
/// two jobs"): `leaf` is under the block header's `job_root` by
/// `siblings`, as `undchain_jobfile::verify_inclusion` checks it (the
/// proof an `InclusionNotice` carries to the client).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InclusionView {
    /// The block whose job file holds the job.
    pub block: u64,
    /// That block header's `job_root`: the Merkle root of its job file.
    pub job_root: String,
    /// The job entry's leaf hash.
    pub leaf: String,
    /// The leaf's index among the file's entries (sorted by job id).
    pub leaf_index: u64,
    /// Entries in the file (the header's `job_count`).
    pub leaf_count: u64,
    /// Sibling hashes, bottom-up.
    pub siblings: Vec<String>,
}

impl InclusionView {
    /// The view of `leaf`'s `proof` under `job_root` in block `block`.
    pub fn new(block: u64, job_root: &Hash32, leaf: &Hash32, proof: &MerkleProof) -> Self {
        InclusionView {
            block,
            job_root: job_root.to_hex(),
            leaf: leaf.to_hex(),
            leaf_index: proof.leaf_index,
            leaf_count: proof.leaf_count,
            siblings: proof.siblings.iter().map(|h| h.to_hex()).collect(),
        }
    }
}

/// `POST /requests`: what the core did with the envelope.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SubmitView {
    /// The envelope's digest.
    pub digest: String,
    /// The message kind.
    pub kind: String,
    /// The job id, for a client request.
    pub job: Option<String>,
}

/// The JSON of a decided block: header fields, `hash`, the certificate and
/// the job ids of its file.
pub fn block_json(block: &CommittedBlock, jobs: &[JobId]) -> serde_json::Value {
    let h = &block.header;
    let c = &block.certificate;
    serde_json::json!({
        "chain_id": h.chain_id.0,
        "epoch": h.epoch,
        "number": h.number.0,
        "time_us": h.time.0,
        "hash": h.hash().to_hex(),
        "parent": h.parent.to_hex(),
        "job_root": h.job_root.to_hex(),
        "job_count": h.job_count,
        "ops_root": h.ops_root.to_hex(),
        "ops_count": h.ops_count,
        "ledger_root": h.ledger_root.to_hex(),
        "validator_set_hash": h.validator_set_hash.to_hex(),
        "parent_signers": h.parent_signers,
        "links": h.links.iter().count(),
        "evidence": h.evidence.iter().count(),
        "certificate": {
            "height": c.height.0,
            "round": c.round,
            "block_hash": c.block_hash.to_hex(),
            "signatures": c.signatures.iter().map(|s| serde_json::json!({
                "validator": s.validator.to_hex(),
                "signature": undchain_types::hash::to_hex(&s.signature.0),
            })).collect::<Vec<_>>(),
        },
        "jobs": jobs.iter().map(|j| j.0.to_hex()).collect::<Vec<_>>(),
    })
}

/// The validators of `core`, active ones in seat order then passive;
/// `last_signers` signed the last block's certificate.
pub fn validators(core: &NodeCore, last_signers: &[PublicKey]) -> Vec<ValidatorView> {
    let v = core.validator();
    let roster = v.roster();
    let statuses = v.statuses();
    let signed = v.ledger().signed_blocks();
    let view = |id: PublicKey, seat: Option<usize>, trust, filling| {
        let st = statuses.get(&id);
        ValidatorView {
            id: id.to_hex(),
            active: seat.is_some(),
            seat,
            trust,
            filling_unknown: filling,
            score: roster.scores().score(&id).get(),
            signed_blocks: signed.get(&id).copied().unwrap_or(0),
            signed_last_block: last_signers.contains(&id),
            missed_in_a_row: roster.missed_in_a_row(&id),
            load_permille: st.map(|s| s.load_permille),
            lag_blocks: st.map(|s| s.lag_blocks),
        }
    };
    let trust_name = |t: undchain_types::Trust| match t {
        undchain_types::Trust::Known => "known",
        undchain_types::Trust::Unknown => "unknown",
    };
    let mut out: Vec<ValidatorView> = v
        .validator_set()
        .seats()
        .iter()
        .enumerate()
        .map(|(i, s)| view(s.id, Some(i), trust_name(s.trust), s.filling_unknown))
        .collect();
    for id in roster.passive() {
        if out.iter().all(|x| x.id != id.to_hex()) {
            let t = roster.trust(&id).map_or("unknown", trust_name);
            out.push(view(id, None, t, false));
        }
    }
    out
}

/// Hex of each sibling of a state proof.
pub fn proof_hex(p: &undchain_types::msg::StateProof) -> Vec<String> {
    p.siblings.iter().map(|h| h.to_hex()).collect()
}
