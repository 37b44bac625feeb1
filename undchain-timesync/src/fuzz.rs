//! The `time_sync` fuzz target's body ([`fuzz_time_sync`], shared by
//! `fuzz/fuzz_targets/time_sync.rs` and the seed-corpus test).
//!
//! One input drives two things:
//!
//! * the precision simulator ([`crate::sim::run_steered`]): four
//!   validators, one of them a liar that answers each probe with anything
//!   the bytes say (no answer, any reading, timestamps, phase or delay);
//!   the bytes also draw the clocks, the delays and lost messages. Every
//!   round result of every honest validator must lie inside the range the
//!   honest clocks spanned during its round, widened by the reading error
//!   ([`crate::sim::SimReport::within_honest_range`]).
//! * a [`Resync`] machine among four validators, fed proposals and
//!   approvals by a Byzantine one (any step, period, chain, proposer,
//!   forged approvals in others' names), approvals by the two honest ones
//!   when the bytes say so, its own proposals and the passing of time. A
//!   step applies only with a quorum of approvals that were really signed,
//!   once per proposal, and never leaves the proposal's payout period: a
//!   resync without a quorum is refused.

use std::collections::{BTreeMap, BTreeSet};

use undchain_sim::node_key;
use undchain_types::msg::{TimeResyncApproval, TimeResyncProposal};
use undchain_types::{
    BlockTime, ChainId, ChainParams, Hash32, PayoutPeriod, PublicKey, SigningKey, SplitMix64,
};

use crate::Method;
use crate::clock::position_of;
use crate::resync::{Resync, ResyncMsg, ResyncOutput};
use crate::sim::{SimConfig, run_steered};

/// Runs both checks on `data`; panics only on a violated property.
pub fn fuzz_time_sync(data: &[u8]) {
    let (first, rest) = data.split_first().unwrap_or((&0, &[]));
    let cfg = SimConfig {
        n: 4,
        f: 1,
        seed: 0,
        delay_min_us: 1_000,
        delay_max_us: 3_000,
        asymmetry_us: u64::from(first & 0x0f) * 100,
        drift_ppm: 50,
        resync_ms: 1_000,
        rounds: 4,
        max_initial_offset_us: 1_000_000,
        liar_push_us: 1_000_000,
        bootstrap: first & 0x10 != 0,
    };
    let report = run_steered(&cfg, Method::Ftm, rest).expect("the fuzz configuration is valid");
    assert!(
        report.within_honest_range,
        "a round result left the honest range: {report}"
    );
    fuzz_resync(rest);
}

/// The resync world: validator 0 runs the machine; 1 and 2 are honest,
/// 3 Byzantine.
struct ResyncWorld {
    params: ChainParams,
    keys: Vec<SigningKey>,
    machine: Resync,
    now: BlockTime,
    /// Every proposal seen, by digest.
    proposals: BTreeMap<Hash32, TimeResyncProposal>,
    /// Who really signed an approval of each digest.
    signed: BTreeMap<Hash32, BTreeSet<PublicKey>>,
    applied: BTreeSet<Hash32>,
}

fn fuzz_resync(bytes: &[u8]) {
    let keys: Vec<SigningKey> = (0..4).map(node_key).collect();
    let mut params = ChainParams::new(ChainId(7), keys[0].public(), BlockTime(0));
    params.payout_period_us = 10_000_000;
    let active = keys.iter().map(SigningKey::public).collect();
    let mut w = ResyncWorld {
        machine: Resync::new(&params, keys[0].clone(), active, 50_000),
        params,
        keys,
        now: BlockTime(1_000_000),
        proposals: BTreeMap::new(),
        signed: BTreeMap::new(),
        applied: BTreeSet::new(),
    };
    let mut rng = SplitMix64::scripted(0, bytes);
    let mut ops = 0;
    while rng.is_steered() && ops < 256 {
        ops += 1;
        w.step(&mut rng);
    }
}

