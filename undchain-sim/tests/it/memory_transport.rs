//! The in-memory transport honours the same contract as QUIC: authenticated
//! keys, impostors refused, unlisted validator claims refused (learned on
//! the first read), bad frames dropped or the connection closed cleanly.

use std::collections::BTreeSet;

use crate::support::*;
use undchain_net::frame::{FrameError, encode_frame};
use undchain_net::transport::REFUSED_ON_FIRST_READ;
use undchain_net::{Claim, PeerClass, Transport, TransportConfig, TransportError, TransportEvent};
use undchain_sim::{MemoryNetwork, MemoryTransport};
use undchain_types::{BlockTime, ChainId, Envelope, LocalTime, msg::TimeProbe};

fn node(net: &MemoryNetwork, addr: &str, k: u8, validators: &[u8]) -> MemoryTransport {
    let mut t = net.join(addr, pk(k), TransportConfig::default()).unwrap();
    t.set_validator_keys(validators.iter().map(|i| pk(*i)).collect::<BTreeSet<_>>());
    t
}

#[test]
fn memory_exchange_signed_envelopes_both_ways() {
    let net = MemoryNetwork::new();
    let mut v = node(&net, "v:1", 1, &[1]);
    let mut c = node(&net, "c:1", 7, &[1]);
    c.connect(pk(1), &quic("v:1"), Claim::ClientOrPartner)
        .unwrap();
    assert!(matches!(
        c.drain_events()[..],
        [TransportEvent::Connected {
            class: PeerClass::Validator,
            inbound: false,
            ..
        }]
    ));
    assert!(matches!(
        v.drain_events()[..],
        [TransportEvent::Connected {
            class: PeerClass::ClientOrPartner,
            inbound: true,
            ..
        }]
    ));
    c.send(&pk(1), &hello(7)).unwrap();
    let ev = v.drain_events();
    assert_eq!(
        ev,
        vec![TransportEvent::Received {
            peer: pk(7),
            class: PeerClass::ClientOrPartner,
            envelope: Box::new(hello(7))
        }]
    );
    v.send(&pk(7), &hello(1)).unwrap();
    assert!(
        matches!(&c.drain_events()[..], [TransportEvent::Received { peer, .. }] if *peer == pk(1))
    );
}

#[test]
fn memory_impostor_at_a_listed_address_is_refused() {
    let net = MemoryNetwork::new();
    // Key 66 squats the address the list gives for validator 1.
    let _impostor = node(&net, "v:1", 66, &[]);
    let mut c = node(&net, "c:1", 7, &[1]);
    c.connect(pk(1), &quic("v:1"), Claim::ClientOrPartner)
        .unwrap();
    let ev = c.drain_events();
    let [TransportEvent::ConnectFailed { error, .. }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        error,
        &TransportError::WrongKey {
            address: "v:1".into(),
            expected: pk(1),
            presented: pk(66)
        }
    );
    assert!(error.to_string().contains("impostor"));
    assert!(c.send(&pk(1), &hello(7)).is_err());
}

#[test]
fn memory_unlisted_validator_claim_is_refused_on_first_read() {
    let net = MemoryNetwork::new();
    let mut v = node(&net, "v:1", 1, &[1]);
    let mut x = node(&net, "x:1", 66, &[1]);
    x.connect(pk(1), &quic("v:1"), Claim::Validator).unwrap();
    let ev = x.drain_events();
    // The quirk: connected first, refused on the first read.
    assert!(matches!(ev[0], TransportEvent::Connected { .. }));
    let TransportEvent::Closed { error, .. } = &ev[1] else {
        panic!("{ev:?}")
    };
    assert!(matches!(error, TransportError::RefusedByPeer { .. }));
    assert!(error.to_string().contains(REFUSED_ON_FIRST_READ));
    assert!(error.to_string().contains("not a listed validator"));
    assert!(matches!(
        v.drain_events()[..],
        [TransportEvent::Refused {
            error: TransportError::NotAListedValidator { .. },
            ..
        }]
    ));
    // The same key as a client is welcome.
    x.connect(pk(1), &quic("v:1"), Claim::ClientOrPartner)
        .unwrap();
    assert!(x.is_connected(&pk(1)));
}

#[test]
fn memory_frame_errors_drop_or_close_as_documented() {
    let net = MemoryNetwork::new();
    let mut v = node(&net, "v:1", 1, &[1]);
    let mut c = node(&net, "c:1", 7, &[1]);
    c.connect(pk(1), &quic("v:1"), Claim::ClientOrPartner)
        .unwrap();
    v.drain_events();
    c.drain_events();
    // A corrupt envelope in a good frame: dropped, connection survives.
    net.inject_raw("c:1", "v:1", &encode_frame(&[1, 2, 3], 1 << 20).unwrap())
        .unwrap();
    assert!(matches!(
        v.drain_events()[..],
        [TransportEvent::Dropped {
            error: TransportError::Frame(FrameError::Envelope(_)),
            ..
        }]
    ));
    // A bad signature: dropped too.
    let k = key(7);
    let mut forged = Envelope::new(
        k.public(),
        ChainId(1),
        5,
        BlockTime(0),
        TimeProbe { nonce: 1, t1: 0 },
    )
    .sign(&k)
    .to_bytes();
    let n = forged.len();
    forged[n - 1] ^= 1;
    net.inject_raw("c:1", "v:1", &encode_frame(&forged, 1 << 20).unwrap())
        .unwrap();
    assert!(matches!(
        v.drain_events()[..],
        [TransportEvent::Dropped {
            error: TransportError::Envelope(_),
            ..
        }]
    ));
    c.send(&pk(1), &hello(7)).unwrap();
    assert!(matches!(
        v.drain_events()[..],
        [TransportEvent::Received { .. }]
    ));
    // A header over the limit: framing lost, both sides see a clean close.
    net.inject_raw("c:1", "v:1", &[0xff, 0xff, 0xff, 0xff])
        .unwrap();
    assert!(matches!(
        v.drain_events()[..],
        [TransportEvent::Closed {
            error: TransportError::Frame(FrameError::TooLarge { .. }),
            ..
        }]
    ));
    assert!(matches!(
        c.drain_events()[..],
        [TransportEvent::Closed { .. }]
    ));
    assert!(!c.is_connected(&pk(1)));
}

