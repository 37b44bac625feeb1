//! The driver's inputs. Each checks everything that can refuse it (chain,
//! height, round, membership, signature) before it changes anything, so a
//! refused input leaves the driver exactly as it was.

use undchain_types::msg::{Evidence, Round, SignedProposal, SignedVote};
use undchain_types::{BlockNumber, ChainId, Hash32, LocalTime, Message, PublicKey};

use super::ahead::Kept;
use super::contract::{InputError, Output, PersistedState, Timeout, Validity};
use super::{Driver, HeightState, Proposed, proposal_value};
use crate::certificate::SignatureVerifier;
use crate::round::{RoundInput, Step, TimeoutKind, Value};
use crate::validator_set::ValidatorSet;
use crate::votekeeper::RecordVoteError;

/// At most this many distinct proposals are kept per round. The first is
/// "the" proposal (lines 22 and 28) and is never replaced; the others only
/// matter to follow an equivocating proposer's polka and for evidence, and
/// give way to a later one whose block more validators voted for, so an
/// equivocator cannot push the value with a polka out.
pub(super) const MAX_PROPOSALS_PER_ROUND: usize = 4;

/// Where a message for some height goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The running, undecided height: handle it.
    Current,
    /// An earlier height, or the current one once decided: drop it.
    Stale,
    /// A later height (or any height while idle): keep the next height's
    /// messages, and ask for the blocks in between if this validator seems
    /// behind.
    Later,
}

impl<V: SignatureVerifier> Driver<V> {
    /// Starts `height`, signed by `set` (after a decision, or at genesis).
    pub fn start_height(&mut self, now: LocalTime, height: BlockNumber, set: ValidatorSet) {
        self.now = now;
        self.state = crate::round::RoundState::new(height);
        self.cur = Some(HeightState::new(height, set, now));
        self.timers.clear();
        self.start_timeout(TimeoutKind::Rebroadcast, 0);
        self.apply_input(0, RoundInput::NewRound(0));
        self.replay_buffered();
        self.process();
    }

    /// Restarts from a persisted state for its height, signed by `set`:
    /// re-sends the messages it had signed in its round (never new,
    /// different ones) and restarts the current step's timeout. Use it only
    /// when the host's chain has no block at that height yet; otherwise
    /// start the next height with [`Driver::start_height`].
    pub fn resume(&mut self, now: LocalTime, persisted: PersistedState, set: ValidatorSet) {
        self.now = now;
        let height = persisted.round_state.height;
        self.state = persisted.round_state;
        self.timers.clear();
        let algo = self.config.hash_algorithm;
        let mut hs = HeightState::new(height, set, now);
        for rv in [&self.state.locked, &self.state.valid]
            .into_iter()
            .flatten()
        {
            let key = rv.value.key(algo);
            hs.know(key, rv.id, rv.value.clone(), Some(Validity::Valid));
        }
        let mut resend = Vec::new();
        if let Some(p) = &persisted.own_proposal {
            let own = Proposed::new(p.clone(), algo);
            hs.keeper.add_sender(p.proposal.round, self.me);
            hs.know(own.key, own.id, proposal_value(p), Some(Validity::Valid));
            hs.proposals.entry(p.proposal.round).or_default().push(own);
            resend.push(Message::Proposal(p.clone()));
        }
        for v in &persisted.own_votes {
            // Our own, already signed: counting cannot conflict.
            let _ = hs.keeper.add_vote(v.clone());
            resend.push(Message::Vote(v.clone()));
        }
        for v in &persisted.polka {
            // Checked when they first arrived; only members' votes count.
            let _ = hs.keeper.add_vote(v.clone());
        }
        hs.own_proposal = persisted.own_proposal;
        hs.own_votes = persisted.own_votes;
        self.cur = Some(hs);
        for msg in resend {
            self.emit(Output::Broadcast { msg });
        }
        self.start_timeout(TimeoutKind::Rebroadcast, 0);
        self.restart_step();
        self.replay_buffered();
        self.process();
    }

