//! Building a round: answering the peer's open questions in queue order
//! while the round stays within its byte budget, opening a range (split,
//! short ids or whole) for every part that differs, and at the end
//! encoding the entries that travel, once, straight from where they live.

use undchain_types::msg::{AbortReason, FinalRoot, Reconcile, ReconcileBody, ReconcileRound};
use undchain_types::{BoundedBytes, BoundedVec, JobEntry};

use super::super::Config;
use super::super::bits::BitWriter;
use super::super::policy::{self, Op};
use super::super::range::{Prefix, count_in, fp32};
use super::pass::{OP_ENTRIES, OP_IDS, OP_SPLIT, OwnQuestion, Pass, PeerQuestion, Scratch};
use super::view::{Src, View, slice_aggs, slice_of};
use super::{Session, State};
use crate::codec::encode_entry;
use crate::file::JobFile;

/// Entries a round may carry (the message type's cap, with some slack).
const ROUND_ENTRIES: usize = 30_000;

/// The columns of the round being written.
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
    /// Encoded size of the round so far, roughly (entries at 48 bytes).
    fn estimate(&self) -> usize {
        self.bits.len_bytes()
            + self.ops.len()
            + self.fps.len()
            + self.shorts.len()
            + 3 * self.counts.len()
            + 48 * (self.op_entries.len() + self.extras.len())
    }

    /// Entries the round carries so far.
    fn entries(&self) -> usize {
        self.op_entries.len() + self.extras.len()
    }
}

/// The context of building one round: the view it reads, the pass whose
/// queues it moves, the round being written and the reusable buffers.
struct Round<'s> {
    view: View<'s>,
    cfg: &'s Config,
    pass: &'s mut Pass,
    w: Writer,
    sc: &'s mut Scratch,
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
            self.state = State::Finished;
        }
        self.reply_hint = w.estimate() + 64;
        let entries = encode_entries(view, &w, &mut self.local);
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

/// The entry column of the round `w`: whole-range entries, then extras;
/// extras marked for it are also recorded in `local`.
fn encode_entries(view: View<'_>, w: &Writer, local: &mut Vec<JobEntry>) -> Vec<u8> {
    let mut entries = Vec::with_capacity(48 * w.entries());
    for &src in &w.op_entries {
        encode_entry(view.entry_of(src), &mut entries);
    }
    local.reserve(w.extras.len());
    for (k, &(src, is_local)) in w.extras.iter().enumerate() {
        // Touch an entry a few places ahead so that its cache misses
        // overlap with this one's encoding.
        if let Some(&(ahead, _)) = w.extras.get(k + 6) {
            core::hint::black_box(view.entry_of(ahead).initiated_at);
        }
        let e = view.entry_of(src);
        encode_entry(e, &mut entries);
        if is_local {
            local.push(e.clone());
        }
    }
    entries
}