#[test]
fn memory_dead_validator_is_unreachable_and_rate_limits_apply() {
    let net = MemoryNetwork::new();
    let _v = node(&net, "v:1", 1, &[1]);
    let mut c = node(&net, "c:1", 7, &[1]);
    net.set_down("v:1", true);
    c.connect(pk(1), &quic("v:1"), Claim::ClientOrPartner)
        .unwrap();
    assert!(matches!(
        c.drain_events()[..],
        [TransportEvent::ConnectFailed {
            error: TransportError::Unreachable { .. },
            ..
        }]
    ));
    // Rate limit: burst 2, no refill while the clock stands still.
    let cfg = TransportConfig {
        rate: undchain_net::RateLimit {
            burst: 2,
            per_second: 1,
            max_peers: 8,
        },
        ..TransportConfig::default()
    };
    let mut w = net.join("w:1", pk(2), cfg).unwrap();
    c.connect(pk(2), &quic("w:1"), Claim::ClientOrPartner)
        .unwrap();
    for _ in 0..3 {
        c.send(&pk(2), &hello(7)).unwrap();
    }
    let ev = w.drain_events();
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, TransportEvent::Received { .. }))
            .count(),
        2
    );
    // The third was shed at the reader: counted, never an event.
    assert_eq!(ev.len(), 3, "Connected and two envelopes: {ev:?}");
    assert_eq!(w.stats().frames_shed, 1);
    net.set_now(LocalTime::from_micros(1_000_000));
    c.send(&pk(2), &hello(7)).unwrap();
    assert!(matches!(
        w.drain_events()[..],
        [TransportEvent::Received { .. }]
    ));
}

#[test]
fn memory_client_flood_cannot_take_a_validator_slot_and_idle_clients_go() {
    let net = MemoryNetwork::new();
    let cfg = TransportConfig {
        admission: undchain_net::AdmissionConfig {
            client_slots: 8,
            ..undchain_net::AdmissionConfig::default()
        },
        ..TransportConfig::default()
    };
    let mut v = net.join("10.0.0.1:1", pk(1), cfg).unwrap();
    v.set_validator_keys([pk(1), pk(2)].into_iter().collect());
    // Fifty clients from fifty hosts: eight get slots, the rest are told
    // on their first read.
    let mut refused = 0;
    for i in 0..50u8 {
        let mut c = node(&net, &format!("10.1.{i}.1:1"), 100 + i, &[1]);
        c.connect(pk(1), &quic("10.0.0.1:1"), Claim::ClientOrPartner)
            .unwrap();
        let ev = c.drain_events();
        if let [_, TransportEvent::Closed { error, .. }] = &ev[..] {
            assert!(
                error.to_string().contains("client connection slots"),
                "{error}"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, 42);
    assert_eq!(v.stats().refused, 42);
    // The validator still gets in, and envelopes flow.
    let mut w = node(&net, "10.0.0.2:1", 2, &[1, 2]);
    w.connect(pk(1), &quic("10.0.0.1:1"), Claim::Validator)
        .unwrap();
    w.send(&pk(1), &hello(2)).unwrap();
    assert!(v.drain_events().iter().any(
        |e| matches!(e, TransportEvent::Received { peer, class: PeerClass::Validator, .. } if *peer == pk(2))
    ));
    let counts = v.admission_counts();
    assert_eq!((counts.validators, counts.clients), (1, 8));
    // Thirty seconds without a frame: the clients are closed, the
    // validator stays.
    net.set_now(LocalTime::from_micros(30_000_000));
    assert_eq!(v.stats().idle_closed, 8);
    assert_eq!(v.admission_counts().clients, 0);
    assert!(v.is_connected(&pk(2)));
}

#[test]
fn memory_a_backed_up_peer_is_refused_not_buffered() {
    let net = MemoryNetwork::new();
    let cfg = TransportConfig {
        events_per_peer: 3,
        ..TransportConfig::default()
    };
    let mut v = net.join("v:1", pk(1), cfg).unwrap();
    let mut c = node(&net, "c:1", 7, &[1]);
    let mut d = node(&net, "d:1", 8, &[1]);
    c.connect(pk(1), &quic("v:1"), Claim::ClientOrPartner)
        .unwrap();
    d.connect(pk(1), &quic("v:1"), Claim::ClientOrPartner)
        .unwrap();
    for _ in 0..3 {
        c.send(&pk(1), &hello(7)).unwrap();
    }
    assert!(matches!(
        c.send(&pk(1), &hello(7)),
        Err(TransportError::QueueFull { .. })
    ));
    // Another peer is not held up by c's backlog.
    d.send(&pk(1), &hello(8)).unwrap();
    let ev = v.drain_events();
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, TransportEvent::Received { .. }))
            .count(),
        4
    );
    // Once the runtime took c's events, c may send again.
    c.send(&pk(1), &hello(7)).unwrap();
}
