//! An adversarial responder (random bytes, lying fingerprints, replayed
//! and oversize messages, a peer that never finishes) cannot make the
//! initiator exceed its round and byte bounds or panic: every session ends
//! with a typed error or a verified outcome.

use proptest::prelude::*;
use undchain_jobfile::JobFile;
use undchain_jobfile::reconcile::{Config, ReconcileError, Role, Session};
use undchain_jobfile::testkit::{entry, fuzz_reconcile_responder};
use undchain_types::msg::{FinalRoot, Reconcile, ReconcileBody, ReconcileRound};
use undchain_types::{BlockNumber, BoundedBytes, Hash32, JobEntry, TokenAmount, wire};

use crate::helpers::{ExpectErr, empty_round, file};

/// An initiator of session 1 at block 2 over `f`, and its first message.
fn initiator(f: &JobFile) -> (Session, Reconcile) {
    let cfg = Config::for_entries(f.len());
    let mut s = Session::new(Role::Initiator, 1, BlockNumber(2), cfg, Hash32([5; 32]));
    let m = s.start(f).unwrap();
    (s, m)
}

/// `r` as the message of session 1 at block 2 with step `step`.
fn round(step: u16, r: ReconcileRound) -> Reconcile {
    Reconcile {
        session: 1,
        block: BlockNumber(2),
        file_of: None,
        step,
        body: ReconcileBody::Round(r),
    }
}

