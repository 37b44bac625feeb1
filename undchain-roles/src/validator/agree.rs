//! The agreement host (validator story item 4): runs the
//! [`undchain_consensus::Driver`] one height per block once the block's
//! time (plus a grace) has passed, builds the header for its own
//! proposals, checks others' against its own job file (reconciling with
//! the proposer and fetching requests when they differ), and hands decided
//! blocks to the chain once their job file is complete.

use undchain_consensus::{Output as DriverOutput, Validity, Value};
use undchain_jobfile::JobFile;
use undchain_ledger::{Block, Refused, Verified};
use undchain_types::msg::{CommittedBlock, Round, ops_root};
use undchain_types::{BlockHeader, BlockNumber, Hash32, LocalTime, Message, PublicKey};

use super::{Candidate, PendingCheck, Validator};
use crate::output::NodeEvent;
use crate::store::StoreOp;

impl Validator {
    /// Starts agreement on the next height once its block has ended (plus
    /// the grace) and every earlier decided block is applied.
    pub(crate) fn maybe_start_height(&mut self, now: LocalTime) {
        if self.started || self.halted || !self.decided.is_empty() {
            return;
        }
        let bt = self.block_time(now);
        if bt < self.agree_time(self.height) {
            return;
        }
        self.driver.start_height(now, self.height, self.set.clone());
        self.started = true;
    }

    /// Moves every driver batch into this node's outbox (its write and its
    /// promises in the same node batch, so persist-before-send carries
    /// over), answering value requests and checks on the way.
    pub(crate) fn pump_driver(&mut self, now: LocalTime) {
        while let Some(r) = self.driver.ready() {
            let number = r.number();
            for s in r.persist {
                self.outbox.persist(StoreOp::Consensus(Box::new(s)));
            }
            for o in r.immediate {
                self.driver_output(now, o, false);
            }
            for o in r.after_persist {
                self.driver_output(now, o, true);
            }
            // The batch is in our outbox now: acknowledged.
            let _ = self.driver.advance(number);
        }
    }

    fn driver_output(&mut self, now: LocalTime, o: DriverOutput, promise: bool) {
        match o {
            DriverOutput::Broadcast { msg } => self.broadcast(now, msg, promise),
            DriverOutput::Send { to, msg } => self.send(now, &[to], msg, promise),
            DriverOutput::GetValue { height, round } => self.propose(now, height, round),
            DriverOutput::CheckValue {
                height,
                round,
                id,
                key,
                value,
            } => self.check_value(now, height, round, (id, key), *value),
            DriverOutput::Decide(b) => {
                self.decided.push_back(*b);
                self.process_decided(now);
            }
            DriverOutput::Evidence(e) => {
                if let Some(dv) = e.duplicate_vote() {
                    if self.evidence.offer(dv) {
                        self.broadcast(now, Message::Evidence((*e).clone()), false);
                    }
                }
                self.event(NodeEvent::Evidence(e));
            }
            DriverOutput::ServeBlocks { to, request } => self.serve_blocks(now, to, request),
        }
    }

