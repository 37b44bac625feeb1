//! Chain link: each block header anchors the latest known block hash of up
//! to two linked co-chains (design notes, validator story item 8; DESIGN.md
//! "Chain link"; docs/PROTOCOL.md "Chain link").
//!
//! At the end of each block a chain sends its block hash to each linked
//! co-chain ([`ChainLinks::outgoing`]); the receiver keeps the latest one
//! per chain ([`ChainLinks::handle_link`]) and its next proposal carries
//! what it knows ([`ChainLinks::header_links`]). Nothing here ever waits: a
//! co-chain that stays silent is simply absent from the headers until its
//! hash arrives, and a proposal is never refused for lacking a link
//! ([`ChainLinks::check_header`] only refuses links to chains that are not
//! linked, duplicates and regressions).

use std::collections::BTreeMap;

use undchain_types::block::MAX_CHAIN_LINKS;
use undchain_types::msg::ChainLink;
use undchain_types::{BlockHeader, BlockNumber, BoundedVec, ChainId, Hash32, LinkRef};

/// Why a link or a header's links were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainLinkError {
    /// More than two co-chains.
    #[error("{count} linked chains, at most {MAX_CHAIN_LINKS}")]
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// A chain cannot link to itself.
    #[error("a chain cannot link to itself ({chain})")]
    SelfLink {
        /// The chain named as its own co-chain.
        chain: ChainId,
    },
    /// A co-chain listed twice (in the configuration or in one header).
    #[error("chain {chain} listed twice")]
    Duplicate {
        /// The co-chain named twice.
        chain: ChainId,
    },
    /// A link from, or an anchor of, a chain that is not linked.
    #[error("chain {chain} is not linked to this chain")]
    NotLinked {
        /// The chain that is not among this chain's co-chains.
        chain: ChainId,
    },
    /// An older block than the one already known.
    #[error("chain {chain}: block {got} is older than the known {have}")]
    Stale {
        /// The co-chain whose block went backwards.
        chain: ChainId,
        /// The latest block of that co-chain already known.
        have: BlockNumber,
        /// The older block number offered.
        got: BlockNumber,
    },
    /// Two hashes for one block of a co-chain: that chain forked, or someone
    /// lies about it; kept as evidence.
    #[error("chain {chain}: block {block} announced as {have:?} and as {got:?}")]
    Conflict {
        /// The co-chain with two hashes for one block.
        chain: ChainId,
        /// The block number both hashes claim.
        block: BlockNumber,
        /// The hash already known for that block.
        have: Hash32,
        /// The conflicting hash just offered.
        got: Hash32,
    },
}

/// The co-chain links of one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLinks {
    own: ChainId,
    linked: Vec<ChainId>,
    latest: BTreeMap<ChainId, LinkRef>,
    anchored: BTreeMap<ChainId, LinkRef>,
}

impl ChainLinks {
    /// Links `own` to `linked` (at most two other chains).
    pub fn new(own: ChainId, linked: &[ChainId]) -> Result<Self, ChainLinkError> {
        if linked.len() > MAX_CHAIN_LINKS {
            return Err(ChainLinkError::TooMany {
                count: linked.len(),
            });
        }
        for (i, c) in linked.iter().enumerate() {
            if *c == own {
                return Err(ChainLinkError::SelfLink { chain: own });
            }
            if linked[..i].contains(c) {
                return Err(ChainLinkError::Duplicate { chain: *c });
            }
        }
        Ok(ChainLinks {
            own,
            linked: linked.to_vec(),
            latest: BTreeMap::new(),
            anchored: BTreeMap::new(),
        })
    }

    /// The co-chains this chain links to, in configuration order.
    pub fn linked(&self) -> &[ChainId] {
        &self.linked
    }

    /// The latest known block of `chain`.
    pub fn latest(&self, chain: &ChainId) -> Option<&LinkRef> {
        self.latest.get(chain)
    }

