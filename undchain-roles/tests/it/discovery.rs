//! Validator story item 1 beyond the genesis: a validator that was not in
//! the genesis discovers the network from its bootstrap list, inherits
//! the running network's time, catches up, registers and rotates into an
//! unknown seat; and what could go wrong (docs/PROTOCOL.md "Discovery and
//! registration").

use undchain_roles::NodeEvent;
use undchain_roles::sim::{SimConfig, World};
use undchain_sim::node_key;
use undchain_types::msg::{TransactionBody, TxOp, ValidatorRegistration};
use undchain_types::{BoundedString, BoundedVec, PublicKey, Trust};

use crate::support::assert_same_chain;

/// 4 genesis validators (1 known), 8-block payout periods, a light load,
/// one unknown newcomer (node 4).
fn world_with_newcomer(seed: u64, known: Option<usize>) -> World {
    let mut cfg = SimConfig::new(4, 30, seed);
    cfg.requests_per_block = 2;
    cfg.blocks_per_period = 8;
    cfg.known = known;
    cfg.newcomers = vec![Trust::Unknown];
    World::new(&cfg).unwrap()
}

fn registered_at(w: &World, i: usize, who: &PublicKey) -> Option<u64> {
    w.notices(i).iter().find_map(|e| match e {
        NodeEvent::ValidatorRegistered {
            validator, block, ..
        } if validator == who => Some(block.0),
        _ => None,
    })
}

fn signers(w: &World, i: usize, h: u64) -> Vec<PublicKey> {
    w.stored(i)
        .blocks
        .iter()
        .find(|b| b.block.header.number.0 == h)
        .map(|b| {
            let c = &b.block.certificate;
            c.signatures.iter().map(|s| s.validator).collect()
        })
        .unwrap_or_default()
}

#[test]
fn new_validator_discovers_registers_and_joins_time() {
    let mut w = world_with_newcomer(61, None);
    let late = w.newcomer(0);
    let me = node_key(late).public();
    w.run_until(w.block_start_us(2));
    assert!(w.core(late).is_none(), "the newcomer is down until started");
    w.start_late(late);
    w.run_until(w.block_start_us(7));
    // Discovery: every bootstrap validator replied with the active set
    // of four, and it was not registered yet.
    let replies: Vec<_> = w
        .notices(late)
        .iter()
        .filter_map(|e| match e {
            NodeEvent::Discovered {
                from,
                active,
                registered: None,
                validators,
                ..
            } => Some((*from, active.len(), *validators)),
            _ => None,
        })
        .collect();
    for i in 0..4 {
        let from = node_key(i).public();
        assert!(
            replies
                .iter()
                .any(|(f, n, v)| *f == from && *n == 4 && *v >= 4),
            "no reply from {i}: {replies:?}"
        );
    }
    // Time: inherited from the running network, never bootstrapped.
    let v = w.core(late).unwrap().validator();
    assert!(v.time_synced());
    let drift =
        v.time_correction().unwrap() - w.core(0).unwrap().validator().time_correction().unwrap();
    assert!(drift.abs() < 50_000, "agreed time {drift} us apart");
    // It sent its own registration once caught up, and every validator
    // committed it in the same block.
    assert!(
        w.notices(late)
            .iter()
            .any(|e| matches!(e, NodeEvent::RegistrationSent { nonce: 0 }))
    );
    let block = registered_at(&w, 0, &me).expect("registration committed");
    for i in 0..=4 {
        assert_eq!(registered_at(&w, i, &me), Some(block), "validator {i}");
        let core = w.core(i).unwrap().validator();
        assert_eq!(core.roster().trust(&me), Some(Trust::Unknown), "{i}");
        let record = core.ledger().validator(&me).expect("registry record");
        assert_eq!(record.alias.as_str(), "newcomer-0");
        assert_eq!(record.media.len(), 1);
    }
    // A passive validator now: it follows the chain, holds no seat yet.
    let v = w.core(late).unwrap().validator();
    assert!(!v.is_active() && !v.is_joining());
    w.run_until(w.block_start_us(8));
    let h = w.core(0).unwrap().validator().height().0;
    assert!(h >= 6, "height {h}");
    // The newcomer holds the same chain from block 0, caught up from the
    // others' certificates.
    for height in 0..h - 1 {
        assert_eq!(
            w.commits(late).get(&height),
            w.commits(0).get(&height),
            "{height}"
        );
    }
    assert_same_chain(&w, 4, h - 1);
}

