//! The peer book: every validator the node may talk to, with what it has
//! observed of each medium (docs/PROTOCOL.md "Transport, framing, retries and
//! scream cast"; DESIGN.md "Validator list and connections"; design notes,
//! client story step 1).
//!
//! It is built from the bootstrap list ([`ValidatorBook`], parsed from the
//! TOML text the node read) and from the on-chain validator set once there
//! is one. The file is re-read only on request: [`PeerBook::reload_bootstrap`]
//! swaps in a new list and keeps the observations of every (validator,
//! endpoint) pair that is still listed.
//!
//! Observations are integer moving averages, so every node computes the same
//! numbers from the same inputs:
//! - latency: the first sample replaces the listed expectation, later ones
//!   move it by `(sample - avg) / 2^latency_shift` (RFC 6298's SRTT with
//!   alpha = 1/8 by default);
//! - reliability, in per mille: a success moves it up by
//!   `ceil((1000 - r) / 2^reliability_shift)`, a failure down by
//!   `ceil(r / 2^reliability_shift)`.
//!
//! Who counts as a validator: a key that the on-chain validator set names,
//! or, before the chain exists (no set given yet), the bootstrap list
//! ([`PeerBook::accepts_as_validator`]). Scream cast reaches every validator
//! of both ([`PeerBook::scream_order`]).

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::msg::{Endpoint, ValidatorInfo};
use undchain_types::{PublicKey, ValidatorBook};

/// Tuning of the moving averages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerBookConfig {
    /// Latency average weight: a new sample counts `1 / 2^latency_shift`.
    pub latency_shift: u8,
    /// Reliability average weight: an outcome counts `1 / 2^reliability_shift`.
    pub reliability_shift: u8,
    /// Expected latency of a medium only the validator set names (no listed
    /// expectation), in microseconds.
    pub unlisted_latency_us: u64,
    /// Expected reliability of such a medium, per mille.
    pub unlisted_reliability_permille: u16,
}

impl Default for PeerBookConfig {
    fn default() -> Self {
        PeerBookConfig {
            latency_shift: 3,
            reliability_shift: 3,
            unlisted_latency_us: 250_000,
            unlisted_reliability_permille: 500,
        }
    }
}

/// What the node knows of one medium of one validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediumState {
    /// The medium and address this state is about.
    pub endpoint: Endpoint,
    /// Latency from the list (or the unlisted default), us.
    pub expected_latency_us: u64,
    /// Moving average of observed latency (the expectation until the first
    /// sample), us.
    pub latency_us: u64,
    /// Moving average of outcomes, per mille (the listed reliability until
    /// the first outcome).
    pub reliability_permille: u16,
    /// How many latency samples were taken (0: the latency is still the
    /// expectation).
    pub samples: u64,
    /// How many contacts over this medium succeeded.
    pub successes: u64,
    /// How many contacts over this medium failed (refused, timed out,
    /// wrong key).
    pub failures: u64,
}

impl MediumState {
    fn new(endpoint: Endpoint, latency_us: u64, reliability_permille: u16) -> Self {
        MediumState {
            endpoint,
            expected_latency_us: latency_us,
            latency_us,
            reliability_permille: reliability_permille.min(1000),
            samples: 0,
            successes: 0,
            failures: 0,
        }
    }
}

/// Where a validator's entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sources {
    /// Named by the bootstrap list.
    pub bootstrap: bool,
    /// Named by the on-chain validator set.
    pub validator_set: bool,
}

/// One validator of the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// The validator's identity key.
    pub id: PublicKey,
    /// Its alias from the bootstrap list, if any.
    pub alias: Option<String>,
    /// Which lists name it.
    pub sources: Sources,
    /// Its media with observations, in listed order.
    pub media: Vec<MediumState>,
}

impl PeerEntry {
    /// Its lowest observed (or expected) latency over all media.
    pub fn best_latency_us(&self) -> u64 {
        self.media
            .iter()
            .map(|m| m.latency_us)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Its highest reliability over all media, per mille.
    pub fn best_reliability_permille(&self) -> u16 {
        self.media
            .iter()
            .map(|m| m.reliability_permille)
            .max()
            .unwrap_or(0)
    }

    /// Its media sorted by latency (ties: listed order).
    pub fn media_by_latency(&self) -> Vec<&MediumState> {
        let mut v: Vec<(usize, &MediumState)> = self.media.iter().enumerate().collect();
        v.sort_by_key(|(i, m)| (m.latency_us, *i));
        v.into_iter().map(|(_, m)| m).collect()
    }
}

/// One address to try in a scream cast.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScreamTarget {
    /// The medium's latency when the plan was made, us (sort key).
    pub latency_us: u64,
    /// The validator expected at the address.
    pub validator: PublicKey,
    /// The medium and address.
    pub endpoint: Endpoint,
}

