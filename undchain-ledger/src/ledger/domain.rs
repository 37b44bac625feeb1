//! Domain-link transactions as the ledger applies them: registration
//! (chain owner), light-client updates and misbehaviour (anyone), locks
//! (the payer) and proofs (anyone); see [`crate::links::domain_link`] for
//! the light-client rules and docs/PROTOCOL.md "Domain link".
//!
//! Every check that depends on state runs here, when the block applies the
//! transaction, even though its signatures were checked at submission: the
//! trusted headers, the trusting period, the floor and the frozen flag may
//! have changed in between.

use undchain_types::msg::{
    DomainMisbehaviour, DomainProofKind, DomainRegistration, DomainTransferProof,
    DomainTransferTerms, DomainUpdate, TransactionBody,
};
use undchain_types::{BlockNumber, ChainId, PublicKey, TokenAmount};

use super::exec::Exec;
use super::state::{InboundRecord, InboundState, StateKey, verify_leaf};
use super::{Applied, LedgerError};
use crate::links::domain_link::{Clock, DomainClient, DomainLinkError, HeaderCheck, set_of};

impl Exec<'_> {
    fn clock(&self) -> Clock {
        Clock {
            now: self.now,
            max_drift_us: self.base.config.max_clock_drift_us,
        }
    }

    fn client(&self, chain: ChainId) -> Result<&DomainClient, DomainLinkError> {
        self.domain(&chain)
            .ok_or(DomainLinkError::UnknownDomain { chain })
    }

    pub(crate) fn register_domain(
        &mut self,
        b: &TransactionBody,
        reg: &DomainRegistration,
    ) -> Result<Applied, LedgerError> {
        self.owner_only(b)?;
        let chain = reg.header.chain_id;
        if chain == self.base.config.chain_id {
            return Err(DomainLinkError::SelfRegistration { chain }.into());
        }
        let floor = self.domain(&chain).map_or(BlockNumber(0), |c| c.floor);
        let client = DomainClient::register(reg, floor)?;
        self.can_pay(b, TokenAmount::ZERO)?;
        self.charge(b, TokenAmount::ZERO);
        self.domains.insert(chain, client);
        Ok(Applied::DomainRegistered { chain })
    }

    pub(crate) fn update_domain(
        &mut self,
        b: &TransactionBody,
        u: &DomainUpdate,
    ) -> Result<Applied, LedgerError> {
        let chain = u.block.header.chain_id;
        let client = self.client(chain)?;
        let new_set = u.new_seats.as_ref().map(|s| set_of(s)).transpose()?;
        let check = client.check_header(chain, &u.block, new_set.as_ref(), self.clock())?;
        let mut client = client.clone();
        let height = u.block.header.number;
        let applied = match check {
            HeaderCheck::Known => {
                return Err(DomainLinkError::AlreadyTrusted { height }.into());
            }
            HeaderCheck::Conflict => {
                client.frozen = true;
                Applied::DomainFrozen { chain }
            }
            HeaderCheck::Valid(hash) => {
                let named = u.block.header.validator_set_hash;
                let set = match new_set {
                    Some(s) if s.hash_with(client.algorithm) == named => s,
                    _ => client
                        .trusted_at(height)
                        .map(|(_, t)| t.set.clone())
                        .ok_or(DomainLinkError::NoTrustedHeader { chain, height })?,
                };
                client.trust(&u.block, set, hash, self.now);
                Applied::DomainUpdated { chain, height }
            }
        };
        self.can_pay(b, TokenAmount::ZERO)?;
        self.charge(b, TokenAmount::ZERO);
        self.domains.insert(chain, client);
        Ok(applied)
    }

    pub(crate) fn misbehaviour(
        &mut self,
        b: &TransactionBody,
        m: &DomainMisbehaviour,
    ) -> Result<Applied, LedgerError> {
        let (x, y) = (&m.first.header, &m.second.header);
        if x.chain_id != y.chain_id {
            return Err(DomainLinkError::NotMisbehaviour("headers of two domains").into());
        }
        if x.number != y.number {
            return Err(DomainLinkError::NotMisbehaviour("headers of two heights").into());
        }
        let chain = x.chain_id;
        let client = self.client(chain)?;
        if x.hash_with(client.algorithm) == y.hash_with(client.algorithm) {
            return Err(DomainLinkError::NotMisbehaviour("one header twice").into());
        }
        client.check_header(chain, &m.first, None, self.clock())?;
        client.check_header(chain, &m.second, None, self.clock())?;
        let mut client = client.clone();
        client.frozen = true;
        self.can_pay(b, TokenAmount::ZERO)?;
        self.charge(b, TokenAmount::ZERO);
        self.domains.insert(chain, client);
        Ok(Applied::DomainFrozen { chain })
    }

    pub(crate) fn lock(
        &mut self,
        b: &TransactionBody,
        target: ChainId,
        to: PublicKey,
        amount: TokenAmount,
        expires_at: BlockNumber,
    ) -> Result<Applied, LedgerError> {
        let here = self.base.config.chain_id;
        if target == here {
            return Err(DomainLinkError::SameDomain { chain: here }.into());
        }
        if amount == TokenAmount::ZERO {
            return Err(DomainLinkError::ZeroAmount.into());
        }
        if self.client(target)?.frozen {
            return Err(DomainLinkError::Frozen { chain: target }.into());
        }
        let latest = BlockNumber(
            self.number
                .0
                .saturating_add(self.base.config.max_lock_blocks),
        );
        if expires_at < self.number || expires_at > latest {
            return Err(DomainLinkError::BadExpiry {
                expires_at,
                block: self.number,
                latest,
            }
            .into());
        }
        self.can_pay(b, amount)?;
        let exported = self
            .supply
            .exported
            .checked_add(amount.0)
            .ok_or(LedgerError::Overflow)?;
        let terms = DomainTransferTerms {
            source: here,
            target,
            nonce: b.nonce,
            from: b.sender,
            to,
            amount,
            expires_at,
        };
        let id = terms.id();
        self.charge(b, amount);
        self.supply.exported = exported;
        self.outbound.insert(id, Some(terms));
        Ok(Applied::Locked { id })
    }

    pub(crate) fn domain_proof(
        &mut self,
        b: &TransactionBody,
        p: &DomainTransferProof,
    ) -> Result<Applied, LedgerError> {
        let t = &p.terms;
        if t.source == t.target {
            return Err(DomainLinkError::SameDomain { chain: t.source }.into());
        }
        let here = self.base.config.chain_id;
        let (other, applies_on) = match p.kind {
            DomainProofKind::Refund { .. } => (t.target, t.source),
            DomainProofKind::Credit { .. } | DomainProofKind::Expire { .. } => (t.source, t.target),
        };
        if applies_on != here {
            return Err(DomainLinkError::NotForThisChain {
                expected: applies_on,
                here,
            }
            .into());
        }
        let client = self.client(other)?;
        let check = client.check_header(other, &p.block, None, self.clock())?;
        if check == HeaderCheck::Conflict {
            let mut client = client.clone();
            client.frozen = true;
            self.can_pay(b, TokenAmount::ZERO)?;
            self.charge(b, TokenAmount::ZERO);
            self.domains.insert(other, client);
            return Ok(Applied::DomainFrozen { chain: other });
        }
        let (algo, floor) = (client.algorithm, client.floor);
        let root = p.block.header.ledger_root;
        let height = p.block.header.number;
        let id = t.id();
        match &p.kind {
            DomainProofKind::Credit { proof } | DomainProofKind::Expire { proof } => {
                let credit = matches!(p.kind, DomainProofKind::Credit { .. });
                if credit && height > t.expires_at {
                    return Err(DomainLinkError::TooLateToCredit {
                        expires_at: t.expires_at,
                        header: height,
                    }
                    .into());
                }
                if !credit && height <= t.expires_at {
                    return Err(DomainLinkError::NotExpired {
                        expires_at: t.expires_at,
                        header: height,
                    }
                    .into());
                }
                self.fresh_inbound(t, floor)?;
                if !verify_leaf(algo, &root, &StateKey::Outbound(id), t, proof) {
                    return Err(DomainLinkError::BadInclusionProof { id }.into());
                }
                if credit {
                    self.apply_credit(b, t)
                } else {
                    self.can_pay(b, TokenAmount::ZERO)?;
                    self.charge(b, TokenAmount::ZERO);
                    self.inbound
                        .insert(id, Some(inbound(t, InboundState::Expired)));
                    Ok(Applied::Expired { id })
                }
            }
            DomainProofKind::Refund { proof } => {
                if self.outbound(&id) != Some(t) {
                    return Err(DomainLinkError::UnknownTransfer { id }.into());
                }
                let record = inbound(t, InboundState::Expired);
                if !verify_leaf(algo, &root, &StateKey::Inbound(id), &record, proof) {
                    return Err(DomainLinkError::BadInclusionProof { id }.into());
                }
                self.can_pay(b, TokenAmount::ZERO)?;
                self.can_credit(&t.from, t.amount)?;
                let refunded = self
                    .supply
                    .refunded
                    .checked_add(t.amount.0)
                    .ok_or(LedgerError::Overflow)?;
                self.charge(b, TokenAmount::ZERO);
                self.credit(&t.from, t.amount);
                self.supply.refunded = refunded;
                self.outbound.insert(id, None);
                Ok(Applied::Refunded { id })
            }
        }
    }

    /// Refuses a transfer already recorded here, or too old to be.
    fn fresh_inbound(
        &self,
        t: &DomainTransferTerms,
        floor: BlockNumber,
    ) -> Result<(), DomainLinkError> {
        let id = t.id();
        if t.expires_at < floor {
            return Err(DomainLinkError::TransferTooOld {
                id,
                expires_at: t.expires_at,
                floor,
            });
        }
        match self.inbound(&id).map(|r| r.state) {
            None => Ok(()),
            Some(InboundState::Credited) => Err(DomainLinkError::AlreadyCredited { id }),
            Some(InboundState::Expired) => Err(DomainLinkError::AlreadyExpired { id }),
        }
    }

    fn apply_credit(
        &mut self,
        b: &TransactionBody,
        t: &DomainTransferTerms,
    ) -> Result<Applied, LedgerError> {
        self.can_pay(b, TokenAmount::ZERO)?;
        self.can_grow_supply(t.amount)?;
        self.can_credit(&t.to, t.amount)?;
        let imported = self
            .supply
            .imported
            .checked_add(t.amount.0)
            .ok_or(LedgerError::Overflow)?;
        self.charge(b, TokenAmount::ZERO);
        self.credit(&t.to, t.amount);
        self.supply.imported = imported;
        let id = t.id();
        self.inbound
            .insert(id, Some(inbound(t, InboundState::Credited)));
        Ok(Applied::Credited { id })
    }
}

fn inbound(t: &DomainTransferTerms, state: InboundState) -> InboundRecord {
    InboundRecord {
        state,
        source: t.source,
        expires_at: t.expires_at,
    }
}
