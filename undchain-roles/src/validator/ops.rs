//! Block operations (docs/PROTOCOL.md "Block operations"): receipts,
//! partial completions and transactions users submit are verified once,
//! checked against the committed ledger, pooled and relayed to the other
//! active validators; a proposer commits a pooled selection by the
//! header's `ops_root` and pushes the list with its proposal; a validator
//! checking a proposal (or catching up a decided block) whose list it
//! lacks fetches it; once a block applies, its submitters get a
//! [`CompletionAck`] naming the block.

use std::collections::{BTreeMap, VecDeque};

use undchain_ledger::{LedgerError, Verified};
use undchain_types::msg::{
    CompletionAck, MAX_BLOCK_OPS, MAX_BLOCK_OPS_BYTES, Operation, OpsBatch, OpsFetch, ops_root,
};
use undchain_types::{BlockHeader, BlockNumber, BoundedVec, Hash32, LocalTime, Message, PublicKey};

use super::Validator;

/// Most operations a validator holds uncommitted (submissions beyond it
/// are refused until blocks drain the pool).
pub const MAX_POOL_OPS: usize = 16_384;

/// Blocks an operation waits in the pool before it is dropped (one the
/// ledger keeps refusing, e.g. a transaction whose nonce never comes).
pub const POOL_BLOCKS: u64 = 64;

/// Most submitters remembered per pooled operation (each gets the ack).
const MAX_SUBMITTERS: usize = 4;

/// Most complete block lists kept for proposals not yet checked.
const MAX_BLOCK_LISTS: usize = 8;

/// Most ids of operations a committed block carried that are remembered,
/// so that their late relays are dropped before their signatures are
/// checked (a relay of an operation already applied can never be pooled).
const MAX_SETTLED_IDS: usize = 65_536;

/// Why an operation or an operations message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// Its signatures or chain do not verify, or the committed ledger
    /// refuses it.
    #[error("operation {id}: {error}")]
    Ledger {
        /// The operation's id.
        id: Hash32,
        /// The ledger's reason.
        error: Box<LedgerError>,
    },
    /// The pool is full.
    #[error("operation pool full ({max} operations waiting)")]
    PoolFull {
        /// The pool's bound.
        max: usize,
    },
    /// A block's list does not hash to the header's `ops_root`.
    #[error("operations of block {block} do not match its header")]
    Mismatch {
        /// The block's header hash.
        block: Hash32,
    },
}

/// One pooled operation.
#[derive(Debug, Clone)]
struct Pooled {
    seq: u64,
    op: Verified,
    submitters: Vec<PublicKey>,
    since: BlockNumber,
}

/// The validator's operations: the pool of uncommitted ones (in arrival
/// order), relays waiting for the next gossip round, and complete lists of
/// blocks being checked.
#[derive(Debug, Default)]
pub(crate) struct OpsPool {
    by_id: BTreeMap<Hash32, Pooled>,
    order: BTreeMap<u64, Hash32>,
    next_seq: u64,
    relay: Vec<Operation>,
    lists: VecDeque<(Hash32, Vec<Verified>)>,
    /// Ids of operations committed blocks carried, oldest first (at most
    /// [`MAX_SETTLED_IDS`]).
    settled: std::collections::BTreeSet<Hash32>,
    settled_order: VecDeque<Hash32>,
}

impl OpsPool {
    /// The pooled operation `op` stands for, if the pool holds exactly it.
    fn known(&self, op: &Operation) -> Option<&Verified> {
        self.by_id
            .get(&op.id())
            .map(|p| &p.op)
            .filter(|v| v.op() == op)
    }

    fn insert(&mut self, op: Verified, submitter: Option<PublicKey>, at: BlockNumber) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, op.id());
        if submitter.is_some() {
            // Submitted here: relayed to the others (a relay is not sent on).
            self.relay.push(op.op().clone());
        }
        self.by_id.insert(
            op.id(),
            Pooled {
                seq,
                op,
                submitters: submitter.into_iter().collect(),
                since: at,
            },
        );
    }

    fn remove(&mut self, id: &Hash32) -> Option<Pooled> {
        let p = self.by_id.remove(id)?;
        self.order.remove(&p.seq);
        Some(p)
    }

    /// Remembers that a committed block carried operation `id`.
    fn settle(&mut self, id: Hash32) {
        if !self.settled.insert(id) {
            return;
        }
        self.settled_order.push_back(id);
        if self.settled_order.len() > MAX_SETTLED_IDS {
            if let Some(old) = self.settled_order.pop_front() {
                self.settled.remove(&old);
            }
        }
    }

    /// Whether the operation of `id` is pooled or was carried by a
    /// committed block not long ago.
    fn seen(&self, id: &Hash32) -> bool {
        self.by_id.contains_key(id) || self.settled.contains(id)
    }

    /// Number of pooled operations.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The complete list of block `id`, if one was pushed or fetched.
    fn list(&self, id: &Hash32) -> Option<&Vec<Verified>> {
        self.lists.iter().find(|(b, _)| b == id).map(|(_, l)| l)
    }

    fn keep_list(&mut self, id: Hash32, ops: Vec<Verified>) {
        if self.list(&id).is_some() {
            return;
        }
        if self.lists.len() >= MAX_BLOCK_LISTS {
            self.lists.pop_front();
        }
        self.lists.push_back((id, ops));
    }
}

