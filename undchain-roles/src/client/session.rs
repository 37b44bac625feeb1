//! The client's side of utility sessions (DESIGN.md "Utility sessions";
//! client story step 5): upload and fetch with checked chunks, compute
//! with spot checks, a metered relay; checkpoints every K units; the
//! receipt countersigned and sent to validators, re-sent to others when
//! none confirms. A session waiting on its partner (an upload or
//! computation until the receipt offer, a fetch until the blob is whole, a
//! relay while an input or its `End` is unanswered) fails when nothing
//! came for `session_idle_us`; a failed session takes nothing more and is
//! never countersigned (docs/PROTOCOL.md "The client and partner
//! machines", "Idle sessions").

use std::collections::VecDeque;

use undchain_types::msg::{
    CompletionAck, MAX_CHUNK, Receipt, ReceiptTerms, SessionBody, SessionMessage,
};
use undchain_types::{BoundedBytes, Hash32, JobId, LocalTime, PublicKey, Signature};

use super::{Client, ClientError, SessionFailure, UserEvent};
use crate::utility::relay::units_of;
use crate::utility::{ClientMeter, ComputeCheck, Fetch, MeterTerms, Upload, UtilityError};

/// Chunks or fetches the client keeps in flight ahead of confirmations.
pub const WINDOW: u32 = 8;

#[derive(Debug, Clone)]
enum Work {
    Store {
        upload: Upload,
        sent: u32,
        confirmed: u64,
    },
    Fetch {
        fetch: Fetch,
        asked: u32,
    },
    Compute {
        check: ComputeCheck,
        next: u32,
        segments: u32,
    },
    Relay {
        inputs: VecDeque<Vec<u8>>,
        next: u32,
        sent: u32,
        last_in: usize,
    },
}

/// One session of the client with one partner.
#[derive(Debug, Clone)]
pub struct ClientSession {
    meter: ClientMeter,
    work: Work,
    failed: bool,
    /// Since when the session waits on the partner: its last message, or
    /// the client's send that started a wait.
    since: LocalTime,
    /// The newest envelope number taken from the partner: only a newer
    /// one moves `since` (a replayed or duplicated old message of a
    /// partner that went silent is no sign of life).
    newest_seq: Option<u64>,
    /// Nothing more is awaited (the receipt countersigned, the fetch whole).
    done: bool,
    /// The client sent `End` (it waits for the receipt offer).
    ended: bool,
}

impl ClientSession {
    /// Units the client counted.
    pub fn units(&self) -> u64 {
        self.meter.units()
    }

    /// Whether the session failed (broken terms or a silent partner).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Whether the session waits on the partner now (its idle deadline
    /// runs).
    pub fn waiting(&self) -> bool {
        if self.failed || self.done {
            return false;
        }
        match &self.work {
            Work::Relay { next, sent, .. } => self.ended || sent > next,
            _ => true,
        }
    }

    /// Since when the session waits: the partner's last message it took,
    /// or the client's send that started the wait.
    pub fn waiting_since(&self) -> LocalTime {
        self.since
    }

    /// When the session fails if the partner stays silent.
    fn idle_deadline(&self, idle_us: u64) -> Option<LocalTime> {
        self.waiting().then(|| self.since.plus(idle_us))
    }
}

/// A receipt waiting for a validator's confirmation.
#[derive(Debug, Clone)]
pub(crate) struct Confirm {
    receipt: Receipt,
    tried: Vec<PublicKey>,
    pub(crate) deadline: LocalTime,
}

impl Client {
    fn terms(&self, job: JobId, partner: PublicKey) -> Result<MeterTerms, ClientError> {
        let j = self.jobs.get(&job).ok_or(ClientError::UnknownJob(job))?;
        let taken = j
            .offers
            .taken
            .get(&partner)
            .ok_or(ClientError::NoSession { job, partner })?;
        Ok(MeterTerms {
            chain_id: self.cfg.params.chain_id,
            job,
            commit_block: j.commit_block().ok_or(ClientError::NotAcked(job))?,
            client: self.key(),
            partner,
            price_per_unit: taken.price,
            every: self.cfg.checkpoint_every,
        })
    }

