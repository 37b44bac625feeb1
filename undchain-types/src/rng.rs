//! The project's one deterministic random stream: SplitMix64 from a seed.
//!
//! Pure crates never draw randomness themselves: a caller hands them a seed
//! (probe nonces, retry jitter) and they expand it with [`SplitMix64`]. The
//! simulators use the same stream, so a run is a function of its seed.
//! SplitMix64 (Steele, Lea, Flood 2014) is tiny, fast and has no
//! dependency; it is for reproducibility, not for secrets (keys come from
//! seeds the host draws from the OS).
//!
//! A stream can also be steered by bytes ([`SplitMix64::scripted`]): that
//! is how the fuzz targets drive the simulators, which take their every
//! draw (drops, delays, reorderings, crashes, what a Byzantine actor does)
//! from one stream, so one fuzz input is one run, replayed exactly.

use std::sync::Arc;

/// A deterministic 64-bit random stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
    /// The bytes steering the stream, if any, and the next one to use.
    script: Option<(Arc<[u8]>, usize)>,
}

impl SplitMix64 {
    /// The stream of `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64 {
            state: seed,
            script: None,
        }
    }

    /// The stream of `seed` steered by `bytes` (a fuzz target's input):
    /// each of the first `bytes.len()` draws has the next byte as its top
    /// 8 bits (the low 56 still come from the seed's stream), so a
    /// [`Self::below`] of up to 256, a [`Self::chance`] or a [`Self::pick`]
    /// is that byte's choice; once the bytes are used up the stream goes on
    /// as the seed's would.
    pub fn scripted(seed: u64, bytes: &[u8]) -> Self {
        SplitMix64 {
            state: seed,
            script: Some((Arc::from(bytes), 0)),
        }
    }

    /// Whether bytes still steer the next draw ([`Self::scripted`]).
    pub fn is_steered(&self) -> bool {
        self.script
            .as_ref()
            .is_some_and(|(bytes, at)| *at < bytes.len())
    }

    /// An independent stream derived from `seed` and a `label`, so that
    /// drawing more in one part of a run does not shift another part.
    pub fn fork(seed: u64, label: u64) -> Self {
        let mut r = SplitMix64::new(seed ^ label.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        if let Some((bytes, at)) = self.script.as_mut()
            && let Some(b) = bytes.get(*at)
        {
            *at += 1;
            z = (u64::from(*b) << 56) | (z & ((1 << 56) - 1));
        }
        z
    }

    /// Uniform in `0..n` (0, drawing nothing, when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift (Lemire without the rejection step): the bias is
        // below 2^-32 for the small ranges drawn here, and the mapping is
        // exact and reproducible on every platform.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi` (`lo`, drawing nothing, when `hi <= lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.below(span),
            None => self.next_u64(),
        }
    }

    /// Uniform in `lo..=hi` over signed values, always one draw (so a
    /// stream stays aligned whatever the bounds); `lo` when `hi <= lo`.
    pub fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        let x = self.next_u64();
        if hi <= lo {
            return lo;
        }
        let span = (i128::from(hi) - i128::from(lo) + 1) as u128;
        let pick = (u128::from(x) * span) >> 64;
        (i128::from(lo) + pick as i128) as i64
    }

    /// True with probability `permille / 1000` (one draw).
    pub fn chance(&mut self, permille: u32) -> bool {
        self.below(1000) < u64::from(permille)
    }

    /// One element of `items`, uniformly; `None` (drawing nothing) when it
    /// is empty.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            return None;
        }
        items.get(self.below(items.len() as u64) as usize).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_bounds_hold() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let x = a.range(3, 9);
            assert_eq!(x, b.range(3, 9));
            assert!((3..=9).contains(&x));
            let y = a.range_i64(-5, 5);
            assert_eq!(y, b.range_i64(-5, 5));
            assert!((-5..=5).contains(&y));
        }
        assert_ne!(
            SplitMix64::fork(42, 1).next_u64(),
            SplitMix64::fork(42, 2).next_u64()
        );
        assert_eq!(a.below(0), 0);
        assert_eq!(a.pick::<u8>(&[]), None);
        assert_eq!(a.range(7, 7), 7);
        let _ = a.range(0, u64::MAX);
        let hits = (0..10_000).filter(|_| a.chance(100)).count();
        assert!((700..1300).contains(&hits), "{hits}");
    }

    #[test]
    fn bytes_steer_the_stream_then_the_seed_goes_on() {
        let mut steered = SplitMix64::scripted(9, &[0, 255, 128]);
        let mut plain = SplitMix64::new(9);
        assert!(steered.is_steered());
        assert_eq!(steered.below(256), 0);
        assert_eq!(steered.below(256), 255);
        assert_eq!(steered.below(2), 1);
        assert!(!steered.is_steered());
        for _ in 0..3 {
            plain.next_u64();
        }
        assert_eq!(steered.next_u64(), plain.next_u64());
        assert!(!SplitMix64::new(9).is_steered());
    }

    #[test]
    fn known_answer() {
        // The reference SplitMix64 output for seed 0 (Vigna's splitmix64.c).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }
}
