//! The validator's side of the partner story and of the client story's
//! step 4 (design notes, "Partner to Validator"; DESIGN.md "Partner to
//! validator", "Smaller decisions"): a sans-IO desk that a validator
//! drives beside its other machines.
//!
//! * Registry: `ReadyToProvide` registers (kinds, capacity, price,
//!   centralised endpoint), `Subscribe` picks kinds, `StillActive` keeps it
//!   alive (`undchain-net`'s [`Liveness`]: three missed heartbeats mean
//!   gone), `AtCapacity` pauses it for the chain's cooldown
//!   ([`CapacityCooldown`]), `SignOff` removes it.
//! * Matching ([`PartnerDesk::job_filed`]): a filed job is notified only to
//!   live partners subscribed to its kind, not at capacity, not failed,
//!   at or above the chain's floor and the client's minimum score, asking
//!   at most the client's price. Responses become `PartnerOffer`s streamed
//!   to the client up to min(client threshold, chain cap); a later response
//!   gets no reply. The client's endpoint goes to the partner as
//!   `ConnectionDetails` (a centralised partner's endpoint rides in the
//!   offer instead).
//! * `UtilityStarted` puts the job in the payout pool
//!   (`PayoutPoolConfirmation`) and keeps the content root; storage
//!   partners are challenged for a random chunk of it and must answer
//!   with a proof (`RequirementFailed` and a `FailedChallenge` score event
//!   otherwise), at once and again about every `rechallenge_us` while the
//!   job is open (`partners/challenge.rs`).
//! * Recourse: `WorkRequest` gets a `WorkStatus`; `ConnectionReport`s are
//!   counted per relaying validator; a `CensorshipComplaint` whose
//!   evidence names jobs this validator knew yields `CensorshipEvidence`
//!   score events for the accused validators.
//!
//! Score events are outputs ([`DeskOutput::Score`]): the host commits them
//! (scores only move by committed events); the desk reads committed scores
//! back through [`PartnerDesk::set_score`].

use std::collections::{BTreeMap, BTreeSet};

use undchain_consensus::ScoreEvent;
use undchain_net::{CapacityCooldown, Liveness};
use undchain_types::msg::{
    CensorshipComplaint, ConnectionDetails, ConnectionReport, Endpoint, JobNotification,
    JobResponse, LowPerception, PartnerOffer, PayoutPoolConfirmation, ReadyToProvide, Requirement,
    UtilityRequest, UtilityStarted, WorkStatus, WorkStatusReason,
};
use undchain_types::{
    BlockNumber, ChainParams, Hash32, JobId, LocalTime, Message, PerceptionScore, PublicKey, Role,
    SplitMix64, UtilityKind,
};

mod challenge;
pub use challenge::{MAX_RECHECKS, RECHALLENGE_BLOCKS};

/// Connection reports against one relaying validator that make a pattern
/// ([`DeskEvent::BadDetailsPattern`]).
pub const REPORT_PATTERN: u32 = 3;
/// Most open jobs and most partners the desk keeps (the oldest job goes).
pub const MAX_JOBS: usize = 65_536;
/// Most registered partners.
pub const MAX_PARTNERS: usize = 16_384;

/// What the desk asks its validator to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeskOutput {
    /// Send `msg` to `to`.
    Send {
        /// The recipient.
        to: PublicKey,
        /// The body.
        msg: Box<Message>,
    },
    /// A score event to commit.
    Score(ScoreEvent),
    /// Something an operator sees.
    Event(DeskEvent),
}

/// What the desk tells an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeskEvent {
    /// A partner's heartbeats stopped without a sign-off.
    PartnerGone(PublicKey),
    /// A partner answered a challenge with a valid proof.
    ChallengePassed(PublicKey),
    /// A partner failed a challenge.
    ChallengeFailed(PublicKey),
    /// A connection report against a relaying validator was counted.
    BadDetailsReported {
        /// The validator that relayed the details.
        relayed_by: PublicKey,
        /// Reports counted against it.
        reports: u32,
    },
    /// Reports against one relaying validator reached the pattern count.
    BadDetailsPattern(PublicKey),
}

