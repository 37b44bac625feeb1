//! Job-file sync between validators (validator story item 4): request
//! batches and deltas every gossip round, reconciliation
//! ([`undchain_jobfile::Session`]) when a delta's count or root differs
//! after a block's intake closed or a proposal names a file this validator
//! does not hold, and fetching the signed requests behind entries.

use undchain_jobfile::{Config as ReconcileConfig, JobFile, Outcome, Role, Session};
use undchain_types::msg::GossipedRequest;
use undchain_types::msg::{
    JobFileDelta, MAX_BATCH, MAX_FETCH, Reconcile, RequestBatch, RequestFetch,
};
use undchain_types::{
    BlockNumber, BoundedBytes, BoundedVec, Hash32, JobId, LocalTime, Message, PublicKey,
};

use super::{SessionSlot, Validator};
use crate::output::NodeEvent;

impl Validator {
    /// One gossip round: new requests to every other validator, and a
    /// delta for each open block whose count or root changed.
    pub(crate) fn gossip(&mut self, now: LocalTime) {
        while !self.gossip_out.is_empty() {
            let n = self.gossip_out.len().min(MAX_BATCH);
            let chunk: Vec<GossipedRequest> = self.gossip_out.drain(..n).collect();
            let batch = RequestBatch {
                requests: BoundedVec::try_from(chunk).unwrap_or_default(),
            };
            self.broadcast(now, Message::RequestBatch(batch), false);
        }
        self.relay_ops(now);
        for block in self.book.open_blocks() {
            let Some(f) = self.book.open_file(block) else {
                continue;
            };
            let now_state = (f.len(), f.root());
            if self.last_delta.get(&block) == Some(&now_state)
                || (f.is_empty() && !self.is_active())
            {
                // A passive validator with nothing filed has nothing to hand over.
                continue;
            }
            self.last_delta.insert(block, now_state);
            let status = self.is_active().then(|| self.network_status(now));
            let delta = JobFileDelta {
                block,
                added: BoundedVec::default(),
                count: now_state.0,
                root: now_state.1,
                status,
            };
            self.broadcast(now, Message::JobFileDelta(delta), false);
        }
        let oldest = self.book.open_blocks()[0];
        self.last_delta.retain(|b, _| *b >= oldest);
    }

    /// A peer's delta: once the block's intake has closed, a count or root
    /// that differs from ours starts a reconciliation with that peer.
    pub(crate) fn handle_delta(&mut self, now: LocalTime, from: PublicKey, d: JobFileDelta) {
        if let Some(status) = d.status.clone() {
            self.record_status(from, status);
        }
        if !self.set.contains(&from) && d.count == 0 {
            // A passive validator's empty file: nothing to learn from it.
            return;
        }
        let Some(f) = self.book.open_file(d.block) else {
            return;
        };
        if (f.len(), f.root()) == (d.count, d.root) {
            return;
        }
        let bt = self.block_time(now);
        let closed = bt >= self.params.block_start(d.block.next());
        let running = self
            .sessions
            .iter()
            .any(|((p, _), s)| *p == from && s.session.role() == Role::Initiator);
        if closed && !running {
            self.start_reconcile(now, from, d.block, None);
        }
    }

    /// The file this validator reconciles for `block`: its proposal or a
    /// checked value for it, the decided file, or the open file.
    pub(crate) fn file_for(&self, block: BlockNumber) -> JobFile {
        if let Some(s) = self.served.iter().find(|s| s.block.header.number == block) {
            return s.file.clone();
        }
        if let Some(c) = self
            .own_proposals
            .iter()
            .rev()
            .find(|(b, _)| *b == block)
            .and_then(|(_, id)| self.candidates.get(id))
        {
            return c.file.clone();
        }
        self.book.open_file(block).cloned().unwrap_or_default()
    }

    /// The job file of block id `id`: a candidate (this validator's
    /// proposal or a value it checked) or a served block.
    pub(crate) fn file_of_id(&self, id: &Hash32) -> Option<JobFile> {
        if let Some(c) = self.candidates.get(id) {
            return Some(c.file.clone());
        }
        self.served
            .iter()
            .find(|s| s.block.certificate.block_hash == *id)
            .map(|s| s.file.clone())
    }

    /// Starts reconciling `block` with `peer`; `for_check` names the
    /// pending check the outcome serves.
    pub(crate) fn start_reconcile(
        &mut self,
        now: LocalTime,
        peer: PublicKey,
        block: BlockNumber,
        for_check: Option<Hash32>,
    ) {
        let file = self.book.open_file(block).cloned().unwrap_or_default();
        let sid = self.next_session();
        let nonce = Hash32(self.rng_bytes());
        let cfg = ReconcileConfig::for_entries(file.len().max(1) * 4);
        let mut session = Session::new(Role::Initiator, sid, block, cfg, nonce);
        if let Some(id) = for_check {
            session = session.wanting(id);
        }
        match session.start(&file) {
            Ok(msg) => {
                self.make_room(peer);
                self.sessions.insert(
                    (peer, sid),
                    SessionSlot {
                        session,
                        file,
                        check: for_check,
                        active_at: now,
                    },
                );
                self.send(now, &[peer], Message::Reconcile(msg), false);
            }
            Err(e) => self.event(NodeEvent::Refused {
                from: None,
                reason: format!("reconcile start: {e}"),
            }),
        }
    }

    fn rng_bytes(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for chunk in b.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        b
    }

