//! `undchain-timesync`: validators agree on block time with a proven
//! precision bound (design notes, validator story item 2; DESIGN.md "Time
//! consensus"; docs/PROTOCOL.md "Time consensus").
//!
//! * [`sample`]: the NTP four-timestamp exchange ([`Sample`]) and the
//!   per-peer lowest-delay filter ([`SampleWindow`]).
//! * [`mod@agree`]: the Welch-Lynch fault-tolerant midpoint ([`agree()`],
//!   [`Method::Ftm`]) and, for comparison, trimmed mean, median and mean.
//! * Sans-IO machines, inputs carrying the local clock `now`, outputs plain
//!   [`Output`]s: [`Bootstrap`] brings a network's time online, [`Running`]
//!   keeps it agreed with periodic rounds, [`Join`] inherits it, and
//!   [`Resync`] steps it with a quorum's signed approvals, never out of the
//!   current payout period.
//! * [`BlockClock`]: agreed time to block, cutoff and payout period; never
//!   runs backwards.
//! * [`sim`]: the seeded precision simulator behind the `precision_sim`
//!   example.
//!
//! Pure: no sockets, clocks, files, threads or ambient randomness; all
//! arithmetic is integer.
//!
//! ```
//! use undchain_timesync::{Method, Reading, agree};
//!
//! // 4 clocks, f = 1: one liar at an extreme cannot move the result out of
//! // the honest range [100, 140].
//! let r = |peer: u8, value: i64| Reading { peer, value, error_us: 0 };
//! let readings = [r(1, 100), r(2, 120), r(3, 140), r(4, i64::MAX)];
//! let a = agree(&readings, 1, Method::Ftm).unwrap();
//! assert_eq!(a.value, 130); // midpoint of the survivors 120 and 140
//! assert_eq!(a.spread_us, 20);
//! ```
//!
//! Dependencies: `undchain-types` (messages, chain parameters, quorum) and
//! `thiserror` (typed errors). `proptest` for the laws in tests.
#![forbid(unsafe_code)]

pub mod agree;
pub mod bootstrap;
pub mod clock;
pub mod exchange;
pub mod join;
pub mod resync;
mod rounds;
pub mod running;
pub mod sample;
pub mod sim;

pub use agree::{AgreeError, Agreement, Method, Reading, agree, agree_among};
pub use bootstrap::{Bootstrap, Handover};
pub use clock::{BlockClock, BlockPosition, ClockError, period_bounds, position_of};
pub use exchange::{
    ConfigError, ExchangeError, Output, RoundResult, SyncConfig, TimeMsg, reply_to,
};
pub use join::Join;
pub use resync::{Resync, ResyncApplied, ResyncError, ResyncMsg, ResyncOutput, clamp_step};
pub use running::Running;
pub use sample::{Sample, SampleError, SampleLimits, SampleWindow};
