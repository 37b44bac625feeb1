//! Peer book: ordering follows observed latency, reliability drops after
//! failures, reloads keep observations, and who counts as a validator.

use crate::support::*;
use undchain_net::PeerBook;
use undchain_types::msg::ValidatorInfo;
use undchain_types::{Activity, BoundedVec, Trust, ValidatorClass};

fn three() -> PeerBook {
    PeerBook::from_bootstrap(&list(&[
        V {
            alias: "a",
            key: 1,
            media: &[("quic", "127.0.0.1:7101", 10)],
        },
        V {
            alias: "b",
            key: 2,
            media: &[("quic", "127.0.0.1:7102", 20)],
        },
        V {
            alias: "c",
            key: 3,
            media: &[
                ("quic", "127.0.0.1:7103", 30),
                ("udp", "127.0.0.1:7203", 50),
            ],
        },
    ]))
}

#[test]
fn peer_book_ordering_follows_observed_latency() {
    let mut b = three();
    // Before any observation: the listed expectations.
    assert_eq!(b.lowest_latency(2, |_| true), vec![pk(1), pk(2)]);
    // a turns out slow, c's udp medium fast.
    assert!(b.observe_latency(&pk(1), &quic("127.0.0.1:7101"), 80_000));
    let mut udp = quic("127.0.0.1:7203");
    udp.medium = undchain_types::msg::MediumKind::Udp;
    assert!(b.observe_latency(&pk(3), &udp, 4_000));
    assert_eq!(b.lowest_latency(3, |_| true), vec![pk(3), pk(2), pk(1)]);
    assert_eq!(b.lowest_latency(1, |e| e.id != pk(3)), vec![pk(2)]);
    // Moving average: later samples move it by 1/8 of the difference.
    b.observe_latency(&pk(1), &quic("127.0.0.1:7101"), 0);
    assert_eq!(b.get(&pk(1)).unwrap().best_latency_us(), 70_000);
    for _ in 0..40 {
        b.observe_latency(&pk(1), &quic("127.0.0.1:7101"), 1_000);
    }
    // 69 ms off, shrinking by 7/8 per sample: 1 ms + 69 ms * (7/8)^40 =
    // 1.33 ms, below c's 4 ms, so a leads again.
    assert_eq!(b.get(&pk(1)).unwrap().best_latency_us(), 1_334);
    assert_eq!(b.lowest_latency(3, |_| true), vec![pk(1), pk(3), pk(2)]);
    // An unknown pair is not recorded.
    assert!(!b.observe_latency(&pk(9), &quic("127.0.0.1:1"), 1));
    assert!(!b.observe_latency(&pk(1), &quic("127.0.0.1:1"), 1));
}

#[test]
fn peer_book_reliability_drops_after_failures_and_recovers() {
    let mut b = three();
    let ep = quic("127.0.0.1:7102");
    let start = b.get(&pk(2)).unwrap().media[0].reliability_permille;
    assert_eq!(start, 900);
    let mut last = start;
    for _ in 0..5 {
        assert!(b.observe_failure(&pk(2), &ep));
        let r = b.get(&pk(2)).unwrap().media[0].reliability_permille;
        assert!(r < last, "each failure lowers reliability ({r} !< {last})");
        last = r;
    }
    // 900 -> 787 -> 688 -> 602 -> 526 -> 460 (ceil(r/8) each).
    assert_eq!(last, 460);
    for _ in 0..3 {
        b.observe_success(&pk(2), &ep);
    }
    let r = b.get(&pk(2)).unwrap().media[0].reliability_permille;
    assert!(r > last);
    // Reliability breaks latency ties.
    let mut t = PeerBook::from_bootstrap(&list(&[
        V {
            alias: "x",
            key: 5,
            media: &[("quic", "127.0.0.1:7105", 10)],
        },
        V {
            alias: "y",
            key: 6,
            media: &[("quic", "127.0.0.1:7106", 10)],
        },
    ]));
    let first = t.ranked()[0].id;
    let first_ep = t.get(&first).unwrap().media[0].endpoint.clone();
    t.observe_failure(&first, &first_ep);
    assert_ne!(t.ranked()[0].id, first);
}

#[test]
fn peer_book_reload_keeps_observations_of_listed_pairs() {
    let mut b = three();
    b.observe_latency(&pk(2), &quic("127.0.0.1:7102"), 3_000);
    b.observe_latency(&pk(3), &quic("127.0.0.1:7103"), 3_000);
    // The file now drops a, moves c to another address, keeps b.
    b.reload_bootstrap(&list(&[
        V {
            alias: "b",
            key: 2,
            media: &[("quic", "127.0.0.1:7102", 20)],
        },
        V {
            alias: "c",
            key: 3,
            media: &[("quic", "127.0.0.1:7303", 30)],
        },
    ]));
    assert!(b.get(&pk(1)).is_none());
    assert_eq!(b.get(&pk(2)).unwrap().best_latency_us(), 3_000);
    assert_eq!(b.get(&pk(3)).unwrap().best_latency_us(), 30_000);
    assert_eq!(b.len(), 2);
}

#[test]
fn peer_book_validator_set_decides_acceptance_once_the_chain_exists() {
    let mut b = three();
    assert!(b.accepts_as_validator(&pk(1)));
    assert!(!b.accepts_as_validator(&pk(4)));
    b.set_validator_set(&[ValidatorInfo {
        id: pk(4),
        class: ValidatorClass {
            activity: Activity::Active,
            trust: Trust::Unknown,
        },
        media: BoundedVec::try_from_vec(vec![quic("127.0.0.1:7104")]).unwrap(),
    }]);
    assert!(b.accepts_as_validator(&pk(4)));
    assert!(
        !b.accepts_as_validator(&pk(1)),
        "bootstrap alone no longer makes a validator"
    );
    assert_eq!(
        b.validator_keys().into_iter().collect::<Vec<_>>(),
        vec![pk(4)]
    );
    // The bootstrap validators still take part in scream casts.
    let order = b.scream_order();
    assert_eq!(order.len(), 5);
    assert!(order.iter().any(|t| t.validator == pk(1)));
}
