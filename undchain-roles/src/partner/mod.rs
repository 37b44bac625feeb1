//! The partner as a sans-IO machine (design notes, "Partner to Validator";
//! DESIGN.md "Partner to validator"), usable alone by a provider's daemon.
//!
//! * Step 1: [`Partner::start`] sends `ReadyToProvide` (kinds, capacity,
//!   price, a centralised endpoint) and `Subscribe`; `StillActive`
//!   heartbeats follow every `heartbeat_us` while it is online.
//! * Steps 2-3: a `JobNotification` of a kind it offers, at a price it
//!   takes, while it has room, gets a `JobResponse` to the validators.
//! * Step 4: `ConnectionDetails` become a [`UserOutput::Connect`] (the
//!   endpoint is not kept); the first session message of the client starts
//!   the utility ([`session`]): `UtilityStarted` with the content root.
//! * Steps 5-7: `PayoutPoolConfirmation`, `AtCapacity` (never twice within
//!   the chain's cooldown, `undchain-net`'s [`CapacityCooldown`]),
//!   [`Partner::sign_off`].
//! * Step 8: the receipt offered to the client, countersigned and sent to
//!   validators; when the client vanishes or refuses to sign, the last
//!   client-signed checkpoint as a `PartialCompletion`.
//! * Recourse ([`recourse`]): "why no work?" (`WorkRequest` /
//!   `WorkStatus`), the job file fetched, a `CensorshipComplaint` with the
//!   evidence to the chain owner's key; bad connection details reported;
//!   challenges answered from the blob store.
//!
//! Machine vocabulary as for the client ([`crate::client`]).

pub mod recourse;
pub mod session;
pub mod stored;

use std::collections::BTreeMap;
use std::sync::Arc;

use undchain_net::CapacityCooldown;
use undchain_types::msg::{
    JobNotification, JobResponse, ReadyToProvide, SignOff, StillActive, Subscribe,
};
use undchain_types::{
    AdvanceError, BlockNumber, BlockTime, BoundedString, ChainParams, Hash32, JobId, LocalTime,
    Message, Outbox, PublicKey, ReadyNumber, SignedEnvelope, SigningKey, TokenAmount, UtilityKind,
};

use crate::client::{UserEvent, UserOutput, UserReady};
use crate::signer::Signer;
use crate::store::StoreOp;
use crate::utility::{BlobStore, UtilityError};
pub use session::PartnerSession;