    /// Builds this validator's value for `height` from its open file and
    /// its pooled operations, and pushes the operations to the others.
    fn propose(&mut self, now: LocalTime, height: BlockNumber, round: Round) {
        let mut file = self.book.open_file(height).cloned().unwrap_or_default();
        // Jobs the ledger could not commit (no request here, or not covered
        // by the client's free balance) stay out of the proposal.
        let lacking: Vec<_> = file
            .entries()
            .iter()
            .filter(|e| self.request_of(&e.id).is_none())
            .map(|e| e.id)
            .collect();
        for id in lacking {
            file.remove(&id);
        }
        if let Ok(reqs) = self.requests_for(&file) {
            for (id, _) in self.ledger.unaffordable_jobs(&file, &reqs) {
                file.remove(&id);
            }
        }
        cap_jobs(&mut file, self.params.max_block_jobs);
        let signers = self.parent_signers();
        let cert = self.last_cert.clone();
        let mut ops = self.select_ops();
        let Some((mut value, refused)) =
            self.value_for(height, &file, &ops, &signers, cert.clone())
        else {
            return;
        };
        if !refused.is_empty() {
            // A refused operation changes nothing, so the others apply
            // the same without it: one more preview builds the header.
            for r in refused.iter().rev() {
                let op = ops.remove(r.index);
                self.drop_refused(&op, &r.error);
            }
            let Some((v, _)) = self.value_for(height, &file, &ops, &signers, cert) else {
                return;
            };
            value = v;
        }
        let id = value.header.hash_with(self.params.hash_algorithm);
        if !ops.is_empty() {
            let list: Vec<_> = ops.iter().map(|v| v.op().clone()).collect();
            let batch = undchain_types::msg::OpsBatch {
                block: Some(id),
                ops: undchain_types::BoundedVec::try_from(list).unwrap_or_default(),
            };
            self.broadcast(now, Message::OpsBatch(batch), false);
        }
        self.candidates.insert(id, Candidate { file, ops });
        self.own_proposals.push((height, id));
        if let Err(e) = self.driver.propose_value(now, height, round, value) {
            self.event(NodeEvent::Refused {
                from: None,
                reason: format!("propose: {e}"),
            });
        }
    }

    /// The signers of the parent block (they share its fees).
    fn parent_signers(&self) -> Vec<PublicKey> {
        match &self.last_cert {
            Some(c) => c.signatures.iter().map(|s| s.validator).collect(),
            None => Vec::new(),
        }
    }

    /// The header for `height` over `file` and `ops`, with the parent
    /// block's `signers` (from certificate `cert`) sharing its fees, and
    /// the operations the ledger refused.
    fn value_for(
        &mut self,
        height: BlockNumber,
        file: &JobFile,
        ops: &[Verified],
        signers: &[PublicKey],
        cert: Option<undchain_types::msg::CommitCertificate>,
    ) -> Option<(Value, Vec<Refused>)> {
        let requests = self.requests_for(file).ok()?;
        let block = Block::new(height, file, &requests)
            .with_ops(ops)
            .with_signers(signers);
        let outcome = match self.ledger.preview(&block) {
            Ok(o) => o,
            Err(e) => {
                self.event(NodeEvent::Refused {
                    from: None,
                    reason: format!("ledger preview of block {height}: {e}"),
                });
                return None;
            }
        };
        let list: Vec<_> = ops.iter().map(|v| v.op().clone()).collect();
        let header = BlockHeader {
            chain_id: self.params.chain_id,
            epoch: self.epoch.epoch,
            number: height,
            time: self.params.block_start(height),
            parent: self.last_hash,
            job_root: file.merkle_root(),
            job_count: file.len(),
            ops_root: ops_root(self.params.hash_algorithm, &list),
            ops_count: ops.len() as u32,
            ledger_root: outcome.ledger_root,
            validator_set_hash: self.set.hash_with(self.params.hash_algorithm),
            links: self.links.header_links(),
            parent_signers: self.parent_set().bitmap(signers.iter()),
            evidence: self.evidence.for_header(height),
        };
        let value = Value {
            header,
            parent_certificate: cert,
        };
        Some((value, outcome.refused))
    }

