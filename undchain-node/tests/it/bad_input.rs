//! Bad input gets a clear error naming what is wrong: a corrupt or
//! truncated database, a config with a wrong field, a validator list with a
//! bad key, a second process on a home (malformed bytes on the QUIC port:
//! `e2e`). Stored data stays intact.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use undchain_node::home::Home;
use undchain_node::store::RedbStore;
use undchain_roles::{Storage, StoreOp};
use undchain_types::{BlockNumber, BlockTime, ChainId, Envelope, JobId, SigningKey};

use crate::kill::BIN;
use crate::net::{homes, tmp};

/// `undchain-node ARGS`: its exit status and stderr.
fn cli(args: &[&str], home: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--home")
        .arg(home)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A database holding one accepted request and a time correction.
fn filled_db(home: &Path) -> std::path::PathBuf {
    let path = Home::new(home).db_file();
    let mut db = RedbStore::open(&path).unwrap();
    let key = SigningKey::from_seed([9; 32]);
    let env = Arc::new(
        Envelope::new(
            key.public(),
            ChainId(1),
            1,
            BlockTime(1),
            undchain_roles::sim::request_body(1),
        )
        .sign(&key),
    );
    let job = JobId::from_request_digest(env.digest());
    db.write(&[
        StoreOp::Accepted {
            job,
            block: BlockNumber(3),
            request: env,
        },
        StoreOp::TimeCorrection(-42),
        StoreOp::SeqReserved(77),
    ])
    .unwrap();
    let s = db.load().unwrap();
    assert_eq!(
        (s.accepted.len(), s.time_correction, s.seq_reserved),
        (1, Some(-42), 77)
    );
    path
}

#[test]
fn a_stored_database_reads_back_what_was_written() {
    let dir = tmp("db-roundtrip");
    let home = &homes(&dir, 1, 60_000_000)[0].dir;
    let path = filled_db(home);
    let s = RedbStore::open(&path).unwrap().load().unwrap();
    assert_eq!(
        (s.accepted.len(), s.time_correction, s.seq_reserved),
        (1, Some(-42), 77)
    );
    assert_eq!(s.accepted.values().next().unwrap().0, BlockNumber(3));
}

#[test]
fn a_truncated_or_corrupted_database_is_an_error_naming_the_file() {
    let dir = tmp("db-corrupt");
    let home = &homes(&dir, 1, 60_000_000)[0].dir;
    let path = filled_db(home);
    let good = std::fs::read(&path).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 3].to_vec()),
        ("zeroed header", {
            let mut b = good.clone();
            b[..64].fill(0);
            b
        }),
        ("not a database", b"hello, I am a text file".to_vec()),
        ("garbage throughout", {
            let mut b = good.clone();
            for (i, x) in b.iter_mut().enumerate().skip(512) {
                *x = (i as u8).wrapping_mul(31) ^ 0xa5;
            }
            b
        }),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let e = RedbStore::open(&path).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{what}: {e}");
        let (ok, err) = cli(&["status"], home);
        assert!(!ok, "{what}");
        assert!(err.contains("node.redb"), "{what}: {err}");
        // The node refuses it; the file is left as it was for an operator.
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{what}");
    }
}

