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
//!
//! It speaks the machine vocabulary (docs/ARCHITECTURE.md "The machine
//! vocabulary"): `now` is a [`LocalTime`], [`Outreach::poll_timeout`] says
//! when to wake it and [`Outreach::handle_timeout`] wakes it (early or twice
//! is harmless). An outcome the machine cannot be in a position to receive
//! (a try it never started, a failure of a try no longer under way, anything
//! after it finished) is refused with an [`OutreachInputError`] and changes
//! nothing, not even the peer book.

use undchain_types::msg::Endpoint;
use undchain_types::{LocalTime, PublicKey, SignedEnvelope};

use crate::peer_book::{PeerBook, ScreamTarget};
use crate::retry::{Retry, RetryAction, RetryPolicy, RetryState};
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
    /// The caller's own message, which the outreach never holds: the caller
    /// sends it.
    Message,
    /// The signed public hello (scream cast).
    Hello(Box<SignedEnvelope>),
}

/// What the caller should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutreachAction {
    /// Connect to validator `to` at `endpoint` (authenticated handshake
    /// under that key) and send `msg`; report the outcome with `id`.
    Send {
        /// The try the outcome is to be reported under.
        id: AttemptId,
        /// The validator to connect to, whose key the handshake expects.
        to: PublicKey,
        /// The medium and address to use.
        endpoint: Endpoint,
        /// What to send once connected.
        msg: Payload,
        /// When the try times out if the transport reports nothing.
        deadline: LocalTime,
    },
    /// Every retry to the target failed; the scream cast starts over
    /// `targets` addresses.
    ScreamCastStarted {
        /// How many addresses the cast will try, at most.
        targets: usize,
    },
    /// Done: `validator` was reached at `endpoint` by try `id`. After a
    /// scream cast this is the validator that answered the hello: send the
    /// message through it.
    Reached {
        /// The try that got through.
        id: AttemptId,
        /// The validator that answered.
        validator: PublicKey,
        /// The medium and address it answered on.
        endpoint: Endpoint,
    },
    /// Done: nobody answered, neither the target nor any scream cast
    /// address.
    GaveUp {
        /// How many retry attempts were made to the target.
        attempts: u8,
        /// How many scream cast addresses were tried.
        screamed: usize,
    },
}

/// Why an outreach could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutreachError {
    /// The target is not in the peer book (no media to try).
    #[error("validator {0} is not in the peer book: no address to try")]
    UnknownTarget(PublicKey),
    /// The hello a scream cast would carry is not a hello.
    #[error(transparent)]
    Scream(#[from] ScreamError),
}

/// Why an outreach refused an input. A refused input changes nothing: not
/// the outreach, not the peer book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutreachInputError {
    /// [`Outreach::start`] was called a second time.
    #[error("the outreach was already started")]
    AlreadyStarted,
    /// An outcome arrived after the outreach reached someone or gave up.
    #[error("outcome of {id:?} after the outreach finished")]
    Finished {
        /// The try the outcome was about.
        id: AttemptId,
    },
    /// An outcome of a try this outreach never started (a retry attempt
    /// beyond those made, a scream cast index not tried yet).
    #[error("{id:?} was never started by this outreach")]
    UnknownAttempt {
        /// The try the outcome was about.
        id: AttemptId,
    },
    /// A failure of a try that is no longer under way: it already failed or
    /// timed out (a late success still counts; a late failure teaches
    /// nothing new).
    #[error("failure of {id:?}, which is no longer under way")]
    NotInFlight {
        /// The try the outcome was about.
        id: AttemptId,
    },
}

