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

/// The same entry as [`entry`] at the benchmark's time base (a realistic
/// block time in microseconds, so the time encodes in 8 bytes).
pub fn bench_entry(n: u64) -> JobEntry {
    entry(n, 1_780_000_000_000_000 + n)
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
    /// The initiator's outcome.
    pub initiator: Outcome,
    /// The responder's outcome.
    pub responder: Outcome,
    /// Messages sent by both sides.
    pub messages: u32,
    /// Encoded bytes of every message, both directions.
    pub bytes: u64,
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
    let cfg_a = Config::for_entries(a.len().max(b.len()));
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
    Ok(Exchange {
        initiator: ini.outcome(),
        responder: res.outcome(),
        messages,
        bytes: bytes_total,
    })
}
