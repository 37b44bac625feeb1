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

/// Two files of `n` entries each that differ by `d` entries, half only on
/// each side (`d` rounded down to even).
pub fn pair(n: u64, d: u64) -> (JobFile, JobFile) {
    let half = d / 2;
    let common = n.saturating_sub(half);
    let mut a = JobFile::new();
    let mut b = JobFile::new();
    for i in 0..common {
        let e = bench_entry(i);
        let _ = a.insert(e.clone());
        let _ = b.insert(e);
    }
    for i in 0..half {
        let _ = a.insert(bench_entry(common + i));
        let _ = b.insert(bench_entry(common + half + i));
    }
    (a, b)
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
    let mut bytes_total = undchain_types::wire::encode(&first).len() as u64;
    let mut messages = 1u32;
    let mut next = Some(undchain_types::wire::encode(&first));
    let mut to_responder = true;
    while let Some(m) = next {
        next = if to_responder {
            res.handle_bytes(b, &m)?
        } else {
            ini.handle_bytes(a, &m)?
        };
        if let Some(r) = &next {
            bytes_total += r.len() as u64;
            messages += 1;
        }
        to_responder = !to_responder;
    }
    let keyed_pass = ini.keyed_pass_ran() || res.keyed_pass_ran();
    Ok(Exchange {
        keyed_pass,
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
/// with a small file faces a "responder" whose messages come from `data`
/// (2-byte little-endian length, then that many bytes, repeated). Every
/// outcome must be a reply, the end, or a typed error; never a panic, and
/// never more than the configured rounds or bytes.
pub fn fuzz_reconcile_responder(data: &[u8]) {
    let file = JobFile::from_entries((0..200).map(|n| entry(n, n))).unwrap_or_default();
    let cfg = Config::for_entries(file.len());
    let (max_messages, max_bytes) = (cfg.max_messages, cfg.max_bytes);
    let mut ini = Session::new(Role::Initiator, 9, BlockNumber(4), cfg, Hash32([3; 32]));
    let Ok(first) = ini.start(&file) else {
        return;
    };
    let mut step = first.step.wrapping_add(1);
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let take = len.min(rest.len() - 2);
        let mut chunk = rest[2..2 + take].to_vec();
        rest = &rest[2 + take..];
        // Half of the time, patch the header so the body is what gets
        // exercised (the fuzzer rarely guesses session and step).
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
        match ini.handle_bytes(&file, &chunk) {
            Ok(Some(_)) => step = step.wrapping_add(2),
            Ok(None) | Err(_) => break,
        }
        let t = ini.traffic();
        assert!(t.sent + t.received <= u32::from(max_messages) + 1);
        assert!(t.bytes_sent + t.bytes_received <= max_bytes + (16 << 20));
    }
}
