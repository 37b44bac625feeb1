//! What a [`crate::NodeCore`] asks its host to do, and what it tells an
//! operator.

use std::sync::Arc;

use undchain_types::{
    BlockNumber, Hash32, JobId, PayoutPeriod, PublicKey, Ready, SignedEnvelope, TokenAmount,
    msg::Evidence,
};

use crate::store::StoreOp;
use undchain_consensus::roster::ReplacementReason;

/// One batch of work for the host (raft-rs's `Ready`): write `persist` in
/// one durable transaction, carry out `after_persist`, then call
/// [`crate::NodeCore::advance`]. `immediate` may go at once.
pub type NodeReady = Ready<StoreOp, Output>;

/// One thing for the host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a signed envelope to a peer.
    Send {
        /// The peer.
        to: PublicKey,
        /// The envelope (the same one may go to several peers).
        envelope: Arc<SignedEnvelope>,
    },
    /// Something an operator or the API sees.
    Event(NodeEvent),
}

/// What happened, for operators, the API and the simulator's checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// The agreed time came online (bootstrap or join) or was restored.
    TimeSynced {
        /// Agreed time = local time + this, microseconds.
        correction: i64,
    },
    /// A client's request was filed and acknowledged.
    RequestAcked {
        /// The job.
        job: JobId,
        /// The block named in the acknowledgement.
        block: BlockNumber,
    },
    /// A request was refused at intake.
    RequestRefused {
        /// The client.
        client: PublicKey,
        /// Why.
        reason: String,
    },
    /// A block was decided and applied.
    BlockCommitted {
        /// Its number.
        number: BlockNumber,
        /// Its hash.
        hash: Hash32,
        /// Jobs in its file.
        jobs: u64,
        /// Operations it committed (receipts, partials, transactions).
        ops: u64,
        /// The ledger root after it.
        ledger_root: Hash32,
    },
    /// A job this validator held for a block went to the next file because
    /// the decided file lacked it.
    JobDeferred {
        /// The job.
        job: JobId,
        /// The block it moved to.
        to: BlockNumber,
    },
    /// Conflicting signed messages were seen.
    Evidence(Box<Evidence>),
    /// After block `first_block - 1` settled its period, the chain
    /// converged: epoch `epoch` starts at `first_block` from genesis
    /// `genesis_hash`.
    Converged {
        /// The new epoch (convergence counter).
        epoch: u32,
        /// Its first block.
        first_block: BlockNumber,
        /// The new genesis's hash (the parent of `first_block`).
        genesis_hash: Hash32,
        /// Why it converged.
        reason: undchain_types::msg::ConvergenceReason,
    },
    /// A quorum of the new epoch's validators signed its genesis.
    GenesisCertified {
        /// The epoch.
        epoch: u32,
        /// Its genesis's hash.
        genesis_hash: Hash32,
        /// How many validators signed.
        signers: usize,
    },
    /// Block `number` committed equivocation evidence against `offender`,
    /// whose perception score is now `score`.
    EvidenceCommitted {
        /// The block that committed it.
        number: BlockNumber,
        /// The validator that double voted.
        offender: PublicKey,
        /// Its perception score after the block.
        score: u16,
    },
    /// An input was refused (it changed nothing).
    Refused {
        /// The sender, when an envelope was refused.
        from: Option<PublicKey>,
        /// What was wrong.
        reason: String,
    },
    /// The active set changed after a block: a period rotation, or
    /// replacements.
    SetChanged {
        /// The height the new set decides first.
        height: BlockNumber,
        /// A payout-period rotation ran.
        rotated: bool,
        /// The new set, in seat order.
        active: Vec<PublicKey>,
        /// Known validators holding unknown seats in it.
        fillers: usize,
        /// Seat changes outside a rotation: (out, taken by, why).
        replaced: Vec<(PublicKey, Option<PublicKey>, ReplacementReason)>,
        /// Whether this validator holds a seat in it.
        me_active: bool,
    },
    /// At bootstrap, known validators fill unknown seats that no unknown
    /// validator could take (design notes, validator story item 1).
    KnownFillUnknownSeats {
        /// Known validators in unknown seats.
        fillers: usize,
        /// Active seats.
        active: usize,
    },
    /// A joining validator's discovery reply came from a bootstrap-list
    /// validator (design notes, validator story item 1).
    Discovered {
        /// The bootstrap validator that replied.
        from: PublicKey,
        /// Validators the reply named.
        validators: usize,
        /// The active set it named.
        active: Vec<PublicKey>,
        /// Known validators fill unknown seats there, for now.
        known_filling_unknown: bool,
        /// How that validator's roster has this one (`None`: not
        /// registered yet).
        registered: Option<undchain_types::Trust>,
    },
    /// A joining validator sent its own registration (a transaction with
    /// this nonce) to the active validators.
    RegistrationSent {
        /// The transaction's nonce.
        nonce: u64,
    },
    /// A committed block registered a validator: it is passive from the
    /// next height and may rotate in at the next period end.
    ValidatorRegistered {
        /// The validator.
        validator: PublicKey,
        /// Known or unknown.
        trust: undchain_types::Trust,
        /// The block that registered it.
        block: BlockNumber,
    },
    /// Block `number` ended payout period `period` and settled it
    /// (DESIGN.md money rules): what was paid, refunded, cancelled and
    /// carried into the next period.
    PeriodSettled {
        /// The block that ended the period.
        number: BlockNumber,
        /// The period settled.
        period: PayoutPeriod,
        /// Jobs paid by full receipts.
        completed: u64,
        /// Jobs paid with partial claims.
        partial: u64,
        /// Paid from escrow to partners.
        paid: TokenAmount,
        /// Unused escrow returned to clients.
        refunded: TokenAmount,
        /// Jobs cancelled (no completion in two periods: fee only).
        cancelled: u64,
        /// Jobs carried into the next period.
        carried: u64,
    },
    /// A quorum of the active validators report a load at or above the
    /// overload threshold: the domain is overloaded (the trigger for a new
    /// domain).
    DomainOverloaded {
        /// Active validators reporting that load.
        loaded: usize,
        /// Active validators.
        active: usize,
    },
    /// The overloaded signal cleared.
    DomainRecovered {
        /// Active validators still reporting that load.
        loaded: usize,
        /// Active validators.
        active: usize,
    },
    /// A candidate answered this validator's capacity test faithfully.
    CapacityTestPassed {
        /// The validator tested.
        candidate: PublicKey,
    },
    /// A candidate failed this validator's capacity test.
    CapacityTestFailed {
        /// The validator tested.
        candidate: PublicKey,
        /// How it failed.
        failure: crate::validator::CapacityFailure,
    },
    /// A resync step reached its quorum and was applied to the agreed
    /// clock.
    TimeStepped {
        /// The step applied (clamped into the payout period), microseconds.
        step_us: i64,
        /// The step the proposal asked for, microseconds.
        requested_us: i64,
        /// How many active validators approved it.
        approvers: usize,
    },
    /// This validator declined a resync proposal: its own reference says
    /// another step (or none) is due.
    ResyncDeclined {
        /// The proposal's digest.
        proposal: Hash32,
        /// This validator's reference step, if it had one.
        reference_us: Option<i64>,
    },
    /// The partner desk reports something (issue 16).
    Partner(crate::validator::DeskEvent),
    /// A score event the partner desk found (failed challenge, vanished
    /// partner, censorship evidence); carried into blocks by a later
    /// change, so scores do not move yet.
    ScoreEvidence(undchain_consensus::ScoreEvent),
    /// The decided block's ledger root differs from this node's: the node
    /// stops applying blocks (a bug or a corrupt store; never expected).
    Diverged {
        /// The block.
        number: BlockNumber,
        /// The root in the header.
        header_root: Hash32,
        /// This node's root.
        local_root: Hash32,
    },
}
