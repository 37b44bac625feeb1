//! Round-trip latency and one-way throughput of small envelopes between
//! local QUIC endpoints, beside raw quinn moving the same bytes and beside
//! the cores' own `verify_strict` rate, in one run (docs/BENCHMARKS.md
//! "undchain-net / undchain-node: transport").
//!
//! ```text
//! cargo run --release -p undchain-node --example transport_bench -- --rounds 3000 --burst 100000 --senders 4
//! ```
//!
//! All on 127.0.0.1 with the same TLS 1.3 raw-key handshake and one
//! unidirectional stream per direction; the paths run in turn in 10 blocks,
//! so a load change on the machine hits all of them alike. Every path runs
//! on the same runtime (one worker thread per core) and is driven from the
//! same place: a task on the runtime's workers, as a node's runtime loop
//! is, or with `--main-thread` the main thread (`block_on`). From
//! the main thread every round trip wakes threads across cores, and what
//! that costs (on a virtual machine, waking an idle core) swamps both
//! paths; in a task a round trip stays on one worker thread.
//!
//! Latency (one envelope in flight, median and p99 of `--rounds`):
//! - `raw quinn echo`: the frame bytes of the envelope written and read back
//!   with quinn directly (no framing code, no events, no queues);
//! - `envelope pre-signed`: [`QuicTransport`] both sides, envelopes signed
//!   once beforehand, signatures not checked (transport and policy only);
//! - `envelope signed+verified`: a fresh signature per round trip, checked by
//!   the echo side and again by the sender.
//!
//! Throughput (`--burst` envelopes one way, from `--senders` connections to
//! one receiver; every envelope distinct, with its own signature, signed
//! before the clock starts: signing is the sender's work, not the
//! transport's):
//! - `raw quinn`: the same frame bytes written by each sender connection
//!   and counted by a raw quinn receiver;
//! - `envelope pre-signed`: [`QuicTransport`] both sides, not verified;
//! - `envelope signed+verified`: the receiver decodes and verifies each
//!   envelope (`verify_strict`) before the runtime sees it;
//! - `verify_strict, all cores`: the same envelopes verified by one thread
//!   per core with nothing else running: the most any receiver can verify.
//!
//! `--burst 0` measures latency alone (no bursts between the blocks).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use tokio::sync::Notify;
use undchain_net::frame::frame_envelope;
use undchain_net::{Claim, TransportConfig, TransportError, TransportEvent};
use undchain_node::transport::tls::{ALPN_USER, client_config, server_config};
use undchain_node::transport::{QuicConfig, QuicTransport};
use undchain_types::msg::TimeProbe;
use undchain_types::{
    BlockTime, ChainId, Envelope, KeyCache, PublicKey, SignedEnvelope, SigningKey,
};

struct Args {
    rounds: usize,
    burst: usize,
    senders: usize,
    main_thread: bool,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 3000,
        burst: 20_000,
        senders: 4,
        main_thread: false,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let val = |i: usize| -> usize {
            v.get(i + 1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| usage_exit(&format!("{} needs a number", v[i])))
        };
        match v[i].as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--main-thread" => {
                a.main_thread = true;
                i += 1;
                continue;
            }
            "--rounds" => a.rounds = val(i),
            "--burst" => a.burst = val(i),
            "--senders" => a.senders = val(i).max(1),
            other => usage_exit(&format!("unknown argument {other}")),
        }
        i += 2;
    }
    a
}

const USAGE: &str = "usage: transport_bench [--rounds N] [--burst N] [--senders N] [--main-thread]\n  \
--rounds N     echoed round trips for the latency rows\n  \
--burst N      envelopes per throughput block (0: latency only)\n  \
--senders N    sender connections of the one-way throughput rows\n  \
--main-thread  run the measuring loop on the main thread (block_on) instead of a runtime task";

/// Prints `msg` and the usage to stderr and exits with status 2.
fn usage_exit(msg: &str) -> ! {
    eprintln!("transport_bench: {msg}\n{USAGE}");
    std::process::exit(2)
}

