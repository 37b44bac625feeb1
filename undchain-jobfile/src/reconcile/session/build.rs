//! Building a round: answering the peer's open questions in queue order
//! while the round stays within the frame limit, opening a range (split,
//! short ids or whole) for every part that differs, and encoding the
//! entries that travel straight from where they live. An answer that does
//! not fit is cut: what fits goes now, a "more" bit says the rest follows,
//! and the rest is queued (on both sides) as a continuation answered in a
//! later round (`docs/PROTOCOL.md` "Job files and reconciliation").

use undchain_types::msg::{
    AbortReason, FinalRoot, MAX_ENTRIES, Reconcile, ReconcileBody, ReconcileRound,
};
use undchain_types::{BoundedBytes, BoundedVec, JobEntry};

use super::super::Config;
use super::super::bits::{BitWriter, write_wants};
use super::super::iblt::{self, CELL_WORDS, Cell};
use super::super::policy::{self, Op};
use super::super::range::{Prefix, count_in, fp32};
use super::super::rice::write_sorted;
use super::pass::{
    OP_ENTRIES, OP_IBLT, OP_IDS, OP_SPLIT, OwnQuestion, Pass, PeerQuestion, Scratch,
};
use super::view::{Src, View, iblt_key, slice_aggs, slice_of};
use super::{Session, State};
use crate::codec::{MAX_ENTRY_BYTES, encode_entry};
use crate::file::JobFile;

/// Bytes of a message kept free for the envelope, the columns' length
/// prefixes and the bits of one more answer (at most 2^16 bits).
const SLACK: usize = 16 << 10;

/// The columns of the round being written.
#[derive(Default)]
struct Writer {
    bits: BitWriter,
    ops: Vec<u8>,
    fps: Vec<u8>,
    counts: Vec<u32>,
    shorts: Vec<u8>,
    /// Encoded entries of whole-range ops, in op order.
    op_entries: Vec<u8>,
    /// Encoded extras (answers and deliveries), in answer order.
    extras: Vec<u8>,
    /// Entries in `op_entries` and `extras`.
    entries: usize,
}

impl Writer {
    /// Encoded size of the round so far, within a few bytes a column.
    fn size(&self) -> usize {
        self.bits.len_bytes()
            + self.ops.len()
            + self.fps.len()
            + self.shorts.len()
            + 5 * self.counts.len()
            + self.op_entries.len()
            + self.extras.len()
    }
}

/// The context of building one round: the view it reads, the pass whose
/// queues it moves, the round being written, the reusable buffers and the
/// outcome's local side.
struct Round<'s> {
    view: View<'s>,
    cfg: &'s Config,
    pass: &'s mut Pass,
    w: Writer,
    sc: &'s mut Scratch,
    local: &'s mut Vec<JobEntry>,
    /// Most bytes the round's columns may hold.
    limit: usize,
    /// Whether an answer was cut (the round is full).
    cut: bool,
}

impl Session {
    /// The next round: answers to as many of the peer's questions as fit,
    /// and the final root if nothing is left open on either side.
    pub(super) fn build(&mut self, file: &JobFile) -> Reconcile {
        let Some(pass) = self.pass.as_mut() else {
            return self.envelope(ReconcileBody::Abort(AbortReason::Protocol));
        };
        let view = View {
            file,
            remote: &self.remote,
            prior: &self.prior,
        };
        let mut round = Round {
            view,
            cfg: &self.cfg,
            pass,
            w: Writer::default(),
            sc: &mut self.scratch,
            local: &mut self.local,
            limit: self.cfg.max_message_bytes.saturating_sub(SLACK).max(SLACK),
            cut: false,
        };
        let answered = round.answer_queue();
        let Round { pass, w, .. } = round;
        let done = if pass.is_idle() {
            let (count, root) = view.root(pass.mode, &pass.file_sum);
            Some(FinalRoot { count, root })
        } else {
            None
        };
        if done.is_some() {
            self.state = State::Done;
        }
        self.reply_hint = w.size() + 256;
        let mut entries = w.op_entries;
        entries.extend_from_slice(&w.extras);
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
}

impl Round<'_> {
    /// Answers the peer's questions in order until the round is full (at
    /// least one is always answered); returns how many were.
    fn answer_queue(&mut self) -> u32 {
        let mut answered = 0u32;
        self.reserve();
        while !self.pass.to_answer.is_empty() {
            if answered > 0 && (self.cut || self.w.size() + SLACK > self.limit) {
                break;
            }
            let Some(q) = self.pass.to_answer.pop_front() else {
                break;
            };
            self.answer(q);
            answered += 1;
        }
        answered
    }

