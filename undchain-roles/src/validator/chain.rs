//! The chain (validator story items 4-5): a decided block's job file is
//! applied to the ledger (its one payout file) and committed in the job
//! book, its record made durable, clients told when their job landed in a
//! later block than acknowledged; decided blocks are served to lagging
//! validators; a restart replays the stored blocks.

use std::sync::Arc;

use undchain_jobfile::JobFile;
use undchain_ledger::{Block, Verified};
use undchain_types::msg::{
    BlockRequest, BlockResponse, CommittedBlock, MAX_BLOCKS_PER_RESPONSE, Operation,
};
use undchain_types::{
    BlockNumber, BoundedVec, Hash32, JobId, LocalTime, Message, PublicKey, SignedEnvelope,
};

use super::{SERVE_BLOCKS, Served, Validator, entry_of};
use crate::config::ConfigError;
use crate::output::NodeEvent;
use crate::store::{BlockRecord, StoreOp, Stored};

impl Validator {
    /// Applies decided block `b` with its job file and operations.
    pub(crate) fn apply_decided(
        &mut self,
        now: LocalTime,
        b: CommittedBlock,
        file: JobFile,
        ops: Vec<Verified>,
    ) {
        let number = b.header.number;
        let signers = self.parent_set().from_bitmap(b.header.parent_signers);
        let verified = self.requests_for(&file).unwrap_or_default();
        let block = Block::new(number, &file, &verified)
            .with_ops(&ops)
            .with_signers(&signers);
        let mut refused = Vec::new();
        let mut registered = Vec::new();
        let root = match self.ledger.apply_block(&block) {
            Ok(o) => {
                refused = o.refused.iter().map(|r| r.index).collect();
                registered = registrations(&o);
                if let Some(st) = &o.settlement {
                    self.event(NodeEvent::PeriodSettled {
                        number,
                        period: st.period,
                        completed: st.completed,
                        partial: st.partial,
                        paid: st.paid,
                        refunded: st.refunded,
                        cancelled: st.cancelled.len() as u64,
                        carried: st.carried.len() as u64,
                    });
                }
                o.ledger_root
            }
            Err(e) => {
                self.event(NodeEvent::Refused {
                    from: None,
                    reason: format!("decided block {number} does not apply: {e}"),
                });
                self.ledger.root()
            }
        };
        if root != b.header.ledger_root {
            self.halted = true;
            self.event(NodeEvent::Diverged {
                number,
                header_root: b.header.ledger_root,
                local_root: root,
            });
            return;
        }
        let requests: Vec<Arc<SignedEnvelope>> = file
            .entries()
            .iter()
            .filter_map(|e| self.request_of(&e.id))
            .collect();
        let committed = self.book.commit_current(file.clone());
        for job in &committed.deferred {
            self.event(NodeEvent::JobDeferred {
                job: *job,
                to: number.next(),
            });
        }
        let list: Vec<Operation> = ops.iter().map(|v| v.op().clone()).collect();
        self.outbox.persist(StoreOp::Block(Box::new(BlockRecord {
            block: b.clone(),
            requests: requests.clone(),
            ops: list.clone(),
        })));
        self.notify_inclusions(now, &committed.file);
        self.ops_committed(now, number, &ops, &refused);
        for r in &requests {
            let id = JobId::from_request_digest(r.digest());
            self.requests.remove(&id);
            self.acks.remove(&id);
            let spend = super::intake::spend_of(r, self.params.transaction_fee);
            if let Some(n) = self.open_by_client.get_mut(r.sender()) {
                *n = n.saturating_sub(spend);
            }
        }
        let hash = b.header.hash_with(self.params.hash_algorithm);
        self.send_chain_links(now, number, hash);
        self.event(NodeEvent::BlockCommitted {
            number,
            hash,
            jobs: file.len(),
            ops: list.len() as u64,
            ledger_root: root,
        });
        for e in &registered {
            if let undchain_consensus::RosterEvent::Registered { id, trust } = e {
                self.event(NodeEvent::ValidatorRegistered {
                    validator: *id,
                    trust: *trust,
                    block: number,
                });
            }
        }
        self.finish_block(b, file, requests, list, &registered);
        self.sign_genesis(now);
    }