fn envelope(key: &SigningKey, seq: u64) -> SignedEnvelope {
    Envelope::new(
        key.public(),
        ChainId(1),
        seq,
        BlockTime(seq),
        TimeProbe {
            nonce: seq,
            t1: seq as i64,
        },
    )
    .sign(key)
}

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn median_p99(mut rtts: Vec<Duration>) -> (f64, f64) {
    rtts.sort();
    let at = |q: f64| rtts[((rtts.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

/// A receiver's settings: rate limits out of the way (the bench measures
/// the wire and the checks, not the limiter's refusals).
fn receiver_config(verify: bool) -> QuicConfig {
    let unlimited = undchain_net::RateLimit {
        burst: 1 << 40,
        per_second: 1 << 40,
        max_peers: 64,
    };
    QuicConfig {
        transport: TransportConfig {
            verify_signatures: verify,
            rate: unlimited,
            validator_rate: unlimited,
            ..TransportConfig::default()
        },
        ..QuicConfig::default()
    }
}

/// One raw quinn echo connection: the client's two stream halves.
struct RawEcho {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    buf: Vec<u8>,
    frame: Vec<u8>,
}

impl RawEcho {
    async fn new(frame: Vec<u8>) -> RawEcho {
        let server_key = SigningKey::from_seed([1; 32]);
        let client_key = SigningKey::from_seed([2; 32]);
        let tls = QuicServerConfig::try_from(server_config(&server_key).unwrap()).unwrap();
        let server =
            quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(tls)), any())
                .unwrap();
        let addr = server.local_addr().unwrap();
        let len = frame.len();
        tokio::spawn(async move {
            let conn = server.accept().await.unwrap().await.unwrap();
            let mut recv = conn.accept_uni().await.unwrap();
            let mut send = conn.open_uni().await.unwrap();
            let mut buf = vec![0u8; len];
            while recv.read_exact(&mut buf).await.is_ok() {
                if send.write_all(&buf).await.is_err() {
                    break;
                }
            }
            drop(server);
        });
        let (tls, _) = client_config(&client_key, server_key.public(), ALPN_USER).unwrap();
        let tls = QuicClientConfig::try_from(tls).unwrap();
        let mut client = quinn::Endpoint::client(any()).unwrap();
        client.set_default_client_config(quinn::ClientConfig::new(Arc::new(tls)));
        let conn = client.connect(addr, "undchain").unwrap().await.unwrap();
        let mut send = conn.open_uni().await.unwrap();
        send.write_all(&frame).await.unwrap();
        let mut recv = conn.accept_uni().await.unwrap();
        let mut buf = vec![0u8; len];
        recv.read_exact(&mut buf).await.unwrap();
        // The endpoint must outlive the bench.
        std::mem::forget(client);
        RawEcho {
            send,
            recv,
            buf,
            frame,
        }
    }

    async fn rtts(&mut self, rounds: usize, out: &mut Vec<Duration>) {
        for _ in 0..rounds {
            let t = Instant::now();
            self.send.write_all(&self.frame).await.unwrap();
            self.recv.read_exact(&mut self.buf).await.unwrap();
            out.push(t.elapsed());
        }
    }
}

/// A client transport connected to an echoing server transport.
struct Echo {
    client: QuicTransport,
    key: SigningKey,
    peer: PublicKey,
    presigned: SignedEnvelope,
    verify: bool,
    seq: u64,
}

impl Echo {
    async fn new(verify: bool) -> Echo {
        let server_key = SigningKey::from_seed([1; 32]);
        let client_key = SigningKey::from_seed([2; 32]);
        let cfg = receiver_config(verify);
        let mut server = QuicTransport::bind(any(), server_key.clone(), cfg.clone()).unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            while let Some(ev) = server.next_event().await {
                if let TransportEvent::Received { peer, envelope, .. } = ev
                    && server.send(&peer, &envelope).is_err()
                {
                    break;
                }
            }
        });
        let client = QuicTransport::bind(any(), client_key.clone(), cfg).unwrap();
        client
            .connect(server_key.public(), addr, Claim::ClientOrPartner)
            .await
            .unwrap();
        let presigned = envelope(&client_key, 0);
        let mut e = Echo {
            client,
            key: client_key,
            peer: server_key.public(),
            presigned,
            verify,
            seq: 0,
        };
        e.client.send(&e.peer, &e.presigned).unwrap();
        e.echo().await;
        e
    }

    async fn echo(&mut self) {
        loop {
            if let Some(TransportEvent::Received { .. }) = self.client.next_event().await {
                return;
            }
        }
    }

    async fn rtts(&mut self, rounds: usize, out: &mut Vec<Duration>) {
        for _ in 0..rounds {
            let t = Instant::now();
            self.seq += 1;
            let env = if self.verify {
                envelope(&self.key, self.seq)
            } else {
                self.presigned.clone()
            };
            self.client.send(&self.peer, &env).unwrap();
            self.echo().await;
            out.push(t.elapsed());
        }
    }
}

