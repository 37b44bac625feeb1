//! Reaching a validator: retries, then a scream cast (docs/PROTOCOL.md
//! "Transport, framing, retries and scream cast"; design notes, client story
//! step 1, "what all bad could happen").
//!
//! An [`Outreach`] sends one message to one validator: up to
//! [`RetryPolicy::attempts`] attempts ([`crate::retry`]), each over the
//! validator's media in order of observed latency (attempt `i` uses the
//! `i`-th best medium, wrapping around). When all fail, it turns into a
//! [`ScreamCast`] of the caller's signed public hello over
//! [`PeerBook::scream_order`]. Every outcome is recorded in the peer book
//! (reliability, and latency from the attempt's round trip), so the next
//! lowest-latency choice already knows about a dead validator.
//!
//! The machine never holds the message itself: [`Payload::Message`] tells the
//! caller to send its message, [`Payload::Hello`] the hello.

use undchain_types::msg::Endpoint;
use undchain_types::{PublicKey, SignedEnvelope};

use crate::peer_book::{PeerBook, ScreamTarget};
use crate::retry::{Retry, RetryAction, RetryPolicy};
use crate::scream::{ScreamAction, ScreamCast, ScreamError};

/// Which try an outcome is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttemptId {
    /// Retry attempt (1-based) to the target.
    Retry(u8),
    /// Scream cast try, by index in the scream order.
    Scream(usize),
}

/// What a try carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The caller's message.
    Message,
    /// The signed public hello (scream cast).
    Hello(Box<SignedEnvelope>),
}

/// What the caller should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutreachAction {
    /// Connect to `validator` at `endpoint` (authenticated handshake under
    /// that key) and send `payload`; report the outcome with `id`.
    Send {
        /// The try.
        id: AttemptId,
        /// Whom.
        validator: PublicKey,
        /// Where.
        endpoint: Endpoint,
        /// What.
        payload: Payload,
        /// When it times out.
        deadline_us: u64,
    },
    /// Every retry to the target failed; the scream cast starts over
    /// `targets` addresses.
    ScreamCastStarted {
        /// Addresses in the cast.
        targets: usize,
    },
    /// Done: `validator` was reached at `endpoint` by try `id`. After a
    /// scream cast this is the validator that answered the hello: send the
    /// message through it.
    Reached {
        /// The try.
        id: AttemptId,
        /// Whom.
        validator: PublicKey,
        /// Where.
        endpoint: Endpoint,
    },
    /// Done: nobody answered.
    GaveUp {
        /// Retry attempts made.
        attempts: u8,
        /// Scream cast addresses tried.
        screamed: usize,
    },
}

/// Why an outreach could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutreachError {
    /// The target is not in the peer book (no media to try).
    #[error("validator {0} is not in the peer book: no address to try")]
    UnknownTarget(PublicKey),
    /// The hello is not a hello.
    #[error(transparent)]
    Scream(#[from] ScreamError),
}

#[derive(Debug, Clone)]
enum Phase {
    Retrying {
        retry: Retry,
        current: Option<(u8, Endpoint, u64)>,
    },
    Screaming(Box<ScreamCast>, u8),
    Done,
}

/// One message's way to one validator.
#[derive(Debug, Clone)]
pub struct Outreach {
    target: PublicKey,
    media: Vec<Endpoint>,
    policy: RetryPolicy,
    hello: SignedEnvelope,
    phase: Phase,
    scream_started: Vec<(usize, u64)>,
}

impl Outreach {
    /// An outreach to `target` under `policy`, jitter from `seed`, with the
    /// `hello` a scream cast would carry (checked to be a Hello).
    pub fn new(
        target: PublicKey,
        book: &PeerBook,
        policy: RetryPolicy,
        seed: u64,
        hello: SignedEnvelope,
    ) -> Result<Self, OutreachError> {
        // Validate the hello now rather than 24 s later.
        ScreamCast::new(hello.clone(), Vec::new(), 1, 0)?;
        let entry = book
            .get(&target)
            .filter(|e| !e.media.is_empty())
            .ok_or(OutreachError::UnknownTarget(target))?;
        let media = entry
            .media_by_latency()
            .into_iter()
            .map(|m| m.endpoint.clone())
            .collect();
        Ok(Outreach {
            target,
            media,
            policy,
            hello,
            phase: Phase::Retrying {
                retry: Retry::new(policy, seed),
                current: None,
            },
            scream_started: Vec::new(),
        })
    }

    /// The validator this outreach is for.
    pub fn target(&self) -> &PublicKey {
        &self.target
    }

