//! Inputs that are not for the running round's rules: messages of a later
//! height, decided blocks, block requests and evidence. Each is checked
//! before it takes any space or work (docs/PROTOCOL.md "Agreement",
//! "Receiving"):
//!
//! * a proposal or vote of the next height is kept only with a valid
//!   signature and within its signer's quota ([`super::buffer`]); one of a
//!   height further ahead is never kept, and only a member's can make this
//!   validator ask for the blocks it missed;
//! * a decided block of a later height is kept only if its certificate
//!   verifies against the set known now, and the first one kept for a
//!   height is never replaced;
//! * block requests are served once per half re-send interval per member,
//!   and [`MAX_ACTIVE`] times per interval for everyone else together;
//! * evidence counts only for this chain, this height and a member of its
//!   set, once per offender and slot.

use undchain_types::msg::{
    BlockRequest, CommittedBlock, Evidence, MAX_ACTIVE, Round, SignedProposal, SignedVote,
};
use undchain_types::{BlockNumber, LocalTime, Message, PublicKey};

use super::Driver;
use super::buffer::Offer;
use super::contract::{InputError, Output};
use crate::certificate::{CertificateError, SignatureVerifier, verify_committed_block};
use crate::round::Step;

impl<V: SignatureVerifier> Driver<V> {
    /// A proposal or vote for a later height (or any height while idle):
    /// the next height's is kept once its signature verifies, within its
    /// signer's quota; from a member of this height's set, it also makes a
    /// validator that seems behind (the message is two or more heights
    /// ahead, or this height has run for a re-send interval) ask `from`
    /// for the decided blocks in between, at most once per interval. A
    /// message that could do neither is dropped unchecked.
    pub(super) fn handle_later(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        height: BlockNumber,
        round: Round,
        msg: Message,
    ) -> Result<(), InputError> {
        let next = self.cur.is_none() || height == self.state.height.next();
        let wants_blocks = self.wants_blocks(now, height);
        if !next && !wants_blocks {
            return Ok(());
        }
        let max = self.config.max_rounds_ahead;
        if round > max {
            return Err(InputError::RoundTooFar {
                round,
                current: 0,
                max,
            });
        }
        let Some(signer) = self.verified_signer(&msg) else {
            return Err(InputError::BadSignature {
                signer: claimed_signer(&msg).unwrap_or(from),
            });
        };
        let member = self.cur.as_ref().is_some_and(|c| c.set.contains(&signer));
        let offer = if next {
            self.future.offer(signer, member, from, round, msg)
        } else {
            Offer::Duplicate
        };
        let ask = wants_blocks && member;
        if offer == Offer::Full && !ask {
            return Err(InputError::QuotaFull { signer, height });
        }
        self.now = now;
        if ask {
            self.last_block_request = Some(now);
            let msg = Message::BlockRequest(self.block_request());
            self.emit(Output::Send { to: from, msg });
        }
        Ok(())
    }

    /// Whether a message for `height` should make this validator ask for
    /// decided blocks now: it is running an undecided height, may send a
    /// request, and `height` is two or more ahead or this height has run
    /// for a re-send interval.
    fn wants_blocks(&self, now: LocalTime, height: BlockNumber) -> bool {
        let Some(cur) = self.cur.as_ref() else {
            return false;
        };
        if self.state.step == Step::Commit || !self.block_request_allowed_at(now) {
            return false;
        }
        let every = self.config.timeouts.rebroadcast_us;
        let far = height.0 > self.state.height.0.saturating_add(1);
        far || now >= cur.started_at.plus(every)
    }

    /// The signer of a proposal or vote, if its signature verifies.
    fn verified_signer(&mut self, msg: &Message) -> Option<PublicKey> {
        let (signer, ok) = match msg {
            Message::Proposal(SignedProposal {
                proposal,
                signature,
            }) => (
                proposal.proposer,
                self.verifier
                    .verify(&proposal.proposer, &proposal.digest(), signature),
            ),
            Message::Vote(SignedVote { vote, signature }) => (
                vote.validator,
                self.verifier
                    .verify(&vote.validator, &vote.digest(), signature),
            ),
            _ => return None,
        };
        ok.then_some(signer)
    }

    /// Replays what [`Driver::handle_later`] kept for the height just
    /// started (its signatures were checked; membership and the rest are
    /// checked now against this height's set), and decides from a decided
    /// block of this height kept earlier.
    pub(super) fn replay_buffered(&mut self) {
        let h = self.state.height;
        if let Some(b) = self.pending_blocks.take(h) {
            // Verified against the set known when it came; checked again
            // against this height's set. A bad one is simply dropped.
            let _ = self.decide_from_block(b);
        }
        for (from, msg) in self.future.take() {
            let Some((mh, signer, round)) = about(&msg) else {
                continue;
            };
            if mh > h {
                let member = self.cur.as_ref().is_some_and(|c| c.set.contains(&signer));
                self.future.offer(signer, member, from, round, msg);
            } else if mh == h && self.state.step != Step::Commit {
                // Refused buffered messages are dropped like fresh ones.
                let _ = self.handle_checked(self.now, from, msg, true);
            }
        }
    }

