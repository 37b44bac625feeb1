//! Links between chains (design notes, validator story items 8-10;
//! DESIGN.md "Chain link", "Domain link", "Network link"; docs/PROTOCOL.md
//! "Chain link", "Domain link", "Network link").
//!
//! * [`chain_link`]: each header anchors the latest known block of up to two
//!   co-chains; a silent co-chain is left out, never waited for.
//! * [`domain_link`]: token transfers between domains, proven to IBC-style light
//!   clients of each other (trusting period, set hand-off, freeze); applied by the
//!   [`crate::Ledger`].
//! * [`network_link`]: consented, endable hash anchoring with a foreign
//!   network; no token crosses.

pub mod chain_link;
pub mod domain_link;
pub mod network_link;

pub use chain_link::{ChainLinkError, ChainLinks};
pub use domain_link::{DomainClient, DomainLinkError, DomainRegistry};
pub use network_link::{
    LinkStatus, LocalNetwork, NetworkLinkError, NetworkLinkEvent, NetworkLinks,
};
