//! The simulator as the drivers' host: it carries out each node's
//! [`DriverReady`] batches as a node would (what promises nothing, then the
//! one write, then what needed it), answers the driver's requests, sends
//! through Byzantine rewriting, partitions and the lossy network, and wakes
//! each driver when its [`Driver::poll_timeout`] says.

use undchain_types::msg::{BlockRequest, BlockResponse, CommittedBlock};
use undchain_types::{BlockNumber, BoundedVec, HashAlgorithm, Message, Ready};

use super::SIM_CHAIN;
use super::checker::Violation;
use super::world::{Event, Simulation};
use crate::adversary::{ActorCtx, Send};
use crate::certificate::verify_committed_block;
use crate::driver::{Driver, DriverReady, Output, PersistedState, Validity};
use crate::round::Value;

/// A batch's steps in the order the simulated host takes them: the outputs
/// that promise nothing, the write (`None`), then the outputs that needed
/// it; and the state the write stores.
fn steps(batch: DriverReady) -> (Vec<Option<Output>>, Option<PersistedState>) {
    let Ready {
        persist,
        immediate,
        after_persist,
        ..
    } = batch;
    let write = persist.into_iter().last();
    let steps = immediate
        .into_iter()
        .map(Some)
        .chain(write.is_some().then_some(None))
        .chain(after_persist.into_iter().map(Some))
        .collect();
    (steps, write)
}

impl Simulation {
    /// Carries out node `i`'s batches after an input: each batch's steps in
    /// order, then `advance`; answers given meanwhile (a value, a verdict)
    /// come back as the next batch. A torn crash hits after a drawn number
    /// of the first batch's steps (an input with no batch counts as an
    /// empty one). Then schedules the driver's next wake-up.
    pub(super) fn carry_out(&mut self, i: usize) {
        let mut batch = self.nodes[i].driver.as_mut().and_then(Driver::ready);
        let first = batch.as_ref().map_or(0, |b| {
            b.immediate.len() + usize::from(!b.persist.is_empty()) + b.after_persist.len()
        });
        let cut = self.nodes[i]
            .torn_crash
            .map(|down| (self.rng.below(first as u64 + 1), down));
        let mut done = 0u64;
        while let Some(b) = batch {
            let number = b.number();
            let (steps, mut write) = steps(b);
            for step in steps {
                if let Some((at, down)) = cut {
                    if done == at {
                        self.crash_now(i, down);
                        return;
                    }
                }
                done += 1;
                if self.nodes[i].driver.is_none() {
                    return;
                }
                match step {
                    None => self.nodes[i].persisted = write.take(),
                    Some(o) => self.perform(i, o),
                }
            }
            let Some(d) = self.nodes[i].driver.as_mut() else {
                return;
            };
            // The batch just handed out is the outstanding one.
            let _ = d.advance(number);
            batch = d.ready();
        }
        if let Some((_, down)) = cut {
            if self.nodes[i].driver.is_some() {
                self.crash_now(i, down);
                return;
            }
        }
        self.schedule_wake(i);
    }

    /// Schedules a wake-up for node `i`'s driver when its earliest pending
    /// timeout is due, unless one is scheduled earlier already.
    fn schedule_wake(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let Some(at) = n.driver.as_ref().and_then(Driver::poll_timeout) else {
            return;
        };
        let at = u64::try_from(at.micros()).unwrap_or(0);
        if n.wake_at.is_none_or(|w| at < w) {
            n.wake_at = Some(at);
            let incarnation = n.incarnation;
            self.queue.push(
                at,
                Event::Wake {
                    node: i,
                    incarnation,
                },
            );
        }
    }

    /// Carries out one output of node `i`'s driver, as a node's host would.
    fn perform(&mut self, i: usize, o: Output) {
        let now = self.local_now();
        match o {
            Output::Broadcast { msg } => {
                if self.nodes[i].honest {
                    let id = self.nodes[i].pk;
                    self.checker.sent(i, &id, &msg);
                }
                let recipients: Vec<usize> = (0..self.nodes.len()).filter(|r| *r != i).collect();
                self.route(i, &recipients, msg);
            }
            Output::Send { to, msg } => {
                if let Some(&r) = self.index_of.get(&to) {
                    self.route(i, &[r], msg);
                }
            }
            Output::GetValue { height, round } => {
                if let Some(value) = self.build_value(i, height, round) {
                    if let Some(d) = self.nodes[i].driver.as_mut() {
                        // A value no longer wanted is refused; nothing to do.
                        let _ = d.propose_value(now, height, round, value);
                    }
                }
            }
            Output::CheckValue {
                height, key, value, ..
            } => self.answer_check(i, height, key, &value),
            Output::Decide(block) => self.on_decide(i, *block),
            Output::Evidence(e) => {
                if self.nodes[i].honest && self.evidence.len() < 256 {
                    self.evidence.push(*e);
                }
            }
            Output::ServeBlocks { to, request } => self.serve_blocks(i, to, request),
        }
    }

