//! Rotation and replacement: the known share stays at or under 44% of the
//! active seats (known validators fill unknown seats only when too few
//! unknown ones exist, and are flagged), unknown validators rotate at every
//! payout-period boundary by score with ties broken by the last block's
//! hash, missed votes get a validator replaced, and every validator that
//! applies the same blocks computes the same sets (issue 5).

use proptest::prelude::*;
use undchain_consensus::roster::ReplacementReason;
use undchain_consensus::{Candidate, Roster, RosterConfig, RosterEvent, ScoreEvent, ScoreRules};
use undchain_sim::node_key;
use undchain_types::{
    BlockHeader, BlockNumber, BlockTime, ChainId, Hash32, HashAlgorithm, PerceptionScore,
    PublicKey, Trust,
};

fn config(seats: usize, period: u64, threshold: u32) -> RosterConfig {
    RosterConfig {
        active_seats: seats,
        max_known_active: seats * 44 / 100,
        missed_vote_threshold: threshold,
        blocks_per_period: period,
        floor: PerceptionScore::new(200).unwrap(),
        rules: ScoreRules::default(),
        hash_algorithm: HashAlgorithm::Blake3,
    }
}

fn id(i: usize) -> PublicKey {
    node_key(i).public()
}

fn candidates(known: usize, unknown: usize) -> Vec<Candidate> {
    (0..known + unknown)
        .map(|i| Candidate {
            id: id(i),
            trust: if i < known {
                Trust::Known
            } else {
                Trust::Unknown
            },
            score: PerceptionScore::START,
        })
        .collect()
}

fn block(number: u64, signers: u16, salt: u8) -> (BlockHeader, Hash32) {
    let h = BlockHeader {
        chain_id: ChainId(1),
        epoch: 0,
        number: BlockNumber(number),
        time: BlockTime(number),
        parent: Hash32([salt; 32]),
        job_root: Hash32::ZERO,
        job_count: 0,
        ops_root: Hash32::ZERO,
        ops_count: 0,
        ledger_root: Hash32::ZERO,
        validator_set_hash: Hash32::ZERO,
        links: Default::default(),
        parent_signers: signers,
        evidence: Default::default(),
    };
    let hash = h.hash();
    (h, hash)
}

/// Applies `count` blocks in which everyone signed.
fn run_blocks(r: &mut Roster, count: u64, salt: u8) {
    for _ in 0..count {
        let (h, hash) = block(r.height().0, 0xffff, salt);
        r.apply_block(&h, hash, &[]).unwrap();
    }
}

fn share_ok(r: &Roster) {
    let set = r.validator_set();
    let cap = r.config().active_seats * 44 / 100;
    assert!(
        set.known_seats() <= cap,
        "{} known seats, cap {cap}",
        set.known_seats()
    );
    assert!(set.len() <= r.config().active_seats);
}

#[test]
fn genesis_caps_known_seats_at_44_percent() {
    for n in 1..=10usize {
        let r = Roster::genesis(config(n, 10, 5), &candidates(6, 12), Hash32([1; 32])).unwrap();
        let set = r.validator_set();
        assert_eq!(set.len(), n);
        assert_eq!(set.known_seats(), n * 44 / 100, "n={n}");
        assert_eq!(set.fillers(), 0, "enough unknown validators: no fillers");
        share_ok(&r);
    }
}

#[test]
fn known_fill_unknown_seats_only_when_too_few_and_are_flagged() {
    // n = 7: 3 known seats; only 2 unknown validators for 4 unknown seats.
    let mut r = Roster::genesis(config(7, 4, 30), &candidates(6, 2), Hash32([1; 32])).unwrap();
    let set = r.validator_set().clone();
    assert_eq!(set.len(), 7);
    assert_eq!(set.known_seats(), 3);
    assert_eq!(set.fillers(), 2);
    assert!(
        set.seats()
            .iter()
            .filter(|s| s.filling_unknown)
            .all(|s| s.trust == Trust::Known)
    );
    // Two unknown validators register: at the next boundary they replace
    // the fillers.
    let (h, hash) = block(0, 0, 0);
    let events = [
        RosterEvent::Registered {
            id: id(50),
            trust: Trust::Unknown,
        },
        RosterEvent::Registered {
            id: id(51),
            trust: Trust::Unknown,
        },
    ];
    r.apply_block(&h, hash, &events).unwrap();
    assert_eq!(r.validator_set().fillers(), 2, "not before the boundary");
    run_blocks(&mut r, 3, 0);
    assert_eq!(r.height(), BlockNumber(4));
    let set = r.validator_set();
    assert_eq!(set.fillers(), 0);
    assert!(set.contains(&id(50)) && set.contains(&id(51)));
    share_ok(&r);
}

