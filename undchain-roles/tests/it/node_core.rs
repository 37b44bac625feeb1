//! One `NodeCore` driven by hand: intake refusals, strangers, persist
//! before send, restore from stored state only.

use std::sync::Arc;

use undchain_roles::{
    Genesis, GenesisValidator, MemoryStore, NodeConfig, NodeCore, NodeError, NodeEvent, Output,
    Storage, StoreOp, Stored, StrictCheck, ValidatorTiming,
};
use undchain_types::msg::{JobFileDelta, UtilityRequest};
use undchain_types::{
    BlockNumber, BlockTime, BoundedBytes, BoundedVec, ChainId, ChainParams, Envelope, Hash32,
    LocalTime, Message, PerceptionScore, SignedEnvelope, SigningKey, TokenAmount, UtilityKind,
};

pub(crate) const T0: i64 = 1_000_000_000_000;

pub(crate) fn key(n: u8) -> SigningKey {
    SigningKey::from_seed([n; 32])
}

/// A one-validator chain whose client `key(1)` holds 1,000 tokens.
fn config() -> NodeConfig {
    let mut params = ChainParams::new(
        ChainId(3),
        key(9).public(),
        BlockTime(T0 as u64 + 1_000_000),
    );
    params.active_seats = 1;
    params.ack_fanout = 1;
    params.payout_period_us = 10 * params.block_interval_us;
    let genesis = Genesis {
        params: params.clone(),
        validators: vec![GenesisValidator {
            key: key(0).public(),
            known: false,
        }],
        balances: vec![(key(1).public(), TokenAmount(1_000))],
        co_chains: Vec::new(),
    };
    NodeConfig {
        key: key(0),
        genesis,
        timing: ValidatorTiming::for_delay(&params, 10_000),
        seed: 1,
        joining: None,
    }
}

/// A node whose agreed time is already online (correction 0).
fn node(store: &MemoryStore, now: LocalTime) -> NodeCore {
    node_with(&config(), store, now)
}

/// [`node`] with configuration `cfg`.
fn node_with(cfg: &NodeConfig, store: &MemoryStore, now: LocalTime) -> NodeCore {
    let mut stored = store.load().unwrap();
    if stored.time_correction.is_none() {
        stored.time_correction = Some(0);
    }
    let mut core = NodeCore::restore(cfg, now, &stored, Arc::new(StrictCheck)).unwrap();
    core.start(now);
    core
}

/// A fresh node driven to just after genesis.
pub(crate) fn started() -> (MemoryStore, LocalTime, NodeCore) {
    started_with(&config())
}

/// [`started`] with configuration `cfg`.
fn started_with(cfg: &NodeConfig) -> (MemoryStore, LocalTime, NodeCore) {
    let mut store = MemoryStore::new();
    let mut now = LocalTime::from_micros(T0 + 1_500_000);
    let mut core = node_with(cfg, &store, now);
    drive(
        &mut core,
        &mut store,
        &mut now,
        LocalTime::from_micros(T0 + 1_600_000),
    );
    (store, now, core)
}

pub(crate) fn request(client: &SigningKey, seq: u64, at: LocalTime) -> Arc<SignedEnvelope> {
    let body = UtilityRequest {
        kind: UtilityKind::Computation,
        units: 1,
        max_price_per_unit: TokenAmount(1),
        min_partner_score: PerceptionScore::MIN,
        partner_threshold: 1,
        co_clients: BoundedVec::default(),
        spec: BoundedBytes::default(),
    };
    let env = Envelope::new(
        client.public(),
        ChainId(3),
        seq,
        BlockTime(at.micros() as u64),
        body,
    );
    Arc::new(env.sign(client))
}

/// Carries out every batch (write, then promises) until `until`.
pub(crate) fn drive(
    core: &mut NodeCore,
    store: &mut MemoryStore,
    now: &mut LocalTime,
    until: LocalTime,
) -> Vec<Output> {
    let mut out = Vec::new();
    loop {
        while let Some(r) = core.ready() {
            let number = r.number();
            store.write(&r.persist).unwrap();
            out.extend(r.immediate);
            out.extend(r.after_persist);
            core.advance(number).unwrap();
        }
        match core.poll_timeout() {
            Some(t) if t <= until => {
                *now = t.max(*now);
                core.handle_timeout(*now);
            }
            _ => break,
        }
    }
    *now = until;
    out
}

