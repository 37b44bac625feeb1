//! The HTTP API of running validators (issue 18): every endpoint against
//! a 4-validator network on loopback, bad input answered 4xx, schemathesis
//! against the served OpenAPI document, and the explorer in a real
//! headless browser (Debian's `chromium`). Schemathesis and chromium are
//! skipped with a message where they are not installed, except under CI
//! (`CI=true`), where `.ci/run` installs them and their absence fails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use undchain_jobfile::{JobFile, verify_inclusion};
use undchain_ledger::ledger::state::verify_leaf;
use undchain_ledger::{Account, StateKey};
use undchain_node::home::RoleName;
use undchain_node::load::unix_us;
use undchain_node::testnet::CLIENT_BALANCE;
use undchain_types::msg::{Hello, MerkleProof, StateProof};
use undchain_types::{
    BlockTime, BoundedVec, ChainId, Envelope, Hash32, HashAlgorithm, Role, SigningKey, TokenAmount,
};

use crate::net::{Net, homes, tmp};

const GUARD: Duration = Duration::from_secs(90);

/// One HTTP/1.1 exchange (`Connection: close`): status and body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path, "").await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn error_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

fn hex(bytes: &[u8]) -> String {
    undchain_types::hash::to_hex(bytes)
}

fn api_of(net: &Net, i: usize) -> SocketAddr {
    net.nodes[&i].0.api_addr.expect("testnet homes name an API")
}

fn proof_of(v: &Value) -> StateProof {
    let siblings: Vec<Hash32> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash32::from_hex(h.as_str().unwrap()).unwrap())
        .collect();
    StateProof {
        siblings: BoundedVec::try_from(siblings).unwrap(),
    }
}

/// The root, leaf and Merkle proof of a job's `inclusion` view.
fn inclusion_of(v: &Value) -> (Hash32, Hash32, MerkleProof) {
    let h = |v: &Value| Hash32::from_hex(v.as_str().unwrap()).unwrap();
    let siblings: Vec<Hash32> = v["siblings"].as_array().unwrap().iter().map(h).collect();
    let proof = MerkleProof {
        leaf_index: v["leaf_index"].as_u64().unwrap(),
        leaf_count: v["leaf_count"].as_u64().unwrap(),
        siblings: BoundedVec::try_from(siblings).unwrap(),
    };
    (h(&v["job_root"]), h(&v["leaf"]), proof)
}

fn entry_id(env: &undchain_types::SignedEnvelope) -> undchain_types::JobId {
    undchain_types::JobId::from_request_digest(env.digest())
}

/// A signed utility request of `key`, as a client sends it.
fn request(key: &SigningKey, nonce: u64) -> Envelope {
    Envelope::new(
        key.public(),
        ChainId(1),
        unix_us(),
        BlockTime(unix_us()),
        undchain_roles::sim::request_body(nonce),
    )
}

/// Whether `tool` is on the PATH; under CI its absence fails the test.
fn tool(tool: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|f| f.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is not installed, and CI must run this test (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {tool} is not installed (`.ci/run` installs it; see README)");
    }
    found
}

/// Runs `cmd` to its end on a blocking thread; kills it after `guard`.
async fn run_guarded(mut cmd: Command, guard: Duration) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + guard;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                let text = format!(
                    "{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                return (status.success(), text);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "{cmd:?} still running after {guard:?}:\n{}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap()
}

