//! The property of issue 11 over random histories of several payout
//! periods on two linked domains: requests, receipts, partials, transfers,
//! domain locks with their credit, expiry and refund proofs, and
//! convergence. At every block: supply conserved on both chains, every
//! account's escrow exactly the budgets of its open jobs, every job paid
//! at most its escrow and settled at most once, never a transfer both
//! credited and refunded, the incremental root equal to a full rebuild,
//! and every owed claim proven against the committed root.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::support::*;
use undchain_ledger::convergence::{GenesisInput, converge};
use undchain_ledger::ledger::state::verify_leaf;
use undchain_ledger::{Applied, BlockOutcome, Ledger, StateKey, Verified};
use undchain_types::msg::{
    DomainProofKind, DomainTransferProof, DomainTransferTerms, SignedHeader, StateProof, TxOp,
};
use undchain_types::{BlockNumber, ChainId, Hash32, HashAlgorithm, JobId, TokenAmount};

const A: ChainId = ChainId(1);
const B: ChainId = ChainId(2);
const CLIENTS: [u64; 4] = [1, 2, 3, 4];
const PARTNERS: [u64; 4] = [11, 12, 13, 14];
const RELAYER: u64 = 20;

#[derive(Debug, Clone)]
enum Act {
    Request {
        client: u8,
        units: u8,
        price: u8,
        two_partners: bool,
    },
    Receipt {
        job: u8,
        partner: u8,
        amount: u16,
    },
    Partial {
        job: u8,
        partner: u8,
        amount: u16,
        counter: u8,
    },
    Transfer {
        from: u8,
        to: u8,
        amount: u16,
    },
    Lock {
        from: u8,
        amount: u16,
        expires: u8,
    },
    Credit {
        transfer: u8,
    },
    Expire {
        transfer: u8,
    },
    Refund {
        transfer: u8,
    },
    EndBlock,
    Converge,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        (any::<u8>(), 1..20u8, 1..30u8, any::<bool>()).prop_map(
            |(client, units, price, two_partners)| {
                Act::Request {
                    client,
                    units,
                    price,
                    two_partners,
                }
            }
        ),
        (any::<u8>(), any::<u8>(), 0..400u16).prop_map(|(job, partner, amount)| Act::Receipt {
            job,
            partner,
            amount
        }),
        (any::<u8>(), any::<u8>(), 0..400u16, 0..6u8).prop_map(
            |(job, partner, amount, counter)| {
                Act::Partial {
                    job,
                    partner,
                    amount,
                    counter,
                }
            }
        ),
        (any::<u8>(), any::<u8>(), 1..300u16).prop_map(|(from, to, amount)| Act::Transfer {
            from,
            to,
            amount
        }),
        (any::<u8>(), 1..200u16, 0..6u8).prop_map(|(from, amount, expires)| Act::Lock {
            from,
            amount,
            expires
        }),
        any::<u8>().prop_map(|transfer| Act::Credit { transfer }),
        any::<u8>().prop_map(|transfer| Act::Expire { transfer }),
        any::<u8>().prop_map(|transfer| Act::Refund { transfer }),
        Just(Act::EndBlock),
        Just(Act::EndBlock),
        Just(Act::EndBlock),
        Just(Act::Converge),
    ]
}

fn pick<T: Copy>(items: &[T], i: u8) -> T {
    items[usize::from(i) % items.len()]
}

/// The two chains and what the history has done to them.
struct World {
    a: Foreign,
    b: Foreign,
    reqs: Vec<Req>,
    a_ops: Vec<Verified>,
    b_ops: Vec<Verified>,
    seq: u64,
    escrow_of: BTreeMap<JobId, u64>,
    settled: BTreeSet<JobId>,
    /// Locks: terms, and the header and proof of the block that made them.
    transfers: Vec<(DomainTransferTerms, SignedHeader, StateProof)>,
    credited: BTreeSet<Hash32>,
    refunded: BTreeSet<Hash32>,
}

fn alloc() -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = CLIENTS.iter().map(|c| (*c, 2_000)).collect();
    v.extend([(RELAYER, 1_000_000), (OWNER, 1_000)]);
    v
}

impl World {
    fn new() -> Self {
        let mut a = Foreign::new(A, HashAlgorithm::Blake3, &alloc(), 100);
        let mut b = Foreign::new(B, HashAlgorithm::Sha256, &alloc(), 200);
        empty(&mut a.ledger);
        empty(&mut b.ledger);
        let day = 86_400_000_000;
        let (ra, rb) = (a.registration(day), b.registration(day));
        let t = tx(&a.ledger, OWNER, TxOp::RegisterDomain(Box::new(rb)));
        ops(&mut a.ledger, &[t]);
        let t = tx(&b.ledger, OWNER, TxOp::RegisterDomain(Box::new(ra)));
        ops(&mut b.ledger, &[t]);
        World {
            a,
            b,
            reqs: Vec::new(),
            a_ops: Vec::new(),
            b_ops: Vec::new(),
            seq: 0,
            escrow_of: BTreeMap::new(),
            settled: BTreeSet::new(),
            transfers: Vec::new(),
            credited: BTreeSet::new(),
            refunded: BTreeSet::new(),
        }
    }

