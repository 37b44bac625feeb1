//! Connection admission (`Admission`) under the floods of issue 14: client
//! floods against validator budgets, handshake floods, one host taking
//! every slot, simultaneous dials, idle clients.

use std::collections::BTreeSet;

use crate::support::{at, pk};
use undchain_net::{
    Admission, AdmissionConfig, AdmissionCounts, AdmissionError, Claim, Incoming, PeerClass,
};

fn cfg() -> AdmissionConfig {
    AdmissionConfig {
        validator_slots: 3,
        client_slots: 4,
        per_host: 2,
        handshakes: 4,
        validator_handshakes: 2,
        handshakes_per_host: 2,
        retry_above: 3,
        client_idle_us: 30_000_000,
        race_window_us: 5_000_000,
    }
}

/// The admission of node 0 with nodes 1..=3 listed as validators.
fn admission() -> Admission<String> {
    let mut a = Admission::new(cfg(), pk(0));
    a.set_validator_keys([pk(1), pk(2), pk(3)].into_iter().collect::<BTreeSet<_>>());
    a
}

fn addr(host: u32, port: u32) -> String {
    format!("10.0.{host}.1:{port}")
}

/// Runs a whole inbound connection: handshake place, then the slot.
fn inbound(
    a: &mut Admission<String>,
    key: usize,
    claim: Claim,
    source: &str,
) -> Result<PeerClass, AdmissionError> {
    let Incoming::Accept(id) = a.handle_incoming(&source.to_owned(), true)? else {
        panic!("a validated source is never asked to retry")
    };
    let src = a.finish_handshake(id)?;
    a.admit_inbound(at(0), pk(key), claim, &src)
        .map(|x| x.class)
}

#[test]
fn client_flood_never_takes_a_validator_slot() {
    let mut a = admission();
    for i in 0..4 {
        let c = 100 + i;
        assert_eq!(
            inbound(&mut a, c, Claim::ClientOrPartner, &addr(i as u32, 1)),
            Ok(PeerClass::ClientOrPartner)
        );
    }
    // The client budget is spent: the next client is refused...
    let before = a.counts();
    assert_eq!(
        inbound(&mut a, 200, Claim::ClientOrPartner, &addr(9, 1)),
        Err(AdmissionError::ClientSlotsFull { cap: 4 })
    );
    assert_eq!(a.counts(), before, "a refusal changes nothing");
    // ...and a validator still gets its slot, whatever it claims.
    assert_eq!(
        inbound(&mut a, 1, Claim::Validator, &addr(20, 1)),
        Ok(PeerClass::Validator)
    );
    assert_eq!(
        inbound(&mut a, 2, Claim::ClientOrPartner, &addr(21, 1)),
        Ok(PeerClass::Validator)
    );
    assert_eq!(
        a.counts(),
        AdmissionCounts {
            handshakes: 0,
            validators: 2,
            clients: 4
        }
    );
    // A validator claim under an unlisted key is refused outright.
    assert_eq!(
        inbound(&mut a, 66, Claim::Validator, &addr(22, 1)),
        Err(AdmissionError::NotAListedValidator { key: pk(66) })
    );
}

#[test]
fn one_host_gets_its_share_and_no_more() {
    let mut a = admission();
    for i in 0..2 {
        inbound(
            &mut a,
            100 + i,
            Claim::ClientOrPartner,
            &addr(1, 1 + i as u32),
        )
        .unwrap();
    }
    // The host holds its two client connections: refused before the
    // handshake costs anything.
    assert!(matches!(
        a.handle_incoming(&addr(1, 9), true),
        Err(AdmissionError::HostFull { cap: 2, .. })
    ));
    // Handshakes per host are bounded too.
    let mut a = admission();
    a.handle_incoming(&addr(2, 1), true).unwrap();
    a.handle_incoming(&addr(2, 2), true).unwrap();
    assert!(matches!(
        a.handle_incoming(&addr(2, 3), true),
        Err(AdmissionError::HostHandshakesFull { cap: 2, .. })
    ));
    assert_eq!(a.counts().handshakes, 2);
}

