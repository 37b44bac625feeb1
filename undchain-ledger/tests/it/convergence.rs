//! Convergence scenarios (design notes, validator story item 6; DESIGN.md
//! "Convergence", "Money": a genesis carries every parameter): the state
//! from a new genesis equals the state at the old tip, every validator
//! computes the same genesis hash, a quorum certifies it, changed
//! parameters travel in the genesis so a previewed block applies
//! everywhere, and a settled job stays settled across it.

use crate::support::*;
use undchain_consensus::score::{ScoreBook, ScoreRules};
use undchain_consensus::validator_set::ValidatorSet;
use undchain_ledger::convergence::{
    ConvergenceError, GenesisInput, GenesisVotes, build_genesis, converge, convergence_due,
};
use undchain_ledger::{Block, BlockError, Ledger, LedgerConfig, RequestError};
use undchain_types::msg::{ConvergenceReason, TxOp};
use undchain_types::{
    BlockNumber, ChainParams, Hash32, HashAlgorithm, PerceptionScore, SigningKey, TokenAmount,
};

const C1: u64 = 1;
const C2: u64 = 2;
const P1: u64 = 11;

fn validators() -> Vec<SigningKey> {
    validator_keys(100, 4)
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

fn input<'a>(
    config: &'a LedgerConfig,
    set: &'a ValidatorSet,
    scores: &'a ScoreBook,
) -> GenesisInput<'a> {
    GenesisInput {
        counter: 1,
        config,
        last_block_hash: Hash32([1; 32]),
        validator_set: set,
        scores,
    }
}

/// Two periods of history: a job settled by a receipt, one left open
/// (carried), a transfer, a domain registration and a lock; the ledger
/// stops at the second period's boundary. Returns the settled and the
/// carried request.
fn history() -> (Ledger, Req, Req) {
    let mut l = ledger(&[(C1, 10_000), (C2, 10_000), (OWNER, 1_000)]);
    let v: Vec<_> = validators().iter().map(|k| k.public()).collect();
    let settled = request(&l, C1, 1, 10, 10, &[P1]);
    run(&mut l, std::slice::from_ref(&settled), &[], &v[..3]);
    let r = receipt(&l, settled.id(), C1, P1, 80);
    let t = tx(&l, C2, transfer(C1, 5));
    run(&mut l, &[], &[r, t], &v[..3]);
    to_period_end(&mut l);
    let carried = request(&l, C2, 1, 4, 25, &[P1]);
    commit(&mut l, std::slice::from_ref(&carried));
    let foreign = Foreign::new(undchain_types::ChainId(2), HashAlgorithm::Sha256, &[], 200);
    let mut f = foreign;
    empty(&mut f.ledger);
    let reg = tx(
        &l,
        OWNER,
        TxOp::RegisterDomain(Box::new(f.registration(86_400_000_000))),
    );
    ops(&mut l, &[reg]);
    let lock = TxOp::DomainLock {
        target: undchain_types::ChainId(2),
        to: pk(P1),
        amount: TokenAmount(7),
        expires_at: BlockNumber(l.next_block().0 + 4),
    };
    let lock = tx(&l, C1, lock);
    ops(&mut l, &[lock]);
    to_period_end(&mut l);
    (l, settled, carried)
}

#[test]
fn convergence_state_from_new_genesis_equals_state_at_old_tip() {
    let (l, _, carried) = history();
    let (set, scores) = (set_of(&validators()), scores());
    let same = l.config().clone();
    let c = converge(&l, input(&same, &set, &scores)).unwrap();
    assert_eq!(c.ledger.state(), l.state());
    assert_eq!(c.ledger, l);
    // Same parameters, same state: the same root, rebuilt from scratch.
    assert_eq!(c.ledger.root(), l.root());
    assert!(c.ledger.job(&carried.id()).unwrap().carried_from.is_some());
    assert_eq!(c.ledger.account(&pk(C2)).escrow, TokenAmount(100));
    assert_eq!(c.ledger.domain_records(), 1);
    // A hash switch changes the root, never the state.
    let mut sha = same.clone();
    sha.hash_algorithm = HashAlgorithm::Sha256;
    let c2 = converge(&l, input(&sha, &set, &scores)).unwrap();
    assert_eq!(c2.ledger.state(), l.state());
    assert_ne!(c2.ledger.root(), l.root());
    assert_eq!(c2.ledger.root(), c2.ledger.rebuilt_root());
    assert_ne!(c2.genesis_hash, c.genesis_hash);
}