/// Why the desk refused an input (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeskError {
    /// From a partner that never registered (or signed off).
    #[error("{0:?} is not a registered partner")]
    NotRegistered(PublicKey),
    /// About a job the desk does not hold open.
    #[error("job {0} is not open here")]
    UnknownJob(JobId),
    /// A partner speaking of a job it was not offered for, or a report
    /// from someone not in the job.
    #[error("{from:?} is not part of job {job}")]
    NotInJob {
        /// The job.
        job: JobId,
        /// The sender.
        from: PublicKey,
    },
    /// A second at-capacity within the cooldown.
    #[error("at-capacity within the cooldown")]
    TooSoon,
    /// A complaint to another key, or with evidence the desk cannot check.
    #[error("complaint refused: {0}")]
    Complaint(&'static str),
    /// A challenge answer to no outstanding challenge.
    #[error("no outstanding challenge {0}")]
    UnknownChallenge(u64),
    /// A message the desk does not take.
    #[error("the partner desk does not take {0}")]
    Unexpected(undchain_types::MessageKind),
}

#[derive(Debug, Clone)]
struct Registered {
    offer: ReadyToProvide,
    kinds: BTreeSet<UtilityKind>,
    failed: Option<Requirement>,
    running: u32,
}

#[derive(Debug, Clone)]
struct OpenJob {
    client: PublicKey,
    request: UtilityRequest,
    block: BlockNumber,
    client_endpoint: Option<Endpoint>,
    notified: BTreeSet<PublicKey>,
    offered: Vec<PublicKey>,
    started: BTreeMap<PublicKey, Option<Hash32>>,
}

/// The desk.
#[derive(Debug)]
pub struct PartnerDesk {
    me: PublicKey,
    params: ChainParams,
    partners: BTreeMap<PublicKey, Registered>,
    scores: BTreeMap<PublicKey, PerceptionScore>,
    liveness: Liveness,
    cooldown: CapacityCooldown,
    jobs: BTreeMap<JobId, OpenJob>,
    reports: BTreeMap<PublicKey, u32>,
    reported: BTreeSet<(PublicKey, JobId)>,
    complained: BTreeSet<(PublicKey, PublicKey)>,
    challenges: BTreeMap<u64, challenge::Outstanding>,
    rechecks: BTreeMap<(LocalTime, JobId, PublicKey), challenge::Recheck>,
    next_challenge: u64,
    rng: SplitMix64,
    /// How long a challenged partner has to answer.
    pub challenge_deadline_us: u64,
    /// About how often a live storage job's partner is challenged again
    /// (each time jittered to 1/2..3/2 of it).
    pub rechallenge_us: u64,
    out: Vec<DeskOutput>,
}

impl PartnerDesk {
    /// The desk of validator `me` under `params`, randomness from `seed`.
    pub fn new(me: PublicKey, params: ChainParams, seed: u64) -> Self {
        PartnerDesk {
            me,
            liveness: Liveness::from_params(&params),
            cooldown: CapacityCooldown::from_params(&params),
            challenge_deadline_us: params.retry_timeout_us,
            rechallenge_us: RECHALLENGE_BLOCKS * params.block_interval_us,
            params,
            partners: BTreeMap::new(),
            scores: BTreeMap::new(),
            jobs: BTreeMap::new(),
            reports: BTreeMap::new(),
            reported: BTreeSet::new(),
            complained: BTreeSet::new(),
            challenges: BTreeMap::new(),
            rechecks: BTreeMap::new(),
            next_challenge: 1,
            rng: SplitMix64::new(seed),
            out: Vec::new(),
        }
    }

    /// The outputs since the last call.
    pub fn take_outputs(&mut self) -> Vec<DeskOutput> {
        std::mem::take(&mut self.out)
    }

    /// A committed score (the desk matches by it).
    pub fn set_score(&mut self, id: PublicKey, score: PerceptionScore) {
        self.scores.insert(id, score);
    }

    fn score(&self, id: &PublicKey) -> PerceptionScore {
        self.scores
            .get(id)
            .copied()
            .unwrap_or(PerceptionScore::START)
    }

    /// The registered partners, by key: (key, utility kinds, jobs
    /// running, capacity, failed a requirement check, score at this desk).
    /// A read accessor for the node's API.
    pub fn registered(
        &self,
    ) -> Vec<(PublicKey, Vec<UtilityKind>, u32, u32, bool, PerceptionScore)> {
        self.partners
            .iter()
            .map(|(k, r)| {
                let kinds = r.kinds.iter().copied().collect();
                (
                    *k,
                    kinds,
                    r.running,
                    r.offer.capacity,
                    r.failed.is_some(),
                    self.score(k),
                )
            })
            .collect()
    }

    /// Connection reports counted against `validator`.
    pub fn reports_against(&self, validator: &PublicKey) -> u32 {
        self.reports.get(validator).copied().unwrap_or(0)
    }