    /// The driver asks whether `value` (block hash `id`, whole-value key
    /// `key`, which the answer names) is valid.
    fn check_value(
        &mut self,
        now: LocalTime,
        height: BlockNumber,
        round: Round,
        (id, key): (Hash32, Hash32),
        value: Value,
    ) {
        if !self.header_fits(&value) {
            let _ = self
                .driver
                .handle_validity(now, height, key, Validity::Invalid);
            return;
        }
        if let Some(c) = self.candidates.get(&id) {
            let (file, ops) = (c.file.clone(), c.ops.clone());
            let v = self.validity(&value.header, &file, &ops);
            let _ = self.driver.handle_validity(now, height, key, v);
            return;
        }
        if let (Some(file), Some(ops)) = (
            self.matching_open_file(&value.header),
            self.ops_of(&id, &value.header),
        ) {
            let v = self.validity(&value.header, &file, &ops);
            if v == Validity::Valid {
                self.candidates.insert(id, Candidate { file, ops });
            }
            let _ = self.driver.handle_validity(now, height, key, v);
            return;
        }
        let _ = self
            .driver
            .handle_validity(now, height, key, Validity::Pending);
        // The proposer first, then every other member: a proposer that
        // restarted may have lost the body, while the members that
        // prevoted for it hold it.
        let proposer = self.set.proposer(height, round);
        let mut from = vec![proposer];
        from.extend(
            self.set
                .seats()
                .iter()
                .map(|s| s.id)
                .filter(|k| *k != proposer),
        );
        self.open_pending(now, id, value.header, from, Some(key));
    }

    /// Whether the header's fields other than the job file are the ones
    /// this validator expects, its parent certificate included (the
    /// header's `parent_signers` are exactly that certificate's signers).
    fn header_fits(&mut self, value: &Value) -> bool {
        let h = &value.header;
        if h.job_count > u64::from(self.params.max_block_jobs) {
            self.event(NodeEvent::Refused {
                from: None,
                reason: format!(
                    "proposal for block {}: {} jobs, more than max_block_jobs = {}",
                    h.number, h.job_count, self.params.max_block_jobs
                ),
            });
            return false;
        }
        if let Err(e) = self.evidence.check_header(h, self.params.chain_id) {
            self.event(NodeEvent::Refused {
                from: None,
                reason: format!("proposal for block {}: {e}", h.number),
            });
            return false;
        }
        let parent_set = (h.number != self.epoch.start).then_some(self.parent_set());
        h.chain_id == self.params.chain_id
            && h.epoch == self.epoch.epoch
            && h.number == self.height
            && h.parent == self.last_hash
            && h.time == self.params.block_start(h.number)
            && h.validator_set_hash == self.set.hash_with(self.params.hash_algorithm)
            && self.links.check_header(&h.links).is_ok()
            && undchain_consensus::check_parent_commit(
                h,
                value.parent_certificate.as_ref(),
                parent_set,
                undchain_consensus::StrictVerifier,
            )
            .is_ok()
    }

    /// This validator's open file of `h`'s block, if it is `h`'s job file:
    /// the whole file, or, when it holds more than `max_block_jobs` and the
    /// header is full, its oldest `max_block_jobs` (what a proposer with
    /// the same file proposes; "Block size" in docs/PROTOCOL.md).
    fn matching_open_file(&mut self, h: &BlockHeader) -> Option<JobFile> {
        let mine = self.book.open_file(h.number)?;
        if mine.len() == h.job_count && mine.merkle_root() == h.job_root {
            return Some(mine.clone());
        }
        let max = self.params.max_block_jobs;
        if mine.len() <= u64::from(max) || h.job_count != u64::from(max) {
            return None;
        }
        let key = (h.number, mine.version());
        if self.capped.as_ref().map(|(k, _)| *k) != Some(key) {
            let mut f = mine.clone();
            cap_jobs(&mut f, max);
            self.capped = Some((key, f));
        }
        let (_, f) = self.capped.as_ref()?;
        (f.merkle_root() == h.job_root).then(|| f.clone())
    }

    /// Valid when `file` is the header's job file, every request behind it
    /// is held, `ops` are its operations, the ledger refuses none of them
    /// and reaches the header's root.
    fn validity(&mut self, header: &BlockHeader, file: &JobFile, ops: &[Verified]) -> Validity {
        if file.merkle_root() != header.job_root || file.len() != header.job_count {
            return Validity::Invalid;
        }
        let signers = self.parent_set().from_bitmap(header.parent_signers);
        match self.value_for(header.number, file, ops, &signers, None) {
            Some((v, refused))
                if refused.is_empty()
                    && v.header.ledger_root == header.ledger_root
                    && v.header.ops_root == header.ops_root
                    && v.header.ops_count == header.ops_count =>
            {
                Validity::Valid
            }
            _ => Validity::Invalid,
        }
    }

