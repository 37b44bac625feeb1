//! The validator's duties beyond the single block (design notes,
//! validator story items 2, 3, 5 and 7; DESIGN.md rotation rules): resync
//! of the agreed clock, rotation and bootstrap seats, capacity tests,
//! period settlement and the network status, one scenario each on the
//! whole-network simulator.

use undchain_roles::sim::{SimConfig, World};
use undchain_types::MessageKind;

use super::support::{assert_same_chain, world};

/// Every validator's block-clock correction.
fn corrections(w: &World, n: usize) -> Vec<i64> {
    (0..n)
        .map(|i| w.core(i).unwrap().validator().time_correction().unwrap())
        .collect()
}

#[test]
fn time_resync_without_quorum_refused() {
    use undchain_roles::Command;
    let mut w = world(4);
    w.run_until(w.block_start_us(3));
    let before = corrections(&w, 4);
    // A step no other validator's own clock calls for: declined, not applied.
    w.command(0, Command::ProposeResync { step_us: 900_000 })
        .unwrap();
    w.run_until(w.block_start_us(5));
    let after = corrections(&w, 4);
    for i in 0..4 {
        assert!(
            (after[i] - before[i]).abs() < 100_000,
            "validator {i}: {before:?} -> {after:?}"
        );
    }
    // A step everyone would approve, but two of four never hear of it:
    // the proposer and one approval are short of q = 3.
    w.set_filter(Box::new(|_, from, to, env| {
        let resync = matches!(
            env.envelope().kind,
            MessageKind::TimeResyncProposal | MessageKind::TimeResyncApproval
        );
        !(resync && (from >= 2 || to >= 2))
    }));
    w.command(0, Command::ProposeResync { step_us: 300_000 })
        .unwrap();
    w.run_until(w.block_start_us(7));
    let cut = corrections(&w, 4);
    for i in 0..4 {
        assert!(
            (cut[i] - after[i]).abs() < 100_000,
            "validator {i}: {after:?} -> {cut:?}"
        );
    }
    // The chain went on committing throughout.
    assert_same_chain(&w, 4, 6);
}

#[test]
fn time_resync_with_quorum_steps_every_clock() {
    use undchain_roles::Command;
    let mut w = world(4);
    w.run_until(w.block_start_us(3));
    let before = corrections(&w, 4);
    w.command(1, Command::ProposeResync { step_us: 300_000 })
        .unwrap();
    w.run_until(w.block_start_us(3) + 500_000);
    let after = corrections(&w, 4);
    for i in 0..4 {
        let moved = after[i] - before[i];
        assert!(
            (moved - 300_000).abs() < 100_000,
            "validator {i}: moved {moved}"
        );
    }
    // A step beyond the chain's maximum is refused at the proposer.
    let max = w.params().max_resync_step_us as i64;
    assert!(
        w.command(2, Command::ProposeResync { step_us: max + 1 })
            .is_err()
    );
    w.run_until(w.block_start_us(8));
    assert_same_chain(&w, 4, 7);
}