    /// Everything after a block is applied (shared with the replay of
    /// stored blocks).
    fn finish_block(
        &mut self,
        b: CommittedBlock,
        file: JobFile,
        requests: Vec<Arc<SignedEnvelope>>,
        ops: Vec<Operation>,
        registered: &[undchain_consensus::RosterEvent],
    ) {
        let number = b.header.number;
        self.last_hash = b.header.hash_with(self.params.hash_algorithm);
        self.rotate_after(&b.header, self.last_hash, registered);
        self.links.handle_committed(&b.header);
        self.last_cert = Some(b.certificate.clone());
        self.count_block_bytes(&b.header, &requests, &ops);
        self.converge_if_due(number);
        self.height = number.next();
        self.started = false;
        for r in requests {
            self.served_requests
                .insert(JobId::from_request_digest(r.digest()), r);
        }
        self.served.push_back(Served {
            block: b,
            file,
            ops,
        });
        while self.served.len() > SERVE_BLOCKS {
            if let Some(old) = self.served.pop_front() {
                for e in old.file.entries() {
                    self.served_requests.remove(&e.id);
                }
            }
        }
        let h = self.height;
        self.pending.retain(|_, p| p.height >= h);
        self.own_proposals.retain(|(b, _)| *b >= h);
        self.candidates.clear();
    }

    /// The end-of-block message to each linked co-chain's validators
    /// (validator story item 8).
    fn send_chain_links(&mut self, now: LocalTime, number: BlockNumber, hash: Hash32) {
        for (chain, link) in self.links.outgoing(number, hash) {
            let to: Vec<PublicKey> = self
                .co_chains
                .iter()
                .filter(|c| c.chain == chain)
                .flat_map(|c| c.validators.iter().copied())
                .collect();
            self.send(now, &to, Message::ChainLink(link), false);
        }
    }

