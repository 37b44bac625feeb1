//! Fault: a fingerprint (or short-id) collision hides a difference from the
//! fast unkeyed pass. The final roots then differ, the keyed pass runs, and
//! the outcome is still exactly the symmetric difference with equal roots
//! on both sides. A peer that lies during the keyed pass ends the session
//! with a typed error, within the round and byte bounds.
//!
//! The collisions are real: a birthday search over generated entries on
//! the 32-bit wire value (`testkit::range_fingerprint` of the part's
//! count and sum, `testkit::unkeyed_short_id`), so the unkeyed pass truly
//! cannot see the difference.

use std::collections::HashMap;

use undchain_jobfile::reconcile::{Config, ReconcileError, Role, Session};
use undchain_jobfile::testkit::{entry, range_fingerprint, run_with, unkeyed_short_id};
use undchain_jobfile::{JobFile, Summary};
use undchain_types::msg::{FinalRoot, Reconcile, ReconcileBody, ReconcileRound};
use undchain_types::{BlockNumber, Hash32, JobEntry, JobId};

use crate::helpers::{ExpectErr, apply, empty_round, sorted};

/// The default limits, with the first split of a file always cutting the
/// id space in two halves (so that the crafted collision is in the part
/// the unkeyed pass compares, whatever the tuned split widths are).
fn halves(entries: u64) -> Config {
    Config {
        root_part: u64::MAX,
        ..Config::for_entries(entries)
    }
}

/// Entries `0..n` (the part both files share).
fn shared(n: u64) -> Vec<JobEntry> {
    (0..n).map(|i| entry(i, 5_000 + i)).collect()
}

/// Two entries outside `0..n`, both with ids in the first half of the id
/// space, such that adding either one to `common` gives that half the same
/// count and the same 4-byte wire fingerprint.
fn fingerprint_collision(common: &JobFile) -> (JobEntry, JobEntry) {
    let half = JobId(Hash32({
        let mut k = [0u8; 32];
        k[0] = 0x80;
        k
    }));
    let base: Summary = common.range_summary(&JobId(Hash32::ZERO), Some(&half));
    let key = |e: &JobEntry| {
        range_fingerprint(Summary {
            count: base.count + 1,
            sum: base.sum.wrapping_add(e.leaf_hash().short()),
        })
    };
    birthday(|e| e.id < half, key)
}

/// Two entries outside the shared ones whose unkeyed short ids in the
/// whole-space range (prefix length 0) are equal.
fn short_id_collision() -> (JobEntry, JobEntry) {
    birthday(|_| true, |e| unkeyed_short_id(0, e))
}

/// The first two generated entries (accepted by `keep`) with equal `key`.
fn birthday(
    keep: impl Fn(&JobEntry) -> bool,
    key: impl Fn(&JobEntry) -> u32,
) -> (JobEntry, JobEntry) {
    let mut seen: HashMap<u32, JobEntry> = HashMap::new();
    for n in 1_000_000u64..1_000_000 + (1 << 20) {
        let e = entry(n, 7_000 + n);
        if !keep(&e) {
            continue;
        }
        let k = key(&e);
        if let Some(first) = seen.get(&k) {
            return (first.clone(), e);
        }
        seen.insert(k, e);
    }
    panic!("no collision in 2^20 candidates");
}

/// The two sides' files: `common` plus `a` on one side, `b` on the other.
fn files(common: &[JobEntry], a: &JobEntry, b: &JobEntry) -> (JobFile, JobFile) {
    let fa = JobFile::from_entries(common.iter().cloned().chain([a.clone()])).unwrap();
    let fb = JobFile::from_entries(common.iter().cloned().chain([b.clone()])).unwrap();
    (fa, fb)
}

/// Reconciles `fa` (with `a`) and `fb` (with `b`) and checks that the keyed
/// pass ran and settled exactly that difference.
fn assert_settled(fa: &JobFile, fb: &JobFile, a: &JobEntry, b: &JobEntry) {
    let ex = run_with(fa, fb, 11, halves(fa.len())).expect("the keyed pass settles a collision");
    assert!(
        ex.keyed_pass,
        "the collision must have hidden the difference"
    );
    assert_eq!(ex.initiator.only_local, vec![a.clone()]);
    assert_eq!(ex.initiator.only_remote, vec![b.clone()]);
    assert_eq!(ex.responder.only_local, vec![b.clone()]);
    assert_eq!(ex.responder.only_remote, vec![a.clone()]);
    let a2 = apply(fa, &ex.initiator.only_remote);
    let b2 = apply(fb, &ex.responder.only_remote);
    assert_eq!(a2.root(), b2.root());
    assert_eq!(a2.merkle_root(), b2.merkle_root());
    assert!(ex.messages <= u32::from(Config::for_entries(fa.len()).max_messages));
}

