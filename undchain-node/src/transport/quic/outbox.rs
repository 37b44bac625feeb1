//! One key's outbound queue, and the stream of its current connection.
//!
//! A frame sent after a pause, with nothing waiting to be written, is
//! written onto the stream by the sender itself ([`Outbox::push`]), in its
//! own task: no writer task is woken and the envelope leaves one task
//! hand-off sooner. Otherwise (a burst of frames, QUIC flow control holding
//! the stream, a frame written in part, no connection yet) the frame joins
//! the queue, which the connection's writer task drains, coalescing small
//! frames into one write. Order is kept: a sender writes directly only
//! when the queue is empty and the writer has parked the stream.
//!
//! The queue outlives connections (a key's next connection carries what
//! its last one left), and its caps are
//! [`undchain_net::TransportConfig::queue_per_peer`] frames and
//! [`undchain_net::TransportConfig::queue_bytes_per_peer`] bytes.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;
use undchain_types::LocalTime;

/// The queue was over one of its caps; the frame was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Full;

/// One key's outbound frames and the stream they go to.
#[derive(Debug)]
pub(super) struct Outbox {
    inner: Mutex<Inner>,
    /// Wakes the writer holding the outbox: frames wait.
    wake: Notify,
    /// Held by the writer of the key's current connection; the writer of
    /// a newer connection waits until the retired one lets go.
    writer: Arc<tokio::sync::Mutex<()>>,
    cap_frames: usize,
    cap_bytes: usize,
}

#[derive(Debug, Default)]
struct Inner {
    frames: VecDeque<Vec<u8>>,
    /// Bytes in `frames`.
    bytes: usize,
    /// The writer's stream while the writer waits with nothing queued:
    /// senders write onto it directly.
    parked: Option<quinn::SendStream>,
    /// When the last frame was pushed.
    last_push: Option<LocalTime>,
}

/// A frame pushed this soon after the one before (microseconds) is part of
/// a burst and goes to the writer, which coalesces the burst into few
/// large writes; written one by one from the senders, small frames cost a
/// quinn call, a driver wake and a contended connection lock each (the
/// one-way throughput fell by a third). A frame after a pause is a
/// request or a reply, and goes straight out.
pub(super) const QUIET_US: u64 = 5;

/// What writing a frame straight onto a stream came to.
enum Direct {
    /// All of it went.
    Done,
    /// The first `n` bytes went (maybe none); the stream cannot take more
    /// now, or it failed: the writer takes it from here.
    Partial(usize),
}

/// Writes as much of `buf` as the stream takes now, without waiting.
fn write_now(stream: &mut quinn::SendStream, buf: &[u8]) -> Direct {
    // A stream that is blocked keeps this no-op waker until the writer
    // polls it with its own.
    let mut cx = Context::from_waker(Waker::noop());
    let mut done = 0;
    while done < buf.len() {
        match Pin::new(&mut *stream).poll_write(&mut cx, &buf[done..]) {
            Poll::Ready(Ok(n)) if n > 0 => done += n,
            _ => return Direct::Partial(done),
        }
    }
    Direct::Done
}

impl Outbox {
    /// An empty outbox holding at most `cap_frames` frames and `cap_bytes`
    /// bytes (each cap at least one).
    pub(super) fn new(cap_frames: usize, cap_bytes: usize) -> Self {
        Outbox {
            inner: Mutex::default(),
            wake: Notify::new(),
            writer: Arc::new(tokio::sync::Mutex::new(())),
            cap_frames: cap_frames.max(1),
            cap_bytes: cap_bytes.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `frame` at `now`: written onto the parked stream at once if
    /// nothing waits and nothing was sent for [`QUIET_US`], otherwise queued
    /// for the writer. [`Full`] if the queue has no room for it (nothing
    /// was written then).
    pub(super) fn push(&self, mut frame: Vec<u8>, now: LocalTime) -> Result<(), Full> {
        let mut inner = self.lock();
        if inner.frames.len() >= self.cap_frames
            || inner.bytes.saturating_add(frame.len()) > self.cap_bytes
        {
            return Err(Full);
        }
        let quiet = inner
            .last_push
            .is_none_or(|last| now.since(last) >= QUIET_US);
        inner.last_push = Some(now);
        if quiet
            && inner.frames.is_empty()
            && let Some(stream) = inner.parked.as_mut()
        {
            match write_now(stream, &frame) {
                Direct::Done => return Ok(()),
                Direct::Partial(n) => {
                    frame.drain(..n);
                }
            }
        }
        inner.bytes += frame.len();
        inner.frames.push_back(frame);
        drop(inner);
        self.wake.notify_one();
        Ok(())
    }

    /// The lock a writer holds while it carries this outbox.
    pub(super) fn writer(&self) -> Arc<tokio::sync::Mutex<()>> {
        self.writer.clone()
    }

    /// Takes the stream back with up to `batch` bytes of queued frames
    /// (at least one frame) coalesced into one buffer; `None` if nothing
    /// waits (the stream stays parked for senders).
    pub(super) fn take_batch(
        &self,
        stream: &mut Option<quinn::SendStream>,
        batch: usize,
    ) -> Option<Vec<u8>> {
        let mut inner = self.lock();
        if stream.is_none() {
            *stream = inner.parked.take();
        }
        let Some(mut buf) = inner.frames.pop_front() else {
            inner.parked = stream.take();
            return None;
        };
        while let Some(next) = inner.frames.front()
            && buf.len() + next.len() <= batch
        {
            buf.extend_from_slice(next);
            inner.frames.pop_front();
        }
        inner.bytes -= buf.len();
        Some(buf)
    }

    /// Waits until frames may wait (a sender queued one).
    pub(super) async fn queued(&self) {
        self.wake.notified().await;
    }

    /// Takes the parked stream away from senders (the writer stops).
    pub(super) fn unpark(&self) -> Option<quinn::SendStream> {
        self.lock().parked.take()
    }
}

/// Tells a connection's writer that another connection replaced its own:
/// it finishes its stream after the batch under way and lets the outbox go.
#[derive(Debug, Default)]
pub(super) struct Retire {
    done: AtomicBool,
    notify: Notify,
}

impl Retire {
    /// Retires the writer.
    pub(super) fn retire(&self) {
        self.done.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Whether the writer was retired.
    pub(super) fn is_retired(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Waits until the writer is retired.
    pub(super) async fn retired(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_retired() {
                return;
            }
            notified.await;
        }
    }
}

/// Reports a connection's traffic to the admission's idle clock a few
/// times per idle period at most (one report a quarter period), not per
/// frame.
#[derive(Debug, Clone, Copy)]
pub(super) struct Activity {
    last: LocalTime,
    every: u64,
}

impl Activity {
    /// Traffic seen at `now`, reported every `idle_us / 4`.
    pub(super) fn new(now: LocalTime, idle_us: u64) -> Self {
        Activity {
            last: now,
            every: idle_us / 4,
        }
    }

    /// Whether traffic at `now` is due to be reported (it then counts as
    /// reported).
    pub(super) fn due(&mut self, now: LocalTime) -> bool {
        let due = now.since(self.last) >= self.every;
        if due {
            self.last = now;
        }
        due
    }
}
