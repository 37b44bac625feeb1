//! Metering by signed cumulative checkpoints (DESIGN.md "Utility
//! sessions": metering). The client counts what it saw delivered and signs
//! a cumulative [`UsageCheckpoint`] every K units ([`ClientMeter`]); the
//! partner checks each one and keeps the last ([`PartnerMeter`]), stops
//! delivering when the client falls more than one interval behind, and
//! claims the last one as a [`PartialCompletion`] if no receipt comes.

use undchain_types::msg::{PartialCompletion, ReceiptTerms, SignedCheckpoint, UsageCheckpoint};
use undchain_types::{BlockNumber, BlockTime, ChainId, JobId, PublicKey, SigningKey, TokenAmount};

use super::UtilityError;

/// Units between two checkpoints unless the session says otherwise.
pub const DEFAULT_CHECKPOINT_UNITS: u64 = 16;

/// What both sides of a session meter under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterTerms {
    /// The chain.
    pub chain_id: ChainId,
    /// The job.
    pub job: JobId,
    /// The block that committed the job.
    pub commit_block: BlockNumber,
    /// The paying client.
    pub client: PublicKey,
    /// The serving partner.
    pub partner: PublicKey,
    /// The agreed price per unit.
    pub price_per_unit: TokenAmount,
    /// K: units between two checkpoints (at least 1).
    pub every: u64,
}

impl MeterTerms {
    /// What `units` cost; refused on overflow.
    pub fn amount(&self, units: u64) -> Result<TokenAmount, UtilityError> {
        units
            .checked_mul(self.price_per_unit.0)
            .map(TokenAmount)
            .ok_or(UtilityError::AmountOverflow { units })
    }

    fn checkpoint(
        &self,
        units: u64,
        counter: u32,
        at: BlockTime,
    ) -> Result<UsageCheckpoint, UtilityError> {
        Ok(UsageCheckpoint {
            chain_id: self.chain_id,
            job: self.job,
            commit_block: self.commit_block,
            client: self.client,
            partner: self.partner,
            units,
            amount: self.amount(units)?,
            counter,
            at,
        })
    }

    /// The receipt terms for `units` delivered, ended at `finished_at`.
    pub fn receipt(
        &self,
        units: u64,
        finished_at: BlockTime,
    ) -> Result<ReceiptTerms, UtilityError> {
        Ok(ReceiptTerms {
            chain_id: self.chain_id,
            job: self.job,
            commit_block: self.commit_block,
            client: self.client,
            partner: self.partner,
            units,
            amount: self.amount(units)?,
            finished_at,
        })
    }
}

/// The client's meter.
#[derive(Debug, Clone)]
pub struct ClientMeter {
    terms: MeterTerms,
    counted: u64,
    signed_units: u64,
    counter: u32,
}

impl ClientMeter {
    /// A meter under `terms` (K of 0 is taken as 1).
    pub fn new(mut terms: MeterTerms) -> Self {
        terms.every = terms.every.max(1);
        ClientMeter {
            terms,
            counted: 0,
            signed_units: 0,
            counter: 0,
        }
    }

    /// The terms.
    pub fn terms(&self) -> &MeterTerms {
        &self.terms
    }

    /// Units the client saw delivered.
    pub fn units(&self) -> u64 {
        self.counted
    }

    /// Units the last checkpoint signed covers.
    pub fn signed_units(&self) -> u64 {
        self.signed_units
    }

    /// How far past its last checkpoint the client may let a partner go:
    /// the partner serves two intervals unproven at most
    /// ([`PartnerMeter::may_deliver`]).
    pub fn unsigned_limit(&self) -> u64 {
        self.signed_units.saturating_add(2 * self.terms.every)
    }

    /// `units` more were delivered and checked by the client; every K units
    /// since the last checkpoint the client signs a new cumulative one.
    pub fn record(
        &mut self,
        units: u64,
        at: BlockTime,
        key: &SigningKey,
    ) -> Result<Option<SignedCheckpoint>, UtilityError> {
        let counted = self
            .counted
            .checked_add(units)
            .ok_or(UtilityError::AmountOverflow { units })?;
        self.terms.amount(counted)?;
        self.counted = counted;
        if self.counted - self.signed_units < self.terms.every {
            return Ok(None);
        }
        self.sign(at, key).map(Some)
    }