#[test]
fn a_crafted_fingerprint_collision_is_settled_by_the_keyed_pass() {
    // 300 shared entries: the first split cuts the id space in two halves.
    let common = shared(300);
    let (a, b) = fingerprint_collision(&JobFile::from_entries(common.clone()).unwrap());
    assert_ne!(a, b);
    let (fa, fb) = files(&common, &a, &b);
    assert_ne!(fa.root(), fb.root());
    // The half holding the difference has equal counts and equal wire
    // fingerprints on both sides: the unkeyed pass cannot see it.
    let half = JobId(Hash32({
        let mut k = [0u8; 32];
        k[0] = 0x80;
        k
    }));
    let sa = fa.range_summary(&JobId(Hash32::ZERO), Some(&half));
    let sb = fb.range_summary(&JobId(Hash32::ZERO), Some(&half));
    assert_eq!(sa.count, sb.count);
    assert_ne!(sa.sum, sb.sum);
    assert_eq!(range_fingerprint(sa), range_fingerprint(sb));
    assert_settled(&fa, &fb, &a, &b);
}

#[test]
fn a_crafted_short_id_collision_is_settled_by_the_keyed_pass() {
    // 60 shared entries: the whole file is one short-id list.
    let common = shared(60);
    let (a, b) = short_id_collision();
    assert_eq!(unkeyed_short_id(0, &a), unkeyed_short_id(0, &b));
    let (fa, fb) = files(&common, &a, &b);
    assert_settled(&fa, &fb, &a, &b);
}

#[test]
fn a_collision_beside_other_differences_is_settled_with_the_learned_entries_in_view() {
    // Besides the colliding pair (first half of the id space), each side
    // holds entries the other lacks in the second half: the unkeyed pass
    // settles those, so the keyed pass runs over views that include what
    // each side has just learned.
    let common = shared(300);
    let (a, b) = fingerprint_collision(&JobFile::from_entries(common.clone()).unwrap());
    let second_half = |from: u64| -> Vec<JobEntry> {
        (from..)
            .map(|n| entry(n, 9_000 + n))
            .filter(|e| e.id.0.0[0] >= 0x80)
            .take(25)
            .collect()
    };
    let only_a = second_half(5_000_000);
    let only_b = second_half(6_000_000);
    let fa = JobFile::from_entries(
        common
            .iter()
            .cloned()
            .chain([a.clone()])
            .chain(only_a.iter().cloned()),
    )
    .unwrap();
    let fb = JobFile::from_entries(
        common
            .iter()
            .cloned()
            .chain([b.clone()])
            .chain(only_b.iter().cloned()),
    )
    .unwrap();
    let ex =
        run_with(&fa, &fb, 12, halves(fa.len())).expect("the keyed pass settles the collision");
    assert!(ex.keyed_pass);
    let want_a = sorted(only_a.iter().cloned().chain([a.clone()]).collect());
    let want_b = sorted(only_b.iter().cloned().chain([b.clone()]).collect());
    assert_eq!(ex.initiator.only_local, want_a);
    assert_eq!(ex.initiator.only_remote, want_b);
    assert_eq!(ex.responder.only_local, want_b);
    assert_eq!(ex.responder.only_remote, want_a);
    let a2 = apply(&fa, &ex.initiator.only_remote);
    let b2 = apply(&fb, &ex.responder.only_remote);
    assert_eq!(a2.root(), b2.root());
}

/// How the lying initiator bends its messages once the keyed pass starts.
#[derive(Debug, Clone, Copy)]
enum Lie {
    /// Claims another final root.
    WrongRoot,
    /// Withholds the entries it owes.
    DropEntries,
    /// Claims the keyed roots are equal.
    FalseMatch,
    /// Sends bytes that are not a message.
    Garbage,
    /// Replays its first message of the session.
    Replay,
}

