//! One block in, its outcome out: the [`Block`] the ledger applies, what
//! each operation did ([`Applied`], [`Refused`]), the [`BlockOutcome`],
//! and [`Ledger::preview`] / [`Ledger::apply_block`], which run the block
//! over a copy-on-write overlay ([`super::exec`]) and, when applying,
//! commit it in one infallible pass.

use undchain_jobfile::JobFile;
use undchain_types::{BlockNumber, ChainId, Hash32, JobId, PublicKey, TokenAmount};

use super::exec::{Delta, Exec};
use super::ops::Verified;
use super::request::VerifiedRequest;
use super::{BlockError, Ledger, LedgerError};
use crate::settle::Settlement;

/// One block as the ledger applies it.
///
/// `jobs` is the block's committed job file and `requests` the clients'
/// verified requests of its jobs, exactly one per job (any order);
/// `ops` are the verified claims and transactions in block order; `signers`
/// the active validators that signed (the header's `parent_signers` mapped
/// through the parent's set), who share the period's fees.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    /// The block's number; blocks apply in order, each once (empty ones
    /// too, so no period end is skipped).
    pub number: BlockNumber,
    /// Its committed job file.
    pub jobs: &'a JobFile,
    /// The signed requests of the file's jobs, one per job.
    pub requests: &'a [VerifiedRequest],
    /// Verified claims and transactions, in block order.
    pub ops: &'a [Verified],
    /// Validators that signed.
    pub signers: &'a [PublicKey],
}

impl<'a> Block<'a> {
    /// A block of `jobs` with their `requests` and nothing else.
    pub fn new(number: BlockNumber, jobs: &'a JobFile, requests: &'a [VerifiedRequest]) -> Self {
        Block {
            number,
            jobs,
            requests,
            ops: &[],
            signers: &[],
        }
    }

    /// This block with operations `ops`.
    pub fn with_ops(self, ops: &'a [Verified]) -> Self {
        Block { ops, ..self }
    }

    /// This block with signers `signers`.
    pub fn with_signers(self, signers: &'a [PublicKey]) -> Self {
        Block { signers, ..self }
    }
}

/// What one accepted operation did (the host answers the submitter from
/// it: client story step 5's block number of completion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A receipt or partial was recorded as `partner`'s claim on the job,
    /// paid at the period's settlement.
    Claimed {
        /// The job.
        job: JobId,
        /// The partner it pays.
        partner: PublicKey,
        /// What it pays.
        amount: TokenAmount,
        /// A receipt (true) or a partial.
        full: bool,
        /// The block that recorded it.
        block: BlockNumber,
    },
    /// A plain transfer.
    Transferred {
        /// The sender.
        from: PublicKey,
        /// The payee.
        to: PublicKey,
        /// The amount.
        amount: TokenAmount,
    },
    /// The chain owner minted.
    Minted {
        /// The account credited.
        to: PublicKey,
        /// The amount.
        amount: TokenAmount,
    },
    /// The chain owner registered (or re-registered) a domain.
    DomainRegistered {
        /// The domain.
        chain: ChainId,
    },
    /// A domain's light client trusts a new header.
    DomainUpdated {
        /// The domain.
        chain: ChainId,
        /// The header's height.
        height: BlockNumber,
    },
    /// A domain's link froze on proven misbehaviour.
    DomainFrozen {
        /// The domain.
        chain: ChainId,
    },
    /// A domain transfer was locked here (source).
    Locked {
        /// The transfer's id.
        id: Hash32,
    },
    /// A domain transfer was credited here (target).
    Credited {
        /// The transfer's id.
        id: Hash32,
    },
    /// A domain transfer was recorded as expired here (target).
    Expired {
        /// The transfer's id.
        id: Hash32,
    },
    /// A domain transfer was refunded here (source).
    Refunded {
        /// The transfer's id.
        id: Hash32,
    },
    /// A validator was registered: it starts passive (the roster's
    /// `Registered` event).
    ValidatorRegistered {
        /// The validator.
        validator: PublicKey,
        /// Its class.
        trust: undchain_types::Trust,
        /// The block that registered it.
        block: BlockNumber,
    },
}