    /// A checkpoint of everything counted so far (also at the end, before
    /// the receipt, so a refused receipt still leaves the whole count).
    pub fn sign(
        &mut self,
        at: BlockTime,
        key: &SigningKey,
    ) -> Result<SignedCheckpoint, UtilityError> {
        let c = self.terms.checkpoint(self.counted, self.counter + 1, at)?;
        self.counter += 1;
        self.signed_units = self.counted;
        Ok(c.sign(key))
    }

    /// Checks the partner's receipt terms against what the client counted.
    pub fn check_receipt(&self, terms: &ReceiptTerms) -> Result<(), UtilityError> {
        let want = self.terms.receipt(self.counted, terms.finished_at)?;
        if *terms == want {
            Ok(())
        } else {
            Err(UtilityError::ReceiptMismatch {
                claimed: terms.units,
                counted: self.counted,
            })
        }
    }
}

/// The partner's meter.
#[derive(Debug, Clone)]
pub struct PartnerMeter {
    terms: MeterTerms,
    delivered: u64,
    last: Option<SignedCheckpoint>,
}

impl PartnerMeter {
    /// A meter under `terms` (K of 0 is taken as 1).
    pub fn new(mut terms: MeterTerms) -> Self {
        terms.every = terms.every.max(1);
        PartnerMeter {
            terms,
            delivered: 0,
            last: None,
        }
    }

    /// The terms.
    pub fn terms(&self) -> &MeterTerms {
        &self.terms
    }

    /// Units delivered.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Units the last client-signed checkpoint proves.
    pub fn proven(&self) -> u64 {
        self.last.as_ref().map_or(0, |c| c.checkpoint.units)
    }

    /// Whether delivering `units` more keeps the client within one interval
    /// past what it last signed (two intervals of unsigned work at most).
    pub fn may_deliver(&self, units: u64) -> bool {
        self.delivered.saturating_add(units) <= self.proven().saturating_add(2 * self.terms.every)
    }

    /// `units` were delivered; refused (nothing changes) when the client is
    /// too far behind on its checkpoints.
    pub fn deliver(&mut self, units: u64) -> Result<(), UtilityError> {
        if !self.may_deliver(units) {
            return Err(UtilityError::CheckpointOverdue {
                delivered: self.delivered,
                proven: self.proven(),
            });
        }
        self.delivered += units;
        Ok(())
    }

    /// Counts a step already carried out whose units were only known once
    /// it ran (checked with [`PartnerMeter::may_deliver`] before it ran).
    pub fn served(&mut self, units: u64) {
        self.delivered = self.delivered.saturating_add(units);
    }

    /// A client checkpoint: kept when it is this session's, signed by the
    /// client, newer than the last and proves no more than was delivered.
    pub fn handle_checkpoint(&mut self, c: &SignedCheckpoint) -> Result<(), UtilityError> {
        let p = &c.checkpoint;
        let t = &self.terms;
        if p.chain_id != t.chain_id
            || p.job != t.job
            || p.commit_block != t.commit_block
            || p.client != t.client
            || p.partner != t.partner
        {
            return Err(UtilityError::ForeignCheckpoint);
        }
        c.verify().map_err(|_| UtilityError::BadSignature)?;
        let (last_counter, last_units) = self
            .last
            .as_ref()
            .map_or((0, 0), |l| (l.checkpoint.counter, l.checkpoint.units));
        if p.counter <= last_counter || p.units < last_units || p.units > self.delivered {
            return Err(UtilityError::StaleCheckpoint {
                counter: p.counter,
                units: p.units,
            });
        }
        if p.amount != t.amount(p.units)? {
            return Err(UtilityError::ForeignCheckpoint);
        }
        self.last = Some(c.clone());
        Ok(())
    }

