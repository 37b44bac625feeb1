//! The reconciliation state machine, the same for both sides after the
//! first message (`docs/PROTOCOL.md` "Job files and reconciliation").
//!
//! This file holds the contract: the session's life cycle, the checks
//! every message passes (session, step, budgets, an unchanged file) and
//! the dispatch on the message body. The work is split along its seams:
//! - [`view`]: the session's view of the set (the file plus the entries
//!   learned from the peer), read through the file's index;
//! - [`pass`]: one pass's question queues and the arenas they index;
//! - [`receive`]: reading a round (answers, new questions, entries);
//! - [`build`]: writing a round (answers, new ranges, entries).
//!
//! The file is only read: entries learned from the peer are kept in the
//! outcome (and in the session's view of the set), and the caller applies
//! the outcome. Hot paths never clone an entry that does not travel:
//! questions name entries by their place in the file's store, and unkeyed
//! short ids and fingerprints are read from the file's index slots.

mod build;
mod pass;
mod receive;
mod view;

use undchain_types::msg::{AbortReason, Reconcile, ReconcileBody, ReconcileRound};
use undchain_types::wire::{self};
use undchain_types::{BlockNumber, Hash32, HashContext, JobEntry, hash_parts};

use super::idset::IdSet;
use super::policy;
use super::range::{Mode, Prefix, fp32, top64};
use super::{Config, Outcome, ReconcileError, Traffic};
use crate::file::JobFile;
use pass::{OwnQuestion, Pass, PeerQuestion, Scratch};
use view::{PriorEntry, View, prior_entries};

/// Which side of the session this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends the first message ([`Session::start`]).
    Initiator,
    /// Waits for the initiator's first message and answers it.
    Responder,
}

/// Where the session is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing sent or received yet.
    Idle,
    /// A pass is under way.
    Running,
    /// This side sent its final root and waits for the peer's `Match` (or
    /// its keyed `Start`, if the roots differ).
    Done,
    /// The last pass ended with equal roots (a keyed pass may still follow).
    Finished,
    /// A message or call was refused; every later message is refused too.
    Failed,
}

/// One side of a reconciliation session over one job file.
///
/// Drive it with [`Session::start`] (initiator) and
/// [`Session::handle`] / [`Session::handle_bytes`] (both sides), passing
/// the same, unchanged file every time. When [`Session::is_finished`], the
/// [`Session::outcome`] says what each side lacked.
///
/// # Refusals
///
/// A refused message or call comes back as a typed [`ReconcileError`].
/// What it leaves behind:
/// - Refused before anything of it is read into the session, it changes
///   nothing (the session goes on as if it never came): [`Session::start`]
///   on a responder or on a session under way
///   ([`ReconcileError::Unexpected`]); bytes over the frame limit or that
///   do not decode ([`ReconcileError::TooManyBytes`],
///   [`ReconcileError::Wire`]); another session's or block's message
///   ([`ReconcileError::WrongSession`]); a replayed or out-of-order step
///   ([`ReconcileError::Step`]); and any message to a failed session
///   ([`ReconcileError::Finished`]).
/// - Every other error fails the session ([`Session::is_failed`]), and the
///   message that caused it may have been partly applied: the step and
///   [`Session::traffic`] count it, and entries from its columns may
///   already be in the outcome. A failed session is over: it refuses every
///   later message, its outcome is not a reconciliation result and must
///   not be applied. Send [`Session::abort_message`] with
///   [`ReconcileError::abort_reason`] if the peer should know, then drop
///   the session.
#[derive(Debug)]
pub struct Session {
    role: Role,
    session: u64,
    block: BlockNumber,
    /// The block id whose file the initiator wants, named in its messages.
    file_of: Option<Hash32>,
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
    prior: Vec<PriorEntry>,
    /// The ids of `remote`.
    ids: IdSet,
    /// The count the peer announced (its start, or its root answer).
    peer_count: Option<u64>,
    /// The local file's count when the session began.
    local_count: u64,
    scratch: Scratch,
    traffic: Traffic,
    /// Size estimate of the reply being built (to encode without regrowing).
    reply_hint: usize,
}

