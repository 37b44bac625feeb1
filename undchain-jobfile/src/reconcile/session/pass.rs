//! The state of one pass (unkeyed, then perhaps keyed): the two question
//! queues that mirror the peer's, and the arenas their questions index.
//!
//! Each side keeps `outstanding` (what this side asked and the peer must
//! answer, in order) and `to_answer` (what the peer asked). A round
//! answers a prefix of the receiver's `outstanding` queue; answers to
//! splits open new ranges. The lists a pass keeps (short ids and
//! fingerprints received, the entries of the ranges it opened) live in a
//! few arenas and name entries by where they live, so no entry that does
//! not travel is cloned.

use std::collections::VecDeque;

use undchain_types::{Hash32, JobId};

use super::super::iblt::Cell;
use super::super::policy::Op;
use super::super::range::{Mode, Prefix};
use super::view::{Gathered, Item, Src};
use crate::file::Sum256;
use crate::index::Summary;

/// Op code of a split: the low six bits give the split width `b`, and
/// `2^b` part fingerprints follow in the fingerprint column.
pub(super) const OP_SPLIT: u8 = 0x00;
/// Op code of a short-id list: a count, then that many short ids.
pub(super) const OP_IDS: u8 = 0x40;
/// Op code of a whole-range transfer: a count, then that many entries.
pub(super) const OP_ENTRIES: u8 = 0x80;
/// Op code of an IBLT: a cell count, then that many cells (three words
/// each) in the fingerprint column (`reconcile/iblt.rs`).
pub(super) const OP_IBLT: u8 = 0xC0;
/// Widest split a peer may ask for (`2^16` parts).
pub(super) const MAX_SPLIT_BITS: u8 = 16;

/// A question this side asked; the peer's next rounds answer it, in
/// order. `at`/`n` name a slice of one of the pass's arenas.
#[derive(Debug)]
pub(super) enum OwnQuestion {
    /// The count and root of this side's first message, with its opening
    /// split into `2^b` parts (`b = 0`: none) of `base`, the prefix its
    /// ids share.
    Root { b: u8, base: Prefix },
    /// A split of `prefix` into `2^b` parts; `depth` counts the splits
    /// above `prefix` (0 for the whole space).
    Split { prefix: Prefix, b: u8, depth: u8 },
    /// A short-id list of `prefix`: my items are `items[at..at + n]`.
    Ids { prefix: Prefix, at: usize, n: usize },
    /// The whole of `prefix`, shipped: my items are `items[at..at + n]`.
    Entries { prefix: Prefix, at: usize, n: usize },
    /// More entries of `prefix` that the peer owes me: those I asked for
    /// after its short-id list or IBLT, or the rest of an answer it cut;
    /// my items there are `items[at..at + n]`, or, `lookup`, none are
    /// kept and a received entry is looked up in the view.
    Want {
        prefix: Prefix,
        at: usize,
        n: usize,
        lookup: bool,
    },
    /// The ops of the parts of a split of `prefix` into `2^b` parts that
    /// the peer's cut answer still owes: the parts are `rest[at..at + n]`.
    SplitRest {
        prefix: Prefix,
        b: u8,
        depth: u8,
        at: usize,
        n: usize,
    },
    /// An IBLT of `m` cells of `prefix` (under `depth` splits).
    Iblt { prefix: Prefix, depth: u8, m: usize },
}

