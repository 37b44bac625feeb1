//! Request correlation: which reply answers which request, and which
//! requests timed out (docs/PROTOCOL.md "Transport, framing, retries and
//! scream cast").
//!
//! Envelopes carry no generic request id; the messages themselves say what
//! they answer. [`correlation`] maps each request/reply pair of the protocol
//! to one [`CorrelationKey`]: a utility request and its ack share the job id
//! (derived from the request's digest), a receipt and its completion ack the
//! job id, a time probe and its reply the nonce, a challenge and its answer
//! the challenge id, a capacity test and its result the test id, a job-file
//! request and its reply the block number. A [`Correlator`] remembers
//! pending requests per peer with a deadline, resolves replies (giving the
//! round trip, which feeds the peer book's latency) and, woken with
//! [`Correlator::handle_timeout`] at the time [`Correlator::poll_timeout`]
//! names, reports the expired ones. Memory is bounded per peer and in total.

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::{BlockNumber, JobId, LocalTime, Message, PublicKey, SignedEnvelope};

/// What pairs a reply with its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CorrelationKey {
    /// A `UtilityRequest`, answered by a `RequestAck` for the job its
    /// digest names.
    UtilityRequest(JobId),
    /// A `Receipt`, answered by a `CompletionAck` for its job.
    Receipt(JobId),
    /// A `TimeProbe`, answered by the `TimeReply` echoing its nonce.
    TimeProbe(u64),
    /// A `Challenge`, answered by the `ChallengeResponse` with its id.
    Challenge(u64),
    /// A `CapacityTest`, answered by the `CapacityTestResult` with its id.
    CapacityTest(u64),
    /// A `JobFileRequest`, answered by the `JobFileReply` for its block.
    JobFile(BlockNumber),
}

/// Whether an envelope opens or closes an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correlation {
    /// A request that expects a reply under this key.
    Request(CorrelationKey),
    /// A reply to the request with this key.
    Reply(CorrelationKey),
}

/// The correlation of `env`, if its kind takes part in a request/reply pair.
pub fn correlation(env: &SignedEnvelope) -> Option<Correlation> {
    use Correlation::{Reply, Request};
    use CorrelationKey as K;
    Some(match env.body() {
        Message::UtilityRequest(_) => {
            Request(K::UtilityRequest(JobId::from_request_digest(env.digest())))
        }
        Message::RequestAck(a) => Reply(K::UtilityRequest(a.job)),
        Message::Receipt(r) => Request(K::Receipt(r.terms.job)),
        Message::CompletionAck(a) => Reply(K::Receipt(a.job)),
        Message::TimeProbe(p) => Request(K::TimeProbe(p.nonce)),
        Message::TimeReply(r) => Reply(K::TimeProbe(r.nonce)),
        Message::Challenge(c) => Request(K::Challenge(c.id)),
        Message::ChallengeResponse(c) => Reply(K::Challenge(c.id)),
        Message::CapacityTest(t) => Request(K::CapacityTest(t.id)),
        Message::CapacityTestResult(t) => Reply(K::CapacityTest(t.id)),
        Message::JobFileRequest(r) => Request(K::JobFile(r.block)),
        Message::JobFileReply(r) => Reply(K::JobFile(r.block)),
        _ => return None,
    })
}

/// Why a request could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorrelateError {
    /// The same request to the same peer is already pending.
    #[error("request {key:?} to {peer} is already pending")]
    Duplicate {
        /// The peer the request was for.
        peer: PublicKey,
        /// The request's key, already pending for that peer.
        key: CorrelationKey,
    },
    /// The peer has too many pending requests.
    #[error("{peer} already has {cap} pending requests")]
    PeerFull {
        /// The peer the request was for.
        peer: PublicKey,
        /// How many requests may be pending per peer.
        cap: usize,
    },
    /// Too many pending requests in total.
    #[error("{cap} requests are already pending in total")]
    Full {
        /// How many requests may be pending over all peers.
        cap: usize,
    },
}

/// A reply matched to its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// When the request was registered.
    pub sent: LocalTime,
    /// Time from registering the request to its reply, us (the latency
    /// sample the peer book takes).
    pub rtt_us: u64,
}

