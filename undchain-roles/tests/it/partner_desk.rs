//! The validator's side of the partner and client stories (the
//! `PartnerDesk`), alone and wired to a real client and partner: matching,
//! offers, notifications, the payout pool, challenges, capacity, sign-off,
//! reports and complaints.

use crate::users::*;
use undchain_consensus::{ScoreBook, ScoreEvent, ScoreRules};
use undchain_roles::client::{Client, UserEvent, UserOutput};
use undchain_roles::partner::Partner;
use undchain_roles::utility::CHUNK_SIZE;
use undchain_roles::validator::{DeskError, DeskEvent, DeskOutput, PartnerDesk};
use undchain_sim::node_key;
use undchain_types::msg::{
    AtCapacity, CensorshipComplaint, CensorshipEvidence, ConnectionProblem, SignOff, StillActive,
    WorkRequest, WorkStatusReason,
};
use undchain_types::{
    BlockNumber, BoundedString, BoundedVec, Hash32, JobId, LocalTime, Message, MessageKind,
    PerceptionScore, UtilityKind,
};

/// Validator 0's desk, a client and a partner, and a router between them.
struct Three {
    desk: PartnerDesk,
    client: Client,
    partner: Partner,
    now: LocalTime,
    desk_events: Vec<DeskEvent>,
    scores: Vec<ScoreEvent>,
    user_events: Vec<UserEvent>,
}

impl Three {
    fn new(capacity: u32) -> Three {
        let mut t = Three {
            desk: PartnerDesk::new(v(0), params(), 5),
            client: client(4),
            partner: partner(4, &[UtilityKind::Storage], capacity),
            now: LocalTime(1_000),
            desk_events: Vec::new(),
            scores: Vec::new(),
            user_events: Vec::new(),
        };
        t.partner.start(t.now);
        t.run();
        t
    }

    /// A storage request of `units` chunks, acked by validator 0 and filed
    /// at its desk in block 3.
    fn request(&mut self, units: u64, threshold: u16) -> JobId {
        let body = request(UtilityKind::Storage, units, threshold, 0);
        let job = self.client.request(self.now, body.clone()).unwrap();
        self.client
            .handle_verified(self.now, &ack(0, job, 3, 4))
            .unwrap();
        self.desk.job_filed(
            self.now,
            job,
            self.client.key(),
            body,
            BlockNumber(3),
            Some(ep(7500)),
        );
        self.run();
        job
    }

    fn run(&mut self) {
        let (ck, pk) = (self.client.key(), self.partner.key());
        for _ in 0..10_000 {
            let d = self.desk.take_outputs();
            let c = self.client.drain();
            let p = self.partner.drain();
            if d.is_empty() && c.is_empty() && p.is_empty() {
                return;
            }
            for o in d {
                match o {
                    DeskOutput::Send { to, msg } => {
                        let env = signed(0, *msg);
                        if to == ck {
                            let _ = self.client.handle_verified(self.now, &env);
                        } else if to == pk {
                            let _ = self.partner.handle_verified(self.now, &env);
                        }
                    }
                    DeskOutput::Score(s) => self.scores.push(s),
                    DeskOutput::Event(e) => self.desk_events.push(e),
                }
            }
            for (from, outs) in [(ck, c), (pk, p)] {
                for o in outs {
                    match o {
                        UserOutput::Send { to, envelope, .. } if to == v(0) => {
                            let _ = self.desk.handle(self.now, from, envelope.body());
                        }
                        UserOutput::Send { to, envelope, .. } if to == pk => {
                            let _ = self.partner.handle_verified(self.now, &envelope);
                        }
                        UserOutput::Send { to, envelope, .. } if to == ck => {
                            let _ = self.client.handle_verified(self.now, &envelope);
                        }
                        UserOutput::Event(e) => self.user_events.push(e),
                        _ => {}
                    }
                }
            }
        }
        panic!("never went quiet");
    }
}

impl Three {
    /// Lets `us` pass at the desk: its due timers fire, the outputs flow.
    fn wait(&mut self, us: u64) {
        let end = self.now.plus(us);
        for _ in 0..1_000 {
            let Some(t) = self.desk.poll_timeout().filter(|t| *t <= end) else {
                self.now = end;
                return;
            };
            self.now = self.now.max(t);
            self.desk.handle_timeout(self.now);
            self.run();
        }
        panic!("the desk's timer does not move on");
    }

    fn count(&self, e: &DeskEvent) -> usize {
        self.desk_events.iter().filter(|d| *d == e).count()
    }
}

