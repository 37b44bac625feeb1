//! Receiving a round: the peer's answers to the first `answered` of this
//! side's open questions, in queue order; the questions the peer opened
//! while answering (queued to be answered); and the extra entries (those
//! the peer has and this side lacks) at the end of the entry column. Every
//! column must be used up exactly, and every received entry must lie in a
//! range it may answer and be new to this side.

use undchain_types::msg::{MAX_ENTRIES, ReconcileRound};
use undchain_types::{Hash32, JobEntry};

use super::super::bits::{BitReader, U32Reader, read_wants};
use super::super::iblt::{self, CELL_WORDS};
use super::super::idset::IdSet;
use super::super::range::{Prefix, top64};
use super::super::rice::RiceReader;
use super::super::{Config, ReconcileError};
use super::Session;
use super::pass::{
    MAX_SPLIT_BITS, OP_ENTRIES, OP_IBLT, OP_IDS, OP_SPLIT, OwnQuestion, Pass, PeerQuestion,
};
use super::view::{PriorEntry, View};
use crate::codec::{decode_entry, leaf_hash_bytes};
use crate::file::JobFile;

/// The columns of a received round, each with its read position.
struct Reader<'m> {
    bits: BitReader<'m>,
    ops: &'m [u8],
    op_pos: usize,
    fps: U32Reader<'m>,
    counts: &'m [u32],
    count_pos: usize,
    shorts: RiceReader<'m>,
    /// The entry column, the read position in it and the entries read.
    entries: &'m [u8],
    entry_pos: usize,
    entry_count: usize,
}

impl<'m> Reader<'m> {
    fn new(r: &'m ReconcileRound) -> Self {
        Reader {
            bits: BitReader::new(&r.bits),
            ops: &r.ops,
            op_pos: 0,
            fps: U32Reader::new(&r.fingerprints, "fingerprint column too short"),
            counts: &r.counts,
            count_pos: 0,
            shorts: RiceReader::new(&r.short_ids),
            entries: &r.entries,
            entry_pos: 0,
            entry_count: 0,
        }
    }

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

    fn op(&mut self) -> Result<u8, ReconcileError> {
        let op = *self
            .ops
            .get(self.op_pos)
            .ok_or(ReconcileError::Malformed("op column too short"))?;
        self.op_pos += 1;
        Ok(op)
    }

    fn count(&mut self) -> Result<u32, ReconcileError> {
        let c = *self
            .counts
            .get(self.count_pos)
            .ok_or(ReconcileError::Malformed("count column too short"))?;
        self.count_pos += 1;
        Ok(c)
    }

    /// Whether every column but the entry column (which also carries the
    /// extras) has been read to its end.
    fn answers_used_up(&self) -> bool {
        self.bits.finished()
            && self.op_pos == self.ops.len()
            && self.fps.finished()
            && self.count_pos == self.counts.len()
            && self.shorts.finished()
    }
}

/// A range this side asked about whose answer may carry extra entries,
/// with my items there (`items[at..at + n]`).
#[derive(Debug, Clone, Copy)]
struct Window {
    prefix: Prefix,
    at: usize,
    n: usize,
    /// No items kept: a received entry is looked up in the view.
    lookup: bool,
}

/// The context of receiving one round: the columns being read, the pass
/// whose queues move, and the session's lists the round adds to, borrowed
/// apart so that the view can be read while they grow.
struct Receiving<'s, 'm> {
    file: &'s JobFile,
    cfg: &'s Config,
    prior: &'s [PriorEntry],
    /// The session's learned entries; this round's start at `learned`.
    remote: &'s mut Vec<(JobEntry, Hash32)>,
    learned: usize,
    /// The session's entries that the peer lacked.
    local: &'s mut Vec<JobEntry>,
    /// The ids of `remote`, to refuse a second entry with one id.
    ids: &'s mut IdSet,
    /// The count the peer announced (its root answer, or its start).
    peer_count: &'s mut Option<u64>,
    pass: &'s mut Pass,
    rd: Reader<'m>,
}