fn events(out: &[Output]) -> Vec<&NodeEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn request_from_client_that_cannot_pay_is_refused_at_intake() {
    let (mut store, mut now, mut core) = started();
    let broke = key(2);
    core.handle_verified(now, request(&broke, 1, now)).unwrap();
    let r = core.ready().unwrap();
    assert!(
        r.persist
            .iter()
            .all(|op| !matches!(op, StoreOp::Accepted { .. })),
        "nothing filed"
    );
    let acks = r.after_persist.iter().chain(&r.immediate).filter(|o| {
        matches!(o, Output::Send { envelope, .. } if matches!(envelope.body(), Message::RequestAck(_)))
    });
    assert_eq!(acks.count(), 0, "no ack");
    let refused = r.immediate.iter().any(|o| {
        matches!(o, Output::Event(NodeEvent::RequestRefused { client, reason })
            if *client == broke.public() && reason.contains("free"))
    });
    assert!(refused, "{:?}", r.immediate);
    core.advance(r.number()).unwrap();
    drive(
        &mut core,
        &mut store,
        &mut now,
        LocalTime::from_micros(T0 + 9_000_000),
    );
    for b in &store.load().unwrap().blocks {
        assert!(
            b.requests.is_empty(),
            "block {} committed a job",
            b.block.header.number
        );
    }
}

/// How many request acks `out` sends, and whether it refused `client`'s
/// request for being at capacity.
fn acked_and_shed(out: &[Output], client: &SigningKey) -> (usize, bool) {
    let acks = out
        .iter()
        .filter(|o| matches!(o, Output::Send { envelope, .. } if matches!(envelope.body(), Message::RequestAck(_))))
        .count();
    let shed = out.iter().any(|o| {
        matches!(o, Output::Event(NodeEvent::RequestRefused { client: c, reason })
            if *c == client.public() && reason.contains("at capacity"))
    });
    (acks, shed)
}

#[test]
fn a_validator_at_its_intake_limit_sheds_new_requests_until_a_block_takes_them() {
    let mut cfg = config();
    cfg.timing.intake_limit_jobs = 2;
    let (mut store, mut now, mut core) = started_with(&cfg);
    let client = key(1);
    let mut out = Vec::new();
    for seq in 1..=3 {
        core.handle_verified(now, request(&client, seq, now))
            .unwrap();
        let r = core.ready().unwrap();
        let number = r.number();
        store.write(&r.persist).unwrap();
        out.push((
            r.persist
                .iter()
                .filter(|op| matches!(op, StoreOp::Accepted { .. }))
                .count(),
            [r.immediate, r.after_persist].concat(),
        ));
        core.advance(number).unwrap();
    }
    for (i, (filed, o)) in out.iter().enumerate().take(2) {
        assert_eq!(*filed, 1, "request {} filed", i + 1);
        assert_eq!(acked_and_shed(o, &client), (1, false), "request {}", i + 1);
    }
    assert_eq!(out[2].0, 0, "the third request is not filed");
    assert_eq!(
        acked_and_shed(&out[2].1, &client),
        (0, true),
        "shed, not acked"
    );
    // Once blocks commit the two, intake takes requests again.
    drive(
        &mut core,
        &mut store,
        &mut now,
        LocalTime::from_micros(T0 + 6_000_000),
    );
    let committed: usize = store
        .load()
        .unwrap()
        .blocks
        .iter()
        .map(|b| b.requests.len())
        .sum();
    assert_eq!(committed, 2, "the two acked jobs are committed");
    core.handle_verified(now, request(&client, 4, now)).unwrap();
    let r = core.ready().unwrap();
    let o = [r.immediate.clone(), r.after_persist.clone()].concat();
    assert_eq!(acked_and_shed(&o, &client), (1, false), "taken again");
}

/// The block each ack names, and whether a `BlocksFull` refusal came.
fn acked_block_and_full(out: &[Output]) -> (Option<BlockNumber>, bool) {
    let block = out.iter().find_map(|o| match o {
        Output::Send { envelope, .. } => match envelope.body() {
            Message::RequestAck(a) => Some(a.block),
            _ => None,
        },
        _ => None,
    });
    let full = out.iter().any(|o| {
        matches!(o, Output::Event(NodeEvent::RequestRefused { reason, .. })
            if reason.contains("blocks full"))
    });
    (block, full)
}

