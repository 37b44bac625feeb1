//! End to end on loopback with real QUIC and redb: validators in this
//! process, each with its own endpoint and database, driving their
//! `NodeCore`s; a client sending signed requests.

use std::time::Duration;

use undchain_node::devnet::{self, DevnetConfig};
use undchain_types::msg::Hello;
use undchain_types::{BlockTime, ChainId, Envelope, Role, SigningKey};

use crate::net::{Net, homes, stored, stored_jobs, tmp};

const GUARD: Duration = Duration::from_secs(90);

/// The devnet, as the README runs it: 4 validators commit blocks of
/// acknowledged requests, none lost, and the receipts of their jobs (the
/// load's scripted partners countersign), paid at the period's settlement;
/// started again on its data directory it resumes at its height; every
/// validator's database holds one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_commits_every_acknowledged_request_and_resumes_at_its_height() {
    let dir = tmp("devnet");
    let cfg = DevnetConfig {
        validators: 4,
        passive: 0,
        partners: 0,
        clients: 2,
        blocks: Some(5),
        block_interval_us: 500_000,
        // Four blocks: the first period ends at block 3.
        payout_period_us: 2_000_000,
        load: 20.0,
        home: dir.clone(),
        reset: true,
        json: true,
        api: true,
        max_block_jobs: None,
    };
    let first = devnet::run(cfg.clone()).await.unwrap();
    assert!(first.blocks >= 5, "{first:?}");
    assert!(first.acked > 0, "{first:?}");
    assert_eq!(first.lost, 0, "{first:?}");
    assert!(first.committed >= first.acked, "{first:?}");
    assert_eq!(first.safety_violations, 0, "{first:?}");
    assert_eq!(first.double_paid, 0, "{first:?}");
    assert!(first.completed > 0 && first.paid > 0, "{first:?}");

    let again = devnet::run(DevnetConfig {
        reset: false,
        blocks: Some(2),
        ..cfg
    })
    .await
    .unwrap();
    assert!(again.resumed_at >= first.height, "{first:?} then {again:?}");
    assert!(again.height >= again.resumed_at + 2, "{again:?}");
    assert_eq!(again.lost, 0, "{again:?}");

    let chains: Vec<_> = (0..4).map(|i| stored(&dir.join(format!("v{i}")))).collect();
    let shortest = chains.iter().map(|c| c.blocks.len()).min().unwrap();
    assert!(shortest as u64 >= again.resumed_at, "{shortest}");
    for c in &chains[1..] {
        for h in 0..shortest {
            assert_eq!(
                c.blocks[h].block.header, chains[0].blocks[h].block.header,
                "height {h}"
            );
        }
    }
}

/// One validator stops while the others go on; restarted from its redb
/// database it resumes at its stored height, catches up by block sync, and
/// every request acknowledged by anyone is in its chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_validator_resumes_from_its_database_and_catches_up() {
    let dir = tmp("restart");
    let mut net = Net::start(homes(&dir, 4, 1_500_000)).await;
    net.start_load(20.0);
    net.until("3 blocks everywhere", GUARD, |n| n.min_height() >= 3)
        .await;
    net.stop_node(3).await;
    let down_at = net.height(3);
    net.until("3 more blocks without v3", GUARD, |n| {
        n.min_height() >= down_at + 3
    })
    .await;
    let restored = net.start_node(3).await;
    assert!(
        restored >= down_at.min(3),
        "restored at {restored}, was at {down_at}"
    );
    let target = net.min_height() + 1;
    net.until("v3 catches up", GUARD, |n| n.height(3) >= target)
        .await;
    net.stop_load();
    net.until("every acknowledged job committed at v3", GUARD, |n| {
        n.acked
            .iter()
            .all(|j| n.stored_jobs.get(&3).is_some_and(|s| s.contains(j)))
    })
    .await;
    let acked = net.acked.clone();
    assert!(!acked.is_empty());
    net.stop_all().await;
    let v3 = stored(&net.homes[3].dir);
    let v0 = stored(&net.homes[0].dir);
    let jobs = stored_jobs(&v3);
    let lost: Vec<_> = acked.iter().filter(|j| !jobs.contains(j)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged jobs missing at v3",
        lost.len()
    );
    let n = v3.blocks.len().min(v0.blocks.len());
    assert!(n as u64 >= target);
    for h in 0..n {
        assert_eq!(
            v3.blocks[h].block.header, v0.blocks[h].block.header,
            "height {h}"
        );
    }
}