/// The keys of the validators who signed block `h`'s certificate at `i`.
fn signers(w: &World, i: usize, h: u64) -> Vec<undchain_types::PublicKey> {
    w.stored(i)
        .blocks
        .iter()
        .find(|b| b.block.header.number.0 == h)
        .map(|b| {
            b.block
                .certificate
                .signatures
                .iter()
                .map(|s| s.validator)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn unknown_validators_rotate_at_period_end() {
    use undchain_roles::NodeEvent;
    use undchain_sim::node_key;
    // 4 active seats (1 known), 2 passive unknown validators, 4-block
    // payout periods: at the end of block 3 the passive ones rotate in.
    let mut cfg = SimConfig::new(4, 12, 21);
    cfg.passive = 2;
    cfg.blocks_per_period = 4;
    cfg.requests_per_block = 4;
    let mut w = World::new(&cfg).unwrap();
    w.run_until(w.block_start_us(3));
    // The genesis set was ranked from all six; two were left passive.
    let active = |w: &World, i: usize| w.core(i).unwrap().validator().is_active();
    let passive: Vec<usize> = (0..6).filter(|i| !active(&w, *i)).collect();
    assert_eq!(passive.len(), 2);
    assert!(active(&w, 0), "the known validator holds the known seat");
    w.run_until(w.block_start_us(14));
    let passive_keys: Vec<_> = passive.iter().map(|i| node_key(*i).public()).collect();
    // Before the boundary only the genesis set signs; after it, both
    // formerly passive validators sign.
    for h in 0..4 {
        let s = signers(&w, 0, h);
        assert!(s.iter().all(|k| !passive_keys.contains(k)), "{h}");
    }
    let after: Vec<_> = (4..8).flat_map(|h| signers(&w, 0, h)).collect();
    assert!(passive_keys.iter().all(|p| after.contains(p)), "{after:?}");
    // The known validator keeps its seat through every rotation; unknown
    // ones rotate again at each period end (blocks 4 and 8).
    let set = w.core(0).unwrap().validator().validator_set().clone();
    assert!(set.contains(&node_key(0).public()));
    assert_eq!((0..6).filter(|i| !active(&w, *i)).count(), 2);
    let changes: Vec<u64> = w
        .notices(0)
        .iter()
        .filter_map(|e| match e {
            NodeEvent::SetChanged {
                rotated: true,
                height,
                ..
            } => Some(height.0),
            _ => None,
        })
        .collect();
    assert_eq!(changes, vec![4, 8, 12]);
    let rotated = w
        .notices(0)
        .iter()
        .any(|e| matches!(e, NodeEvent::SetChanged { rotated: true, height, .. } if height.0 == 4));
    assert!(rotated, "{:?}", w.notices(0));
    // Every validator, passive or not, holds the same chain; nothing
    // acknowledged was lost across the rotation.
    assert_same_chain(&w, 6, 12);
    let r = undchain_roles::sim::run(&cfg).unwrap();
    assert!(r.ok(), "{} {:?}", r.line(), r.failures);
    assert_eq!(r.lost, 0);
}

#[test]
fn known_validators_fill_unknown_seats_at_bootstrap() {
    use undchain_roles::NodeEvent;
    // 4 seats, at most 1 known; 3 known validators and 1 unknown: the
    // unknown seats nobody unknown can take go to known validators.
    let mut cfg = SimConfig::new(4, 6, 22);
    cfg.known = Some(3);
    cfg.requests_per_block = 2;
    let mut w = World::new(&cfg).unwrap();
    w.run_until(w.block_start_us(7));
    let set = w.core(0).unwrap().validator().validator_set().clone();
    assert_eq!(set.len(), 4);
    assert_eq!(set.known_seats(), 1);
    assert_eq!(set.fillers(), 2);
    for i in 0..4 {
        let said = w.notices(i).iter().any(|e| {
            matches!(
                e,
                NodeEvent::KnownFillUnknownSeats {
                    fillers: 2,
                    active: 4
                }
            )
        });
        assert!(said, "validator {i} did not say so: {:?}", w.notices(i));
    }
    assert_same_chain(&w, 4, 6);
}

/// A validator that drops one job of every capacity-test burst it runs.
#[derive(Debug)]
struct DropsJobs;

impl undchain_consensus::adversary::Actor for DropsJobs {
    fn name(&self) -> &'static str {
        "drops-jobs"
    }

    fn outgoing(
        &mut self,
        _: &mut undchain_consensus::adversary::ActorCtx<'_>,
        _: &mut undchain_consensus::adversary::Coalition,
        sends: Vec<undchain_consensus::adversary::Send>,
    ) -> Vec<undchain_consensus::adversary::Send> {
        use undchain_types::{HashContext, Message, hash_parts};
        sends
            .into_iter()
            .map(|mut s| {
                if let Message::CapacityTestResult(r) = &mut s.msg {
                    r.stored_requests -= 1;
                    r.job_root = hash_parts(HashContext::JobFileNode, &[r.job_root.as_bytes()]);
                }
                s
            })
            .collect()
    }
}

#[test]
fn capacity_test_catches_validator_that_drops_jobs() {
    use undchain_consensus::adversary::Adversary;
    use undchain_roles::NodeEvent;
    use undchain_roles::validator::CapacityFailure;
    let mut cfg = SimConfig::new(4, 30, 23);
    cfg.passive = 1;
    cfg.requests_per_block = 0;
    let mut w = World::new(&cfg).unwrap();
    w.run_until(w.block_start_us(0));
    let tester = (0..5)
        .find(|i| !w.core(*i).unwrap().validator().is_active())
        .unwrap();
    let dropper = (0..5).find(|i| *i != tester).unwrap();
    w.set_adversary(
        dropper,
        "drops-jobs",
        Adversary::new(vec![Box::new(DropsJobs)]),
    );
    // One test every 5 blocks, round robin over the four others.
    w.run_until(w.block_start_us(24));
    let key = |i: usize| undchain_sim::node_key(i).public();
    let notices = w.notices(tester);
    let failed: Vec<_> = notices
        .iter()
        .filter_map(|e| match e {
            NodeEvent::CapacityTestFailed { candidate, failure } => Some((*candidate, failure)),
            _ => None,
        })
        .collect();
    assert!(!failed.is_empty(), "{notices:?}");
    for (candidate, failure) in &failed {
        assert_eq!(
            *candidate,
            key(dropper),
            "only the dropper fails: {failure:?}"
        );
        assert!(matches!(
            failure,
            CapacityFailure::WrongResult {
                expected_stored: 256,
                stored: 255,
                job_root_differs: true,
                payout_root_differs: false
            }
        ));
    }
    for i in (0..5).filter(|i| *i != tester && *i != dropper) {
        let passed = notices.iter().any(
            |e| matches!(e, NodeEvent::CapacityTestPassed { candidate } if *candidate == key(i)),
        );
        assert!(passed, "honest validator {i} was not passed: {notices:?}");
    }
    // Active validators run no tests.
    for i in (0..5).filter(|i| *i != tester) {
        assert!(!w.notices(i).iter().any(|e| matches!(
            e,
            NodeEvent::CapacityTestPassed { .. } | NodeEvent::CapacityTestFailed { .. }
        )));
    }
}

#[test]
fn capacity_test_without_an_answer_fails() {
    use undchain_roles::NodeEvent;
    use undchain_roles::validator::CapacityFailure;
    let mut cfg = SimConfig::new(4, 30, 24);
    cfg.passive = 1;
    cfg.requests_per_block = 0;
    let mut w = World::new(&cfg).unwrap();
    w.set_filter(Box::new(|_, _, _, env| {
        env.envelope().kind != MessageKind::CapacityTestResult
    }));
    w.run_until(w.block_start_us(8));
    let tester = (0..5)
        .find(|i| !w.core(*i).unwrap().validator().is_active())
        .unwrap();
    let no_answer = w.notices(tester).iter().any(|e| {
        matches!(
            e,
            NodeEvent::CapacityTestFailed {
                failure: CapacityFailure::NoAnswer,
                ..
            }
        )
    });
    assert!(no_answer, "{:?}", w.notices(tester));
}

#[test]
fn payout_period_end_settles_alike_everywhere() {
    use undchain_roles::NodeEvent;
    // 4-block payout periods; no partner ever completes a job, so the
    // first period's jobs are carried once, then cancelled (fee only)
    // with their budgets refunded.
    let mut cfg = SimConfig::new(4, 14, 25);
    cfg.blocks_per_period = 4;
    cfg.requests_per_block = 4;
    cfg.receipts = false;
    let mut w = World::new(&cfg).unwrap();
    w.run_until(w.block_start_us(14));
    let settled = |i: usize| -> Vec<NodeEvent> {
        w.notices(i)
            .iter()
            .filter(|e| matches!(e, NodeEvent::PeriodSettled { .. }))
            .cloned()
            .collect()
    };
    let first = settled(0);
    let ends: Vec<u64> = first
        .iter()
        .filter_map(|e| match e {
            NodeEvent::PeriodSettled { number, .. } => Some(number.0),
            _ => None,
        })
        .collect();
    assert_eq!(ends, vec![3, 7, 11], "{first:?}");
    for i in 1..4 {
        assert_eq!(settled(i), first, "validator {i}");
    }
    match &first[0] {
        NodeEvent::PeriodSettled {
            carried, cancelled, ..
        } => {
            assert!(*carried > 0);
            assert_eq!(*cancelled, 0);
        }
        e => panic!("{e:?}"),
    }
    match &first[1] {
        NodeEvent::PeriodSettled {
            cancelled,
            refunded,
            ..
        } => {
            assert!(*cancelled > 0);
            assert!(refunded.0 > 0);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn domain_overloaded_when_a_quorum_of_validators_is_loaded() {
    use undchain_roles::NodeEvent;
    let overload = |w: &World, i: usize| -> Vec<&'static str> {
        w.notices(i)
            .iter()
            .filter_map(|e| match e {
                NodeEvent::DomainOverloaded { .. } => Some("overloaded"),
                NodeEvent::DomainRecovered { .. } => Some("recovered"),
                _ => None,
            })
            .collect()
    };
    // Full load at 20 held requests: 30 a block overloads every validator
    // while the load lasts; once it stops and the jobs commit, it clears.
    let mut cfg = SimConfig::new(4, 12, 26);
    cfg.requests_per_block = 30;
    cfg.load_capacity_jobs = Some(20);
    let mut w = World::new(&cfg).unwrap();
    w.run_until(w.block_start_us(16));
    for i in 0..4 {
        assert_eq!(
            overload(&w, i),
            ["overloaded", "recovered"],
            "validator {i}"
        );
        let st = w.core(i).unwrap().validator().statuses();
        assert_eq!(st.len(), 4, "every active validator's status is known");
        assert!(st.values().all(|s| s.median_peer_rtt_us > 0));
    }
    // The same load under the default capacity raises nothing.
    cfg.load_capacity_jobs = None;
    let mut w = World::new(&cfg).unwrap();
    w.run_until(w.block_start_us(16));
    for i in 0..4 {
        assert!(overload(&w, i).is_empty(), "validator {i}");
    }
}

#[test]
fn late_validator_joins_time_and_catches_up() {
    // Validator 3 goes down before the time bootstrap finishes and comes
    // back five blocks into the chain with nothing on disk but its first
    // sequence reservation: it takes the running validators' agreed time,
    // fetches the decided blocks with their certificates and votes again.
    let mut w = world(4);
    w.start();
    w.crash_now(3);
    assert!(w.stored(3).time_correction.is_none());
    w.run_until(w.block_start_us(5));
    w.restart_now(3);
    w.run_until(w.block_start_us(10));
    let v = w.core(3).unwrap().validator();
    assert!(v.time_synced());
    let drift =
        v.time_correction().unwrap() - w.core(0).unwrap().validator().time_correction().unwrap();
    assert!(drift.abs() < 50_000, "agreed time {drift} us apart");
    assert_same_chain(&w, 4, 8);
    // It signs again: its key is in a later certificate.
    let me = undchain_sim::node_key(3).public();
    let signed = w.stored(0).blocks.iter().skip(6).any(|b| {
        b.block
            .certificate
            .signatures
            .iter()
            .any(|s| s.validator == me)
    });
    assert!(signed, "validator 3 never signed after it came back");
}

/// Two 4-validator chains, 7 and 8, linked to each other; `carry` says
/// whether the links between them get through.
fn linked_worlds() -> (World, World) {
    use undchain_roles::CoChain;
    use undchain_sim::node_key;
    let chain = |id: u32, offset: usize, other: u32, other_offset: usize| {
        let mut cfg = SimConfig::new(4, 12, 27 + u64::from(id));
        cfg.requests_per_block = 2;
        cfg.chain_id = undchain_types::ChainId(id);
        cfg.key_offset = offset;
        cfg.co_chains = vec![CoChain {
            chain: undchain_types::ChainId(other),
            validators: (0..4)
                .map(|i| node_key(other_offset + i).public())
                .collect(),
        }];
        World::new(&cfg).unwrap()
    };
    (chain(7, 0, 8, 200), chain(8, 200, 7, 0))
}

/// Runs both worlds to virtual time `until` in 100 ms steps, carrying the
/// envelopes between them when `carry`.
fn run_linked(a: &mut World, b: &mut World, until: u64, carry: bool) {
    let mut t = a.now_us();
    while t < until {
        t = (t + 100_000).min(until);
        a.run_until(t);
        b.run_until(t);
        for (to, env) in a.take_foreign() {
            if carry {
                b.deliver_foreign(&to, env);
            }
        }
        for (to, env) in b.take_foreign() {
            if carry {
                a.deliver_foreign(&to, env);
            }
        }
    }
}

/// The co-chain anchors in the headers of `w`'s committed chain:
/// (height, co-chain block, its hash).
fn anchors(w: &World) -> Vec<(u64, u64, undchain_types::Hash32)> {
    w.stored(0)
        .blocks
        .iter()
        .flat_map(|b| {
            let h = b.block.header.number.0;
            b.block
                .header
                .links
                .iter()
                .map(move |l| (h, l.block.0, l.hash))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn chain_links_anchor_each_co_chains_blocks() {
    let (mut a, mut b) = linked_worlds();
    let end = a.block_start_us(10);
    run_linked(&mut a, &mut b, end, true);
    for (w, other) in [(&a, &b), (&b, &a)] {
        let got = anchors(w);
        assert!(got.len() >= 5, "{got:?}");
        for (_, block, hash) in &got {
            // The anchored hash is the co-chain's committed block hash.
            assert_eq!(other.commits(0).get(block).map(|c| c.0), Some(*hash));
        }
        // Anchors move forward.
        assert!(got.windows(2).all(|p| p[0].1 <= p[1].1));
        assert_same_chain(w, 4, 9);
    }
}

#[test]
fn silent_co_chain_is_simply_absent_until_its_link_arrives() {
    let (mut a, mut b) = linked_worlds();
    // Nothing crosses for five blocks: both chains go on without links.
    let mid = a.block_start_us(5);
    run_linked(&mut a, &mut b, mid, false);
    assert!(anchors(&a).is_empty());
    assert_same_chain(&a, 4, 4);
    // Then the links get through and appear in later headers.
    let end = a.block_start_us(10);
    run_linked(&mut a, &mut b, end, true);
    let got = anchors(&a);
    assert!(!got.is_empty());
    assert!(got.iter().all(|(h, _, _)| *h >= 4), "{got:?}");
}

#[test]
fn chain_link_from_outside_the_co_chains_validators_is_refused() {
    use std::sync::Arc;
    use undchain_types::msg::ChainLink;
    use undchain_types::{BlockNumber, BlockTime, ChainId, Envelope, Hash32};
    let (mut a, mut b) = linked_worlds();
    let mid = a.block_start_us(3);
    run_linked(&mut a, &mut b, mid, false);
    // A stranger (not one of chain 8's validators) claims chain 8's block 50.
    let bogus = Hash32([7; 32]);
    let stranger = undchain_sim::node_key(999);
    let link = ChainLink {
        chain: ChainId(8),
        block: BlockNumber(50),
        block_hash: bogus,
    };
    let at = BlockTime(a.params().block_start(BlockNumber(3)).0);
    let env = Envelope::new(stranger.public(), ChainId(8), 1, at, link).sign(&stranger);
    let env = Arc::new(env);
    for i in 0..4 {
        assert!(a.deliver_foreign(&undchain_sim::node_key(i).public(), env.clone()));
    }
    let end = a.block_start_us(6);
    run_linked(&mut a, &mut b, end, false);
    assert!(anchors(&a).iter().all(|(_, _, h)| *h != bogus));
    assert_same_chain(&a, 4, 5);
}

#[test]
fn any_user_fetches_a_block_job_file_page_by_page() {
    use undchain_types::JobId;
    let mut cfg = SimConfig::new(4, 8, 28);
    cfg.requests_per_block = 12;
    let mut w = World::new(&cfg).unwrap();
    w.run_until(w.block_start_us(5));
    let header = w.stored(0).blocks[2].block.header.clone();
    assert!(header.job_count >= 5, "{}", header.job_count);
    // Pages of 4, each asked for after the last id of the one before.
    let mut after: Option<JobId> = None;
    let mut got = Vec::new();
    let b = w.params().block_interval_us;
    for _ in 0..10 {
        w.request_job_file(0, 1, 2, after, 4);
        let t = w.now_us() + b / 4;
        w.run_until(t);
        let (from, page) = w.job_file_replies().last().cloned().unwrap();
        assert_eq!(from, 1);
        assert!(page.closed);
        assert_eq!(page.root, header.job_root);
        assert_eq!(page.total, header.job_count);
        assert!(page.entries.len() <= 4);
        got.extend(page.entries.iter().cloned());
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    // The pages together are the committed file.
    let file = undchain_jobfile::JobFile::from_entries(got).unwrap();
    assert_eq!(file.merkle_root(), header.job_root);
    assert_eq!(file.len(), header.job_count);
    // An open file is served too, marked open.
    let open = w.core(1).unwrap().validator().height().0 + 1;
    w.request_job_file(1, 1, open, None, 100);
    let t = w.now_us() + b / 4;
    w.run_until(t);
    let (_, page) = w.job_file_replies().last().cloned().unwrap();
    assert_eq!(page.block.0, open);
    assert!(!page.closed);
    // A requester asking again at once is not served twice: one page per
    // gossip interval each.
    let before = w.job_file_replies().len();
    w.request_job_file(2, 3, 2, None, 4);
    w.request_job_file(2, 3, 2, None, 4);
    let t = w.now_us() + 20_000 * 4;
    w.run_until(t);
    assert_eq!(w.job_file_replies().len(), before + 1);
}

#[test]
fn double_voter_is_scored_down_and_replaced() {
    use undchain_consensus::adversary::Behaviour;
    use undchain_consensus::roster::ReplacementReason;
    use undchain_roles::NodeEvent;
    use undchain_sim::node_key;
    // 4 active seats, the last one double votes in every step; one passive
    // validator stands by. The evidence is committed in a block, the
    // offender's score drops under the floor at the same height on every
    // honest validator, and the passive validator takes its seat.
    let mut cfg = SimConfig::new(4, 14, 5);
    cfg.passive = 1;
    cfg.blocks_per_period = 1_000;
    cfg.requests_per_block = 3;
    cfg.byzantine = Some(1);
    cfg.behaviour = Some(Behaviour::DoubleVoter);
    let mut w = World::new(&cfg).unwrap();
    // The genesis set is ranked from all five: whoever is left out stands by.
    let active = |w: &World, i: usize| w.core(i).unwrap().validator().is_active();
    let passive: Vec<usize> = (0..5).filter(|i| !active(&w, *i)).collect();
    assert_eq!(passive.len(), 1);
    assert!(
        active(&w, 3),
        "the simulator makes an active validator Byzantine"
    );
    let standby = node_key(passive[0]).public();
    w.run_until(w.block_start_us(12));
    let offender = node_key(3).public();
    let committed: Vec<(u64, u16)> = w
        .notices(0)
        .iter()
        .filter_map(|e| match e {
            NodeEvent::EvidenceCommitted {
                number,
                offender: o,
                score,
            } if *o == offender => Some((number.0, *score)),
            _ => None,
        })
        .collect();
    assert!(
        !committed.is_empty(),
        "no evidence committed: {:?}",
        w.notices(0)
    );
    let floor = w.params().perception_floor.get();
    assert!(committed[0].1 < floor, "{committed:?} floor {floor}");
    // The block that committed it is in every honest validator's chain,
    // with the same evidence in its header.
    let first = committed[0].0;
    for i in [1, 2, 4] {
        // Passive validators apply the same blocks.
        let theirs = w.notices(i).iter().any(|e| {
            matches!(e, NodeEvent::EvidenceCommitted { number, offender: o, .. }
                if number.0 == first && *o == offender)
        });
        assert!(theirs, "validator {i} did not commit evidence at {first}");
    }
    let replaced = w.notices(0).iter().any(|e| {
        matches!(e, NodeEvent::SetChanged { replaced, .. }
            if replaced.contains(&(offender, Some(standby), ReplacementReason::BelowFloor)))
    });
    assert!(replaced, "{:?}", w.notices(0));
    let scores: Vec<u16> = [0, 1, 2, 4]
        .iter()
        .map(|i| {
            let v = w.core(*i).unwrap().validator();
            v.roster().scores().score(&offender).get()
        })
        .collect();
    assert!(scores.iter().all(|s| *s == scores[0]), "{scores:?}");
    let set = w.core(0).unwrap().validator().validator_set().clone();
    assert!(!set.contains(&offender) && set.contains(&standby));
    assert_same_chain(&w, 3, 11);
    for h in 0..11 {
        assert_eq!(w.commits(4).get(&h), w.commits(0).get(&h), "height {h}");
    }
    let r = undchain_roles::sim::run(&cfg).unwrap();
    assert!(r.ok(), "{} {:?}", r.line(), r.failures);
    assert_eq!(r.lost, 0);
}

#[test]
fn convergence_at_period_boundary_when_chain_passes_threshold() {
    use undchain_roles::NodeEvent;
    // 4-block payout periods and a 1-byte threshold: every period end
    // converges (blocks 3, 7, 11 end epochs 0, 1, 2).
    let mut cfg = SimConfig::new(4, 14, 31);
    cfg.blocks_per_period = 4;
    cfg.requests_per_block = 4;
    cfg.convergence_bytes = Some(1);
    let mut w = World::new(&cfg).unwrap();
    w.run_until(w.block_start_us(14));
    let converged = |i: usize| -> Vec<(u32, u64, undchain_types::Hash32)> {
        w.notices(i)
            .iter()
            .filter_map(|e| match e {
                NodeEvent::Converged {
                    epoch,
                    first_block,
                    genesis_hash,
                    ..
                } => Some((*epoch, first_block.0, *genesis_hash)),
                _ => None,
            })
            .collect()
    };
    let mine = converged(0);
    assert_eq!(
        mine.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>(),
        vec![(1, 4), (2, 8), (3, 12)]
    );
    for i in 1..4 {
        assert_eq!(converged(i), mine, "validator {i}: same geneses");
        let certified = w
            .notices(i)
            .iter()
            .filter(|e| matches!(e, NodeEvent::GenesisCertified { signers, .. } if *signers >= 3))
            .count();
        assert!(certified >= 2, "validator {i}: {certified} certified");
    }
    // The first block of each epoch names the genesis as its parent and
    // carries the new epoch; the chain goes on without a pause.
    let blocks = &w.stored(0).blocks;
    for (epoch, first, genesis) in &mine {
        let h = &blocks[*first as usize].block.header;
        assert_eq!((h.epoch, h.parent, h.parent_signers), (*epoch, *genesis, 0));
        let before = &blocks[*first as usize - 1].block.header;
        assert_eq!(before.epoch, epoch - 1);
    }
    assert_same_chain(&w, 4, 12);
    assert_eq!(w.stored(1).archived.len(), 3);
    assert!(!w.stored(1).genesis_certificates.is_empty());
    // A validator restarted from its disk replays the same convergences.
    w.crash_now(2);
    w.restart_now(2);
    let v = w.core(2).unwrap().validator();
    assert_eq!(v.epoch().0, 3);
    assert_eq!(v.last_hash(), w.core(0).unwrap().validator().last_hash());
    // The whole run's invariants hold, with faults on other seeds too.
    let r = undchain_roles::sim::run(&cfg).unwrap();
    assert!(r.ok(), "{} {:?}", r.line(), r.failures);
    for seed in 0..6 {
        let mut c = cfg.clone();
        c.seed = seed;
        c.faults = true;
        let r = undchain_roles::sim::run(&c).unwrap();
        assert!(r.ok(), "{} {:?}", r.line(), r.failures);
        assert_eq!(r.lost, 0, "{}", r.line());
    }
}

#[test]
fn loaded_active_validator_offloads_job_file_serving_to_passive() {
    // Every validator reports full load from one held request on: the
    // active ones send users of closed files to the passive validators,
    // which serve the same committed file.
    let mut cfg = SimConfig::new(4, 10, 44);
    cfg.passive = 2;
    cfg.blocks_per_period = 1_000;
    cfg.requests_per_block = 12;
    cfg.load_capacity_jobs = Some(1);
    let mut w = World::new(&cfg).unwrap();
    w.run_until(w.block_start_us(6));
    let active = w.active_indices();
    let header = w.stored(active[0]).blocks[2].block.header.clone();
    assert!(header.job_count > 0);
    let b = w.params().block_interval_us;
    // Ask until the active validator holds requests (it is loaded).
    let mut redirect = None;
    for _ in 0..8 {
        w.request_job_file(0, active[0], 2, None, 100);
        let t = w.now_us() + b / 4;
        w.run_until(t);
        if let Some((from, r)) = w.job_file_elsewhere().last().cloned() {
            redirect = Some((from, r));
            break;
        }
    }
    let (from, r) = redirect.expect("a loaded active validator never redirected");
    assert_eq!(from, active[0]);
    assert_eq!(r.block.0, 2);
    let passive: Vec<usize> = (0..6).filter(|i| !active.contains(i)).collect();
    let keys: Vec<_> = passive
        .iter()
        .map(|i| w.core(*i).unwrap().validator().id())
        .collect();
    assert!(!r.serve.is_empty() && r.serve.iter().all(|k| keys.contains(k)));
    // The first one named serves the committed file.
    let to = passive[keys.iter().position(|k| *k == r.serve[0]).unwrap()];
    let before = w.job_file_replies().len();
    w.request_job_file(1, to, 2, None, 100);
    let t = w.now_us() + b / 4;
    w.run_until(t);
    assert_eq!(w.job_file_replies().len(), before + 1);
    let (served_by, page) = w.job_file_replies().last().cloned().unwrap();
    assert_eq!(served_by, to);
    assert!(page.closed);
    assert_eq!((page.root, page.total), (header.job_root, header.job_count));
    // Open files stay with the active validators, loaded or not.
    let open = w.core(active[0]).unwrap().validator().height().0 + 1;
    let before = w.job_file_replies().len();
    w.request_job_file(2, active[0], open, None, 100);
    let t = w.now_us() + b / 4;
    w.run_until(t);
    let (_, page) = w.job_file_replies()[before..].last().cloned().unwrap();
    assert!(!page.closed && page.block.0 == open);
}

#[test]
fn forward_clock_jump_beyond_replay_window_rejoins_agreed_time() {
    // Validator 3's host is suspended: its local clock jumps 5 s ahead,
    // far past the replay window's 2 s future bound, so whatever it dates
    // with its block clock is refused until that clock rejoins the agreed
    // time. Then validator 0 crashes: the three left need validator 3's
    // votes to commit.
    let mut w = world(4);
    w.run_until(w.block_start_us(3));
    let before = corrections(&w, 4);
    w.clock_jump_now(3, 5_000_000);
    w.run_until(w.block_start_us(8));
    let after = corrections(&w, 4);
    let moved = after[3] - before[3];
    assert!(
        (moved + 5_000_000).abs() < 100_000,
        "validator 3's correction moved {moved} us, not about -5 s"
    );
    let height = w.commits(1).len() as u64;
    w.crash_now(0);
    w.run_until(w.block_start_us(16));
    for i in 1..4 {
        assert!(
            w.commits(i).len() as u64 >= height + 5,
            "validator {i} committed {} blocks after the crash",
            w.commits(i).len() as u64 - height
        );
        for h in 0..height + 5 {
            assert_eq!(w.commits(i).get(&h), w.commits(1).get(&h), "{i} at {h}");
        }
    }
}

/// Time attack: the f validators of `n` whose clocks jump far ahead (an
/// hour, half an hour) do not move the honest validators' block clocks
/// beyond 20 ms, and the honest ones go on committing one chain without
/// them.
fn far_off_validators_do_not_move_block_time(n: usize, far: &[(usize, i64)]) {
    let mut w = world(n);
    w.run_until(w.block_start_us(3));
    let before = corrections(&w, n);
    for &(i, by_us) in far {
        w.clock_jump_now(i, by_us);
    }
    let height = w.commits(0).len() as u64;
    w.run_until(w.block_start_us(12));
    let after = corrections(&w, n);
    // The far-off ones learn how far ahead they are (their correction
    // steps back by the jump); their block clocks then hold still until
    // the agreed time catches up (it never runs backwards), so they stay
    // out of agreement meanwhile.
    for &(i, by_us) in far {
        let moved = after[i] - before[i];
        assert!(
            (moved + by_us).abs() < 100_000,
            "far-off validator {i}'s correction moved {moved} us, not about {}",
            -by_us
        );
    }
    let honest: Vec<usize> = (0..n).filter(|i| far.iter().all(|f| f.0 != *i)).collect();
    for &i in &honest {
        let moved = after[i] - before[i];
        assert!(
            moved.abs() < 20_000,
            "honest validator {i}'s correction moved {moved} us: {before:?} -> {after:?}"
        );
        assert!(
            w.commits(i).len() as u64 >= height + 6,
            "honest validator {i} committed {} blocks after the jumps",
            w.commits(i).len() as u64 - height
        );
        for h in 0..height + 6 {
            assert_eq!(
                w.commits(i).get(&h),
                w.commits(honest[0]).get(&h),
                "{i} at {h}"
            );
        }
    }
}

#[test]
fn f_validators_far_off_in_time_do_not_move_block_time() {
    far_off_validators_do_not_move_block_time(4, &[(3, 3_600_000_000)]);
    far_off_validators_do_not_move_block_time(7, &[(5, 3_600_000_000), (6, 1_800_000_000)]);
}