#[test]
fn unknown_validators_rotate_at_the_boundary_for_higher_scores() {
    // n = 7: 3 known seats, 4 unknown seats; 8 unknown validators.
    let mut cands = candidates(3, 8);
    // Passive at genesis will be the four lowest-ranked; give two of them
    // the best scores so that they must come in at the boundary.
    for c in cands.iter_mut().skip(3) {
        c.score = PerceptionScore::new(600).unwrap();
    }
    let mut r = Roster::genesis(config(7, 5, 30), &cands, Hash32([2; 32])).unwrap();
    let first: Vec<PublicKey> = r.validator_set().seats().iter().map(|s| s.id).collect();
    let passive_unknown: Vec<PublicKey> = r
        .passive()
        .into_iter()
        .filter(|p| r.trust(p) == Some(Trust::Unknown))
        .collect();
    assert_eq!(passive_unknown.len(), 4);
    run_blocks(&mut r, 4, 0);
    assert_eq!(
        r.validator_set()
            .seats()
            .iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        first,
        "same set within the period"
    );
    run_blocks(&mut r, 1, 0);
    let set = r.validator_set();
    for p in &passive_unknown {
        assert!(set.contains(p), "passive unknown {p:?} rotated in");
    }
    for k in 0..3 {
        assert!(set.contains(&id(k)), "known validators keep their seats");
    }
    share_ok(&r);
}

#[test]
fn ranking_by_score_then_last_block_hash() {
    // n = 4: 1 known seat, 3 unknown seats, 9 unknown validators, so 6 are
    // passive for 3 seats at the first boundary.
    let base = Roster::genesis(config(4, 2, 30), &candidates(1, 9), Hash32([3; 32])).unwrap();
    // One passive validator with a top score always comes in.
    let star = base
        .passive()
        .into_iter()
        .find(|p| base.trust(p) == Some(Trust::Unknown))
        .unwrap();
    let mut picks = std::collections::BTreeSet::new();
    for salt in 0..8u8 {
        let mut r = base.clone();
        let (h, hash) = block(0, 0, salt);
        let boost: Vec<RosterEvent> = (0..20)
            .map(|_| RosterEvent::Score(ScoreEvent::SignedBlock { validator: star }))
            .collect();
        r.apply_block(&h, hash, &boost).unwrap();
        // Block 1 ends the period; its hash breaks the ties.
        let (h, hash) = block(1, 0, salt);
        r.apply_block(&h, hash, &[]).unwrap();
        let set = r.validator_set();
        assert!(set.contains(&star));
        let mut again = base.clone();
        let (h0, hash0) = block(0, 0, salt);
        again.apply_block(&h0, hash0, &boost).unwrap();
        again.apply_block(&h, hash, &[]).unwrap();
        assert_eq!(&again, &r, "same blocks, same roster");
        picks.insert(set.seats().iter().map(|s| s.id).collect::<Vec<_>>());
    }
    assert!(
        picks.len() > 1,
        "ties go different ways for different last blocks"
    );
}

#[test]
fn below_floor_passive_validators_never_rotate_in() {
    let mut r = Roster::genesis(config(4, 3, 30), &candidates(1, 6), Hash32([4; 32])).unwrap();
    let passive: Vec<PublicKey> = r.passive();
    let (h, hash) = block(0, 0, 0);
    let events: Vec<RosterEvent> = passive
        .iter()
        .map(|p| RosterEvent::Score(ScoreEvent::Equivocation { offender: *p }))
        .collect();
    let upd = r.apply_block(&h, hash, &events).unwrap();
    assert_eq!(
        upd.notices.len(),
        passive.len(),
        "each gets a low-perception notice"
    );
    let active: Vec<PublicKey> = r.validator_set().seats().iter().map(|s| s.id).collect();
    run_blocks(&mut r, 2, 0);
    // Nobody eligible to rotate in: the unknown holders keep their seats.
    assert_eq!(
        r.validator_set()
            .seats()
            .iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        active
    );
    for p in &passive {
        assert!(!r.validator_set().contains(p));
    }
}

