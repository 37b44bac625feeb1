//! The partner desk composed into a `NodeCore` (issue 16): a partner
//! registers with a validator node, a client's request reaches it as a
//! notification, its response reaches the client as an offer.

use std::sync::Arc;

use crate::node_core::{T0, drive, key, request, started};
use undchain_roles::validator::DeskError;
use undchain_roles::{NodeError, Output};
use undchain_types::msg::{JobResponse, ReadyToProvide, Subscribe, UtilityStarted};
use undchain_types::{
    BlockTime, BoundedVec, ChainId, Envelope, JobId, LocalTime, Message, SignedEnvelope,
    SigningKey, TokenAmount, UtilityKind,
};

fn from(k: &SigningKey, seq: u64, now: LocalTime, body: impl Into<Message>) -> Arc<SignedEnvelope> {
    let env = Envelope::new(
        k.public(),
        ChainId(3),
        seq,
        BlockTime(now.micros() as u64),
        body,
    );
    Arc::new(env.sign(k))
}

fn sent_to(out: &[Output], to: &SigningKey) -> Vec<Message> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to: t, envelope } if *t == to.public() => Some(envelope.body().clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn node_core_notifies_subscribed_partners_and_streams_their_offers() {
    let (mut store, mut now, mut core) = started();
    let (partner, client) = (key(5), key(1));
    let kinds = || BoundedVec::try_from_vec(vec![UtilityKind::Computation]).unwrap();
    let ready = ReadyToProvide {
        kinds: kinds(),
        capacity: 2,
        price_per_unit: TokenAmount(1),
        centralized: None,
        media: BoundedVec::default(),
    };
    core.handle_verified(now, from(&partner, 1, now, ready))
        .unwrap();
    core.handle_verified(now, from(&partner, 2, now, Subscribe { kinds: kinds() }))
        .unwrap();
    let req = request(&client, 1, now);
    let job = JobId::from_request_digest(req.digest());
    core.handle_verified(now, req).unwrap();
    let until = now.plus(1_000);
    let out = drive(&mut core, &mut store, &mut now, until);
    let notes: Vec<_> = sent_to(&out, &partner)
        .into_iter()
        .filter_map(|m| match m {
            Message::JobNotification(n) => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(
        notes.len(),
        1,
        "the subscribed partner is notified of the filed job"
    );
    assert_eq!(notes[0].job, job);
    let resp = JobResponse {
        job,
        price_per_unit: TokenAmount(1),
        units: 1,
    };
    core.handle_verified(now, from(&partner, 3, now, resp))
        .unwrap();
    let until = now.plus(1_000);
    let out = drive(&mut core, &mut store, &mut now, until);
    let offers: Vec<_> = sent_to(&out, &client)
        .into_iter()
        .filter_map(|m| match m {
            Message::PartnerOffer(o) => Some(o),
            _ => None,
        })
        .collect();
    assert_eq!(offers.len(), 1);
    assert_eq!(
        (offers[0].partner, offers[0].last),
        (partner.public(), true)
    );
    // A stranger claiming the job started is refused and changes nothing.
    let stranger = key(7);
    let bogus = UtilityStarted {
        job,
        client: client.public(),
        started_at: BlockTime(T0 as u64),
        content_root: None,
    };
    assert_eq!(
        core.handle_verified(now, from(&stranger, 1, now, bogus)),
        Err(NodeError::Partner(DeskError::NotInJob {
            job,
            from: stranger.public()
        }))
    );
}
