//! Domain link: token transfers between domains (design notes, validator
//! story item 9; DESIGN.md "Domain link"; docs/PROTOCOL.md "Domain link").
//!
//! A transfer moves through at most three committed steps, each applied by
//! the [`crate::ledger::Ledger`] of one domain:
//!
//! 1. **Lock** (source): the payer's signed
//!    [`DomainTransfer`](undchain_types::msg::DomainTransfer) debits the
//!    payer and writes an `Outbound(id) = Locked` leaf into the source's
//!    state; the tokens leave the source's circulating supply.
//! 2. **Credit** (target): a [`DomainTransferProof`] of kind `Credit`
//!    carries a committed source header, its commit certificate and an
//!    inclusion proof of the `Locked` leaf under the header's ledger root.
//!    The target checks the certificate against the validator set it has
//!    registered for the source at that height ([`DomainRegistry`]), then
//!    writes `Inbound(id) = Credited` and credits the payee: exactly once,
//!    because a second proof finds the record.
//! 3. **Expiry and refund**: if no credit came, a committed source header
//!    past `expires_at` (kind `Expire`) makes the target write
//!    `Inbound(id) = Expired`, after which it never credits. A proof of that
//!    record under a committed target header (kind `Refund`) makes the
//!    source refund the payer and mark the lock `Refunded`. The refund needs
//!    the target's word, so a transfer is never both credited and refunded,
//!    whatever the two domains' clocks say.
//!
//! This module holds the registry and the checks that need no ledger
//! state; the ledger applies the steps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use undchain_types::msg::{CommitCertificate, DomainProofKind, DomainTransferProof};
use undchain_types::{BlockHeader, BlockNumber, ChainId, Hash32, HashAlgorithm, HashContext, wire};

use crate::ledger::root::{InboundState, Leaf, OutboundState, verify_leaf};
use undchain_consensus::certificate::{CertificateError, SignatureVerifier, verify_certificate};
use undchain_consensus::validator_set::ValidatorSet;

/// What this chain knows of another domain: its hash algorithm and its
/// validator sets, each from the height it took office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainInfo {
    /// The domain's hash algorithm (block hashes and ledger roots).
    pub algorithm: HashAlgorithm,
    /// Validator sets by the first height they sign.
    pub sets: BTreeMap<BlockNumber, ValidatorSet>,
}

impl DomainInfo {
    /// The set that signs `height`, if one was registered by then.
    pub fn set_at(&self, height: BlockNumber) -> Option<&ValidatorSet> {
        self.sets.range(..=height).next_back().map(|(_, s)| s)
    }

    /// The registration's hash (a leaf of the ledger state).
    pub fn hash_with(&self, algo: HashAlgorithm) -> Hash32 {
        algo.hash(HashContext::LedgerAccount, &wire::encode_bare(self))
    }
}

/// The foreign domains this chain accepts proofs from (committed state:
/// registrations are chain-owner decisions applied with a block).
pub type DomainRegistry = BTreeMap<ChainId, DomainInfo>;

/// Why a domain-link step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainLinkError {
    /// The domain is not registered here.
    #[error("domain {chain} is not registered on this chain")]
    UnknownDomain {
        /// The domain's chain id, absent from this chain's registry.
        chain: ChainId,
    },
    /// The transfer (or proof) is meant for another chain.
    #[error("this step applies on {expected}, not on {here}")]
    NotForThisChain {
        /// The chain the transfer or proof is meant for.
        expected: ChainId,
        /// This chain, where the step was submitted.
        here: ChainId,
    },
    /// Source and target are the same domain.
    #[error("source and target are both {chain}")]
    SameDomain {
        /// The chain named as both source and target.
        chain: ChainId,
    },
    /// The header is from another chain than the step needs.
    #[error("header is from {got}, the step needs a block of {expected}")]
    WrongHeaderChain {
        /// The chain the step needs.
        expected: ChainId,
        /// The chain of the header given.
        got: ChainId,
    },
    /// No validator set registered for the header's height.
    #[error("no validator set of {chain} registered for height {height}")]
    NoSetForHeight {
        /// The domain whose registered sets all start after the height.
        chain: ChainId,
        /// The header's height, which no registered set covers.
        height: BlockNumber,
    },
    /// The header names another validator set than the registered one.
    #[error("header's validator set hash {header:?} is not the registered set's {registered:?}")]
    SetMismatch {
        /// The validator set hash the header names.
        header: Hash32,
        /// The hash of the set registered for the header's height.
        registered: Hash32,
    },
    /// The certificate is not for the header (chain, height or hash).
    #[error("certificate does not match the header: {0}")]
    CertificateMismatch(CertificateError),
    /// The certificate does not verify against the registered set (forged
    /// or unknown signers, bad signatures, fewer than q).
    #[error("certificate refused: {0}")]
    Certificate(CertificateError),
    /// The inclusion proof does not show the record under the header's
    /// ledger root.
    #[error("inclusion proof of transfer {id:?} does not verify under the header's ledger root")]
    BadInclusionProof {
        /// The id of the transfer whose inclusion proof failed.
        id: Hash32,
    },
    /// An expiry proof's header is not past the transfer's expiry.
    #[error("source block {header} is not past expires_at {expires_at}")]
    NotExpired {
        /// The transfer's `expires_at` block, as its terms set it.
        expires_at: BlockNumber,
        /// The number of the source header offered as proof of expiry.
        header: BlockNumber,
    },
    /// A lock whose expiry is already behind.
    #[error("transfer expires at {expires_at}, before block {block}")]
    ExpiryPassed {
        /// The transfer's `expires_at` block, as its terms set it.
        expires_at: BlockNumber,
        /// The block it would lock in.
        block: BlockNumber,
    },
    /// A transfer of zero tokens: nothing would move, so it is refused rather than recorded.
    #[error("transfer of zero tokens")]
    ZeroAmount,
    /// The transfer was already credited here (a replayed proof).
    #[error("transfer {id:?} was already credited")]
    AlreadyCredited {
        /// The id of the transfer already credited here.
        id: Hash32,
    },
    /// The transfer was recorded as expired here; it is never credited.
    #[error("transfer {id:?} expired")]
    AlreadyExpired {
        /// The id of the transfer recorded here as expired.
        id: Hash32,
    },
    /// The transfer is already locked (a replayed lock).
    #[error("transfer {id:?} is already locked")]
    AlreadyLocked {
        /// The id of the transfer already locked.
        id: Hash32,
    },
    /// No such outgoing transfer on this chain.
    #[error("no outgoing transfer {id:?} here")]
    UnknownTransfer {
        /// The id for which this chain has no outgoing transfer.
        id: Hash32,
    },
    /// The outgoing transfer was already refunded.
    #[error("transfer {id:?} was already refunded")]
    AlreadyRefunded {
        /// The id of the transfer already refunded.
        id: Hash32,
    },
    /// A registration for this chain itself.
    #[error("cannot register this chain ({chain}) as a foreign domain")]
    SelfRegistration {
        /// This chain's own id, named in the registration.
        chain: ChainId,
    },
}

