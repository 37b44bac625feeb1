//! Network link scenarios (design notes, validator story item 10; DESIGN.md
//! "Network link"): both owners must consent, either may end the link, and
//! a refused or ended link stalls neither chain.

use crate::support::*;
use undchain_ledger::Ledger;
use undchain_ledger::links::{
    LinkStatus, LocalNetwork, NetworkLinkError, NetworkLinkEvent, NetworkLinks,
};
use undchain_types::msg::{NetworkLink, NetworkLinkAction, NetworkLinkBody};
use undchain_types::{BlockNumber, ChainId, Hash32, HashAlgorithm, SigningKey};

const UND: &str = "undchain";
const FOREIGN: &str = "web4-clone";
const A: ChainId = ChainId(1);
const B: ChainId = ChainId(7);

/// One network: its link book, keys and a ledger that produces blocks.
struct Net {
    name: &'static str,
    chain: ChainId,
    owner: SigningKey,
    relay: SigningKey,
    links: NetworkLinks,
    ledger: Ledger,
    produced: u64,
}

impl Net {
    fn new(name: &'static str, chain: ChainId, seed: u64) -> Self {
        let owner = sk(seed);
        Net {
            name,
            chain,
            relay: sk(seed + 1),
            links: NetworkLinks::new(LocalNetwork {
                name: name.to_owned(),
                chain,
                owner: owner.public(),
            }),
            owner,
            ledger: ledger_on(chain, HashAlgorithm::Blake3, &[]),
            produced: 0,
        }
    }

    /// A message of this network's owner (or relay) to `peer`.
    fn msg(
        &self,
        peer: &Net,
        session: u64,
        action: NetworkLinkAction,
        key: &SigningKey,
    ) -> NetworkLink {
        NetworkLinkBody {
            network: self.name,
            chain: self.chain,
            peer_network: peer.name,
            peer_chain: peer.chain,
            session,
            action: &action,
        }
        .sign(key)
        .unwrap()
    }

    /// A consent from this network to `peer` for `session`, naming this
    /// network's relay, signed by `key` (the owner, or a key that may not).
    fn consent(&self, peer: &Net, session: u64, key: &SigningKey) -> NetworkLink {
        let relay = self.relay.public();
        self.msg(peer, session, NetworkLinkAction::Consent { relay }, key)
    }

    fn decide(&mut self, peer: &Net, session: u64, action: NetworkLinkAction) -> NetworkLink {
        let m = self.msg(peer, session, action, &self.owner);
        self.links.handle_local(&m).unwrap();
        m
    }

    /// Produces the next block (never consulting the link) and returns the
    /// anchors to send for it.
    fn produce(&mut self) -> Vec<NetworkLink> {
        let n = self.ledger.next_block().0;
        let out = empty(&mut self.ledger);
        self.produced += 1;
        self.links
            .anchors_to_send(BlockNumber(n), out.ledger_root, &self.relay)
    }

    fn peer_id(&self) -> (String, ChainId) {
        (self.name.to_owned(), self.chain)
    }
}

fn pair() -> (Net, Net) {
    let mut a = Net::new(UND, A, 10);
    let mut b = Net::new(FOREIGN, B, 20);
    a.links.admit(FOREIGN, B, b.owner.public());
    b.links.admit(UND, A, a.owner.public());
    (a, b)
}

