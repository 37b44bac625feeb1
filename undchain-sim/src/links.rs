//! Per-link delays: every directed link `a -> b` has a fixed base delay of
//! its own, so a path can be slower one way than the other
//! (`d(a -> b) != d(b -> a)`), plus random jitter drawn per message.
//!
//! The fixed asymmetry is what a time exchange cannot see: the NTP
//! four-timestamp exchange measures the round trip, not how it splits, so
//! an offset estimate over a path is off by up to half the path's delay
//! asymmetry whatever the number of samples (docs/PROTOCOL.md "Time
//! consensus", *Samples*). Jitter, by contrast, changes per message and a
//! lowest-delay filter can pick a lucky sample. A simulator that drew every
//! delay independently would never test the unavoidable part.

use undchain_types::SplitMix64;

/// Most fixed delay per link, microseconds (10 s): larger is no network.
pub const MAX_FIXED_US: u64 = 10_000_000;

/// The delay model of one run: fixed part per directed link plus jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDelays {
    nodes: usize,
    /// The fixed part of `from -> to` at `from * nodes + to`; empty when
    /// every link's fixed part is zero.
    fixed_us: Vec<u64>,
    jitter_min_us: u64,
    jitter_max_us: u64,
}

impl LinkDelays {
    /// Every link alike: only the jitter, uniform in
    /// `[jitter_min_us, jitter_max_us]` (`max < min` counts as `min`).
    pub fn symmetric(jitter_min_us: u64, jitter_max_us: u64) -> Self {
        LinkDelays {
            nodes: 0,
            fixed_us: Vec::new(),
            jitter_min_us,
            jitter_max_us,
        }
    }

    /// For `nodes` nodes, each directed link's fixed part drawn uniformly
    /// in `[0, asymmetry_us]` (capped at [`MAX_FIXED_US`]) from `rng`, in
    /// the order `(0, 1), (0, 2), .., (1, 0), ..`; on top of it the jitter
    /// of [`Self::symmetric`]. With `asymmetry_us = 0` nothing is drawn, so
    /// the model is [`Self::symmetric`] and `rng` is untouched. Two
    /// directions of one path differ by at most `asymmetry_us`.
    pub fn draw(
        rng: &mut SplitMix64,
        nodes: usize,
        asymmetry_us: u64,
        jitter_min_us: u64,
        jitter_max_us: u64,
    ) -> Self {
        if asymmetry_us == 0 || nodes < 2 {
            return Self::symmetric(jitter_min_us, jitter_max_us);
        }
        let cap = asymmetry_us.min(MAX_FIXED_US);
        // `with_fixed` visits the links in row order, so the draws replay.
        let mut draws = Vec::with_capacity(nodes * nodes);
        for i in 0..nodes * nodes {
            draws.push(if i / nodes == i % nodes {
                0
            } else {
                rng.range(0, cap)
            });
        }
        Self::with_fixed(
            nodes,
            |from, to| draws[from * nodes + to],
            jitter_min_us,
            jitter_max_us,
        )
    }

    /// For `nodes` nodes, the fixed part of each directed link `from -> to`
    /// given by `fixed(from, to)` (capped at [`MAX_FIXED_US`]; a node's
    /// link to itself is 0): a scenario's chosen topology, e.g. two sites
    /// whose path is slower one way. On top of it the jitter of
    /// [`Self::symmetric`].
    pub fn with_fixed(
        nodes: usize,
        fixed: impl Fn(usize, usize) -> u64,
        jitter_min_us: u64,
        jitter_max_us: u64,
    ) -> Self {
        let mut links = Self::symmetric(jitter_min_us, jitter_max_us);
        links.nodes = nodes;
        links.fixed_us = (0..nodes * nodes)
            .map(|i| {
                let (from, to) = (i / nodes, i % nodes);
                if from == to {
                    0
                } else {
                    fixed(from, to).min(MAX_FIXED_US)
                }
            })
            .collect();
        links
    }

    /// The fixed part of the link `from -> to`, microseconds (0 for a node
    /// the model was not drawn for).
    pub fn fixed_us(&self, from: usize, to: usize) -> u64 {
        if from >= self.nodes || to >= self.nodes {
            return 0;
        }
        self.fixed_us
            .get(from * self.nodes + to)
            .copied()
            .unwrap_or(0)
    }

    /// `|d(a -> b) - d(b -> a)|` of the fixed parts: twice the error every
    /// offset estimate over that path carries.
    pub fn asymmetry_us(&self, a: usize, b: usize) -> u64 {
        self.fixed_us(a, b).abs_diff(self.fixed_us(b, a))
    }

