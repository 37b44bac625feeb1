//! Virtual time for a simulator: a queue of events ordered by when they are
//! due, ties broken by the order they were pushed (so a run never depends
//! on a heap's internal order).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use undchain_types::LocalTime;

#[derive(Debug)]
struct Scheduled<T, E> {
    at: T,
    seq: u64,
    event: E,
}

impl<T: Ord, E> PartialEq for Scheduled<T, E> {
    fn eq(&self, o: &Self) -> bool {
        self.seq == o.seq && self.at == o.at
    }
}
impl<T: Ord, E> Eq for Scheduled<T, E> {}
impl<T: Ord, E> PartialOrd for Scheduled<T, E> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<T: Ord, E> Ord for Scheduled<T, E> {
    // Earliest first in a max-heap.
    fn cmp(&self, o: &Self) -> Ordering {
        o.at.cmp(&self.at).then_with(|| o.seq.cmp(&self.seq))
    }
}

/// Events of type `E` due at times of type `T` ([`LocalTime`] unless a
/// simulator counts time another way).
#[derive(Debug)]
pub struct EventQueue<E, T = LocalTime> {
    heap: BinaryHeap<Scheduled<T, E>>,
    seq: u64,
}

impl<E, T: Ord + Copy> Default for EventQueue<E, T> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<E, T: Ord + Copy> EventQueue<E, T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `event` at `at`; it pops after every event already due at
    /// `at`.
    pub fn push(&mut self, at: T, event: E) {
        self.seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    /// The earliest event with its time.
    pub fn pop(&mut self) -> Option<(T, E)> {
        self.heap.pop().map(|s| (s.at, s.event))
    }

    /// When the earliest event is due.
    pub fn peek_time(&self) -> Option<T> {
        self.heap.peek().map(|s| s.at)
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Events pushed so far (a run's event count, for reports and bounds).
    pub fn pushed(&self) -> u64 {
        self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_order_then_push_order() {
        let mut q: EventQueue<&str, u64> = EventQueue::new();
        q.push(5, "c");
        q.push(1, "a");
        q.push(5, "d");
        q.push(1, "b");
        assert_eq!(q.peek_time(), Some(1));
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(1, "a"), (1, "b"), (5, "c"), (5, "d")]);
        assert!(q.is_empty());
        assert_eq!(q.pushed(), 4);
    }
}
