//! Resync: a quorum-approved step of the agreed clock (design notes,
//! validator story item 2, "clocks get shifted up or down";
//! docs/PROTOCOL.md "Time consensus", *Resync*).
//!
//! A validator proposes a step (bounded by the chain's
//! `max_resync_step_us`) for the current payout period. Each active
//! validator approves it only if its own reference (e.g. its disciplined
//! wall clock minus the agreed time) says a step of about that size is due.
//! The step applies only once a quorum `q = floor(2n/3) + 1` of distinct
//! active validators signed approvals (DESIGN.md "Quorum"), and the stepped
//! time is clamped inside the payout period the proposal names: a resync
//! can never move the time out of the current payout period.

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::msg::{TimeResyncApproval, TimeResyncProposal};
use undchain_types::{BlockTime, ChainParams, Hash32, PayoutPeriod, PublicKey, SigningKey, quorum};

use crate::clock::{period_bounds, position_of};

/// Most proposals pending at once.
pub const MAX_PENDING: usize = 32;

/// A resync message to broadcast to the active validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResyncMsg {
    /// A proposal to step the agreed clock, from its proposer.
    Proposal(TimeResyncProposal),
    /// A validator's signed approval of a proposal.
    Approval(TimeResyncApproval),
}

/// A step that reached its quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResyncApplied {
    /// The digest of the proposal that reached its quorum.
    pub proposal: Hash32,
    /// The step the proposal asked for, microseconds.
    pub requested_us: i64,
    /// The step to apply now, after clamping into the payout period: call
    /// [`crate::BlockClock::step`] and [`crate::TimeSync::apply_step`].
    pub step_us: i64,
    /// The active validators whose approvals were counted.
    pub approvers: BTreeSet<PublicKey>,
}

/// What the resync machine asks its host to do, or tells it
/// (docs/ARCHITECTURE.md "The machine vocabulary").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResyncOutput {
    /// Broadcast `msg` to the active validators.
    Broadcast {
        /// The proposal or approval (boxed: keys and signatures are large).
        msg: Box<ResyncMsg>,
    },
    /// A proposal reached its quorum: apply this step to the block clock
    /// and the time machine.
    Apply(ResyncApplied),
    /// Something an operator should see; nothing for the host to carry out.
    Event(ResyncEvent),
}

/// What the resync machine reports to an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncEvent {
    /// This validator does not approve the proposal: its own reference
    /// says another step (or none) is due.
    Declined {
        /// The digest of the proposal declined.
        proposal: Hash32,
        /// This validator's own reference step, if it had one.
        reference_us: Option<i64>,
    },
}

/// Why a resync message was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResyncError {
    /// The proposal is for another chain.
    #[error("proposal for another chain")]
    WrongChain,
    /// The proposer or approver is not an active validator.
    #[error("not an active validator")]
    NotActive,
    /// The envelope's sender is not the proposal's proposer.
    #[error("sender is not the proposer")]
    NotProposer,
    /// The step exceeds the chain's `max_resync_step_us`.
    #[error("step {step_us} us exceeds the maximum {max_us} us")]
    StepTooLarge {
        /// The step the proposal asked for, microseconds.
        step_us: i64,
        /// The chain's `max_resync_step_us`.
        max_us: u64,
    },
    /// The proposal steps the clock by nothing.
    #[error("zero step")]
    ZeroStep,
    /// The proposal names another payout period than the current one.
    #[error("proposal for {proposed}, current period is {current}")]
    WrongPeriod {
        /// The payout period the proposal names.
        proposed: PayoutPeriod,
        /// The payout period agreed time is in now.
        current: PayoutPeriod,
    },
    /// The approval's signature does not verify.
    #[error("bad approval signature")]
    BadSignature,
    /// Too many proposals pending.
    #[error("too many pending proposals ({MAX_PENDING})")]
    TooManyPending,
}

#[derive(Debug, Clone)]
struct Pending {
    proposal: TimeResyncProposal,
    approvals: BTreeSet<PublicKey>,
    applied: bool,
}