    /// The largest [`Self::asymmetry_us`] over the paths between the
    /// first `among` nodes.
    pub fn max_asymmetry_us(&self, among: usize) -> u64 {
        (0..among)
            .flat_map(|a| (a + 1..among).map(move |b| (a, b)))
            .map(|(a, b)| self.asymmetry_us(a, b))
            .max()
            .unwrap_or(0)
    }

    /// The delay of one message `from -> to`, microseconds: the link's
    /// fixed part plus jitter. Always exactly one draw from `rng`, even
    /// without jitter, so a run's stream does not shift with the bounds.
    pub fn delay_us(&self, rng: &mut SplitMix64, from: usize, to: usize) -> u64 {
        let lo = i64::try_from(self.jitter_min_us).unwrap_or(i64::MAX);
        let hi = i64::try_from(self.jitter_max_us).unwrap_or(i64::MAX);
        let jitter = u64::try_from(rng.range_i64(lo, hi)).unwrap_or(0);
        self.fixed_us(from, to).saturating_add(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_links_draw_only_the_jitter() {
        let links = LinkDelays::symmetric(1_000, 3_000);
        let mut a = SplitMix64::new(9);
        let mut b = SplitMix64::new(9);
        for _ in 0..100 {
            let d = links.delay_us(&mut a, 0, 1);
            assert_eq!(d, b.range_i64(1_000, 3_000) as u64);
            assert!((1_000..=3_000).contains(&d));
        }
        // no jitter still draws once per message
        let flat = LinkDelays::symmetric(2_000, 2_000);
        let mut c = SplitMix64::new(9);
        assert_eq!(flat.delay_us(&mut c, 3, 4), 2_000);
        assert_eq!(c, {
            let mut d = SplitMix64::new(9);
            d.next_u64();
            d
        });
    }

    #[test]
    fn zero_asymmetry_draws_nothing_and_is_symmetric() {
        let mut rng = SplitMix64::new(5);
        let links = LinkDelays::draw(&mut rng, 7, 0, 1_000, 3_000);
        assert_eq!(rng, SplitMix64::new(5));
        assert_eq!(links, LinkDelays::symmetric(1_000, 3_000));
        assert_eq!(links.max_asymmetry_us(7), 0);
    }

    #[test]
    fn each_direction_has_its_own_fixed_part_within_the_bound() {
        let mut rng = SplitMix64::new(11);
        let links = LinkDelays::draw(&mut rng, 6, 5_000, 0, 0);
        let mut differ = 0;
        for a in 0..6 {
            assert_eq!(links.fixed_us(a, a), 0);
            for b in 0..6 {
                assert!(links.fixed_us(a, b) <= 5_000);
                assert!(links.asymmetry_us(a, b) <= 5_000);
                if a != b && links.fixed_us(a, b) != links.fixed_us(b, a) {
                    differ += 1;
                }
                // the fixed part is fixed: every message pays it
                let mut r = SplitMix64::new(1);
                assert_eq!(links.delay_us(&mut r, a, b), links.fixed_us(a, b));
            }
        }
        assert!(differ > 20, "directions must differ: {differ} of 30");
        let m = links.max_asymmetry_us(6);
        assert!(m > 2_500 && m <= 5_000, "{m}");
        // out-of-range nodes have no fixed part
        assert_eq!(links.fixed_us(6, 0), 0);
        let again = LinkDelays::draw(&mut SplitMix64::new(11), 6, 5_000, 0, 0);
        assert_eq!(links, again, "draws replay from the seed");
    }

    #[test]
    fn a_chosen_topology_keeps_its_fixed_parts() {
        // two sites: 0, 1 and 2, 3; the path from the first to the second
        // is 4 ms slower than the way back
        let links =
            LinkDelays::with_fixed(4, |a, b| if a < 2 && b >= 2 { 4_000 } else { 0 }, 100, 100);
        let mut rng = SplitMix64::new(3);
        assert_eq!(links.delay_us(&mut rng, 0, 2), 4_100);
        assert_eq!(links.delay_us(&mut rng, 2, 0), 100);
        assert_eq!(links.delay_us(&mut rng, 0, 1), 100);
        assert_eq!(links.delay_us(&mut rng, 1, 1), 100);
        assert_eq!(links.max_asymmetry_us(4), 4_000);
        assert_eq!(links.max_asymmetry_us(2), 0);
    }
}
