//! Transactions (DESIGN.md "Money": every operation pays a fee and carries
//! the sender's nonce; plain transfer; Mint and domain registration
//! authorised by the chain owner inside the ledger).
//!
//! A transaction applies only if its nonce is the sender's account nonce,
//! its fee is at least the chain's transaction fee and the sender's free
//! balance covers the fee and whatever the operation takes; then the fee
//! goes to the fee pool and the nonce grows by one. A refused transaction
//! changes nothing (no fee, no nonce).

use undchain_types::msg::{Transaction, TransactionBody, TxOp};
use undchain_types::{PublicKey, TokenAmount};

use super::exec::Exec;
use super::{Applied, LedgerError};

impl Exec<'_> {
    pub(crate) fn transaction(&mut self, t: &Transaction) -> Result<Applied, LedgerError> {
        let b = &t.body;
        match &b.op {
            TxOp::Transfer { to, amount } => self.transfer(b, to, *amount),
            TxOp::Mint { to, amount } => self.mint(b, to, *amount),
            TxOp::RegisterDomain(reg) => self.register_domain(b, reg),
            TxOp::UpdateDomain(u) => self.update_domain(b, u),
            TxOp::DomainLock {
                target,
                to,
                amount,
                expires_at,
            } => self.lock(b, *target, *to, *amount, *expires_at),
            TxOp::DomainProof(p) => self.domain_proof(b, p),
            TxOp::DomainMisbehaviour(m) => self.misbehaviour(b, m),
            TxOp::RegisterValidator(r) => self.register_validator(b, r),
        }
    }

    /// The checks every transaction passes before its own: nonce, fee, and
    /// a free balance covering the fee plus `extra`.
    pub(crate) fn can_pay(
        &self,
        b: &TransactionBody,
        extra: TokenAmount,
    ) -> Result<(), LedgerError> {
        let a = self.account(&b.sender);
        if a.nonce != b.nonce {
            return Err(LedgerError::BadNonce {
                account: b.sender,
                expected: a.nonce,
                got: b.nonce,
            });
        }
        let minimum = self.base.config.transaction_fee;
        if b.fee < minimum {
            return Err(LedgerError::FeeTooLow {
                fee: b.fee,
                minimum,
            });
        }
        let needed = b.fee.checked_add(extra).ok_or(LedgerError::Overflow)?;
        if a.balance < needed {
            return Err(LedgerError::InsufficientFreeBalance {
                account: b.sender,
                needed,
                available: a.balance,
            });
        }
        self.fee_pool
            .checked_add(b.fee)
            .ok_or(LedgerError::Overflow)?;
        Ok(())
    }

    /// Takes the fee plus `extra` from the sender and bumps its nonce
    /// (after [`Exec::can_pay`] passed).
    pub(crate) fn charge(&mut self, b: &TransactionBody, extra: TokenAmount) {
        let a = self.account_mut(&b.sender);
        a.balance = TokenAmount(a.balance.0 - b.fee.0 - extra.0);
        a.nonce += 1;
        self.fee_pool = TokenAmount(self.fee_pool.0 + b.fee.0);
    }

    /// Whether crediting `amount` to `to` fits (no balance or supply
    /// overflow).
    pub(crate) fn can_credit(
        &self,
        to: &PublicKey,
        amount: TokenAmount,
    ) -> Result<(), LedgerError> {
        self.account(to)
            .balance
            .checked_add(amount)
            .ok_or(LedgerError::Overflow)?;
        Ok(())
    }

    pub(crate) fn credit(&mut self, to: &PublicKey, amount: TokenAmount) {
        let a = self.account_mut(to);
        a.balance = TokenAmount(a.balance.0 + amount.0);
    }

    /// Whether `amount` more tokens may exist on this chain.
    pub(crate) fn can_grow_supply(&self, amount: TokenAmount) -> Result<(), LedgerError> {
        if self.supply.circulating() + u128::from(amount.0) > u128::from(u64::MAX) {
            return Err(LedgerError::Overflow);
        }
        Ok(())
    }

    pub(crate) fn owner_only(&self, b: &TransactionBody) -> Result<(), LedgerError> {
        if b.sender != self.base.config.chain_owner {
            return Err(LedgerError::NotChainOwner { sender: b.sender });
        }
        Ok(())
    }

    fn transfer(
        &mut self,
        b: &TransactionBody,
        to: &PublicKey,
        amount: TokenAmount,
    ) -> Result<Applied, LedgerError> {
        if amount == TokenAmount::ZERO {
            return Err(LedgerError::ZeroAmount);
        }
        self.can_pay(b, amount)?;
        if *to != b.sender {
            self.can_credit(to, amount)?;
        }
        self.charge(b, amount);
        self.credit(to, amount);
        Ok(Applied::Transferred {
            from: b.sender,
            to: *to,
            amount,
        })
    }

    fn mint(
        &mut self,
        b: &TransactionBody,
        to: &PublicKey,
        amount: TokenAmount,
    ) -> Result<Applied, LedgerError> {
        self.owner_only(b)?;
        if amount == TokenAmount::ZERO {
            return Err(LedgerError::ZeroAmount);
        }
        self.can_pay(b, TokenAmount::ZERO)?;
        self.can_grow_supply(amount)?;
        self.can_credit(to, amount)?;
        self.supply.minted = self
            .supply
            .minted
            .checked_add(amount.0)
            .ok_or(LedgerError::Overflow)?;
        self.charge(b, TokenAmount::ZERO);
        self.credit(to, amount);
        Ok(Applied::Minted { to: *to, amount })
    }
}
