//! Fixtures shared by the kit's tests: the kit's own test keys, endpoints
//! and a signed hello.

use undchain_sim::node_key;
use undchain_types::msg::{Endpoint, Hello, MediumKind};
use undchain_types::{
    BlockTime, BoundedString, ChainId, Envelope, PublicKey, Role, SignedEnvelope, SigningKey,
};

/// Test key `i` (the kit's `node_key`).
pub fn key(i: u8) -> SigningKey {
    node_key(usize::from(i))
}

/// Public key of test key `i`.
pub fn pk(i: u8) -> PublicKey {
    key(i).public()
}

/// A QUIC endpoint at `addr`.
pub fn quic(addr: &str) -> Endpoint {
    Endpoint {
        medium: MediumKind::Quic,
        address: BoundedString::try_new(addr.to_owned()).expect("short address"),
    }
}

/// A client's signed hello from test key `from`.
pub fn hello(from: u8) -> SignedEnvelope {
    let k = key(from);
    Envelope::new(
        k.public(),
        ChainId(1),
        1,
        BlockTime(1_000),
        Hello {
            role: Role::Client,
            nonce: 77,
        },
    )
    .sign(&k)
}