    /// The host's `valid(v)`, sometimes "pending" first (the job file is
    /// still being reconciled) with the real verdict a few delays later.
    fn answer_check(
        &mut self,
        i: usize,
        height: BlockNumber,
        key: undchain_types::Hash32,
        value: &Value,
    ) {
        let now = self.local_now();
        let verdict = self.check_value(i, height, value);
        let pending = self
            .rng
            .chance(self.config.faults.pending_validity_permille);
        let answer = if pending { Validity::Pending } else { verdict };
        if pending {
            let later = self.now
                + self.config.unit_us * self.rng.range(1, self.config.faults.pending_units.max(1));
            let incarnation = self.nodes[i].incarnation;
            self.queue.push(
                later,
                Event::Validity {
                    node: i,
                    incarnation,
                    height,
                    key,
                    validity: verdict,
                },
            );
        }
        if let Some(d) = self.nodes[i].driver.as_mut() {
            // A verdict for a height already left is refused; nothing to do.
            let _ = d.handle_validity(now, height, key, answer);
        }
    }

    /// Answers a block request from node `i`'s chain.
    fn serve_blocks(&mut self, i: usize, to: undchain_types::PublicKey, request: BlockRequest) {
        let chain = &self.nodes[i].chain;
        let from = (request.from.0 as usize).min(chain.len());
        let max = usize::from(request.max).min(undchain_types::msg::MAX_BLOCKS_PER_RESPONSE);
        let blocks: Vec<CommittedBlock> = chain[from..(from + max).min(chain.len())].to_vec();
        if blocks.is_empty() {
            return;
        }
        let resp = BlockResponse {
            blocks: BoundedVec::truncating(blocks),
            tip: BlockNumber(chain.len().saturating_sub(1) as u64),
        };
        if let Some(&r) = self.index_of.get(&to) {
            self.route(i, &[r], Message::BlockResponse(resp));
        }
    }

    /// Sends from `i` to `recipients` through Byzantine rewriting (if `i` is
    /// Byzantine), partitions and the lossy network.
    fn route(&mut self, i: usize, recipients: &[usize], msg: Message) {
        if self.nodes[i].adversary.is_none() {
            for &to in recipients {
                self.transmit(i, to, msg.clone());
            }
            return;
        }
        let to: Vec<_> = recipients.iter().map(|r| self.nodes[*r].pk).collect();
        let sends = self.with_actor(i, |adv, ctx, c| adv.outgoing(ctx, c, &to, msg));
        self.send_all(i, sends);
    }

    /// What Byzantine node `i`'s actors answer to a message it received,
    /// and whether its driver gets the message.
    pub(super) fn observe(
        &mut self,
        i: usize,
        from: undchain_types::PublicKey,
        msg: &Message,
    ) -> (Vec<Send>, bool) {
        self.with_actor(i, |adv, ctx, c| {
            let answers = adv.observe(ctx, c, from, msg);
            Some((answers, adv.admits(ctx, c, from, msg)))
        })
        .unwrap_or((Vec::new(), true))
    }

    /// Runs `f` with Byzantine node `i`'s adversary, its context and the
    /// coalition (`T::default()` if it has none).
    fn with_actor<T: Default>(
        &mut self,
        i: usize,
        f: impl FnOnce(
            &mut crate::adversary::Adversary,
            &mut ActorCtx<'_>,
            &mut crate::adversary::Coalition,
        ) -> T,
    ) -> T {
        let Some(mut adv) = self.nodes[i].adversary.take() else {
            return T::default();
        };
        let height = BlockNumber(self.nodes[i].chain.len() as u64);
        let set = self.nodes[i]
            .driver
            .as_ref()
            .and_then(|d| d.validator_set().cloned())
            .or_else(|| self.set_for(i, height));
        let peers: Vec<_> = (0..self.nodes.len())
            .filter(|r| *r != i)
            .map(|r| self.nodes[r].pk)
            .collect();
        let out = match set {
            Some(set) => {
                let key = self.nodes[i].key.clone();
                let mut ctx = ActorCtx {
                    key: &key,
                    set: &set,
                    height,
                    chain_id: SIM_CHAIN,
                    hash_algorithm: HashAlgorithm::Blake3,
                    peers: &peers,
                    rng: &mut self.rng,
                    timeouts: self.driver_config.timeouts,
                };
                f(&mut adv, &mut ctx, &mut self.coalition)
            }
            None => T::default(),
        };
        self.nodes[i].adversary = Some(adv);
        out
    }