#[test]
fn convergence_every_validator_computes_the_same_genesis_hash() {
    let (a, _, _) = history();
    let (b, _, _) = history();
    let (set, scores) = (set_of(&validators()), scores());
    let cfg = a.config().clone();
    let ga = build_genesis(&a, input(&cfg, &set, &scores)).unwrap();
    let gb = build_genesis(&b, input(&cfg, &set, &scores)).unwrap();
    assert_eq!(ga.hash(), gb.hash());
    // A validator whose state differs by one token computes another hash,
    // and its signature is refused by the others.
    let (mut c, _, _) = history();
    let t = tx(&c, C1, transfer(C2, 1));
    ops(&mut c, &[t]);
    while c.next_block().0 % BPP != 0 {
        empty(&mut c);
    }
    let gc = build_genesis(&c, input(&cfg, &set, &scores)).unwrap();
    assert_ne!(gc.hash(), ga.hash());
    let mut votes = GenesisVotes::new(&ga);
    assert!(matches!(
        votes.handle_signature(&gc.sign(&validators()[0])),
        Err(ConvergenceError::WrongGenesis { .. })
    ));
}

#[test]
fn convergence_genesis_is_certified_by_a_quorum_only() {
    let (l, _, _) = history();
    let (set, scores) = (set_of(&validators()), scores());
    let cfg = l.config().clone();
    let g = build_genesis(&l, input(&cfg, &set, &scores)).unwrap();
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
    assert!(matches!(
        votes.handle_signature(&g.sign(&sk(999))),
        Err(ConvergenceError::NotInSet { .. })
    ));
    let mut forged = g.sign(&keys[2]);
    forged.signature = keys[3].sign_digest(&forged.genesis_hash);
    assert!(matches!(
        votes.handle_signature(&forged),
        Err(ConvergenceError::BadSignature { .. })
    ));
    assert_eq!(votes.handle_signature(&g.sign(&keys[2])), Ok(true));
    let cert = votes.certificate().unwrap();
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
fn genesis_carries_every_parameter_so_a_previewed_block_applies_after_convergence() {
    let (l, _, carried) = history();
    let (set, scores) = (set_of(&validators()), scores());
    // The convergence changes the fee, the period length and the algorithm.
    let mut next = l.config().clone();
    next.transaction_fee = TokenAmount(20);
    next.blocks_per_period = 6;
    next.hash_algorithm = HashAlgorithm::Sha256;
    let g = build_genesis(&l, input(&next, &set, &scores)).unwrap();
    // Two validators rebuild from the genesis alone (no caller config).
    let mut proposer = g.ledger().unwrap();
    let mut other = g.ledger().unwrap();
    assert_eq!(proposer.config(), &next);
    let r = request(&proposer, C1, 9, 2, 10, &[P1]);
    assert_eq!(r.entry.fee, TokenAmount(20));
    let f = file(std::slice::from_ref(&r));
    let rs = [r.verified.clone()];
    let block = Block::new(proposer.next_block(), &f, &rs);
    let preview = proposer.preview(&block).unwrap();
    assert_eq!(other.apply_block(&block).unwrap(), preview);
    assert_eq!(proposer.apply_block(&block).unwrap(), preview);
    assert_eq!(other.root(), preview.ledger_root);
    // A job at the old fee is refused under the new parameters.
    let mut stale = request(&other, C2, 9, 1, 1, &[]);
    stale.entry.fee = TokenAmount(10);
    let f = file(std::slice::from_ref(&stale));
    let rs = [stale.verified.clone()];
    assert!(matches!(
        other.preview(&Block::new(other.next_block(), &f, &rs)),
        Err(BlockError::WrongFee { .. })
    ));
    // The period is 6 blocks now: the carried job settles (cancelled) at
    // the end of the new period, not after 4 blocks.
    let mut cancelled_at = None;
    while cancelled_at.is_none() {
        let out = empty(&mut other);
        if let Some(s) = out.settlement {
            assert_eq!(s.cancelled, vec![carried.id()]);
            cancelled_at = Some(out.number);
        }
    }
    assert_eq!((cancelled_at.unwrap().0 + 1) % 6, 0);
    assert_conserved(&other);
}

#[test]
fn a_settled_job_stays_settled_across_convergence() {
    let (l, settled, _) = history();
    let (set, scores) = (set_of(&validators()), scores());
    let cfg = l.config().clone();
    let new = converge(&l, input(&cfg, &set, &scores)).unwrap().ledger;
    assert!(new.is_settled(&settled.id()));
    assert_eq!(
        new.check_request(&settled.verified),
        Err(RequestError::AlreadySettled { job: settled.id() })
    );
}

#[test]
fn convergence_is_refused_off_a_boundary_or_for_another_chain() {
    let mut l = ledger(&[(C1, 1_000)]);
    let (set, scores) = (set_of(&validators()), scores());
    let cfg = l.config().clone();
    let r = request(&l, C1, 1, 10, 10, &[P1]);
    commit(&mut l, std::slice::from_ref(&r));
    assert!(matches!(
        build_genesis(&l, input(&cfg, &set, &scores)),
        Err(ConvergenceError::NotAtBoundary { .. })
    ));
    let mut other = cfg.clone();
    other.chain_id = undchain_types::ChainId(9);
    while l.next_block().0 % BPP != 0 {
        empty(&mut l);
    }
    assert!(matches!(
        build_genesis(&l, input(&other, &set, &scores)),
        Err(ConvergenceError::WrongChain { .. })
    ));
    let params = ChainParams::new(CHAIN, pk(OWNER), undchain_types::BlockTime(0));
    assert_eq!(
        convergence_due(&params, BlockNumber(3), u64::MAX, HashAlgorithm::Blake3),
        None
    );
    assert!(matches!(
        convergence_due(&params, BlockNumber(0), 0, HashAlgorithm::Sha256),
        Some(ConvergenceReason::HashAlgorithm { .. })
    ));
}

#[test]
fn a_genesis_whose_books_do_not_balance_is_refused() {
    let (l, _, carried) = history();
    let cfg = l.config().clone();
    // One token more than the supply counters account for.
    let mut extra = l.state();
    extra.accounts[0].1.balance.0 += 1;
    assert!(matches!(
        Ledger::from_state(cfg.clone(), extra),
        Err(undchain_ledger::GenesisError::Unbalanced { .. })
    ));
    // Escrow that no open job explains (or a job without its escrow).
    let mut free = l.state();
    let i = free
        .accounts
        .iter()
        .position(|(k, _)| *k == pk(C2))
        .unwrap();
    free.accounts[i].1.escrow = TokenAmount::ZERO;
    free.accounts[i].1.balance.0 += 100;
    assert_eq!(
        Ledger::from_state(cfg.clone(), free).unwrap_err(),
        undchain_ledger::GenesisError::EscrowMismatch {
            account: pk(C2),
            escrow: TokenAmount::ZERO,
            jobs: 100,
        }
    );
    assert!(l.job(&carried.id()).is_some());
    assert_eq!(Ledger::from_state(cfg, l.state()).unwrap(), l);
}
