//! Request correlation, bounded queues, rate limits, cooldowns, heartbeats.

use crate::support::*;
use undchain_net::{
    CapacityCooldown, CorrelateError, Correlation, CorrelationKey, Correlator, Liveness,
    OutboundQueues, QueueError, QueueLimits, RateLimit, RateLimiter, correlation,
};
use undchain_sim::node_key;
use undchain_types::msg::{RequestAck, TimeProbe, UtilityRequest};
use undchain_types::{
    BlockNumber, BlockTime, ChainId, ChainParams, Envelope, JobId, Message, PayoutPeriod,
    PerceptionScore, SignedEnvelope, TokenAmount, UtilityKind,
};

/// `body` signed by test node `from` with sequence number `seq`.
fn signed(from: usize, seq: u64, body: impl Into<Message>) -> SignedEnvelope {
    let k = node_key(from);
    Envelope::new(k.public(), ChainId(1), seq, BlockTime(0), body).sign(&k)
}

#[test]
fn correlation_pairs_requests_with_their_replies() {
    let req = signed(
        7,
        1,
        UtilityRequest {
            kind: UtilityKind::Storage,
            units: 1,
            max_price_per_unit: TokenAmount(1),
            min_partner_score: PerceptionScore::new(300).unwrap(),
            partner_threshold: 4,
            co_clients: Default::default(),
            spec: Default::default(),
        },
    );
    let job = JobId::from_request_digest(req.digest());
    let ack = signed(
        1,
        1,
        RequestAck {
            job,
            block: BlockNumber(3),
            period: PayoutPeriod(0),
            active: Default::default(),
        },
    );
    let probe = signed(7, 2, TimeProbe { nonce: 9, t1: 0 });
    // Each envelope and the correlation it must have.
    let table = [
        (
            "request",
            req,
            Some(Correlation::Request(CorrelationKey::UtilityRequest(job))),
        ),
        (
            "its ack",
            ack,
            Some(Correlation::Reply(CorrelationKey::UtilityRequest(job))),
        ),
        (
            "time probe",
            probe,
            Some(Correlation::Request(CorrelationKey::TimeProbe(9))),
        ),
        ("hello", hello(1), None),
    ];
    for (what, env, want) in table {
        assert_eq!(correlation(&env), want, "{what}");
    }
}

#[test]
fn correlator_resolves_replies_and_expires_the_rest() {
    let mut c = Correlator::new(2, 3);
    let k1 = CorrelationKey::TimeProbe(1);
    let k2 = CorrelationKey::TimeProbe(2);
    c.register(pk(1), k1, at(100), 1_000).unwrap();
    assert_eq!(
        c.register(pk(1), k1, at(100), 1_000),
        Err(CorrelateError::Duplicate {
            peer: pk(1),
            key: k1
        })
    );
    c.register(pk(1), k2, at(200), 5_000).unwrap();
    assert_eq!(
        c.register(pk(1), CorrelationKey::TimeProbe(3), at(200), 1),
        Err(CorrelateError::PeerFull {
            peer: pk(1),
            cap: 2
        })
    );
    c.register(pk(2), k1, at(300), 1_000).unwrap();
    assert_eq!(
        c.register(pk(3), k1, at(300), 1),
        Err(CorrelateError::Full { cap: 3 })
    );
    // The reply to pk(2)'s probe: round trip 450 us.
    assert_eq!(c.resolve(&pk(2), k1, at(750)).map(|r| r.rtt_us), Some(450));
    // A reply nobody asked for is not matched.
    assert_eq!(c.resolve(&pk(2), k1, at(760)), None);
    assert_eq!(c.poll_timeout(), Some(at(1_100)));
    let gone = c.handle_timeout(at(1_100));
    assert_eq!(gone.len(), 1);
    assert_eq!((gone[0].peer, gone[0].key), (pk(1), k1));
    // Late reply after expiry: unmatched.
    assert_eq!(c.resolve(&pk(1), k1, at(1_200)), None);
    assert_eq!(c.drop_peer(&pk(1)), vec![k2]);
    assert!(c.is_empty());
}

