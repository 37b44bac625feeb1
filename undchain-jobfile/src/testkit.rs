//! Helpers shared by tests, examples, benches and the fuzz target: entry
//! makers and an in-process driver that runs two sessions against each
//! other and measures the exchange.

use undchain_types::{
    BlockNumber, BlockTime, Hash32, HashContext, JobEntry, JobId, JobState, TokenAmount,
    UtilityKind, hash,
};

use crate::file::JobFile;
use crate::reconcile::{Config, Outcome, ReconcileError, Role, Session};

/// A job entry with id derived from `n` (ids are blake3 outputs, like real
/// job ids) and initiation time `t`; empty pools.
pub fn entry(n: u64, t: u64) -> JobEntry {
    JobEntry {
        id: JobId(hash(HashContext::JobId, &n.to_le_bytes())),
        initiated_at: BlockTime(t),
        kind: UtilityKind::Storage,
        client_pool: Default::default(),
        partner_pool: Default::default(),
        fee: TokenAmount(10),
        state: JobState::Requested,
    }
}

/// The same entry as [`entry`] with a realistic initiation time: a block
/// time in microseconds (8 bytes on the wire) spread pseudo-randomly over a
/// 4-hour payout period, so that neither the id order nor the time order
/// groups the differing entries together.
pub fn bench_entry(n: u64) -> JobEntry {
    let spread = hash(HashContext::JobEntry, &n.to_le_bytes()).short() % 14_400_000_000;
    entry(n, 1_780_000_000_000_000 + spread)
}

/// `e` with the first `bits` bits of its id (at most 64) replaced by a
/// fixed pattern: ids that share a long prefix, as a client grinding its
/// requests could make them. The other bits stay as they were, so distinct
/// ids stay distinct.
pub fn with_prefix(mut e: JobEntry, bits: u8) -> JobEntry {
    let bits = u32::from(bits.min(64));
    if bits == 0 {
        return e;
    }
    let pattern = 0xA5C3_5A3C_96E1_0F87u64;
    let mask = u64::MAX << (64 - bits);
    let top = u64::from_be_bytes(e.id.0.0[..8].try_into().unwrap_or([0; 8]));
    let top = (pattern & mask) | (top & !mask);
    e.id.0.0[..8].copy_from_slice(&top.to_be_bytes());
    e
}

/// The split a benchmark or test reconciles: `common` entries on both
/// sides, `only_a` only on the first (the initiator's) file, `only_b` only
/// on the second, every id sharing its first `prefix_bits` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Entries on both sides.
    pub common: u64,
    /// Entries only on the first file.
    pub only_a: u64,
    /// Entries only on the second file.
    pub only_b: u64,
    /// Leading id bits every entry shares (0: random ids).
    pub prefix_bits: u8,
}

impl Split {
    /// Two files of `n` entries each that differ by `d` entries, the larger
    /// half (`d - d / 2`) only on the first.
    pub fn of(n: u64, d: u64) -> Split {
        let only_a = d - d / 2;
        Split {
            common: n.saturating_sub(only_a),
            only_a,
            only_b: d / 2,
            prefix_bits: 0,
        }
    }

    /// The `i`-th entry of the split: `bench_entry(i)` under the shared
    /// prefix. Entries `0..common` are on both sides, the next `only_a`
    /// only on the first, the next `only_b` only on the second.
    pub fn entry(&self, i: u64) -> JobEntry {
        with_prefix(bench_entry(i), self.prefix_bits)
    }

    /// The entries only on the first file, in id order.
    pub fn only_a_entries(&self) -> Vec<JobEntry> {
        let mut v: Vec<JobEntry> = (self.common..self.common + self.only_a)
            .map(|i| self.entry(i))
            .collect();
        v.sort();
        v
    }

    /// The entries only on the second file, in id order.
    pub fn only_b_entries(&self) -> Vec<JobEntry> {
        let from = self.common + self.only_a;
        let mut v: Vec<JobEntry> = (from..from + self.only_b).map(|i| self.entry(i)).collect();
        v.sort();
        v
    }

    /// The two files.
    pub fn files(&self) -> (JobFile, JobFile) {
        let mut a = JobFile::new();
        let mut b = JobFile::new();
        for i in 0..self.common {
            let e = self.entry(i);
            let _ = a.insert(e.clone());
            let _ = b.insert(e);
        }
        for i in self.common..self.common + self.only_a {
            let _ = a.insert(self.entry(i));
        }
        let from = self.common + self.only_a;
        for i in from..from + self.only_b {
            let _ = b.insert(self.entry(i));
        }
        (a, b)
    }
}

/// Two files of `n` entries each (the first holds one more for an odd
/// `d`) that differ by exactly `d` entries: [`Split::of`].
pub fn pair(n: u64, d: u64) -> (JobFile, JobFile) {
    Split::of(n, d).files()
}