/// An operation of the block that was refused (and changed nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Its index among the block's operations.
    pub index: usize,
    /// The refused operation's id ([`Verified::id`]).
    pub op: Hash32,
    /// Why it was refused; the error a submitter is answered with.
    pub error: LedgerError,
}

/// The result of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// The number of the block this outcome is for.
    pub number: BlockNumber,
    /// The state root after it (the header's `ledger_root`).
    pub ledger_root: Hash32,
    /// Accepted operations, in order.
    pub applied: Vec<Applied>,
    /// Refused operations, in order.
    pub refused: Vec<Refused>,
    /// Fees the block's jobs paid.
    pub fees_collected: TokenAmount,
    /// Budgets the block's jobs locked in escrow.
    pub escrowed: TokenAmount,
    /// The period's settlement, if the block ended one.
    pub settlement: Option<Settlement>,
}

impl Ledger {
    /// Runs `block` without changing anything: its outcome and the state
    /// root it leads to (a proposer's header, a validator's check of a
    /// proposal). The same outcome as [`Ledger::apply_block`].
    pub fn preview(&self, block: &Block<'_>) -> Result<BlockOutcome, BlockError> {
        let d = Exec::run(self, block)?;
        let mut outcome = d.outcome;
        outcome.ledger_root = self.tree.root_after(&d.changes);
        Ok(outcome)
    }

    /// Applies committed `block`: all of it, or (on error) nothing.
    pub fn apply_block(&mut self, block: &Block<'_>) -> Result<BlockOutcome, BlockError> {
        let d = Exec::run(self, block)?;
        Ok(self.commit(d))
    }

    fn commit(&mut self, d: Delta) -> BlockOutcome {
        let number = d.number;
        for (id, a) in d.accounts {
            if a.is_empty() {
                self.accounts.remove(&id);
            } else {
                self.accounts.insert(id, a);
            }
        }
        if d.settled_period {
            // Every job open before the settlement was closed or carried:
            // the open jobs are now those of the overlay (no removal one
            // by one from a map of the whole payout file).
            self.jobs = d
                .jobs
                .into_iter()
                .filter_map(|(id, j)| j.map(|j| (id, j)))
                .collect();
        } else {
            for (id, j) in d.jobs {
                match j {
                    Some(j) => self.jobs.insert(id, j),
                    None => self.jobs.remove(&id),
                };
            }
        }
        for id in d.settled_drop {
            self.settled.remove(&id);
        }
        let kept = self.settled_prune.split_off(&number.next());
        self.settled_prune = kept;
        for (id, forget) in d.settled_add {
            self.settled.insert(id, forget);
            self.settled_prune.entry(forget).or_default().push(id);
        }
        let kept = self.outbound_prune.split_off(&number.next());
        self.outbound_prune = kept;
        for (id, t) in d.outbound {
            match t {
                Some(t) => {
                    let at = self.config.lock_prune_block(t.expires_at);
                    self.outbound_prune.entry(at).or_default().push(id);
                    self.outbound.insert(id, t);
                }
                None => {
                    self.outbound.remove(&id);
                }
            }
        }
        for (id, r) in d.inbound {
            match r {
                Some(r) => {
                    self.inbound_prune
                        .entry((r.source, r.expires_at))
                        .or_default()
                        .push(id);
                    self.inbound.insert(id, r);
                }
                None => {
                    self.inbound.remove(&id);
                }
            }
        }
        for (chain, c) in d.domains {
            let below: Vec<_> = self
                .inbound_prune
                .range((chain, BlockNumber(0))..(chain, c.floor))
                .map(|(k, _)| *k)
                .collect();
            for k in below {
                self.inbound_prune.remove(&k);
            }
            self.domains.insert(chain, c);
        }
        self.validators.extend(d.validators);
        self.fee_pool = d.fee_pool;
        self.signed = d.signed;
        self.supply = d.supply;
        self.next_block = number.next();
        let mut outcome = d.outcome;
        outcome.ledger_root = self.tree.apply(&d.changes);
        outcome
    }
}