impl Session {
    /// Reads a round into the current pass; an error leaves the session
    /// to be failed by the caller (the round may be partly applied).
    pub(super) fn absorb(
        &mut self,
        file: &JobFile,
        r: &ReconcileRound,
    ) -> Result<(), ReconcileError> {
        let Some(pass) = self.pass.as_mut() else {
            return Err(ReconcileError::Unexpected("round outside a pass"));
        };
        Receiving {
            file,
            cfg: &self.cfg,
            prior: &self.prior,
            learned: self.remote.len(),
            remote: &mut self.remote,
            local: &mut self.local,
            ids: &mut self.ids,
            peer_count: &mut self.peer_count,
            pass,
            rd: Reader::new(r),
        }
        .round(r)
    }
}

impl Receiving<'_, '_> {
    /// The view as it stands (borrowed until the next change).
    fn view(&self) -> View<'_> {
        View {
            file: self.file,
            remote: self.remote,
            prior: self.prior,
        }
    }

    fn round(&mut self, r: &ReconcileRound) -> Result<(), ReconcileError> {
        let answered = r.answered as usize;
        if answered > self.pass.outstanding.len() {
            return Err(ReconcileError::Malformed("answers more than was asked"));
        }
        self.remote.reserve(r.entries.len() / 38);
        // Room for what this round can add to the outcome.
        let mine: usize = self
            .pass
            .outstanding
            .iter()
            .take(answered)
            .map(|a| match a {
                OwnQuestion::Ids { n, .. } => *n,
                _ => 0,
            })
            .sum();
        // Room for what this round adds to the pass's lists.
        self.pass.deliver.reserve(mine);
        self.pass
            .words
            .reserve(r.fingerprints.len() / 4 + r.short_ids.len() / 4);
        self.pass.to_answer.reserve(r.ops.len() + answered);
        let mut windows = self.answers(answered)?;
        if !self.rd.answers_used_up() {
            return Err(ReconcileError::Malformed(
                "columns hold more than the answers use",
            ));
        }
        if !windows.is_sorted_by_key(|w| w.prefix) {
            windows.sort_unstable_by_key(|w| w.prefix);
        }
        self.extras(&windows)?;
        self.check_learned()
    }

    /// Refuses a round whose entries repeat a job id learned before (in
    /// this round or an earlier one) or exceed the count the peer
    /// announced: the outcome never holds an id twice.
    fn check_learned(&mut self) -> Result<(), ReconcileError> {
        if let Some(limit) = *self.peer_count
            && self.remote.len() as u64 > limit
        {
            return Err(ReconcileError::TooManyEntries {
                got: self.remote.len() as u64,
                limit,
            });
        }
        for i in self.learned..self.remote.len() {
            if !self.ids.insert(self.remote, i) {
                return Err(ReconcileError::Duplicate {
                    id: self.remote[i].0.id,
                });
            }
        }
        Ok(())
    }

    /// Records the count the peer announced in its root answer (the first
    /// one counts; a keyed pass repeats it).
    fn announce(&mut self, count: u64) -> Result<(), ReconcileError> {
        if count > self.cfg.max_peer_entries {
            return Err(ReconcileError::TooManyEntries {
                got: count,
                limit: self.cfg.max_peer_entries,
            });
        }
        self.peer_count.get_or_insert(count);
        Ok(())
    }

    /// Reads the answer to my split of `prefix` into `2^b` parts (with
    /// `depth` splits above `prefix`): a bit a part, the "more" bit, then
    /// the ops the peer opened for the parts that differ (all of them, or
    /// a count of them if it cut the answer, the rest owed).
    fn split_answer(&mut self, prefix: Prefix, b: u8, depth: u8) -> Result<(), ReconcileError> {
        let start = self.pass.rest.len();
        for i in 0..(1u64 << b) {
            if self.rd.bits.next()? {
                self.pass.rest.push(i);
            }
        }
        let n = self.pass.rest.len() - start;
        self.split_ops(prefix, b, depth.saturating_add(1), start, n)
    }

    /// Reads the "more" bit and the ops of the parts `rest[at..at + n]` of
    /// the split of `prefix` into `2^b` parts (each under `depth` splits);
    /// the parts still owed are queued.
    fn split_ops(
        &mut self,
        prefix: Prefix,
        b: u8,
        depth: u8,
        at: usize,
        n: usize,
    ) -> Result<(), ReconcileError> {
        let more = self.rd.bits.next()?;
        let k = if more {
            let k = self.rd.count()? as usize;
            if k >= n {
                return Err(ReconcileError::Malformed("a cut answer opens every part"));
            }
            k
        } else {
            n
        };
        for j in at..at + k {
            let child = prefix.child(b, self.pass.rest[j]);
            let q = self.read_op(child, prefix, depth)?;
            self.pass.to_answer.push_back(q);
        }
        if more {
            self.pass.outstanding.push_back(OwnQuestion::SplitRest {
                prefix,
                b,
                depth,
                at: at + k,
                n: n - k,
            });
        } else if at + n == self.pass.rest.len() {
            self.pass.rest.truncate(at);
        }
        Ok(())
    }

    /// Reads the "more" bit of an answer with extras for the range of
    /// `window`; if set, the rest of the extras is owed.
    fn more_extras(&mut self, window: Window) -> Result<(), ReconcileError> {
        if self.rd.bits.next()? {
            self.pass.outstanding.push_back(OwnQuestion::Want {
                prefix: window.prefix,
                at: window.at,
                n: window.n,
                lookup: window.lookup,
            });
        }
        Ok(())
    }

    /// Reads the answers to the first `answered` open questions; returns
    /// the ranges whose answers may carry extra entries.
    fn answers(&mut self, answered: usize) -> Result<Vec<Window>, ReconcileError> {
        let mut windows = Vec::with_capacity(answered);
        for _ in 0..answered {
            let Some(asked) = self.pass.outstanding.pop_front() else {
                break;
            };
            match asked {
                OwnQuestion::Root { b, base } => {
                    let c = self.rd.count()?;
                    self.announce(u64::from(c))?;
                    let narrowed = if base.len > 0 {
                        let len = self.rd.count()?;
                        if len > u32::from(base.len) {
                            return Err(ReconcileError::Malformed(
                                "shared prefix answered longer than announced",
                            ));
                        }
                        base.truncate(len as u8)
                    } else {
                        base
                    };
                    if b == 0 || narrowed != base {
                        let q = self.read_op(narrowed, narrowed, 0)?;
                        self.pass.to_answer.push_back(q);
                    } else {
                        self.split_answer(base, b, 0)?;
                    }
                }
                OwnQuestion::Split { prefix, b, depth } => self.split_answer(prefix, b, depth)?,
                OwnQuestion::SplitRest {
                    prefix,
                    b,
                    depth,
                    at,
                    n,
                } => self.split_ops(prefix, b, depth, at, n)?,
                OwnQuestion::Ids { prefix, at, n } => {
                    let start = self.pass.deliver.len();
                    let (items, deliver) = (&self.pass.items, &mut self.pass.deliver);
                    // Recorded as local when delivered (one read of the
                    // entry for both).
                    read_wants(&mut self.rd.bits, n, &mut |i| {
                        deliver.push(items[at + i].src)
                    })?;
                    let wanted = self.pass.deliver.len() - start;
                    if wanted > 0 {
                        self.pass.to_answer.push_back(PeerQuestion::Deliver {
                            at: start,
                            n: wanted,
                        });
                    }
                    let w = Window {
                        prefix,
                        at,
                        n,
                        lookup: false,
                    };
                    self.more_extras(w)?;
                    windows.push(w);
                }
                OwnQuestion::Entries { prefix, at, n } => {
                    for k in at..at + n {
                        let it = self.pass.items[k];
                        if self.rd.bits.next()? {
                            let e = self.view().entry_of(it.src).clone();
                            self.local.push(e);
                        }
                    }
                    let w = Window {
                        prefix,
                        at,
                        n,
                        lookup: false,
                    };
                    self.more_extras(w)?;
                    windows.push(w);
                }
                OwnQuestion::Want {
                    prefix,
                    at,
                    n,
                    lookup,
                } => {
                    let w = Window {
                        prefix,
                        at,
                        n,
                        lookup,
                    };
                    self.more_extras(w)?;
                    windows.push(w);
                }
                OwnQuestion::Iblt { prefix, depth, m } => {
                    if self.rd.bits.next()? {
                        self.iblt_wants(prefix, m)?;
                        let w = Window {
                            prefix,
                            at: 0,
                            n: 0,
                            lookup: true,
                        };
                        self.more_extras(w)?;
                        windows.push(w);
                    } else {
                        // Not peeled: the peer opened the range again, as
                        // the one part of a split of zero bits.
                        let start = self.pass.rest.len();
                        self.pass.rest.push(0);
                        self.split_ops(prefix, 0, depth.saturating_add(1), start, 1)?;
                    }
                }
            }
        }
        Ok(windows)
    }

    /// Reads the keys the peer lacks after peeling my IBLT of `prefix`
    /// (`m` cells) and queues the delivery of my entries with those keys
    /// (a key I do not hold, which only a wrong peel gives, is not
    /// delivered: the roots then differ and the keyed pass follows).
    fn iblt_wants(&mut self, prefix: Prefix, m: usize) -> Result<(), ReconcileError> {
        let w = self.rd.count()? as usize;
        if w > m {
            return Err(ReconcileError::Malformed(
                "an IBLT answer wants more keys than the table has cells",
            ));
        }
        if w == 0 {
            return Ok(());
        }
        let mut words = Vec::with_capacity(2 * w);
        self.rd.fps.take_into(2 * w, &mut words)?;
        let mut wanted: Vec<u64> = words
            .chunks_exact(2)
            .map(|p| u64::from(p[0]) | (u64::from(p[1]) << 32))
            .collect();
        wanted.sort_unstable();
        let start = self.pass.deliver.len();
        let view = View {
            file: self.file,
            remote: self.remote,
            prior: self.prior,
        };
        let deliver = &mut self.pass.deliver;
        view.find_keys(self.pass.mode, prefix, &wanted, &mut |src| {
            deliver.push(src)
        });
        let found = self.pass.deliver.len() - start;
        self.pass.to_answer.push_back(PeerQuestion::Deliver {
            at: start,
            n: found,
        });
        Ok(())
    }

    /// Reads the op the peer opened `prefix` (a part of `parent`, under
    /// `depth` splits) with, as a question for this side to answer.
    fn read_op(
        &mut self,
        prefix: Prefix,
        parent: Prefix,
        depth: u8,
    ) -> Result<PeerQuestion, ReconcileError> {
        let op = self.rd.op()?;
        match op & 0xC0 {
            OP_SPLIT => {
                let b = op & 0x3F;
                if b == 0 || b > MAX_SPLIT_BITS || u32::from(prefix.len) + u32::from(b) > 64 {
                    return Err(ReconcileError::Malformed("split width out of range"));
                }
                let k = 1usize << b;
                if self.rd.fps.remaining() < k {
                    return Err(ReconcileError::Malformed("fingerprint column too short"));
                }
                let at = self.pass.words.len();
                self.rd.fps.take_into(k, &mut self.pass.words)?;
                Ok(PeerQuestion::Split {
                    prefix,
                    b,
                    at,
                    depth,
                })
            }
            OP_IDS => {
                let n = self.rd.count()? as usize;
                let at = self.pass.words.len();
                self.rd.shorts.take_into(n, &mut self.pass.words)?;
                Ok(PeerQuestion::Ids {
                    prefix,
                    parent,
                    at,
                    n,
                })
            }
            OP_ENTRIES => self.read_whole_range(prefix),
            _ if op == OP_IBLT => {
                let m = self.rd.count()? as usize;
                if !iblt::valid_size(m) {
                    return Err(ReconcileError::Malformed("IBLT size out of range"));
                }
                if self.rd.fps.remaining() < CELL_WORDS * m {
                    return Err(ReconcileError::Malformed("fingerprint column too short"));
                }
                let at = self.pass.words.len();
                self.rd
                    .fps
                    .take_into(CELL_WORDS * m, &mut self.pass.words)?;
                Ok(PeerQuestion::Iblt {
                    prefix,
                    depth,
                    at,
                    m,
                })
            }
            _ => Err(ReconcileError::Malformed("unknown op code")),
        }
    }

    /// Reads a whole-range op of `prefix`: the peer's entries there, each
    /// kept (with whether it is new to me) and learned if new.
    fn read_whole_range(&mut self, prefix: Prefix) -> Result<PeerQuestion, ReconcileError> {
        let n = self.rd.count()? as usize;
        if n > MAX_ENTRIES {
            return Err(ReconcileError::Malformed("whole-range op too long"));
        }
        let mode = self.pass.mode;
        let at = self.pass.theirs.len();
        let mine = self.pass.items.len();
        View {
            file: self.file,
            remote: self.remote,
            prior: self.prior,
        }
        .items_in(mode, prefix, &mut self.pass.items);
        let mine_n = self.pass.items.len() - mine;
        for _ in 0..n {
            if self.rd.entries_done() {
                return Err(ReconcileError::Malformed("whole-range op too long"));
            }
            let (e, leaf) = self.rd.entry()?;
            if !prefix.contains(&e.id) {
                return Err(ReconcileError::Malformed("entry outside its range"));
            }
            let short = mode.short(prefix.len, top64(&e.id), &leaf);
            let mine_there = &self.pass.items[mine..mine + mine_n];
            let is_new = !self.view().items_hold(mine_there, short, &e.id, &leaf);
            self.pass.news.push(is_new);
            self.pass.theirs.push((e.id, leaf));
            if is_new {
                self.remote.push((e, leaf));
            }
        }
        Ok(PeerQuestion::Entries {
            at,
            n,
            mine,
            mine_n,
        })
    }

    /// Reads the extra entries at the end of the entry column: each must
    /// lie in one of `windows` (sorted) and be new to me.
    fn extras(&mut self, windows: &[Window]) -> Result<(), ReconcileError> {
        // Extras come in answer order, which is id order: try the window of
        // the previous entry before searching.
        let mut last = 0usize;
        while !self.rd.entries_done() {
            let (e, leaf) = self.rd.entry()?;
            let t = top64(&e.id);
            let i = match (windows.get(last), windows.get(last + 1)) {
                (Some(w), _) if w.prefix.contains_top(t) => last + 1,
                (_, Some(w)) if w.prefix.contains_top(t) => last + 2,
                _ => windows.partition_point(|w| w.prefix.bits <= t),
            };
            last = i.saturating_sub(1);
            let Some(&Window {
                prefix: w,
                at,
                n,
                lookup,
            }) = i.checked_sub(1).and_then(|i| windows.get(i))
            else {
                return Err(ReconcileError::Malformed(
                    "entry outside the ranges it may answer",
                ));
            };
            if !w.contains_top(t) {
                return Err(ReconcileError::Malformed(
                    "entry outside the ranges it may answer",
                ));
            }
            let held = if lookup {
                self.view().holds(&e.id, &leaf)
            } else {
                let short = self.pass.mode.short(w.len, t, &leaf);
                self.view()
                    .items_hold(&self.pass.items[at..at + n], short, &e.id, &leaf)
            };
            if held {
                return Err(ReconcileError::Malformed("entry the receiver already has"));
            }
            self.remote.push((e, leaf));
        }
        Ok(())
    }
}
