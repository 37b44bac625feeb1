//! The scripted client load: clients (funded at genesis) sign utility
//! requests, send each to `ack_fanout` validators, and forward it to the
//! others when fewer than f+1 acknowledged it (client story steps 1-3).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use undchain_types::msg::{ForwardedRequest, Receipt, ReceiptTerms, RequestAck, UtilityRequest};
use undchain_types::{
    BlockNumber, BlockTime, BoundedBytes, BoundedVec, ChainId, Envelope, JobId, Message,
    PerceptionScore, SignedEnvelope, SigningKey, TokenAmount, UtilityKind,
};

/// The key of scripted client `i` of a load drawn from `seed`: the
/// simulator's clients, and the devnet's (`undchain-node`), which funds the
/// same keys at genesis.
pub fn client_key(seed: u64, i: usize) -> SigningKey {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    s[31] = 0xc1;
    SigningKey::from_seed(s)
}

/// The key of scripted partner `i` of a load drawn from `seed` (the
/// partner that serves, and signs the receipts of, the simulator's jobs).
pub fn partner_key(seed: u64, i: usize) -> SigningKey {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    s[31] = 0xa1;
    SigningKey::from_seed(s)
}

/// Partners of the scripted load.
pub(crate) const PARTNERS: usize = 4;

/// The body of the scripted load's request number `nonce`: storage of
/// `1 + nonce % 64` units at price 1, any partner, the nonce as its spec
/// (so every request is distinct). The devnet's clients sign the same
/// bodies.
pub fn request_body(nonce: u64) -> UtilityRequest {
    UtilityRequest {
        kind: UtilityKind::Storage,
        units: 1 + nonce % 64,
        max_price_per_unit: TokenAmount(1),
        min_partner_score: PerceptionScore::MIN,
        partner_threshold: 1,
        co_clients: BoundedVec::default(),
        spec: BoundedBytes::try_from_vec(nonce.to_le_bytes().to_vec()).unwrap_or_default(),
    }
}

/// One client.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub key: SigningKey,
    seq: u64,
}

/// What the load knows of one request.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub client: usize,
    pub original: Arc<SignedEnvelope>,
    /// Validators that acknowledged it.
    pub acks: BTreeSet<usize>,
    /// Every ack received: (validator, block named).
    pub ack_log: Vec<(usize, u64)>,
    /// Validators it was sent or forwarded to.
    pub sent_to: BTreeSet<usize>,
}

/// A receipt the load submitted for a committed job (client story step 5).
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub client: usize,
    /// The receipt (each resend is a newly signed envelope of it, as a
    /// real client's: the validators' replay guard drops a copy).
    pub receipt: Receipt,
    /// Validators that confirmed it (a [`CompletionAck`]) and the block
    /// each named.
    pub acks: BTreeMap<usize, u64>,
    /// Every ack: (validator, block named, first).
    pub ack_log: Vec<(usize, u64, bool)>,
}

/// All clients and their requests.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub clients: Vec<Client>,
    pub partners: Vec<SigningKey>,
    pub jobs: BTreeMap<JobId, Job>,
    /// Receipts submitted, by job.
    pub claims: BTreeMap<JobId, Claim>,
    pub sent: u64,
    pub inclusion_notices: u64,
    /// Job-file pages the clients received: (validator, page).
    pub job_file_replies: Vec<(usize, undchain_types::msg::JobFileReply)>,
    /// Redirects of loaded validators: (validator, redirect).
    pub job_file_elsewhere: Vec<(usize, undchain_types::msg::JobFileElsewhere)>,
    chain: ChainId,
}

impl Load {
    /// `n` clients with keys derived from `seed`.
    pub fn new(n: usize, seed: u64, chain: ChainId) -> Self {
        let clients = (0..n)
            .map(|i| Client {
                key: client_key(seed, i),
                seq: 0,
            })
            .collect();
        Load {
            clients,
            partners: (0..PARTNERS).map(|i| partner_key(seed, i)).collect(),
            jobs: BTreeMap::new(),
            claims: BTreeMap::new(),
            sent: 0,
            inclusion_notices: 0,
            job_file_replies: Vec::new(),
            job_file_elsewhere: Vec::new(),
            chain,
        }
    }

