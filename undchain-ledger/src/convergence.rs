//! Convergence: a new genesis computed from committed state, so the old
//! chain can go to the archive (design notes, validator story item 6;
//! DESIGN.md "Convergence", "Smaller decisions": hash algorithm;
//! docs/PROTOCOL.md "Convergence").
//!
//! At a payout-period boundary ([`convergence_due`]: stored chain size past
//! the chain's threshold, or a new hash algorithm), every validator builds
//! the same [`Genesis`] from its committed state ([`build_genesis`]):
//! balances and escrow, the validator set, perception scores, the open
//! payout file (the jobs carried over), domain-link records, supply
//! counters, the hash of the old chain's last block and the convergence
//! counter. It is a pure function of committed state, so its hash is the
//! same everywhere without any exchange; validators sign it
//! ([`Genesis::sign`]) and a quorum of signatures ([`GenesisVotes`])
//! certifies it for anyone who was not there. The first block of the new
//! epoch has the genesis hash as parent and keeps the block numbering, so
//! block production goes on without a pause: no second chain runs beside
//! the old one and no transaction waits. The old chain is then marked for
//! archive ([`ArchiveOld`]).
//!
//! The genesis is hashed with the new chain's algorithm; switching from
//! blake3 to SHA-256 therefore changes every hash of the new epoch (block
//! hashes, ledger root, validator-set hash) while the state stays the same.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use undchain_types::msg::{ConvergenceProposal, ConvergenceReason, ConvergenceSignature};
use undchain_types::{
    BlockNumber, ChainId, ChainParams, Hash32, HashAlgorithm, HashContext, PayoutPeriod,
    PerceptionScore, PublicKey, Signature, SigningKey, wire,
};

use crate::ledger::{GenesisError, Ledger, LedgerConfig, LedgerState};
use undchain_consensus::score::{ScoreBook, ScoreRules};
use undchain_consensus::validator_set::ValidatorSet;

/// Why a convergence runs now, if it does: only at a payout-period boundary
/// (`next_block` starts a period); a hash-algorithm change wins over size.
pub fn convergence_due(
    params: &ChainParams,
    next_block: BlockNumber,
    stored_bytes: u64,
    algorithm_in_force: HashAlgorithm,
) -> Option<ConvergenceReason> {
    if next_block.0 % params.blocks_per_period().max(1) != 0 {
        return None;
    }
    if params.hash_algorithm != algorithm_in_force {
        return Some(ConvergenceReason::HashAlgorithm {
            to: params.hash_algorithm,
        });
    }
    (stored_bytes > params.convergence_size_threshold)
        .then_some(ConvergenceReason::SizeThreshold { stored_bytes })
}

/// A new genesis: everything the next epoch starts from, every ledger
/// parameter included (nothing comes from the caller's configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// The chain whose next epoch this genesis starts.
    pub chain_id: ChainId,
    /// Convergence counter: the new epoch (the old one + 1).
    pub counter: u32,
    /// Hash of the old chain's last block (under the old algorithm).
    pub last_block_hash: Hash32,
    /// Active validators of the first block.
    pub validator_set: ValidatorSet,
    /// Perception scores (those ever moved), by key.
    pub scores: Vec<(PublicKey, PerceptionScore)>,
    /// The ledger parameters of the new epoch (period length, fees,
    /// windows, hash algorithm).
    pub config: LedgerConfig,
    /// The ledger: accounts, escrow, the open payout file (jobs carried
    /// over), remembered settled ids, fee pool, domain clients and
    /// records, supply; its `next_block` is the first block of the new
    /// epoch.
    pub ledger: LedgerState,
    /// The payout period the new epoch starts in.
    pub period: PayoutPeriod,
}

/// Why a convergence step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvergenceError {
    /// The ledger is not at a payout-period boundary.
    #[error("block {next} does not start a payout period")]
    NotAtBoundary {
        /// The ledger's next block, which does not start a payout period.
        next: BlockNumber,
    },
    /// The ledger still holds unsettled claims.
    #[error("{jobs} jobs hold claims not settled yet")]
    Unsettled {
        /// Jobs with claims recorded and not yet paid out.
        jobs: usize,
    },
    /// The genesis's ledger cannot be rebuilt (its parameters cannot work).
    #[error("genesis ledger refused: {0}")]
    Ledger(#[from] GenesisError),
    /// The new parameters are for another chain.
    #[error("new parameters are for {got}, this chain is {expected}")]
    WrongChain {
        /// This chain.
        expected: ChainId,
        /// The parameters' chain.
        got: ChainId,
    },
    /// A signature for another genesis or counter.
    #[error("signature is for genesis {got:?}, collecting {expected:?}")]
    WrongGenesis {
        /// The hash of the genesis whose signatures are being collected.
        expected: Hash32,
        /// The hash of the genesis the signature covers.
        got: Hash32,
    },
    /// The signer holds no seat in the genesis's validator set.
    #[error("{validator:?} holds no seat in the genesis validator set")]
    NotInSet {
        /// The key that signed, absent from the genesis's validator set.
        validator: PublicKey,
    },
    /// The signature does not verify.
    #[error("genesis signature of {validator:?} does not verify")]
    BadSignature {
        /// The key whose signature over the genesis failed verification.
        validator: PublicKey,
    },
    /// Fewer than q distinct valid signers.
    #[error("{signers} genesis signers, quorum is {quorum}")]
    NoQuorum {
        /// The number of distinct seated validators whose signatures verified.
        signers: usize,
        /// The quorum q of the genesis's validator set.
        quorum: usize,
    },
}

