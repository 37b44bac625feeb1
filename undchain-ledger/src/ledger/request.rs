//! Requests: what the client signs before a token of its leaves (DESIGN.md
//! "Money": no token leaves a client without its signature; escrow at
//! commit).
//!
//! A job is committed only with the client's signed `UtilityRequest`
//! envelope beside it: [`Ledger::verify_request`] checks the envelope's
//! signature once and makes a [`VerifiedRequest`] (the job id is the hash
//! of the envelope's digest, [`JobId::from_request_digest`]); the block
//! carries one per job of its file. At commit the request's budget
//! (`units x max_price_per_unit`) moves from the client's free balance into
//! its escrow and the chain's fee into the fee pool. [`Ledger::check_request`]
//! is the intake check (typed refusal, nothing committed) and
//! [`Ledger::unaffordable_jobs`] tells a proposer which jobs of a file the
//! block could not commit.

use undchain_consensus::certificate::{SignatureVerifier, StrictVerifier};
use undchain_jobfile::JobFile;
use undchain_types::{
    BlockTime, Hash32, JobEntry, JobId, Message, PublicKey, SignedEnvelope, TokenAmount,
    UtilityKind,
};

use super::keyed::Map;
use super::{BlockError, Ledger, RequestError};

/// A client's utility request whose envelope signature this ledger checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    pub(crate) job: JobId,
    pub(crate) client: PublicKey,
    pub(crate) kind: UtilityKind,
    pub(crate) budget: TokenAmount,
    pub(crate) sent_at: BlockTime,
    pub(crate) digest: Hash32,
}

impl VerifiedRequest {
    /// The job the request becomes.
    pub fn job(&self) -> JobId {
        self.job
    }

    /// The client who signed it and pays.
    pub fn client(&self) -> PublicKey {
        self.client
    }

    /// The utility asked for.
    pub fn kind(&self) -> UtilityKind {
        self.kind
    }

    /// What is escrowed at commit: `units x max_price_per_unit`.
    pub fn budget(&self) -> TokenAmount {
        self.budget
    }

    /// The envelope's `sent_at` (client wall-clock).
    pub fn sent_at(&self) -> BlockTime {
        self.sent_at
    }

    /// The envelope digest the client signed.
    pub fn digest(&self) -> Hash32 {
        self.digest
    }
}

/// What one block's requests have taken so far, per client.
pub(crate) type Spent = Map<PublicKey, u64>;

impl Ledger {
    /// Verifies the client's signed request envelope (strictly).
    pub fn verify_request(&self, env: &SignedEnvelope) -> Result<VerifiedRequest, RequestError> {
        self.verify_request_with(env, StrictVerifier)
    }

    /// [`Ledger::verify_request`] with the host's signature verifier (a host
    /// that already verified the envelope need not pay for ed25519 twice).
    pub fn verify_request_with(
        &self,
        env: &SignedEnvelope,
        mut verifier: impl SignatureVerifier,
    ) -> Result<VerifiedRequest, RequestError> {
        let Message::UtilityRequest(r) = env.body() else {
            return Err(RequestError::NotARequest {
                kind: env.body().kind(),
            });
        };
        let e = env.envelope();
        if e.chain_id != self.config.chain_id {
            return Err(RequestError::WrongChain {
                expected: self.config.chain_id,
                got: e.chain_id,
            });
        }
        if !verifier.verify(env.sender(), env.digest(), env.signature()) {
            return Err(RequestError::BadSignature {
                client: *env.sender(),
            });
        }
        let budget =
            r.units
                .checked_mul(r.max_price_per_unit.0)
                .ok_or(RequestError::BudgetOverflow {
                    units: r.units,
                    price: r.max_price_per_unit,
                })?;
        Ok(VerifiedRequest {
            job: JobId::from_request_digest(env.digest()),
            client: *env.sender(),
            kind: r.kind,
            budget: TokenAmount(budget),
            sent_at: e.sent_at,
            digest: *env.digest(),
        })
    }

