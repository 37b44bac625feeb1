//! The session's view of the set: the file plus the entries learned from
//! the peer. Ranges are read from the file's index; entries learned in an
//! earlier pass (`prior`) are merged in, because they can lie in any range
//! of the current pass. Entries learned in the current pass cannot (each
//! lies in a leaf range of this pass's tree, which has no descendants), so
//! they count only in the view's root.

use undchain_types::{Hash32, JobEntry, JobId};

use super::super::range::{Mode, Prefix, count_in, top64, unkeyed_short};
use super::pass::Pass;
use crate::file::{JobFile, Sum256};
use crate::index::Summary;

/// Most entries a key's id bits may leave for [`View::find_keys`] to walk
/// before it walks the whole range once instead.
const FIND_SCAN: u64 = 256;

/// Largest range whose entries are gathered once to answer questions about
/// its parts (instead of one walk of the index per part).
const GATHER_MAX: u64 = 4096;

/// A remote entry learned in an earlier pass: its (id, leaf hash), the key
/// the view sorts by, and its place in the session's list of learned
/// entries.
pub(super) type PriorEntry = ((JobId, Hash32), u32);

/// Where an entry of the session's view lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Src {
    /// In the file's store, at this index.
    File(u32),
    /// Among the entries learned from the peer, at this index.
    Remote(u32),
}

/// An entry of the session's view with its short id in a range.
#[derive(Debug, Clone, Copy)]
pub(super) struct Item {
    pub(super) short: u32,
    pub(super) src: Src,
}

/// A view entry with what range sums and slicing need. `item.short` is
/// the raw unkeyed short (leaf bytes 8..12) in an unkeyed pass, the keyed
/// short id in a keyed pass; [`Gathered::item_in`] gives the range's.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gathered {
    pub(super) top: u64,
    pub(super) fp: u64,
    pub(super) item: Item,
}

impl Gathered {
    /// The entry as an item of the range `p`, with its short id there.
    #[inline]
    pub(super) fn item_in(&self, mode: Mode, p: Prefix) -> Item {
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
pub(super) fn slice_of<'a>(g: &'a [Gathered], p: Prefix, hint: &mut usize) -> &'a [Gathered] {
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
pub(super) fn slice_aggs(g: &[Gathered], p: Prefix, b: u8, out: &mut Vec<Summary>) {
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

/// The IBLT key of an entry (top 64 id bits `top`, 64-bit fingerprint
/// `fp` in the pass's mode) in a range of prefix length `len`: the 32 id
/// bits after the prefix, then the fingerprint's low 32 bits. The id bits
/// find the entry again in the index (`View::find_keys`); two entries of
/// one range share a key with probability about 2^-64.
#[inline]
pub(super) fn iblt_key(len: u8, top: u64, fp: u64) -> u64 {
    let id_bits = if len >= 64 { 0 } else { (top << len) >> 32 };
    (id_bits << 32) | (fp & 0xFFFF_FFFF)
}

/// Every learned entry, sorted by (id, leaf): the `prior` of the next pass.
pub(super) fn prior_entries(remote: &[(JobEntry, Hash32)]) -> Vec<PriorEntry> {
    let mut v: Vec<PriorEntry> = remote
        .iter()
        .enumerate()
        .map(|(i, (e, leaf))| ((e.id, *leaf), i as u32))
        .collect();
    v.sort_unstable();
    v
}

/// The session's view, borrowed for one step: the file, every entry
/// learned from the peer, and those of them learned in earlier passes.
#[derive(Debug, Clone, Copy)]
pub(super) struct View<'a> {
    /// The local job file, unchanged for the whole session.
    pub(super) file: &'a JobFile,
    /// The entries learned from the peer, with their leaf hashes.
    pub(super) remote: &'a [(JobEntry, Hash32)],
    /// The entries of `remote` learned before the current pass, sorted.
    pub(super) prior: &'a [PriorEntry],
}

impl<'a> View<'a> {
    /// The entry `src` names.
    #[inline]
    pub(super) fn entry_of(&self, src: Src) -> &'a JobEntry {
        match src {
            Src::File(i) => &self.file.stored(i).entry,
            Src::Remote(i) => &self.remote[i as usize].0,
        }
    }