    /// Whether `bytes` more bytes and `entries` more entries still fit.
    fn fits(&self, bytes: usize, entries: usize) -> bool {
        self.w.size() + bytes <= self.limit && self.w.entries + entries <= MAX_ENTRIES
    }

    /// Reserves room for answering the open questions at once.
    fn reserve(&mut self) {
        let (bits, extras) =
            self.pass
                .to_answer
                .iter()
                .fold((0usize, 0usize), |(b, x), a| match a {
                    PeerQuestion::Split { b: k, .. } | PeerQuestion::Root { b: k, .. } => {
                        (b + (1usize << k), x)
                    }
                    PeerQuestion::Ids { n, .. } => (b + n, x + n),
                    PeerQuestion::Entries { n, mine_n, .. } => (b + n, x + mine_n),
                    PeerQuestion::Deliver { n, .. } => (b, x + n),
                    PeerQuestion::Iblt { m, .. } => (b + 2, x + m),
                    PeerQuestion::SplitRest { .. } => (b, x),
                });
        self.w.bits.reserve(bits.min(1 << 23));
        self.w.extras.reserve((48 * extras).min(self.limit));
    }

    fn answer(&mut self, q: PeerQuestion) {
        match q {
            PeerQuestion::Root {
                peer_count,
                b,
                at,
                base,
                narrowed,
            } => {
                let c = self.view.count(Prefix::ROOT);
                self.w.counts.push(u32::try_from(c).unwrap_or(u32::MAX));
                if base.len > 0 {
                    self.w.counts.push(u32::from(narrowed.len));
                }
                if b == 0 || narrowed != base {
                    let est = self.root_estimate(c, peer_count, b, at, base);
                    let op = policy::choose(self.cfg, c, est, narrowed.len, 0, 2);
                    let opened = self.open(narrowed, op, 0);
                    debug_assert!(opened, "a root op always fits an empty round");
                } else {
                    self.answer_split(base, b, at, 0, true);
                }
            }
            PeerQuestion::Split {
                prefix,
                b,
                at,
                depth,
            } => self.answer_split(prefix, b, at, depth, false),
            PeerQuestion::Ids {
                prefix,
                parent,
                at,
                n,
            } => self.answer_ids(prefix, parent, at, n),
            PeerQuestion::Entries {
                at,
                n,
                mine,
                mine_n,
            } => self.answer_whole_range(at, n, mine, mine_n),
            PeerQuestion::Deliver { at, n } => {
                let mut srcs = core::mem::take(&mut self.sc.srcs);
                srcs.clear();
                srcs.extend_from_slice(&self.pass.deliver[at..at + n]);
                self.ship(&srcs);
                self.sc.srcs = srcs;
            }
            PeerQuestion::Iblt {
                prefix,
                depth,
                at,
                m,
            } => self.answer_iblt(prefix, depth, at, m),
            PeerQuestion::SplitRest {
                prefix,
                b,
                depth,
                at,
                n,
            } => {
                let mut parts = core::mem::take(&mut self.sc.parts);
                parts.clear();
                parts.extend_from_slice(&self.pass.rest_ops[at..at + n]);
                self.open_parts(prefix, b, depth, &parts, false);
                self.sc.parts = parts;
            }
        }
    }

    /// Ships the extras `srcs` (in order) as far as they fit, then the
    /// "more" bit; the rest is queued as a delivery the peer waits for.
    fn ship(&mut self, srcs: &[Src]) {
        let mut sent = 0;
        for &src in srcs {
            if !self.fits(MAX_ENTRY_BYTES, 1) {
                break;
            }
            let e = self.view.entry_of(src);
            encode_entry(e, &mut self.w.extras);
            self.w.entries += 1;
            self.local.push(e.clone());
            sent += 1;
        }
        let more = sent < srcs.len();
        self.w.bits.push(more);
        if more {
            self.cut = true;
            let at = self.pass.deliver.len();
            self.pass.deliver.extend_from_slice(&srcs[sent..]);
            self.pass.to_answer.push_back(PeerQuestion::Deliver {
                at,
                n: srcs.len() - sent,
            });
        }
    }