/// The result of driving two sessions to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// What the initiator (the first file's side) lacked and had alone.
    pub initiator: Outcome,
    /// What the responder (the second file's side) lacked and had alone.
    pub responder: Outcome,
    /// Messages sent by both sides.
    pub messages: u32,
    /// Encoded bytes of every message, both directions.
    pub bytes: u64,
    /// Whether a keyed pass ran (after the unkeyed one ended with
    /// different roots).
    pub keyed_pass: bool,
    /// The largest encoded message of the session.
    pub largest: usize,
    /// Whether both sides ended finished (each saw the roots agree).
    pub both_finished: bool,
}

impl Exchange {
    /// Round trips: messages divided by two, rounded up.
    pub fn rounds(&self) -> u32 {
        self.messages.div_ceil(2)
    }
}

/// Runs a full session between `a` (initiator) and `b` (responder) in one
/// process, through encoded bytes.
pub fn run(a: &JobFile, b: &JobFile, session: u64) -> Result<Exchange, ReconcileError> {
    run_with(a, b, session, Config::for_entries(a.len().max(b.len())))
}

/// [`run`] with both sides on `cfg`.
pub fn run_with(
    a: &JobFile,
    b: &JobFile,
    session: u64,
    cfg: Config,
) -> Result<Exchange, ReconcileError> {
    let cfg_a = cfg;
    let cfg_b = cfg_a.clone();
    let block = BlockNumber(1);
    let mut ini = Session::new(Role::Initiator, session, block, cfg_a, Hash32([0xA1; 32]));
    let mut res = Session::new(Role::Responder, session, block, cfg_b, Hash32([0xB2; 32]));
    let first = ini.start(a)?;
    let first = undchain_types::wire::encode(&first);
    let mut bytes_total = first.len() as u64;
    let mut largest = first.len();
    let mut messages = 1u32;
    let mut next = Some(first);
    let mut to_responder = true;
    while let Some(m) = next {
        next = if to_responder {
            res.handle_bytes(b, &m)?
        } else {
            ini.handle_bytes(a, &m)?
        };
        if let Some(r) = &next {
            bytes_total += r.len() as u64;
            largest = largest.max(r.len());
            messages += 1;
        }
        to_responder = !to_responder;
    }
    let keyed_pass = ini.keyed_pass_ran() || res.keyed_pass_ran();
    let both_finished = ini.is_finished() && res.is_finished();
    Ok(Exchange {
        keyed_pass,
        largest,
        both_finished,
        initiator: ini.into_outcome(),
        responder: res.into_outcome(),
        messages,
        bytes: bytes_total,
    })
}

/// The 4-byte wire fingerprint of a range with summary `s` (what a split
/// sends per part in an unkeyed pass), for tests that craft collisions.
pub fn range_fingerprint(s: crate::Summary) -> u32 {
    crate::reconcile::wire_fingerprint(s)
}

/// The unkeyed short id of `e` in a range whose prefix is `prefix_len`
/// bits long (what a short-id list carries in an unkeyed pass), for tests
/// that craft collisions.
pub fn unkeyed_short_id(prefix_len: u8, e: &JobEntry) -> u32 {
    let leaf = crate::file::leaf_hash(e);
    crate::reconcile::unkeyed_short_id(prefix_len, &e.id, &leaf)
}

/// The body of the `reconcile_responder` fuzz target: an honest initiator
/// with a small file faces a responder driven by `data`. Whatever the
/// bytes, every outcome is a reply, the end, or a typed error (never a
/// panic, never past the session's limits), and whenever the initiator
/// ends finished its outcome is the true difference with the responder's
/// file. Two modes, by the first byte:
/// - even: the responder's messages are `data` itself (2-byte
///   little-endian length, then that many bytes, repeated; the header is
///   patched half of the time so that the body is what gets exercised);
/// - odd: `data[1..26]` picks the responder's file (a bit per entry of the
///   initiator's 200, plus `data[26] % 64` entries of its own) and an
///   honest responder answers, its messages corrupted by the rest of
///   `data` (pairs of a byte offset and a byte to xor in, one per message).
pub fn fuzz_reconcile_responder(data: &[u8]) {
    let file = JobFile::from_entries((0..200).map(|n| entry(n, n))).unwrap_or_default();
    let cfg = Config::for_entries(file.len());
    let mut ini = Session::new(
        Role::Initiator,
        9,
        BlockNumber(4),
        cfg.clone(),
        Hash32([3; 32]),
    );
    let Ok(first) = ini.start(&file) else {
        return;
    };
    let theirs = match data.first() {
        Some(m) if m & 1 == 1 => fuzz_honest(&mut ini, &file, first, &data[1..], cfg),
        _ => {
            fuzz_raw(
                &mut ini,
                &file,
                first.step,
                data.get(1..).unwrap_or_default(),
            );
            None
        }
    };
    let (max_bytes, max_msgs) = ini.limits();
    let t = ini.traffic();
    assert!(t.sent + t.received <= max_msgs + 1);
    assert!(t.bytes_sent + t.bytes_received <= max_bytes + (16 << 20));
    if let Some(peer) = theirs
        && ini.is_finished()
    {
        check_fuzz_outcome(&file, &ini.outcome(), &peer);
    }
}

