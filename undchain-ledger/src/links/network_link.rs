//! Network link: mutual anchoring of block hashes with a foreign network
//! that has its own token (design notes, validator story item 10; DESIGN.md
//! "Network link", "Smaller decisions"; docs/PROTOCOL.md "Network link").
//!
//! Only hashes cross; no token does. A link needs both owners' signed
//! consent: one side proposes, the other consents (or both propose the same
//! session), each naming the relay key that will sign its anchors. While
//! the link is active each side sends its block hashes
//! ([`NetworkLinks::anchors_to_send`]) and keeps the other's latest
//! ([`NetworkLinks::anchor`]). Either owner may end it. Sessions number the
//! links with one peer: after an end, only a proposal of a later session
//! can start a new one, so an old consent cannot be replayed.
//!
//! Block production never consults this state: a refused, pending or ended
//! link stalls neither chain; late or unwanted messages are refused with a
//! typed error and change nothing.

use std::collections::BTreeMap;

use undchain_types::msg::{NetworkLink, NetworkLinkAction, NetworkLinkBody};
use undchain_types::{BlockNumber, ChainId, Hash32, PublicKey, SigningKey};

/// This network, as the link sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNetwork {
    /// The network's name, as link messages address it.
    pub name: String,
    /// The chain of this network whose blocks the link anchors.
    pub chain: ChainId,
    /// Its owner, who signs proposals, consents and ends.
    pub owner: PublicKey,
}

/// A foreign network: name and chain.
pub type PeerId = (String, ChainId);

/// Where the link with one peer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkStatus {
    /// No link has been proposed with this peer since it was admitted.
    Idle,
    /// This side proposed session `session`; waiting for consent.
    ProposedByUs {
        /// The session number this side proposed.
        session: u64,
        /// The key this side named to relay its anchors in the session.
        relay: PublicKey,
    },
    /// The peer proposed; this side's owner has not consented.
    ProposedByThem {
        /// The session number the peer proposed.
        session: u64,
        /// The key the peer named to relay its anchors.
        relay: PublicKey,
    },
    /// Both owners consented; anchors are sent and accepted.
    Active {
        /// The session number both owners consented to.
        session: u64,
        /// The key that relays this side's anchors.
        ours: PublicKey,
        /// The key that relays the peer's anchors.
        theirs: PublicKey,
    },
    /// Ended by either side.
    Ended {
        /// The session that ended.
        session: u64,
    },
}

impl LinkStatus {
    fn last_session(&self) -> Option<u64> {
        match self {
            LinkStatus::Idle => None,
            LinkStatus::ProposedByUs { session, .. }
            | LinkStatus::ProposedByThem { session, .. }
            | LinkStatus::Active { session, .. }
            | LinkStatus::Ended { session } => Some(*session),
        }
    }
}

/// Why a network-link message was refused. A refused message changes
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkLinkError {
    /// The signature does not verify.
    #[error("network-link signature does not verify")]
    BadSignature,
    /// Signed by another key than the one that may sign this action.
    #[error("signed by {got:?}, this action needs {expected:?}")]
    WrongSigner {
        /// The key that may sign it.
        expected: PublicKey,
        /// The key that did sign it.
        got: PublicKey,
    },
    /// The message is addressed to another network.
    #[error("message is for network {network:?} chain {chain}, not for this one")]
    NotForUs {
        /// The network name the message is addressed to.
        network: String,
        /// The chain the message is addressed to.
        chain: ChainId,
    },
    /// A local message not from this network.
    #[error("local message names network {network:?} chain {chain}")]
    NotOurs {
        /// The network name the local message carries.
        network: String,
        /// The chain the local message carries.
        chain: ChainId,
    },
    /// The foreign network was not admitted by this chain's owner.
    #[error("network {network:?} chain {chain} is not an admitted peer")]
    UnknownPeer {
        /// The name of the network that was not admitted.
        network: String,
        /// The chain of the network that was not admitted.
        chain: ChainId,
    },
    /// An anchor, consent or end without the matching link state.
    #[error("no {needed} link in session {session} (status {status:?})")]
    WrongState {
        /// The link state the message needs (`open`, `active`, `proposed-by-us`, ...).
        needed: &'static str,
        /// The session the message names.
        session: u64,
        /// The link's status when the message arrived.
        status: LinkStatus,
    },
    /// A session not after the last one.
    #[error("session {got} is not after session {last}")]
    OldSession {
        /// The latest session seen with this peer.
        last: u64,
        /// The session the message names.
        got: u64,
    },
    /// An anchor not after the last one.
    #[error("anchor of block {got} is not after block {last}")]
    StaleAnchor {
        /// The last anchored block.
        last: BlockNumber,
        /// The block number the new anchor names.
        got: BlockNumber,
    },
    /// A local anchor: anchors are made by [`NetworkLinks::anchors_to_send`].
    #[error("anchors are not local link decisions")]
    LocalAnchor,
}

