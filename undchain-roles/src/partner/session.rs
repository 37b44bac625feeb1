//! The partner's side of utility sessions (DESIGN.md "Utility
//! sessions"; partner story steps 4, 5 and 8): the blob store, the
//! built-in computation and relay behind [`Utility`], the meter, the
//! receipt and the partial completion.

use undchain_types::msg::{
    ChallengeResponse, ConnectionDetails, Receipt, ReceiptTerms, SessionBody, SessionMessage,
    StorageChallenge, UtilityStarted,
};
use undchain_types::{BoundedBytes, Hash32, JobId, LocalTime, PublicKey, UtilityKind, wire};

use super::stored::{PartnerOp, SessionRecord, StoredChunk, StoredClaim};
use super::{Partner, PartnerError};
use crate::client::{UserEvent, UserOutput};
use crate::store::StoreOp;
use crate::utility::{
    Echo, HashChain, MeterTerms, PartnerMeter, Put, Relay, Utility, UtilityError,
};

#[derive(Debug)]
enum Work {
    Store,
    Run(Box<dyn Utility>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Running,
    /// The receipt was offered; the client has until then to countersign.
    Offered(LocalTime),
    Done,
}

/// Most storage challenges a partner holds until their upload completes.
const MAX_DEFERRED: usize = 64;

/// One session of the partner with one client.
#[derive(Debug)]
pub struct PartnerSession {
    client: PublicKey,
    meter: PartnerMeter,
    work: Work,
    root: Option<Hash32>,
    stage: Stage,
    offered: Option<ReceiptTerms>,
}

impl PartnerSession {
    /// Whether the session still takes capacity.
    pub fn is_running(&self) -> bool {
        self.stage != Stage::Done
    }

    /// Units delivered.
    pub fn delivered(&self) -> u64 {
        self.meter.delivered()
    }

    /// Units the last client checkpoint proves.
    pub fn proven(&self) -> u64 {
        self.meter.proven()
    }

    pub(crate) fn deadline(&self) -> Option<LocalTime> {
        match self.stage {
            Stage::Offered(t) => Some(t),
            _ => None,
        }
    }
}

impl Partner {
    /// Partner story step 4: the client's connection details.
    pub(crate) fn handle_details(
        &mut self,
        _now: LocalTime,
        from: PublicKey,
        d: &ConnectionDetails,
    ) -> Result<(), PartnerError> {
        let r = self
            .responses
            .get_mut(&d.job)
            .ok_or(PartnerError::UnknownJob(d.job))?;
        r.answered_by = Some(from);
        r.client = Some(d.peer);
        self.persist(PartnerOp::Answered {
            job: d.job,
            by: from,
            client: d.peer,
        });
        self.outbox.immediate(UserOutput::Connect {
            job: d.job,
            peer: d.peer,
            endpoint: d.endpoint.clone(),
        });
        Ok(())
    }

    /// A new session of `job` with `client` (`root`: a storage session's
    /// content root) under the terms the partner responded with.
    fn new_session(
        &self,
        job: JobId,
        client: PublicKey,
        root: Option<Hash32>,
    ) -> Result<PartnerSession, PartnerError> {
        let (block, kind, units, price) =
            self.job_terms(&job).ok_or(PartnerError::UnknownJob(job))?;
        let work = match kind {
            UtilityKind::Storage => Work::Store,
            UtilityKind::Computation => Work::Run(Box::new(HashChain::new(
                job.0,
                self.cfg.compute_stride,
                u32::try_from(units).unwrap_or(u32::MAX),
            ))),
            UtilityKind::Access => Work::Run(Box::new(Relay::new(Echo, units))),
        };
        let terms = MeterTerms {
            chain_id: self.cfg.params.chain_id,
            job,
            commit_block: block,
            client,
            partner: self.key(),
            price_per_unit: price,
            every: self.cfg.checkpoint_every,
        };
        Ok(PartnerSession {
            client,
            meter: PartnerMeter::new(terms),
            work,
            root,
            stage: Stage::Running,
            offered: None,
        })
    }