/// Every endpoint of a running validator answers from its state, bad
/// input gets a 4xx naming what was wrong, a request posted to the API is
/// committed like one from the network, the event stream carries blocks;
/// then schemathesis finds no 5xx and no response off the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_from_a_running_validator_and_matches_its_document() {
    let dir = tmp("api");
    let mut net = Net::start(homes(&dir, 4, 1_500_000)).await;
    net.until("height 2", GUARD, |n| n.min_height() >= 2).await;
    let a = api_of(&net, 0);
    let client = net
        .homes
        .iter()
        .find(|h| h.role == RoleName::Client)
        .unwrap()
        .key
        .clone();

    // POST /requests: a signed request is filed and committed.
    let env = request(&client, 7).sign(&client);
    let body = format!("{{\"envelope\": \"{}\"}}", hex(&env.to_bytes()));
    let (status, resp) = http(a, "POST", "/requests", &body).await;
    assert_eq!(status, 202, "{resp}");
    let job = serde_json::from_str::<Value>(&resp).unwrap()["job"]
        .as_str()
        .unwrap()
        .to_owned();
    // The same envelope again is a retransmission: taken, filed once.
    let (status, again) = http(a, "POST", "/requests", &body).await;
    assert_eq!((status, &again), (202, &resp));
    // A bad signature is refused by the core's check.
    let mut bad = request(&client, 8).sign(&client).to_bytes();
    *bad.last_mut().unwrap() ^= 1;
    let body = format!("{{\"envelope\": \"{}\"}}", hex(&bad));
    let (status, resp) = http(a, "POST", "/requests", &body).await;
    assert_eq!(status, 422, "{resp}");
    assert!(error_of(&resp).contains("refused by the node"), "{resp}");
    // Validator traffic is not taken from the API.
    let hello = Envelope::new(
        client.public(),
        ChainId(1),
        unix_us(),
        BlockTime(unix_us()),
        Hello {
            role: Role::Client,
            nonce: 1,
        },
    )
    .sign(&client);
    let body = format!("{{\"envelope\": \"{}\"}}", hex(&hello.to_bytes()));
    let (status, resp) = http(a, "POST", "/requests", &body).await;
    assert_eq!(status, 422, "{resp}");
    assert!(error_of(&resp).contains("validator traffic"), "{resp}");

    // GET /jobs/{id}: accepted, then committed with a ledger proof.
    let job_view = loop {
        let v = get_json(a, &format!("/jobs/{job}")).await;
        if v["state"] == "committed" {
            break v;
        }
        assert_eq!(v["state"], "accepted", "{v}");
        assert!(
            v["inclusion"].is_null(),
            "an accepted job is in no file yet: {v}"
        );
        let h = net.min_height();
        net.until("the next block", GUARD, move |n| n.min_height() > h)
            .await;
    };
    assert_eq!(job_view["client"], client.public().to_hex());
    let in_block = job_view["block"].as_u64().unwrap();
    assert!(!job_view["proof"].as_array().unwrap().is_empty());

    // GET /blocks/{height}: the job's block lists it; its certificate
    // holds a quorum of precommits for its hash.
    let b = get_json(a, &format!("/blocks/{in_block}")).await;
    assert_eq!(b["number"].as_u64(), Some(in_block));
    assert_eq!(b["ops_count"].as_u64(), Some(0), "{b}");
    let listed = b["jobs"].as_array().unwrap();
    assert_eq!(listed.iter().filter(|j| *j == &job).count(), 1, "{b}");
    assert_eq!(b["certificate"]["block_hash"], b["hash"]);

    // The job's inclusion proof: its entry's leaf (as every validator
    // derives it from the request) is under the block header's job_root.
    let inc = &job_view["inclusion"];
    assert_eq!(inc["block"].as_u64(), Some(in_block), "{job_view}");
    assert_eq!(inc["job_root"], b["job_root"], "{job_view} {b}");
    assert_eq!(inc["leaf_count"], b["job_count"], "{job_view} {b}");
    let (root, leaf, proof) = inclusion_of(inc);
    let genesis = undchain_node::home::Home::new(&net.homes[0].dir)
        .load()
        .unwrap()
        .genesis;
    let fee = genesis.params.transaction_fee;
    let entry = undchain_roles::validator::entry_of(&env, fee).unwrap();
    let expected = JobFile::from_entries([entry])
        .unwrap()
        .leaf_of(&entry_id(&env));
    assert_eq!(Some(leaf), expected);
    assert!(verify_inclusion(&root, &leaf, &proof), "{inc}");
    let other = Hash32::from_hex(b["hash"].as_str().unwrap()).unwrap();
    assert!(!verify_inclusion(&root, &other, &proof));
    assert!(!verify_inclusion(&other, &leaf, &proof));
    assert!(b["certificate"]["signatures"].as_array().unwrap().len() >= 3);
    let b0 = get_json(a, "/blocks/0").await;
    let b1 = get_json(a, "/blocks/1").await;
    assert_eq!(b1["parent"], b0["hash"]);

    // GET /accounts/{key}: the escrow is locked, and the proof verifies
    // the account under the ledger root it names.
    let acc = get_json(a, &format!("/accounts/{}", client.public().to_hex())).await;
    let account = Account {
        balance: TokenAmount(acc["balance"].as_u64().unwrap()),
        escrow: TokenAmount(acc["escrow"].as_u64().unwrap()),
        nonce: acc["nonce"].as_u64().unwrap(),
    };
    assert!(account.escrow.0 > 0, "{acc}");
    assert!(account.balance.0 < CLIENT_BALANCE, "{acc}");
    let root = Hash32::from_hex(acc["ledger_root"].as_str().unwrap()).unwrap();
    let key = StateKey::Account(client.public());
    let proof = proof_of(&acc["proof"]);
    assert!(verify_leaf(
        HashAlgorithm::Blake3,
        &root,
        &key,
        &account,
        &proof
    ));
    let forged = Account {
        balance: TokenAmount(account.balance.0 + 1),
        ..account
    };
    assert!(!verify_leaf(
        HashAlgorithm::Blake3,
        &root,
        &key,
        &forged,
        &proof
    ));
    let nobody = SigningKey::from_seed([9; 32]).public().to_hex();
    let empty = get_json(a, &format!("/accounts/{nobody}")).await;
    assert_eq!(
        (empty["balance"].as_u64(), empty["proof"].is_null()),
        (Some(0), true)
    );

    // GET /status, /validators, /partners, /metrics.
    let s = get_json(a, "/status").await;
    assert_eq!(s["node_id"], net.nodes[&0].0.id.to_hex());
    assert_eq!(s["role"], "validator");
    assert!(s["height"].as_u64().unwrap() > in_block);
    assert_eq!(s["validator_peers"], 3);
    let vs = get_json(a, "/validators").await;
    let vs = vs.as_array().unwrap();
    assert_eq!(vs.len(), 4);
    assert!(vs.iter().all(|v| v["active"] == true));
    for (i, (h, _)) in &net.nodes {
        assert!(vs.iter().any(|v| v["id"] == h.id.to_hex()), "validator {i}");
    }
    assert_eq!(get_json(a, "/partners").await, Value::Array(vec![]));
    let (status, metrics) = http(a, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    let committed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("undchain_consensus_blocks_committed_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(committed > in_block, "{metrics}");
    assert!(metrics.contains("undchain_p2p_peers{class=\"validator\"} 3"));

    // 4xx with a JSON error naming what was wrong.
    for (path, code, says) in [
        ("/blocks/x", 400, "height \"x\""),
        ("/blocks/999999999", 404, "not decided yet"),
        ("/jobs/12", 400, "expected 64 hex digits"),
        (
            "/jobs/0000000000000000000000000000000000000000000000000000000000000000",
            404,
            "not known",
        ),
        ("/accounts/xyz", 400, "account key"),
        ("/payouts/0", 404, "not settled"),
        ("/nothing", 404, "no such route"),
    ] {
        let (status, body) = http(a, "GET", path, "").await;
        assert_eq!(status, code, "{path}: {body}");
        assert!(error_of(&body).contains(says), "{path}: {body}");
    }

    // GET /events: the next block arrives on the stream.
    let mut s = TcpStream::connect(a).await.unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut lines = BufReader::new(s).lines();
    let block_event = tokio::time::timeout(GUARD, async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if let Some(data) = l.strip_prefix("data: ") {
                let v: Value = serde_json::from_str(data).unwrap();
                if v["type"] == "block" {
                    return v;
                }
            }
        }
        panic!("the event stream ended");
    })
    .await
    .expect("a block event within the guard");
    assert!(block_event["height"].as_u64().unwrap() > in_block);

    // Schemathesis against the served document.
    if let Some(st) = tool("schemathesis") {
        let mut cmd = Command::new(st);
        cmd.args([
            "run",
            &format!("http://{a}/openapi.json"),
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "30",
            "--max-response-time",
            "5",
            "--exclude-path",
            "/events",
            "--seed",
            "18",
        ]);
        cmd.env("NO_COLOR", "1").current_dir(&dir);
        let (ok, out) = run_guarded(cmd, Duration::from_secs(300)).await;
        println!("{out}");
        assert!(ok, "schemathesis failed:\n{out}");
    }
    // Nothing schemathesis sent stopped the node.
    let before = net.min_height();
    net.until("blocks after the contract run", GUARD, |n| {
        n.min_height() > before
    })
    .await;
    net.stop_all().await;
    // A stopped node's event streams end (they hold nothing open).
    tokio::time::timeout(GUARD, async {
        while lines.next_line().await.ok().flatten().is_some() {}
    })
    .await
    .expect("the event stream ends when the node stops");
}

