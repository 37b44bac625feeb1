//! The one test binary of `undchain-ledger`: the ledger, settlement,
//! convergence and link scenarios as modules, over the helpers in
//! [`support`].

mod support;

mod chain_link;
mod conservation;
mod convergence;
mod domain_link;
mod network_link;
mod receipt_scenarios;