    /// Opens the session on the client's first message: `UtilityStarted`
    /// (with the content root for storage) goes to the validators once the
    /// session is durable.
    fn open(
        &mut self,
        now: LocalTime,
        job: JobId,
        client: PublicKey,
        root: Option<Hash32>,
    ) -> Result<(), PartnerError> {
        if let Some(r) = self.responses.get(&job)
            && r.client.is_some_and(|c| c != client)
        {
            return Err(PartnerError::NotTheClient { job, from: client });
        }
        let session = self.new_session(job, client, root)?;
        self.sessions.insert(job, session);
        self.persist(PartnerOp::Opened { job, client, root });
        let started = UtilityStarted {
            job,
            client,
            started_at: self.wall(now),
            content_root: root,
        };
        self.broadcast_promise(now, started.into());
        self.event(UserEvent::Started {
            job,
            client,
            content_root: root,
        });
        self.check_capacity(now);
        Ok(())
    }

    fn reply(&mut self, now: LocalTime, job: JobId, to: PublicKey, body: SessionBody) {
        self.send(now, to, SessionMessage { job, body }.into());
    }

    /// A session message from a client.
    pub(crate) fn handle_session(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        m: &SessionMessage,
    ) -> Result<(), PartnerError> {
        let job = m.job;
        if !self.sessions.contains_key(&job) {
            if !self.is_online() {
                return Err(PartnerError::SignedOff);
            }
            let root = match &m.body {
                SessionBody::Chunk { root, .. } => Some(*root),
                _ => None,
            };
            self.open(now, job, from, root)?;
        }
        let Some(s) = self.sessions.get_mut(&job) else {
            return Err(PartnerError::UnknownJob(job));
        };
        if s.client != from {
            return Err(PartnerError::NotTheClient { job, from });
        }
        match &m.body {
            SessionBody::Checkpoint(c) => {
                s.meter.handle_checkpoint(c)?;
                let units = c.checkpoint.units;
                self.persist(PartnerOp::Checkpoint {
                    job,
                    checkpoint: c.clone(),
                });
                self.event(UserEvent::Checkpoint {
                    job,
                    peer: from,
                    units,
                });
                Ok(())
            }
            SessionBody::ReceiptSigned(r) => self.receipt_signed(now, job, r),
            SessionBody::Fetch { root, index } => {
                let (bytes, proof) = self.store.serve(root, *index)?;
                let bytes = BoundedBytes::try_from_slice(bytes)
                    .map_err(|_| UtilityError::BadChunk { index: *index })?;
                let body = SessionBody::ChunkReply {
                    root: *root,
                    index: *index,
                    bytes,
                    proof,
                };
                self.reply(now, job, from, body);
                Ok(())
            }
            SessionBody::End => {
                self.offer_receipt(now, job);
                Ok(())
            }
            body => self.deliver(now, job, from, body),
        }
    }

