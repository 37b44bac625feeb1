//! Capacity tests (validator story item 3; DESIGN.md "Capacity test"): a
//! passive validator runs a burst of simulated requests and payouts
//! against a candidate and checks what it stored.
//!
//! The tester sends a [`CapacityTest`] (counts and a seed); the candidate
//! generates the burst from the seed, files every simulated job into a
//! scratch job file and completes the simulated payouts in a scratch payout
//! file, the way it files and settles real ones, and answers with what it
//! stored ([`CapacityTestResult`]: count, job root, payout root). The
//! tester derives the same burst and compares: a candidate that drops jobs
//! (or payouts), answers wrongly or not before the deadline fails, and the
//! tester says so ([`NodeEvent::CapacityTestFailed`]). Nothing of the
//! burst touches the real job book or ledger.

use undchain_jobfile::{JobFile, PayoutFile};
use undchain_types::job::JobState;
use undchain_types::msg::{CapacityTest, CapacityTestResult};
use undchain_types::{
    BlockNumber, BlockTime, BoundedVec, HashContext, JobEntry, JobId, LocalTime, Message,
    PayoutPeriod, PublicKey, TokenAmount, UtilityKind, hash_parts,
};

use super::Validator;
use crate::output::NodeEvent;

/// Most simulated requests a candidate runs for one test (its cost is
/// bounded whatever a tester asks).
pub const MAX_TEST_REQUESTS: u32 = 4_096;
/// Most capacity tests one tester has outstanding.
pub const MAX_OUTSTANDING: usize = 16;

/// Why a capacity test could not be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapacityError {
    /// More simulated requests than [`MAX_TEST_REQUESTS`].
    #[error("capacity test of {0} requests: at most {MAX_TEST_REQUESTS}")]
    TooLarge(u32),
    /// More payouts than requests.
    #[error("capacity test with {payouts} payouts for {requests} requests")]
    PayoutsExceedRequests {
        /// Payouts asked for.
        payouts: u32,
        /// Requests asked for.
        requests: u32,
    },
    /// The scratch files refused the burst (cannot happen with distinct
    /// generated ids; kept as data rather than a panic).
    #[error("capacity test burst: {0}")]
    Files(String),
}

/// How a capacity test failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapacityFailure {
    /// The candidate's answer differs from the burst's true result.
    WrongResult {
        /// Requests the burst held.
        expected_stored: u32,
        /// Requests the candidate said it stored.
        stored: u32,
        /// Whether its job root differs.
        job_root_differs: bool,
        /// Whether its payout root differs.
        payout_root_differs: bool,
    },
    /// No answer before the deadline.
    NoAnswer,
}

/// One outstanding test.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    candidate: PublicKey,
    expected: CapacityTestResult,
    deadline: LocalTime,
}

impl Probe {
    /// When the test fails for want of an answer.
    pub(crate) fn deadline(&self) -> LocalTime {
        self.deadline
    }
}

/// The result a faithful candidate gives for `test` sent by `tester`: the
/// burst filed and its payouts completed, as real jobs are.
pub fn run_capacity_test(
    tester: &PublicKey,
    test: &CapacityTest,
    blocks_per_period: u64,
) -> Result<CapacityTestResult, CapacityError> {
    if test.requests > MAX_TEST_REQUESTS {
        return Err(CapacityError::TooLarge(test.requests));
    }
    if test.payouts > test.requests {
        return Err(CapacityError::PayoutsExceedRequests {
            payouts: test.payouts,
            requests: test.requests,
        });
    }
    let entries: Vec<JobEntry> = (0..test.requests)
        .map(|i| simulated_entry(tester, test, i))
        .collect();
    let ids: Vec<JobId> = entries.iter().map(|e| e.id).collect();
    let file = JobFile::from_entries(entries).map_err(|e| CapacityError::Files(e.to_string()))?;
    let mut payouts = PayoutFile::new(PayoutPeriod(0), blocks_per_period.max(1));
    payouts
        .commit_block(BlockNumber(0), &file)
        .map_err(|e| CapacityError::Files(e.to_string()))?;
    for id in ids.iter().take(test.payouts as usize) {
        payouts
            .mark_complete(id, BlockNumber(0))
            .map_err(|e| CapacityError::Files(e.to_string()))?;
    }
    Ok(CapacityTestResult {
        id: test.id,
        stored_requests: file.len() as u32,
        job_root: file.merkle_root(),
        payout_root: payouts.root(),
        peak_connections: 0,
    })
}