#[test]
fn handshake_flood_asks_for_address_proof_and_spares_validators_sources() {
    let mut a = admission();
    // Validator 1 connected once from its address: that source is known.
    inbound(&mut a, 1, Claim::Validator, &addr(50, 7000)).unwrap();
    // A flood of handshakes from many hosts, none finished.
    let mut ids = Vec::new();
    for h in 0..3 {
        match a.handle_incoming(&addr(h, 1), false).unwrap() {
            Incoming::Accept(id) => ids.push(id),
            Incoming::Retry => panic!("not under load yet"),
        }
    }
    // Under load: unvalidated sources must prove their address first.
    assert_eq!(a.handle_incoming(&addr(3, 1), false), Ok(Incoming::Retry));
    // Validated ones fill the pool...
    assert!(matches!(
        a.handle_incoming(&addr(4, 1), true),
        Ok(Incoming::Accept(_))
    ));
    assert_eq!(
        a.handle_incoming(&addr(5, 1), true),
        Err(AdmissionError::HandshakesFull { pending: 4, cap: 4 })
    );
    // ...but the validator's own source draws on its own pool.
    let Ok(Incoming::Accept(v)) = a.handle_incoming(&addr(50, 7000), true) else {
        panic!("the validator's source must be let in")
    };
    let src = a.finish_handshake(v).unwrap();
    // The validator reconnects (its old connection is replaced).
    let got = a
        .admit_inbound(at(10_000_000), pk(1), Claim::Validator, &src)
        .unwrap();
    assert!(got.replaces.is_some());
    // Failed handshakes give their places back.
    for id in ids {
        a.handle_handshake_failed(id).unwrap();
    }
    assert_eq!(a.counts().handshakes, 1);
    assert!(a.handle_handshake_failed(v).is_err(), "already finished");
}

#[test]
fn simultaneous_dial_keeps_exactly_one_connection() {
    // Nodes 1 and 2 are validators of each other and dial at the same time:
    // each side sees its own outbound and the other's inbound connection.
    let listed: BTreeSet<_> = [pk(1), pk(2)].into_iter().collect();
    let (lo, hi) = if pk(1) < pk(2) { (1, 2) } else { (2, 1) };
    let side = |me: usize, other: usize| {
        let mut a: Admission<String> = Admission::new(cfg(), pk(me));
        a.set_validator_keys(listed.clone());
        let out = a
            .admit_outbound(at(1_000), pk(other), &format!("v{other}:1"))
            .unwrap();
        let inb = a.admit_inbound(
            at(2_000),
            pk(other),
            Claim::Validator,
            &format!("v{other}:1"),
        );
        (out.conn, inb, a)
    };
    // On the lower key's side its own outbound connection stays.
    let (lo_out, lo_in, lo_side) = side(lo, hi);
    assert_eq!(lo_in, Err(AdmissionError::Duplicate { key: pk(hi) }));
    assert_eq!(lo_side.current(&pk(hi)), Some(lo_out));
    // On the higher key's side the inbound one (the same connection,
    // dialed by the lower key) replaces its own outbound.
    let (hi_out, hi_in, hi_side) = side(hi, lo);
    let hi_in = hi_in.unwrap();
    assert_eq!(hi_in.replaces, Some(hi_out));
    assert_eq!(hi_side.current(&pk(lo)), Some(hi_in.conn));
    assert_eq!(lo_side.counts().validators, 1);
    assert_eq!(hi_side.counts().validators, 1);
}

#[test]
fn a_redial_after_the_race_window_replaces_the_old_connection() {
    let mut a = admission();
    let out = a.admit_outbound(at(0), pk(2), &addr(7, 1)).unwrap();
    // Long after, the peer dials us (it lost the old connection): newest
    // wins whatever the keys.
    let got = a
        .admit_inbound(at(60_000_000), pk(2), Claim::Validator, &addr(7, 1))
        .unwrap();
    assert_eq!(got.replaces, Some(out.conn));
    assert_eq!(a.counts().validators, 1);
    // The replaced connection closing later frees nothing and is not the
    // key's current one.
    assert_eq!(a.handle_closed(out.conn), None);
    assert_eq!(a.handle_closed(got.conn), Some(pk(2)));
    assert_eq!(a.counts().validators, 0);
}

#[test]
fn idle_clients_are_closed_validators_and_our_own_dials_are_not() {
    let mut a = admission();
    let src = addr(1, 1);
    let Incoming::Accept(h) = a.handle_incoming(&src, true).unwrap() else {
        unreachable!()
    };
    a.finish_handshake(h).unwrap();
    let c = a
        .admit_inbound(at(0), pk(100), Claim::ClientOrPartner, &src)
        .unwrap();
    let v = a.admit_outbound(at(0), pk(1), &addr(2, 1)).unwrap();
    // A client we dialed ourselves is ours to close, never idled out.
    let ours = a.admit_outbound(at(0), pk(101), &addr(3, 1)).unwrap();
    assert_eq!(a.poll_timeout(), Some(at(30_000_000)));
    // Activity postpones the close; early wake-ups close nothing.
    a.handle_activity(at(20_000_000), c.conn);
    assert_eq!(a.handle_timeout(at(30_000_000)), vec![]);
    assert_eq!(a.poll_timeout(), Some(at(50_000_000)));
    assert_eq!(a.handle_timeout(at(50_000_000)), vec![(c.conn, pk(100))]);
    assert_eq!(a.poll_timeout(), None, "nothing else idles out");
    assert_eq!(a.current(&pk(1)), Some(v.conn));
    assert_eq!(a.current(&pk(101)), Some(ours.conn));
    assert_eq!(a.counts().clients, 1);
}
