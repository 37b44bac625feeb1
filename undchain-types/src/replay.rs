//! A pure replay guard: no envelope applies twice (DESIGN.md "Replay";
//! docs/PROTOCOL.md "Replay").
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
//! What is remembered, and for how long:
//! - **One log per sender, across clock domains.** (sender, seq) names an
//!   envelope whatever clock it was judged on, so an envelope first seen as
//!   wall-clock and replayed as block-time (or the reverse: a key that
//!   joined or left the validator set) is a duplicate.
//! - **Sequences** are a sliding window of [`SEQ_WINDOW`] bits below the
//!   highest sequence seen (the anti-replay window of IPsec, RFC 4303
//!   section 3.4.3): a sender's sequence numbers increase, up to
//!   `SEQ_WINDOW - 1` may arrive out of order, and one further behind is
//!   refused as [`ReplayError::Forgotten`] (it may have been seen). Checking
//!   is O(1) in the window; no per-sequence allocation.
//! - **Pruning per clock domain.** A log is dropped once its newest
//!   envelope is stale in *every* domain, each judged by the latest time
//!   seen on its own clock (both clocks count microseconds since the Unix
//!   epoch; a clock not read yet is taken to read like the other). A replay
//!   of a dropped log's envelope is then refused as stale on any clock;
//!   pruning never uses one domain's cutoff on the other's envelopes.
//! - **Memory bound.** At most `max_senders` logs (default 100,000); when
//!   full of live logs the least recently active sender is evicted and its
//!   **horizon** (its newest `sent_at`) goes into a fixed table of
//!   `horizon_buckets` slots (default 2^22, 16 MiB), under
//!   [`HORIZON_HASHES`] slots picked by a keyed hash of the sender (keyed by
//!   the config's secret `seed`, so nobody can aim at another sender's
//!   slots). A slot keeps the largest horizon put in it. A sender the guard
//!   does not remember is refused ([`ReplayError::Forgotten`]) only if its
//!   envelope is not newer than the smallest of its slots: a forgotten
//!   sender's old envelopes are always refused (never applied twice),
//!   while a fresh identity is refused only if every one of its slots was
//!   taken by an evicted sender with a later horizon. Horizons are per
//!   sender: a flood of fresh identities dated 10 minutes ahead raises only
//!   its own slots, so an honest client is refused with probability about
//!   `(1 - e^(-4m/B))^4` for m evicted senders within the window and B
//!   slots (0.09% for 200,000 evictions at the defaults), never for certain.
//!   A sender remembered again after its eviction keeps the table's reading
//!   as its own floor, so its old envelopes stay refused.
//!   [`ReplayConfig::memory_bound`] is the worst case of the whole guard
//!   (63.3 MiB at the defaults).
//! - **O(log n) per check**: ordered maps only (deterministic), a bounded
//!   number of map operations per check plus the pruning of logs that went
//!   stale, each pruned once.
//!
//! Refusals change nothing: a refused envelope leaves the guard as it was.

use std::collections::{BTreeMap, BTreeSet};

use crate::crypto::PublicKey;
use crate::ids::BlockTime;
use crate::params::ChainParams;
use crate::rng::SplitMix64;

/// How many sequences below the highest one seen a sender's log still
/// tells apart (seen or not); anything further behind is refused.
pub const SEQ_WINDOW: u64 = 256;

const WORDS: usize = (SEQ_WINDOW / 64) as usize;

/// How many horizon slots each sender hashes to.
pub const HORIZON_HASHES: usize = 4;

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
    /// Most senders remembered exactly (default 100,000).
    pub max_senders: usize,
    /// Slots of the horizon table of evicted senders (default 2^22; rounded
    /// up to a power of two, at least 1).
    pub horizon_buckets: usize,
    /// Keys the hash that places senders in horizon slots. Pass a secret
    /// random value (a node draws it once at start): a sender who knew it
    /// could choose keys that land on an honest sender's slots.
    pub seed: u64,
}

