//! Request intake (client story steps 1-3; validator story item 4): a
//! client's signed request is checked (the client can pay its fee on top
//! of its open jobs), filed by the cutoff rule, acknowledged after the
//! write with the block and the period's active validators, and gossiped
//! to the other validators, who file it in the block the first filer
//! named. A retried request gets the identical ack.

use std::sync::Arc;

use undchain_types::msg::{
    ForwardedRequest, GossipedRequest, RequestAck, RequestBatch, ValidatorInfo,
};
use undchain_types::{
    Activity, BlockNumber, BoundedBytes, BoundedVec, JobEntry, JobId, JobState, LocalTime, Message,
    PublicKey, SignedEnvelope, TokenAmount, ValidatorClass,
};

use super::Validator;
use crate::output::NodeEvent;
use crate::store::StoreOp;

/// Why a client request was refused at intake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// The envelope's body is not a utility request.
    #[error("not a utility request")]
    NotARequest,
    /// This validator holds no active seat now (a passive validator files
    /// no requests; the client sends to the active ones its acks name).
    #[error("this validator is passive: send requests to the active validators")]
    NotActive,
    /// This validator already holds `timing.intake_limit_jobs` filed,
    /// uncommitted requests: it sheds new ones until blocks take some (the
    /// client retries, with other validators too; client story step 3).
    #[error("at capacity: {held} requests held, capacity {capacity}; retry later")]
    AtCapacity {
        /// Requests held.
        held: u64,
        /// The capacity.
        capacity: u64,
    },
    /// Both open job files already hold `max_block_jobs` jobs: no block
    /// this validator could still name would carry this one (the client
    /// retries, with other validators too).
    #[error("blocks full: both open job files hold max_block_jobs = {max} jobs; retry later")]
    BlocksFull {
        /// The chain's `max_block_jobs`.
        max: u32,
    },
    /// The ledger refuses to commit it (committed or settled before,
    /// outside the request window, budget and fee not covered).
    #[error("{0}")]
    Ledger(#[from] undchain_ledger::RequestError),
    /// Budget and fee of this job on top of the client's filed,
    /// uncommitted jobs exceed its free balance.
    #[error(
        "free balance {balance} cannot cover budget and fee {this} of this job on top of {open} for its filed jobs"
    )]
    InsufficientBalance {
        /// The client's free balance.
        balance: TokenAmount,
        /// Budget plus fee of this job.
        this: u128,
        /// Budget plus fee of the client's filed, uncommitted jobs.
        open: u128,
    },
}

/// What committing `env` locks from its client: budget (units x most per
/// unit) plus the fee.
pub(crate) fn spend_of(env: &SignedEnvelope, fee: TokenAmount) -> u128 {
    match env.body() {
        Message::UtilityRequest(r) => {
            u128::from(r.units) * u128::from(r.max_price_per_unit.0) + u128::from(fee.0)
        }
        _ => 0,
    }
}

/// The job entry a signed request stands for: its id from the envelope's
/// digest, its initiation time the client's signed send time, the client
/// pool the requester and its co-clients, the chain's fee. Every validator
/// derives the same entry from the same request.
pub fn entry_of(env: &SignedEnvelope, fee: TokenAmount) -> Result<JobEntry, IntakeError> {
    let Message::UtilityRequest(r) = env.body() else {
        return Err(IntakeError::NotARequest);
    };
    let mut pool = vec![*env.sender()];
    pool.extend(r.co_clients.iter().copied().filter(|c| c != env.sender()));
    pool.truncate(undchain_types::job::MAX_POOL);
    Ok(JobEntry {
        id: JobId::from_request_digest(env.digest()),
        initiated_at: env.envelope().sent_at,
        kind: r.kind,
        client_pool: BoundedVec::try_from(pool).unwrap_or_default(),
        partner_pool: BoundedVec::default(),
        fee,
        state: JobState::Requested,
    })
}