    fn open(
        &mut self,
        now: LocalTime,
        job: JobId,
        partner: PublicKey,
        work: Work,
    ) -> Result<(), ClientError> {
        let terms = self.terms(job, partner)?;
        self.sessions.insert(
            (job, partner),
            ClientSession {
                meter: ClientMeter::new(terms),
                work,
                failed: false,
                since: now,
                newest_seq: None,
                done: false,
                ended: false,
            },
        );
        Ok(())
    }

    /// The earliest idle deadline of a waiting session.
    pub(crate) fn idle_timeout(&self) -> Option<LocalTime> {
        let idle_us = self.cfg.session_idle_us;
        self.sessions
            .values()
            .filter_map(|s| s.idle_deadline(idle_us))
            .min()
    }

    /// Sessions whose partner stayed silent past the idle deadline fail
    /// ([`SessionFailure::Silent`]). The client signs nothing more in
    /// them: the partner can claim at most the last checkpoint the client
    /// signed, and the settlement refunds the rest of the escrow; asking
    /// again (a new request) is the user's recourse.
    pub(crate) fn fail_idle(&mut self, now: LocalTime) {
        let idle_us = self.cfg.session_idle_us;
        let due: Vec<(JobId, PublicKey)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.idle_deadline(idle_us).is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for (job, peer) in due {
            if let Some(s) = self.sessions.get_mut(&(job, peer)) {
                s.failed = true;
            }
            self.event(UserEvent::SessionFailed {
                job,
                peer,
                reason: SessionFailure::Silent { idle_us },
            });
        }
    }

    fn session_send(&mut self, now: LocalTime, job: JobId, to: PublicKey, body: SessionBody) {
        self.send(now, to, None, SessionMessage { job, body }.into());
    }

    /// Uploads `blob` to `partner` for `job` (a storage job); returns its
    /// content root.
    pub fn store(
        &mut self,
        now: LocalTime,
        job: JobId,
        partner: PublicKey,
        blob: Vec<u8>,
    ) -> Result<Hash32, ClientError> {
        let upload = Upload::new(blob)?;
        let root = upload.tree().root();
        self.open(
            now,
            job,
            partner,
            Work::Store {
                upload,
                sent: 0,
                confirmed: 0,
            },
        )?;
        self.pump(now, job, partner);
        Ok(root)
    }

    /// Fetches the blob `root` of `size` bytes back from `partner`.
    pub fn fetch(
        &mut self,
        now: LocalTime,
        job: JobId,
        partner: PublicKey,
        root: Hash32,
        size: u64,
    ) -> Result<(), ClientError> {
        let fetch = Fetch::new(root, size)?;
        self.open(now, job, partner, Work::Fetch { fetch, asked: 0 })?;
        self.pump(now, job, partner);
        Ok(())
    }

    /// Runs the built-in computation from `seed` with `partner`,
    /// recomputing about one segment in `one_in`.
    #[allow(clippy::too_many_arguments)]
    pub fn compute(
        &mut self,
        now: LocalTime,
        job: JobId,
        partner: PublicKey,
        seed: Hash32,
        stride: u64,
        segments: u32,
        one_in: u64,
    ) -> Result<(), ClientError> {
        let check = ComputeCheck::new(seed, stride, one_in, self.cfg.seed ^ seed.0[0] as u64);
        self.open(
            now,
            job,
            partner,
            Work::Compute {
                check,
                next: 0,
                segments,
            },
        )?;
        self.pump(now, job, partner);
        Ok(())
    }

    /// Relays `inputs` through `partner` (an access job).
    pub fn relay(
        &mut self,
        now: LocalTime,
        job: JobId,
        partner: PublicKey,
        inputs: Vec<Vec<u8>>,
    ) -> Result<(), ClientError> {
        if inputs.iter().any(|i| i.len() > MAX_CHUNK) {
            return Err(UtilityError::BadInput("a relay input is over the chunk limit").into());
        }
        self.open(
            now,
            job,
            partner,
            Work::Relay {
                inputs: inputs.into(),
                next: 0,
                sent: 0,
                last_in: 0,
            },
        )?;
        self.pump(now, job, partner);
        Ok(())
    }

