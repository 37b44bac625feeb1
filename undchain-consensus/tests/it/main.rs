//! The agreement tests of `undchain-consensus`, one binary: files named by
//! the fault or rule they exercise (after Malachite's `tests/it`), sharing
//! the helpers in `support`.
//!
//! * the driver's contract: `ready_contract` (persistence as a type),
//!   `refusals` (a refused input changes nothing), `keeper_slots` (the
//!   vote keeper's places per voter and slot), `timers`
//!   (`poll_timeout` / `handle_timeout`), `rules` (the multiplexer's rule
//!   table, row by row), `untrusted_input`;
//! * scenarios at one driver: `reconciling_proposal`, `proposer_silent`,
//!   `equivocation`, `crash_restart`;
//! * certificates and rosters: `certificates`, `rotation`;
//! * whole networks in the simulator: `n4f1`, `partition_heal`,
//!   `rotation_boundary`, `negative_control`, `seeds` (the CI sweep).
//! * the holes issue 13 closed, each as the attack it took:
//!   `buffer_flood`, `later_blocks`, `parent_certificate`,
//!   `evidence_binding`, `proposal_flood`, `vote_flood`; `net` is a small network of
//!   drivers the attacker's messages are injected into.

mod net;
mod support;

mod buffer_flood;
mod certificates;
mod crash_restart;
mod equivocation;
mod evidence_binding;
mod fuzz_seeds;
mod keeper_slots;
mod later_blocks;
mod n4f1;
mod negative_control;
mod parent_certificate;
mod partition_heal;
#[cfg(feature = "planted-bugs")]
mod planted;
mod proposal_flood;
mod proposer_silent;
mod ready_contract;
mod reconciling_proposal;
mod refusals;
mod rotation;
mod rotation_boundary;
mod round_machine;
mod rules;
mod seeds;
mod timers;
mod untrusted_input;
mod vote_flood;
