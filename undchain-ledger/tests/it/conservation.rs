//! Token conservation, as a property over random sequences of jobs,
//! receipts (first, repeated, from strangers), partial completions,
//! minting, blocks and period ends (docs/PROTOCOL.md "Ledger"): the supply
//! changes only by genesis and explicit minting, no job pays twice, no
//! balance goes negative, escrow always equals the open claims, and every
//! fee collected is either paid to a validator or still in the pool.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use undchain_consensus::score::{ScoreBook, ScoreRules};
use undchain_ledger::Settlement;
use undchain_ledger::convergence::{GenesisInput, build_genesis};
use undchain_ledger::ledger::{Applied, Block, ChainEvent, Ledger, LedgerOp, Verified};
use undchain_types::{Hash32, HashAlgorithm, JobEntry, JobId, PerceptionScore, TokenAmount};

const CLIENTS: [u64; 3] = [1, 2, 3];
const PARTNERS: [u64; 3] = [11, 12, 13];
const VALIDATORS: [u64; 3] = [101, 102, 103];

#[derive(Debug, Clone)]
enum Action {
    /// A job of client `c` (served by partner `p`, or an open pool).
    Job { c: usize, p: Option<usize> },
    /// A receipt for the `j`-th job made so far, for `amount`.
    Receipt { j: usize, amount: u64 },
    /// A partial completion of job `j`.
    Partial { j: usize, amount: u64 },
    /// A receipt whose client is not the job's.
    StrangerReceipt { j: usize, c: usize },
    /// The last accepted operation again (a second submission).
    Replay,
    /// Chain-owner minting.
    Mint { to: usize, amount: u64 },
    /// Close the block; `signers` is a bit mask over the validators.
    EndBlock { signers: u8 },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..3usize, prop::option::of(0..3usize)).prop_map(|(c, p)| Action::Job { c, p }),
        3 => (0..40usize, 0..400u64).prop_map(|(j, amount)| Action::Receipt { j, amount }),
        2 => (0..40usize, 0..400u64).prop_map(|(j, amount)| Action::Partial { j, amount }),
        1 => (0..40usize, 0..3usize).prop_map(|(j, c)| Action::StrangerReceipt { j, c }),
        1 => Just(Action::Replay),
        1 => (0..9usize, 0..500u64).prop_map(|(to, amount)| Action::Mint { to, amount }),
        3 => (0..8u8).prop_map(|signers| Action::EndBlock { signers }),
    ]
}

fn key_of(i: usize) -> u64 {
    // Mint targets: clients, partners and validators alike.
    [CLIENTS, PARTNERS, VALIDATORS].concat()[i]
}

/// The ledger under test beside a model of what it must hold.
struct Run {
    l: Ledger,
    genesis_total: u64,
    minted: u64,
    minted_by: BTreeMap<u64, u64>,
    jobs_made: Vec<JobEntry>,
    pending_jobs: Vec<JobEntry>,
    pending_ops: Vec<Verified>,
    pending_events: Vec<ChainEvent>,
    last_op: Option<Verified>,
    // Model: what each completed job owes (partner, amount), and what
    // partners must hold once settled.
    owed: BTreeMap<JobId, (u64, u64)>,
    partner_expected: BTreeMap<u64, u64>,
    completed_ever: BTreeSet<JobId>,
    fees_collected: u64,
    next_job: u64,
}

impl Run {
    fn new(alloc: &[u64]) -> Self {
        let genesis: Vec<(u64, u64)> = CLIENTS.iter().copied().zip(alloc.iter().copied()).collect();
        Run {
            l: ledger(&genesis),
            genesis_total: alloc.iter().sum(),
            minted: 0,
            minted_by: BTreeMap::new(),
            jobs_made: Vec::new(),
            pending_jobs: Vec::new(),
            pending_ops: Vec::new(),
            pending_events: Vec::new(),
            last_op: None,
            owed: BTreeMap::new(),
            partner_expected: BTreeMap::new(),
            completed_ever: BTreeSet::new(),
            fees_collected: 0,
            next_job: 0,
        }
    }