#[test]
fn network_link_consent_required_from_both_owners() {
    let (mut a, mut b) = pair();
    // Nothing is anchored without a link.
    assert!(a.produce().is_empty());
    let propose = a.decide(
        &b,
        1,
        NetworkLinkAction::Propose {
            relay: a.relay.public(),
        },
    );
    assert_eq!(
        b.links.handle_remote(&propose),
        Ok(NetworkLinkEvent::Proposed {
            peer: a.peer_id(),
            by_us: false
        })
    );
    // Proposed is not consented: no anchors either way, and an anchor sent
    // anyway is refused.
    assert!(a.produce().is_empty());
    assert!(b.produce().is_empty());
    let pushy = b.msg(
        &a,
        1,
        NetworkLinkAction::Anchor {
            block: BlockNumber(0),
            block_hash: Hash32([1; 32]),
        },
        &b.relay,
    );
    assert!(matches!(
        a.links.handle_remote(&pushy),
        Err(NetworkLinkError::WrongState { .. })
    ));

    // A consent signed by someone else than B's owner is refused.
    let fake = b.consent(&a, 1, &b.relay);
    assert!(matches!(
        a.links.handle_remote(&fake),
        Err(NetworkLinkError::WrongSigner { .. })
    ));
    // B's owner's consent to a third network cannot be replayed to A.
    let third = Net::new("third", ChainId(9), 30);
    let elsewhere = b.consent(&third, 1, &b.owner);
    assert!(matches!(
        a.links.handle_remote(&elsewhere),
        Err(NetworkLinkError::NotForUs { .. })
    ));
    // A consent for another session does not match the proposal.
    let wrong_session = b.consent(&a, 2, &b.owner);
    assert!(matches!(
        a.links.handle_remote(&wrong_session),
        Err(NetworkLinkError::WrongState { .. })
    ));
    // A tampered message fails its signature.
    let mut tampered = b.consent(&a, 1, &b.owner);
    tampered.session = 3;
    assert_eq!(
        a.links.handle_remote(&tampered),
        Err(NetworkLinkError::BadSignature)
    );
    // A network nobody admitted cannot even propose.
    let stranger = third.msg(
        &a,
        1,
        NetworkLinkAction::Propose {
            relay: third.relay.public(),
        },
        &third.owner,
    );
    assert!(matches!(
        a.links.handle_remote(&stranger),
        Err(NetworkLinkError::UnknownPeer { .. })
    ));
    assert!(!a.links.is_active(&b.peer_id()));

    // B's owner consents: the link is up on both sides.
    let consent = b.decide(
        &a,
        1,
        NetworkLinkAction::Consent {
            relay: b.relay.public(),
        },
    );
    assert!(b.links.is_active(&a.peer_id()));
    assert_eq!(
        a.links.handle_remote(&consent),
        Ok(NetworkLinkEvent::Established {
            peer: b.peer_id(),
            session: 1
        })
    );
    // Anchors now flow both ways, only hashes, signed by the relays.
    let from_a = a.produce();
    let from_b = b.produce();
    assert_eq!((from_a.len(), from_b.len()), (1, 1));
    assert!(matches!(
        b.links.handle_remote(&from_a[0]),
        Ok(NetworkLinkEvent::Anchored { .. })
    ));
    assert!(matches!(
        a.links.handle_remote(&from_b[0]),
        Ok(NetworkLinkEvent::Anchored { .. })
    ));
    assert_eq!(
        a.links.anchor(&b.peer_id()).map(|(n, _)| n),
        Some(BlockNumber(1))
    );
    // A replayed anchor is refused.
    assert!(matches!(
        b.links.handle_remote(&from_a[0]),
        Err(NetworkLinkError::StaleAnchor { .. })
    ));
}

