//! Fixtures shared by the node's tests: QUIC endpoints under the simulation
//! kit's test keys, hellos, and waiting for an event.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use undchain_net::TransportEvent;
use undchain_node::transport::{QuicConfig, QuicTransport};
use undchain_sim::node_key;
use undchain_types::msg::Hello;
use undchain_types::{BlockTime, ChainId, Envelope, PublicKey, Role, SignedEnvelope};

/// Public key of test node `i` (the kit's `node_key`).
pub fn pk(i: usize) -> PublicKey {
    node_key(i).public()
}

/// Any free port on the loopback interface.
pub fn any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A transport for test node `i` on a free loopback port that accepts the
/// nodes of `listed` as validators.
pub fn node(i: usize, listed: &[usize]) -> QuicTransport {
    node_with(i, listed, QuicConfig::default())
}

/// [`node`] with settings of its own.
pub fn node_with(i: usize, listed: &[usize], cfg: QuicConfig) -> QuicTransport {
    let t = QuicTransport::bind(any(), node_key(i), cfg).unwrap();
    t.set_validator_keys(listed.iter().map(|k| pk(*k)).collect::<BTreeSet<_>>());
    t
}

/// A client's hello from test node `i` with sequence number (and nonce)
/// `seq`.
pub fn hello(i: usize, seq: u64) -> SignedEnvelope {
    let k = node_key(i);
    Envelope::new(
        k.public(),
        ChainId(1),
        seq,
        BlockTime(0),
        Hello {
            role: Role::Client,
            nonce: seq,
        },
    )
    .sign(&k)
}

/// The next event matching `want`, skipping others; fails after 10 s so a
/// broken test cannot hang (not a timing assertion).
pub async fn wait_for(
    t: &mut QuicTransport,
    want: impl Fn(&TransportEvent) -> bool,
) -> TransportEvent {
    let fut = async {
        loop {
            let ev = t.next_event().await.expect("transport open");
            if want(&ev) {
                return ev;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("event did not come")
}