    /// Whether `partner` is registered and live.
    pub fn is_live(&self, partner: &PublicKey, now: LocalTime) -> bool {
        self.partners.contains_key(partner) && self.liveness.is_alive(partner, now)
    }

    fn send(&mut self, to: PublicKey, msg: impl Into<Message>) {
        self.out.push(DeskOutput::Send {
            to,
            msg: Box::new(msg.into()),
        });
    }

    fn eligible(
        &self,
        p: &PublicKey,
        r: &Registered,
        req: &UtilityRequest,
        now: LocalTime,
    ) -> bool {
        let score = self.score(p);
        r.kinds.contains(&req.kind)
            && r.offer.kinds.as_slice().contains(&req.kind)
            && r.failed.is_none()
            && r.running < r.offer.capacity
            && !self.cooldown.is_at_capacity(p, now)
            && self.liveness.is_alive(p, now)
            && score >= self.params.perception_floor
            && score >= req.min_partner_score
            && r.offer.price_per_unit <= req.max_price_per_unit
    }

    /// A job was filed in `block`: notify the partners that match it.
    pub fn job_filed(
        &mut self,
        now: LocalTime,
        job: JobId,
        client: PublicKey,
        request: UtilityRequest,
        block: BlockNumber,
        client_endpoint: Option<Endpoint>,
    ) {
        if self.jobs.contains_key(&job) {
            return;
        }
        if self.jobs.len() >= MAX_JOBS
            && let Some(old) = self.jobs.keys().next().copied()
        {
            self.jobs.remove(&old);
        }
        let matching: Vec<PublicKey> = self
            .partners
            .iter()
            .filter(|(p, r)| self.eligible(p, r, &request, now))
            .map(|(p, _)| *p)
            .collect();
        let note = JobNotification {
            job,
            kind: request.kind,
            units: request.units,
            max_price_per_unit: request.max_price_per_unit,
            min_partner_score: request.min_partner_score,
            block,
        };
        for p in &matching {
            self.send(*p, note.clone());
        }
        self.jobs.insert(
            job,
            OpenJob {
                client,
                request,
                block,
                client_endpoint,
                notified: matching.into_iter().collect(),
                offered: Vec::new(),
                started: BTreeMap::new(),
            },
        );
    }

    /// A message of the partner story (or a report from a client).
    pub fn handle(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        msg: &Message,
    ) -> Result<(), DeskError> {
        match msg {
            Message::ReadyToProvide(r) => self.register(now, from, r),
            Message::Subscribe(s) => {
                let r = self
                    .partners
                    .get_mut(&from)
                    .ok_or(DeskError::NotRegistered(from))?;
                r.kinds = s.kinds.iter().copied().collect();
                Ok(())
            }
            Message::StillActive(s) => {
                let r = self
                    .partners
                    .get_mut(&from)
                    .ok_or(DeskError::NotRegistered(from))?;
                // The partner's own count of free slots replaces the
                // desk's (which only sees starts, not completions).
                r.running = r.offer.capacity.saturating_sub(s.free_capacity);
                self.liveness.heartbeat(from, now);
                Ok(())
            }
            Message::AtCapacity(_) => {
                if !self.partners.contains_key(&from) {
                    return Err(DeskError::NotRegistered(from));
                }
                self.cooldown
                    .record(from, now)
                    .map_err(|_| DeskError::TooSoon)
            }
            Message::SignOff(_) => {
                self.partners
                    .remove(&from)
                    .ok_or(DeskError::NotRegistered(from))?;
                self.liveness.remove(&from);
                Ok(())
            }
            Message::JobResponse(r) => self.respond(from, r),
            Message::UtilityStarted(s) => self.started(now, from, s),
            Message::ChallengeResponse(r) => self.answered(from, r),
            Message::WorkRequest(_) => {
                let reason = self.work_status(now, &from);
                self.send(from, WorkStatus { reason });
                Ok(())
            }
            Message::ConnectionReport(r) => self.report(from, r),
            Message::CensorshipComplaint(c) => self.complaint(from, c),
            other => Err(DeskError::Unexpected(other.kind())),
        }
    }

    fn register(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        r: &ReadyToProvide,
    ) -> Result<(), DeskError> {
        if !self.partners.contains_key(&from) && self.partners.len() >= MAX_PARTNERS {
            return Err(DeskError::NotRegistered(from));
        }
        let score = self.score(&from);
        if score < self.params.perception_floor {
            self.send(
                from,
                LowPerception {
                    role: Role::Partner,
                    score,
                    floor: self.params.perception_floor,
                },
            );
        }
        let kinds = self
            .partners
            .get(&from)
            .map(|p| p.kinds.clone())
            .unwrap_or_default();
        self.partners.insert(
            from,
            Registered {
                offer: r.clone(),
                kinds,
                failed: None,
                running: 0,
            },
        );
        self.liveness.heartbeat(from, now);
        Ok(())
    }

