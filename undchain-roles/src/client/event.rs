//! What the client and partner machines tell their user (a wallet's
//! screen, a daemon's log, the simulator's checker).

use undchain_types::{BlockNumber, JobId, PublicKey, Role};

/// Why a client stopped a session ([`UserEvent::SessionFailed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionFailure {
    /// The partner broke the session's terms (a chunk or output that does
    /// not check, a count going back, a message that does not fit).
    Broken(String),
    /// Nothing came from the partner for `idle_us` while the session
    /// waited on it (`ClientConfig::session_idle_us`).
    Silent {
        /// The idle deadline that passed, microseconds.
        idle_us: u64,
    },
}

/// What happened, for the user (a wallet's screen, a daemon's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserEvent {
    /// A validator acknowledged the request.
    Acked {
        /// The job.
        job: JobId,
        /// The validator.
        validator: PublicKey,
        /// The block its ack names.
        block: BlockNumber,
        /// Distinct validators that acked so far.
        acks: usize,
    },
    /// Every retry to `validator` failed: the scream cast started.
    ScreamCast {
        /// The job.
        job: JobId,
        /// The validator that never answered.
        validator: PublicKey,
    },
    /// Nobody answered, neither the validator nor the scream cast.
    GaveUp {
        /// The job.
        job: JobId,
        /// The validator tried.
        validator: PublicKey,
    },
    /// Fewer than f+1 acks came: the request went to these validators too.
    Forwarded {
        /// The job.
        job: JobId,
        /// The validators it was forwarded to.
        to: Vec<PublicKey>,
    },
    /// An inclusion proof checked: the job is in this block.
    Committed {
        /// The job.
        job: JobId,
        /// The block.
        block: BlockNumber,
    },
    /// A partner offer was taken.
    OfferTaken {
        /// The job.
        job: JobId,
        /// The partner.
        partner: PublicKey,
    },
    /// A partner offer was declined.
    OfferDeclined {
        /// The job.
        job: JobId,
        /// The partner.
        partner: PublicKey,
        /// Why.
        reason: super::offers::Decline,
    },
    /// A usage checkpoint was signed (client) or kept (partner).
    Checkpoint {
        /// The job.
        job: JobId,
        /// The other side.
        peer: PublicKey,
        /// Cumulative units it proves.
        units: u64,
    },
    /// The receipt was signed by both and sent to validators.
    ReceiptSent {
        /// The job.
        job: JobId,
        /// The other side.
        peer: PublicKey,
        /// Units it pays.
        units: u64,
    },
    /// A validator confirmed completion.
    Completed {
        /// The job.
        job: JobId,
        /// The block of completion.
        block: BlockNumber,
    },
    /// No validator confirmed the receipt in time: it went to others.
    ReceiptResent {
        /// The job.
        job: JobId,
        /// The validators it went to now.
        to: Vec<PublicKey>,
    },
    /// Every active validator was sent the receipt and none confirmed: the
    /// evidence (the signed receipt and who got it) is the user's to report.
    ReceiptIgnored {
        /// The job.
        job: JobId,
        /// The validators that got it.
        tried: Vec<PublicKey>,
    },
    /// A session was stopped: the other side broke its terms or went
    /// silent. Nothing more is taken or signed in it.
    SessionFailed {
        /// The job.
        job: JobId,
        /// The other side.
        peer: PublicKey,
        /// What was wrong.
        reason: SessionFailure,
    },
    /// A fetched blob is complete and checked ([`super::Client::take_blob`]).
    Fetched {
        /// The job.
        job: JobId,
        /// Its size.
        size: u64,
    },
    /// Connection details were reported as bad.
    ConnectionReported {
        /// The job.
        job: JobId,
        /// The validator that relayed them.
        relayed_by: PublicKey,
    },
    /// A validator said this identity is under the floor for a role.
    LowPerception {
        /// The role.
        role: Role,
    },
    /// Partner: a session started and `UtilityStarted` went out.
    Started {
        /// The job.
        job: JobId,
        /// The client.
        client: PublicKey,
        /// The content root, for storage.
        content_root: Option<undchain_types::Hash32>,
    },
    /// Partner: a validator confirmed the job entered the payout pool.
    InPayoutPool {
        /// The job.
        job: JobId,
        /// The block.
        block: BlockNumber,
    },
    /// Partner: no receipt came; the last client-signed checkpoint was
    /// claimed as a partial completion.
    PartialClaimed {
        /// The job.
        job: JobId,
        /// Units it proves.
        units: u64,
    },
    /// Partner: no receipt came and no checkpoint proves anything.
    NothingProven {
        /// The job.
        job: JobId,
    },
    /// Partner: at capacity, announced to the validators.
    AtCapacity {
        /// Jobs running.
        running: u32,
    },
    /// Partner: a validator said a requirement failed.
    RequirementFailed(undchain_types::msg::Requirement),
    /// Partner: a censorship complaint went to the chain owner's key.
    ComplaintSent {
        /// The validators accused.
        accused: Vec<PublicKey>,
        /// Jobs in the evidence.
        jobs: usize,
    },
}