/// The peer book. Deterministic: ordered maps only, integer arithmetic.
#[derive(Debug, Clone, Default)]
pub struct PeerBook {
    cfg: PeerBookConfig,
    peers: BTreeMap<PublicKey, PeerEntry>,
    bootstrap: BTreeSet<PublicKey>,
    validator_set: Option<BTreeSet<PublicKey>>,
}

impl PeerBook {
    /// A book of the bootstrap list `list`, default tuning.
    pub fn from_bootstrap(list: &ValidatorBook) -> Self {
        Self::with_config(list, PeerBookConfig::default())
    }

    /// A book of the bootstrap list `list` with `cfg`.
    pub fn with_config(list: &ValidatorBook, cfg: PeerBookConfig) -> Self {
        let mut book = PeerBook {
            cfg,
            ..PeerBook::default()
        };
        book.reload_bootstrap(list);
        book
    }

    /// Replaces the bootstrap list (the node re-read the file on request).
    /// Observations of (validator, endpoint) pairs still listed are kept;
    /// validators that no list names any more are dropped.
    pub fn reload_bootstrap(&mut self, list: &ValidatorBook) {
        self.bootstrap = list.iter().map(|r| r.id).collect();
        for entry in self.peers.values_mut() {
            entry.sources.bootstrap = false;
        }
        for r in list.iter() {
            let entry = self.peers.entry(r.id).or_insert_with(|| PeerEntry {
                id: r.id,
                alias: None,
                sources: Sources::default(),
                media: Vec::new(),
            });
            entry.alias = Some(r.alias.clone());
            entry.sources.bootstrap = true;
            let mut media: Vec<MediumState> = r
                .media
                .iter()
                .map(
                    |m| match entry.media.iter().find(|old| old.endpoint == m.endpoint) {
                        Some(old) => MediumState {
                            expected_latency_us: m.latency_us,
                            ..old.clone()
                        },
                        None => MediumState::new(
                            m.endpoint.clone(),
                            m.latency_us,
                            m.reliability_permille,
                        ),
                    },
                )
                .collect();
            // Media only the validator set names stay while it names them.
            if entry.sources.validator_set {
                for old in &entry.media {
                    if !media.iter().any(|m| m.endpoint == old.endpoint) {
                        media.push(old.clone());
                    }
                }
            }
            entry.media = media;
        }
        self.prune();
    }

    /// Sets the on-chain validator set (active and passive, from committed
    /// registrations). From now on only it decides who is accepted as a
    /// validator; the bootstrap list still takes part in scream casts.
    pub fn set_validator_set(&mut self, validators: &[ValidatorInfo]) {
        let set: BTreeSet<PublicKey> = validators.iter().map(|v| v.id).collect();
        for entry in self.peers.values_mut() {
            entry.sources.validator_set = false;
        }
        for v in validators {
            let cfg = self.cfg;
            let entry = self.peers.entry(v.id).or_insert_with(|| PeerEntry {
                id: v.id,
                alias: None,
                sources: Sources::default(),
                media: Vec::new(),
            });
            entry.sources.validator_set = true;
            for ep in v.media.iter() {
                if !entry.media.iter().any(|m| &m.endpoint == ep) {
                    entry.media.push(MediumState::new(
                        ep.clone(),
                        cfg.unlisted_latency_us,
                        cfg.unlisted_reliability_permille,
                    ));
                }
            }
        }
        self.validator_set = Some(set);
        self.prune();
    }

    fn prune(&mut self) {
        self.peers
            .retain(|_, e| e.sources.bootstrap || e.sources.validator_set);
    }

    /// Whether `key` is accepted as a validator: named by the validator set,
    /// or, before there is one, by the bootstrap list.
    pub fn accepts_as_validator(&self, key: &PublicKey) -> bool {
        match &self.validator_set {
            Some(set) => set.contains(key),
            None => self.bootstrap.contains(key),
        }
    }

