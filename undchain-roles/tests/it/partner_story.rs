//! The partner story (design notes, "Partner to Validator"; DESIGN.md
//! "Partner to validator"), one scenario per step and per "what could go
//! wrong" that the `Partner` machine alone can show.

use crate::users::*;
use undchain_roles::client::UserEvent;
use undchain_roles::partner::PartnerError;
use undchain_types::msg::{
    ConnectionProblem, JobFileReply, LowPerception, WorkStatus, WorkStatusReason,
};
use undchain_types::{
    BlockNumber, BoundedVec, Hash32, JobId, LocalTime, Message, MessageKind, PerceptionScore, Role,
    UtilityKind,
};

fn job(i: u8) -> JobId {
    JobId(Hash32([i; 32]))
}

fn kinds(out: &[undchain_roles::client::UserOutput]) -> Vec<MessageKind> {
    bodies(out).into_iter().map(|(_, m)| m.kind()).collect()
}

#[test]
fn partner_announces_subscribes_and_heartbeats() {
    let mut p = partner(4, &[UtilityKind::Storage], 2);
    p.start(LocalTime(0));
    let out = p.drain();
    let ready: Vec<_> = bodies(&out)
        .into_iter()
        .filter(|(_, m)| m.kind() == MessageKind::ReadyToProvide)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        ready,
        (0..4).map(v).collect::<Vec<_>>(),
        "to every validator"
    );
    assert_eq!(
        kinds(&out)
            .iter()
            .filter(|k| **k == MessageKind::Subscribe)
            .count(),
        4
    );
    let hb = p.poll_timeout().unwrap();
    assert_eq!(hb, LocalTime(60_000_000), "heartbeat every 60 s");
    p.handle_timeout(LocalTime(59_000_000));
    assert!(p.drain().is_empty(), "early wake-ups do nothing");
    p.handle_timeout(hb);
    let out = p.drain();
    assert_eq!(kinds(&out), vec![MessageKind::StillActive; 4]);
}

#[test]
fn partner_responds_only_to_matching_jobs() {
    let mut p = partner(4, &[UtilityKind::Storage], 2);
    p.start(LocalTime(0));
    p.drain();
    p.handle_verified(
        LocalTime(1),
        &notification(0, job(1), UtilityKind::Computation, 4, 2),
    )
    .unwrap();
    assert!(p.drain().is_empty(), "a kind it does not offer");
    p.handle_verified(
        LocalTime(1),
        &notification(0, job(2), UtilityKind::Storage, 4, 2),
    )
    .unwrap();
    assert_eq!(kinds(&p.drain()), vec![MessageKind::JobResponse; 4]);
    // Notifications only from its validators.
    assert_eq!(
        p.handle_verified(
            LocalTime(1),
            &notification(40, job(3), UtilityKind::Storage, 4, 2)
        ),
        Err(PartnerError::NotAValidator(v(40)))
    );
}