/// Runs the collision case with an honest responder and an initiator that
/// is honest in the unkeyed pass and tells `lie` in the keyed one; returns
/// the responder's error and its traffic.
fn lying_keyed_pass(lie: Lie) -> (ReconcileError, undchain_jobfile::Traffic, Config) {
    let common = shared(300);
    let (a, b) = fingerprint_collision(&JobFile::from_entries(common.clone()).unwrap());
    let (fa, fb) = files(&common, &a, &b);
    let cfg = halves(fa.len());
    let block = BlockNumber(3);
    let mut ini = Session::new(Role::Initiator, 5, block, cfg.clone(), Hash32([1; 32]));
    let mut res = Session::new(Role::Responder, 5, block, cfg.clone(), Hash32([2; 32]));
    let first = ini.start(&fa).unwrap();
    let replay = undchain_types::wire::encode(&first);
    let mut msg = res.handle(&fb, &first).unwrap();
    let mut keyed = false;
    for _ in 0..200 {
        let Some(to_ini) = msg else {
            panic!("the responder stopped without an error");
        };
        if matches!(to_ini.body, ReconcileBody::Start { keyed: Some(_), .. }) {
            keyed = true;
        }
        // The liar's own checks may catch what its lies did (its view and
        // the responder's final root differ): it then aborts.
        let reply = match ini.handle(&fa, &to_ini) {
            Ok(r) => r.expect("the initiator answers until the keyed pass ends"),
            Err(e) => {
                assert!(
                    keyed,
                    "the initiator is honest before the keyed pass: {e:?}"
                );
                ini.abort_message(e.abort_reason())
            }
        };
        // Either side may open the keyed pass (the receiver of the first
        // final root); the initiator lies in every message after that.
        let opens_keyed = matches!(reply.body, ReconcileBody::Start { keyed: Some(_), .. });
        let lies_now = keyed && !opens_keyed;
        keyed |= opens_keyed;
        let bytes = if lies_now {
            match lie {
                // A confirmation (`Match`) of the responder's final root
                // becomes a final root of its own, another one.
                Lie::WrongRoot if reply.body == ReconcileBody::Match => {
                    undchain_types::wire::encode(&Reconcile {
                        body: ReconcileBody::Round(ReconcileRound {
                            done: Some(FinalRoot {
                                count: fa.len(),
                                root: Hash32([0xEE; 32]),
                            }),
                            ..empty_round()
                        }),
                        ..reply
                    })
                }
                Lie::WrongRoot => undchain_types::wire::encode(&with_done(reply, |f| {
                    f.root = Hash32([0xEE; 32]);
                })),
                Lie::DropEntries => {
                    let mut r = reply;
                    if let ReconcileBody::Round(round) = &mut r.body {
                        round.entries = Default::default();
                    }
                    undchain_types::wire::encode(&r)
                }
                Lie::FalseMatch => undchain_types::wire::encode(&Reconcile {
                    body: ReconcileBody::Match,
                    ..reply
                }),
                Lie::Garbage => vec![1, 0xFF, 0x00, 0x13],
                Lie::Replay => replay.clone(),
            }
        } else {
            undchain_types::wire::encode(&reply)
        };
        match res.handle_bytes(&fb, &bytes) {
            Ok(Some(next)) => {
                msg = Some(undchain_types::wire::decode(&next, usize::MAX).unwrap());
            }
            Ok(None) => panic!("the responder accepted a lie ({lie:?})"),
            Err(e) => {
                assert!(keyed, "the error must come from the keyed pass");
                // Garbage and replays are refused without a change; every
                // other lie fails the session.
                let unchanged = matches!(e, ReconcileError::Wire(_) | ReconcileError::Step { .. });
                assert_eq!(res.is_failed(), !unchanged, "{e:?}");
                return (e, res.traffic(), cfg);
            }
        }
    }
    panic!("no end after 200 messages");
}

/// `m` with `f` applied to its final root, if it has one.
fn with_done(mut m: Reconcile, f: impl FnOnce(&mut FinalRoot)) -> Reconcile {
    if let ReconcileBody::Round(r) = &mut m.body
        && let Some(done) = &mut r.done
    {
        f(done);
    }
    m
}

#[test]
fn a_peer_lying_in_the_keyed_pass_ends_with_a_typed_error_within_bounds() {
    let cases: [(Lie, ExpectErr); 5] = [
        (Lie::WrongRoot, |e| {
            matches!(
                e,
                ReconcileError::Unresolved | ReconcileError::Unexpected(_)
            )
        }),
        (Lie::DropEntries, |e| {
            matches!(
                e,
                ReconcileError::Unresolved
                    | ReconcileError::Malformed(_)
                    | ReconcileError::PeerAborted(_)
            )
        }),
        (Lie::FalseMatch, |e| {
            matches!(
                e,
                ReconcileError::Unresolved | ReconcileError::Unexpected(_)
            )
        }),
        (Lie::Garbage, |e| matches!(e, ReconcileError::Wire(_))),
        (Lie::Replay, |e| matches!(e, ReconcileError::Step { .. })),
    ];
    for (lie, expected) in cases {
        let (err, t, cfg) = lying_keyed_pass(lie);
        assert!(expected(&err), "{lie:?}: {err:?}");
        assert!(
            t.sent + t.received <= u32::from(cfg.max_messages),
            "{lie:?}"
        );
        assert!(t.bytes_sent + t.bytes_received <= cfg.max_bytes, "{lie:?}");
    }
}
