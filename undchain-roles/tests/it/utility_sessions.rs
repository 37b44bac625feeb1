//! Utility sessions between a real client and a real partner (DESIGN.md
//! "Utility sessions"; client story step 5, partner story steps 4-8 and
//! their "what could go wrong"): storage with proofs, computation with
//! spot checks, a metered relay, checkpoints, receipts, partial claims and
//! storage challenges.

use crate::users::*;
use undchain_roles::client::UserEvent;
use undchain_roles::utility::{CHUNK_SIZE, check_answer};
use undchain_types::msg::{
    Challenge, CompletionAck, SessionBody, SessionMessage, StorageAnswer, StorageChallenge,
};
use undchain_types::{
    BlockNumber, BlockTime, BoundedBytes, JobId, LocalTime, Message, UtilityKind, wire,
};

fn blob(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 253) as u8).collect()
}

#[test]
fn storage_upload_meters_checkpoints_and_both_sign_the_receipt() {
    let (mut pair, job) = Pair::connected(UtilityKind::Storage, 10, 3);
    let data = blob(9 * CHUNK_SIZE + 5); // 10 chunks
    let root = pair
        .client
        .store(pair.now, job, pair.partner.key(), data.clone())
        .unwrap();
    pair.run();
    // UtilityStarted names the content root.
    let started: Vec<_> = pair
        .validator_bodies(false)
        .into_iter()
        .filter_map(|m| match m {
            Message::UtilityStarted(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(started.len(), 4);
    assert!(
        started
            .iter()
            .all(|s| s.content_root == Some(root) && s.job == job)
    );
    // Checkpoints every K = 4 chunks, cumulative.
    let cps: Vec<u64> = pair
        .events
        .iter()
        .filter_map(|(c, e)| match e {
            UserEvent::Checkpoint { units, .. } if *c => Some(*units),
            _ => None,
        })
        .collect();
    assert_eq!(cps, vec![4, 8]);
    // Both sent the receipt for 10 units at the agreed price 2.
    for by_client in [true, false] {
        let r = pair
            .validator_bodies(by_client)
            .into_iter()
            .find_map(|m| match m {
                Message::Receipt(r) => Some(r),
                _ => None,
            })
            .expect("a receipt");
        r.verify().unwrap();
        assert_eq!((r.terms.units, r.terms.amount.0), (10, 20));
        assert_eq!(r.terms.commit_block, BlockNumber(3));
    }
    // Fetch it back: every chunk checked against the root.
    pair.client
        .fetch(pair.now, job, pair.partner.key(), root, data.len() as u64)
        .unwrap();
    pair.run();
    assert_eq!(
        pair.client.take_blob(&job).unwrap(),
        data,
        "fetched blob equals the stored one"
    );
}

#[test]
fn receipt_from_partner_only_completes_job() {
    let (mut pair, job) = Pair::connected(UtilityKind::Storage, 2, 3);
    pair.client
        .store(pair.now, job, pair.partner.key(), blob(CHUNK_SIZE + 1))
        .unwrap();
    pair.run();
    // The client's receipts to validators are lost; the partner's counts.
    let from_partner: Vec<_> = pair
        .to_validators
        .iter()
        .filter(|(c, _, e)| !*c && matches!(e.body(), Message::Receipt(_)))
        .collect();
    assert_eq!(
        from_partner.len(),
        4,
        "the partner sends the receipt itself"
    );
    let Message::Receipt(r) = from_partner[0].2.body() else {
        unreachable!()
    };
    r.verify()
        .expect("signed by both: it completes the job on its own");
    let ack = CompletionAck {
        job,
        block: BlockNumber(5),
        first: true,
    };
    pair.partner
        .handle_verified(pair.now, &signed(1, ack))
        .unwrap();
    pair.run();
    assert!(pair.events.contains(&(
        false,
        UserEvent::Completed {
            job,
            block: BlockNumber(5)
        }
    )));
    assert_eq!(
        pair.partner.poll_timeout(),
        Some(LocalTime(1_000 + 60_000_000)),
        "only the heartbeat: nothing left to claim"
    );
}

#[test]
fn client_refuses_to_sign_partial_payout() {
    let (mut pair, job) = Pair::connected(UtilityKind::Storage, 10, 3);
    pair.client
        .store(pair.now, job, pair.partner.key(), blob(9 * CHUNK_SIZE + 5))
        .unwrap();
    // The client goes silent once the upload is done: the receipt offer
    // is never countersigned.
    pair.run();
    let receipts_before = pair
        .validator_bodies(false)
        .iter()
        .filter(|m| matches!(m, Message::Receipt(_)))
        .count();
    assert_eq!(
        receipts_before, 4,
        "honest run for comparison: the receipt went out"
    );

    let (mut pair, job2) = Pair::connected(UtilityKind::Storage, 10, 3);
    pair.client
        .store(pair.now, job2, pair.partner.key(), blob(9 * CHUNK_SIZE + 5))
        .unwrap();
    // Deliver the upload but drop the client's receipt signature.
    let pk = pair.partner.key();
    let mut guard = 0;
    loop {
        guard += 1;
        assert!(guard < 1000);
        let out = pair.client.drain();
        let pout = pair.partner.drain();
        if out.is_empty() && pout.is_empty() {
            break;
        }
        for o in out {
            if let undchain_roles::client::UserOutput::Send { to, envelope, .. } = o
                && to == pk
                && !matches!(
                    envelope.body(),
                    Message::Session(SessionMessage {
                        body: SessionBody::ReceiptSigned(_),
                        ..
                    })
                )
            {
                let _ = pair.partner.handle_verified(pair.now, &envelope);
            }
        }
        for o in pout {
            match o {
                undchain_roles::client::UserOutput::Send { to, envelope, .. }
                    if to == pair.client.key() =>
                {
                    let _ = pair.client.handle_verified(pair.now, &envelope);
                }
                undchain_roles::client::UserOutput::Send { to, envelope, .. } => {
                    pair.to_validators.push((false, to, envelope))
                }
                _ => {}
            }
        }
    }
    assert!(
        !pair
            .validator_bodies(false)
            .iter()
            .any(|m| matches!(m, Message::Receipt(_)))
    );
    // The receipt wait (10 s) passes: the partner claims the last
    // client-signed checkpoint.
    pair.advance_to(LocalTime(pair.now.0 + 10_000_000));
    let partials: Vec<_> = pair
        .validator_bodies(false)
        .into_iter()
        .filter_map(|m| match m {
            Message::PartialCompletion(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(partials.len(), 4);
    partials[0].verify().unwrap();
    let c = &partials[0].last_checkpoint.checkpoint;
    assert_eq!(
        (c.units, c.amount.0, c.counter),
        (8, 16, 2),
        "the proven part: 8 of 10 chunks"
    );
    assert!(pair.events.contains(&(
        false,
        UserEvent::PartialClaimed {
            job: job2,
            units: 8
        }
    )));
}

#[test]
fn client_vanishes_partner_claims_its_last_checkpoint() {
    let (mut pair, job) = Pair::connected(UtilityKind::Computation, 20, 3);
    pair.client
        .compute(pair.now, job, pair.partner.key(), job.0, 16, 20, 3)
        .unwrap();
    // Run a few rounds, then the client is gone.
    for _ in 0..7 {
        let out = pair.client.drain();
        let pk = pair.partner.key();
        for o in out {
            if let undchain_roles::client::UserOutput::Send { to, envelope, .. } = o
                && to == pk
            {
                let _ = pair.partner.handle_verified(pair.now, &envelope);
            }
        }
        let pout = pair.partner.drain();
        for o in pout {
            if let undchain_roles::client::UserOutput::Send { to, envelope, .. } = o
                && to == pair.client.key()
            {
                let _ = pair.client.handle_verified(pair.now, &envelope);
            }
        }
    }
    let delivered = pair.partner.session(&job).unwrap().delivered();
    assert!((4..20).contains(&delivered));
    pair.partner.client_gone(pair.now, job).unwrap();
    let out = pair.partner.drain();
    let partial = bodies(&out)
        .into_iter()
        .find_map(|(_, m)| match m {
            Message::PartialCompletion(p) => Some(p),
            _ => None,
        })
        .expect("a partial completion");
    partial.verify().unwrap();
    let units = partial.last_checkpoint.checkpoint.units;
    assert_eq!(units % 4, 0, "a checkpoint every K = 4 units");
    assert!(units > 0 && units <= delivered);
}

#[test]
fn partner_stops_serving_a_client_that_skips_checkpoints() {
    let (mut pair, job) = Pair::connected(UtilityKind::Computation, 40, 3);
    // A client that never signs: raw inputs only.
    let mut refused = None;
    for seq in 0..12 {
        let m = SessionMessage {
            job,
            body: SessionBody::Input {
                seq,
                bytes: BoundedBytes::default(),
            },
        };
        if let Err(e) = pair.partner.handle_verified(pair.now, &signed(CLIENT, m)) {
            refused = Some((seq, e));
            break;
        }
    }
    let (seq, e) = refused.expect("the partner stops");
    assert_eq!(seq, 8, "two intervals of K = 4 unproven at most");
    assert!(e.to_string().contains("waiting for a checkpoint"));
}

#[test]
fn compute_spot_check_catches_a_lying_partner() {
    let (mut pair, job) = Pair::connected(UtilityKind::Computation, 6, 3);
    pair.client
        .compute(pair.now, job, pair.partner.key(), job.0, 16, 6, 1)
        .unwrap();
    pair.run();
    let r = pair
        .validator_bodies(true)
        .into_iter()
        .find_map(|m| match m {
            Message::Receipt(r) => Some(r),
            _ => None,
        })
        .expect("an honest computation ends in a receipt");
    assert_eq!(r.terms.units, 6);
    // A forged output from the partner is caught by the spot check.
    let (mut pair, job) = Pair::connected(UtilityKind::Computation, 6, 3);
    pair.client
        .compute(pair.now, job, pair.partner.key(), job.0, 16, 6, 1)
        .unwrap();
    pair.client.drain();
    let forged = SessionMessage {
        job,
        body: SessionBody::Output {
            seq: 0,
            bytes: BoundedBytes::try_from_vec(vec![0; 32]).unwrap(),
            units: 1,
        },
    };
    assert!(
        pair.client
            .handle_verified(pair.now, &signed(PARTNER, forged))
            .is_err()
    );
    let ev = events(&pair.client.drain());
    assert!(
        ev.iter()
            .any(|e| matches!(e, UserEvent::SessionFailed { .. }))
    );
    assert_eq!(
        pair.client
            .session(&job, &pair.partner.key())
            .unwrap()
            .units(),
        0,
        "nothing paid for"
    );
}

#[test]
fn relay_session_is_metered_both_ways() {
    let (mut pair, job) = Pair::connected(UtilityKind::Access, 8, 3);
    pair.client
        .relay(
            pair.now,
            job,
            pair.partner.key(),
            vec![vec![1; 1500], vec![2; 100]],
        )
        .unwrap();
    pair.run();
    // 1500 bytes each way = 2 + 2 units, 100 bytes = 1 + 1: 6 units.
    assert_eq!(
        pair.client
            .session(&job, &pair.partner.key())
            .unwrap()
            .units(),
        6
    );
    pair.client.end(pair.now, job, pair.partner.key()).unwrap();
    pair.run();
    let r = pair
        .validator_bodies(false)
        .into_iter()
        .find_map(|m| match m {
            Message::Receipt(r) => Some(r),
            _ => None,
        })
        .expect("ended relay: receipt");
    assert_eq!((r.terms.units, r.terms.amount.0), (6, 12));
}

#[test]
fn client_receipt_resent_when_no_validator_confirms() {
    let (mut pair, job) = Pair::connected(UtilityKind::Storage, 1, 3);
    pair.client
        .store(pair.now, job, pair.partner.key(), blob(10))
        .unwrap();
    pair.run();
    let first: Vec<_> = pair
        .to_validators
        .iter()
        .filter(|(c, _, e)| *c && matches!(e.body(), Message::Receipt(_)))
        .map(|(_, t, _)| *t)
        .collect();
    assert_eq!(
        first,
        vec![v(0), v(1), v(2)],
        "the acking validator first, up to the fan-out"
    );
    pair.advance_to(LocalTime(pair.now.0 + 6_000_000));
    assert!(pair.events.contains(&(
        true,
        UserEvent::ReceiptResent {
            job,
            to: vec![v(3)]
        }
    )));
    pair.advance_to(LocalTime(pair.now.0 + 6_000_000));
    assert!(
        pair.events
            .iter()
            .any(|(c, e)| *c && matches!(e, UserEvent::ReceiptIgnored { .. }))
    );
}

#[test]
fn partner_answers_a_storage_challenge_and_cannot_for_a_dropped_chunk() {
    let (mut pair, job) = Pair::connected(UtilityKind::Storage, 3, 3);
    let root = pair
        .client
        .store(pair.now, job, pair.partner.key(), blob(2 * CHUNK_SIZE + 9))
        .unwrap();
    pair.run();
    let challenge = |id: u64, index: u32| Challenge {
        id,
        kind: UtilityKind::Storage,
        nonce: [id as u8; 32],
        payload: BoundedBytes::try_from_vec(wire::encode_bare(&StorageChallenge { root, index }))
            .unwrap(),
        deadline: BlockTime(0),
    };
    let answer_of = |pair: &mut Pair, c: Challenge| -> Option<StorageAnswer> {
        pair.partner
            .handle_verified(pair.now, &signed(1, c))
            .unwrap();
        let out = pair.partner.drain();
        bodies(&out).into_iter().find_map(|(_, m)| match m {
            Message::ChallengeResponse(r) => wire::decode_bare(r.answer.as_bytes()).ok(),
            _ => None,
        })
    };
    let q = StorageChallenge { root, index: 1 };
    let a = answer_of(&mut pair, challenge(1, 1)).expect("an honest partner answers");
    check_answer(&q, &a).unwrap();
    // A wrong chunk under that proof fails too.
    let mut forged = a.clone();
    forged.bytes = BoundedBytes::try_from_vec(vec![0; CHUNK_SIZE]).unwrap();
    assert!(check_answer(&q, &forged).is_err());
    // The partner drops chunk 1: the next challenge of it fails.
    assert!(pair.partner.store_mut().evict_chunk(&root, 1));
    assert!(
        answer_of(&mut pair, challenge(2, 1)).is_none(),
        "no answer proves a dropped chunk"
    );
}

use crate::users::sent_to as sent;

/// `ev` holds the failure of `job`'s session with `pk` for silence.
fn assert_failed_silent(ev: &[UserEvent], job: JobId, pk: undchain_types::PublicKey) {
    use undchain_roles::client::SessionFailure;
    let failed = UserEvent::SessionFailed {
        job,
        peer: pk,
        reason: SessionFailure::Silent {
            idle_us: SESSION_IDLE_US,
        },
    };
    assert!(ev.contains(&failed), "{ev:?}");
}

/// A storage upload of three chunks that reach the partner, with the
/// partner's answers to the client held back (returned, undelivered).
fn upload_with_answers_held() -> (
    Pair,
    JobId,
    Vec<std::sync::Arc<undchain_types::SignedEnvelope>>,
) {
    let (mut pair, job) = Pair::connected(UtilityKind::Storage, 3, 3);
    let (ck, pk) = (pair.client.key(), pair.partner.key());
    pair.client
        .store(pair.now, job, pk, blob(2 * CHUNK_SIZE + 1))
        .unwrap();
    let mut held = Vec::new();
    for env in &sent(&pair.client.drain(), &pk) {
        pair.partner.handle_verified(pair.now, env).unwrap();
        held.extend(sent(&pair.partner.drain(), &ck));
    }
    (pair, job, held)
}

#[test]
fn silent_partner_fails_the_upload_by_its_idle_deadline_and_a_late_receipt_is_refused() {
    use undchain_roles::client::{ClientError, SessionFailure};
    // The chunks reach the partner, whose answers (the deliveries and the
    // receipt offer) are held back: the partner is silent to the client.
    let (mut pair, job, held) = upload_with_answers_held();
    let pk = pair.partner.key();
    assert!(
        held.iter().any(|e| matches!(
            e.body(),
            Message::Session(SessionMessage {
                body: SessionBody::ReceiptOffer { .. },
                ..
            })
        )),
        "the partner offered its receipt"
    );
    let deadline = pair.now.plus(SESSION_IDLE_US);
    pair.client.handle_timeout(LocalTime(deadline.0 - 1));
    let failed = |e: &UserEvent| matches!(e, UserEvent::SessionFailed { .. });
    assert!(!events(&pair.client.drain()).iter().any(failed), "not yet");
    assert!(pair.client.poll_timeout().is_some_and(|t| t <= deadline));
    pair.client.handle_timeout(deadline);
    let ev: Vec<UserEvent> = events(&pair.client.drain())
        .into_iter()
        .filter(failed)
        .collect();
    assert_eq!(
        ev,
        vec![UserEvent::SessionFailed {
            job,
            peer: pk,
            reason: SessionFailure::Silent {
                idle_us: SESSION_IDLE_US
            },
        }]
    );
    assert!(pair.client.session(&job, &pk).unwrap().failed());
    // The partner's late answers: nothing taken, the receipt never
    // countersigned, no second failure reported.
    for env in &held {
        assert!(matches!(
            pair.client.handle_verified(deadline, env),
            Err(ClientError::SessionStopped { .. })
        ));
    }
    let out = pair.client.drain();
    assert!(bodies(&out).is_empty(), "{:?}", bodies(&out));
    assert!(events(&out).is_empty());
}

#[test]
fn a_replayed_message_of_a_silent_partner_does_not_keep_the_session_waiting() {
    // Found by campaign seed 6490: the network replayed an old session
    // message of a partner that had gone silent, and every replay moved
    // the client's idle deadline, so the session waited to the end.
    let (mut pair, job, held) = upload_with_answers_held();
    let pk = pair.partner.key();
    let first = held[0].clone();
    assert!(
        !matches!(
            first.body(),
            Message::Session(SessionMessage {
                body: SessionBody::ReceiptOffer { .. },
                ..
            })
        ),
        "the first answer is a delivery"
    );
    // The first answer arrives; then the partner falls silent, and its
    // answer is replayed twice inside the idle window.
    let heard = pair.now.plus(1_000);
    pair.client.handle_verified(heard, &first).unwrap();
    pair.client.drain();
    for k in 1..=2 {
        let t = heard.plus(k * SESSION_IDLE_US / 3);
        let _ = pair.client.handle_verified(t, &first);
        pair.client.drain();
    }
    let deadline = heard.plus(SESSION_IDLE_US);
    assert!(pair.client.poll_timeout().is_some_and(|t| t <= deadline));
    pair.client.handle_timeout(deadline);
    assert_failed_silent(&events(&pair.client.drain()), job, pk);
}

#[test]
fn silent_partner_fails_the_fetch_by_its_idle_deadline() {
    let (mut pair, job) = Pair::connected(UtilityKind::Storage, 2, 3);
    let pk = pair.partner.key();
    let data = blob(CHUNK_SIZE + 1);
    let root = pair.client.store(pair.now, job, pk, data.clone()).unwrap();
    pair.run();
    assert!(
        pair.events
            .iter()
            .any(|(c, e)| *c && matches!(e, UserEvent::ReceiptSent { .. })),
        "stored and countersigned"
    );
    // The partner goes silent: the fetch's requests are never answered.
    pair.client
        .fetch(pair.now, job, pk, root, data.len() as u64)
        .unwrap();
    assert!(!sent(&pair.client.drain(), &pk).is_empty());
    let t = pair.now.plus(SESSION_IDLE_US);
    pair.client.handle_timeout(t);
    assert_failed_silent(&events(&pair.client.drain()), job, pk);
    assert!(pair.client.take_blob(&job).is_none());
}

#[test]
fn idle_relay_with_nothing_in_flight_does_not_fail() {
    let (mut pair, job) = Pair::connected(UtilityKind::Access, 64, 3);
    let pk = pair.partner.key();
    pair.client
        .relay(pair.now, job, pk, vec![b"ping".to_vec()])
        .unwrap();
    pair.run();
    // The one input was answered: the client is not waiting on anything,
    // so its own pause is no partner's silence.
    pair.advance_to(pair.now.plus(10 * SESSION_IDLE_US));
    assert!(!pair.client.session(&job, &pk).unwrap().failed());
}