#[test]
fn registered_validator_rotates_into_unknown_seat_at_period_end() {
    let mut w = world_with_newcomer(62, None);
    let late = w.newcomer(0);
    let me = node_key(late).public();
    // It comes up as the chain starts (its first hellos meet validators
    // whose time is online).
    w.run_until(w.block_start_us(0));
    w.start_late(late);
    w.run_until(w.block_start_us(7));
    let block = registered_at(&w, 0, &me).expect("registered before the period end");
    assert!(block < 7, "registered in block {block}");
    // Until the period ends (blocks 0..=7) only the genesis set signs.
    for h in 0..8 {
        assert!(!signers(&w, 0, h).contains(&me), "signed block {h}");
    }
    w.run_until(w.block_start_us(14));
    // Rotation at height 8: passive unknown validators go first.
    let rotated = w.notices(0).iter().any(|e| {
        matches!(e, NodeEvent::SetChanged { rotated: true, height, active, .. }
            if height.0 == 8 && active.contains(&me))
    });
    assert!(rotated, "{:?}", w.notices(0));
    assert!(w.core(late).unwrap().validator().is_active());
    // It votes: its key is in the certificates of the new period.
    let signed = (9..12).any(|h| signers(&w, 0, h).contains(&me));
    assert!(signed, "the newcomer never signed after rotating in");
    // The known validator kept its seat.
    let set = w.core(0).unwrap().validator().validator_set().clone();
    assert!(set.contains(&node_key(0).public()));
    assert_eq!(set.len(), 4);
    let h = w.core(0).unwrap().validator().height().0;
    assert_same_chain(&w, 4, h - 1);
    for height in 0..h - 1 {
        assert_eq!(
            w.commits(late).get(&height),
            w.commits(0).get(&height),
            "{height}"
        );
    }
}

#[test]
fn known_validators_wait_for_unknown_ones() {
    // 3 known validators and 1 unknown on 4 seats: 1 known seat, and two
    // known validators fill unknown seats, saying so. They hold them only
    // until unknown validators come: the newcomer is told, registers, and
    // takes a filler's seat at the period end.
    let mut w = world_with_newcomer(63, Some(3));
    let late = w.newcomer(0);
    let me = node_key(late).public();
    w.run_until(w.block_start_us(0));
    assert_eq!(w.core(0).unwrap().validator().validator_set().fillers(), 2);
    w.start_late(late);
    w.run_until(w.block_start_us(7));
    let told = w.notices(late).iter().any(|e| {
        matches!(
            e,
            NodeEvent::Discovered {
                known_filling_unknown: true,
                ..
            }
        )
    });
    assert!(
        told,
        "the replies did not say known validators fill unknown seats"
    );
    assert!(registered_at(&w, 0, &me).is_some());
    w.run_until(w.block_start_us(10));
    let set = w.core(0).unwrap().validator().validator_set().clone();
    assert!(set.contains(&me), "{set:?}");
    assert_eq!(set.known_seats(), 1);
    assert_eq!(set.fillers(), 1, "one filler gave its seat to the newcomer");
    assert_eq!(set.len(), 4);
}

/// Validator `to`'s roster after the run has no `who`, and no validator
/// reported registering it.
fn never_registered(w: &World, who: &PublicKey) {
    for i in 0..4 {
        let v = w.core(i).unwrap().validator();
        assert!(v.roster().trust(who).is_none(), "validator {i}");
        assert!(v.ledger().validator(who).is_none(), "validator {i}");
        assert_eq!(registered_at(w, i, who), None, "validator {i}");
    }
}