    /// A transaction of `sender` on `l`, after the ones already queued.
    fn queued_tx(l: &Ledger, queued: &[Verified], sender: u64, op: TxOp) -> Verified {
        let mine = queued
            .iter()
            .filter(|v| matches!(v.op(), undchain_ledger::LedgerOp::Transaction(t) if t.body.sender == pk(sender)))
            .count() as u64;
        tx_nonce(l, sender, l.account(&pk(sender)).nonce + mine, op)
    }

    fn proof(
        &mut self,
        on_b: bool,
        terms: &DomainTransferTerms,
        kind: DomainProofKind,
        block: SignedHeader,
    ) {
        let p = TxOp::DomainProof(Box::new(DomainTransferProof {
            terms: terms.clone(),
            kind,
            block,
        }));
        if on_b {
            let t = Self::queued_tx(&self.b.ledger, &self.b_ops, RELAYER, p);
            self.b_ops.push(t);
        } else {
            let t = Self::queued_tx(&self.a.ledger, &self.a_ops, RELAYER, p);
            self.a_ops.push(t);
        }
    }

    /// The `i`-th lock made so far (modulo their number).
    fn lock_made(&self, i: u8) -> Option<(DomainTransferTerms, SignedHeader, StateProof)> {
        let n = self.transfers.len();
        (n > 0).then(|| self.transfers[usize::from(i) % n].clone())
    }

    /// The client key index paying open job `id`.
    fn client_of(&self, id: &JobId) -> u64 {
        let payer = self.a.ledger.job(id).unwrap().client;
        CLIENTS.iter().copied().find(|c| pk(*c) == payer).unwrap()
    }

    fn open_job(&self, i: u8) -> Option<JobId> {
        let jobs = self.a.ledger.jobs();
        (!jobs.is_empty()).then(|| jobs[usize::from(i) % jobs.len()].entry.id)
    }

    fn act(&mut self, act: Act) {
        let l = &self.a.ledger;
        match act {
            Act::Request {
                client,
                units,
                price,
                two_partners,
            } => {
                self.seq += 1;
                let c = pick(&CLIENTS, client);
                let ps: Vec<u64> = if two_partners {
                    PARTNERS[..2].to_vec()
                } else {
                    vec![pick(&PARTNERS, client)]
                };
                let r = request(l, c, self.seq, units.into(), price.into(), &ps);
                // A proposer leaves out what the block could not commit.
                let mut trial = self.reqs.clone();
                trial.push(r.clone());
                let f = file(&trial);
                let rs: Vec<_> = trial.iter().map(|r| r.verified.clone()).collect();
                if l.unaffordable_jobs(&f, &rs).is_empty() {
                    self.reqs.push(r);
                }
            }
            Act::Receipt {
                job,
                partner,
                amount,
            } => {
                if let Some(id) = self.open_job(job) {
                    let c = self.client_of(&id);
                    self.a_ops
                        .push(receipt(l, id, c, pick(&PARTNERS, partner), amount.into()));
                }
            }
            Act::Partial {
                job,
                partner,
                amount,
                counter,
            } => {
                if let Some(id) = self.open_job(job) {
                    let c = self.client_of(&id);
                    let p = partial(
                        l,
                        id,
                        c,
                        pick(&PARTNERS, partner),
                        amount.into(),
                        counter.into(),
                    );
                    self.a_ops.push(p);
                }
            }
            Act::Transfer { from, to, amount } => {
                let op = transfer(pick(&CLIENTS, to), amount.into());
                let t = Self::queued_tx(l, &self.a_ops, pick(&CLIENTS, from), op);
                self.a_ops.push(t);
            }
            Act::Lock {
                from,
                amount,
                expires,
            } => {
                let op = TxOp::DomainLock {
                    target: B,
                    to: pk(pick(&PARTNERS, from)),
                    amount: TokenAmount(amount.into()),
                    expires_at: BlockNumber(l.next_block().0 + u64::from(expires)),
                };
                let t = Self::queued_tx(l, &self.a_ops, pick(&CLIENTS, from), op);
                self.a_ops.push(t);
            }
            Act::Credit { transfer } => {
                if let Some((terms, header, proof)) = self.lock_made(transfer) {
                    self.proof(true, &terms, DomainProofKind::Credit { proof }, header);
                }
            }
            Act::Expire { transfer } => {
                let Some((terms, _, _)) = self.lock_made(transfer) else {
                    return;
                };
                if let Some(proof) = self.a.ledger.prove(&StateKey::Outbound(terms.id())) {
                    let h = self.a.header();
                    self.proof(true, &terms, DomainProofKind::Expire { proof }, h);
                }
            }
            Act::Refund { transfer } => {
                let Some((terms, _, _)) = self.lock_made(transfer) else {
                    return;
                };
                if let Some(proof) = self.b.ledger.prove(&StateKey::Inbound(terms.id())) {
                    let h = self.b.header();
                    self.proof(false, &terms, DomainProofKind::Refund { proof }, h);
                }
            }
            Act::EndBlock => self.end_block(),
            Act::Converge => self.converge(),
        }
    }