    fn step(&mut self, a: Action) -> Result<(), TestCaseError> {
        match a {
            Action::Job { c, p } => {
                let e = job(self.next_job, CLIENTS[c], p.map(|i| PARTNERS[i]));
                self.next_job += 1;
                self.jobs_made.push(e.clone());
                self.pending_jobs.push(e);
            }
            Action::Receipt { j, amount } | Action::Partial { j, amount }
                if !self.jobs_made.is_empty() =>
            {
                let e = &self.jobs_made[j % self.jobs_made.len()];
                let n = e.initiated_at.0; // job(n, ..) puts n here
                let client = CLIENTS
                    .iter()
                    .copied()
                    .find(|c| e.client_pool.contains(&pk(*c)))
                    .unwrap();
                let partner = match e.partner_pool.first() {
                    Some(p) => PARTNERS.iter().copied().find(|q| pk(*q) == *p).unwrap(),
                    None => PARTNERS[(n % 3) as usize],
                };
                let op = if matches!(a, Action::Receipt { .. }) {
                    LedgerOp::Receipt(receipt(n, client, partner, amount))
                } else {
                    LedgerOp::Partial(partial(n, client, partner, amount, 1))
                };
                let v = self.l.verify(op).unwrap();
                self.last_op = Some(v.clone());
                self.pending_ops.push(v);
            }
            Action::StrangerReceipt { j, c } if !self.jobs_made.is_empty() => {
                let e = &self.jobs_made[j % self.jobs_made.len()];
                let stranger = CLIENTS[c];
                if !e.client_pool.contains(&pk(stranger)) {
                    let v = self
                        .l
                        .verify(LedgerOp::Receipt(receipt(
                            e.initiated_at.0,
                            stranger,
                            PARTNERS[0],
                            1,
                        )))
                        .unwrap();
                    self.pending_ops.push(v);
                }
            }
            Action::Replay => {
                if let Some(v) = &self.last_op {
                    self.pending_ops.push(v.clone());
                }
            }
            Action::Mint { to, amount } => {
                self.pending_events.push(ChainEvent::Mint {
                    to: pk(key_of(to)),
                    amount: TokenAmount(amount),
                });
            }
            Action::EndBlock { signers } => self.end_block(signers)?,
            _ => {}
        }
        Ok(())
    }

    fn end_block(&mut self, signers: u8) -> Result<(), TestCaseError> {
        let l = &mut self.l;
        let number = l.next_block();
        let mut file = file(std::mem::take(&mut self.pending_jobs));
        // The proposer leaves out jobs whose requester cannot pay
        // (minting in this block counts: events apply first, so
        // only leave out what the committed state cannot pay).
        for id in l.unaffordable_jobs(&file) {
            file.remove(&id);
        }
        let signer_keys: Vec<_> = VALIDATORS
            .iter()
            .enumerate()
            .filter(|(i, _)| signers & (1 << i) != 0)
            .map(|(_, v)| pk(*v))
            .collect();
        let ops = std::mem::take(&mut self.pending_ops);
        let events = std::mem::take(&mut self.pending_events);
        let b = Block {
            number,
            jobs: &file,
            ops: &ops,
            signers: &signer_keys,
            events: &events,
        };
        let before = l.clone();
        let out = l.apply_block(&b).unwrap();
        prop_assert_eq!(l.root(), out.ledger_root);
        self.fees_collected += out.fees_collected.0;
        for e in &events {
            if let ChainEvent::Mint { to, amount } = e {
                self.minted += amount.0;
                let k = [CLIENTS, PARTNERS, VALIDATORS]
                    .concat()
                    .into_iter()
                    .find(|k| pk(*k) == *to)
                    .unwrap();
                *self.minted_by.entry(k).or_insert(0) += amount.0;
            }
        }
        // No double credit: a job completes at most once, ever.
        for ap in &out.applied {
            let job = match ap {
                Applied::Completed { job, .. } | Applied::Partial { job, .. } => *job,
                other => panic!("unexpected {other:?}"),
            };
            prop_assert!(self.completed_ever.insert(job), "job {job} completed twice");
        }
        for (i, v) in ops.iter().enumerate() {
            if out.refused.iter().any(|r| r.index == i) {
                continue;
            }
            let (partner, amount) = match v.op() {
                LedgerOp::Receipt(r) => (r.terms.partner, r.terms.amount.0),
                LedgerOp::Partial(p) => (
                    p.last_checkpoint.checkpoint.partner,
                    p.last_checkpoint.checkpoint.amount.0,
                ),
                _ => unreachable!(),
            };
            let p = PARTNERS
                .iter()
                .copied()
                .find(|q| pk(*q) == partner)
                .unwrap();
            self.owed.insert(v.op().job().unwrap(), (p, amount));
        }
        // A block whose every operation was refused (and that has
        // no jobs or events) moves no token.
        let l = &self.l;
        if out.applied.is_empty()
            && events.is_empty()
            && file.is_empty()
            && out.settlement.is_none()
        {
            for (id, a) in before.accounts() {
                prop_assert_eq!(l.account(id), *a);
            }
        }
        if let Some(s) = &out.settlement {
            self.settled(s)?;
        }
        self.check_held()
    }

