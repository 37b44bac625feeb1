//! Domain link: token transfers between domains, proven with IBC-style
//! light clients (design notes, validator story item 9; DESIGN.md "Domain
//! link", "Money": light-client rules; docs/PROTOCOL.md "Domain link").
//!
//! Each chain keeps a [`DomainClient`] per registered domain: trusted
//! headers of that domain (height, time, block hash, validator set), a
//! trusting period, a floor below which nothing verifies any more and a
//! frozen flag. A certified header of the domain is accepted
//! ([`DomainClient::check_header`]) only
//!
//! * while the link is not frozen and the header is not below the floor;
//! * against the latest trusted header at or below its height, and only
//!   within the trusting period of that header's time (a set cannot vouch
//!   for later heights forever), and not from the future (beyond the
//!   allowed clock drift);
//! * if the header names the trusted set: with a quorum of that set;
//! * if it names another set (a hand-off): only as a light-client update
//!   that carries the new set, whose hash the header names, with a quorum
//!   of the new set **and** more than a third (f+1) of the trusted set
//!   among the signers (IBC's trust level), so the old set hands off.
//!
//! A certified header conflicting with a trusted one of the same height, or
//! two certified headers of one height, is misbehaviour: the link freezes
//! until the chain owner registers the domain again. Trusted headers are
//! bounded ([`MAX_TRUSTED`]) and expire with their trusting period; the
//! floor rises with the oldest one kept, and records of transfers whose
//! proofs can no longer verify are pruned by the ledger.
//!
//! Signatures are checked once, when a transaction arrives
//! ([`verify_signatures`]); everything that depends on state (the trusted
//! sets, the period, the floor, the frozen flag) is checked again when the
//! transaction applies.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use undchain_consensus::certificate::{CertificateError, SignatureVerifier};
use undchain_consensus::validator_set::{Seat, ValidatorSet, ValidatorSetError};
use undchain_types::msg::{CommitCertificate, DomainRegistration, SeatRecord, SignedHeader};
use undchain_types::{
    BlockNumber, BlockTime, ChainId, Hash32, HashAlgorithm, HashContext, PublicKey, wire,
};

/// Most trusted headers kept per domain.
pub const MAX_TRUSTED: usize = 32;

/// One trusted header of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedHeader {
    /// The header's block time.
    pub time: BlockTime,
    /// The header's hash under the domain's algorithm.
    pub block_hash: Hash32,
    /// The validator set the header names (and that signed it).
    pub set: ValidatorSet,
}

/// This chain's light client of another domain (committed state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainClient {
    /// The domain's hash algorithm.
    pub algorithm: HashAlgorithm,
    /// How long a trusted header vouches for later ones, in microseconds.
    pub trusting_period_us: u64,
    /// Trusted headers by height.
    pub trusted: BTreeMap<BlockNumber, TrustedHeader>,
    /// No header below this height verifies any more; never decreases.
    pub floor: BlockNumber,
    /// Frozen on proven misbehaviour: nothing of the domain verifies until
    /// the chain owner registers it again.
    pub frozen: bool,
}

/// The registered domains, by chain id (committed state).
pub type DomainRegistry = BTreeMap<ChainId, DomainClient>;