fn registration_tx(
    w: &World,
    sender: &undchain_types::SigningKey,
    reg: ValidatorRegistration,
) -> undchain_types::msg::Transaction {
    let nonce = w
        .core(0)
        .unwrap()
        .validator()
        .ledger()
        .account(&sender.public())
        .nonce;
    TransactionBody {
        chain_id: w.params().chain_id,
        sender: sender.public(),
        nonce,
        fee: w.params().transaction_fee,
        op: TxOp::RegisterValidator(Box::new(reg)),
    }
    .sign(sender)
}

#[test]
fn registration_with_a_bad_signature_is_never_committed() {
    let mut cfg = SimConfig::new(4, 20, 64);
    cfg.requests_per_block = 2;
    let mut w = World::new(&cfg).unwrap();
    w.run_until(w.block_start_us(2));
    let client = undchain_roles::sim::client_key(64, 3);
    let victim = node_key(77);
    // The client registers the victim's key with a consent it forged.
    let mut reg = ValidatorRegistration::consented(
        w.params().chain_id,
        &client,
        Trust::Unknown,
        BoundedString::default(),
        BoundedVec::new(),
    );
    reg.validator = victim.public();
    let tx = registration_tx(&w, &client, reg);
    w.send_signed(3, &[0, 1, 2, 3], tx);
    w.run_until(w.block_start_us(6));
    never_registered(&w, &victim.public());
    assert_same_chain(&w, 4, 4);
}

#[test]
fn replayed_registration_is_refused() {
    let mut cfg = SimConfig::new(4, 20, 65);
    cfg.requests_per_block = 2;
    let mut w = World::new(&cfg).unwrap();
    w.run_until(w.block_start_us(2));
    let client = undchain_roles::sim::client_key(65, 4);
    let key = node_key(78);
    let reg = ValidatorRegistration::consented(
        w.params().chain_id,
        &key,
        Trust::Unknown,
        BoundedString::default(),
        BoundedVec::new(),
    );
    let tx = registration_tx(&w, &client, reg.clone());
    w.send_signed(4, &[0, 1], tx.clone());
    w.run_until(w.block_start_us(5));
    let block = registered_at(&w, 0, &key.public()).expect("registered once");
    let fee_paid = |w: &World| {
        w.core(0)
            .unwrap()
            .validator()
            .ledger()
            .account(&client.public())
            .nonce
    };
    let after_first = fee_paid(&w);
    // The same transaction again, and the same registration with the
    // sponsor's next nonce: neither is committed.
    w.send_signed(4, &[2, 3], tx);
    let again = registration_tx(&w, &client, reg);
    w.send_signed(4, &[0, 3], again);
    w.run_until(w.block_start_us(9));
    for i in 0..4 {
        let registrations = w
            .notices(i)
            .iter()
            .filter(|e| matches!(e, NodeEvent::ValidatorRegistered { validator, .. } if *validator == key.public()))
            .count();
        assert_eq!(registrations, 1, "validator {i}");
        assert_eq!(registered_at(&w, i, &key.public()), Some(block));
    }
    assert_eq!(fee_paid(&w), after_first, "nothing more was charged");
}

#[test]
fn non_authority_cannot_register_a_known_validator() {
    let mut cfg = SimConfig::new(4, 20, 66);
    cfg.requests_per_block = 2;
    let mut w = World::new(&cfg).unwrap();
    w.run_until(w.block_start_us(2));
    // A funded validator key consents to being known and registers itself:
    // only the chain owner appoints known validators.
    let client = undchain_roles::sim::client_key(66, 2);
    let reg = ValidatorRegistration::consented(
        w.params().chain_id,
        &client,
        Trust::Known,
        BoundedString::default(),
        BoundedVec::new(),
    );
    let tx = registration_tx(&w, &client, reg);
    w.send_signed(2, &[0, 1, 2, 3], tx);
    w.run_until(w.block_start_us(6));
    never_registered(&w, &client.public());
    assert_same_chain(&w, 4, 4);
}

