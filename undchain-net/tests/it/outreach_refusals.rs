//! An outreach refuses the outcomes it cannot be in a position to receive,
//! with a typed reason, and a refused input changes nothing: neither the
//! outreach nor the peer book (docs/ARCHITECTURE.md "The machine
//! vocabulary", refusals).

use crate::support::*;
use undchain_net::{
    AttemptId, Outreach, OutreachAction, OutreachInputError, PeerBook, RetryPolicy,
};
use undchain_types::LocalTime;

/// Where the outreach stands when the input arrives.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// Built, never started.
    Fresh,
    /// Attempt 1 in flight since 0.
    FirstInFlight,
    /// Attempt 1 timed out at 6 s; backing off before attempt 2.
    Backoff,
    /// One attempt only, which timed out at 6 s: scream tries 0 and 1 in
    /// flight (width 2), addresses 2.. not tried yet.
    Screaming,
    /// Width 1: scream try 0 started at 6 s and timed out at 12 s; try 1 in
    /// flight.
    ScreamTimedOut,
    /// Attempt 1 answered: the target was reached.
    Done,
}

/// What arrives.
#[derive(Debug, Clone, Copy)]
enum Input {
    Start,
    Success(AttemptId),
    Failure(AttemptId),
}

/// An outreach to alpha driven to `stage`, with its peer book.
fn at_stage(stage: Stage) -> (Outreach, PeerBook) {
    let mut book = book();
    let policy = match stage {
        Stage::Screaming => RetryPolicy {
            attempts: 1,
            scream_width: 2,
            ..RetryPolicy::default()
        },
        Stage::ScreamTimedOut => RetryPolicy {
            attempts: 1,
            scream_width: 1,
            ..RetryPolicy::default()
        },
        _ => RetryPolicy::default(),
    };
    let mut o = Outreach::new(pk(1), &book, policy, 3, hello(9)).unwrap();
    if matches!(stage, Stage::Fresh) {
        return (o, book);
    }
    o.start(LocalTime::ZERO).unwrap();
    match stage {
        Stage::Fresh | Stage::FirstInFlight => {}
        Stage::Backoff => {
            assert!(o.handle_timeout(at(6_000_000), &mut book).is_empty());
        }
        Stage::Screaming => {
            let a = o.handle_timeout(at(6_000_000), &mut book);
            assert!(matches!(a[0], OutreachAction::ScreamCastStarted { .. }));
        }
        Stage::ScreamTimedOut => {
            o.handle_timeout(at(6_000_000), &mut book);
            let a = o.handle_timeout(at(12_000_000), &mut book);
            assert!(matches!(
                a[..],
                [OutreachAction::Send {
                    id: AttemptId::Scream(1),
                    ..
                }]
            ));
        }
        Stage::Done => {
            o.handle_success(AttemptId::Retry(1), at(2_000), &mut book)
                .unwrap();
            assert!(o.is_done());
        }
    }
    (o, book)
}

fn apply(
    o: &mut Outreach,
    book: &mut PeerBook,
    input: Input,
) -> Result<Vec<OutreachAction>, OutreachInputError> {
    let now = at(13_000_000);
    match input {
        Input::Start => o.start(now),
        Input::Success(id) => o.handle_success(id, now, book),
        Input::Failure(id) => o.handle_failure(id, now, book),
    }
}

#[test]
fn outreach_refuses_impossible_outcomes_and_changes_nothing() {
    use AttemptId::{Retry, Scream};
    use OutreachInputError as E;
    let table = [
        (
            Stage::Fresh,
            Input::Success(Retry(1)),
            E::UnknownAttempt { id: Retry(1) },
        ),
        (
            Stage::Fresh,
            Input::Failure(Retry(1)),
            E::UnknownAttempt { id: Retry(1) },
        ),
        (Stage::FirstInFlight, Input::Start, E::AlreadyStarted),
        (
            Stage::FirstInFlight,
            Input::Success(Retry(2)),
            E::UnknownAttempt { id: Retry(2) },
        ),
        (
            Stage::FirstInFlight,
            Input::Success(Retry(0)),
            E::UnknownAttempt { id: Retry(0) },
        ),
        (
            Stage::FirstInFlight,
            Input::Failure(Scream(0)),
            E::UnknownAttempt { id: Scream(0) },
        ),
        (
            Stage::Backoff,
            Input::Failure(Retry(1)),
            E::NotInFlight { id: Retry(1) },
        ),
        (
            Stage::Backoff,
            Input::Success(Retry(2)),
            E::UnknownAttempt { id: Retry(2) },
        ),
        (Stage::Screaming, Input::Start, E::AlreadyStarted),
        (
            Stage::Screaming,
            Input::Failure(Retry(1)),
            E::NotInFlight { id: Retry(1) },
        ),
        (
            Stage::Screaming,
            Input::Success(Scream(2)),
            E::UnknownAttempt { id: Scream(2) },
        ),
        (
            Stage::Screaming,
            Input::Failure(Scream(5)),
            E::UnknownAttempt { id: Scream(5) },
        ),
        (
            Stage::ScreamTimedOut,
            Input::Failure(Scream(0)),
            E::NotInFlight { id: Scream(0) },
        ),
        (Stage::Done, Input::Start, E::AlreadyStarted),
        (
            Stage::Done,
            Input::Success(Retry(1)),
            E::Finished { id: Retry(1) },
        ),
        (
            Stage::Done,
            Input::Failure(Retry(1)),
            E::Finished { id: Retry(1) },
        ),
        (
            Stage::Done,
            Input::Success(Scream(0)),
            E::Finished { id: Scream(0) },
        ),
    ];
    for (stage, input, want) in table {
        let (mut o, mut book) = at_stage(stage);
        let (before, book_before) = (format!("{o:?}"), format!("{book:?}"));
        assert_eq!(
            apply(&mut o, &mut book, input),
            Err(want),
            "{stage:?} {input:?}"
        );
        assert_eq!(
            format!("{o:?}"),
            before,
            "{stage:?} {input:?}: outreach changed"
        );
        assert_eq!(
            format!("{book:?}"),
            book_before,
            "{stage:?} {input:?}: peer book changed"
        );
        assert!(!want.to_string().is_empty());
    }
}

#[test]
fn outreach_accepts_the_outcomes_beside_the_refused_ones() {
    use AttemptId::{Retry, Scream};
    // Late successes count: they reach the validator that answered.
    let table = [
        (Stage::Fresh, Input::Start, false),
        (Stage::FirstInFlight, Input::Failure(Retry(1)), false),
        (Stage::Backoff, Input::Success(Retry(1)), true),
        (Stage::Screaming, Input::Success(Retry(1)), true),
        (Stage::Screaming, Input::Failure(Scream(1)), false),
        (Stage::ScreamTimedOut, Input::Success(Scream(0)), true),
    ];
    for (stage, input, reaches) in table {
        let (mut o, mut book) = at_stage(stage);
        let out = apply(&mut o, &mut book, input)
            .unwrap_or_else(|e| panic!("{stage:?} {input:?} refused: {e}"));
        assert_eq!(
            out.iter()
                .any(|a| matches!(a, OutreachAction::Reached { .. })),
            reaches,
            "{stage:?} {input:?}: {out:?}"
        );
        assert_eq!(o.is_done(), reaches, "{stage:?} {input:?}");
    }
}
