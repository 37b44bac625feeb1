//! [`NodeCore`]: the one sans-IO machine per identity that every host
//! drives (DESIGN.md "The node core"), here with the validator role.
//!
//! Inputs carry the host's local clock `now` ([`LocalTime`]):
//! [`NodeCore::start`], [`NodeCore::handle_envelope`] (bytes off the wire)
//! or [`NodeCore::handle_verified`] (an envelope the transport already
//! decoded and verified), [`NodeCore::handle_timeout`] when
//! [`NodeCore::poll_timeout`] is due. A refused input returns a typed
//! [`NodeError`] and changes nothing.
//!
//! Outputs come as [`NodeReady`] batches ([`NodeCore::ready`]): write
//! `persist` in one durable transaction ([`crate::store::Storage`]), carry
//! out `after_persist`, then [`NodeCore::advance`]; `immediate` may go at
//! once. Signed votes, acks and anything else that promises is only ever
//! in `after_persist`, so persist-before-send holds by construction. A
//! restarted node is rebuilt from what it persisted ([`NodeCore::restore`]).

use std::sync::Arc;

use undchain_types::{
    AdvanceError, ChainId, ClockDomain, EnvelopeError, Hash32, LocalTime, Message, MessageKind,
    PublicKey, ReadyNumber, ReplayConfig, ReplayError, ReplayGuard, Signature, SignedEnvelope,
    Verdict, WireError,
};

use crate::config::{ConfigError, NodeConfig};
use crate::output::NodeReady;
use crate::store::Stored;
use crate::validator::Validator;

/// Checks a decoded envelope's signature (the transport may have done it;
/// the simulator shares one cache among its nodes).
pub trait EnvelopeCheck: std::fmt::Debug + Send + Sync {
    /// `Ok` when `env` is signed by its sender.
    fn check(&self, env: &SignedEnvelope) -> Result<(), EnvelopeError>;

    /// Whether `sig` is `key`'s strict signature over `digest` (the
    /// signatures inside block operations). A host that shares verified
    /// results among its nodes (the simulator) may answer from a cache.
    fn check_signature(&self, key: &PublicKey, digest: &Hash32, sig: &Signature) -> bool {
        key.verify_digest(digest, sig).is_ok()
    }
}

/// An [`EnvelopeCheck`] as the ledger's signature verifier.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ViaCheck<'a>(pub &'a dyn EnvelopeCheck);

impl undchain_consensus::SignatureVerifier for ViaCheck<'_> {
    fn verify(&mut self, signer: &PublicKey, digest: &Hash32, signature: &Signature) -> bool {
        self.0.check_signature(signer, digest, signature)
    }
}

/// Verifies every envelope with `verify_strict`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StrictCheck;

impl EnvelopeCheck for StrictCheck {
    fn check(&self, env: &SignedEnvelope) -> Result<(), EnvelopeError> {
        env.verify()
    }
}

/// Verifies every envelope and block-operation signature with
/// `verify_strict`, like [`StrictCheck`], keeping up to `cap` senders'
/// decompressed, subgroup-checked keys ([`undchain_types::KeyCache`]):
/// for a host that verifies the same clients' requests and receipts again
/// and again (gossip, relays), where preparing the key costs about as much
/// as the signature check itself.
#[derive(Debug)]
pub struct CachedCheck {
    keys: std::sync::Mutex<undchain_types::KeyCache>,
}

impl CachedCheck {
    /// A check remembering at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        CachedCheck {
            keys: std::sync::Mutex::new(undchain_types::KeyCache::new(cap)),
        }
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, undchain_types::KeyCache> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl EnvelopeCheck for CachedCheck {
    fn check(&self, env: &SignedEnvelope) -> Result<(), EnvelopeError> {
        env.verify_with(&mut self.keys())
    }

    fn check_signature(&self, key: &PublicKey, digest: &Hash32, sig: &Signature) -> bool {
        let prepared = self.keys().prepare(key);
        prepared.is_ok_and(|k| k.verify_digest(digest, sig).is_ok())
    }
}

