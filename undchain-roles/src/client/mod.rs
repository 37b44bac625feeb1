//! The client as a sans-IO machine (design notes, "Client to Validator";
//! DESIGN.md "Client to validator"), usable alone by an embedder such as a
//! wallet: no sockets, clocks or randomness of its own.
//!
//! * Step 1: [`Client::request`] signs a `UtilityRequest` and sends it to
//!   the `ack_fanout` lowest-latency validators of its peer book, each
//!   through an `undchain-net` [`Outreach`] (4 attempts x 6 s, then the
//!   scream cast of a signed hello; a validator that answers the hello gets
//!   the request).
//! * Step 2: acks (block, active validators) are counted per validator; an
//!   `InclusionNotice` is checked against its job root (the leaf must be
//!   the client's own entry) before the commit block is believed.
//! * Step 3: once every outreach ended, or one retry timeout after the
//!   first ack, the request is forwarded to the listed validators that did
//!   not ack, only if fewer than f+1 acks came; again every retry timeout
//!   while that holds, at most [`MAX_FORWARDS`] times.
//! * Step 4: partner offers are taken in stream order up to the client's
//!   threshold (capped by the chain), at or above its minimum score and at
//!   or under its price; a centralised partner's endpoint becomes a
//!   [`UserOutput::Connect`] at once and is never stored.
//! * Step 5 and the sessions ([`session`]): usage checkpoints every K
//!   units, the receipt signed after the partner's, sent to validators;
//!   recourse when none confirms (re-send to the others, then report); a
//!   session whose partner stays silent past `session_idle_us` fails
//!   ([`SessionFailure::Silent`]) and is never countersigned.
//!
//! Machine vocabulary (docs/ARCHITECTURE.md): `now: LocalTime` on every
//! input, [`Client::poll_timeout`] / [`Client::handle_timeout`], outputs in
//! [`Ready`] batches ([`Client::ready`] / [`Client::advance`]) whose
//! `persist` holds the envelope sequence reservations; a refused input is a
//! typed [`ClientError`] and changes nothing.

mod event;
mod offers;
pub mod session;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use undchain_net::{AttemptId, Outreach, OutreachAction, Payload, PeerBook, RetryPolicy};
use undchain_types::msg::{
    Endpoint, ForwardedRequest, Hello, InclusionNotice, RequestAck, UtilityRequest, ValidatorInfo,
};
use undchain_types::{
    AdvanceError, BlockNumber, BlockTime, BoundedBytes, ChainParams, JobId, LocalTime, Message,
    Outbox, PublicKey, Ready, ReadyNumber, Role, SignedEnvelope, SigningKey, max_faulty,
};

use crate::signer::Signer;
use crate::store::StoreOp;
pub use event::{SessionFailure, UserEvent};
pub use session::ClientSession;

/// What a client or partner asks its host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserOutput {
    /// Send a signed envelope to `to` (at `endpoint` when the machine chose
    /// the medium: retries rotate over a validator's media).
    Send {
        /// The peer.
        to: PublicKey,
        /// The medium and address to use, if the machine picked one.
        endpoint: Option<Endpoint>,
        /// The envelope.
        envelope: Arc<SignedEnvelope>,
    },
    /// Open a utility session with `peer` at `endpoint` (handshake under
    /// that key). The machine does not keep the endpoint.
    Connect {
        /// The job the session serves.
        job: JobId,
        /// The other side's key.
        peer: PublicKey,
        /// Where to reach it.
        endpoint: Endpoint,
    },
    /// Something the user or an embedding application sees.
    Event(UserEvent),
}

/// One batch of a client's or partner's outputs.
pub type UserReady = Ready<StoreOp, UserOutput>;

