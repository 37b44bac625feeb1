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
//! round trip, which feeds the peer book's latency) and reports the expired
//! ones. Memory is bounded per peer and in total.

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::{BlockNumber, JobId, Message, PublicKey, SignedEnvelope};

/// What pairs a reply with its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CorrelationKey {
    /// UtilityRequest -> RequestAck.
    UtilityRequest(JobId),
    /// Receipt -> CompletionAck.
    Receipt(JobId),
    /// TimeProbe -> TimeReply.
    TimeProbe(u64),
    /// Challenge -> ChallengeResponse.
    Challenge(u64),
    /// CapacityTest -> CapacityTestResult.
    CapacityTest(u64),
    /// JobFileRequest -> JobFileReply.
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
        /// The peer.
        peer: PublicKey,
        /// The key.
        key: CorrelationKey,
    },
    /// The peer has too many pending requests.
    #[error("{peer} already has {cap} pending requests")]
    PeerFull {
        /// The peer.
        peer: PublicKey,
        /// The cap.
        cap: usize,
    },
    /// Too many pending requests in total.
    #[error("{cap} requests are already pending in total")]
    Full {
        /// The cap.
        cap: usize,
    },
}

/// A reply matched to its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// When the request was registered, us.
    pub sent_us: u64,
    /// Round trip, us.
    pub rtt_us: u64,
}

/// A request whose deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    /// The peer.
    pub peer: PublicKey,
    /// The request.
    pub key: CorrelationKey,
    /// When it was sent, us.
    pub sent_us: u64,
}

/// Pending requests with deadlines. Deterministic: ordered maps only.
#[derive(Debug, Clone)]
pub struct Correlator {
    per_peer_cap: usize,
    total_cap: usize,
    pending: BTreeMap<(PublicKey, CorrelationKey), (u64, u64)>,
    per_peer: BTreeMap<PublicKey, usize>,
    deadlines: BTreeSet<(u64, PublicKey, CorrelationKey)>,
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

    /// Pending requests.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Remembers a request `key` sent to `peer` at `now_us`, expiring at
    /// `now_us + timeout_us`.
    pub fn register(
        &mut self,
        peer: PublicKey,
        key: CorrelationKey,
        now_us: u64,
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
        let deadline = now_us.saturating_add(timeout_us);
        self.pending.insert((peer, key), (now_us, deadline));
        *self.per_peer.entry(peer).or_insert(0) += 1;
        self.deadlines.insert((deadline, peer, key));
        Ok(())
    }

    fn remove(&mut self, peer: PublicKey, key: CorrelationKey) -> Option<(u64, u64)> {
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

    /// A reply `key` arrived from `peer` at `now_us`: the matching request,
    /// or `None` for an unsolicited or late reply (whose request expired).
    pub fn resolve(
        &mut self,
        peer: &PublicKey,
        key: CorrelationKey,
        now_us: u64,
    ) -> Option<Resolved> {
        let (sent_us, _) = self.remove(*peer, key)?;
        Some(Resolved {
            sent_us,
            rtt_us: now_us.saturating_sub(sent_us),
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

    /// Removes and returns the requests whose deadline is at or before
    /// `now_us`, oldest deadline first.
    pub fn poll_expired(&mut self, now_us: u64) -> Vec<Expired> {
        let mut out = Vec::new();
        while let Some(&(deadline, peer, key)) = self.deadlines.first() {
            if deadline > now_us {
                break;
            }
            if let Some((sent_us, _)) = self.remove(peer, key) {
                out.push(Expired { peer, key, sent_us });
            }
        }
        out
    }

    /// The earliest deadline.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.deadlines.first().map(|(d, _, _)| *d)
    }
}