    /// Client story step 4 / partner story step 3: an offer to the client
    /// while under the threshold; details to the partner. Late: no reply.
    fn respond(&mut self, from: PublicKey, r: &JobResponse) -> Result<(), DeskError> {
        let reg = self
            .partners
            .get(&from)
            .ok_or(DeskError::NotRegistered(from))?;
        let centralized = reg.offer.centralized.clone();
        let score = self.score(&from);
        let cap = self.params.partner_list_cap;
        let job = self
            .jobs
            .get_mut(&r.job)
            .ok_or(DeskError::UnknownJob(r.job))?;
        if !job.notified.contains(&from) {
            return Err(DeskError::NotInJob { job: r.job, from });
        }
        let limit = usize::from(job.request.partner_threshold.clamp(1, cap.max(1)));
        if job.offered.contains(&from) || job.offered.len() >= limit {
            return Ok(());
        }
        let index = job.offered.len() as u16;
        job.offered.push(from);
        let client = job.client;
        let details = job.client_endpoint.clone();
        let offer = PartnerOffer {
            job: r.job,
            partner: from,
            score,
            price_per_unit: r.price_per_unit,
            preferred: centralized.clone(),
            index,
            last: usize::from(index) + 1 == limit,
        };
        self.send(client, offer);
        if centralized.is_none()
            && let Some(endpoint) = details
        {
            self.send(
                from,
                ConnectionDetails {
                    job: r.job,
                    peer: client,
                    endpoint,
                },
            );
        }
        Ok(())
    }

    /// Partner story step 5: into the payout pool, content root kept, a
    /// storage partner challenged.
    fn started(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        s: &UtilityStarted,
    ) -> Result<(), DeskError> {
        let job = self
            .jobs
            .get_mut(&s.job)
            .ok_or(DeskError::UnknownJob(s.job))?;
        if !job.offered.contains(&from) || job.client != s.client {
            return Err(DeskError::NotInJob { job: s.job, from });
        }
        let first = job.started.insert(from, s.content_root).is_none();
        let block = job.block;
        let (kind, units) = (job.request.kind, job.request.units);
        if first && let Some(r) = self.partners.get_mut(&from) {
            r.running += 1;
        }
        self.send(from, PayoutPoolConfirmation { job: s.job, block });
        if first
            && kind == UtilityKind::Storage
            && let Some(root) = s.content_root
        {
            self.challenge(now, from, root, units);
            self.schedule_recheck(now, s.job, from, root, units);
        }
        Ok(())
    }

    /// DESIGN.md "Why no work?".
    fn work_status(&self, now: LocalTime, p: &PublicKey) -> WorkStatusReason {
        let Some(r) = self.partners.get(p) else {
            return WorkStatusReason::NotSubscribed;
        };
        let score = self.score(p);
        if score < self.params.perception_floor {
            return WorkStatusReason::UnderFloor {
                score,
                floor: self.params.perception_floor,
            };
        }
        if let Some(f) = &r.failed {
            return WorkStatusReason::FailedRequirement(f.clone());
        }
        if r.kinds.is_empty() {
            return WorkStatusReason::NotSubscribed;
        }
        if r.running >= r.offer.capacity || self.cooldown.is_at_capacity(p, now) {
            return WorkStatusReason::AtCapacity;
        }
        let open = self
            .jobs
            .values()
            .filter(|j| r.kinds.contains(&j.request.kind) && j.started.is_empty())
            .count();
        if open == 0 {
            WorkStatusReason::NoDemand
        } else {
            WorkStatusReason::Available {
                open_jobs: open as u32,
            }
        }
    }

    /// DESIGN.md "Bad connection details": counted per relaying validator,
    /// once per reporter and job, only from the job's client or a partner
    /// offered for it.
    fn report(&mut self, from: PublicKey, r: &ConnectionReport) -> Result<(), DeskError> {
        let job = self.jobs.get(&r.job).ok_or(DeskError::UnknownJob(r.job))?;
        if job.client != from && !job.offered.contains(&from) {
            return Err(DeskError::NotInJob { job: r.job, from });
        }
        if !self.reported.insert((from, r.job)) {
            return Ok(());
        }
        let n = self.reports.entry(r.relayed_by).or_insert(0);
        *n += 1;
        let reports = *n;
        self.out
            .push(DeskOutput::Event(DeskEvent::BadDetailsReported {
                relayed_by: r.relayed_by,
                reports,
            }));
        if reports == REPORT_PATTERN {
            self.out
                .push(DeskOutput::Event(DeskEvent::BadDetailsPattern(
                    r.relayed_by,
                )));
        }
        Ok(())
    }