    /// Waits for the job file of block `id` from `from`.
    pub(crate) fn open_pending(
        &mut self,
        now: LocalTime,
        id: Hash32,
        header: BlockHeader,
        from: Vec<PublicKey>,
        answer: Option<Hash32>,
    ) {
        let decided = answer.is_none();
        if self.pending.contains_key(&id) {
            if decided {
                if let Some(p) = self.pending.get_mut(&id) {
                    p.decided = true;
                    p.from = from;
                }
            }
            return;
        }
        let height = header.number;
        let peer = from.iter().copied().find(|p| *p != self.me);
        let file = self.matching_open_file(&header);
        let ops = self.ops_of(&id, &header);
        let (need_file, need_ops) = (file.is_none(), ops.is_none());
        self.pending.insert(
            id,
            PendingCheck {
                height,
                header,
                from,
                file,
                ops,
                decided,
                key: answer.unwrap_or(id),
                retry_at: now.plus(self.timing.fetch_retry_us),
                attempts: 0,
            },
        );
        if let Some(peer) = peer {
            if need_file {
                self.start_reconcile(now, peer, height, Some(id));
            }
            if need_ops {
                self.fetch_ops(now, peer, id);
            }
        }
        if !need_file && !need_ops {
            self.resolve_pending(now);
        }
    }

    /// Pending checks whose time is up ask the next peer.
    pub(crate) fn retry_pending(&mut self, now: LocalTime) {
        let due: Vec<Hash32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.retry_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for &id in &due {
            let file_done = self.pending.get(&id).is_some_and(|p| {
                p.file.as_ref().is_some_and(|f| {
                    f.merkle_root() == p.header.job_root
                        && f.entries().iter().all(|e| self.request_of(&e.id).is_some())
                })
            });
            let Some(p) = self.pending.get_mut(&id) else {
                continue;
            };
            p.attempts += 1;
            p.retry_at = now.plus(self.timing.fetch_retry_us);
            if !file_done {
                p.file = None;
            }
            let need_ops = p.ops.is_none();
            let peers: Vec<PublicKey> = p.from.iter().copied().filter(|k| *k != self.me).collect();
            if peers.is_empty() {
                continue;
            }
            let peer = peers[p.attempts as usize % peers.len()];
            let height = p.height;
            if !file_done {
                self.start_reconcile(now, peer, height, Some(id));
            }
            if need_ops {
                self.fetch_ops(now, peer, id);
            }
        }
        // A check may have completed without a resolve (its last request
        // or operation arrived by a path that does not resolve): with
        // nothing left to fetch, only this resolves it.
        if !due.is_empty() {
            self.resolve_pending(now);
        }
    }