/// Why a client input was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The bytes are not an envelope.
    #[error("envelope does not decode: {0}")]
    Wire(#[from] undchain_types::WireError),
    /// The envelope's signature does not verify.
    #[error("envelope refused: {0}")]
    Envelope(#[from] undchain_types::EnvelopeError),
    /// The peer book names no validator to send to.
    #[error("the peer book names no validator")]
    NoValidators,
    /// A message about a job this client never asked for.
    #[error("job {0} is not this client's")]
    UnknownJob(JobId),
    /// An ack or offer from someone who is not a validator the client knows.
    #[error("{0:?} is not a validator this client knows")]
    NotAValidator(PublicKey),
    /// The inclusion proof does not hold, or the leaf is not this job's.
    #[error("inclusion proof for job {0} does not hold")]
    BadInclusion(JobId),
    /// A message this machine does not take.
    #[error("a client does not take {0}")]
    Unexpected(undchain_types::MessageKind),
    /// A session input was refused.
    #[error("session: {0}")]
    Session(#[from] crate::utility::UtilityError),
    /// No session with this partner for this job.
    #[error("no session with {partner:?} for job {job}")]
    NoSession {
        /// The job.
        job: JobId,
        /// The partner.
        partner: PublicKey,
    },
    /// The job is not yet acknowledged, so its commit block is unknown.
    #[error("job {0} has no ack yet")]
    NotAcked(JobId),
    /// The session failed (the partner broke its terms or went silent):
    /// nothing more is taken or countersigned in it.
    #[error("the session with {partner:?} for job {job} was stopped")]
    SessionStopped {
        /// The job.
        job: JobId,
        /// The partner.
        partner: PublicKey,
    },
}

/// A client's settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The client's identity.
    pub key: SigningKey,
    /// The chain's parameters (fan-out, retries, partner cap).
    pub params: ChainParams,
    /// The validators it knows (bootstrap list, then what acks name).
    pub book: PeerBook,
    /// Seed of its retry jitter and spot checks.
    pub seed: u64,
    /// The client's wall clock at `LocalTime::ZERO`, microseconds since the
    /// epoch (envelopes carry wall-clock time).
    pub wall_at_zero: u64,
    /// K: units between two checkpoints.
    pub checkpoint_every: u64,
    /// How long a session waits on a silent partner before it fails
    /// ([`SessionFailure::Silent`]), microseconds.
    pub session_idle_us: u64,
}

/// One outreach of a job, with the try under way.
#[derive(Debug)]
struct Reach {
    outreach: Outreach,
    in_flight: BTreeMap<PublicKey, AttemptId>,
}

/// Most times a request is forwarded to the validators that did not ack
/// it, one retry timeout apart, while fewer than f+1 acks came (as many as
/// an outreach's attempts).
pub const MAX_FORWARDS: u8 = 4;

/// What the client knows of one request.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) request: UtilityRequest,
    pub(crate) envelope: Arc<SignedEnvelope>,
    reaches: Vec<Reach>,
    pub(crate) acks: BTreeMap<PublicKey, BlockNumber>,
    first_ack: Option<LocalTime>,
    pub(crate) active: Vec<ValidatorInfo>,
    /// No more forwards: f+1 acks came, or [`MAX_FORWARDS`] went out.
    forwarded: bool,
    /// Forwards sent so far and when the last went out.
    forwards: u8,
    last_forward: Option<LocalTime>,
    pub(crate) committed: Option<BlockNumber>,
    pub(crate) offers: offers::Offers,
}

impl Job {
    /// The block the job's receipts and checkpoints name.
    pub(crate) fn commit_block(&self) -> Option<BlockNumber> {
        self.committed.or_else(|| self.acks.values().min().copied())
    }
}

/// The client machine.
#[derive(Debug)]
pub struct Client {
    pub(crate) cfg: ClientConfig,
    signer: Signer,
    book: PeerBook,
    pub(crate) jobs: BTreeMap<JobId, Job>,
    pub(crate) sessions: BTreeMap<(JobId, PublicKey), ClientSession>,
    pub(crate) confirm: BTreeMap<JobId, session::Confirm>,
    pub(crate) blobs: BTreeMap<JobId, Vec<u8>>,
    pub(crate) outbox: Outbox<StoreOp, UserOutput>,
    nonce: u64,
}