fn blob(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 241) as u8).collect()
}

#[test]
fn validators_match_partners_stream_offers_and_challenge_the_stored_blob() {
    let mut t = Three::new(4);
    let job = t.request(3, 1);
    assert_eq!(
        t.client.partners(&job),
        vec![t.partner.key()],
        "notified, responded, offered"
    );
    let root = t
        .client
        .store(t.now, job, t.partner.key(), blob(2 * CHUNK_SIZE + 1))
        .unwrap();
    t.run();
    assert!(t.user_events.contains(&UserEvent::InPayoutPool {
        job,
        block: BlockNumber(3)
    }));
    assert!(t.user_events.contains(&UserEvent::Started {
        job,
        client: t.client.key(),
        content_root: Some(root)
    }));
    assert!(
        t.desk_events
            .contains(&DeskEvent::ChallengePassed(t.partner.key())),
        "the started blob is challenged and proven"
    );
    assert!(t.scores.is_empty());
}

#[test]
fn storage_challenge_catches_dropped_chunk() {
    let mut t = Three::new(4);
    let job = t.request(3, 1);
    let root = t
        .client
        .store(t.now, job, t.partner.key(), blob(2 * CHUNK_SIZE + 1))
        .unwrap();
    t.run();
    // The partner drops every chunk; the next challenge cannot be proven.
    for i in 0..3 {
        t.partner.store_mut().evict_chunk(&root, i);
    }
    t.desk.challenge(t.now, t.partner.key(), root, 3);
    t.run();
    let pk = t.partner.key();
    assert!(t.desk_events.contains(&DeskEvent::ChallengeFailed(pk)));
    assert!(t.scores.contains(&ScoreEvent::FailedChallenge {
        identity: pk,
        role: undchain_types::Role::Partner
    }));
    assert!(
        t.user_events
            .iter()
            .any(|e| matches!(e, UserEvent::RequirementFailed(_)))
    );
    // A failed partner is not notified of new jobs.
    let job2 = t.request(3, 1);
    assert!(t.client.partners(&job2).is_empty());
}

#[test]
fn storage_rechallenge_catches_chunks_dropped_after_the_first_challenge() {
    let mut t = Three::new(4);
    let job = t.request(3, 1);
    let root = t
        .client
        .store(t.now, job, t.partner.key(), blob(2 * CHUNK_SIZE + 1))
        .unwrap();
    t.run();
    let pk = t.partner.key();
    assert_eq!(
        t.count(&DeskEvent::ChallengePassed(pk)),
        1,
        "at UtilityStarted"
    );
    // The first challenge passed; the partner drops its chunks afterwards,
    // and nothing but the desk's own timer asks again.
    for i in 0..3 {
        t.partner.store_mut().evict_chunk(&root, i);
    }
    let period = t.desk.rechallenge_us;
    t.wait(2 * period);
    assert!(
        t.desk_events.contains(&DeskEvent::ChallengeFailed(pk)),
        "{:?}",
        t.desk_events
    );
    assert!(t.scores.contains(&ScoreEvent::FailedChallenge {
        identity: pk,
        role: undchain_types::Role::Partner
    }));
    assert!(
        t.user_events
            .iter()
            .any(|e| matches!(e, UserEvent::RequirementFailed(_)))
    );
    // Caught once: a failed partner is not challenged (nor scored) again.
    t.wait(4 * period);
    assert_eq!(t.scores.len(), 1, "{:?}", t.scores);
    let job2 = t.request(3, 1);
    assert!(t.client.partners(&job2).is_empty());
}

#[test]
fn honest_storage_partner_passes_every_rechallenge() {
    let mut t = Three::new(4);
    let job = t.request(3, 1);
    t.client
        .store(t.now, job, t.partner.key(), blob(2 * CHUNK_SIZE + 1))
        .unwrap();
    t.run();
    let pk = t.partner.key();
    let period = t.desk.rechallenge_us;
    // Heartbeats keep it registered over many periods.
    for _ in 0..6 {
        t.wait(period);
        t.partner.handle_timeout(t.now);
        t.run();
    }
    assert!(
        t.count(&DeskEvent::ChallengePassed(pk)) >= 4,
        "challenged again and again: {:?}",
        t.desk_events
    );
    assert!(t.scores.is_empty(), "{:?}", t.scores);
    assert!(!t.desk_events.contains(&DeskEvent::ChallengeFailed(pk)));
}