    fn settled(&mut self, s: &Settlement) -> Result<(), TestCaseError> {
        let l = &self.l;
        // At a boundary the state rebuilt from scratch (a
        // convergence genesis) has the incrementally kept
        // root: only touched leaves were re-hashed, rightly.
        let set = set_of(&validator_keys(900, 1));
        let scores = ScoreBook::new(PerceptionScore::MIN, ScoreRules::default());
        let g = build_genesis(
            l,
            GenesisInput {
                counter: 1,
                hash_algorithm: HashAlgorithm::Blake3,
                last_block_hash: Hash32::ZERO,
                validator_set: &set,
                scores: &scores,
            },
        )
        .unwrap();
        let rebuilt = g.ledger(l.config()).unwrap();
        prop_assert_eq!(rebuilt.root(), l.root());
        prop_assert!(rebuilt == *l);
        for (_, (p, amount)) in std::mem::take(&mut self.owed) {
            *self.partner_expected.entry(p).or_insert(0) += amount;
        }
        prop_assert_eq!(
            s.completed + s.partial,
            s.settled.as_ref().map_or(0, |f| {
                f.records()
                    .filter(|r| {
                        matches!(
                            r.completion,
                            undchain_jobfile::Completion::Complete { .. }
                                | undchain_jobfile::Completion::Partial { .. }
                        )
                    })
                    .count() as u64
            })
        );
        Ok(())
    }

    /// What must hold after every block.
    fn check_held(&self) -> Result<(), TestCaseError> {
        let l = &self.l;
        // Conservation: held == circulating == genesis + minted.
        assert_conserved(l);
        prop_assert_eq!(
            l.supply().circulating(),
            u128::from(self.genesis_total) + u128::from(self.minted)
        );
        // Escrow equals the open claims, per client.
        let mut escrow: BTreeMap<_, u64> = BTreeMap::new();
        for c in l.claims().values() {
            *escrow.entry(c.client).or_insert(0) += c.amount.0;
        }
        for (id, acct) in l.accounts() {
            prop_assert_eq!(acct.reserved.0, escrow.get(id).copied().unwrap_or(0));
        }
        // Partners hold exactly what settled periods paid them,
        // plus what was minted to them: nothing is paid twice.
        for p in PARTNERS {
            let want = self.partner_expected.get(&p).copied().unwrap_or(0)
                + self.minted_by.get(&p).copied().unwrap_or(0);
            prop_assert_eq!(l.account(&pk(p)).balance.0, want, "partner {}", p);
        }
        // Fees: what validators hold plus the pool is exactly what
        // jobs paid (plus minting to validators).
        let validators: u64 = VALIDATORS
            .iter()
            .map(|v| l.account(&pk(*v)).balance.0)
            .sum();
        let minted_validators: u64 = VALIDATORS
            .iter()
            .map(|v| self.minted_by.get(v).copied().unwrap_or(0))
            .sum();
        prop_assert_eq!(
            validators + l.fee_pool().0,
            self.fees_collected + minted_validators
        );
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn conservation_over_random_jobs_receipts_partials_cancellations_and_period_ends(
        actions in prop::collection::vec(action(), 1..70),
        alloc in prop::collection::vec(0..600u64, 3),
    ) {
        let mut run = Run::new(&alloc);
        for a in actions {
            run.step(a)?;
        }
    }
}