    /// Answers a split of `prefix` into `2^b` parts (fingerprints at
    /// `words[at..]`), with `depth` splits above `prefix`: one bit a part,
    /// then a new range for each part that differs. `opening`: the split is
    /// the peer's opening split, which sizes the parts' ops.
    fn answer_split(&mut self, prefix: Prefix, b: u8, at: usize, depth: u8, opening: bool) {
        let mode = self.pass.mode;
        let child_depth = depth.saturating_add(1);
        let mut aggs = core::mem::take(&mut self.sc.aggs);
        // Parts about the size of leaves: gather the range once and
        // answer every part from it.
        let cached = count_in(self.view.file, prefix) >> b <= self.cfg.leaf_max
            && self.view.cache(self.pass, prefix);
        if cached {
            slice_aggs(&self.pass.cache, prefix, b, &mut aggs);
        } else {
            self.view.aggs(mode, prefix, b, &mut aggs);
        }
        let fps = &self.pass.words[at..at + aggs.len()];
        self.sc.diff.clear();
        for (i, (a, f)) in aggs.iter().zip(fps).enumerate() {
            let differs = fp32(*a) != *f;
            self.w.bits.push(differs);
            if differs {
                self.sc.diff.push(i);
            }
        }
        let (m, k) = (self.sc.diff.len(), aggs.len());
        let (e, saturated) = policy::estimate(m, k);
        let diff = core::mem::take(&mut self.sc.diff);
        let len = prefix.len + b;
        let stage = if opening {
            2
        } else {
            policy::stage(self.pass.b0, child_depth)
        };
        let part = diff.iter().map(|&i| aggs[i].count).sum::<u64>() / (m.max(1) as u64);
        let iblt = policy::iblt_plan(m, k, part, stage);
        let mut ops = core::mem::take(&mut self.sc.ops);
        ops.clear();
        let view = self.view;
        ops.extend(diff.iter().map(|&i| {
            let c = aggs[i].count;
            if opening && view.crowded(prefix.child(b, i as u64), c, policy::CROWDED_BITS) {
                policy::crowded(c)
            } else if opening {
                policy::choose_opened(self.cfg, c, m, k, len, iblt)
            } else {
                let est = policy::Estimate { e, saturated, iblt };
                policy::choose(self.cfg, c, est, len, child_depth, stage)
            }
        }));
        policy::settle_level(self.cfg, &mut ops, diff.iter().map(|&i| aggs[i].count));
        let mut parts = core::mem::take(&mut self.sc.parts);
        parts.clear();
        parts.extend(diff.iter().zip(&ops).map(|(&i, &op)| (i as u64, op)));
        self.pass.outstanding.reserve(parts.len());
        self.open_parts(prefix, b, child_depth, &parts, cached);
        self.sc.parts = parts;
        self.sc.diff = diff;
        self.sc.aggs = aggs;
        self.sc.ops = ops;
    }

    /// The difference estimate for a root op over the whole pass when the
    /// peer's opening split is not answered: from the split of `base`
    /// into `2^b` parts (`b > 0`) where the peer sent one, plus this
    /// side's entries outside `base` (all new to the peer); else the
    /// difference of the counts.
    fn root_estimate(
        &mut self,
        c: u64,
        peer_count: u64,
        b: u8,
        at: usize,
        base: Prefix,
    ) -> policy::Estimate {
        if b == 0 {
            let e = (c.abs_diff(peer_count) as f64).max(1.0);
            return policy::Estimate::plain(e, false);
        }
        let mut aggs = core::mem::take(&mut self.sc.aggs);
        self.view.aggs(self.pass.mode, base, b, &mut aggs);
        let fps = &self.pass.words[at..at + aggs.len()];
        let m = aggs
            .iter()
            .zip(fps)
            .filter(|(a, f)| fp32(**a) != **f)
            .count();
        let inside: u64 = aggs.iter().map(|a| a.count).sum();
        let (lambda, saturated) = policy::poisson_mean(m, aggs.len());
        let e = aggs.len() as f64 * lambda + c.saturating_sub(inside) as f64;
        self.sc.aggs = aggs;
        policy::Estimate::plain(e.max(1.0), saturated)
    }

