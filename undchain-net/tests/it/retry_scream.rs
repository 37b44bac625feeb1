//! Retries and scream cast, driven through [`Outreach`] with a virtual clock
//! (issue 7: "[retry]: a dead validator gets exactly 4 attempts then the
//! [scream] cast order; a live one after 2 failures stops retrying").

use crate::support::*;
use undchain_net::{
    AttemptId, Outreach, OutreachAction, OutreachError, OutreachInputError, Payload, RetryPolicy,
    ScreamCast, ScreamError,
};
use undchain_sim::node_key;
use undchain_types::msg::Endpoint;
use undchain_types::{BlockTime, ChainId, ChainParams, LocalTime, MessageKind, PublicKey};

/// One `Send` the outreach asked for, and when.
struct Sent {
    id: AttemptId,
    validator: PublicKey,
    endpoint: Endpoint,
    payload: Payload,
    deadline: LocalTime,
    at: LocalTime,
}

/// Collects the `Send`s among `actions`, asked for at `now`.
fn sends(actions: &[OutreachAction], now: LocalTime, into: &mut Vec<Sent>) {
    for a in actions {
        if let OutreachAction::Send {
            id,
            to,
            endpoint,
            msg,
            deadline,
        } = a
        {
            into.push(Sent {
                id: *id,
                validator: *to,
                endpoint: endpoint.clone(),
                payload: msg.clone(),
                deadline: *deadline,
                at: now,
            });
        }
    }
}

#[test]
fn retry_dead_validator_gets_exactly_four_attempts_then_scream_cast_order() {
    let mut book = book();
    let params = ChainParams::new(ChainId(1), pk(99), BlockTime(0));
    let policy = RetryPolicy::from_params(&params);
    assert_eq!((policy.attempts, policy.timeout_us), (4, 6_000_000));
    let mut o = Outreach::new(pk(1), &book, policy, 0xfeed, hello(9)).unwrap();
    let mut sent = Vec::new();
    let mut all = Vec::new();
    let mut now = LocalTime::ZERO;
    let a = o.start(now).unwrap();
    sends(&a, now, &mut sent);
    all.extend(a);
    // Nobody ever answers: only timers move it on.
    while let Some(t) = o.poll_timeout() {
        assert!(t >= now, "timers never go back");
        now = t;
        let a = o.handle_timeout(now, &mut book);
        sends(&a, now, &mut sent);
        all.extend(a);
        if all
            .iter()
            .any(|x| matches!(x, OutreachAction::ScreamCastStarted { .. }))
        {
            break;
        }
    }
    let retries: Vec<&Sent> = sent
        .iter()
        .filter(|s| matches!(s.id, AttemptId::Retry(_)))
        .collect();
    assert_eq!(retries.len(), 4, "exactly 4 attempts to the dead validator");
    for (i, s) in retries.iter().enumerate() {
        assert_eq!(s.id, AttemptId::Retry(i as u8 + 1));
        assert_eq!(s.validator, pk(1));
        assert_eq!(s.payload, Payload::Message);
        assert_eq!(s.deadline.since(s.at), 6_000_000, "6 s timeout each");
    }
    // Attempts alternate over alpha's media, best latency first.
    assert_eq!(retries[0].endpoint.address.as_str(), "127.0.0.1:7101");
    assert_eq!(retries[1].endpoint.address.as_str(), "127.0.0.1:7201");
    assert_eq!(retries[2].endpoint.address.as_str(), "127.0.0.1:7101");
    // Backoff between attempts: after the timeout, 250 ms doubling, +<=50% jitter.
    for (i, w) in retries.windows(2).enumerate() {
        let gap = w[1].at.since(w[0].deadline);
        let base = 250_000u64 << i;
        assert!(
            gap >= base && gap <= base + base / 2,
            "gap {gap} after attempt {}",
            i + 1
        );
    }
    // The fourth timeout starts the scream cast: every medium of every
    // validator of the bootstrap list and the validator set, by latency.
    let started = all
        .iter()
        .find_map(|x| match x {
            OutreachAction::ScreamCastStarted { targets } => Some(*targets),
            _ => None,
        })
        .unwrap();
    let order: Vec<(PublicKey, String)> = o
        .scream_order()
        .unwrap()
        .iter()
        .map(|t| (t.validator, t.endpoint.address.as_str().to_owned()))
        .collect();
    let order_ref: Vec<(PublicKey, &str)> = order.iter().map(|(v, a)| (*v, a.as_str())).collect();
    assert_eq!(
        order_ref,
        vec![
            (pk(3), "127.0.0.1:7103"), // 5 ms
            (pk(1), "127.0.0.1:7101"), // 10 ms
            (pk(2), "127.0.0.1:7102"), // 20 ms
            (pk(1), "127.0.0.1:7201"), // 40 ms
            (pk(3), "127.0.0.1:7303"), // 60 ms
            (pk(4), "127.0.0.1:7104"), // only in the validator set: 250 ms default
        ]
    );
    assert_eq!(started, 6);
    // Drive the cast to the end: every address is tried once, in that order,
    // each carrying only the signed hello.
    while let Some(t) = o.poll_timeout() {
        now = t;
        let a = o.handle_timeout(now, &mut book);
        sends(&a, now, &mut sent);
        all.extend(a);
    }
    let screamed: Vec<(PublicKey, String)> = sent
        .iter()
        .filter(|s| matches!(s.id, AttemptId::Scream(_)))
        .map(|s| {
            assert!(
                matches!(&s.payload, Payload::Hello(h) if h.envelope().kind == MessageKind::Hello)
            );
            (s.validator, s.endpoint.address.as_str().to_owned())
        })
        .collect();
    assert_eq!(screamed, order);
    assert_eq!(
        all.last(),
        Some(&OutreachAction::GaveUp {
            attempts: 4,
            screamed: 6
        })
    );
    assert!(o.is_done());
    // Every failure was recorded: alpha's media lost reliability.
    let alpha = book.get(&pk(1)).unwrap();
    assert_eq!(alpha.media[0].failures, 3); // attempts 1, 3 and its scream try
    assert_eq!(alpha.media[1].failures, 3); // attempts 2, 4 and its scream try
    assert!(alpha.best_reliability_permille() < 900);
}

