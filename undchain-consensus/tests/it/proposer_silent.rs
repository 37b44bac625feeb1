//! A silent proposer: its rounds time out (prevote nil, precommit nil, next
//! round with a longer timeout) and the next proposer's value is decided
//! (paper lines 57-67; issue 5).

use crate::support::*;
use undchain_consensus::sim::{Behaviour, FaultPlan, SimConfig, Simulation};
use undchain_consensus::{TimeoutKind, Validity};
use undchain_types::msg::VoteKind;
use undchain_types::{BlockNumber, Message};

#[test]
fn silent_proposer_round_times_out_to_the_next_proposer() {
    let (ks, set, mut d) = started(4, 2, 0);
    take(&mut d);
    let t0 = due(&d, TimeoutKind::Propose, 0);
    // Nobody hears from ks[0]: the propose timeout gives a nil prevote.
    d.handle_timeout(t0);
    assert_eq!(take(&mut d).votes()[0].vote.value, None);
    // q nil prevotes: nil precommit (line 44).
    let mut last = Handed::default();
    for k in [&ks[1], &ks[3]] {
        d.handle_message(
            t0,
            k.public(),
            Message::Vote(vote(k, 0, 0, VoteKind::Prevote, None)),
        )
        .unwrap();
        last = take(&mut d);
    }
    let pc = last.votes();
    assert_eq!(
        (pc[0].vote.kind, pc[0].vote.value),
        (VoteKind::Precommit, None)
    );
    // q precommits of any kind: precommit timeout (line 47), then round 1.
    cast_votes(
        &mut d,
        &[&ks[1], &ks[3]],
        (0, 0),
        VoteKind::Precommit,
        None,
        t0,
    );
    take(&mut d);
    let pc_at = due(&d, TimeoutKind::Precommit, 0);
    d.handle_timeout(pc_at);
    take(&mut d);
    assert_eq!(d.state().round, 1);
    let t1 = due(&d, TimeoutKind::Propose, 1);
    assert!(
        t1.since(pc_at) > t0.since(at(0)),
        "round 1 waits longer for its proposal"
    );
    // ks[1] proposes in round 1 and the round goes through.
    let h = header(0, 4, &set);
    offer_proposal(&mut d, &ks[1], 1, &h, t1);
    d.handle_validity(t1, BlockNumber(0), key_of(&h), Validity::Valid)
        .unwrap();
    assert_eq!(take(&mut d).votes()[0].vote.value, Some(h.hash()));
}

#[test]
fn proposer_silent_network_keeps_deciding() {
    for n in [4, 7, 10] {
        let f = (n - 1) / 3;
        for seed in 0..10u64 {
            let cfg = SimConfig::drawn(n, f, seed).with_behaviour(Behaviour::Silent);
            let report = Simulation::new(cfg).run();
            assert!(report.ok(), "{}", report.reproduce_hint());
        }
        // Without network faults a height needs one more round for each
        // silent proposer in a row from its round-0 proposer on.
        let cfg = SimConfig {
            faults: FaultPlan::none(),
            heights: 2 * n as u64,
            ..SimConfig::drawn(n, f, 0).with_behaviour(Behaviour::Silent)
        };
        let report = Simulation::new(cfg).run();
        assert!(report.ok(), "{}", report.reproduce_hint());
        let rounds = &report.nodes[n - 1].rounds;
        for (h, r) in rounds.iter().enumerate() {
            let mut expect = 0;
            while (h + expect) % n < f {
                expect += 1;
            }
            assert_eq!(*r as usize, expect, "n={n} height {h}");
        }
    }
}