/// Why an input was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The bytes are not an envelope.
    #[error("envelope does not decode: {0}")]
    Wire(#[from] WireError),
    /// The envelope's signature does not verify.
    #[error("envelope refused: {0}")]
    Envelope(#[from] EnvelopeError),
    /// For another chain.
    #[error("envelope for chain {got}, this node is on {expected}")]
    WrongChain {
        /// This node's chain.
        expected: ChainId,
        /// The chain the envelope names.
        got: ChainId,
    },
    /// Outside the replay window.
    #[error("replay check: {0}")]
    Replay(#[from] ReplayError),
    /// A validator-only message from someone who is not an active
    /// validator.
    #[error("{kind} from {from:?}, who is not an active validator")]
    NotAValidator {
        /// The message kind.
        kind: MessageKind,
        /// The sender.
        from: PublicKey,
    },
    /// A message this node does not take.
    #[error("{kind} is not handled by a validator")]
    Unexpected {
        /// The message kind.
        kind: MessageKind,
    },
    /// The agreement driver refused the message.
    #[error("agreement: {0}")]
    Agreement(String),
    /// A co-chain's link was refused (not from its validators, a conflict
    /// or a regression).
    #[error("chain link: {0}")]
    ChainLink(String),
    /// A convergence signature was refused.
    #[error("convergence: {0}")]
    Convergence(#[from] crate::validator::ConvergenceRefusal),
    /// A resync proposal, approval or command was refused.
    #[error("resync: {0}")]
    Resync(#[from] undchain_timesync::ResyncError),
    /// A partner-story message was refused by the partner desk.
    #[error("partner desk: {0}")]
    Partner(#[from] crate::validator::DeskError),
    /// A receipt, partial completion, transaction or operations message
    /// was refused.
    #[error("operation: {0}")]
    Operation(#[from] crate::validator::OpError),
    /// A discovery reply was refused (not joining, or not from the
    /// bootstrap list).
    #[error("discovery: {0}")]
    Discovery(#[from] crate::validator::DiscoveryError),
}

/// What a user or operator asks of a node (DESIGN.md "The node core":
/// `handle_command`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Propose stepping the agreed clock by `step_us` microseconds (a
    /// resync): it applies only once a quorum of active validators approve.
    ProposeResync {
        /// The step, microseconds (bounded by the chain's
        /// `max_resync_step_us`).
        step_us: i64,
    },
}

/// One node: the validator role, its replay guard and its outbox.
#[derive(Debug)]
pub struct NodeCore {
    validator: Validator,
    replay: ReplayGuard,
    check: Arc<dyn EnvelopeCheck>,
    max_frame: usize,
}

impl NodeCore {
    /// A fresh node (nothing stored yet).
    pub fn new(cfg: &NodeConfig, now: LocalTime) -> Result<Self, ConfigError> {
        Self::restore(cfg, now, &Stored::default(), Arc::new(StrictCheck))
    }

    /// A node rebuilt from what it persisted; `check` verifies envelope
    /// signatures.
    pub fn restore(
        cfg: &NodeConfig,
        now: LocalTime,
        stored: &Stored,
        check: Arc<dyn EnvelopeCheck>,
    ) -> Result<Self, ConfigError> {
        let validator = Validator::restore(cfg, now, stored, check.clone())?;
        let params = &cfg.genesis.params;
        Ok(NodeCore {
            validator,
            replay: ReplayGuard::new(ReplayConfig::from_params(params, cfg.seed)),
            check,
            max_frame: params.max_frame_bytes as usize,
        })
    }

    /// The validator inside.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// Starts the node's machines (time sync first).
    pub fn start(&mut self, now: LocalTime) {
        self.validator.announce_genesis_set();
        self.validator.start_time_sync(now);
        self.validator.handle_timeout(now);
    }

    /// Bytes from the wire: decoded, verified, then handled.
    pub fn handle_envelope(&mut self, now: LocalTime, bytes: &[u8]) -> Result<(), NodeError> {
        let env = SignedEnvelope::from_bytes(bytes, self.max_frame)?;
        self.check.check(&env)?;
        self.handle_verified(now, Arc::new(env))
    }

    /// An envelope whose signature the host already verified.
    pub fn handle_verified(
        &mut self,
        now: LocalTime,
        env: Arc<SignedEnvelope>,
    ) -> Result<(), NodeError> {
        let e = env.envelope();
        let v = &mut self.validator;
        if e.chain_id != v.params.chain_id {
            // Only a linked co-chain's end-of-block link crosses chains
            // (idempotent: a repeat changes nothing, so no replay check).
            if let Message::ChainLink(link) = env.body() {
                if v.co_chains.iter().any(|c| c.chain == e.chain_id) {
                    return v
                        .handle_chain_link(e.sender, e.chain_id, link.clone())
                        .map_err(NodeError::ChainLink);
                }
            }
            return Err(NodeError::WrongChain {
                expected: v.params.chain_id,
                got: e.chain_id,
            });
        }
        let from = e.sender;
        let validator = v.is_validator(&from);
        let kind = e.kind;
        // A validator that said hello and is not registered yet catches
        // up like a passive one (docs/PROTOCOL.md "Discovery and
        // registration"); the driver rate-limits its block requests as a
        // stranger's.
        let catching_up = catch_up(kind) && v.greeted(&from);
        if !kind.replay_exempt() {
            let (domain, clock) = if validator {
                (ClockDomain::Block, v.block_time(now))
            } else {
                (
                    ClockDomain::Wall,
                    undchain_types::BlockTime(now.micros().max(0) as u64),
                )
            };
            let verdict = self.replay.check(&from, e.seq, e.sent_at, domain, clock)?;
            if verdict == Verdict::Duplicate {
                if kind == MessageKind::UtilityRequest {
                    // A retried request gets the identical ack.
                    v.handle_request(now, env);
                    v.handle_timeout(now);
                }
                return Ok(());
            }
        }
        let body = env.body().clone();
        match body {
            Message::TimeProbe(_) | Message::TimeReply(_) => v.handle_time(now, from, body),
            Message::UtilityRequest(_) => {
                v.handle_request(now, env.clone());
                v.partners_filed(now, &env);
            }
            Message::ForwardedRequest(f) => v.handle_forwarded(now, f),
            m @ (Message::Receipt(_) | Message::PartialCompletion(_) | Message::Transaction(_)) => {
                if let Some(op) = undchain_types::msg::Operation::from_message(&m) {
                    v.handle_user_op(now, from, op)?;
                }
            }
            Message::JobFileRequest(r) => v.handle_job_file_request(now, from, r),
            Message::ValidatorHello(h) => v.handle_hello(now, from, h),
            Message::DiscoveryReply(r) => v.handle_discovery_reply(now, from, r)?,
            m if crate::validator::partners::takes(&m) => v.handle_partner(now, from, &m)?,
            m if !(validator || catching_up) => {
                return Err(match m.kind() {
                    MessageKind::RequestBatch
                    | MessageKind::RequestFetch
                    | MessageKind::OpsBatch
                    | MessageKind::OpsFetch
                    | MessageKind::JobFileDelta
                    | MessageKind::Reconcile
                    | MessageKind::Proposal
                    | MessageKind::Vote
                    | MessageKind::CommitCertificate
                    | MessageKind::BlockRequest
                    | MessageKind::BlockResponse
                    | MessageKind::Evidence
                    | MessageKind::TimeResyncProposal
                    | MessageKind::TimeResyncApproval
                    | MessageKind::CapacityTest
                    | MessageKind::CapacityTestResult
                    | MessageKind::NetworkStatus
                    | MessageKind::ConvergenceSignature => NodeError::NotAValidator { kind, from },
                    _ => NodeError::Unexpected { kind },
                });
            }
            Message::NetworkStatus(s) => v.record_status(from, s),
            Message::ConvergenceSignature(s) => v.handle_convergence_signature(from, s)?,
            Message::CapacityTest(t) => v.handle_capacity_test(now, from, t),
            Message::CapacityTestResult(r) => v.handle_capacity_result(from, r),
            m @ (Message::TimeResyncProposal(_) | Message::TimeResyncApproval(_)) => {
                v.handle_resync(now, from, m)?
            }
            Message::RequestBatch(b) => v.handle_batch(now, from, b),
            Message::RequestFetch(f) => v.handle_fetch(now, from, f),
            Message::OpsBatch(b) => v.handle_ops_batch(now, b)?,
            Message::OpsFetch(f) => v.handle_ops_fetch(now, from, f),
            Message::JobFileDelta(d) => v.handle_delta(now, from, d),
            Message::Reconcile(r) => v.handle_reconcile(now, from, r),
            m @ (Message::Proposal(_)
            | Message::Vote(_)
            | Message::CommitCertificate(_)
            | Message::BlockRequest(_)
            | Message::BlockResponse(_)
            | Message::Evidence(_)) => {
                let r = v.driver.handle_message(now, from, m);
                v.pump_driver(now);
                r.map_err(|e| NodeError::Agreement(e.to_string()))?;
            }
            _ => return Err(NodeError::Unexpected { kind }),
        }
        v.pump_driver(now);
        v.process_decided(now);
        Ok(())
    }

    /// A user's or operator's command. A refused command changes nothing.
    pub fn handle_command(&mut self, now: LocalTime, command: Command) -> Result<(), NodeError> {
        match command {
            Command::ProposeResync { step_us } => self.validator.propose_resync(now, step_us)?,
        }
        Ok(())
    }

    /// When the node next needs [`NodeCore::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<LocalTime> {
        self.validator.poll_timeout()
    }

    /// Runs everything due at `now`.
    pub fn handle_timeout(&mut self, now: LocalTime) {
        self.validator.handle_timeout(now);
    }

    /// The next batch for the host, if any (one outstanding at a time).
    pub fn ready(&mut self) -> Option<NodeReady> {
        let r = self.validator.outbox.take_ready()?;
        self.validator.signer.batch_taken();
        Some(r)
    }

    /// The host made batch `number` durable and carried it out.
    pub fn advance(&mut self, number: ReadyNumber) -> Result<(), AdvanceError> {
        self.validator.outbox.advance(number)
    }
}

/// The kinds a greeted, unregistered validator may send to catch up:
/// decided blocks, their job files and operations.
fn catch_up(kind: MessageKind) -> bool {
    matches!(
        kind,
        MessageKind::BlockRequest
            | MessageKind::RequestFetch
            | MessageKind::OpsFetch
            | MessageKind::Reconcile
    )
}