    /// After [`Driver::resume`]: what the persisted step was waiting for.
    fn restart_step(&mut self) {
        let round = self.state.round;
        match self.state.step {
            Step::Unstarted => {
                self.apply_input(round, RoundInput::NewRound(round));
            }
            Step::Propose => {
                let proposer = self.is_proposer(round);
                let has_own = self.cur.as_ref().is_some_and(|c| c.own_proposal.is_some());
                if proposer && !has_own {
                    // The host's value never came before the crash: ask again.
                    // (Starting the round again would re-propose a valid
                    // value, which is the same message if one was signed.)
                    self.state.step = Step::Unstarted;
                    self.apply_input(round, RoundInput::NewRound(round));
                } else {
                    self.start_timeout(TimeoutKind::Propose, round);
                }
            }
            Step::Prevote => self.start_timeout(TimeoutKind::Prevote, round),
            Step::Precommit => self.start_timeout(TimeoutKind::Precommit, round),
            Step::Commit => {}
        }
    }

    /// Any agreement message from peer `from`.
    pub fn handle_message(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        message: Message,
    ) -> Result<(), InputError> {
        self.handle_checked(now, from, message, false)
    }

    /// [`Driver::handle_message`], skipping the signature check of a
    /// proposal or vote whose signature was checked before it was buffered
    /// (`signed_ok`).
    pub(super) fn handle_checked(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        message: Message,
        signed_ok: bool,
    ) -> Result<(), InputError> {
        match message {
            Message::Proposal(p) => self.handle_proposal(now, from, p, signed_ok),
            Message::Vote(v) => self.handle_vote(now, from, v, signed_ok),
            Message::BlockRequest(request) => self.handle_block_request(now, from, request),
            Message::BlockResponse(r) => self.handle_blocks(now, r.blocks.into_vec()),
            Message::CommitCertificate(c) => self.handle_certificate(now, c),
            Message::Evidence(e) => self.handle_evidence(now, e),
            other => Err(InputError::NotAgreement { kind: other.kind() }),
        }
    }

    /// A signed proposal: checked (chain, header, height, round, proposer,
    /// signature), then kept and its value asked about. One for a later
    /// height is checked as far as it can be and buffered
    /// ([`Driver::handle_later`]).
    fn handle_proposal(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        sp: SignedProposal,
        signed_ok: bool,
    ) -> Result<(), InputError> {
        let p = &sp.proposal;
        self.check_chain(p.chain_id)?;
        if p.header.number != p.height || p.header.chain_id != p.chain_id {
            return Err(InputError::HeaderMismatch {
                height: p.height,
                number: p.header.number,
            });
        }
        match self.route(p.height) {
            Route::Stale => return Ok(()),
            Route::Later => {
                let (height, round) = (p.height, p.round);
                return self.handle_later(now, from, height, round, Message::Proposal(sp));
            }
            Route::Current => {}
        }
        let (height, round) = (p.height, p.round);
        self.check_round(round)?;
        let Some(cur) = self.cur.as_ref() else {
            return Ok(());
        };
        let expected = cur.set.proposer(height, round);
        if p.proposer != expected {
            return Err(InputError::NotProposer {
                height,
                round,
                expected,
                got: p.proposer,
            });
        }
        let known = cur.proposals.get(&round);
        if known.is_some_and(|ps| ps.iter().any(|x| x.signed == sp)) || p.proposer == self.me {
            return Ok(());
        }
        if !signed_ok
            && !self
                .verifier
                .verify(&p.proposer, &p.digest(), &sp.signature)
        {
            return Err(InputError::BadSignature { signer: p.proposer });
        }
        self.now = now;
        self.record_proposal(sp);
        Ok(())
    }