impl Client {
    /// A client whose envelope numbers below `seq_reserved` may have been
    /// used (0 for a new identity; the last persisted reservation after a
    /// restart).
    pub fn new(cfg: ClientConfig, seq_reserved: u64) -> Self {
        let signer = Signer::new(cfg.key.clone(), cfg.params.chain_id, seq_reserved);
        Client {
            book: cfg.book.clone(),
            signer,
            cfg,
            jobs: BTreeMap::new(),
            sessions: BTreeMap::new(),
            confirm: BTreeMap::new(),
            blobs: BTreeMap::new(),
            outbox: Outbox::new(),
            nonce: 0,
        }
    }

    /// The client's key.
    pub fn key(&self) -> PublicKey {
        self.cfg.key.public()
    }

    /// The peer book, with what the client observed.
    pub fn book(&self) -> &PeerBook {
        &self.book
    }

    /// Distinct validators that acked `job`.
    pub fn acks(&self, job: &JobId) -> usize {
        self.jobs.get(job).map_or(0, |j| j.acks.len())
    }

    /// The block `job` was committed in, once an inclusion proof checked.
    pub fn committed(&self, job: &JobId) -> Option<BlockNumber> {
        self.jobs.get(job)?.committed
    }

    /// A fetched, checked blob (once [`UserEvent::Fetched`] came).
    pub fn take_blob(&mut self, job: &JobId) -> Option<Vec<u8>> {
        self.blobs.remove(job)
    }

    pub(crate) fn wall(&self, now: LocalTime) -> BlockTime {
        BlockTime(self.cfg.wall_at_zero.saturating_add(now.0.max(0) as u64))
    }

    /// Signs `body` and sends it to `to`.
    pub(crate) fn send(
        &mut self,
        now: LocalTime,
        to: PublicKey,
        endpoint: Option<Endpoint>,
        body: Message,
    ) {
        let mut persist = Vec::new();
        let s = self.signer.sign(self.wall(now), body, &mut persist);
        self.emit_signed(persist, to, endpoint, s.envelope, s.immediate_ok);
    }

    fn emit_signed(
        &mut self,
        persist: Vec<StoreOp>,
        to: PublicKey,
        endpoint: Option<Endpoint>,
        envelope: Arc<SignedEnvelope>,
        immediate_ok: bool,
    ) {
        for p in persist {
            self.outbox.persist(p);
        }
        let o = UserOutput::Send {
            to,
            endpoint,
            envelope,
        };
        if immediate_ok {
            self.outbox.immediate(o);
        } else {
            self.outbox.after_persist(o);
        }
    }

    pub(crate) fn event(&mut self, e: UserEvent) {
        self.outbox.immediate(UserOutput::Event(e));
    }