/// Why a domain-link step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainLinkError {
    /// The domain is not registered here.
    #[error("domain {chain} is not registered on this chain")]
    UnknownDomain {
        /// The domain's chain id.
        chain: ChainId,
    },
    /// The domain's link is frozen after proven misbehaviour.
    #[error("the link to {chain} is frozen after misbehaviour")]
    Frozen {
        /// The frozen domain.
        chain: ChainId,
    },
    /// A registration of this chain itself.
    #[error("cannot register this chain ({chain}) as a foreign domain")]
    SelfRegistration {
        /// This chain's id.
        chain: ChainId,
    },
    /// A registration with a zero trusting period.
    #[error("a trusting period of zero trusts nothing")]
    ZeroTrustingPeriod,
    /// The seats given do not form a validator set.
    #[error("not a validator set: {0}")]
    BadSet(ValidatorSetError),
    /// The transfer (or proof) applies on another chain.
    #[error("this step applies on {expected}, not on {here}")]
    NotForThisChain {
        /// Where it applies.
        expected: ChainId,
        /// This chain.
        here: ChainId,
    },
    /// Source and target are the same domain.
    #[error("source and target are both {chain}")]
    SameDomain {
        /// The chain named twice.
        chain: ChainId,
    },
    /// The header is from another chain than the step needs.
    #[error("header is from {got}, the step needs a block of {expected}")]
    WrongHeaderChain {
        /// The chain needed.
        expected: ChainId,
        /// The header's chain.
        got: ChainId,
    },
    /// The certificate is not for the header, or a signature is bad or
    /// repeated, or a signer holds no seat in the sets that may sign.
    #[error("certificate refused: {0}")]
    Certificate(CertificateError),
    /// Fewer than a quorum of the set that must sign.
    #[error("{signers} signers of the header's set, quorum is {quorum}")]
    NoQuorum {
        /// Distinct members of the set that signed.
        signers: usize,
        /// The set's quorum.
        quorum: usize,
    },
    /// A hand-off signed by too few of the trusted (old) set.
    #[error("{signers} signers of the trusted set vouch for the new set, {needed} needed")]
    NoHandOff {
        /// Distinct members of the trusted set that signed.
        signers: usize,
        /// f + 1 of the trusted set.
        needed: usize,
    },
    /// The header is below the link's floor.
    #[error("height {height} is below the link's floor {floor}")]
    BelowFloor {
        /// The header's height.
        height: BlockNumber,
        /// The floor.
        floor: BlockNumber,
    },
    /// No trusted header at or below the height.
    #[error("no trusted header of {chain} at or below height {height}")]
    NoTrustedHeader {
        /// The domain.
        chain: ChainId,
        /// The header's height.
        height: BlockNumber,
    },
    /// The trusted header's trusting period is over.
    #[error("the trusted header of {chain} at {trusted_at} expired (now {now})")]
    TrustExpired {
        /// The domain.
        chain: ChainId,
        /// The trusted header's time.
        trusted_at: BlockTime,
        /// This chain's block time.
        now: BlockTime,
    },
    /// A header later than this chain's time plus the allowed drift, or
    /// earlier than the trusted header it follows.
    #[error("header time {time} is not within trusted {trusted_at} ..= now {now} + drift")]
    BadHeaderTime {
        /// The header's time.
        time: BlockTime,
        /// The trusted header's time.
        trusted_at: BlockTime,
        /// This chain's block time.
        now: BlockTime,
    },
    /// The header names another set than the trusted one, and no hand-off
    /// set came with it (or not the one it names).
    #[error("header's validator set {header:?} is not the trusted {trusted:?}")]
    SetMismatch {
        /// The set hash the header names.
        header: Hash32,
        /// The trusted set's hash.
        trusted: Hash32,
    },
    /// The update's header is already trusted.
    #[error("header {height} is already trusted")]
    AlreadyTrusted {
        /// Its height.
        height: BlockNumber,
    },
    /// The evidence is not misbehaviour (other heights, or one header).
    #[error("not misbehaviour: {0}")]
    NotMisbehaviour(&'static str),
    /// The inclusion proof does not show the record under the header's
    /// ledger root.
    #[error("inclusion proof of transfer {id:?} does not verify under the header's ledger root")]
    BadInclusionProof {
        /// The transfer.
        id: Hash32,
    },
    /// A credit proof from a source block past the transfer's expiry.
    #[error("source block {header} is past expires_at {expires_at}: too late to credit")]
    TooLateToCredit {
        /// The transfer's expiry.
        expires_at: BlockNumber,
        /// The source header's height.
        header: BlockNumber,
    },
    /// An expiry proof from a source block not past the expiry.
    #[error("source block {header} is not past expires_at {expires_at}")]
    NotExpired {
        /// The transfer's expiry.
        expires_at: BlockNumber,
        /// The source header's height.
        header: BlockNumber,
    },
    /// A lock whose expiry is behind, or further ahead than allowed.
    #[error("expires_at {expires_at} is outside {block} ..= {latest}")]
    BadExpiry {
        /// The requested expiry.
        expires_at: BlockNumber,
        /// The lock's block.
        block: BlockNumber,
        /// The latest expiry allowed.
        latest: BlockNumber,
    },
    /// A transfer of zero tokens.
    #[error("transfer of zero tokens")]
    ZeroAmount,
    /// The transfer was already credited here.
    #[error("transfer {id:?} was already credited")]
    AlreadyCredited {
        /// The transfer.
        id: Hash32,
    },
    /// The transfer was recorded as expired here.
    #[error("transfer {id:?} expired")]
    AlreadyExpired {
        /// The transfer.
        id: Hash32,
    },
    /// The transfer's expiry is below the link's floor: its records may be
    /// pruned, so it is neither credited nor expired any more.
    #[error("transfer {id:?} expires at {expires_at}, below the link's floor {floor}")]
    TransferTooOld {
        /// The transfer.
        id: Hash32,
        /// Its expiry.
        expires_at: BlockNumber,
        /// The floor.
        floor: BlockNumber,
    },
    /// No such locked outgoing transfer on this chain (never locked,
    /// refunded already, or pruned).
    #[error("no locked outgoing transfer {id:?} here")]
    UnknownTransfer {
        /// The transfer.
        id: Hash32,
    },
}

