//! Time consensus messages (design notes, validator story item 2; DESIGN.md
//! "Time consensus"). Probes are nonce challenge-responses and exempt from
//! the replay window.

use serde::{Deserialize, Serialize};

use crate::crypto::{PublicKey, Signature, SigningKey};
use crate::hash::{Hash32, HashContext};
use crate::ids::{ChainId, PayoutPeriod};

/// Validator story 2: the first half of an NTP-style exchange. `t1` is the
/// prober's local clock when sending, in microseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct TimeProbe {
    /// Fresh nonce, echoed in the reply.
    pub nonce: u64,
    /// Prober's send time (local clock, us).
    pub t1: i64,
}

/// Validator story 2: the reply. With the prober's receive time `t4` the
/// four timestamps give offset ((t2-t1)+(t3-t4))/2 and delay
/// (t4-t1)-(t3-t2). The replier's clock reading travels here, not in a later
/// message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct TimeReply {
    /// The probe's nonce.
    pub nonce: u64,
    /// The probe's send time, echoed.
    pub t1: i64,
    /// Replier's receive time (its local clock, us).
    pub t2: i64,
    /// Replier's send time (its local clock, us).
    pub t3: i64,
    /// Replier's clock reading: its current correction to its local clock
    /// (its clock = local + reading), in us. With the four timestamps the
    /// prober estimates the replier's clock relative to its own local clock
    /// as `offset + reading`.
    pub reading: i64,
    /// Whether that clock is the running network's agreed block time or a
    /// bootstrap round's tentative value. A joining validator only inherits
    /// [`TimePhase::Synced`] readings.
    pub phase: TimePhase,
}

/// Where a replier's clock stands (validator story 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum TimePhase {
    /// The network is being brought online: the reading is a bootstrap
    /// round's tentative clock (it starts at the replier's local clock).
    Bootstrap,
    /// The reading is the running network's agreed block time.
    Synced,
}

/// Validator story 2 ("clocks get shifted"): a proposal to step the agreed
/// clock. Applies only with a quorum's signed approvals and never outside the
/// current payout period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct TimeResyncProposal {
    /// The chain whose clock the proposal steps.
    pub chain_id: ChainId,
    /// Proposal counter (per proposer).
    pub id: u64,
    /// The validator proposing the step.
    pub proposer: PublicKey,
    /// The payout period the result must stay within.
    pub period: PayoutPeriod,
    /// Step to apply to the agreed clock, in us (bounded by the chain's
    /// maximum resync step).
    pub step_us: i64,
}

impl TimeResyncProposal {
    /// The digest approvals sign.
    pub fn digest(&self) -> Hash32 {
        crate::hash::hash(HashContext::TimeResync, &crate::wire::encode_bare(self))
    }

    /// Approves as `approver`.
    pub fn approve(&self, approver: &SigningKey) -> TimeResyncApproval {
        TimeResyncApproval {
            proposal: self.digest(),
            approver: approver.public(),
            signature: approver.sign_digest(&self.digest()),
        }
    }
}

/// A validator's signed approval of a [`TimeResyncProposal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct TimeResyncApproval {
    /// Digest of the proposal approved.
    pub proposal: Hash32,
    /// The approving validator.
    pub approver: PublicKey,
    /// Its signature over the proposal digest.
    pub signature: Signature,
}

impl TimeResyncApproval {
    /// Checks the approver's signature.
    pub fn verify(&self) -> Result<(), crate::crypto::CryptoError> {
        self.approver.verify_digest(&self.proposal, &self.signature)
    }
}
