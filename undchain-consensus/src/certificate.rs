//! Commit certificates: q precommit signatures for one block, verifiable by
//! anyone who knows that height's validator set (DESIGN.md "Agreement";
//! docs/PROTOCOL.md "Agreement, validator sets and perception scores").
//!
//! [`verify_certificate`] takes the chain and height the certificate must
//! be for and refuses, each with its own error: a certificate for another
//! chain or height, the same signer twice, a signer outside the
//! height's set (an unknown key, or a member of a previous set that no longer
//! holds a seat), a signature that does not verify, and fewer than q
//! distinct signers.
//!
//! Signature checks go through a [`SignatureVerifier`], so a host that has
//! already checked a vote (or a simulator sharing work between in-process
//! validators) need not pay for ed25519 twice. [`StrictVerifier`] is plain
//! `verify_strict`.

use std::collections::BTreeSet;

use undchain_types::msg::{CommitCertificate, CommitSignature, CommittedBlock, Round, SignedVote};
use undchain_types::{
    BlockNumber, BoundedVec, ChainId, Hash32, HashAlgorithm, PublicKey, Signature,
};

use crate::validator_set::ValidatorSet;

/// Checks ed25519 signatures over 32-byte digests.
pub trait SignatureVerifier {
    /// Whether `signature` by `signer` over `digest` verifies (strictly).
    fn verify(&mut self, signer: &PublicKey, digest: &Hash32, signature: &Signature) -> bool;
}

/// `verify_strict`, every time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StrictVerifier;

impl SignatureVerifier for StrictVerifier {
    fn verify(&mut self, signer: &PublicKey, digest: &Hash32, signature: &Signature) -> bool {
        signer.verify_digest(digest, signature).is_ok()
    }
}

impl<V: SignatureVerifier + ?Sized> SignatureVerifier for &mut V {
    fn verify(&mut self, signer: &PublicKey, digest: &Hash32, signature: &Signature) -> bool {
        (**self).verify(signer, digest, signature)
    }
}

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The certificate is for another chain.
    #[error("certificate is for {got}, expected {expected}")]
    WrongChain {
        /// The chain the verifier is on.
        expected: ChainId,
        /// The chain the certificate names.
        got: ChainId,
    },
    /// The certificate is for another height.
    #[error("certificate is for height {got}, expected {expected}")]
    WrongHeight {
        /// The height the verifier expected.
        expected: BlockNumber,
        /// The height the certificate names.
        got: BlockNumber,
    },
    /// The certificate is for another block than the header it came with.
    #[error("certificate is for block {got:?}, the header hashes to {expected:?}")]
    WrongBlock {
        /// The hash of the header it came with.
        expected: Hash32,
        /// The block hash the certificate names.
        got: Hash32,
    },
    /// A signer appears twice.
    #[error("signer {validator:?} appears twice")]
    DuplicateSigner {
        /// The validator whose signature appears twice.
        validator: PublicKey,
    },
    /// A signer holds no seat in this height's set (unknown, or from a
    /// previous set).
    #[error("signer {validator:?} holds no seat in this height's validator set")]
    NotInSet {
        /// The key that signed without a seat.
        validator: PublicKey,
    },
    /// A signature does not verify.
    #[error("precommit signature of {validator:?} does not verify")]
    BadSignature {
        /// The validator the bad signature claims to be from.
        validator: PublicKey,
    },
    /// Fewer than q distinct valid signers.
    #[error("{signers} signers, quorum is {quorum}")]
    InsufficientWeight {
        /// How many distinct members signed.
        signers: usize,
        /// q for the set.
        quorum: usize,
    },
}

/// Checks `cert` as the certificate of block `height` on chain `chain`,
/// against that height's validator set `set`: refuses another chain or
/// height, a signer twice, a signer without a seat in `set`, a signature
/// that does not verify and fewer than q distinct signers. (Which block it
/// certifies is the caller's to compare: [`verify_committed_block`] does
/// it for a header.)
pub fn verify_certificate(
    cert: &CommitCertificate,
    chain: ChainId,
    height: BlockNumber,
    set: &ValidatorSet,
    mut verifier: impl SignatureVerifier,
) -> Result<(), CertificateError> {
    if cert.chain_id != chain {
        return Err(CertificateError::WrongChain {
            expected: chain,
            got: cert.chain_id,
        });
    }
    if cert.height != height {
        return Err(CertificateError::WrongHeight {
            expected: height,
            got: cert.height,
        });
    }
    let mut seen = BTreeSet::new();
    for sig in cert.signatures.iter() {
        if !seen.insert(sig.validator) {
            return Err(CertificateError::DuplicateSigner {
                validator: sig.validator,
            });
        }
        if !set.contains(&sig.validator) {
            return Err(CertificateError::NotInSet {
                validator: sig.validator,
            });
        }
        let digest = cert.precommit_for(sig.validator).digest();
        if !verifier.verify(&sig.validator, &digest, &sig.signature) {
            return Err(CertificateError::BadSignature {
                validator: sig.validator,
            });
        }
    }
    if seen.len() < set.quorum() {
        return Err(CertificateError::InsufficientWeight {
            signers: seen.len(),
            quorum: set.quorum(),
        });
    }
    Ok(())
}