    /// A censorship complaint: to the chain owner's key, with evidence of
    /// jobs this validator knew of the partner's kinds; each accused
    /// validator gets one `CensorshipEvidence` score event per partner.
    fn complaint(&mut self, from: PublicKey, c: &CensorshipComplaint) -> Result<(), DeskError> {
        if c.chain_owner != self.params.chain_owner {
            return Err(DeskError::Complaint(
                "not addressed to the chain owner's key",
            ));
        }
        let reg = self
            .partners
            .get(&from)
            .ok_or(DeskError::NotRegistered(from))?;
        let known = c.evidence.iter().all(|e| {
            self.jobs
                .get(&e.job)
                .is_some_and(|j| j.block == e.block && reg.kinds.contains(&j.request.kind))
        });
        if c.evidence.is_empty() || !known {
            return Err(DeskError::Complaint(
                "evidence names jobs this validator never held",
            ));
        }
        for v in c.accused.iter() {
            if *v != self.me && self.complained.insert((from, *v)) {
                self.out
                    .push(DeskOutput::Score(ScoreEvent::CensorshipEvidence {
                        validator: *v,
                    }));
            }
        }
        Ok(())
    }

    /// When [`PartnerDesk::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<LocalTime> {
        [self.liveness.poll_timeout(), self.challenge_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Heartbeat expiry (vanishing costs a `ReceiptRefused` event; an
    /// announced sign-off costs nothing), unanswered challenges and due
    /// re-challenges.
    pub fn handle_timeout(&mut self, now: LocalTime) {
        for p in self.liveness.handle_timeout(now) {
            if self.partners.remove(&p).is_some() {
                self.out.push(DeskOutput::Score(ScoreEvent::ReceiptRefused {
                    identity: p,
                    role: Role::Partner,
                }));
                self.out.push(DeskOutput::Event(DeskEvent::PartnerGone(p)));
            }
        }
        self.challenges_timeout(now);
    }
}

/// Whether `msg` is for the partner desk (partner-story messages and
/// client reports, from anyone).
pub fn takes(msg: &Message) -> bool {
    matches!(
        msg,
        Message::ReadyToProvide(_)
            | Message::Subscribe(_)
            | Message::StillActive(_)
            | Message::AtCapacity(_)
            | Message::SignOff(_)
            | Message::JobResponse(_)
            | Message::UtilityStarted(_)
            | Message::ChallengeResponse(_)
            | Message::WorkRequest(_)
            | Message::ConnectionReport(_)
            | Message::CensorshipComplaint(_)
    )
}

impl crate::validator::Validator {
    /// A partner-story message: to the desk, its outputs carried out.
    pub(crate) fn handle_partner(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        msg: &Message,
    ) -> Result<(), DeskError> {
        let r = self.partners.handle(now, from, msg);
        self.carry_desk(now);
        r
    }

    /// A client request this active validator filed and acknowledged: the
    /// matching partners are notified (the client's endpoint is the
    /// host's to add; without it only centralised partners connect).
    pub(crate) fn partners_filed(&mut self, now: LocalTime, env: &undchain_types::SignedEnvelope) {
        if !self.is_active() {
            return;
        }
        let Message::UtilityRequest(r) = env.body() else {
            return;
        };
        let job = JobId::from_request_digest(env.digest());
        let Some(&(client, block)) = self.acks.get(&job) else {
            return;
        };
        self.partners
            .job_filed(now, job, client, r.clone(), block, None);
        self.carry_desk(now);
    }

    /// Heartbeat expiry and challenge deadlines.
    pub(crate) fn partners_timeout(&mut self, now: LocalTime) {
        if self.partners.poll_timeout().is_some_and(|t| t <= now) {
            self.partners.handle_timeout(now);
        }
        self.carry_desk(now);
    }

    fn carry_desk(&mut self, now: LocalTime) {
        for o in self.partners.take_outputs() {
            match o {
                DeskOutput::Send { to, msg } => self.send(now, &[to], *msg, false),
                DeskOutput::Score(e) => self.event(crate::output::NodeEvent::ScoreEvidence(e)),
                DeskOutput::Event(e) => self.event(crate::output::NodeEvent::Partner(e)),
            }
        }
    }
}
