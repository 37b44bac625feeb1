//! `client --home DIR request`: a client home's request over real QUIC to
//! `run` processes of a `testnet`, acknowledged by f + 1 validators and
//! committed in a block; a request from a home that is not a client's, or
//! with no validator running, fails with an error that says so.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::mpsc;

use undchain_node::home::RoleName;
use undchain_types::JobId;

use crate::kill::{BIN, spawn_run, until};
use crate::net::{homes, stored, stored_jobs, tmp};

/// Runs `client --home HOME request ARGS`; (exit ok, stdout, stderr).
fn client_request(home: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("client")
        .arg("--home")
        .arg(home)
        .arg("request")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `key=value` fields of an output line.
fn key_values(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

#[test]
fn a_client_request_is_acknowledged_by_f_plus_one_and_committed() {
    let dir = tmp("client-cmd");
    let homes = homes(&dir, 4, 4_000_000);
    let client = homes.iter().find(|h| h.role == RoleName::Client).unwrap();
    // Nobody runs yet: the request cannot be acknowledged, and says so.
    let (ok, _, err) = client_request(
        &client.dir,
        &["--kind", "storage", "--units", "5", "--wait", "1s"],
    );
    assert!(!ok);
    assert!(err.contains("0 of the 2 acknowledgements"), "{err}");
    // A validator's home is not a client's.
    let (ok, _, err) = client_request(&homes[0].dir, &["--kind", "storage", "--units", "5"]);
    assert!(!ok);
    assert!(err.contains("needs a client home"), "{err}");

    let (tx, rx) = mpsc::channel();
    let mut children: Vec<_> = (0..4)
        .map(|i| spawn_run(&homes[i].dir, i, tx.clone()))
        .collect();
    let mut heights = BTreeMap::new();
    let all = |n: u64| {
        move |h: &BTreeMap<usize, u64>| (0..4).all(|i| h.get(&i).copied().unwrap_or(0) >= n)
    };
    until(&rx, &mut heights, "2 blocks everywhere", all(2));
    let (ok, out, err) = client_request(
        &client.dir,
        &["--kind", "computation", "--units", "7", "--price", "2"],
    );
    assert!(ok, "stdout {out} stderr {err}");
    // job=<64 hex> block=<n> acks=<k>/<f+1>
    let line = out.lines().last().unwrap_or_default();
    let fields = key_values(line);
    let job = fields["job"];
    assert_eq!(job.len(), 64, "{line}");
    let block: u64 = fields["block"].parse().unwrap();
    let (k, needed) = fields["acks"].split_once('/').unwrap();
    let (k, needed): (usize, usize) = (k.parse().unwrap(), needed.parse().unwrap());
    assert_eq!(needed, 2, "f + 1 of 4 validators");
    assert!(k >= needed, "{line}");
    // The job lands in a committed block (the acked one, or a later one).
    let end = block + 4;
    until(&rx, &mut heights, "blocks past the acked one", all(end));
    // Its status, checked against f + 1 validators' files.
    let status = |job: &str| {
        let out = Command::new(BIN)
            .args(["client", "--home"])
            .arg(&client.dir)
            .args([
                "status",
                job,
                "--block",
                &block.to_string(),
                "--blocks",
                "3",
            ])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = status(job);
    assert!(ok, "stdout {out} stderr {err}");
    let line = out.lines().last().unwrap_or_default();
    let st = key_values(line);
    assert_eq!(st["job"], job, "{line}");
    let at: u64 = st["block"].parse().unwrap();
    assert!((block..block + 3).contains(&at), "{line}");
    let (k, needed) = st["checked"].split_once('/').unwrap();
    assert!(
        k.parse::<usize>().unwrap() >= needed.parse::<usize>().unwrap(),
        "{line}"
    );
    // A job nobody requested is in none of those files.
    let (ok, _, err) = status(&"ab".repeat(32));
    assert!(!ok);
    assert!(
        err.contains("is in none of the committed job files"),
        "{err}"
    );
    for c in &mut children {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let jobs = stored_jobs(&stored(&homes[0].dir));
    let hex: Vec<String> = jobs.iter().map(|j: &JobId| j.0.to_hex()).collect();
    assert!(hex.iter().any(|j| j == job), "job {job} not in v0's chain");
}