    fn end_block(&mut self) {
        let reqs = std::mem::take(&mut self.reqs);
        for r in &reqs {
            self.escrow_of.insert(r.id(), r.verified.budget().0);
        }
        let (a_ops, b_ops) = (
            std::mem::take(&mut self.a_ops),
            std::mem::take(&mut self.b_ops),
        );
        let out = run(&mut self.a.ledger, &reqs, &a_ops, &[]);
        self.after_a(&out);
        let out_b = run(&mut self.b.ledger, &[], &b_ops, &[]);
        for a in &out_b.applied {
            if let Applied::Credited { id } = a {
                assert!(self.credited.insert(*id), "credited twice");
            }
        }
        self.check();
    }

    fn after_a(&mut self, out: &BlockOutcome) {
        let header = self.a.header();
        for a in &out.applied {
            match a {
                Applied::Locked { id } => {
                    let terms = self.a.ledger.outbound(id).unwrap().clone();
                    let proof = self.a.ledger.prove(&StateKey::Outbound(*id)).unwrap();
                    self.transfers.push((terms, header.clone(), proof));
                }
                Applied::Refunded { id } => assert!(self.refunded.insert(*id), "refunded twice"),
                _ => {}
            }
        }
        if let Some(s) = &out.settlement {
            let mut escrowed = 0u64;
            for id in s.settled.iter().chain(&s.cancelled) {
                assert!(self.settled.insert(*id), "job {id} settled twice");
                escrowed += self.escrow_of[id];
            }
            // Every settled job paid from its own escrow, the rest refunded.
            assert_eq!(s.paid.0 + s.refunded.0, escrowed);
        }
    }

    fn converge(&mut self) {
        let l = &self.a.ledger;
        if l.next_block().0 % BPP != 0 {
            return;
        }
        let keys = validator_keys(100, 4);
        let set = set_of(&keys);
        let scores = undchain_consensus::score::ScoreBook::new(
            undchain_types::PerceptionScore::new(200).unwrap(),
            undchain_consensus::score::ScoreRules::default(),
        );
        let cfg = l.config().clone();
        let input = GenesisInput {
            counter: 1,
            config: &cfg,
            last_block_hash: Hash32([3; 32]),
            validator_set: &set,
            scores: &scores,
        };
        let new = converge(l, input).unwrap().ledger;
        assert_eq!(new.state(), l.state());
        assert_eq!(new.root(), l.root());
        self.a.ledger = new;
    }

    fn check(&self) {
        for l in [&self.a.ledger, &self.b.ledger] {
            assert_conserved(l);
            let algo = l.config().hash_algorithm;
            let mut escrow: BTreeMap<_, u64> = BTreeMap::new();
            for j in l.jobs() {
                *escrow.entry(j.client).or_default() += j.escrow.0;
                assert!(j.claimed() <= u128::from(j.escrow.0), "claims past escrow");
                if !j.claims.is_empty() {
                    let key = StateKey::Job(j.entry.id);
                    let proof = l.prove(&key).expect("owed claim has a proof");
                    assert!(verify_leaf(algo, &l.root(), &key, &j.leaf(), &proof));
                }
            }
            for c in CLIENTS {
                let want = escrow.get(&pk(c)).copied().unwrap_or(0);
                assert_eq!(l.account(&pk(c)).escrow.0, want, "escrow of {c}");
            }
        }
        assert!(
            self.credited.is_disjoint(&self.refunded),
            "credited and refunded"
        );
        let imported: u64 = self
            .transfers
            .iter()
            .filter(|(t, _, _)| self.credited.contains(&t.id()))
            .map(|(t, _, _)| t.amount.0)
            .sum();
        assert_eq!(self.b.ledger.supply().imported, imported);
        assert!(self.a.ledger.supply().exported >= imported + self.a.ledger.supply().refunded);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_keep_every_money_invariant(acts in proptest::collection::vec(act(), 20..120)) {
        let mut w = World::new();
        for a in acts {
            w.act(a);
        }
        // Run past two more period ends so everything open settles.
        for _ in 0..(3 * BPP) {
            w.end_block();
        }
        prop_assert_eq!(w.a.ledger.open_jobs(), 0);
        for c in CLIENTS {
            prop_assert_eq!(escrow(&w.a.ledger, c), 0);
        }
    }
}
