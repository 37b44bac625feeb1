//! Resync (docs/PROTOCOL.md "Time consensus", *Resync*): a step applies
//! only with a quorum's signed approvals, once, and never moves the time
//! out of the current payout period.

use std::collections::BTreeSet;

use proptest::prelude::*;
use undchain_timesync::{
    Resync, ResyncError, ResyncEvent, ResyncMsg, ResyncOutput, clamp_step, position_of,
};
use undchain_types::msg::TimeResyncProposal;
use undchain_types::{BlockTime, ChainId, ChainParams, PayoutPeriod, Signature, quorum};

use crate::support::{active, key, params};

/// Agreed time `offset` into payout period `p`.
fn at(params: &ChainParams, p: u64, offset: u64) -> BlockTime {
    let (start, _) = undchain_timesync::period_bounds(params, PayoutPeriod(p));
    start.plus(offset)
}

fn applied(out: &[ResyncOutput]) -> Vec<i64> {
    out.iter()
        .filter_map(|o| match o {
            ResyncOutput::Apply(a) => Some(a.step_us),
            _ => None,
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Vote {
    /// A member's valid approval.
    Member(u8),
    /// A key outside the active set.
    Outsider(u8),
    /// A member's approval with a broken signature.
    Forged(u8),
    /// A member's approval of a different proposal.
    Other(u8),
}

fn vote() -> impl Strategy<Value = Vote> {
    prop_oneof![
        4 => (0u8..10).prop_map(Vote::Member),
        1 => (100u8..110).prop_map(Vote::Outsider),
        1 => (0u8..10).prop_map(Vote::Forged),
        1 => (0u8..10).prop_map(Vote::Other),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn resync_never_applies_without_a_quorum_of_distinct_member_approvals(
        n in 1u8..=10,
        votes in prop::collection::vec(vote(), 0..24),
        step in prop_oneof![-1_000_000i64..=-1, 1i64..=1_000_000],
    ) {
        let params = params();
        let now = at(&params, 3, 1_000_000_000);
        let proposal = TimeResyncProposal {
            chain_id: params.chain_id,
            id: 0,
            proposer: key(0).public(),
            period: PayoutPeriod(3),
            step_us: step,
        };
        let mut other = proposal.clone();
        other.id = 1;
        // validator n-1 watches; it has no reference, so it never approves
        // itself and only counts what arrives
        let me = n - 1;
        let mut m = Resync::new(&params, key(me), active(n), 1_000);
        let out = m.handle_proposal(now, &key(0).public(), proposal.clone(), None).unwrap();
        prop_assert!(applied(&out).is_empty());
        let q = quorum(usize::from(n));
        let mut counted = BTreeSet::new();
        let mut applies = 0;
        for v in votes {
            let (approval, counts) = match v {
                Vote::Member(i) => {
                    let i = i % n;
                    (proposal.approve(&key(i)), Some(i))
                }
                Vote::Outsider(i) => (proposal.approve(&key(i)), None),
                Vote::Forged(i) => {
                    let mut a = proposal.approve(&key(i % n));
                    a.signature = Signature([7; 64]);
                    (a, None)
                }
                Vote::Other(i) => (other.approve(&key(i % n)), None),
            };
            let res = m.handle_approval(now, approval);
            if let Some(i) = counts {
                counted.insert(i);
            }
            let out = res.unwrap_or_default();
            applies += applied(&out).len();
            // applied exactly when the quorum is first reached
            prop_assert_eq!(applies, usize::from(counted.len() >= q));
        }
    }

    #[test]
    fn resync_never_leaves_the_payout_period(
        period in 0u64..1_000,
        offset in prop_oneof![0u64..2_000_000, 14_398_000_000u64..14_400_000_000, 0u64..14_400_000_000],
        step in prop_oneof![-1_000_000i64..=-1, 1i64..=1_000_000],
        n in 1u8..=10,
    ) {
        let params = params();
        let now = at(&params, period, offset);
        let before = position_of(&params, now).period;
        prop_assert_eq!(before, PayoutPeriod(period));
        // every member approves (reference == step)
        let mut machines: Vec<Resync> =
            (0..n).map(|i| Resync::new(&params, key(i), active(n), 0)).collect();
        let out = machines[0].propose(now, step).unwrap();
        let proposal = out.iter().find_map(|o| match o {
            ResyncOutput::Broadcast { msg } => match &**msg {
                ResyncMsg::Proposal(p) => Some(p.clone()),
                ResyncMsg::Approval(_) => None,
            },
            _ => None,
        }).unwrap();
        let mut approvals = Vec::new();
        let mut steps = applied(&out);
        for m in machines.iter_mut().skip(1) {
            let o = m.handle_proposal(now, &key(0).public(), proposal.clone(), Some(step)).unwrap();
            for x in o {
                if let ResyncOutput::Broadcast { msg } = x
                    && let ResyncMsg::Approval(a) = *msg
                {
                    approvals.push(a);
                }
            }
        }
        for a in approvals {
            steps.extend(applied(&machines[0].handle_approval(now, a).unwrap()));
        }
        prop_assert_eq!(steps.len(), 1, "applied once");
        let s = steps[0];
        prop_assert!(s.unsigned_abs() <= step.unsigned_abs() && (s == 0 || s.signum() == step.signum()));
        let after = BlockTime((i128::from(now.0) + i128::from(s)) as u64);
        prop_assert_eq!(position_of(&params, after).period, before);
        prop_assert_eq!(s, clamp_step(&params, now, before, step));
    }
}

#[test]
fn proposals_are_checked_before_anything_counts() {
    let params = params();
    let now = at(&params, 2, 5_000_000);
    let mut m = Resync::new(&params, key(1), active(4), 100);
    let good = TimeResyncProposal {
        chain_id: params.chain_id,
        id: 9,
        proposer: key(0).public(),
        period: PayoutPeriod(2),
        step_us: 500_000,
    };
    let with = |f: &dyn Fn(&mut TimeResyncProposal)| {
        let mut p = good.clone();
        f(&mut p);
        p
    };
    let k0 = key(0).public();
    // (sender, proposal, why refused)
    let table = [
        (
            k0,
            with(&|p| p.step_us = 1_000_001),
            ResyncError::StepTooLarge {
                step_us: 1_000_001,
                max_us: 1_000_000,
            },
        ),
        (
            k0,
            with(&|p| p.period = PayoutPeriod(3)),
            ResyncError::WrongPeriod {
                proposed: PayoutPeriod(3),
                current: PayoutPeriod(2),
            },
        ),
        (
            k0,
            with(&|p| p.chain_id = ChainId(8)),
            ResyncError::WrongChain,
        ),
        (key(2).public(), good.clone(), ResyncError::NotProposer),
        (k0, with(&|p| p.step_us = 0), ResyncError::ZeroStep),
    ];
    for (from, proposal, error) in table {
        assert_eq!(m.handle_proposal(now, &from, proposal, Some(0)), Err(error));
    }
    // a reference far from the proposal declines
    let out = m.handle_proposal(now, &k0, good.clone(), Some(0)).unwrap();
    assert!(matches!(
        out[..],
        [ResyncOutput::Event(ResyncEvent::Declined { .. })]
    ));
    // approvals from outside the set and forged ones are refused
    assert_eq!(
        m.handle_approval(now, good.approve(&key(50))),
        Err(ResyncError::NotActive)
    );
    let mut forged = good.approve(&key(2));
    forged.signature = Signature([1; 64]);
    assert_eq!(
        m.handle_approval(now, forged),
        Err(ResyncError::BadSignature)
    );
}

#[test]
fn a_refused_proposal_changes_nothing() {
    // A full pending table refuses a new proposal; the proposer's next id
    // and the table are as they were, so the same proposal goes through
    // once a past period's proposals have dropped out.
    let params = params();
    let now = at(&params, 0, 10_000_000);
    let mut m = Resync::new(&params, key(0), active(4), 0);
    for id in 0..undchain_timesync::resync::MAX_PENDING as u64 {
        let p = TimeResyncProposal {
            chain_id: params.chain_id,
            id,
            proposer: key(1).public(),
            period: PayoutPeriod(0),
            step_us: 1_000,
        };
        m.handle_proposal(now, &key(1).public(), p, None).unwrap();
    }
    assert_eq!(m.propose(now, 2_000), Err(ResyncError::TooManyPending));
    let later = at(&params, 1, 10_000_000);
    let out = m.propose(later, 2_000).unwrap();
    let ids: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            ResyncOutput::Broadcast { msg } => match &**msg {
                ResyncMsg::Proposal(p) => Some(p.id),
                ResyncMsg::Approval(_) => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![0], "the refused proposal used no id");
}

#[test]
fn approvals_that_arrive_before_their_proposal_still_count() {
    let params = params();
    let now = at(&params, 0, 10_000_000);
    let proposal = TimeResyncProposal {
        chain_id: params.chain_id,
        id: 0,
        proposer: key(0).public(),
        period: PayoutPeriod(0),
        step_us: -200_000,
    };
    // n = 4, q = 3: two early approvals, then the proposal with our own
    let mut m = Resync::new(&params, key(3), active(4), 1_000);
    for i in [0u8, 1] {
        assert!(
            m.handle_approval(now, proposal.approve(&key(i)))
                .unwrap()
                .is_empty()
        );
    }
    let out = m
        .handle_proposal(now, &key(0).public(), proposal, Some(-200_500))
        .unwrap();
    assert_eq!(applied(&out), vec![-200_000]);
}
