//! Claims on a job's escrow (DESIGN.md "Money": claims resolve at
//! settlement, not first-come; docs/PROTOCOL.md "Claims").
//!
//! A claim is recorded per partner of an open job, and only paid when the
//! period settles; until then a better claim of the same partner replaces
//! it:
//!
//! * a **receipt** (signed by the job's paying client and the partner)
//!   replaces any partial of that partner; a second receipt of the same
//!   partner is refused ([`LedgerError::AlreadyReceipted`]);
//! * a **partial** needs the partner's signature beside the client's
//!   checkpoint; it replaces an earlier partial of that partner only with a
//!   higher checkpoint counter ([`LedgerError::StaleCheckpoint`]) and never
//!   a receipt;
//! * both must name the job's commit block ([`LedgerError::WrongCommitBlock`]),
//!   so a receipt of one commit never pays a later job of the same id, and
//!   the sum of the job's claims never passes its escrow
//!   ([`LedgerError::ExceedsEscrow`]).

use undchain_types::job::MAX_POOL;
use undchain_types::msg::{PartialCompletion, Receipt};
use undchain_types::{BlockNumber, JobId, PublicKey, TokenAmount};

use super::exec::Exec;
use super::state::{Claim, ClaimKind, OpenJob};
use super::{Applied, LedgerError};

/// What a claim says, whichever message carried it.
struct Offer {
    job: JobId,
    commit_block: BlockNumber,
    client: PublicKey,
    partner: PublicKey,
    amount: TokenAmount,
    kind: ClaimKind,
}

impl Exec<'_> {
    pub(crate) fn receipt(&mut self, r: &Receipt) -> Result<Applied, LedgerError> {
        let t = &r.terms;
        self.claim(Offer {
            job: t.job,
            commit_block: t.commit_block,
            client: t.client,
            partner: t.partner,
            amount: t.amount,
            kind: ClaimKind::Full,
        })
    }

    pub(crate) fn partial(&mut self, p: &PartialCompletion) -> Result<Applied, LedgerError> {
        let c = &p.last_checkpoint.checkpoint;
        self.claim(Offer {
            job: c.job,
            commit_block: c.commit_block,
            client: c.client,
            partner: c.partner,
            amount: c.amount,
            kind: ClaimKind::Partial {
                counter: c.counter,
                units: c.units,
            },
        })
    }

    fn claim(&mut self, o: Offer) -> Result<Applied, LedgerError> {
        let job = o.job;
        let open = self.job(&job).ok_or(LedgerError::UnknownJob { job })?;
        let mut updated = admit(open, &o)?;
        let claim = Claim {
            partner: o.partner,
            amount: o.amount,
            kind: o.kind,
            block: self.number,
        };
        match updated
            .claims
            .binary_search_by(|c| c.partner.cmp(&o.partner))
        {
            Ok(i) => updated.claims[i] = claim,
            Err(i) => updated.claims.insert(i, claim),
        }
        self.jobs.insert(job, Some(updated));
        Ok(Applied::Claimed {
            job,
            partner: o.partner,
            amount: o.amount,
            full: o.kind == ClaimKind::Full,
            block: self.number,
        })
    }
}

/// The job with room for offer `o`, if `o` may replace what its partner
/// has claimed so far (the caller writes the claim in).
fn admit(open: &OpenJob, o: &Offer) -> Result<OpenJob, LedgerError> {
    let job = o.job;
    if o.commit_block != open.commit_block {
        return Err(LedgerError::WrongCommitBlock {
            job,
            committed: open.commit_block,
            named: o.commit_block,
        });
    }
    if o.client != open.client {
        return Err(LedgerError::NotThePayer {
            job,
            payer: open.client,
            named: o.client,
        });
    }
    let pool = &open.entry.partner_pool;
    if !pool.is_empty() && !pool.contains(&o.partner) {
        return Err(LedgerError::NotAPartner {
            job,
            partner: o.partner,
        });
    }
    let existing = open.claims.iter().find(|c| c.partner == o.partner);
    match (existing.map(|c| (c.kind, c.block)), o.kind) {
        (Some((ClaimKind::Full, block)), _) => {
            return Err(LedgerError::AlreadyReceipted {
                job,
                partner: o.partner,
                block,
            });
        }
        (
            Some((ClaimKind::Partial { counter: have, .. }, _)),
            ClaimKind::Partial { counter: got, .. },
        ) if got <= have => {
            return Err(LedgerError::StaleCheckpoint { job, have, got });
        }
        (None, _) if open.claims.len() >= MAX_POOL => {
            return Err(LedgerError::TooManyClaims { job, max: MAX_POOL });
        }
        _ => {}
    }
    let replaced = existing.map_or(0, |c| u128::from(c.amount.0));
    let claimed = open.claimed() - replaced + u128::from(o.amount.0);
    if claimed > u128::from(open.escrow.0) {
        return Err(LedgerError::ExceedsEscrow {
            job,
            escrow: open.escrow,
            claimed,
        });
    }
    Ok(open.clone())
}