    /// A chunk to store or an input to serve, metered.
    fn deliver(
        &mut self,
        now: LocalTime,
        job: JobId,
        from: PublicKey,
        body: &SessionBody,
    ) -> Result<(), PartnerError> {
        let Some(s) = self.sessions.get_mut(&job) else {
            return Err(PartnerError::UnknownJob(job));
        };
        if s.stage != Stage::Running {
            return self.deliver_again(now, job, from, body);
        }
        if !s.meter.may_deliver(1) {
            return Err(UtilityError::CheckpointOverdue {
                delivered: s.meter.delivered(),
                proven: s.meter.proven(),
            }
            .into());
        }
        let (reply, done) = match (&mut s.work, body) {
            (
                Work::Store,
                SessionBody::Chunk {
                    root,
                    index,
                    count,
                    size,
                    bytes,
                },
            ) => {
                if s.root != Some(*root) {
                    return Err(UtilityError::RootInUse { root: *root }.into());
                }
                let put = match self
                    .store
                    .put(job, *root, *index, *count, *size, bytes.as_bytes())
                {
                    Ok(put) => put,
                    Err(e) => {
                        if matches!(e, UtilityError::RootMismatch { .. }) {
                            // The blob was dropped whole: so are its
                            // persisted chunks.
                            let op = PartnerOp::Dropped { job };
                            self.outbox.persist(StoreOp::Partner(Box::new(op)));
                        }
                        return Err(e.into());
                    }
                };
                if !matches!(put, Put::Duplicate(_)) {
                    s.meter.deliver(1)?;
                    let chunk = StoredChunk {
                        root: *root,
                        count: *count,
                        size: *size,
                        bytes: bytes.clone(),
                    };
                    let index = *index;
                    let op = PartnerOp::Chunk { job, index, chunk };
                    self.outbox.persist(StoreOp::Partner(Box::new(op)));
                }
                let units = s.meter.delivered();
                (
                    SessionBody::Delivered { units },
                    matches!(put, Put::Complete(_)),
                )
            }
            (Work::Run(u), SessionBody::Input { seq, bytes }) => {
                let served = u.serve(*seq, bytes.as_bytes())?;
                // Checked with `may_deliver` before it ran: the step is
                // done, so it counts.
                s.meter.served(served.units);
                let out = BoundedBytes::try_from_vec(served.output)
                    .map_err(|_| UtilityError::BadInput("output over the chunk limit"))?;
                let body = SessionBody::Output {
                    seq: *seq,
                    bytes: out,
                    units: served.units,
                };
                (body, u.is_done())
            }
            _ => return Err(UtilityError::BadInput("message does not fit the session").into()),
        };
        // `Delivered` acknowledges the chunk: it goes out once the chunk
        // is durable.
        self.promise(now, from, SessionMessage { job, body: reply }.into());
        if done {
            self.offer_receipt(now, job);
            if let Some(root) = self.sessions.get(&job).and_then(|s| s.root) {
                self.answer_deferred(now, root);
            }
        }
        Ok(())
    }

    /// A chunk of a finished upload sent again while the receipt waits
    /// for the client's countersignature (its `Delivered` or the offer was
    /// lost, or the partner restarted before sending them): a chunk held is
    /// answered as kept, the last one with the offer again.
    fn deliver_again(
        &mut self,
        now: LocalTime,
        job: JobId,
        from: PublicKey,
        body: &SessionBody,
    ) -> Result<(), PartnerError> {
        let finished = UtilityError::BadInput("the session is finished");
        let (
            Some(s),
            SessionBody::Chunk {
                root, index, count, ..
            },
        ) = (self.sessions.get(&job), body)
        else {
            return Err(finished.into());
        };
        if !matches!((&s.work, s.stage), (Work::Store, Stage::Offered(_)))
            || s.root != Some(*root)
            || self.store.serve(root, *index).is_err()
        {
            return Err(finished.into());
        }
        let units = s.meter.delivered();
        let offer = s
            .offered
            .clone()
            .filter(|_| index.saturating_add(1) == *count);
        let body = SessionBody::Delivered { units };
        self.promise(now, from, SessionMessage { job, body }.into());
        if let Some(terms) = offer {
            self.offer_again(now, job, from, terms);
        }
        Ok(())
    }

    /// Sends the receipt terms already offered (and persisted) again: the
    /// same terms, the same signature.
    fn offer_again(&mut self, now: LocalTime, job: JobId, client: PublicKey, terms: ReceiptTerms) {
        let partner_sig = self.cfg.key.sign_digest(&terms.digest());
        let body = SessionBody::ReceiptOffer { terms, partner_sig };
        self.promise(now, client, SessionMessage { job, body }.into());
    }

