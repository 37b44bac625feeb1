//! Fixtures shared by the integration tests: test keys and signed receipt
//! and request envelopes.

use undchain_types::msg::{Receipt, ReceiptTerms};
use undchain_types::{
    BlockTime, ChainId, Envelope, JobId, PerceptionScore, SignedEnvelope, SigningKey, TokenAmount,
    UtilityKind, hash::Hash32, msg::UtilityRequest,
};

/// A deterministic test key.
pub fn key(i: u8) -> SigningKey {
    SigningKey::from_seed([i; 32])
}

/// A receipt envelope signed by the client (key 1); `i` varies it.
pub fn receipt_envelope(i: u64) -> SignedEnvelope {
    let client = key(1);
    let partner = key(2);
    let terms = ReceiptTerms {
        chain_id: ChainId(7),
        job: JobId(Hash32([i as u8; 32])),
        commit_block: undchain_types::BlockNumber(0),
        client: client.public(),
        partner: partner.public(),
        units: 1000 + i,
        amount: TokenAmount(50 + i),
        finished_at: BlockTime(1_700_000_000_000_000 + i),
    };
    let receipt = Receipt::sign(terms, &client, &partner);
    Envelope::new(
        client.public(),
        ChainId(7),
        i,
        BlockTime(1_700_000_000_000_000 + i),
        receipt,
    )
    .sign(&client)
}

/// A utility request envelope signed by key 3.
pub fn request_envelope() -> SignedEnvelope {
    let client = key(3);
    let req = UtilityRequest {
        kind: UtilityKind::Computation,
        units: 60,
        max_price_per_unit: TokenAmount(4),
        min_partner_score: PerceptionScore::new(300).unwrap(),
        partner_threshold: 5,
        co_clients: Default::default(),
        spec: undchain_types::BoundedBytes::try_from_slice(b"x86_64, 2 cores").unwrap(),
    };
    Envelope::new(client.public(), ChainId(7), 42, BlockTime(5_000_000), req).sign(&client)
}