#[test]
fn partner_at_capacity_takes_no_jobs_and_says_so_once_per_cooldown() {
    let mut p = partner(4, &[UtilityKind::Storage], 1);
    p.start(LocalTime(0));
    p.handle_verified(
        LocalTime(1),
        &notification(0, job(1), UtilityKind::Storage, 4, 2),
    )
    .unwrap();
    p.handle_verified(LocalTime(1), &details(0, job(1)))
        .unwrap();
    p.drain();
    // The client's first chunk starts the utility: capacity 1 is full.
    let chunk = undchain_types::msg::SessionMessage {
        job: job(1),
        body: undchain_types::msg::SessionBody::Chunk {
            root: Hash32([5; 32]),
            index: 0,
            count: 2,
            size: 20_000,
            bytes: undchain_types::BoundedBytes::try_from_vec(vec![0; 16 * 1024]).unwrap(),
        },
    };
    p.handle_verified(LocalTime(2), &signed(CLIENT, chunk))
        .unwrap();
    let out = p.drain();
    assert!(kinds(&out).contains(&MessageKind::UtilityStarted));
    assert_eq!(
        kinds(&out)
            .iter()
            .filter(|k| **k == MessageKind::AtCapacity)
            .count(),
        4
    );
    // At capacity: a matching job gets no response.
    p.handle_verified(
        LocalTime(3),
        &notification(0, job(2), UtilityKind::Storage, 4, 2),
    )
    .unwrap();
    assert!(!kinds(&p.drain()).contains(&MessageKind::JobResponse));
    assert_eq!(p.running(), 1);
    // The client vanishes: the session ends, room again.
    p.client_gone(LocalTime(4), job(1)).unwrap();
    let ev = events(&p.drain());
    assert!(ev.contains(&UserEvent::NothingProven { job: job(1) }));
    p.handle_verified(
        LocalTime(5),
        &notification(0, job(3), UtilityKind::Storage, 4, 2),
    )
    .unwrap();
    p.handle_verified(LocalTime(5), &details(0, job(3)))
        .unwrap();
    assert!(kinds(&p.drain()).contains(&MessageKind::JobResponse));
    let chunk3 = undchain_types::msg::SessionMessage {
        job: job(3),
        body: undchain_types::msg::SessionBody::Chunk {
            root: Hash32([6; 32]),
            index: 0,
            count: 2,
            size: 20_000,
            bytes: undchain_types::BoundedBytes::try_from_vec(vec![0; 16 * 1024]).unwrap(),
        },
    };
    // Full again within the 30 s cooldown: no second at-capacity.
    p.handle_verified(LocalTime(6), &signed(CLIENT, chunk3.clone()))
        .unwrap();
    assert!(!kinds(&p.drain()).contains(&MessageKind::AtCapacity));
    p.client_gone(LocalTime(7), job(3)).unwrap();
    p.handle_verified(
        LocalTime(30_000_010),
        &notification(0, job(4), UtilityKind::Storage, 4, 2),
    )
    .unwrap();
    p.handle_verified(LocalTime(30_000_010), &details(0, job(4)))
        .unwrap();
    let mut c4 = chunk3;
    c4.job = job(4);
    if let undchain_types::msg::SessionBody::Chunk { root, .. } = &mut c4.body {
        *root = Hash32([7; 32]);
    }
    p.handle_verified(LocalTime(30_000_020), &signed(CLIENT, c4))
        .unwrap();
    assert!(
        kinds(&p.drain()).contains(&MessageKind::AtCapacity),
        "after the cooldown it may say so again"
    );
}

#[test]
fn partner_sign_off_stops_work_and_heartbeats() {
    let mut p = partner(4, &[UtilityKind::Storage], 2);
    p.start(LocalTime(0));
    p.drain();
    p.sign_off(LocalTime(1), "power failure");
    assert_eq!(kinds(&p.drain()), vec![MessageKind::SignOff; 4]);
    assert_eq!(p.poll_timeout(), None, "no more heartbeats");
    p.handle_verified(
        LocalTime(2),
        &notification(0, job(1), UtilityKind::Storage, 4, 2),
    )
    .unwrap();
    assert!(p.drain().is_empty(), "no new work after sign-off");
}

#[test]
fn low_perception_partner_stops_responding() {
    let mut p = partner(4, &[UtilityKind::Storage], 2);
    p.start(LocalTime(0));
    p.drain();
    let low = LowPerception {
        role: Role::Partner,
        score: PerceptionScore::new(150).unwrap(),
        floor: PerceptionScore::new(200).unwrap(),
    };
    p.handle_verified(LocalTime(1), &signed(1, low)).unwrap();
    assert!(events(&p.drain()).contains(&UserEvent::LowPerception {
        role: Role::Partner
    }));
    p.handle_verified(
        LocalTime(2),
        &notification(0, job(1), UtilityKind::Storage, 4, 2),
    )
    .unwrap();
    assert!(p.drain().is_empty());
}