    /// Sends what the session may send now.
    fn pump(&mut self, now: LocalTime, job: JobId, partner: PublicKey) {
        let mut out = Vec::new();
        if let Some(s) = self.sessions.get_mut(&(job, partner)) {
            if s.failed {
                return;
            }
            let limit = s.meter.unsigned_limit();
            match &mut s.work {
                Work::Store {
                    upload,
                    sent,
                    confirmed,
                } => {
                    // Never more in flight than the partner serves unproven.
                    let t = upload.tree();
                    let cap = (*confirmed + u64::from(WINDOW)).min(limit);
                    while *sent < t.count() && u64::from(*sent) < cap {
                        let Some(bytes) = upload.chunk(*sent) else {
                            break;
                        };
                        let Ok(bytes) = BoundedBytes::try_from_slice(bytes) else {
                            break;
                        };
                        out.push(SessionBody::Chunk {
                            root: t.root(),
                            index: *sent,
                            count: t.count(),
                            size: t.size(),
                            bytes,
                        });
                        *sent += 1;
                    }
                }
                Work::Fetch { fetch, asked } => {
                    let missing: Vec<u32> = fetch.missing().collect();
                    let in_flight = missing.iter().filter(|i| **i < *asked).count() as u32;
                    let root = fetch.root();
                    for i in missing.into_iter().filter(|i| *i >= *asked) {
                        if in_flight + (i - *asked) >= WINDOW {
                            break;
                        }
                        out.push(SessionBody::Fetch { root, index: i });
                    }
                    *asked = (*asked).max(in_flight_end(&out).unwrap_or(*asked));
                }
                Work::Compute { next, segments, .. } => {
                    if *next < *segments {
                        out.push(SessionBody::Input {
                            seq: *next,
                            bytes: BoundedBytes::default(),
                        });
                    }
                }
                Work::Relay {
                    inputs,
                    next,
                    sent,
                    last_in,
                } => {
                    if let Some(i) = inputs.pop_front() {
                        *last_in = i.len();
                        if let Ok(bytes) = BoundedBytes::try_from_vec(i) {
                            if *sent <= *next {
                                // Nothing was awaited: the wait starts now.
                                s.since = now;
                            }
                            *sent = (*sent).max(*next + 1);
                            out.push(SessionBody::Input { seq: *next, bytes });
                        }
                    }
                }
            }
        }
        for b in out {
            self.session_send(now, job, partner, b);
        }
    }

    /// A session message from a partner, in its envelope number `seq`:
    /// only one it takes, numbered above the newest taken, restarts the
    /// idle wait (a replayed, duplicated or refused message is no sign of
    /// life).
    pub(crate) fn handle_session(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        seq: u64,
        m: &SessionMessage,
    ) -> Result<(), ClientError> {
        let key = (m.job, from);
        let Some(s) = self.sessions.get_mut(&key) else {
            return Err(ClientError::NoSession {
                job: m.job,
                partner: from,
            });
        };
        if s.failed {
            return Err(ClientError::SessionStopped {
                job: m.job,
                partner: from,
            });
        }
        let fresh = s.newest_seq.is_none_or(|n| seq > n);
        let r = self.session_step(now, key, m);
        if r.is_ok() && fresh {
            if let Some(s) = self.sessions.get_mut(&key) {
                s.newest_seq = Some(seq);
                s.since = now;
            }
        }
        r
    }

