//! Validator <-> validator messages other than time, agreement and
//! reconciliation (design notes, validator story items 1, 3, 5, 6, 7).

use serde::{Deserialize, Serialize};

use super::common::{Endpoint, MAX_ACTIVE, MAX_MEDIA};
use crate::bounded::{BoundedString, BoundedVec};
use crate::crypto::{PublicKey, Signature};
use crate::hash::{Hash32, HashAlgorithm};
use crate::ids::{BlockNumber, PayoutPeriod};
use crate::roles::{Role, Trust};

/// Most validators in one discovery reply.
pub const MAX_DISCOVERY: usize = 256;

/// Client story 1 ("scream cast"): a signed, public hello: nothing secret,
/// still sent behind the authenticated handshake. Any role may send it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct Hello {
    /// The sender's role.
    pub role: Role,
    /// Fresh nonce, so the hello cannot be replayed as a liveness proof.
    pub nonce: u64,
}

/// Validator story 1 (network discovery): a validator announces itself to
/// the validators of the bootstrap list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ValidatorHello {
    /// Known (appointed) or unknown.
    pub trust: Trust,
    /// How to reach it.
    pub media: BoundedVec<Endpoint, MAX_MEDIA>,
    /// Its latest decided block, if it has a chain.
    pub tip: Option<BlockNumber>,
    /// That block's hash.
    pub tip_hash: Hash32,
}

/// One validator a discovery reply knows of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ValidatorContact {
    /// The validator's identity key.
    pub id: PublicKey,
    /// Known or unknown, as registered.
    pub trust: Trust,
    /// The validator's alias from its list entry.
    pub alias: BoundedString<64>,
    /// How to reach it.
    pub media: BoundedVec<Endpoint, MAX_MEDIA>,
}

/// Validator story 1: reply to a hello: the validators the responder knows,
/// and whether known validators are filling unknown seats for now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct DiscoveryReply {
    /// Validators known to the responder.
    pub validators: BoundedVec<ValidatorContact, MAX_DISCOVERY>,
    /// Known validators currently fill unknown seats (too few unknown ones).
    pub known_filling_unknown: bool,
    /// The active set of the responder's next height, in seat order (a
    /// newcomer inherits the time of this set once two bootstrap
    /// validators name the same one).
    pub active: BoundedVec<PublicKey, MAX_ACTIVE>,
    /// The responder's next height to decide (how far the newcomer has to
    /// catch up).
    pub height: BlockNumber,
    /// The hello's sender as the responder's committed roster has it:
    /// `None` while it is not registered.
    pub registered: Option<Trust>,
}

/// Validator story 3: a capacity test: a passive validator runs a burst of
/// simulated requests and payouts against a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct CapacityTest {
    /// Test id, echoed in the result.
    pub id: u64,
    /// Simulated utility requests in the burst.
    pub requests: u32,
    /// Simulated payouts in the burst.
    pub payouts: u32,
    /// Seed the simulated traffic is generated from.
    pub seed: [u8; 32],
}

/// The candidate's answer to a [`CapacityTest`]: what it stored, so the
/// tester checks it against what it sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct CapacityTestResult {
    /// The test this result answers.
    pub id: u64,
    /// Requests it filed.
    pub stored_requests: u32,
    /// Root over the filed jobs.
    pub job_root: Hash32,
    /// Root over the resulting payouts.
    pub payout_root: Hash32,
    /// Most simultaneous connections it held.
    pub peak_connections: u32,
}

/// Validator story 5: a summary of a payout file, to compare copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct PayoutFileSummary {
    /// The payout period the file covers.
    pub period: PayoutPeriod,
    /// Jobs in the file.
    pub count: u64,
    /// Root over the file.
    pub root: Hash32,
    /// Jobs still open.
    pub open: u64,
    /// How many jobs are complete.
    pub complete: u64,
    /// Jobs partially complete.
    pub partial: u64,
    /// How many jobs were cancelled.
    pub cancelled: u64,
}

/// Why a convergence runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum ConvergenceReason {
    /// Stored chain size passed the chain's threshold.
    SizeThreshold {
        /// Stored size, bytes.
        stored_bytes: u64,
    },
    /// The hash algorithm changes.
    HashAlgorithm {
        /// The new algorithm.
        to: HashAlgorithm,
    },
}

/// Validator story 6: a proposed new genesis, computed deterministically
/// from committed state at a payout-period boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ConvergenceProposal {
    /// Convergence counter of the new genesis.
    pub counter: u32,
    /// The period boundary it is taken at.
    pub period: PayoutPeriod,
    /// Hash of the last block of the old chain.
    pub last_block: Hash32,
    /// Hash of the new genesis.
    pub genesis_hash: Hash32,
    /// Why the convergence runs.
    pub reason: ConvergenceReason,
}

/// Validator story 6: a validator's signature over a new genesis; a quorum
/// of them makes it binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ConvergenceSignature {
    /// The convergence counter of the genesis signed.
    pub counter: u32,
    /// The genesis signed.
    pub genesis_hash: Hash32,
    /// The validator signing.
    pub validator: PublicKey,
    /// Its signature over the genesis hash.
    pub signature: Signature,
}
