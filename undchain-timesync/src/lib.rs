//! `undchain-timesync`: validators agree on block time with a proven
//! precision bound (design notes, validator story item 2; DESIGN.md "Time
//! consensus"; docs/PROTOCOL.md "Time consensus").
//!
//! * [`sample`]: the NTP four-timestamp exchange ([`Sample`]) and the
//!   per-peer lowest-delay filter ([`SampleWindow`]).
//! * [`mod@agree`]: the Welch-Lynch fault-tolerant midpoint ([`agree()`],
//!   [`Method::Ftm`]) and, for comparison, trimmed mean, median and mean.
//! * Sans-IO machines in the project's machine vocabulary (docs/ARCHITECTURE.md
//!   "The machine vocabulary"): inputs carry the local clock
//!   `now: LocalTime`, timers are `poll_timeout` / `handle_timeout`,
//!   refused inputs are `Err` and change nothing, outputs are plain
//!   [`Output`]s. [`TimeSync`] brings a network's time online (bootstrap)
//!   and keeps it agreed with periodic rounds (running), handing over from
//!   one phase to the other itself; [`Join`] inherits a running network's
//!   time; [`Resync`] steps it with a quorum's signed approvals, never out
//!   of the current payout period.
//! * [`BlockClock`]: agreed time to block, cutoff and payout period; never
//!   runs backwards.
//! * [`sim`]: the seeded precision simulator behind the `precision_sim`
//!   example; [`fuzz`]: the `time_sync` fuzz target's body.
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
//! Dependencies: `undchain-types` (messages, chain parameters, quorum,
//! `LocalTime`, `SplitMix64`), `undchain-sim` (the simulation kit behind
//! [`sim`]) and `thiserror` (typed errors). `proptest` for the laws in
//! tests.
#![forbid(unsafe_code)]

pub mod agree;
pub mod clock;
pub mod exchange;
pub mod fuzz;
pub mod join;
pub mod resync;
pub mod rounds;
pub mod sample;
pub mod sim;

pub use agree::{AgreeError, Agreement, Method, Reading, agree, agree_among, span_with_errors_us};
pub use clock::{
    BlockClock, BlockPosition, ClockError, STEP_THRESHOLD_US, period_bounds, position_of,
};
pub use exchange::{
    ConfigError, ExchangeError, Output, RoundResult, SyncConfig, SyncEvent, TimeMsg, reply_to,
};
pub use join::Join;
pub use resync::{
    Resync, ResyncApplied, ResyncError, ResyncEvent, ResyncMsg, ResyncOutput, clamp_step,
};
pub use rounds::{TimeSync, precision_bound_us};
pub use sample::{Sample, SampleError, SampleLimits, SampleWindow};