    /// Intake check: whether `r` could be committed in the next block
    /// against the committed state (not committed or settled before, within
    /// the request window, budget and fee covered by the free balance).
    pub fn check_request(&self, r: &VerifiedRequest) -> Result<(), RequestError> {
        let now = self.config.block_start(self.next_block);
        self.request_fits(r, now, &Spent::default()).map(|_| ())
    }

    /// The jobs of `jobs` (in file order) that a block numbered
    /// [`Ledger::next_block`] could not commit, with why: no signed request
    /// among `requests`, an entry that does not match it, or a request
    /// refused as [`Ledger::check_request`] would (the free balance counted
    /// after the jobs before it). A proposer leaves them out.
    pub fn unaffordable_jobs(
        &self,
        jobs: &JobFile,
        requests: &[VerifiedRequest],
    ) -> Vec<(JobId, BlockError)> {
        let by_job: Map<JobId, &VerifiedRequest> = requests.iter().map(|r| (r.job, r)).collect();
        let now = self.config.block_start(self.next_block);
        let mut spent = Spent::default();
        let mut out = Vec::new();
        for e in jobs.entries() {
            let Some(r) = by_job.get(&e.id) else {
                out.push((e.id, BlockError::MissingRequest { job: e.id }));
                continue;
            };
            let fits = self.entry_matches(e, r).and_then(|_| {
                self.request_fits(r, now, &spent)
                    .map_err(|error| BlockError::Request { job: e.id, error })
            });
            match fits {
                Ok(total) => {
                    spent.insert(r.client, total);
                }
                Err(err) => out.push((e.id, err)),
            }
        }
        out
    }

    /// Whether job entry `e` is the one `r` asks for, at this chain's fee.
    pub(crate) fn entry_matches(
        &self,
        e: &JobEntry,
        r: &VerifiedRequest,
    ) -> Result<(), BlockError> {
        let job = e.id;
        if e.id != r.job {
            return Err(BlockError::RequestMismatch { job, field: "id" });
        }
        if e.client_pool.first() != Some(&r.client) {
            return Err(BlockError::RequestMismatch {
                job,
                field: "requester (first client)",
            });
        }
        if e.kind != r.kind {
            return Err(BlockError::RequestMismatch { job, field: "kind" });
        }
        if e.fee != self.config.transaction_fee {
            return Err(BlockError::WrongFee {
                job,
                fee: e.fee,
                expected: self.config.transaction_fee,
            });
        }
        Ok(())
    }

    /// The state checks of committing `r` at block time `now` after the
    /// block's earlier requests (`spent`); the client's new total.
    pub(crate) fn request_fits(
        &self,
        r: &VerifiedRequest,
        now: BlockTime,
        spent: &Spent,
    ) -> Result<u64, RequestError> {
        if let Some(j) = self.jobs.get(&r.job) {
            return Err(RequestError::AlreadyCommitted {
                job: r.job,
                block: j.commit_block,
            });
        }
        if self.settled.contains_key(&r.job) {
            return Err(RequestError::AlreadySettled { job: r.job });
        }
        let window_us = self.config.request_window_us;
        if r.sent_at.0.abs_diff(now.0) > window_us {
            return Err(RequestError::OutsideWindow {
                sent_at: r.sent_at,
                block_time: now,
                window_us,
            });
        }
        let before = spent.get(&r.client).copied().unwrap_or(0);
        let available = self.account(&r.client).balance;
        let needed = r
            .budget
            .0
            .checked_add(self.config.transaction_fee.0)
            .and_then(|n| n.checked_add(before));
        match needed {
            Some(n) if n <= available.0 => Ok(n),
            _ => Err(RequestError::InsufficientFreeBalance {
                client: r.client,
                needed: TokenAmount(needed.unwrap_or(u64::MAX)),
                available,
            }),
        }
    }
}
