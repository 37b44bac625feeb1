//! The validator registry (design notes, validator story item 1; DESIGN.md
//! "Validator list and connections": "a peer is accepted as a validator
//! only under a key that the current on-chain validator set, from
//! committed registrations, names"; docs/PROTOCOL.md "Validator
//! registration").
//!
//! Every registered validator, the genesis ones included, has a
//! [`ValidatorRecord`] leaf in the state tree (`StateKey::Validator`), so a
//! registration is provable against a header like any balance. A
//! [`TxOp::RegisterValidator`](undchain_types::msg::TxOp) transaction adds
//! one: it carries the validator's consent signature (checked with the
//! other signatures in [`crate::Ledger::verify`]), pays the transaction
//! fee with the sender's nonce (so a replayed registration is a
//! `BadNonce`), may name a known validator only when the chain owner sends
//! it, and is refused for a key already registered or beyond
//! [`MAX_VALIDATORS`]. No bond is taken: the money rules name none, and
//! the perception score (a new validator starts at the start score and
//! passive) is the gate to a seat.

use serde::{Deserialize, Serialize};
use undchain_types::msg::{Endpoint, MAX_ALIAS, MAX_MEDIA, TransactionBody, ValidatorRegistration};
use undchain_types::{BlockNumber, BoundedString, BoundedVec, PublicKey, TokenAmount, Trust};

use super::exec::Exec;
use super::{Applied, Ledger, LedgerError};

/// Most validators the registry holds (genesis ones included): every one
/// is a roster member that every validator keeps, so the registry is
/// bounded like any other list.
pub const MAX_VALIDATORS: usize = 1024;

/// One registered validator, as its state leaf holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorRecord {
    /// Known (appointed by the chain owner) or unknown.
    pub trust: Trust,
    /// The block that committed the registration (the genesis's first
    /// block for genesis validators).
    pub since: BlockNumber,
    /// Its alias.
    pub alias: BoundedString<MAX_ALIAS>,
    /// How to reach it (empty for genesis validators: the bootstrap list
    /// has theirs).
    pub media: BoundedVec<Endpoint, MAX_MEDIA>,
}

impl ValidatorRecord {
    /// The record of a genesis validator.
    pub fn genesis(trust: Trust, start: BlockNumber) -> Self {
        ValidatorRecord {
            trust,
            since: start,
            alias: BoundedString::default(),
            media: BoundedVec::new(),
        }
    }
}

impl Ledger {
    /// A registered validator's record.
    pub fn validator(&self, id: &PublicKey) -> Option<&ValidatorRecord> {
        self.validators.get(id)
    }

    /// Every registered validator, by key.
    pub fn validators(&self) -> impl Iterator<Item = (&PublicKey, &ValidatorRecord)> {
        self.validators.iter()
    }
}

impl Exec<'_> {
    /// A registered validator as the block has it so far.
    pub(crate) fn validator(&self, id: &PublicKey) -> Option<&ValidatorRecord> {
        self.validators
            .get(id)
            .or_else(|| self.base.validators.get(id))
    }

    /// `TxOp::RegisterValidator`: authority, nonce and fee (a replay is a
    /// `BadNonce`), then the registry.
    pub(crate) fn register_validator(
        &mut self,
        b: &TransactionBody,
        reg: &ValidatorRegistration,
    ) -> Result<Applied, LedgerError> {
        if reg.trust == Trust::Known {
            self.owner_only(b)?;
        }
        self.can_pay(b, TokenAmount::ZERO)?;
        if let Some(r) = self.validator(&reg.validator) {
            return Err(LedgerError::AlreadyRegistered {
                validator: reg.validator,
                since: r.since,
            });
        }
        if self.base.validators.len() + self.validators.len() >= MAX_VALIDATORS {
            return Err(LedgerError::ValidatorRegistryFull {
                max: MAX_VALIDATORS,
            });
        }
        self.charge(b, TokenAmount::ZERO);
        let record = ValidatorRecord {
            trust: reg.trust,
            since: self.number,
            alias: reg.alias.clone(),
            media: reg.media.clone(),
        };
        self.validators.insert(reg.validator, record);
        Ok(Applied::ValidatorRegistered {
            validator: reg.validator,
            trust: reg.trust,
            block: self.number,
        })
    }
}
