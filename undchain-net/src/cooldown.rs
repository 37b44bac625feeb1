//! Cooldown tracking: at-capacity cooldowns and heartbeat expiry (DESIGN.md
//! "Partner to validator": still-active heartbeats every 60 s by default,
//! three missed means gone; at-capacity messages at least 30 s apart).
//!
//! [`CapacityCooldown`] refuses a partner's second at-capacity message within
//! the cooldown and says how long the partner still counts as at capacity.
//! [`Liveness`] tracks the last still-active heartbeat of each partner and
//! reports, in deadline order, those that missed `misses` heartbeats in a
//! row: a partner whose last heartbeat was at `t` is gone once
//! `now > t + misses * interval`. It wakes like every machine: at
//! [`Liveness::poll_timeout`], through [`Liveness::handle_timeout`].

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::{ChainParams, LocalTime, PublicKey};

/// A second at-capacity message inside the cooldown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{peer} sent at-capacity {since_us}us after its last one; the cooldown is {cooldown_us}us")]
pub struct TooSoon {
    /// The partner whose message was refused.
    pub peer: PublicKey,
    /// Time since its last accepted at-capacity message, us.
    pub since_us: u64,
    /// The cooldown it must wait between two such messages, us.
    pub cooldown_us: u64,
}

/// At-capacity cooldowns per partner.
#[derive(Debug, Clone)]
pub struct CapacityCooldown {
    cooldown_us: u64,
    last: BTreeMap<PublicKey, LocalTime>,
}

impl CapacityCooldown {
    /// Cooldowns of `cooldown_us` microseconds between two at-capacity
    /// messages of one partner.
    pub fn new(cooldown_us: u64) -> Self {
        CapacityCooldown {
            cooldown_us,
            last: BTreeMap::new(),
        }
    }

    /// The chain's cooldown (default 30 s).
    pub fn from_params(params: &ChainParams) -> Self {
        Self::new(params.capacity_cooldown_us)
    }

    /// Records an at-capacity message of `peer` at `now`, or refuses it
    /// (changing nothing) inside the cooldown. Entries past their cooldown
    /// are pruned, so memory holds only partners within one cooldown.
    pub fn record(&mut self, peer: PublicKey, now: LocalTime) -> Result<(), TooSoon> {
        if let Some(&t) = self.last.get(&peer) {
            let since_us = now.since(t);
            if since_us < self.cooldown_us {
                return Err(TooSoon {
                    peer,
                    since_us,
                    cooldown_us: self.cooldown_us,
                });
            }
        }
        let cooldown = self.cooldown_us;
        self.last.retain(|_, t| now.since(*t) < cooldown);
        self.last.insert(peer, now);
        Ok(())
    }

    /// Whether `peer` is at capacity at `now` (inside the cooldown of its
    /// last at-capacity message).
    pub fn is_at_capacity(&self, peer: &PublicKey, now: LocalTime) -> bool {
        self.last
            .get(peer)
            .is_some_and(|t| now.since(*t) < self.cooldown_us)
    }

    /// Clears `peer` (it announced capacity again, or signed off).
    pub fn clear(&mut self, peer: &PublicKey) {
        self.last.remove(peer);
    }
}

/// Heartbeat expiry per partner.
#[derive(Debug, Clone)]
pub struct Liveness {
    interval_us: u64,
    misses: u8,
    last: BTreeMap<PublicKey, LocalTime>,
    deadlines: BTreeSet<(LocalTime, PublicKey)>,
}

impl Liveness {
    /// Heartbeats every `interval_us`; gone after `misses` missed.
    pub fn new(interval_us: u64, misses: u8) -> Self {
        Liveness {
            interval_us,
            misses: misses.max(1),
            last: BTreeMap::new(),
            deadlines: BTreeSet::new(),
        }
    }

    /// The chain's heartbeat interval and misses (default 60 s, 3).
    pub fn from_params(params: &ChainParams) -> Self {
        Self::new(params.heartbeat_us, params.heartbeat_misses)
    }

    fn deadline(&self, t: LocalTime) -> LocalTime {
        t.plus(self.interval_us.saturating_mul(u64::from(self.misses)))
    }

    /// A still-active heartbeat (or any sign of life) from `peer` at `now`.
    pub fn heartbeat(&mut self, peer: PublicKey, now: LocalTime) {
        if let Some(old) = self.last.insert(peer, now) {
            let d = self.deadline(old);
            self.deadlines.remove(&(d, peer));
        }
        let d = self.deadline(now);
        self.deadlines.insert((d, peer));
    }

    /// Stops tracking `peer` (it signed off).
    pub fn remove(&mut self, peer: &PublicKey) {
        if let Some(old) = self.last.remove(peer) {
            let d = self.deadline(old);
            self.deadlines.remove(&(d, *peer));
        }
    }

    /// Whether `peer` is tracked and not yet gone at `now`.
    pub fn is_alive(&self, peer: &PublicKey, now: LocalTime) -> bool {
        self.last
            .get(peer)
            .is_some_and(|t| now <= self.deadline(*t))
    }

    /// Time passed: removes and returns the peers that missed `misses`
    /// heartbeats by `now`, earliest deadline first (nothing when called
    /// early).
    pub fn handle_timeout(&mut self, now: LocalTime) -> Vec<PublicKey> {
        let mut out = Vec::new();
        while let Some(&(d, peer)) = self.deadlines.first() {
            if d >= now {
                break;
            }
            self.deadlines.pop_first();
            self.last.remove(&peer);
            out.push(peer);
        }
        out
    }

    /// When [`Liveness::handle_timeout`] may next report someone: just past
    /// the earliest deadline (a peer is gone only once `now` is beyond it).
    pub fn poll_timeout(&self) -> Option<LocalTime> {
        self.deadlines.first().map(|(d, _)| d.plus(1))
    }

    /// How many partners are tracked.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether nobody is tracked.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}