/// The resync machine of one active validator.
#[derive(Debug, Clone)]
pub struct Resync {
    params: ChainParams,
    key: SigningKey,
    active: BTreeSet<PublicKey>,
    tolerance_us: u64,
    next_id: u64,
    pending: BTreeMap<Hash32, Pending>,
    /// Approvals that arrived before their proposal, one per approver.
    early: BTreeMap<PublicKey, TimeResyncApproval>,
}

impl Resync {
    /// The machine of the validator holding `key` among `active`. It
    /// approves a proposal whose step is within `tolerance_us` of its own
    /// reference step.
    pub fn new(
        params: &ChainParams,
        key: SigningKey,
        active: BTreeSet<PublicKey>,
        tolerance_us: u64,
    ) -> Self {
        Resync {
            params: params.clone(),
            key,
            active,
            tolerance_us,
            next_id: 0,
            pending: BTreeMap::new(),
            early: BTreeMap::new(),
        }
    }

    /// `q` for the current active set.
    pub fn quorum(&self) -> usize {
        quorum(self.active.len())
    }

    /// The active set changed (rotation): pending approvals of validators
    /// that left no longer count.
    pub fn set_active(&mut self, active: BTreeSet<PublicKey>) {
        for p in self.pending.values_mut() {
            p.approvals.retain(|a| active.contains(a));
        }
        self.early.retain(|a, _| active.contains(a));
        self.active = active;
    }

    fn current_period(&self, now: BlockTime) -> PayoutPeriod {
        position_of(&self.params, now).period
    }

    /// Drops the proposals of past payout periods: they can never apply.
    fn prune(&mut self, now: BlockTime) {
        let current = self.current_period(now);
        self.pending.retain(|_, p| p.proposal.period >= current);
    }

    fn check(&self, now: BlockTime, p: &TimeResyncProposal) -> Result<(), ResyncError> {
        if p.chain_id != self.params.chain_id {
            return Err(ResyncError::WrongChain);
        }
        if !self.active.contains(&p.proposer) {
            return Err(ResyncError::NotActive);
        }
        if p.step_us == 0 {
            return Err(ResyncError::ZeroStep);
        }
        if p.step_us.unsigned_abs() > self.params.max_resync_step_us {
            return Err(ResyncError::StepTooLarge {
                step_us: p.step_us,
                max_us: self.params.max_resync_step_us,
            });
        }
        let current = self.current_period(now);
        if p.period != current {
            return Err(ResyncError::WrongPeriod {
                proposed: p.period,
                current,
            });
        }
        Ok(())
    }

    /// Whether the proposal with `digest` can be stored at `now`: it is
    /// pending already, or fewer than [`MAX_PENDING`] proposals would be
    /// pending once past periods are dropped. Checked before anything
    /// changes, so that a refusal changes nothing.
    fn check_room(&self, now: BlockTime, digest: &Hash32) -> Result<(), ResyncError> {
        let current = self.current_period(now);
        let live = self
            .pending
            .values()
            .filter(|p| p.proposal.period >= current)
            .count();
        if self.pending.contains_key(digest) || live < MAX_PENDING {
            Ok(())
        } else {
            Err(ResyncError::TooManyPending)
        }
    }

    /// Proposes stepping the agreed clock by `step_us` at agreed time `now`;
    /// the proposer approves its own proposal.
    pub fn propose(
        &mut self,
        now: BlockTime,
        step_us: i64,
    ) -> Result<Vec<ResyncOutput>, ResyncError> {
        let proposal = TimeResyncProposal {
            chain_id: self.params.chain_id,
            id: self.next_id,
            proposer: self.key.public(),
            period: self.current_period(now),
            step_us,
        };
        self.check(now, &proposal)?;
        self.check_room(now, &proposal.digest())?;
        self.prune(now);
        self.next_id += 1;
        let mut out = vec![broadcast(ResyncMsg::Proposal(proposal.clone()))];
        self.insert(proposal.clone());
        let approval = proposal.approve(&self.key);
        out.push(broadcast(ResyncMsg::Approval(approval.clone())));
        out.extend(self.count(now, approval));
        Ok(out)
    }

    /// Stores a checked proposal of the current period (room checked by
    /// [`Self::check_room`]).
    fn insert(&mut self, proposal: TimeResyncProposal) -> Hash32 {
        let digest = proposal.digest();
        self.pending.entry(digest).or_insert(Pending {
            proposal,
            approvals: BTreeSet::new(),
            applied: false,
        });
        digest
    }

