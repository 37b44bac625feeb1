//! The scripted load's receipts (client story step 5): once a block is
//! committed, the client of each of its jobs submits the receipt its
//! partner countersigned to `ack_fanout` active validators, and to all of
//! them when no validator confirmed it within the retry timeout. The
//! checks then hold every confirmed receipt to exactly one committed block.

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::{BlockTime, JobId};

use super::{Ev, T0, World};

impl World {
    /// Block `height` is committed somewhere: the receipts of its jobs go
    /// out (once per height), read from the committing validator's disk.
    pub(super) fn receipts_for(&mut self, node: usize, height: u64) {
        if !self.cfg.receipts || height < self.receipts_from {
            return;
        }
        let Some(record) = self.nodes[node]
            .disk
            .stored()
            .blocks
            .iter()
            .find(|b| b.block.header.number.0 == height)
        else {
            return;
        };
        self.receipts_from = height + 1;
        let jobs: Vec<JobId> = record
            .requests
            .iter()
            .map(|r| JobId::from_request_digest(r.digest()))
            .collect();
        if self.cfg.trace {
            eprintln!(
                "t={} receipts of block {height} ({} jobs) from node {node}'s disk",
                self.now,
                jobs.len()
            );
        }
        let wall = BlockTime((T0 + self.now as i64) as u64);
        let active = self.active_indices();
        let fanout = usize::from(self.params.ack_fanout).min(active.len());
        let n = self.nodes.len();
        for job in jobs {
            let Some(env) = self.load.receipt(job, height, wall) else {
                continue;
            };
            let client = self.load.claims.get(&job).map_or(0, |c| c.client);
            let mut targets = BTreeSet::new();
            while targets.len() < fanout {
                targets.insert(active[self.rng.below(active.len() as u64) as usize]);
            }
            for to in targets {
                self.route(n + client, to, env.clone());
            }
            let retry = self.params.retry_timeout_us;
            self.push(self.now + retry, Ev::ReceiptCheck { job });
        }
    }

    /// No validator confirmed `job`'s receipt yet: it goes to every active
    /// validator (the client's recourse), and is checked again later.
    pub(super) fn receipt_check(&mut self, job: JobId) {
        let Some(c) = self.load.claims.get(&job) else {
            return;
        };
        if !c.acks.is_empty() {
            return;
        }
        let (client, receipt) = (c.client, c.receipt.clone());
        let wall = BlockTime((T0 + self.now as i64) as u64);
        let env = self.load.signed(client, wall, receipt);
        let n = self.nodes.len();
        for to in self.active_indices() {
            self.route(n + client, to, env.clone());
        }
        let retry = self.params.retry_timeout_us;
        self.push(self.now + retry, Ev::ReceiptCheck { job });
    }

    /// Receipts an honest validator confirmed.
    pub(crate) fn honestly_confirmed(&self) -> impl Iterator<Item = &JobId> {
        self.load
            .claims
            .iter()
            .filter(|(_, c)| c.acks.keys().any(|v| self.nodes[*v].byzantine.is_none()))
            .map(|(id, _)| id)
    }

    /// The scripted load's jobs committed at least
    /// [`super::super::check::RECEIPT_SLACK`]
    /// blocks before the last one every honest validator committed whose
    /// receipt no committed block holds although the job is still open
    /// (`committed`: job -> block; `receipts`: job -> block of its
    /// receipt). A job its period's settlement cancelled before the
    /// receipt could land (a stall, then blocks in a burst) owes none.
    pub(crate) fn receipts_due<'a>(
        &'a self,
        committed: &'a BTreeMap<JobId, u64>,
        receipts: &'a BTreeMap<JobId, u64>,
    ) -> impl Iterator<Item = &'a JobId> + 'a {
        let through = self
            .min_committed()
            .saturating_sub(super::super::check::RECEIPT_SLACK);
        let ledger = self
            .nodes
            .iter()
            .filter(|n| n.byzantine.is_none())
            .filter_map(|n| n.core.as_ref())
            .map(|c| c.validator().ledger())
            .max_by_key(|l| l.next_block());
        committed
            .iter()
            .filter(move |(id, b)| {
                self.cfg.receipts
                    && self.load.jobs.contains_key(*id)
                    && **b < through
                    && !receipts.contains_key(*id)
                    && ledger.is_none_or(|l| l.job(id).is_some())
            })
            .map(|(id, _)| id)
    }

    /// Client of `job` submits its receipt (as the load builds it) to
    /// validators `to` now; `None` when `job` is not one of the load's or
    /// no stored block of validator 0.. committed it yet.
    pub fn submit_receipt(&mut self, job: JobId, to: &[usize]) -> Option<()> {
        let block = self.nodes.iter().find_map(|n| {
            n.disk
                .stored()
                .blocks
                .iter()
                .find(|b| {
                    b.requests
                        .iter()
                        .any(|r| JobId::from_request_digest(r.digest()) == job)
                })
                .map(|b| b.block.header.number.0)
        })?;
        let wall = BlockTime((T0 + self.now as i64) as u64);
        let env = self.load.receipt(job, block, wall)?;
        let client = self.load.claims.get(&job).map_or(0, |c| c.client);
        let n = self.nodes.len();
        for &v in to {
            self.route(n + client, v, env.clone());
        }
        Some(())
    }

    /// Client `client` signs `body` (any message a client may send) now
    /// and sends it to validators `to`.
    pub fn send_signed(
        &mut self,
        client: usize,
        to: &[usize],
        body: impl Into<undchain_types::Message>,
    ) {
        let wall = BlockTime((T0 + self.now as i64) as u64);
        let env = self.load.signed(client, wall, body);
        let n = self.nodes.len();
        for &v in to {
            self.route(n + client, v, env.clone());
        }
    }

    /// The completion acks `job`'s receipt got: (validator, block named,
    /// first), in arrival order.
    pub fn completion_acks(&self, job: &JobId) -> Vec<(usize, u64, bool)> {
        self.load
            .claims
            .get(job)
            .map(|c| c.ack_log.clone())
            .unwrap_or_default()
    }
}
