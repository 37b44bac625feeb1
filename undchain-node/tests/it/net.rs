//! Fixtures of the end-to-end tests: temporary directories, in-process
//! validators started from `testnet` homes, and waiting on what they
//! report (with guards so a broken test fails instead of hanging; no test
//! asserts a timing).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use undchain_node::home::{Home, RoleName};
use undchain_node::load::{LoadClient, LoadEvent, unix_us};
use undchain_node::runtime::{self, NodeHandle, NodeSetup, Observed};
use undchain_node::store::RedbStore;
use undchain_node::testnet::{self, TestnetSpec, Written};
use undchain_roles::{NodeEvent, Storage, Stored};
use undchain_types::JobId;

/// A fresh, empty directory for test `name`.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("undchain-node-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Homes of `validators` validators and one client, 500 ms blocks, block 0
/// `genesis_in_us` from now.
pub fn homes(dir: &Path, validators: usize, genesis_in_us: u64) -> Vec<Written> {
    let spec = TestnetSpec {
        validators,
        passive: 0,
        partners: 0,
        clients: 1,
        block_interval_us: 500_000,
        payout_period_us: 60_000_000,
        genesis_time_us: unix_us() + genesis_in_us,
        chain_id: 1,
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        max_block_jobs: None,
    };
    testnet::write(dir, &spec).unwrap()
}

/// What is stored in a home's database (the node must be stopped).
pub fn stored(home: &Path) -> Stored {
    RedbStore::open(&Home::new(home).db_file())
        .unwrap()
        .load()
        .unwrap()
}

/// Every job of the stored blocks.
pub fn stored_jobs(s: &Stored) -> BTreeSet<JobId> {
    s.blocks
        .iter()
        .flat_map(|b| {
            b.requests
                .iter()
                .map(|r| JobId::from_request_digest(r.digest()))
        })
        .collect()
}

/// In-process validators and what they report.
pub struct Net {
    pub homes: Vec<Written>,
    pub nodes: BTreeMap<usize, (NodeHandle, undchain_node::home::HomeLock)>,
    pub heights: BTreeMap<usize, u64>,
    pub stored_jobs: BTreeMap<usize, BTreeSet<JobId>>,
    pub acked: BTreeSet<JobId>,
    obs_tx: mpsc::UnboundedSender<(usize, Observed)>,
    obs_rx: mpsc::UnboundedReceiver<(usize, Observed)>,
    load_tx: mpsc::UnboundedSender<LoadEvent>,
    load_rx: mpsc::UnboundedReceiver<LoadEvent>,
    stop: Option<watch::Sender<bool>>,
}

impl Net {
    /// Starts every validator home of `homes`.
    pub async fn start(homes: Vec<Written>) -> Net {
        let (obs_tx, obs_rx) = mpsc::unbounded_channel();
        let (load_tx, load_rx) = mpsc::unbounded_channel();
        let mut net = Net {
            homes,
            nodes: BTreeMap::new(),
            heights: BTreeMap::new(),
            stored_jobs: BTreeMap::new(),
            acked: BTreeSet::new(),
            obs_tx,
            obs_rx,
            load_tx,
            load_rx,
            stop: None,
        };
        for i in 0..net.homes.len() {
            if net.homes[i].role == RoleName::Validator {
                net.start_node(i).await;
            }
        }
        net
    }

    /// (Re)starts validator `i` from its home and database.
    pub async fn start_node(&mut self, i: usize) -> u64 {
        let home = Home::new(&self.homes[i].dir);
        let loaded = home.load().unwrap();
        let lock = home.lock().unwrap();
        let setup = NodeSetup {
            api: loaded.api,
            cfg: loaded.node_config(),
            listen: loaded.listen,
            peers: testnet::endpoints(&loaded.book),
            store: RedbStore::open(&home.db_file()).unwrap(),
            loopback: true,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = runtime::start(setup, Some(tx)).await.unwrap();
        let restored = handle.restored_height.0;
        let fwd = self.obs_tx.clone();
        tokio::spawn(async move {
            while let Some(o) = rx.recv().await {
                if fwd.send((i, o)).is_err() {
                    break;
                }
            }
        });
        self.nodes.insert(i, (handle, lock));
        restored
    }

    /// Stops validator `i` (its home lock is released).
    pub async fn stop_node(&mut self, i: usize) {
        if let Some((h, lock)) = self.nodes.remove(&i) {
            h.stop().await.unwrap();
            drop(lock);
        }
    }

    /// Starts the client home's load at `rate` requests per second.
    pub fn start_load(&mut self, rate: f64) {
        let validators: Vec<_> = self.nodes.values().map(|(h, _)| (h.id, h.addr)).collect();
        let (stop, rx) = watch::channel(false);
        for h in self.homes.iter().filter(|h| h.role == RoleName::Client) {
            let c = LoadClient {
                key: h.key.clone(),
                chain: undchain_types::ChainId(1),
                validators: validators.clone(),
                fanout: 3,
                rate,
                first_nonce: unix_us(),
                partner: None,
                stride: 1,
            };
            tokio::spawn(c.run(rx.clone(), self.load_tx.clone()));
        }
        self.stop = Some(stop);
    }

    /// Stops the load.
    pub fn stop_load(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
    }

    /// Handles reports until `done(self)` holds; panics after `guard`.
    pub async fn until(&mut self, what: &str, guard: Duration, done: impl Fn(&Net) -> bool) {
        let deadline = tokio::time::Instant::now() + guard;
        while !done(self) {
            tokio::select! {
                Some((i, o)) = self.obs_rx.recv() => match o {
                    Observed::Event(NodeEvent::BlockCommitted { number, .. }) => {
                        let h = self.heights.entry(i).or_insert(0);
                        *h = (*h).max(number.0 + 1);
                    }
                    Observed::BlockStored { jobs, .. } => {
                        self.stored_jobs.entry(i).or_default().extend(jobs);
                    }
                    Observed::Event(_) => {}
                },
                Some(e) = self.load_rx.recv() => {
                    if let LoadEvent::Acked { job, .. } = e {
                        self.acked.insert(job);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    panic!("{what}: not reached within the {guard:?} guard; heights {:?}, acked {}", self.heights, self.acked.len())
                }
            }
        }
    }

    /// The height of validator `i` (0 before its first block).
    pub fn height(&self, i: usize) -> u64 {
        self.heights.get(&i).copied().unwrap_or(0)
    }

    /// The lowest height of the running validators.
    pub fn min_height(&self) -> u64 {
        self.nodes
            .keys()
            .map(|i| self.height(*i))
            .min()
            .unwrap_or(0)
    }

    /// Stops every validator.
    pub async fn stop_all(&mut self) {
        self.stop_load();
        let ids: Vec<usize> = self.nodes.keys().copied().collect();
        for i in ids {
            self.stop_node(i).await;
        }
    }
}