impl ReplayConfig {
    /// The windows of `params`, the default memory caps, and `seed` for the
    /// horizon table's hash.
    pub fn from_params(params: &ChainParams, seed: u64) -> Self {
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
            max_senders: 100_000,
            horizon_buckets: 1 << 22,
            seed,
        }
    }

    fn window(&self, d: ClockDomain) -> Window {
        match d {
            ClockDomain::Block => self.block,
            ClockDomain::Wall => self.wall,
        }
    }

    fn buckets(&self) -> usize {
        self.horizon_buckets.max(1).next_power_of_two()
    }

    /// The most bytes a guard with this config holds, whatever it is fed:
    /// `max_senders` logs in three ordered maps (each entry counted at the
    /// worst fill std's B-tree allows: non-root nodes at least 5 of 11
    /// full) plus the horizon table.
    pub fn memory_bound(&self) -> usize {
        let key = size_of::<PublicKey>();
        let per_sender = btree_entry_bound(key + size_of::<SenderLog>())
            + btree_entry_bound(size_of::<u64>() + key)
            + btree_entry_bound(size_of::<BlockTime>() + key);
        self.max_senders.max(1).saturating_mul(per_sender)
            + self.buckets().saturating_mul(size_of::<u32>())
            + size_of::<ReplayGuard>()
    }
}

/// Worst-case bytes per entry of a `BTreeMap` whose key and value take
/// `kv` bytes: a leaf (header + 11 slots) holds at least 5 entries, and
/// internal nodes (a leaf plus 12 edges) hold at least 6 children each.
fn btree_entry_bound(kv: usize) -> usize {
    let leaf = 16 + 11 * kv;
    let internal = leaf + 12 * size_of::<usize>();
    leaf.div_ceil(5) + internal.div_ceil(5 * 6)
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
    /// The envelope may have been seen but is no longer remembered: its
    /// sequence is more than [`SEQ_WINDOW`] behind its sender's newest, or
    /// its sender was evicted to bound memory and it is not newer than the
    /// sender's horizon. Refused, since applying it could apply it twice;
    /// the sender sends a new envelope (new sequence, current time).
    #[error(
        "sequence {seq} may have been seen and is no longer remembered (behind the sender's \
         window or horizon); send a new envelope"
    )]
    Forgotten {
        /// The refused sequence number.
        seq: u64,
    },
}

/// What the guard remembers of one sender.
#[derive(Debug, Clone, Copy)]
struct SenderLog {
    /// The highest sequence seen.
    top: u64,
    /// Bit `i` set: sequence `top - i` was seen (bit 0 is `top` itself).
    bits: [u64; WORDS],
    /// The newest `sent_at` of the sender's envelopes, any clock.
    newest: BlockTime,
    /// Envelopes sent at or before this are refused unless seen: the
    /// horizon table's reading for the sender when its log was made (it
    /// may have been evicted before, and its old envelopes are not in
    /// `bits`).
    floor: Option<BlockTime>,
    /// Activity tick of the last check (the eviction order).
    activity: u64,
}

impl SenderLog {
    fn new(seq: u64, sent_at: BlockTime, floor: Option<BlockTime>, activity: u64) -> Self {
        let mut bits = [0; WORDS];
        bits[0] = 1;
        SenderLog {
            top: seq,
            bits,
            newest: sent_at,
            floor,
            activity,
        }
    }

    /// Whether `seq` sent at `sent_at` was seen; `None` if it is not
    /// remembered (behind the window, or not after the floor).
    fn seen(&self, seq: u64, sent_at: BlockTime) -> Option<bool> {
        let seen = if seq > self.top {
            false
        } else {
            let back = self.top - seq;
            if back >= SEQ_WINDOW {
                return None;
            }
            self.bits[(back / 64) as usize] >> (back % 64) & 1 == 1
        };
        if !seen && self.floor.is_some_and(|f| sent_at <= f) {
            return None;
        }
        Some(seen)
    }

    /// Marks `seq` seen (it is not behind the window).
    fn record(&mut self, seq: u64) {
        if seq > self.top {
            shift_up(&mut self.bits, seq - self.top);
            self.top = seq;
        }
        let back = self.top - seq;
        self.bits[(back / 64) as usize] |= 1 << (back % 64);
    }
}

