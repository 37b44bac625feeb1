//! Shared test fixtures: keys, validator lists, hellos.
#![allow(dead_code)]

use undchain_types::msg::{Endpoint, Hello, MediumKind};
use undchain_types::{
    BlockTime, BoundedString, ChainId, Envelope, PublicKey, Role, SignedEnvelope, SigningKey,
    ValidatorBook,
};

pub fn key(i: u8) -> SigningKey {
    SigningKey::from_seed([i; 32])
}

pub fn pk(i: u8) -> PublicKey {
    key(i).public()
}

pub fn quic(addr: &str) -> Endpoint {
    Endpoint {
        medium: MediumKind::Quic,
        address: BoundedString::try_new(addr.to_owned()).unwrap(),
    }
}

/// A list entry: alias, key index, media as (medium, address, latency ms).
pub struct V<'a> {
    pub alias: &'a str,
    pub key: u8,
    pub media: &'a [(&'a str, &'a str, u32)],
}

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