/// What a handled network-link message changed, for the host to act on or report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkLinkEvent {
    /// A proposal is pending (ours or theirs).
    Proposed {
        /// The foreign network (name and chain) the proposal is with.
        peer: PeerId,
        /// Whether this side proposed.
        by_us: bool,
    },
    /// Both consented: anchoring starts.
    Established {
        /// The foreign network (name and chain) now linked.
        peer: PeerId,
        /// The session both owners consented to.
        session: u64,
    },
    /// A foreign block hash was anchored.
    Anchored {
        /// The foreign network (name and chain) whose block was anchored.
        peer: PeerId,
        /// The number of the anchored foreign block.
        block: BlockNumber,
        /// The foreign block's hash, as the peer's relay signed it.
        hash: Hash32,
    },
    /// The link ended, by either owner; no more anchors are accepted in its session.
    Ended {
        /// The foreign network (name and chain) whose link ended.
        peer: PeerId,
        /// Whether this side ended it.
        by_us: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Peer {
    owner: PublicKey,
    status: LinkStatus,
    last_anchor: Option<(BlockNumber, Hash32)>,
}

/// The network links of one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkLinks {
    local: LocalNetwork,
    peers: BTreeMap<PeerId, Peer>,
}

impl NetworkLinks {
    /// A link book for `local` with no admitted peers and no links yet.
    pub fn new(local: LocalNetwork) -> Self {
        NetworkLinks {
            local,
            peers: BTreeMap::new(),
        }
    }

    /// This network's name, chain and owner.
    pub fn local(&self) -> &LocalNetwork {
        &self.local
    }

    /// Admits a foreign network whose owner key is `owner` (a decision of
    /// this chain's owner); nothing is linked yet.
    pub fn admit(&mut self, network: &str, chain: ChainId, owner: PublicKey) {
        self.peers
            .entry((network.to_owned(), chain))
            .and_modify(|p| p.owner = owner)
            .or_insert(Peer {
                owner,
                status: LinkStatus::Idle,
                last_anchor: None,
            });
    }

    /// The link status with `peer`.
    pub fn status(&self, peer: &PeerId) -> Option<&LinkStatus> {
        self.peers.get(peer).map(|p| &p.status)
    }

    /// Whether the link with `peer` is active.
    pub fn is_active(&self, peer: &PeerId) -> bool {
        matches!(self.status(peer), Some(LinkStatus::Active { .. }))
    }

    /// The peer's latest anchored block.
    pub fn anchor(&self, peer: &PeerId) -> Option<(BlockNumber, Hash32)> {
        self.peers.get(peer).and_then(|p| p.last_anchor)
    }

    fn peer_mut(&mut self, network: &str, chain: ChainId) -> Result<&mut Peer, NetworkLinkError> {
        self.peers
            .get_mut(&(network.to_owned(), chain))
            .ok_or_else(|| NetworkLinkError::UnknownPeer {
                network: network.to_owned(),
                chain,
            })
    }

