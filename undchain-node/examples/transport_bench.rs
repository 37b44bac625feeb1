//! Round-trip latency and throughput of small envelopes between two local
//! QUIC endpoints, beside a raw quinn echo of the same bytes, in one run
//! (docs/BENCHMARKS.md "undchain-net / undchain-node: transport").
//!
//! ```text
//! cargo run --release -p undchain-node --example transport_bench -- --rounds 3000 --burst 20000
//! ```
//!
//! Three paths, all on 127.0.0.1 with the same TLS 1.3 raw-key handshake and
//! one unidirectional stream per direction:
//! - `raw quinn echo`: the frame bytes of the envelope written and read back
//!   with quinn directly (no framing code, no events, no queues);
//! - `envelope pre-signed`: [`QuicTransport`] both sides, envelopes signed
//!   once beforehand, signatures not checked (transport and policy only);
//! - `envelope signed+verified`: a fresh signature per round trip, checked by
//!   the echo side and again by the sender.
//!
//! Latency: one envelope in flight, median and p99 of `--rounds` round trips.
//! Throughput: `--burst` envelopes with at most `--window` in flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use undchain_net::frame::frame_envelope;
use undchain_net::{Claim, TransportConfig, TransportEvent};
use undchain_node::transport::tls::{ALPN_USER, client_config, server_config};
use undchain_node::transport::{QuicConfig, QuicTransport};
use undchain_types::msg::TimeProbe;
use undchain_types::{BlockTime, ChainId, Envelope, SignedEnvelope, SigningKey};