/// `bits <<= n` as one 256-bit number (word 0 lowest).
fn shift_up(bits: &mut [u64; WORDS], n: u64) {
    if n >= SEQ_WINDOW {
        *bits = [0; WORDS];
        return;
    }
    let (words, rest) = ((n / 64) as usize, n % 64);
    for i in (0..WORDS).rev() {
        let lo = i.checked_sub(words).map_or(0, |j| bits[j]);
        let below = i.checked_sub(words + 1).map_or(0, |j| bits[j]);
        bits[i] = if rest == 0 {
            lo
        } else {
            lo << rest | below >> (64 - rest)
        };
    }
}

/// The horizon table of evicted senders: per slot, the largest horizon
/// put there, in whole seconds rounded up (so a slot never reads below a
/// horizon it holds); 0 is empty.
#[derive(Debug, Clone)]
struct Horizons {
    slots: Vec<u32>,
    key: [u8; 32],
}

impl Horizons {
    fn new(buckets: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut key = [0u8; 32];
        for chunk in key.chunks_exact_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        Horizons {
            slots: vec![0; buckets],
            key,
        }
    }

    fn slots_of(&self, sender: &PublicKey) -> [usize; HORIZON_HASHES] {
        let h = blake3::keyed_hash(&self.key, sender.as_bytes());
        let mask = self.slots.len() - 1;
        let mut out = [0; HORIZON_HASHES];
        for (i, chunk) in h.as_bytes().chunks_exact(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            out[i] = (u64::from_le_bytes(w) as usize) & mask;
        }
        out
    }

    fn ceil_secs(t: BlockTime) -> u32 {
        u32::try_from(t.0.div_ceil(1_000_000).saturating_add(1)).unwrap_or(u32::MAX)
    }

    fn put(&mut self, sender: &PublicKey, horizon: BlockTime) {
        let v = Self::ceil_secs(horizon);
        for i in self.slots_of(sender) {
            self.slots[i] = self.slots[i].max(v);
        }
    }

    /// The time at or before which an envelope from `sender` might not be
    /// newer than a horizon put under that sender (`None`: no horizon).
    fn reading(&self, sender: &PublicKey) -> Option<BlockTime> {
        let v = self
            .slots_of(sender)
            .iter()
            .map(|&i| self.slots[i])
            .min()
            .unwrap_or(0);
        // Slot value v (nonzero) is the horizon in seconds, rounded up, + 1.
        v.checked_sub(1)
            .map(|s| BlockTime(u64::from(s).saturating_mul(1_000_000)))
    }
}

/// The replay guard. Deterministic: ordered maps only, and the one seeded
/// stream for the horizon table's key.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    cfg: ReplayConfig,
    senders: BTreeMap<PublicKey, SenderLog>,
    by_activity: BTreeMap<u64, PublicKey>,
    by_newest: BTreeSet<(BlockTime, PublicKey)>,
    horizons: Horizons,
    tick: u64,
    /// The latest `now` seen per clock domain.
    now: [Option<BlockTime>; 2],
}

impl ReplayGuard {
    /// A guard with `cfg`. The horizon table is allocated zeroed, so its
    /// pages cost memory only once evictions touch them.
    pub fn new(cfg: ReplayConfig) -> Self {
        ReplayGuard {
            horizons: Horizons::new(cfg.buckets(), cfg.seed),
            cfg,
            senders: BTreeMap::new(),
            by_activity: BTreeMap::new(),
            by_newest: BTreeSet::new(),
            tick: 0,
            now: [None, None],
        }
    }

    /// How many senders the guard remembers exactly.
    pub fn senders(&self) -> usize {
        self.senders.len()
    }

