//! A connection's read side, shared by its reader task and the runtime
//! (whoever takes events: [`super::QuicTransport::next_event`]).
//!
//! The reader task reads the connection's stream, sheds, decodes and
//! verifies its frames and queues their events (module `events`). But
//! when the reader has read everything and the runtime is waiting for an
//! event, the next chunk is read by the runtime itself: quinn then wakes
//! the runtime directly, as it wakes an application reading its own
//! stream, and the envelope arrives one task hand-off sooner. On tokio's
//! multi-threaded runtime that hand-off is dearer than it looks: a chain of
//! wakes runs on one thread only up to three tasks long (tokio's LIFO slot),
//! and quinn's endpoint and connection drivers already take two, so a
//! reader task in between sends the reply's wake to another thread.
//!
//! The runtime takes only a chunk that holds exactly one whole frame, and
//! only while it was idle; anything else (several frames, part of one, the
//! stream's end, an error) goes back to the reader task, and so does every
//! wake that comes while the runtime is busy. Under load the reader tasks
//! therefore still decode and verify in parallel, each over its own peer's
//! quota, and a frame over its peer's rate is shed by whoever reads it.
//!
//! Who reads is one atomic state:
//! - `TASK`: the reader task reads; wakes go to it.
//! - `IDLE`: the reader task read everything and waits; a wake goes to the
//!   runtime if it is waiting and the peer's last chunk was one frame,
//!   else to the task (a peer that sends in bursts is read by its task).
//! - `RUNTIME`: the runtime is reading one chunk; the task waits for it.
//!
//! So exactly one side reads at a time, and a peer's events keep their
//! order: the task goes `IDLE` only once its events are queued, and the
//! runtime takes queued events before it reads.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use tokio::sync::Notify;
use undchain_net::admission::ConnId;
use undchain_net::frame::FrameDecoder;
use undchain_net::{FrameReader, TransportEvent};

use super::outbox::Activity;
use super::shared::{Shared, count};

/// Bytes asked of quinn per read.
pub(super) const READ_CHUNK: usize = 64 * 1024;

const TASK: u8 = 0;
const IDLE: u8 = 1;
const RUNTIME: u8 = 2;

/// What one read of a stream gave.
pub(super) type Read = Result<Option<quinn::Chunk>, quinn::ReadError>;

/// The lanes whose streams woke while the runtime was waiting, and the
/// runtime's waker.
#[derive(Default)]
pub(super) struct Hub {
    ready: Mutex<VecDeque<Arc<Lane>>>,
    waiting: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// The runtime waits (until `waker` is woken): idle lanes' wakes come to
    /// it from now on.
    pub(super) fn start_waiting(&self, waker: &Waker) {
        {
            let mut w = lock(&self.waker);
            if !w.as_ref().is_some_and(|old| old.will_wake(waker)) {
                *w = Some(waker.clone());
            }
        }
        self.waiting.store(true, Ordering::SeqCst);
    }

    /// The runtime is busy: wakes go to the reader tasks.
    pub(super) fn stop_waiting(&self) {
        self.waiting.store(false, Ordering::SeqCst);
    }

    /// The lane that woke first, if any.
    pub(super) fn pop(&self) -> Option<Arc<Lane>> {
        let lane = lock(&self.ready).pop_front()?;
        lane.queued.store(false, Ordering::SeqCst);
        Some(lane)
    }

    /// Whether no lane waits for the runtime.
    pub(super) fn is_empty(&self) -> bool {
        lock(&self.ready).is_empty()
    }

    /// Gives every lane that woke for the runtime to its reader task
    /// instead (the runtime has other work).
    pub(super) fn hand_to_tasks(&self) {
        while let Some(lane) = self.pop() {
            lane.task.notify_one();
        }
    }

    fn offer(&self, lane: &Arc<Lane>) {
        if !lane.queued.swap(true, Ordering::SeqCst) {
            lock(&self.ready).push_back(lane.clone());
        }
        if !self.waiting.load(Ordering::SeqCst) {
            // The runtime stopped waiting meanwhile and may not look again
            // soon: the task reads.
            self.hand_to_tasks();
        } else if let Some(w) = lock(&self.waker).as_ref() {
            w.wake_by_ref();
        }
    }
}

/// The runtime stops waiting when its `next_event` future ends or is
/// dropped: lanes that woke for it go to their tasks.
pub(super) struct Waiting<'a>(pub(super) &'a Hub);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.stop_waiting();
        self.0.hand_to_tasks();
    }
}

/// What reading a connection needs, whoever reads.
pub(super) struct ReadSide {
    /// The peer's current stream (one at a time).
    pub(super) recv: Option<quinn::RecvStream>,
    pub(super) dec: FrameDecoder,
    pub(super) reader: FrameReader,
    pub(super) activity: Activity,
    /// A read the runtime made and gave back to the task.
    handed: Option<Read>,
}

impl ReadSide {
    pub(super) fn new(dec: FrameDecoder, reader: FrameReader, activity: Activity) -> Self {
        ReadSide {
            recv: None,
            dec,
            reader,
            activity,
            handed: None,
        }
    }

    fn poll_read(&mut self, waker: &Waker) -> Poll<Read> {
        let Some(recv) = self.recv.as_mut() else {
            return Poll::Ready(Ok(None));
        };
        pin!(recv.read_chunk(READ_CHUNK, true)).poll(&mut Context::from_waker(waker))
    }
}

