//! The multiplexer: turns what the driver knows (proposals, their
//! validity, the vote keeper's thresholds) into the round state machine's
//! inputs, the paper's `upon` rules, and carries out what the machine asks
//! for (sign and send, ask the host, start timeouts, decide).
//!
//! Rule table (Tendermint, arXiv 1807.04938, Algorithm 1), in the order
//! [`Driver::next_input`] tries them; the state machine ([`crate::round`])
//! holds the step guards and the lock rules:
//!
//! | paper line | guard (checked here) | round input | what the machine does |
//! | --- | --- | --- | --- |
//! | 49 | a valid value with q precommits for it, in any round | `ProposalAndPrecommitValue` | decide it (any step but commit) |
//! | 55 | f+1 validators sent something in a round above ours | `SkipRound(r)` | start round r |
//! | 22 | step propose; this round's first proposal, `vr = -1`, validity known | `Proposal` / `InvalidProposal` | prevote it (if not locked on another value) or nil |
//! | 28 | step propose; this round's first proposal, `vr < round`, q prevotes for it in `vr`, validity known | `ProposalAndPolkaPrevious` / `InvalidProposalAndPolkaPrevious` | prevote it (if locked no later than `vr`, or on it) or nil |
//! | 36 | step prevote or precommit; a valid proposal of this round with q prevotes for it; once per round | `ProposalAndPolkaCurrent` | lock and precommit it (prevote step), or only make it the valid value (precommit step) |
//! | 44 | step prevote; q prevotes for nil in this round | `PolkaNil` | precommit nil |
//! | 34 | step prevote; q prevotes of any kind in this round; once per round | `PolkaAny` | start `timeoutPrevote` |
//! | 47 | q precommits of any kind in this round; once per round | `PrecommitAny` | start `timeoutPrecommit` |
//!
//! Inputs that come from elsewhere: line 11 (`NewRound`, from
//! [`Driver::start_height`] and every round change), line 18 (the host's
//! value, [`Driver::propose_value`]), lines 57, 61 and 65 (the timeouts,
//! [`Driver::handle_timeout`]).
//!
//! Line 49 needs the value only to be known from some proposal: the
//! certificate of q precommits is what makes the decision safe.

use undchain_types::msg::{CommittedBlock, Proposal, Round, Vote, VoteKind};
use undchain_types::{Hash32, Message};

use super::contract::{Output, Validity};
use super::{Driver, HeightState, Proposed, Rule};
use crate::certificate::{SignatureVerifier, certificate_from_precommits};
use crate::round::{self, Info, ProposalView, RoundInput, RoundOutput, RoundValue, Step, Value};

impl<V: SignatureVerifier> Driver<V> {
    /// Runs the `upon` rules until none applies.
    pub(super) fn process(&mut self) {
        // Every applied input moves the step, the round or a "first time"
        // flag forward, so this ends; the bound is a belt and braces.
        for _ in 0..256 {
            let Some((round, input)) = self.next_input() else {
                return;
            };
            if !self.apply_input(round, input) {
                return;
            }
        }
    }

    /// The next applicable rule of the table, as a state machine input.
    fn next_input(&mut self) -> Option<(Round, RoundInput)> {
        let step = self.state.step;
        let r = self.state.round;
        let check_vr = self.checks_valid_round();
        let cur = self.cur.as_mut()?;
        if matches!(step, Step::Commit | Step::Unstarted) {
            return None;
        }
        if let Some(found) = decision_rule(cur) {
            return Some(found);
        }
        if let Some(skip) = cur.keeper.skip_to(r) {
            return Some((skip, RoundInput::SkipRound(skip)));
        }
        if step == Step::Propose {
            if let Some(found) = proposal_rule(cur, r, check_vr) {
                return found;
            }
        }
        if matches!(step, Step::Prevote | Step::Precommit) {
            if let Some(found) = polka_rules(cur, r, step) {
                return found;
            }
        }
        // L47: q precommits of any kind, first time.
        if cur.keeper.has_quorum_any(r, VoteKind::Precommit) && cur.fired.insert((r, Rule::L47)) {
            return Some((r, RoundInput::PrecommitAny));
        }
        None
    }

