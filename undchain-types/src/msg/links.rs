//! Chain, domain and network links (design notes, validator story items
//! 8-10; DESIGN.md "Chain link", "Domain link", "Network link").

use serde::{Deserialize, Serialize};

use super::common::MerkleProof;
use super::consensus::CommitCertificate;
use crate::block::BlockHeader;
use crate::bounded::BoundedString;
use crate::crypto::{PublicKey, Signature};
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
    /// Its block.
    pub block: BlockNumber,
    /// That block's hash.
    pub block_hash: Hash32,
}

/// Validator story 9: a token transfer between domains. Locked on the source
/// domain; credited on the target once the source block holding it is
/// proven; refunded on the source if it expires unclaimed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct DomainTransfer {
    /// Source domain's chain.
    pub source: ChainId,
    /// Target domain's chain.
    pub target: ChainId,
    /// Sender's per-account transfer counter (makes the id unique).
    pub nonce: u64,
    /// Payer on the source.
    pub from: PublicKey,
    /// Payee on the target.
    pub to: PublicKey,
    /// Amount.
    pub amount: TokenAmount,
    /// Last source block at which the target may still credit it; after
    /// that, the source refunds.
    pub expires_at: BlockNumber,
}

impl DomainTransfer {
    /// The transfer's id (applied at most once on the target).
    pub fn id(&self) -> Hash32 {
        hash(HashContext::DomainTransfer, &crate::wire::encode_bare(self))
    }
}

/// Validator story 9: the proof that credits a transfer on the target: the
/// source block's header and commit certificate, and an inclusion proof of
/// the transfer under that header's ledger root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct DomainTransferProof {
    /// The transfer.
    pub transfer: DomainTransfer,
    /// The source block that locked it.
    pub header: BlockHeader,
    /// The source block's commit certificate.
    pub certificate: CommitCertificate,
    /// Inclusion of the transfer's lock record under the header's ledger root.
    pub proof: MerkleProof,
}

/// What a network-link message does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum NetworkLinkAction {
    /// Asks the foreign network to link.
    Propose,
    /// Consents to a proposed link.
    Consent,
    /// Anchors a block hash of the sending network.
    Anchor {
        /// The block.
        block: BlockNumber,
        /// Its hash.
        block_hash: Hash32,
    },
    /// Ends the link (either side may).
    End,
}

/// Validator story 10: mutual anchoring with a foreign network that has its
/// own token; only hashes cross. Needs both networks' signed consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct NetworkLink {
    /// The sending network's name.
    pub network: BoundedString<64>,
    /// The sending network's chain.
    pub chain: ChainId,
    /// What this message does.
    pub action: NetworkLinkAction,
    /// The network's owner key that signs link decisions.
    pub owner: PublicKey,
    /// The owner's signature over (network, chain, action).
    pub owner_sig: Signature,
}

impl NetworkLink {
    /// The digest the owner signs.
    pub fn digest(network: &str, chain: ChainId, action: &NetworkLinkAction) -> Hash32 {
        hash(
            HashContext::NetworkLink,
            &crate::wire::encode_bare(&(network, chain, action)),
        )
    }

    /// Checks the owner's signature.
    pub fn verify(&self) -> Result<(), crate::crypto::CryptoError> {
        self.owner.verify_digest(
            &Self::digest(&self.network, self.chain, &self.action),
            &self.owner_sig,
        )
    }
}
