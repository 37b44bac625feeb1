//! Network status (validator story item 7; DESIGN.md "Network status is
//! used"): every validator tells the others how it is doing (load, lag,
//! jobs waiting), piggybacked on its job-file deltas and sent alone once a
//! block; each keeps the latest status of every active validator, and when
//! a quorum of the active set (itself included) reports a load at or above
//! `timing.overload_permille` it raises the "domain overloaded" signal (the
//! notes' trigger for a new domain), and clears it once fewer than a quorum
//! report half that load.

use std::collections::BTreeMap;

use undchain_types::msg::NetworkStatus;
use undchain_types::{LocalTime, Message, PublicKey, quorum};

use super::Validator;
use crate::output::NodeEvent;

/// What this validator knows of the others' status.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatusBook {
    /// The latest status of each validator, as it reported it.
    latest: BTreeMap<PublicKey, NetworkStatus>,
    /// Whether the overloaded signal is raised.
    overloaded: bool,
}

impl Validator {
    /// This validator's own status now.
    pub fn network_status(&mut self, now: LocalTime) -> NetworkStatus {
        let held = self.requests.len() as u64;
        let cap = self.timing.load_capacity_jobs.max(1);
        let load = (held.saturating_mul(1000) / cap).min(u64::from(u16::MAX)) as u16;
        let bt = self.block_time(now);
        let due = self.params.block_at(bt).0;
        // Blocks whose time has passed (and whose agreement could have
        // started) but that this validator has not applied.
        let lag = due.saturating_sub(self.height.0.saturating_add(1));
        NetworkStatus {
            load_permille: load,
            connections: self.peers().len() as u32,
            lag_blocks: lag.min(u64::from(u32::MAX)) as u32,
            at_capacity_partners: 0,
            pending_jobs: held.min(u64::from(u32::MAX)) as u32,
            median_peer_rtt_us: self.time.median_rtt_us().unwrap_or(0),
        }
    }

    /// Sends this validator's status to the other active validators (once
    /// a block, beside the deltas that carry it).
    pub(crate) fn send_status(&mut self, now: LocalTime) {
        if now < self.next_status_at {
            return;
        }
        self.next_status_at = now.plus(self.params.block_interval_us);
        let status = self.network_status(now);
        self.record_status(self.me, status.clone());
        self.broadcast(now, Message::NetworkStatus(status), false);
    }

    /// A status from validator `from` (alone or on a delta); only the
    /// active set's count towards the signal.
    pub(crate) fn record_status(&mut self, from: PublicKey, status: NetworkStatus) {
        if !self.set.contains(&from) {
            return;
        }
        self.status.latest.insert(from, status);
        let set = &self.set;
        self.status.latest.retain(|k, _| set.contains(k));
        // Hysteresis: raised at the threshold, cleared only below half of
        // it, so a load swinging around the threshold as blocks commit
        // does not flap.
        let threshold = if self.status.overloaded {
            self.timing.overload_permille / 2
        } else {
            self.timing.overload_permille
        };
        let loaded = self
            .status
            .latest
            .values()
            .filter(|s| s.load_permille >= threshold)
            .count();
        let q = quorum(self.set.len());
        let over = loaded >= q;
        if over != self.status.overloaded {
            self.status.overloaded = over;
            self.event(if over {
                NodeEvent::DomainOverloaded {
                    loaded,
                    active: self.set.len(),
                }
            } else {
                NodeEvent::DomainRecovered {
                    loaded,
                    active: self.set.len(),
                }
            });
        }
    }

    /// The latest status each active validator reported.
    pub fn statuses(&self) -> &BTreeMap<PublicKey, NetworkStatus> {
        &self.status.latest
    }

    /// Whether the domain-overloaded signal is raised.
    pub fn domain_overloaded(&self) -> bool {
        self.status.overloaded
    }
}
