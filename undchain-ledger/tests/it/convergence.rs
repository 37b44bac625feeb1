//! Convergence scenarios (design notes, validator story item 6; DESIGN.md
//! "Convergence"): the state derived from a new genesis equals the state at
//! the old chain's tip, every validator computes the same genesis hash, a
//! quorum certifies it, a hash-algorithm switch is real, and blocks go on
//! without a pause.

use crate::support::*;
use undchain_consensus::ValidatorSet;
use undchain_consensus::score::{ScoreBook, ScoreRules};
use undchain_ledger::convergence::{
    ConvergenceError, Genesis, GenesisInput, GenesisVotes, build_genesis, converge, convergence_due,
};
use undchain_ledger::ledger::{Block, ChainEvent, Ledger, LedgerOp};
use undchain_types::msg::{ConvergenceReason, DomainTransferTerms};
use undchain_types::{
    BlockHeader, BlockNumber, BlockTime, ChainId, ChainParams, Hash32, HashAlgorithm, JobEntry,
    PerceptionScore, PublicKey, SigningKey, TokenAmount, wire,
};

const C1: u64 = 1;
const C2: u64 = 2;
const P1: u64 = 11;
const P2: u64 = 12;

/// One block of a scripted history, as data every validator replays.
struct Script {
    jobs: Vec<JobEntry>,
    ops: Vec<LedgerOp>,
    signers: Vec<PublicKey>,
    events: Vec<ChainEvent>,
}

fn validators() -> Vec<SigningKey> {
    validator_keys(100, 4)
}

/// Blocks 0..8 (two payout periods of 4 blocks): jobs, receipts, a partial,
/// a job left open across the boundary (carried), minting, a foreign domain
/// and an outgoing transfer.
fn history() -> Vec<Script> {
    let v: Vec<PublicKey> = validators().iter().map(|k| k.public()).collect();
    let lock = DomainTransferTerms {
        source: CHAIN,
        target: ChainId(2),
        nonce: 0,
        from: pk(C2),
        to: pk(C1),
        amount: TokenAmount(7),
        expires_at: BlockNumber(100),
    }
    .sign(&sk(C2));
    let mut s: Vec<Script> = (0..8)
        .map(|_| Script {
            jobs: vec![],
            ops: vec![],
            signers: v[..3].to_vec(),
            events: vec![],
        })
        .collect();
    s[0].jobs = vec![job(1, C1, Some(P1)), job(2, C2, Some(P2)), job(3, C1, None)];
    s[0].events = vec![ChainEvent::RegisterDomain {
        chain: ChainId(2),
        algorithm: HashAlgorithm::Sha256,
        from: BlockNumber(0),
        set: set_of(&validator_keys(500, 4)),
    }];
    s[1].ops = vec![LedgerOp::Receipt(receipt(1, C1, P1, 120))];
    s[2].ops = vec![LedgerOp::Partial(partial(2, C2, P2, 30, 3))];
    s[2].signers = v[1..].to_vec();
    s[3].jobs = vec![job(4, C2, Some(P1))];
    s[4].jobs = vec![job(5, C1, Some(P2)), job(6, C2, Some(P1))];
    s[4].events = vec![ChainEvent::Mint {
        to: pk(C2),
        amount: TokenAmount(55),
    }];
    s[5].ops = vec![
        LedgerOp::Receipt(receipt(5, C1, P2, 40)),
        LedgerOp::DomainLock(lock),
    ];
    // Job 3 (period 0) is cancelled at the end of period 1; job 6 (period 1)
    // stays open and is carried into period 2.
    s[6].ops = vec![LedgerOp::Receipt(receipt(4, C2, P1, 9))];
    s
}

/// The state without the running operations digest, which is a hash and
/// so follows the chain's algorithm.
fn money(l: &Ledger) -> undchain_ledger::ledger::LedgerState {
    undchain_ledger::ledger::LedgerState {
        ops_digest: Hash32::ZERO,
        ..l.state()
    }
}

fn fresh() -> Ledger {
    ledger(&[(C1, 1_000), (C2, 1_000)])
}

