//! What a block asks the ledger to do besides committing its job file:
//! claims (receipts and partial completions, paid from the job's escrow at
//! settlement) and transactions (transfers, mints, domain registrations,
//! light-client updates, domain locks and proofs), each verified once when
//! it is submitted ([`crate::Ledger::verify`]).

use undchain_consensus::certificate::SignatureVerifier;
use undchain_types::Hash32;
use undchain_types::msg::TxOp;

use super::LedgerError;
use crate::links::domain_link::verify_signatures;

/// A user operation, as submitted (unverified): the block operation of
/// `undchain-types` ([`undchain_types::msg::Operation`]), named for what
/// the ledger does with it.
pub use undchain_types::msg::Operation as LedgerOp;

/// An operation whose signatures this ledger has checked. Only
/// [`crate::Ledger::verify`] makes one, so a block carries only verified
/// operations; everything that depends on state is checked again when the
/// block applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub(crate) op: LedgerOp,
    pub(crate) id: Hash32,
}

impl Verified {
    /// The operation, known to carry valid signatures.
    pub fn op(&self) -> &LedgerOp {
        &self.op
    }

    /// The operation's id ([`LedgerOp::id`]).
    pub fn id(&self) -> Hash32 {
        self.id
    }

    /// Gives the operation back.
    pub fn into_op(self) -> LedgerOp {
        self.op
    }
}

fn chain_is(
    expected: undchain_types::ChainId,
    got: undchain_types::ChainId,
) -> Result<(), LedgerError> {
    if expected == got {
        Ok(())
    } else {
        Err(LedgerError::WrongChain { expected, got })
    }
}

/// The stateless checks of `op` for chain `chain`: chain ids and every
/// signature (through `verifier`), certificates' signatures included.
pub(crate) fn verify_op(
    chain: undchain_types::ChainId,
    op: &LedgerOp,
    mut verifier: impl SignatureVerifier,
) -> Result<(), LedgerError> {
    match op {
        LedgerOp::Receipt(r) => {
            let t = &r.terms;
            chain_is(chain, t.chain_id)?;
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
            chain_is(chain, c.chain_id)?;
            let d = c.digest();
            if !verifier.verify(&c.client, &d, &p.last_checkpoint.client_sig) {
                return Err(LedgerError::BadSignature { signer: c.client });
            }
            if !verifier.verify(&c.partner, &d, &p.partner_sig) {
                return Err(LedgerError::BadSignature { signer: c.partner });
            }
        }
        LedgerOp::Transaction(t) => {
            let b = &t.body;
            chain_is(chain, b.chain_id)?;
            if !verifier.verify(&b.sender, &b.digest(), &t.signature) {
                return Err(LedgerError::BadSignature { signer: b.sender });
            }
            match &b.op {
                TxOp::UpdateDomain(u) => verify_signatures(&u.block.certificate, &mut verifier)?,
                TxOp::DomainProof(p) => verify_signatures(&p.block.certificate, &mut verifier)?,
                TxOp::DomainMisbehaviour(m) => {
                    verify_signatures(&m.first.certificate, &mut verifier)?;
                    verify_signatures(&m.second.certificate, &mut verifier)?;
                }
                TxOp::RegisterValidator(r) => {
                    if !verifier.verify(&r.validator, &r.digest(b.chain_id), &r.consent) {
                        return Err(LedgerError::BadSignature {
                            signer: r.validator,
                        });
                    }
                }
                TxOp::Transfer { .. }
                | TxOp::Mint { .. }
                | TxOp::RegisterDomain(_)
                | TxOp::DomainLock { .. } => {}
            }
        }
    }
    Ok(())
}
