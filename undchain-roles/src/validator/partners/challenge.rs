//! The desk's storage challenges (docs/PROTOCOL.md "The validator's
//! desk"): a random chunk of a started job's content root, at once on
//! `UtilityStarted` and again every [`PartnerDesk::rechallenge_us`] (with
//! jitter) while the job is open at the desk and its partner registered,
//! so a partner that drops chunks after the first challenge is still
//! caught. A failed or unanswered challenge is a `RequirementFailed`, a
//! `FailedChallenge` score event and no more notifications.

use undchain_consensus::ScoreEvent;
use undchain_types::msg::{
    Challenge, ChallengeResponse, Requirement, RequirementFailed, StorageAnswer, StorageChallenge,
};
use undchain_types::{
    BlockTime, BoundedBytes, BoundedString, Hash32, JobId, LocalTime, PublicKey, Role, UtilityKind,
    wire,
};

use super::{DeskError, DeskEvent, DeskOutput, MAX_JOBS, PartnerDesk};
use crate::utility::check_answer;

/// Re-challenge period of a live storage job, in blocks of the chain's
/// interval (the default of `ValidatorTiming::rechallenge_us`).
pub const RECHALLENGE_BLOCKS: u64 = 10;
/// Most storage jobs scheduled for re-challenges (each job has at most
/// the chain's partner cap of partners, far fewer in practice).
pub const MAX_RECHECKS: usize = 4 * MAX_JOBS;

/// A challenge sent and not answered yet.
#[derive(Debug, Clone)]
pub(super) struct Outstanding {
    partner: PublicKey,
    question: StorageChallenge,
    chunks: u64,
    deadline: LocalTime,
}

/// A started storage job's content, challenged again when due.
#[derive(Debug, Clone)]
pub(super) struct Recheck {
    root: Hash32,
    chunks: u64,
}

impl PartnerDesk {
    /// Challenges `partner` for a random chunk of `root` (of `chunks`).
    pub fn challenge(&mut self, now: LocalTime, partner: PublicKey, root: Hash32, chunks: u64) {
        let index = self.rng.below(chunks.max(1)) as u32;
        let id = self.next_challenge;
        self.next_challenge += 1;
        let question = StorageChallenge { root, index };
        let mut nonce = [0u8; 32];
        nonce[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        let Ok(payload) = BoundedBytes::try_from_vec(wire::encode_bare(&question)) else {
            return;
        };
        self.challenges.insert(
            id,
            Outstanding {
                partner,
                question,
                chunks,
                deadline: now.plus(self.challenge_deadline_us),
            },
        );
        self.send(
            partner,
            Challenge {
                id,
                kind: UtilityKind::Storage,
                nonce,
                payload,
                deadline: BlockTime(now.0.max(0) as u64 + self.challenge_deadline_us),
            },
        );
    }

    /// Schedules the re-challenges of `partner`'s storage of `root` for
    /// `job`: the first one a jittered period from `now`.
    pub(super) fn schedule_recheck(
        &mut self,
        now: LocalTime,
        job: JobId,
        partner: PublicKey,
        root: Hash32,
        chunks: u64,
    ) {
        if self.rechecks.len() >= MAX_RECHECKS {
            return;
        }
        let due = self.next_recheck(now);
        self.rechecks
            .insert((due, job, partner), Recheck { root, chunks });
    }

    /// A period from `now`, jittered to 1/2..3/2 of it so a partner cannot
    /// time its re-fetch of dropped chunks.
    fn next_recheck(&mut self, now: LocalTime) -> LocalTime {
        let p = self.rechallenge_us.max(1);
        now.plus(p / 2 + self.rng.below(p))
    }

    /// The re-challenges due at `now`: each still open job whose partner
    /// is registered, not failed and not already being challenged for it
    /// is challenged for a fresh random chunk; each is scheduled again
    /// while its job stays open.
    pub(super) fn rechallenge(&mut self, now: LocalTime) {
        while let Some(entry) = self.rechecks.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, job, partner), r) = entry.remove_entry();
            let open = self
                .jobs
                .get(&job)
                .is_some_and(|j| j.started.get(&partner) == Some(&Some(r.root)));
            let Some(reg) = self.partners.get(&partner).filter(|_| open) else {
                continue;
            };
            let pending = self
                .challenges
                .values()
                .any(|o| o.partner == partner && o.question.root == r.root);
            if reg.failed.is_none() && !pending {
                self.challenge(now, partner, r.root, r.chunks);
            }
            let due = self.next_recheck(now);
            self.rechecks.insert((due, job, partner), r);
        }
    }

    pub(super) fn answered(
        &mut self,
        from: PublicKey,
        r: &ChallengeResponse,
    ) -> Result<(), DeskError> {
        let o = self
            .challenges
            .get(&r.id)
            .ok_or(DeskError::UnknownChallenge(r.id))?;
        if o.partner != from {
            return Err(DeskError::UnknownChallenge(r.id));
        }
        let ok = wire::decode_bare::<StorageAnswer>(r.answer.as_bytes())
            .ok()
            .filter(|a| a.proof.leaf_count == o.chunks)
            .is_some_and(|a| check_answer(&o.question, &a).is_ok());
        self.challenges.remove(&r.id);
        if ok {
            self.out
                .push(DeskOutput::Event(DeskEvent::ChallengePassed(from)));
        } else {
            self.fail_challenge(from, r.id);
        }
        Ok(())
    }

    fn fail_challenge(&mut self, partner: PublicKey, id: u64) {
        let requirement = Requirement::Challenge { id };
        if let Some(p) = self.partners.get_mut(&partner) {
            p.failed = Some(requirement.clone());
        }
        self.send(
            partner,
            RequirementFailed {
                requirement,
                detail: BoundedString::truncating("no valid proof of the challenged chunk"),
            },
        );
        self.out
            .push(DeskOutput::Score(ScoreEvent::FailedChallenge {
                identity: partner,
                role: Role::Partner,
            }));
        self.out
            .push(DeskOutput::Event(DeskEvent::ChallengeFailed(partner)));
    }

    /// The earliest challenge deadline or re-challenge.
    pub(super) fn challenge_timeout(&self) -> Option<LocalTime> {
        let c = self.challenges.values().map(|o| o.deadline).min();
        let r = self.rechecks.keys().next().map(|k| k.0);
        c.into_iter().chain(r).min()
    }

    /// Unanswered challenges past their deadline fail; due re-challenges go.
    pub(super) fn challenges_timeout(&mut self, now: LocalTime) {
        let due: Vec<(u64, PublicKey)> = self
            .challenges
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(id, o)| (*id, o.partner))
            .collect();
        for (id, p) in due {
            self.challenges.remove(&id);
            self.fail_challenge(p, id);
        }
        self.rechallenge(now);
    }
}