    /// The (id, leaf hash) of the entry `src` names.
    #[inline]
    pub(super) fn key_of(&self, src: Src) -> (JobId, Hash32) {
        match src {
            Src::File(i) => {
                let s = self.file.stored(i);
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
    pub(super) fn items_hold(&self, items: &[Item], short: u32, id: &JobId, leaf: &Hash32) -> bool {
        items
            .iter()
            .any(|it| it.short == short && self.key_of(it.src) == (*id, *leaf))
    }

    /// Count and pass root of the whole view, in `mode`, given the file's
    /// root-part sum `file_sum` in that mode.
    /// Unkeyed, the file's collision-resistant trie root with the learned
    /// entries merged in; keyed, the keyed sum.
    pub(super) fn root(&self, mode: Mode, file_sum: &Sum256) -> (u64, Hash32) {
        let count = self.file.len() + self.remote.len() as u64;
        if mode == Mode::Unkeyed {
            let mut extra: Vec<(JobId, Hash32)> =
                self.remote.iter().map(|(e, leaf)| (e.id, *leaf)).collect();
            extra.sort_unstable();
            return (count, self.file.root_with(&extra));
        }
        let mut sum = *file_sum;
        for (_, leaf) in self.remote {
            sum.add(&mode.root_part(leaf));
        }
        (count, mode.keyed_root(count, &sum))
    }

    /// The prior remote entries in `p`.
    fn prior_in(&self, p: Prefix) -> &'a [PriorEntry] {
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
    pub(super) fn items_in(&self, mode: Mode, p: Prefix, out: &mut Vec<Item>) {
        let file = self.file;
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
            out[start..].sort_by_key(|it| self.key_of(it.src));
        }
    }

    /// Calls `f` with the IBLT key ([`iblt_key`]) and the place of every
    /// entry of the view in `p`.
    pub(super) fn for_each_key(&self, mode: Mode, p: Prefix, f: &mut impl FnMut(u64, Src)) {
        self.keys_in(mode, p.len, p, f);
    }

    /// Calls `f` with the place of each entry of the view in `p` whose
    /// IBLT key is one of `keys` (sorted): each is looked up by the id
    /// bits its key carries.
    pub(super) fn find_keys(&self, mode: Mode, p: Prefix, keys: &[u64], f: &mut impl FnMut(Src)) {
        let mut last = None;
        for (j, &k) in keys.iter().enumerate() {
            if last == Some(k) {
                continue;
            }
            last = Some(k);
            let len = u32::from(p.len);
            let q = if len >= 64 {
                p
            } else {
                Prefix {
                    bits: p.bits | (((k >> 32) << 32) >> len),
                    len: (p.len + 32).min(64),
                }
            };
            if self.count(q) > FIND_SCAN {
                // The id bits do not narrow the range (ids sharing a long
                // prefix): one walk of the range for the remaining keys.
                let rest = &keys[j..];
                // A bit a key's low 12 bits (fingerprint bits) first: most
                // entries of the walk are not looked up at all.
                let mut filter = [0u64; 64];
                for &k in rest {
                    filter[(k as usize >> 6) & 63] |= 1 << (k & 63);
                }
                self.keys_in(mode, p.len, p, &mut |key, src| {
                    if filter[(key as usize >> 6) & 63] >> (key & 63) & 1 == 1
                        && rest.binary_search(&key).is_ok()
                    {
                        f(src)
                    }
                });
                return;
            }
            self.keys_in(mode, p.len, q, &mut |key, src| {
                if key == k {
                    f(src)
                }
            });
        }
    }

    /// [`View::for_each_key`] over `q`, a part of a range of prefix
    /// length `len` (the keys are that range's).
    fn keys_in(&self, mode: Mode, len: u8, q: Prefix, f: &mut impl FnMut(u64, Src)) {
        let file = self.file;
        match mode {
            Mode::Unkeyed => file.for_each_prefix(q.bits, q.len, &mut |s| {
                f(iblt_key(len, s.top, s.fp), Src::File(s.idx))
            }),
            Mode::Keyed(_) => file.for_each_prefix(q.bits, q.len, &mut |s| {
                let fp = mode.derive(&file.stored(s.idx).leaf).0;
                f(iblt_key(len, s.top, fp), Src::File(s.idx))
            }),
        }
        for &((id, leaf), i) in self.prior_in(q) {
            let top = top64(&id);
            f(iblt_key(len, top, mode.derive(&leaf).0), Src::Remote(i));
        }
    }

    /// Whether the view holds the entry (`id`, `leaf`) in the file or
    /// among the entries learned in earlier passes.
    pub(super) fn holds(&self, id: &JobId, leaf: &Hash32) -> bool {
        self.file.leaf_of(id).as_ref() == Some(leaf)
            || self
                .prior
                .binary_search_by(|((i, l), _)| (i, l).cmp(&(id, leaf)))
                .is_ok()
    }

    /// Summaries of the `2^b` parts of `p` over the view, into `out`.
    pub(super) fn aggs(&self, mode: Mode, p: Prefix, b: u8, out: &mut Vec<Summary>) {
        out.clear();
        out.resize(1usize << b, Summary::default());
        mode.child_aggs(self.file, p, b, out);
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

    /// Whether the view's entries in `p` (`c` of them, at least two) all
    /// share the next `bits` id bits after `p`: no split of `p` up to that
    /// width separates them (ids sharing a long prefix).
    pub(super) fn crowded(&self, p: Prefix, c: u64, bits: u8) -> bool {
        if c < 2 || u32::from(p.len) + u32::from(bits) > 64 {
            return false;
        }
        let mut q = p;
        for _ in 0..bits {
            let zero = q.child(1, 0);
            q = match self.count(zero) {
                n if n == c => zero,
                0 => q.child(1, 1),
                _ => return false,
            };
        }
        true
    }

    /// How many entries of the view lie in `p`.
    pub(super) fn count(&self, p: Prefix) -> u64 {
        count_in(self.file, p) + self.prior_in(p).len() as u64
    }

    /// Fills `out` with the view's entries of `p`, sorted by (id, leaf).
    fn gather(&self, mode: Mode, p: Prefix, out: &mut Vec<Gathered>) {
        let file = self.file;
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
        out.sort_by_key(|g| self.key_of(g.item.src));
    }

    /// Makes `pass.cache` hold the view's entries of `p` if it has at most
    /// [`GATHER_MAX`] of them; whether it does.
    pub(super) fn cache(&self, pass: &mut Pass, p: Prefix) -> bool {
        if pass.cache_for == Some(p) {
            return true;
        }
        if self.count(p) > GATHER_MAX {
            return false;
        }
        let mut cache = core::mem::take(&mut pass.cache);
        self.gather(pass.mode, p, &mut cache);
        pass.cache = cache;
        pass.cache_for = Some(p);
        pass.cache_hint = 0;
        true
    }
}