impl Round<'_> {
    /// Answers the peer's questions in order until the round is full (at
    /// least one is always answered); returns how many were.
    fn answer_queue(&mut self) -> u32 {
        let budget = self.cfg.max_message_bytes.saturating_sub(1024) * 7 / 8;
        let mut answered = 0u32;
        self.reserve();
        while !self.pass.to_answer.is_empty() {
            if answered > 0
                && (self.w.estimate() >= budget || self.w.entries() >= ROUND_ENTRIES / 2)
            {
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

    /// Reserves room for answering every open question at once.
    fn reserve(&mut self) {
        let ids: usize = self
            .pass
            .to_answer
            .iter()
            .map(|a| match a {
                PeerQuestion::Ids { n, .. } => *n,
                _ => 0,
            })
            .sum();
        self.pass.items.reserve(ids + ids / 4);
        let (bits, extras) =
            self.pass
                .to_answer
                .iter()
                .fold((0usize, 0usize), |(b, x), a| match a {
                    PeerQuestion::Split { b: k, .. } => (b + (1usize << k), x),
                    PeerQuestion::Ids { n, .. } => (b + n, x + n),
                    PeerQuestion::Entries { n, mine_n, .. } => (b + n, x + mine_n),
                    PeerQuestion::Deliver { n, .. } => (b, x + n),
                    PeerQuestion::Root { .. } => (b, x),
                });
        self.w.bits.reserve(bits);
        self.w.extras.reserve(extras);
    }

    fn answer(&mut self, q: PeerQuestion) {
        match q {
            PeerQuestion::Root { peer_count } => {
                let c = self.view.count(Prefix::ROOT);
                let e = (c.abs_diff(peer_count) as f64).max(1.0);
                let op = policy::choose(self.cfg, c, e, false, 0, 0);
                self.open(Prefix::ROOT, op, 0);
            }
            PeerQuestion::Split {
                prefix,
                b,
                at,
                depth,
            } => self.answer_split(prefix, b, at, depth),
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
                self.w
                    .extras
                    .extend(self.pass.deliver[at..at + n].iter().map(|&src| (src, true)));
            }
        }
    }

    /// Answers a split of `prefix` into `2^b` parts (fingerprints at
    /// `words[at..]`): one bit a part, and a new range for each part that
    /// differs.
    fn answer_split(&mut self, prefix: Prefix, b: u8, at: usize, depth: u8) {
        let mode = self.pass.mode;
        let depth = depth.saturating_add(1);
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
        let (e, sat) = policy::estimate(self.sc.diff.len(), aggs.len());
        let diff = core::mem::take(&mut self.sc.diff);
        let more: u64 = diff.iter().map(|&i| aggs[i].count).sum();
        let more = usize::try_from(more).unwrap_or(0).min(1 << 20);
        self.pass.items.reserve(more);
        self.pass.outstanding.reserve(diff.len());
        self.w.shorts.reserve(4 * more);
        self.w.ops.reserve(diff.len());
        self.w.counts.reserve(diff.len());
        let mut ops = core::mem::take(&mut self.sc.ops);
        ops.clear();
        ops.extend(diff.iter().map(|&i| {
            let len = prefix.len + b;
            policy::choose(self.cfg, aggs[i].count, e, sat, len, depth)
        }));
        policy::settle_level(self.cfg, &mut ops, diff.iter().map(|&i| aggs[i].count));
        for (&i, &op) in diff.iter().zip(&ops) {
            let child = prefix.child(b, i as u64);
            if cached {
                self.open_cached(child, op, depth);
            } else {
                self.open(child, op, depth);
            }
        }
        self.sc.diff = diff;
        self.sc.aggs = aggs;
        self.sc.ops = ops;
    }

    /// Answers a short-id list of `prefix` (a part of `parent`; ids at
    /// `words[at..at + n]`): one bit an id, set for those I lack, and my
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
            self.w.bits.push(want);
        }
        if wants {
            pass.outstanding.push_back(OwnQuestion::Want {
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
                self.w.extras.push((it.src, true));
            }
        }
    }

    /// Answers a whole-range op (the peer's entries at `theirs[at..at +
    /// n]`, mine at `items[mine..mine + mine_n]`): one bit an entry, set
    /// for those new to me, and my entries the peer lacks as extras.
    fn answer_whole_range(&mut self, at: usize, n: usize, mine: usize, mine_n: usize) {
        for &new in &self.pass.news[at..at + n] {
            self.w.bits.push(new);
        }
        let keys = &mut self.sc.keys;
        keys.clear();
        keys.extend_from_slice(&self.pass.theirs[at..at + n]);
        keys.sort_unstable();
        for it in &self.pass.items[mine..mine + mine_n] {
            let key = self.view.key_of(it.src);
            if keys.binary_search(&key).is_err() {
                self.w.extras.push((it.src, true));
            }
        }
    }

    /// [`Round::open`] for a part of the range in `pass.cache`.
    fn open_cached(&mut self, p: Prefix, op: Op, depth: u8) {
        let mode = self.pass.mode;
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
                for it in &items[at..] {
                    w.shorts.extend(it.short.to_le_bytes());
                }
                outstanding.push_back(OwnQuestion::Ids {
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
                outstanding.push_back(OwnQuestion::Entries {
                    prefix: p,
                    at,
                    n: part.len(),
                });
            }
        }
    }

    /// Opens the range `p` (under `depth` splits) with `op`: writes the
    /// op and its columns and queues the question the peer must answer.
    fn open(&mut self, p: Prefix, op: Op, depth: u8) {
        let mode = self.pass.mode;
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
                for it in &pass.items[at..] {
                    w.shorts.extend(it.short.to_le_bytes());
                }
                pass.outstanding
                    .push_back(OwnQuestion::Ids { prefix: p, at, n });
            }
            Op::Entries => {
                let at = pass.items.len();
                self.view.items_in(mode, p, &mut pass.items);
                let n = pass.items.len() - at;
                w.ops.push(OP_ENTRIES);
                w.counts.push(n as u32);
                w.op_entries
                    .extend(pass.items[at..].iter().map(|it| it.src));
                pass.outstanding
                    .push_back(OwnQuestion::Entries { prefix: p, at, n });
            }
        }
    }
}

/// A byte column; the budget keeps every column far below its cap.
fn col<const N: usize>(v: Vec<u8>) -> BoundedBytes<N> {
    BoundedBytes::try_from_vec(v).unwrap_or_default()
}