    /// The keys accepted as validators (see [`PeerBook::accepts_as_validator`]),
    /// for the transport's handshake check.
    pub fn validator_keys(&self) -> BTreeSet<PublicKey> {
        match &self.validator_set {
            Some(set) => set.clone(),
            None => self.bootstrap.clone(),
        }
    }

    /// The entry of `id`.
    pub fn get(&self, id: &PublicKey) -> Option<&PeerEntry> {
        self.peers.get(id)
    }

    /// Every entry, by id.
    pub fn iter(&self) -> impl Iterator<Item = &PeerEntry> {
        self.peers.values()
    }

    /// Number of validators in the book.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    fn medium_mut(&mut self, id: &PublicKey, endpoint: &Endpoint) -> Option<&mut MediumState> {
        self.peers
            .get_mut(id)?
            .media
            .iter_mut()
            .find(|m| &m.endpoint == endpoint)
    }

    /// Records a latency sample (a round trip) of `id` over `endpoint`.
    /// Returns false when the book does not know that pair.
    pub fn observe_latency(&mut self, id: &PublicKey, endpoint: &Endpoint, sample_us: u64) -> bool {
        let shift = self.cfg.latency_shift.min(16);
        let Some(m) = self.medium_mut(id, endpoint) else {
            return false;
        };
        m.latency_us = if m.samples == 0 {
            sample_us
        } else {
            let avg = i128::from(m.latency_us);
            let delta = i128::from(sample_us) - avg;
            // Division rounds toward zero; the average never leaves the
            // range of the samples.
            let next = avg + delta / (1i128 << shift);
            u64::try_from(next.max(0)).unwrap_or(u64::MAX)
        };
        m.samples += 1;
        true
    }

    /// Records a successful contact. Returns false for an unknown pair.
    pub fn observe_success(&mut self, id: &PublicKey, endpoint: &Endpoint) -> bool {
        let shift = self.cfg.reliability_shift.min(10);
        let Some(m) = self.medium_mut(id, endpoint) else {
            return false;
        };
        let r = u32::from(m.reliability_permille);
        let up = (1000 - r).div_ceil(1 << shift);
        m.reliability_permille = (r + up).min(1000) as u16;
        m.successes += 1;
        true
    }

    /// Records a failed contact (refused, timed out, wrong key). Returns
    /// false for an unknown pair.
    pub fn observe_failure(&mut self, id: &PublicKey, endpoint: &Endpoint) -> bool {
        let shift = self.cfg.reliability_shift.min(10);
        let Some(m) = self.medium_mut(id, endpoint) else {
            return false;
        };
        let r = u32::from(m.reliability_permille);
        let down = r.div_ceil(1 << shift);
        m.reliability_permille = (r - down) as u16;
        m.failures += 1;
        true
    }

    /// All validators ordered by observed latency (their best medium), ties
    /// by higher reliability, then by id.
    pub fn ranked(&self) -> Vec<&PeerEntry> {
        let mut v: Vec<&PeerEntry> = self.peers.values().collect();
        v.sort_by_key(|e| {
            (
                e.best_latency_us(),
                core::cmp::Reverse(e.best_reliability_permille()),
                e.id,
            )
        });
        v
    }

    /// The `k` validators with the lowest observed latency (client story
    /// step 1: a request goes to the lowest-latency active validators,
    /// default 3), among those `eligible` accepts.
    pub fn lowest_latency(
        &self,
        k: usize,
        eligible: impl Fn(&PeerEntry) -> bool,
    ) -> Vec<PublicKey> {
        self.ranked()
            .into_iter()
            .filter(|e| eligible(e))
            .take(k)
            .map(|e| e.id)
            .collect()
    }

    /// The scream cast plan: every medium and address of every validator of
    /// the bootstrap list and the validator set, in order of latency (ties
    /// by validator id, then endpoint).
    pub fn scream_order(&self) -> Vec<ScreamTarget> {
        let mut v: Vec<ScreamTarget> = self
            .peers
            .values()
            .flat_map(|e| {
                e.media.iter().map(|m| ScreamTarget {
                    latency_us: m.latency_us,
                    validator: e.id,
                    endpoint: m.endpoint.clone(),
                })
            })
            .collect();
        v.sort();
        v
    }
}
