//! Retry timers as pure state (docs/PROTOCOL.md "Transport, framing, retries
//! and scream cast"; DESIGN.md "Validator list and connections"; design
//! notes, client story step 1: "try a resend; maybe set the limit to 4
//! attempts", "timeout could be set to 6 seconds").
//!
//! One [`Retry`] follows one message to one validator: attempt 1 starts at
//! once; an attempt fails when the transport reports it failed or its
//! timeout passes; after a failure the next attempt starts after a backoff
//! of `base * 2^(failures - 1)` (capped) plus jitter drawn from the seed the
//! caller passed in. After the last attempt fails the retry is exhausted and
//! the caller moves on to a scream cast ([`crate::outreach`]). A success,
//! even a late one from an attempt that already timed out, ends it.

use undchain_types::ChainParams;

/// How sending retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before giving up on the target (default 4).
    pub attempts: u8,
    /// Timeout of each attempt, us (default 6 s).
    pub timeout_us: u64,
    /// Backoff after the first failure, us (default 250 ms); doubles after
    /// each further failure.
    pub backoff_base_us: u64,
    /// Backoff cap before jitter, us (default 2 s).
    pub backoff_max_us: u64,
    /// Jitter added to a backoff, at most this share of it, per mille
    /// (default 500: up to +50%).
    pub jitter_permille: u16,
    /// Scream cast: how many addresses are tried at once (default 4).
    pub scream_width: usize,
    /// Scream cast: timeout of each address, us (default: the attempt
    /// timeout).
    pub scream_timeout_us: u64,
}

impl RetryPolicy {
    /// The chain's attempts and timeout with the default backoff.
    pub fn from_params(params: &ChainParams) -> Self {
        RetryPolicy {
            attempts: params.retry_attempts.max(1),
            timeout_us: params.retry_timeout_us,
            scream_timeout_us: params.retry_timeout_us,
            ..RetryPolicy::default()
        }
    }

    /// The pause after `failures` failed attempts, before the next one, with
    /// jitter drawn from `rng`.
    pub fn backoff_us(&self, failures: u8, rng: &mut SplitMix64) -> u64 {
        let exp = u32::from(failures.saturating_sub(1)).min(32);
        let base = self
            .backoff_base_us
            .saturating_mul(1u64 << exp)
            .min(self.backoff_max_us);
        let span = base.saturating_mul(u64::from(self.jitter_permille.min(1000))) / 1000;
        let jitter = if span == 0 {
            0
        } else {
            rng.next_u64() % (span + 1)
        };
        base.saturating_add(jitter)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            timeout_us: 6_000_000,
            backoff_base_us: 250_000,
            backoff_max_us: 2_000_000,
            jitter_permille: 500,
            scream_width: 4,
            scream_timeout_us: 6_000_000,
        }
    }
}

/// SplitMix64: a tiny deterministic generator for jitter, seeded by the
/// caller (pure crates never draw randomness themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Where a retry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryState {
    /// Not started.
    Idle,
    /// Attempt `attempt` is under way until `deadline_us`.
    InFlight {
        /// 1-based attempt number.
        attempt: u8,
        /// When it times out.
        deadline_us: u64,
    },
    /// Waiting until `until_us` before attempt `next`.
    Backoff {
        /// The attempt that comes next.
        next: u8,
        /// When it starts.
        until_us: u64,
    },
    /// An attempt succeeded.
    Delivered {
        /// Attempts made.
        attempts: u8,
    },
    /// Every attempt failed.
    Exhausted {
        /// Attempts made.
        attempts: u8,
    },
}

/// What the caller should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAction {
    /// Make attempt `attempt` now; it times out at `deadline_us`.
    Attempt {
        /// 1-based attempt number.
        attempt: u8,
        /// When it times out.
        deadline_us: u64,
    },
    /// Done: attempt `attempt` got through.
    Delivered {
        /// The attempt that succeeded.
        attempt: u8,
    },
    /// Done: every attempt failed; go on to a scream cast.
    Exhausted {
        /// Attempts made.
        attempts: u8,
    },
}

/// The retry timers of one message to one target.
#[derive(Debug, Clone)]
pub struct Retry {
    policy: RetryPolicy,
    state: RetryState,
    rng: SplitMix64,
}

impl Retry {
    /// A retry under `policy`, jitter drawn from `seed`.
    pub fn new(policy: RetryPolicy, seed: u64) -> Self {
        Retry {
            policy,
            state: RetryState::Idle,
            rng: SplitMix64::new(seed),
        }
    }

