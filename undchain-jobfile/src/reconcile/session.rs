//! The reconciliation state machine, the same for both sides after the
//! first message (`docs/PROTOCOL.md` "Job files and reconciliation").
//!
//! Each side keeps two queues that mirror the peer's: `outstanding` (what
//! this side asked and the peer must answer, in order) and `to_answer`
//! (what the peer asked). A round answers a prefix of the receiver's
//! outstanding queue; answers to splits open new ranges. The file is only
//! read: entries learned from the peer are kept in the outcome (and in the
//! session's view of the set), and the caller applies the outcome.
//!
//! Hot paths never clone an entry that does not travel: the lists a pass
//! keeps (short ids and fingerprints received, the entries of the ranges
//! it opened) live in a few per-pass arenas and name entries by their
//! place in the file's store, and unkeyed short ids and fingerprints are
//! read from the file's index slots.

use std::collections::VecDeque;

use undchain_types::msg::{
    AbortReason, FinalRoot, MAX_ENTRIES, Reconcile, ReconcileBody, ReconcileRound,
};
use undchain_types::wire::{self};
use undchain_types::{
    BlockNumber, BoundedBytes, BoundedVec, Hash32, HashContext, JobEntry, JobId, hash_parts,
};

use super::bits::{BitReader, BitWriter, U32Reader};
use super::policy::{self, Op};
use super::range::{Mode, Prefix, count_in, fp32, top64, unkeyed_short};
use super::{Config, Outcome, ReconcileError, Traffic};
use crate::codec::{decode_entry, encode_entry, leaf_hash_bytes};
use crate::file::{JobFile, Sum256};
use crate::index::Summary;

const OP_SPLIT: u8 = 0x00;
const OP_IDS: u8 = 0x40;
const OP_ENTRIES: u8 = 0x80;
const MAX_SPLIT_BITS: u8 = 16;
/// Entries a round may carry (the message type's cap, with some slack).
const ROUND_ENTRIES: usize = 30_000;
/// Largest range whose entries are gathered once to answer questions about
/// its parts (instead of one walk of the index per part).
const GATHER_MAX: u64 = 4096;

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

/// Where an entry of the session's view lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    /// In the file's store.
    File(u32),
    /// Among the entries learned from the peer.
    Remote(u32),
}

/// An entry of the session's view with its short id in a range.
#[derive(Debug, Clone, Copy)]
struct Item {
    short: u32,
    src: Src,
}

/// A view entry with what range sums and slicing need. `item.short` is
/// the raw unkeyed short (leaf bytes 8..12) in an unkeyed pass, the keyed
/// short id in a keyed pass; [`Gathered::item_in`] gives the range's.
#[derive(Debug, Clone, Copy)]
struct Gathered {
    top: u64,
    fp: u64,
    item: Item,
}

impl Gathered {
    #[inline]
    fn item_in(&self, mode: Mode, p: Prefix) -> Item {
        match mode {
            Mode::Unkeyed => Item {
                short: unkeyed_short(p.len, self.top, self.item.short),
                src: self.item.src,
            },
            Mode::Keyed(_) => self.item,
        }
    }
}

/// The entries of `g` (sorted by id) that lie in `p`. Parts are usually
/// asked for in order, so the search starts with a short scan from `hint`
/// (where the previous part ended), which it updates.
fn slice_of<'a>(g: &'a [Gathered], p: Prefix, hint: &mut usize) -> &'a [Gathered] {
    let mut start = (*hint).min(g.len());
    if start > 0 && g[start - 1].top >= p.bits {
        start = g.partition_point(|x| x.top < p.bits);
    } else {
        let mut k = 0;
        while start < g.len() && g[start].top < p.bits {
            start += 1;
            k += 1;
            if k == 8 {
                start += g[start..].partition_point(|x| x.top < p.bits);
                break;
            }
        }
    }
    let mut end = start;
    while end < g.len() && p.contains_top(g[end].top) {
        end += 1;
    }
    *hint = end;
    &g[start..end]
}

/// Adds the entries of `g` (all in `p`) to the `2^b` parts of `p`.
fn slice_aggs(g: &[Gathered], p: Prefix, b: u8, out: &mut Vec<Summary>) {
    out.clear();
    out.resize(1usize << b, Summary::default());
    let shift = 64 - u32::from(p.len) - u32::from(b);
    let mask = (1u64 << b) - 1;
    for x in g {
        let a = &mut out[((x.top >> shift) & mask) as usize];
        a.count += 1;
        a.sum = a.sum.wrapping_add(x.fp);
    }
}