    /// Puts the actors' sends from `i` on the network.
    pub(super) fn send_all(&mut self, i: usize, sends: Vec<Send>) {
        for s in sends {
            if let Some(&to) = self.index_of.get(&s.to) {
                self.transmit(i, to, s.msg);
            }
        }
    }

    /// One message from `i` to `to` through partitions, the coalition's
    /// hold on the network and the lossy network.
    fn transmit(&mut self, i: usize, to: usize, m: Message) {
        if to == i || self.config.faults.partitioned(self.now, i, to) {
            return;
        }
        let held = self.held(i, to, &m);
        let delays = self
            .config
            .faults
            .deliveries(&mut self.rng, self.now, self.config.unit_us);
        for d in delays {
            self.queue.push(
                self.now + held + d,
                Event::Deliver {
                    to,
                    from: i,
                    msg: Box::new(m.clone()),
                },
            );
        }
    }

    /// How long the coalition holds back `m` from `i` to `to`: only while
    /// the network is faulty, and only with an actor that controls it
    /// ([`crate::adversary::Actor::hold`]; the first such Byzantine node
    /// speaks for the coalition).
    fn held(&mut self, i: usize, to: usize, m: &Message) -> u64 {
        if self.now >= self.config.faults.heal_at_us {
            return 0;
        }
        let Some(b) = self.network_adversary else {
            return 0;
        };
        let (from, to) = (self.nodes[i].pk, self.nodes[to].pk);
        self.with_actor(b, |adv, ctx, c| adv.hold(ctx, c, from, to, m))
    }

    /// Node `i` decided `block`: check it (honest nodes), store it, move
    /// its roster on, and start the next height as a fresh event.
    fn on_decide(&mut self, i: usize, block: CommittedBlock) {
        let height = block.header.number;
        if self.nodes[i].chain.len() as u64 != height.0 {
            return;
        }
        let Some(set) = self.set_for(i, height) else {
            return;
        };
        let block_hash = block.header.hash();
        if self.nodes[i].honest {
            if let Some(reason) = self.header_problem(i, height, &block.header) {
                self.checker.flag(Violation::Validity {
                    node: i,
                    height,
                    reason,
                });
            }
            if let Err(e) = verify_committed_block(
                &block,
                SIM_CHAIN,
                height,
                &set,
                HashAlgorithm::Blake3,
                &mut self.verifier,
            ) {
                self.checker.flag(Violation::Certificate {
                    node: i,
                    height,
                    reason: e.to_string(),
                });
            }
            self.checker.decided(i, height, block_hash);
            let started = self.nodes[i].height_started_at;
            self.delay_units_sum += (self.now - started) as f64 / self.config.unit_us as f64;
            self.decisions_measured += 1;
            self.max_round = self.max_round.max(block.certificate.round);
        }
        let node = &mut self.nodes[i];
        if let Some(r) = node.roster.as_mut() {
            // A roster error (impossible on a chain built here) leaves the
            // roster behind; the next start then finds no set and the node
            // stops, which the liveness check reports.
            let _ = r.apply_block(&block.header, block_hash, &[]);
        }
        node.chain.push(block);
        node.decided_at.push(self.now);
        // A validator stops two heights past the target: with nothing to
        // wait for (n = 1, no delays) it would otherwise decide forever
        // without the clock moving. Laggards still catch up from its blocks.
        if node.chain.len() as u64 >= self.config.heights.saturating_add(2) {
            return;
        }
        // The next height starts as a fresh event (at the same instant), so
        // a validator that decides alone still yields to the clock.
        let incarnation = node.incarnation;
        self.queue.push(
            self.now,
            Event::StartHeight {
                node: i,
                incarnation,
                height: height.next(),
            },
        );
    }
}
