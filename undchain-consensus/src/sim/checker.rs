//! Invariant checks over a whole run: agreement, validity, no honest
//! equivocation (across restarts), certificates verify, identical validator
//! sets; liveness is checked by the run itself after the heal.

use std::collections::BTreeMap;

use undchain_types::msg::{Round, VoteKind};
use undchain_types::{BlockNumber, Hash32, Message, PublicKey};

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Two honest validators decided different blocks at one height.
    Agreement {
        /// The height decided twice.
        height: BlockNumber,
        /// One node and its block.
        first: (usize, Hash32),
        /// Another node and its different block.
        second: (usize, Hash32),
    },
    /// An honest validator decided a block that is not valid on top of its
    /// own chain.
    Validity {
        /// The node that decided it.
        node: usize,
        /// The height it was decided at.
        height: BlockNumber,
        /// What is wrong with the header.
        reason: String,
    },
    /// An honest validator signed two different messages for one slot
    /// (possibly across a restart).
    HonestEquivocation {
        /// The node that signed both.
        node: usize,
        /// The slot's height.
        height: BlockNumber,
        /// The slot's round.
        round: Round,
        /// The slot's step (`None`: proposal).
        kind: Option<VoteKind>,
    },
    /// A decided block's certificate does not verify against the height's
    /// validator set.
    Certificate {
        /// The node that decided it.
        node: usize,
        /// The height it was decided at.
        height: BlockNumber,
        /// Why the certificate does not verify.
        reason: String,
    },
    /// Honest validators used different validator sets at one height.
    ValidatorSet {
        /// The height the sets differ at.
        height: BlockNumber,
        /// The nodes that disagree.
        nodes: (usize, usize),
    },
    /// An honest validator did not reach the target height after the heal.
    Liveness {
        /// The node that fell short.
        node: usize,
        /// How many heights it decided.
        decided: u64,
        /// How many it had to decide.
        target: u64,
    },
}

impl Violation {
    /// Whether this breaks safety (everything but liveness).
    pub fn is_safety(&self) -> bool {
        !matches!(self, Violation::Liveness { .. })
    }
}

/// Records what honest validators did and flags violations.
#[derive(Debug, Clone, Default)]
pub struct Checker {
    decided: BTreeMap<BlockNumber, (usize, Hash32)>,
    signed: BTreeMap<(usize, BlockNumber, Round, Option<VoteKind>), Hash32>,
    sets: BTreeMap<BlockNumber, (usize, Hash32)>,
    /// Every violation flagged so far, in the order found.
    pub violations: Vec<Violation>,
}

impl Checker {
    /// An honest node decided `block_hash` at `height`.
    pub fn decided(&mut self, node: usize, height: BlockNumber, block_hash: Hash32) {
        match self.decided.get(&height) {
            None => {
                self.decided.insert(height, (node, block_hash));
            }
            Some(&(other, h)) if h != block_hash => {
                self.violations.push(Violation::Agreement {
                    height,
                    first: (other, h),
                    second: (node, block_hash),
                });
            }
            Some(_) => {}
        }
    }

    /// Honest node `node` (identity `id`) sent `msg`; flags a second,
    /// different message it signed for the same slot. Messages it relays
    /// (signed by others) are not its own and are skipped.
    pub fn sent(&mut self, node: usize, id: &PublicKey, msg: &Message) {
        let (signer, slot, digest) = match msg {
            Message::Proposal(p) => (
                p.proposal.proposer,
                (node, p.proposal.height, p.proposal.round, None),
                p.proposal.digest(),
            ),
            Message::Vote(v) => (
                v.vote.validator,
                (node, v.vote.height, v.vote.round, Some(v.vote.kind)),
                v.vote.digest(),
            ),
            _ => return,
        };
        if &signer != id {
            return;
        }
        match self.signed.get(&slot) {
            None => {
                self.signed.insert(slot, digest);
            }
            Some(d) if *d != digest => self.violations.push(Violation::HonestEquivocation {
                node,
                height: slot.1,
                round: slot.2,
                kind: slot.3,
            }),
            Some(_) => {}
        }
    }

    /// An honest node started `height` with the set hashing to `set_hash`.
    pub fn set_used(&mut self, node: usize, height: BlockNumber, set_hash: Hash32) {
        match self.sets.get(&height) {
            None => {
                self.sets.insert(height, (node, set_hash));
            }
            Some(&(other, h)) if h != set_hash => self.violations.push(Violation::ValidatorSet {
                height,
                nodes: (other, node),
            }),
            Some(_) => {}
        }
    }

    /// Records a violation found elsewhere.
    pub fn flag(&mut self, v: Violation) {
        self.violations.push(v);
    }

    /// The block decided at each height (by the first honest node).
    pub fn decisions(&self) -> impl Iterator<Item = (&BlockNumber, &Hash32)> {
        self.decided.iter().map(|(h, (_, b))| (h, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::msg::Vote;
    use undchain_types::{ChainId, SigningKey};

    #[test]
    fn flags_forks_and_equivocation_but_not_repeats() {
        let mut c = Checker::default();
        c.decided(0, BlockNumber(1), Hash32([1; 32]));
        c.decided(1, BlockNumber(1), Hash32([1; 32]));
        assert!(c.violations.is_empty());
        c.decided(2, BlockNumber(1), Hash32([2; 32]));
        assert!(matches!(c.violations[0], Violation::Agreement { .. }));
        let k = SigningKey::from_seed([1; 32]);
        let v = |value| {
            Message::Vote(
                Vote {
                    chain_id: ChainId(1),
                    height: BlockNumber(1),
                    round: 0,
                    kind: VoteKind::Prevote,
                    value,
                    validator: k.public(),
                }
                .sign(&k),
            )
        };
        let id = k.public();
        c.sent(3, &id, &v(None));
        c.sent(3, &id, &v(None));
        assert_eq!(c.violations.len(), 1);
        let other = SigningKey::from_seed([2; 32]).public();
        c.sent(3, &other, &v(Some(Hash32([1; 32]))));
        assert_eq!(c.violations.len(), 1, "relayed votes are not the relayer's");
        c.sent(3, &id, &v(Some(Hash32([1; 32]))));
        assert!(matches!(
            c.violations[1],
            Violation::HonestEquivocation {
                node: 3,
                round: 0,
                ..
            }
        ));
        assert!(c.violations.iter().all(Violation::is_safety));
    }
}
