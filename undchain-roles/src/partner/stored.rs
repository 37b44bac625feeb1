//! What a partner makes durable (DESIGN.md "The node core": nothing
//! committed or acknowledged is lost, restart included): the jobs it
//! responded to, its sessions (client, content root, last client-signed
//! checkpoint, offered receipt terms, whether it ended) and every chunk it
//! kept, by (job, index). The ops travel in the partner's batches as
//! [`crate::StoreOp::Partner`], fold into [`crate::Stored::partner`], and
//! [`Partner::restore`] rebuilds a partner from them only.
//!
//! Every output that tells someone else the partner holds something (the
//! `JobResponse`, `UtilityStarted`, a chunk's `Delivered`, the
//! `ReceiptOffer`, the receipt and partial completion) is an
//! `after_persist` output of the batch that persists it, or of a later
//! batch: it goes out only once that write is durable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use undchain_types::msg::{
    JobNotification, MAX_CHUNK, PartialCompletion, Receipt, ReceiptTerms, SignedCheckpoint,
};
use undchain_types::{BoundedBytes, Hash32, JobId, LocalTime, Message, PublicKey};

use super::{Partner, PartnerConfig, PartnerError, Response};
use crate::store::Stored;

/// A chunk the partner kept (its position is the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChunk {
    /// The blob's content root.
    pub root: Hash32,
    /// Chunks in the blob.
    pub count: u32,
    /// Bytes in the blob.
    pub size: u64,
    /// The chunk (bounded like a session chunk).
    pub bytes: BoundedBytes<MAX_CHUNK>,
}

/// A claim the partner sent to the validators for a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredClaim {
    /// The receipt both signed.
    Receipt(Receipt),
    /// The partial completion of the last checkpoint.
    Partial(PartialCompletion),
}

impl StoredClaim {
    /// The claim as the message sent.
    pub fn message(&self) -> Message {
        match self {
            StoredClaim::Receipt(r) => r.clone().into(),
            StoredClaim::Partial(p) => p.clone().into(),
        }
    }
}

/// One durable write of a partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartnerOp {
    /// It responded to a job (the `JobResponse` whose digest this is goes
    /// out once this is durable).
    Responded {
        /// The notification it responded to.
        notification: JobNotification,
        /// The response envelope's digest (censorship evidence).
        digest: Hash32,
    },
    /// A validator relayed the job's client.
    Answered {
        /// The job.
        job: JobId,
        /// The validator that relayed the details.
        by: PublicKey,
        /// The client named.
        client: PublicKey,
    },
    /// The session of a job opened (`UtilityStarted` goes out once this is
    /// durable).
    Opened {
        /// The job.
        job: JobId,
        /// The session's client.
        client: PublicKey,
        /// The content root of a storage session.
        root: Option<Hash32>,
    },
    /// A chunk kept (its `Delivered` goes out once this is durable).
    Chunk {
        /// The job.
        job: JobId,
        /// The chunk's position.
        index: u32,
        /// The chunk.
        chunk: StoredChunk,
    },
    /// A blob whose chunks did not hash to its root was dropped whole.
    Dropped {
        /// The job.
        job: JobId,
    },
    /// The client's latest signed checkpoint (replaces an older one).
    Checkpoint {
        /// The job.
        job: JobId,
        /// The checkpoint.
        checkpoint: SignedCheckpoint,
    },
    /// The receipt terms offered to the client (the `ReceiptOffer` goes
    /// out once this is durable).
    Offered {
        /// The job.
        job: JobId,
        /// The terms the partner signed.
        terms: ReceiptTerms,
    },
    /// The session ended (receipt sent, partial claimed or nothing
    /// proven); the claim goes to the validators once this is durable.
    Closed {
        /// The job.
        job: JobId,
        /// The claim sent, if any.
        claim: Option<StoredClaim>,
    },
    /// A validator confirmed the session's claim.
    Confirmed {
        /// The job.
        job: JobId,
    },
}

