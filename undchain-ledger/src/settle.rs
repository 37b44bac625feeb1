//! Period-end settlement over the payout file (design notes, validator story
//! item 5; DESIGN.md "Payout file", "Client to validator" step 5;
//! docs/PROTOCOL.md "Settlement").
//!
//! It runs with the last block of each payout period, inside
//! [`crate::Ledger::apply_block`]:
//!
//! 1. Every completion recorded in the period (receipts: the full amount;
//!    partial completions: the part the client's last signed checkpoint
//!    proves) moves from the client's escrow to the partner.
//! 2. The fee pool goes to the active validators that signed the period's
//!    blocks, pro rata to the blocks each signed ([`fee_shares`]); the
//!    integer remainder stays in the pool for the next period, so no token
//!    is lost or made.
//! 3. The payout file rolls over ([`undchain_jobfile::PayoutFile::roll_over`]):
//!    open jobs committed in this period carry over once; open jobs already
//!    carried over are cancelled; their fee, paid at commit, is all they
//!    cost.
//!
//! Receipt signatures were checked when each receipt was submitted
//! ([`crate::Ledger::verify`]), so settlement does no cryptography: it is a
//! pass over the period's claims.

use std::collections::BTreeMap;

use undchain_jobfile::PayoutFile;
use undchain_types::{JobId, PayoutPeriod, PublicKey, TokenAmount};

use crate::ledger::exec::Exec;

/// The result of a period's settlement.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// The payout period this settlement closed.
    pub period: PayoutPeriod,
    /// Jobs paid in full (receipts).
    pub completed: u64,
    /// Jobs paid for the proven part.
    pub partial: u64,
    /// Total paid from clients to partners.
    pub paid: TokenAmount,
    /// Fee shares paid to validators, by key.
    pub fees: Vec<(PublicKey, TokenAmount)>,
    /// Fees left in the pool (integer remainder, or no signer).
    pub fee_remainder: TokenAmount,
    /// Jobs cancelled now (fee only). Filled when the block is applied.
    pub cancelled: Vec<JobId>,
    /// Jobs carried into the next period. Filled when the block is applied.
    pub carried: Vec<JobId>,
    /// The finished payout file with its final completion column, for the
    /// archive (deep storage). Filled when the block is applied.
    pub settled: Option<PayoutFile>,
}

/// Splits `pool` among validators pro rata to the blocks each signed:
/// `pool * signed / total`, rounded down; returns the shares (zero shares
/// left out) and the remainder.
pub fn fee_shares(
    pool: TokenAmount,
    tally: &BTreeMap<PublicKey, u64>,
) -> (Vec<(PublicKey, TokenAmount)>, TokenAmount) {
    let total: u128 = tally.values().map(|n| u128::from(*n)).sum();
    if total == 0 {
        return (Vec::new(), pool);
    }
    let mut paid: u64 = 0;
    let mut shares = Vec::with_capacity(tally.len());
    for (id, n) in tally {
        // share <= pool because n <= total, so it fits in u64.
        let share = (u128::from(pool.0) * u128::from(*n) / total) as u64;
        if share > 0 {
            paid += share;
            shares.push((*id, TokenAmount(share)));
        }
    }
    (shares, TokenAmount(pool.0 - paid))
}

/// Pays the period's claims and fees into the overlay of the block that
/// ends it.
pub(crate) fn settle(x: &mut Exec<'_>) -> Settlement {
    let base = x.base;
    let mut completed = 0u64;
    let mut partial = 0u64;
    let mut paid: u64 = 0;
    // Claims of this block are new jobs' (never in base.claims): chain them.
    let new_claims = std::mem::take(&mut x.claims);
    for c in base.claims().values().chain(new_claims.values()) {
        if c.partial {
            partial += 1;
        } else {
            completed += 1;
        }
        // The amount sits in the client's escrow since the receipt, and every
        // balance is bounded by the supply (a u64), so neither step can
        // saturate.
        let client = x.account_mut(&c.client);
        client.reserved = TokenAmount(client.reserved.0.saturating_sub(c.amount.0));
        let partner = x.account_mut(&c.partner);
        partner.balance = TokenAmount(partner.balance.0.saturating_add(c.amount.0));
        paid = paid.saturating_add(c.amount.0);
    }
    x.claims = new_claims;
    let (fees, remainder) = fee_shares(x.fee_pool, &x.signed);
    for (id, share) in &fees {
        let a = x.account_mut(id);
        a.balance = TokenAmount(a.balance.0.saturating_add(share.0));
    }
    x.fee_pool = remainder;
    x.signed.clear();
    Settlement {
        period: base.payout().period(),
        completed,
        partial,
        paid: TokenAmount(paid),
        fees,
        fee_remainder: remainder,
        cancelled: Vec::new(),
        carried: Vec::new(),
        settled: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::SigningKey;

    fn key(n: u8) -> PublicKey {
        SigningKey::from_seed([n; 32]).public()
    }

    #[test]
    fn fee_shares_are_pro_rata_and_lose_nothing() {
        let tally: BTreeMap<_, _> = [(key(1), 3), (key(2), 1), (key(3), 0)].into();
        let (shares, rest) = fee_shares(TokenAmount(101), &tally);
        let total: u64 = shares.iter().map(|(_, s)| s.0).sum();
        assert_eq!(total + rest.0, 101);
        let of = |k: PublicKey| shares.iter().find(|(id, _)| *id == k).map(|(_, s)| s.0);
        assert_eq!(of(key(1)), Some(75)); // floor(101*3/4)
        assert_eq!(of(key(2)), Some(25)); // floor(101/4)
        assert_eq!(of(key(3)), None);
        assert_eq!(rest, TokenAmount(1));
        let (none, all) = fee_shares(TokenAmount(7), &BTreeMap::new());
        assert!(none.is_empty());
        assert_eq!(all, TokenAmount(7));
    }
}
