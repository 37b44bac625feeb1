//! Bounded outbound queues, one per peer (docs/PROTOCOL.md "Transport,
//! framing, retries and scream cast").
//!
//! A slow or dead peer must not make a node buffer without bound: each
//! peer's queue holds at most `per_peer_items` items and `per_peer_bytes`
//! bytes, and all queues together at most `total_bytes`. A push that would
//! break a bound is refused with a typed error (the caller decides: drop,
//! retry later through [`crate::outreach`], or disconnect), never silently
//! dropped.

use std::collections::{BTreeMap, VecDeque};

use undchain_types::PublicKey;

/// How much the outbound queues may hold, per peer and in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Items per peer (default 1,024).
    pub per_peer_items: usize,
    /// Bytes per peer (default 8 MiB).
    pub per_peer_bytes: usize,
    /// Bytes over all peers (default 256 MiB).
    pub total_bytes: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            per_peer_items: 1024,
            per_peer_bytes: 8 << 20,
            total_bytes: 256 << 20,
        }
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The peer's queue holds its maximum number of items.
    #[error("outbound queue to {peer} is full ({cap} items)")]
    PeerItems {
        /// The peer whose queue is full.
        peer: PublicKey,
        /// How many items a peer's queue may hold.
        cap: usize,
    },
    /// The peer's queue would exceed its byte bound.
    #[error("outbound queue to {peer} would hold {would} bytes, above {cap}")]
    PeerBytes {
        /// The peer whose queue would overflow.
        peer: PublicKey,
        /// Bytes the peer's queue would hold after the push.
        would: usize,
        /// How many bytes a peer's queue may hold.
        cap: usize,
    },
    /// All queues together would exceed the total bound.
    #[error("outbound queues would hold {would} bytes in all, above {cap}")]
    TotalBytes {
        /// Bytes all queues would hold after the push.
        would: usize,
        /// How many bytes all queues together may hold.
        cap: usize,
    },
}

#[derive(Debug, Clone)]
struct PeerQueue<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
}

/// Per-peer FIFO queues under [`QueueLimits`].
#[derive(Debug, Clone)]
pub struct OutboundQueues<T> {
    limits: QueueLimits,
    queues: BTreeMap<PublicKey, PeerQueue<T>>,
    total: usize,
}

impl<T> OutboundQueues<T> {
    /// Empty queues under `limits`.
    pub fn new(limits: QueueLimits) -> Self {
        OutboundQueues {
            limits,
            queues: BTreeMap::new(),
            total: 0,
        }
    }

    /// Appends `item` of `size` bytes to `peer`'s queue, or refuses it.
    pub fn push(&mut self, peer: PublicKey, item: T, size: usize) -> Result<(), QueueError> {
        let (len, bytes) = self
            .queues
            .get(&peer)
            .map_or((0, 0), |q| (q.items.len(), q.bytes));
        if len >= self.limits.per_peer_items {
            return Err(QueueError::PeerItems {
                peer,
                cap: self.limits.per_peer_items,
            });
        }
        let would = bytes.saturating_add(size);
        if would > self.limits.per_peer_bytes {
            return Err(QueueError::PeerBytes {
                peer,
                would,
                cap: self.limits.per_peer_bytes,
            });
        }
        let would_total = self.total.saturating_add(size);
        if would_total > self.limits.total_bytes {
            return Err(QueueError::TotalBytes {
                would: would_total,
                cap: self.limits.total_bytes,
            });
        }
        let q = self.queues.entry(peer).or_insert_with(|| PeerQueue {
            items: VecDeque::new(),
            bytes: 0,
        });
        q.items.push_back((item, size));
        q.bytes = would;
        self.total = would_total;
        Ok(())
    }

    /// Takes the oldest item for `peer`.
    pub fn pop(&mut self, peer: &PublicKey) -> Option<T> {
        let q = self.queues.get_mut(peer)?;
        let (item, size) = q.items.pop_front()?;
        q.bytes -= size;
        self.total -= size;
        if q.items.is_empty() {
            self.queues.remove(peer);
        }
        Some(item)
    }

    /// Drops `peer`'s queue; returns what it held.
    pub fn drop_peer(&mut self, peer: &PublicKey) -> Vec<T> {
        match self.queues.remove(peer) {
            Some(q) => {
                self.total -= q.bytes;
                q.items.into_iter().map(|(t, _)| t).collect()
            }
            None => Vec::new(),
        }
    }

    /// Items queued for `peer`.
    pub fn len(&self, peer: &PublicKey) -> usize {
        self.queues.get(peer).map_or(0, |q| q.items.len())
    }

    /// Bytes queued over all peers.
    pub fn total_bytes(&self) -> usize {
        self.total
    }

    /// Peers with something queued, by key.
    pub fn peers(&self) -> impl Iterator<Item = &PublicKey> {
        self.queues.keys()
    }
}