/// What a validator needs besides its ledger to build a genesis.
#[derive(Debug, Clone, Copy)]
pub struct GenesisInput<'a> {
    /// The new convergence counter (old epoch + 1).
    pub counter: u32,
    /// The ledger parameters of the new epoch (its hash algorithm, fee,
    /// period length, ...), from the chain parameters in force.
    pub config: &'a LedgerConfig,
    /// Hash of the old chain's last block.
    pub last_block_hash: Hash32,
    /// The validator set of the first new block.
    pub validator_set: &'a ValidatorSet,
    /// The score book at the old chain's tip; the genesis carries every score it holds.
    pub scores: &'a ScoreBook,
}

/// Builds the genesis from committed state. Refused unless `ledger` has
/// just settled a period (its next block starts one).
pub fn build_genesis(
    ledger: &Ledger,
    input: GenesisInput<'_>,
) -> Result<Genesis, ConvergenceError> {
    let cfg = ledger.config();
    let next = ledger.next_block();
    if next.0 % cfg.blocks_per_period.max(1) != 0 {
        return Err(ConvergenceError::NotAtBoundary { next });
    }
    if input.config.chain_id != cfg.chain_id {
        return Err(ConvergenceError::WrongChain {
            expected: cfg.chain_id,
            got: input.config.chain_id,
        });
    }
    input.config.validate()?;
    let state = ledger.state();
    let unsettled = state.jobs.iter().filter(|j| !j.claims.is_empty()).count();
    if unsettled > 0 {
        return Err(ConvergenceError::Unsettled { jobs: unsettled });
    }
    Ok(Genesis {
        chain_id: cfg.chain_id,
        counter: input.counter,
        last_block_hash: input.last_block_hash,
        validator_set: input.validator_set.clone(),
        scores: input.scores.iter().map(|(k, s)| (*k, *s)).collect(),
        config: input.config.clone(),
        period: input.config.period_of(next),
        ledger: state,
    })
}

/// The digest a validator signs for genesis `genesis_hash` of `counter`.
pub fn signing_digest(chain: ChainId, counter: u32, genesis_hash: &Hash32) -> Hash32 {
    HashAlgorithm::Blake3.hash(
        HashContext::Genesis,
        &wire::encode_bare(&("sign", chain, counter, genesis_hash)),
    )
}

impl Genesis {
    /// The genesis hash (the parent of the new epoch's first block), under
    /// the new algorithm.
    pub fn hash(&self) -> Hash32 {
        self.config
            .hash_algorithm
            .hash(HashContext::Genesis, &wire::encode_bare(self))
    }

    /// The first block of the new epoch.
    pub fn start_block(&self) -> BlockNumber {
        self.ledger.next_block
    }

    /// The proposal message announcing it.
    pub fn proposal(&self, reason: ConvergenceReason) -> ConvergenceProposal {
        ConvergenceProposal {
            counter: self.counter,
            period: self.period,
            last_block: self.last_block_hash,
            genesis_hash: self.hash(),
            reason,
        }
    }

    /// Signs the genesis as `key`.
    pub fn sign(&self, key: &SigningKey) -> ConvergenceSignature {
        let h = self.hash();
        ConvergenceSignature {
            counter: self.counter,
            genesis_hash: h,
            validator: key.public(),
            signature: key.sign_digest(&signing_digest(self.chain_id, self.counter, &h)),
        }
    }

    /// The ledger of the new epoch, under the genesis's own parameters.
    pub fn ledger(&self) -> Result<Ledger, ConvergenceError> {
        Ok(Ledger::from_state(
            self.config.clone(),
            self.ledger.clone(),
        )?)
    }

    /// The perception scores as a book.
    pub fn score_book(&self, floor: PerceptionScore, rules: ScoreRules) -> ScoreBook {
        let mut b = ScoreBook::new(floor, rules);
        for (k, s) in &self.scores {
            b.set(*k, *s);
        }
        b
    }
}