    /// A co-chain validator's end-of-block link (its envelope is of chain
    /// `chain`): kept if it moves that chain's latest known block forward.
    pub(crate) fn handle_chain_link(
        &mut self,
        from: PublicKey,
        chain: undchain_types::ChainId,
        link: undchain_types::msg::ChainLink,
    ) -> Result<(), String> {
        let member = self
            .co_chains
            .iter()
            .any(|c| c.chain == chain && c.validators.contains(&from));
        if !member || link.chain != chain {
            return Err(format!(
                "chain link for {} from a non-validator of {chain}",
                link.chain
            ));
        }
        self.links
            .handle_link(&link)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Clients whose job landed in a later block than acknowledged get an
    /// inclusion notice with a proof.
    fn notify_inclusions(&mut self, now: LocalTime, closed: &undchain_jobfile::ClosedFile) {
        let number = closed.block();
        let late: Vec<(JobId, PublicKey)> = self
            .acks
            .iter()
            .filter(|(id, (_, acked))| *acked != number && closed.file().contains(id))
            .map(|(id, (client, _))| (*id, *client))
            .collect();
        for (job, client) in late {
            if let Some(notice) = closed.inclusion_notice(&job) {
                self.send(now, &[client], Message::InclusionNotice(notice), true);
            }
        }
    }

    /// A lagging validator asked for decided blocks.
    pub(crate) fn serve_blocks(&mut self, now: LocalTime, to: PublicKey, req: BlockRequest) {
        let max = usize::from(req.max).clamp(1, MAX_BLOCKS_PER_RESPONSE);
        let blocks: Vec<CommittedBlock> = self
            .served
            .iter()
            .filter(|s| s.block.header.number >= req.from)
            .take(max)
            .map(|s| s.block.clone())
            .collect();
        if blocks.is_empty() {
            return;
        }
        let tip = self
            .height
            .0
            .checked_sub(1)
            .map(undchain_types::BlockNumber);
        let response = BlockResponse {
            blocks: BoundedVec::try_from(blocks).unwrap_or_default(),
            tip: tip.unwrap_or_default(),
        };
        self.send(now, &[to], Message::BlockResponse(response), false);
    }

    /// Rebuilds ledger, book and chain from the stored blocks.
    pub(crate) fn replay_blocks(&mut self, stored: &Stored) -> Result<(), ConfigError> {
        for record in &stored.blocks {
            let b = &record.block;
            let mut entries = Vec::new();
            for r in &record.requests {
                let e = entry_of(r, self.params.transaction_fee)
                    .map_err(|e| ConfigError::Restore(e.to_string()))?;
                entries.push(e);
            }
            let file = JobFile::from_entries(entries)
                .map_err(|e| ConfigError::Restore(format!("block {}: {e}", b.header.number)))?;
            if file.merkle_root() != b.header.job_root || b.header.number != self.height {
                return Err(ConfigError::Restore(format!(
                    "block {} does not match its stored job file",
                    b.header.number
                )));
            }
            let signers = self.parent_set().from_bitmap(b.header.parent_signers);
            let verified: Vec<_> = record
                .requests
                .iter()
                .map(|r| self.ledger.verify_request_with(r, super::AlreadyChecked))
                .collect::<Result<_, _>>()
                .map_err(|e| ConfigError::Restore(e.to_string()))?;
            let ops: Vec<Verified> = record
                .ops
                .iter()
                .map(|o| self.ledger.verify_with(o.clone(), super::AlreadyChecked))
                .collect::<Result<_, _>>()
                .map_err(|e| ConfigError::Restore(e.to_string()))?;
            let block = Block::new(b.header.number, &file, &verified)
                .with_ops(&ops)
                .with_signers(&signers);
            let out = self
                .ledger
                .apply_block(&block)
                .map_err(|e| ConfigError::Restore(format!("block {}: {e}", b.header.number)))?;
            if out.ledger_root != b.header.ledger_root {
                return Err(ConfigError::Restore(format!(
                    "block {}: ledger root differs from its header",
                    b.header.number
                )));
            }
            self.book.commit_current(file.clone());
            let registered = registrations(&out);
            self.finish_block(
                b.clone(),
                file,
                record.requests.clone(),
                record.ops.clone(),
                &registered,
            );
        }
        Ok(())
    }

    /// Files the stored, uncommitted requests again, and remembers the
    /// acks it gave for them.
    pub(crate) fn refile_accepted(&mut self, stored: &Stored) {
        let [cur, next] = self.book.open_blocks();
        for (job, (block, request)) in &stored.accepted {
            if self.committed_block_of(job).is_some() {
                continue;
            }
            let Ok(entry) = entry_of(request, self.params.transaction_fee) else {
                continue;
            };
            let at = (*block).clamp(cur, next);
            if self.book.file_at(entry, at).is_ok() {
                // The ack it gave names the stored block: a later commit
                // elsewhere still sends the client an inclusion notice.
                self.acks.insert(*job, (*request.sender(), *block));
                let spend = super::intake::spend_of(request, self.params.transaction_fee);
                *self.open_by_client.entry(*request.sender()).or_insert(0) += spend;
                self.requests.insert(*job, request.clone());
            }
        }
    }
}

/// The roster events of the registrations a block committed, in block
/// order (docs/PROTOCOL.md "Discovery and registration").
fn registrations(o: &undchain_ledger::BlockOutcome) -> Vec<undchain_consensus::RosterEvent> {
    o.applied
        .iter()
        .filter_map(|a| match a {
            undchain_ledger::Applied::ValidatorRegistered {
                validator, trust, ..
            } => Some(undchain_consensus::RosterEvent::Registered {
                id: *validator,
                trust: *trust,
            }),
            _ => None,
        })
        .collect()
}
