//! The validator story (design notes, items 1-10) and its "what could go
//! wrong", one scenario each, on the whole-network simulator.

use undchain_types::MessageKind;

use super::support::{assert_same_chain, world};

#[test]
fn time_bootstrap_brings_every_validator_online_before_genesis() {
    let mut w = world(4);
    w.run_until(w.block_start_us(0));
    for i in 0..4 {
        assert!(
            w.core(i).unwrap().validator().time_synced(),
            "validator {i}"
        );
    }
    w.run_until(w.block_start_us(4));
    assert_same_chain(&w, 4, 3);
}

#[test]
fn late_request_goes_to_next_block() {
    let mut w = world(4);
    let b = w.params().block_interval_us;
    // 90% into block 3: inside the 25% cutoff, so it belongs to block 4.
    w.run_until(w.block_start_us(3) + b * 9 / 10);
    let late = w.send_request(0, &[0, 1, 2]);
    // 10% into block 5: block 5 itself.
    w.run_until(w.block_start_us(5) + b / 10);
    let early = w.send_request(1, &[0, 1, 2]);
    w.run_until(w.block_start_us(9));
    let acks = w.acks(&late);
    assert_eq!(acks.len(), 3);
    assert!(acks.iter().all(|(_, blk)| *blk == 4), "{acks:?}");
    assert!(w.acks(&early).iter().all(|(_, blk)| *blk == 5));
    for i in 0..4 {
        assert_eq!(w.committed_in(i, &late), Some(4));
        assert_eq!(w.committed_in(i, &early), Some(5));
    }
}

#[test]
fn retried_request_gets_the_identical_ack() {
    let mut w = world(4);
    w.run_until(w.block_start_us(2));
    let job = w.send_request(0, &[0]);
    w.run_until(w.block_start_us(2) + 300_000);
    w.resend_request(job, &[0]);
    w.run_until(w.block_start_us(6));
    // And once more after it was committed.
    w.resend_request(job, &[0]);
    w.run_until(w.block_start_us(7));
    let from0: Vec<u64> = w
        .acks(&job)
        .iter()
        .filter(|(v, _)| *v == 0)
        .map(|(_, b)| *b)
        .collect();
    assert_eq!(from0.len(), 3, "{from0:?}");
    assert!(from0.iter().all(|b| *b == from0[0]), "{from0:?}");
    assert_eq!(w.committed_in(0, &job), Some(from0[0]));
}

#[test]
fn client_forwards_when_fewer_than_f_plus_one_acks() {
    let mut w = world(4);
    // The client's own request reaches validator 0 only.
    w.set_filter(Box::new(|_, from, to, env| {
        !(from >= 4 && to != 0 && env.envelope().kind == MessageKind::UtilityRequest)
    }));
    w.run_until(w.block_start_us(1));
    let job = w.send_request(0, &[0, 1, 2]);
    w.run_until(w.block_start_us(1) + 1_000_000);
    let first: Vec<usize> = w.acks(&job).iter().map(|(v, _)| *v).collect();
    assert_eq!(first, vec![0], "one ack before the retry timeout");
    let retry = w.params().retry_timeout_us;
    w.run_until(w.block_start_us(1) + retry + 1_000_000);
    let mut ackers: Vec<usize> = w.acks(&job).iter().map(|(v, _)| *v).collect();
    ackers.sort_unstable();
    ackers.dedup();
    assert_eq!(ackers, vec![0, 1, 2, 3], "the forward reached the others");
    let blocks: Vec<u64> = w.acks(&job).iter().map(|(_, b)| *b).collect();
    assert!(
        blocks.iter().all(|b| *b == blocks[0]),
        "every ack names the block: {blocks:?}"
    );
}

#[test]
fn diverging_job_files_reconcile_before_vote() {
    let mut w = world(4);
    // Validator 3 never hears the gossip of block 2's requests (it only
    // fetches them once agreement on block 2 starts).
    let gossip_end = w.block_start_us(3);
    w.set_filter(Box::new(move |now, _, to, env| {
        !(to == 3 && now < gossip_end && env.envelope().kind == MessageKind::RequestBatch)
    }));
    w.run_until(w.block_start_us(2));
    let jobs: Vec<_> = (0..10).map(|c| w.send_request(c, &[0, 1, 2])).collect();
    // Validator 2 goes down after the gossip: the block needs 3's vote.
    w.run_until(w.block_start_us(2) + 1_000_000);
    w.crash_now(2);
    w.run_until(w.block_start_us(8));
    let block = w
        .committed_in(3, &jobs[0])
        .expect("validator 3 committed the jobs");
    for j in &jobs {
        assert_eq!(w.committed_in(3, j), Some(block));
        assert_eq!(w.committed_in(0, j), Some(block));
    }
    let record = &w.stored(3).blocks[block as usize];
    let me = undchain_sim::node_key(3).public();
    assert!(
        record
            .block
            .certificate
            .signatures
            .iter()
            .any(|s| s.validator == me),
        "validator 3 signed the block it had to reconcile"
    );
}

#[test]
fn proposal_missing_a_job_moves_it_to_next_file() {
    let mut w = world(4);
    // Until block 5, nothing validator 3 gossips or fetches reaches anyone.
    let until = w.block_start_us(5);
    w.set_filter(Box::new(move |now, from, _, env| {
        !(from == 3 && now < until && env.envelope().kind == MessageKind::RequestBatch)
    }));
    w.run_until(w.block_start_us(2) + 200_000);
    let job = w.send_request(0, &[3]);
    w.run_until(w.block_start_us(12));
    let acked = w.acks(&job).first().map(|(_, b)| *b).expect("acked by 3");
    assert_eq!(acked, 2);
    let committed = w.committed_in(0, &job).expect("committed after all");
    assert!(committed > acked, "committed in {committed}, acked {acked}");
    assert_eq!(w.committed_in(3, &job), Some(committed));
    assert!(
        w.inclusion_notices() >= 1,
        "the client was told the later block"
    );
}