    /// Opens the parts `parts` (index, op) of the split of `prefix` into
    /// `2^b` parts, each under `depth` splits, as far as they fit; then the
    /// "more" bit, and (if cut) how many were opened, the rest queued.
    fn open_parts(&mut self, prefix: Prefix, b: u8, depth: u8, parts: &[(u64, Op)], cached: bool) {
        let count_at = self.w.counts.len();
        let mut opened = 0;
        for &(i, op) in parts {
            let child = prefix.child(b, i);
            if !self.open_fits(child, op) {
                break;
            }
            let done = if cached {
                self.open_cached(child, op, depth)
            } else {
                self.open(child, op, depth)
            };
            if !done {
                break;
            }
            opened += 1;
        }
        let more = opened < parts.len();
        self.w.bits.push(more);
        if more {
            self.cut = true;
            self.w.counts.insert(count_at, opened as u32);
            let at = self.pass.rest_ops.len();
            self.pass.rest_ops.extend_from_slice(&parts[opened..]);
            self.pass.to_answer.push_back(PeerQuestion::SplitRest {
                prefix,
                b,
                depth,
                at,
                n: parts.len() - opened,
            });
        }
    }

    /// Whether opening `p` with `op` still fits the round (the entries of
    /// a whole-range op are checked as they are encoded).
    fn open_fits(&self, p: Prefix, op: Op) -> bool {
        match op {
            Op::Split(b) => self.fits(4 << b, 0),
            Op::Ids => {
                let c = self.view.count(p) as usize;
                self.fits(4 * c + 5, 0)
            }
            Op::Iblt(m) => self.fits(4 * CELL_WORDS * usize::from(m) + 5, 0),
            // Checked as the entries are encoded (`open`).
            Op::Entries => true,
        }
    }