#[test]
fn silent_partner_fails_its_challenge_at_the_deadline() {
    let mut d = PartnerDesk::new(v(0), params(), 1);
    let p = v(PARTNER);
    let mut partner = partner(4, &[UtilityKind::Storage], 2);
    partner.start(LocalTime(0));
    for o in partner.drain() {
        if let UserOutput::Send { to, envelope, .. } = o
            && to == v(0)
        {
            d.handle(LocalTime(0), p, envelope.body()).unwrap();
        }
    }
    d.challenge(LocalTime(0), p, Hash32([1; 32]), 4);
    d.take_outputs();
    let deadline = d.poll_timeout().unwrap();
    assert_eq!(deadline, LocalTime(6_000_000));
    d.handle_timeout(deadline);
    assert!(
        d.take_outputs()
            .contains(&DeskOutput::Event(DeskEvent::ChallengeFailed(p)))
    );
}

#[test]
fn validators_stream_offers_up_to_the_threshold_capped_by_the_chain() {
    let mut d = PartnerDesk::new(v(0), params(), 1);
    let client = v(CLIENT);
    let partners: Vec<_> = (70..73).map(v).collect();
    for p in &partners {
        d.handle(LocalTime(0), *p, &ready(UtilityKind::Storage))
            .unwrap();
        d.handle(LocalTime(0), *p, &subscribe(UtilityKind::Storage))
            .unwrap();
    }
    let job = JobId(Hash32([9; 32]));
    d.job_filed(
        LocalTime(1),
        job,
        client,
        request(UtilityKind::Storage, 4, 2, 0),
        BlockNumber(2),
        None,
    );
    let notes = d.take_outputs();
    assert_eq!(notes.len(), 3, "every matching partner is notified");
    for p in &partners {
        d.handle(LocalTime(2), *p, &response(job)).unwrap();
    }
    let offers: Vec<_> = d
        .take_outputs()
        .into_iter()
        .filter_map(|o| match o {
            DeskOutput::Send { to, msg } if to == client => match *msg {
                Message::PartnerOffer(o) => Some(o),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(offers.len(), 2, "the client's threshold");
    assert_eq!((offers[0].index, offers[0].last), (0, false));
    assert_eq!((offers[1].index, offers[1].last), (1, true));
    // Responses from a partner never notified are refused.
    assert_eq!(
        d.handle(LocalTime(3), v(79), &response(job)),
        Err(DeskError::NotRegistered(v(79)))
    );
}

fn ready(kind: UtilityKind) -> Message {
    undchain_types::msg::ReadyToProvide {
        kinds: BoundedVec::try_from_vec(vec![kind]).unwrap(),
        capacity: 2,
        price_per_unit: undchain_types::TokenAmount(1),
        centralized: None,
        media: BoundedVec::default(),
    }
    .into()
}

fn subscribe(kind: UtilityKind) -> Message {
    undchain_types::msg::Subscribe {
        kinds: BoundedVec::try_from_vec(vec![kind]).unwrap(),
    }
    .into()
}

fn response(job: JobId) -> Message {
    undchain_types::msg::JobResponse {
        job,
        price_per_unit: undchain_types::TokenAmount(1),
        units: 4,
    }
    .into()
}

fn notified(d: &mut PartnerDesk, p: &undchain_types::PublicKey) -> bool {
    d.take_outputs().iter().any(|o| {
        matches!(o, DeskOutput::Send { to, msg } if to == p && msg.kind() == MessageKind::JobNotification)
    })
}

#[test]
fn partner_at_capacity_gets_no_jobs_until_cooldown() {
    let mut d = PartnerDesk::new(v(0), params(), 1);
    let p = v(70);
    d.handle(LocalTime(0), p, &ready(UtilityKind::Storage))
        .unwrap();
    d.handle(LocalTime(0), p, &subscribe(UtilityKind::Storage))
        .unwrap();
    let req = || request(UtilityKind::Storage, 4, 1, 0);
    d.job_filed(
        LocalTime(1),
        JobId(Hash32([1; 32])),
        v(CLIENT),
        req(),
        BlockNumber(1),
        None,
    );
    assert!(notified(&mut d, &p));
    d.handle(LocalTime(2), p, &AtCapacity { running: 2 }.into())
        .unwrap();
    assert_eq!(
        d.handle(LocalTime(3), p, &AtCapacity { running: 2 }.into()),
        Err(DeskError::TooSoon),
        "a second at-capacity within the cooldown is ignored"
    );
    d.handle(
        LocalTime(10_000_000),
        p,
        &StillActive { free_capacity: 0 }.into(),
    )
    .unwrap();
    d.job_filed(
        LocalTime(10_000_000),
        JobId(Hash32([2; 32])),
        v(CLIENT),
        req(),
        BlockNumber(5),
        None,
    );
    assert!(!notified(&mut d, &p), "no jobs while at capacity");
    d.handle(
        LocalTime(30_000_002),
        p,
        &StillActive { free_capacity: 1 }.into(),
    )
    .unwrap();
    d.job_filed(
        LocalTime(30_000_002),
        JobId(Hash32([3; 32])),
        v(CLIENT),
        req(),
        BlockNumber(15),
        None,
    );
    assert!(
        notified(&mut d, &p),
        "notified again once the 30 s cooldown passed"
    );
}

#[test]
fn partner_sign_off_costs_less_than_vanishing() {
    let mut d = PartnerDesk::new(v(0), params(), 1);
    let (signs_off, vanishes) = (v(70), v(71));
    for p in [signs_off, vanishes] {
        d.handle(LocalTime(0), p, &ready(UtilityKind::Storage))
            .unwrap();
    }
    let reason = BoundedString::try_new("maintenance").unwrap();
    d.handle(LocalTime(1), signs_off, &SignOff { reason }.into())
        .unwrap();
    // Three heartbeats (60 s each) pass without a word from either.
    let mut now = LocalTime(0);
    while let Some(t) = d.poll_timeout() {
        now = t;
        d.handle_timeout(now);
    }
    assert!(now.0 >= 180_000_000);
    let out = d.take_outputs();
    assert!(out.contains(&DeskOutput::Event(DeskEvent::PartnerGone(vanishes))));
    let mut book = ScoreBook::new(PerceptionScore::new(200).unwrap(), ScoreRules::default());
    for o in &out {
        if let DeskOutput::Score(e) = o {
            book.apply(e);
        }
    }
    assert!(
        book.score(&signs_off) > book.score(&vanishes),
        "sign-off {:?} vs vanishing {:?}",
        book.score(&signs_off),
        book.score(&vanishes)
    );
    assert_eq!(book.score(&signs_off), PerceptionScore::START);
}

#[test]
fn censored_partner_complaint_lowers_validator_score() {
    let mut d = PartnerDesk::new(v(0), params(), 1);
    let p = v(70);
    d.handle(LocalTime(0), p, &ready(UtilityKind::Storage))
        .unwrap();
    d.handle(LocalTime(0), p, &subscribe(UtilityKind::Storage))
        .unwrap();
    let job = JobId(Hash32([4; 32]));
    d.job_filed(
        LocalTime(1),
        job,
        v(CLIENT),
        request(UtilityKind::Storage, 4, 1, 0),
        BlockNumber(6),
        None,
    );
    d.take_outputs();
    let complaint = |owner: usize, job: JobId| -> Message {
        CensorshipComplaint {
            chain_owner: v(owner),
            accused: BoundedVec::try_from_vec(vec![v(1), v(2)]).unwrap(),
            evidence: BoundedVec::try_from_vec(vec![CensorshipEvidence {
                job,
                block: BlockNumber(6),
                response_digest: Hash32([8; 32]),
            }])
            .unwrap(),
        }
        .into()
    };
    assert!(matches!(
        d.handle(LocalTime(2), p, &complaint(5, job)),
        Err(DeskError::Complaint(_))
    ));
    assert!(matches!(
        d.handle(LocalTime(2), p, &complaint(OWNER, JobId(Hash32([5; 32])))),
        Err(DeskError::Complaint(_))
    ));
    d.handle(LocalTime(2), p, &complaint(OWNER, job)).unwrap();
    d.handle(LocalTime(3), p, &complaint(OWNER, job)).unwrap();
    let events: Vec<_> = d
        .take_outputs()
        .into_iter()
        .filter_map(|o| match o {
            DeskOutput::Score(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), 2, "each accused once per partner");
    let mut book = ScoreBook::new(PerceptionScore::new(200).unwrap(), ScoreRules::default());
    for e in &events {
        book.apply(e);
    }
    for i in [1, 2] {
        assert!(book.score(&v(i)) < PerceptionScore::START);
    }
    assert_eq!(book.score(&v(3)), PerceptionScore::START);
}

#[test]
fn bad_connection_details_reported_and_counted() {
    let mut t = Three::new(4);
    let mut counted = Vec::new();
    for _ in 0..3 {
        let job = t.request(2, 1);
        t.client
            .report_connection(
                t.now,
                job,
                t.partner.key(),
                ep(7600),
                ConnectionProblem::Unreachable,
            )
            .unwrap();
        t.run();
        counted.push(t.desk.reports_against(&v(0)));
        // A second report of the same job by the same client is not counted.
        t.client
            .report_connection(
                t.now,
                job,
                t.partner.key(),
                ep(7600),
                ConnectionProblem::Refused,
            )
            .unwrap();
        t.run();
    }
    assert_eq!(counted, vec![1, 2, 3]);
    assert!(t.desk_events.contains(&DeskEvent::BadDetailsPattern(v(0))));
    // Someone outside the job cannot report it.
    let job = t.request(2, 1);
    let stranger = node_key(41).public();
    let r = undchain_types::msg::ConnectionReport {
        job,
        relayed_by: v(0),
        details: undchain_types::msg::ConnectionDetails {
            job,
            peer: t.partner.key(),
            endpoint: ep(1),
        },
        problem: ConnectionProblem::Unreachable,
    };
    assert_eq!(
        t.desk.handle(t.now, stranger, &r.into()),
        Err(DeskError::NotInJob {
            job,
            from: stranger
        })
    );
    assert_eq!(t.desk.reports_against(&v(0)), 3);
}

#[test]
fn work_status_says_why_no_work() {
    let mut d = PartnerDesk::new(v(0), params(), 1);
    let p = v(70);
    let ask = |d: &mut PartnerDesk| -> WorkStatusReason {
        d.handle(
            LocalTime(5),
            p,
            &WorkRequest {
                kinds: BoundedVec::default(),
            }
            .into(),
        )
        .unwrap();
        d.take_outputs()
            .into_iter()
            .find_map(|o| match o {
                DeskOutput::Send { msg, .. } => match *msg {
                    Message::WorkStatus(w) => Some(w.reason),
                    _ => None,
                },
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(ask(&mut d), WorkStatusReason::NotSubscribed);
    d.handle(LocalTime(0), p, &ready(UtilityKind::Storage))
        .unwrap();
    d.handle(LocalTime(0), p, &subscribe(UtilityKind::Storage))
        .unwrap();
    assert_eq!(ask(&mut d), WorkStatusReason::NoDemand);
    d.job_filed(
        LocalTime(1),
        JobId(Hash32([1; 32])),
        v(CLIENT),
        request(UtilityKind::Storage, 4, 1, 0),
        BlockNumber(1),
        None,
    );
    assert_eq!(ask(&mut d), WorkStatusReason::Available { open_jobs: 1 });
    d.set_score(p, PerceptionScore::new(100).unwrap());
    assert!(matches!(ask(&mut d), WorkStatusReason::UnderFloor { .. }));
}

#[test]
fn started_jobs_fill_a_partner_until_its_heartbeat_frees_them() {
    let mut d = PartnerDesk::new(v(0), params(), 1);
    let p = v(70);
    d.handle(LocalTime(0), p, &ready(UtilityKind::Storage))
        .unwrap();
    d.handle(LocalTime(0), p, &subscribe(UtilityKind::Storage))
        .unwrap();
    let req = || request(UtilityKind::Storage, 4, 1, 0);
    // Capacity 2: two jobs started fill it.
    for i in 1..=2u8 {
        let job = JobId(Hash32([i; 32]));
        d.job_filed(LocalTime(1), job, v(CLIENT), req(), BlockNumber(1), None);
        assert!(notified(&mut d, &p));
        d.handle(LocalTime(2), p, &response(job)).unwrap();
        let started = undchain_types::msg::UtilityStarted {
            job,
            client: v(CLIENT),
            started_at: undchain_types::BlockTime(0),
            content_root: None,
        };
        d.handle(LocalTime(2), p, &started.into()).unwrap();
        d.take_outputs();
    }
    d.job_filed(
        LocalTime(3),
        JobId(Hash32([3; 32])),
        v(CLIENT),
        req(),
        BlockNumber(2),
        None,
    );
    assert!(!notified(&mut d, &p), "full: no notification");
    // Its heartbeat says both slots are free again.
    d.handle(LocalTime(4), p, &StillActive { free_capacity: 2 }.into())
        .unwrap();
    d.job_filed(
        LocalTime(5),
        JobId(Hash32([4; 32])),
        v(CLIENT),
        req(),
        BlockNumber(2),
        None,
    );
    assert!(notified(&mut d, &p));
}