/// A liar that answers every split by claiming every part differs with
/// random fingerprints, recursing as deep as it can.
#[test]
fn lying_fingerprints_end_within_the_bounds() {
    let f = file(3_000);
    let (mut ini, _) = initiator(&f);
    let mut step = 1u16;
    let mut x = 0x1234_5678_9abc_def0u64;
    // Answer the root with a split of 2^16 random fingerprints, then keep
    // answering whatever is outstanding with "everything differs".
    let mut r = empty_round();
    r.answered = 1;
    r.ops = BoundedBytes::try_from_vec(vec![16]).unwrap();
    let mut fps = Vec::new();
    for _ in 0..(1 << 16) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        fps.extend((x as u32).to_le_bytes());
    }
    r.fingerprints = BoundedBytes::try_from_vec(fps).unwrap();
    let mut msg = round(step, r);
    let mut err = None;
    for _ in 0..200 {
        match ini.handle(&f, &msg) {
            Ok(Some(_reply)) => {
                step += 2;
                // Claim the reply's questions are answered by nothing and
                // that we are done with a bogus root.
                let mut r = empty_round();
                r.done = Some(FinalRoot {
                    count: 1,
                    root: Hash32([7; 32]),
                });
                msg = round(step, r);
            }
            Ok(None) => break,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let t = ini.traffic();
    assert!(t.sent + t.received <= 65);
    assert!(err.is_some(), "a liar never gets a clean finish");
}

/// Replayed, out-of-order, other sessions' and undecodable messages are
/// refused with a typed error before they touch the session: it goes on
/// unchanged and still takes the right message.
#[test]
fn replayed_and_out_of_order_messages_are_refused_without_a_change() {
    let f = file(500);
    let g = file(450);
    let cfg = Config::for_entries(500);
    let (mut ini, start) = initiator(&f);
    let mut res = Session::new(Role::Responder, 1, BlockNumber(2), cfg, Hash32([6; 32]));
    let reply = res.handle(&g, &start).unwrap().unwrap();
    // A replay of the start at the responder is refused.
    let before = res.traffic();
    assert!(matches!(
        res.handle(&g, &start),
        Err(ReconcileError::Step { .. })
    ));
    assert!(!res.is_failed());
    assert_eq!(res.traffic(), before);
    // Wrong session, wrong step, garbage: refused, nothing changed.
    let before = ini.traffic();
    let mut other = reply.clone();
    other.session = 99;
    assert!(matches!(
        ini.handle(&f, &other),
        Err(ReconcileError::WrongSession { .. })
    ));
    let mut late = reply.clone();
    late.step += 2;
    assert!(matches!(
        ini.handle(&f, &late),
        Err(ReconcileError::Step { .. })
    ));
    assert!(matches!(
        ini.handle_bytes(&f, &[1, 2, 3]),
        Err(ReconcileError::Wire(_))
    ));
    assert!(!ini.is_failed());
    assert_eq!(ini.traffic(), before);
    // The session goes on: the real reply is taken.
    assert!(ini.handle(&f, &reply).is_ok());
    assert_eq!(ini.traffic().received, before.received + 1);
}

/// What a bad input to a fresh initiator is.
enum Input {
    Bytes(Vec<u8>),
    Message(Box<Reconcile>),
}

#[test]
fn oversize_and_garbage_messages_are_typed_errors() {
    let f = file(100);
    // Columns that do not match the questions.
    let mut mismatch = empty_round();
    mismatch.answered = 1;
    mismatch.ops = BoundedBytes::try_from_vec(vec![0x40]).unwrap();
    mismatch.counts = vec![10].try_into().unwrap();
    mismatch.short_ids = BoundedBytes::try_from_vec(vec![0; 8]).unwrap();
    // Answers to questions never asked.
    let mut unasked = empty_round();
    unasked.answered = 5;
    let cases: [(&str, Input, ExpectErr); 4] = [
        ("oversize", Input::Bytes(vec![1u8; 17 << 20]), |e| {
            matches!(e, ReconcileError::TooManyBytes { .. })
        }),
        ("garbage", Input::Bytes(vec![1, 2, 3]), |e| {
            matches!(e, ReconcileError::Wire(_))
        }),
        (
            "mismatched columns",
            Input::Message(Box::new(round(1, mismatch))),
            |e| matches!(e, ReconcileError::Malformed(_)),
        ),
        (
            "unasked answers",
            Input::Message(Box::new(round(1, unasked))),
            |e| matches!(e, ReconcileError::Malformed(_)),
        ),
    ];
    for (what, input, expected) in cases {
        let (mut ini, _) = initiator(&f);
        let got = match &input {
            Input::Bytes(b) => ini.handle_bytes(&f, b).map(|_| ()),
            Input::Message(m) => ini.handle(&f, m).map(|_| ()),
        };
        assert!(matches!(&got, Err(e) if expected(e)), "{what}: {got:?}");
    }
}

/// What a refusal leaves behind (`Session`, "Refusals"): a second start
/// changes nothing; any other error fails the session, which then refuses
/// everything with `Finished` and counts nothing more.
#[test]
fn refusals_leave_what_the_session_doc_says() {
    let f = file(100);
    let (mut ini, _) = initiator(&f);
    let before = ini.traffic();
    assert!(matches!(ini.start(&f), Err(ReconcileError::Unexpected(_))));
    assert!(!ini.is_failed());
    assert_eq!(ini.traffic(), before);
    let mut bad = empty_round();
    bad.answered = 5;
    assert!(matches!(
        ini.handle(&f, &round(1, bad)),
        Err(ReconcileError::Malformed(_))
    ));
    assert!(ini.is_failed());
    let failed = ini.traffic();
    assert_eq!(failed.received, before.received + 1);
    assert!(matches!(
        ini.handle(&f, &round(2, empty_round())),
        Err(ReconcileError::Finished)
    ));
    assert_eq!(ini.traffic(), failed);
}

#[test]
fn a_peer_that_never_finishes_hits_the_message_bound() {
    let f = file(100);
    let (mut ini, _) = initiator(&f);
    let mut step = 1u16;
    // Answer the root with "ids: none", then keep sending empty rounds.
    let mut r = empty_round();
    r.answered = 1;
    r.ops = BoundedBytes::try_from_vec(vec![0x40]).unwrap();
    r.counts = vec![0].try_into().unwrap();
    let mut msg = round(step, r);
    let mut result = Ok(None);
    for _ in 0..1000 {
        result = ini.handle(&f, &msg);
        match &result {
            Ok(Some(_)) => {
                step += 2;
                msg = round(step, empty_round());
            }
            _ => break,
        }
    }
    // Either the message bound or the initiator's own end of the pass
    // (it shipped everything and said done) stops the peer.
    assert!(
        matches!(
            result,
            Err(ReconcileError::TooManyMessages { .. })
                | Err(ReconcileError::Unexpected(_))
                | Err(ReconcileError::Malformed(_))
        ),
        "{result:?}"
    );
    let t = ini.traffic();
    assert!(t.sent + t.received <= 65);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_responder_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        fuzz_reconcile_responder(&data);
    }

    #[test]
    fn random_rounds_never_panic(answered in 0u32..4, bits in proptest::collection::vec(any::<u8>(), 0..64),
                                ops in proptest::collection::vec(any::<u8>(), 0..8),
                                fps in proptest::collection::vec(any::<u8>(), 0..512),
                                counts in proptest::collection::vec(0u32..50, 0..4),
                                shorts in proptest::collection::vec(any::<u8>(), 0..256)) {
        let f = file(300);
        let (mut ini, _) = initiator(&f);
        let mut r = empty_round();
        r.answered = answered;
        r.bits = BoundedBytes::try_from_vec(bits).unwrap();
        r.ops = BoundedBytes::try_from_vec(ops).unwrap();
        r.fingerprints = BoundedBytes::try_from_vec(fps).unwrap();
        r.counts = counts.try_into().unwrap();
        r.short_ids = BoundedBytes::try_from_vec(shorts).unwrap();
        let bytes = wire::encode(&round(1, r));
        let _ = ini.handle_bytes(&f, &bytes);
        let t = ini.traffic();
        prop_assert!(t.sent + t.received <= 65);
    }
}

