//! The one test binary of `undchain-ledger`: the money attacks, the domain
//! link's light-client rules, convergence, the random-history property and
//! the links, as modules over the helpers in [`support`].

mod support;

mod chain_link;
mod convergence;
mod domain_link;
mod money;
mod network_link;
mod property;
mod registration;
