//! `undchain-consensus`: validator sets, perception scores and
//! Tendermint-style BFT agreement for UndChain, as pure sans-IO state
//! machines, with a deterministic seeded simulator to test them
//! (DESIGN.md "Agreement", "Rotation", "Quorum"; docs/PROTOCOL.md
//! "Agreement, validator sets and perception scores").
//!
//! * [`validator_set`]: the active seats of a height, q and f, proposer
//!   rotation, the set hash for block headers.
//! * [`score`]: perception scores from committed events, the floor, notices.
//! * [`roster`]: active and passive validators, rotation at payout-period
//!   boundaries, replacement after missed votes.
//! * [`votekeeper`], [`round`], [`driver`]: the Tendermint algorithm
//!   (arXiv 1807.04938) split as in Malachite: tallies, the round state
//!   machine (arms cite the paper's lines), the driver across rounds. The
//!   driver speaks the machine vocabulary (docs/ARCHITECTURE.md): inputs
//!   take `now: LocalTime`, timers are `poll_timeout` / `handle_timeout`,
//!   a refused input changes nothing, and outputs come as
//!   [`DriverReady`] batches (the state to persist, then what needed it)
//!   that the host acknowledges with [`Driver::advance`].
//! * [`certificate`]: commit certificates and their verification.
//! * [`adversary`]: Byzantine validators as reusable actors (amnesia, fake
//!   proof-of-lock rounds, withheld precommits, split and equivocating
//!   sends, floods) for any simulator that runs agreement.
//! * [`sim`]: n validators over a virtual clock and a faulty network (the
//!   `undchain-sim` kit), with Byzantine actors and invariant checks; the
//!   simulator carries out the drivers' batches as a node would; failing
//!   runs print their seed.
//! * [`fuzz`]: the `driver` fuzz target's body, the simulator steered by
//!   the input's bytes.
//!
//! The ledger, settlement, convergence and links that act on agreed blocks
//! live in `undchain-ledger`, which depends on this crate; this crate
//! depends on neither it nor `undchain-jobfile`, so agreement builds and
//! embeds on its own.
//!
//! The crate never touches a socket, clock, file, thread or random source:
//! time (`now`) and seeds are inputs, and the host carries out the outputs
//! batch by batch.
//!
//! ```
//! use undchain_consensus::sim::{SimConfig, Simulation};
//!
//! // Four validators, one of them Byzantine (an equivocating proposer),
//! // over a lossy, reordering network.
//! let report = Simulation::new(SimConfig::drawn(4, 1, 7)).run();
//! assert!(report.safety_violations.is_empty(), "{}", report.reproduce_hint());
//! assert!(report.heights_decided > 0);
//! ```
//!
//! Dependencies: `undchain-types` (vocabulary), `serde` (persisted state
//! and the roster are serialisable for the host's storage), `thiserror`
//! (typed errors).
#![forbid(unsafe_code)]

#[cfg(all(feature = "planted-bugs", not(debug_assertions)))]
compile_error!(
    "the `planted-bugs` feature plants agreement bugs for the mutation check; never build it for release"
);

pub mod adversary;
pub mod certificate;
pub mod driver;
pub mod fuzz;
#[cfg(feature = "planted-bugs")]
pub mod planted;
pub mod roster;
pub mod round;
pub mod score;
pub mod sim;
pub mod validator_set;
pub mod votekeeper;

pub use certificate::{
    CertificateError, ParentCommitError, SignatureVerifier, StrictVerifier, check_parent_commit,
    verify_certificate, verify_committed_block,
};
pub use driver::{
    Driver, DriverConfig, DriverReady, InputError, Output, PersistedState, Timeout, TimeoutConfig,
    Validity,
};
pub use roster::{Candidate, Roster, RosterConfig, RosterError, RosterEvent, RosterUpdate};
pub use round::{RoundState, Step, TimeoutKind, Value};
pub use score::{ScoreBook, ScoreEvent, ScoreNotice, ScoreRules};
pub use validator_set::{Seat, ValidatorSet, ValidatorSetError};
pub use votekeeper::{RecordVoteError, Threshold, VoteKeeper};