    /// Keeps a checked proposal of the current height (evidence if it is
    /// the proposer's second one for the round) and asks about its value.
    /// With [`MAX_PROPOSALS_PER_ROUND`] kept already, it takes the place of
    /// the kept one (never the first) whose block fewer validators voted
    /// for, if its own block has more votes; otherwise it is only evidence.
    fn record_proposal(&mut self, sp: SignedProposal) {
        let proposed = Proposed::new(sp, self.config.hash_algorithm);
        let Some(cur) = self.cur.as_mut() else {
            return;
        };
        let (round, proposer) = (
            proposed.signed.proposal.round,
            proposed.signed.proposal.proposer,
        );
        let list = cur.proposals.entry(round).or_default();
        let evidence = match list.first() {
            Some(first) if cur.reported.insert((proposer, round, None)) => {
                Some(Evidence::DoubleProposal {
                    first: Box::new(first.signed.clone()),
                    second: Box::new(proposed.signed.clone()),
                })
            }
            _ => None,
        };
        let kept = keep_proposal(cur, round, proposed.clone());
        if kept {
            let value = proposal_value(&proposed.signed);
            cur.know(proposed.key, proposed.id, value, None);
            cur.keeper.add_sender(round, proposer);
        }
        if let Some(e) = evidence {
            self.emit(Output::Evidence(Box::new(e)));
        }
        if !kept {
            return;
        }
        self.ask_validity(round, proposed.key);
        self.process();
    }

    /// A signed prevote or precommit (one for a later height is checked as
    /// far as it can be and buffered, [`Driver::handle_later`]).
    fn handle_vote(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        sv: SignedVote,
        signed_ok: bool,
    ) -> Result<(), InputError> {
        let v = &sv.vote;
        self.check_chain(v.chain_id)?;
        match self.route(v.height) {
            Route::Stale => return Ok(()),
            Route::Later => {
                let (height, round) = (v.height, v.round);
                return self.handle_later(now, from, height, round, Message::Vote(sv));
            }
            Route::Current => {}
        }
        self.check_round(v.round)?;
        let Some(cur) = self.cur.as_ref() else {
            return Ok(());
        };
        let duplicate = cur.keeper.has_vote(&sv) || cur.ahead.has(&sv);
        if !duplicate {
            if !cur.set.contains(&v.validator) {
                return Err(InputError::NotInSet {
                    validator: v.validator,
                    height: v.height,
                });
            }
            if !cur.keeper.would_count(&sv) {
                // The same vote again, or spam beyond the voter's slot:
                // nothing to count and no signature to check.
                return Ok(());
            }
            if !signed_ok && v.round > self.state.round {
                return self.keep_ahead(now, sv);
            }
            if !signed_ok
                && !self
                    .verifier
                    .verify(&v.validator, &v.digest(), &sv.signature)
            {
                return Err(InputError::BadSignature {
                    signer: v.validator,
                });
            }
        }
        self.now = now;
        if v.round < self.state.round {
            self.help_lagging(from, v.round);
        }
        if !duplicate {
            self.record_vote(sv);
        }
        Ok(())
    }

    /// Keeps a member's vote for a round ahead unchecked
    /// ([`super::ahead`]); once its round has f+1 distinct voters, checks
    /// and counts that round's kept votes and runs the rules (line 55 may
    /// move this validator there, line 49 decide).
    fn keep_ahead(&mut self, now: LocalTime, sv: SignedVote) -> Result<(), InputError> {
        let (voter, round, height) = (sv.vote.validator, sv.vote.round, self.state.height);
        let Some(cur) = self.cur.as_mut() else {
            return Ok(());
        };
        match cur.ahead.offer(sv) {
            Kept::Duplicate => return Ok(()),
            Kept::Full => {
                return Err(InputError::QuotaFull {
                    signer: voter,
                    height,
                });
            }
            Kept::Yes => {}
        }
        self.now = now;
        let unseen = cur
            .ahead
            .voters_in(round)
            .filter(|v| !cur.keeper.has_sent(round, v))
            .count();
        if cur.keeper.senders(round) + unseen > cur.set.max_faulty() {
            self.check_ahead(|r| r == round);
            self.process();
        }
        Ok(())
    }