impl PartnerOp {
    /// The job the op is about.
    pub fn job(&self) -> JobId {
        match self {
            PartnerOp::Responded { notification, .. } => notification.job,
            PartnerOp::Answered { job, .. }
            | PartnerOp::Opened { job, .. }
            | PartnerOp::Chunk { job, .. }
            | PartnerOp::Dropped { job }
            | PartnerOp::Checkpoint { job, .. }
            | PartnerOp::Offered { job, .. }
            | PartnerOp::Closed { job, .. }
            | PartnerOp::Confirmed { job } => *job,
        }
    }
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The client.
    pub client: PublicKey,
    /// The content root of a storage session.
    pub root: Option<Hash32>,
    /// The client's latest signed checkpoint.
    pub checkpoint: Option<SignedCheckpoint>,
    /// The receipt terms offered.
    pub offered: Option<ReceiptTerms>,
    /// Whether the session ended.
    pub closed: bool,
    /// Its claim while no validator confirmed it.
    pub claim: Option<StoredClaim>,
}

/// A job the partner responded to, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerJob {
    /// The notification it responded to.
    pub notification: JobNotification,
    /// Its response's digest.
    pub digest: Hash32,
    /// The validator that relayed the client, and the client.
    pub answered: Option<(PublicKey, PublicKey)>,
    /// Its session, once opened.
    pub session: Option<SessionRecord>,
}

impl PartnerJob {
    /// Folds `op` into the record of its job (`None`: not responded to).
    /// Chunk ops leave the record as it is (they fold into the chunks).
    pub fn fold(slot: &mut Option<PartnerJob>, op: &PartnerOp) {
        if let PartnerOp::Responded {
            notification,
            digest,
        } = op
        {
            slot.get_or_insert_with(|| PartnerJob {
                notification: notification.clone(),
                digest: *digest,
                answered: None,
                session: None,
            });
            return;
        }
        let Some(j) = slot.as_mut() else { return };
        if let PartnerOp::Answered { by, client, .. } = op {
            j.answered = Some((*by, *client));
            return;
        }
        if let PartnerOp::Opened { client, root, .. } = op {
            j.session.get_or_insert(SessionRecord {
                client: *client,
                root: *root,
                checkpoint: None,
                offered: None,
                closed: false,
                claim: None,
            });
            return;
        }
        let Some(s) = j.session.as_mut() else { return };
        match op {
            PartnerOp::Checkpoint { checkpoint, .. } => {
                let newer = s
                    .checkpoint
                    .as_ref()
                    .is_none_or(|c| c.checkpoint.counter < checkpoint.checkpoint.counter);
                if newer {
                    s.checkpoint = Some(checkpoint.clone());
                }
            }
            PartnerOp::Offered { terms, .. } => {
                s.offered.get_or_insert_with(|| terms.clone());
            }
            PartnerOp::Closed { claim, .. } => {
                s.closed = true;
                if claim.is_some() {
                    s.claim = claim.clone();
                }
            }
            PartnerOp::Confirmed { .. } => s.claim = None,
            _ => {}
        }
    }
}

/// Everything a partner made durable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartnerStored {
    /// The jobs it responded to.
    pub jobs: BTreeMap<JobId, PartnerJob>,
    /// The chunks it keeps, by (job, index).
    pub chunks: BTreeMap<(JobId, u32), StoredChunk>,
}

impl PartnerStored {
    /// Folds one write into the state.
    pub fn apply(&mut self, op: &PartnerOp) {
        match op {
            PartnerOp::Chunk { job, index, chunk } => {
                self.chunks
                    .entry((*job, *index))
                    .or_insert_with(|| chunk.clone());
            }
            PartnerOp::Dropped { job } => {
                self.chunks.retain(|(j, _), _| j != job);
            }
            op => {
                let job = op.job();
                let mut slot = self.jobs.remove(&job);
                PartnerJob::fold(&mut slot, op);
                if let Some(j) = slot {
                    self.jobs.insert(job, j);
                }
            }
        }
    }

    /// Chunks kept for `job`.
    pub fn chunks_of(&self, job: &JobId) -> usize {
        self.chunks.range((*job, 0)..=(*job, u32::MAX)).count()
    }
}

