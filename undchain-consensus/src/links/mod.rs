//! Links between chains (design notes, validator story items 8-10;
//! DESIGN.md "Chain link", "Domain link", "Network link"; docs/PROTOCOL.md
//! "Chain link", "Domain link", "Network link").
//!
//! * [`domain_link`]: token transfers between domains, proven by the source
//!   block's commit certificate and an inclusion proof; applied by the
//!   [`crate::Ledger`].

pub mod domain_link;
