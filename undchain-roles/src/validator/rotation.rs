//! Rotation and replacement (validator story items 7-8; DESIGN.md
//! rotation rules): after every applied block the [`Roster`] reads its
//! header (who signed the parent, so who missed votes) and names the
//! active set of the next height: at a payout-period boundary unknown
//! validators rotate (passive unknown ones first), known ones keep their
//! seats up to the known share, and known validators fill the unknown
//! seats nobody unknown can take; between boundaries a validator that
//! missed too many blocks in a row, or fell under the score floor, is
//! replaced by a passive one. A validator out of the set keeps following
//! the chain as a passive validator (block requests to the active ones)
//! and takes its seat when the roster names it.
//!
//! [`Roster`]: undchain_consensus::Roster

use undchain_consensus::RosterUpdate;
use undchain_types::msg::BlockRequest;
use undchain_types::{BlockHeader, Hash32, LocalTime, Message};

use super::Validator;
use crate::output::NodeEvent;

impl Validator {
    /// Moves the roster past applied block `header` (hash `hash`) and
    /// switches to the next height's set. A roster that cannot name a set
    /// halts this validator (never expected: a running chain keeps its set
    /// rather than stop).
    pub(crate) fn rotate_after(
        &mut self,
        header: &BlockHeader,
        hash: Hash32,
        registered: &[undchain_consensus::RosterEvent],
    ) {
        let mut events = self.evidence.commit(header);
        events.extend_from_slice(registered);
        let update = match self.roster.apply_block(header, hash, &events) {
            Ok(u) => u,
            Err(e) => {
                self.halted = true;
                self.event(NodeEvent::Refused {
                    from: None,
                    reason: format!("roster after block {}: {e}", header.number),
                });
                return;
            }
        };
        for (offender, score) in super::evidence::scored(&events, &self.roster) {
            self.event(NodeEvent::EvidenceCommitted {
                number: header.number,
                offender,
                score,
            });
        }
        let next = self.roster.validator_set().clone();
        self.evidence.note_set(header.number.next(), &next);
        let changed = next != self.set;
        self.prev_set = Some(std::mem::replace(&mut self.set, next));
        if changed {
            self.resync
                .set_active(self.set.seats().iter().map(|s| s.id).collect());
            let active: Vec<_> = self.set.seats().iter().map(|s| s.id).collect();
            self.time.set_members(active);
            self.set_changed(update);
        }
    }

    fn set_changed(&mut self, update: RosterUpdate) {
        let replaced = update
            .replaced
            .iter()
            .map(|r| (r.out, r.taken_by, r.reason))
            .collect();
        self.event(NodeEvent::SetChanged {
            height: update.height,
            rotated: update.rotated,
            active: self.set.seats().iter().map(|s| s.id).collect(),
            fillers: self.set.fillers(),
            replaced,
            me_active: self.is_active(),
        });
    }

    /// A passive validator asks one active validator (in turn) for the
    /// blocks from its next height; the driver checks each against its
    /// certificate before anything is kept.
    pub(crate) fn follow_chain(&mut self, now: LocalTime) {
        if self.is_active() || now < self.next_follow_at {
            return;
        }
        self.next_follow_at = now.plus(self.params.block_interval_us / 2);
        let seats = self.set.seats();
        if seats.is_empty() {
            return;
        }
        self.follow_turn = self.follow_turn.wrapping_add(1);
        let to = seats[self.follow_turn % seats.len()].id;
        let request = BlockRequest {
            from: self.height,
            max: undchain_types::msg::MAX_BLOCKS_PER_RESPONSE as u16,
        };
        self.send(now, &[to], Message::BlockRequest(request), false);
    }

    /// The event saying known validators fill unknown seats at bootstrap
    /// (design notes, validator story item 1: "and say so").
    pub(crate) fn announce_genesis_set(&mut self) {
        let fillers = self.set.fillers();
        if fillers > 0 && self.height.0 == 0 {
            self.event(NodeEvent::KnownFillUnknownSeats {
                fillers,
                active: self.set.len(),
            });
        }
    }
}
