//! Partner <-> validator messages (design notes, "Partner to Validator";
//! DESIGN.md "Partner to validator", "Smaller decisions").

use serde::{Deserialize, Serialize};

use super::common::{Endpoint, MAX_ACTIVE, MAX_MEDIA};
use crate::bounded::{BoundedBytes, BoundedString, BoundedVec};
use crate::crypto::{PublicKey, Signature, SigningKey};
use crate::hash::{Hash32, HashContext};
use crate::ids::{BlockNumber, BlockTime, ChainId, JobId, PerceptionScore, TokenAmount};
use crate::roles::{Role, UtilityKind};

/// Largest challenge payload or answer.
pub const MAX_CHALLENGE: usize = 64 * 1024;
/// Longest free-text detail.
pub const MAX_DETAIL: usize = 256;
/// Most evidence items in one censorship complaint.
pub const MAX_EVIDENCE: usize = 64;

/// Partner story 1: ready to provide utility of these kinds, with this much
/// capacity. Sent to the validator pool using the validator list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ReadyToProvide {
    /// The utility kinds the partner offers.
    pub kinds: BoundedVec<UtilityKind, 3>,
    /// Jobs it can take at once.
    pub capacity: u32,
    /// Price per unit it asks.
    pub price_per_unit: TokenAmount,
    /// Set for a centralised partner: clients connect here directly.
    pub centralized: Option<Endpoint>,
    /// How validators reach the partner.
    pub media: BoundedVec<Endpoint, MAX_MEDIA>,
}

/// Partner story 1: subscribe to notifications of jobs of these kinds
/// (validators notify only matching jobs, never the whole file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct Subscribe {
    /// Kinds of interest; empty unsubscribes.
    pub kinds: BoundedVec<UtilityKind, 3>,
}

/// Partner story 2: a validator tells a subscribed partner about a matching
/// job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct JobNotification {
    /// The job the notification is about.
    pub job: JobId,
    /// The kind of utility the job asks for.
    pub kind: UtilityKind,
    /// How many units the client wants.
    pub units: u64,
    /// Most the client pays per unit.
    pub max_price_per_unit: TokenAmount,
    /// Lowest partner score the client accepts.
    pub min_partner_score: PerceptionScore,
    /// Block whose job file holds it.
    pub block: BlockNumber,
}

/// Partner story 3: the partner wants the job. A late response gets no reply
/// (DESIGN.md "Why no work?": keep load off validators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct JobResponse {
    /// The job the partner wants.
    pub job: JobId,
    /// Price per unit the partner asks.
    pub price_per_unit: TokenAmount,
    /// Units it can deliver.
    pub units: u64,
}

/// Partner story 4: how to reach the other party of a job. Sent to the
/// partner (the client's endpoint) or, for a centralised partner, to the
/// client (the partner's endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ConnectionDetails {
    /// The job the details are for.
    pub job: JobId,
    /// The identity to expect at the other end (checked in the handshake).
    pub peer: PublicKey,
    /// Where to reach it.
    pub endpoint: Endpoint,
}

/// Partner story 5: connected; the utility started. Validators place the job
/// in the payout pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct UtilityStarted {
    /// The job whose utility started.
    pub job: JobId,
    /// The client it is serving.
    pub client: PublicKey,
    /// When it started (partner's clock).
    pub started_at: BlockTime,
    /// For storage: the content root the client named for the blob
    /// (DESIGN.md "Utility sessions"), which challenges are checked
    /// against; `None` for computation and access.
    pub content_root: Option<Hash32>,
}

/// Partner story 5: the validators confirm the job entered the payout pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct PayoutPoolConfirmation {
    /// The job that entered the payout pool.
    pub job: JobId,
    /// The block whose payout pool holds it.
    pub block: BlockNumber,
}

/// Partner story 1: a still-active heartbeat (default every 60 s; three
/// missed means gone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct StillActive {
    /// Jobs it can take now.
    pub free_capacity: u32,
}

