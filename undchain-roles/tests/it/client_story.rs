//! The client story (design notes, "Client to Validator"; DESIGN.md
//! "Client to validator"), one scenario per step and per "what could go
//! wrong", driven through the `Client` machine alone.

use crate::users::*;
use undchain_jobfile::{ClosedFile, JobFile};
use undchain_roles::client::{ClientError, UserEvent, UserOutput};
use undchain_roles::validator::entry_of;
use undchain_types::msg::{ConnectionProblem, Hello, PartnerOffer};
use undchain_types::{
    BlockNumber, LocalTime, Message, MessageKind, PerceptionScore, Role, TokenAmount, UtilityKind,
};

#[test]
fn client_sends_request_to_the_lowest_latency_validators() {
    let mut c = client(7);
    let job = c
        .request(LocalTime(0), request(UtilityKind::Storage, 8, 1, 0))
        .unwrap();
    let out = c.drain();
    let to: Vec<_> = bodies(&out)
        .into_iter()
        .filter(|(_, m)| m.kind() == MessageKind::UtilityRequest)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        to,
        vec![v(0), v(1), v(2)],
        "the ack fan-out (3) lowest-latency validators"
    );
    c.handle_verified(LocalTime(10), &ack(1, job, 4, 7))
        .unwrap();
    let ev = events(&c.drain());
    assert!(ev.contains(&UserEvent::Acked {
        job,
        validator: v(1),
        block: BlockNumber(4),
        acks: 1
    }));
}

#[test]
fn client_retries_then_scream_casts() {
    let mut p = params();
    p.ack_fanout = 1;
    let mut c = client_with(4, p);
    let job = c
        .request(LocalTime(0), request(UtilityKind::Storage, 8, 1, 0))
        .unwrap();
    let mut out = c.drain();
    // Validator 0 never answers: only timers move the client on.
    let mut now = LocalTime(0);
    while !events(&out)
        .iter()
        .any(|e| matches!(e, UserEvent::ScreamCast { .. }))
    {
        now = c.poll_timeout().expect("the outreach keeps a timer");
        c.handle_timeout(now);
        out.extend(c.drain());
    }
    let attempts = sent_to(&out, &v(0))
        .iter()
        .filter(|e| e.body().kind() == MessageKind::UtilityRequest)
        .count();
    assert_eq!(attempts, 4, "4 attempts before the scream cast");
    assert!(now.0 >= 4 * 6_000_000, "each attempt waits its 6 s timeout");
    let hellos: Vec<_> = bodies(&out)
        .into_iter()
        .filter(|(_, m)| {
            matches!(
                m,
                Message::Hello(Hello {
                    role: Role::Client,
                    ..
                })
            )
        })
        .collect();
    assert!(
        !hellos.is_empty(),
        "the scream cast carries the signed hello only"
    );
    // Another validator answers the hello: the request goes to it.
    let answerer = (1..4)
        .find(|i| hellos.iter().any(|(t, _)| *t == v(*i)))
        .expect("the scream cast tries the other validators");
    c.handle_verified(
        now,
        &signed(
            answerer,
            Hello {
                role: Role::Validator,
                nonce: 1,
            },
        ),
    )
    .unwrap();
    let out = c.drain();
    assert!(
        sent_to(&out, &v(answerer))
            .iter()
            .any(|e| matches!(e.body(), Message::UtilityRequest(_))),
        "the validator that answered the scream cast gets the request"
    );
    c.handle_verified(now, &ack(answerer, job, 9, 4)).unwrap();
    assert_eq!(c.acks(&job), 1);
}

#[test]
fn client_forwards_when_fewer_than_f_plus_one_acks() {
    // n = 7: f = 2, so 3 acks are needed.
    let mut c = client(7);
    let job = c
        .request(LocalTime(0), request(UtilityKind::Storage, 8, 1, 0))
        .unwrap();
    c.drain();
    c.handle_verified(LocalTime(100), &ack(0, job, 3, 7))
        .unwrap();
    c.handle_verified(LocalTime(200), &ack(1, job, 3, 7))
        .unwrap();
    assert!(
        !events(&c.drain())
            .iter()
            .any(|e| matches!(e, UserEvent::Forwarded { .. }))
    );
    // One retry timeout after the first ack, still 2 acks.
    c.handle_timeout(LocalTime(100 + 6_000_000));
    let out = c.drain();
    let fwd: Vec<_> = bodies(&out)
        .into_iter()
        .filter(|(_, m)| m.kind() == MessageKind::ForwardedRequest)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        fwd,
        (2..7).map(v).collect::<Vec<_>>(),
        "to the listed validators that did not ack"
    );
    // The forward carries the original signed request.
    let inner = bodies(&out)
        .into_iter()
        .find_map(|(_, m)| match m {
            Message::ForwardedRequest(f) => Some(f.original),
            _ => None,
        })
        .unwrap();
    let env = undchain_types::SignedEnvelope::from_bytes(inner.as_bytes(), 1 << 20).unwrap();
    assert_eq!(
        undchain_types::JobId::from_request_digest(env.digest()),
        job
    );
}