impl Partner {
    /// A partner rebuilt from what it persisted (`stored.partner` and the
    /// sequence reservation) at local time `now`; the host then calls
    /// [`Partner::start`]. Its blobs are back and served with their
    /// proofs; a session with offered receipt terms waits for the client's
    /// countersignature again (the offer made again); an unconfirmed claim
    /// is sent again; a computation or relay session (its state is
    /// not kept) is ended at the next timeout with a partial claim of its
    /// last checkpoint. Refused (typed) when a stored chunk does not fit
    /// the configured store any more.
    pub fn restore(
        cfg: PartnerConfig,
        now: LocalTime,
        stored: &Stored,
    ) -> Result<Self, PartnerError> {
        let mut p = Partner::new(cfg, stored.seq_reserved);
        let ps = &stored.partner;
        for (job, j) in &ps.jobs {
            let (answered_by, client) =
                j.answered.map_or((None, None), |(a, c)| (Some(a), Some(c)));
            let response = Response {
                notification: j.notification.clone(),
                digest: j.digest,
                sent_at: now,
                to: p.cfg.validators.clone(),
                answered_by,
                client: client.or(j.session.as_ref().map(|s| s.client)),
            };
            p.responses.insert(*job, response);
        }
        for ((job, index), c) in &ps.chunks {
            p.store
                .put(*job, c.root, *index, c.count, c.size, c.bytes.as_bytes())?;
        }
        for (job, j) in &ps.jobs {
            if let Some(s) = &j.session {
                p.restore_session(now, *job, s, ps.chunks_of(job) as u64)?;
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::msg::UsageCheckpoint;
    use undchain_types::{
        BlockNumber, BlockTime, ChainId, PerceptionScore, SigningKey, TokenAmount, UtilityKind,
    };

    fn job(i: u8) -> JobId {
        JobId(Hash32([i; 32]))
    }

    fn responded(i: u8, digest: u8) -> PartnerOp {
        PartnerOp::Responded {
            notification: JobNotification {
                job: job(i),
                kind: UtilityKind::Storage,
                units: 2,
                max_price_per_unit: TokenAmount(3),
                min_partner_score: PerceptionScore::MIN,
                block: BlockNumber(4),
            },
            digest: Hash32([digest; 32]),
        }
    }

    fn chunk(i: u8, index: u32, byte: u8) -> PartnerOp {
        PartnerOp::Chunk {
            job: job(i),
            index,
            chunk: StoredChunk {
                root: Hash32([i; 32]),
                count: 2,
                size: 20,
                bytes: BoundedBytes::try_from_vec(vec![byte; 10]).unwrap(),
            },
        }
    }

    fn checkpoint(key: &SigningKey, counter: u32) -> SignedCheckpoint {
        let checkpoint = UsageCheckpoint {
            chain_id: ChainId(1),
            job: job(1),
            commit_block: BlockNumber(4),
            client: key.public(),
            partner: key.public(),
            units: u64::from(counter),
            amount: TokenAmount(2 * u64::from(counter)),
            counter,
            at: BlockTime(9),
        };
        let client_sig = key.sign_digest(&checkpoint.digest());
        SignedCheckpoint {
            checkpoint,
            client_sig,
        }
    }

    #[test]
    fn ops_fold_once_and_only_onto_known_jobs() {
        let key = SigningKey::from_seed([3; 32]);
        let c = key.public();
        let mut s = PartnerStored::default();
        for op in [
            // A session of a job it never responded to is not one.
            PartnerOp::Opened {
                job: job(1),
                client: c,
                root: None,
            },
            responded(1, 7),
            responded(1, 8),
            PartnerOp::Opened {
                job: job(1),
                client: c,
                root: Some(Hash32([1; 32])),
            },
            PartnerOp::Checkpoint {
                job: job(1),
                checkpoint: checkpoint(&key, 2),
            },
            // An older checkpoint does not replace a newer one.
            PartnerOp::Checkpoint {
                job: job(1),
                checkpoint: checkpoint(&key, 1),
            },
            chunk(1, 0, 5),
            chunk(1, 0, 6),
            chunk(1, 1, 5),
            responded(2, 9),
            chunk(2, 0, 5),
            PartnerOp::Closed {
                job: job(1),
                claim: None,
            },
        ] {
            s.apply(&op);
        }
        let j = &s.jobs[&job(1)];
        assert_eq!(j.digest, Hash32([7; 32]), "the first response stays");
        let r = j.session.as_ref().unwrap();
        assert_eq!(r.root, Some(Hash32([1; 32])));
        assert_eq!(r.checkpoint.as_ref().unwrap().checkpoint.counter, 2);
        assert!(r.closed);
        assert_eq!(s.chunks_of(&job(1)), 2);
        assert_eq!(
            s.chunks[&(job(1), 0)].bytes.as_bytes(),
            &[5; 10],
            "a chunk is kept once"
        );
        s.apply(&PartnerOp::Dropped { job: job(1) });
        assert_eq!((s.chunks_of(&job(1)), s.chunks_of(&job(2))), (0, 1));
    }
}