/// The explorer in headless chromium, against running validators under
/// load: the page shows the height rising and committed jobs arriving
/// from the event stream without a reload; a screenshot is written to
/// `target/explorer.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_shows_the_height_rising_and_committed_jobs_in_chromium() {
    let Some(chromium) = tool("chromium") else {
        return;
    };
    let dir = tmp("explorer");
    let mut net = Net::start(homes(&dir, 4, 1_500_000)).await;
    net.start_load(10.0);
    net.until("height 2", GUARD, |n| n.min_height() >= 2).await;
    let a = api_of(&net, 1);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    std::fs::create_dir_all(&target).unwrap();
    let shot = target.join("explorer.png");
    let _ = std::fs::remove_file(&shot);
    let profile = dir.join("chromium-profile");
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--window-size=1400,1000",
        // The page stops following after 3 live blocks (`?follow=3`);
        // the budget only bounds the wait.
        "--virtual-time-budget=60000",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.display()));
    cmd.arg(format!("--screenshot={}", shot.display()));
    cmd.arg("--dump-dom");
    cmd.arg(format!("http://{a}/?follow=3"));
    let (ok, dom) = run_guarded(cmd, Duration::from_secs(180)).await;
    assert!(ok, "chromium failed:\n{dom}");
    // The height element: its first value and its last.
    let attr = |name: &str| -> u64 {
        let at = dom
            .find(&format!("{name}=\""))
            .unwrap_or_else(|| panic!("{name} not in the DOM:\n{dom}"));
        let rest = &dom[at + name.len() + 2..];
        rest[..rest.find('"').unwrap()]
            .parse()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let (first, last) = (attr("data-first"), attr("data-height"));
    assert!(last > first, "height did not rise: {first} -> {last}");
    assert!(dom.contains("followed 3 blocks"), "{dom}");
    // Jobs that arrived live: each is committed at the node.
    let jobs: Vec<&str> = dom.split("data-job=\"").skip(1).map(|s| &s[..64]).collect();
    assert!(!jobs.is_empty(), "no live job in the DOM:\n{dom}");
    for j in jobs.iter().take(5) {
        let v = get_json(a, &format!("/jobs/{j}")).await;
        assert_ne!(v["state"], "accepted", "{v}");
    }
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    println!("screenshot: {} ({} bytes)", shot.display(), png.len());
    net.stop_all().await;
}