#[test]
fn client_does_not_forward_with_f_plus_one_acks() {
    let mut c = client(7);
    let job = c
        .request(LocalTime(0), request(UtilityKind::Storage, 8, 1, 0))
        .unwrap();
    c.drain();
    for i in 0..3 {
        c.handle_verified(LocalTime(100), &ack(i, job, 3, 7))
            .unwrap();
    }
    c.handle_timeout(LocalTime(100 + 6_000_000));
    let out = c.drain();
    assert!(
        !bodies(&out)
            .iter()
            .any(|(_, m)| m.kind() == MessageKind::ForwardedRequest),
        "f+1 acks: an honest validator has it"
    );
}

#[test]
fn client_checks_the_inclusion_proof_of_a_moved_job() {
    let mut c = client(4);
    let job = c
        .request(LocalTime(0), request(UtilityKind::Storage, 8, 1, 0))
        .unwrap();
    let out = c.drain();
    let env = sent_to(&out, &v(0))
        .into_iter()
        .find(|e| e.body().kind() == MessageKind::UtilityRequest)
        .unwrap();
    c.handle_verified(LocalTime(1), &ack(0, job, 3, 4)).unwrap();
    let mut file = JobFile::new();
    file.insert(entry_of(&env, params().transaction_fee).unwrap())
        .unwrap();
    let closed = ClosedFile::new(BlockNumber(4), file);
    let notice = closed.inclusion_notice(&job).unwrap();
    let mut forged = notice.clone();
    forged.job_root = undchain_types::Hash32([1; 32]);
    assert_eq!(
        c.handle_verified(LocalTime(2), &signed(0, forged)),
        Err(ClientError::BadInclusion(job))
    );
    assert_eq!(c.committed(&job), None, "a refused proof changes nothing");
    c.handle_verified(LocalTime(2), &signed(0, notice)).unwrap();
    assert_eq!(c.committed(&job), Some(BlockNumber(4)));
}

#[test]
fn offers_stream_until_threshold_and_respect_min_score() {
    let mut c = client(4);
    let job = c
        .request(LocalTime(0), request(UtilityKind::Storage, 8, 2, 400))
        .unwrap();
    c.handle_verified(LocalTime(1), &ack(0, job, 3, 4)).unwrap();
    c.drain();
    let offers = [
        (70, 300, 2),
        (71, 500, 2),
        (72, 900, 9),
        (73, 600, 3),
        (74, 800, 1),
    ];
    for (i, (p, score, price)) in offers.iter().enumerate() {
        let o = offer(0, job, v(*p), *score, *price, i as u16);
        c.handle_verified(LocalTime(2), &o).unwrap();
    }
    let mut want = vec![v(71), v(73)];
    want.sort();
    assert_eq!(c.partners(&job), want);
    let declined: Vec<_> = events(&c.drain())
        .into_iter()
        .filter_map(|e| match e {
            UserEvent::OfferDeclined {
                partner, reason, ..
            } => Some((partner, format!("{reason:?}"))),
            _ => None,
        })
        .collect();
    assert_eq!(
        declined,
        vec![
            (v(70), "BelowMinScore".to_string()),
            (v(72), "OverPrice".to_string()),
            (v(74), "ThresholdReached".to_string()),
        ]
    );
}

#[test]
fn threshold_is_capped_by_the_chain() {
    let mut p = params();
    p.partner_list_cap = 1;
    let mut c = client_with(4, p);
    let job = c
        .request(LocalTime(0), request(UtilityKind::Storage, 8, 5, 0))
        .unwrap();
    c.handle_verified(LocalTime(1), &ack(0, job, 3, 4)).unwrap();
    for i in 0..3 {
        c.handle_verified(LocalTime(2), &offer(0, job, v(70 + i), 500, 1, i as u16))
            .unwrap();
    }
    assert_eq!(c.partners(&job).len(), 1);
}

