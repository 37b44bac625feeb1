//! The reconciliation state machine, the same for both sides after the
//! first message (`docs/PROTOCOL.md` "Job files and reconciliation").
//!
//! Each side keeps two queues that mirror the peer's: `outstanding` (what
//! this side asked and the peer must answer, in order) and `to_answer`
//! (what the peer asked). A round answers a prefix of the receiver's
//! outstanding queue; answers to splits open new ranges. The file is only
//! read: entries learned from the peer are kept in the outcome (and in the
//! session's view of the set), and the caller applies the outcome.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use undchain_types::msg::{AbortReason, FinalRoot, Reconcile, ReconcileBody, ReconcileRound};
use undchain_types::wire::{self};
use undchain_types::{
    BlockNumber, BoundedBytes, BoundedVec, Hash32, HashContext, JobEntry, JobId, hash_parts,
};

use super::bits::{BitReader, BitWriter, U32Reader};
use super::policy::{self, Op};
use super::range::{Agg, Mode, Prefix, entries_in, fp32, top64};
use super::{Config, Outcome, ReconcileError, Traffic};
use crate::file::JobFile;

const OP_SPLIT: u8 = 0x00;
const OP_IDS: u8 = 0x40;
const OP_ENTRIES: u8 = 0x80;
const MAX_SPLIT_BITS: u8 = 16;
/// Entries a round may carry (the message type's cap, with some slack).
const ROUND_ENTRIES: usize = 30_000;

/// Which side of the session this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends the first message.
    Initiator,
    /// Answers it.
    Responder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Running,
    Finished,
    Failed,
}

/// What this side asked; the peer's next rounds answer it.
#[derive(Debug)]
enum Asked {
    Root,
    Split { prefix: Prefix, b: u8 },
    Ids { prefix: Prefix, mine: Vec<Item> },
    Entries { prefix: Prefix, mine: Vec<Item> },
    Want { prefix: Prefix },
}

/// What the peer asked; this side's next rounds answer it.
#[derive(Debug)]
enum Ask {
    Root {
        peer_count: u64,
    },
    Split {
        prefix: Prefix,
        b: u8,
        fps: Vec<u32>,
    },
    Ids {
        prefix: Prefix,
        shorts: Vec<u32>,
    },
    Entries {
        prefix: Prefix,
        theirs: BTreeSet<(JobId, Hash32)>,
        new: Vec<bool>,
    },
    Deliver {
        entries: Vec<JobEntry>,
    },
}

/// An entry of the session's view with its leaf hash and short id.
#[derive(Debug, Clone)]
struct Item {
    entry: JobEntry,
    leaf: Hash32,
    short: u32,
}

#[derive(Debug)]
struct Pass {
    mode: Mode,
    outstanding: VecDeque<Asked>,
    to_answer: VecDeque<Ask>,
}

/// One side of a reconciliation session over one job file.
///
/// Drive it with [`Session::start`] (initiator) and
/// [`Session::handle`] / [`Session::handle_bytes`] (both sides), passing
/// the same, unchanged file every time. When [`Session::is_finished`], the
/// [`Session::outcome`] says what each side lacked.
#[derive(Debug)]
pub struct Session {
    role: Role,
    session: u64,
    block: BlockNumber,
    cfg: Config,
    nonce: Hash32,
    step: u16,
    version: Option<u64>,
    state: State,
    pass: Option<Pass>,
    keyed_started: bool,
    local: BTreeMap<(JobId, Hash32), JobEntry>,
    remote: BTreeMap<(JobId, Hash32), JobEntry>,
    traffic: Traffic,
}

/// Writes one round.
#[derive(Default)]
struct Writer {
    bits: BitWriter,
    ops: Vec<u8>,
    fps: Vec<u8>,
    counts: Vec<u32>,
    shorts: Vec<u8>,
    op_entries: Vec<JobEntry>,
    extras: Vec<JobEntry>,
}

impl Writer {
    fn estimate(&self) -> usize {
        self.bits.len_bytes()
            + self.ops.len()
            + self.fps.len()
            + self.shorts.len()
            + 3 * self.counts.len()
            + 48 * (self.op_entries.len() + self.extras.len())
    }