    /// A proposal arrived from `from` at agreed time `now`. `reference_us`
    /// is this validator's own idea of the step due (`None`: it has no
    /// reference and does not approve).
    pub fn handle_proposal(
        &mut self,
        now: BlockTime,
        from: &PublicKey,
        proposal: TimeResyncProposal,
        reference_us: Option<i64>,
    ) -> Result<Vec<ResyncOutput>, ResyncError> {
        if *from != proposal.proposer {
            return Err(ResyncError::NotProposer);
        }
        self.check(now, &proposal)?;
        self.check_room(now, &proposal.digest())?;
        self.prune(now);
        let fresh = !self.pending.contains_key(&proposal.digest());
        let digest = self.insert(proposal.clone());
        let mut out = Vec::new();
        if fresh {
            let agrees = reference_us.is_some_and(|r| {
                (i128::from(r) - i128::from(proposal.step_us)).unsigned_abs()
                    <= u128::from(self.tolerance_us)
            });
            if agrees {
                let approval = proposal.approve(&self.key);
                out.push(broadcast(ResyncMsg::Approval(approval.clone())));
                out.extend(self.count(now, approval));
            } else {
                out.push(ResyncOutput::Event(ResyncEvent::Declined {
                    proposal: digest,
                    reference_us,
                }));
            }
            let early: Vec<TimeResyncApproval> = self
                .early
                .values()
                .filter(|a| a.proposal == digest)
                .cloned()
                .collect();
            for a in early {
                self.early.remove(&a.approver);
                out.extend(self.count(now, a));
            }
        }
        Ok(out)
    }

    /// An approval arrived at agreed time `now`. Counted once per active
    /// approver; an approval for an unknown proposal waits (one per
    /// approver) for it.
    pub fn handle_approval(
        &mut self,
        now: BlockTime,
        approval: TimeResyncApproval,
    ) -> Result<Vec<ResyncOutput>, ResyncError> {
        if !self.active.contains(&approval.approver) {
            return Err(ResyncError::NotActive);
        }
        approval.verify().map_err(|_| ResyncError::BadSignature)?;
        let current = self.current_period(now);
        if let Some(p) = self.pending.get(&approval.proposal)
            && p.proposal.period > current
        {
            // Agreed time is before the proposal's period: it cannot apply.
            return Err(ResyncError::WrongPeriod {
                proposed: p.proposal.period,
                current,
            });
        }
        self.prune(now);
        if !self.pending.contains_key(&approval.proposal) {
            self.early.insert(approval.approver, approval);
            return Ok(Vec::new());
        }
        Ok(self.count(now, approval))
    }

    /// Counts a verified approval of a pending proposal of the current
    /// period (the callers check both); applies at quorum, once.
    fn count(&mut self, now: BlockTime, approval: TimeResyncApproval) -> Vec<ResyncOutput> {
        let q = self.quorum();
        let Some(p) = self.pending.get_mut(&approval.proposal) else {
            return Vec::new();
        };
        p.approvals.insert(approval.approver);
        if p.applied || p.approvals.len() < q {
            return Vec::new();
        }
        p.applied = true;
        let step = clamp_step(&self.params, now, p.proposal.period, p.proposal.step_us);
        vec![ResyncOutput::Apply(ResyncApplied {
            proposal: approval.proposal,
            requested_us: p.proposal.step_us,
            step_us: step,
            approvers: p.approvals.clone(),
        })]
    }
}

/// The step that moves agreed time `now` by at most `step_us` while
/// staying inside payout period `period` (which must contain `now`).
pub fn clamp_step(params: &ChainParams, now: BlockTime, period: PayoutPeriod, step_us: i64) -> i64 {
    let (start, end) = period_bounds(params, period);
    let now = i128::from(now.0);
    let lo = i128::from(start.0) - now;
    let hi = i128::from(end.0) - 1 - now;
    let step = i128::from(step_us).clamp(lo.min(0), hi.max(0));
    crate::rounds::clamp_i64(step)
}

fn broadcast(msg: ResyncMsg) -> ResyncOutput {
    ResyncOutput::Broadcast { msg: Box::new(msg) }
}