/// The validator set of `seats`.
pub fn set_of(seats: &[SeatRecord]) -> Result<ValidatorSet, DomainLinkError> {
    ValidatorSet::new(
        seats
            .iter()
            .map(|s| Seat {
                id: s.id,
                trust: s.trust,
                filling_unknown: s.filling_unknown,
            })
            .collect(),
    )
    .map_err(DomainLinkError::BadSet)
}

/// Checks every signature of `cert` once (strictly, through `verifier`) and
/// refuses repeated signers; which set they belong to is checked when the
/// transaction applies.
pub fn verify_signatures(
    cert: &CommitCertificate,
    mut verifier: impl SignatureVerifier,
) -> Result<(), DomainLinkError> {
    let mut seen = BTreeSet::new();
    for sig in cert.signatures.iter() {
        if !seen.insert(sig.validator) {
            return Err(DomainLinkError::Certificate(
                CertificateError::DuplicateSigner {
                    validator: sig.validator,
                },
            ));
        }
        let digest = cert.precommit_for(sig.validator).digest();
        if !verifier.verify(&sig.validator, &digest, &sig.signature) {
            return Err(DomainLinkError::Certificate(
                CertificateError::BadSignature {
                    validator: sig.validator,
                },
            ));
        }
    }
    Ok(())
}

/// What a certified header is to a light client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderCheck {
    /// A new header the client may trust; its hash.
    Valid(Hash32),
    /// The very header already trusted at its height.
    Known,
    /// Certified, but another header is trusted at its height:
    /// misbehaviour.
    Conflict,
}

/// The time rules a header check runs under.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// This chain's block time.
    pub now: BlockTime,
    /// How far ahead of `now` a header's time may be.
    pub max_drift_us: u64,
}

fn signers(cert: &CommitCertificate) -> impl Iterator<Item = &PublicKey> {
    cert.signatures.iter().map(|s| &s.validator)
}