/// Simulated job `i` of `test`.
fn simulated_entry(tester: &PublicKey, test: &CapacityTest, i: u32) -> JobEntry {
    let digest = hash_parts(
        HashContext::CapacityTest,
        &[&test.seed, &test.id.to_le_bytes(), &i.to_le_bytes()],
    );
    JobEntry {
        id: JobId::from_request_digest(&digest),
        initiated_at: BlockTime(u64::from(i)),
        kind: UtilityKind::Storage,
        client_pool: BoundedVec::try_from(vec![*tester]).unwrap_or_default(),
        partner_pool: BoundedVec::default(),
        fee: TokenAmount(1),
        state: JobState::Requested,
    }
}

impl Validator {
    /// A passive validator tests the next candidate in turn (every other
    /// registered validator) every `capacity_every_us`; overdue tests fail.
    pub(crate) fn capacity_timeout(&mut self, now: LocalTime) {
        let overdue: Vec<u64> = self
            .probes
            .iter()
            .filter(|(_, p)| now >= p.deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            if let Some(p) = self.probes.remove(&id) {
                self.event(NodeEvent::CapacityTestFailed {
                    candidate: p.candidate,
                    failure: CapacityFailure::NoAnswer,
                });
            }
        }
        // A joining validator tests nobody until it is registered (the
        // candidates would refuse it as a stranger).
        if self.is_active() || !self.registered() || now < self.next_capacity_at {
            return;
        }
        self.next_capacity_at = now.plus(self.timing.capacity_every_us);
        let candidates: Vec<PublicKey> = self
            .set
            .seats()
            .iter()
            .map(|s| s.id)
            .chain(self.roster.passive())
            .filter(|k| *k != self.me)
            .collect();
        if candidates.is_empty() || self.probes.len() >= MAX_OUTSTANDING {
            return;
        }
        self.capacity_turn = self.capacity_turn.wrapping_add(1);
        let candidate = candidates[self.capacity_turn % candidates.len()];
        self.start_capacity_test(now, candidate);
    }

    /// Sends a capacity test to `candidate` and remembers what a faithful
    /// answer holds.
    pub(crate) fn start_capacity_test(&mut self, now: LocalTime, candidate: PublicKey) {
        let mut seed = [0u8; 32];
        for chunk in seed.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        let test = CapacityTest {
            id: self.rng.next_u64(),
            requests: self.timing.capacity_requests.min(MAX_TEST_REQUESTS),
            payouts: self.timing.capacity_requests.min(MAX_TEST_REQUESTS) / 4,
            seed,
        };
        let Ok(expected) = run_capacity_test(&self.me, &test, self.params.blocks_per_period())
        else {
            return;
        };
        self.probes.insert(
            test.id,
            Probe {
                candidate,
                expected,
                deadline: now.plus(self.timing.capacity_deadline_us),
            },
        );
        self.send(now, &[candidate], Message::CapacityTest(test), false);
    }

    /// A tester's capacity test: run and answered (at most one per tester
    /// per block interval, so a tester cannot make us spin).
    pub(crate) fn handle_capacity_test(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        t: CapacityTest,
    ) {
        if let Some(last) = self.capacity_answered.get(&from) {
            if now < last.plus(self.params.block_interval_us) {
                return;
            }
        }
        match run_capacity_test(&from, &t, self.params.blocks_per_period()) {
            Ok(result) => {
                self.capacity_answered.insert(from, now);
                self.send(now, &[from], Message::CapacityTestResult(result), false);
            }
            Err(e) => self.event(NodeEvent::Refused {
                from: Some(from),
                reason: e.to_string(),
            }),
        }
    }

    /// A candidate's answer: compared with the burst's true result.
    pub(crate) fn handle_capacity_result(&mut self, from: PublicKey, r: CapacityTestResult) {
        let Some(p) = self.probes.get(&r.id) else {
            return;
        };
        if p.candidate != from {
            return;
        }
        let Some(p) = self.probes.remove(&r.id) else {
            return;
        };
        let e = &p.expected;
        if r.stored_requests == e.stored_requests
            && r.job_root == e.job_root
            && r.payout_root == e.payout_root
        {
            self.event(NodeEvent::CapacityTestPassed { candidate: from });
        } else {
            self.event(NodeEvent::CapacityTestFailed {
                candidate: from,
                failure: CapacityFailure::WrongResult {
                    expected_stored: e.stored_requests,
                    stored: r.stored_requests,
                    job_root_differs: r.job_root != e.job_root,
                    payout_root_differs: r.payout_root != e.payout_root,
                },
            });
        }
    }
}
