//! Resync (validator story item 2, "clocks get shifted up or down"): a
//! quorum-approved step of the agreed clock, run by
//! [`undchain_timesync::Resync`]. An operator asks for a step
//! ([`crate::Command::ProposeResync`]); every active validator approves it
//! only when its own reference agrees (its wall clock minus the agreed
//! time, within `timing.resync_tolerance_us`); the step is applied to the
//! block clock and the time machine only once a quorum of distinct active
//! validators signed approvals, and is clamped inside the current payout
//! period. Without a quorum nothing moves.

use undchain_timesync::{ResyncError, ResyncEvent, ResyncMsg, ResyncOutput};
use undchain_types::{LocalTime, Message, PublicKey};

use super::Validator;
use crate::output::NodeEvent;
use crate::store::StoreOp;

impl Validator {
    /// This validator's own idea of the step due: its local (wall) clock
    /// minus the agreed time. `None` before the agreed time is online.
    pub(crate) fn resync_reference(&mut self, now: LocalTime) -> Option<i64> {
        let agreed = self.time.clock.as_mut()?.now(now);
        Some(
            now.micros()
                .saturating_sub(agreed.0.min(i64::MAX as u64) as i64),
        )
    }

    /// The operator asks to step the agreed clock by `step_us`.
    pub(crate) fn propose_resync(
        &mut self,
        now: LocalTime,
        step_us: i64,
    ) -> Result<(), ResyncError> {
        let agreed = self.block_time(now);
        let outs = self.resync.propose(agreed, step_us)?;
        self.resync_outputs(now, outs);
        Ok(())
    }

    /// A resync proposal or approval from active validator `from`.
    pub(crate) fn handle_resync(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        msg: Message,
    ) -> Result<(), ResyncError> {
        let agreed = self.block_time(now);
        let outs = match msg {
            Message::TimeResyncProposal(p) => {
                let reference = self.resync_reference(now);
                self.resync.handle_proposal(agreed, &from, p, reference)?
            }
            Message::TimeResyncApproval(a) => self.resync.handle_approval(agreed, a)?,
            _ => Vec::new(),
        };
        self.resync_outputs(now, outs);
        Ok(())
    }

    fn resync_outputs(&mut self, now: LocalTime, outs: Vec<ResyncOutput>) {
        for out in outs {
            match out {
                ResyncOutput::Broadcast { msg } => {
                    let body = match *msg {
                        ResyncMsg::Proposal(p) => Message::TimeResyncProposal(p),
                        ResyncMsg::Approval(a) => Message::TimeResyncApproval(a),
                    };
                    // An approval is a promise: only after the batch's write.
                    self.broadcast(now, body, true);
                }
                ResyncOutput::Apply(a) => {
                    if let Some(c) = self.time.clock.as_mut() {
                        c.step(now, a.step_us);
                    }
                    self.time.sync.apply_step(a.step_us);
                    self.outbox
                        .persist(StoreOp::TimeCorrection(self.time.sync.correction()));
                    self.event(NodeEvent::TimeStepped {
                        step_us: a.step_us,
                        requested_us: a.requested_us,
                        approvers: a.approvers.len(),
                    });
                }
                ResyncOutput::Event(ResyncEvent::Declined {
                    proposal,
                    reference_us,
                }) => self.event(NodeEvent::ResyncDeclined {
                    proposal,
                    reference_us,
                }),
            }
        }
    }
}
