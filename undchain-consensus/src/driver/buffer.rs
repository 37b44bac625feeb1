//! What the driver keeps for later: messages of the next height (signed
//! and checked before they take space, with a quota per signer) and
//! decided blocks of later heights (certified before they are kept, and
//! never replaced).
//!
//! The quotas are what make the buffer safe to fill from the network: a
//! signer holds at most [`PER_SIGNER`] messages, and signers outside the
//! current validator set (the next height's set is not known yet, and
//! usually the same) share at most [`MAX_STRANGERS`] places, so neither a
//! flood of unsigned votes nor a Byzantine member's spam can push an
//! honest member's next proposal out.

use std::collections::BTreeMap;

use undchain_types::msg::{CommittedBlock, MAX_BLOCKS_PER_RESPONSE, Round};
use undchain_types::{BlockNumber, Message, PublicKey};

/// Most next-height messages kept per signer (a proposal and two votes a
/// round for four rounds; the latest rounds win).
pub(super) const PER_SIGNER: usize = 12;

/// Most distinct signers outside the current set whose next-height
/// messages are kept (first come; a set that rotates brings at most
/// [`undchain_types::msg::MAX_ACTIVE`] new members).
pub(super) const MAX_STRANGERS: usize = 10;

/// One kept message: who handed it over, the message, and its round.
#[derive(Debug, Clone)]
struct Kept {
    from: PublicKey,
    round: Round,
    msg: Message,
}

/// Next-height messages by signer, each signature already checked.
#[derive(Debug, Clone, Default)]
pub(super) struct FutureMessages {
    members: BTreeMap<PublicKey, Vec<Kept>>,
    strangers: BTreeMap<PublicKey, Vec<Kept>>,
}

/// What offering a message to the buffer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Offer {
    /// Kept (possibly in place of the signer's message of the lowest
    /// round).
    Kept,
    /// Already kept: nothing changed.
    Duplicate,
    /// Not kept: the signer's quota holds later rounds, or the strangers'
    /// places are taken.
    Full,
}

impl FutureMessages {
    /// Keeps `msg` (signed by `signer`, round `round`, handed over by
    /// `from`) within the signer's quota. `member`: whether the signer
    /// holds a seat in the current set.
    pub(super) fn offer(
        &mut self,
        signer: PublicKey,
        member: bool,
        from: PublicKey,
        round: Round,
        msg: Message,
    ) -> Offer {
        let pool = if member {
            &mut self.members
        } else {
            if !self.strangers.contains_key(&signer) && self.strangers.len() >= MAX_STRANGERS {
                return Offer::Full;
            }
            &mut self.strangers
        };
        let kept = pool.entry(signer).or_default();
        if kept.iter().any(|k| k.msg == msg) {
            return Offer::Duplicate;
        }
        if kept.len() >= PER_SIGNER {
            // Evict the lowest round, if it is lower than this one.
            let lowest = kept
                .iter()
                .enumerate()
                .min_by_key(|(_, k)| k.round)
                .map(|(i, k)| (i, k.round));
            match lowest {
                Some((i, r)) if r < round => {
                    kept.remove(i);
                }
                _ => return Offer::Full,
            }
        }
        kept.push(Kept { from, round, msg });
        Offer::Kept
    }

    /// Every kept message, members' first (in key order), each with who
    /// handed it over; the buffer is left empty.
    pub(super) fn take(&mut self) -> Vec<(PublicKey, Message)> {
        let members = std::mem::take(&mut self.members);
        let strangers = std::mem::take(&mut self.strangers);
        members
            .into_values()
            .chain(strangers.into_values())
            .flatten()
            .map(|k| (k.from, k.msg))
            .collect()
    }

    /// How many messages are kept.
    pub(super) fn len(&self) -> usize {
        self.members
            .values()
            .chain(self.strangers.values())
            .map(Vec::len)
            .sum()
    }
}

/// Decided blocks of later heights, each certified (against the set
/// known when it came) before it was kept; the first verified block of a
/// height is never replaced.
#[derive(Debug, Clone, Default)]
pub(super) struct LaterBlocks {
    blocks: BTreeMap<BlockNumber, CommittedBlock>,
}

impl LaterBlocks {
    /// Whether a block of `height` is kept.
    pub(super) fn has(&self, height: BlockNumber) -> bool {
        self.blocks.contains_key(&height)
    }

    /// Keeps a verified block of a later height (the first one of a height
    /// stays; at most [`MAX_BLOCKS_PER_RESPONSE`] heights ahead of
    /// `current` are kept).
    pub(super) fn keep(&mut self, current: BlockNumber, block: CommittedBlock) -> bool {
        let n = block.header.number;
        let ahead = n.0.saturating_sub(current.0);
        if ahead == 0 || ahead > MAX_BLOCKS_PER_RESPONSE as u64 || self.blocks.contains_key(&n) {
            return false;
        }
        self.blocks.insert(n, block);
        true
    }

    /// Takes the block of `height`, forgetting those of earlier heights.
    pub(super) fn take(&mut self, height: BlockNumber) -> Option<CommittedBlock> {
        self.blocks.retain(|n, _| *n >= height);
        self.blocks.remove(&height)
    }

    /// How many blocks are kept.
    pub(super) fn len(&self) -> usize {
        self.blocks.len()
    }
}