    /// A fresh signed request by `client` at its wall clock `wall`.
    pub fn request(
        &mut self,
        client: usize,
        wall: BlockTime,
        nonce: u64,
    ) -> (JobId, Arc<SignedEnvelope>) {
        let c = &mut self.clients[client];
        c.seq += 1;
        let body = request_body(nonce);
        let env = Envelope::new(c.key.public(), self.chain, c.seq, wall, body).sign(&c.key);
        let env = Arc::new(env);
        let id = JobId::from_request_digest(env.digest());
        self.jobs.insert(
            id,
            Job {
                client,
                original: env.clone(),
                acks: BTreeSet::new(),
                ack_log: Vec::new(),
                sent_to: BTreeSet::new(),
            },
        );
        self.sent += 1;
        (id, env)
    }

    /// A signed message of `client`'s (any kind a client may send).
    pub fn signed(
        &mut self,
        client: usize,
        wall: BlockTime,
        body: impl Into<Message>,
    ) -> Arc<SignedEnvelope> {
        let c = &mut self.clients[client];
        c.seq += 1;
        Arc::new(Envelope::new(c.key.public(), self.chain, c.seq, wall, body).sign(&c.key))
    }

    /// The receipt of `job`, committed in block `commit_block`, for its
    /// whole budget: the terms signed by a scripted partner and the
    /// client, the envelope by the client (signed anew for a resend).
    pub fn receipt(
        &mut self,
        job: JobId,
        commit_block: u64,
        wall: BlockTime,
    ) -> Option<Arc<SignedEnvelope>> {
        if let Some(c) = self.claims.get(&job) {
            let (client, receipt) = (c.client, c.receipt.clone());
            return Some(self.signed(client, wall, receipt));
        }
        let j = self.jobs.get(&job)?;
        let Message::UtilityRequest(req) = j.original.body() else {
            return None;
        };
        let client = j.client;
        let partner = &self.partners[job.0.as_bytes()[0] as usize % self.partners.len()];
        let units = req.units;
        let terms = ReceiptTerms {
            chain_id: self.chain,
            job,
            commit_block: BlockNumber(commit_block),
            client: self.clients[client].key.public(),
            partner: partner.public(),
            units,
            amount: TokenAmount(units.saturating_mul(req.max_price_per_unit.0)),
            finished_at: wall,
        };
        let d = terms.digest();
        let receipt = Receipt {
            client_sig: self.clients[client].key.sign_digest(&d),
            partner_sig: partner.sign_digest(&d),
            terms,
        };
        let env = self.signed(client, wall, receipt.clone());
        self.claims.insert(
            job,
            Claim {
                client,
                receipt,
                acks: BTreeMap::new(),
                ack_log: Vec::new(),
            },
        );
        Some(env)
    }

    /// The client's forward of `job` (step 3), signed anew.
    pub fn forward(&mut self, job: &JobId, wall: BlockTime) -> Option<Arc<SignedEnvelope>> {
        let j = self.jobs.get(job)?;
        let c = &mut self.clients[j.client];
        c.seq += 1;
        let body = ForwardedRequest {
            original: BoundedBytes::try_from_vec(j.original.to_bytes()).ok()?,
        };
        let env = Envelope::new(c.key.public(), self.chain, c.seq, wall, body).sign(&c.key);
        Some(Arc::new(env))
    }

    /// A message for a client from validator `from`.
    pub fn deliver(&mut self, from: usize, msg: &Message) {
        match msg {
            Message::RequestAck(a) => self.ack(from, a),
            Message::InclusionNotice(_) => self.inclusion_notices += 1,
            Message::JobFileReply(r) => self.job_file_replies.push((from, r.clone())),
            Message::JobFileElsewhere(r) => self.job_file_elsewhere.push((from, r.clone())),
            Message::CompletionAck(a) => {
                if let Some(c) = self.claims.get_mut(&a.job) {
                    c.acks.insert(from, a.block.0);
                    c.ack_log.push((from, a.block.0, a.first));
                }
            }
            _ => {}
        }
    }

    fn ack(&mut self, from: usize, a: &RequestAck) {
        if let Some(j) = self.jobs.get_mut(&a.job) {
            j.acks.insert(from);
            j.ack_log.push((from, a.block.0));
        }
    }

    /// Jobs acknowledged by at least one validator.
    pub fn acked(&self) -> impl Iterator<Item = &JobId> {
        self.jobs
            .iter()
            .filter(|(_, j)| !j.acks.is_empty())
            .map(|(id, _)| id)
    }
}
