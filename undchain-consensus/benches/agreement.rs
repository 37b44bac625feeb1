//! Decisions per second of the pure agreement core at n = 10 (issue 5).
//!
//! Ten [`Driver`]s exchange messages through an in-memory FIFO with no
//! network model and no faults; the host answers `GetValue` and
//! `CheckValue` at once. One iteration decides one height at all ten
//! validators (one network decision: 1 proposal, 20 votes, each delivered
//! to 9 peers); each driver's batches are acknowledged at once (storage
//! that answers immediately). Three variants:
//!
//! * `shared_verify`: one signature check per message for all ten (as the
//!   simulator does, and as a host with a verification cache would);
//! * `strict_verify`: every validator checks every signature itself (ten
//!   separate machines);
//! * `crypto_floor`: the peer figure: signing and strictly verifying the 21
//!   messages of one height once, nothing else (what `shared_verify` cannot
//!   go below);
//! * `strict_verify_spam10x` beside `strict_verify` (issue 13): the same
//!   with a spam flood of 10 messages per honest delivery (10x the honest
//!   message rate) from validator 0's key: repeats of the honest message,
//!   its own signed votes for random values in the next eight rounds of the
//!   height, and votes for heights far ahead. The flood is signed before
//!   each timed height (the attacker's work is not the victims'). Before
//!   the timed runs, the bench prints how many signatures all ten
//!   validators check per height with and without the flood (a counting
//!   verifier over 20 heights each).
//!
//! ```text
//! cargo bench -p undchain-consensus --bench agreement
//! ```

use std::cell::Cell;
use std::collections::VecDeque;
use std::hint::black_box;
use std::rc::Rc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use undchain_consensus::sim::SharedVerifier;
use undchain_consensus::{
    Driver, DriverConfig, Output, SignatureVerifier, StrictVerifier, ValidatorSet, Validity, Value,
};
use undchain_sim::node_key;
use undchain_types::msg::{Vote, VoteKind};
use undchain_types::{
    BlockHeader, BlockNumber, BlockTime, ChainId, Hash32, LocalTime, Message, PublicKey,
};

const N: usize = 10;

struct Net<V> {
    drivers: Vec<Driver<V>>,
    ids: Vec<PublicKey>,
    set: ValidatorSet,
    height: u64,
    parent: Hash32,
    decided: usize,
}

impl<V: SignatureVerifier> Net<V> {
    fn new(make: impl Fn() -> V) -> Self {
        let keys: Vec<_> = (0..N).map(node_key).collect();
        let ids: Vec<PublicKey> = keys.iter().map(|k| k.public()).collect();
        let set = ValidatorSet::of_unknown(&ids).unwrap();
        let drivers = keys
            .into_iter()
            .map(|k| Driver::with_verifier(DriverConfig::new(ChainId(1)), k, make()))
            .collect();
        Net {
            drivers,
            ids,
            set,
            height: 0,
            parent: Hash32::ZERO,
            decided: 0,
        }
    }

    fn header(&self, round: u32) -> BlockHeader {
        BlockHeader {
            chain_id: ChainId(1),
            epoch: 0,
            number: BlockNumber(self.height),
            time: BlockTime(self.height),
            parent: self.parent,
            job_root: Hash32([round as u8; 32]),
            job_count: 1,
            ops_root: Hash32::ZERO,
            ops_count: 0,
            ledger_root: Hash32::ZERO,
            validator_set_hash: self.set.hash(),
            links: Default::default(),
            parent_signers: 0,
            evidence: Default::default(),
        }
    }

    /// Queues what driver `i` has for its host: each batch acknowledged at
    /// once (storage that answers immediately), its outputs in order.
    fn drain(&mut self, i: usize, work: &mut VecDeque<(usize, Output)>) {
        while let Some(batch) = self.drivers[i].ready() {
            self.drivers[i]
                .advance(batch.number())
                .expect("the outstanding batch");
            work.extend(
                batch
                    .immediate
                    .into_iter()
                    .chain(batch.after_persist)
                    .map(|o| (i, o)),
            );
        }
    }

    /// Validator 0's spam for the current height: signed votes for random
    /// values in rounds 1..=8, and votes for heights far ahead.
    fn spam(&self, seed: u64) -> Vec<Message> {
        let k = node_key(0);
        let mut rng = undchain_sim::SplitMix64::new(seed);
        (0..400)
            .map(|i| {
                let far = i % 5 == 4;
                let vote = Vote {
                    chain_id: ChainId(1),
                    height: BlockNumber(if far {
                        self.height + 2 + rng.below(1_000)
                    } else {
                        self.height
                    }),
                    round: 1 + rng.below(8) as u32,
                    kind: if rng.chance(500) {
                        VoteKind::Prevote
                    } else {
                        VoteKind::Precommit
                    },
                    value: Some(Hash32([rng.below(250) as u8; 32])),
                    validator: k.public(),
                };
                Message::Vote(vote.sign(&k))
            })
            .collect()
    }