/// What a one-way receiver has counted, and the count a burst waits for.
#[derive(Default)]
struct Counter {
    got: AtomicU64,
    target: AtomicU64,
    done: Notify,
}

impl Counter {
    fn add(&self, n: u64) {
        let got = self.got.fetch_add(n, Ordering::AcqRel) + n;
        if got >= self.target.load(Ordering::Acquire) {
            self.done.notify_one();
        }
    }

    /// Sets the target `more` past what was counted; returns it.
    fn expect(&self, more: u64) -> u64 {
        let t = self.got.load(Ordering::Acquire) + more;
        self.target.store(t, Ordering::Release);
        t
    }

    async fn wait(&self, target: u64) {
        loop {
            let n = self.done.notified();
            if self.got.load(Ordering::Acquire) >= target {
                return;
            }
            n.await;
        }
    }
}

/// The senders' envelopes: `per_sender` distinct ones each, every sender
/// under its own key.
fn senders_envelopes(senders: usize, per_sender: usize) -> Vec<(SigningKey, Vec<SignedEnvelope>)> {
    (0..senders)
        .map(|i| {
            let key = SigningKey::from_seed([10 + i as u8; 32]);
            let envs = (0..per_sender as u64)
                .map(|s| envelope(&key, s + 1))
                .collect();
            (key, envs)
        })
        .collect()
}

/// Raw quinn one way: each sender connection writes its envelopes' frame
/// bytes; the receiver counts bytes.
struct RawOneWay {
    sends: Vec<Option<quinn::SendStream>>,
    payloads: Vec<Arc<Vec<u8>>>,
    counter: Arc<Counter>,
}

impl RawOneWay {
    async fn new(work: &[(SigningKey, Vec<SignedEnvelope>)]) -> RawOneWay {
        let server_key = SigningKey::from_seed([1; 32]);
        let tls = QuicServerConfig::try_from(server_config(&server_key).unwrap()).unwrap();
        let server =
            quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(tls)), any())
                .unwrap();
        let addr = server.local_addr().unwrap();
        let counter = Arc::new(Counter::default());
        let c = counter.clone();
        tokio::spawn(async move {
            while let Some(incoming) = server.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    let conn = incoming.await.unwrap();
                    let mut recv = conn.accept_uni().await.unwrap();
                    while let Ok(Some(chunk)) = recv.read_chunk(usize::MAX, true).await {
                        c.add(chunk.bytes.len() as u64);
                    }
                });
            }
        });
        let client = quinn::Endpoint::client(any()).unwrap();
        let mut sends = Vec::new();
        let mut payloads = Vec::new();
        for (key, envs) in work {
            let (tls, _) = client_config(key, server_key.public(), ALPN_USER).unwrap();
            let cfg = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
            let conn = client
                .connect_with(cfg, addr, "undchain")
                .unwrap()
                .await
                .unwrap();
            sends.push(Some(conn.open_uni().await.unwrap()));
            std::mem::forget(conn);
            let bytes: Vec<u8> = envs
                .iter()
                .flat_map(|e| frame_envelope(e, 1 << 20).unwrap())
                .collect();
            payloads.push(Arc::new(bytes));
        }
        std::mem::forget(client);
        RawOneWay {
            sends,
            payloads,
            counter,
        }
    }

    async fn burst(&mut self) -> Duration {
        let total: u64 = self.payloads.iter().map(|p| p.len() as u64).sum();
        let target = self.counter.expect(total);
        let t = Instant::now();
        let mut tasks = Vec::new();
        for (send, payload) in self.sends.iter_mut().zip(&self.payloads) {
            let mut s = send.take().unwrap();
            let p = payload.clone();
            tasks.push(tokio::spawn(async move {
                s.write_all(&p).await.unwrap();
                s
            }));
        }
        self.counter.wait(target).await;
        let elapsed = t.elapsed();
        for (slot, task) in self.sends.iter_mut().zip(tasks) {
            *slot = Some(task.await.unwrap());
        }
        elapsed
    }
}

