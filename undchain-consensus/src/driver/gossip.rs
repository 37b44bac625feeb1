//! What a lossy network needs beyond the paper's algorithm: re-sending own
//! messages, helping a validator left behind in an older round, and
//! catching up on decided blocks (asking for them, and deciding from a
//! block or certificate that verifies against this height's set).
//!
//! Tendermint's liveness assumes gossip: every message a correct validator
//! saw eventually reaches every correct validator. Over a network that
//! drops messages and partitions, these mechanisms provide it.

use undchain_types::msg::{
    BlockRequest, CommitCertificate, CommittedBlock, MAX_BLOCKS_PER_RESPONSE, Round, VoteKind,
};
use undchain_types::{Hash32, LocalTime, Message, PublicKey};

use super::Driver;
use super::contract::{InputError, Output};
use crate::certificate::{SignatureVerifier, verify_committed_block};
use crate::round::{RoundValue, Step, Value};

impl<V: SignatureVerifier> Driver<V> {
    /// Re-sends own messages of the current round, and the polka behind
    /// the valid value: Tendermint's liveness needs every correct validator
    /// to eventually see a polka some correct validator saw (the paper's
    /// gossip assumption), or a proposal naming it as `vr` could never pass
    /// line 28 at validators that missed those prevotes.
    pub(super) fn rebroadcast(&mut self) {
        let Some(cur) = self.cur.as_ref() else {
            return;
        };
        let mut msgs: Vec<Message> = Vec::new();
        if let Some(p) = &cur.own_proposal {
            msgs.push(Message::Proposal(p.clone()));
        }
        msgs.extend(cur.own_votes.iter().cloned().map(Message::Vote));
        for msg in msgs {
            self.emit(Output::Broadcast { msg });
        }
        if let Some((round, id)) = self.state.valid.as_ref().map(|v| (v.round, v.id)) {
            self.relay_polka(round, id);
        }
    }

    /// Relays the prevotes of `round` for `id`, and the proposal of that
    /// round that carried `id` (others' signed messages: they authenticate
    /// themselves), so a validator that missed the proposal, or whose
    /// place for it an equivocating proposer took, can still vote for the
    /// value (lines 28, 36, 49).
    pub(super) fn relay_polka(&mut self, round: Round, id: Hash32) {
        let Some(cur) = self.cur.as_ref() else {
            return;
        };
        let mut votes: Vec<Message> = cur
            .keeper
            .prevotes_for(round, id)
            .into_iter()
            .map(|v| Message::Vote(v.clone()))
            .collect();
        let carried = cur
            .proposals
            .get(&round)
            .and_then(|ps| ps.iter().find(|p| p.id == id))
            .filter(|p| p.signed.proposal.proposer != self.me);
        if let Some(p) = carried {
            votes.push(Message::Proposal(p.signed.clone()));
        }
        for msg in votes {
            self.emit(Output::Broadcast { msg });
        }
    }

    /// A validator of this height is still in `round`, behind us: send it
    /// the votes of its round (so it can move on: lines 34, 44, 47, 65, or
    /// decide, line 49) and the votes of our round (so f+1 of them
    /// let it skip ahead, line 55). Own messages are only re-sent while
    /// their round is current, so without this a validator left alone in a
    /// round by a partition could wait forever. Once per rebroadcast
    /// interval per peer.
    pub(super) fn help_lagging(&mut self, peer: PublicKey, round: Round) {
        let now = self.now;
        let every = self.config.timeouts.rebroadcast_us;
        let current = self.state.round;
        let me = self.me;
        let Some(cur) = self.cur.as_mut() else {
            return;
        };
        if !cur.set.contains(&peer) || peer == me {
            return;
        }
        if cur.helped.get(&peer).is_some_and(|t| now < t.plus(every)) {
            return;
        }
        cur.helped.insert(peer, now);
        let mut msgs: Vec<Message> = cur
            .keeper
            .votes_in(round, VoteKind::Prevote)
            .into_iter()
            .chain(cur.keeper.votes_in(round, VoteKind::Precommit))
            .chain(cur.keeper.votes_in(current, VoteKind::Prevote))
            .chain(cur.keeper.votes_in(current, VoteKind::Precommit))
            .map(|v| Message::Vote(v.clone()))
            .collect();
        if let Some(p) = cur.proposals.get(&current).and_then(|ps| ps.first()) {
            msgs.push(Message::Proposal(p.signed.clone()));
        }
        for msg in msgs {
            self.emit(Output::Send { to: peer, msg });
        }
    }