    /// Runs one height to a decision at every validator.
    fn height(&mut self) {
        self.height_flooded(&[]);
    }

    /// Runs one height with `spam` mixed in: every honest delivery brings
    /// 10 flood messages to its recipient (4 repeats of it, 6 from `spam`
    /// in turn).
    fn height_flooded(&mut self, spam: &[Message]) {
        let mut next_spam = 0usize;
        let now = LocalTime::from_micros(self.height as i64);
        let h = BlockNumber(self.height);
        let mut work: VecDeque<(usize, Output)> = VecDeque::new();
        for i in 0..N {
            self.drivers[i].start_height(now, h, self.set.clone());
            self.drain(i, &mut work);
        }
        let mut decided_hash = None;
        while let Some((i, o)) = work.pop_front() {
            match o {
                Output::Broadcast { msg } => {
                    for j in (0..N).filter(|j| *j != i) {
                        if self.drivers[j]
                            .handle_message(now, self.ids[i], msg.clone())
                            .is_ok()
                        {
                            self.drain(j, &mut work);
                        }
                        if spam.is_empty() {
                            continue;
                        }
                        for f in 0..10 {
                            let m = if f < 4 {
                                msg.clone()
                            } else {
                                next_spam += 1;
                                spam[next_spam % spam.len()].clone()
                            };
                            if self.drivers[j].handle_message(now, self.ids[0], m).is_ok() {
                                self.drain(j, &mut work);
                            }
                        }
                    }
                }
                Output::GetValue { height, round } => {
                    let v = Value {
                        header: self.header(round),
                        parent_certificate: None,
                    };
                    let _ = self.drivers[i].propose_value(now, height, round, v);
                    self.drain(i, &mut work);
                }
                Output::CheckValue { height, key, .. } => {
                    let _ = self.drivers[i].handle_validity(now, height, key, Validity::Valid);
                    self.drain(i, &mut work);
                }
                Output::Decide(b) => {
                    decided_hash = Some(b.header.hash());
                    self.decided += 1;
                }
                _ => {}
            }
        }
        self.parent = decided_hash.expect("decided");
        self.height += 1;
    }
}

/// Strict verification that counts its checks.
#[derive(Clone, Default)]
struct Counting(Rc<Cell<u64>>);

impl SignatureVerifier for Counting {
    fn verify(
        &mut self,
        signer: &PublicKey,
        digest: &Hash32,
        signature: &undchain_types::Signature,
    ) -> bool {
        self.0.set(self.0.get() + 1);
        StrictVerifier.verify(signer, digest, signature)
    }
}

/// Signature checks per height (all ten validators), over 20 heights,
/// without and with the flood.
fn checks_per_height() -> (f64, f64) {
    let count = |flood: bool| {
        let c = Counting::default();
        let mut net = Net::new(|| c.clone());
        for _ in 0..20 {
            let spam = if flood {
                net.spam(net.height)
            } else {
                Vec::new()
            };
            net.height_flooded(&spam);
        }
        c.0.get() as f64 / 20.0
    };
    (count(false), count(true))
}

fn bench(c: &mut Criterion) {
    let (honest, flooded) = checks_per_height();
    println!(
        "signature checks per height (10 validators): strict_verify {honest:.1}, strict_verify_spam10x {flooded:.1}"
    );
    let mut g = c.benchmark_group("agreement_n10");
    g.throughput(Throughput::Elements(1));
    g.bench_function("shared_verify", |b| {
        let cache = SharedVerifier::default();
        let mut net = Net::new(|| cache.clone());
        b.iter(|| {
            net.height();
            black_box(net.decided)
        });
        assert_eq!(net.decided as u64, net.height * N as u64);
    });
    g.bench_function("crypto_floor", |b| {
        let keys: Vec<_> = (0..N).map(node_key).collect();
        let mut round = 0u64;
        b.iter(|| {
            round += 1;
            let mut ok = 0;
            for i in 0..21 {
                let k = &keys[i % N];
                let v = Vote {
                    chain_id: ChainId(1),
                    height: BlockNumber(round),
                    round: 0,
                    kind: if i < 11 {
                        VoteKind::Prevote
                    } else {
                        VoteKind::Precommit
                    },
                    value: Some(Hash32([i as u8; 32])),
                    validator: k.public(),
                }
                .sign(k);
                ok += usize::from(v.verify().is_ok());
            }
            black_box(ok)
        });
    });
    g.bench_function("strict_verify", |b| {
        let mut net = Net::new(|| StrictVerifier);
        b.iter(|| {
            net.height();
            black_box(net.decided)
        });
    });
    g.bench_function("strict_verify_spam10x", |b| {
        let net = std::cell::RefCell::new(Net::new(|| StrictVerifier));
        b.iter_batched(
            || {
                let n = net.borrow();
                n.spam(n.height)
            },
            |spam| {
                let mut n = net.borrow_mut();
                n.height_flooded(&spam);
                black_box(n.decided)
            },
            BatchSize::PerIteration,
        );
        let n = net.borrow();
        assert_eq!(n.decided as u64, n.height * N as u64);
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