/// Our transport one way: each sender transport sends its envelopes; the
/// receiver's runtime counts `Received` events.
struct OneWay {
    senders: Vec<(Arc<QuicTransport>, Arc<Vec<SignedEnvelope>>)>,
    peer: PublicKey,
    counter: Arc<Counter>,
}

impl OneWay {
    async fn new(verify: bool, work: &[(SigningKey, Vec<SignedEnvelope>)]) -> OneWay {
        let server_key = SigningKey::from_seed([1; 32]);
        let mut server =
            QuicTransport::bind(any(), server_key.clone(), receiver_config(verify)).unwrap();
        let addr = server.local_addr().unwrap();
        let counter = Arc::new(Counter::default());
        let c = counter.clone();
        tokio::spawn(async move {
            while let Some(ev) = server.next_event().await {
                if let TransportEvent::Received { .. } = ev {
                    c.add(1);
                }
            }
        });
        let mut senders = Vec::new();
        for (key, envs) in work {
            let t = QuicTransport::bind(any(), key.clone(), QuicConfig::default()).unwrap();
            t.connect(server_key.public(), addr, Claim::ClientOrPartner)
                .await
                .unwrap();
            senders.push((Arc::new(t), Arc::new(envs.clone())));
        }
        OneWay {
            senders,
            peer: server_key.public(),
            counter,
        }
    }

    async fn burst(&mut self) -> Duration {
        let total: u64 = self.senders.iter().map(|(_, e)| e.len() as u64).sum();
        let target = self.counter.expect(total);
        let t = Instant::now();
        for (tx, envs) in &self.senders {
            let (tx, envs, peer) = (tx.clone(), envs.clone(), self.peer);
            tokio::spawn(async move {
                for e in envs.iter() {
                    loop {
                        match tx.send(&peer, e) {
                            Ok(()) => break,
                            Err(TransportError::QueueFull { .. }) => {
                                tokio::time::sleep(Duration::from_millis(1)).await
                            }
                            Err(err) => panic!("{err}"),
                        }
                    }
                }
            });
        }
        self.counter.wait(target).await;
        t.elapsed()
    }
}

/// `verify_strict` over the envelopes (decoded afresh, one key cache per
/// thread, as a reader holds one per connection) on `threads` threads at
/// once; returns the wall time.
fn verify_all(work: &[(SigningKey, Vec<SignedEnvelope>)], threads: usize) -> Duration {
    let decoded: Vec<SignedEnvelope> = work
        .iter()
        .flat_map(|(_, envs)| envs.iter())
        .map(|e| SignedEnvelope::from_bytes(&e.to_bytes(), 1 << 20).unwrap())
        .collect();
    let chunk = decoded.len().div_ceil(threads);
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in decoded.chunks(chunk) {
            s.spawn(move || {
                let mut cache = KeyCache::new(16);
                for e in part {
                    e.verify_with(&mut cache).unwrap();
                }
            });
        }
    });
    t.elapsed()
}

/// Rounds and bursts are split into this many blocks, run in turn on each
/// path, so a load change on the machine hits all paths alike.
const BLOCKS: usize = 10;