    /// Checks (and unless refused, records) an envelope from `sender` with
    /// sequence `seq` sent at `sent_at` on clock `domain`, when that clock
    /// reads `now`. A clock that reads earlier than it did at an earlier
    /// check is taken at its latest reading (pruning relies on it).
    pub fn check(
        &mut self,
        sender: &PublicKey,
        seq: u64,
        sent_at: BlockTime,
        domain: ClockDomain,
        now: BlockTime,
    ) -> Result<Verdict, ReplayError> {
        let now = self.now[domain.index()].map_or(now, |t| t.max(now));
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
        let mut floor = None;
        let verdict = match self.senders.get(sender).map(|log| log.seen(seq, sent_at)) {
            Some(None) => return Err(ReplayError::Forgotten { seq }),
            Some(Some(true)) => Verdict::Duplicate,
            Some(Some(false)) => Verdict::Fresh,
            None => {
                floor = self.horizons.reading(sender);
                if floor.is_some_and(|f| sent_at <= f) {
                    return Err(ReplayError::Forgotten { seq });
                }
                Verdict::Fresh
            }
        };
        // Accepted (fresh or duplicate): from here on the guard changes.
        self.now[domain.index()] = Some(now);
        self.tick += 1;
        let tick = self.tick;
        match self.senders.get_mut(sender) {
            Some(log) => {
                self.by_activity.remove(&log.activity);
                log.activity = tick;
                if verdict == Verdict::Fresh {
                    log.record(seq);
                    if sent_at > log.newest {
                        self.by_newest.remove(&(log.newest, *sender));
                        log.newest = sent_at;
                        self.by_newest.insert((sent_at, *sender));
                    }
                }
            }
            None => {
                self.senders
                    .insert(*sender, SenderLog::new(seq, sent_at, floor, tick));
                self.by_newest.insert((sent_at, *sender));
            }
        }
        self.by_activity.insert(tick, *sender);
        self.prune();
        self.evict_if_full(sender);
        Ok(verdict)
    }

    /// The time below which an envelope is stale on every clock, judged by
    /// each clock's latest reading (a clock never read counts as reading
    /// like the other).
    fn prune_cutoff(&self) -> Option<BlockTime> {
        let latest = self.now.iter().flatten().max().copied()?;
        let cut = |d: ClockDomain| {
            let now = self.now[d.index()].unwrap_or(latest);
            now.minus(self.cfg.window(d).past_us)
        };
        Some(cut(ClockDomain::Block).min(cut(ClockDomain::Wall)))
    }

    /// Drops every log whose newest envelope is stale on every clock.
    fn prune(&mut self) {
        let Some(cutoff) = self.prune_cutoff() else {
            return;
        };
        while let Some(&(newest, key)) = self.by_newest.first() {
            if newest >= cutoff {
                return;
            }
            self.by_newest.pop_first();
            if let Some(log) = self.senders.remove(&key) {
                self.by_activity.remove(&log.activity);
            }
        }
    }