#[test]
fn missed_votes_get_a_validator_replaced_by_the_next_passive_of_its_kind() {
    // n = 4, threshold 3, long period.
    let mut r = Roster::genesis(config(4, 1000, 3), &candidates(2, 6), Hash32([5; 32])).unwrap();
    let set = r.validator_set().clone();
    let lazy_unknown = set
        .seats()
        .iter()
        .find(|s| s.trust == Trust::Unknown)
        .unwrap()
        .id;
    let lazy_known = set
        .seats()
        .iter()
        .find(|s| s.trust == Trust::Known)
        .unwrap()
        .id;
    run_blocks(&mut r, 1, 0);
    let mut replaced = Vec::new();
    for _ in 0..4 {
        let prev = r.previous_set().unwrap().clone();
        let all = prev.bitmap(prev.seats().iter().map(|s| &s.id));
        let missing = prev.bitmap([&lazy_unknown, &lazy_known]);
        let (h, hash) = block(r.height().0, all & !missing, 0);
        let upd = r.apply_block(&h, hash, &[]).unwrap();
        replaced.extend(upd.replaced);
        share_ok(&r);
    }
    assert_eq!(replaced.len(), 2, "{replaced:?}");
    for rep in &replaced {
        assert_eq!(rep.reason, ReplacementReason::MissedVotes);
        let new = rep.taken_by.unwrap();
        assert_eq!(r.trust(&new), r.trust(&rep.out), "a seat keeps its kind");
        assert!(r.validator_set().contains(&new));
        assert!(!r.validator_set().contains(&rep.out));
    }
    // Reset when replaced (the last block may still report one miss for the
    // block it sat in).
    assert!(r.missed_in_a_row(&lazy_unknown) < 3);
}

#[test]
fn unknown_seat_falls_back_to_a_flagged_known_filler() {
    // n = 4: 1 known seat, 3 unknown seats, exactly 3 unknown validators.
    let mut r = Roster::genesis(config(4, 1000, 2), &candidates(3, 3), Hash32([6; 32])).unwrap();
    assert_eq!(r.validator_set().fillers(), 0);
    let lazy = r
        .validator_set()
        .seats()
        .iter()
        .find(|s| s.trust == Trust::Unknown)
        .unwrap()
        .id;
    run_blocks(&mut r, 1, 0);
    for _ in 0..3 {
        let prev = r.previous_set().unwrap().clone();
        let bits = prev.bitmap(prev.seats().iter().map(|s| &s.id).filter(|x| **x != lazy));
        let (h, hash) = block(r.height().0, bits, 0);
        r.apply_block(&h, hash, &[]).unwrap();
    }
    let set = r.validator_set();
    assert!(!set.contains(&lazy));
    assert_eq!(set.fillers(), 1);
    assert_eq!(set.known_seats(), 1, "the known share proper is unchanged");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random histories: the known share never exceeds 44%, after a
    /// rotation fillers appear only when no eligible unknown validator is
    /// left out, and two
    /// validators applying the same blocks hold identical rosters.
    #[test]
    fn share_and_determinism_hold_on_random_histories(
        seats in 1usize..=10,
        known in 0usize..8,
        unknown in 0usize..14,
        period in 1u64..6,
        threshold in 1u32..4,
        blocks in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..6), 1..40),
    ) {
        prop_assume!(known + unknown > 0);
        let mut a = Roster::genesis(config(seats, period, threshold), &candidates(known, unknown), Hash32([9; 32])).unwrap();
        let mut b = a.clone();
        for (signers, salt, ev) in blocks {
            let (h, hash) = block(a.height().0, signers, salt);
            let target = id((salt as usize) % (known + unknown));
            let events = match ev {
                0 => vec![RosterEvent::Score(ScoreEvent::Equivocation { offender: target })],
                1 => vec![RosterEvent::Score(ScoreEvent::PassiveRecovery { validator: target })],
                2 => vec![RosterEvent::Registered { id: id(100 + salt as usize), trust: Trust::Unknown }],
                3 => vec![RosterEvent::Registered { id: id(200 + salt as usize), trust: Trust::Known }],
                _ => vec![],
            };
            let ua = a.apply_block(&h, hash, &events).unwrap();
            let ub = b.apply_block(&h, hash, &events).unwrap();
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(&ua, &ub);
            let set = a.validator_set();
            prop_assert!(set.known_seats() <= seats * 44 / 100);
            prop_assert!(set.len() <= seats);
            // Right after a rotation every eligible unknown validator was
            // considered first (between boundaries a replaced validator may
            // wait passive while a filler holds its seat).
            if ua.rotated && set.fillers() > 0 {
                let spare_unknown = a.passive().into_iter().filter(|p| {
                    a.trust(p) == Some(Trust::Unknown) && a.scores().eligible(p)
                }).count();
                prop_assert_eq!(spare_unknown, 0, "a filler while an unknown validator waits");
            }
        }
    }
}
