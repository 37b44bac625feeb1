//! The mutation check of issue 13 (feature `planted-bugs`, test builds
//! only): the two agreement bugs a wrong Tendermint is known for, planted
//! behind a switch so a test can run the simulator over them and require
//! its checker to find a violation ([`crate::Driver::plant`],
//! [`crate::sim::SimConfig::with_planted`]).

/// A bug to plant in a driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlantedBug {
    /// Lines 23 and 29 ignore the lock: a locked validator prevotes any
    /// valid proposal.
    IgnoreLock,
    /// Line 28 accepts a proposal's proof-of-lock round `vr` without q
    /// prevotes for its value in `vr`.
    AcceptUnprovenValidRound,
}

impl PlantedBug {
    /// Both bugs.
    pub const ALL: [PlantedBug; 2] = [PlantedBug::IgnoreLock, PlantedBug::AcceptUnprovenValidRound];
}