/// A request whose deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    /// The peer that did not answer.
    pub peer: PublicKey,
    /// The request that went unanswered.
    pub key: CorrelationKey,
    /// When it was registered.
    pub sent: LocalTime,
}

/// Pending requests with deadlines. Deterministic: ordered maps only.
#[derive(Debug, Clone)]
pub struct Correlator {
    per_peer_cap: usize,
    total_cap: usize,
    pending: BTreeMap<(PublicKey, CorrelationKey), (LocalTime, LocalTime)>,
    per_peer: BTreeMap<PublicKey, usize>,
    deadlines: BTreeSet<(LocalTime, PublicKey, CorrelationKey)>,
}

impl Correlator {
    /// A correlator holding at most `per_peer_cap` pending requests per peer
    /// and `total_cap` in all.
    pub fn new(per_peer_cap: usize, total_cap: usize) -> Self {
        Correlator {
            per_peer_cap,
            total_cap,
            pending: BTreeMap::new(),
            per_peer: BTreeMap::new(),
            deadlines: BTreeSet::new(),
        }
    }

    /// How many requests are pending, over all peers.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Remembers a request `key` sent to `peer` at `now`, expiring
    /// `timeout_us` later; refused (changing nothing) when it is already
    /// pending or a cap is reached.
    pub fn register(
        &mut self,
        peer: PublicKey,
        key: CorrelationKey,
        now: LocalTime,
        timeout_us: u64,
    ) -> Result<(), CorrelateError> {
        if self.pending.contains_key(&(peer, key)) {
            return Err(CorrelateError::Duplicate { peer, key });
        }
        let n = self.per_peer.get(&peer).copied().unwrap_or(0);
        if n >= self.per_peer_cap {
            return Err(CorrelateError::PeerFull {
                peer,
                cap: self.per_peer_cap,
            });
        }
        if self.pending.len() >= self.total_cap {
            return Err(CorrelateError::Full {
                cap: self.total_cap,
            });
        }
        let deadline = now.plus(timeout_us);
        self.pending.insert((peer, key), (now, deadline));
        *self.per_peer.entry(peer).or_insert(0) += 1;
        self.deadlines.insert((deadline, peer, key));
        Ok(())
    }

    fn remove(&mut self, peer: PublicKey, key: CorrelationKey) -> Option<(LocalTime, LocalTime)> {
        let (sent, deadline) = self.pending.remove(&(peer, key))?;
        self.deadlines.remove(&(deadline, peer, key));
        if let Some(n) = self.per_peer.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
        Some((sent, deadline))
    }

    /// A reply `key` arrived from `peer` at `now`: the matching request,
    /// or `None` for an unsolicited or late reply (whose request expired).
    pub fn resolve(
        &mut self,
        peer: &PublicKey,
        key: CorrelationKey,
        now: LocalTime,
    ) -> Option<Resolved> {
        let (sent, _) = self.remove(*peer, key)?;
        Some(Resolved {
            sent,
            rtt_us: now.since(sent),
        })
    }

    /// Forgets every request to `peer` (its connection closed); returns them.
    pub fn drop_peer(&mut self, peer: &PublicKey) -> Vec<CorrelationKey> {
        let keys: Vec<CorrelationKey> = self
            .pending
            .keys()
            .filter(|(p, _)| p == peer)
            .map(|(_, k)| *k)
            .collect();
        for k in &keys {
            self.remove(*peer, *k);
        }
        keys
    }

    /// Time passed: removes and returns the requests whose deadline is at
    /// or before `now`, oldest deadline first (nothing when called early).
    pub fn handle_timeout(&mut self, now: LocalTime) -> Vec<Expired> {
        let mut out = Vec::new();
        while let Some(&(deadline, peer, key)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            if let Some((sent, _)) = self.remove(peer, key) {
                out.push(Expired { peer, key, sent });
            }
        }
        out
    }

    /// When [`Correlator::handle_timeout`] should next be called: the
    /// earliest deadline of a pending request.
    pub fn poll_timeout(&self) -> Option<LocalTime> {
        self.deadlines.first().map(|(d, _, _)| *d)
    }
}
