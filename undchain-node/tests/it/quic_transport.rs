//! Two (or three) real QUIC endpoints on 127.0.0.1: signed envelopes both
//! ways, an impostor refused, an unlisted validator claim refused on the
//! first read, frame errors dropped or closing the connection cleanly.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::*;
use undchain_net::frame::{FrameError, encode_frame};
use undchain_net::transport::REFUSED_ON_FIRST_READ;
use undchain_net::{Claim, PeerClass, Transport, TransportError, TransportEvent};
use undchain_node::transport::{QuicConfig, QuicTransport};
use undchain_sim::node_key;
use undchain_types::BoundedString;
use undchain_types::msg::{Endpoint, MediumKind};

#[tokio::test]
async fn quic_two_endpoints_exchange_signed_envelopes() {
    let mut v = node(1, &[1, 2]);
    let w = node(2, &[1, 2]);
    let mut c = node(7, &[1, 2]);
    // Validator to validator, claiming to be one.
    w.connect(pk(1), v.local_addr().unwrap(), Claim::Validator)
        .await
        .unwrap();
    let ev = wait_for(&mut v, |e| matches!(e, TransportEvent::Connected { .. })).await;
    assert_eq!(
        ev,
        TransportEvent::Connected {
            peer: pk(2),
            class: PeerClass::Validator,
            inbound: true,
            address: w.local_addr().unwrap().to_string()
        }
    );
    // A client, under its own key.
    c.connect(pk(1), v.local_addr().unwrap(), Claim::ClientOrPartner)
        .await
        .unwrap();
    let ev = wait_for(&mut v, |e| matches!(e, TransportEvent::Connected { .. })).await;
    assert!(
        matches!(ev, TransportEvent::Connected { peer, class: PeerClass::ClientOrPartner, .. } if peer == pk(7))
    );
    for seq in 1..=3 {
        c.send(&pk(1), &hello(7, seq)).unwrap();
    }
    w.send(&pk(1), &hello(2, 9)).unwrap();
    let mut from_c = Vec::new();
    let mut from_w = Vec::new();
    while from_c.len() < 3 || from_w.is_empty() {
        match wait_for(&mut v, |e| matches!(e, TransportEvent::Received { .. })).await {
            TransportEvent::Received {
                peer,
                class,
                envelope,
            } if peer == pk(7) => {
                assert_eq!(class, PeerClass::ClientOrPartner);
                envelope.verify().unwrap();
                from_c.push(*envelope);
            }
            TransportEvent::Received {
                peer,
                class,
                envelope,
            } => {
                assert_eq!((peer, class), (pk(2), PeerClass::Validator));
                from_w.push(*envelope);
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(
        from_c,
        vec![hello(7, 1), hello(7, 2), hello(7, 3)],
        "in order"
    );
    assert_eq!(from_w, vec![hello(2, 9)]);
    // And back, on the connection the client opened.
    v.send(&pk(7), &hello(1, 4)).unwrap();
    let ev = wait_for(&mut c, |e| matches!(e, TransportEvent::Received { .. })).await;
    assert!(
        matches!(ev, TransportEvent::Received { peer, class: PeerClass::Validator, envelope } if peer == pk(1) && *envelope == hello(1, 4))
    );
}

#[tokio::test]
async fn quic_impostor_at_a_listed_validators_address_is_refused() {
    // Key 66 listens where the list says validator 1 is.
    let impostor = node(66, &[]);
    let c = node(7, &[1]);
    let err = c
        .connect(
            pk(1),
            impostor.local_addr().unwrap(),
            Claim::ClientOrPartner,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TransportError::WrongKey {
            address: impostor.local_addr().unwrap().to_string(),
            expected: pk(1),
            presented: pk(66),
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("impostor") && text.contains(&pk(66).to_hex()),
        "{text}"
    );
    assert!(matches!(
        c.send(&pk(1), &hello(7, 1)),
        Err(TransportError::NotConnected { .. })
    ));
}

#[tokio::test]
async fn quic_impostor_claiming_to_be_a_validator_learns_the_refusal_on_first_read() {
    let mut v = node(1, &[1]);
    let mut x = node(66, &[1]);
    // The TLS 1.3 quirk: the connect itself succeeds...
    x.connect(pk(1), v.local_addr().unwrap(), Claim::Validator)
        .await
        .unwrap();
    // ...and the refusal is what the first read returns.
    let ev = wait_for(&mut x, |e| matches!(e, TransportEvent::Closed { .. })).await;
    let TransportEvent::Closed { peer, error } = ev else {
        unreachable!()
    };
    assert_eq!(peer, pk(1));
    assert!(
        matches!(error, TransportError::RefusedByPeer { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("not a listed validator"), "{text}");
    assert!(text.contains(REFUSED_ON_FIRST_READ), "{text}");
    let ev = wait_for(&mut v, |e| matches!(e, TransportEvent::Refused { .. })).await;
    assert_eq!(
        ev,
        TransportEvent::Refused {
            peer: pk(66),
            error: TransportError::NotAListedValidator { key: pk(66) }
        }
    );
    // Under the same key as a client it is welcome.
    x.connect(pk(1), v.local_addr().unwrap(), Claim::ClientOrPartner)
        .await
        .unwrap();
    x.send(&pk(1), &hello(66, 1)).unwrap();
    let ev = wait_for(&mut v, |e| matches!(e, TransportEvent::Received { .. })).await;
    assert!(matches!(
        ev,
        TransportEvent::Received {
            class: PeerClass::ClientOrPartner,
            ..
        }
    ));
}

#[tokio::test]
async fn quic_frame_corrupt_envelope_is_dropped_and_the_connection_survives() {
    let mut v = node(1, &[1]);
    let c = node(7, &[1]);
    c.connect(pk(1), v.local_addr().unwrap(), Claim::ClientOrPartner)
        .await
        .unwrap();
    c.send_raw(&pk(1), encode_frame(&[1, 0xde, 0xad], 1 << 20).unwrap())
        .unwrap();
    let mut forged = hello(7, 2).to_bytes();
    let n = forged.len();
    forged[n - 3] ^= 0x10;
    c.send_raw(&pk(1), encode_frame(&forged, 1 << 20).unwrap())
        .unwrap();
    c.send(&pk(1), &hello(7, 3)).unwrap();
    let ev = wait_for(&mut v, |e| matches!(e, TransportEvent::Dropped { .. })).await;
    assert!(
        matches!(
            ev,
            TransportEvent::Dropped {
                error: TransportError::Frame(FrameError::Envelope(_)),
                ..
            }
        ),
        "{ev:?}"
    );
    let ev = wait_for(&mut v, |e| matches!(e, TransportEvent::Dropped { .. })).await;
    assert!(
        matches!(
            ev,
            TransportEvent::Dropped {
                error: TransportError::Envelope(_),
                ..
            }
        ),
        "{ev:?}"
    );
    let ev = wait_for(&mut v, |e| matches!(e, TransportEvent::Received { .. })).await;
    assert!(matches!(ev, TransportEvent::Received { envelope, .. } if *envelope == hello(7, 3)));
}

#[tokio::test]
async fn quic_frame_over_the_limit_closes_the_connection_cleanly() {
    let mut v = node(1, &[1]);
    let mut c = node(7, &[1]);
    c.connect(pk(1), v.local_addr().unwrap(), Claim::ClientOrPartner)
        .await
        .unwrap();
    // A header announcing 4 GiB: refused from the header, before allocating.
    c.send_raw(&pk(1), vec![0xff, 0xff, 0xff, 0xff, 0, 0])
        .unwrap();
    let ev = wait_for(&mut v, |e| matches!(e, TransportEvent::Closed { .. })).await;
    assert!(
        matches!(
            ev,
            TransportEvent::Closed {
                error: TransportError::Frame(FrameError::TooLarge {
                    len: 4_294_967_295,
                    ..
                }),
                ..
            }
        ),
        "{ev:?}"
    );
    let ev = wait_for(&mut c, |e| matches!(e, TransportEvent::Closed { .. })).await;
    let TransportEvent::Closed { error, .. } = ev else {
        unreachable!()
    };
    assert!(error.to_string().contains("framing error"), "{error}");
    assert!(!c.is_connected(&pk(1)));
}

#[tokio::test]
async fn quic_transport_trait_reports_outcomes_as_events() {
    let v = node(1, &[1]);
    let impostor = node(66, &[]);
    let mut c = node(7, &[1]);
    let ep = |a: SocketAddr| Endpoint {
        medium: MediumKind::Quic,
        address: BoundedString::try_new(a.to_string()).unwrap(),
    };
    Transport::connect(
        &mut c,
        pk(1),
        &ep(impostor.local_addr().unwrap()),
        Claim::ClientOrPartner,
    )
    .unwrap();
    let ev = wait_for(&mut c, |_| true).await;
    assert!(
        matches!(
            ev,
            TransportEvent::ConnectFailed {
                error: TransportError::WrongKey { .. },
                ..
            }
        ),
        "{ev:?}"
    );
    Transport::connect(
        &mut c,
        pk(1),
        &ep(v.local_addr().unwrap()),
        Claim::ClientOrPartner,
    )
    .unwrap();
    // Sent before the handshake finished: queued, delivered after.
    Transport::send(&mut c, &pk(1), &hello(7, 1)).unwrap();
    let ev = wait_for(&mut c, |_| true).await;
    assert!(
        matches!(
            ev,
            TransportEvent::Connected {
                class: PeerClass::Validator,
                inbound: false,
                ..
            }
        ),
        "{ev:?}"
    );
    let tcp = Endpoint {
        medium: MediumKind::Tcp,
        ..ep(v.local_addr().unwrap())
    };
    assert_eq!(
        Transport::connect(&mut c, pk(1), &tcp, Claim::ClientOrPartner),
        Err(TransportError::UnsupportedMedium {
            medium: MediumKind::Tcp
        })
    );
    let mut v = v;
    let ev = wait_for(&mut v, |e| matches!(e, TransportEvent::Received { .. })).await;
    assert!(matches!(ev, TransportEvent::Received { envelope, .. } if *envelope == hello(7, 1)));
}

#[tokio::test]
async fn quic_dead_address_is_unreachable() {
    let cfg = QuicConfig {
        idle_timeout: Duration::from_millis(300),
        ..QuicConfig::default()
    };
    let c = QuicTransport::bind(any(), node_key(7), cfg).unwrap();
    // A bound UDP socket that never answers.
    let silent = std::net::UdpSocket::bind(any()).unwrap();
    let err = c
        .connect(pk(1), silent.local_addr().unwrap(), Claim::ClientOrPartner)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn quic_outbound_queue_is_bounded_while_the_handshake_runs() {
    let cfg = QuicConfig {
        transport: undchain_net::TransportConfig {
            queue_per_peer: 8,
            queue_bytes_per_peer: 250,
            ..undchain_net::TransportConfig::default()
        },
        idle_timeout: Duration::from_millis(300),
        ..QuicConfig::default()
    };
    let mut c = QuicTransport::bind(any(), node_key(7), cfg).unwrap();
    // Nobody answers there: the handshake stays pending and nothing drains.
    let silent = std::net::UdpSocket::bind(any()).unwrap();
    let ep = Endpoint {
        medium: MediumKind::Quic,
        address: BoundedString::try_new(silent.local_addr().unwrap().to_string()).unwrap(),
    };
    Transport::connect(&mut c, pk(1), &ep, Claim::ClientOrPartner).unwrap();
    let frame_len = undchain_net::frame_envelope(&hello(7, 1), 1 << 20)
        .unwrap()
        .len();
    assert!(2 * frame_len <= 250 && 3 * frame_len > 250);
    c.send(&pk(1), &hello(7, 1)).unwrap();
    c.send(&pk(1), &hello(7, 2)).unwrap();
    assert_eq!(
        c.send(&pk(1), &hello(7, 3)),
        Err(TransportError::QueueFull {
            peer: pk(1),
            cap: 8,
            cap_bytes: 250
        })
    );
    // The attempt then fails as unreachable, and the queue goes with it.
    let ev = wait_for(&mut c, |_| true).await;
    assert!(
        matches!(
            ev,
            TransportEvent::ConnectFailed {
                error: TransportError::Unreachable { .. },
                ..
            }
        ),
        "{ev:?}"
    );
    assert!(matches!(
        c.send(&pk(1), &hello(7, 4)),
        Err(TransportError::NotConnected { .. })
    ));
}

/// An echo of every envelope `server` receives, back to its sender; every
/// other envelope is taken through the polling interface
/// ([`Transport::poll_event`]) instead of `next_event`. Returns the
/// sequence numbers it saw, in order, and the transport (dropping it would
/// close the connection before the last echoes left).
async fn echo_mixing_both_interfaces(
    mut server: QuicTransport,
    rounds: u64,
) -> (Vec<u64>, QuicTransport) {
    let mut seen = Vec::new();
    while (seen.len() as u64) < rounds {
        let ev = if seen.len() % 2 == 0 {
            server.next_event().await.expect("transport open")
        } else {
            loop {
                match Transport::poll_event(&mut server) {
                    Some(ev) => break ev,
                    None => tokio::task::yield_now().await,
                }
            }
        };
        if let TransportEvent::Received { peer, envelope, .. } = ev {
            seen.push(envelope.envelope().seq);
            server.send(&peer, &envelope).unwrap();
        }
    }
    (seen, server)
}

/// The sequence number of the next envelope `t` receives.
async fn echo_seq(t: &mut QuicTransport) -> u64 {
    match wait_for(t, |e| matches!(e, TransportEvent::Received { .. })).await {
        TransportEvent::Received { envelope, .. } => envelope.envelope().seq,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_single_envelopes_and_bursts_alternating_keep_every_envelope_in_order() {
    // A lone envelope is written by its sender and read by the waiting
    // runtime itself; a burst goes through the writer and reader tasks.
    // Switching between the two at every turn loses and reorders nothing.
    // No shedding here: every envelope must come back.
    let unlimited = undchain_net::RateLimit {
        burst: 1 << 20,
        per_second: 1 << 20,
        max_peers: 16,
    };
    let cfg = QuicConfig {
        transport: undchain_net::TransportConfig {
            rate: unlimited,
            ..undchain_net::TransportConfig::default()
        },
        ..QuicConfig::default()
    };
    let server = node_with(1, &[], cfg.clone());
    let addr = server.local_addr().unwrap();
    let mut client = node_with(7, &[], cfg);
    client
        .connect(pk(1), addr, Claim::ClientOrPartner)
        .await
        .unwrap();
    let (turns, singles, burst) = (20u64, 10u64, 100u64);
    let total = turns * (singles + burst);
    let echo = tokio::spawn(echo_mixing_both_interfaces(server, total));
    let mut seq = 0;
    for _ in 0..turns {
        for _ in 0..singles {
            client.send(&pk(1), &hello(7, seq)).unwrap();
            assert_eq!(echo_seq(&mut client).await, seq, "a lone envelope's echo");
            seq += 1;
        }
        let first = seq;
        for _ in 0..burst {
            client.send(&pk(1), &hello(7, seq)).unwrap();
            seq += 1;
        }
        for want in first..seq {
            assert_eq!(
                echo_seq(&mut client).await,
                want,
                "a burst's echoes in order"
            );
        }
    }
    let (seen, _server) = echo.await.unwrap();
    assert_eq!(
        seen,
        (0..total).collect::<Vec<_>>(),
        "the echo side saw all, in order"
    );
}