    /// Evicts the least recently active senders (never `keep`, the one
    /// just checked) until at most `max_senders` remain, putting each
    /// one's horizon into the table.
    fn evict_if_full(&mut self, keep: &PublicKey) {
        while self.senders.len() > self.cfg.max_senders.max(1) {
            let Some((&tick, &victim)) = self.by_activity.first_key_value() else {
                return;
            };
            if &victim == keep {
                // Only with max_senders 1 and the keeper oldest: nothing
                // else to evict.
                return;
            }
            self.by_activity.remove(&tick);
            if let Some(log) = self.senders.remove(&victim) {
                self.by_newest.remove(&(log.newest, victim));
                self.horizons.put(&victim, log.newest);
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
            max_senders: 2,
            horizon_buckets: 1 << 10,
            seed: 7,
        }
    }

    fn pk(i: u8) -> PublicKey {
        SigningKey::from_seed([i; 32]).public()
    }

    const NOW: BlockTime = BlockTime(1_700_000_000_000_000);

    #[test]
    fn duplicate_is_reported_not_reapplied() {
        let mut g = ReplayGuard::new(cfg());
        let b = ClockDomain::Block;
        assert_eq!(g.check(&pk(1), 7, NOW, b, NOW), Ok(Verdict::Fresh));
        assert_eq!(g.check(&pk(1), 7, NOW, b, NOW), Ok(Verdict::Duplicate));
        // Another sender may use the same sequence.
        assert_eq!(g.check(&pk(2), 7, NOW, b, NOW), Ok(Verdict::Fresh));
    }

    #[test]
    fn stale_and_future_are_refused_and_change_nothing() {
        let mut g = ReplayGuard::new(cfg());
        let b = ClockDomain::Block;
        assert!(matches!(
            g.check(&pk(1), 1, NOW.minus(4_000_001), b, NOW),
            Err(ReplayError::Stale { .. })
        ));
        assert!(matches!(
            g.check(&pk(1), 2, NOW.plus(2_000_001), b, NOW),
            Err(ReplayError::Future { .. })
        ));
        assert_eq!(g.senders(), 0);
        // The wall-clock window is wider.
        assert_eq!(
            g.check(&pk(1), 3, NOW.minus(4_000_001), ClockDomain::Wall, NOW),
            Ok(Verdict::Fresh)
        );
    }

    #[test]
    fn the_sequence_window_slides_and_refuses_what_fell_behind() {
        let mut g = ReplayGuard::new(cfg());
        let b = ClockDomain::Block;
        for seq in [10, 12, 11] {
            assert_eq!(g.check(&pk(1), seq, NOW, b, NOW), Ok(Verdict::Fresh));
        }
        let far = 10 + SEQ_WINDOW + 70;
        assert_eq!(g.check(&pk(1), far, NOW, b, NOW), Ok(Verdict::Fresh));
        // 10..=12 are now behind the window: refused, never fresh again.
        for seq in [10, 11, 12] {
            assert_eq!(
                g.check(&pk(1), seq, NOW, b, NOW),
                Err(ReplayError::Forgotten { seq })
            );
        }
        // Inside the window, unseen sequences are still fresh, once.
        let inside = far - SEQ_WINDOW + 1;
        assert_eq!(g.check(&pk(1), inside, NOW, b, NOW), Ok(Verdict::Fresh));
        assert_eq!(g.check(&pk(1), inside, NOW, b, NOW), Ok(Verdict::Duplicate));
        assert_eq!(g.check(&pk(1), far, NOW, b, NOW), Ok(Verdict::Duplicate));
    }

    #[test]
    fn shift_up_moves_bits_across_words() {
        let mut bits = [1, 0, 0, 0];
        shift_up(&mut bits, 65);
        assert_eq!(bits, [0, 2, 0, 0]);
        let mut bits = [1 << 63, 0, 0, 1];
        shift_up(&mut bits, 1);
        assert_eq!(bits, [0, 1, 0, 2]);
        shift_up(&mut bits, SEQ_WINDOW);
        assert_eq!(bits, [0; WORDS]);
    }

    #[test]
    fn an_evicted_sender_keeps_its_own_horizon() {
        let mut g = ReplayGuard::new(cfg());
        let b = ClockDomain::Block;
        g.check(&pk(1), 9, NOW, b, NOW).unwrap();
        // Fill past max_senders: pk(1), least recently active, is evicted.
        g.check(&pk(2), 0, NOW, b, NOW).unwrap();
        g.check(&pk(3), 0, NOW, b, NOW).unwrap();
        assert_eq!(g.senders(), 2);
        // Its old envelope is refused...
        assert_eq!(
            g.check(&pk(1), 9, NOW, b, NOW),
            Err(ReplayError::Forgotten { seq: 9 })
        );
        // ...a later one (past the horizon's second) is fine...
        let later = NOW.plus(1_000_000);
        assert_eq!(g.check(&pk(1), 10, later, b, later), Ok(Verdict::Fresh));
        // ...and, with pk(1) remembered again, its old envelope is still
        // refused (the log keeps the horizon as its floor).
        assert_eq!(
            g.check(&pk(1), 9, NOW, b, later),
            Err(ReplayError::Forgotten { seq: 9 })
        );
        // A sender never seen is not refused for pk(1)'s horizon.
        assert_eq!(g.check(&pk(4), 0, NOW, b, later), Ok(Verdict::Fresh));
    }
}
