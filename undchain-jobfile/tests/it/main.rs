//! The integration tests of `undchain-jobfile`, in one test binary. Each
//! module is a law or a scenario, named by what it exercises; helpers two
//! modules share live in [`helpers`] (entry makers and the in-process
//! session driver are the crate's `testkit`, which the example, the
//! benches and the fuzz target use too).
//!
//! proptest replays the seeds of past failures from
//! `tests/proptest-regressions/<module>.txt`: for a test binary rooted in
//! a `main.rs`, that is where its default `SourceParallel` persistence
//! looks (and writes), not beside the module.

mod helpers;

mod adversarial_responder;
mod cutoff_rollover;
mod honest_extremes;
mod jobfile;
mod keyed_fallback;
mod payout;
mod reconcile_laws;