    /// Feeds one input to the round state machine and carries out its
    /// outputs. Returns whether the input applied.
    pub(super) fn apply_input(&mut self, input_round: Round, input: RoundInput) -> bool {
        let info = Info {
            input_round,
            is_proposer: self.is_proposer(input_round),
        };
        // The lock is set aside for lines 22 and 28 only if the mutation
        // check planted "ignore the lock" (never otherwise).
        let prevote_rule = matches!(
            input,
            RoundInput::Proposal(_) | RoundInput::ProposalAndPolkaPrevious(_)
        );
        let set_aside = (prevote_rule && !self.respects_lock())
            .then(|| self.state.locked.take())
            .flatten();
        let applied = round::apply(&mut self.state, info, input);
        if set_aside.is_some() && self.state.locked.is_none() {
            self.state.locked = set_aside;
        }
        let Some(outputs) = applied else {
            return false;
        };
        for o in outputs {
            self.perform(o);
        }
        true
    }

    /// Carries out one thing the round state machine asked for.
    fn perform(&mut self, o: RoundOutput) {
        match o {
            RoundOutput::NewRound(r) => {
                if let Some(cur) = self.cur.as_mut() {
                    cur.own_proposal = None;
                    cur.own_votes.clear();
                }
                self.apply_input(r, RoundInput::NewRound(r));
                // Votes kept unchecked for the rounds up to this one now
                // count (the rules run once the caller's loop goes on).
                self.check_ahead(|x| x <= r);
                self.persist();
            }
            RoundOutput::GetValue { round } => {
                let height = self.state.height;
                self.emit(Output::GetValue { height, round });
            }
            RoundOutput::StartTimeout { round, kind } => self.start_timeout(kind, round),
            RoundOutput::Proposal {
                round,
                id,
                value,
                pol_round,
            } => self.sign_proposal(round, id, value, pol_round),
            RoundOutput::Vote { round, kind, value } => self.sign_vote(round, kind, value),
            RoundOutput::Decision(rv) => self.decide(rv),
        }
    }

    /// Line 19: signs and sends this validator's proposal (with the polka
    /// behind `vr`, which line 28 needs at every receiver).
    fn sign_proposal(&mut self, round: Round, id: Hash32, value: Value, pol_round: Option<Round>) {
        let (height, chain_id, me) = (self.state.height, self.config.chain_id, self.me);
        let Some(cur) = self.cur.as_mut() else {
            return;
        };
        let sp = Proposal {
            chain_id,
            height,
            round,
            pol_round,
            header: value.header.clone(),
            proposer: me,
            parent_certificate: value.parent_certificate.clone(),
        }
        .sign(&self.key);
        let key = value.key(self.config.hash_algorithm);
        cur.know(key, id, value, Some(Validity::Valid));
        cur.proposals.entry(round).or_default().insert(
            0,
            Proposed {
                id,
                key,
                signed: sp.clone(),
            },
        );
        cur.keeper.add_sender(round, me);
        cur.own_proposal = Some(sp.clone());
        self.persist();
        self.emit(Output::Broadcast {
            msg: Message::Proposal(sp),
        });
        if let Some(vr) = pol_round {
            self.relay_polka(vr, id);
        }
    }

    /// Signs, counts and sends this validator's vote (an observer, outside
    /// the set, follows the rounds but never votes).
    fn sign_vote(&mut self, round: Round, kind: VoteKind, value: Option<Hash32>) {
        let (height, chain_id, me) = (self.state.height, self.config.chain_id, self.me);
        let Some(cur) = self.cur.as_mut() else {
            return;
        };
        if !cur.set.contains(&me) {
            return;
        }
        let sv = Vote {
            chain_id,
            height,
            round,
            kind,
            value,
            validator: me,
        }
        .sign(&self.key);
        // Our own vote never conflicts: the step only moves forward.
        let _ = cur.keeper.add_vote(sv.clone());
        cur.own_votes.push(sv.clone());
        self.persist();
        self.emit(Output::Broadcast {
            msg: Message::Vote(sv),
        });
    }

