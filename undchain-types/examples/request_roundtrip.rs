//! Builds, signs, encodes, decodes and verifies a utility request, then a
//! validator's ack and a receipt signed by client and partner, printing each
//! step. The run command of the README until the devnet exists.
//!
//! `cargo run --release -p undchain-types --example request_roundtrip`

use undchain_types::msg::{Receipt, ReceiptTerms, RequestAck, UtilityRequest, ValidatorInfo};
use undchain_types::replay::{ClockDomain, ReplayConfig, ReplayGuard};
use undchain_types::wire::DEFAULT_MAX_FRAME;
use undchain_types::{
    Activity, BlockTime, BoundedVec, ChainId, ChainParams, Envelope, JobId, PerceptionScore,
    SignedEnvelope, SigningKey, TokenAmount, Trust, UtilityKind, ValidatorClass,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(arg) = std::env::args().nth(1) {
        if arg == "--help" || arg == "-h" {
            println!("usage: request_roundtrip (no flags: one fixed, printed round trip)");
            return Ok(());
        }
        return Err(format!("request_roundtrip takes no flags, got {arg} (see --help)").into());
    }
    let owner = SigningKey::from_seed([1; 32]);
    let client = SigningKey::from_seed([2; 32]);
    let partner = SigningKey::from_seed([3; 32]);
    let validator = SigningKey::from_seed([4; 32]);
    let params = ChainParams::new(ChainId(1), owner.public(), BlockTime(1_700_000_000_000_000));
    params.validate()?;
    println!(
        "chain {}: n={} f={} q={} B={}us cutoff={}us",
        params.chain_id,
        params.active_seats,
        params.max_faulty(),
        params.quorum(),
        params.block_interval_us,
        params.cutoff_us()
    );

    // Client story step 1: the request.
    let now = BlockTime(params.genesis_time.0 + 3_600_000_000);
    let request = UtilityRequest {
        kind: UtilityKind::Storage,
        units: 10 * 1024 * 1024,
        max_price_per_unit: TokenAmount(2),
        min_partner_score: PerceptionScore::new(400).ok_or("score")?,
        partner_threshold: 8,
        co_clients: BoundedVec::new(),
        spec: Default::default(),
    };
    let signed = Envelope::new(client.public(), params.chain_id, 1, now, request).sign(&client);
    let bytes = signed.to_bytes();
    println!(
        "request: {} bytes on the wire, sender {:?}",
        bytes.len(),
        signed.sender()
    );

    // A validator decodes, verifies and checks for replay.
    let received = SignedEnvelope::open(&bytes, DEFAULT_MAX_FRAME, params.chain_id)?;
    // The seed keys the guard's horizon table: a node draws it at random.
    let mut guard = ReplayGuard::new(ReplayConfig::from_params(&params, 0x5eed));
    let e = received.envelope();
    let first = guard.check(&e.sender, e.seq, e.sent_at, ClockDomain::Wall, now)?;
    let again = guard.check(&e.sender, e.seq, e.sent_at, ClockDomain::Wall, now)?;
    let job = JobId::from_request_digest(received.digest());
    println!(
        "validator: verified {:?}, first {first:?}, retry {again:?}",
        e.kind
    );
    println!("  body: {:?}", received.body());
    println!("  job id: {job}");

    // Client story step 2: the ack.
    let block = params.block_at(now);
    let ack = RequestAck {
        job,
        block,
        period: params.period_of(block),
        active: BoundedVec::try_from_vec(vec![ValidatorInfo {
            id: validator.public(),
            class: ValidatorClass {
                activity: Activity::Active,
                trust: Trust::Unknown,
            },
            media: BoundedVec::new(),
        }])?,
    };
    let ack = Envelope::new(validator.public(), params.chain_id, 1, now, ack).sign(&validator);
    let ack = SignedEnvelope::open(&ack.to_bytes(), DEFAULT_MAX_FRAME, params.chain_id)?;
    println!("ack: {:?}", ack.body());

    // Client story step 5: the receipt, signed by both.
    let terms = ReceiptTerms {
        chain_id: params.chain_id,
        job,
        commit_block: block,
        client: client.public(),
        partner: partner.public(),
        units: 10 * 1024 * 1024,
        amount: TokenAmount(20 * 1024 * 1024),
        finished_at: now.plus(60_000_000),
    };
    let receipt = Receipt::sign(terms, &client, &partner);
    receipt.verify()?;
    let env = Envelope::new(
        partner.public(),
        params.chain_id,
        9,
        now.plus(60_000_000),
        receipt,
    )
    .sign(&partner);
    let back = SignedEnvelope::open(&env.to_bytes(), DEFAULT_MAX_FRAME, params.chain_id)?;
    println!(
        "receipt: {} bytes, envelope and both party signatures verify ({})",
        env.to_bytes().len(),
        back.envelope().kind
    );
    Ok(())
}