    /// The upload of `root` completed: the challenges that waited for it
    /// are answered.
    fn answer_deferred(&mut self, now: LocalTime, root: Hash32) {
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|(_, c)| {
                wire::decode_bare::<StorageChallenge>(c.payload.as_bytes())
                    .is_ok_and(|q| q.root == root)
            });
        self.deferred = rest;
        for (from, c) in due {
            if let Ok(q) = wire::decode_bare::<StorageChallenge>(c.payload.as_bytes()) {
                let _ = self.answer_challenge(now, from, &c, &q);
            }
        }
    }

    /// The utility is done: the partner signs the receipt terms of what it
    /// delivered and offers them to the client.
    fn offer_receipt(&mut self, now: LocalTime, job: JobId) {
        let finished_at = self.wall(now);
        let deadline = now.plus(self.cfg.receipt_wait_us);
        let Some(s) = self.sessions.get_mut(&job) else {
            return;
        };
        if s.stage != Stage::Running {
            return;
        }
        let Ok(terms) = s.meter.terms().receipt(s.meter.delivered(), finished_at) else {
            return;
        };
        s.stage = Stage::Offered(deadline);
        s.offered = Some(terms.clone());
        let client = s.client;
        let partner_sig = self.cfg.key.sign_digest(&terms.digest());
        self.persist(PartnerOp::Offered {
            job,
            terms: terms.clone(),
        });
        let body = SessionBody::ReceiptOffer { terms, partner_sig };
        self.promise(now, client, SessionMessage { job, body }.into());
    }

    /// The client countersigned: the receipt goes to the validators.
    fn receipt_signed(
        &mut self,
        now: LocalTime,
        job: JobId,
        r: &Receipt,
    ) -> Result<(), PartnerError> {
        let Some(s) = self.sessions.get_mut(&job) else {
            return Err(PartnerError::UnknownJob(job));
        };
        if s.offered.as_ref() != Some(&r.terms) {
            return Err(UtilityError::ReceiptMismatch {
                claimed: r.terms.units,
                counted: s.meter.delivered(),
            }
            .into());
        }
        r.verify().map_err(|_| UtilityError::BadSignature)?;
        s.stage = Stage::Done;
        let units = r.terms.units;
        let client = s.client;
        self.persist(PartnerOp::Closed {
            job,
            claim: Some(StoredClaim::Receipt(r.clone())),
        });
        self.broadcast_promise(now, r.clone().into());
        self.start_claim(now, job, r.clone().into());
        self.event(UserEvent::ReceiptSent {
            job,
            peer: client,
            units,
        });
        Ok(())
    }

