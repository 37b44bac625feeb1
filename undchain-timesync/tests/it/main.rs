//! The time-sync crate's integration tests, one binary: the agreement
//! laws, the estimator, asymmetric paths, the block clock, resync, the
//! time machines' scenarios, the bootstrap's stop rule and the precision
//! simulator, with shared
//! fixtures in `support`.

mod agreement_laws;
mod asymmetric_paths;
mod block_clock;
mod bootstrap_join;
mod bootstrap_stop_rule;
mod estimator;
mod fuzz_seeds;
mod precision_sim;
mod resync_quorum;
mod support;