/// Whether the ledger may accept `op`, refused with `e` by a ledger whose
/// next block is `next`, in a later block, so it stays pooled: a
/// transaction ahead of its sender's nonce, or a claim on a job whose
/// commit block this validator has not applied yet (it lags, or the claim
/// raced the block), within the pool's window.
fn may_apply_later(op: &Operation, e: &LedgerError, next: BlockNumber) -> bool {
    match e {
        LedgerError::BadNonce { expected, got, .. } => got > expected,
        LedgerError::UnknownJob { .. } => op
            .commit_block()
            .is_some_and(|b| b >= next && b.0 < next.0.saturating_add(POOL_BLOCKS)),
        _ => false,
    }
}

/// The operations' encoded size (what an [`OpsBatch`] carries).
fn encoded_len(op: &Operation) -> usize {
    undchain_types::wire::encode_bare(op).len()
}

impl Validator {
    /// A user submitted `op` (client story step 5, partner story's partial
    /// completion, a transaction): verified, checked, pooled, relayed. A
    /// repeated submission adds its sender to those acknowledged; one the
    /// ledger already recorded is acknowledged at once with its block.
    pub(crate) fn handle_user_op(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        op: Operation,
    ) -> Result<(), OpError> {
        let id = op.id();
        if let Some(p) = self.ops.by_id.get_mut(&id) {
            if p.op.op() == &op {
                if !p.submitters.contains(&from) && p.submitters.len() < MAX_SUBMITTERS {
                    p.submitters.push(from);
                }
                return Ok(());
            }
        }
        let job = op.job();
        let verified = self.take_op(op)?;
        match self.ledger.check(&verified) {
            Ok(_) => {}
            Err(LedgerError::AlreadyReceipted { block, .. }) if job.is_some() => {
                let ack = CompletionAck {
                    job: job.unwrap_or_default(),
                    block,
                    first: false,
                };
                self.send(now, &[from], Message::CompletionAck(ack), false);
                return Ok(());
            }
            Err(e) if may_apply_later(verified.op(), &e, self.height) => {}
            Err(error) => {
                return Err(OpError::Ledger {
                    id,
                    error: Box::new(error),
                });
            }
        }
        self.pool_op(verified, Some(from))
    }

    /// Verifies `op`'s signatures (strictly), reusing the pool's check of
    /// the identical operation.
    fn take_op(&self, op: Operation) -> Result<Verified, OpError> {
        if let Some(v) = self.ops.known(&op) {
            return Ok(v.clone());
        }
        let id = op.id();
        self.ledger
            .verify_with(op, crate::node::ViaCheck(self.check.as_ref()))
            .map_err(|error| OpError::Ledger {
                id,
                error: Box::new(error),
            })
    }

    fn pool_op(&mut self, op: Verified, submitter: Option<PublicKey>) -> Result<(), OpError> {
        if self.ops.len() >= MAX_POOL_OPS {
            return Err(OpError::PoolFull { max: MAX_POOL_OPS });
        }
        let at = self.height;
        self.ops.insert(op, submitter, at);
        Ok(())
    }

    /// Another validator's operations: a relay (pooled when new and
    /// applicable) or a block's complete list (kept for its check).
    pub(crate) fn handle_ops_batch(
        &mut self,
        now: LocalTime,
        batch: OpsBatch,
    ) -> Result<(), OpError> {
        let Some(block) = batch.block else {
            for op in batch.ops.into_vec() {
                if self.ops.seen(&op.id()) {
                    continue;
                }
                // One bad relay does not spoil the rest of the batch.
                let Ok(v) = self.take_op(op) else { continue };
                let ok = match self.ledger.check(&v) {
                    Ok(_) => true,
                    Err(e) => may_apply_later(v.op(), &e, self.height),
                };
                if ok && self.pool_op(v, None).is_err() {
                    break;
                }
            }
            return Ok(());
        };
        if self.ops.list(&block).is_some() {
            return Ok(());
        }
        let ops = batch.ops.into_vec();
        let root = ops_root(self.params.hash_algorithm, &ops);
        let header = self
            .pending
            .get(&block)
            .map(|p| p.header.clone())
            .or_else(|| self.decided_header(&block));
        if let Some(h) = &header {
            if h.ops_root != root || h.ops_count as usize != ops.len() {
                return Err(OpError::Mismatch { block });
            }
        }
        let verified: Vec<Verified> = ops
            .into_iter()
            .map(|op| self.take_op(op))
            .collect::<Result<_, _>>()?;
        if let Some(p) = self.pending.get_mut(&block) {
            p.ops = Some(verified);
            self.resolve_pending(now);
        } else {
            self.ops.keep_list(block, verified);
            self.process_decided(now);
        }
        Ok(())
    }