#[test]
fn outbound_queues_are_bounded_per_peer_and_in_total() {
    let mut q = OutboundQueues::new(QueueLimits {
        per_peer_items: 2,
        per_peer_bytes: 100,
        total_bytes: 150,
    });
    q.push(pk(1), "a", 40).unwrap();
    q.push(pk(1), "b", 40).unwrap();
    assert_eq!(
        q.push(pk(1), "c", 1),
        Err(QueueError::PeerItems {
            peer: pk(1),
            cap: 2
        })
    );
    assert_eq!(
        q.push(pk(2), "x", 101),
        Err(QueueError::PeerBytes {
            peer: pk(2),
            would: 101,
            cap: 100
        })
    );
    q.push(pk(2), "y", 70).unwrap();
    assert_eq!(
        q.push(pk(3), "z", 1),
        Err(QueueError::TotalBytes {
            would: 151,
            cap: 150
        })
    );
    assert_eq!(q.pop(&pk(1)), Some("a"));
    assert_eq!(q.total_bytes(), 110);
    assert_eq!(q.drop_peer(&pk(2)), vec!["y"]);
    assert_eq!(q.total_bytes(), 40);
    assert_eq!(q.len(&pk(1)), 1);
}

#[test]
fn rate_limiter_refills_with_time_and_bounds_its_memory() {
    let mut r = RateLimiter::new(RateLimit {
        burst: 3,
        per_second: 2,
        max_peers: 2,
    });
    for _ in 0..3 {
        r.check(&pk(1), at(0), 1).unwrap();
    }
    let e = r.check(&pk(1), at(0), 1).unwrap_err();
    assert_eq!(e.retry_after_us, 500_000);
    assert!(r.check(&pk(1), at(499_999), 1).is_err());
    r.check(&pk(1), at(1_000_000), 1).unwrap();
    assert_eq!(
        r.check(&pk(1), at(1_000_000), 10)
            .unwrap_err()
            .retry_after_us,
        u64::MAX
    );
    r.check(&pk(2), at(1_000_000), 1).unwrap();
    r.check(&pk(3), at(1_000_001), 1).unwrap();
    assert_eq!(r.tracked(), 2, "least recently seen peer forgotten");
}

#[test]
fn capacity_cooldown_refuses_a_second_message_within_30_s() {
    let params = ChainParams::new(ChainId(1), pk(99), BlockTime(0));
    let mut c = CapacityCooldown::from_params(&params);
    c.record(pk(5), at(1_000)).unwrap();
    assert!(c.is_at_capacity(&pk(5), at(30_000_999)));
    let e = c.record(pk(5), at(20_000_000)).unwrap_err();
    assert_eq!((e.since_us, e.cooldown_us), (19_999_000, 30_000_000));
    assert!(!c.is_at_capacity(&pk(5), at(30_001_000)));
    c.record(pk(5), at(30_001_000)).unwrap();
}

#[test]
fn heartbeat_three_missed_means_gone() {
    let params = ChainParams::new(ChainId(1), pk(99), BlockTime(0));
    let mut l = Liveness::from_params(&params);
    l.heartbeat(pk(5), at(0));
    l.heartbeat(pk(6), at(0));
    l.heartbeat(pk(6), at(100_000_000));
    // Two missed heartbeats (at 60 s and 120 s): still there.
    assert!(l.handle_timeout(at(150_000_000)).is_empty());
    assert!(l.is_alive(&pk(5), at(180_000_000)));
    // The third missed heartbeat passes at 180 s.
    assert_eq!(l.handle_timeout(at(180_000_001)), vec![pk(5)]);
    assert!(!l.is_alive(&pk(5), at(180_000_001)));
    assert_eq!(l.poll_timeout(), Some(at(280_000_001)));
    assert_eq!(l.handle_timeout(at(280_000_001)), vec![pk(6)]);
    assert!(l.is_empty());
}
