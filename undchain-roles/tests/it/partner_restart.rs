//! A partner that restarts keeps what it acknowledged (issue 17: "nothing
//! committed or acknowledged is ever lost: crash, restart included"): the
//! partner runs on a simulated disk, every batch written before its
//! `after_persist` outputs go, and a crash tears one batch (half of its
//! immediate outputs went, its write is lost). Rebuilt from the disk only,
//! it still holds every chunk it acknowledged, finishes the upload when
//! the client's messages arrive again, and serves the blob back with
//! valid proofs. A crash after a write but before its `after_persist`
//! outputs went is survived too: the chunk sent again is answered as kept
//! and the receipt offered again.

use undchain_roles::Storage;
use undchain_roles::client::{Client, UserOutput};
use undchain_roles::partner::stored::PartnerStored;
use undchain_roles::partner::{Partner, PartnerConfig};
use undchain_roles::sim::SimDisk;
use undchain_roles::utility::CHUNK_SIZE;
use undchain_types::msg::SessionBody;
use undchain_types::{Hash32, JobId, LocalTime, Message, SignedEnvelope, UtilityKind};

use crate::users::*;

/// Whether `body` tells someone the partner holds or promises something.
fn is_ack(body: &Message) -> bool {
    match body {
        Message::JobResponse(_)
        | Message::UtilityStarted(_)
        | Message::Receipt(_)
        | Message::PartialCompletion(_) => true,
        Message::Session(s) => matches!(
            s.body,
            SessionBody::Delivered { .. } | SessionBody::ReceiptOffer { .. }
        ),
        _ => false,
    }
}

/// Whether what `body` acknowledges is durable in `d`.
fn durable(d: &PartnerStored, body: &Message) -> bool {
    let session = |job: &JobId| d.jobs.get(job).and_then(|j| j.session.as_ref());
    match body {
        Message::JobResponse(r) => d.jobs.contains_key(&r.job),
        Message::UtilityStarted(s) => session(&s.job).is_some(),
        Message::Receipt(r) => session(&r.terms.job).is_some_and(|s| s.closed),
        Message::PartialCompletion(p) => {
            session(&p.last_checkpoint.checkpoint.job).is_some_and(|s| s.closed)
        }
        Message::Session(s) => match &s.body {
            SessionBody::Delivered { units } => d.chunks_of(&s.job) as u64 >= *units,
            SessionBody::ReceiptOffer { terms, .. } => {
                session(&s.job).is_some_and(|r| r.offered.as_ref() == Some(terms))
            }
            _ => true,
        },
        _ => true,
    }
}

/// How a crash hits a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// Half of the immediate outputs went, the write was lost.
    Torn,
    /// The write is durable, the `after_persist` outputs never went.
    AfterWrite,
}

/// A client and a partner hosted on a simulated disk.
struct Host {
    client: Client,
    partner: Option<Partner>,
    cfg: PartnerConfig,
    disk: SimDisk,
    now: LocalTime,
    /// Every envelope sent to the partner, in order: a restarted partner
    /// gets them again (the senders retry).
    log: Vec<SignedEnvelope>,
    /// Partner batches carried out or torn so far.
    batches: usize,
    /// The batch a crash hits, and how.
    crash_at: Option<(usize, Crash)>,
    /// Highest `Delivered` units the client was told.
    told: u64,
    /// Receipts the partner sent to validators.
    receipts: usize,
}

impl Host {
    fn new(crash_at: Option<(usize, Crash)>) -> Host {
        let cfg = partner_config(4, &[UtilityKind::Storage], 4);
        Host {
            client: client(4),
            partner: Some(Partner::new(cfg.clone(), 0)),
            cfg,
            disk: SimDisk::new(),
            now: LocalTime(1_000),
            log: Vec::new(),
            batches: 0,
            crash_at,
            told: 0,
            receipts: 0,
        }
    }

    fn partner_key(&self) -> undchain_types::PublicKey {
        self.cfg.key.public()
    }

    fn send_partner(&mut self, env: &SignedEnvelope) {
        self.log.push(env.clone());
        if let Some(p) = self.partner.as_mut() {
            let _ = p.handle_verified(self.now, env);
        }
    }

    fn send_client(&mut self, o: UserOutput) {
        let UserOutput::Send { to, envelope, .. } = o else {
            return;
        };
        if to != self.client.key() {
            self.receipts += usize::from(matches!(envelope.body(), Message::Receipt(_)));
            return;
        }
        if let Message::Session(s) = envelope.body()
            && let SessionBody::Delivered { units } = s.body
        {
            self.told = self.told.max(units);
        }
        let _ = self.client.handle_verified(self.now, &envelope);
    }

