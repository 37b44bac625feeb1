//! The ledger's state root: an rs_merkle tree over the sorted state leaves
//! (accounts, domain-link records, registered domains and one summary leaf),
//! under either hash algorithm of the chain (DESIGN.md "Smaller decisions":
//! hash algorithm; docs/PROTOCOL.md "Ledger, payouts, convergence and
//! links").
//!
//! A leaf hash is the chain's algorithm under [`HashContext::LedgerAccount`]
//! of the leaf's canonical encoding; inner nodes hash the two children under
//! [`HashContext::LedgerNode`]; an odd node is promoted unchanged (the
//! rs_merkle layout, as in job files). The root goes into
//! [`undchain_types::BlockHeader::ledger_root`], and an inclusion proof of a
//! leaf is what a domain link carries to another domain.

use rs_merkle::{Hasher, MerkleTree};
use serde::{Deserialize, Serialize};
use undchain_types::msg::{DomainTransferTerms, MerkleProof};
use undchain_types::{
    BoundedVec, ChainId, Hash32, HashAlgorithm, HashContext, PublicKey, TokenAmount, wire,
};

/// One account of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Account {
    /// Tokens the account can spend or pay fees with now.
    pub balance: TokenAmount,
    /// Tokens held in escrow for recorded completions until the period's
    /// settlement pays them to the partner.
    pub reserved: TokenAmount,
    /// Count of the account's own transactions (domain transfers); the next
    /// one must carry this nonce.
    pub nonce: u64,
}

impl Account {
    /// Whether the account holds nothing and never transacted (it is then
    /// dropped from the state).
    pub fn is_empty(&self) -> bool {
        self.balance == TokenAmount::ZERO && self.reserved == TokenAmount::ZERO && self.nonce == 0
    }
}

/// Where an outgoing domain transfer stands on its source domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OutboundState {
    /// Tokens locked; the target may credit them.
    Locked,
    /// The target proved the transfer expired; the payer got the tokens back.
    Refunded,
}

/// Where an incoming domain transfer stands on its target domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum InboundState {
    /// Credited to the payee (exactly once).
    Credited,
    /// Recorded as expired: never credited; proves the refund on the source.
    Expired,
}

/// Supply counters: the only ways tokens enter or leave this chain.
/// Circulating supply = genesis + minted + imported + refunded - exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Supply {
    /// Allocated at the first genesis.
    pub genesis: u64,
    /// Explicitly minted (chain-owner decisions).
    pub minted: u64,
    /// Credited by incoming domain transfers.
    pub imported: u64,
    /// Locked by outgoing domain transfers.
    pub exported: u64,
    /// Outgoing transfers refunded after expiry.
    pub refunded: u64,
}

impl Supply {
    /// Tokens that should exist on this chain right now.
    pub fn circulating(&self) -> u128 {
        (u128::from(self.genesis)
            + u128::from(self.minted)
            + u128::from(self.imported)
            + u128::from(self.refunded))
        .saturating_sub(u128::from(self.exported))
    }
}

/// The summary leaf: what is not per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The chain this ledger keeps.
    pub chain_id: ChainId,
    /// The next block the ledger expects.
    pub next_block: u64,
    /// Fees collected and not yet paid to validators.
    pub fee_pool: TokenAmount,
    /// The supply counters, so the root commits to how tokens entered and left.
    pub supply: Supply,
    /// Hash of this period's tally of blocks signed per validator (the fee
    /// shares).
    pub signed_blocks: Hash32,
    /// Running digest of every applied operation (receipts, partial
    /// completions, domain steps, chain events, settlements), so the root
    /// commits to the history and not only to balances.
    pub ops_digest: Hash32,
}

/// The key that orders leaves (and names one for a proof).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LeafKey {
    /// The summary leaf ([`Meta`]); it sorts first.
    Meta,
    /// An account's leaf, named by the account's key.
    Account(PublicKey),
    /// An outgoing domain transfer, by id.
    Outbound(Hash32),
    /// An incoming domain transfer, by id.
    Inbound(Hash32),
    /// A registered foreign domain.
    Domain(ChainId),
}

/// A state leaf, as hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Leaf<'a> {
    /// The summary leaf: what is not per account ([`Meta`]).
    Meta(&'a Meta),
    /// One account's balance, escrow and nonce, under its key.
    Account {
        /// The account's public key, which also orders the leaf.
        id: &'a PublicKey,
        /// The account's balance, escrow and nonce.
        account: &'a Account,
    },
    /// An outgoing domain transfer, as its source domain records it.
    Outbound {
        /// The transfer's terms (their hash is the id).
        terms: &'a DomainTransferTerms,
        /// Whether the transfer is still locked or was refunded.
        state: OutboundState,
    },
    /// An incoming domain transfer, as its target domain records it.
    Inbound {
        /// The transfer's id (the hash of its terms).
        id: &'a Hash32,
        /// Whether the transfer was credited or recorded as expired.
        state: InboundState,
    },
    /// A foreign domain registered by a chain event.
    Domain {
        /// The chain id of the foreign domain.
        chain: &'a ChainId,
        /// Hash of its registration (algorithm and validator sets).
        info: &'a Hash32,
    },
}

impl Leaf<'_> {
    /// The leaf hash under `algo`.
    pub fn hash(&self, algo: HashAlgorithm) -> Hash32 {
        algo.hash(HashContext::LedgerAccount, &wire::encode_bare(self))
    }
}

