//! Roles, utility kinds and validator classes (DESIGN.md "Vocabulary").

use core::fmt;

use serde::{Deserialize, Serialize};

/// The three kinds of utility partners provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum UtilityKind {
    /// Storing data for a client.
    Storage,
    /// Running computations for a client.
    Computation,
    /// Access to a resource or network.
    Access,
}

impl UtilityKind {
    /// All kinds, in order.
    pub const ALL: [UtilityKind; 3] = [
        UtilityKind::Storage,
        UtilityKind::Computation,
        UtilityKind::Access,
    ];
}

impl fmt::Display for UtilityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UtilityKind::Storage => "storage",
            UtilityKind::Computation => "computation",
            UtilityKind::Access => "access",
        })
    }
}

/// The part an identity plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum Role {
    /// Asks for utility.
    Client,
    /// Provides utility to clients.
    Partner,
    /// Keeps job files, the payout file and the chain.
    Validator,
    /// Sets chain parameters and appoints known validators.
    ChainOwner,
}

/// Whether a validator currently holds an active seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum Activity {
    /// Talks to all users, votes on blocks.
    Active,
    /// Stands by, runs challenges and capacity tests, repairs its score.
    Passive,
}

/// Whether a validator was appointed by the chain owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum Trust {
    /// Appointed by the chain owner; at most 44% of the active seats.
    Known,
    /// Anyone; rotated every payout period.
    Unknown,
}

/// A validator's class: active/passive x known/unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ValidatorClass {
    /// Active or passive.
    pub activity: Activity,
    /// Known or unknown.
    pub trust: Trust,
}

impl fmt::Display for ValidatorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = match self.activity {
            Activity::Active => "active",
            Activity::Passive => "passive",
        };
        let t = match self.trust {
            Trust::Known => "known",
            Trust::Unknown => "unknown",
        };
        write!(f, "{a}/{t}")
    }
}