    /// Pending checks whose file and requests are complete are answered
    /// (or, for a decided block, applied).
    pub(crate) fn resolve_pending(&mut self, now: LocalTime) {
        let ready: Vec<Hash32> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                p.ops.is_some()
                    && p.file.as_ref().is_some_and(|f| {
                        f.entries().iter().all(|e| self.request_of(&e.id).is_some())
                    })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            let (Some(file), Some(ops)) = (p.file, p.ops) else {
                continue;
            };
            if p.decided {
                if file.merkle_root() == p.header.job_root {
                    self.candidates.insert(id, Candidate { file, ops });
                } else {
                    // Wrong file from that peer: ask the next one.
                    self.open_pending(now, id, p.header, p.from, None);
                }
                continue;
            }
            if file.merkle_root() != p.header.job_root || file.len() != p.header.job_count {
                // That peer's file is not this value's (a lying or
                // mistaken peer): not a verdict on the value. The check
                // stays pending and its next retry asks the next peer.
                self.pending.insert(
                    id,
                    PendingCheck {
                        file: None,
                        ops: Some(ops),
                        ..p
                    },
                );
                continue;
            }
            let v = self.validity(&p.header, &file, &ops);
            if v == Validity::Valid {
                self.candidates.insert(id, Candidate { file, ops });
            }
            let _ = self.driver.handle_validity(now, p.height, p.key, v);
        }
        self.process_decided(now);
    }

    /// Applies decided blocks in order as their files complete; a block
    /// whose file this validator lacks is fetched from its signers.
    pub(crate) fn process_decided(&mut self, now: LocalTime) {
        while let Some(b) = self.decided.front().cloned() {
            if b.header.number != self.height {
                self.decided.pop_front();
                continue;
            }
            let id = b.certificate.block_hash;
            match self.decided_body(&b) {
                Some((file, ops))
                    if file
                        .entries()
                        .iter()
                        .all(|e| self.request_of(&e.id).is_some()) =>
                {
                    self.decided.pop_front();
                    self.pending.remove(&id);
                    self.apply_decided(now, b, file, ops);
                    if self.halted {
                        return;
                    }
                }
                _ => {
                    let signers: Vec<PublicKey> = b
                        .certificate
                        .signatures
                        .iter()
                        .map(|s| s.validator)
                        .collect();
                    self.open_pending(now, id, b.header.clone(), signers, None);
                    return;
                }
            }
        }
        self.maybe_start_height(now);
    }

    /// The job file and operations of decided block `b`, if this
    /// validator holds them.
    fn decided_body(&mut self, b: &CommittedBlock) -> Option<(JobFile, Vec<Verified>)> {
        let id = b.certificate.block_hash;
        if let Some(c) = self.candidates.get(&id) {
            return Some((c.file.clone(), c.ops.clone()));
        }
        Some((
            self.matching_open_file(&b.header)?,
            self.ops_of(&id, &b.header)?,
        ))
    }
}

/// Keeps the `max` oldest jobs of `file` (by the client's signed send
/// time, then id: every validator orders them alike) and drops the rest
/// from this proposal; they stay in the book and go to the next file when
/// the block commits (docs/PROTOCOL.md "Block size").
pub(crate) fn cap_jobs(file: &mut JobFile, max: u32) {
    let max = max as usize;
    if file.len() as usize <= max {
        return;
    }
    let mut order: Vec<(undchain_types::BlockTime, undchain_types::JobId)> = file
        .entries()
        .iter()
        .map(|e| (e.initiated_at, e.id))
        .collect();
    order.sort_unstable();
    for (_, id) in order.into_iter().skip(max) {
        file.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_jobfile::testkit::entry;

    #[test]
    fn a_capped_file_keeps_the_oldest_jobs_whatever_the_insertion_order() {
        // Send times 100 - n: the highest n is the oldest.
        let all: Vec<_> = (0..10u64).map(|n| entry(n, 100 - n)).collect();
        let mut a = JobFile::from_entries(all.clone()).unwrap();
        let mut b = JobFile::from_entries(all.into_iter().rev()).unwrap();
        cap_jobs(&mut a, 4);
        cap_jobs(&mut b, 4);
        assert_eq!(a.len(), 4);
        assert_eq!(a.merkle_root(), b.merkle_root());
        for n in 6..10u64 {
            assert!(
                a.contains(&entry(n, 100 - n).id),
                "job {n} is among the oldest"
            );
        }
        // Equal send times fall back to the id: still one answer.
        let mut c = JobFile::from_entries((0..10u64).map(|n| entry(n, 7))).unwrap();
        let mut d = JobFile::from_entries((0..10u64).rev().map(|n| entry(n, 7))).unwrap();
        cap_jobs(&mut c, 3);
        cap_jobs(&mut d, 3);
        assert_eq!(c, d);
        // At or under the bound nothing changes.
        let mut e = JobFile::from_entries((0..3u64).map(|n| entry(n, n))).unwrap();
        let before = e.merkle_root();
        cap_jobs(&mut e, 3);
        assert_eq!(e.merkle_root(), before);
    }
}
