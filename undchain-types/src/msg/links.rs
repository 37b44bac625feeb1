//! Chain, domain and network links (design notes, validator story items
//! 8-10; DESIGN.md "Chain link", "Domain link", "Network link").

use serde::{Deserialize, Serialize};

use super::ledger::{SignedHeader, StateProof};
use crate::bounded::BoundedString;
use crate::crypto::{PublicKey, Signature, SigningKey};
use crate::hash::{Hash32, HashContext, hash};
use crate::ids::{BlockNumber, ChainId, TokenAmount};

/// Validator story 8: at the end of a block, a chain sends its block hash to
/// each linked co-chain (at most two); the receiver anchors it in its next
/// header. A link never blocks either chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ChainLink {
    /// The sending chain.
    pub chain: ChainId,
    /// The sending chain's block being anchored.
    pub block: BlockNumber,
    /// That block's hash.
    pub block_hash: Hash32,
}

/// Validator story 9: the terms of a token transfer between domains, as
/// the source domain's ledger records them when the payer's
/// [`TxOp::DomainLock`](super::TxOp::DomainLock) transaction applies:
/// `source` is the chain the transaction was signed for, `from` its sender
/// and `nonce` its nonce. Credited on the target once the lock is proven;
/// refunded on the source if the target recorded it expired
/// (docs/PROTOCOL.md "Domain link").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct DomainTransferTerms {
    /// Source domain's chain.
    pub source: ChainId,
    /// Target domain's chain.
    pub target: ChainId,
    /// The payer's transaction nonce on the source (makes the id unique).
    pub nonce: u64,
    /// Payer on the source.
    pub from: PublicKey,
    /// Payee on the target.
    pub to: PublicKey,
    /// How many tokens move.
    pub amount: TokenAmount,
    /// Last source block whose header may prove the lock for a credit; a
    /// committed source block past it that still shows the lock lets the
    /// target record the transfer as expired, and that record refunds the
    /// payer on the source.
    pub expires_at: BlockNumber,
}

impl DomainTransferTerms {
    /// The transfer's id (applied at most once on the target): the hash of
    /// the terms under [`HashContext::DomainTransfer`].
    pub fn id(&self) -> Hash32 {
        hash(HashContext::DomainTransfer, &crate::wire::encode_bare(self))
    }
}

/// What a [`DomainTransferProof`] proves, and on which chain it applies.
/// Every proof shows a leaf under the other domain's committed ledger root
/// (a [`StateProof`] of its sparse Merkle state tree).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum DomainProofKind {
    /// Applies on the target: `header` is a committed source block at or
    /// before the transfer's `expires_at` and `proof` shows the transfer's
    /// lock record under its ledger root.
    Credit {
        /// Inclusion of the lock record.
        proof: StateProof,
    },
    /// Applies on the target: `header` is a committed source block past the
    /// transfer's `expires_at` and `proof` shows the lock record still
    /// there (so only a real, unrefunded lock can expire); the target
    /// records the transfer as expired (never credited afterwards).
    Expire {
        /// Inclusion of the lock record.
        proof: StateProof,
    },
    /// Applies on the source: `header` is a committed target block and
    /// `proof` shows the target's expiry record under its ledger root; the
    /// source refunds the payer.
    Refund {
        /// Inclusion of the expiry record.
        proof: StateProof,
    },
}

/// Validator story 9: a committed block of the other domain, with its commit
/// certificate, proving one step of a transfer (credit, expiry or refund).
/// Carried by a [`TxOp::DomainProof`](super::TxOp::DomainProof)
/// transaction of whoever relays it (the relayer pays the fee).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct DomainTransferProof {
    /// The transfer this proves a step of.
    pub terms: DomainTransferTerms,
    /// Which step this proves.
    pub kind: DomainProofKind,
    /// The other domain's committed block.
    pub block: SignedHeader,
}

/// What a network-link message does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum NetworkLinkAction {
    /// Asks the foreign network to link. Signed by the sending network's
    /// owner; names the key that will sign its anchors.
    Propose {
        /// Signs this network's anchors while the link lasts.
        relay: PublicKey,
    },
    /// Consents to a proposed link. Signed by the owner; names the relay.
    Consent {
        /// Signs this network's anchors while the link lasts.
        relay: PublicKey,
    },
    /// Anchors a block hash of the sending network. Signed by the relay.
    Anchor {
        /// The sending network's block being anchored.
        block: BlockNumber,
        /// That block's hash.
        block_hash: Hash32,
    },
    /// Ends the link (either side may). Signed by the owner.
    End,
}

/// Validator story 10: mutual anchoring with a foreign network that has its
/// own token; only hashes cross. Needs both networks' signed consent; either
/// may end it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct NetworkLink {
    /// The sending network's name.
    pub network: BoundedString<64>,
    /// The sending network's chain.
    pub chain: ChainId,
    /// The receiving network's name (a consent names whom it is for, so it
    /// cannot be replayed to another network).
    pub peer_network: BoundedString<64>,
    /// The receiving network's chain.
    pub peer_chain: ChainId,
    /// Link session: a link ended in session s can only be re-established
    /// by a proposal and a consent of a later session (old consents cannot
    /// be replayed).
    pub session: u64,
    /// What this message does.
    pub action: NetworkLinkAction,
    /// The signer: the owner for propose, consent and end; the relay named
    /// in the consent for anchors.
    pub signer: PublicKey,
    /// The signer's signature over [`NetworkLink::digest`].
    pub signature: Signature,
}

/// The signed part of a [`NetworkLink`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkLinkBody<'a> {
    /// The sending network's name.
    pub network: &'a str,
    /// The sending network's chain.
    pub chain: ChainId,
    /// The receiving network's name.
    pub peer_network: &'a str,
    /// The receiving network's chain.
    pub peer_chain: ChainId,
    /// The link session the message belongs to (see [`NetworkLink::session`]).
    pub session: u64,
    /// What the message does.
    pub action: &'a NetworkLinkAction,
}

impl NetworkLinkBody<'_> {
    /// The digest the signer signs.
    pub fn digest(&self) -> Hash32 {
        hash(HashContext::NetworkLink, &crate::wire::encode_bare(self))
    }

    /// Signs the body.
    pub fn sign(&self, key: &SigningKey) -> Result<NetworkLink, crate::bounded::TooLong> {
        Ok(NetworkLink {
            network: BoundedString::try_new(self.network)?,
            chain: self.chain,
            peer_network: BoundedString::try_new(self.peer_network)?,
            peer_chain: self.peer_chain,
            session: self.session,
            action: self.action.clone(),
            signer: key.public(),
            signature: key.sign_digest(&self.digest()),
        })
    }
}

impl NetworkLink {
    /// The signed part.
    pub fn body(&self) -> NetworkLinkBody<'_> {
        NetworkLinkBody {
            network: &self.network,
            chain: self.chain,
            peer_network: &self.peer_network,
            peer_chain: self.peer_chain,
            session: self.session,
            action: &self.action,
        }
    }

    /// The digest the signer signs.
    pub fn digest(&self) -> Hash32 {
        self.body().digest()
    }

    /// Checks the signer's signature (whether the signer is the right key
    /// is the receiver's check).
    pub fn verify(&self) -> Result<(), crate::crypto::CryptoError> {
        self.signer.verify_digest(&self.digest(), &self.signature)
    }
}