    /// A reconciliation message from `from`.
    pub(crate) fn handle_reconcile(&mut self, now: LocalTime, from: PublicKey, msg: Reconcile) {
        let key = (from, msg.session);
        if !self.sessions.contains_key(&key) {
            if msg.step != 0 {
                return;
            }
            let file = match msg.file_of {
                Some(id) => match self.file_of_id(&id) {
                    Some(f) => f,
                    // Not the value asked for: silence sends the asker to
                    // its next peer; another file of this number would
                    // pass for that value's and fail its root.
                    None => return,
                },
                None => self.file_for(msg.block),
            };
            let nonce = Hash32(self.rng_bytes());
            let cfg = ReconcileConfig::for_entries(file.len().max(1) * 4);
            let session = Session::new(Role::Responder, msg.session, msg.block, cfg, nonce);
            self.make_room(from);
            self.sessions.insert(
                key,
                SessionSlot {
                    session,
                    file,
                    check: None,
                    active_at: now,
                },
            );
        }
        let Some(slot) = self.sessions.get_mut(&key) else {
            return;
        };
        slot.active_at = now;
        let result = slot.session.handle(&slot.file, &msg);
        let finished = slot.session.is_finished();
        let failed = slot.session.is_failed();
        match result {
            Ok(Some(reply)) => self.send(now, &[from], Message::Reconcile(reply), false),
            Ok(None) => {}
            Err(e) => self.event(NodeEvent::Refused {
                from: Some(from),
                reason: format!("reconcile: {e}"),
            }),
        }
        if finished || failed {
            if let Some(slot) = self.sessions.remove(&key) {
                if finished && slot.session.role() == Role::Initiator {
                    let check = slot.check;
                    self.reconciled(now, from, msg.block, slot.session.into_outcome(), check);
                }
            }
        }
    }

    /// Keeps at most [`MAX_SESSIONS_PER_PEER`] sessions with `peer` and
    /// [`MAX_SESSIONS`] in all, dropping the oldest.
    fn make_room(&mut self, peer: PublicKey) {
        loop {
            let with_peer: Vec<(PublicKey, u64)> = self
                .sessions
                .keys()
                .filter(|(p, _)| *p == peer)
                .copied()
                .collect();
            let over_peer = with_peer.len() >= MAX_SESSIONS_PER_PEER;
            let over_all = self.sessions.len() >= MAX_SESSIONS;
            if !over_peer && !over_all {
                return;
            }
            let pool: Vec<(PublicKey, u64)> = if over_peer {
                with_peer
            } else {
                self.sessions.keys().copied().collect()
            };
            let oldest = pool
                .into_iter()
                .min_by_key(|k| self.sessions.get(k).map(|s| s.active_at));
            match oldest {
                Some(k) => {
                    self.sessions.remove(&k);
                }
                None => return,
            }
        }
    }

    /// Drops sessions that went quiet (a lost message ends them): none
    /// came or went for twice `timing.fetch_retry_us`.
    pub(crate) fn expire_sessions(&mut self, now: LocalTime) {
        let ttl = self.timing.fetch_retry_us.saturating_mul(2);
        self.sessions.retain(|_, s| now < s.active_at.plus(ttl));
    }

    /// What a finished session found: entries `from` has and we lack are
    /// fetched (their signed requests); a pending check gets its file.
    fn reconciled(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        block: BlockNumber,
        outcome: Outcome,
        check: Option<Hash32>,
    ) {
        let missing: Vec<JobId> = outcome
            .only_remote
            .iter()
            .map(|e| e.id)
            .filter(|id| !self.requests.contains_key(id))
            .collect();
        if let Some(id) = check {
            if let Some(p) = self.pending.get_mut(&id) {
                let mut f = self.book.open_file(block).cloned().unwrap_or_default();
                for e in &outcome.only_local {
                    f.remove(&e.id);
                }
                for e in outcome.only_remote {
                    let _ = f.insert(e);
                }
                p.file = Some(f);
            }
        }
        for chunk in missing.chunks(MAX_FETCH) {
            let fetch = RequestFetch {
                block,
                ids: BoundedVec::try_from(chunk.to_vec()).unwrap_or_default(),
            };
            self.send(now, &[from], Message::RequestFetch(fetch), false);
        }
        self.resolve_pending(now);
    }

    /// A validator asks for signed requests: answer with what we hold.
    pub(crate) fn handle_fetch(&mut self, now: LocalTime, from: PublicKey, f: RequestFetch) {
        let mut out = Vec::new();
        for id in f.ids.iter() {
            if let Some(r) = self.request_of(id) {
                out.push(GossipedRequest {
                    block: f.block,
                    original: BoundedBytes::try_from_vec(r.to_bytes()).unwrap_or_default(),
                });
            }
        }
        if !out.is_empty() {
            let batch = RequestBatch {
                requests: BoundedVec::try_from(out).unwrap_or_default(),
            };
            self.send(now, &[from], Message::RequestBatch(batch), false);
        }
    }

    /// The signed request of `id`: open, or in a served block.
    pub(crate) fn request_of(
        &self,
        id: &JobId,
    ) -> Option<std::sync::Arc<undchain_types::SignedEnvelope>> {
        if let Some(r) = self.requests.get(id) {
            return Some(r.clone());
        }
        self.served_requests.get(id).cloned()
    }
}

/// Most reconciliation sessions a validator keeps at once.
pub const MAX_SESSIONS: usize = 64;
/// Most reconciliation sessions a validator keeps with one peer.
pub const MAX_SESSIONS_PER_PEER: usize = 8;