    /// Answers a short-id list of `prefix` (a part of `parent`; ids at
    /// `words[at..at + n]`): the want bits (those I lack), then my
    /// entries the list lacks as extras.
    fn answer_ids(&mut self, prefix: Prefix, parent: Prefix, at: usize, n: usize) {
        let mode = self.pass.mode;
        let mine = self.pass.items.len();
        if self.view.cache(self.pass, parent) {
            let Pass {
                cache,
                items,
                cache_hint,
                ..
            } = &mut *self.pass;
            items.extend(
                slice_of(cache, prefix, cache_hint)
                    .iter()
                    .map(|g| g.item_in(mode, prefix)),
            );
        } else {
            self.view.items_in(mode, prefix, &mut self.pass.items);
        }
        let pass = &mut *self.pass;
        let mine_n = pass.items.len() - mine;
        // Both lists sorted by short id (an honest peer sends its
        // list sorted; mine are nearly sorted already): two merges.
        pass.items[mine..].sort_unstable_by_key(|it| it.short);
        let theirs = &pass.words[at..at + n];
        let sorted = theirs.is_sorted();
        if !sorted {
            self.sc.b.clear();
            self.sc.b.extend_from_slice(theirs);
            self.sc.b.sort_unstable();
        }
        let their_sorted: &[u32] = if sorted { theirs } else { &self.sc.b };
        let my_items = &pass.items[mine..mine + mine_n];
        let mut wants = false;
        let mut j = 0;
        let mut bits = core::mem::take(&mut self.sc.wants);
        bits.clear();
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
            bits.push(want);
        }
        write_wants(&mut self.w.bits, &bits);
        self.sc.wants = bits;
        if wants {
            pass.outstanding.push_back(OwnQuestion::Want {
                prefix,
                at: mine,
                n: mine_n,
                lookup: false,
            });
        }
        let mut srcs = core::mem::take(&mut self.sc.srcs);
        srcs.clear();
        let mut i = 0;
        for it in &pass.items[mine..mine + mine_n] {
            while i < their_sorted.len() && their_sorted[i] < it.short {
                i += 1;
            }
            if !(i < their_sorted.len() && their_sorted[i] == it.short) {
                srcs.push(it.src);
            }
        }
        self.ship(&srcs);
        self.sc.srcs = srcs;
    }

    /// Answers the peer's IBLT of `prefix` (`m` cells at `words[at..]`,
    /// under `depth` splits): my table taken out of it and peeled. Peeled,
    /// a set bit, the keys I lack (then wanted), and my entries the peer
    /// lacks as extras; not, a clear bit and the op the range is opened
    /// with instead (as the one part of a split of zero bits).
    fn answer_iblt(&mut self, prefix: Prefix, depth: u8, at: usize, m: usize) {
        let mode = self.pass.mode;
        let mut cells = core::mem::take(&mut self.sc.peer_cells);
        cells.clear();
        cells.extend(
            self.pass.words[at..at + CELL_WORDS * m]
                .chunks_exact(CELL_WORDS)
                .map(|w| Cell::from_words([w[0], w[1], w[2]])),
        );
        let mut c = 0u64;
        self.view.for_each_key(mode, prefix, &mut |k, _| {
            iblt::insert(&mut cells, k, false);
            c += 1;
        });
        let (mut theirs, mut lacked) = (
            core::mem::take(&mut self.sc.theirs_keys),
            core::mem::take(&mut self.sc.mine_keys),
        );
        theirs.clear();
        lacked.clear();
        let peeled = iblt::peel(&mut cells, &mut self.sc.stack, &mut theirs, &mut lacked);
        self.w.bits.push(peeled);
        if peeled {
            self.w.counts.push(theirs.len() as u32);
            for k in &theirs {
                self.w.fps.extend((*k as u32).to_le_bytes());
                self.w.fps.extend(((*k >> 32) as u32).to_le_bytes());
            }
            if !theirs.is_empty() {
                self.pass.outstanding.push_back(OwnQuestion::Want {
                    prefix,
                    at: 0,
                    n: 0,
                    lookup: true,
                });
            }
            lacked.sort_unstable();
            let mut srcs = core::mem::take(&mut self.sc.srcs);
            srcs.clear();
            self.view
                .find_keys(mode, prefix, &lacked, &mut |src| srcs.push(src));
            self.ship(&srcs);
            self.sc.srcs = srcs;
        } else {
            let e = (theirs.len() + lacked.len()) as f64 + iblt::failed_estimate(&cells);
            let child_depth = depth.saturating_add(1);
            let at = (prefix.len, child_depth);
            let op = policy::after_iblt(self.cfg, c, e, at, self.pass.b0, cells.len());
            self.open_parts(prefix, 0, child_depth, &[(0, op)], false);
        }
        self.sc.peer_cells = cells;
        self.sc.theirs_keys = theirs;
        self.sc.mine_keys = lacked;
    }

    /// Answers a whole-range op (the peer's entries at `theirs[at..at +
    /// n]`, mine at `items[mine..mine + mine_n]`): one bit an entry, set
    /// for those new to me, then my entries the peer lacks as extras.
    fn answer_whole_range(&mut self, at: usize, n: usize, mine: usize, mine_n: usize) {
        for &new in &self.pass.news[at..at + n] {
            self.w.bits.push(new);
        }
        let keys = &mut self.sc.keys;
        keys.clear();
        keys.extend_from_slice(&self.pass.theirs[at..at + n]);
        keys.sort_unstable();
        let mut srcs = core::mem::take(&mut self.sc.srcs);
        srcs.clear();
        for it in &self.pass.items[mine..mine + mine_n] {
            let key = self.view.key_of(it.src);
            if keys.binary_search(&key).is_err() {
                srcs.push(it.src);
            }
        }
        self.ship(&srcs);
        self.sc.srcs = srcs;
    }

    /// [`Round::open`] for a part of the range in `pass.cache`.
    fn open_cached(&mut self, p: Prefix, op: Op, depth: u8) -> bool {
        let mode = self.pass.mode;
        let limit = self.limit;
        let Pass {
            cache,
            items,
            outstanding,
            cache_hint,
            ..
        } = &mut *self.pass;
        let part = slice_of(cache, p, cache_hint);
        let w = &mut self.w;
        match op {
            Op::Split(b) => {
                let mut aggs = core::mem::take(&mut self.sc.aggs2);
                slice_aggs(part, p, b, &mut aggs);
                w.fps.reserve(4 * aggs.len());
                for a in &aggs {
                    w.fps.extend(fp32(*a).to_le_bytes());
                }
                self.sc.aggs2 = aggs;
                w.ops.push(OP_SPLIT | b);
                outstanding.push_back(OwnQuestion::Split {
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
                write_sorted(
                    &mut w.shorts,
                    part.len(),
                    items[at..].iter().map(|it| it.short),
                );
                outstanding.push_back(OwnQuestion::Ids {
                    prefix: p,
                    at,
                    n: part.len(),
                });
            }
            Op::Iblt(m) => {
                let cells = &mut self.sc.cells;
                cells.clear();
                cells.resize(usize::from(m), Cell::default());
                for g in part {
                    iblt::insert(cells, iblt_key(p.len, g.top, g.fp), true);
                }
                write_iblt(w, cells);
                outstanding.push_back(OwnQuestion::Iblt {
                    prefix: p,
                    depth,
                    m: usize::from(m),
                });
            }
            Op::Entries => {
                let before = w.op_entries.len();
                for g in part {
                    encode_entry(self.view.entry_of(g.item.src), &mut w.op_entries);
                }
                if w.size() + 5 > limit || w.entries + part.len() > MAX_ENTRIES {
                    w.op_entries.truncate(before);
                    return false;
                }
                let at = items.len();
                items.extend(part.iter().map(|g| g.item_in(mode, p)));
                w.ops.push(OP_ENTRIES);
                w.counts.push(part.len() as u32);
                w.entries += part.len();
                outstanding.push_back(OwnQuestion::Entries {
                    prefix: p,
                    at,
                    n: part.len(),
                });
            }
        }
        true
    }

    /// Opens the range `p` (under `depth` splits) with `op`: writes the
    /// op and its columns and queues the question the peer must answer.
    fn open(&mut self, p: Prefix, op: Op, depth: u8) -> bool {
        let mode = self.pass.mode;
        let limit = self.limit;
        let pass = &mut *self.pass;
        let w = &mut self.w;
        match op {
            Op::Split(b) => {
                let mut aggs = core::mem::take(&mut self.sc.aggs2);
                self.view.aggs(mode, p, b, &mut aggs);
                w.fps.reserve(4 * aggs.len());
                for a in &aggs {
                    w.fps.extend(fp32(*a).to_le_bytes());
                }
                self.sc.aggs2 = aggs;
                w.ops.push(OP_SPLIT | b);
                pass.outstanding.push_back(OwnQuestion::Split {
                    prefix: p,
                    b,
                    depth,
                });
            }
            Op::Ids => {
                let at = pass.items.len();
                self.view.items_in(mode, p, &mut pass.items);
                pass.items[at..].sort_unstable_by_key(|it| it.short);
                let n = pass.items.len() - at;
                w.ops.push(OP_IDS);
                w.counts.push(n as u32);
                write_sorted(&mut w.shorts, n, pass.items[at..].iter().map(|it| it.short));
                pass.outstanding
                    .push_back(OwnQuestion::Ids { prefix: p, at, n });
            }
            Op::Iblt(m) => {
                let cells = &mut self.sc.cells;
                cells.clear();
                cells.resize(usize::from(m), Cell::default());
                self.view
                    .for_each_key(mode, p, &mut |k, _| iblt::insert(cells, k, true));
                write_iblt(w, cells);
                pass.outstanding.push_back(OwnQuestion::Iblt {
                    prefix: p,
                    depth,
                    m: usize::from(m),
                });
            }
            Op::Entries => {
                let at = pass.items.len();
                self.view.items_in(mode, p, &mut pass.items);
                let n = pass.items.len() - at;
                let before = w.op_entries.len();
                for it in &pass.items[at..] {
                    encode_entry(self.view.entry_of(it.src), &mut w.op_entries);
                }
                if w.size() + 5 > limit || w.entries + n > MAX_ENTRIES {
                    w.op_entries.truncate(before);
                    pass.items.truncate(at);
                    return false;
                }
                w.ops.push(OP_ENTRIES);
                w.counts.push(n as u32);
                w.entries += n;
                pass.outstanding
                    .push_back(OwnQuestion::Entries { prefix: p, at, n });
            }
        }
        true
    }
}

/// Writes the op, size and cells of an IBLT.
fn write_iblt(w: &mut Writer, cells: &[Cell]) {
    w.ops.push(OP_IBLT);
    w.counts.push(cells.len() as u32);
    w.fps.reserve(4 * CELL_WORDS * cells.len());
    for c in cells {
        for word in c.words() {
            w.fps.extend(word.to_le_bytes());
        }
    }
}

/// A byte column; the budget keeps every column far below its cap.
fn col<const N: usize>(v: Vec<u8>) -> BoundedBytes<N> {
    BoundedBytes::try_from_vec(v).unwrap_or_default()
}