#[test]
fn retry_live_validator_after_two_failures_stops_retrying() {
    let mut book = book();
    let mut o = Outreach::new(pk(2), &book, RetryPolicy::default(), 7, hello(9)).unwrap();
    let mut sent = Vec::new();
    let a = o.start(at(0)).unwrap();
    sends(&a, at(0), &mut sent);
    // Attempt 1 is refused at once.
    assert!(
        o.handle_failure(AttemptId::Retry(1), at(1_000), &mut book)
            .unwrap()
            .is_empty()
    );
    let t = o.poll_timeout().unwrap();
    let a = o.handle_timeout(t, &mut book);
    sends(&a, t, &mut sent);
    // Attempt 2 times out.
    let t2 = o.poll_timeout().unwrap();
    assert_eq!(t2, t.plus(6_000_000));
    assert!(o.handle_timeout(t2, &mut book).is_empty());
    let t3 = o.poll_timeout().unwrap();
    let a = o.handle_timeout(t3, &mut book);
    sends(&a, t3, &mut sent);
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2].id, AttemptId::Retry(3));
    // Attempt 3 answers after 4 ms.
    let done = o
        .handle_success(AttemptId::Retry(3), t3.plus(4_000), &mut book)
        .unwrap();
    assert_eq!(
        done,
        vec![OutreachAction::Reached {
            id: AttemptId::Retry(3),
            validator: pk(2),
            endpoint: quic("127.0.0.1:7102"),
        }]
    );
    // No more retries, ever.
    assert!(o.is_done());
    assert_eq!(o.poll_timeout(), None);
    assert!(o.handle_timeout(t3.plus(60_000_000), &mut book).is_empty());
    assert_eq!(
        o.handle_failure(AttemptId::Retry(3), t3.plus(1), &mut book),
        Err(OutreachInputError::Finished {
            id: AttemptId::Retry(3)
        })
    );
    let beta = &book.get(&pk(2)).unwrap().media[0];
    assert_eq!((beta.failures, beta.successes, beta.samples), (2, 1, 1));
    assert_eq!(beta.latency_us, 4_000);
}

#[test]
fn scream_cast_stops_at_the_first_validator_that_answers() {
    let mut book = book();
    let policy = RetryPolicy {
        attempts: 1,
        scream_width: 2,
        ..RetryPolicy::default()
    };
    let mut o = Outreach::new(pk(1), &book, policy, 1, hello(9)).unwrap();
    o.start(at(0)).unwrap();
    let a = o.handle_timeout(at(6_000_000), &mut book);
    let mut sent = Vec::new();
    sends(&a, at(6_000_000), &mut sent);
    // Width 2: the two lowest-latency addresses are tried at once.
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].validator, pk(3));
    assert_eq!(sent[1].validator, pk(1));
    // gamma refuses; the next address (beta) starts.
    let a = o
        .handle_failure(sent[0].id, at(6_001_000), &mut book)
        .unwrap();
    sends(&a, at(6_001_000), &mut sent);
    assert_eq!(sent[2].validator, pk(2));
    // beta answers the hello: reached, cast over.
    let a = o
        .handle_success(sent[2].id, at(6_003_000), &mut book)
        .unwrap();
    assert_eq!(
        a,
        vec![OutreachAction::Reached {
            id: sent[2].id,
            validator: pk(2),
            endpoint: quic("127.0.0.1:7102"),
        }]
    );
    assert!(o.is_done());
}

#[test]
fn scream_cast_refuses_anything_but_a_hello() {
    let k = node_key(9);
    let not_hello = undchain_types::Envelope::new(
        k.public(),
        ChainId(1),
        2,
        BlockTime(0),
        undchain_types::msg::TimeProbe { nonce: 1, t1: 0 },
    )
    .sign(&k);
    assert_eq!(
        ScreamCast::new(not_hello.clone(), Vec::new(), 1, 1).err(),
        Some(ScreamError::NotAHello {
            kind: MessageKind::TimeProbe
        })
    );
    let book = book();
    assert!(matches!(
        Outreach::new(pk(1), &book, RetryPolicy::default(), 0, not_hello),
        Err(OutreachError::Scream(ScreamError::NotAHello { .. }))
    ));
    assert_eq!(
        Outreach::new(pk(50), &book, RetryPolicy::default(), 0, hello(9)).err(),
        Some(OutreachError::UnknownTarget(pk(50)))
    );
}

#[test]
fn retry_jitter_replays_from_the_seed() {
    let run = |seed: u64| {
        let mut book = book();
        let mut o = Outreach::new(pk(1), &book, RetryPolicy::default(), seed, hello(9)).unwrap();
        o.start(at(0)).unwrap();
        let mut times = Vec::new();
        while let Some(t) = o.poll_timeout() {
            times.push(t);
            o.handle_timeout(t, &mut book);
        }
        times
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}
