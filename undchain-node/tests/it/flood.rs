//! The transport under the floods of issue 14, on real QUIC endpoints on
//! 127.0.0.1: thousands of client connections under new keys against a
//! validator (run in a process of its own, so its resident memory is its
//! own), a peer sending tiny frames at full speed, a simultaneous dial, an
//! idle client.
//!
//! No assertion reads a clock: bounds are stated in events, attempts and
//! bytes, and waits only guard against hanging.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use tokio::task::JoinSet;
use undchain_net::{
    AdmissionConfig, Claim, PeerClass, RateLimit, TransportConfig, TransportError, TransportEvent,
};
use undchain_node::transport::tls::{ALPN_USER, client_config};
use undchain_node::transport::{QuicConfig, QuicTransport};
use undchain_types::{PublicKey, SigningKey};

use crate::support::*;

const CHILD: &str = "UNDCHAIN_FLOOD_VALIDATOR";

/// The validator of the flood test: default settings, except that the
/// per-host limits are lifted, since every flooding client shares
/// 127.0.0.1 (they stand for clients on many hosts).
fn flooded_validator_config() -> QuicConfig {
    QuicConfig {
        transport: TransportConfig {
            admission: AdmissionConfig {
                per_host: usize::MAX,
                handshakes_per_host: usize::MAX,
                ..AdmissionConfig::default()
            },
            ..TransportConfig::default()
        },
        ..QuicConfig::default()
    }
}

/// Validator 1, in a process of its own: echoes validators' envelopes,
/// answers `counts` and `stop` on stdin with a `FLOOD` line on stdout.
#[test]
#[ignore = "the validator process of the client flood test; runs only inside it"]
fn flood_validator_process() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let (tx, mut commands) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut v = node_with(1, &[1, 2], flooded_validator_config());
        println!("FLOOD addr={}", v.local_addr().unwrap());
        loop {
            tokio::select! {
                ev = v.next_event() => match ev {
                    Some(TransportEvent::Received { peer, class: PeerClass::Validator, envelope }) => {
                        let _ = v.send(&peer, &envelope);
                    }
                    Some(_) => {}
                    None => return,
                },
                cmd = commands.recv() => {
                    let c = v.admission_counts();
                    let s = v.stats();
                    println!(
                        "FLOOD validators={} clients={} handshakes={} refused={} retries={}",
                        c.validators, c.clients, c.handshakes, s.refused, s.retries
                    );
                    std::io::stdout().flush().unwrap();
                    if cmd.as_deref() != Some("counts") {
                        return;
                    }
                }
            }
        }
    });
}

/// The validator process, its stdin and the `FLOOD` lines of its stdout.
struct ValidatorProcess {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl ValidatorProcess {
    fn start() -> (Self, SocketAddr) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "flood::flood_validator_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                // The harness may print on the same line first.
                if let Some(at) = line.find("FLOOD ")
                    && tx.send(line[at + 6..].to_owned()).is_err()
                {
                    return;
                }
            }
        });
        let mut p = ValidatorProcess { child, lines };
        let first = p.line();
        let addr = first.strip_prefix("addr=").unwrap().parse().unwrap();
        (p, addr)
    }

    fn line(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the validator process answers")
    }

    /// Its counts, as `name=value` pairs.
    fn ask(&mut self, cmd: &str) -> Vec<(String, u64)> {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        self.line()
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
            .collect()
    }

    fn count(&mut self, name: &str) -> u64 {
        let all = self.ask("counts");
        all.into_iter().find(|(k, _)| k == name).unwrap().1
    }

    /// (resident, peak resident) bytes, from /proc.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
                .unwrap()
                * 1024
        };
        (kb("VmRSS:"), kb("VmHWM:"))
    }
}