#[test]
fn lagging_validator_catches_up_with_certificates() {
    let mut w = world(4);
    w.run_until(w.block_start_us(2));
    for c in 0..5 {
        w.send_request(c, &[0, 1, 2]);
    }
    w.crash_now(3);
    w.run_until(w.block_start_us(10));
    for c in 5..10 {
        w.send_request(c, &[0, 1, 2]);
    }
    let before = w.stored(3).blocks.len();
    w.restart_now(3);
    w.run_until(w.block_start_us(16));
    assert!(w.stored(3).blocks.len() > before + 8, "caught up");
    assert_same_chain(&w, 4, 14);
    for h in 0..14usize {
        // Certificates may hold different quorums; header and jobs agree.
        let (a, b) = (&w.stored(3).blocks[h], &w.stored(0).blocks[h]);
        assert_eq!(a.block.header, b.block.header, "height {h}");
        assert_eq!(a.requests, b.requests, "height {h}");
    }
}

#[test]
fn restarted_validator_loses_nothing_it_committed() {
    let mut w = world(4);
    w.run_until(w.block_start_us(1));
    for c in 0..8 {
        w.send_request(c, &[0, 1, 2]);
    }
    w.run_until(w.block_start_us(5));
    let before = w.stored(1).clone();
    let root = w.core(1).unwrap().validator().ledger().root();
    w.crash_now(1);
    w.restart_now(1);
    let v = w.core(1).unwrap().validator();
    assert_eq!(
        v.ledger().root(),
        root,
        "ledger rebuilt from the stored blocks"
    );
    assert_eq!(v.height().0, before.blocks.len() as u64);
    w.run_until(w.block_start_us(9));
    assert_eq!(
        &w.stored(1).blocks[..before.blocks.len()],
        &before.blocks[..]
    );
    assert_same_chain(&w, 4, 7);
}

#[test]
fn restarted_validator_remembers_what_it_acknowledged() {
    let mut w = world(4);
    let b = w.params().block_interval_us;
    w.run_until(w.block_start_us(2) + b / 10);
    let job = w.send_request(0, &[0]);
    w.run_until(w.block_start_us(2) + b / 2);
    assert_eq!(w.acks(&job), vec![(0, 2)]);
    w.crash_now(0);
    w.restart_now(0);
    let v = w.core(0).unwrap().validator();
    assert_eq!(v.acked_block(&job).map(|b| b.0), Some(2));
    w.run_until(w.block_start_us(6));
    for i in 0..4 {
        assert_eq!(w.committed_in(i, &job), Some(2), "validator {i}");
    }
}

/// Replay attack: a client's request replayed long after the replay
/// window is answered with its identical ack and is committed once; the same
/// client's request signed for another chain is never acknowledged nor
/// filed, though it is fresh and well signed; the chain goes on.
#[test]
fn replayed_old_and_cross_chain_envelopes_are_refused() {
    use std::sync::Arc;
    use undchain_roles::sim::{client_key, request_body};
    use undchain_types::{ChainId, Envelope, JobId};

    let mut w = world(4);
    w.run_until(w.block_start_us(2));
    let job = w.send_request(0, &[0, 1, 2, 3]);
    w.run_until(w.block_start_us(5));
    let block = w.committed_in(0, &job).expect("the request is committed");
    let acks = w.acks(&job).len();
    // Old: the identical envelope, 20 s later (the window is 4 s).
    let later = w.now_us() + 20_000_000;
    w.run_until(later);
    w.resend_request(job, &[0, 1, 2, 3]);
    // Cross-chain: client 0's key, dated now, for chain 8 (this one is 7).
    let key = client_key(9, 0);
    let foreign = Envelope::new(
        key.public(),
        ChainId(8),
        w.wall_now().0,
        w.wall_now(),
        request_body(0x0c0ffee),
    )
    .sign(&key);
    let foreign_job = JobId::from_request_digest(foreign.digest());
    let foreign = Arc::new(foreign);
    for i in 0..4 {
        assert!(w.deliver_foreign(&undchain_sim::node_key(i).public(), foreign.clone()));
    }
    let h = w.commits(0).len() as u64;
    let end = w.now_us() + 6 * w.params().block_interval_us;
    w.run_until(end);
    // A known request replayed is answered with its identical ack (a
    // client's retry looks the same), naming the block it is in; nothing
    // is filed again.
    let replayed = &w.acks(&job)[acks..];
    assert!(
        replayed.iter().all(|(_, b)| *b == block),
        "the replay was acknowledged for another block: {replayed:?} (committed in {block:?})"
    );
    for i in 0..4 {
        assert_eq!(w.committed_in(i, &job), Some(block), "validator {i}");
        let s = w.stored(i);
        let mut times = 0;
        for b in &s.blocks {
            for r in &b.requests {
                let id = JobId::from_request_digest(r.digest());
                assert_ne!(
                    id, foreign_job,
                    "validator {i} filed the other chain's request"
                );
                times += usize::from(id == job);
            }
        }
        assert_eq!(times, 1, "validator {i} holds the job {times} times");
        assert!(w.commits(i).len() as u64 >= h + 4, "validator {i} stopped");
    }
    assert_same_chain(&w, 4, h + 4);
}