/// What this side asked; the peer's next rounds answer it. `at`/`n` name
/// a slice of one of the pass's arenas.
#[derive(Debug)]
enum Asked {
    Root,
    /// `depth`: splits above `prefix` (0 for the whole space).
    Split {
        prefix: Prefix,
        b: u8,
        depth: u8,
    },
    Ids {
        prefix: Prefix,
        at: usize,
        n: usize,
    },
    Entries {
        prefix: Prefix,
        at: usize,
        n: usize,
    },
    Want {
        prefix: Prefix,
        at: usize,
        n: usize,
    },
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
        at: usize,
        /// Splits above `prefix`.
        depth: u8,
    },
    Ids {
        prefix: Prefix,
        parent: Prefix,
        at: usize,
        n: usize,
    },
    Entries {
        at: usize,
        n: usize,
        mine: usize,
        mine_n: usize,
    },
    Deliver {
        at: usize,
        n: usize,
    },
}

#[derive(Debug)]
struct Pass {
    mode: Mode,
    /// The file's count and root-part sum in this mode (computed once).
    file_sum: Sum256,
    outstanding: VecDeque<Asked>,
    to_answer: VecDeque<Ask>,
    /// My entries of the ranges I opened with ids or entries, of the id
    /// lists I answered and of the peer's whole-range ops.
    items: Vec<Item>,
    /// Fingerprints of the peer's splits and short ids of its id lists.
    words: Vec<u32>,
    /// (id, leaf) of the entries of the peer's whole-range ops, and whether
    /// each was new to me.
    theirs: Vec<(JobId, Hash32)>,
    news: Vec<bool>,
    /// Entries the peer wanted.
    deliver: Vec<Src>,
    /// The view's entries of one range (`cache_for`), gathered once.
    cache: Vec<Gathered>,
    cache_for: Option<Prefix>,
    /// Where the last part sliced from `cache` ended.
    cache_hint: usize,
}

impl Pass {
    fn new(mode: Mode, file_sum: Sum256) -> Self {
        Pass {
            mode,
            file_sum,
            outstanding: VecDeque::new(),
            to_answer: VecDeque::new(),
            items: Vec::new(),
            words: Vec::new(),
            theirs: Vec::new(),
            news: Vec::new(),
            deliver: Vec::new(),
            cache: Vec::new(),
            cache_for: None,
            cache_hint: 0,
        }
    }
}

/// Reusable buffers of the hot paths.
#[derive(Debug, Default)]
struct Scratch {
    aggs: Vec<Summary>,
    aggs2: Vec<Summary>,
    b: Vec<u32>,
    diff: Vec<usize>,
    ops: Vec<Op>,
    keys: Vec<(JobId, Hash32)>,
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
    /// Entries this side had and the peer lacked (sorted at the end).
    local: Vec<JobEntry>,
    /// Entries learned from the peer (as decoded from the entry column,
    /// never copied), with their leaf hashes.
    remote: Vec<(JobEntry, Hash32)>,
    /// The entries learned in earlier passes, sorted: the only remote
    /// entries that can lie in a range of the current pass (an entry
    /// learned in this pass lies in a leaf range, and the ranges of a pass
    /// form a tree whose leaves have no descendants).
    prior: Vec<((JobId, Hash32), u32)>,
    scratch: Scratch,
    traffic: Traffic,
    /// Size estimate of the reply being built (to encode without regrowing).
    reply_hint: usize,
}

/// Writes one round.
#[derive(Default)]
struct Writer {
    bits: BitWriter,
    ops: Vec<u8>,
    fps: Vec<u8>,
    counts: Vec<u32>,
    shorts: Vec<u8>,
    /// Entries of whole-range ops, then extras (answers and deliveries),
    /// named by where they live, encoded once the round is complete;
    /// extras marked true also go to the outcome's local side.
    op_entries: Vec<Src>,
    extras: Vec<(Src, bool)>,
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
            local: Vec::new(),
            remote: Vec::new(),
            prior: Vec::new(),
            scratch: Scratch::default(),
            traffic: Traffic::default(),
            reply_hint: 0,
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

    /// Whether a keyed pass was started (by either side) in this session.
    pub fn keyed_pass_ran(&self) -> bool {
        self.keyed_started || matches!(self.pass.as_ref().map(|p| p.mode), Some(Mode::Keyed(_)))
    }

    /// Messages and bytes so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// What each side lacked (complete once [`Session::is_finished`]), in
    /// entry order.
    pub fn outcome(&self) -> Outcome {
        let mut only_local = self.local.clone();
        only_local.sort_by(entry_order);
        only_local.dedup();
        let mut only_remote: Vec<JobEntry> = self.remote.iter().map(|(e, _)| e.clone()).collect();
        only_remote.sort_by(entry_order);
        Outcome {
            only_local,
            only_remote,
        }
    }