    /// Decided blocks from a peer (catch-up). The block of the current
    /// height is decided if its certificate verifies against this height's
    /// set (checked before anything is kept: a bad one refuses the whole
    /// response). A later one is kept, until its height starts, only if its
    /// certificate verifies against this height's set too (usually the
    /// next heights' set; across a rotation it fails and the block is
    /// asked for again then), and never in place of one already kept. A
    /// response that neither decides nor keeps anything, because a block
    /// fails, is refused with that block's error.
    pub(super) fn handle_blocks(
        &mut self,
        now: LocalTime,
        blocks: Vec<CommittedBlock>,
    ) -> Result<(), InputError> {
        let h = self.state.height;
        let running = self.cur.is_some() && self.state.step != Step::Commit;
        let decides = blocks.iter().position(|b| running && b.header.number == h);
        if let Some(i) = decides {
            self.check_block(&blocks[i])?;
        }
        let (later, failed) = self.certified_later(&blocks);
        if decides.is_none() && later.is_empty() {
            return match failed {
                Some(e) => Err(e.into()),
                None => Ok(()),
            };
        }
        self.now = now;
        for (i, b) in blocks.into_iter().enumerate() {
            if later.contains(&i) {
                self.pending_blocks.keep(h, b);
            } else if Some(i) == decides {
                self.commit_block(b);
            }
        }
        Ok(())
    }

    /// Which of `blocks` above the current height (and within reach of the
    /// later-block store) certify against this height's set, stopping at
    /// the first that does not (with its error). Blocks of heights already
    /// kept are skipped unchecked: the kept one stays.
    fn certified_later(
        &mut self,
        blocks: &[CommittedBlock],
    ) -> (Vec<usize>, Option<CertificateError>) {
        let h = self.state.height;
        let Some(cur) = self.cur.as_ref() else {
            return (Vec::new(), None);
        };
        let mut ok = Vec::new();
        for (i, b) in blocks.iter().enumerate() {
            let n = b.header.number;
            let ahead = n.0.saturating_sub(h.0);
            if ahead == 0
                || ahead > undchain_types::msg::MAX_BLOCKS_PER_RESPONSE as u64
                || self.pending_blocks.has(n)
            {
                continue;
            }
            let checked = verify_committed_block(
                b,
                self.config.chain_id,
                n,
                &cur.set,
                self.config.hash_algorithm,
                &mut self.verifier,
            );
            match checked {
                Ok(()) => ok.push(i),
                Err(e) => return (ok, Some(e)),
            }
        }
        (ok, None)
    }

    /// A peer asks for decided blocks: answered (by the host, from its
    /// storage) at most once per half re-send interval per member of this
    /// height's set, and [`MAX_ACTIVE`] times per interval for all others
    /// together (observers, passive validators, strangers).
    pub(super) fn handle_block_request(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        request: BlockRequest,
    ) -> Result<(), InputError> {
        let every = self.config.timeouts.rebroadcast_us;
        let member = self.cur.as_ref().is_some_and(|c| c.set.contains(&from));
        if member {
            if self
                .served
                .get(&from)
                .is_some_and(|t| now < t.plus(every / 2))
            {
                return Err(InputError::RateLimited { peer: from });
            }
            if let Some(cur) = self.cur.as_ref() {
                self.served.retain(|k, _| cur.set.contains(k));
            }
            self.served.insert(from, now);
        } else {
            let (start, count) = self.served_others;
            let (start, count) = if now >= start.plus(every) {
                (now, 0)
            } else {
                (start, count)
            };
            if count >= MAX_ACTIVE {
                return Err(InputError::RateLimited { peer: from });
            }
            self.served_others = (start, count + 1);
        }
        self.now = now;
        self.emit(Output::ServeBlocks { to: from, request });
        Ok(())
    }

    /// Evidence from a peer: surfaced once per offender and slot, and only
    /// if it is for this chain and this height and names a member of this
    /// height's set (the driver knows no other set; the host, which keeps
    /// the sets of past heights, can check older evidence itself with
    /// [`Evidence::verify`]).
    pub(super) fn handle_evidence(
        &mut self,
        now: LocalTime,
        e: Evidence,
    ) -> Result<(), InputError> {
        self.check_chain(evidence_chain(&e))?;
        let current = self.state.height;
        let Some(cur) = self.cur.as_ref() else {
            return Err(InputError::EvidenceHeight {
                height: e.height(),
                current,
            });
        };
        if e.height() != current {
            return Err(InputError::EvidenceHeight {
                height: e.height(),
                current,
            });
        }
        let offender = e.offender();
        if !cur.set.contains(&offender) {
            return Err(InputError::NotInSet {
                validator: offender,
                height: current,
            });
        }
        let slot = (offender, e.round(), evidence_kind(&e));
        if cur.reported.contains(&slot) {
            return Ok(());
        }
        e.verify()?;
        self.now = now;
        if let Some(cur) = self.cur.as_mut() {
            cur.reported.insert(slot);
        }
        self.emit(Output::Evidence(Box::new(e)));
        Ok(())
    }
}

/// The height, signer and round of a proposal or vote.
pub(super) fn about(m: &Message) -> Option<(BlockNumber, PublicKey, Round)> {
    match m {
        Message::Proposal(p) => Some((p.proposal.height, p.proposal.proposer, p.proposal.round)),
        Message::Vote(v) => Some((v.vote.height, v.vote.validator, v.vote.round)),
        _ => None,
    }
}

/// Whom a proposal or vote claims to be signed by.
fn claimed_signer(m: &Message) -> Option<PublicKey> {
    about(m).map(|(_, signer, _)| signer)
}

/// The chain evidence is about (both messages share it, or
/// [`Evidence::verify`] refuses the pair).
fn evidence_chain(e: &Evidence) -> undchain_types::ChainId {
    match e {
        Evidence::DoubleVote { first, .. } => first.vote.chain_id,
        Evidence::DoubleProposal { first, .. } => first.proposal.chain_id,
    }
}

/// The step of the slot evidence is about (`None`: proposal).
fn evidence_kind(e: &Evidence) -> Option<undchain_types::msg::VoteKind> {
    match e {
        Evidence::DoubleVote { first, .. } => Some(first.vote.kind),
        Evidence::DoubleProposal { .. } => None,
    }
}