/// Checks that `header` is a committed block of `chain`: the certificate is
/// for that header under the domain's algorithm, verifies against the
/// validator set registered for its height, and the header names that set.
/// Returns the domain's hash algorithm.
pub fn verify_foreign_block(
    registry: &DomainRegistry,
    chain: ChainId,
    header: &BlockHeader,
    certificate: &CommitCertificate,
    verifier: impl SignatureVerifier,
) -> Result<HashAlgorithm, DomainLinkError> {
    let info = registry
        .get(&chain)
        .ok_or(DomainLinkError::UnknownDomain { chain })?;
    if header.chain_id != chain {
        return Err(DomainLinkError::WrongHeaderChain {
            expected: chain,
            got: header.chain_id,
        });
    }
    if certificate.chain_id != chain {
        return Err(DomainLinkError::CertificateMismatch(
            CertificateError::WrongChain {
                expected: chain,
                got: certificate.chain_id,
            },
        ));
    }
    if certificate.height != header.number {
        return Err(DomainLinkError::CertificateMismatch(
            CertificateError::WrongHeight {
                expected: header.number,
                got: certificate.height,
            },
        ));
    }
    let block_hash = header.hash_with(info.algorithm);
    if certificate.block_hash != block_hash {
        return Err(DomainLinkError::CertificateMismatch(
            CertificateError::WrongBlock {
                expected: block_hash,
                got: certificate.block_hash,
            },
        ));
    }
    let set = info
        .set_at(header.number)
        .ok_or(DomainLinkError::NoSetForHeight {
            chain,
            height: header.number,
        })?;
    let registered = set.hash_with(info.algorithm);
    if header.validator_set_hash != registered {
        return Err(DomainLinkError::SetMismatch {
            header: header.validator_set_hash,
            registered,
        });
    }
    verify_certificate(certificate, chain, header.number, set, verifier)
        .map_err(DomainLinkError::Certificate)?;
    Ok(info.algorithm)
}

/// The stateless checks of a proof arriving at chain `here`: which chain it
/// applies on, the foreign block and its certificate (signatures through
/// `verifier`), and the inclusion proof or the expiry.
pub fn verify_proof(
    registry: &DomainRegistry,
    here: ChainId,
    p: &DomainTransferProof,
    mut verifier: impl SignatureVerifier,
) -> Result<(), DomainLinkError> {
    let t = &p.transfer.terms;
    let id = t.id();
    if t.source == t.target {
        return Err(DomainLinkError::SameDomain { chain: t.source });
    }
    match &p.kind {
        DomainProofKind::Credit { proof } => {
            if t.target != here {
                return Err(DomainLinkError::NotForThisChain {
                    expected: t.target,
                    here,
                });
            }
            let algo =
                verify_foreign_block(registry, t.source, &p.header, &p.certificate, &mut verifier)?;
            let leaf = Leaf::Outbound {
                terms: t,
                state: OutboundState::Locked,
            }
            .hash(algo);
            if !verify_leaf(algo, &p.header.ledger_root, &leaf, proof) {
                return Err(DomainLinkError::BadInclusionProof { id });
            }
        }
        DomainProofKind::Expire => {
            if t.target != here {
                return Err(DomainLinkError::NotForThisChain {
                    expected: t.target,
                    here,
                });
            }
            verify_foreign_block(registry, t.source, &p.header, &p.certificate, &mut verifier)?;
            if p.header.number <= t.expires_at {
                return Err(DomainLinkError::NotExpired {
                    expires_at: t.expires_at,
                    header: p.header.number,
                });
            }
        }
        DomainProofKind::Refund { proof } => {
            if t.source != here {
                return Err(DomainLinkError::NotForThisChain {
                    expected: t.source,
                    here,
                });
            }
            let algo =
                verify_foreign_block(registry, t.target, &p.header, &p.certificate, &mut verifier)?;
            let leaf = Leaf::Inbound {
                id: &id,
                state: InboundState::Expired,
            }
            .hash(algo);
            if !verify_leaf(algo, &p.header.ledger_root, &leaf, proof) {
                return Err(DomainLinkError::BadInclusionProof { id });
            }
        }
    }
    Ok(())
}
