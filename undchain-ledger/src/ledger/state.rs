//! What the ledger holds, leaf by leaf of its state tree ([`crate::tree`]):
//! accounts, open jobs with their escrow and claims (the payout file and
//! its completion column), settled job ids still remembered, domain-link
//! records, domain light clients and one summary leaf (docs/PROTOCOL.md
//! "Ledger state", "State root").
//!
//! Each leaf is a [`StateKey`] and a value; the tree stores
//! `leaf_hash(key_hash, value_hash)` under `key_hash`, where
//! `key_hash = algo(LedgerKey, postcard(key))` and
//! `value_hash = algo(LedgerAccount, postcard(value))`. Anyone holding a
//! value, its key and a [`StateProof`]
//! checks it against a header's ledger root with [`verify_leaf`].

use serde::{Deserialize, Serialize};
use undchain_types::msg::{DomainTransferTerms, StateProof};
use undchain_types::{
    BlockNumber, BlockTime, ChainId, Hash32, HashAlgorithm, HashContext, JobEntry, JobId,
    PayoutPeriod, PublicKey, TokenAmount, UtilityKind, wire,
};

use crate::tree::{self, Digest};

/// One account of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Account {
    /// Free balance: what the account can spend, lock or pay fees with.
    pub balance: TokenAmount,
    /// Escrow: the budgets of the account's open jobs, locked at commit
    /// and paid out or refunded at settlement.
    pub escrow: TokenAmount,
    /// The account's transaction nonce: its next transaction must carry it.
    pub nonce: u64,
}

impl Account {
    /// Whether the account holds nothing and never transacted (it is then
    /// not stored).
    pub fn is_empty(&self) -> bool {
        self.balance == TokenAmount::ZERO && self.escrow == TokenAmount::ZERO && self.nonce == 0
    }
}

/// What a claim proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimKind {
    /// A receipt signed by client and partner.
    Full,
    /// A partial completion: the client's checkpoint `counter`, claimed by
    /// the partner.
    Partial {
        /// The checkpoint counter (the highest wins).
        counter: u32,
        /// Units the checkpoint proves.
        units: u64,
    },
}

/// One partner's claim on a job's escrow, resolved at settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The partner paid by it.
    pub partner: PublicKey,
    /// What it pays.
    pub amount: TokenAmount,
    /// Receipt or partial.
    pub kind: ClaimKind,
    /// The block that recorded it.
    pub block: BlockNumber,
}

/// An open job of the payout file: committed, escrowed, not yet settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenJob {
    /// The job entry as its block's job file committed it.
    pub entry: JobEntry,
    /// [`JobEntry::leaf_hash`] of `entry` (what the job file's root covers).
    pub entry_hash: Hash32,
    /// The block whose job file committed it.
    pub commit_block: BlockNumber,
    /// The paying client: the signer of the request.
    pub client: PublicKey,
    /// The budget locked in the client's escrow for it.
    pub escrow: TokenAmount,
    /// When the client signed the request (its envelope's `sent_at`).
    pub sent_at: BlockTime,
    /// The period it was carried over from (a job carries over once).
    pub carried_from: Option<PayoutPeriod>,
    /// The claims recorded so far, one per partner, sorted by partner.
    pub claims: Vec<Claim>,
}

impl OpenJob {
    /// The sum of its claims (never above `escrow`).
    pub fn claimed(&self) -> u128 {
        self.claims.iter().map(|c| u128::from(c.amount.0)).sum()
    }

    /// The job's utility kind.
    pub fn kind(&self) -> UtilityKind {
        self.entry.kind
    }

    /// The state leaf value of the job.
    pub fn leaf(&self) -> JobLeaf<'_> {
        JobLeaf {
            entry_hash: &self.entry_hash,
            commit_block: self.commit_block,
            client: &self.client,
            escrow: self.escrow,
            sent_at: self.sent_at,
            carried_from: self.carried_from,
            claims: &self.claims,
        }
    }
}

/// The hashed value of an open job's leaf: everything but the entry, which
/// is bound by its hash. A partner proves "job X owes me Y" with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobLeaf<'a> {
    /// [`JobEntry::leaf_hash`] of the committed entry.
    pub entry_hash: &'a Hash32,
    /// The commit block.
    pub commit_block: BlockNumber,
    /// The paying client.
    pub client: &'a PublicKey,
    /// The escrowed budget.
    pub escrow: TokenAmount,
    /// The request's `sent_at`.
    pub sent_at: BlockTime,
    /// The period it was carried over from.
    pub carried_from: Option<PayoutPeriod>,
    /// Its claims, sorted by partner.
    pub claims: &'a [Claim],
}

/// Where an incoming domain transfer stands on its target domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum InboundState {
    /// Credited to the payee (exactly once).
    Credited,
    /// Recorded as expired: never credited; proves the refund on the source.
    Expired,
}

/// An incoming domain transfer's record on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundRecord {
    /// Credited or expired.
    pub state: InboundState,
    /// The source domain.
    pub source: ChainId,
    /// The transfer's `expires_at` (source block), which decides when the
    /// record may be pruned.
    pub expires_at: BlockNumber,
}

