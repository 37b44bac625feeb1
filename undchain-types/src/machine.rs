//! The machine vocabulary: how every pure state machine of UndChain talks to
//! its host (docs/ARCHITECTURE.md "The machine vocabulary").
//!
//! * **Time** is an input: every call that depends on it takes
//!   `now: LocalTime` ([`crate::LocalTime`], the host's monotonic clock);
//!   agreed time is [`crate::BlockTime`].
//! * **Inputs** are `handle_*(now, ..)` methods: `handle_message`,
//!   `handle_timeout`, `handle_validity`, ...
//! * **Timers**: a machine says when it next wants to be woken with
//!   `poll_timeout() -> Option<LocalTime>` and is woken with
//!   `handle_timeout(now)`. Calling `handle_timeout` early, late or twice is
//!   harmless: the machine acts on what is due at `now` and nothing else.
//! * **Outputs** are plain enums whose variants are named alike across
//!   crates: `Send { to, msg }` (one peer), `Broadcast { msg }` (every
//!   peer of the concern), `Event(..)` (what an operator or API sees),
//!   plus a machine's own requests to its host (`GetValue`, ...).
//! * **Refusals are data**: a `handle_*` that refuses its input returns
//!   `Err(typed reason)` and has changed nothing. A machine that has
//!   something to report about a refused input (evidence of a Byzantine
//!   peer, say) does so only through a later, separate output.
//! * **Persistence is a type** ([`Ready`], after raft-rs's `Ready` /
//!   `advance`): what must be durable and what may only go out after it are
//!   separate fields of one batch; the host writes [`Ready::persist`] in one
//!   durable write, carries out [`Ready::after_persist`], and acknowledges
//!   with `advance(ready.number())`. Until it does, the machine hands out
//!   no further batch, so nothing that promises can overtake the write it
//!   depends on, and a storage layer may take as long as it likes (batching
//!   many inputs into one write) without breaking the order.
//!
//! [`Outbox`] is the building block a machine uses to collect one batch.

/// Which batch a [`Ready`] is: the host hands it back to `advance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReadyNumber(pub u64);

/// One batch of work for the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready<W, O> {
    number: ReadyNumber,
    /// Must be durable, in one write, before any of `after_persist` is
    /// carried out.
    pub persist: Vec<W>,
    /// May be carried out at once, in order: nothing here promises anything
    /// that `persist` records.
    pub immediate: Vec<O>,
    /// May be carried out only once `persist` is durable, in order: signed
    /// votes, acknowledgements, anything a peer may hold this node to.
    pub after_persist: Vec<O>,
}

impl<W, O> Ready<W, O> {
    /// The number to hand back to the machine's `advance`.
    pub fn number(&self) -> ReadyNumber {
        self.number
    }

    /// Whether the batch holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty() && self.immediate.is_empty() && self.after_persist.is_empty()
    }
}

/// Why an `advance` was refused (the machine's state is unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdvanceError {
    /// No batch is waiting for an acknowledgement.
    #[error("advance({got:?}) but no batch is outstanding")]
    NothingOutstanding {
        /// The number the host passed.
        got: ReadyNumber,
    },
    /// The host acknowledged another batch than the outstanding one.
    #[error("advance({got:?}) but batch {expected:?} is the outstanding one")]
    WrongBatch {
        /// The outstanding batch.
        expected: ReadyNumber,
        /// The number the host passed.
        got: ReadyNumber,
    },
}

/// Collects what a machine wants done and hands it out as [`Ready`]
/// batches, one outstanding at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbox<W, O> {
    next: u64,
    outstanding: Option<ReadyNumber>,
    persist: Vec<W>,
    immediate: Vec<O>,
    after_persist: Vec<O>,
}

impl<W, O> Default for Outbox<W, O> {
    fn default() -> Self {
        Outbox {
            next: 0,
            outstanding: None,
            persist: Vec::new(),
            immediate: Vec::new(),
            after_persist: Vec::new(),
        }
    }
}

impl<W, O> Outbox<W, O> {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `w` for the next batch's durable write.
    pub fn persist(&mut self, w: W) {
        self.persist.push(w);
    }

    /// Queues an output that promises nothing.
    pub fn immediate(&mut self, o: O) {
        self.immediate.push(o);
    }

    /// Queues an output that may go out only after the batch's write.
    pub fn after_persist(&mut self, o: O) {
        self.after_persist.push(o);
    }

    /// Whether [`Outbox::take_ready`] would return a batch.
    pub fn has_ready(&self) -> bool {
        self.outstanding.is_none()
            && !(self.persist.is_empty()
                && self.immediate.is_empty()
                && self.after_persist.is_empty())
    }

    /// Whether a batch was handed out and not yet acknowledged.
    pub fn is_outstanding(&self) -> bool {
        self.outstanding.is_some()
    }

    /// Everything collected since the last batch, or `None` when there is
    /// nothing or the last batch is not acknowledged yet (what is collected
    /// meanwhile waits for the next batch).
    pub fn take_ready(&mut self) -> Option<Ready<W, O>> {
        if !self.has_ready() {
            return None;
        }
        let number = ReadyNumber(self.next);
        self.next = self.next.wrapping_add(1);
        self.outstanding = Some(number);
        Some(Ready {
            number,
            persist: std::mem::take(&mut self.persist),
            immediate: std::mem::take(&mut self.immediate),
            after_persist: std::mem::take(&mut self.after_persist),
        })
    }

    /// The host made batch `number`'s write durable and carried out its
    /// outputs.
    pub fn advance(&mut self, number: ReadyNumber) -> Result<(), AdvanceError> {
        match self.outstanding {
            None => Err(AdvanceError::NothingOutstanding { got: number }),
            Some(expected) if expected != number => Err(AdvanceError::WrongBatch {
                expected,
                got: number,
            }),
            Some(_) => {
                self.outstanding = None;
                Ok(())
            }
        }
    }

    /// Drops everything collected and any outstanding batch (a machine
    /// rebuilt from storage starts with an empty outbox).
    pub fn clear(&mut self) {
        self.outstanding = None;
        self.persist.clear();
        self.immediate.clear();
        self.after_persist.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_batch_outstanding_and_later_outputs_wait_for_the_ack() {
        let mut o: Outbox<&str, u32> = Outbox::new();
        assert!(o.take_ready().is_none());
        o.persist("lock");
        o.after_persist(1);
        o.immediate(2);
        let r = o.take_ready().expect("a batch");
        assert_eq!(
            (
                r.persist.clone(),
                r.immediate.clone(),
                r.after_persist.clone()
            ),
            (vec!["lock"], vec![2], vec![1])
        );
        o.after_persist(3);
        assert!(
            o.take_ready().is_none(),
            "nothing overtakes an unacknowledged write"
        );
        assert_eq!(
            o.advance(ReadyNumber(9)),
            Err(AdvanceError::WrongBatch {
                expected: r.number(),
                got: ReadyNumber(9)
            })
        );
        assert!(o.is_outstanding(), "a refused advance changes nothing");
        o.advance(r.number()).unwrap();
        assert_eq!(
            o.advance(r.number()),
            Err(AdvanceError::NothingOutstanding { got: r.number() })
        );
        let r2 = o.take_ready().expect("the waiting output");
        assert_eq!(r2.after_persist, vec![3]);
        assert_ne!(r2.number(), r.number());
    }
}