    fn entries(&self) -> usize {
        self.op_entries.len() + self.extras.len()
    }
}

impl Session {
    /// A session; `nonce` is fresh randomness (an input, never drawn
    /// inside) that keys the slow pass if this side has to start one.
    pub fn new(role: Role, session: u64, block: BlockNumber, cfg: Config, nonce: Hash32) -> Self {
        Session {
            role,
            session,
            block,
            cfg,
            nonce,
            step: 0,
            version: None,
            state: State::Idle,
            pass: None,
            keyed_started: false,
            local: BTreeMap::new(),
            remote: BTreeMap::new(),
            traffic: Traffic::default(),
        }
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the session ended with equal roots (so far: a peer that sent
    /// the last message may still start a keyed pass).
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Whether the session failed.
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// Messages and bytes so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// What each side lacked (complete once [`Session::is_finished`]).
    pub fn outcome(&self) -> Outcome {
        Outcome {
            only_local: self.local.values().cloned().collect(),
            only_remote: self.remote.values().cloned().collect(),
        }
    }

    /// An abort message telling the peer why this side stopped.
    pub fn abort_message(&mut self, reason: AbortReason) -> Reconcile {
        let m = self.envelope(ReconcileBody::Abort(reason));
        self.state = State::Failed;
        m
    }

    fn envelope(&mut self, body: ReconcileBody) -> Reconcile {
        let m = Reconcile {
            session: self.session,
            block: self.block,
            step: self.step,
            body,
        };
        self.step = self.step.wrapping_add(1);
        m
    }

    fn fail(&mut self, e: ReconcileError) -> ReconcileError {
        self.state = State::Failed;
        e
    }

    /// The initiator's first message: its count and root.
    pub fn start(&mut self, file: &JobFile) -> Result<Reconcile, ReconcileError> {
        if self.role != Role::Initiator || self.state != State::Idle {
            return Err(ReconcileError::Unexpected(
                "start on a session already under way",
            ));
        }
        self.version = Some(file.version());
        self.state = State::Running;
        let msg = self.open_pass(file, Mode::Unkeyed, None);
        let len = wire::encode(&msg).len();
        self.count_out(len)?;
        Ok(msg)
    }

    /// Starts a pass: this side asks about the root.
    fn open_pass(&mut self, file: &JobFile, mode: Mode, nonce: Option<Hash32>) -> Reconcile {
        let (count, root) = self.view_root(file, mode);
        let mut outstanding = VecDeque::new();
        outstanding.push_back(Asked::Root);
        self.pass = Some(Pass {
            mode,
            outstanding,
            to_answer: VecDeque::new(),
        });
        self.envelope(ReconcileBody::Start {
            count,
            root,
            keyed: nonce,
        })
    }

    fn keyed_mode(&self, nonce: &Hash32) -> Mode {
        Mode::Keyed(
            hash_parts(
                HashContext::ReconcileKeyed,
                &[
                    nonce.as_bytes(),
                    &self.session.to_le_bytes(),
                    &self.block.0.to_le_bytes(),
                ],
            )
            .0,
        )
    }

    /// Count and pass root of the session's view (file plus entries learned
    /// from the peer).
    fn view_root(&self, file: &JobFile, mode: Mode) -> (u64, Hash32) {
        let (_, mut sum) = mode.file_root(file);
        let mut count = file.len();
        for (_, leaf) in self.remote.keys() {
            sum.add(&mode.root_part(leaf));
            count += 1;
        }
        (count, mode.root(count, &sum))
    }

    fn count_out(&mut self, len: usize) -> Result<(), ReconcileError> {
        self.traffic.sent += 1;
        self.traffic.bytes_sent += len as u64;
        self.check_budget()
    }

    fn check_budget(&mut self) -> Result<(), ReconcileError> {
        let total = self.traffic.bytes_sent + self.traffic.bytes_received;
        if total > self.cfg.max_bytes {
            return Err(self.fail(ReconcileError::TooManyBytes {
                got: total,
                limit: self.cfg.max_bytes,
            }));
        }
        let msgs = self.traffic.sent + self.traffic.received;
        if msgs > u32::from(self.cfg.max_messages) {
            return Err(self.fail(ReconcileError::TooManyMessages {
                limit: self.cfg.max_messages,
            }));
        }
        Ok(())
    }

    /// Handles an encoded message; returns the encoded reply, if any.
    pub fn handle_bytes(
        &mut self,
        file: &JobFile,
        bytes: &[u8],
    ) -> Result<Option<Vec<u8>>, ReconcileError> {
        if bytes.len() > self.cfg.max_message_bytes {
            return Err(self.fail(ReconcileError::TooManyBytes {
                got: bytes.len() as u64,
                limit: self.cfg.max_message_bytes as u64,
            }));
        }
        let msg: Reconcile = match wire::decode(bytes, self.cfg.max_message_bytes) {
            Ok(m) => m,
            Err(e) => return Err(self.fail(e.into())),
        };
        let reply = self.handle_sized(file, &msg, bytes.len())?;
        Ok(reply.map(|(_, b)| b))
    }

    /// Handles a decoded message; returns the reply, if any.
    pub fn handle(
        &mut self,
        file: &JobFile,
        msg: &Reconcile,
    ) -> Result<Option<Reconcile>, ReconcileError> {
        let len = wire::encode(msg).len();
        Ok(self.handle_sized(file, msg, len)?.map(|(m, _)| m))
    }

    fn handle_sized(
        &mut self,
        file: &JobFile,
        msg: &Reconcile,
        len: usize,
    ) -> Result<Option<(Reconcile, Vec<u8>)>, ReconcileError> {
        if self.state == State::Failed {
            return Err(ReconcileError::Finished);
        }
        if msg.session != self.session || msg.block != self.block {
            return Err(self.fail(ReconcileError::WrongSession {
                session: self.session,
                block: self.block.0,
                got_session: msg.session,
                got_block: msg.block.0,
            }));
        }
        if msg.step != self.step {
            return Err(self.fail(ReconcileError::Step {
                expected: self.step,
                got: msg.step,
            }));
        }
        self.step = self.step.wrapping_add(1);
        self.traffic.received += 1;
        self.traffic.bytes_received += len as u64;
        if len > self.cfg.max_message_bytes {
            return Err(self.fail(ReconcileError::TooManyBytes {
                got: len as u64,
                limit: self.cfg.max_message_bytes as u64,
            }));
        }
        self.check_budget()?;
        match self.version {
            Some(v) if v != file.version() => return Err(self.fail(ReconcileError::FileChanged)),
            _ => self.version = Some(file.version()),
        }
        let reply = match self.step_body(file, &msg.body) {
            Ok(r) => r,
            Err(e) => return Err(self.fail(e)),
        };
        match reply {
            Some(m) => {
                let bytes = wire::encode(&m);
                if bytes.len() > self.cfg.max_message_bytes {
                    return Err(self.fail(ReconcileError::TooManyBytes {
                        got: bytes.len() as u64,
                        limit: self.cfg.max_message_bytes as u64,
                    }));
                }
                self.count_out(bytes.len())?;
                Ok(Some((m, bytes)))
            }
            None => Ok(None),
        }
    }

    fn step_body(
        &mut self,
        file: &JobFile,
        body: &ReconcileBody,
    ) -> Result<Option<Reconcile>, ReconcileError> {
        match body {
            ReconcileBody::Start { count, root, keyed } => {
                let may_start = match keyed {
                    None => self.role == Role::Responder && self.state == State::Idle,
                    // A keyed pass may follow a finished unkeyed one.
                    Some(_) => {
                        self.state != State::Idle
                            && matches!(self.pass.as_ref().map(|p| p.mode), Some(Mode::Unkeyed))
                            && self.pass_idle()
                    }
                };
                if !may_start {
                    return Err(ReconcileError::Unexpected(
                        "start in the middle of a session",
                    ));
                }
                let mode = match keyed {
                    None => Mode::Unkeyed,
                    Some(n) => self.keyed_mode(n),
                };
                self.state = State::Running;
                let (_, mine) = self.view_root(file, mode);
                let mut to_answer = VecDeque::new();
                if mine == *root {
                    self.pass = Some(Pass {
                        mode,
                        outstanding: VecDeque::new(),
                        to_answer,
                    });
                    self.state = State::Finished;
                    return Ok(Some(self.envelope(ReconcileBody::Match)));
                }
                to_answer.push_back(Ask::Root { peer_count: *count });
                self.pass = Some(Pass {
                    mode,
                    outstanding: VecDeque::new(),
                    to_answer,
                });
                Ok(Some(self.build(file)))
            }
            ReconcileBody::Match => {
                let pass = self
                    .pass
                    .as_mut()
                    .ok_or(ReconcileError::Unexpected("match before start"))?;
                if pass.outstanding.len() != 1 || !matches!(pass.outstanding[0], Asked::Root) {
                    return Err(ReconcileError::Unexpected("match in the middle of a pass"));
                }
                pass.outstanding.clear();
                self.state = State::Finished;
                Ok(None)
            }
            ReconcileBody::Abort(r) => Err(ReconcileError::PeerAborted(*r)),
            ReconcileBody::Round(r) => {
                if self.state != State::Running || self.pass.is_none() {
                    return Err(ReconcileError::Unexpected("round outside a pass"));
                }
                self.absorb(file, r)?;
                if let Some(fin) = r.done {
                    let idle = self.pass_idle();
                    if !idle {
                        return Err(ReconcileError::Malformed(
                            "peer says done but questions are open",
                        ));
                    }
                    let mode = self.pass.as_ref().map_or(Mode::Unkeyed, |p| p.mode);
                    let (count, root) = self.view_root(file, mode);
                    if count == fin.count && root == fin.root {
                        self.state = State::Finished;
                        return Ok(None);
                    }
                    if mode == Mode::Unkeyed && !self.keyed_started {
                        self.keyed_started = true;
                        let nonce = self.nonce;
                        let mode = self.keyed_mode(&nonce);
                        return Ok(Some(self.open_pass(file, mode, Some(nonce))));
                    }
                    return Err(ReconcileError::Unresolved);
                }
                Ok(Some(self.build(file)))
            }
        }
    }

    fn pass_idle(&self) -> bool {
        self.pass
            .as_ref()
            .is_none_or(|p| p.outstanding.is_empty() && p.to_answer.is_empty())
    }

    // ----- receiving a round -----

    fn absorb(&mut self, file: &JobFile, r: &ReconcileRound) -> Result<(), ReconcileError> {
        let Some(mut pass) = self.pass.take() else {
            return Err(ReconcileError::Unexpected("round outside a pass"));
        };
        let res = self.absorb_pass(file, &mut pass, r);
        self.pass = Some(pass);
        res
    }

    fn absorb_pass(
        &mut self,
        file: &JobFile,
        pass: &mut Pass,
        r: &ReconcileRound,
    ) -> Result<(), ReconcileError> {
        let answered = r.answered as usize;
        if answered > pass.outstanding.len() {
            return Err(ReconcileError::Malformed("answers more than was asked"));
        }
        let mut rd = Reader {
            bits: BitReader::new(&r.bits),
            ops: &r.ops,
            op_pos: 0,
            fps: U32Reader::new(&r.fingerprints, "fingerprint column too short"),
            counts: &r.counts,
            count_pos: 0,
            shorts: U32Reader::new(&r.short_ids, "short-id column too short"),
            entries: &r.entries,
            entry_pos: 0,
        };
        let mut windows: Vec<Prefix> = Vec::new();
        for _ in 0..answered {
            let Some(asked) = pass.outstanding.pop_front() else {
                break;
            };
            match asked {
                Asked::Root => {
                    let ask = self.read_op(file, pass.mode, &mut rd, Prefix::ROOT)?;
                    pass.to_answer.push_back(ask);
                }
                Asked::Split { prefix, b } => {
                    for i in 0..(1u64 << b) {
                        if rd.bits.next()? {
                            let child = prefix.child(b, i);
                            let ask = self.read_op(file, pass.mode, &mut rd, child)?;
                            pass.to_answer.push_back(ask);
                        }
                    }
                }
                Asked::Ids { prefix, mine } => {
                    let mut deliver = Vec::new();
                    for it in mine {
                        if rd.bits.next()? {
                            self.local.insert((it.entry.id, it.leaf), it.entry.clone());
                            deliver.push(it.entry);
                        }
                    }
                    if !deliver.is_empty() {
                        pass.to_answer.push_back(Ask::Deliver { entries: deliver });
                    }
                    windows.push(prefix);
                }
                Asked::Entries { prefix, mine } => {
                    for it in mine {
                        if rd.bits.next()? {
                            self.local.insert((it.entry.id, it.leaf), it.entry);
                        }
                    }
                    windows.push(prefix);
                }
                Asked::Want { prefix } => windows.push(prefix),
            }
        }
        // Every column must be used up exactly, apart from the extras.
        if !rd.bits.finished()
            || rd.op_pos != rd.ops.len()
            || !rd.fps.finished()
            || rd.count_pos != rd.counts.len()
            || !rd.shorts.finished()
        {
            return Err(ReconcileError::Malformed(
                "columns hold more than the answers use",
            ));
        }
        windows.sort();
        for e in &r.entries[rd.entry_pos..] {
            let t = top64(&e.id);
            let i = windows.partition_point(|w| w.bits <= t);
            let inside = i > 0 && windows[i - 1].contains(&e.id);
            if !inside {
                return Err(ReconcileError::Malformed(
                    "entry outside the ranges it may answer",
                ));
            }
            let leaf = e.leaf_hash();
            if self.view_has(file, &e.id, &leaf) {
                return Err(ReconcileError::Malformed("entry the receiver already has"));
            }
            self.remote.insert((e.id, leaf), e.clone());
        }
        Ok(())
    }

    fn view_has(&self, file: &JobFile, id: &JobId, leaf: &Hash32) -> bool {
        file.leaf_of(id) == Some(*leaf) || self.remote.contains_key(&(*id, *leaf))
    }

    fn read_op(
        &mut self,
        file: &JobFile,
        _mode: Mode,
        rd: &mut Reader<'_>,
        prefix: Prefix,
    ) -> Result<Ask, ReconcileError> {
        let op = *rd
            .ops
            .get(rd.op_pos)
            .ok_or(ReconcileError::Malformed("op column too short"))?;
        rd.op_pos += 1;
        match op & 0xC0 {
            OP_SPLIT => {
                let b = op & 0x3F;
                if b == 0 || b > MAX_SPLIT_BITS || u32::from(prefix.len) + u32::from(b) > 64 {
                    return Err(ReconcileError::Malformed("split width out of range"));
                }
                let k = 1usize << b;
                if rd.fps.remaining() < k {
                    return Err(ReconcileError::Malformed("fingerprint column too short"));
                }
                let mut fps = Vec::with_capacity(k);
                for _ in 0..k {
                    fps.push(rd.fps.next()?);
                }
                Ok(Ask::Split { prefix, b, fps })
            }
            OP_IDS => {
                let n = rd.count()? as usize;
                if n > self.cfg.ids_max as usize || rd.shorts.remaining() < n {
                    return Err(ReconcileError::Malformed("short-id list too long"));
                }
                let mut shorts = Vec::with_capacity(n);
                for _ in 0..n {
                    shorts.push(rd.shorts.next()?);
                }
                Ok(Ask::Ids { prefix, shorts })
            }
            OP_ENTRIES => {
                let n = rd.count()? as usize;
                if n > self.cfg.entries_max as usize || rd.entries.len() - rd.entry_pos < n {
                    return Err(ReconcileError::Malformed("whole-range op too long"));
                }
                let mut theirs = BTreeSet::new();
                let mut new = Vec::with_capacity(n);
                for e in &rd.entries[rd.entry_pos..rd.entry_pos + n] {
                    if !prefix.contains(&e.id) {
                        return Err(ReconcileError::Malformed("entry outside its range"));
                    }
                    let leaf = e.leaf_hash();
                    let is_new = !self.view_has(file, &e.id, &leaf);
                    if is_new {
                        self.remote.insert((e.id, leaf), e.clone());
                    }
                    new.push(is_new);
                    theirs.insert((e.id, leaf));
                }
                rd.entry_pos += n;
                Ok(Ask::Entries {
                    prefix,
                    theirs,
                    new,
                })
            }
            _ => Err(ReconcileError::Malformed("unknown op code")),
        }
    }

    // ----- building a round -----

    /// The view's items in `p`, with short ids.
    fn items_in(&self, file: &JobFile, mode: Mode, p: Prefix) -> Vec<Item> {
        let mut out: Vec<Item> = entries_in(file, p)
            .into_iter()
            .map(|(e, l)| Item {
                entry: e.clone(),
                leaf: *l,
                short: mode.derive(l).1,
            })
            .collect();
        let extra_before = out.len();
        for ((id, leaf), e) in self.remote_in(p) {
            out.push(Item {
                entry: e.clone(),
                leaf: *leaf,
                short: mode.derive(leaf).1,
            });
            let _ = id;
        }
        if out.len() != extra_before {
            out.sort_by_key(|a| (a.entry.id, a.leaf));
        }
        out
    }

    fn remote_in(&self, p: Prefix) -> impl Iterator<Item = (&(JobId, Hash32), &JobEntry)> {
        let lo = (JobId(Hash32(p.lo_key())), Hash32::ZERO);
        self.remote
            .range(lo..)
            .take_while(move |((id, _), _)| p.contains(id))
    }

    /// Aggregates of the `2^b` parts of `p` over the view.
    fn view_aggs(&self, file: &JobFile, mode: Mode, p: Prefix, b: u8) -> Vec<Agg> {
        let mut aggs = mode.child_aggs(file, p, b);
        if !self.remote.is_empty() {
            let shift = 64 - u32::from(p.len) - u32::from(b);
            let mask = (1u64 << b) - 1;
            for ((id, leaf), _) in self.remote_in(p) {
                let i = ((top64(id) >> shift) & mask) as usize;
                let (f, _) = mode.derive(leaf);
                aggs[i].count += 1;
                aggs[i].sum = aggs[i].sum.wrapping_add(f);
            }
        }
        aggs
    }

    fn view_count(&self, file: &JobFile, mode: Mode, p: Prefix) -> u64 {
        mode.count(file, p) + self.remote_in(p).count() as u64
    }

    fn build(&mut self, file: &JobFile) -> Reconcile {
        let Some(mut pass) = self.pass.take() else {
            return self.envelope(ReconcileBody::Abort(AbortReason::Protocol));
        };
        let mut w = Writer::default();
        let budget = self.cfg.max_message_bytes.saturating_sub(1024) * 7 / 8;
        let mut answered = 0u32;
        while !pass.to_answer.is_empty() {
            if answered > 0 && (w.estimate() >= budget || w.entries() >= ROUND_ENTRIES / 2) {
                break;
            }
            let Some(ask) = pass.to_answer.pop_front() else {
                break;
            };
            self.answer(file, &mut pass, &mut w, ask);
            answered += 1;
        }
        let done = if pass.outstanding.is_empty() && pass.to_answer.is_empty() {
            let (count, root) = self.view_root(file, pass.mode);
            Some(FinalRoot { count, root })
        } else {
            None
        };
        self.pass = Some(pass);
        if done.is_some() {
            self.state = State::Finished;
        }
        let mut entries = w.op_entries;
        entries.extend(w.extras);
        let round = ReconcileRound {
            answered,
            bits: col(w.bits.into_bytes()),
            ops: col(w.ops),
            fingerprints: col(w.fps),
            counts: BoundedVec::truncating(w.counts),
            short_ids: col(w.shorts),
            entries: BoundedVec::truncating(entries),
            done,
        };
        self.envelope(ReconcileBody::Round(round))
    }

    fn answer(&mut self, file: &JobFile, pass: &mut Pass, w: &mut Writer, ask: Ask) {
        let mode = pass.mode;
        match ask {
            Ask::Root { peer_count } => {
                let c = self.view_count(file, mode, Prefix::ROOT);
                let e = (c.abs_diff(peer_count) as f64).max(1.0);
                let op = policy::choose(&self.cfg, c, e, false, 0, true);
                self.open(file, pass, w, Prefix::ROOT, op);
            }
            Ask::Split { prefix, b, fps } => {
                let aggs = self.view_aggs(file, mode, prefix, b);
                let diff: Vec<usize> = aggs
                    .iter()
                    .zip(&fps)
                    .enumerate()
                    .filter(|(_, (a, f))| fp32(**a) != **f)
                    .map(|(i, _)| i)
                    .collect();
                let mut it = diff.iter().peekable();
                for i in 0..aggs.len() {
                    let set = it.peek().is_some_and(|&&d| d == i);
                    if set {
                        it.next();
                    }
                    w.bits.push(set);
                }
                let (e, sat) = policy::estimate(diff.len(), aggs.len());
                for i in diff {
                    let child = prefix.child(b, i as u64);
                    let op = policy::choose(&self.cfg, aggs[i].count, e, sat, child.len, false);
                    self.open(file, pass, w, child, op);
                }
            }
            Ask::Ids { prefix, shorts } => {
                let mine = self.items_in(file, mode, prefix);
                let my_shorts: BTreeSet<u32> = mine.iter().map(|i| i.short).collect();
                let their: BTreeSet<u32> = shorts.iter().copied().collect();
                let mut wants = false;
                for s in &shorts {
                    let want = !my_shorts.contains(s);
                    wants |= want;
                    w.bits.push(want);
                }
                if wants {
                    pass.outstanding.push_back(Asked::Want { prefix });
                }
                for it in mine {
                    if !their.contains(&it.short) {
                        self.local.insert((it.entry.id, it.leaf), it.entry.clone());
                        w.extras.push(it.entry);
                    }
                }
            }
            Ask::Entries {
                prefix,
                theirs,
                new,
            } => {
                for n in new {
                    w.bits.push(n);
                }
                for it in self.items_in(file, mode, prefix) {
                    if !theirs.contains(&(it.entry.id, it.leaf)) {
                        self.local.insert((it.entry.id, it.leaf), it.entry.clone());
                        w.extras.push(it.entry);
                    }
                }
            }
            Ask::Deliver { entries } => w.extras.extend(entries),
        }
    }

    fn open(&mut self, file: &JobFile, pass: &mut Pass, w: &mut Writer, p: Prefix, op: Op) {
        let mode = pass.mode;
        match op {
            Op::Split(b) => {
                for a in self.view_aggs(file, mode, p, b) {
                    w.fps.extend(fp32(a).to_le_bytes());
                }
                w.ops.push(OP_SPLIT | b);
                pass.outstanding.push_back(Asked::Split { prefix: p, b });
            }
            Op::Ids => {
                let mine = self.items_in(file, mode, p);
                w.ops.push(OP_IDS);
                w.counts.push(mine.len() as u32);
                for it in &mine {
                    w.shorts.extend(it.short.to_le_bytes());
                }
                pass.outstanding.push_back(Asked::Ids { prefix: p, mine });
            }
            Op::Entries => {
                let mine = self.items_in(file, mode, p);
                w.ops.push(OP_ENTRIES);
                w.counts.push(mine.len() as u32);
                for it in &mine {
                    w.op_entries.push(it.entry.clone());
                }
                pass.outstanding
                    .push_back(Asked::Entries { prefix: p, mine });
            }
        }
    }
}

/// A byte column; the budget keeps every column far below its cap.
fn col<const N: usize>(v: Vec<u8>) -> BoundedBytes<N> {
    BoundedBytes::try_from_vec(v).unwrap_or_default()
}

struct Reader<'a> {
    bits: BitReader<'a>,
    ops: &'a [u8],
    op_pos: usize,
    fps: U32Reader<'a>,
    counts: &'a [u32],
    count_pos: usize,
    shorts: U32Reader<'a>,
    entries: &'a [JobEntry],
    entry_pos: usize,
}

impl Reader<'_> {
    fn count(&mut self) -> Result<u32, ReconcileError> {
        let c = *self
            .counts
            .get(self.count_pos)
            .ok_or(ReconcileError::Malformed("count column too short"))?;
        self.count_pos += 1;
        Ok(c)
    }
}