    /// The latest block of `chain` anchored in this chain's committed
    /// headers.
    pub fn anchored(&self, chain: &ChainId) -> Option<&LinkRef> {
        self.anchored.get(chain)
    }

    fn record(&mut self, r: LinkRef) -> Result<bool, ChainLinkError> {
        if !self.linked.contains(&r.chain) {
            return Err(ChainLinkError::NotLinked { chain: r.chain });
        }
        match self.latest.get(&r.chain) {
            Some(have) if have.block == r.block && have.hash != r.hash => {
                Err(ChainLinkError::Conflict {
                    chain: r.chain,
                    block: r.block,
                    have: have.hash,
                    got: r.hash,
                })
            }
            Some(have) if have.block == r.block => Ok(false),
            Some(have) if have.block > r.block => Err(ChainLinkError::Stale {
                chain: r.chain,
                have: have.block,
                got: r.block,
            }),
            _ => {
                self.latest.insert(r.chain, r);
                Ok(true)
            }
        }
    }

    /// Handles a co-chain's end-of-block message; `Ok(true)` if it moved the
    /// latest known block forward (a repeat is `Ok(false)`).
    pub fn handle_link(&mut self, link: &ChainLink) -> Result<bool, ChainLinkError> {
        self.record(LinkRef {
            chain: link.chain,
            block: link.block,
            hash: link.block_hash,
        })
    }

    /// What the next proposal's header carries: the latest known block of
    /// each linked chain that has sent one, in configuration order. Chains
    /// never heard from are left out; nothing waits for them.
    pub fn header_links(&self) -> BoundedVec<LinkRef, MAX_CHAIN_LINKS> {
        BoundedVec::truncating(
            self.linked
                .iter()
                .filter_map(|c| self.latest.get(c).cloned())
                .collect(),
        )
    }

    /// Checks a proposal's links: only linked chains, each once, none behind
    /// what this chain already anchored. A link this validator has not heard
    /// of yet is accepted (it may simply not have arrived here); a missing
    /// link is never a reason to refuse.
    pub fn check_header(&self, links: &[LinkRef]) -> Result<(), ChainLinkError> {
        for (i, r) in links.iter().enumerate() {
            if !self.linked.contains(&r.chain) {
                return Err(ChainLinkError::NotLinked { chain: r.chain });
            }
            if links[..i].iter().any(|o| o.chain == r.chain) {
                return Err(ChainLinkError::Duplicate { chain: r.chain });
            }
            if let Some(a) = self.anchored.get(&r.chain) {
                if r.block < a.block {
                    return Err(ChainLinkError::Stale {
                        chain: r.chain,
                        have: a.block,
                        got: r.block,
                    });
                }
                if r.block == a.block && r.hash != a.hash {
                    return Err(ChainLinkError::Conflict {
                        chain: r.chain,
                        block: r.block,
                        have: a.hash,
                        got: r.hash,
                    });
                }
            }
        }
        Ok(())
    }

    /// Records a committed header's links as anchored (and as known, if
    /// newer than what arrived here directly).
    pub fn handle_committed(&mut self, header: &BlockHeader) {
        for r in header.links.iter() {
            if !self.linked.contains(&r.chain) {
                continue;
            }
            let newer = self
                .anchored
                .get(&r.chain)
                .is_none_or(|a| r.block > a.block);
            if newer {
                self.anchored.insert(r.chain, r.clone());
            }
            let known_newer = self.latest.get(&r.chain).is_none_or(|a| r.block > a.block);
            if known_newer {
                self.latest.insert(r.chain, r.clone());
            }
        }
    }

    /// The message to send each linked co-chain at the end of block
    /// `number` whose hash is `hash`.
    pub fn outgoing(&self, number: BlockNumber, hash: Hash32) -> Vec<(ChainId, ChainLink)> {
        self.linked
            .iter()
            .map(|c| {
                (
                    *c,
                    ChainLink {
                        chain: self.own,
                        block: number,
                        block_hash: hash,
                    },
                )
            })
            .collect()
    }
}