    /// Whether it ended.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The scream cast order, once the cast has started.
    pub fn scream_order(&self) -> Option<&[ScreamTarget]> {
        match &self.phase {
            Phase::Screaming(cast, _) => Some(cast.order()),
            _ => None,
        }
    }

    /// Starts attempt 1.
    pub fn start(&mut self, now_us: u64) -> Vec<OutreachAction> {
        let mut out = Vec::new();
        if let Phase::Retrying { retry, .. } = &mut self.phase
            && let Some(a) = retry.start(now_us)
        {
            self.on_retry(a, now_us, None, &mut out);
        }
        out
    }

    fn endpoint_for(&self, attempt: u8) -> Endpoint {
        let i = usize::from(attempt.saturating_sub(1)) % self.media.len();
        self.media[i].clone()
    }

    fn on_retry(
        &mut self,
        action: RetryAction,
        now_us: u64,
        book: Option<&PeerBook>,
        out: &mut Vec<OutreachAction>,
    ) {
        match action {
            RetryAction::Attempt {
                attempt,
                deadline_us,
            } => {
                let endpoint = self.endpoint_for(attempt);
                if let Phase::Retrying { current, .. } = &mut self.phase {
                    *current = Some((attempt, endpoint.clone(), now_us));
                }
                out.push(OutreachAction::Send {
                    id: AttemptId::Retry(attempt),
                    validator: self.target,
                    endpoint,
                    payload: Payload::Message,
                    deadline_us,
                });
            }
            RetryAction::Delivered { attempt } => {
                let endpoint = self.endpoint_for(attempt);
                self.phase = Phase::Done;
                out.push(OutreachAction::Reached {
                    id: AttemptId::Retry(attempt),
                    validator: self.target,
                    endpoint,
                });
            }
            RetryAction::Exhausted { attempts } => {
                let order = book.map(PeerBook::scream_order).unwrap_or_default();
                let targets = order.len();
                let cast = ScreamCast::new(
                    self.hello.clone(),
                    order,
                    self.policy.scream_width,
                    self.policy.scream_timeout_us,
                );
                match cast {
                    Ok(mut cast) => {
                        out.push(OutreachAction::ScreamCastStarted { targets });
                        let actions = cast.start(now_us);
                        self.phase = Phase::Screaming(Box::new(cast), attempts);
                        self.on_scream(actions, now_us, out);
                    }
                    // Checked in `new`; kept total rather than panicking.
                    Err(_) => {
                        self.phase = Phase::Done;
                        out.push(OutreachAction::GaveUp {
                            attempts,
                            screamed: 0,
                        });
                    }
                }
            }
        }
    }

    fn on_scream(
        &mut self,
        actions: Vec<ScreamAction>,
        now_us: u64,
        out: &mut Vec<OutreachAction>,
    ) {
        for a in actions {
            match a {
                ScreamAction::Try {
                    index,
                    target,
                    deadline_us,
                } => {
                    self.scream_started.push((index, now_us));
                    out.push(OutreachAction::Send {
                        id: AttemptId::Scream(index),
                        validator: target.validator,
                        endpoint: target.endpoint,
                        payload: Payload::Hello(Box::new(self.hello.clone())),
                        deadline_us,
                    });
                }
                ScreamAction::Reached { index } => {
                    if let Phase::Screaming(cast, _) = &self.phase {
                        let t = cast.order()[index].clone();
                        out.push(OutreachAction::Reached {
                            id: AttemptId::Scream(index),
                            validator: t.validator,
                            endpoint: t.endpoint,
                        });
                    }
                    self.phase = Phase::Done;
                }
                ScreamAction::Exhausted { tried } => {
                    let attempts = match &self.phase {
                        Phase::Screaming(_, a) => *a,
                        _ => 0,
                    };
                    self.phase = Phase::Done;
                    out.push(OutreachAction::GaveUp {
                        attempts,
                        screamed: tried,
                    });
                }
            }
        }
    }

    fn who(&self, id: AttemptId) -> Option<(PublicKey, Endpoint, Option<u64>)> {
        match (id, &self.phase) {
            (AttemptId::Retry(a), _) => {
                let started = match &self.phase {
                    Phase::Retrying {
                        current: Some((c, _, t)),
                        ..
                    } if *c == a => Some(*t),
                    _ => None,
                };
                Some((self.target, self.endpoint_for(a), started))
            }
            (AttemptId::Scream(i), Phase::Screaming(cast, _)) => {
                let t = cast.order().get(i)?;
                let started = self
                    .scream_started
                    .iter()
                    .find(|(j, _)| *j == i)
                    .map(|(_, t)| *t);
                Some((t.validator, t.endpoint.clone(), started))
            }
            _ => None,
        }
    }