    /// Handles this network owner's own signed decision (propose, consent,
    /// end) before the host sends it to the peer.
    pub fn handle_local(&mut self, m: &NetworkLink) -> Result<NetworkLinkEvent, NetworkLinkError> {
        m.verify().map_err(|_| NetworkLinkError::BadSignature)?;
        if m.network.as_str() != self.local.name || m.chain != self.local.chain {
            return Err(NetworkLinkError::NotOurs {
                network: m.network.to_string(),
                chain: m.chain,
            });
        }
        if m.signer != self.local.owner {
            return Err(NetworkLinkError::WrongSigner {
                expected: self.local.owner,
                got: m.signer,
            });
        }
        let peer_id: PeerId = (m.peer_network.to_string(), m.peer_chain);
        let peer = self.peer_mut(&m.peer_network, m.peer_chain)?;
        let next = match (&m.action, &peer.status) {
            // Both proposed the same session: each proposal is that side's
            // consent.
            (
                NetworkLinkAction::Propose { relay } | NetworkLinkAction::Consent { relay },
                LinkStatus::ProposedByThem {
                    session,
                    relay: theirs,
                },
            ) if *session == m.session => LinkStatus::Active {
                session: m.session,
                ours: *relay,
                theirs: *theirs,
            },
            (NetworkLinkAction::Propose { relay }, s) => {
                fresh_session(s, m.session)?;
                LinkStatus::ProposedByUs {
                    session: m.session,
                    relay: *relay,
                }
            }
            (NetworkLinkAction::End, LinkStatus::Idle | LinkStatus::Ended { .. }) => {
                return Err(wrong_state("open", m.session, &peer.status));
            }
            (NetworkLinkAction::End, s) if s.last_session() == Some(m.session) => {
                LinkStatus::Ended { session: m.session }
            }
            (NetworkLinkAction::Anchor { .. }, _) => return Err(NetworkLinkError::LocalAnchor),
            (NetworkLinkAction::Consent { .. }, s) => {
                return Err(wrong_state("proposed-by-peer", m.session, s));
            }
            (NetworkLinkAction::End, s) => return Err(wrong_state("open", m.session, s)),
        };
        peer.status = next;
        Ok(event(&peer_id, &peer.status, true))
    }