impl ResyncWorld {
    fn step(&mut self, rng: &mut SplitMix64) {
        let max = i64::try_from(self.params.max_resync_step_us).unwrap_or(i64::MAX / 4);
        match rng.below(6) {
            0 | 1 => {
                let p = self.byzantine_proposal(rng, max);
                let spoofed = rng.chance(100);
                let from = if spoofed {
                    self.keys[1].public()
                } else {
                    self.keys[3].public()
                };
                let reference = match rng.below(3) {
                    0 => None,
                    1 => Some(p.step_us),
                    _ => Some(rng.range_i64(-2 * max, 2 * max)),
                };
                self.proposals.insert(p.digest(), p.clone());
                let out = self.machine.handle_proposal(self.now, &from, p, reference);
                self.outputs(out.unwrap_or_default());
            }
            2 => {
                let approval = self.approval(rng, true);
                let out = self.machine.handle_approval(self.now, approval);
                self.outputs(out.unwrap_or_default());
            }
            3 => {
                let approval = self.approval(rng, false);
                let out = self.machine.handle_approval(self.now, approval);
                self.outputs(out.unwrap_or_default());
            }
            4 => {
                let out = self
                    .machine
                    .propose(self.now, rng.range_i64(-2 * max, 2 * max));
                self.outputs(out.unwrap_or_default());
            }
            _ => {
                let dt = rng.range_i64(-2_000_000, 4_000_000);
                self.now = BlockTime(self.now.0.saturating_add_signed(dt));
            }
        }
    }

    /// A proposal the Byzantine validator makes up.
    fn byzantine_proposal(&self, rng: &mut SplitMix64, max: i64) -> TimeResyncProposal {
        let current = position_of(&self.params, self.now).period;
        TimeResyncProposal {
            chain_id: if rng.chance(50) {
                ChainId(8)
            } else {
                self.params.chain_id
            },
            id: rng.below(4),
            proposer: self.keys[if rng.chance(100) { 2 } else { 3 }].public(),
            period: PayoutPeriod(current.0.saturating_add(rng.below(3)).saturating_sub(1)),
            step_us: rng.range_i64(-2 * max, 2 * max),
        }
    }

    /// An approval of a proposal seen (or of a made-up digest): by the
    /// Byzantine validator (`byzantine`; sometimes forged in an honest
    /// one's name), or really signed by honest validator 1 or 2.
    fn approval(&mut self, rng: &mut SplitMix64, byzantine: bool) -> TimeResyncApproval {
        let digests: Vec<Hash32> = self.proposals.keys().copied().collect();
        let digest = match digests.get(rng.below(digests.len() as u64 + 1) as usize) {
            Some(d) => *d,
            None => Hash32([rng.below(256) as u8; 32]),
        };
        let signer = if byzantine {
            3
        } else {
            1 + rng.below(2) as usize
        };
        let key = &self.keys[signer];
        let mut approval = TimeResyncApproval {
            proposal: digest,
            approver: key.public(),
            signature: key.sign_digest(&digest),
        };
        if byzantine && rng.chance(300) {
            approval.approver = self.keys[1 + rng.below(2) as usize].public();
        } else {
            self.signed.entry(digest).or_default().insert(key.public());
        }
        approval
    }

    /// Records the machine's own approvals and checks every applied step.
    fn outputs(&mut self, out: Vec<ResyncOutput>) {
        for o in out {
            match o {
                ResyncOutput::Broadcast { msg } => match *msg {
                    ResyncMsg::Approval(a) => {
                        assert!(a.verify().is_ok(), "the machine signed a bad approval");
                        self.signed
                            .entry(a.proposal)
                            .or_default()
                            .insert(a.approver);
                    }
                    ResyncMsg::Proposal(p) => {
                        self.proposals.insert(p.digest(), p);
                    }
                },
                ResyncOutput::Apply(a) => self.check_applied(&a),
                ResyncOutput::Event(_) => {}
            }
        }
    }

    fn check_applied(&mut self, a: &crate::ResyncApplied) {
        assert!(self.applied.insert(a.proposal), "a proposal applied twice");
        let signed = self.signed.get(&a.proposal).cloned().unwrap_or_default();
        assert!(
            a.approvers.len() >= self.machine.quorum(),
            "applied without a quorum: {a:?}"
        );
        assert!(
            a.approvers.is_subset(&signed),
            "counted an approval nobody signed: {a:?}, signed {signed:?}"
        );
        let p = &self.proposals[&a.proposal];
        assert_eq!(a.requested_us, p.step_us);
        assert!(a.step_us.unsigned_abs() <= p.step_us.unsigned_abs());
        assert!(a.step_us == 0 || a.step_us.signum() == p.step_us.signum());
        let stepped = BlockTime(self.now.0.saturating_add_signed(a.step_us));
        assert_eq!(
            position_of(&self.params, stepped).period,
            p.period,
            "the step leaves the proposal's payout period"
        );
        self.now = stepped;
    }
}
