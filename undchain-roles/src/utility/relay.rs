//! The built-in access utility: a metered relay (DESIGN.md "Utility
//! sessions": access). Each input is carried to the relay's
//! [`Destination`] and its answer returned; units are KiB carried both
//! ways (rounded up), so the client pays for traffic it sees.

use undchain_types::UtilityKind;

use super::{Served, Utility, UtilityError};

/// Bytes per unit of relayed traffic.
pub const UNIT_BYTES: u64 = 1024;

/// Where a relay carries inputs (the host's connection to the access
/// target; [`Echo`] in tests and the simulator).
pub trait Destination: core::fmt::Debug + Send {
    /// The answer to `request`.
    fn exchange(&mut self, request: &[u8]) -> Vec<u8>;
}

/// A destination that answers with what it got.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Destination for Echo {
    fn exchange(&mut self, request: &[u8]) -> Vec<u8> {
        request.to_vec()
    }
}

/// A relay session of at most `limit` units.
#[derive(Debug)]
pub struct Relay<D: Destination> {
    dest: D,
    limit: u64,
    carried: u64,
    next: u32,
}

impl<D: Destination> Relay<D> {
    /// A relay to `dest` for at most `limit` units.
    pub fn new(dest: D, limit: u64) -> Self {
        Relay {
            dest,
            limit,
            carried: 0,
            next: 0,
        }
    }

    /// Units carried so far.
    pub fn carried(&self) -> u64 {
        self.carried
    }
}

/// Units `n` bytes cost.
pub fn units_of(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(UNIT_BYTES)
}

impl<D: Destination> Utility for Relay<D> {
    fn kind(&self) -> UtilityKind {
        UtilityKind::Access
    }

    fn serve(&mut self, seq: u32, input: &[u8]) -> Result<Served, UtilityError> {
        if seq != self.next {
            return Err(UtilityError::OutOfOrder {
                got: seq,
                expected: self.next,
            });
        }
        if self.carried.saturating_add(units_of(input.len())) > self.limit {
            return Err(UtilityError::BadInput("over the relay's unit limit"));
        }
        let output = self.dest.exchange(input);
        let units = units_of(input.len()) + units_of(output.len());
        self.carried = self.carried.saturating_add(units);
        self.next += 1;
        Ok(Served { output, units })
    }

    fn is_done(&self) -> bool {
        self.carried >= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_meters_both_ways_and_stops_at_its_limit() {
        let mut r = Relay::new(Echo, 6);
        let s = r.serve(0, &[1u8; 1500]).unwrap();
        assert_eq!((s.output.len(), s.units), (1500, 4));
        assert!(r.serve(0, &[1]).is_err(), "order is kept");
        assert!(r.serve(1, &[1u8; 3000]).is_err(), "over the limit");
        assert_eq!(r.carried(), 4);
        r.serve(1, &[2u8; 10]).unwrap();
        assert!(r.is_done());
    }
}