#[test]
fn a_full_block_sends_intake_to_the_next_and_both_full_refuse() {
    let mut cfg = config();
    cfg.genesis.params.max_block_jobs = 2;
    let (mut store, mut now, mut core) = started_with(&cfg);
    let client = key(1);
    let mut seen = Vec::new();
    for seq in 1..=5 {
        core.handle_verified(now, request(&client, seq, now))
            .unwrap();
        let r = core.ready().unwrap();
        let number = r.number();
        store.write(&r.persist).unwrap();
        seen.push(acked_block_and_full(
            &[r.immediate, r.after_persist].concat(),
        ));
        core.advance(number).unwrap();
    }
    let (b0, b1) = (Some(BlockNumber(0)), Some(BlockNumber(1)));
    assert_eq!(
        seen,
        vec![
            (b0, false),
            (b0, false),
            (b1, false),
            (b1, false),
            (None, true)
        ],
        "two in block 0, two in block 1, the fifth refused"
    );
    drive(
        &mut core,
        &mut store,
        &mut now,
        LocalTime::from_micros(T0 + 8_000_000),
    );
    let blocks = store.load().unwrap().blocks;
    let sizes: Vec<usize> = blocks.iter().take(2).map(|b| b.requests.len()).collect();
    assert_eq!(sizes, vec![2, 2], "each block takes its two");
    assert!(blocks.iter().all(|b| b.requests.len() <= 2));
}

#[test]
fn ack_goes_out_only_after_its_write() {
    let (_store, now, mut core) = started();
    core.handle_verified(now, request(&key(1), 1, now)).unwrap();
    let r = core.ready().unwrap();
    assert!(
        r.persist
            .iter()
            .any(|op| matches!(op, StoreOp::Accepted { .. }))
    );
    let is_ack = |o: &Output| matches!(o, Output::Send { envelope, .. } if matches!(envelope.body(), Message::RequestAck(_)));
    assert!(
        !r.immediate.iter().any(is_ack),
        "an ack never goes before the write"
    );
    assert!(r.after_persist.iter().any(is_ack));
}

#[test]
fn validator_messages_from_strangers_are_refused() {
    let store = MemoryStore::new();
    let now = LocalTime::from_micros(T0 + 1_500_000);
    let mut core = node(&store, now);
    while let Some(r) = core.ready() {
        core.advance(r.number()).unwrap();
    }
    let stranger = key(7);
    let delta = JobFileDelta {
        block: BlockNumber(0),
        added: BoundedVec::default(),
        count: 5,
        root: Hash32([1; 32]),
        status: None,
    };
    let env = Envelope::new(
        stranger.public(),
        ChainId(3),
        1,
        BlockTime(now.micros() as u64),
        delta,
    )
    .sign(&stranger);
    let err = core.handle_verified(now, Arc::new(env)).unwrap_err();
    assert!(matches!(err, NodeError::NotAValidator { .. }), "{err}");
    assert!(core.ready().is_none(), "a refused input changes nothing");
    let other_chain = Envelope::new(
        stranger.public(),
        ChainId(4),
        2,
        BlockTime(now.micros() as u64),
        Message::TimeProbe(undchain_types::msg::TimeProbe { nonce: 1, t1: 0 }),
    )
    .sign(&stranger);
    assert!(matches!(
        core.handle_envelope(now, &other_chain.to_bytes()),
        Err(NodeError::WrongChain { .. })
    ));
    assert!(matches!(
        core.handle_envelope(now, &[1, 2, 3]),
        Err(NodeError::Wire(_))
    ));
}

#[test]
fn restore_rebuilds_the_chain_from_stored_state_only() {
    let (mut store, mut now, mut core) = started();
    for seq in 1..=5 {
        core.handle_verified(now, request(&key(1), seq, now))
            .unwrap();
    }
    let out = drive(
        &mut core,
        &mut store,
        &mut now,
        LocalTime::from_micros(T0 + 12_000_000),
    );
    let committed = events(&out)
        .iter()
        .filter(|e| matches!(e, NodeEvent::BlockCommitted { .. }))
        .count();
    assert!(committed >= 4, "{committed} blocks");
    let stored: Stored = store.load().unwrap();
    let jobs: usize = stored.blocks.iter().map(|b| b.requests.len()).sum();
    assert_eq!(jobs, 5);
    let v = core.validator();
    let again = NodeCore::restore(&config(), now, &stored, Arc::new(StrictCheck)).unwrap();
    assert_eq!(again.validator().height(), v.height());
    assert_eq!(again.validator().ledger().root(), v.ledger().root());
    assert_eq!(again.validator().last_hash(), v.last_hash());
}