fn replay(l: &mut Ledger, blocks: &[Script]) {
    for s in blocks {
        let f = file(s.jobs.clone());
        let ops: Vec<_> = s.ops.iter().map(|o| l.verify(o.clone()).unwrap()).collect();
        let b = Block {
            number: l.next_block(),
            jobs: &f,
            ops: &ops,
            signers: &s.signers,
            events: &s.events,
        };
        let out = l.apply_block(&b).unwrap();
        assert!(out.refused.is_empty(), "{:?}", out.refused);
    }
}

fn scores() -> ScoreBook {
    let mut b = ScoreBook::new(PerceptionScore::new(200).unwrap(), ScoreRules::default());
    for (i, k) in validators().iter().enumerate() {
        b.set(
            k.public(),
            PerceptionScore::new(500 + 10 * i as u16).unwrap(),
        );
    }
    b
}

fn set() -> ValidatorSet {
    set_of(&validators())
}

fn input<'a>(
    counter: u32,
    algo: HashAlgorithm,
    last: Hash32,
    set: &'a ValidatorSet,
    scores: &'a ScoreBook,
) -> GenesisInput<'a> {
    GenesisInput {
        counter,
        hash_algorithm: algo,
        last_block_hash: last,
        validator_set: set,
        scores,
    }
}

#[test]
fn convergence_state_from_new_genesis_equals_state_at_old_tip() {
    let mut old = fresh();
    replay(&mut old, &history());
    assert_eq!(old.next_block(), BlockNumber(8));
    assert_eq!(old.payout().len(), 1, "job 6 carried into period 2");
    let (set, scores) = (set(), scores());
    let last = Hash32([7; 32]);

    // Same algorithm: the rebuilt ledger is the old one, root included.
    let same = converge(&old, input(1, HashAlgorithm::Blake3, last, &set, &scores)).unwrap();
    assert_eq!(same.ledger, old);
    assert_eq!(same.ledger.root(), old.root());
    assert_eq!(same.ledger.payout(), old.payout());
    assert_eq!(
        same.genesis
            .score_book(PerceptionScore::new(200).unwrap(), ScoreRules::default()),
        scores
    );
    assert_eq!(same.genesis.validator_set, set);

    // Switch to SHA-256: same state, other hashes.
    let sha = converge(&old, input(1, HashAlgorithm::Sha256, last, &set, &scores)).unwrap();
    assert_eq!(sha.ledger.state(), old.state());
    assert_eq!(sha.ledger.payout(), old.payout());
    assert_eq!(sha.ledger.config().hash_algorithm, HashAlgorithm::Sha256);
    assert_ne!(sha.ledger.root(), old.root());
    assert_ne!(sha.genesis_hash, same.genesis_hash);

    // Both continue: the carried job completes in period 2 and settles the
    // same way on the old chain and on either new genesis.
    let mut tip = old.clone();
    let mut a = same.ledger.clone();
    let mut b = sha.ledger.clone();
    let more: Vec<Script> = (0..4)
        .map(|i| Script {
            jobs: if i == 0 {
                vec![job(7, C1, Some(P1))]
            } else {
                vec![]
            },
            ops: if i == 1 {
                vec![LedgerOp::Receipt(receipt(6, C2, P1, 11))]
            } else {
                vec![]
            },
            signers: vec![validators()[0].public()],
            events: vec![],
        })
        .collect();
    replay(&mut tip, &more);
    replay(&mut a, &more);
    replay(&mut b, &more);
    assert_eq!(a, tip);
    assert_eq!(money(&b), money(&tip));
    assert_eq!(b.payout(), tip.payout());
    assert_eq!(tip.account(&pk(P1)).balance, TokenAmount(120 + 9 + 11));
    assert_conserved(&b);
}

