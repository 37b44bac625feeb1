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
//!
//! The two classes wait in two queues, and the runtime takes validators'
//! events first ([`Inbox`]): a backlog of client requests never delays a
//! vote or a time probe by more than [`CLIENT_EVERY`] events, and a flood of
//! validator events still lets one client event through in every
//! [`CLIENT_EVERY`]. A peer's class is fixed per connection, so a peer's
//! events keep their order.
//!
//! Refusals (`TransportEvent::Refused`) are informational and come in
//! floods: at most [`REFUSED_WAITING`] wait at a time, the rest are only
//! counted.

use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use undchain_net::{PeerClass, TransportEvent};

/// Bytes an event is charged beyond its frame (the event, its envelope's
/// decoded form and the channel slot).
pub(super) const EVENT_OVERHEAD: usize = 512;

/// Refusal events waiting for the runtime before further ones are only
/// counted.
pub(super) const REFUSED_WAITING: usize = 256;

/// While validators' events wait, one client event is taken after at most
/// this many of theirs.
pub(super) const CLIENT_EVERY: u32 = 8;

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
    /// By class: validators, clients and partners.
    tx: [mpsc::UnboundedSender<Queued>; 2],
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
    ) -> (Self, Inbox) {
        let one = max_frame + EVENT_OVERHEAD;
        let caps = pool_bytes.map(|b| b.max(one));
        let (vtx, vrx) = mpsc::unbounded_channel();
        let (ctx, crx) = mpsc::unbounded_channel();
        (
            EventSink {
                tx: [vtx, ctx],
                pools: caps.map(|c| Arc::new(Semaphore::new(c))),
                pool_caps: caps,
                refused: Arc::new(Semaphore::new(REFUSED_WAITING)),
                per_peer: (events_per_peer.max(1), bytes_per_peer.max(one)),
            },
            Inbox {
                rx: [vrx, crx],
                validator_run: 0,
            },
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

    fn send(
        &self,
        class: PeerClass,
        event: TransportEvent,
        permits: [Option<OwnedSemaphorePermit>; 3],
    ) {
        // The receiver is gone only when the transport was dropped.
        let _ = self.tx[pool(class)].send(Queued {
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
        self.send(class, event, permits);
    }

    /// Queues a connection event of a `class` peer (connected, closed,
    /// connect failed), waiting while its class pool is used up.
    pub(super) async fn control(&self, class: PeerClass, event: TransportEvent) {
        let p = pool(class);
        let permit = Self::take(&self.pools[p], EVENT_OVERHEAD, self.pool_caps[p]).await;
        self.send(class, event, [permit, None, None]);
    }

    /// Queues a refusal if fewer than [`REFUSED_WAITING`] wait; returns
    /// whether it was queued (if not, the caller only counts it). Refusals
    /// wait with the clients' events: they are informational.
    pub(super) fn refused(&self, event: TransportEvent) -> bool {
        match self.refused.clone().try_acquire_owned() {
            Ok(permit) => {
                self.send(
                    PeerClass::ClientOrPartner,
                    event,
                    [Some(permit), None, None],
                );
                true
            }
            Err(_) => false,
        }
    }
}

/// The receiving side: validators' events first, one client event in every
/// [`CLIENT_EVERY`] while both wait.
#[derive(Debug)]
pub(super) struct Inbox {
    rx: [mpsc::UnboundedReceiver<Queued>; 2],
    /// Validator events taken in a row while client events waited.
    validator_run: u32,
}

impl Inbox {
    /// Whether no event waits in either queue.
    pub(super) fn is_empty(&self) -> bool {
        self.rx.iter().all(|r| r.is_empty())
    }

    /// The next event by the rule above; `Ready(None)` once both senders
    /// are gone.
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Queued>> {
        let clients_wait = !self.rx[1].is_empty();
        if !(clients_wait && self.validator_run >= CLIENT_EVERY) {
            if let Poll::Ready(Some(q)) = self.rx[0].poll_recv(cx) {
                self.validator_run = if clients_wait {
                    self.validator_run + 1
                } else {
                    0
                };
                return Poll::Ready(Some(q));
            }
        }
        match self.rx[1].poll_recv(cx) {
            Poll::Ready(Some(q)) => {
                self.validator_run = 0;
                Poll::Ready(Some(q))
            }
            Poll::Ready(None) => self.rx[0].poll_recv(cx),
            Poll::Pending => {
                // Both were polled (or validators' just had its turn
                // skipped): poll it again so that its waker is set.
                let r = self.rx[0].poll_recv(cx);
                if r.is_ready() {
                    self.validator_run = 0;
                }
                r
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::{PublicKey, SigningKey};

    fn closed(peer: PublicKey) -> TransportEvent {
        TransportEvent::Closed {
            peer,
            error: undchain_net::TransportError::Io("test".into()),
        }
    }

    fn peer_of(ev: &TransportEvent) -> PublicKey {
        match ev {
            TransportEvent::Closed { peer, .. } => *peer,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn validators_go_first_and_clients_get_one_in_every_eight() {
        let (sink, mut inbox) = EventSink::new(64, 1 << 20, [1 << 20, 1 << 20], 1024);
        let v = SigningKey::from_seed([1; 32]).public();
        let c = SigningKey::from_seed([2; 32]).public();
        for _ in 0..20 {
            sink.send(PeerClass::ClientOrPartner, closed(c), [None, None, None]);
        }
        for _ in 0..20 {
            sink.send(PeerClass::Validator, closed(v), [None, None, None]);
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut order = String::new();
        while let Poll::Ready(Some(q)) = inbox.poll_recv(&mut cx) {
            order.push(if peer_of(&q.event) == v { 'v' } else { 'c' });
        }
        assert_eq!(
            order,
            format!(
                "{0}c{0}c{1}{2}",
                "v".repeat(8),
                "v".repeat(4),
                "c".repeat(18)
            )
        );
        assert!(inbox.is_empty());
        // Clients alone are taken at once.
        sink.send(PeerClass::ClientOrPartner, closed(c), [None, None, None]);
        assert!(matches!(inbox.poll_recv(&mut cx), Poll::Ready(Some(_))));
        assert!(inbox.poll_recv(&mut cx).is_pending());
    }
}