impl DomainClient {
    /// The client a registration starts: one trusted header and its set.
    /// The header must name that set; its height must not be below
    /// `floor` (what an earlier registration of the domain left).
    pub fn register(reg: &DomainRegistration, floor: BlockNumber) -> Result<Self, DomainLinkError> {
        if reg.trusting_period_us == 0 {
            return Err(DomainLinkError::ZeroTrustingPeriod);
        }
        let set = set_of(&reg.seats)?;
        let named = set.hash_with(reg.algorithm);
        if reg.header.validator_set_hash != named {
            return Err(DomainLinkError::SetMismatch {
                header: reg.header.validator_set_hash,
                trusted: named,
            });
        }
        if reg.header.number < floor {
            return Err(DomainLinkError::BelowFloor {
                height: reg.header.number,
                floor,
            });
        }
        let trusted = TrustedHeader {
            time: reg.header.time,
            block_hash: reg.header.hash_with(reg.algorithm),
            set,
        };
        Ok(DomainClient {
            algorithm: reg.algorithm,
            trusting_period_us: reg.trusting_period_us,
            trusted: [(reg.header.number, trusted)].into(),
            floor: floor.max(reg.header.number),
            frozen: false,
        })
    }

    /// The hash of the client (the value of its state leaf).
    pub fn hash_with(&self, algo: HashAlgorithm) -> Hash32 {
        algo.hash(HashContext::LedgerAccount, &wire::encode_bare(self))
    }

    /// The latest trusted header at or below `height`.
    pub fn trusted_at(&self, height: BlockNumber) -> Option<(BlockNumber, &TrustedHeader)> {
        self.trusted
            .range(..=height)
            .next_back()
            .map(|(h, t)| (*h, t))
    }

    /// Checks certified header `sh` of domain `chain` against the trusted
    /// headers at `clock` (signatures were checked by
    /// [`verify_signatures`]). `new_set` is the set a light-client update
    /// hands off to; proofs never carry one.
    pub fn check_header(
        &self,
        chain: ChainId,
        sh: &SignedHeader,
        new_set: Option<&ValidatorSet>,
        clock: Clock,
    ) -> Result<HeaderCheck, DomainLinkError> {
        let (h, cert) = (&sh.header, &sh.certificate);
        if self.frozen {
            return Err(DomainLinkError::Frozen { chain });
        }
        let hash = self.matches_certificate(chain, sh)?;
        if h.number < self.floor {
            return Err(DomainLinkError::BelowFloor {
                height: h.number,
                floor: self.floor,
            });
        }
        let (base_h, base) = self
            .trusted_at(h.number)
            .ok_or(DomainLinkError::NoTrustedHeader {
                chain,
                height: h.number,
            })?;
        if clock.now.0 >= base.time.0.saturating_add(self.trusting_period_us) {
            return Err(DomainLinkError::TrustExpired {
                chain,
                trusted_at: base.time,
                now: clock.now,
            });
        }
        if h.time < base.time || h.time.0 > clock.now.0.saturating_add(clock.max_drift_us) {
            return Err(DomainLinkError::BadHeaderTime {
                time: h.time,
                trusted_at: base.time,
                now: clock.now,
            });
        }
        let trusted_hash = base.set.hash_with(self.algorithm);
        if h.validator_set_hash == trusted_hash {
            need_quorum(cert, &base.set, None)?;
        } else {
            let new = new_set
                .filter(|s| s.hash_with(self.algorithm) == h.validator_set_hash)
                .ok_or(DomainLinkError::SetMismatch {
                    header: h.validator_set_hash,
                    trusted: trusted_hash,
                })?;
            need_quorum(cert, new, Some(&base.set))?;
            let old = signers(cert).filter(|v| base.set.contains(v)).count();
            let needed = base.set.max_faulty() + 1;
            if old < needed {
                return Err(DomainLinkError::NoHandOff {
                    signers: old,
                    needed,
                });
            }
        }
        if base_h == h.number {
            return Ok(if base.block_hash == hash {
                HeaderCheck::Known
            } else {
                HeaderCheck::Conflict
            });
        }
        Ok(HeaderCheck::Valid(hash))
    }