    /// Handles a message from a foreign network.
    pub fn handle_remote(&mut self, m: &NetworkLink) -> Result<NetworkLinkEvent, NetworkLinkError> {
        m.verify().map_err(|_| NetworkLinkError::BadSignature)?;
        if m.peer_network.as_str() != self.local.name || m.peer_chain != self.local.chain {
            return Err(NetworkLinkError::NotForUs {
                network: m.peer_network.to_string(),
                chain: m.peer_chain,
            });
        }
        let peer_id: PeerId = (m.network.to_string(), m.chain);
        let peer = self.peer_mut(&m.network, m.chain)?;
        if let NetworkLinkAction::Anchor { block, block_hash } = &m.action {
            let LinkStatus::Active {
                session, theirs, ..
            } = &peer.status
            else {
                return Err(wrong_state("active", m.session, &peer.status));
            };
            if *session != m.session {
                return Err(wrong_state("active", m.session, &peer.status));
            }
            if m.signer != *theirs {
                return Err(NetworkLinkError::WrongSigner {
                    expected: *theirs,
                    got: m.signer,
                });
            }
            if let Some((last, _)) = peer.last_anchor {
                if *block <= last {
                    return Err(NetworkLinkError::StaleAnchor { last, got: *block });
                }
            }
            peer.last_anchor = Some((*block, *block_hash));
            return Ok(NetworkLinkEvent::Anchored {
                peer: peer_id,
                block: *block,
                hash: *block_hash,
            });
        }
        if m.signer != peer.owner {
            return Err(NetworkLinkError::WrongSigner {
                expected: peer.owner,
                got: m.signer,
            });
        }
        let next = match (&m.action, &peer.status) {
            // Both proposed the same session: each proposal is that side's
            // consent.
            (
                NetworkLinkAction::Propose { relay },
                LinkStatus::ProposedByUs {
                    session,
                    relay: ours,
                },
            ) if *session == m.session => LinkStatus::Active {
                session: m.session,
                ours: *ours,
                theirs: *relay,
            },
            (NetworkLinkAction::Propose { relay }, s) => {
                fresh_session(s, m.session)?;
                LinkStatus::ProposedByThem {
                    session: m.session,
                    relay: *relay,
                }
            }
            (
                NetworkLinkAction::Consent { relay },
                LinkStatus::ProposedByUs {
                    session,
                    relay: ours,
                },
            ) if *session == m.session => LinkStatus::Active {
                session: m.session,
                ours: *ours,
                theirs: *relay,
            },
            (NetworkLinkAction::Consent { .. }, s) => {
                return Err(wrong_state("proposed-by-us", m.session, s));
            }
            (NetworkLinkAction::End, LinkStatus::Idle | LinkStatus::Ended { .. }) => {
                return Err(wrong_state("open", m.session, &peer.status));
            }
            (NetworkLinkAction::End, s) if s.last_session() == Some(m.session) => {
                LinkStatus::Ended { session: m.session }
            }
            (NetworkLinkAction::End, s) => return Err(wrong_state("open", m.session, s)),
            // Handled above; kept so the match needs no panic path.
            (NetworkLinkAction::Anchor { .. }, s) => {
                return Err(wrong_state("active", m.session, s));
            }
        };
        peer.status = next;
        Ok(event(&peer_id, &peer.status, false))
    }

    /// This chain's anchors for block `block` (hash `hash`), one per active
    /// link whose relay is `relay`, signed by it. Empty when no link is
    /// active: nothing ever waits for a link.
    pub fn anchors_to_send(
        &self,
        block: BlockNumber,
        hash: Hash32,
        relay: &SigningKey,
    ) -> Vec<NetworkLink> {
        let me = relay.public();
        let action = NetworkLinkAction::Anchor {
            block,
            block_hash: hash,
        };
        self.peers
            .iter()
            .filter_map(|((name, chain), p)| match &p.status {
                LinkStatus::Active { session, ours, .. } if *ours == me => NetworkLinkBody {
                    network: &self.local.name,
                    chain: self.local.chain,
                    peer_network: name,
                    peer_chain: *chain,
                    session: *session,
                    action: &action,
                }
                .sign(relay)
                .ok(),
                _ => None,
            })
            .collect()
    }
}

fn fresh_session(s: &LinkStatus, got: u64) -> Result<(), NetworkLinkError> {
    match s.last_session() {
        Some(last) if got <= last => Err(NetworkLinkError::OldSession { last, got }),
        _ => Ok(()),
    }
}

fn wrong_state(needed: &'static str, session: u64, s: &LinkStatus) -> NetworkLinkError {
    NetworkLinkError::WrongState {
        needed,
        session,
        status: s.clone(),
    }
}

fn event(peer: &PeerId, s: &LinkStatus, by_us: bool) -> NetworkLinkEvent {
    match s {
        LinkStatus::Active { session, .. } => NetworkLinkEvent::Established {
            peer: peer.clone(),
            session: *session,
        },
        LinkStatus::Ended { .. } => NetworkLinkEvent::Ended {
            peer: peer.clone(),
            by_us,
        },
        LinkStatus::ProposedByUs { .. } | LinkStatus::ProposedByThem { .. } | LinkStatus::Idle => {
            NetworkLinkEvent::Proposed {
                peer: peer.clone(),
                by_us: matches!(s, LinkStatus::ProposedByUs { .. }),
            }
        }
    }
}