/// The old chain, marked for archive (deep storage): everything up to and
/// including `last_block` of epoch `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveOld {
    /// The epoch (convergence counter) that ends with this convergence.
    pub epoch: u32,
    /// The old epoch's last block number.
    pub last_block: BlockNumber,
    /// The hash of that last block, under the old epoch's algorithm.
    pub last_hash: Hash32,
}

/// A completed convergence, as each validator computes it locally.
#[derive(Debug, Clone)]
pub struct Converged {
    /// The genesis every validator computed from the same committed state.
    pub genesis: Genesis,
    /// Its hash: the parent of the next block.
    pub genesis_hash: Hash32,
    /// The ledger of the new epoch.
    pub ledger: Ledger,
    /// The old chain, to archive.
    pub archive: ArchiveOld,
}

/// Runs a convergence on `ledger`: builds the genesis, rebuilds the ledger
/// from it and marks the old chain for archive.
pub fn converge(ledger: &Ledger, input: GenesisInput<'_>) -> Result<Converged, ConvergenceError> {
    let genesis = build_genesis(ledger, input)?;
    let new_ledger = genesis.ledger()?;
    Ok(Converged {
        genesis_hash: genesis.hash(),
        archive: ArchiveOld {
            epoch: input.counter.saturating_sub(1),
            last_block: BlockNumber(ledger.next_block().0.saturating_sub(1)),
            last_hash: input.last_block_hash,
        },
        ledger: new_ledger,
        genesis,
    })
}

/// A quorum's signatures over one genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisCertificate {
    /// The chain the certified genesis belongs to.
    pub chain_id: ChainId,
    /// The convergence counter of the certified genesis (the new epoch).
    pub counter: u32,
    /// The hash of the certified genesis ([`Genesis::hash`]).
    pub genesis_hash: Hash32,
    /// q or more signatures, by signer.
    pub signatures: BTreeMap<PublicKey, Signature>,
}

impl GenesisCertificate {
    /// Checks the certificate against the genesis's validator set.
    pub fn verify(&self, set: &ValidatorSet) -> Result<(), ConvergenceError> {
        let d = signing_digest(self.chain_id, self.counter, &self.genesis_hash);
        for (v, s) in &self.signatures {
            if !set.contains(v) {
                return Err(ConvergenceError::NotInSet { validator: *v });
            }
            if v.verify_digest(&d, s).is_err() {
                return Err(ConvergenceError::BadSignature { validator: *v });
            }
        }
        if self.signatures.len() < set.quorum() {
            return Err(ConvergenceError::NoQuorum {
                signers: self.signatures.len(),
                quorum: set.quorum(),
            });
        }
        Ok(())
    }
}

/// Collects validators' signatures over this validator's own genesis until
/// a quorum of the genesis's validator set signed.
#[derive(Debug, Clone)]
pub struct GenesisVotes {
    chain_id: ChainId,
    counter: u32,
    genesis_hash: Hash32,
    set: ValidatorSet,
    signatures: BTreeMap<PublicKey, Signature>,
}

impl GenesisVotes {
    /// Starts collecting for `genesis`.
    pub fn new(genesis: &Genesis) -> Self {
        GenesisVotes {
            chain_id: genesis.chain_id,
            counter: genesis.counter,
            genesis_hash: genesis.hash(),
            set: genesis.validator_set.clone(),
            signatures: BTreeMap::new(),
        }
    }

    /// Handles one signature; `Ok(true)` once a quorum has signed. A repeated
    /// signature is accepted again without effect. A signature over another
    /// genesis is refused: that validator's state differs from ours.
    pub fn handle_signature(&mut self, s: &ConvergenceSignature) -> Result<bool, ConvergenceError> {
        if s.genesis_hash != self.genesis_hash || s.counter != self.counter {
            return Err(ConvergenceError::WrongGenesis {
                expected: self.genesis_hash,
                got: s.genesis_hash,
            });
        }
        if !self.set.contains(&s.validator) {
            return Err(ConvergenceError::NotInSet {
                validator: s.validator,
            });
        }
        let d = signing_digest(self.chain_id, self.counter, &self.genesis_hash);
        if s.validator.verify_digest(&d, &s.signature).is_err() {
            return Err(ConvergenceError::BadSignature {
                validator: s.validator,
            });
        }
        self.signatures.insert(s.validator, s.signature);
        Ok(self.is_certified())
    }

    /// Whether a quorum signed.
    pub fn is_certified(&self) -> bool {
        self.signatures.len() >= self.set.quorum()
    }

    /// The certificate, once a quorum signed.
    pub fn certificate(&self) -> Option<GenesisCertificate> {
        self.is_certified().then(|| GenesisCertificate {
            chain_id: self.chain_id,
            counter: self.counter,
            genesis_hash: self.genesis_hash,
            signatures: self.signatures.clone(),
        })
    }
}