/// Partner story 6: at capacity; send no more work for now. A second one
/// within the cooldown (default 30 s) is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct AtCapacity {
    /// How many jobs the partner is running.
    pub running: u32,
}

/// Partner story 7: shutting down; no new work. Costs less perception than
/// vanishing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct SignOff {
    /// Why the partner signs off, in free text for the operators.
    pub reason: BoundedString<MAX_DETAIL>,
}

/// A usage checkpoint the client signs during the utility; the last one
/// proves the delivered part if the client later refuses to sign the receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct UsageCheckpoint {
    /// The chain the checkpoint is for (never valid on another chain).
    pub chain_id: ChainId,
    /// The job being delivered.
    pub job: JobId,
    /// The block whose job file committed the job (a checkpoint is valid
    /// only for that commit).
    pub commit_block: BlockNumber,
    /// The client receiving the utility, who signs the checkpoint.
    pub client: PublicKey,
    /// The partner delivering it.
    pub partner: PublicKey,
    /// Units delivered so far.
    pub units: u64,
    /// Amount owed so far.
    pub amount: TokenAmount,
    /// Checkpoint counter (increasing).
    pub counter: u32,
    /// When the checkpoint was taken, by the client's clock.
    pub at: BlockTime,
}

impl UsageCheckpoint {
    /// The digest the client signs.
    pub fn digest(&self) -> Hash32 {
        crate::hash::hash(
            HashContext::UsageCheckpoint,
            &crate::wire::encode_bare(self),
        )
    }

    /// Signs as the client.
    pub fn sign(self, client: &SigningKey) -> SignedCheckpoint {
        SignedCheckpoint {
            client_sig: client.sign_digest(&self.digest()),
            checkpoint: self,
        }
    }
}

/// A checkpoint with the client's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct SignedCheckpoint {
    /// What the client acknowledged.
    pub checkpoint: UsageCheckpoint,
    /// The client's signature.
    pub client_sig: Signature,
}

impl SignedCheckpoint {
    /// Checks the client's signature.
    pub fn verify(&self) -> Result<(), crate::crypto::CryptoError> {
        self.checkpoint
            .client
            .verify_digest(&self.checkpoint.digest(), &self.client_sig)
    }
}

/// Partner story 8 ("client refuses to sign"): a partial completion, proven
/// by the last client-signed usage checkpoint and claimed by the partner's
/// own signature over the same checkpoint digest; arbitration at
/// settlement pays the proven part (the highest counter wins, a full
/// receipt supersedes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct PartialCompletion {
    /// The last checkpoint the client signed.
    pub last_checkpoint: SignedCheckpoint,
    /// The partner's signature over [`UsageCheckpoint::digest`]: only the
    /// partner named in the checkpoint can claim it.
    pub partner_sig: Signature,
}

impl PartialCompletion {
    /// The partner's claim of `checkpoint`.
    pub fn sign(checkpoint: SignedCheckpoint, partner: &SigningKey) -> Self {
        PartialCompletion {
            partner_sig: partner.sign_digest(&checkpoint.checkpoint.digest()),
            last_checkpoint: checkpoint,
        }
    }

    /// Checks the client's and the partner's signatures.
    pub fn verify(&self) -> Result<(), crate::crypto::CryptoError> {
        self.last_checkpoint.verify()?;
        let c = &self.last_checkpoint.checkpoint;
        c.partner.verify_digest(&c.digest(), &self.partner_sig)
    }
}

/// Partner story 1 ("partner could be lying"): a resource challenge,
/// usually run by passive validators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct Challenge {
    /// Challenge id, echoed in the response.
    pub id: u64,
    /// The utility being tested.
    pub kind: UtilityKind,
    /// Fresh randomness the answer must depend on.
    pub nonce: [u8; 32],
    /// Kind-specific task (data to store and prove, work to compute).
    pub payload: BoundedBytes<MAX_CHALLENGE>,
    /// When the answer must have arrived.
    pub deadline: BlockTime,
}