fn main() {
    let a = args();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    let key = SigningKey::from_seed([2; 32]);
    let frame = frame_envelope(&envelope(&key, 0), 1 << 20).unwrap();
    let per_sender = (a.burst / BLOCKS).div_ceil(a.senders);
    let work = senders_envelopes(a.senders, per_sender);
    let per_block = (per_sender * a.senders) as f64;
    let main_thread = a.main_thread;
    let bench = async move {
        let mut raw = RawEcho::new(frame.clone()).await;
        let mut pre = Echo::new(false).await;
        let mut ver = Echo::new(true).await;
        // `--burst 0`: latency alone, with nothing else between the blocks.
        let mut one_way = match per_sender {
            0 => None,
            _ => Some((
                RawOneWay::new(&work).await,
                OneWay::new(false, &work).await,
                OneWay::new(true, &work).await,
            )),
        };
        // Warm-up, not reported.
        let mut sink = Vec::new();
        raw.rtts(200, &mut sink).await;
        pre.rtts(200, &mut sink).await;
        ver.rtts(200, &mut sink).await;
        if let Some((raw1, pre1, ver1)) = &mut one_way {
            raw1.burst().await;
            pre1.burst().await;
            ver1.burst().await;
        }
        let (mut r_rtt, mut p_rtt, mut v_rtt) = (Vec::new(), Vec::new(), Vec::new());
        let mut thr: [Vec<f64>; 4] = Default::default();
        let rounds = a.rounds.div_ceil(BLOCKS);
        for _ in 0..BLOCKS {
            raw.rtts(rounds, &mut r_rtt).await;
            pre.rtts(rounds, &mut p_rtt).await;
            ver.rtts(rounds, &mut v_rtt).await;
            let rate = |d: Duration| per_block / d.as_secs_f64();
            if let Some((raw1, pre1, ver1)) = &mut one_way {
                thr[0].push(rate(raw1.burst().await));
                thr[1].push(rate(pre1.burst().await));
                thr[2].push(rate(ver1.burst().await));
                thr[3].push(rate(verify_all(&work, cores)));
            }
        }
        // NaN (printed as such) when nothing was measured.
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
        };
        let [t_raw, t_pre, t_ver, t_cores] = thr.each_mut().map(med);
        let (raw_m, raw_p) = median_p99(r_rtt);
        let (pre_m, pre_p) = median_p99(p_rtt);
        let (ver_m, ver_p) = median_p99(v_rtt);
        println!(
            "transport_bench rounds={} burst={} senders={} cores={cores} frame_bytes={} loop={}",
            rounds * BLOCKS,
            per_sender * a.senders * BLOCKS,
            a.senders,
            frame.len(),
            if main_thread { "main thread" } else { "task" }
        );
        println!(
            "{:<26} {:>14} {:>11} {:>18}",
            "path", "rtt_median_us", "rtt_p99_us", "one_way_env_per_s"
        );
        for (name, m, p, t) in [
            ("raw quinn", raw_m, raw_p, t_raw),
            ("envelope pre-signed", pre_m, pre_p, t_pre),
            ("envelope signed+verified", ver_m, ver_p, t_ver),
        ] {
            println!("{name:<26} {m:>14.1} {p:>11.1} {t:>18.0}");
        }
        println!(
            "{:<26} {:>14} {:>11} {:>18.0}",
            "verify_strict, all cores", "-", "-", t_cores
        );
        println!(
            "latency ratio pre-signed/raw = {:.2} (goal <= 1.20); signed+verified/raw = {:.2}",
            pre_m / raw_m,
            ver_m / raw_m
        );
        println!(
            "throughput ratio pre-signed/raw = {:.2}; signed+verified/raw = {:.2}; \
             signed+verified/verify_strict on all cores = {:.2} (goal >= 0.80 of one of the two)",
            t_pre / t_raw,
            t_ver / t_raw,
            t_ver / t_cores
        );
    };
    if main_thread {
        rt.block_on(bench);
    } else {
        rt.block_on(async { tokio::spawn(bench).await.unwrap() });
    }
}