impl Session {
    /// A session; `nonce` is fresh randomness (an input, never drawn
    /// inside) that keys the slow pass if this side has to start one.
    pub fn new(role: Role, session: u64, block: BlockNumber, cfg: Config, nonce: Hash32) -> Self {
        Session {
            role,
            session,
            block,
            file_of: None,
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
            ids: IdSet::new(u64::from_le_bytes([
                nonce.0[0], nonce.0[1], nonce.0[2], nonce.0[3], nonce.0[4], nonce.0[5], nonce.0[6],
                nonce.0[7],
            ])),
            peer_count: None,
            local_count: 0,
            scratch: Scratch::default(),
            traffic: Traffic::default(),
            reply_hint: 0,
        }
    }

    /// The same session naming block id `id` as the file it wants
    /// ([`Reconcile::file_of`]): a responder holding a different file of
    /// the same block number (another proposal, its open file) then does
    /// not answer instead of reconciling against the wrong value.
    #[must_use]
    pub fn wanting(mut self, id: Hash32) -> Self {
        self.file_of = Some(id);
        self
    }

    /// The block id this session's messages name ([`Session::wanting`]).
    pub fn file_of(&self) -> Option<Hash32> {
        self.file_of
    }

    /// Which side of the session this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the session ended with equal roots: this side compared the
    /// peer's final root with its own, or the peer confirmed (`Match`)
    /// the one this side sent. A side that sent its final root is not
    /// finished until then. (A peer may still start a keyed pass after a
    /// `Match` this side sent, which this side then answers; any other
    /// message fails a finished session.)
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Whether the session failed: it refused a message or call (see
    /// "Refusals" on [`Session`]) or sent an abort, and is over.
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

    /// An abort message telling the peer why this side stopped; the
    /// session is failed from then on.
    pub fn abort_message(&mut self, reason: AbortReason) -> Reconcile {
        let m = self.envelope(ReconcileBody::Abort(reason));
        self.state = State::Failed;
        m
    }

    fn envelope(&mut self, body: ReconcileBody) -> Reconcile {
        let m = Reconcile {
            session: self.session,
            block: self.block,
            file_of: self.file_of,
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
        self.local_count = file.len();
        self.state = State::Running;
        let msg = self.open_pass(file, Mode::Unkeyed, None);
        let len = wire::encode(&msg).len();
        self.count_out(len)?;
        Ok(msg)
    }

    /// Starts a pass: this side sends its count, root and opening split.
    fn open_pass(&mut self, file: &JobFile, mode: Mode, nonce: Option<Hash32>) -> Reconcile {
        self.prior = prior_entries(&self.remote);
        let mut pass = Pass::new(mode, mode.file_sum(file));
        let (count, root) = self.view_root(file, &pass);
        let b = policy::opening_bits(&self.cfg, count);
        // Only an unkeyed pass (the first: nothing learned yet, so the view
        // is the file) walks under the file's shared prefix.
        let base = match mode {
            Mode::Unkeyed if self.remote.is_empty() => Prefix::shared_by(file),
            _ => Prefix::ROOT,
        };
        let mut parts = Vec::new();
        if b > 0 {
            let mut aggs = core::mem::take(&mut self.scratch.aggs);
            self.view(file).aggs(mode, base, b, &mut aggs);
            parts.reserve(4 * aggs.len());
            for a in &aggs {
                parts.extend(fp32(*a).to_le_bytes());
            }
            self.scratch.aggs = aggs;
        }
        pass.b0 = b;
        pass.outstanding.push_back(OwnQuestion::Root { b, base });
        self.pass = Some(pass);
        self.envelope(ReconcileBody::Start {
            count,
            root,
            keyed: nonce,
            shared: base.to_shared(),
            parts: undchain_types::BoundedBytes::try_from_vec(parts).unwrap_or_default(),
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

    /// The session's view of the set: `file` plus the entries learned
    /// from the peer.
    fn view<'a>(&'a self, file: &'a JobFile) -> View<'a> {
        View {
            file,
            remote: &self.remote,
            prior: &self.prior,
        }
    }

    /// Count and root of the session's view in `pass`'s mode.
    fn view_root(&self, file: &JobFile, pass: &Pass) -> (u64, Hash32) {
        self.view(file).root(pass.mode, &pass.file_sum)
    }

    fn count_out(&mut self, len: usize) -> Result<(), ReconcileError> {
        self.traffic.sent += 1;
        self.traffic.bytes_sent += len as u64;
        self.check_budget()
    }

    /// The session's byte and message limits: the configured bases plus
    /// what the two announced counts need (`docs/PROTOCOL.md`, "Bounds").
    pub fn limits(&self) -> (u64, u32) {
        let entries = self
            .local_count
            .saturating_add(self.peer_count.unwrap_or(0));
        let extra = PER_ENTRY_BYTES.saturating_mul(entries);
        let bytes = self.cfg.max_bytes.saturating_add(extra);
        let frame = (self.cfg.max_message_bytes as u64).max(1);
        let frames = u32::try_from(extra.div_ceil(frame)).unwrap_or(u32::MAX);
        let msgs = u32::from(self.cfg.max_messages).saturating_add(frames.saturating_mul(4));
        (bytes, msgs)
    }

    fn check_budget(&mut self) -> Result<(), ReconcileError> {
        let (max_bytes, max_msgs) = self.limits();
        let total = self.traffic.bytes_sent + self.traffic.bytes_received;
        if total > max_bytes {
            return Err(self.fail(ReconcileError::TooManyBytes {
                got: total,
                limit: max_bytes,
            }));
        }
        let msgs = self.traffic.sent + self.traffic.received;
        if msgs > max_msgs {
            return Err(self.fail(ReconcileError::TooManyMessages { limit: max_msgs }));
        }
        Ok(())
    }

    /// Handles an encoded message; returns the encoded reply, if any.
    pub fn handle_bytes(
        &mut self,
        file: &JobFile,
        bytes: &[u8],
    ) -> Result<Option<Vec<u8>>, ReconcileError> {
        if self.state == State::Failed {
            return Err(ReconcileError::Finished);
        }
        // Refused before anything is read into the session: nothing changes.
        if bytes.len() > self.cfg.max_message_bytes {
            return Err(ReconcileError::TooManyBytes {
                got: bytes.len() as u64,
                limit: self.cfg.max_message_bytes as u64,
            });
        }
        let msg: Reconcile = wire::decode(bytes, self.cfg.max_message_bytes)?;
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
        // Another session's, a replayed or an out-of-order message is
        // refused before it touches the session: nothing changes.
        if msg.session != self.session || msg.block != self.block {
            return Err(ReconcileError::WrongSession {
                session: self.session,
                block: self.block.0,
                got_session: msg.session,
                got_block: msg.block.0,
            });
        }
        if msg.step != self.step {
            return Err(ReconcileError::Step {
                expected: self.step,
                got: msg.step,
            });
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
            Some(_) => {}
            None => {
                self.version = Some(file.version());
                self.local_count = file.len();
            }
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

    /// Dispatches a checked message on its body.
    fn step_body(
        &mut self,
        file: &JobFile,
        body: ReconcileBody,
    ) -> Result<Option<Reconcile>, ReconcileError> {
        match body {
            ReconcileBody::Start {
                count,
                root,
                keyed,
                shared,
                parts,
            } => {
                let base = Prefix::from_shared(shared).map_err(ReconcileError::Malformed)?;
                self.on_start(
                    file,
                    Opening {
                        count,
                        root,
                        keyed,
                        base,
                    },
                    &parts,
                )
            }
            ReconcileBody::Match => self.on_match(),
            ReconcileBody::Abort(r) => Err(ReconcileError::PeerAborted(r)),
            ReconcileBody::Round(r) => self.on_round(file, &r),
        }
    }

    /// The peer opens a pass: the unkeyed one (to a fresh responder) or a
    /// keyed one after an unkeyed pass that ended with different roots.
    fn on_start(
        &mut self,
        file: &JobFile,
        start: Opening,
        parts: &[u8],
    ) -> Result<Option<Reconcile>, ReconcileError> {
        let Opening {
            count,
            root,
            keyed,
            base,
        } = start;
        if keyed.is_some() && base != Prefix::ROOT {
            return Err(ReconcileError::Malformed(
                "a keyed pass announces a shared prefix",
            ));
        }
        let b = match parts.len() / 4 {
            0 if parts.is_empty() => 0,
            k if k.is_power_of_two() && parts.len() % 4 == 0 && k >= 2 => k.trailing_zeros() as u8,
            _ => return Err(ReconcileError::Malformed("opening split of a bad length")),
        };
        if count > self.cfg.max_peer_entries {
            return Err(ReconcileError::TooManyEntries {
                got: count,
                limit: self.cfg.max_peer_entries,
            });
        }
        let may_start = match keyed {
            None => self.role == Role::Responder && self.state == State::Idle,
            // A keyed pass may follow a finished unkeyed one.
            Some(_) => {
                matches!(self.state, State::Done | State::Finished)
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
        self.peer_count.get_or_insert(count);
        self.state = State::Running;
        self.prior = prior_entries(&self.remote);
        let mut pass = Pass::new(mode, mode.file_sum(file));
        let (_, mine) = self.view_root(file, &pass);
        if mine == root {
            self.pass = Some(pass);
            self.state = State::Finished;
            return Ok(Some(self.envelope(ReconcileBody::Match)));
        }
        pass.b0 = b;
        let at = pass.words.len();
        pass.words.extend(
            parts
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        // The ranges of the pass lie under the part of the peer's prefix
        // that this side's ids share too (a fresh responder's view is its
        // file; a keyed pass announces none).
        let narrowed = base.narrowed_to(file);
        pass.to_answer.push_back(PeerQuestion::Root {
            peer_count: count,
            b,
            at,
            base,
            narrowed,
        });
        self.pass = Some(pass);
        Ok(Some(self.build(file)))
    }

    /// The peer's view has the root this side's start announced, or the
    /// final root this side sent.
    fn on_match(&mut self) -> Result<Option<Reconcile>, ReconcileError> {
        if self.state == State::Done {
            self.state = State::Finished;
            return Ok(None);
        }
        let pass = self
            .pass
            .as_mut()
            .ok_or(ReconcileError::Unexpected("match before start"))?;
        if pass.outstanding.len() != 1 || !matches!(pass.outstanding[0], OwnQuestion::Root { .. }) {
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

    /// A round of the current pass: read it, then either answer, or (if
    /// the peer says it is done) compare roots and finish, open the keyed
    /// pass, or give up.
    fn on_round(
        &mut self,
        file: &JobFile,
        r: &ReconcileRound,
    ) -> Result<Option<Reconcile>, ReconcileError> {
        if self.state != State::Running || self.pass.is_none() {
            return Err(ReconcileError::Unexpected("round outside a pass"));
        }
        self.absorb(file, r)?;
        let Some(fin) = r.done else {
            return Ok(Some(self.build(file)));
        };
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
            return Ok(Some(self.envelope(ReconcileBody::Match)));
        }
        if mode == Mode::Unkeyed && !self.keyed_started {
            self.keyed_started = true;
            let nonce = self.nonce;
            let mode = self.keyed_mode(&nonce);
            return Ok(Some(self.open_pass(file, mode, Some(nonce))));
        }
        Err(ReconcileError::Unresolved)
    }

    /// Whether no question is open on either side (or no pass started).
    fn pass_idle(&self) -> bool {
        self.pass.as_ref().is_none_or(Pass::is_idle)
    }
}

/// What a `Start` opens a pass with.
struct Opening {
    count: u64,
    root: Hash32,
    keyed: Option<Hash32>,
    /// The prefix the peer's ids share ([`Prefix::ROOT`] for none).
    base: Prefix,
}

/// Bytes a session allows for each entry either side announced: the
/// largest encoded entry plus its share of fingerprints, short ids and bits.
const PER_ENTRY_BYTES: u64 = crate::codec::MAX_ENTRY_BYTES as u64 + 64;

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