/// Malformed bytes on a validator's QUIC port: the connection is closed
/// with a framing error that says what was wrong, and the validator goes
/// on committing blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bytes_on_the_quic_port_close_that_connection_only() {
    use undchain_net::{Claim, TransportEvent};
    use undchain_node::transport::{QuicConfig, QuicTransport};

    let dir = tmp("malformed");
    let mut net = Net::start(homes(&dir, 4, 1_500_000)).await;
    net.until("1 block", GUARD, |n| n.min_height() >= 1).await;
    let (id, addr) = {
        let (h, _) = &net.nodes[&0];
        (h.id, h.addr)
    };
    let key = SigningKey::from_seed([0x5a; 32]);
    let mut c = QuicTransport::bind(
        "127.0.0.1:0".parse().unwrap(),
        key.clone(),
        QuicConfig::default(),
    )
    .unwrap();
    c.connect(id, addr, Claim::ClientOrPartner).await.unwrap();
    // A length prefix of 4 GiB: over the frame limit.
    c.send_raw(&id, vec![0xff, 0xff, 0xff, 0xff, 0, 0]).unwrap();
    let closed =
        crate::support::wait_for(&mut c, |e| matches!(e, TransportEvent::Closed { .. })).await;
    let TransportEvent::Closed { error, .. } = closed else {
        unreachable!()
    };
    let text = error.to_string();
    assert!(text.contains("frame"), "{text}");
    let h = net.height(0);
    net.until("v0 goes on", GUARD, |n| n.height(0) >= h + 2)
        .await;
    // A well-formed envelope on a new connection is still taken.
    c.connect(id, addr, Claim::ClientOrPartner).await.unwrap();
    let hello = Envelope::new(
        key.public(),
        ChainId(1),
        1,
        BlockTime(0),
        Hello {
            role: Role::Client,
            nonce: 1,
        },
    )
    .sign(&key);
    c.send(&id, &hello).unwrap();
    net.until("v0 takes the next envelope too", GUARD, |n| {
        n.height(0) >= h + 3
    })
    .await;
    net.stop_all().await;
    // What it stored is intact and readable.
    assert!(stored(&net.homes[0].dir).blocks.len() as u64 >= h + 3);
}

/// The README's command, as a script runs it: `devnet --blocks N --json`
/// ends, and its last stdout line is one JSON object with the fields the
/// issue names.
#[test]
fn devnet_json_prints_one_summary_object_as_its_last_line() {
    let dir = tmp("devnet-cli");
    let out = std::process::Command::new(crate::kill::BIN)
        .args([
            "devnet",
            "--blocks",
            "3",
            "--block-interval",
            "500ms",
            "--json",
            "--reset",
        ])
        .arg("--home")
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("UndChain devnet") && stderr.contains(&dir.display().to_string()));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    for field in [
        "blocks",
        "jobs",
        "completed",
        "partial",
        "paid",
        "lost",
        "double_paid",
        "safety_violations",
        "jobs_per_s",
        "commit_latency_ms_p50",
        "commit_latency_ms_p99",
    ] {
        assert!(v.get(field).is_some(), "{field} missing in {last}");
    }
    assert!(v["blocks"].as_u64().unwrap() >= 3, "{last}");
    assert_eq!(v["lost"], 0, "{last}");
    assert_eq!(v["safety_violations"], 0, "{last}");
}
