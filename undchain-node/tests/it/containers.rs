//! A testnet of containers, perturbed in the style of CometBFT's e2e tests
//! (`test/e2e`: kill, pause, disconnect, restart as named steps, checked by
//! invariants on every node). Four validators run from the node image
//! (`undchain-node/docker/build.sh`) on a private, internal network this
//! test creates, each at the address `testnet --compose` gives it, with its
//! home mounted; a client on the host sends requests. One container is
//! killed (SIGKILL) and started again, one paused and unpaused, one
//! disconnected from the network and connected again, one restarted; then
//! every node reports the same `latest_block_hash` at the same height, every
//! node's `GET /blocks/{h}` names the same hash for every height, and the
//! heights keep rising.
//!
//! Without a running container engine (or without the image) the test
//! prints `SKIPPED` and passes, except under CI (`CI=true`), where `.ci/run`
//! builds the image and its absence fails. The containers and the network
//! are removed however the test ends.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use undchain_node::compose::{self, ContainerNet, HOME_IN_CONTAINER, Subnet};
use undchain_node::home::RoleName;
use undchain_node::load::{LoadClient, unix_us};
use undchain_node::testnet::{TestnetSpec, Written};

use crate::net::tmp;

/// How long a step may take before the test fails (a guard, not a timing
/// assertion).
const GUARD: Duration = Duration::from_secs(120);
/// Blocks the other three commit while a node is perturbed.
const OUTAGE_BLOCKS: u64 = 4;
/// The image the test runs unless `UNDCHAIN_IMAGE` names another.
const IMAGE: &str = compose::DEFAULT_IMAGE;

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Skips (or, under CI, fails) with `why`.
fn skip(why: &str) {
    assert!(
        !ci(),
        "{why}, and CI must run this test (.ci/run builds the image with undchain-node/docker/build.sh)"
    );
    eprintln!("SKIPPED: {why} (build the image with undchain-node/docker/build.sh; see README)");
}

/// `docker args`: stdout, or what went wrong.
fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "docker {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

fn must(args: &[&str]) -> String {
    docker(args).unwrap_or_else(|e| panic!("{e}"))
}

/// The image to run, if a container engine runs and has it.
fn engine_and_image() -> Option<String> {
    if let Err(e) = docker(&["version", "--format", "{{.Server.Version}}"]) {
        skip(&format!("no container engine is running ({e})"));
        return None;
    }
    let image = std::env::var("UNDCHAIN_IMAGE").unwrap_or_else(|_| IMAGE.to_owned());
    if let Err(e) = docker(&["image", "inspect", "--format", "{{.Id}}", &image]) {
        skip(&format!("the node image {image} is not built ({e})"));
        return None;
    }
    Some(image)
}

/// The test's containers and network; removed on drop, with the
/// containers' last log lines printed when the test failed.
struct Testnet {
    network: String,
    containers: Vec<String>,
    homes: Vec<Written>,
    subnet: Subnet,
}

