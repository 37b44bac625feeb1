//! Client story step 4: partner offers, streamed by validators, taken up
//! to the client's threshold and at its risk level; connection details and
//! reports of bad ones (DESIGN.md "Bad connection details").

use std::collections::BTreeMap;

use undchain_types::msg::{
    ConnectionDetails, ConnectionProblem, ConnectionReport, Endpoint, PartnerOffer,
};
use undchain_types::{JobId, LocalTime, PublicKey, TokenAmount};

use super::{Client, ClientError, UserEvent, UserOutput};

/// Why an offer was declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decline {
    /// The partner's score is under the client's minimum.
    BelowMinScore,
    /// The partner asks more per unit than the client pays.
    OverPrice,
    /// The client already took as many partners as it wanted.
    ThresholdReached,
    /// That partner was already offered for the job.
    Duplicate,
}

/// A partner the client took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    /// The validator that relayed the offer (reports name it).
    pub relayed_by: PublicKey,
    /// The price the partner asked.
    pub price: TokenAmount,
}

/// The offers of one job.
#[derive(Debug, Clone)]
pub(crate) struct Offers {
    threshold: u16,
    pub(crate) taken: BTreeMap<PublicKey, Taken>,
    seen: BTreeMap<PublicKey, Decline>,
}

impl Offers {
    pub(crate) fn new(threshold: u16) -> Self {
        Offers {
            threshold: threshold.max(1),
            taken: BTreeMap::new(),
            seen: BTreeMap::new(),
        }
    }
}

impl Client {
    pub(crate) fn handle_offer(
        &mut self,
        _now: LocalTime,
        from: PublicKey,
        o: &PartnerOffer,
    ) -> Result<(), ClientError> {
        let job = self
            .jobs
            .get(&o.job)
            .ok_or(ClientError::UnknownJob(o.job))?;
        if !self.is_validator(job, &from) {
            return Err(ClientError::NotAValidator(from));
        }
        let r = &job.request;
        let offers = &job.offers;
        let decline =
            if offers.taken.contains_key(&o.partner) || offers.seen.contains_key(&o.partner) {
                Some(Decline::Duplicate)
            } else if offers.taken.len() >= usize::from(offers.threshold) {
                Some(Decline::ThresholdReached)
            } else if o.score < r.min_partner_score {
                Some(Decline::BelowMinScore)
            } else if o.price_per_unit > r.max_price_per_unit {
                Some(Decline::OverPrice)
            } else {
                None
            };
        let Some(job) = self.jobs.get_mut(&o.job) else {
            return Err(ClientError::UnknownJob(o.job));
        };
        if let Some(reason) = decline {
            if reason != Decline::Duplicate {
                job.offers.seen.insert(o.partner, reason);
            }
            self.event(UserEvent::OfferDeclined {
                job: o.job,
                partner: o.partner,
                reason,
            });
            return Ok(());
        }
        job.offers.taken.insert(
            o.partner,
            Taken {
                relayed_by: from,
                price: o.price_per_unit,
            },
        );
        self.event(UserEvent::OfferTaken {
            job: o.job,
            partner: o.partner,
        });
        // A centralised partner: connect straight to it (partner story
        // step 3); the endpoint goes to the host and is not kept.
        if let Some(ep) = &o.preferred {
            self.outbox.immediate(UserOutput::Connect {
                job: o.job,
                peer: o.partner,
                endpoint: ep.clone(),
            });
        }
        Ok(())
    }

    /// Connection details of a partner the client took (the validators
    /// relay a centralised partner's endpoint to the client).
    pub(crate) fn handle_details(
        &mut self,
        from: PublicKey,
        d: &ConnectionDetails,
    ) -> Result<(), ClientError> {
        let job = self
            .jobs
            .get(&d.job)
            .ok_or(ClientError::UnknownJob(d.job))?;
        if !self.is_validator(job, &from) {
            return Err(ClientError::NotAValidator(from));
        }
        if !job.offers.taken.contains_key(&d.peer) {
            return Err(ClientError::NoSession {
                job: d.job,
                partner: d.peer,
            });
        }
        self.outbox.immediate(UserOutput::Connect {
            job: d.job,
            peer: d.peer,
            endpoint: d.endpoint.clone(),
        });
        Ok(())
    }

    /// The host's connection to a taken partner at `endpoint` failed with
    /// `problem`: a signed report goes to the job's validators, naming the
    /// validator that relayed the partner.
    pub fn report_connection(
        &mut self,
        now: LocalTime,
        job: JobId,
        partner: PublicKey,
        endpoint: Endpoint,
        problem: ConnectionProblem,
    ) -> Result<(), ClientError> {
        let j = self.jobs.get(&job).ok_or(ClientError::UnknownJob(job))?;
        let taken = j
            .offers
            .taken
            .get(&partner)
            .copied()
            .ok_or(ClientError::NoSession { job, partner })?;
        let report = ConnectionReport {
            job,
            relayed_by: taken.relayed_by,
            details: ConnectionDetails {
                job,
                peer: partner,
                endpoint,
            },
            problem,
        };
        for v in self.validators_for(&job) {
            self.send(now, v, None, report.clone().into());
        }
        self.event(UserEvent::ConnectionReported {
            job,
            relayed_by: taken.relayed_by,
        });
        Ok(())
    }

    /// Partners taken for `job`, in key order.
    pub fn partners(&self, job: &JobId) -> Vec<PublicKey> {
        self.jobs
            .get(job)
            .map(|j| j.offers.taken.keys().copied().collect())
            .unwrap_or_default()
    }
}
