//! Per-peer rate limits: a token bucket per peer, integer arithmetic, time as
//! an input (docs/PROTOCOL.md "Transport, framing, retries and scream cast").
//!
//! Each peer's bucket holds at most `burst` tokens and refills at
//! `per_second` tokens per second; a message costs one token (or more, for
//! heavy requests). Tokens are kept in millionths so refill is exact in
//! integer microseconds. The number of tracked peers is bounded: past
//! `max_peers` the least recently seen peer is forgotten (it comes back with
//! a full bucket, which at worst grants it one extra burst).

use std::collections::BTreeMap;

use undchain_types::{LocalTime, PublicKey};

const SCALE: u64 = 1_000_000;

/// Rate limit settings: how many messages a peer may send at once and how
/// fast its allowance comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens a peer may spend at once (default 256).
    pub burst: u64,
    /// Tokens refilled per second (default 128).
    pub per_second: u64,
    /// Peers tracked at once (default 65,536).
    pub max_peers: usize,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            burst: 256,
            per_second: 128,
            max_peers: 65_536,
        }
    }
}

/// A message refused by the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{peer} is over its rate limit: retry in {retry_after_us}us")]
pub struct RateLimited {
    /// The peer whose message was refused.
    pub peer: PublicKey,
    /// When enough tokens will be there, us from now (`u64::MAX` if the
    /// cost exceeds the burst and never will be).
    pub retry_after_us: u64,
}

/// One peer's token bucket: what a transport's reader holds for its
/// connection (one connection per key), so the check takes no lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    cfg: RateLimit,
    micro_tokens: u64,
    last: LocalTime,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(cfg: RateLimit, now: LocalTime) -> Self {
        TokenBucket {
            cfg,
            micro_tokens: cfg.burst.saturating_mul(SCALE),
            last: now,
        }
    }

    /// Spends `cost` tokens at `now`, or refuses with the microseconds
    /// until enough are back (`u64::MAX`: never). A refusal spends nothing
    /// (the bucket still refills to `now`).
    pub fn check(&mut self, now: LocalTime, cost: u64) -> Result<(), u64> {
        let cap = self.cfg.burst.saturating_mul(SCALE);
        // Refill: per_second tokens per 1e6 us = per_second micro-tokens/us.
        let elapsed = now.since(self.last);
        self.micro_tokens = self
            .micro_tokens
            .saturating_add(elapsed.saturating_mul(self.cfg.per_second))
            .min(cap);
        self.last = self.last.max(now);
        let need = cost.saturating_mul(SCALE);
        if self.micro_tokens >= need {
            self.micro_tokens -= need;
            Ok(())
        } else if need > cap || self.cfg.per_second == 0 {
            Err(u64::MAX)
        } else {
            Err((need - self.micro_tokens).div_ceil(self.cfg.per_second))
        }
    }

    /// When the bucket was last refilled.
    fn last(&self) -> LocalTime {
        self.last
    }
}

/// Token buckets per peer.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    cfg: RateLimit,
    buckets: BTreeMap<PublicKey, TokenBucket>,
    by_last: BTreeMap<(LocalTime, PublicKey), ()>,
}

impl RateLimiter {
    /// A limiter with `cfg`.
    pub fn new(cfg: RateLimit) -> Self {
        RateLimiter {
            cfg,
            buckets: BTreeMap::new(),
            by_last: BTreeMap::new(),
        }
    }

    /// How many peers have a bucket (at most `max_peers`).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Spends `cost` tokens of `peer` at `now`, or refuses. A refusal
    /// spends no token.
    pub fn check(
        &mut self,
        peer: &PublicKey,
        now: LocalTime,
        cost: u64,
    ) -> Result<(), RateLimited> {
        let mut b = match self.buckets.get(peer) {
            Some(b) => {
                self.by_last.remove(&(b.last(), *peer));
                *b
            }
            None => TokenBucket::new(self.cfg, now),
        };
        let result = b.check(now, cost).map_err(|retry_after_us| RateLimited {
            peer: *peer,
            retry_after_us,
        });
        self.buckets.insert(*peer, b);
        self.by_last.insert((b.last(), *peer), ());
        while self.buckets.len() > self.cfg.max_peers.max(1) {
            let Some(((_, victim), ())) = self.by_last.pop_first() else {
                break;
            };
            self.buckets.remove(&victim);
        }
        result
    }

    /// Forgets `peer`'s bucket (it disconnected); it comes back with a
    /// full one.
    pub fn forget(&mut self, peer: &PublicKey) {
        if let Some(b) = self.buckets.remove(peer) {
            self.by_last.remove(&(b.last(), *peer));
        }
    }
}
