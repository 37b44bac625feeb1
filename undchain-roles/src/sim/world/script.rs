//! The scripting API of [`World`] for scenario tests: reading the nodes
//! back (cores, disks, commits, acks, notices) and acting on the run (send
//! or resend a client's request, crash, restart, give a command, cut links).

use std::collections::BTreeMap;
use std::sync::Arc;

use undchain_types::{BlockTime, ChainParams, Hash32, JobId, SignedEnvelope};

use super::{Ev, Filter, GENESIS_AFTER_US, T0, World};
use crate::node::NodeCore;
use crate::output::NodeEvent;

impl World {
    /// Virtual time now, microseconds since the run's start.
    pub fn now_us(&self) -> u64 {
        self.now
    }

    /// The true wall-clock time now (what an honest client dates its
    /// envelopes with).
    pub fn wall_now(&self) -> BlockTime {
        BlockTime((T0 + self.now as i64) as u64)
    }

    /// Virtual time of block `b`'s start.
    pub fn block_start_us(&self, b: u64) -> u64 {
        GENESIS_AFTER_US + b * self.cfg.block_interval_us
    }

    /// The chain parameters of the run.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// Validator `i`'s node core, while it is up.
    pub fn core(&self, i: usize) -> Option<&NodeCore> {
        self.nodes[i].core.as_ref()
    }

    /// What validator `i` has on disk.
    pub fn stored(&self, i: usize) -> &crate::Stored {
        self.nodes[i].disk.stored()
    }

    /// Heights validator `i` announced as committed: height -> (hash,
    /// ledger root).
    pub fn commits(&self, i: usize) -> &BTreeMap<u64, (Hash32, Hash32)> {
        &self.nodes[i].commits
    }

    /// Sets the link filter (`true`: deliver).
    pub fn set_filter(&mut self, f: Filter) {
        self.filter = Some(f);
    }

    /// Every ack `job`'s client received, in order: (validator, block
    /// named).
    pub fn acks(&self, job: &JobId) -> Vec<(usize, u64)> {
        self.load
            .jobs
            .get(job)
            .map(|j| j.ack_log.clone())
            .unwrap_or_default()
    }

    /// The block whose stored record at validator `i` holds `job`.
    pub fn committed_in(&self, i: usize, job: &JobId) -> Option<u64> {
        self.stored(i).blocks.iter().find_map(|b| {
            b.requests
                .iter()
                .any(|r| JobId::from_request_digest(r.digest()) == *job)
                .then_some(b.block.header.number.0)
        })
    }

    /// The validators of the current active set, as an honest validator
    /// that is up sees it (what a client learns from its acks).
    pub fn active_indices(&self) -> Vec<usize> {
        let view = self
            .nodes
            .iter()
            .filter(|n| n.byzantine.is_none())
            .filter_map(|n| n.core.as_ref())
            .max_by_key(|c| c.validator().height());
        match view {
            Some(c) => c
                .validator()
                .validator_set()
                .seats()
                .iter()
                .filter_map(|s| self.index.get(&s.id).copied())
                .collect(),
            None => (0..self.cfg.validators).collect(),
        }
    }

    /// The set changes, clock steps and bootstrap notices validator `i`
    /// reported, in order.
    pub fn notices(&self, i: usize) -> &[NodeEvent] {
        &self.nodes[i].notices
    }