    /// The header of a decided block waiting for its body.
    fn decided_header(&self, id: &Hash32) -> Option<BlockHeader> {
        self.decided
            .iter()
            .find(|b| b.certificate.block_hash == *id)
            .map(|b| b.header.clone())
    }

    /// A validator asks for block `f.block`'s operations: answered from
    /// the candidates, the lists kept, or the served blocks.
    pub(crate) fn handle_ops_fetch(&mut self, now: LocalTime, from: PublicKey, f: OpsFetch) {
        let ops: Option<Vec<Operation>> = self
            .candidates
            .get(&f.block)
            .map(|c| c.ops.iter().map(|v| v.op().clone()).collect())
            .or_else(|| {
                self.ops
                    .list(&f.block)
                    .map(|l| l.iter().map(|v| v.op().clone()).collect())
            })
            .or_else(|| {
                self.served
                    .iter()
                    .find(|s| s.block.certificate.block_hash == f.block)
                    .map(|s| s.ops.clone())
            });
        if let Some(ops) = ops {
            let batch = OpsBatch {
                block: Some(f.block),
                ops: BoundedVec::try_from(ops).unwrap_or_default(),
            };
            self.send(now, &[from], Message::OpsBatch(batch), false);
        }
    }

    /// The operations of block `id` with header `h`, if this validator
    /// holds the complete list (none are needed for a block without).
    pub(crate) fn ops_of(&self, id: &Hash32, h: &BlockHeader) -> Option<Vec<Verified>> {
        if h.ops_count == 0 {
            return Some(Vec::new());
        }
        if let Some(c) = self.candidates.get(id) {
            return Some(c.ops.clone());
        }
        let l = self.ops.list(id)?;
        let ops: Vec<Operation> = l.iter().map(|v| v.op().clone()).collect();
        (ops_root(self.params.hash_algorithm, &ops) == h.ops_root).then(|| l.clone())
    }

    /// Asks `peer` for block `id`'s operations.
    pub(crate) fn fetch_ops(&mut self, now: LocalTime, peer: PublicKey, id: Hash32) {
        if peer != self.me {
            self.send(
                now,
                &[peer],
                Message::OpsFetch(OpsFetch { block: id }),
                false,
            );
        }
    }

    /// The proposer's selection: pooled operations in arrival order, up to
    /// the count and byte bounds; operations that waited too long are
    /// dropped.
    pub(crate) fn select_ops(&mut self) -> Vec<Verified> {
        let h = self.height;
        let stale: Vec<Hash32> = self
            .ops
            .by_id
            .iter()
            .filter(|(_, p)| p.since.0 + POOL_BLOCKS < h.0)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.ops.remove(&id);
        }
        let mut bytes = 0usize;
        let mut out = Vec::new();
        for id in self.ops.order.values() {
            let Some(p) = self.ops.by_id.get(id) else {
                continue;
            };
            let len = encoded_len(p.op.op());
            if out.len() == MAX_BLOCK_OPS || bytes + len > MAX_BLOCK_OPS_BYTES {
                break;
            }
            bytes += len;
            out.push(p.op.clone());
        }
        out
    }

    /// Drops pooled operation `op` the ledger refused (with `e`) for good.
    pub(crate) fn drop_refused(&mut self, op: &Verified, e: &LedgerError) {
        if !may_apply_later(op.op(), e, self.height) {
            self.ops.remove(&op.id());
        }
    }

    /// Relays newly pooled operations to the other active validators.
    pub(crate) fn relay_ops(&mut self, now: LocalTime) {
        while !self.ops.relay.is_empty() {
            let mut bytes = 0usize;
            let mut n = 0usize;
            for op in &self.ops.relay {
                let len = encoded_len(op);
                if n == MAX_BLOCK_OPS || (n > 0 && bytes + len > MAX_BLOCK_OPS_BYTES) {
                    break;
                }
                bytes += len;
                n += 1;
            }
            let chunk: Vec<Operation> = self.ops.relay.drain(..n).collect();
            let batch = OpsBatch {
                block: None,
                ops: BoundedVec::try_from(chunk).unwrap_or_default(),
            };
            self.broadcast(now, Message::OpsBatch(batch), false);
        }
    }

    /// Block `number` applied `ops`, of which `applied` were accepted (in
    /// order, the rest refused): acks to their submitters, and every one
    /// of them leaves the pool.
    pub(crate) fn ops_committed(
        &mut self,
        now: LocalTime,
        number: BlockNumber,
        ops: &[Verified],
        refused: &[usize],
    ) {
        for (i, v) in ops.iter().enumerate() {
            self.ops.settle(v.id());
            let Some(p) = self.ops.remove(&v.id()) else {
                continue;
            };
            let (Some(job), false) = (v.op().job(), refused.contains(&i)) else {
                continue;
            };
            for (k, to) in p.submitters.iter().enumerate() {
                let ack = CompletionAck {
                    job,
                    block: number,
                    first: k == 0,
                };
                self.send(now, &[*to], Message::CompletionAck(ack), true);
            }
        }
    }
}