struct Args {
    rounds: usize,
    burst: usize,
    window: usize,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 3000,
        burst: 20_000,
        window: 256,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let val = |i: usize| -> usize {
            v.get(i + 1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{} needs a number", v[i]))
        };
        match v[i].as_str() {
            "--rounds" => a.rounds = val(i),
            "--burst" => a.burst = val(i),
            "--window" => a.window = val(i),
            other => panic!("unknown argument {other} (use --rounds N --burst N --window N)"),
        }
        i += 2;
    }
    a
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

struct Stats {
    median_us: f64,
    p99_us: f64,
    per_s: f64,
}

fn stats(mut rtts: Vec<Duration>, burst: usize, burst_time: Duration) -> Stats {
    rtts.sort();
    let at = |q: f64| rtts[((rtts.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    Stats {
        median_us: at(0.5),
        p99_us: at(0.99),
        per_s: burst as f64 / burst_time.as_secs_f64(),
    }
}

/// One raw quinn echo connection: the client's two stream halves.
struct Raw {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    buf: Vec<u8>,
    frame: Vec<u8>,
}

impl Raw {
    async fn new(frame: Vec<u8>) -> Raw {
        let server_key = SigningKey::from_seed([1; 32]);
        let client_key = SigningKey::from_seed([2; 32]);
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let tls = QuicServerConfig::try_from(server_config(&server_key).unwrap()).unwrap();
        let server =
            quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(tls)), any).unwrap();
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
        let mut client = quinn::Endpoint::client(any).unwrap();
        client.set_default_client_config(quinn::ClientConfig::new(Arc::new(tls)));
        let conn = client.connect(addr, "undchain").unwrap().await.unwrap();
        let mut send = conn.open_uni().await.unwrap();
        send.write_all(&frame).await.unwrap();
        let mut recv = conn.accept_uni().await.unwrap();
        let mut buf = vec![0u8; len];
        recv.read_exact(&mut buf).await.unwrap();
        // The endpoint must outlive the bench.
        std::mem::forget(client);
        Raw {
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

    async fn burst(&mut self, n: usize, window: usize) -> Duration {
        let t = Instant::now();
        let (mut sent, mut got) = (0, 0);
        while got < n {
            while sent < n && sent - got < window {
                self.send.write_all(&self.frame).await.unwrap();
                sent += 1;
            }
            self.recv.read_exact(&mut self.buf).await.unwrap();
            got += 1;
        }
        t.elapsed()
    }
}

/// A client transport connected to an echoing server transport.
struct Env {
    client: QuicTransport,
    key: SigningKey,
    peer: undchain_types::PublicKey,
    presigned: SignedEnvelope,
    verify: bool,
    seq: u64,
}

impl Env {
    async fn new(verify: bool, window: usize) -> Env {
        let server_key = SigningKey::from_seed([1; 32]);
        let client_key = SigningKey::from_seed([2; 32]);
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let cfg = QuicConfig {
            transport: TransportConfig {
                verify_signatures: verify,
                // The bench measures the wire, not the limiter's refusals.
                rate: undchain_net::RateLimit {
                    burst: 1 << 40,
                    per_second: 1 << 40,
                    max_peers: 16,
                },
                queue_per_peer: window.max(1024),
                ..TransportConfig::default()
            },
            ..QuicConfig::default()
        };
        let mut server = QuicTransport::bind(any, server_key.clone(), cfg.clone()).unwrap();
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
        let client = QuicTransport::bind(any, client_key.clone(), cfg).unwrap();
        client
            .connect(server_key.public(), addr, Claim::ClientOrPartner)
            .await
            .unwrap();
        let presigned = envelope(&client_key, 0);
        let mut e = Env {
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

    fn next(&mut self) -> SignedEnvelope {
        self.seq += 1;
        if self.verify {
            envelope(&self.key, self.seq)
        } else {
            self.presigned.clone()
        }
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
            let env = self.next();
            self.client.send(&self.peer, &env).unwrap();
            self.echo().await;
            out.push(t.elapsed());
        }
    }

    async fn burst(&mut self, n: usize, window: usize) -> Duration {
        let t = Instant::now();
        let (mut sent, mut got) = (0, 0);
        while got < n {
            while sent < n && sent - got < window {
                let env = self.next();
                self.client.send(&self.peer, &env).unwrap();
                sent += 1;
            }
            self.echo().await;
            got += 1;
        }
        t.elapsed()
    }
}

/// Rounds and bursts are split into this many blocks, run in turn on each
/// path, so a load change on the machine hits all paths alike.
const BLOCKS: usize = 10;

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let key = SigningKey::from_seed([2; 32]);
    let frame = frame_envelope(&envelope(&key, 0), 1 << 20).unwrap();
    rt.block_on(async {
        let mut raw = Raw::new(frame.clone()).await;
        let mut pre = Env::new(false, a.window).await;
        let mut ver = Env::new(true, a.window).await;
        // Warm-up, not reported.
        let mut sink = Vec::new();
        raw.rtts(200, &mut sink).await;
        pre.rtts(200, &mut sink).await;
        ver.rtts(200, &mut sink).await;
        let (mut r_rtt, mut p_rtt, mut v_rtt) = (Vec::new(), Vec::new(), Vec::new());
        let (mut r_t, mut p_t, mut v_t) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let rounds = a.rounds.div_ceil(BLOCKS);
        let burst = a.burst.div_ceil(BLOCKS);
        for _ in 0..BLOCKS {
            raw.rtts(rounds, &mut r_rtt).await;
            pre.rtts(rounds, &mut p_rtt).await;
            ver.rtts(rounds, &mut v_rtt).await;
            r_t += raw.burst(burst, a.window).await;
            p_t += pre.burst(burst, a.window).await;
            v_t += ver.burst(burst, a.window).await;
        }
        // Decoding one envelope (key decompression included), same run: on
        // the envelope paths' critical path twice per round trip.
        let bytes = pre.presigned.to_bytes();
        let t = Instant::now();
        for _ in 0..20_000 {
            std::hint::black_box(
                SignedEnvelope::from_bytes(std::hint::black_box(&bytes), 1 << 20).unwrap(),
            );
        }
        let decode_us = t.elapsed().as_secs_f64() * 1e6 / 20_000.0;
        let n = burst * BLOCKS;
        let (raw, pre, ver) = (stats(r_rtt, n, r_t), stats(p_rtt, n, p_t), stats(v_rtt, n, v_t));
        println!(
            "transport_bench rounds={} burst={} window={} frame_bytes={}",
            rounds * BLOCKS,
            n,
            a.window,
            frame.len()
        );
        println!(
            "{:<26} {:>14} {:>11} {:>16}",
            "path", "rtt_median_us", "rtt_p99_us", "throughput_env_s"
        );
        for (name, s) in [
            ("raw quinn echo", &raw),
            ("envelope pre-signed", &pre),
            ("envelope signed+verified", &ver),
        ] {
            println!(
                "{:<26} {:>14.1} {:>11.1} {:>16.0}",
                name, s.median_us, s.p99_us, s.per_s
            );
        }
        println!(
            "latency ratio pre-signed/raw = {:.2} (goal <= 1.20); signed+verified/raw = {:.2}",
            pre.median_us / raw.median_us,
            ver.median_us / raw.median_us
        );
        println!(
            "throughput ratio pre-signed/raw = {:.2}; signed+verified/raw = {:.2}",
            pre.per_s / raw.per_s,
            ver.per_s / raw.per_s
        );
        println!(
            "envelope decode = {decode_us:.1} us (twice per round trip); pre-signed minus raw minus two decodes = {:.1} us",
            pre.median_us - raw.median_us - 2.0 * decode_us
        );
    });
}