    /// The header's hash, if the certificate is for it (chain, height,
    /// hash under the domain's algorithm).
    fn matches_certificate(
        &self,
        chain: ChainId,
        sh: &SignedHeader,
    ) -> Result<Hash32, DomainLinkError> {
        let (h, cert) = (&sh.header, &sh.certificate);
        if h.chain_id != chain {
            return Err(DomainLinkError::WrongHeaderChain {
                expected: chain,
                got: h.chain_id,
            });
        }
        let mismatch = |e| Err(DomainLinkError::Certificate(e));
        if cert.chain_id != chain {
            return mismatch(CertificateError::WrongChain {
                expected: chain,
                got: cert.chain_id,
            });
        }
        if cert.height != h.number {
            return mismatch(CertificateError::WrongHeight {
                expected: h.number,
                got: cert.height,
            });
        }
        let hash = h.hash_with(self.algorithm);
        if cert.block_hash != hash {
            return mismatch(CertificateError::WrongBlock {
                expected: hash,
                got: cert.block_hash,
            });
        }
        Ok(hash)
    }

    /// Trusts `sh` (checked by [`DomainClient::check_header`] as
    /// [`HeaderCheck::Valid`]) with the set it names, then prunes.
    pub fn trust(
        &mut self,
        sh: &SignedHeader,
        set: ValidatorSet,
        block_hash: Hash32,
        now: BlockTime,
    ) {
        self.trusted.insert(
            sh.header.number,
            TrustedHeader {
                time: sh.header.time,
                block_hash,
                set,
            },
        );
        self.prune(now);
    }

    /// Drops trusted headers whose trusting period is over, then keeps at
    /// most [`MAX_TRUSTED`] (dropping first a header whose predecessor has
    /// the same set, which changes no verdict but freshness, else the
    /// oldest), and raises the floor to the oldest one kept. Returns
    /// whether anything changed.
    pub fn prune(&mut self, now: BlockTime) -> bool {
        let before = (self.trusted.len(), self.floor);
        let period = self.trusting_period_us;
        let expired: Vec<BlockNumber> = self
            .trusted
            .iter()
            .filter(|(_, t)| now.0 >= t.time.0.saturating_add(period))
            .map(|(h, _)| *h)
            .collect();
        for h in &expired {
            self.trusted.remove(h);
            self.floor = self.floor.max(h.next());
        }
        while self.trusted.len() > MAX_TRUSTED {
            let newest = self.trusted.keys().next_back().copied();
            let redundant = self
                .trusted
                .iter()
                .zip(self.trusted.iter().skip(1))
                .find(|((_, a), (h, b))| a.set == b.set && Some(**h) != newest)
                .map(|(_, (h, _))| *h);
            let drop = redundant.or_else(|| self.trusted.keys().next().copied());
            if let Some(h) = drop {
                self.trusted.remove(&h);
            }
        }
        if let Some(first) = self.trusted.keys().next() {
            self.floor = self.floor.max(*first);
        }
        before != (self.trusted.len(), self.floor)
    }
}

/// A quorum of `set` among the signers; every signer must hold a seat in
/// `set` or in `also` (the trusted set of a hand-off).
fn need_quorum(
    cert: &CommitCertificate,
    set: &ValidatorSet,
    also: Option<&ValidatorSet>,
) -> Result<(), DomainLinkError> {
    let mut members = 0;
    for v in signers(cert) {
        if set.contains(v) {
            members += 1;
        } else if !also.is_some_and(|o| o.contains(v)) {
            return Err(DomainLinkError::Certificate(CertificateError::NotInSet {
                validator: *v,
            }));
        }
    }
    if members < set.quorum() {
        return Err(DomainLinkError::NoQuorum {
            signers: members,
            quorum: set.quorum(),
        });
    }
    Ok(())
}