    /// Client story step 1: asks for utility. Returns the job id.
    pub fn request(&mut self, now: LocalTime, body: UtilityRequest) -> Result<JobId, ClientError> {
        let fanout = usize::from(self.cfg.params.ack_fanout.max(1));
        let targets = self.book.lowest_latency(fanout, |e| !e.media.is_empty());
        if targets.is_empty() {
            return Err(ClientError::NoValidators);
        }
        let policy = RetryPolicy::from_params(&self.cfg.params);
        let mut persist = Vec::new();
        self.nonce += 1;
        let hello_body = Hello {
            role: Role::Client,
            nonce: self.cfg.seed ^ self.nonce,
        };
        let hello = self
            .signer
            .sign(self.wall(now), hello_body.into(), &mut persist);
        let signed = self
            .signer
            .sign(self.wall(now), body.clone().into(), &mut persist);
        let id = JobId::from_request_digest(signed.envelope.digest());
        let mut reaches = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            let seed = self.cfg.seed ^ (self.nonce << 8) ^ i as u64;
            let o = Outreach::new(*t, &self.book, policy, seed, (*hello.envelope).clone())
                .map_err(|_| ClientError::NoValidators)?;
            reaches.push(Reach {
                outreach: o,
                in_flight: BTreeMap::new(),
            });
        }
        for p in persist {
            self.outbox.persist(p);
        }
        let threshold = body.partner_threshold.min(self.cfg.params.partner_list_cap);
        self.jobs.insert(
            id,
            Job {
                offers: offers::Offers::new(threshold),
                request: body,
                envelope: signed.envelope,
                reaches,
                acks: BTreeMap::new(),
                first_ack: None,
                active: Vec::new(),
                forwarded: false,
                forwards: 0,
                last_forward: None,
                committed: None,
            },
        );
        for i in 0..targets.len() {
            let acts = self
                .jobs
                .get_mut(&id)
                .and_then(|j| j.reaches[i].outreach.start(now).ok())
                .unwrap_or_default();
            self.carry_out(now, id, i, acts);
        }
        Ok(id)
    }

    fn carry_out(&mut self, _now: LocalTime, id: JobId, i: usize, acts: Vec<OutreachAction>) {
        for a in acts {
            let Some(job) = self.jobs.get_mut(&id) else {
                return;
            };
            let target = *job.reaches[i].outreach.target();
            match a {
                OutreachAction::Send {
                    id: attempt,
                    to,
                    endpoint,
                    msg,
                    ..
                } => {
                    job.reaches[i].in_flight.insert(to, attempt);
                    let env = match msg {
                        Payload::Message => job.envelope.clone(),
                        Payload::Hello(h) => Arc::new(*h),
                    };
                    self.outbox.immediate(UserOutput::Send {
                        to,
                        endpoint: Some(endpoint),
                        envelope: env,
                    });
                }
                OutreachAction::ScreamCastStarted { .. } => {
                    self.event(UserEvent::ScreamCast {
                        job: id,
                        validator: target,
                    });
                }
                OutreachAction::Reached {
                    validator,
                    endpoint,
                    ..
                } => {
                    job.reaches[i].in_flight.clear();
                    // Reached by its ack: nothing to send. Reached through
                    // the scream cast: the validator that answered the
                    // hello gets the request.
                    if !job.acks.contains_key(&validator) {
                        let env = job.envelope.clone();
                        self.outbox.immediate(UserOutput::Send {
                            to: validator,
                            endpoint: Some(endpoint),
                            envelope: env,
                        });
                    }
                }
                OutreachAction::GaveUp { .. } => {
                    job.reaches[i].in_flight.clear();
                    self.event(UserEvent::GaveUp {
                        job: id,
                        validator: target,
                    });
                }
            }
        }
    }

    /// The host could not reach `to` (connect or send failed) for the try
    /// under way.
    pub fn handle_unreachable(&mut self, now: LocalTime, to: &PublicKey) {
        let ids: Vec<JobId> = self.jobs.keys().copied().collect();
        for id in ids {
            let n = self.jobs[&id].reaches.len();
            for i in 0..n {
                let Some(job) = self.jobs.get_mut(&id) else {
                    continue;
                };
                let r = &mut job.reaches[i];
                let Some(attempt) = r.in_flight.remove(to) else {
                    continue;
                };
                let acts = r
                    .outreach
                    .handle_failure(attempt, now, &mut self.book)
                    .unwrap_or_default();
                self.carry_out(now, id, i, acts);
            }
        }
    }

    /// `from` answered a try (an ack or a hello): the outreach holding a try
    /// to it succeeds.
    fn reached(&mut self, now: LocalTime, id: JobId, from: &PublicKey) {
        let Some(n) = self.jobs.get(&id).map(|j| j.reaches.len()) else {
            return;
        };
        for i in 0..n {
            let Some(job) = self.jobs.get_mut(&id) else {
                return;
            };
            let r = &mut job.reaches[i];
            let Some(attempt) = r.in_flight.get(from).copied() else {
                continue;
            };
            let acts = r
                .outreach
                .handle_success(attempt, now, &mut self.book)
                .unwrap_or_default();
            self.carry_out(now, id, i, acts);
        }
    }

    /// An envelope from the wire: decoded, verified, then handled.
    pub fn handle_envelope(&mut self, now: LocalTime, bytes: &[u8]) -> Result<(), ClientError> {
        let env = SignedEnvelope::from_bytes(bytes, self.cfg.params.max_frame_bytes as usize)?;
        env.verify()?;
        self.handle_verified(now, &env)
    }

    /// An envelope the transport decoded and verified.
    pub fn handle_verified(
        &mut self,
        now: LocalTime,
        env: &SignedEnvelope,
    ) -> Result<(), ClientError> {
        let from = *env.sender();
        match env.body() {
            Message::RequestAck(a) => self.handle_ack(now, from, a),
            Message::Hello(_) => {
                let ids: Vec<JobId> = self.jobs.keys().copied().collect();
                for id in ids {
                    self.reached(now, id, &from);
                }
                Ok(())
            }
            Message::InclusionNotice(n) => self.handle_inclusion(n),
            Message::PartnerOffer(o) => self.handle_offer(now, from, o),
            Message::ConnectionDetails(d) => self.handle_details(from, d),
            Message::CompletionAck(a) => self.handle_completion(from, a),
            Message::Session(s) => self.handle_session(now, from, env.envelope().seq, s),
            Message::LowPerception(l) => {
                self.event(UserEvent::LowPerception { role: l.role });
                Ok(())
            }
            other => Err(ClientError::Unexpected(other.kind())),
        }
    }

    fn is_validator(&self, job: &Job, v: &PublicKey) -> bool {
        self.book.accepts_as_validator(v) || job.active.iter().any(|i| i.id == *v)
    }

    /// Client story step 2: an ack with its block and the active set.
    fn handle_ack(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        a: &RequestAck,
    ) -> Result<(), ClientError> {
        let job = self
            .jobs
            .get(&a.job)
            .ok_or(ClientError::UnknownJob(a.job))?;
        if !self.is_validator(job, &from) {
            return Err(ClientError::NotAValidator(from));
        }
        let active = a.active.as_slice().to_vec();
        self.book.set_validator_set(&active);
        let job = self
            .jobs
            .get_mut(&a.job)
            .ok_or(ClientError::UnknownJob(a.job))?;
        let new = job.acks.insert(from, a.block).is_none();
        job.first_ack.get_or_insert(now);
        job.active = active;
        let acks = job.acks.len();
        if new {
            self.event(UserEvent::Acked {
                job: a.job,
                validator: from,
                block: a.block,
                acks,
            });
        }
        self.reached(now, a.job, &from);
        self.maybe_forward(now, a.job);
        Ok(())
    }

    /// Client story step 3: forward only while fewer than f+1 acks came,
    /// once the outreaches ended or a retry timeout after the first ack,
    /// then again every retry timeout, at most [`MAX_FORWARDS`] times.
    fn maybe_forward(&mut self, now: LocalTime, id: JobId) {
        let timeout = self.cfg.params.retry_timeout_us;
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        if job.forwarded || job.active.is_empty() {
            return;
        }
        let due = match job.last_forward {
            // The first forward: once every outreach ended, or one retry
            // timeout after the first ack.
            None => {
                job.reaches.iter().all(|r| r.outreach.is_done())
                    || job.first_ack.is_some_and(|t| now >= t.plus(timeout))
            }
            // Again one retry timeout after the last, while too few acks
            // came (a forward, or the acks it drew, may be lost).
            Some(t) => now >= t.plus(timeout),
        };
        if !due {
            return;
        }
        let f = max_faulty(job.active.len());
        if job.acks.len() > f {
            if let Some(j) = self.jobs.get_mut(&id) {
                j.forwarded = true;
            }
            return;
        }
        let Ok(original) = BoundedBytes::try_from_vec(job.envelope.to_bytes()) else {
            return;
        };
        let to: Vec<(PublicKey, Option<Endpoint>)> = job
            .active
            .iter()
            .filter(|v| !job.acks.contains_key(&v.id))
            .map(|v| (v.id, v.media.as_slice().first().cloned()))
            .collect();
        if let Some(j) = self.jobs.get_mut(&id) {
            j.forwards = j.forwards.saturating_add(1);
            j.last_forward = Some(now);
            j.forwarded = j.forwards >= MAX_FORWARDS;
        }
        for (v, ep) in &to {
            let body = ForwardedRequest {
                original: original.clone(),
            };
            self.send(now, *v, ep.clone(), body.into());
        }
        self.event(UserEvent::Forwarded {
            job: id,
            to: to.into_iter().map(|(v, _)| v).collect(),
        });
    }

    /// Client story step 2: the job moved to a later block; believed only
    /// when the proof holds and the leaf is the client's own entry.
    fn handle_inclusion(&mut self, n: &InclusionNotice) -> Result<(), ClientError> {
        let job = self
            .jobs
            .get(&n.job)
            .ok_or(ClientError::UnknownJob(n.job))?;
        let entry = crate::validator::entry_of(&job.envelope, self.cfg.params.transaction_fee)
            .map_err(|_| ClientError::BadInclusion(n.job))?;
        let leaf = undchain_jobfile::leaf_hash(&entry);
        if leaf != n.leaf || !undchain_jobfile::verify_inclusion(&n.job_root, &n.leaf, &n.proof) {
            return Err(ClientError::BadInclusion(n.job));
        }
        if let Some(j) = self.jobs.get_mut(&n.job) {
            j.committed = Some(n.block);
        }
        self.event(UserEvent::Committed {
            job: n.job,
            block: n.block,
        });
        Ok(())
    }

    /// When [`Client::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<LocalTime> {
        let timeout = self.cfg.params.retry_timeout_us;
        let reaches = self
            .jobs
            .values()
            .flat_map(|j| j.reaches.iter().filter_map(|r| r.outreach.poll_timeout()));
        let forwards = self
            .jobs
            .values()
            .filter(|j| !j.forwarded)
            .filter_map(|j| j.last_forward.or(j.first_ack).map(|t| t.plus(timeout)));
        let confirms = self.confirm.values().map(|c| c.deadline);
        let idle = self.idle_timeout();
        reaches.chain(forwards).chain(confirms).chain(idle).min()
    }

    /// Time passed: retries, scream casts, forwards, receipt recourse and
    /// idle sessions that are due. Early or twice is harmless.
    pub fn handle_timeout(&mut self, now: LocalTime) {
        let ids: Vec<JobId> = self.jobs.keys().copied().collect();
        for id in ids {
            let n = self.jobs[&id].reaches.len();
            for i in 0..n {
                let Some(job) = self.jobs.get_mut(&id) else {
                    continue;
                };
                let r = &mut job.reaches[i];
                if r.outreach.poll_timeout().is_none_or(|t| t > now) {
                    continue;
                }
                r.in_flight.clear();
                let acts = r.outreach.handle_timeout(now, &mut self.book);
                self.carry_out(now, id, i, acts);
            }
            self.maybe_forward(now, id);
        }
        self.recourse(now);
        self.fail_idle(now);
    }

    /// The next batch of outputs (at most one outstanding).
    pub fn ready(&mut self) -> Option<UserReady> {
        let r = self.outbox.take_ready()?;
        self.signer.batch_taken();
        Some(r)
    }

    /// The host made batch `number`'s writes durable and sent its outputs.
    pub fn advance(&mut self, number: ReadyNumber) -> Result<(), AdvanceError> {
        self.outbox.advance(number)
    }

    /// Validators the client may send receipts and reports to: those that
    /// acked first, then the rest of the active set.
    pub(crate) fn validators_for(&self, id: &JobId) -> Vec<PublicKey> {
        let Some(j) = self.jobs.get(id) else {
            return Vec::new();
        };
        let mut v: Vec<PublicKey> = j.acks.keys().copied().collect();
        let acked: BTreeSet<PublicKey> = v.iter().copied().collect();
        v.extend(j.active.iter().map(|i| i.id).filter(|k| !acked.contains(k)));
        v
    }

    /// A signed envelope of this client's (for embedders that send
    /// something the machine does not model, e.g. a transaction).
    pub fn sign(&mut self, now: LocalTime, body: Message) -> Arc<SignedEnvelope> {
        let mut persist = Vec::new();
        let s = self.signer.sign(self.wall(now), body, &mut persist);
        for p in persist {
            self.outbox.persist(p);
        }
        s.envelope
    }
}