#[test]
fn hello_flood_from_unregistered_keys_is_bounded() {
    use std::sync::Arc;
    use undchain_roles::validator::{MAX_GREETED, MAX_REPLIES_PER_BLOCK};
    use undchain_roles::{NodeError, Output};
    use undchain_types::msg::{BlockRequest, DiscoveryReply, ValidatorHello};
    use undchain_types::{BlockNumber, BlockTime, ChainId, Envelope, Hash32, Message, SigningKey};

    let (mut store, mut now, mut core) = crate::node_core::started();
    let hello = ValidatorHello {
        trust: Trust::Unknown,
        media: BoundedVec::new(),
        tip: None,
        tip_hash: Hash32::ZERO,
    };
    let stranger = |i: u32| {
        let mut seed = [0x33u8; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        SigningKey::from_seed(seed)
    };
    let at = BlockTime(now.micros() as u64);
    let signed = |k: &SigningKey, seq: u64, body: Message| {
        Arc::new(Envelope::new(k.public(), ChainId(3), seq, at, body).sign(k))
    };
    let flood = 1_000u32;
    for i in 0..flood {
        let k = stranger(i);
        core.handle_verified(now, signed(&k, 1, Message::ValidatorHello(hello.clone())))
            .unwrap();
    }
    let until = now;
    let out = crate::node_core::drive(&mut core, &mut store, &mut now, until);
    let replies = out
        .iter()
        .filter(|o| matches!(o, Output::Send { envelope, .. } if matches!(envelope.body(), Message::DiscoveryReply(_))))
        .count();
    assert_eq!(
        replies, MAX_REPLIES_PER_BLOCK as usize,
        "replies within one block interval"
    );
    assert_eq!(core.validator().greeted_count(), MAX_GREETED);
    // The most recent hello senders may catch up; a forgotten one, like
    // any stranger, may not.
    let request = Message::BlockRequest(BlockRequest {
        from: BlockNumber(0),
        max: 4,
    });
    let recent = stranger(flood - 1);
    let served = core.handle_verified(now, signed(&recent, 2, request.clone()));
    assert!(served.is_ok(), "{served:?}");
    let forgotten = stranger(0);
    let err = core
        .handle_verified(now, signed(&forgotten, 2, request))
        .unwrap_err();
    assert!(matches!(err, NodeError::NotAValidator { .. }), "{err}");
    // A discovery reply to a validator that is not joining changes nothing.
    let reply = DiscoveryReply {
        validators: BoundedVec::new(),
        known_filling_unknown: false,
        active: BoundedVec::new(),
        height: BlockNumber(0),
        registered: None,
    };
    let err = core
        .handle_verified(now, signed(&recent, 3, Message::DiscoveryReply(reply)))
        .unwrap_err();
    assert!(matches!(err, NodeError::Discovery(_)), "{err}");
}

#[test]
fn restarted_newcomer_keeps_its_registration_and_takes_its_seat() {
    // The newcomer registers, goes down before the period end, and comes
    // back from its disk after it: its stored blocks hold its
    // registration and its time correction, so it neither says hello nor
    // registers again, and it votes in the seat the rotation gave it.
    let mut w = world_with_newcomer(67, None);
    let late = w.newcomer(0);
    let me = node_key(late).public();
    let sent = |w: &World| {
        w.notices(late)
            .iter()
            .filter(|e| matches!(e, NodeEvent::RegistrationSent { .. }))
            .count()
    };
    w.run_until(w.block_start_us(0));
    w.start_late(late);
    w.run_until(w.block_start_us(6));
    assert!(registered_at(&w, late, &me).is_some());
    let before = sent(&w);
    w.crash_now(late);
    w.run_until(w.block_start_us(9));
    w.restart_now(late);
    w.run_until(w.block_start_us(14));
    let v = w.core(late).unwrap().validator();
    assert_eq!(v.roster().trust(&me), Some(Trust::Unknown));
    assert!(!v.is_joining() && v.time_synced());
    assert_eq!(sent(&w), before, "registered once");
    assert!(v.is_active(), "the rotation at height 8 gave it a seat");
    let signed = (11..13).any(|h| signers(&w, 0, h).contains(&me));
    assert!(signed, "it never signed after coming back");
}