    /// Checks the signatures of the kept votes whose round `pick` selects
    /// and counts those that verify (a bad one is dropped); the caller
    /// runs the rules.
    pub(super) fn check_ahead(&mut self, pick: impl Fn(Round) -> bool) {
        let Some(cur) = self.cur.as_mut() else {
            return;
        };
        if cur.ahead.len() == 0 {
            return;
        }
        for sv in cur.ahead.take(pick) {
            let v = &sv.vote;
            let counts = self.cur.as_ref().is_some_and(|c| c.keeper.would_count(&sv));
            if counts
                && self
                    .verifier
                    .verify(&v.validator, &v.digest(), &sv.signature)
            {
                self.count_vote(sv);
            }
        }
    }

    /// Counts a checked vote of a member (evidence the first time it
    /// conflicts with an earlier one for its slot) and runs the rules it
    /// may enable.
    fn record_vote(&mut self, sv: SignedVote) {
        if self.count_vote(sv) {
            self.process();
        }
    }

    /// Counts a checked vote of a member (evidence the first time it
    /// conflicts with an earlier one for its slot); whether it counted.
    fn count_vote(&mut self, sv: SignedVote) -> bool {
        let Some(cur) = self.cur.as_mut() else {
            return false;
        };
        let evidence = match cur.keeper.add_vote(sv) {
            Ok(outcome) => outcome.evidence.and_then(|ev| {
                let Evidence::DoubleVote { first, .. } = &ev else {
                    return None;
                };
                let slot = (
                    first.vote.validator,
                    first.vote.round,
                    Some(first.vote.kind),
                );
                cur.reported.insert(slot).then_some(ev)
            }),
            // Over the per-slot cap: not counted; evidence went out before.
            // (Membership and height were checked before: the other
            // refusals cannot happen here.)
            Err(
                RecordVoteError::ConflictingVote { .. }
                | RecordVoteError::UnknownValidator { .. }
                | RecordVoteError::WrongHeight { .. },
            ) => return false,
        };
        if let Some(ev) = evidence {
            self.emit(Output::Evidence(Box::new(ev)));
        }
        true
    }

    /// The host's value for `height`, `round` (answer to
    /// [`Output::GetValue`]). Refused if no value is wanted for that round
    /// any more (another round or height, a proposal already signed, the
    /// propose step over).
    pub fn propose_value(
        &mut self,
        now: LocalTime,
        height: BlockNumber,
        round: Round,
        value: Value,
    ) -> Result<(), InputError> {
        self.check_height(height)?;
        if round != self.state.round {
            return Err(InputError::WrongRound {
                round,
                current: self.state.round,
            });
        }
        let has_own = self.cur.as_ref().is_some_and(|c| c.own_proposal.is_some());
        if has_own || self.state.step != Step::Propose || !self.is_proposer(round) {
            return Err(InputError::ValueNotWanted { height, round });
        }
        self.now = now;
        let id = value.header.hash_with(self.config.hash_algorithm);
        self.apply_input(round, RoundInput::ProposeValue(value, id));
        self.process();
        Ok(())
    }

    /// The host's verdict on a value it was asked about, named by the
    /// value's key (answer to [`Output::CheckValue`], whose `key` it is; a
    /// later answer replaces a [`Validity::Pending`] one).
    pub fn handle_validity(
        &mut self,
        now: LocalTime,
        height: BlockNumber,
        key: Hash32,
        validity: Validity,
    ) -> Result<(), InputError> {
        self.check_height(height)?;
        let Some(cur) = self.cur.as_mut() else {
            return Err(InputError::NotAsked { key });
        };
        if !cur.asked.contains(&key) {
            return Err(InputError::NotAsked { key });
        }
        self.now = now;
        cur.validity.insert(key, validity);
        self.process();
        Ok(())
    }

    /// Fires every pending timeout due at `now` (earliest first); does
    /// nothing if none is due.
    pub fn handle_timeout(&mut self, now: LocalTime) {
        self.now = now;
        for timeout in self.timers.take_due(now) {
            self.fire(timeout);
        }
    }