impl Validator {
    /// A client's request (direct, or forwarded by the client).
    pub(crate) fn handle_request(&mut self, now: LocalTime, env: Arc<SignedEnvelope>) {
        let id = JobId::from_request_digest(env.digest());
        let client = *env.sender();
        if let Some(&(_, block)) = self.acks.get(&id) {
            self.ack(now, client, id, block);
            return;
        }
        if let Some(block) = self.committed_block_of(&id) {
            self.ack(now, client, id, block);
            return;
        }
        if let Some(block) = self.book.locate(&id) {
            // Learned by gossip first: ack where it is.
            self.acks.insert(id, (client, block));
            self.ack(now, client, id, block);
            return;
        }
        let filed = self
            .active_check()
            .and_then(|()| self.capacity_check())
            .and_then(|()| self.affordable_entry(&env))
            .and_then(|entry| self.file_new(now, entry));
        let block = match filed {
            Ok(b) => b,
            Err(e) => {
                self.event(NodeEvent::RequestRefused {
                    client,
                    reason: e.to_string(),
                });
                return;
            }
        };
        self.accepted(id, block, env.clone());
        self.acks.insert(id, (client, block));
        self.gossip_out.push(GossipedRequest {
            block,
            original: BoundedBytes::try_from_vec(env.to_bytes()).unwrap_or_default(),
        });
        self.ack(now, client, id, block);
        self.event(NodeEvent::RequestAcked { job: id, block });
    }

    /// Files a client's new request by the cutoff rule, or in the next
    /// open block when the rule's file already holds `max_block_jobs`
    /// (docs/PROTOCOL.md "Block size").
    fn file_new(&mut self, now: LocalTime, entry: JobEntry) -> Result<BlockNumber, IntakeError> {
        let max = self.params.max_block_jobs;
        let [cur, next] = self.book.open_blocks();
        let bt = self.block_time(now);
        let wanted = undchain_jobfile::target_block(&self.params, bt);
        let first = wanted.clamp(cur, next);
        let room = |b: BlockNumber| {
            self.book
                .open_file(b)
                .is_some_and(|f| f.len() < u64::from(max))
        };
        let block = if room(first) {
            first
        } else if first == cur && room(next) {
            next
        } else {
            return Err(IntakeError::BlocksFull { max });
        };
        match self.book.file_at(entry, block) {
            Ok(undchain_jobfile::Filed::Filed { block, .. })
            | Ok(undchain_jobfile::Filed::Duplicate { block }) => Ok(block),
            // Both blocks are open, so this is not reached.
            Err(_) => Err(IntakeError::BlocksFull { max }),
        }
    }

    /// A client forwarded its request (step 3).
    pub(crate) fn handle_forwarded(&mut self, now: LocalTime, f: ForwardedRequest) {
        match self.open_inner(f.original.as_bytes()) {
            Some(env) => self.handle_request(now, env),
            None => self.event(NodeEvent::Refused {
                from: None,
                reason: "forwarded request does not verify".into(),
            }),
        }
    }

    /// Requests gossiped or fetched from validator `from`.
    pub(crate) fn handle_batch(&mut self, now: LocalTime, from: PublicKey, batch: RequestBatch) {
        let mut learned = false;
        for g in batch.requests.iter() {
            // Most gossip repeats a request already held (each is gossiped
            // by every validator that filed it): a repeat is recognised by
            // its id before its signature is checked, which is the intake's
            // dearest step. Skipping it is safe whatever its signature:
            // the request of that id is held, verified, already.
            let inner = self.decode_inner(g.original.as_bytes());
            if let Some(env) = &inner {
                if self.knows_request(&JobId::from_request_digest(env.digest())) {
                    continue;
                }
            }
            match inner.filter(|env| self.check.check(env).is_ok()) {
                Some(env) => learned |= self.learn_request(now, Arc::new(env), g.block),
                None => self.event(NodeEvent::Refused {
                    from: Some(from),
                    reason: "gossiped request does not verify".into(),
                }),
            }
        }
        if learned {
            self.resolve_pending(now);
        }
    }

    /// Files a request learned from another validator into `block` (or
    /// the oldest open block if `block` is closed); whether it was new.
    pub(crate) fn learn_request(
        &mut self,
        now: LocalTime,
        env: Arc<SignedEnvelope>,
        block: BlockNumber,
    ) -> bool {
        let id = JobId::from_request_digest(env.digest());
        if self.knows_request(&id) {
            return false;
        }
        let Ok(entry) = entry_of(&env, self.params.transaction_fee) else {
            return false;
        };
        let [cur, next] = self.book.open_blocks();
        let at = block.clamp(cur, next);
        let filed = match self.book.file_at(entry, at) {
            Ok(undchain_jobfile::Filed::Filed { block, .. }) => block,
            Ok(undchain_jobfile::Filed::Duplicate { block }) => block,
            Err(_) => {
                let bt = self.block_time(now);
                let entry = match entry_of(&env, self.params.transaction_fee) {
                    Ok(e) => e,
                    Err(_) => return false,
                };
                match self.book.file(entry, bt) {
                    undchain_jobfile::Filed::Filed { block, .. } => block,
                    undchain_jobfile::Filed::Duplicate { block } => block,
                }
            }
        };
        self.accepted(id, filed, env);
        true
    }