    /// Applies a session message of a live session.
    fn session_step(
        &mut self,
        now: LocalTime,
        key: (JobId, PublicKey),
        m: &SessionMessage,
    ) -> Result<(), ClientError> {
        let from = key.1;
        if let SessionBody::ReceiptOffer { terms, partner_sig } = &m.body {
            return self.countersign(now, from, terms, partner_sig);
        }
        match self.step(now, key, &m.body) {
            Ok(units) => {
                if units > 0 {
                    self.count(now, key, units)?;
                }
                self.pump(now, m.job, from);
                Ok(())
            }
            Err(e) => {
                if let Some(s) = self.sessions.get_mut(&key) {
                    s.failed = true;
                }
                self.event(UserEvent::SessionFailed {
                    job: m.job,
                    peer: from,
                    reason: SessionFailure::Broken(e.to_string()),
                });
                Err(e.into())
            }
        }
    }

    /// Applies one partner message to the session's work; returns the units
    /// it delivered (as the client checked them).
    fn step(
        &mut self,
        _now: LocalTime,
        key: (JobId, PublicKey),
        body: &SessionBody,
    ) -> Result<u64, UtilityError> {
        let Some(s) = self.sessions.get_mut(&key) else {
            return Err(UtilityError::BadInput("no session"));
        };
        if s.failed {
            return Err(UtilityError::BadInput("the session was stopped"));
        }
        match (&mut s.work, body) {
            (
                Work::Store {
                    sent, confirmed, ..
                },
                SessionBody::Delivered { units },
            ) => {
                if *units < *confirmed || *units > u64::from(*sent) {
                    return Err(UtilityError::BadInput(
                        "delivered units not sent or going back",
                    ));
                }
                let d = *units - *confirmed;
                *confirmed = *units;
                Ok(d)
            }
            (
                Work::Fetch { fetch, .. },
                SessionBody::ChunkReply {
                    index,
                    bytes,
                    proof,
                    ..
                },
            ) => {
                fetch.handle_chunk(*index, bytes.as_bytes(), proof)?;
                if fetch.is_complete() {
                    let f = fetch.clone();
                    if let Some(blob) = f.into_blob() {
                        let size = blob.len() as u64;
                        s.done = true;
                        self.blobs.insert(key.0, blob);
                        self.event(UserEvent::Fetched { job: key.0, size });
                    }
                }
                Ok(0)
            }
            (Work::Compute { check, next, .. }, SessionBody::Output { seq, bytes, .. }) => {
                check.handle_output(*seq, bytes.as_bytes())?;
                *next += 1;
                Ok(1)
            }
            (Work::Relay { next, last_in, .. }, SessionBody::Output { seq, bytes, units }) => {
                if *seq != *next {
                    return Err(UtilityError::OutOfOrder {
                        got: *seq,
                        expected: *next,
                    });
                }
                let want = units_of(*last_in) + units_of(bytes.len());
                if *units != want {
                    return Err(UtilityError::BadInput(
                        "relay units are not the bytes carried",
                    ));
                }
                *next += 1;
                Ok(want)
            }
            _ => Err(UtilityError::BadInput("message does not fit the session")),
        }
    }

    /// Counts `units` and sends a checkpoint when K more were counted.
    fn count(
        &mut self,
        now: LocalTime,
        key: (JobId, PublicKey),
        units: u64,
    ) -> Result<(), ClientError> {
        let at = self.wall(now);
        let key_sign = self.cfg.key.clone();
        let Some(s) = self.sessions.get_mut(&key) else {
            return Ok(());
        };
        if let Some(c) = s.meter.record(units, at, &key_sign)? {
            let units = c.checkpoint.units;
            self.session_send(now, key.0, key.1, SessionBody::Checkpoint(c));
            self.event(UserEvent::Checkpoint {
                job: key.0,
                peer: key.1,
                units,
            });
        }
        Ok(())
    }