    /// One due timeout: a paper timeout feeds the round state machine (a
    /// stale one does nothing there); the re-send interval re-sends and
    /// starts again.
    fn fire(&mut self, timeout: Timeout) {
        if timeout.height != self.state.height || self.cur.is_none() {
            return;
        }
        let input = match timeout.kind {
            TimeoutKind::Rebroadcast => {
                if self.state.step != Step::Commit {
                    self.rebroadcast();
                    self.ask_if_stuck();
                    self.start_timeout(TimeoutKind::Rebroadcast, 0);
                }
                return;
            }
            TimeoutKind::Propose => RoundInput::TimeoutPropose,
            TimeoutKind::Prevote => RoundInput::TimeoutPrevote,
            TimeoutKind::Precommit => RoundInput::TimeoutPrecommit,
        };
        self.apply_input(timeout.round, input);
        self.process();
    }

    pub(super) fn check_chain(&self, got: ChainId) -> Result<(), InputError> {
        if got != self.config.chain_id {
            return Err(InputError::WrongChain {
                expected: self.config.chain_id,
                got,
            });
        }
        Ok(())
    }

    /// Whether a host answer for `height` is for the running height.
    fn check_height(&self, height: BlockNumber) -> Result<(), InputError> {
        if height != self.state.height {
            return Err(InputError::WrongHeight {
                height,
                current: self.state.height,
            });
        }
        Ok(())
    }

    fn check_round(&self, round: Round) -> Result<(), InputError> {
        let max = self.config.max_rounds_ahead;
        if round > self.state.round.saturating_add(max) {
            return Err(InputError::RoundTooFar {
                round,
                current: self.state.round,
                max,
            });
        }
        Ok(())
    }

    /// Where a message for `height` goes (nothing changes yet).
    fn route(&self, height: BlockNumber) -> Route {
        if self.cur.is_none() {
            return Route::Later;
        }
        let ours = self.state.height;
        let decided = self.state.step == Step::Commit;
        if height <= ours {
            if height == ours && !decided {
                Route::Current
            } else {
                Route::Stale
            }
        } else {
            Route::Later
        }
    }

    /// Asks the host about a proposed value (by its key) once, unless its
    /// verdict is known already.
    fn ask_validity(&mut self, round: Round, key: Hash32) {
        let height = self.state.height;
        let Some(cur) = self.cur.as_mut() else {
            return;
        };
        if cur.validity.contains_key(&key) || !cur.asked.insert(key) {
            return;
        }
        if let Some((id, value)) = cur.values.get(&key) {
            let (id, value) = (*id, Box::new(value.clone()));
            self.emit(Output::CheckValue {
                height,
                round,
                id,
                key,
                value,
            });
        }
    }

    pub(super) fn is_proposer(&self, round: Round) -> bool {
        self.cur
            .as_ref()
            .is_some_and(|c| c.set.proposer(self.state.height, round) == self.me)
    }
}

/// Puts `p` among `round`'s kept proposals if there is room, or in place of
/// the least-voted kept one after the first if `p`'s block has more votes.
/// Returns whether it was kept; a value no kept proposal carries any more
/// is forgotten with its verdict.
fn keep_proposal(cur: &mut HeightState, round: Round, p: Proposed) -> bool {
    let support = |cur: &HeightState, id: &Hash32| cur.keeper.support(id);
    let list = cur.proposals.get(&round).map_or(0, Vec::len);
    if list < MAX_PROPOSALS_PER_ROUND {
        cur.proposals.entry(round).or_default().push(p);
        return true;
    }
    let mine = support(cur, &p.id);
    let weakest = cur.proposals.get(&round).and_then(|ps| {
        ps.iter()
            .enumerate()
            .skip(1)
            .map(|(i, x)| (support(cur, &x.id), i))
            .min()
    });
    let Some((least, i)) = weakest else {
        return false;
    };
    if mine <= least {
        return false;
    }
    let Some(ps) = cur.proposals.get_mut(&round) else {
        return false;
    };
    let gone = std::mem::replace(&mut ps[i], p);
    let still_used = cur.proposals.values().flatten().any(|x| x.key == gone.key);
    if !still_used {
        cur.values.remove(&gone.key);
        cur.validity.remove(&gone.key);
        cur.asked.remove(&gone.key);
    }
    true
}