impl Drop for ValidatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects as many clients, each under a new key, as it can until `stop`,
/// 32 handshakes at a time from one UDP socket, holding every connection
/// it gets; `attempts` counts finished attempts.
pub(crate) async fn client_flood(
    target: SocketAddr,
    target_key: PublicKey,
    attempts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Vec<quinn::Connection> {
    let endpoint = quinn::Endpoint::client(any()).unwrap();
    let mut held = Vec::new();
    let mut running = JoinSet::new();
    let mut i = 0u64;
    // A guard so a broken transport cannot make the flood run forever.
    while !stop.load(Ordering::Relaxed) && i < 200_000 {
        while running.len() < 32 {
            i += 1;
            let mut seed = [0x5a; 32];
            seed[..8].copy_from_slice(&i.to_le_bytes());
            let (tls, _) =
                client_config(&SigningKey::from_seed(seed), target_key, ALPN_USER).unwrap();
            let cfg = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
            let connecting = endpoint.connect_with(cfg, target, "undchain").unwrap();
            running.spawn(async move { connecting.await.ok() });
        }
        if let Some(Ok(done)) = running.join_next().await {
            attempts.fetch_add(1, Ordering::Relaxed);
            held.extend(done);
        }
    }
    held
}

/// Sends hellos `seqs` from validator 2 and waits for every echo.
async fn exchange(v2: &mut QuicTransport, seqs: std::ops::Range<u64>) {
    for seq in seqs.clone() {
        v2.send(&pk(1), &hello(2, seq)).unwrap();
    }
    for seq in seqs {
        let ev = wait_for(v2, |e| matches!(e, TransportEvent::Received { .. })).await;
        assert!(
            matches!(&ev, TransportEvent::Received { peer, envelope, .. } if *peer == pk(1) && envelope.envelope().seq == seq),
            "{ev:?}"
        );
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_client_flood_cannot_keep_two_validators_from_exchanging_envelopes() {
    let (mut v1, addr) = ValidatorProcess::start();
    let slots = AdmissionConfig::default().client_slots as u64;
    let mut v2 = node(2, &[1, 2]);
    v2.connect(pk(1), addr, Claim::Validator).await.unwrap();
    exchange(&mut v2, 0..20).await;
    let (rss_before, _) = v1.memory();

    let attempts = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let flood = tokio::spawn(client_flood(addr, pk(1), attempts.clone(), stop.clone()));

    // Every client slot taken: from here on the flood only gets refusals.
    let mut full = false;
    for _ in 0..1200 {
        if v1.count("clients") == slots {
            full = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(full, "the flood never filled the client slots");
    let (rss_full, _) = v1.memory();
    let at_full = attempts.load(Ordering::Relaxed);

    // The validators exchange envelopes in the middle of the flood, and
    // validator 2 even reconnects (a new handshake) while it runs.
    exchange(&mut v2, 20..120).await;
    v2.disconnect(&pk(1));
    v2.connect(pk(1), addr, Claim::Validator).await.unwrap();
    exchange(&mut v2, 120..220).await;
    let after_exchange = attempts.load(Ordering::Relaxed);
    assert!(
        after_exchange > at_full,
        "the flood must have been running during the exchange"
    );

    // Thousands more attempts against full slots, counted where they are
    // refused: the flooder's own count runs ahead of the validator's by the
    // attempts still in flight.
    let target = at_full + 2000;
    wait_until("2,000 more flood attempts", || {
        attempts.load(Ordering::Relaxed) >= target
    })
    .await;
    wait_until("2,000 refusals", || v1.count("refused") >= 2000).await;
    let (rss_end, peak) = v1.memory();
    stop.store(true, Ordering::Relaxed);
    let held = flood.await.unwrap();
    let report: Vec<_> = v1.ask("stop");
    let held = held.len();
    let get = |name: &str| report.iter().find(|(k, _)| k == name).unwrap().1;
    eprintln!(
        "flood: {} attempts, {held} handshakes done; validator rss {rss_before} before, \
         {rss_full} with its client slots full, {rss_end} after, peak {peak}; {report:?}",
        attempts.load(Ordering::Relaxed)
    );
    assert_eq!(get("validators"), 1);
    assert_eq!(get("clients"), slots, "the client budget is the cap");
    assert!(get("refused") >= 2000, "refused {}", get("refused"));
    assert!(
        get("retries") > 0,
        "under load, sources must prove their address"
    );
    // Resident memory stays bounded: thousands of refused clients after
    // the slots filled add (almost) nothing, and the peak is that of a
    // node holding its 1,024 client slots.
    let grown = peak.saturating_sub(rss_full);
    assert!(
        grown <= 32 << 20,
        "grew {grown} bytes after the slots filled"
    );
    assert!(peak <= 512 << 20, "peak resident memory {peak} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_tiny_frames_at_full_speed_do_not_delay_another_peers_envelopes() {
    // The flooder's bucket: 64 frames, never refilled. Whatever it sends,
    // at most 64 of its frames become events; the rest are shed unread.
    let burst = 64;
    let cfg = QuicConfig {
        transport: TransportConfig {
            rate: RateLimit {
                burst,
                per_second: 0,
                max_peers: 16,
            },
            ..TransportConfig::default()
        },
        ..QuicConfig::default()
    };
    let mut v1 = node_with(1, &[1, 2], cfg);
    let addr = v1.local_addr().unwrap();
    let v2 = node(2, &[1, 2]);
    let flooder = Arc::new(node(7, &[1]));
    v2.connect(pk(1), addr, Claim::Validator).await.unwrap();
    flooder
        .connect(pk(1), addr, Claim::ClientOrPartner)
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let (f, stop, sent) = (flooder.clone(), stop.clone(), sent.clone());
        tokio::spawn(async move {
            // 5-byte frames (a 1-byte body that is no envelope), as fast as
            // the queue takes them.
            let tiny = [0u8, 0, 0, 1, 0xee];
            while !stop.load(Ordering::Relaxed) {
                match f.send_raw(&pk(1), tiny.repeat(256)) {
                    Ok(()) => {
                        sent.fetch_add(256, Ordering::Relaxed);
                    }
                    Err(TransportError::QueueFull { .. }) => tokio::task::yield_now().await,
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    // The flood is under way before the validator sends.
    wait_until("the flood to be shed", || v1.stats().frames_shed > 10_000).await;
    let honest = 200u64;
    for seq in 0..honest {
        v2.send(&pk(1), &hello(2, seq)).unwrap();
    }
    let (mut got, mut flood_events) = (0, 0);
    while got < honest {
        match wait_for(&mut v1, |e| {
            matches!(
                e,
                TransportEvent::Received { .. } | TransportEvent::Dropped { .. }
            )
        })
        .await
        {
            TransportEvent::Received { peer, envelope, .. } if peer == pk(2) => {
                assert_eq!(envelope.envelope().seq, got, "in order");
                got += 1;
            }
            _ => flood_events += 1,
        }
    }
    let shed_while_honest = v1.stats().frames_shed;
    assert!(!flood.is_finished(), "the flood ran all along");
    wait_until("the flood to go on", || {
        v1.stats().frames_shed > shed_while_honest
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    flood.await.unwrap();
    eprintln!(
        "tiny frames: {} sent, {} shed, {flood_events} flood events before the last honest one",
        sent.load(Ordering::Relaxed),
        v1.stats().frames_shed
    );
    // The bound: before its last envelope, the honest validator's
    // envelopes waited behind at most `burst` of the flooder's events, all
    // of them in the runtime's queue at once at most (the flooder's quota).
    assert!(flood_events <= burst, "{flood_events} flood events");
}

#[tokio::test]
async fn quic_simultaneous_dial_keeps_exactly_one_connection() {
    let mut a = node(1, &[1, 2]);
    let mut b = node(2, &[1, 2]);
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let (ra, rb) = tokio::join!(
        a.connect(pk(2), b_addr, Claim::Validator),
        b.connect(pk(1), a_addr, Claim::Validator)
    );
    ra.unwrap();
    rb.unwrap();
    // Envelopes flow both ways on the connection both kept.
    for seq in 0..5 {
        a.send(&pk(2), &hello(1, seq)).unwrap();
        b.send(&pk(1), &hello(2, seq)).unwrap();
    }
    for seq in 0..5 {
        let ev = wait_for(&mut b, |e| matches!(e, TransportEvent::Received { .. })).await;
        assert!(
            matches!(&ev, TransportEvent::Received { envelope, .. } if envelope.envelope().seq == seq)
        );
        let ev = wait_for(&mut a, |e| matches!(e, TransportEvent::Received { .. })).await;
        assert!(
            matches!(&ev, TransportEvent::Received { envelope, .. } if envelope.envelope().seq == seq)
        );
    }
    assert_eq!(a.admission_counts().validators, 1);
    assert_eq!(b.admission_counts().validators, 1);
    assert!(a.is_connected(&pk(2)) && b.is_connected(&pk(1)));
}

/// A transport that closes a client after `client_idle_us` without a frame.
fn idle_client_config(client_idle_us: u64) -> QuicConfig {
    QuicConfig {
        transport: TransportConfig {
            admission: AdmissionConfig {
                client_idle_us,
                ..AdmissionConfig::default()
            },
            ..TransportConfig::default()
        },
        ..QuicConfig::default()
    }
}

#[tokio::test]
async fn quic_idle_client_is_closed_validator_is_not() {
    let cfg = idle_client_config(300_000);
    let mut v = node_with(1, &[1, 2], cfg);
    let addr = v.local_addr().unwrap();
    let w = node(2, &[1, 2]);
    w.connect(pk(1), addr, Claim::Validator).await.unwrap();
    let mut c = node(7, &[1]);
    c.connect(pk(1), addr, Claim::ClientOrPartner)
        .await
        .unwrap();
    // The client sends nothing; keep-alives do not keep its slot.
    let ev = wait_for(&mut v, |e| matches!(e, TransportEvent::Closed { .. })).await;
    assert!(
        matches!(ev, TransportEvent::Closed { peer, .. } if peer == pk(7)),
        "{ev:?}"
    );
    assert_eq!(v.stats().idle_closed, 1);
    let ev = wait_for(&mut c, |e| matches!(e, TransportEvent::Closed { .. })).await;
    let TransportEvent::Closed { error, .. } = ev else {
        unreachable!()
    };
    assert!(error.to_string().contains("idle"), "{error}");
    // The validator, connected longer, is still there.
    assert!(v.is_connected(&pk(2)));
    assert_eq!(v.admission_counts().validators, 1);
}

/// A slow-drip frame: a client announces a 500-byte frame and sends it a
/// byte every 20 ms. Bytes that end no frame are not traffic, so the
/// validator closes the client as idle while the drip is still running,
/// instead of holding its slot and its partial frame for as long as the
/// client keeps dripping.
#[tokio::test]
async fn quic_slow_drip_frame_keeps_no_client_slot() {
    let cfg = idle_client_config(300_000);
    let mut v = node_with(1, &[1], cfg);
    let addr = v.local_addr().unwrap();
    let c = node(7, &[1]);
    c.connect(pk(1), addr, Claim::ClientOrPartner)
        .await
        .unwrap();
    const BODY: usize = 500;
    const DRIP: usize = 400;
    c.send_raw(&pk(1), (BODY as u32).to_be_bytes().to_vec())
        .unwrap();
    let drip = tokio::spawn(async move {
        let mut sent = 0;
        while sent < DRIP && c.is_connected(&pk(1)) {
            if c.send_raw(&pk(1), vec![0x42]).is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sent
    });
    let ev = wait_for(&mut v, |e| matches!(e, TransportEvent::Closed { .. })).await;
    assert!(
        matches!(ev, TransportEvent::Closed { peer, .. } if peer == pk(7)),
        "{ev:?}"
    );
    assert_eq!(v.stats().idle_closed, 1);
    let sent = drip.await.unwrap();
    assert!(
        sent < DRIP,
        "the dripping client kept its slot for the whole drip ({sent} bytes)"
    );
}