/// One connection's read side and who reads it.
pub(super) struct Lane {
    state: AtomicU8,
    /// In the hub's ready list.
    queued: AtomicBool,
    /// The last chunk read held more (or less) than one whole frame: the
    /// peer sends in bursts, which its task reads.
    burst: AtomicBool,
    /// Wakes the reader task.
    task: Notify,
    hub: Arc<Hub>,
    side: Mutex<ReadSide>,
    /// The connection, if the runtime may read it (a drained connection's
    /// task reads alone).
    id: Option<ConnId>,
}

impl Wake for Lane {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.state.load(Ordering::SeqCst) == IDLE
            && !self.burst.load(Ordering::Relaxed)
            && self.hub.waiting.load(Ordering::SeqCst)
        {
            self.hub.offer(self);
        } else {
            self.task.notify_one();
        }
    }
}

impl Lane {
    /// A lane read by its task, and by the runtime too when `id` is given.
    pub(super) fn new(hub: Arc<Hub>, side: ReadSide, id: Option<ConnId>) -> Arc<Self> {
        Arc::new(Lane {
            state: AtomicU8::new(TASK),
            queued: AtomicBool::new(false),
            burst: AtomicBool::new(false),
            task: Notify::new(),
            hub,
            side: Mutex::new(side),
            id,
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, ReadSide> {
        lock(&self.side)
    }

    /// The task's next read: what the runtime gave back, or the stream's
    /// next chunk; `None` if nothing is there yet (then [`Lane::wait`]).
    pub(super) fn next_read(self: &Arc<Self>) -> Option<Read> {
        let waker = Waker::from(self.clone());
        let mut side = self.lock();
        if let Some(read) = side.handed.take() {
            return Some(read);
        }
        match side.poll_read(&waker) {
            Poll::Ready(read) => Some(read),
            Poll::Pending => None,
        }
    }

    /// The task read everything: waits until the stream wakes it (or the
    /// runtime gives a read back), then reads again.
    pub(super) async fn wait(&self) {
        if self.id.is_some() {
            self.state.store(IDLE, Ordering::SeqCst);
        }
        self.task.notified().await;
        loop {
            match self
                .state
                .compare_exchange(IDLE, TASK, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) | Err(TASK) => return,
                // The runtime is reading one chunk: a few microseconds.
                Err(_) => tokio::task::yield_now().await,
            }
        }
    }

    /// The task reads `bytes`: whether the peer sends in bursts.
    pub(super) fn note_chunk(&self, side: &ReadSide, bytes: &[u8]) {
        self.burst
            .store(one_frame(&side.dec, bytes).is_none(), Ordering::Relaxed);
    }

    fn give_back(&self, mut side: MutexGuard<'_, ReadSide>, read: Read) {
        side.handed = Some(read);
        drop(side);
        self.state.store(TASK, Ordering::SeqCst);
        self.task.notify_one();
    }
}

/// The body of `bytes` if they are exactly one whole frame, read at a
/// frame boundary, within the limit (a frame the decoder would take as it
/// is; anything else is the decoder's to judge).
fn one_frame<'a>(dec: &FrameDecoder, bytes: &'a [u8]) -> Option<&'a [u8]> {
    let (header, body) = bytes.split_first_chunk::<4>()?;
    let whole = dec.buffered() == 0 && u32::from_be_bytes(*header) as usize == body.len();
    (whole && !body.is_empty() && body.len() <= dec.max_frame()).then_some(body)
}

/// The runtime reads one chunk of an idle lane that woke for it: the event
/// if it was exactly one frame (not shed); otherwise the read goes back to
/// the reader task and this gives `None`. `queued` says whether events
/// wait in the channel: those may be this peer's, queued by its task just
/// before it went idle, and come first, so the task reads on instead.
pub(super) fn read_for_runtime(
    shared: &Shared,
    lane: &Arc<Lane>,
    queued: impl Fn() -> bool,
) -> Option<TransportEvent> {
    let id = lane.id?;
    if lane
        .state
        .compare_exchange(IDLE, RUNTIME, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return None;
    }
    if queued() {
        lane.state.store(TASK, Ordering::SeqCst);
        lane.task.notify_one();
        return None;
    }
    let waker = Waker::from(lane.clone());
    let mut side = lane.lock();
    let chunk = match side.poll_read(&waker) {
        Poll::Pending => {
            drop(side);
            lane.state.store(IDLE, Ordering::SeqCst);
            return None;
        }
        Poll::Ready(Ok(Some(chunk))) if one_frame(&side.dec, &chunk.bytes).is_some() => chunk,
        Poll::Ready(other) => {
            lane.burst.store(true, Ordering::Relaxed);
            lane.give_back(side, other);
            return None;
        }
    };
    let cfg = &shared.cfg.transport;
    let now = shared.now();
    if side.activity.due(now) {
        shared.lock().admission.handle_activity(now, id);
    }
    // The frame is taken in place: the decoder, at a frame boundary,
    // stays there.
    let event = one_frame(&side.dec, &chunk.bytes).and_then(|frame| {
        let side = &mut *side;
        side.reader.admit(cfg, frame, now)
    });
    if event.is_none() {
        count(&shared.counters.frames_shed);
    }
    // Read on, so that quinn wakes us (or the task) for the next chunk;
    // anything already there is the task's.
    match side.poll_read(&waker) {
        Poll::Pending => {
            drop(side);
            lane.state.store(IDLE, Ordering::SeqCst);
        }
        Poll::Ready(read) => lane.give_back(side, read),
    }
    event
}