/// Supply counters: the only ways tokens enter or leave this chain.
/// Circulating supply = genesis + minted + imported + refunded - exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Supply {
    /// Allocated at the first genesis.
    pub genesis: u64,
    /// Minted by the chain owner.
    pub minted: u64,
    /// Credited by incoming domain transfers.
    pub imported: u64,
    /// Locked by outgoing domain transfers.
    pub exported: u64,
    /// Outgoing transfers refunded after expiry.
    pub refunded: u64,
}

impl Supply {
    /// Tokens that should exist on this chain right now (never negative:
    /// every export was a debit of a balance this supply covered).
    pub fn circulating(&self) -> u128 {
        (u128::from(self.genesis)
            + u128::from(self.minted)
            + u128::from(self.imported)
            + u128::from(self.refunded))
        .saturating_sub(u128::from(self.exported))
    }
}

/// The summary leaf: what is not per account, job or record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The chain this ledger keeps.
    pub chain_id: ChainId,
    /// The next block the ledger expects.
    pub next_block: BlockNumber,
    /// Fees collected and not yet paid to validators.
    pub fee_pool: TokenAmount,
    /// The supply counters.
    pub supply: Supply,
    /// Hash of this period's tally of blocks signed per validator.
    pub signed_blocks: Hash32,
    /// Hash of the chain parameters in force ([`crate::LedgerConfig`]).
    pub config: Hash32,
}

/// The key of a state leaf (and of a proof).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StateKey {
    /// The summary leaf ([`Meta`]).
    Meta,
    /// An account ([`Account`]).
    Account(PublicKey),
    /// An open job ([`JobLeaf`]).
    Job(JobId),
    /// A settled job id still remembered (value: the block time in
    /// microseconds after which its request can no longer be committed).
    Settled(JobId),
    /// An outgoing domain transfer still locked (value: its
    /// [`DomainTransferTerms`]).
    Outbound(Hash32),
    /// An incoming domain transfer's record ([`InboundRecord`]).
    Inbound(Hash32),
    /// A registered domain's light client (value: its hash,
    /// [`crate::links::domain_link::DomainClient::hash_with`]).
    Domain(ChainId),
    /// A registered validator ([`super::validators::ValidatorRecord`]).
    Validator(PublicKey),
}

impl StateKey {
    /// The key's hash under `algo` (its place in the tree).
    pub fn hash(&self, algo: HashAlgorithm) -> Digest {
        // At most 33 bytes (a tag and a 32-byte id): encoded on the stack.
        let mut buf = [0u8; 48];
        match postcard::to_slice(self, &mut buf) {
            Ok(bytes) => tree::hash(algo, HashContext::LedgerKey, bytes),
            Err(_) => tree::hash(algo, HashContext::LedgerKey, &wire::encode_bare(self)),
        }
    }
}

/// The value hash of `value` under `algo`.
pub fn value_hash<T: Serialize>(algo: HashAlgorithm, value: &T) -> Digest {
    // Most values (accounts, jobs with a few claims) fit on the stack; the
    // same canonical bytes either way.
    let mut buf = [0u8; 256];
    match postcard::to_slice(value, &mut buf) {
        Ok(bytes) => tree::hash(algo, HashContext::LedgerAccount, bytes),
        Err(_) => tree::hash(algo, HashContext::LedgerAccount, &tree::encode(value)),
    }
}

/// The tree leaf (key hash, leaf hash) of `key` holding `value`.
pub fn leaf<T: Serialize>(algo: HashAlgorithm, key: &StateKey, value: &T) -> tree::Change {
    let k = key.hash(algo);
    (k, Some(tree::leaf_hash(algo, &k, &value_hash(algo, value))))
}

/// Whether `key` holds `value` in the state whose root is `root` (a
/// header's `ledger_root`), by `proof`, under the chain's `algo`.
pub fn verify_leaf<T: Serialize>(
    algo: HashAlgorithm,
    root: &Hash32,
    key: &StateKey,
    value: &T,
    proof: &StateProof,
) -> bool {
    let (k, h) = leaf(algo, key, value);
    h.is_some_and(|h| tree::verify_proof(algo, root, &k, &h, proof))
}

/// The terms of an outgoing transfer as its leaf holds them.
pub type OutboundValue = DomainTransferTerms;

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::SigningKey;

    #[test]
    fn value_hash_is_the_hash_of_the_canonical_encoding_short_or_long() {
        let small = Account {
            balance: TokenAmount(5),
            escrow: TokenAmount(1),
            nonce: 3,
        };
        // Sixteen claims do not fit the stack buffer: the long way round.
        let claims: Vec<Claim> = (0..16u8)
            .map(|i| Claim {
                partner: SigningKey::from_seed([i; 32]).public(),
                amount: TokenAmount(u64::MAX - u64::from(i)),
                kind: ClaimKind::Partial {
                    counter: u32::MAX,
                    units: u64::MAX,
                },
                block: BlockNumber(u64::MAX),
            })
            .collect();
        assert!(wire::encode_bare(&small).len() < 256);
        assert!(wire::encode_bare(&claims).len() > 256);
        for algo in [HashAlgorithm::Blake3, HashAlgorithm::Sha256] {
            let expect = |b: Vec<u8>| algo.hash(HashContext::LedgerAccount, &b).0;
            assert_eq!(value_hash(algo, &small), expect(wire::encode_bare(&small)));
            assert_eq!(
                value_hash(algo, &claims),
                expect(wire::encode_bare(&claims))
            );
            assert_ne!(value_hash(algo, &small), value_hash(algo, &claims));
        }
    }
}