#[derive(Debug, Clone)]
enum Phase {
    Retrying {
        retry: Retry,
        current: Option<(u8, Endpoint, LocalTime)>,
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
    scream_started: Vec<(usize, LocalTime)>,
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

    /// Whether it ended: the target (or, after a scream cast, another
    /// validator) was reached, or nobody answered.
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

    /// Starts attempt 1; refused if it was already started.
    pub fn start(&mut self, now: LocalTime) -> Result<Vec<OutreachAction>, OutreachInputError> {
        let Phase::Retrying { retry, .. } = &mut self.phase else {
            return Err(OutreachInputError::AlreadyStarted);
        };
        let action = retry.start(now).ok_or(OutreachInputError::AlreadyStarted)?;
        let mut out = Vec::new();
        self.on_retry(action, now, None, &mut out);
        Ok(out)
    }

    fn endpoint_for(&self, attempt: u8) -> Endpoint {
        let i = usize::from(attempt.saturating_sub(1)) % self.media.len();
        self.media[i].clone()
    }

    /// How many retry attempts have been started so far.
    fn retries_made(&self) -> u8 {
        match &self.phase {
            Phase::Retrying { retry, .. } => match retry.state() {
                RetryState::Idle => 0,
                RetryState::InFlight { attempt, .. } => attempt,
                RetryState::Backoff { next, .. } => next.saturating_sub(1),
                RetryState::Delivered { attempts } | RetryState::Exhausted { attempts } => attempts,
            },
            Phase::Screaming(_, attempts) => *attempts,
            Phase::Done => 0,
        }
    }

    /// Refuses an outcome of `id` unless this outreach is running and
    /// started that try.
    fn check_known(&self, id: AttemptId) -> Result<(), OutreachInputError> {
        let known = match (id, &self.phase) {
            (_, Phase::Done) => return Err(OutreachInputError::Finished { id }),
            (AttemptId::Retry(a), _) => (1..=self.retries_made()).contains(&a),
            (AttemptId::Scream(i), Phase::Screaming(cast, _)) => i < cast.tried(),
            (AttemptId::Scream(_), Phase::Retrying { .. }) => false,
        };
        if known {
            Ok(())
        } else {
            Err(OutreachInputError::UnknownAttempt { id })
        }
    }

    /// Refuses a failure of `id` unless that try is under way.
    fn check_in_flight(&self, id: AttemptId) -> Result<(), OutreachInputError> {
        self.check_known(id)?;
        let in_flight = match (id, &self.phase) {
            (AttemptId::Retry(a), Phase::Retrying { current, .. }) => {
                current.as_ref().is_some_and(|(c, _, _)| *c == a)
            }
            (AttemptId::Scream(i), Phase::Screaming(cast, _)) => cast.is_in_flight(i),
            _ => false,
        };
        if in_flight {
            Ok(())
        } else {
            Err(OutreachInputError::NotInFlight { id })
        }
    }

    fn on_retry(
        &mut self,
        action: RetryAction,
        now: LocalTime,
        book: Option<&PeerBook>,
        out: &mut Vec<OutreachAction>,
    ) {
        match action {
            RetryAction::Attempt { attempt, deadline } => {
                let endpoint = self.endpoint_for(attempt);
                if let Phase::Retrying { current, .. } = &mut self.phase {
                    *current = Some((attempt, endpoint.clone(), now));
                }
                out.push(OutreachAction::Send {
                    id: AttemptId::Retry(attempt),
                    to: self.target,
                    endpoint,
                    msg: Payload::Message,
                    deadline,
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
                        let actions = cast.start(now);
                        self.phase = Phase::Screaming(Box::new(cast), attempts);
                        self.on_scream(actions, now, out);
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
        now: LocalTime,
        out: &mut Vec<OutreachAction>,
    ) {
        for a in actions {
            match a {
                ScreamAction::Send {
                    index,
                    to,
                    msg,
                    deadline,
                } => {
                    self.scream_started.push((index, now));
                    out.push(OutreachAction::Send {
                        id: AttemptId::Scream(index),
                        to: to.validator,
                        endpoint: to.endpoint,
                        msg: Payload::Hello(msg),
                        deadline,
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

    fn who(&self, id: AttemptId) -> Option<(PublicKey, Endpoint, Option<LocalTime>)> {
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

    /// Try `id` got through at `now` (the hello or message was
    /// acknowledged), even after it timed out. Records success and the round
    /// trip in `book`. Refused (changing nothing) when the outreach finished
    /// or never started that try.
    pub fn handle_success(
        &mut self,
        id: AttemptId,
        now: LocalTime,
        book: &mut PeerBook,
    ) -> Result<Vec<OutreachAction>, OutreachInputError> {
        self.check_known(id)?;
        let mut out = Vec::new();
        if let Some((v, ep, started)) = self.who(id) {
            book.observe_success(&v, &ep);
            if let Some(t) = started {
                book.observe_latency(&v, &ep, now.since(t));
            }
        }
        match (&mut self.phase, id) {
            (Phase::Retrying { retry, .. }, AttemptId::Retry(a)) => {
                if let Some(act) = retry.handle_success(a) {
                    self.on_retry(act, now, Some(book), &mut out);
                }
            }
            (Phase::Screaming(cast, _), AttemptId::Scream(i)) => {
                let acts = cast.handle_success(i);
                self.on_scream(acts, now, &mut out);
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
        Ok(out)
    }

    /// Try `id` failed at `now` before its timeout. Records the failure in
    /// `book`. Refused (changing nothing) unless that try is under way.
    pub fn handle_failure(
        &mut self,
        id: AttemptId,
        now: LocalTime,
        book: &mut PeerBook,
    ) -> Result<Vec<OutreachAction>, OutreachInputError> {
        self.check_in_flight(id)?;
        let mut out = Vec::new();
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
                if let Some(act) = retry.handle_failure(a, now) {
                    self.on_retry(act, now, Some(book), &mut out);
                }
            }
            (Phase::Screaming(cast, _), AttemptId::Scream(i)) => {
                if let Some(t) = cast.order().get(i) {
                    book.observe_failure(&t.validator, &t.endpoint);
                }
                let acts = cast.handle_failure(i, now);
                self.on_scream(acts, now, &mut out);
            }
            _ => {}
        }
        Ok(out)
    }

    /// Time passed: times out tries (recorded as failures in `book`) and
    /// starts what comes next. Calling it before anything is due, or after
    /// the outreach finished, does nothing.
    pub fn handle_timeout(&mut self, now: LocalTime, book: &mut PeerBook) -> Vec<OutreachAction> {
        let mut out = Vec::new();
        match &mut self.phase {
            Phase::Retrying { retry, current } => {
                if let Some((_, ep, _)) = current.clone()
                    && retry.poll_timeout().is_some_and(|t| now >= t)
                {
                    book.observe_failure(&self.target, &ep);
                    *current = None;
                }
                if let Some(act) = retry.handle_timeout(now) {
                    self.on_retry(act, now, Some(book), &mut out);
                }
            }
            Phase::Screaming(cast, _) => {
                let limit = self.policy.scream_timeout_us;
                let timed_out: Vec<ScreamTarget> = self
                    .scream_started
                    .iter()
                    .filter(|(i, t)| now >= t.plus(limit) && *i < cast.order().len())
                    .map(|(i, _)| cast.order()[*i].clone())
                    .collect();
                let acts = cast.handle_timeout(now);
                if !timed_out.is_empty() {
                    for t in &timed_out {
                        book.observe_failure(&t.validator, &t.endpoint);
                    }
                    self.scream_started.retain(|(_, t)| now < t.plus(limit));
                }
                self.on_scream(acts, now, &mut out);
            }
            Phase::Done => {}
        }
        out
    }

    /// When [`Outreach::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<LocalTime> {
        match &self.phase {
            Phase::Retrying { retry, .. } => retry.poll_timeout(),
            Phase::Screaming(cast, _) => cast.poll_timeout(),
            Phase::Done => None,
        }
    }
}