impl Drop for Testnet {
    fn drop(&mut self) {
        for c in &self.containers {
            if std::thread::panicking() {
                let out = Command::new("docker")
                    .args(["logs", "--tail", "20", c])
                    .output();
                if let Ok(o) = out {
                    eprintln!(
                        "--- {c}, last log lines:\n{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
            }
            let _ = docker(&["rm", "-f", "-v", c]);
        }
        let _ = docker(&["network", "rm", &self.network]);
    }
}

/// Creates an internal (no route out) bridge network on a free private
/// subnet: 10.186.x.0/24, starting at an x drawn from the process id and
/// moving on while the engine reports an overlap.
fn create_network(name: &str) -> Subnet {
    let start = std::process::id() % 100;
    for k in 0..100 {
        let subnet = format!("10.186.{}.0/24", 100 + (start + k) % 100);
        let args = [
            "network",
            "create",
            "--driver",
            "bridge",
            "--internal",
            "--subnet",
            &subnet,
            "--label",
            "undchain-e2e=1",
            name,
        ];
        match docker(&args) {
            Ok(_) => return subnet.parse().unwrap(),
            Err(e) if e.contains("overlap") => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no free subnet in 10.186.100.0/22..10.186.199.0/24 for the test network");
}

impl Testnet {
    /// The network, the homes (as `testnet --compose` writes them) and one
    /// running container per validator.
    fn start(dir: &Path, image: &str) -> Testnet {
        let network = format!("undchain-e2e-{}", std::process::id());
        let _ = docker(&["network", "rm", &network]);
        let subnet = create_network(&network);
        let mut t = Testnet {
            network,
            containers: Vec::new(),
            homes: Vec::new(),
            subnet,
        };
        let spec = TestnetSpec {
            validators: 4,
            passive: 0,
            partners: 0,
            clients: 1,
            block_interval_us: 500_000,
            payout_period_us: 60_000_000,
            genesis_time_us: unix_us() + 8_000_000,
            chain_id: 1,
            host: t.subnet.node(0).unwrap().into(),
            max_block_jobs: None,
        };
        let net = ContainerNet {
            subnet: t.subnet,
            image: image.to_owned(),
        };
        t.homes = compose::write(dir, &spec, &net).unwrap();
        let (uid, gid) = compose::owner(dir).unwrap();
        for h in t.homes.iter().filter(|h| h.role == RoleName::Validator) {
            let name = format!("{}-{}", t.network, h.name);
            let _ = docker(&["rm", "-f", &name]);
            t.containers.push(name.clone());
            must(&[
                "run",
                "--detach",
                "--name",
                &name,
                "--network",
                &t.network,
                "--ip",
                &h.listen.ip().to_string(),
                "--user",
                &format!("{uid}:{gid}"),
                "--env",
                "RUST_LOG=undchain_node=info",
                "--env",
                "NO_COLOR=1",
                "--volume",
                &format!("{}:{HOME_IN_CONTAINER}", h.dir.display()),
                image,
                "run",
                "--home",
                HOME_IN_CONTAINER,
            ]);
        }
        t
    }

    fn api(&self, i: usize) -> SocketAddr {
        self.homes[i].api.unwrap()
    }
}

/// `GET path` of the API at `addr` (HTTP/1.1, `Connection: close`); `None`
/// when the node does not answer 200 with JSON in a few seconds (it may be
/// down: that is what the test does to it).
fn get(addr: SocketAddr, path: &str) -> Option<Value> {
    let patience = Duration::from_secs(3);
    let mut s = TcpStream::connect_timeout(&addr, patience).ok()?;
    s.set_read_timeout(Some(patience)).ok()?;
    s.set_write_timeout(Some(patience)).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// What the test has seen the nodes report: every `(height,
/// latest_block_hash)` of `GET /status`, per node.
#[derive(Default)]
struct Seen {
    statuses: BTreeMap<usize, BTreeMap<u64, String>>,
    heights: BTreeMap<usize, u64>,
}

impl Seen {
    /// Polls the nodes not in `down`; a node that reports another hash at
    /// a height it reported before has switched chains, which fails.
    fn poll(&mut self, t: &Testnet, down: &[usize]) {
        for i in (0..t.containers.len()).filter(|i| !down.contains(i)) {
            let Some(s) = get(t.api(i), "/status") else {
                continue;
            };
            let (Some(h), Some(hash)) = (s["height"].as_u64(), s["latest_block_hash"].as_str())
            else {
                panic!("v{i}: /status without height or latest_block_hash: {s}");
            };
            let seen = self.statuses.entry(i).or_default();
            if let Some(before) = seen.insert(h, hash.to_owned()) {
                assert_eq!(before, hash, "v{i} reported two hashes at height {h}");
            }
            let e = self.heights.entry(i).or_insert(0);
            *e = (*e).max(h);
        }
    }

    fn height(&self, i: usize) -> u64 {
        self.heights.get(&i).copied().unwrap_or(0)
    }

    fn max(&self) -> u64 {
        self.heights.values().copied().max().unwrap_or(0)
    }

    /// Polls until `done`; fails after the guard with what it saw.
    fn until(&mut self, t: &Testnet, down: &[usize], what: &str, done: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + GUARD;
        loop {
            self.poll(t, down);
            if done(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not reached within the guard; heights {:?}",
                self.heights
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Node `node` is perturbed by `down`: the others commit
    /// [`OUTAGE_BLOCKS`] more blocks without it, then `up` brings it back and it catches up with
    /// them.
    fn perturb(&mut self, t: &Testnet, node: usize, step: &str, down: &[&str], up: &[&str]) {
        let c = t.containers[node].as_str();
        let others: Vec<usize> = (0..t.containers.len()).filter(|&i| i != node).collect();
        let from = self.max();
        let with = |args: &[&str]| args.iter().map(|a| a.replace("{c}", c)).collect::<Vec<_>>();
        let down_args = with(down);
        must(&down_args.iter().map(String::as_str).collect::<Vec<_>>());
        let gone = if up.is_empty() { vec![] } else { vec![node] };
        self.until(
            t,
            &gone,
            &format!("{step}: {OUTAGE_BLOCKS} blocks without v{node}"),
            |s| others.iter().all(|&i| s.height(i) >= from + OUTAGE_BLOCKS),
        );
        if !up.is_empty() {
            let up_args = with(up);
            must(&up_args.iter().map(String::as_str).collect::<Vec<_>>());
        }
        let target = self.max() + 1;
        self.until(t, &[], &format!("{step}: v{node} catches up"), |s| {
            s.height(node) >= target
        });
        eprintln!(
            "{step} v{node}: the others went on from height {from}, v{node} caught up at {target}"
        );
    }
}

#[test]
fn four_validator_containers_killed_paused_disconnected_restarted_keep_one_chain() {
    let Some(image) = engine_and_image() else {
        return;
    };
    let dir = tmp("containers");
    let t = Testnet::start(&dir, &image);
    // A client on the host (the network's gateway) sends requests.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = t.homes.iter().find(|h| h.role == RoleName::Client).unwrap();
    let load = LoadClient {
        key: client.key.clone(),
        chain: undchain_types::ChainId(1),
        validators: t
            .homes
            .iter()
            .filter(|h| h.role == RoleName::Validator)
            .map(|h| (h.key.public(), h.listen))
            .collect(),
        fanout: 2,
        rate: 5.0,
        first_nonce: unix_us(),
        partner: None,
        stride: 1,
    };
    let (stop, stop_rx) = watch::channel(false);
    let (load_tx, _load_rx) = mpsc::unbounded_channel();
    let task = rt.spawn(load.run(stop_rx, load_tx));

    let mut seen = Seen::default();
    seen.until(&t, &[], "height 3 on every node", |s| {
        (0..4).all(|i| s.height(i) >= 3)
    });
    let net = t.network.clone();
    seen.perturb(&t, 0, "kill", &["kill", "{c}"], &["start", "{c}"]);
    seen.perturb(&t, 1, "pause", &["pause", "{c}"], &["unpause", "{c}"]);
    let ip = t.homes[2].listen.ip().to_string();
    seen.perturb(
        &t,
        2,
        "disconnect",
        &["network", "disconnect", &net, "{c}"],
        &["network", "connect", "--ip", &ip, &net, "{c}"],
    );
    // One command: SIGINT (the image's stop signal), then start.
    seen.perturb(&t, 3, "restart", &["restart", "--time", "10", "{c}"], &[]);

    // Every node, once at the same height, names the same latest block.
    let settled = seen.max();
    let all_at_one_height = move |s: &Seen| {
        s.statuses.len() == 4
            && s.statuses[&0]
                .keys()
                .any(|h| *h >= settled && s.statuses.values().all(|m| m.contains_key(h)))
    };
    seen.until(
        &t,
        &[],
        "every node seen at one height after the perturbations",
        all_at_one_height,
    );
    let mut common = 0;
    for (h, hash) in &seen.statuses[&0] {
        let others: Vec<&String> = (1..4).filter_map(|i| seen.statuses[&i].get(h)).collect();
        if others.len() == 3 {
            common += 1;
            for o in others {
                assert_eq!(o, hash, "latest_block_hash at height {h}");
            }
        }
    }
    assert!(common > 0);

    // And every node's chain is the same, block by block.
    let top = (0..4).map(|i| seen.height(i)).min().unwrap();
    let mut jobs = 0;
    for h in 0..top {
        let blocks: Vec<Value> = (0..4)
            .map(|i| {
                get(t.api(i), &format!("/blocks/{h}"))
                    .unwrap_or_else(|| panic!("v{i}: GET /blocks/{h}"))
            })
            .collect();
        let hashes: Vec<&Value> = blocks.iter().map(|b| &b["hash"]).collect();
        assert!(
            hashes.iter().all(|x| *x == hashes[0] && x.is_string()),
            "block {h}: {hashes:?}"
        );
        jobs += blocks[0]["job_count"].as_u64().unwrap();
    }

    // The heights keep rising, on every node.
    let from = seen.max();
    seen.until(&t, &[], "two more blocks on every node", |s| {
        (0..4).all(|i| s.height(i) >= from + 2)
    });
    let _ = stop.send(true);
    rt.block_on(async {
        let _ = task.await;
    });
    eprintln!(
        "containers: {} blocks agreed on by all four ({jobs} jobs), {common} heights seen on every node with one hash",
        top
    );
    assert!(jobs > 0, "the host's client got no job committed");
    drop(t);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `testnet --compose` writes homes at the subnet's fixed addresses (each
/// node binding every interface in its container) and a compose file that
/// runs each validator from the image with its home mounted; where a
/// compose tool is installed, it accepts the file.
#[test]
fn testnet_compose_writes_homes_at_fixed_addresses_and_a_compose_file() {
    let dir = tmp("compose");
    let out = Command::new(env!("CARGO_BIN_EXE_undchain-node"))
        .args([
            "testnet",
            "--v",
            "3",
            "--passive",
            "1",
            "--clients",
            "1",
            "--compose",
        ])
        .args(["--subnet", "10.187.0.0/24", "--o"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("docker-compose.yml"), "{stdout}");
    let yaml = std::fs::read_to_string(dir.join(compose::COMPOSE_FILE)).unwrap();
    let book = std::fs::read_to_string(dir.join("v0/validators.toml")).unwrap();
    for (i, name) in ["v0", "v1", "v2", "s0"].iter().enumerate() {
        let ip = format!("10.187.0.{}", 10 + i);
        assert!(yaml.contains(&format!("  {name}:\n")), "{yaml}");
        assert!(yaml.contains(&format!("ipv4_address: {ip}\n")), "{yaml}");
        assert!(yaml.contains(&format!("\"./{name}:/node\"")), "{yaml}");
        assert!(
            yaml.contains(&format!("127.0.0.1:{}:26657/tcp", 26657 + i)),
            "{yaml}"
        );
        assert!(book.contains(&format!("{ip}:26656")), "{book}");
        let node = std::fs::read_to_string(dir.join(name).join("node.toml")).unwrap();
        assert!(node.contains("listen = \"0.0.0.0:26656\""), "{node}");
        assert!(node.contains("api = \"0.0.0.0:26657\""), "{node}");
    }
    // The client's home is written, on the subnet, and runs no container.
    assert!(dir.join("c0/node.toml").exists());
    assert!(!yaml.contains("  c0:\n"), "{yaml}");
    assert!(yaml.contains("subnet: \"10.187.0.0/24\""), "{yaml}");
    let bad = Command::new(env!("CARGO_BIN_EXE_undchain-node"))
        .args([
            "testnet",
            "--v",
            "4",
            "--compose",
            "--subnet",
            "10.187.0.1/24",
            "--o",
        ])
        .arg(dir.join("bad"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("host bits"), "{err}");

    let file = dir.join(compose::COMPOSE_FILE);
    let file = file.to_str().unwrap();
    let tools: [&[&str]; 2] = [&["docker-compose"], &["docker", "compose"]];
    for tool in tools {
        let probe = Command::new(tool[0])
            .args(&tool[1..])
            .arg("version")
            .output();
        if !probe.is_ok_and(|o| o.status.success()) {
            continue;
        }
        let check = Command::new(tool[0])
            .args(&tool[1..])
            .args(["-f", file, "config", "--quiet"])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{tool:?} refuses the compose file: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        eprintln!("{tool:?} config accepts {file}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