#[test]
fn censored_partner_complains_with_evidence_to_the_chain_owner() {
    let mut p = partner(4, &[UtilityKind::Storage], 2);
    p.start(LocalTime(0));
    p.handle_verified(
        LocalTime(1),
        &notification(0, job(1), UtilityKind::Storage, 4, 7),
    )
    .unwrap();
    let out = p.drain();
    let digest = *sent_to(&out, &v(0))
        .into_iter()
        .find(|e| e.body().kind() == MessageKind::JobResponse)
        .unwrap()
        .digest();
    // Nobody answers the response; the partner asks why it gets no work.
    p.ask_for_work(LocalTime(5_000_000));
    assert_eq!(kinds(&p.drain()), vec![MessageKind::WorkRequest; 4]);
    let status = WorkStatus {
        reason: WorkStatusReason::Available { open_jobs: 1 },
    };
    p.handle_verified(LocalTime(5_000_001), &signed(2, status))
        .unwrap();
    let out = p.drain();
    let asked = bodies(&out);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].0, v(2));
    assert!(matches!(&asked[0].1, Message::JobFileRequest(r) if r.block == BlockNumber(7)));
    // The job file shows the job existed.
    let mut entry = undchain_types::job::JobEntry {
        id: job(1),
        initiated_at: undchain_types::BlockTime(0),
        kind: UtilityKind::Storage,
        client_pool: BoundedVec::try_from_vec(vec![v(CLIENT)]).unwrap(),
        partner_pool: BoundedVec::default(),
        fee: undchain_types::TokenAmount(10),
        state: undchain_types::job::JobState::Requested,
    };
    entry.initiated_at = undchain_types::BlockTime(1);
    let reply = JobFileReply {
        block: BlockNumber(7),
        closed: true,
        total: 1,
        root: Hash32::ZERO,
        entries: BoundedVec::try_from_vec(vec![entry]).unwrap(),
        next: None,
    };
    p.handle_verified(LocalTime(5_000_002), &signed(2, reply))
        .unwrap();
    let out = p.drain();
    let complaints: Vec<_> = bodies(&out)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::CensorshipComplaint(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(
        complaints.len(),
        4,
        "through every validator, recorded on chain"
    );
    let c = &complaints[0];
    assert_eq!(c.chain_owner, v(OWNER));
    let mut all: Vec<_> = (0..4).map(v).collect();
    all.sort();
    assert_eq!(
        c.accused.as_slice(),
        all.as_slice(),
        "every validator its response went to"
    );
    assert_eq!(c.evidence.len(), 1);
    assert_eq!(c.evidence.as_slice()[0].response_digest, digest);
    assert_eq!(c.evidence.as_slice()[0].block, BlockNumber(7));
}

#[test]
fn no_complaint_when_no_demand() {
    let mut p = partner(4, &[UtilityKind::Storage], 2);
    p.start(LocalTime(0));
    p.handle_verified(
        LocalTime(1),
        &notification(0, job(1), UtilityKind::Storage, 4, 7),
    )
    .unwrap();
    p.drain();
    let status = WorkStatus {
        reason: WorkStatusReason::NoDemand,
    };
    p.handle_verified(LocalTime(5_000_001), &signed(2, status))
        .unwrap();
    assert!(p.drain().is_empty(), "no demand: nothing to complain about");
}

#[test]
fn partner_reports_bad_connection_details() {
    let mut p = partner(4, &[UtilityKind::Storage], 2);
    p.start(LocalTime(0));
    p.handle_verified(
        LocalTime(1),
        &notification(0, job(1), UtilityKind::Storage, 4, 7),
    )
    .unwrap();
    p.handle_verified(LocalTime(1), &details(3, job(1)))
        .unwrap();
    p.drain();
    p.report_connection(
        LocalTime(2),
        job(1),
        ep(7500),
        ConnectionProblem::KeyMismatch { observed: v(44) },
    )
    .unwrap();
    let out = p.drain();
    let reports: Vec<_> = bodies(&out)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::ConnectionReport(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(reports.len(), 4);
    assert!(
        reports
            .iter()
            .all(|r| r.relayed_by == v(3) && r.details.peer == v(CLIENT))
    );
    assert!(events(&out).contains(&UserEvent::ConnectionReported {
        job: job(1),
        relayed_by: v(3)
    }));
}