#[test]
fn centralised_partner_offer_connects_directly_without_storing_the_address() {
    let mut c = client(4);
    let job = c
        .request(LocalTime(0), request(UtilityKind::Access, 8, 1, 0))
        .unwrap();
    c.handle_verified(LocalTime(1), &ack(0, job, 3, 4)).unwrap();
    c.drain();
    let o = PartnerOffer {
        job,
        partner: v(80),
        score: PerceptionScore::START,
        price_per_unit: TokenAmount(1),
        preferred: Some(ep(9000)),
        index: 0,
        last: true,
    };
    c.handle_verified(LocalTime(2), &signed(0, o)).unwrap();
    let out = c.drain();
    assert!(out.contains(&UserOutput::Connect {
        job,
        peer: v(80),
        endpoint: ep(9000)
    }));
    // The client kept no address: a report must be handed the endpoint.
    c.report_connection(
        LocalTime(3),
        job,
        v(80),
        ep(9000),
        ConnectionProblem::Unreachable,
    )
    .unwrap();
    let out = c.drain();
    let reports: Vec<_> = bodies(&out)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::ConnectionReport(r) => Some(r),
            _ => None,
        })
        .collect();
    assert!(!reports.is_empty());
    assert!(
        reports
            .iter()
            .all(|r| r.relayed_by == v(0) && r.details.peer == v(80))
    );
}

#[test]
fn offers_from_strangers_are_refused_and_change_nothing() {
    let mut c = client(4);
    let job = c
        .request(LocalTime(0), request(UtilityKind::Storage, 8, 2, 0))
        .unwrap();
    c.handle_verified(LocalTime(1), &ack(0, job, 3, 4)).unwrap();
    let stranger = 42;
    assert_eq!(
        c.handle_verified(LocalTime(2), &offer(stranger, job, v(70), 900, 1, 0)),
        Err(ClientError::NotAValidator(v(stranger)))
    );
    assert!(c.partners(&job).is_empty());
}

#[test]
fn client_forwards_again_while_the_forwards_draw_too_few_acks() {
    // n = 7: f = 2. One ack, then the forwards (or their acks) are lost:
    // the client forwards again every retry timeout, at most
    // MAX_FORWARDS times, and stops once f+1 acks came. (Campaign seed
    // 1897: the one validator that acked was cut off by a clock jump and
    // the only forward was lost, so the job waited on it alone.)
    let forwards = |out: &[UserOutput]| {
        bodies(out)
            .into_iter()
            .filter(|(_, m)| m.kind() == MessageKind::ForwardedRequest)
            .count()
    };
    let mut c = client(7);
    let job = c
        .request(LocalTime(0), request(UtilityKind::Storage, 8, 1, 0))
        .unwrap();
    c.drain();
    c.handle_verified(LocalTime(100), &ack(0, job, 3, 7))
        .unwrap();
    let retry = 6_000_000;
    let mut t = 100;
    for k in 0..undchain_roles::client::MAX_FORWARDS as i64 {
        t += retry;
        // Early: nothing more goes out.
        c.handle_timeout(LocalTime(t - 1));
        assert_eq!(forwards(&c.drain()), 0, "forward {k} went early");
        assert!(
            c.poll_timeout().is_some_and(|p| p <= LocalTime(t)),
            "forward {k}"
        );
        c.handle_timeout(LocalTime(t));
        assert_eq!(
            forwards(&c.drain()),
            6,
            "forward {k} to the six that did not ack"
        );
    }
    c.handle_timeout(LocalTime(t + retry));
    assert_eq!(forwards(&c.drain()), 0, "no more than MAX_FORWARDS");

    // With f+1 acks after the first forward, no second one.
    let mut c = client(7);
    let job = c
        .request(LocalTime(0), request(UtilityKind::Storage, 8, 1, 0))
        .unwrap();
    c.drain();
    c.handle_verified(LocalTime(100), &ack(0, job, 3, 7))
        .unwrap();
    c.handle_timeout(LocalTime(100 + retry));
    assert_eq!(forwards(&c.drain()), 6);
    for i in 1..3 {
        c.handle_verified(LocalTime(200 + retry), &ack(i, job, 3, 7))
            .unwrap();
    }
    c.handle_timeout(LocalTime(100 + 2 * retry));
    assert_eq!(
        forwards(&c.drain()),
        0,
        "f+1 acks: an honest validator has it"
    );
}
