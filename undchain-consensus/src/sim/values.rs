//! The simulated host's side of values: which validator set a node uses at
//! a height, building a block header on request (`getValue()`) and checking
//! a proposed one (`valid(v)`) against the node's own chain.

use undchain_types::msg::Round;
use undchain_types::{
    BlockHeader, BlockNumber, BlockTime, BoundedVec, Hash32, HashContext, hash_parts,
};

use super::SIM_CHAIN;
use super::world::Simulation;
use crate::certificate::check_parent_commit;
use crate::driver::Validity;
use crate::round::Value;
use crate::validator_set::ValidatorSet;

impl Simulation {
    /// The set node `i` uses at `height`: the fixed one, or its roster's
    /// while the roster is at that height.
    pub(super) fn set_for(&self, i: usize, height: BlockNumber) -> Option<ValidatorSet> {
        match (&self.static_set, &self.nodes[i].roster) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(r)) if r.height() == height => Some(r.validator_set().clone()),
            _ => None,
        }
    }

    /// The set that signed block `height - 1` on node `i`'s chain.
    fn parent_set_for(&self, i: usize, height: BlockNumber) -> Option<ValidatorSet> {
        if height.0 == 0 {
            return None;
        }
        match (&self.static_set, &self.nodes[i].roster) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(r)) if r.height() == height => r.previous_set().cloned(),
            _ => None,
        }
    }

    /// The host's `getValue()`: a header on top of node `i`'s chain.
    pub(super) fn build_value(&self, i: usize, height: BlockNumber, round: Round) -> Option<Value> {
        let node = &self.nodes[i];
        if node.chain.len() as u64 != height.0 {
            return None;
        }
        let set = self.set_for(i, height)?;
        let prev = node.chain.last();
        let parent_set = self.parent_set_for(i, height);
        let parent_signers = match (prev, &parent_set) {
            (Some(b), Some(ps)) => ps.bitmap(b.certificate.signatures.iter().map(|s| &s.validator)),
            _ => 0,
        };
        let header = BlockHeader {
            chain_id: SIM_CHAIN,
            epoch: 0,
            number: height,
            time: BlockTime(height.0),
            parent: prev.map_or(self.genesis_hash, |b| b.header.hash()),
            job_root: hash_parts(
                HashContext::JobFileNode,
                &[
                    &self.config.seed.to_le_bytes(),
                    &height.0.to_le_bytes(),
                    &round.to_le_bytes(),
                    &(i as u64).to_le_bytes(),
                ],
            ),
            job_count: (height.0 + u64::from(round)) % 7,
            ops_root: Hash32::ZERO,
            ops_count: 0,
            ledger_root: Hash32::ZERO,
            validator_set_hash: set.hash(),
            links: BoundedVec::new(),
            parent_signers,
            evidence: Default::default(),
        };
        Some(Value {
            header,
            parent_certificate: prev.map(|b| b.certificate.clone()),
        })
    }

    /// What is wrong with `header` as block `height` on node `i`'s chain.
    pub(super) fn header_problem(
        &self,
        i: usize,
        height: BlockNumber,
        header: &BlockHeader,
    ) -> Option<String> {
        let node = &self.nodes[i];
        if header.chain_id != SIM_CHAIN || header.epoch != 0 {
            return Some("wrong chain or epoch".into());
        }
        if header.number != height || node.chain.len() as u64 != height.0 {
            return Some(format!("block {} at height {height}", header.number));
        }
        if header.time != BlockTime(height.0) {
            return Some("wrong block time".into());
        }
        let parent = node
            .chain
            .last()
            .map_or(self.genesis_hash, |b| b.header.hash());
        if header.parent != parent {
            return Some("parent is not the previous block".into());
        }
        let Some(set) = self.set_for(i, height) else {
            return Some("no validator set".into());
        };
        if header.validator_set_hash != set.hash() {
            return Some("validator set hash differs".into());
        }
        None
    }

    /// The host's `valid(v)`.
    pub(super) fn check_value(&mut self, i: usize, height: BlockNumber, value: &Value) -> Validity {
        if self.header_problem(i, height, &value.header).is_some() {
            return Validity::Invalid;
        }
        let parent_set = self.parent_set_for(i, height);
        match check_parent_commit(
            &value.header,
            value.parent_certificate.as_ref(),
            parent_set.as_ref(),
            &mut self.verifier,
        ) {
            Ok(()) => Validity::Valid,
            Err(_) => Validity::Invalid,
        }
    }
}
