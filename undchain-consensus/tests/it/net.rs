//! A small in-order network of honest drivers for attack scenarios: the
//! test plays the attacker by injecting messages (signed with the keys it
//! holds) and by holding back what an honest node would receive. The host
//! checks values as a node would: the header on top of its own chain, the
//! set's hash, and the parent certificate against the parent's set
//! (`check_parent_commit`).

use std::collections::VecDeque;

use crate::support::*;
use undchain_consensus::{Driver, Output, StrictVerifier, Validity, Value, check_parent_commit};
use undchain_types::msg::{CommittedBlock, Proposal, Round, SignedProposal};
use undchain_types::{BlockHeader, BlockNumber, Hash32, LocalTime, Message, PublicKey, SigningKey};

/// The parent of block 0.
pub const GENESIS: Hash32 = Hash32([0x9e; 32]);

/// One delivery: to node `to`, handed over by `from`.
pub type Delivery = (usize, PublicKey, Message);

/// `n` validators (all of `keys(n)` hold seats); node `i` runs a driver
/// unless it is left out (an attacker whose messages the test writes).
pub struct Net {
    pub ks: Vec<SigningKey>,
    pub drivers: Vec<Option<Driver>>,
    pub chains: Vec<Vec<CommittedBlock>>,
    pub queue: VecDeque<Delivery>,
    /// Deliveries to these nodes are held back (in `held`) until released.
    pub holding: Vec<bool>,
    pub held: Vec<Delivery>,
    /// Every output each node handed out, in order.
    pub outputs: Vec<Vec<Output>>,
    /// Heights a node starts after deciding (it stops at this height).
    pub stop_at: u64,
    pub now: i64,
}

impl Net {
    /// `n` validators; the nodes in `absent` run no driver.
    pub fn new(n: usize, absent: &[usize]) -> Self {
        let ks = keys(n);
        let drivers = (0..n)
            .map(|i| (!absent.contains(&i)).then(|| driver(&ks[i])))
            .collect();
        Net {
            ks,
            drivers,
            chains: vec![Vec::new(); n],
            queue: VecDeque::new(),
            holding: vec![false; n],
            held: Vec::new(),
            outputs: vec![Vec::new(); n],
            stop_at: u64::MAX,
            now: 0,
        }
    }

    /// Every running node starts `height` (its chain must be that long).
    pub fn start(&mut self, height: u64) {
        let set = set_of(&self.ks);
        for i in 0..self.ks.len() {
            if let Some(d) = self.drivers[i].as_mut() {
                d.start_height(at(self.now), BlockNumber(height), set.clone());
                self.carry_out(i);
            }
        }
    }

    /// The header node `i`'s host builds for `height`, `round`, told apart
    /// by `tag`.
    pub fn header_for(&self, i: usize, height: u64, tag: u8) -> BlockHeader {
        let set = set_of(&self.ks);
        let mut h = header(height, tag, &set);
        let chain = &self.chains[i];
        h.parent = chain.last().map_or(GENESIS, |b| b.header.hash());
        h.parent_signers = chain.last().map_or(0, |b| {
            set.bitmap(b.certificate.signatures.iter().map(|s| &s.validator))
        });
        h
    }

    /// The value node `i` proposes at `height` (with its parent's
    /// certificate).
    pub fn value_for(&self, i: usize, height: u64, tag: u8) -> Value {
        Value {
            header: self.header_for(i, height, tag),
            parent_certificate: self.chains[i].last().map(|b| b.certificate.clone()),
        }
    }

    /// `value` proposed by node `k` in `round` (no proof of lock).
    pub fn propose(&self, k: usize, round: Round, value: &Value) -> SignedProposal {
        Proposal {
            chain_id: CHAIN,
            height: value.header.number,
            round,
            pol_round: None,
            header: value.header.clone(),
            proposer: self.ks[k].public(),
            parent_certificate: value.parent_certificate.clone(),
        }
        .sign(&self.ks[k])
    }

    /// The host's `valid(v)` at node `i`.
    fn check(&self, i: usize, value: &Value) -> Validity {
        let set = set_of(&self.ks);
        let h = &value.header;
        let chain = &self.chains[i];
        let parent = chain.last().map_or(GENESIS, |b| b.header.hash());
        if h.number.0 != chain.len() as u64
            || h.parent != parent
            || h.validator_set_hash != set.hash()
        {
            return Validity::Invalid;
        }
        let parent_set = (!chain.is_empty()).then_some(&set);
        match check_parent_commit(
            h,
            value.parent_certificate.as_ref(),
            parent_set,
            StrictVerifier,
        ) {
            Ok(()) => Validity::Valid,
            Err(_) => Validity::Invalid,
        }
    }