#[test]
fn config_files_with_a_wrong_field_or_a_bad_key_are_errors_naming_file_and_field() {
    let dir = tmp("bad-config");
    let home = homes(&dir, 1, 60_000_000)[0].dir.clone();
    let h = Home::new(&home);
    let node = std::fs::read_to_string(h.node_file()).unwrap();
    let list = std::fs::read_to_string(h.validators_file()).unwrap();
    let genesis = std::fs::read_to_string(h.genesis_file()).unwrap();
    let id = list
        .lines()
        .find_map(|l| l.strip_prefix("id = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let cases: Vec<(&str, std::path::PathBuf, String, &[&str])> = vec![
        (
            "unknown field",
            h.node_file(),
            format!("{node}colour = \"red\"\n"),
            &["node.toml", "colour"],
        ),
        (
            "bad listen",
            h.node_file(),
            node.replace("listen = \"", "listen = \"nowhere"),
            &["node.toml", "listen"],
        ),
        (
            "short key",
            h.node_file(),
            node.replace("key = \"", "key = \"00"),
            &["node.toml", "key"],
        ),
        (
            "bad validator key",
            h.validators_file(),
            list.replace(&id, &"zz".repeat(32)),
            &["validators.toml", "id"],
        ),
        (
            "genesis field",
            h.genesis_file(),
            genesis.replace("active_seats", "active_seatz"),
            &["genesis.toml", "active_seatz"],
        ),
        (
            "genesis interval",
            h.genesis_file(),
            genesis.replace("block_interval = \"", "block_interval = \"x"),
            &["genesis.toml", "block_interval"],
        ),
    ];
    let good = [
        (h.node_file(), node.clone()),
        (h.validators_file(), list.clone()),
        (h.genesis_file(), genesis.clone()),
    ];
    for (what, file, text, wants) in cases {
        std::fs::write(&file, text).unwrap();
        for cmd in ["run", "status"] {
            let (ok, err) = cli(&[cmd], &home);
            assert!(!ok, "{what} {cmd}");
            for w in wants {
                assert!(err.contains(w), "{what} {cmd}: {err:?} lacks {w:?}");
            }
        }
        for (f, t) in &good {
            std::fs::write(f, t).unwrap();
        }
    }
    let (ok, err) = cli(&["status"], &home);
    assert!(ok, "{err}");
}

#[test]
fn a_second_process_on_a_home_is_refused_with_the_lock_path() {
    let dir = tmp("second");
    let homes = homes(&dir, 1, 2_000_000);
    let home = &homes[0].dir;
    let mut first = Command::new(BIN)
        .args(["run", "--home"])
        .arg(home)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first one's banner: it holds the lock by then.
    let mut err = BufReader::new(first.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "{line}");
    let (ok, second) = cli(&["run"], home);
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!ok);
    let lock = Home::new(home).lock_file();
    assert!(second.contains(&lock.display().to_string()), "{second}");
    assert!(second.contains("locked"), "{second}");
    // Once the first is gone (killed), the home is free again.
    assert!(Home::new(home).lock().is_ok());
}

#[test]
fn epoch_records_fold_in_redb_as_in_the_store_model() {
    use undchain_ledger::convergence::GenesisCertificate;
    use undchain_roles::MemoryStore;
    use undchain_types::Hash32;
    let dir = tmp("db-epochs");
    let home = &homes(&dir, 1, 60_000_000)[0].dir;
    let path = Home::new(home).db_file();
    let key = SigningKey::from_seed([3; 32]);
    let cert = GenesisCertificate {
        chain_id: ChainId(1),
        counter: 1,
        genesis_hash: Hash32([5; 32]),
        signatures: [(key.public(), key.sign_digest(&Hash32([6; 32])))].into(),
    };
    let archive = |epoch: u32| StoreOp::Archive {
        epoch,
        last_block: BlockNumber(u64::from(epoch) * 4 + 3),
        last_hash: Hash32([epoch as u8; 32]),
    };
    let batches = vec![
        vec![
            archive(0),
            StoreOp::GenesisCertificate(Box::new(cert.clone())),
        ],
        // A repeated record (a replay) folds to nothing new.
        vec![archive(0), StoreOp::GenesisCertificate(Box::new(cert))],
        vec![archive(1)],
    ];
    let mut model = MemoryStore::new();
    {
        let mut db = RedbStore::open(&path).unwrap();
        for b in &batches {
            db.write(b).unwrap();
            model.write(b).unwrap();
        }
    }
    let s = RedbStore::open(&path).unwrap().load().unwrap();
    assert_eq!(s, model.load().unwrap());
    assert_eq!(s.archived.len(), 2);
    assert_eq!(s.genesis_certificates.len(), 1);
}