/// Checks a decided block: its certificate is for `chain`, `height` and the
/// header's hash under `algo`, and verifies against `set`.
pub fn verify_committed_block(
    block: &CommittedBlock,
    chain: ChainId,
    height: BlockNumber,
    set: &ValidatorSet,
    algo: HashAlgorithm,
    verifier: impl SignatureVerifier,
) -> Result<(), CertificateError> {
    let cert = &block.certificate;
    if cert.chain_id != chain {
        return Err(CertificateError::WrongChain {
            expected: chain,
            got: cert.chain_id,
        });
    }
    if block.header.number != height {
        return Err(CertificateError::WrongHeight {
            expected: height,
            got: block.header.number,
        });
    }
    let id = block.header.hash_with(algo);
    if cert.block_hash != id {
        return Err(CertificateError::WrongBlock {
            expected: id,
            got: cert.block_hash,
        });
    }
    verify_certificate(cert, chain, height, set, verifier)
}

/// Builds a certificate from precommits for one block (they must share
/// chain, height, round and value; extra ones beyond [`undchain_types::msg::MAX_ACTIVE`]
/// are dropped). Signers come out in key order.
pub fn certificate_from_precommits<'a>(
    chain_id: ChainId,
    height: BlockNumber,
    round: Round,
    block_hash: Hash32,
    precommits: impl IntoIterator<Item = &'a SignedVote>,
) -> CommitCertificate {
    let mut sigs: Vec<CommitSignature> = precommits
        .into_iter()
        .filter(|v| {
            v.vote.chain_id == chain_id
                && v.vote.height == height
                && v.vote.round == round
                && v.vote.value == Some(block_hash)
        })
        .map(|v| CommitSignature {
            validator: v.vote.validator,
            signature: v.signature,
        })
        .collect();
    sigs.sort();
    sigs.dedup_by(|a, b| a.validator == b.validator);
    CommitCertificate {
        chain_id,
        height,
        round,
        block_hash,
        signatures: BoundedVec::truncating(sigs),
    }
}

/// Why a proposal's parent commit does not match its header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParentCommitError {
    /// A block after the first came without its parent's certificate.
    #[error("proposal for block {height} carries no parent certificate")]
    Missing {
        /// The number of the proposed block.
        height: BlockNumber,
    },
    /// The first block of an epoch cannot name parent signers.
    #[error("first block carries a parent certificate or parent signers")]
    Unexpected,
    /// The certificate is not for the header's parent.
    #[error("parent certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// `parent_signers` does not list exactly the certificate's signers.
    #[error("parent_signers {header:#b} but the certificate's signers are {certificate:#b}")]
    SignerMismatch {
        /// The signer bitmap the header claims.
        header: u16,
        /// The bitmap of the certificate's actual signers.
        certificate: u16,
    },
}

/// Checks that `header.parent_signers` is exactly the signer set of a valid
/// certificate for the parent block, against the parent's validator set
/// (`None` for the first block of an epoch).
pub fn check_parent_commit(
    header: &undchain_types::BlockHeader,
    certificate: Option<&CommitCertificate>,
    parent_set: Option<&ValidatorSet>,
    mut verifier: impl SignatureVerifier,
) -> Result<(), ParentCommitError> {
    match (parent_set, certificate) {
        (None, None) if header.parent_signers == 0 => Ok(()),
        (None, _) => Err(ParentCommitError::Unexpected),
        (Some(_), None) => Err(ParentCommitError::Missing {
            height: header.number,
        }),
        (Some(set), Some(cert)) => {
            let parent_height = BlockNumber(header.number.0.saturating_sub(1));
            if cert.block_hash != header.parent {
                return Err(CertificateError::WrongBlock {
                    expected: header.parent,
                    got: cert.block_hash,
                }
                .into());
            }
            verify_certificate(cert, header.chain_id, parent_height, set, &mut verifier)?;
            let bits = set.bitmap(cert.signatures.iter().map(|s| &s.validator));
            if bits != header.parent_signers {
                return Err(ParentCommitError::SignerMismatch {
                    header: header.parent_signers,
                    certificate: bits,
                });
            }
            Ok(())
        }
    }
}