    /// Carries out node `i`'s batches.
    pub fn carry_out(&mut self, i: usize) {
        loop {
            let Some(batch) = self.drivers[i].as_mut().and_then(Driver::ready) else {
                return;
            };
            let number = batch.number();
            for o in batch.immediate.into_iter().chain(batch.after_persist) {
                self.outputs[i].push(o.clone());
                self.perform(i, o);
            }
            if let Some(d) = self.drivers[i].as_mut() {
                d.advance(number).unwrap();
            }
        }
    }

    fn perform(&mut self, i: usize, o: Output) {
        let me = self.ks[i].public();
        let now = at(self.now);
        match o {
            Output::Broadcast { msg } => {
                for j in (0..self.ks.len()).filter(|j| *j != i) {
                    self.send(j, me, msg.clone());
                }
            }
            Output::Send { to, msg } => {
                if let Some(j) = self.ks.iter().position(|k| k.public() == to) {
                    self.send(j, me, msg);
                }
            }
            Output::GetValue { height, round } => {
                let v = self.value_for(i, height.0, 1 + round as u8);
                let d = self.drivers[i].as_mut().unwrap();
                let _ = d.propose_value(now, height, round, v);
            }
            Output::CheckValue {
                height, key, value, ..
            } => {
                let verdict = self.check(i, &value);
                let d = self.drivers[i].as_mut().unwrap();
                d.handle_validity(now, height, key, verdict).unwrap();
            }
            Output::Decide(b) => {
                let next = b.header.number.next();
                self.chains[i].push(*b);
                if next.0 < self.stop_at {
                    let set = set_of(&self.ks);
                    self.drivers[i]
                        .as_mut()
                        .unwrap()
                        .start_height(now, next, set);
                }
            }
            Output::ServeBlocks { to, request } => {
                let chain = &self.chains[i];
                let from = (request.from.0 as usize).min(chain.len());
                let blocks = chain[from..].to_vec();
                if let (false, Some(j)) = (
                    blocks.is_empty(),
                    self.ks.iter().position(|k| k.public() == to),
                ) {
                    let resp = undchain_types::msg::BlockResponse {
                        blocks: undchain_types::BoundedVec::truncating(blocks),
                        tip: BlockNumber(chain.len() as u64 - 1),
                    };
                    self.send(j, me, Message::BlockResponse(resp));
                }
            }
            _ => {}
        }
    }

    /// Queues a delivery (or holds it back).
    pub fn send(&mut self, to: usize, from: PublicKey, msg: Message) {
        if self.holding[to] {
            self.held.push((to, from, msg));
        } else {
            self.queue.push_back((to, from, msg));
        }
    }

    /// Hands `msg` to node `to` at once, from `from`; returns the driver's
    /// answer.
    pub fn inject(
        &mut self,
        to: usize,
        from: PublicKey,
        msg: Message,
    ) -> Result<(), undchain_consensus::InputError> {
        self.now += 1;
        let now = at(self.now);
        let r = self.drivers[to]
            .as_mut()
            .unwrap()
            .handle_message(now, from, msg);
        self.carry_out(to);
        r
    }

    /// Delivers queued messages, one microsecond each, and fires timeouts
    /// when nothing is queued, until nothing is left to do or `until_us`.
    pub fn run(&mut self, until_us: i64) {
        while self.now < until_us {
            if let Some((to, from, msg)) = self.queue.pop_front() {
                self.now += 1;
                let now = at(self.now);
                if let Some(d) = self.drivers[to].as_mut() {
                    if d.handle_message(now, from, msg).is_ok() {
                        self.carry_out(to);
                    }
                }
                continue;
            }
            let next: Option<(LocalTime, usize)> = (0..self.ks.len())
                .filter_map(|i| {
                    let d = self.drivers[i].as_ref()?;
                    Some((d.poll_timeout()?, i))
                })
                .min();
            let Some((due, i)) = next else {
                return;
            };
            if due.micros() > until_us {
                return;
            }
            self.now = self.now.max(due.micros());
            self.drivers[i].as_mut().unwrap().handle_timeout(due);
            self.carry_out(i);
        }
    }

    /// The block hashes node `i` decided, by height.
    pub fn decided(&self, i: usize) -> Vec<Hash32> {
        self.chains[i].iter().map(|b| b.header.hash()).collect()
    }

    /// The prevotes node `i` broadcast at `height`, `round` (`None`: nil).
    pub fn prevotes_of(&self, i: usize, height: u64, round: Round) -> Vec<Option<Hash32>> {
        self.outputs[i]
            .iter()
            .filter_map(|o| match o {
                Output::Broadcast {
                    msg: Message::Vote(v),
                } if v.vote.validator == self.ks[i].public()
                    && v.vote.height == BlockNumber(height)
                    && v.vote.round == round
                    && v.vote.kind == undchain_types::msg::VoteKind::Prevote =>
                {
                    Some(v.vote.value)
                }
                _ => None,
            })
            .collect()
    }
}
