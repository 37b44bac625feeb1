//! Scream cast: when every retry to a validator failed, try every medium and
//! address of every validator of the bootstrap list and the validator set, in
//! order of latency (DESIGN.md "Validator list and connections"; design
//! notes, client story step 1, "a fail safe could be the scream cast").
//!
//! The design notes worried that a scream cast would be plain text to an
//! unknown entity. Here it is not: a scream cast carries only a signed,
//! public [`Hello`](undchain_types::msg::Hello), never anything secret
//! ([`ScreamCast::new`] refuses any other message), and each address is
//! reached through the same authenticated handshake under the key the list
//! names for it. Up to `width` addresses are tried at once, each with its own
//! timeout; the first that answers ends the cast.

use std::collections::BTreeMap;

use undchain_types::{LocalTime, MessageKind, SignedEnvelope};

use crate::peer_book::ScreamTarget;

/// Why a scream cast could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScreamError {
    /// A scream cast may only carry a signed public hello.
    #[error("a scream cast carries only a signed Hello, not {kind:?}")]
    NotAHello {
        /// The kind of the message that was offered instead of a hello.
        kind: MessageKind,
    },
}

/// What the caller should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScreamAction {
    /// Connect to `to` (authenticated handshake under its key) and send it
    /// `msg`, the hello; the try times out at `deadline`.
    Send {
        /// This try's index in [`ScreamCast::order`], which the caller
        /// reports the outcome under.
        index: usize,
        /// The validator and address to try.
        to: ScreamTarget,
        /// The signed public hello the cast carries.
        msg: Box<SignedEnvelope>,
        /// When this try times out if the transport reports nothing.
        deadline: LocalTime,
    },
    /// Target `index` answered: the cast is over.
    Reached {
        /// The index in [`ScreamCast::order`] of the target that answered.
        index: usize,
    },
    /// Every address failed; the cast is over.
    Exhausted {
        /// How many addresses were tried (all of the order).
        tried: usize,
    },
}

/// A scream cast in progress.
#[derive(Debug, Clone)]
pub struct ScreamCast {
    hello: SignedEnvelope,
    order: Vec<ScreamTarget>,
    width: usize,
    timeout_us: u64,
    next: usize,
    in_flight: BTreeMap<usize, LocalTime>,
    finished: bool,
}

impl ScreamCast {
    /// A cast of `hello` over `order` (as [`crate::PeerBook::scream_order`]
    /// gives it), `width` tries at once, each timing out after `timeout_us`.
    pub fn new(
        hello: SignedEnvelope,
        order: Vec<ScreamTarget>,
        width: usize,
        timeout_us: u64,
    ) -> Result<Self, ScreamError> {
        let kind = hello.envelope().kind;
        if kind != MessageKind::Hello {
            return Err(ScreamError::NotAHello { kind });
        }
        Ok(ScreamCast {
            hello,
            order,
            width: width.max(1),
            timeout_us,
            next: 0,
            in_flight: BTreeMap::new(),
            finished: false,
        })
    }

    /// The hello every try carries.
    pub fn hello(&self) -> &SignedEnvelope {
        &self.hello
    }

    /// The addresses, in the order they are tried.
    pub fn order(&self) -> &[ScreamTarget] {
        &self.order
    }

    /// How many addresses have been tried so far (started, whatever their
    /// outcome): indices below this are known tries.
    pub fn tried(&self) -> usize {
        self.next
    }

    /// Whether try `index` is under way (started, neither answered, failed
    /// nor timed out).
    pub fn is_in_flight(&self, index: usize) -> bool {
        self.in_flight.contains_key(&index)
    }

    /// Whether it has ended (reached or exhausted).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Starts the first `width` tries.
    pub fn start(&mut self, now: LocalTime) -> Vec<ScreamAction> {
        let mut out = Vec::new();
        self.fill(now, &mut out);
        out
    }

    fn fill(&mut self, now: LocalTime, out: &mut Vec<ScreamAction>) {
        if self.finished {
            return;
        }
        while self.in_flight.len() < self.width && self.next < self.order.len() {
            let index = self.next;
            self.next += 1;
            let deadline = now.plus(self.timeout_us);
            self.in_flight.insert(index, deadline);
            out.push(ScreamAction::Send {
                index,
                to: self.order[index].clone(),
                msg: Box::new(self.hello.clone()),
                deadline,
            });
        }
        if self.in_flight.is_empty() && self.next >= self.order.len() {
            self.finished = true;
            out.push(ScreamAction::Exhausted { tried: self.next });
        }
    }

    /// Try `index` got through (even after it timed out); an index not
    /// tried yet, or a cast already over, does nothing.
    pub fn handle_success(&mut self, index: usize) -> Vec<ScreamAction> {
        if self.finished || index >= self.next {
            return Vec::new();
        }
        self.finished = true;
        self.in_flight.clear();
        vec![ScreamAction::Reached { index }]
    }

    /// Try `index` failed before its timeout; a try not in flight does
    /// nothing.
    pub fn handle_failure(&mut self, index: usize, now: LocalTime) -> Vec<ScreamAction> {
        let mut out = Vec::new();
        if self.in_flight.remove(&index).is_some() {
            self.fill(now, &mut out);
        }
        out
    }

    /// Time passed: tries past their deadline fail, the next ones start.
    /// Calling it before anything is due does nothing.
    pub fn handle_timeout(&mut self, now: LocalTime) -> Vec<ScreamAction> {
        let mut out = Vec::new();
        self.in_flight.retain(|_, deadline| *deadline > now);
        self.fill(now, &mut out);
        out
    }

    /// When [`ScreamCast::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<LocalTime> {
        if self.finished {
            return None;
        }
        self.in_flight.values().min().copied()
    }
}