    /// [`Session::outcome`] without copying the entries (ends the session).
    pub fn into_outcome(self) -> Outcome {
        let mut only_local = self.local;
        only_local.sort_by(entry_order);
        only_local.dedup();
        let mut only_remote: Vec<JobEntry> = self.remote.into_iter().map(|(e, _)| e).collect();
        only_remote.sort_by(entry_order);
        Outcome {
            only_local,
            only_remote,
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
        self.prior = self.prior_entries();
        let mut pass = Pass::new(mode, mode.file_sum(file));
        let (count, root) = self.view_root(file, &pass);
        pass.outstanding.push_back(Asked::Root);
        self.pass = Some(pass);
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
    fn view_root(&self, file: &JobFile, pass: &Pass) -> (u64, Hash32) {
        let mut sum = pass.file_sum;
        let mut count = file.len();
        for (_, leaf) in &self.remote {
            sum.add(&pass.mode.root_part(leaf));
            count += 1;
        }
        (count, pass.mode.root(count, &sum))
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
        let reply = self.handle_sized(file, msg, bytes.len())?;
        Ok(reply.map(|(_, b)| b))
    }

    /// Handles a decoded message; returns the reply, if any.
    pub fn handle(
        &mut self,
        file: &JobFile,
        msg: &Reconcile,
    ) -> Result<Option<Reconcile>, ReconcileError> {
        let len = wire::encode(msg).len();
        Ok(self.handle_sized(file, msg.clone(), len)?.map(|(m, _)| m))
    }

    fn handle_sized(
        &mut self,
        file: &JobFile,
        msg: Reconcile,
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
        let reply = match self.step_body(file, msg.body) {
            Ok(r) => r,
            Err(e) => return Err(self.fail(e)),
        };
        match reply {
            Some(m) => {
                let bytes = encode_reserved(&m, self.reply_hint);
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
        body: ReconcileBody,
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
                    Some(n) => self.keyed_mode(&n),
                };
                self.state = State::Running;
                self.prior = self.prior_entries();
                let mut pass = Pass::new(mode, mode.file_sum(file));
                let (_, mine) = self.view_root(file, &pass);
                if mine == root {
                    self.pass = Some(pass);
                    self.state = State::Finished;
                    return Ok(Some(self.envelope(ReconcileBody::Match)));
                }
                pass.to_answer.push_back(Ask::Root { peer_count: count });
                self.pass = Some(pass);
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
                // This side opened a keyed pass because the unkeyed one
                // ended with different views: equal keyed roots now would
                // contradict that, so the peer lies (or its file moved).
                if matches!(pass.mode, Mode::Keyed(_)) {
                    return Err(ReconcileError::Unresolved);
                }
                pass.outstanding.clear();
                self.state = State::Finished;
                Ok(None)
            }
            ReconcileBody::Abort(r) => Err(ReconcileError::PeerAborted(r)),
            ReconcileBody::Round(r) => {
                if self.state != State::Running || self.pass.is_none() {
                    return Err(ReconcileError::Unexpected("round outside a pass"));
                }
                let done = r.done;
                self.absorb(file, r)?;
                if let Some(fin) = done {
                    if !self.pass_idle() {
                        return Err(ReconcileError::Malformed(
                            "peer says done but questions are open",
                        ));
                    }
                    let Some(pass) = self.pass.as_ref() else {
                        return Err(ReconcileError::Unexpected("round outside a pass"));
                    };
                    let mode = pass.mode;
                    let (count, root) = self.view_root(file, pass);
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

    // ----- the session's view: the file plus what the peer sent -----

    #[inline]
    fn entry_of<'a>(&'a self, file: &'a JobFile, src: Src) -> &'a JobEntry {
        match src {
            Src::File(i) => &file.stored(i).entry,
            Src::Remote(i) => &self.remote[i as usize].0,
        }
    }

    #[inline]
    fn key_of(&self, file: &JobFile, src: Src) -> (JobId, Hash32) {
        match src {
            Src::File(i) => {
                let s = file.stored(i);
                (s.entry.id, s.leaf)
            }
            Src::Remote(i) => {
                let (e, leaf) = &self.remote[i as usize];
                (e.id, *leaf)
            }
        }
    }

    /// Whether `items` (my view of a range) hold the entry (`id`, `leaf`)
    /// whose short id in this pass is `short`.
    fn items_hold(
        &self,
        file: &JobFile,
        items: &[Item],
        short: u32,
        id: &JobId,
        leaf: &Hash32,
    ) -> bool {
        items
            .iter()
            .any(|it| it.short == short && self.key_of(file, it.src) == (*id, *leaf))
    }

    /// Every remote entry so far, sorted by (id, leaf), for the next pass.
    fn prior_entries(&self) -> Vec<((JobId, Hash32), u32)> {
        let mut v: Vec<((JobId, Hash32), u32)> = self
            .remote
            .iter()
            .enumerate()
            .map(|(i, (e, leaf))| ((e.id, *leaf), i as u32))
            .collect();
        v.sort_unstable();
        v
    }

    /// The prior remote entries in `p`.
    fn prior_in(&self, p: Prefix) -> &[((JobId, Hash32), u32)] {
        if self.prior.is_empty() {
            return &[];
        }
        let start = self
            .prior
            .partition_point(|((id, _), _)| top64(id) < p.bits);
        let n = self.prior[start..].partition_point(|((id, _), _)| p.contains(id));
        &self.prior[start..start + n]
    }

    /// Appends the view's items in `p` to `out`, in (id, leaf) order.
    fn items_in(&self, file: &JobFile, mode: Mode, p: Prefix, out: &mut Vec<Item>) {
        let start = out.len();
        match mode {
            Mode::Unkeyed => file.for_each_prefix(p.bits, p.len, &mut |s| {
                out.push(Item {
                    short: unkeyed_short(p.len, s.top, s.short),
                    src: Src::File(s.idx),
                })
            }),
            Mode::Keyed(_) => file.for_each_prefix(p.bits, p.len, &mut |s| {
                out.push(Item {
                    short: mode.derive(&file.stored(s.idx).leaf).1,
                    src: Src::File(s.idx),
                })
            }),
        }
        let prior = self.prior_in(p);
        if prior.is_empty() {
            return;
        }
        let before = out.len();
        for &((id, leaf), i) in prior {
            out.push(Item {
                short: mode.short(p.len, top64(&id), &leaf),
                src: Src::Remote(i),
            });
        }
        if out.len() != before {
            out[start..].sort_by_key(|it| self.key_of(file, it.src));
        }
    }

    /// Summaries of the `2^b` parts of `p` over the view, into `out`.
    fn view_aggs(&self, file: &JobFile, mode: Mode, p: Prefix, b: u8, out: &mut Vec<Summary>) {
        out.clear();
        out.resize(1usize << b, Summary::default());
        mode.child_aggs(file, p, b, out);
        let prior = self.prior_in(p);
        if !prior.is_empty() {
            let shift = 64 - u32::from(p.len) - u32::from(b);
            let mask = (1u64 << b) - 1;
            for ((id, leaf), _) in prior {
                let i = ((top64(id) >> shift) & mask) as usize;
                let (f, _) = mode.derive(leaf);
                out[i].count += 1;
                out[i].sum = out[i].sum.wrapping_add(f);
            }
        }
    }

    fn view_count(&self, file: &JobFile, p: Prefix) -> u64 {
        count_in(file, p) + self.prior_in(p).len() as u64
    }

    /// Fills `out` with the view's entries of `p`, sorted by (id, leaf).
    fn gather(&self, file: &JobFile, mode: Mode, p: Prefix, out: &mut Vec<Gathered>) {
        out.clear();
        match mode {
            Mode::Unkeyed => file.for_each_prefix(p.bits, p.len, &mut |s| {
                out.push(Gathered {
                    top: s.top,
                    fp: s.fp,
                    item: Item {
                        short: s.short,
                        src: Src::File(s.idx),
                    },
                })
            }),
            Mode::Keyed(_) => file.for_each_prefix(p.bits, p.len, &mut |s| {
                let (fp, short) = mode.derive(&file.stored(s.idx).leaf);
                out.push(Gathered {
                    top: s.top,
                    fp,
                    item: Item {
                        short,
                        src: Src::File(s.idx),
                    },
                })
            }),
        }
        let prior = self.prior_in(p);
        if prior.is_empty() {
            return;
        }
        for &((id, leaf), i) in prior {
            // Raw unkeyed short as for file entries (see `Gathered`).
            let (fp, short) = mode.derive(&leaf);
            out.push(Gathered {
                top: top64(&id),
                fp,
                item: Item {
                    short,
                    src: Src::Remote(i),
                },
            });
        }
        out.sort_by_key(|g| self.key_of(file, g.item.src));
    }

    /// Makes `pass.cache` hold the view's entries of `p` if it has at most
    /// [`GATHER_MAX`] of them; whether it does.
    fn cache(&self, file: &JobFile, pass: &mut Pass, p: Prefix) -> bool {
        if pass.cache_for == Some(p) {
            return true;
        }
        if self.view_count(file, p) > GATHER_MAX {
            return false;
        }
        let mut cache = core::mem::take(&mut pass.cache);
        self.gather(file, pass.mode, p, &mut cache);
        pass.cache = cache;
        pass.cache_for = Some(p);
        pass.cache_hint = 0;
        true
    }

    // ----- receiving a round -----

    fn absorb(&mut self, file: &JobFile, r: ReconcileRound) -> Result<(), ReconcileError> {
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
        r: ReconcileRound,
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
            entry_count: 0,
            learned: self.remote.len(),
        };
        self.remote.reserve(r.entries.len() / 38);
        // Room for what this round can add to the outcome.
        let mine: usize = pass
            .outstanding
            .iter()
            .take(answered)
            .map(|a| match a {
                Asked::Ids { n, .. } => *n,
                _ => 0,
            })
            .sum();
        // Room for what this round adds to the pass's lists.
        pass.deliver.reserve(mine);
        pass.words
            .reserve(r.fingerprints.len() / 4 + r.short_ids.len() / 4);
        pass.to_answer.reserve(r.ops.len() + answered);
        // Ranges whose answers may carry extra entries, with my items there.
        let mut windows: Vec<(Prefix, usize, usize)> = Vec::with_capacity(answered);
        for _ in 0..answered {
            let Some(asked) = pass.outstanding.pop_front() else {
                break;
            };
            match asked {
                Asked::Root => {
                    let ask = self.read_op(file, pass, &mut rd, Prefix::ROOT, Prefix::ROOT, 0)?;
                    pass.to_answer.push_back(ask);
                }
                Asked::Split { prefix, b, depth } => {
                    for i in 0..(1u64 << b) {
                        if rd.bits.next()? {
                            let child = prefix.child(b, i);
                            let ask = self.read_op(
                                file,
                                pass,
                                &mut rd,
                                child,
                                prefix,
                                depth.saturating_add(1),
                            )?;
                            pass.to_answer.push_back(ask);
                        }
                    }
                }
                Asked::Ids { prefix, at, n } => {
                    let start = pass.deliver.len();
                    for k in at..at + n {
                        let it = pass.items[k];
                        if rd.bits.next()? {
                            // Recorded as local when delivered (one read of
                            // the entry for both).
                            pass.deliver.push(it.src);
                        }
                    }
                    let wanted = pass.deliver.len() - start;
                    if wanted > 0 {
                        pass.to_answer.push_back(Ask::Deliver {
                            at: start,
                            n: wanted,
                        });
                    }
                    windows.push((prefix, at, n));
                }
                Asked::Entries { prefix, at, n } => {
                    for k in at..at + n {
                        let it = pass.items[k];
                        if rd.bits.next()? {
                            self.local.push(self.entry_of(file, it.src).clone());
                        }
                    }
                    windows.push((prefix, at, n));
                }
                Asked::Want { prefix, at, n } => windows.push((prefix, at, n)),
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
        if !windows.is_sorted_by_key(|w| w.0) {
            windows.sort_unstable_by_key(|w| w.0);
        }
        // Extras come in answer order, which is id order: try the window of
        // the previous entry before searching.
        let mut last = 0usize;
        while !rd.entries_done() {
            let (e, leaf) = rd.entry()?;
            let t = top64(&e.id);
            let i = match (windows.get(last), windows.get(last + 1)) {
                (Some(w), _) if w.0.contains_top(t) => last + 1,
                (_, Some(w)) if w.0.contains_top(t) => last + 2,
                _ => windows.partition_point(|w| w.0.bits <= t),
            };
            last = i.saturating_sub(1);
            let Some(&(w, at, n)) = i.checked_sub(1).and_then(|i| windows.get(i)) else {
                return Err(ReconcileError::Malformed(
                    "entry outside the ranges it may answer",
                ));
            };
            if !w.contains_top(t) {
                return Err(ReconcileError::Malformed(
                    "entry outside the ranges it may answer",
                ));
            }
            let short = pass.mode.short(w.len, t, &leaf);
            if self.items_hold(file, &pass.items[at..at + n], short, &e.id, &leaf) {
                return Err(ReconcileError::Malformed("entry the receiver already has"));
            }
            self.remote.push((e, leaf));
        }
        // The ranges of a pass are disjoint leaves of one tree and each is
        // answered once, so an entry can only repeat within this round.
        if has_repeat(&self.remote[rd.learned..]) {
            return Err(ReconcileError::Malformed("an entry sent twice"));
        }
        Ok(())
    }

    fn read_op(
        &mut self,
        file: &JobFile,
        pass: &mut Pass,
        rd: &mut Reader<'_>,
        prefix: Prefix,
        parent: Prefix,
        depth: u8,
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
                let at = pass.words.len();
                rd.fps.take_into(k, &mut pass.words)?;
                Ok(Ask::Split {
                    prefix,
                    b,
                    at,
                    depth,
                })
            }
            OP_IDS => {
                let n = rd.count()? as usize;
                if n > self.cfg.ids_max as usize || rd.shorts.remaining() < n {
                    return Err(ReconcileError::Malformed("short-id list too long"));
                }
                let at = pass.words.len();
                rd.shorts.take_into(n, &mut pass.words)?;
                Ok(Ask::Ids {
                    prefix,
                    parent,
                    at,
                    n,
                })
            }
            OP_ENTRIES => {
                let n = rd.count()? as usize;
                if n > self.cfg.entries_max as usize {
                    return Err(ReconcileError::Malformed("whole-range op too long"));
                }
                let at = pass.theirs.len();
                let mine = pass.items.len();
                self.items_in(file, pass.mode, prefix, &mut pass.items);
                let mine_n = pass.items.len() - mine;
                for _ in 0..n {
                    if rd.entries_done() {
                        return Err(ReconcileError::Malformed("whole-range op too long"));
                    }
                    let (e, leaf) = rd.entry()?;
                    if !prefix.contains(&e.id) {
                        return Err(ReconcileError::Malformed("entry outside its range"));
                    }
                    let short = pass.mode.short(prefix.len, top64(&e.id), &leaf);
                    let is_new = !self.items_hold(
                        file,
                        &pass.items[mine..mine + mine_n],
                        short,
                        &e.id,
                        &leaf,
                    );
                    pass.news.push(is_new);
                    pass.theirs.push((e.id, leaf));
                    if is_new {
                        self.remote.push((e, leaf));
                    }
                }
                Ok(Ask::Entries {
                    at,
                    n,
                    mine,
                    mine_n,
                })
            }
            _ => Err(ReconcileError::Malformed("unknown op code")),
        }
    }

    // ----- building a round -----

    fn build(&mut self, file: &JobFile) -> Reconcile {
        let Some(mut pass) = self.pass.take() else {
            return self.envelope(ReconcileBody::Abort(AbortReason::Protocol));
        };
        let mut w = Writer::default();
        let budget = self.cfg.max_message_bytes.saturating_sub(1024) * 7 / 8;
        let mut answered = 0u32;
        let ids: usize = pass
            .to_answer
            .iter()
            .map(|a| match a {
                Ask::Ids { n, .. } => *n,
                _ => 0,
            })
            .sum();
        pass.items.reserve(ids + ids / 4);
        let (bits, extras) = pass
            .to_answer
            .iter()
            .fold((0usize, 0usize), |(b, x), a| match a {
                Ask::Split { b: k, .. } => (b + (1usize << k), x),
                Ask::Ids { n, .. } => (b + n, x + n),
                Ask::Entries { n, mine_n, .. } => (b + n, x + mine_n),
                Ask::Deliver { n, .. } => (b, x + n),
                Ask::Root { .. } => (b, x),
            });
        w.bits.reserve(bits);
        w.extras.reserve(extras);
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
            let (count, root) = self.view_root(file, &pass);
            Some(FinalRoot { count, root })
        } else {
            None
        };
        self.pass = Some(pass);
        if done.is_some() {
            self.state = State::Finished;
        }
        self.reply_hint = w.estimate() + 64;
        let mut entries = Vec::with_capacity(48 * w.entries());
        for &src in &w.op_entries {
            encode_entry(self.entry_of(file, src), &mut entries);
        }
        self.local.reserve(w.extras.len());
        for (k, &(src, local)) in w.extras.iter().enumerate() {
            // Touch an entry a few places ahead so that its cache misses
            // overlap with this one's encoding.
            if let Some(&(ahead, _)) = w.extras.get(k + 6) {
                core::hint::black_box(self.entry_of(file, ahead).initiated_at);
            }
            let e = self.entry_of(file, src);
            encode_entry(e, &mut entries);
            if local {
                let e = e.clone();
                self.local.push(e);
            }
        }
        let round = ReconcileRound {
            answered,
            bits: col(w.bits.into_bytes()),
            ops: col(w.ops),
            fingerprints: col(w.fps),
            counts: BoundedVec::truncating(w.counts),
            short_ids: col(w.shorts),
            entries: col(entries),
            done,
        };
        self.envelope(ReconcileBody::Round(round))
    }

    fn answer(&mut self, file: &JobFile, pass: &mut Pass, w: &mut Writer, ask: Ask) {
        let mode = pass.mode;
        let mut sc = core::mem::take(&mut self.scratch);
        match ask {
            Ask::Root { peer_count } => {
                let c = self.view_count(file, Prefix::ROOT);
                let e = (c.abs_diff(peer_count) as f64).max(1.0);
                let op = policy::choose(&self.cfg, c, e, false, 0, 0);
                self.open(file, pass, w, &mut sc, Prefix::ROOT, op, 0);
            }
            Ask::Split {
                prefix,
                b,
                at,
                depth,
            } => {
                let depth = depth.saturating_add(1);
                let mut aggs = core::mem::take(&mut sc.aggs);
                // Parts about the size of leaves: gather the range once and
                // answer every part from it.
                let cached = count_in(file, prefix) >> b <= self.cfg.leaf_max
                    && self.cache(file, pass, prefix);
                if cached {
                    slice_aggs(&pass.cache, prefix, b, &mut aggs);
                } else {
                    self.view_aggs(file, mode, prefix, b, &mut aggs);
                }
                let fps = &pass.words[at..at + aggs.len()];
                sc.diff.clear();
                for (i, (a, f)) in aggs.iter().zip(fps).enumerate() {
                    let differs = fp32(*a) != *f;
                    w.bits.push(differs);
                    if differs {
                        sc.diff.push(i);
                    }
                }
                let (e, sat) = policy::estimate(sc.diff.len(), aggs.len());
                let diff = core::mem::take(&mut sc.diff);
                let more: u64 = diff.iter().map(|&i| aggs[i].count).sum();
                let more = usize::try_from(more).unwrap_or(0).min(1 << 20);
                pass.items.reserve(more);
                pass.outstanding.reserve(diff.len());
                w.shorts.reserve(4 * more);
                w.ops.reserve(diff.len());
                w.counts.reserve(diff.len());
                let mut ops = core::mem::take(&mut sc.ops);
                ops.clear();
                ops.extend(diff.iter().map(|&i| {
                    let len = prefix.len + b;
                    policy::choose(&self.cfg, aggs[i].count, e, sat, len, depth)
                }));
                policy::settle_level(&self.cfg, &mut ops, diff.iter().map(|&i| aggs[i].count));
                for (&i, &op) in diff.iter().zip(&ops) {
                    let child = prefix.child(b, i as u64);
                    if cached {
                        self.open_cached(file, pass, w, &mut sc, child, op, depth);
                    } else {
                        self.open(file, pass, w, &mut sc, child, op, depth);
                    }
                }
                sc.diff = diff;
                sc.aggs = aggs;
                sc.ops = ops;
            }
            Ask::Ids {
                prefix,
                parent,
                at,
                n,
            } => {
                let mine = pass.items.len();
                if self.cache(file, pass, parent) {
                    let Pass {
                        cache,
                        items,
                        cache_hint,
                        ..
                    } = &mut *pass;
                    items.extend(
                        slice_of(cache, prefix, cache_hint)
                            .iter()
                            .map(|g| g.item_in(mode, prefix)),
                    );
                } else {
                    self.items_in(file, mode, prefix, &mut pass.items);
                }
                let mine_n = pass.items.len() - mine;
                // Both lists sorted by short id (an honest peer sends its
                // list sorted; mine are nearly sorted already): two merges.
                pass.items[mine..].sort_unstable_by_key(|it| it.short);
                let theirs = &pass.words[at..at + n];
                let sorted = theirs.is_sorted();
                if !sorted {
                    sc.b.clear();
                    sc.b.extend_from_slice(theirs);
                    sc.b.sort_unstable();
                }
                let their_sorted: &[u32] = if sorted { theirs } else { &sc.b };
                let my_items = &pass.items[mine..mine + mine_n];
                let mut wants = false;
                let mut j = 0;
                for s in theirs {
                    let want = if sorted {
                        while j < my_items.len() && my_items[j].short < *s {
                            j += 1;
                        }
                        !(j < my_items.len() && my_items[j].short == *s)
                    } else {
                        my_items.binary_search_by_key(s, |it| it.short).is_err()
                    };
                    wants |= want;
                    w.bits.push(want);
                }
                if wants {
                    pass.outstanding.push_back(Asked::Want {
                        prefix,
                        at: mine,
                        n: mine_n,
                    });
                }
                let mut i = 0;
                for it in &pass.items[mine..mine + mine_n] {
                    while i < their_sorted.len() && their_sorted[i] < it.short {
                        i += 1;
                    }
                    if !(i < their_sorted.len() && their_sorted[i] == it.short) {
                        w.extras.push((it.src, true));
                    }
                }
            }
            Ask::Entries {
                at,
                n,
                mine,
                mine_n,
            } => {
                for &new in &pass.news[at..at + n] {
                    w.bits.push(new);
                }
                sc.keys.clear();
                sc.keys.extend_from_slice(&pass.theirs[at..at + n]);
                sc.keys.sort_unstable();
                for it in &pass.items[mine..mine + mine_n] {
                    let key = self.key_of(file, it.src);
                    if sc.keys.binary_search(&key).is_err() {
                        w.extras.push((it.src, true));
                    }
                }
            }
            Ask::Deliver { at, n } => {
                w.extras
                    .extend(pass.deliver[at..at + n].iter().map(|&src| (src, true)));
            }
        }
        self.scratch = sc;
    }

    /// [`Session::open`] for a part of the range in `pass.cache`.
    #[allow(clippy::too_many_arguments)]
    fn open_cached(
        &self,
        _file: &JobFile,
        pass: &mut Pass,
        w: &mut Writer,
        sc: &mut Scratch,
        p: Prefix,
        op: Op,
        depth: u8,
    ) {
        let pass_mode = pass.mode;
        let Pass {
            cache,
            items,
            outstanding,
            cache_hint,
            ..
        } = pass;
        let part = slice_of(cache, p, cache_hint);
        let mode = pass_mode;
        match op {
            Op::Split(b) => {
                let mut aggs = core::mem::take(&mut sc.aggs2);
                slice_aggs(part, p, b, &mut aggs);
                w.fps.reserve(4 * aggs.len());
                for a in &aggs {
                    w.fps.extend(fp32(*a).to_le_bytes());
                }
                sc.aggs2 = aggs;
                w.ops.push(OP_SPLIT | b);
                outstanding.push_back(Asked::Split {
                    prefix: p,
                    b,
                    depth,
                });
            }
            Op::Ids => {
                let at = items.len();
                items.extend(part.iter().map(|g| g.item_in(mode, p)));
                items[at..].sort_unstable_by_key(|it| it.short);
                w.ops.push(OP_IDS);
                w.counts.push(part.len() as u32);
                for it in &items[at..] {
                    w.shorts.extend(it.short.to_le_bytes());
                }
                outstanding.push_back(Asked::Ids {
                    prefix: p,
                    at,
                    n: part.len(),
                });
            }
            Op::Entries => {
                let at = items.len();
                items.extend(part.iter().map(|g| g.item_in(mode, p)));
                w.ops.push(OP_ENTRIES);
                w.counts.push(part.len() as u32);
                w.op_entries.extend(part.iter().map(|g| g.item.src));
                outstanding.push_back(Asked::Entries {
                    prefix: p,
                    at,
                    n: part.len(),
                });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        file: &JobFile,
        pass: &mut Pass,
        w: &mut Writer,
        sc: &mut Scratch,
        p: Prefix,
        op: Op,
        depth: u8,
    ) {
        let mode = pass.mode;
        match op {
            Op::Split(b) => {
                let mut aggs = core::mem::take(&mut sc.aggs2);
                self.view_aggs(file, mode, p, b, &mut aggs);
                w.fps.reserve(4 * aggs.len());
                for a in &aggs {
                    w.fps.extend(fp32(*a).to_le_bytes());
                }
                sc.aggs2 = aggs;
                w.ops.push(OP_SPLIT | b);
                pass.outstanding.push_back(Asked::Split {
                    prefix: p,
                    b,
                    depth,
                });
            }
            Op::Ids => {
                let at = pass.items.len();
                self.items_in(file, mode, p, &mut pass.items);
                pass.items[at..].sort_unstable_by_key(|it| it.short);
                let n = pass.items.len() - at;
                w.ops.push(OP_IDS);
                w.counts.push(n as u32);
                for it in &pass.items[at..] {
                    w.shorts.extend(it.short.to_le_bytes());
                }
                pass.outstanding.push_back(Asked::Ids { prefix: p, at, n });
            }
            Op::Entries => {
                let at = pass.items.len();
                self.items_in(file, mode, p, &mut pass.items);
                let n = pass.items.len() - at;
                w.ops.push(OP_ENTRIES);
                w.counts.push(n as u32);
                w.op_entries
                    .extend(pass.items[at..].iter().map(|it| it.src));
                pass.outstanding
                    .push_back(Asked::Entries { prefix: p, at, n });
            }
        }
    }
}

/// Whether two of `learned` have the same leaf hash: an open-addressing
/// table on the hashes' first 8 bytes, whole hashes compared only where
/// those meet.
fn has_repeat(learned: &[(JobEntry, Hash32)]) -> bool {
    if learned.len() < 2 {
        return false;
    }
    let size = (learned.len() * 2).next_power_of_two();
    let mask = size - 1;
    // Slot value: index + 1 (0 = empty).
    let mut table = vec![0u32; size];
    for (i, (_, leaf)) in learned.iter().enumerate() {
        let key = leaf.short();
        let mut at = (key as usize) & mask;
        loop {
            match table[at] {
                0 => {
                    table[at] = i as u32 + 1;
                    break;
                }
                j => {
                    if learned[j as usize - 1].1 == *leaf {
                        return true;
                    }
                    at = (at + 1) & mask;
                }
            }
        }
    }
    false
}

/// The entries' order (`JobEntry`'s `Ord`: id first), comparing the ids'
/// first 8 bytes as one integer before the rest.
fn entry_order(a: &JobEntry, b: &JobEntry) -> core::cmp::Ordering {
    top64(&a.id).cmp(&top64(&b.id)).then_with(|| a.cmp(b))
}

/// `wire::encode(m)`, into a buffer reserved for `hint` bytes.
fn encode_reserved(m: &Reconcile, hint: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(hint.max(64));
    out.push(undchain_types::WIRE_VERSION);
    postcard::to_extend(m, out).unwrap_or_else(|_| wire::encode(m))
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
    /// The entry column and the read position in it.
    entries: &'a [u8],
    entry_pos: usize,
    entry_count: usize,
    /// Where this round's learned entries start in `remote`.
    learned: usize,
}

impl Reader<'_> {
    fn entries_done(&self) -> bool {
        self.entry_pos >= self.entries.len()
    }

    /// The next entry of the entry column with its leaf hash (blake3 of the
    /// very bytes received).
    fn entry(&mut self) -> Result<(JobEntry, Hash32), ReconcileError> {
        if self.entry_count >= MAX_ENTRIES {
            return Err(ReconcileError::Malformed("too many entries in a round"));
        }
        let rest = self.entries.get(self.entry_pos..).unwrap_or_default();
        let (e, used) = decode_entry(rest).map_err(|b| ReconcileError::Malformed(b.0))?;
        let leaf = leaf_hash_bytes(&rest[..used]);
        self.entry_pos += used;
        self.entry_count += 1;
        Ok((e, leaf))
    }

    fn count(&mut self) -> Result<u32, ReconcileError> {
        let c = *self
            .counts
            .get(self.count_pos)
            .ok_or(ReconcileError::Malformed("count column too short"))?;
        self.count_pos += 1;
        Ok(c)
    }
}
