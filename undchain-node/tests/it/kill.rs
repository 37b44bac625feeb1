//! Crash safety with real processes: `testnet` homes, each validator a
//! `run` process; one is killed with SIGKILL, three times at random points
//! of the commit path, and started again with `run` each time.
//! It catches up, its chain is the others' chain, and no request any
//! validator acknowledged is lost.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::{mpsc as tmpsc, watch};
use undchain_node::home::RoleName;
use undchain_node::load::{LoadClient, LoadEvent, unix_us};

use crate::net::{homes, stored, stored_jobs, tmp};

pub const BIN: &str = env!("CARGO_BIN_EXE_undchain-node");

/// A `run` process whose JSON log lines report its committed heights.
pub fn spawn_run(home: &Path, i: usize, heights: mpsc::Sender<(usize, u64)>) -> Child {
    let mut child = Command::new(BIN)
        .args(["--log-format", "json", "run", "--home"])
        .arg(home)
        .env("RUST_LOG", "undchain_node=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["fields"]["message"] == "block committed" {
                if let Some(h) = v["fields"]["height"].as_u64() {
                    let _ = heights.send((i, h + 1));
                }
            }
        }
    });
    child
}

/// Waits until `done(heights)`, reading the processes' reports; panics
/// after a guard (not a timing assertion).
pub fn until(
    rx: &mpsc::Receiver<(usize, u64)>,
    heights: &mut BTreeMap<usize, u64>,
    what: &str,
    done: impl Fn(&BTreeMap<usize, u64>) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !done(heights) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, h)) => {
                let e = heights.entry(i).or_insert(0);
                *e = (*e).max(h);
            }
            Err(_) => panic!("{what}: not reached within the guard; heights {heights:?}"),
        }
    }
}

#[test]
fn a_validator_killed_with_sigkill_restarts_with_run_catches_up_and_loses_no_acknowledged_job() {
    let dir = tmp("kill");
    let homes = homes(&dir, 4, 4_000_000);
    let (tx, rx) = mpsc::channel();
    let mut children: BTreeMap<usize, Child> = (0..4)
        .map(|i| (i, spawn_run(&homes[i].dir, i, tx.clone())))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = homes.iter().find(|h| h.role == RoleName::Client).unwrap();
    let validators: Vec<_> = homes[..4]
        .iter()
        .map(|h| (h.key.public(), h.listen))
        .collect();
    let (stop, stop_rx) = watch::channel(false);
    let (load_tx, mut load_rx) = tmpsc::unbounded_channel();
    let load = LoadClient {
        key: client.key.clone(),
        chain: undchain_types::ChainId(1),
        validators,
        fanout: 3,
        rate: 20.0,
        first_nonce: unix_us(),
        partner: None,
        stride: 1,
    };
    let task = rt.spawn(load.run(stop_rx, load_tx));
    let mut heights = BTreeMap::new();
    let all = |n: u64| {
        move |h: &BTreeMap<usize, u64>| (0..4).all(|i| h.get(&i).copied().unwrap_or(0) >= n)
    };
    until(&rx, &mut heights, "3 blocks everywhere", all(3));
    // Three SIGKILLs, each at a random point of a block's commit path (a
    // random delay within the 500 ms block after v1 reported a commit):
    // no shutdown of any kind. The seed is printed; `UNDCHAIN_KILL_SEED`
    // replays it.
    let seed = std::env::var("UNDCHAIN_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(unix_us);
    eprintln!("kill points seed {seed} (UNDCHAIN_KILL_SEED)");
    let mut rng = undchain_sim::SplitMix64::new(seed);
    let mut target = 0;
    for round in 0..3 {
        let next = heights[&1] + 1;
        until(&rx, &mut heights, "v1 commits", |h| h[&1] >= next);
        let delay = rng.below(500);
        std::thread::sleep(Duration::from_millis(delay));
        children.get_mut(&1).unwrap().kill().unwrap();
        children.get_mut(&1).unwrap().wait().unwrap();
        eprintln!(
            "kill {round}: v1 killed {delay} ms after committing height {}",
            next - 1
        );
        let at = heights[&0];
        until(&rx, &mut heights, "2 more blocks without v1", |h| {
            h[&0] >= at + 2
        });
        heights.insert(1, 0);
        children.insert(1, spawn_run(&homes[1].dir, 1, tx.clone()));
        target = heights[&0] + 2;
        until(&rx, &mut heights, "v1 catches up", |h| h[&1] >= target);
    }
    let _ = stop.send(true);
    rt.block_on(async {
        let _ = task.await;
    });
    let mut acked = std::collections::BTreeSet::new();
    while let Ok(e) = load_rx.try_recv() {
        if let LoadEvent::Acked { job, .. } = e {
            acked.insert(job);
        }
    }
    // Blocks for the last requests.
    let end = heights[&1] + 3;
    until(&rx, &mut heights, "the last requests' blocks", all(end));
    for c in children.values_mut() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    assert!(!acked.is_empty());
    let v1 = stored(&homes[1].dir);
    let v0 = stored(&homes[0].dir);
    let jobs = stored_jobs(&v1);
    let lost = acked.iter().filter(|j| !jobs.contains(j)).count();
    assert_eq!(
        lost,
        0,
        "of {} acknowledged jobs, {lost} are not in v1's chain",
        acked.len()
    );
    let n = v1.blocks.len().min(v0.blocks.len());
    assert!(n as u64 >= target, "{n}");
    for h in 0..n {
        assert_eq!(
            v1.blocks[h].block.header, v0.blocks[h].block.header,
            "height {h}"
        );
    }
}
