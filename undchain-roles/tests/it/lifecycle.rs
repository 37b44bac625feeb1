//! The utility lifecycle in the whole-network simulator (issue 16): real
//! client and partner machines beside the validators. A client's request
//! is acknowledged and committed, the validators' desks notify the
//! partners and stream their offers, the client stores its blob with the
//! partner it took, both sign the receipt, a block commits it, the
//! period's settlement pays the partner, and the client fetches the blob
//! back and checks it.

use undchain_roles::sim::{Conduct, PartnerConduct, Report, SimConfig, run};

fn lifecycle(seed: u64, blocks: u64) -> SimConfig {
    let mut cfg = SimConfig::new(4, blocks, seed);
    cfg.requests_per_block = 2;
    cfg.users = 3;
    cfg.partners = 2;
    cfg.blocks_per_period = 5;
    cfg
}

fn assert_clean(r: &Report) {
    assert!(r.ok(), "{} {:?}", r.lifecycle_line(), r.failures);
    assert_eq!(
        (r.lost, r.lifecycle.double_paid),
        (0, 0),
        "{}",
        r.lifecycle_line()
    );
}

#[test]
fn client_stores_a_blob_with_an_offered_partner_and_fetches_it_back() {
    let r = run(&lifecycle(41, 20)).unwrap();
    assert_clean(&r);
    let l = &r.lifecycle;
    assert!(l.stored >= 6, "{l:?}");
    assert_eq!(l.bad_fetches, 0);
    // Every blob stored in time was fetched back equal (the last ones may
    // still be running when the run ends).
    assert!(l.fetched + 2 >= l.stored, "{l:?}");
    assert!(l.completed > 0 && l.paid > 0, "{l:?}");
}

#[test]
fn vanishing_client_leaves_the_partner_a_partial_payout() {
    let mut cfg = lifecycle(42, 20);
    cfg.first_client = Some(Conduct::Vanishes);
    let r = run(&cfg).unwrap();
    assert_clean(&r);
    assert!(r.lifecycle.partial > 0, "{}", r.lifecycle_line());
}

#[test]
fn client_refuses_to_sign_partial_payout() {
    let mut cfg = lifecycle(43, 20);
    cfg.first_client = Some(Conduct::RefusesToSign);
    let r = run(&cfg).unwrap();
    assert_clean(&r);
    assert!(r.lifecycle.partial > 0, "{}", r.lifecycle_line());
    let honest = run(&lifecycle(43, 20)).unwrap();
    assert_eq!(honest.lifecycle.partial, 0, "{}", honest.lifecycle_line());
}

#[test]
fn lifecycle_with_faults_24_seeds_loses_nothing_and_pays_nothing_twice() {
    let mut partial = 0;
    let mut failed = Vec::new();
    for seed in 600..624 {
        let mut cfg = lifecycle(seed, 12);
        cfg.faults = true;
        let r = run(&cfg).unwrap();
        partial += r.lifecycle.partial;
        if !r.ok() || r.lifecycle.double_paid > 0 {
            failed.push(format!("{} {:?}", r.lifecycle_line(), r.failures));
        }
    }
    assert!(failed.is_empty(), "failed runs:\n{}", failed.join("\n"));
    assert!(partial > 0, "no seed drew a partial payout");
}

fn with_partner(seed: u64, blocks: u64, conduct: PartnerConduct) -> Report {
    let mut cfg = lifecycle(seed, blocks);
    cfg.first_partner = Some(conduct);
    let r = run(&cfg).unwrap();
    assert_clean(&r);
    r
}

#[test]
fn lying_partner_is_caught_by_its_challenge_and_the_client_asks_again() {
    let r = with_partner(44, 20, PartnerConduct::LiesAboutResources);
    let l = &r.lifecycle;
    assert_eq!(l.caught, 1, "{l:?}");
    assert!(l.silent_failed > 0, "its uploads went unanswered: {l:?}");
    assert!(
        l.completed > 0 && l.paid > 0,
        "the honest partner worked: {l:?}"
    );
}

#[test]
fn partner_dropping_chunks_after_its_first_challenge_is_caught_by_a_rechallenge() {
    let r = with_partner(45, 30, PartnerConduct::DropsChunks);
    assert_eq!(r.lifecycle.caught, 1, "{:?}", r.lifecycle);
}

#[test]
fn silent_partner_fails_its_client_sessions_by_the_idle_deadline() {
    let r = with_partner(46, 20, PartnerConduct::GoesSilent);
    let l = &r.lifecycle;
    assert!(l.silent_failed > 0, "{l:?}");
    assert_eq!(l.caught, 1, "its unanswered challenge: {l:?}");
}

#[test]
fn honest_partners_are_never_penalised() {
    for seed in 47..51 {
        let r = run(&lifecycle(seed, 16)).unwrap();
        // An honest partner scored down is a failure of the run.
        assert_clean(&r);
        assert_eq!((r.lifecycle.caught, r.lifecycle.silent_failed), (0, 0));
        assert!(r.lifecycle.completed > 0, "{}", r.lifecycle_line());
    }
}