/// The rs_merkle inner-node hasher of blake3 chains ([`HashContext::LedgerNode`]).
#[derive(Debug, Clone, Copy)]
pub struct Blake3Node;

/// The rs_merkle inner-node hasher of SHA-256 chains ([`HashContext::LedgerNode`]).
#[derive(Debug, Clone, Copy)]
pub struct Sha256Node;

macro_rules! node_hasher {
    ($t:ty, $algo:expr) => {
        impl Hasher for $t {
            type Hash = [u8; 32];

            fn hash(data: &[u8]) -> [u8; 32] {
                $algo.hash(HashContext::LedgerNode, data).0
            }

            fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
                match right {
                    Some(r) => $algo.hash_parts(HashContext::LedgerNode, &[left, r]).0,
                    None => *left,
                }
            }
        }
    };
}

node_hasher!(Blake3Node, HashAlgorithm::Blake3);
node_hasher!(Sha256Node, HashAlgorithm::Sha256);

/// The root over `leaves` (leaf hashes in key order) under `algo`;
/// [`Hash32::ZERO`] when empty.
pub fn merkle_root(algo: HashAlgorithm, leaves: &[[u8; 32]]) -> Hash32 {
    let root = match algo {
        HashAlgorithm::Blake3 => MerkleTree::<Blake3Node>::from_leaves(leaves).root(),
        HashAlgorithm::Sha256 => MerkleTree::<Sha256Node>::from_leaves(leaves).root(),
    };
    root.map_or(Hash32::ZERO, Hash32)
}

/// The inclusion proof of leaf `index` among `leaves` under `algo`.
pub fn merkle_proof(algo: HashAlgorithm, leaves: &[[u8; 32]], index: usize) -> Option<MerkleProof> {
    if index >= leaves.len() {
        return None;
    }
    let hashes: Vec<[u8; 32]> = match algo {
        HashAlgorithm::Blake3 => MerkleTree::<Blake3Node>::from_leaves(leaves)
            .proof(&[index])
            .proof_hashes()
            .to_vec(),
        HashAlgorithm::Sha256 => MerkleTree::<Sha256Node>::from_leaves(leaves)
            .proof(&[index])
            .proof_hashes()
            .to_vec(),
    };
    let siblings = BoundedVec::try_from_vec(hashes.into_iter().map(Hash32).collect()).ok()?;
    Some(MerkleProof {
        leaf_index: index as u64,
        leaf_count: leaves.len() as u64,
        siblings,
    })
}

/// Whether `leaf` is under `root` by `proof`, with `algo`. Never panics on a
/// malformed proof: anything out of shape is `false`.
pub fn verify_leaf(algo: HashAlgorithm, root: &Hash32, leaf: &Hash32, proof: &MerkleProof) -> bool {
    let Some((index, count)) = proof.shape() else {
        return false;
    };
    let hashes = proof.sibling_bytes();
    match algo {
        HashAlgorithm::Blake3 => rs_merkle::MerkleProof::<Blake3Node>::new(hashes).verify(
            root.0,
            &[index],
            &[leaf.0],
            count,
        ),
        HashAlgorithm::Sha256 => rs_merkle::MerkleProof::<Sha256Node>::new(hashes).verify(
            root.0,
            &[index],
            &[leaf.0],
            count,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u8) -> Vec<[u8; 32]> {
        (0..n).map(|i| [i; 32]).collect()
    }

    #[test]
    fn proofs_verify_under_both_algorithms_and_only_there() {
        for algo in [HashAlgorithm::Blake3, HashAlgorithm::Sha256] {
            for n in 1..9u8 {
                let l = leaves(n);
                let root = merkle_root(algo, &l);
                for i in 0..usize::from(n) {
                    let p = merkle_proof(algo, &l, i).unwrap();
                    assert!(verify_leaf(algo, &root, &Hash32(l[i]), &p), "n={n} i={i}");
                    assert!(!verify_leaf(algo, &root, &Hash32([99; 32]), &p));
                    let other = match algo {
                        HashAlgorithm::Blake3 => HashAlgorithm::Sha256,
                        HashAlgorithm::Sha256 => HashAlgorithm::Blake3,
                    };
                    if n > 1 {
                        assert!(!verify_leaf(other, &root, &Hash32(l[i]), &p));
                    }
                }
            }
        }
        assert_eq!(merkle_root(HashAlgorithm::Blake3, &[]), Hash32::ZERO);
        assert_ne!(
            merkle_root(HashAlgorithm::Blake3, &leaves(3)),
            merkle_root(HashAlgorithm::Sha256, &leaves(3))
        );
    }

    #[test]
    fn malformed_proofs_are_false_not_panics() {
        let l = leaves(5);
        let root = merkle_root(HashAlgorithm::Blake3, &l);
        let mut p = merkle_proof(HashAlgorithm::Blake3, &l, 2).unwrap();
        p.leaf_count = 0;
        assert!(!verify_leaf(
            HashAlgorithm::Blake3,
            &root,
            &Hash32(l[2]),
            &p
        ));
        p.leaf_count = 5;
        p.leaf_index = 9;
        assert!(!verify_leaf(
            HashAlgorithm::Blake3,
            &root,
            &Hash32(l[2]),
            &p
        ));
        p.leaf_index = 2;
        p.leaf_count = u64::MAX;
        assert!(!verify_leaf(
            HashAlgorithm::Blake3,
            &root,
            &Hash32(l[2]),
            &p
        ));
        assert!(merkle_proof(HashAlgorithm::Blake3, &l, 5).is_none());
    }
}