    /// Carries out the partner's batches the way a host does; the batch
    /// `crash_at` is torn and the partner is gone.
    fn partner_batches(&mut self) -> bool {
        let mut any = false;
        while let Some(r) = self.partner.as_mut().and_then(|p| p.ready()) {
            any = true;
            let n = r.number();
            self.batches += 1;
            for o in &r.immediate {
                if let UserOutput::Send { envelope, .. } = o {
                    assert!(
                        !is_ack(envelope.body()),
                        "an acknowledgement went before its write: {:?}",
                        envelope.body().kind()
                    );
                }
            }
            match self.crash_at {
                Some((b, Crash::Torn)) if b + 1 == self.batches => {
                    let half = r.immediate.len() / 2;
                    for o in r.immediate.into_iter().take(half) {
                        self.send_client(o);
                    }
                    self.disk.lose(&r.persist);
                    self.partner = None;
                    return true;
                }
                Some((b, Crash::AfterWrite)) if b + 1 == self.batches => {
                    for o in r.immediate {
                        self.send_client(o);
                    }
                    self.disk.write(&r.persist).unwrap();
                    self.partner = None;
                    return true;
                }
                _ => {}
            }
            for o in r.immediate {
                self.send_client(o);
            }
            self.disk.write(&r.persist).unwrap();
            for o in r.after_persist {
                if let UserOutput::Send { envelope, .. } = &o {
                    assert!(
                        durable(&self.disk.stored().partner, envelope.body()),
                        "{:?} went out before what it acknowledges was durable",
                        envelope.body().kind()
                    );
                }
                self.send_client(o);
            }
            if let Some(p) = self.partner.as_mut() {
                p.advance(n).unwrap();
            }
        }
        any
    }

    /// Moves messages until both sides are quiet.
    fn run(&mut self) {
        let pk = self.partner_key();
        for _ in 0..10_000 {
            let out = self.client.drain();
            let mut any = !out.is_empty();
            for o in out {
                if let UserOutput::Send { to, envelope, .. } = o
                    && to == pk
                {
                    // One batch per message: a crash can tear any of them.
                    self.send_partner(&envelope);
                    any |= self.partner_batches();
                }
            }
            any |= self.partner_batches();
            if !any {
                return;
            }
        }
        panic!("never went quiet");
    }

    /// A crashed partner rebuilt from its disk only, started, and sent
    /// everything again; returns the units it holds for `job`.
    fn restart(&mut self, job: &JobId) -> Option<u64> {
        if self.partner.is_some() {
            return None;
        }
        let stored = self.disk.load().unwrap();
        let mut p = Partner::restore(self.cfg.clone(), self.now, &stored).unwrap();
        let held = p.session(job).map_or(0, |s| s.delivered());
        p.start(self.now);
        self.partner = Some(p);
        for env in std::mem::take(&mut self.log) {
            self.send_partner(&env);
            self.partner_batches();
        }
        self.run();
        Some(held)
    }
}

fn blob(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 13 % 251) as u8).collect()
}

/// The whole story with the partner's batch `crash_at` torn: request,
/// upload of 10 chunks (K = 4), receipt, fetch. Returns the host, the
/// units the restarted partner held and the fetched blob.
fn story(crash_at: Option<(usize, Crash)>) -> (Host, Option<u64>, bool) {
    let mut h = Host::new(crash_at);
    let (job, data) = (
        h.client
            .request(h.now, request(UtilityKind::Storage, 10, 1, 0))
            .unwrap(),
        blob(9 * CHUNK_SIZE + 11),
    );
    let pk = h.partner_key();
    if let Some(p) = h.partner.as_mut() {
        p.start(h.now);
    }
    h.client.handle_verified(h.now, &ack(0, job, 3, 4)).unwrap();
    h.client
        .handle_verified(h.now, &offer(0, job, pk, 500, 2, 0))
        .unwrap();
    h.send_partner(&notification(0, job, UtilityKind::Storage, 10, 3));
    h.send_partner(&details(0, job));
    h.run();
    let root: Hash32 = h.client.store(h.now, job, pk, data.clone()).unwrap();
    h.run();
    let told = h.told;
    let mut held = h.restart(&job);
    if let Some(units) = held {
        assert!(
            units >= told,
            "crash at batch {crash_at:?}: the client was told {told} chunks were kept, the restarted partner holds {units}"
        );
    }
    h.client
        .fetch(h.now, job, pk, root, data.len() as u64)
        .unwrap();
    h.run();
    if let Some(units) = h.restart(&job) {
        held = Some(units);
        assert_eq!(units, 10, "every chunk was acknowledged before the fetch");
    }
    let fetched = h.client.take_blob(&job);
    (h, held, fetched.as_deref() == Some(&data[..]))
}

#[test]
fn a_partner_torn_at_any_batch_keeps_every_chunk_it_acknowledged_and_serves_the_blob() {
    let (honest, _, ok) = story(None);
    assert!(ok, "the honest run fetches the blob back");
    assert!(honest.receipts > 0);
    let batches = honest.batches;
    assert!(batches > 12, "{batches} partner batches");
    eprintln!("{batches} partner batches");
    for crash in [Crash::Torn, Crash::AfterWrite] {
        for at in 0..batches {
            let (h, held, ok) = story(Some((at, crash)));
            assert!(held.is_some(), "{crash:?} at batch {at}: it crashed");
            assert!(
                ok,
                "{crash:?} at batch {at}: the restarted partner served the blob back with valid proofs"
            );
            assert!(
                h.receipts > 0,
                "{crash:?} at batch {at}: the receipt still went to the validators"
            );
            assert_eq!(h.disk.lost(), u64::from(crash == Crash::Torn));
        }
    }
}

#[test]
fn the_restored_state_is_exactly_what_was_written() {
    let (h, _, _) = story(None);
    let stored = h.disk.load().unwrap();
    let ps = &stored.partner;
    assert_eq!(ps.jobs.len(), 1);
    assert_eq!(ps.chunks.len(), 10, "chunks by (job, index)");
    let s = ps.jobs.values().next().unwrap().session.as_ref().unwrap();
    assert!(s.closed && s.offered.is_some() && s.checkpoint.is_some());
    // Only partner and reservation ops reached the disk.
    assert!(stored.blocks.is_empty() && stored.seq_reserved > 0);
}