/// A question the peer asked; this side's next rounds answer it, in order.
#[derive(Debug)]
pub(super) enum PeerQuestion {
    /// The peer's first message, with the count of its view and its
    /// opening split into `2^b` parts (fingerprints `words[at..]`).
    /// `base` is the prefix the peer's ids share, `narrowed` the part of it
    /// this side's ids share too (the root range of the pass).
    Root {
        peer_count: u64,
        b: u8,
        at: usize,
        base: Prefix,
        narrowed: Prefix,
    },
    /// A split of `prefix` into `2^b` parts whose fingerprints are
    /// `words[at..at + 2^b]`; `depth` counts the splits above `prefix`.
    Split {
        prefix: Prefix,
        b: u8,
        at: usize,
        depth: u8,
    },
    /// A short-id list of `prefix` (a part of `parent`), the ids being
    /// `words[at..at + n]`.
    Ids {
        prefix: Prefix,
        parent: Prefix,
        at: usize,
        n: usize,
    },
    /// A whole range: the peer's entries are `theirs[at..at + n]` (with
    /// `news` saying which were new to me), mine there are
    /// `items[mine..mine + mine_n]`.
    Entries {
        at: usize,
        n: usize,
        mine: usize,
        mine_n: usize,
    },
    /// Entries I owe the peer: those it wanted from my answer to its
    /// short-id list, or the rest of an answer I cut: `deliver[at..at + n]`.
    Deliver { at: usize, n: usize },
    /// The ops I still owe for the parts of a split I cut:
    /// `rest_ops[at..at + n]` (part index and op).
    SplitRest {
        prefix: Prefix,
        b: u8,
        depth: u8,
        at: usize,
        n: usize,
    },
    /// The peer's IBLT of `prefix` (under `depth` splits): `m` cells,
    /// three words each at `words[at..]`.
    Iblt {
        prefix: Prefix,
        depth: u8,
        at: usize,
        m: usize,
    },
}

/// One pass's queues and arenas.
#[derive(Debug)]
pub(super) struct Pass {
    pub(super) mode: Mode,
    /// Bits of the pass's opening split (0: none).
    pub(super) b0: u8,
    /// The file's count and root-part sum in this mode (computed once).
    pub(super) file_sum: Sum256,
    pub(super) outstanding: VecDeque<OwnQuestion>,
    pub(super) to_answer: VecDeque<PeerQuestion>,
    /// My entries of the ranges I opened with ids or entries, of the id
    /// lists I answered and of the peer's whole-range ops.
    pub(super) items: Vec<Item>,
    /// Fingerprints of the peer's splits and short ids of its id lists.
    pub(super) words: Vec<u32>,
    /// (id, leaf) of the entries of the peer's whole-range ops, and whether
    /// each was new to me.
    pub(super) theirs: Vec<(JobId, Hash32)>,
    pub(super) news: Vec<bool>,
    /// Entries the peer wanted, and the rest of answers cut short.
    pub(super) deliver: Vec<Src>,
    /// Parts of a split whose ops the peer still owes me.
    pub(super) rest: Vec<u64>,
    /// Parts (and their ops) of a split whose ops I still owe the peer.
    pub(super) rest_ops: Vec<(u64, Op)>,
    /// The view's entries of one range (`cache_for`), gathered once.
    pub(super) cache: Vec<Gathered>,
    pub(super) cache_for: Option<Prefix>,
    /// Where the last part sliced from `cache` ended.
    pub(super) cache_hint: usize,
}

impl Pass {
    /// A pass in `mode` with empty queues; `file_sum` is the file's
    /// root-part sum in that mode.
    pub(super) fn new(mode: Mode, file_sum: Sum256) -> Self {
        Pass {
            mode,
            b0: 0,
            file_sum,
            outstanding: VecDeque::new(),
            to_answer: VecDeque::new(),
            items: Vec::new(),
            words: Vec::new(),
            theirs: Vec::new(),
            news: Vec::new(),
            deliver: Vec::new(),
            rest: Vec::new(),
            rest_ops: Vec::new(),
            cache: Vec::new(),
            cache_for: None,
            cache_hint: 0,
        }
    }

    /// Whether neither side has a question open.
    pub(super) fn is_idle(&self) -> bool {
        self.outstanding.is_empty() && self.to_answer.is_empty()
    }
}

/// Reusable buffers of the hot paths, kept across rounds so that building
/// a round allocates only what it sends.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    pub(super) aggs: Vec<Summary>,
    pub(super) aggs2: Vec<Summary>,
    pub(super) b: Vec<u32>,
    pub(super) diff: Vec<usize>,
    pub(super) ops: Vec<Op>,
    pub(super) keys: Vec<(JobId, Hash32)>,
    pub(super) srcs: Vec<Src>,
    pub(super) parts: Vec<(u64, Op)>,
    pub(super) cells: Vec<Cell>,
    pub(super) peer_cells: Vec<Cell>,
    pub(super) theirs_keys: Vec<u64>,
    pub(super) mine_keys: Vec<u64>,
    pub(super) stack: Vec<usize>,
    pub(super) wants: Vec<bool>,
}
