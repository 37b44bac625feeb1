//! Convergence at a payout-period boundary (validator story item 6;
//! DESIGN.md "Convergence"; docs/PROTOCOL.md "Convergence").
//!
//! Every validator counts the bytes its chain holds in the running epoch
//! (each committed header and the signed requests of its jobs: committed
//! data, so the count is the same everywhere; certificates differ between
//! validators and are left out). After the last block of a payout period,
//! once it is settled, [`convergence_due`] says whether the count passed
//! the chain's threshold; then every validator computes the same new
//! genesis from its committed state ([`converge`]: balances and escrow,
//! the set of the next block, the scores, the carried payout file, the
//! last block hash), swaps its ledger for the genesis's, and starts epoch
//! `e + 1`: the next header carries the new epoch, the genesis hash as
//! parent, no parent certificate and no parent signers, and block
//! numbering goes on (so nothing pauses and no second chain runs).
//!
//! The active validators sign the genesis and send the signature to each
//! other; a quorum of the genesis's set certifies it for anyone who was not
//! there (`GenesisCertificate`, persisted, reported). The old epoch is
//! marked for archive (`StoreOp::Archive`): the host may move its blocks to
//! its archive file and, once partners offer deep storage, out.
//!
//! A restart replays the stored blocks and reaches every convergence again
//! at the same block with the same genesis.

use std::collections::BTreeMap;

use undchain_ledger::convergence::{GenesisInput, GenesisVotes, converge, convergence_due};
use undchain_types::msg::{ConvergenceSignature, MAX_ACTIVE};
use undchain_types::{BlockHeader, BlockNumber, LocalTime, Message, PublicKey, SignedEnvelope};

use super::Validator;
use crate::output::NodeEvent;
use crate::store::StoreOp;

/// Where this validator stands in the epochs of its chain.
#[derive(Debug, Clone, Default)]
pub(crate) struct EpochState {
    /// The running epoch (convergence counter; 0 from the first genesis).
    pub epoch: u32,
    /// The first block of the running epoch.
    pub start: BlockNumber,
    /// Committed bytes of the running epoch (headers and requests).
    pub chain_bytes: u64,
    /// Signatures collected over the running epoch's genesis (none before
    /// the first convergence).
    pub votes: Option<GenesisVotes>,
    /// The genesis of the running epoch still to be signed by this
    /// validator (set by a live convergence, taken when signed).
    pub unsigned: Option<undchain_ledger::convergence::Genesis>,
    /// Signatures for the next epoch's genesis that came before this
    /// validator converged, by signer (at most one each, MAX_ACTIVE).
    pub early: BTreeMap<PublicKey, ConvergenceSignature>,
    /// Whether the running epoch's genesis is certified.
    pub certified: bool,
}

/// Why a convergence signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvergenceRefusal {
    /// Signed by someone other than the envelope's sender.
    #[error("convergence signature of {signer} sent by {from}")]
    NotTheSigner {
        /// The envelope's sender.
        from: PublicKey,
        /// The signature's validator.
        signer: PublicKey,
    },
    /// For an epoch that is neither the running one nor the next.
    #[error("convergence signature for epoch {got}, running epoch {running}")]
    WrongEpoch {
        /// This validator's running epoch.
        running: u32,
        /// The signature's counter.
        got: u32,
    },
    /// Refused by the genesis's vote collector (wrong genesis, not in the
    /// set, bad signature).
    #[error("convergence signature refused: {0}")]
    Refused(String),
}

impl Validator {
    /// Counts committed block `header` with its `requests` in the running
    /// epoch's size.
    pub(crate) fn count_block_bytes(
        &mut self,
        header: &BlockHeader,
        requests: &[std::sync::Arc<SignedEnvelope>],
        ops: &[undchain_types::msg::Operation],
    ) {
        let head = undchain_types::wire::encode_bare(header).len() as u64;
        let body: u64 = requests
            .iter()
            .map(|r| r.to_bytes().len() as u64)
            .sum::<u64>()
            + undchain_types::wire::encode_bare(&ops).len() as u64;
        self.epoch.chain_bytes = self.epoch.chain_bytes.saturating_add(head + body);
    }