/// Why a partner input was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartnerError {
    /// The bytes are not an envelope.
    #[error("envelope does not decode: {0}")]
    Wire(#[from] undchain_types::WireError),
    /// The envelope's signature does not verify.
    #[error("envelope refused: {0}")]
    Envelope(#[from] undchain_types::EnvelopeError),
    /// A validator-only message from someone who is not one of its
    /// validators.
    #[error("{0:?} is not one of this partner's validators")]
    NotAValidator(PublicKey),
    /// A message about a job this partner did not respond to.
    #[error("job {0} is not one this partner took")]
    UnknownJob(JobId),
    /// A session message from someone who is not the job's client.
    #[error("{from:?} is not the client of job {job}")]
    NotTheClient {
        /// The job.
        job: JobId,
        /// The sender.
        from: PublicKey,
    },
    /// A message this machine does not take.
    #[error("a partner does not take {0}")]
    Unexpected(undchain_types::MessageKind),
    /// A session input was refused.
    #[error("session: {0}")]
    Session(#[from] UtilityError),
    /// A challenge the partner cannot read.
    #[error("challenge payload does not decode")]
    BadChallenge,
    /// The partner signed off.
    #[error("the partner signed off")]
    SignedOff,
}

/// A partner's settings.
#[derive(Debug, Clone)]
pub struct PartnerConfig {
    /// The partner's identity.
    pub key: SigningKey,
    /// The chain's parameters.
    pub params: ChainParams,
    /// The validators it talks to (the active set).
    pub validators: Vec<PublicKey>,
    /// Kinds, capacity, price, centralised endpoint, media.
    pub offer: ReadyToProvide,
    /// Bytes its blob store may hold.
    pub store_bytes: u64,
    /// The partner's wall clock at `LocalTime::ZERO`, microseconds.
    pub wall_at_zero: u64,
    /// K: units between two client checkpoints.
    pub checkpoint_every: u64,
    /// How long the client has to countersign a receipt.
    pub receipt_wait_us: u64,
    /// How long a job response may go unanswered before it counts as
    /// ignored (censorship evidence).
    pub response_wait_us: u64,
    /// Hash steps per segment of the built-in computation.
    pub compute_stride: u64,
}

/// A job response the partner sent.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) notification: JobNotification,
    pub(crate) digest: Hash32,
    pub(crate) sent_at: LocalTime,
    pub(crate) to: Vec<PublicKey>,
    pub(crate) answered_by: Option<PublicKey>,
    pub(crate) client: Option<PublicKey>,
}

/// The partner machine.
#[derive(Debug)]
pub struct Partner {
    pub(crate) cfg: PartnerConfig,
    signer: Signer,
    pub(crate) outbox: Outbox<StoreOp, UserOutput>,
    cooldown: CapacityCooldown,
    online: bool,
    low_perception: bool,
    next_heartbeat: Option<LocalTime>,
    pub(crate) responses: BTreeMap<JobId, Response>,
    pub(crate) sessions: BTreeMap<JobId, PartnerSession>,
    pub(crate) store: BlobStore,
    /// Storage challenges waiting for their blob's upload to complete.
    pub(crate) deferred: Vec<(PublicKey, undchain_types::msg::Challenge)>,
    pub(crate) claims: BTreeMap<JobId, recourse::Claim>,
    pub(crate) complaint: recourse::Complaint,
}

impl Partner {
    /// A partner whose envelope numbers below `seq_reserved` may have been
    /// used.
    pub fn new(cfg: PartnerConfig, seq_reserved: u64) -> Self {
        Partner {
            signer: Signer::new(cfg.key.clone(), cfg.params.chain_id, seq_reserved),
            outbox: Outbox::new(),
            cooldown: CapacityCooldown::from_params(&cfg.params),
            online: false,
            low_perception: false,
            next_heartbeat: None,
            responses: BTreeMap::new(),
            sessions: BTreeMap::new(),
            store: BlobStore::new(cfg.store_bytes),
            deferred: Vec::new(),
            claims: BTreeMap::new(),
            complaint: recourse::Complaint::default(),
            cfg,
        }
    }

    /// The partner's key.
    pub fn key(&self) -> PublicKey {
        self.cfg.key.public()
    }

    /// The blob store in memory (an operator evicts chunks through it; an
    /// eviction is not persisted, so a restart brings the chunk back).
    pub fn store_mut(&mut self) -> &mut BlobStore {
        &mut self.store
    }

    /// Jobs running.
    pub fn running(&self) -> u32 {
        self.sessions.values().filter(|s| s.is_running()).count() as u32
    }

    fn free(&self) -> u32 {
        self.cfg.offer.capacity.saturating_sub(self.running())
    }

    pub(crate) fn wall(&self, now: LocalTime) -> BlockTime {
        BlockTime(self.cfg.wall_at_zero.saturating_add(now.0.max(0) as u64))
    }

    /// Signs `body` and sends it to `to`; returns the envelope.
    pub(crate) fn send(
        &mut self,
        now: LocalTime,
        to: PublicKey,
        body: Message,
    ) -> Arc<SignedEnvelope> {
        self.send_as(now, to, body, false)
    }

    /// Signs `body` and sends it to `to` once the batch's write is durable
    /// (it acknowledges what the batch persists); returns the envelope.
    pub(crate) fn promise(
        &mut self,
        now: LocalTime,
        to: PublicKey,
        body: Message,
    ) -> Arc<SignedEnvelope> {
        self.send_as(now, to, body, true)
    }

    fn send_as(
        &mut self,
        now: LocalTime,
        to: PublicKey,
        body: Message,
        promise: bool,
    ) -> Arc<SignedEnvelope> {
        let mut persist = Vec::new();
        let s = self.signer.sign(self.wall(now), body, &mut persist);
        for p in persist {
            self.outbox.persist(p);
        }
        let o = UserOutput::Send {
            to,
            endpoint: None,
            envelope: s.envelope.clone(),
        };
        if s.immediate_ok && !promise {
            self.outbox.immediate(o);
        } else {
            self.outbox.after_persist(o);
        }
        s.envelope
    }

    /// Signs `body` once per validator and sends it to each; returns the
    /// first envelope's digest.
    pub(crate) fn broadcast(&mut self, now: LocalTime, body: Message) -> Option<Hash32> {
        self.broadcast_as(now, body, false)
    }

    /// [`Partner::broadcast`] once the batch's write is durable.
    pub(crate) fn broadcast_promise(&mut self, now: LocalTime, body: Message) -> Option<Hash32> {
        self.broadcast_as(now, body, true)
    }

    fn broadcast_as(&mut self, now: LocalTime, body: Message, promise: bool) -> Option<Hash32> {
        let vs = self.cfg.validators.clone();
        let mut first = None;
        for v in vs {
            let e = self.send_as(now, v, body.clone(), promise);
            first.get_or_insert(*e.digest());
        }
        first
    }

    /// Records `op` for the next batch's durable write.
    pub(crate) fn persist(&mut self, op: stored::PartnerOp) {
        self.outbox.persist(StoreOp::Partner(Box::new(op)));
    }

    pub(crate) fn event(&mut self, e: UserEvent) {
        self.outbox.immediate(UserOutput::Event(e));
    }

    pub(crate) fn is_validator(&self, k: &PublicKey) -> bool {
        self.cfg.validators.contains(k)
    }

    /// Partner story step 1: ready to provide, subscribed, heartbeats on.
    pub fn start(&mut self, now: LocalTime) {
        self.online = true;
        self.broadcast(now, self.cfg.offer.clone().into());
        let kinds = self.cfg.offer.kinds.clone();
        self.broadcast(now, Subscribe { kinds }.into());
        self.next_heartbeat = Some(now.plus(self.cfg.params.heartbeat_us));
    }

    /// Partner story step 7: shutting down; no new work, no heartbeats.
    pub fn sign_off(&mut self, now: LocalTime, reason: &str) {
        if !self.online {
            return;
        }
        self.online = false;
        self.next_heartbeat = None;
        let reason = BoundedString::truncating(reason);
        self.broadcast(now, SignOff { reason }.into());
    }

    /// An envelope from the wire: decoded, verified, then handled.
    pub fn handle_envelope(&mut self, now: LocalTime, bytes: &[u8]) -> Result<(), PartnerError> {
        let env = SignedEnvelope::from_bytes(bytes, self.cfg.params.max_frame_bytes as usize)?;
        env.verify()?;
        self.handle_verified(now, &env)
    }

    /// An envelope the transport decoded and verified.
    pub fn handle_verified(
        &mut self,
        now: LocalTime,
        env: &SignedEnvelope,
    ) -> Result<(), PartnerError> {
        let from = *env.sender();
        if let Message::Session(m) = env.body() {
            return self.handle_session(now, from, m);
        }
        if !self.is_validator(&from) {
            return Err(PartnerError::NotAValidator(from));
        }
        match env.body() {
            Message::JobNotification(n) => {
                self.handle_notification(now, n);
                Ok(())
            }
            Message::ConnectionDetails(d) => self.handle_details(now, from, d),
            Message::PayoutPoolConfirmation(c) => {
                self.event(UserEvent::InPayoutPool {
                    job: c.job,
                    block: c.block,
                });
                Ok(())
            }
            Message::CompletionAck(a) => {
                if self.claims.remove(&a.job).is_some() {
                    self.persist(stored::PartnerOp::Confirmed { job: a.job });
                }
                self.event(UserEvent::Completed {
                    job: a.job,
                    block: a.block,
                });
                Ok(())
            }
            Message::Challenge(c) => self.handle_challenge(now, from, c),
            Message::RequirementFailed(r) => {
                self.event(UserEvent::RequirementFailed(r.requirement.clone()));
                Ok(())
            }
            Message::LowPerception(l) => {
                self.low_perception = true;
                self.event(UserEvent::LowPerception { role: l.role });
                Ok(())
            }
            Message::WorkStatus(w) => {
                self.handle_work_status(now, from, w);
                Ok(())
            }
            Message::JobFileReply(r) => {
                self.handle_job_file(now, from, r);
                Ok(())
            }
            other => Err(PartnerError::Unexpected(other.kind())),
        }
    }

    /// Partner story steps 2-3: respond to a matching job while there is
    /// room (notifications of other kinds or prices are let pass).
    fn handle_notification(&mut self, now: LocalTime, n: &JobNotification) {
        let offer = &self.cfg.offer;
        let wanted = self.online
            && !self.low_perception
            && offer.kinds.as_slice().contains(&n.kind)
            && offer.price_per_unit <= n.max_price_per_unit
            && self.free() > 0
            && !self.responses.contains_key(&n.job);
        if !wanted {
            return;
        }
        let body = JobResponse {
            job: n.job,
            price_per_unit: offer.price_per_unit,
            units: n.units,
        };
        let to = self.cfg.validators.clone();
        if let Some(digest) = self.broadcast_promise(now, body.into()) {
            self.persist(stored::PartnerOp::Responded {
                notification: n.clone(),
                digest,
            });
            self.responses.insert(
                n.job,
                Response {
                    notification: n.clone(),
                    digest,
                    sent_at: now,
                    to,
                    answered_by: None,
                    client: None,
                },
            );
        }
    }

    /// Partner story step 6: at capacity, announced at most once per
    /// cooldown.
    pub(crate) fn check_capacity(&mut self, now: LocalTime) {
        let running = self.running();
        if running < self.cfg.offer.capacity {
            return;
        }
        if self.cooldown.record(self.key(), now).is_ok() {
            self.broadcast(now, undchain_types::msg::AtCapacity { running }.into());
            self.event(UserEvent::AtCapacity { running });
        }
    }

    /// When [`Partner::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<LocalTime> {
        let sessions = self.sessions.values().filter_map(|s| s.deadline());
        let claims = self.claims.values().map(|c| c.deadline);
        self.next_heartbeat
            .into_iter()
            .chain(sessions)
            .chain(claims)
            .min()
    }

    /// Time passed: heartbeats, receipts not countersigned, claims not
    /// confirmed. Early or twice is harmless.
    pub fn handle_timeout(&mut self, now: LocalTime) {
        if let Some(t) = self.next_heartbeat
            && now >= t
        {
            let free_capacity = self.free();
            self.broadcast(now, StillActive { free_capacity }.into());
            self.next_heartbeat = Some(now.plus(self.cfg.params.heartbeat_us));
        }
        self.expire_receipts(now);
        self.claim_recourse(now);
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

    /// The commit block, kind, units and price a session of `job` meters
    /// under.
    pub(crate) fn job_terms(
        &self,
        job: &JobId,
    ) -> Option<(BlockNumber, UtilityKind, u64, TokenAmount)> {
        let r = self.responses.get(job)?;
        Some((
            r.notification.block,
            r.notification.kind,
            r.notification.units,
            self.cfg.offer.price_per_unit,
        ))
    }

    /// Whether the partner takes work (online, not under the floor).
    pub fn is_online(&self) -> bool {
        self.online && !self.low_perception
    }
}
