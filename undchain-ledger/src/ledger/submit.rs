//! Submission checks: what a validator runs once when an operation arrives,
//! before any block carries it. [`Ledger::verify`] does the cryptography
//! (signatures, foreign certificates' signatures) and makes the
//! [`Verified`] a block may carry; [`Ledger::check`] asks whether it would
//! apply in the next block against the committed state, with the typed
//! reason if not.

use undchain_consensus::certificate::{SignatureVerifier, StrictVerifier};

use super::exec::Exec;
use super::ops::{LedgerOp, Verified, verify_op};
use super::{Applied, Ledger, LedgerError};

impl Ledger {
    /// Verifies `op`'s chain and signatures (strictly).
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
        verifier: impl SignatureVerifier,
    ) -> Result<Verified, LedgerError> {
        verify_op(self.config.chain_id, &op, verifier)?;
        let id = op.id();
        Ok(Verified { op, id })
    }

    /// Whether `op` would apply in the next block against the committed
    /// state (the same checks run again when a block carries it), and what
    /// it would do. A claim on a job that the block being built commits is
    /// refused here (`UnknownJob`: not committed yet) and applies in that
    /// block, after its jobs.
    pub fn check(&self, op: &Verified) -> Result<Applied, LedgerError> {
        Exec::new(self, self.next_block, 0, 1).apply_op(op)
    }
}