    /// A height that has run for four rebroadcast intervals may have been
    /// decided without us (and the others gone quiet): ask everyone for
    /// decided blocks, at most once per interval.
    pub(super) fn ask_if_stuck(&mut self) {
        let every = self.config.timeouts.rebroadcast_us;
        let Some(started_at) = self.cur.as_ref().map(|c| c.started_at) else {
            return;
        };
        let stuck = self.now >= started_at.plus(every.saturating_mul(4));
        let allowed = self
            .last_stuck_request
            .is_none_or(|t| self.now >= t.plus(every));
        if stuck && allowed {
            self.last_block_request = Some(self.now);
            self.last_stuck_request = Some(self.now);
            let msg = Message::BlockRequest(self.block_request());
            self.emit(Output::Broadcast { msg });
        }
    }

    /// Whether a rebroadcast interval has passed at `now` since the last
    /// block request.
    pub(super) fn block_request_allowed_at(&self, now: LocalTime) -> bool {
        let every = self.config.timeouts.rebroadcast_us;
        self.last_block_request.is_none_or(|t| now >= t.plus(every))
    }

    /// The decided blocks from the current height on, as many as one
    /// response may carry.
    pub(super) fn block_request(&self) -> BlockRequest {
        BlockRequest {
            from: self.state.height,
            max: MAX_BLOCKS_PER_RESPONSE as u16,
        }
    }

    /// A bare certificate: decides if it is for the current height, names a
    /// value this validator knows to be valid, and verifies.
    pub(super) fn handle_certificate(
        &mut self,
        now: LocalTime,
        cert: CommitCertificate,
    ) -> Result<(), InputError> {
        self.check_chain(cert.chain_id)?;
        let Some(cur) = self.cur.as_ref() else {
            return Ok(());
        };
        if cert.height != self.state.height || self.state.step == Step::Commit {
            return Ok(());
        }
        let Some(value) = cur.valid_value(&cert.block_hash) else {
            return Ok(());
        };
        let block = CommittedBlock {
            header: value.header.clone(),
            certificate: cert,
        };
        self.check_block(&block)?;
        self.now = now;
        self.commit_block(block);
        Ok(())
    }

    /// Decides the current height from `block` if it verifies.
    pub(super) fn decide_from_block(&mut self, block: CommittedBlock) -> Result<(), InputError> {
        self.check_block(&block)?;
        self.commit_block(block);
        Ok(())
    }

    /// Whether `block` is this height's, certified by q of this height's
    /// set (nothing changes either way).
    pub(super) fn check_block(&mut self, block: &CommittedBlock) -> Result<(), InputError> {
        let Some(cur) = self.cur.as_ref() else {
            return Ok(());
        };
        verify_committed_block(
            block,
            self.config.chain_id,
            self.state.height,
            &cur.set,
            self.config.hash_algorithm,
            &mut self.verifier,
        )?;
        Ok(())
    }

    /// Decides the current height from a verified block.
    pub(super) fn commit_block(&mut self, block: CommittedBlock) {
        if self.cur.is_none() {
            return;
        }
        self.state.step = Step::Commit;
        self.state.decision = Some(RoundValue {
            round: block.certificate.round,
            id: block.certificate.block_hash,
            value: Value {
                header: block.header.clone(),
                parent_certificate: None,
            },
        });
        self.emit(Output::Decide(Box::new(block)));
    }
}