    /// The last client-signed checkpoint.
    pub fn last(&self) -> Option<&SignedCheckpoint> {
        self.last.as_ref()
    }

    /// The partial completion the last checkpoint proves, claimed by
    /// `partner` (partner story step 8, "client refuses to sign").
    pub fn partial(&self, partner: &SigningKey) -> Option<PartialCompletion> {
        let c = self.last.clone()?;
        Some(PartialCompletion::sign(c, partner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::Hash32;

    fn keys() -> (SigningKey, SigningKey) {
        (
            SigningKey::from_seed([1; 32]),
            SigningKey::from_seed([2; 32]),
        )
    }

    fn terms(c: &SigningKey, p: &SigningKey) -> MeterTerms {
        MeterTerms {
            chain_id: ChainId(1),
            job: JobId(Hash32([7; 32])),
            commit_block: BlockNumber(3),
            client: c.public(),
            partner: p.public(),
            price_per_unit: TokenAmount(2),
            every: 4,
        }
    }

    #[test]
    fn checkpoints_every_k_units_are_cumulative_and_checked() {
        let (c, p) = keys();
        let mut cm = ClientMeter::new(terms(&c, &p));
        let mut pm = PartnerMeter::new(terms(&c, &p));
        let mut got = Vec::new();
        for i in 0..10u64 {
            pm.deliver(1).unwrap();
            if let Some(cp) = cm.record(1, BlockTime(i), &c).unwrap() {
                pm.handle_checkpoint(&cp).unwrap();
                got.push((
                    cp.checkpoint.counter,
                    cp.checkpoint.units,
                    cp.checkpoint.amount,
                ));
            }
        }
        assert_eq!(got, vec![(1, 4, TokenAmount(8)), (2, 8, TokenAmount(16))]);
        assert_eq!(pm.proven(), 8);
        let part = pm.partial(&p).unwrap();
        part.verify().unwrap();
        assert_eq!(part.last_checkpoint.checkpoint.units, 8);
        // Replaying the first checkpoint is refused and changes nothing.
        let old = terms(&c, &p)
            .checkpoint(4, 1, BlockTime(0))
            .unwrap()
            .sign(&c);
        assert!(matches!(
            pm.handle_checkpoint(&old),
            Err(UtilityError::StaleCheckpoint { .. })
        ));
        assert_eq!(pm.proven(), 8);
    }

    #[test]
    fn partner_stops_when_client_is_behind_and_refuses_inflated_checkpoints() {
        let (c, p) = keys();
        let mut pm = PartnerMeter::new(terms(&c, &p));
        for _ in 0..8 {
            pm.deliver(1).unwrap();
        }
        assert!(matches!(
            pm.deliver(1),
            Err(UtilityError::CheckpointOverdue { .. })
        ));
        assert_eq!(pm.delivered(), 8);
        // A checkpoint claiming more than was delivered, or signed by
        // someone else, is refused.
        let t = terms(&c, &p);
        let over = t.checkpoint(9, 1, BlockTime(0)).unwrap().sign(&c);
        assert!(pm.handle_checkpoint(&over).is_err());
        let forged = t.checkpoint(4, 1, BlockTime(0)).unwrap().sign(&p);
        assert_eq!(
            pm.handle_checkpoint(&forged),
            Err(UtilityError::BadSignature)
        );
        assert!(pm.partial(&p).is_none());
    }

    #[test]
    fn client_checks_receipt_terms_against_its_count() {
        let (c, p) = keys();
        let mut cm = ClientMeter::new(terms(&c, &p));
        cm.record(5, BlockTime(1), &c).unwrap();
        let t = terms(&c, &p);
        cm.check_receipt(&t.receipt(5, BlockTime(9)).unwrap())
            .unwrap();
        assert_eq!(
            cm.check_receipt(&t.receipt(6, BlockTime(9)).unwrap()),
            Err(UtilityError::ReceiptMismatch {
                claimed: 6,
                counted: 5
            })
        );
    }
}
