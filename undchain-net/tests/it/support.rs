//! Fixtures shared by the tests: the simulation kit's test keys, validator
//! lists, endpoints, hellos and times.

use undchain_net::PeerBook;
use undchain_sim::node_key;
use undchain_types::msg::{Endpoint, Hello, MediumKind, ValidatorInfo};
use undchain_types::{
    Activity, BlockTime, BoundedString, BoundedVec, ChainId, Envelope, LocalTime, PublicKey, Role,
    SignedEnvelope, Trust, ValidatorBook, ValidatorClass,
};

/// Public key of test node `i` (the kit's `node_key`).
pub fn pk(i: usize) -> PublicKey {
    node_key(i).public()
}

/// The local time `us` microseconds after the origin.
pub fn at(us: i64) -> LocalTime {
    LocalTime::from_micros(us)
}

/// A QUIC endpoint at `addr`.
pub fn quic(addr: &str) -> Endpoint {
    Endpoint {
        medium: MediumKind::Quic,
        address: BoundedString::try_new(addr.to_owned()).unwrap(),
    }
}

/// A list entry: alias, key index, media as (medium, address, latency ms).
pub struct V<'a> {
    pub alias: &'a str,
    pub key: usize,
    pub media: &'a [(&'a str, &'a str, u32)],
}

/// The bootstrap list of `vs`, every medium listed at 0.9 reliability.
pub fn list(vs: &[V<'_>]) -> ValidatorBook {
    let mut s = String::new();
    for v in vs {
        s.push_str(&format!(
            "[[validator]]\nalias = \"{}\"\nid = \"{}\"\n",
            v.alias,
            pk(v.key).to_hex()
        ));
        for (m, a, l) in v.media {
            s.push_str(&format!(
                "[[validator.media]]\ntype = \"{m}\"\naddress = \"{a}\"\nlatency_ms = {l}\nreliability = 0.9\n"
            ));
        }
    }
    ValidatorBook::parse(&s).unwrap()
}

/// A client's signed hello from test node `from`.
pub fn hello(from: usize) -> SignedEnvelope {
    let k = node_key(from);
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

/// Alpha (two media), beta and gamma from the bootstrap list; delta only in
/// the validator set, which also names beta.
pub fn book() -> PeerBook {
    let l = list(&[
        V {
            alias: "alpha",
            key: 1,
            media: &[
                ("quic", "127.0.0.1:7101", 10),
                ("udp", "127.0.0.1:7201", 40),
            ],
        },
        V {
            alias: "beta",
            key: 2,
            media: &[("quic", "127.0.0.1:7102", 20)],
        },
        V {
            alias: "gamma",
            key: 3,
            media: &[("quic", "127.0.0.1:7103", 5), ("tcp", "127.0.0.1:7303", 60)],
        },
    ]);
    let mut b = PeerBook::from_bootstrap(&l);
    // The validator set also names delta (not in the bootstrap list) and beta.
    b.set_validator_set(&[
        ValidatorInfo {
            id: pk(4),
            class: ValidatorClass {
                activity: Activity::Passive,
                trust: Trust::Unknown,
            },
            media: BoundedVec::try_from_vec(vec![quic("127.0.0.1:7104")]).unwrap(),
        },
        ValidatorInfo {
            id: pk(2),
            class: ValidatorClass {
                activity: Activity::Active,
                trust: Trust::Known,
            },
            media: BoundedVec::try_from_vec(vec![quic("127.0.0.1:7102")]).unwrap(),
        },
    ]);
    b
}