    /// After applied block `number` (settled, roster moved on): converges
    /// when due. Deterministic: the replay of stored blocks runs it too.
    /// Returns whether a new epoch started.
    pub(crate) fn converge_if_due(&mut self, number: BlockNumber) -> bool {
        let next = number.next();
        let algo = self.params.hash_algorithm;
        let Some(reason) = convergence_due(&self.params, next, self.epoch.chain_bytes, algo) else {
            return false;
        };
        let config = self.ledger.config().clone();
        let input = GenesisInput {
            counter: self.epoch.epoch.saturating_add(1),
            config: &config,
            last_block_hash: self.last_hash,
            validator_set: self.roster.validator_set(),
            scores: self.roster.scores(),
        };
        let c = match converge(&self.ledger, input) {
            Ok(c) => c,
            Err(e) => {
                // Committed state that cannot converge (claims not
                // settled) is the same everywhere: every validator skips
                // this boundary alike and tries at the next one.
                self.event(NodeEvent::Refused {
                    from: None,
                    reason: format!("convergence after block {number}: {e}"),
                });
                return false;
            }
        };
        self.ledger = c.ledger;
        self.last_hash = c.genesis_hash;
        self.last_cert = None;
        self.roster.start_epoch();
        let mut votes = GenesisVotes::new(&c.genesis);
        let early = std::mem::take(&mut self.epoch.early);
        for s in early.values().filter(|s| s.counter == c.genesis.counter) {
            let _ = votes.handle_signature(s);
        }
        let certified = votes.is_certified();
        self.epoch = EpochState {
            epoch: c.genesis.counter,
            start: next,
            chain_bytes: 0,
            votes: Some(votes),
            unsigned: Some(c.genesis),
            early: BTreeMap::new(),
            certified: false,
        };
        self.outbox.persist(StoreOp::Archive {
            epoch: c.archive.epoch,
            last_block: c.archive.last_block,
            last_hash: c.archive.last_hash,
        });
        self.event(NodeEvent::Converged {
            epoch: self.epoch.epoch,
            first_block: next,
            genesis_hash: c.genesis_hash,
            reason,
        });
        if certified {
            self.certify();
        }
        true
    }

    /// An active validator signs the running epoch's genesis once and
    /// sends the signature to the other active validators.
    pub(crate) fn sign_genesis(&mut self, now: LocalTime) {
        let Some(genesis) = self.epoch.unsigned.take() else {
            return;
        };
        if !genesis.validator_set.contains(&self.me) {
            return;
        }
        let sig = genesis.sign(self.signer.key());
        // Its own signature over its own genesis: always accepted.
        let _ = self.record_genesis_signature(&sig);
        let to: Vec<PublicKey> = genesis
            .validator_set
            .seats()
            .iter()
            .map(|s| s.id)
            .filter(|k| *k != self.me)
            .collect();
        self.send(now, &to, Message::ConvergenceSignature(sig), false);
    }

    /// Another validator's signature over a genesis.
    pub(crate) fn handle_convergence_signature(
        &mut self,
        from: PublicKey,
        s: ConvergenceSignature,
    ) -> Result<(), ConvergenceRefusal> {
        if s.validator != from {
            return Err(ConvergenceRefusal::NotTheSigner {
                from,
                signer: s.validator,
            });
        }
        let running = self.epoch.epoch;
        if s.counter == running.saturating_add(1) {
            // Ahead of this validator's own convergence: keep one per signer.
            if self.epoch.early.len() < MAX_ACTIVE || self.epoch.early.contains_key(&from) {
                self.epoch.early.insert(from, s);
            }
            return Ok(());
        }
        if s.counter != running || self.epoch.votes.is_none() {
            return Err(ConvergenceRefusal::WrongEpoch {
                running,
                got: s.counter,
            });
        }
        self.record_genesis_signature(&s)
            .map_err(ConvergenceRefusal::Refused)
    }

    fn record_genesis_signature(&mut self, s: &ConvergenceSignature) -> Result<(), String> {
        let Some(votes) = self.epoch.votes.as_mut() else {
            return Ok(());
        };
        votes.handle_signature(s).map_err(|e| e.to_string())?;
        if votes.is_certified() && !self.epoch.certified {
            self.certify();
        }
        Ok(())
    }

    fn certify(&mut self) {
        let Some(cert) = self.epoch.votes.as_ref().and_then(|v| v.certificate()) else {
            return;
        };
        self.epoch.certified = true;
        self.event(NodeEvent::GenesisCertified {
            epoch: cert.counter,
            genesis_hash: cert.genesis_hash,
            signers: cert.signatures.len(),
        });
        self.outbox
            .persist(StoreOp::GenesisCertificate(Box::new(cert)));
    }

    /// The running epoch and its first block.
    pub fn epoch(&self) -> (u32, BlockNumber) {
        (self.epoch.epoch, self.epoch.start)
    }

    /// The committed bytes of the running epoch.
    pub fn epoch_bytes(&self) -> u64 {
        self.epoch.chain_bytes
    }

    /// Whether the running epoch's genesis is certified (always false in
    /// epoch 0, whose genesis is the configured one).
    pub fn genesis_certified(&self) -> bool {
        self.epoch.certified
    }
}
