//! The built-in computation: a deterministic hash chain the client can
//! spot-check (DESIGN.md "Utility sessions": computation).
//!
//! State `s_0` is the job's seed; segment `i` takes `s_i` to `s_{i+1}` by
//! `stride` blake3 steps under [`HashContext::ComputeStep`]. Each input
//! asks for the next segment and its output is `s_{i+1}`, one unit. The
//! client holds every state it received, so it can recompute any segment
//! from the output before it: [`ComputeCheck`] checks a seeded sample of
//! them (the first always), at `stride` hashes each.

use undchain_types::{Hash32, HashContext, SplitMix64, UtilityKind, hash};

use super::{Served, Utility, UtilityError};

/// Most hash steps per segment (bounds one input's work).
pub const MAX_STRIDE: u64 = 1 << 20;

fn run(mut s: Hash32, stride: u64) -> Hash32 {
    for _ in 0..stride {
        s = hash(HashContext::ComputeStep, &s.0);
    }
    s
}

/// The partner's side: a chain of `segments` segments of `stride` steps.
#[derive(Debug, Clone)]
pub struct HashChain {
    state: Hash32,
    stride: u64,
    segments: u32,
    done: u32,
}

impl HashChain {
    /// A chain from `seed`; `stride` is clamped to 1..=[`MAX_STRIDE`].
    pub fn new(seed: Hash32, stride: u64, segments: u32) -> Self {
        HashChain {
            state: seed,
            stride: stride.clamp(1, MAX_STRIDE),
            segments,
            done: 0,
        }
    }
}

impl Utility for HashChain {
    fn kind(&self) -> UtilityKind {
        UtilityKind::Computation
    }

    fn serve(&mut self, seq: u32, _input: &[u8]) -> Result<Served, UtilityError> {
        if self.done >= self.segments {
            return Err(UtilityError::BadInput("the chain is complete"));
        }
        if seq != self.done {
            return Err(UtilityError::OutOfOrder {
                got: seq,
                expected: self.done,
            });
        }
        self.state = run(self.state, self.stride);
        self.done += 1;
        Ok(Served {
            output: self.state.0.to_vec(),
            units: 1,
        })
    }

    fn is_done(&self) -> bool {
        self.done >= self.segments
    }
}

/// The client's side: checks outputs in order, recomputing a seeded sample.
#[derive(Debug, Clone)]
pub struct ComputeCheck {
    last: Hash32,
    stride: u64,
    next: u32,
    one_in: u64,
    rng: SplitMix64,
    /// Segments recomputed so far.
    pub checked: u32,
}

impl ComputeCheck {
    /// Checks a chain from `seed`, recomputing about one segment in
    /// `one_in` (and always the first), drawing from `seed_rng`.
    pub fn new(seed: Hash32, stride: u64, one_in: u64, seed_rng: u64) -> Self {
        ComputeCheck {
            last: seed,
            stride: stride.clamp(1, MAX_STRIDE),
            next: 0,
            one_in: one_in.max(1),
            rng: SplitMix64::new(seed_rng),
            checked: 0,
        }
    }

    /// Output `seq`: refused (and the client stops paying) when out of
    /// order, malformed, or a sampled recomputation differs.
    pub fn handle_output(&mut self, seq: u32, output: &[u8]) -> Result<(), UtilityError> {
        if seq != self.next {
            return Err(UtilityError::OutOfOrder {
                got: seq,
                expected: self.next,
            });
        }
        let bytes: [u8; 32] = output
            .try_into()
            .map_err(|_| UtilityError::BadInput("a chain state is 32 bytes"))?;
        let got = Hash32(bytes);
        let sample = seq == 0 || self.rng.below(self.one_in) == 0;
        if sample {
            if run(self.last, self.stride) != got {
                return Err(UtilityError::SpotCheckFailed { seq });
            }
            self.checked += 1;
        }
        self.last = got;
        self.next += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honest_chain_passes_and_a_forged_output_is_caught() {
        let seed = Hash32([4; 32]);
        let mut p = HashChain::new(seed, 8, 5);
        let mut c = ComputeCheck::new(seed, 8, 1, 9);
        for i in 0..5 {
            let s = p.serve(i, &[]).unwrap();
            assert_eq!(s.units, 1);
            c.handle_output(i, &s.output).unwrap();
        }
        assert!(p.is_done());
        assert!(p.serve(5, &[]).is_err());
        assert_eq!(c.checked, 5);
        let mut c = ComputeCheck::new(seed, 8, 1, 9);
        assert_eq!(
            c.handle_output(0, &[0u8; 32]),
            Err(UtilityError::SpotCheckFailed { seq: 0 })
        );
        assert!(c.handle_output(1, &[0u8; 32]).is_err(), "order is kept");
    }
}