/// The responder's side of the checked fuzz mode: its file, its outcome,
/// whether it finished, and whether any message was corrupted.
struct FuzzPeer {
    file: Vec<JobEntry>,
    outcome: Outcome,
    finished: bool,
    corrupted: bool,
}

/// Checks a finished initiator's outcome (`out`, over `file`) against the
/// responder `peer`: no id twice; nothing the responder had is missing;
/// and, unless a message was corrupted in flight (which can slip an entry
/// in, as a forged message could: integrity is the transport's), exactly
/// the true difference, with the same final set on both sides.
fn check_fuzz_outcome(file: &JobFile, out: &Outcome, peer: &FuzzPeer) {
    let mut ids: Vec<JobId> = out.only_remote.iter().map(|e| e.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        out.only_remote.len(),
        "an id twice in the outcome"
    );
    let mut missing: Vec<&JobEntry> = peer
        .file
        .iter()
        .filter(|e| file.get(&e.id) != Some(e) && !out.only_remote.contains(e))
        .collect();
    missing.dedup();
    assert!(missing.is_empty(), "finished without {missing:?}");
    if peer.corrupted {
        return;
    }
    let mut truth: Vec<JobEntry> = peer
        .file
        .iter()
        .filter(|e| file.get(&e.id) != Some(e))
        .cloned()
        .collect();
    truth.sort();
    assert_eq!(out.only_remote, truth, "finished with a wrong outcome");
    let mut mine: Vec<JobEntry> = file
        .entries()
        .into_iter()
        .filter(|e| !peer.file.contains(e))
        .cloned()
        .collect();
    mine.sort();
    assert_eq!(out.only_local, mine, "finished with a wrong outcome");
    if peer.finished {
        assert_eq!(peer.outcome.only_remote, mine);
        assert_eq!(peer.outcome.only_local, truth);
    }
}

/// The raw mode of [`fuzz_reconcile_responder`].
fn fuzz_raw(ini: &mut Session, file: &JobFile, first_step: u16, data: &[u8]) {
    let mut step = first_step.wrapping_add(1);
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let take = len.min(rest.len() - 2);
        let mut chunk = rest[2..2 + take].to_vec();
        rest = &rest[2 + take..];
        if chunk.first() == Some(&undchain_types::WIRE_VERSION)
            && chunk.len() > 1
            && chunk[1] & 1 == 1
        {
            if let Ok(mut m) =
                undchain_types::wire::decode::<undchain_types::msg::Reconcile>(&chunk, usize::MAX)
            {
                m.session = 9;
                m.block = BlockNumber(4);
                m.step = step;
                chunk = undchain_types::wire::encode(&m);
            }
        }
        match ini.handle_bytes(file, &chunk) {
            Ok(Some(_)) => step = step.wrapping_add(2),
            Ok(None) | Err(_) => break,
        }
    }
}

/// The honest-but-corrupted mode of [`fuzz_reconcile_responder`].
fn fuzz_honest(
    ini: &mut Session,
    file: &JobFile,
    first: undchain_types::msg::Reconcile,
    data: &[u8],
    cfg: Config,
) -> Option<FuzzPeer> {
    let pick = |n: u64| {
        data.get((n / 8) as usize)
            .is_some_and(|b| b >> (n % 8) & 1 == 1)
    };
    let own = u64::from(data.get(25).copied().unwrap_or(0) % 64);
    let theirs: Vec<JobEntry> = (0..200)
        .filter(|&n| pick(n))
        .map(|n| entry(n, n))
        .chain((1_000..1_000 + own).map(|n| entry(n, n)))
        .collect();
    let peer = JobFile::from_entries(theirs.iter().cloned()).ok()?;
    let mut res = Session::new(Role::Responder, 9, BlockNumber(4), cfg, Hash32([4; 32]));
    let mut flips = data.get(26..).unwrap_or_default().chunks_exact(2);
    let mut corrupted = false;
    let mut to_ini = res.handle(&peer, &first).ok()?;
    while let Some(m) = to_ini {
        let mut bytes = undchain_types::wire::encode(&m);
        if let Some(f) = flips.next() {
            let at = usize::from(f[0]) % bytes.len().max(1);
            if let Some(b) = bytes.get_mut(at) {
                *b ^= f[1];
                corrupted |= f[1] != 0;
            }
        }
        let reply = match ini.handle_bytes(file, &bytes) {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => break,
        };
        to_ini = match res.handle_bytes(&peer, &reply) {
            Ok(Some(r)) => Some(undchain_types::wire::decode(&r, usize::MAX).ok()?),
            Ok(None) | Err(_) => None,
        };
    }
    Some(FuzzPeer {
        file: theirs,
        finished: res.is_finished(),
        outcome: res.into_outcome(),
        corrupted,
    })
}