/// The fuzz target's seed corpus runs as an ordinary test.
#[test]
fn fuzz_seeds_run() {
    let n = undchain_types::testkit::for_each_seed("reconcile_responder", fuzz_reconcile_responder);
    assert!(n >= 3, "expected the reconcile_responder seeds, found {n}");
}

/// The canonical encodings of `entries`, back to back (an entry column).
fn entry_column(entries: &[JobEntry]) -> BoundedBytes<{ undchain_types::msg::MAX_COLUMN }> {
    let mut col = Vec::new();
    for e in entries {
        col.extend(wire::encode_bare(e));
    }
    BoundedBytes::try_from_vec(col).unwrap()
}

/// A responder that answers the root (a file of at most 96 entries: no
/// opening split) by shipping one job id twice, as two versions or as one
/// repeated, never gets an outcome that holds the id twice.
#[test]
fn a_responder_sending_one_id_twice_is_refused_with_a_typed_error() {
    let f = file(50);
    let x = entry(10_000, 1);
    let mut x2 = x.clone();
    x2.fee = TokenAmount(999);
    for pair in [[x.clone(), x2], [x.clone(), x.clone()]] {
        let (mut ini, _) = initiator(&f);
        let mut r = empty_round();
        r.answered = 1;
        r.ops = BoundedBytes::try_from_vec(vec![0x80]).unwrap();
        // The responder's count, then the op's count.
        r.counts = vec![2, 2].try_into().unwrap();
        r.entries = entry_column(&pair);
        let got = ini.handle(&f, &round(1, r));
        assert!(
            matches!(&got, Err(ReconcileError::Duplicate { id }) if *id == x.id),
            "{got:?}"
        );
        assert!(ini.is_failed());
    }
}