#[test]
fn convergence_every_validator_computes_the_same_genesis_hash() {
    let h = history();
    let (set, scores) = (set(), scores());
    let last4 = Hash32([4; 32]);
    let last8 = Hash32([8; 32]);

    // Four validators replay the same committed blocks. All converge at the
    // end of period 0 (counter 1): validator 0 computes the genesis, and
    // validator 1 only receives it (as bytes) and starts from it.
    let mut ledgers: Vec<Ledger> = (0..4).map(|_| fresh()).collect();
    for l in ledgers.iter_mut() {
        replay(l, &h[..4]);
    }
    let g0 = build_genesis(
        &ledgers[0],
        input(1, HashAlgorithm::Blake3, last4, &set, &scores),
    )
    .unwrap();
    let bytes = wire::encode(&g0);
    let received: Genesis = wire::decode(&bytes, 1 << 20).unwrap();
    assert_eq!(received.hash(), g0.hash());
    ledgers[1] = received.ledger(ledgers[1].config()).unwrap();
    for (i, l) in ledgers.iter_mut().enumerate() {
        if i != 1 {
            let g =
                build_genesis(l, input(1, HashAlgorithm::Blake3, last4, &set, &scores)).unwrap();
            assert_eq!(g.hash(), g0.hash(), "validator {i}");
            *l = g.ledger(l.config()).unwrap();
        }
    }
    // Validator 2 previews each block (as when checking proposals) first.
    for (i, l) in ledgers.iter_mut().enumerate() {
        if i == 2 {
            for s in &h[4..] {
                let f = file(s.jobs.clone());
                let ops: Vec<_> = s.ops.iter().map(|o| l.verify(o.clone()).unwrap()).collect();
                let b = Block {
                    number: l.next_block(),
                    jobs: &f,
                    ops: &ops,
                    signers: &s.signers,
                    events: &s.events,
                };
                let p = l.preview(&b).unwrap();
                let a = l.apply_block(&b).unwrap();
                assert_eq!(p.ledger_root, a.ledger_root);
            }
        } else {
            replay(l, &h[4..]);
        }
    }
    let hashes: Vec<Hash32> = ledgers
        .iter()
        .map(|l| {
            build_genesis(l, input(2, HashAlgorithm::Sha256, last8, &set, &scores))
                .unwrap()
                .hash()
        })
        .collect();
    assert!(hashes.iter().all(|x| *x == hashes[0]), "{hashes:?}");

    // Any difference in committed state or inputs gives another hash.
    let base = hashes[0];
    let g = |l: &Ledger, last: Hash32, counter: u32| {
        build_genesis(
            l,
            input(counter, HashAlgorithm::Sha256, last, &set, &scores),
        )
        .unwrap()
        .hash()
    };
    assert_ne!(g(&ledgers[0], Hash32([9; 32]), 2), base);
    assert_ne!(g(&ledgers[0], last8, 3), base);
    let mut other_scores = scores.clone();
    other_scores.set(validators()[0].public(), PerceptionScore::new(1).unwrap());
    assert_ne!(
        build_genesis(
            &ledgers[0],
            input(2, HashAlgorithm::Sha256, last8, &set, &other_scores)
        )
        .unwrap()
        .hash(),
        base
    );
    let mut diverged = fresh();
    let mut h2 = history();
    h2[6].ops.clear(); // one receipt missing
    replay(&mut diverged, &h2);
    assert_ne!(g(&diverged, last8, 2), base);
}

#[test]
fn convergence_genesis_is_certified_by_a_quorum_only() {
    let mut l = fresh();
    replay(&mut l, &history());
    let (set, scores) = (set(), scores());
    let g = build_genesis(
        &l,
        input(1, HashAlgorithm::Sha256, Hash32([1; 32]), &set, &scores),
    )
    .unwrap();
    let keys = validators();
    let mut votes = GenesisVotes::new(&g);
    assert_eq!(votes.handle_signature(&g.sign(&keys[0])), Ok(false));
    assert_eq!(
        votes.handle_signature(&g.sign(&keys[0])),
        Ok(false),
        "repeat is harmless"
    );
    assert_eq!(votes.handle_signature(&g.sign(&keys[1])), Ok(false));
    assert!(votes.certificate().is_none());
    // An outsider, a forged signature, another genesis: refused.
    let outsider = sk(999);
    assert!(matches!(
        votes.handle_signature(&g.sign(&outsider)),
        Err(ConvergenceError::NotInSet { .. })
    ));
    let mut forged = g.sign(&keys[2]);
    forged.signature = keys[3].sign_digest(&forged.genesis_hash);
    assert!(matches!(
        votes.handle_signature(&forged),
        Err(ConvergenceError::BadSignature { .. })
    ));
    let mut other = g.clone();
    other.last_block_hash = Hash32([2; 32]);
    assert!(matches!(
        votes.handle_signature(&other.sign(&keys[2])),
        Err(ConvergenceError::WrongGenesis { .. })
    ));
    // The third member's signature makes q = 3 of 4.
    assert_eq!(votes.handle_signature(&g.sign(&keys[2])), Ok(true));
    let cert = votes.certificate().unwrap();
    assert_eq!(cert.genesis_hash, g.hash());
    cert.verify(&set).unwrap();
    let mut short = cert.clone();
    let first = *short.signatures.keys().next().unwrap();
    short.signatures.remove(&first);
    assert_eq!(
        short.verify(&set),
        Err(ConvergenceError::NoQuorum {
            signers: 2,
            quorum: 3
        })
    );
}