    /// Try `id` got through at `now_us` (the hello or message was
    /// acknowledged). Records success and the round trip in `book`.
    pub fn handle_success(
        &mut self,
        id: AttemptId,
        now_us: u64,
        book: &mut PeerBook,
    ) -> Vec<OutreachAction> {
        let mut out = Vec::new();
        if self.is_done() {
            return out;
        }
        if let Some((v, ep, started)) = self.who(id) {
            book.observe_success(&v, &ep);
            if let Some(t) = started {
                book.observe_latency(&v, &ep, now_us.saturating_sub(t));
            }
        }
        match (&mut self.phase, id) {
            (Phase::Retrying { retry, .. }, AttemptId::Retry(a)) => {
                if let Some(act) = retry.handle_success(a) {
                    self.on_retry(act, now_us, Some(book), &mut out);
                }
            }
            (Phase::Screaming(cast, _), AttemptId::Scream(i)) => {
                let acts = cast.handle_success(i);
                self.on_scream(acts, now_us, &mut out);
            }
            // A retry attempt that answers during the scream cast still
            // reaches the target.
            (Phase::Screaming(..), AttemptId::Retry(a)) => {
                self.phase = Phase::Done;
                out.push(OutreachAction::Reached {
                    id,
                    validator: self.target,
                    endpoint: self.endpoint_for(a),
                });
            }
            _ => {}
        }
        out
    }

    /// Try `id` failed at `now_us` before its timeout. Records the failure
    /// in `book`.
    pub fn handle_failure(
        &mut self,
        id: AttemptId,
        now_us: u64,
        book: &mut PeerBook,
    ) -> Vec<OutreachAction> {
        let mut out = Vec::new();
        if self.is_done() {
            return out;
        }
        let target = self.target;
        let retry_ep = match id {
            AttemptId::Retry(a) => Some(self.endpoint_for(a)),
            AttemptId::Scream(_) => None,
        };
        if let AttemptId::Scream(i) = id {
            self.scream_started.retain(|(j, _)| *j != i);
        }
        match (&mut self.phase, id) {
            (Phase::Retrying { retry, current }, AttemptId::Retry(a)) => {
                if current.as_ref().is_some_and(|(c, _, _)| *c == a)
                    && let Some(ep) = &retry_ep
                {
                    *current = None;
                    book.observe_failure(&target, ep);
                }
                if let Some(act) = retry.handle_failure(a, now_us) {
                    self.on_retry(act, now_us, Some(book), &mut out);
                }
            }
            (Phase::Screaming(cast, _), AttemptId::Scream(i)) => {
                if let Some(t) = cast.order().get(i) {
                    book.observe_failure(&t.validator, &t.endpoint);
                }
                let acts = cast.handle_failure(i, now_us);
                self.on_scream(acts, now_us, &mut out);
            }
            _ => {}
        }
        out
    }

    /// Time passed: times out tries (recorded as failures in `book`) and
    /// starts what comes next.
    pub fn handle_timer(&mut self, now_us: u64, book: &mut PeerBook) -> Vec<OutreachAction> {
        let mut out = Vec::new();
        match &mut self.phase {
            Phase::Retrying { retry, current } => {
                if let Some((_, ep, _)) = current.clone()
                    && retry.poll_timeout().is_some_and(|t| now_us >= t)
                {
                    book.observe_failure(&self.target, &ep);
                    *current = None;
                }
                if let Some(act) = retry.handle_timer(now_us) {
                    self.on_retry(act, now_us, Some(book), &mut out);
                }
            }
            Phase::Screaming(cast, _) => {
                let timed_out: Vec<ScreamTarget> = self
                    .scream_started
                    .iter()
                    .filter(|(i, t)| {
                        now_us >= t.saturating_add(self.policy.scream_timeout_us)
                            && *i < cast.order().len()
                    })
                    .map(|(i, _)| cast.order()[*i].clone())
                    .collect();
                let acts = cast.handle_timer(now_us);
                if !timed_out.is_empty() {
                    for t in &timed_out {
                        book.observe_failure(&t.validator, &t.endpoint);
                    }
                    let limit = self.policy.scream_timeout_us;
                    self.scream_started
                        .retain(|(_, t)| now_us < t.saturating_add(limit));
                }
                self.on_scream(acts, now_us, &mut out);
            }
            Phase::Done => {}
        }
        out
    }

    /// When [`Outreach::handle_timer`] should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        match &self.phase {
            Phase::Retrying { retry, .. } => retry.poll_timeout(),
            Phase::Screaming(cast, _) => cast.poll_timeout(),
            Phase::Done => None,
        }
    }
}