#[test]
fn network_link_ended_link_stalls_neither_chain() {
    let (mut a, mut b) = pair();
    let propose = a.decide(
        &b,
        1,
        NetworkLinkAction::Propose {
            relay: a.relay.public(),
        },
    );
    b.links.handle_remote(&propose).unwrap();
    let consent = b.decide(
        &a,
        1,
        NetworkLinkAction::Consent {
            relay: b.relay.public(),
        },
    );
    a.links.handle_remote(&consent).unwrap();

    let mut anchored_at_b = 0;
    let mut refused_at_b = 0;
    let mut end_in_flight: Option<NetworkLink> = None;
    for step in 0..30 {
        // B's owner ends the link at step 10; A hears of it 3 steps later.
        if step == 10 {
            end_in_flight = Some(b.decide(&a, 1, NetworkLinkAction::End));
            assert!(!b.links.is_active(&a.peer_id()));
        }
        if step == 13 {
            let end = end_in_flight.take().unwrap();
            assert_eq!(
                a.links.handle_remote(&end),
                Ok(NetworkLinkEvent::Ended {
                    peer: b.peer_id(),
                    by_us: false
                })
            );
        }
        for m in a.produce() {
            match b.links.handle_remote(&m) {
                Ok(_) => anchored_at_b += 1,
                Err(NetworkLinkError::WrongState { .. }) => refused_at_b += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        for m in b.produce() {
            a.links.handle_remote(&m).unwrap();
        }
    }
    // Both chains produced every block; anchoring stopped cleanly.
    assert_eq!((a.produced, b.produced), (30, 30));
    assert_eq!(anchored_at_b, 10);
    assert_eq!(refused_at_b, 3, "A's anchors while the end was in flight");
    assert_eq!(
        a.links.status(&b.peer_id()),
        Some(&LinkStatus::Ended { session: 1 })
    );
    // The old proposal and consent cannot bring the link back ...
    assert!(matches!(
        b.links.handle_remote(&propose),
        Err(NetworkLinkError::OldSession { .. })
    ));
    assert!(matches!(
        a.links.handle_remote(&consent),
        Err(NetworkLinkError::WrongState { .. })
    ));
    // ... a fresh session with both consents can.
    let p2 = a.decide(
        &b,
        2,
        NetworkLinkAction::Propose {
            relay: a.relay.public(),
        },
    );
    b.links.handle_remote(&p2).unwrap();
    let c2 = b.decide(
        &a,
        2,
        NetworkLinkAction::Consent {
            relay: b.relay.public(),
        },
    );
    a.links.handle_remote(&c2).unwrap();
    assert!(a.links.is_active(&b.peer_id()) && b.links.is_active(&a.peer_id()));
    let m = a.produce();
    assert!(matches!(
        b.links.handle_remote(&m[0]),
        Ok(NetworkLinkEvent::Anchored { .. })
    ));
}

#[test]
fn network_link_refused_link_stalls_neither_chain() {
    let (mut a, mut b) = pair();
    let propose = a.decide(
        &b,
        1,
        NetworkLinkAction::Propose {
            relay: a.relay.public(),
        },
    );
    b.links.handle_remote(&propose).unwrap();
    // B's owner never consents (refusal is silence, or an end).
    for _ in 0..20 {
        assert!(a.produce().is_empty());
        assert!(b.produce().is_empty());
    }
    let refuse = b.decide(&a, 1, NetworkLinkAction::End);
    a.links.handle_remote(&refuse).unwrap();
    for _ in 0..5 {
        assert!(a.produce().is_empty());
        assert!(b.produce().is_empty());
    }
    assert_eq!((a.produced, b.produced), (25, 25));
    assert_eq!(a.ledger.next_block(), BlockNumber(25));
    // Ending twice is refused, not a crash.
    let again = b.msg(&a, 1, NetworkLinkAction::End, &b.owner);
    assert!(matches!(
        b.links.handle_local(&again),
        Err(NetworkLinkError::WrongState { .. })
    ));
}

#[test]
fn network_link_both_proposing_the_same_session_is_mutual_consent() {
    let (mut a, mut b) = pair();
    let pa = a.decide(
        &b,
        5,
        NetworkLinkAction::Propose {
            relay: a.relay.public(),
        },
    );
    let pb = b.decide(
        &a,
        5,
        NetworkLinkAction::Propose {
            relay: b.relay.public(),
        },
    );
    assert!(matches!(
        b.links.handle_remote(&pa),
        Ok(NetworkLinkEvent::Established { .. })
    ));
    assert!(matches!(
        a.links.handle_remote(&pb),
        Ok(NetworkLinkEvent::Established { .. })
    ));
}