/// The partner's answer to a [`Challenge`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ChallengeResponse {
    /// The challenge answered.
    pub id: u64,
    /// The partner's answer, computed from the nonce and payload.
    pub answer: BoundedBytes<MAX_CHALLENGE>,
}

/// A network requirement a partner can fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum Requirement {
    /// It failed (or did not answer) a resource challenge.
    Challenge {
        /// The id of the challenge it failed.
        id: u64,
    },
    /// Its latency to the validators is too high for this domain.
    Latency {
        /// Measured round trip.
        measured_us: u64,
        /// The domain's limit.
        limit_us: u64,
    },
    /// It claimed a kind it cannot provide.
    Kind {
        /// The kind it claimed.
        kind: UtilityKind,
    },
    /// Its heartbeats stopped.
    Heartbeat,
}

/// Partner story 2 ("fails to pass a check"): the partner failed a network
/// requirement and is told so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct RequirementFailed {
    /// The requirement the partner failed.
    pub requirement: Requirement,
    /// Detail for the operator.
    pub detail: BoundedString<MAX_DETAIL>,
}

/// Partner story 2 ("low perception score"): the identity is under the floor
/// for this role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct LowPerception {
    /// The role it may not take.
    pub role: Role,
    /// The identity's perception score.
    pub score: PerceptionScore,
    /// The lowest score the role accepts.
    pub floor: PerceptionScore,
}

/// Partner story 2 ("could send out another request for work"): why am I
/// getting no work?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct WorkRequest {
    /// Kinds it asks about.
    pub kinds: BoundedVec<UtilityKind, 3>,
}

/// Why a partner gets no work (DESIGN.md "Why no work?").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum WorkStatusReason {
    /// There is work: this many open jobs of its kinds.
    Available {
        /// How many open jobs of its kinds there are.
        open_jobs: u32,
    },
    /// No client demand for its kinds.
    NoDemand,
    /// Its score is under the floor.
    UnderFloor {
        /// The partner's perception score.
        score: PerceptionScore,
        /// The lowest score that gets work.
        floor: PerceptionScore,
    },
    /// It failed a requirement.
    FailedRequirement(Requirement),
    /// It said it is at capacity.
    AtCapacity,
    /// It has not subscribed to these kinds.
    NotSubscribed,
}

/// Reply to [`WorkRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct WorkStatus {
    /// The answer: work is available, or why there is none.
    pub reason: WorkStatusReason,
}

/// One item of censorship evidence: a job that existed for the partner and
/// its response that validators ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct CensorshipEvidence {
    /// The job the partner responded to.
    pub job: JobId,
    /// The block whose job file held it.
    pub block: BlockNumber,
    /// Digest of the partner's job-response envelope that went unanswered.
    pub response_digest: Hash32,
}

/// Partner story 2 (censorship; DESIGN.md "Complaint to the chain owner"):
/// a signed complaint with evidence, addressed to the chain owner's key and
/// recorded on chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct CensorshipComplaint {
    /// The chain owner it is addressed to.
    pub chain_owner: PublicKey,
    /// The validators the partner accuses of ignoring its responses.
    pub accused: BoundedVec<PublicKey, MAX_ACTIVE>,
    /// The jobs and unanswered responses that show it.
    pub evidence: BoundedVec<CensorshipEvidence, MAX_EVIDENCE>,
}

/// What was wrong with relayed connection details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub enum ConnectionProblem {
    /// Nothing answered at the endpoint.
    Unreachable,
    /// Something answered under another key.
    KeyMismatch {
        /// The key that answered.
        observed: PublicKey,
    },
    /// The peer refused the connection.
    Refused,
}

/// Partner story 4 ("wrong information could be sent"; DESIGN.md "Bad
/// connection details"): a signed report of failed or mismatched connection
/// details, counted per relaying validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct ConnectionReport {
    /// The job whose connection details were relayed.
    pub job: JobId,
    /// The validator that relayed the details.
    pub relayed_by: PublicKey,
    /// The details as relayed.
    pub details: ConnectionDetails,
    /// What went wrong.
    pub problem: ConnectionProblem,
}
