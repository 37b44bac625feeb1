//! Submission checks: what a validator runs once when an operation arrives,
//! before any block carries it. [`Ledger::verify`] does the cryptography
//! (signatures, foreign certificates, inclusion proofs) and makes the
//! [`Verified`] a block may carry; [`Ledger::check`] asks whether it would
//! apply against the committed state; [`Ledger::unaffordable_jobs`] tells a
//! proposer which jobs to leave out.

use std::collections::BTreeMap;

use undchain_consensus::certificate::{SignatureVerifier, StrictVerifier};
use undchain_jobfile::JobFile;
use undchain_types::{JobId, PublicKey};

use super::exec;
use super::ops::{LedgerOp, Verified};
use super::{Ledger, LedgerError};
use crate::links::domain_link::{DomainLinkError, verify_proof};

impl Ledger {
    /// Submission check, stateless part: signatures, chain, and for domain
    /// proofs the foreign certificate and inclusion proof. Done once, when
    /// an operation arrives; the result can go into any later block.
    pub fn verify(&self, op: LedgerOp) -> Result<Verified, LedgerError> {
        self.verify_with(op, StrictVerifier)
    }

    /// [`Ledger::verify`] with the host's signature verifier (a host that
    /// already checked these signatures, or a simulator generating valid
    /// operations, need not pay for ed25519 twice; see
    /// [`undchain_consensus::certificate::SignatureVerifier`]).
    pub fn verify_with(
        &self,
        op: LedgerOp,
        mut verifier: impl SignatureVerifier,
    ) -> Result<Verified, LedgerError> {
        let chain = self.config.chain_id;
        match &op {
            LedgerOp::Receipt(r) => {
                let t = &r.terms;
                if t.chain_id != chain {
                    return Err(LedgerError::WrongChain {
                        expected: chain,
                        got: t.chain_id,
                    });
                }
                let d = t.digest();
                if !verifier.verify(&t.client, &d, &r.client_sig) {
                    return Err(LedgerError::BadSignature { signer: t.client });
                }
                if !verifier.verify(&t.partner, &d, &r.partner_sig) {
                    return Err(LedgerError::BadSignature { signer: t.partner });
                }
            }
            LedgerOp::Partial(p) => {
                let c = &p.last_checkpoint.checkpoint;
                if c.chain_id != chain {
                    return Err(LedgerError::WrongChain {
                        expected: chain,
                        got: c.chain_id,
                    });
                }
                if !verifier.verify(&c.client, &c.digest(), &p.last_checkpoint.client_sig) {
                    return Err(LedgerError::BadSignature { signer: c.client });
                }
            }
            LedgerOp::DomainLock(t) => {
                if t.terms.source != chain {
                    return Err(DomainLinkError::NotForThisChain {
                        expected: t.terms.source,
                        here: chain,
                    }
                    .into());
                }
                if !verifier.verify(&t.terms.from, &t.id(), &t.signature) {
                    return Err(LedgerError::BadSignature {
                        signer: t.terms.from,
                    });
                }
            }
            LedgerOp::DomainProof(p) => verify_proof(&self.domains, chain, p, &mut verifier)?,
        }
        let id = op.id();
        Ok(Verified { op, id })
    }

    /// Submission check, stateful part: whether `op` would apply in the next
    /// block against the committed state (unknown job, already completed,
    /// balance, nonce, replayed proof). The same checks run again when a
    /// block carries it; a receipt for a job of the block being built
    /// passes there.
    pub fn check(&self, op: &Verified) -> Result<(), LedgerError> {
        let empty = JobFile::new();
        let mut x = exec::Exec::new(self, self.next_block, &empty);
        x.apply_op(op).map(|_| ())
    }

    /// Jobs of `jobs` (in file order) whose requesters cannot pay the fee
    /// given the jobs before them: a proposer leaves these out.
    pub fn unaffordable_jobs(&self, jobs: &JobFile) -> Vec<JobId> {
        let fee = self.config.transaction_fee.0;
        let mut spent: BTreeMap<PublicKey, u64> = BTreeMap::new();
        let mut out = Vec::new();
        for e in jobs.entries() {
            let Some(payer) = e.client_pool.first() else {
                out.push(e.id);
                continue;
            };
            let s = spent.entry(*payer).or_insert(0);
            let want = s.saturating_add(fee);
            if want > self.account(payer).balance.0 {
                out.push(e.id);
            } else {
                *s = want;
            }
        }
        out
    }
}