#[test]
fn convergence_hash_switch_is_real_and_blocks_continue_without_a_pause() {
    let owner = sk(77).public();
    let mut params = ChainParams::new(CHAIN, owner, BlockTime(0));
    params.block_interval_us = 1_000_000;
    params.payout_period_us = 4_000_000; // 4 blocks, like the ledger here
    params.hash_algorithm = HashAlgorithm::Sha256;
    // Only at a boundary; the algorithm change wins over size.
    assert_eq!(
        convergence_due(&params, BlockNumber(7), u64::MAX, HashAlgorithm::Blake3),
        None
    );
    assert_eq!(
        convergence_due(&params, BlockNumber(8), 0, HashAlgorithm::Blake3),
        Some(ConvergenceReason::HashAlgorithm {
            to: HashAlgorithm::Sha256
        })
    );
    params.hash_algorithm = HashAlgorithm::Blake3;
    assert_eq!(
        convergence_due(&params, BlockNumber(8), 0, HashAlgorithm::Blake3),
        None
    );
    assert_eq!(
        convergence_due(
            &params,
            BlockNumber(8),
            params.convergence_size_threshold + 1,
            HashAlgorithm::Blake3
        ),
        Some(ConvergenceReason::SizeThreshold {
            stored_bytes: params.convergence_size_threshold + 1
        })
    );

    let mut old = fresh();
    let h = history();
    replay(&mut old, &h[..5]);
    let (set, scores) = (set(), scores());
    // Off a boundary, refused.
    assert_eq!(
        build_genesis(
            &old,
            input(1, HashAlgorithm::Sha256, Hash32::ZERO, &set, &scores)
        )
        .unwrap_err(),
        ConvergenceError::NotAtBoundary {
            next: BlockNumber(5)
        }
    );
    replay(&mut old, &h[5..]);
    let last_header_hash = Hash32([0xab; 32]);
    let c = converge(
        &old,
        input(1, HashAlgorithm::Sha256, last_header_hash, &set, &scores),
    )
    .unwrap();
    assert_eq!(c.archive.epoch, 0);
    assert_eq!(c.archive.last_block, BlockNumber(7));
    assert_eq!(c.archive.last_hash, last_header_hash);
    assert_eq!(c.genesis.start_block(), BlockNumber(8));
    let proposal = c.genesis.proposal(ConvergenceReason::HashAlgorithm {
        to: HashAlgorithm::Sha256,
    });
    assert_eq!(proposal.genesis_hash, c.genesis_hash);

    // The very next block applies on the new genesis: numbering goes on,
    // its parent is the genesis hash, its epoch the counter, and all its
    // hashes are SHA-256.
    let mut new = c.ledger;
    let f = file(vec![job(9, C1, Some(P1))]);
    let out = new.apply_block(&Block::jobs(BlockNumber(8), &f)).unwrap();
    let header = BlockHeader {
        chain_id: CHAIN,
        epoch: c.genesis.counter,
        number: BlockNumber(8),
        time: BlockTime(8_000_000),
        parent: c.genesis_hash,
        job_root: Hash32::ZERO,
        job_count: 1,
        ledger_root: out.ledger_root,
        validator_set_hash: set.hash_with(HashAlgorithm::Sha256),
        links: Default::default(),
        parent_signers: 0,
    };
    assert_ne!(
        header.hash_with(HashAlgorithm::Sha256),
        header.hash_with(HashAlgorithm::Blake3)
    );
    // The old chain applying the same block gets the same state under the
    // old hash: the switch changed hashes, not money.
    let mut cont = old.clone();
    let out_old = cont.apply_block(&Block::jobs(BlockNumber(8), &f)).unwrap();
    assert_ne!(out_old.ledger_root, out.ledger_root);
    assert_eq!(money(&cont), money(&new));
    assert_ne!(cont.ops_digest(), new.ops_digest());
}