    /// Whether validator `i` is Byzantine, and the name of what it runs.
    pub fn byzantine(&self, i: usize) -> Option<&'static str> {
        self.nodes[i].byzantine.as_ref().map(|b| b.name)
    }

    /// Requests at least one honest validator acknowledged (what the
    /// network promises to commit; a Byzantine ack promises nothing).
    pub(crate) fn honestly_acked(&self) -> impl Iterator<Item = &JobId> {
        self.load
            .jobs
            .iter()
            .filter(|(_, j)| j.acks.iter().any(|v| self.nodes[*v].byzantine.is_none()))
            .map(|(id, _)| id)
    }

    /// Inclusion notices the clients received.
    pub fn inclusion_notices(&self) -> u64 {
        self.load.inclusion_notices
    }

    /// Client `client` signs a new request now and sends it to validators
    /// `to`; like every client it forwards the request to the others when
    /// fewer than f+1 acknowledged it within the retry timeout.
    pub fn send_request(&mut self, client: usize, to: &[usize]) -> JobId {
        let wall = BlockTime((T0 + self.now as i64) as u64);
        let nonce = self.rng.next_u64();
        let (job, env) = self.load.request(client, wall, nonce);
        self.resend(job, to, &env);
        let retry = self.params.retry_timeout_us;
        self.push(self.now + retry, Ev::Check { job });
        job
    }

    /// Sends the same signed request again (a client's retry).
    pub fn resend_request(&mut self, job: JobId, to: &[usize]) {
        if let Some(env) = self.load.jobs.get(&job).map(|j| j.original.clone()) {
            self.resend(job, to, &env);
        }
    }

    fn resend(&mut self, job: JobId, to: &[usize], env: &Arc<SignedEnvelope>) {
        let n = self.nodes.len();
        let client = self.load.jobs.get(&job).map_or(0, |j| j.client);
        for &v in to {
            self.route(n + client, v, env.clone());
        }
    }

    /// Crashes validator `i` now (an untorn crash: between two batches).
    pub fn crash_now(&mut self, i: usize) {
        self.crash(i, false);
    }

    /// Validator `i`'s local clock jumps `by_us` forward now (its host was
    /// suspended, or an operator stepped the system clock).
    pub fn clock_jump_now(&mut self, i: usize, by_us: i64) {
        self.clock_jump(i, by_us);
    }

    /// Gives validator `i` a user's or operator's command now.
    pub fn command(&mut self, i: usize, command: crate::Command) -> Result<(), crate::NodeError> {
        let local = self.local(i);
        let r = match self.nodes[i].core.as_mut() {
            Some(core) => core.handle_command(local, command),
            None => return Ok(()),
        };
        self.drain(i);
        r
    }

    /// Restarts validator `i` now from its disk.
    pub fn restart_now(&mut self, i: usize) {
        self.restart(i);
    }

    /// Takes the envelopes this chain's validators sent to a linked
    /// co-chain's validators: (recipient, envelope).
    pub fn take_foreign(&mut self) -> Vec<(undchain_types::PublicKey, Arc<SignedEnvelope>)> {
        std::mem::take(&mut self.foreign)
    }

    /// Delivers an envelope from another chain's world to validator `to`
    /// (by key) through this world's network; `false` if no validator
    /// here holds that key.
    pub fn deliver_foreign(
        &mut self,
        to: &undchain_types::PublicKey,
        env: Arc<SignedEnvelope>,
    ) -> bool {
        match self.index.get(to).copied() {
            Some(i) if i < self.nodes.len() => {
                self.route(usize::MAX, i, env);
                true
            }
            _ => false,
        }
    }

    /// Client `client` asks validator `to` for a page of block `block`'s
    /// job file (entries after `after`, at most `limit`).
    pub fn request_job_file(
        &mut self,
        client: usize,
        to: usize,
        block: u64,
        after: Option<JobId>,
        limit: u32,
    ) {
        let wall = BlockTime((T0 + self.now as i64) as u64);
        let req = undchain_types::msg::JobFileRequest {
            block: undchain_types::BlockNumber(block),
            after,
            limit,
        };
        let env = self.load.signed(client, wall, req);
        let n = self.nodes.len();
        self.route(n + client, to, env);
    }

    /// Every redirect of a loaded validator the clients received:
    /// (validator, redirect).
    pub fn job_file_elsewhere(&self) -> &[(usize, undchain_types::msg::JobFileElsewhere)] {
        &self.load.job_file_elsewhere
    }

    /// Every job-file page the clients received: (validator, page).
    pub fn job_file_replies(&self) -> &[(usize, undchain_types::msg::JobFileReply)] {
        &self.load.job_file_replies
    }
}