    /// Where it stands.
    pub fn state(&self) -> RetryState {
        self.state
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Starts attempt 1 (once; later calls do nothing).
    pub fn start(&mut self, now_us: u64) -> Option<RetryAction> {
        if self.state != RetryState::Idle {
            return None;
        }
        Some(self.attempt(1, now_us))
    }

    fn attempt(&mut self, attempt: u8, now_us: u64) -> RetryAction {
        let deadline_us = now_us.saturating_add(self.policy.timeout_us);
        self.state = RetryState::InFlight {
            attempt,
            deadline_us,
        };
        RetryAction::Attempt {
            attempt,
            deadline_us,
        }
    }

    /// Attempt `attempt` got through (even after it timed out).
    pub fn handle_success(&mut self, attempt: u8) -> Option<RetryAction> {
        match self.state {
            RetryState::InFlight { .. } | RetryState::Backoff { .. } => {
                self.state = RetryState::Delivered { attempts: attempt };
                Some(RetryAction::Delivered { attempt })
            }
            // A late success after exhaustion still means it got through.
            RetryState::Exhausted { attempts } if attempt <= attempts => {
                self.state = RetryState::Delivered { attempts: attempt };
                Some(RetryAction::Delivered { attempt })
            }
            RetryState::Idle | RetryState::Delivered { .. } | RetryState::Exhausted { .. } => None,
        }
    }

    /// Attempt `attempt` failed before its timeout (refused, unreachable,
    /// wrong key). A failure of an older attempt is ignored.
    pub fn handle_failure(&mut self, attempt: u8, now_us: u64) -> Option<RetryAction> {
        match self.state {
            RetryState::InFlight { attempt: a, .. } if a == attempt => self.failed(a, now_us),
            _ => None,
        }
    }

    fn failed(&mut self, attempt: u8, now_us: u64) -> Option<RetryAction> {
        if attempt >= self.policy.attempts {
            self.state = RetryState::Exhausted { attempts: attempt };
            return Some(RetryAction::Exhausted { attempts: attempt });
        }
        let pause = self.policy.backoff_us(attempt, &mut self.rng);
        self.state = RetryState::Backoff {
            next: attempt + 1,
            until_us: now_us.saturating_add(pause),
        };
        None
    }

    /// Time passed: times out the attempt in flight, or starts the next one
    /// after its backoff.
    pub fn handle_timer(&mut self, now_us: u64) -> Option<RetryAction> {
        match self.state {
            RetryState::InFlight {
                attempt,
                deadline_us,
            } if now_us >= deadline_us => {
                let out = self.failed(attempt, now_us);
                if out.is_some() {
                    return out;
                }
                // A zero backoff starts the next attempt at once.
                self.handle_timer(now_us)
            }
            RetryState::Backoff { next, until_us } if now_us >= until_us => {
                Some(self.attempt(next, now_us))
            }
            _ => None,
        }
    }

    /// When [`Retry::handle_timer`] should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.state {
            RetryState::InFlight { deadline_us, .. } => Some(deadline_us),
            RetryState::Backoff { until_us, .. } => Some(until_us),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_backoff_doubles_is_capped_and_jitter_is_seeded() {
        let p = RetryPolicy {
            jitter_permille: 0,
            ..RetryPolicy::default()
        };
        let mut rng = SplitMix64::new(1);
        assert_eq!(p.backoff_us(1, &mut rng), 250_000);
        assert_eq!(p.backoff_us(2, &mut rng), 500_000);
        assert_eq!(p.backoff_us(3, &mut rng), 1_000_000);
        assert_eq!(p.backoff_us(9, &mut rng), 2_000_000);
        let p = RetryPolicy::default();
        let a: Vec<u64> = {
            let mut r = SplitMix64::new(42);
            (1..=3).map(|f| p.backoff_us(f, &mut r)).collect()
        };
        let b: Vec<u64> = {
            let mut r = SplitMix64::new(42);
            (1..=3).map(|f| p.backoff_us(f, &mut r)).collect()
        };
        assert_eq!(a, b);
        for (f, v) in (1u8..).zip(&a) {
            let base = 250_000u64 << (f - 1);
            assert!(*v >= base && *v <= base + base / 2, "{v} for failure {f}");
        }
    }

    #[test]
    fn retry_stale_failure_is_ignored_and_late_success_counts() {
        let mut r = Retry::new(RetryPolicy::default(), 7);
        r.start(0);
        // Attempt 1 times out.
        assert_eq!(r.handle_timer(6_000_000), None);
        let Some(RetryState::Backoff { until_us, .. }) = Some(r.state()) else {
            unreachable!()
        };
        assert!(matches!(
            r.handle_timer(until_us),
            Some(RetryAction::Attempt { attempt: 2, .. })
        ));
        // A failure report for attempt 1 arriving now changes nothing.
        assert_eq!(r.handle_failure(1, until_us + 1), None);
        // Attempt 1's reply arrives late: delivered.
        assert_eq!(
            r.handle_success(1),
            Some(RetryAction::Delivered { attempt: 1 })
        );
        assert_eq!(r.poll_timeout(), None);
    }
}
