//! The event channel from the connection tasks to the runtime, bounded per
//! peer and per class instead of as one queue (docs/PROTOCOL.md "Load
//! shedding").
//!
//! One shared bounded channel let a single peer's backlog stall every
//! reader. Here the channel itself is unbounded, and what bounds it are
//! permits an event carries until the runtime takes it:
//! - per connection, [`undchain_net::TransportConfig::events_per_peer`]
//!   events and [`super::QuicConfig::event_bytes_per_peer`] bytes: a
//!   reader that has used its share waits, and QUIC flow control slows
//!   that one sender;
//! - per class, a byte pool ([`super::QuicConfig::validator_event_bytes`],
//!   [`super::QuicConfig::client_event_bytes`]): all clients together can
//!   hold only their pool, never the validators'.
//!
//! Refusals (`TransportEvent::Refused`) are informational and come in
//! floods: at most [`REFUSED_WAITING`] wait at a time, the rest are only
//! counted.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use undchain_net::{PeerClass, TransportEvent};

/// Bytes an event is charged beyond its frame (the event, its envelope's
/// decoded form and the channel slot).
pub(super) const EVENT_OVERHEAD: usize = 512;

/// Refusal events waiting for the runtime before further ones are only
/// counted.
pub(super) const REFUSED_WAITING: usize = 256;

/// An event with the permits that bound it (at most three: the peer's
/// events, the peer's bytes, the class's bytes); dropping it frees them.
pub(super) struct Queued {
    pub(super) event: TransportEvent,
    _permits: [Option<OwnedSemaphorePermit>; 3],
}

/// One connection's share of the channel.
#[derive(Debug, Clone)]
pub(super) struct PeerQuota {
    events: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    bytes_cap: usize,
}

/// The sending side of the channel, shared by every connection task.
#[derive(Debug)]
pub(super) struct EventSink {
    tx: mpsc::UnboundedSender<Queued>,
    pools: [Arc<Semaphore>; 2],
    pool_caps: [usize; 2],
    refused: Arc<Semaphore>,
    per_peer: (usize, usize),
}

fn pool(class: PeerClass) -> usize {
    match class {
        PeerClass::Validator => 0,
        PeerClass::ClientOrPartner => 1,
    }
}

impl EventSink {
    /// A channel whose connections may each hold `events_per_peer` events
    /// and `bytes_per_peer` bytes, within class pools of `pool_bytes`
    /// (validators, clients). Every cap is raised to fit at least one frame
    /// of `max_frame` bytes, so no reader can wait forever.
    pub(super) fn new(
        events_per_peer: usize,
        bytes_per_peer: usize,
        pool_bytes: [usize; 2],
        max_frame: usize,
    ) -> (Self, mpsc::UnboundedReceiver<Queued>) {
        let one = max_frame + EVENT_OVERHEAD;
        let caps = pool_bytes.map(|b| b.max(one));
        let (tx, rx) = mpsc::unbounded_channel();
        (
            EventSink {
                tx,
                pools: caps.map(|c| Arc::new(Semaphore::new(c))),
                pool_caps: caps,
                refused: Arc::new(Semaphore::new(REFUSED_WAITING)),
                per_peer: (events_per_peer.max(1), bytes_per_peer.max(one)),
            },
            rx,
        )
    }

    /// A fresh share for a new connection.
    pub(super) fn quota(&self) -> PeerQuota {
        PeerQuota {
            events: Arc::new(Semaphore::new(self.per_peer.0)),
            bytes: Arc::new(Semaphore::new(self.per_peer.1)),
            bytes_cap: self.per_peer.1,
        }
    }

    fn send(&self, event: TransportEvent, permits: [Option<OwnedSemaphorePermit>; 3]) {
        // The receiver is gone only when the transport was dropped.
        let _ = self.tx.send(Queued {
            event,
            _permits: permits,
        });
    }

    async fn take(sem: &Arc<Semaphore>, n: usize, cap: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(n.min(cap)).unwrap_or(u32::MAX);
        sem.clone().acquire_many_owned(n).await.ok()
    }

    /// Queues a received (or dropped) frame's event of `frame_len` bytes
    /// from a `class` peer, waiting while that peer or its class has used
    /// its share.
    pub(super) async fn frame(
        &self,
        class: PeerClass,
        quota: &PeerQuota,
        event: TransportEvent,
        frame_len: usize,
    ) {
        let cost = frame_len + EVENT_OVERHEAD;
        let p = pool(class);
        let permits = [
            Self::take(&quota.events, 1, usize::MAX).await,
            Self::take(&quota.bytes, cost, quota.bytes_cap).await,
            Self::take(&self.pools[p], cost, self.pool_caps[p]).await,
        ];
        self.send(event, permits);
    }

    /// Queues a connection event of a `class` peer (connected, closed,
    /// connect failed), waiting while its class pool is used up.
    pub(super) async fn control(&self, class: PeerClass, event: TransportEvent) {
        let p = pool(class);
        let permit = Self::take(&self.pools[p], EVENT_OVERHEAD, self.pool_caps[p]).await;
        self.send(event, [permit, None, None]);
    }

    /// Queues a refusal if fewer than [`REFUSED_WAITING`] wait; returns
    /// whether it was queued (if not, the caller only counts it).
    pub(super) fn refused(&self, event: TransportEvent) -> bool {
        match self.refused.clone().try_acquire_owned() {
            Ok(permit) => {
                self.send(event, [Some(permit), None, None]);
                true
            }
            Err(_) => false,
        }
    }
}
