//! A partner's recourse (design notes, partner story step 2 "what could go
//! wrong"; DESIGN.md "Why no work?", "Complaint to the chain owner", "Bad
//! connection details"): claims re-sent when no validator confirms, the
//! work-status question, the job file fetched, the censorship complaint
//! with its evidence, and reports of bad connection details.

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::msg::{
    CensorshipComplaint, CensorshipEvidence, ConnectionDetails, ConnectionProblem,
    ConnectionReport, Endpoint, JobFileReply, JobFileRequest, WorkRequest, WorkStatus,
    WorkStatusReason,
};
use undchain_types::{BlockNumber, BoundedVec, JobId, LocalTime, Message, PublicKey};

use super::{Partner, PartnerError};
use crate::client::UserEvent;

/// A receipt or partial completion waiting for a validator's confirmation.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    msg: Message,
    tried: BTreeSet<PublicKey>,
    resent: bool,
    pub(crate) deadline: LocalTime,
}

/// What the censorship check has gathered.
#[derive(Debug, Clone, Default)]
pub(crate) struct Complaint {
    /// Blocks asked for, per validator asked.
    asked: BTreeMap<BlockNumber, PublicKey>,
    /// Ignored responses seen in a fetched job file.
    evidence: BTreeMap<JobId, CensorshipEvidence>,
    sent: bool,
}

impl Partner {
    pub(crate) fn start_claim(&mut self, now: LocalTime, job: JobId, msg: Message) {
        let tried = self.cfg.validators.iter().copied().collect();
        self.claims.insert(
            job,
            Claim {
                msg,
                tried,
                resent: false,
                deadline: now.plus(self.cfg.params.retry_timeout_us),
            },
        );
    }

    /// Claims no validator confirmed in time are re-sent once more to
    /// every validator (they may have been overloaded: the notes' "retry
    /// system"), then reported as ignored.
    pub(crate) fn claim_recourse(&mut self, now: LocalTime) {
        let due: Vec<JobId> = self
            .claims
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(j, _)| *j)
            .collect();
        for job in due {
            let Some(c) = self.claims.get_mut(&job) else {
                continue;
            };
            let msg = c.msg.clone();
            let tried: Vec<PublicKey> = c.tried.iter().copied().collect();
            if c.resent {
                self.claims.remove(&job);
                self.event(UserEvent::ReceiptIgnored { job, tried });
                continue;
            }
            c.resent = true;
            c.deadline = now.plus(self.cfg.params.retry_timeout_us);
            self.broadcast(now, msg);
            self.event(UserEvent::ReceiptResent { job, to: tried });
        }
    }

    /// "Why no work?": asks the validators.
    pub fn ask_for_work(&mut self, now: LocalTime) {
        let kinds = self.cfg.offer.kinds.clone();
        self.broadcast(now, WorkRequest { kinds }.into());
    }

    /// Responses no validator answered within the wait.
    fn ignored(&self, now: LocalTime) -> Vec<(JobId, BlockNumber)> {
        self.responses
            .iter()
            .filter(|(_, r)| {
                r.answered_by.is_none() && now >= r.sent_at.plus(self.cfg.response_wait_us)
            })
            .map(|(j, r)| (*j, r.notification.block))
            .collect()
    }

    /// A work-status reply: when work is available but responses went
    /// unanswered, the job files of their blocks are fetched (any user
    /// may) to gather evidence.
    pub(crate) fn handle_work_status(&mut self, now: LocalTime, from: PublicKey, w: &WorkStatus) {
        if !matches!(w.reason, WorkStatusReason::Available { .. }) {
            return;
        }
        let blocks: BTreeSet<BlockNumber> = self.ignored(now).into_iter().map(|(_, b)| b).collect();
        for b in blocks {
            if self.complaint.asked.contains_key(&b) {
                continue;
            }
            self.complaint.asked.insert(b, from);
            let q = JobFileRequest {
                block: b,
                after: None,
                limit: crate::validator::MAX_PAGE as u32,
            };
            self.send(now, from, q.into());
        }
    }

    /// A job-file page: each ignored response whose job is in it is
    /// evidence; once every asked block answered, the complaint goes to the
    /// chain owner's key through the validators (recorded on chain).
    pub(crate) fn handle_job_file(&mut self, now: LocalTime, _from: PublicKey, r: &JobFileReply) {
        if !self.complaint.asked.contains_key(&r.block) || self.complaint.sent {
            return;
        }
        let ignored: BTreeSet<JobId> = self.ignored(now).into_iter().map(|(j, _)| j).collect();
        for e in r.entries.iter() {
            if ignored.contains(&e.id)
                && let Some(resp) = self.responses.get(&e.id)
            {
                self.complaint.evidence.insert(
                    e.id,
                    CensorshipEvidence {
                        job: e.id,
                        block: r.block,
                        response_digest: resp.digest,
                    },
                );
            }
        }
        self.complaint.asked.remove(&r.block);
        if !self.complaint.asked.is_empty() || self.complaint.evidence.is_empty() {
            return;
        }
        let accused: BTreeSet<PublicKey> = self
            .complaint
            .evidence
            .keys()
            .filter_map(|j| self.responses.get(j))
            .flat_map(|r| r.to.iter().copied())
            .collect();
        let accused = BoundedVec::truncating(accused.into_iter().collect());
        let evidence = BoundedVec::truncating(self.complaint.evidence.values().cloned().collect());
        let jobs = evidence.len();
        let complaint = CensorshipComplaint {
            chain_owner: self.cfg.params.chain_owner,
            accused: accused.clone(),
            evidence,
        };
        self.complaint.sent = true;
        self.broadcast(now, complaint.into());
        self.event(UserEvent::ComplaintSent {
            accused: accused.into_vec(),
            jobs,
        });
    }

    /// The host's connection to the client at `endpoint` (from relayed
    /// details) failed: a signed report naming the relaying validator.
    pub fn report_connection(
        &mut self,
        now: LocalTime,
        job: JobId,
        endpoint: Endpoint,
        problem: ConnectionProblem,
    ) -> Result<(), PartnerError> {
        let r = self
            .responses
            .get(&job)
            .ok_or(PartnerError::UnknownJob(job))?;
        let (Some(relayed_by), Some(client)) = (r.answered_by, r.client) else {
            return Err(PartnerError::UnknownJob(job));
        };
        let report = ConnectionReport {
            job,
            relayed_by,
            details: ConnectionDetails {
                job,
                peer: client,
                endpoint,
            },
            problem,
        };
        self.broadcast(now, report.into());
        self.event(UserEvent::ConnectionReported { job, relayed_by });
        Ok(())
    }
}
