//! The driver's pending timeouts (docs/ARCHITECTURE.md "The machine
//! vocabulary": timers are `poll_timeout` plus `handle_timeout(now)`, and
//! no machine asks its host to set a timer).
//!
//! Each started timeout is kept with its deadline and the order it was
//! started in; [`Timers::take_due`] hands out every timeout due at `now`,
//! earliest first and, for equal deadlines, in the order they were started.

use std::collections::BTreeMap;

use undchain_types::LocalTime;

use super::contract::Timeout;

/// Started timeouts by (deadline, start order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Timers {
    started: u64,
    pending: BTreeMap<(LocalTime, u64), Timeout>,
}

impl Timers {
    /// Starts `timeout`, due at `at`.
    pub(super) fn start(&mut self, at: LocalTime, timeout: Timeout) {
        self.started = self.started.wrapping_add(1);
        self.pending.insert((at, self.started), timeout);
    }

    /// Forgets every timeout `keep` rejects (they could no longer act).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Timeout) -> bool) {
        self.pending.retain(|_, t| keep(t));
    }

    /// Forgets every timeout (a new height starts afresh).
    pub(super) fn clear(&mut self) {
        self.pending.clear();
    }

    /// Every pending timeout with its deadline, in firing order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (LocalTime, Timeout)> + '_ {
        self.pending.iter().map(|(&(at, _), &t)| (at, t))
    }

    /// Removes and returns every timeout due at `now`, in firing order.
    pub(super) fn take_due(&mut self, now: LocalTime) -> Vec<Timeout> {
        let mut due = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round::TimeoutKind;
    use undchain_types::BlockNumber;

    fn t(round: u32, kind: TimeoutKind) -> Timeout {
        Timeout {
            height: BlockNumber(1),
            round,
            kind,
        }
    }

    #[test]
    fn due_ones_come_out_by_deadline_then_start_order() {
        let mut timers = Timers::default();
        timers.start(LocalTime(30), t(0, TimeoutKind::Rebroadcast));
        timers.start(LocalTime(20), t(0, TimeoutKind::Propose));
        timers.start(LocalTime(30), t(0, TimeoutKind::Prevote));
        timers.start(LocalTime(40), t(1, TimeoutKind::Propose));
        assert_eq!(timers.take_due(LocalTime(19)), vec![]);
        assert_eq!(
            timers.take_due(LocalTime(20)),
            vec![t(0, TimeoutKind::Propose)]
        );
        assert_eq!(
            timers.take_due(LocalTime(35)),
            vec![t(0, TimeoutKind::Rebroadcast), t(0, TimeoutKind::Prevote)]
        );
        assert_eq!(timers.take_due(LocalTime(35)), vec![], "twice is harmless");
        assert_eq!(
            timers.iter().collect::<Vec<_>>(),
            vec![(LocalTime(40), t(1, TimeoutKind::Propose))]
        );
        timers.retain(|x| x.round == 0);
        assert_eq!(timers.iter().count(), 0);
    }
}