/// A responder that says `done` while a question it opened is still
/// unanswered is refused; and an honest side that sends its final root is
/// not finished until the peer confirms the roots agree.
#[test]
fn a_premature_done_is_refused_and_no_side_finishes_before_the_roots_agree() {
    let f = file(50);
    let (mut ini, _) = initiator(&f);
    let mut r = empty_round();
    r.answered = 1;
    // Root answer: the responder's count, then a split of the whole space
    // into 2 parts (a question for the initiator), and a final root.
    r.counts = vec![50].try_into().unwrap();
    r.ops = BoundedBytes::try_from_vec(vec![1]).unwrap();
    r.fingerprints = BoundedBytes::try_from_vec(vec![0; 8]).unwrap();
    r.done = Some(FinalRoot {
        count: 50,
        root: f.root(),
    });
    let got = ini.handle(&f, &round(1, r));
    assert!(matches!(got, Err(ReconcileError::Malformed(_))), "{got:?}");
    assert!(!ini.is_finished());

    // Honest peers: whoever sends the final root waits for the `Match`.
    let g = file(45);
    let cfg = Config::for_entries(50);
    let (mut ini, start) = initiator(&f);
    let mut res = Session::new(Role::Responder, 1, BlockNumber(2), cfg, Hash32([6; 32]));
    let mut to_responder = true;
    let mut msg = Some(start);
    let mut saw_done = false;
    while let Some(m) = msg {
        let (me, file) = if to_responder {
            (&mut res, &g)
        } else {
            (&mut ini, &f)
        };
        msg = me.handle(file, &m).unwrap();
        if let Some(ReconcileBody::Round(r)) = msg.as_ref().map(|m| &m.body)
            && r.done.is_some()
        {
            saw_done = true;
            assert!(!me.is_finished(), "finished before the peer compared roots");
        }
        to_responder = !to_responder;
    }
    assert!(saw_done);
    assert!(ini.is_finished() && res.is_finished());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The fuzz body's checked mode: an honest responder over a file the
    /// bytes pick, its messages corrupted by the bytes; a finished
    /// initiator holds exactly the true difference.
    #[test]
    fn corrupted_honest_responders_never_finish_with_a_wrong_outcome(
        pick in proptest::collection::vec(any::<u8>(), 26..27),
        flips in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut data = vec![1u8];
        data.extend(pick);
        data.extend(flips);
        fuzz_reconcile_responder(&data);
    }
}

/// A start whose shared prefix is out of range (no bits, more than 48,
/// bits longer than the length, or on a keyed pass) is refused with a
/// typed error, before anything is answered.
#[test]
fn a_malformed_shared_prefix_in_a_start_is_refused() {
    use undchain_types::msg::SharedPrefix;
    let f = file(100);
    let bad = [
        (Some(SharedPrefix { len: 0, bits: 0 }), None),
        (Some(SharedPrefix { len: 49, bits: 1 }), None),
        (Some(SharedPrefix { len: 8, bits: 256 }), None),
        (
            Some(SharedPrefix { len: 8, bits: 3 }),
            Some(Hash32([1; 32])),
        ),
    ];
    for (shared, keyed) in bad {
        let cfg = Config::for_entries(f.len());
        let mut resp = Session::new(Role::Responder, 1, BlockNumber(2), cfg, Hash32([6; 32]));
        let start = Reconcile {
            session: 1,
            block: BlockNumber(2),
            file_of: None,
            step: 0,
            body: ReconcileBody::Start {
                count: 100,
                root: Hash32([9; 32]),
                keyed,
                shared,
                parts: BoundedBytes::default(),
            },
        };
        let got = resp.handle(&f, &start);
        assert!(
            matches!(
                got,
                Err(ReconcileError::Malformed(_)) | Err(ReconcileError::Unexpected(_))
            ),
            "{shared:?} keyed={}: {got:?}",
            keyed.is_some()
        );
        assert!(resp.is_failed() || got.is_err());
    }
}

/// The initiator's ids share 40 bits; a responder that answers with a
/// longer shared part than announced is refused (it would move the pass
/// to ranges the initiator never offered).
#[test]
fn a_responder_claiming_a_longer_shared_prefix_is_refused() {
    use undchain_jobfile::testkit::with_prefix;
    let f = JobFile::from_entries((0..200).map(|i| with_prefix(entry(i, 1), 40))).unwrap();
    let (mut ini, start) = initiator(&f);
    let ReconcileBody::Start { shared, .. } = &start.body else {
        panic!("not a start: {start:?}");
    };
    assert_eq!(
        shared.map(|s| s.len),
        Some(40),
        "the start announces the shared bits"
    );
    let mut r = empty_round();
    r.answered = 1;
    r.counts = vec![200, 41].try_into().unwrap();
    let got = ini.handle(&f, &round(1, r));
    assert!(matches!(got, Err(ReconcileError::Malformed(_))), "{got:?}");
    assert!(ini.is_failed());
}