    /// Receipts the client did not countersign in time: the last
    /// client-signed checkpoint is claimed as a partial completion
    /// (partner story step 8, "client refuses to sign").
    pub(crate) fn expire_receipts(&mut self, now: LocalTime) {
        let due: Vec<JobId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.deadline().is_some_and(|t| t <= now))
            .map(|(j, _)| *j)
            .collect();
        for job in due {
            let Some(s) = self.sessions.get_mut(&job) else {
                continue;
            };
            s.stage = Stage::Done;
            let partial = s.meter.partial(&self.cfg.key);
            let claim = partial.clone().map(StoredClaim::Partial);
            self.persist(PartnerOp::Closed { job, claim });
            match partial {
                Some(p) => {
                    let units = p.last_checkpoint.checkpoint.units;
                    self.broadcast_promise(now, p.clone().into());
                    self.start_claim(now, job, p.into());
                    self.event(UserEvent::PartialClaimed { job, units });
                }
                None => self.event(UserEvent::NothingProven { job }),
            }
        }
    }

    /// A client that stopped answering: the partner ends its session at
    /// once (the host saw the connection drop) and claims what is proven.
    pub fn client_gone(&mut self, now: LocalTime, job: JobId) -> Result<(), PartnerError> {
        let s = self
            .sessions
            .get_mut(&job)
            .ok_or(PartnerError::UnknownJob(job))?;
        if s.stage == Stage::Done {
            return Ok(());
        }
        s.stage = Stage::Offered(now);
        self.expire_receipts(now);
        Ok(())
    }

    /// A storage challenge: the chunk asked for, with its proof.
    pub(crate) fn handle_challenge(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        c: &undchain_types::msg::Challenge,
    ) -> Result<(), PartnerError> {
        if c.kind != UtilityKind::Storage {
            return Err(PartnerError::BadChallenge);
        }
        let q: StorageChallenge =
            wire::decode_bare(c.payload.as_bytes()).map_err(|_| PartnerError::BadChallenge)?;
        // A challenge of a blob still being uploaded waits for its last
        // chunk (the validator challenges on `UtilityStarted`).
        let uploading = self
            .sessions
            .values()
            .any(|s| s.stage == Stage::Running && s.root == Some(q.root));
        if uploading && self.store.answer(&q).is_err() {
            let sessions = &self.sessions;
            self.deferred.retain(|(_, d)| {
                wire::decode_bare::<StorageChallenge>(d.payload.as_bytes()).is_ok_and(|d| {
                    sessions
                        .values()
                        .any(|s| s.is_running() && s.root == Some(d.root))
                })
            });
            if self.deferred.len() < MAX_DEFERRED {
                self.deferred.push((from, c.clone()));
                return Ok(());
            }
        }
        self.answer_challenge(now, from, c, &q)
    }

    /// Answers challenge `c` (question `q`) from `from`; a chunk it cannot
    /// prove is answered with nothing: the validator records the failure.
    fn answer_challenge(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        c: &undchain_types::msg::Challenge,
        q: &StorageChallenge,
    ) -> Result<(), PartnerError> {
        let answer = match self.store.answer(q) {
            Ok(a) => wire::encode_bare(&a),
            Err(_) => Vec::new(),
        };
        let answer = BoundedBytes::try_from_vec(answer).map_err(|_| PartnerError::BadChallenge)?;
        self.send(now, from, ChallengeResponse { id: c.id, answer }.into());
        Ok(())
    }

    /// The session of `job`.
    pub fn session(&self, job: &JobId) -> Option<&PartnerSession> {
        self.sessions.get(job)
    }
}

impl Partner {
    /// Rebuilds the session of `job` from its record; `chunks` of it are
    /// back in the blob store (storage: the units delivered).
    pub(crate) fn restore_session(
        &mut self,
        now: LocalTime,
        job: JobId,
        rec: &SessionRecord,
        chunks: u64,
    ) -> Result<(), PartnerError> {
        let mut s = self.new_session(job, rec.client, rec.root)?;
        let proven = rec.checkpoint.as_ref().map_or(0, |c| c.checkpoint.units);
        // The meter as it was: what the checkpoint proves was delivered
        // before the checkpoint came, the rest of the chunks after it.
        s.meter.served(proven);
        if let Some(c) = &rec.checkpoint {
            s.meter.handle_checkpoint(c)?;
        }
        let storage = matches!(s.work, Work::Store);
        if storage {
            s.meter.served(chunks.saturating_sub(proven));
        }
        s.offered = rec.offered.clone();
        s.stage = if rec.closed {
            Stage::Done
        } else if rec.offered.is_some() {
            Stage::Offered(now.plus(self.cfg.receipt_wait_us))
        } else if storage {
            Stage::Running
        } else {
            // A computation's or relay's state is not kept: the session
            // ends at the next timeout with its last checkpoint claimed.
            Stage::Offered(now)
        };
        let offer = s.offered.clone().filter(|_| !rec.closed);
        self.sessions.insert(job, s);
        if let Some(terms) = offer {
            // The offer may not have reached the client before the
            // restart: it is made again (the same signed terms).
            self.offer_again(now, job, rec.client, terms);
        }
        if let Some(c) = &rec.claim {
            // The claim may not have gone out before the restart: sent
            // again, and re-sent until a validator confirms it.
            self.broadcast_promise(now, c.message());
            self.start_claim(now, job, c.message());
        }
        Ok(())
    }
}
