//! A pure replay guard: no envelope applies twice (DESIGN.md "Replay").
//!
//! A repeated (sender, sequence) is reported as [`Verdict::Duplicate`] so the
//! caller can answer idempotently (re-send the same ack) without re-applying.
//! An envelope outside its time window is refused: validator envelopes carry
//! block time and must lie within 2 blocks past / 1 block ahead; client and
//! partner envelopes carry their own wall-clock time and must lie within a
//! wide window (default 10 min either side). Time probes are exempt
//! ([`crate::msg::MessageKind::replay_exempt`]); the caller skips the guard
//! for them.
//!
//! Memory is bounded: sequences older than the window are pruned (the time
//! check refuses them anyway); a sender holding more than
//! `max_seqs_per_sender` sequences forgets its lowest ones and refuses
//! anything at or below them; past `max_senders` the least recently active
//! sender is forgotten, and every envelope from a forgotten sender sent at or
//! before its last seen envelope is refused. Forgetting never lets an
//! envelope apply twice; at worst a very old, unseen envelope is refused.

use std::collections::BTreeMap;

use crate::crypto::PublicKey;
use crate::ids::BlockTime;
use crate::params::ChainParams;

/// Which clock an envelope's `sent_at` is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClockDomain {
    /// Agreed block time (validator to validator).
    Block,
    /// The sender's own wall clock (clients and partners).
    Wall,
}

impl ClockDomain {
    fn index(self) -> usize {
        match self {
            ClockDomain::Block => 0,
            ClockDomain::Wall => 1,
        }
    }
}

/// How far before and after `now` an envelope may have been sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Oldest accepted age, us.
    pub past_us: u64,
    /// Furthest accepted lead, us.
    pub ahead_us: u64,
}

/// Replay guard settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayConfig {
    /// Window for block-time envelopes.
    pub block: Window,
    /// Window for wall-clock envelopes.
    pub wall: Window,
    /// Most remembered sequences per sender.
    pub max_seqs_per_sender: usize,
    /// Most remembered senders.
    pub max_senders: usize,
}

impl ReplayConfig {
    /// The windows of `params`, with memory caps of 4,096 sequences per
    /// sender and 100,000 senders.
    pub fn from_params(params: &ChainParams) -> Self {
        let b = params.block_interval_us;
        ReplayConfig {
            block: Window {
                past_us: b.saturating_mul(u64::from(params.replay_past_blocks)),
                ahead_us: b.saturating_mul(u64::from(params.replay_ahead_blocks)),
            },
            wall: Window {
                past_us: params.user_replay_window_us,
                ahead_us: params.user_replay_window_us,
            },
            max_seqs_per_sender: 4096,
            max_senders: 100_000,
        }
    }

    fn window(&self, d: ClockDomain) -> Window {
        match d {
            ClockDomain::Block => self.block,
            ClockDomain::Wall => self.wall,
        }
    }
}

/// A fresh envelope, or a duplicate to answer idempotently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Never seen: apply it.
    Fresh,
    /// Seen before: do not apply; answer as before.
    Duplicate,
}

/// Why an envelope was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Sent too long ago.
    #[error("envelope sent at {sent_at} is older than the window ({past_us}us before {now})")]
    Stale {
        /// When the envelope says it was sent.
        sent_at: BlockTime,
        /// The receiver's time when it checked.
        now: BlockTime,
        /// How far in the past an envelope may be sent, us.
        past_us: u64,
    },
    /// Sent too far in the future.
    #[error(
        "envelope sent at {sent_at} is further ahead than the window ({ahead_us}us after {now})"
    )]
    Future {
        /// When the envelope says it was sent.
        sent_at: BlockTime,
        /// The receiver's time when it checked.
        now: BlockTime,
        /// How far in the future an envelope may be sent, us.
        ahead_us: u64,
    },
    /// Its sequence (or its sender) was forgotten to bound memory; it may
    /// have been seen, so it is refused.
    #[error("sequence {seq} is at or below the sender's forgotten horizon")]
    Forgotten {
        /// The refused sequence number.
        seq: u64,
    },
}

#[derive(Debug, Clone, Default)]
struct SenderLog {
    /// seq -> sent_at, for sequences inside the window.
    seen: BTreeMap<u64, BlockTime>,
    /// Sequences at or below this were forgotten.
    floor: Option<u64>,
    domain: Option<ClockDomain>,
    activity: u64,
}

/// The replay guard. Deterministic: ordered maps only.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    cfg: ReplayConfig,
    senders: BTreeMap<PublicKey, SenderLog>,
    by_activity: BTreeMap<u64, PublicKey>,
    tick: u64,
    /// Per clock domain: envelopes from forgotten senders sent at or before
    /// this are refused.
    horizon: [Option<BlockTime>; 2],
}

impl ReplayGuard {
    /// A guard with `cfg`.
    pub fn new(cfg: ReplayConfig) -> Self {
        ReplayGuard {
            cfg,
            senders: BTreeMap::new(),
            by_activity: BTreeMap::new(),
            tick: 0,
            horizon: [None, None],
        }
    }

    /// How many senders the guard remembers.
    pub fn senders(&self) -> usize {
        self.senders.len()
    }