    /// Records a filed request: kept, and made durable in this batch.
    fn accepted(&mut self, job: JobId, block: BlockNumber, request: Arc<SignedEnvelope>) {
        let spend = spend_of(&request, self.params.transaction_fee);
        *self.open_by_client.entry(*request.sender()).or_insert(0) += spend;
        self.requests.insert(job, request.clone());
        self.outbox.persist(StoreOp::Accepted {
            job,
            block,
            request,
        });
    }

    /// Refuses a new request while `timing.intake_limit_jobs` are held
    /// (load shedding: a request not taken is not acknowledged). This
    /// bounds what one validator holds, not the jobs one block carries.
    /// Requests learned from other validators are still filed: they are
    /// acknowledged already, by the validator that took them.
    fn capacity_check(&self) -> Result<(), IntakeError> {
        let held = self.requests.len() as u64;
        let capacity = self.timing.intake_limit_jobs;
        if held >= capacity {
            return Err(IntakeError::AtCapacity { held, capacity });
        }
        Ok(())
    }

    /// Whether request `id` is held, committed or settled here.
    fn knows_request(&self, id: &JobId) -> bool {
        self.requests.contains_key(id)
            || self.committed_block_of(id).is_some()
            || self.ledger.is_settled(id)
    }

    /// Decodes an inner request envelope of this chain, without checking
    /// its signature.
    fn decode_inner(&self, bytes: &[u8]) -> Option<SignedEnvelope> {
        let env = SignedEnvelope::from_bytes(bytes, self.params.max_frame_bytes as usize).ok()?;
        if env.envelope().chain_id != self.params.chain_id {
            return None;
        }
        if !matches!(env.body(), Message::UtilityRequest(_)) {
            return None;
        }
        Some(env)
    }

    /// Decodes and checks an inner request envelope.
    pub(crate) fn open_inner(&self, bytes: &[u8]) -> Option<Arc<SignedEnvelope>> {
        let env = self.decode_inner(bytes)?;
        self.check.check(&env).ok()?;
        Some(Arc::new(env))
    }

    /// The entry for `env` if the ledger could commit it and its client's
    /// free balance covers it on top of its filed jobs (DESIGN.md "Money":
    /// refused at intake with a typed reason, never committed).
    fn affordable_entry(&self, env: &SignedEnvelope) -> Result<JobEntry, IntakeError> {
        let entry = entry_of(env, self.params.transaction_fee)?;
        let r = self
            .ledger
            .verify_request_with(env, super::AlreadyChecked)?;
        self.ledger.check_request(&r)?;
        let client = *env.sender();
        let balance = self.ledger.account(&client).balance;
        let open = self.open_by_client.get(&client).copied().unwrap_or(0);
        let this = spend_of(env, self.params.transaction_fee);
        if u128::from(balance.0) < open + this {
            return Err(IntakeError::InsufficientBalance {
                balance,
                this,
                open,
            });
        }
        Ok(entry)
    }

    /// Only an active validator files requests.
    fn active_check(&self) -> Result<(), IntakeError> {
        if self.is_active() {
            Ok(())
        } else {
            Err(IntakeError::NotActive)
        }
    }

    /// Sends the ack for `job` filed in `block` (after the batch's write).
    fn ack(&mut self, now: LocalTime, client: PublicKey, job: JobId, block: BlockNumber) {
        let active: Vec<ValidatorInfo> = self
            .set
            .seats()
            .iter()
            .map(|s| ValidatorInfo {
                id: s.id,
                class: ValidatorClass {
                    activity: Activity::Active,
                    trust: s.trust,
                },
                media: BoundedVec::default(),
            })
            .collect();
        let ack = RequestAck {
            job,
            block,
            period: self.params.period_of(block),
            active: BoundedVec::try_from(active).unwrap_or_default(),
        };
        self.send(now, &[client], Message::RequestAck(ack), true);
    }

    /// The block that committed `id`, if this validator knows it.
    pub(crate) fn committed_block_of(&self, id: &JobId) -> Option<BlockNumber> {
        if let Some(j) = self.ledger.job(id) {
            return Some(j.commit_block);
        }
        self.served
            .iter()
            .rev()
            .find(|s| s.file.contains(id))
            .map(|s| s.block.header.number)
    }
}