    /// Line 49: the decided block with the q precommits that certify it.
    fn decide(&mut self, rv: RoundValue) {
        let (height, chain_id) = (self.state.height, self.config.chain_id);
        let Some(cur) = self.cur.as_ref() else {
            return;
        };
        let certificate = certificate_from_precommits(
            chain_id,
            height,
            rv.round,
            rv.id,
            cur.keeper.precommits_for(rv.round, rv.id),
        );
        self.emit(Output::Decide(Box::new(CommittedBlock {
            header: rv.value.header,
            certificate,
        })));
    }
}

/// A valid value with block hash `id` as the state machine sees it (the
/// proposal of `round`, proof-of-lock round `pol`).
fn view(cur: &HeightState, round: Round, id: Hash32, pol: Option<Round>) -> Option<ProposalView> {
    cur.valid_value(&id).map(|v| ProposalView {
        round,
        id,
        value: v.clone(),
        pol_round: pol,
    })
}

/// L49: a valid value with q precommits in any round.
fn decision_rule(cur: &HeightState) -> Option<(Round, RoundInput)> {
    cur.keeper
        .precommit_quorums()
        .into_iter()
        .find_map(|(round, id)| {
            view(cur, round, id, None).map(|p| (round, RoundInput::ProposalAndPrecommitValue(p)))
        })
}

/// L22 / L28: this round's first proposal while the step is propose.
/// `Some(None)` ends the search with nothing to apply (a known value has
/// vanished, which cannot happen); `None` lets later rules run.
fn proposal_rule(
    cur: &HeightState,
    r: Round,
    check_vr: bool,
) -> Option<Option<(Round, RoundInput)>> {
    let first = cur.proposals.get(&r).and_then(|ps| ps.first())?;
    let id = first.id;
    let pol = first.signed.proposal.pol_round;
    let verdict = cur.verdict(first);
    match pol {
        None => match verdict {
            Some(Validity::Valid) => {
                Some(view(cur, r, id, None).map(|p| (r, RoundInput::Proposal(p))))
            }
            Some(Validity::Invalid) => Some(Some((r, RoundInput::InvalidProposal))),
            _ => None,
        },
        Some(vr)
            if vr < r
                && (!check_vr || cur.keeper.has_quorum_for(vr, VoteKind::Prevote, Some(id))) =>
        {
            match verdict {
                Some(Validity::Valid) => Some(
                    view(cur, r, id, pol).map(|p| (r, RoundInput::ProposalAndPolkaPrevious(p))),
                ),
                Some(Validity::Invalid) => {
                    Some(Some((r, RoundInput::InvalidProposalAndPolkaPrevious)))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// L36, then (step prevote) L44 and L34. Same convention as
/// [`proposal_rule`].
fn polka_rules(cur: &mut HeightState, r: Round, step: Step) -> Option<Option<(Round, RoundInput)>> {
    // L36: this round's proposal, valid, with q prevotes for it.
    if !cur.fired.contains(&(r, Rule::L36)) {
        let ids: Vec<Hash32> = cur
            .proposals
            .get(&r)
            .map(|ps| ps.iter().map(|p| p.id).collect())
            .unwrap_or_default();
        for id in ids {
            if cur.valid_value(&id).is_some()
                && cur.keeper.has_quorum_for(r, VoteKind::Prevote, Some(id))
            {
                cur.fired.insert((r, Rule::L36));
                return Some(
                    view(cur, r, id, None).map(|p| (r, RoundInput::ProposalAndPolkaCurrent(p))),
                );
            }
        }
    }
    if step == Step::Prevote {
        // L44: q prevotes for nil.
        if cur.keeper.has_quorum_for(r, VoteKind::Prevote, None) {
            return Some(Some((r, RoundInput::PolkaNil)));
        }
        // L34: q prevotes of any kind, first time.
        if cur.keeper.has_quorum_any(r, VoteKind::Prevote) && cur.fired.insert((r, Rule::L34)) {
            return Some(Some((r, RoundInput::PolkaAny)));
        }
    }
    None
}