    /// Checks (and on `Fresh`, records) an envelope from `sender` with
    /// sequence `seq` sent at `sent_at` on clock `domain`, when that clock
    /// reads `now`.
    pub fn check(
        &mut self,
        sender: &PublicKey,
        seq: u64,
        sent_at: BlockTime,
        domain: ClockDomain,
        now: BlockTime,
    ) -> Result<Verdict, ReplayError> {
        let w = self.cfg.window(domain);
        if sent_at.0 < now.0.saturating_sub(w.past_us) {
            return Err(ReplayError::Stale {
                sent_at,
                now,
                past_us: w.past_us,
            });
        }
        if sent_at.0 > now.0.saturating_add(w.ahead_us) {
            return Err(ReplayError::Future {
                sent_at,
                now,
                ahead_us: w.ahead_us,
            });
        }
        self.tick += 1;
        let tick = self.tick;
        let cutoff = now.0.saturating_sub(w.past_us);
        let known = self.senders.contains_key(sender);
        if !known
            && let Some(h) = self.horizon[domain.index()]
            && sent_at <= h
        {
            return Err(ReplayError::Forgotten { seq });
        }
        let log = self.senders.entry(*sender).or_default();
        if known {
            self.by_activity.remove(&log.activity);
        }
        log.activity = tick;
        log.domain = Some(domain);
        self.by_activity.insert(tick, *sender);

        if log.seen.contains_key(&seq) {
            return Ok(Verdict::Duplicate);
        }
        if log.floor.is_some_and(|f| seq <= f) {
            return Err(ReplayError::Forgotten { seq });
        }
        // Prune what the time window refuses anyway. Everything pruned is
        // older than the window, so forgetting it is safe: a replay of it
        // fails the Stale check.
        log.seen.retain(|_, t| t.0 >= cutoff);
        log.seen.insert(seq, sent_at);
        while log.seen.len() > self.cfg.max_seqs_per_sender {
            if let Some((lowest, _)) = log.seen.pop_first() {
                log.floor = Some(log.floor.map_or(lowest, |f| f.max(lowest)));
            }
        }
        self.evict_if_full(sender);
        Ok(Verdict::Fresh)
    }

    fn evict_if_full(&mut self, keep: &PublicKey) {
        while self.senders.len() > self.cfg.max_senders {
            let Some((_, victim)) = self.by_activity.pop_first() else {
                return;
            };
            if &victim == keep {
                // Never evict the sender just recorded; put it back.
                self.tick += 1;
                self.by_activity.insert(self.tick, victim);
                if let Some(l) = self.senders.get_mut(&victim) {
                    l.activity = self.tick;
                }
                continue;
            }
            if let Some(log) = self.senders.remove(&victim) {
                let newest = log.seen.values().max().copied();
                if let (Some(d), Some(t)) = (log.domain, newest) {
                    let h = &mut self.horizon[d.index()];
                    *h = Some(h.map_or(t, |x| x.max(t)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SigningKey;

    fn cfg() -> ReplayConfig {
        ReplayConfig {
            block: Window {
                past_us: 4_000_000,
                ahead_us: 2_000_000,
            },
            wall: Window {
                past_us: 600_000_000,
                ahead_us: 600_000_000,
            },
            max_seqs_per_sender: 4,
            max_senders: 2,
        }
    }

    fn pk(i: u8) -> PublicKey {
        SigningKey::from_seed([i; 32]).public()
    }

    #[test]
    fn duplicate_is_reported_not_reapplied() {
        let mut g = ReplayGuard::new(cfg());
        let now = BlockTime(100_000_000);
        assert_eq!(
            g.check(&pk(1), 7, now, ClockDomain::Block, now),
            Ok(Verdict::Fresh)
        );
        assert_eq!(
            g.check(&pk(1), 7, now, ClockDomain::Block, now),
            Ok(Verdict::Duplicate)
        );
        // Another sender may use the same sequence.
        assert_eq!(
            g.check(&pk(2), 7, now, ClockDomain::Block, now),
            Ok(Verdict::Fresh)
        );
    }

    #[test]
    fn stale_and_future_are_refused() {
        let mut g = ReplayGuard::new(cfg());
        let now = BlockTime(100_000_000);
        assert!(matches!(
            g.check(&pk(1), 1, now.minus(4_000_001), ClockDomain::Block, now),
            Err(ReplayError::Stale { .. })
        ));
        assert!(matches!(
            g.check(&pk(1), 2, now.plus(2_000_001), ClockDomain::Block, now),
            Err(ReplayError::Future { .. })
        ));
        // The wall-clock window is wider.
        assert_eq!(
            g.check(&pk(1), 3, now.minus(4_000_001), ClockDomain::Wall, now),
            Ok(Verdict::Fresh)
        );
    }

    #[test]
    fn memory_caps_never_allow_a_second_apply() {
        let mut g = ReplayGuard::new(cfg());
        let now = BlockTime(100_000_000);
        for seq in 0..10 {
            assert_eq!(
                g.check(&pk(1), seq, now, ClockDomain::Block, now),
                Ok(Verdict::Fresh)
            );
        }
        // Sequences 0..=5 were forgotten: refused, never fresh again.
        for seq in 0..6 {
            assert_eq!(
                g.check(&pk(1), seq, now, ClockDomain::Block, now),
                Err(ReplayError::Forgotten { seq })
            );
        }
        // Fill past max_senders: pk(1) is evicted, its old envelopes refused.
        g.check(&pk(2), 0, now, ClockDomain::Block, now).unwrap();
        g.check(&pk(3), 0, now, ClockDomain::Block, now).unwrap();
        assert_eq!(g.senders(), 2);
        assert_eq!(
            g.check(&pk(1), 9, now, ClockDomain::Block, now),
            Err(ReplayError::Forgotten { seq: 9 })
        );
        // A later envelope from it is fine.
        assert_eq!(
            g.check(&pk(1), 11, now.plus(1), ClockDomain::Block, now),
            Ok(Verdict::Fresh)
        );
    }
}
