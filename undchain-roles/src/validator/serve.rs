//! Job-file serving (DESIGN.md: "Any user may request a job file"; partner
//! story, censorship checks): a page of any block's job file to whoever
//! asks, from the open files, the decided blocks kept to serve, or (older)
//! the ledger's open jobs of that block. Bounded: a page holds at most
//! [`MAX_PAGE`] entries, and each requester gets at most one page per
//! `timing.gossip_every_us` (the requesters remembered are bounded too).
//!
//! An active validator whose own load is at or above
//! `timing.overload_permille` offloads closed files (DESIGN.md "Network
//! status is used"): it answers with a [`JobFileElsewhere`] naming up to
//! four passive validators, which follow the chain and serve the same
//! committed file. Open files are only at the active validators, so
//! those are always served.

use std::collections::BTreeMap;

use undchain_jobfile::JobFile;
use undchain_types::msg::{JobFileElsewhere, JobFileReply, JobFileRequest, MAX_ELSEWHERE};
use undchain_types::{BoundedVec, LocalTime, Message, PublicKey};

use super::Validator;

/// Most entries in one job-file page (well inside the frame limit).
pub const MAX_PAGE: usize = 2_048;
/// Most requesters whose last page time is remembered.
const MAX_REQUESTERS: usize = 4_096;

/// When each requester was last served.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServeLimits {
    last: BTreeMap<PublicKey, LocalTime>,
}

impl ServeLimits {
    /// Whether `who` may have a page now (and records it if so).
    fn admit(&mut self, who: PublicKey, now: LocalTime, every_us: u64) -> bool {
        if let Some(t) = self.last.get(&who) {
            if now < t.plus(every_us) {
                return false;
            }
        }
        if self.last.len() >= MAX_REQUESTERS && !self.last.contains_key(&who) {
            // Forget the longest-served requester to stay bounded.
            let oldest = self.last.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.last.remove(&k);
            }
        }
        self.last.insert(who, now);
        true
    }
}

impl Validator {
    /// A user's request for a page of a block's job file.
    pub(crate) fn handle_job_file_request(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        req: JobFileRequest,
    ) {
        if !self
            .serve_limits
            .admit(from, now, self.timing.gossip_every_us)
        {
            return;
        }
        let Some((file, closed)) = self.job_file_of(req.block) else {
            return;
        };
        if closed && self.is_active() && self.busy(now) {
            let serve = self.offload_to(&from);
            if !serve.is_empty() {
                let msg = JobFileElsewhere {
                    block: req.block,
                    serve: BoundedVec::truncating(serve),
                };
                self.send(now, &[from], Message::JobFileElsewhere(msg), false);
                return;
            }
        }
        let limit = (req.limit as usize).clamp(1, MAX_PAGE);
        let entries = file.entries();
        let start = match req.after {
            Some(after) => entries.partition_point(|e| e.id <= after),
            None => 0,
        };
        let page: Vec<_> = entries[start..]
            .iter()
            .take(limit)
            .map(|e| (*e).clone())
            .collect();
        let next = (start + page.len() < entries.len())
            .then(|| page.last().map(|e| e.id))
            .flatten();
        let reply = JobFileReply {
            block: req.block,
            closed,
            total: file.len(),
            root: if closed {
                file.merkle_root()
            } else {
                file.root()
            },
            entries: BoundedVec::truncating(page),
            next,
        };
        self.send(now, &[from], Message::JobFileReply(reply), false);
    }

    /// Whether this validator's own load is at the offload threshold.
    fn busy(&mut self, now: LocalTime) -> bool {
        self.network_status(now).load_permille >= self.timing.overload_permille
    }

    /// Up to [`MAX_ELSEWHERE`] passive validators for `requester`, starting
    /// at a place its key picks (requesters spread over the passive ones).
    fn offload_to(&self, requester: &PublicKey) -> Vec<PublicKey> {
        let passive = self.roster.passive();
        if passive.is_empty() {
            return Vec::new();
        }
        let start = requester.as_bytes()[0] as usize % passive.len();
        (0..passive.len().min(MAX_ELSEWHERE))
            .map(|i| passive[(start + i) % passive.len()])
            .collect()
    }

    /// Block `block`'s job file and whether it is closed: an open file, a
    /// decided block kept to serve, or the ledger's open jobs of that block.
    fn job_file_of(&self, block: undchain_types::BlockNumber) -> Option<(JobFile, bool)> {
        if let Some(f) = self.book.open_file(block) {
            return Some((f.clone(), false));
        }
        if let Some(s) = self.served.iter().find(|s| s.block.header.number == block) {
            return Some((s.file.clone(), true));
        }
        (block < self.height).then(|| (self.ledger.job_file(block), true))
    }
}