    /// The partner's receipt offer: checked against the client's count,
    /// countersigned, returned and sent to the validators.
    fn countersign(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        terms: &ReceiptTerms,
        partner_sig: &Signature,
    ) -> Result<(), ClientError> {
        let key = (terms.job, from);
        let s = self.sessions.get(&key).ok_or(ClientError::NoSession {
            job: terms.job,
            partner: from,
        })?;
        if s.failed {
            return Err(ClientError::SessionStopped {
                job: terms.job,
                partner: from,
            });
        }
        if terms.partner != from {
            return Err(UtilityError::ForeignCheckpoint.into());
        }
        from.verify_digest(&terms.digest(), partner_sig)
            .map_err(|_| UtilityError::BadSignature)?;
        s.meter.check_receipt(terms)?;
        let receipt = Receipt {
            client_sig: self.cfg.key.sign_digest(&terms.digest()),
            partner_sig: *partner_sig,
            terms: terms.clone(),
        };
        if let Some(s) = self.sessions.get_mut(&key) {
            s.done = true;
        }
        self.session_send(
            now,
            terms.job,
            from,
            SessionBody::ReceiptSigned(receipt.clone()),
        );
        let fanout = usize::from(self.cfg.params.ack_fanout.max(1));
        let to: Vec<PublicKey> = self
            .validators_for(&terms.job)
            .into_iter()
            .take(fanout)
            .collect();
        for v in &to {
            self.send(now, *v, None, receipt.clone().into());
        }
        self.event(UserEvent::ReceiptSent {
            job: terms.job,
            peer: from,
            units: terms.units,
        });
        self.confirm.insert(
            terms.job,
            Confirm {
                receipt,
                tried: to,
                deadline: now.plus(self.cfg.params.retry_timeout_us),
            },
        );
        Ok(())
    }

    /// A validator confirmed a receipt.
    pub(crate) fn handle_completion(
        &mut self,
        from: PublicKey,
        a: &CompletionAck,
    ) -> Result<(), ClientError> {
        let job = self
            .jobs
            .get(&a.job)
            .ok_or(ClientError::UnknownJob(a.job))?;
        if !self.is_validator(job, &from) {
            return Err(ClientError::NotAValidator(from));
        }
        self.confirm.remove(&a.job);
        self.event(UserEvent::Completed {
            job: a.job,
            block: a.block,
        });
        Ok(())
    }

    /// Recourse when no validator confirms a receipt (client story step 5,
    /// "validator doesn't send a confirmation"): re-send to the active
    /// validators not tried yet; when every one was tried, report.
    pub(crate) fn recourse(&mut self, now: LocalTime) {
        let due: Vec<JobId> = self
            .confirm
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(j, _)| *j)
            .collect();
        for job in due {
            let all = self.validators_for(&job);
            let Some(c) = self.confirm.get_mut(&job) else {
                continue;
            };
            let rest: Vec<PublicKey> = all.into_iter().filter(|v| !c.tried.contains(v)).collect();
            if rest.is_empty() {
                let tried = c.tried.clone();
                self.confirm.remove(&job);
                self.event(UserEvent::ReceiptIgnored { job, tried });
                continue;
            }
            c.tried.extend(rest.iter().copied());
            c.deadline = now.plus(self.cfg.params.retry_timeout_us);
            let receipt = c.receipt.clone();
            for v in &rest {
                self.send(now, *v, None, receipt.clone().into());
            }
            self.event(UserEvent::ReceiptResent { job, to: rest });
        }
    }

    /// Ends an access session.
    pub fn end(
        &mut self,
        now: LocalTime,
        job: JobId,
        partner: PublicKey,
    ) -> Result<(), ClientError> {
        let s = self
            .sessions
            .get_mut(&(job, partner))
            .ok_or(ClientError::NoSession { job, partner })?;
        if !s.waiting() {
            s.since = now;
        }
        s.ended = true;
        self.session_send(now, job, partner, SessionBody::End);
        Ok(())
    }

    /// The session with `partner` for `job`.
    pub fn session(&self, job: &JobId, partner: &PublicKey) -> Option<&ClientSession> {
        self.sessions.get(&(*job, *partner))
    }
}

fn in_flight_end(out: &[SessionBody]) -> Option<u32> {
    out.iter()
        .filter_map(|b| match b {
            SessionBody::Fetch { index, .. } => Some(index + 1),
            _ => None,
        })
        .max()
}
