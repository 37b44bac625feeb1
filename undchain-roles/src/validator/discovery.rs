//! Discovery and registration (design notes, validator story item 1;
//! DESIGN.md "Discovery"; docs/PROTOCOL.md "Discovery and registration").
//!
//! A validator that is not in the genesis ([`crate::Joining`]) says
//! [`ValidatorHello`] to the validators of its bootstrap list and takes
//! their [`DiscoveryReply`]s: the validators they know, the active set and
//! whether known validators fill unknown seats for now. Once two of them
//! (the only one, for a list of one) name the same active set it inherits
//! that set's time ([`undchain_timesync::Join`]: it never bootstraps a
//! time of its own), then follows the chain like a passive validator (the
//! validators serve block and job-file requests to a key that said hello,
//! see [`Greeted`]). Caught up, an unknown validator sends its own
//! registration (`TxOp::RegisterValidator`, with the nonce its caught-up
//! ledger gives); a known one waits for the chain owner's. The block that
//! commits a registration feeds `RosterEvent::Registered` to every
//! roster: the validator is passive from the next height and rotates into
//! a seat of its class at the next payout-period end.
//!
//! Answering hellos is bounded: at most [`MAX_GREETED`] hello senders are
//! remembered (the least recent forgotten first), a sender gets at most
//! one reply per block interval and all senders together at most
//! [`MAX_REPLIES_PER_BLOCK`], so a flood of hellos from fresh keys costs
//! a bounded amount of memory and signing.

use std::collections::{BTreeMap, BTreeSet};

use undchain_types::msg::{
    DiscoveryReply, MAX_DISCOVERY, Transaction, TransactionBody, TxOp, ValidatorContact,
    ValidatorHello, ValidatorRegistration,
};
use undchain_types::{BoundedString, BoundedVec, LocalTime, Message, PublicKey, SigningKey, Trust};

use super::Validator;
use crate::config::Joining;
use crate::output::NodeEvent;

/// Most hello senders a validator remembers (and serves catch-up to
/// before they are registered).
pub const MAX_GREETED: usize = 64;

/// Most discovery replies a validator sends per block interval, to all
/// hello senders together.
pub const MAX_REPLIES_PER_BLOCK: u32 = 16;

/// Blocks a joining validator waits for its registration to commit before
/// it sends it again.
pub const REGISTER_RETRY_BLOCKS: u64 = 8;

/// Why a discovery message was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// A discovery reply to a validator that is not joining.
    #[error("discovery reply from {from:?}, but this validator is not joining")]
    NotJoining {
        /// The sender.
        from: PublicKey,
    },
    /// A discovery reply from a validator outside the bootstrap list.
    #[error("discovery reply from {from:?}, who is not in the bootstrap list")]
    NotInBootstrap {
        /// The sender.
        from: PublicKey,
    },
}

/// The hello senders a validator remembers, and its reply budget.
#[derive(Debug, Clone, Default)]
pub struct Greeted {
    /// Per sender: when it last said hello, and the order of that hello.
    last: BTreeMap<PublicKey, (LocalTime, u64)>,
    counter: u64,
    window: Option<LocalTime>,
    replies: u32,
}

impl Greeted {
    /// Records a hello from `from` at `now` and says whether it gets a
    /// reply (one per sender per `interval_us`, [`MAX_REPLIES_PER_BLOCK`]
    /// per interval in all).
    pub fn admit(&mut self, now: LocalTime, from: PublicKey, interval_us: u64) -> bool {
        let recent = self
            .last
            .get(&from)
            .is_some_and(|(t, _)| now < t.plus(interval_us));
        if recent {
            return false;
        }
        self.counter += 1;
        self.last.insert(from, (now, self.counter));
        while self.last.len() > MAX_GREETED {
            // At most MAX_GREETED + 1 entries: the scan is bounded.
            let oldest = self
                .last
                .iter()
                .min_by_key(|(_, order)| **order)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => self.last.remove(&k),
                None => break,
            };
        }
        let fresh = self.window.is_none_or(|w| now >= w.plus(interval_us));
        if fresh {
            self.window = Some(now);
            self.replies = 0;
        }
        if self.replies >= MAX_REPLIES_PER_BLOCK {
            return false;
        }
        self.replies += 1;
        true
    }

    /// Whether `key` said hello and is still remembered.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.last.contains_key(key)
    }

    /// How many hello senders are remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no hello sender is remembered.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

/// A joining validator's progress.
#[derive(Debug, Clone)]
pub(crate) struct Newcomer {
    pub cfg: Joining,
    /// Signs its registration's consent and transaction.
    pub key: SigningKey,
    /// The active set each bootstrap validator's latest reply named.
    pub named: BTreeMap<PublicKey, Vec<PublicKey>>,
    pub next_hello_at: LocalTime,
    /// The height at which it last sent its registration.
    pub registration_sent: Option<u64>,
}

impl Newcomer {
    pub fn new(cfg: Joining, key: SigningKey, now: LocalTime) -> Self {
        Newcomer {
            cfg,
            key,
            named: BTreeMap::new(),
            next_hello_at: now,
            registration_sent: None,
        }
    }

    /// The active set at least two bootstrap validators named alike (the
    /// only one's, for a list of one).
    fn agreed_set(&self) -> Option<BTreeSet<PublicKey>> {
        let need = self.cfg.bootstrap.len().clamp(1, 2);
        let mut counts: BTreeMap<&Vec<PublicKey>, usize> = BTreeMap::new();
        for set in self.named.values() {
            *counts.entry(set).or_insert(0) += 1;
        }
        counts
            .into_iter()
            .find(|(set, n)| *n >= need && !set.is_empty())
            .map(|(set, _)| set.iter().copied().collect())
    }
}

impl Validator {
    /// Whether this validator's key is in its committed roster.
    pub(crate) fn registered(&self) -> bool {
        self.roster.trust(&self.me).is_some()
    }

    /// Whether `key` said hello recently enough to be served catch-up.
    pub(crate) fn greeted(&self, key: &PublicKey) -> bool {
        self.greeted.contains(key)
    }

    /// A hello from `from`: answered with what this validator knows, within
    /// the reply budget.
    pub(crate) fn handle_hello(&mut self, now: LocalTime, from: PublicKey, _hello: ValidatorHello) {
        if from == self.me || !self.greeted.admit(now, from, self.params.block_interval_us) {
            return;
        }
        let reply = self.discovery_reply(&from);
        self.send(now, &[from], Message::DiscoveryReply(reply), false);
    }

    /// The reply to `to`'s hello: the active set first, then the other
    /// registered validators by key, with what their registrations say.
    fn discovery_reply(&self, to: &PublicKey) -> DiscoveryReply {
        let active: Vec<PublicKey> = self.set.seats().iter().map(|s| s.id).collect();
        let contact = |id: &PublicKey| {
            let record = self.ledger.validator(id);
            ValidatorContact {
                id: *id,
                trust: record
                    .map(|r| r.trust)
                    .or_else(|| self.roster.trust(id))
                    .unwrap_or(Trust::Unknown),
                alias: record
                    .map(|r| BoundedString::truncating(r.alias.as_str()))
                    .unwrap_or_default(),
                media: record.map(|r| r.media.clone()).unwrap_or_default(),
            }
        };
        let others = self
            .ledger
            .validators()
            .map(|(k, _)| *k)
            .filter(|k| !active.contains(k));
        let contacts: Vec<ValidatorContact> = active
            .iter()
            .copied()
            .chain(others)
            .take(MAX_DISCOVERY)
            .map(|k| contact(&k))
            .collect();
        DiscoveryReply {
            validators: BoundedVec::try_from(contacts).unwrap_or_default(),
            known_filling_unknown: self.set.fillers() > 0,
            active: BoundedVec::try_from(active).unwrap_or_default(),
            height: self.height,
            registered: self.roster.trust(to),
        }
    }

    /// A bootstrap validator's reply to this joining validator's hello.
    pub(crate) fn handle_discovery_reply(
        &mut self,
        now: LocalTime,
        from: PublicKey,
        reply: DiscoveryReply,
    ) -> Result<(), DiscoveryError> {
        let Some(n) = self.joining.as_mut() else {
            return Err(DiscoveryError::NotJoining { from });
        };
        if !n.cfg.bootstrap.contains(&from) {
            return Err(DiscoveryError::NotInBootstrap { from });
        }
        n.named.insert(from, reply.active.to_vec());
        let set = n.agreed_set();
        self.event(NodeEvent::Discovered {
            from,
            validators: reply.validators.len(),
            active: reply.active.to_vec(),
            known_filling_unknown: reply.known_filling_unknown,
            registered: reply.registered,
        });
        if let Some(set) = set {
            self.begin_join(now, set);
        }
        Ok(())
    }

    /// A joining validator's hellos: every two block intervals until its
    /// time joined, then every four until it is registered (so the
    /// validators keep serving its catch-up).
    pub(crate) fn hello_timeout(&mut self, now: LocalTime) {
        let registered = self.registered();
        let synced = self.time.clock.is_some();
        let b = self.params.block_interval_us;
        let tip = self
            .height
            .0
            .checked_sub(1)
            .map(undchain_types::BlockNumber);
        let last_hash = self.last_hash;
        let Some(n) = self.joining.as_mut() else {
            return;
        };
        if registered || now < n.next_hello_at {
            return;
        }
        n.next_hello_at = now.plus(if synced { 4 * b } else { 2 * b });
        let hello = ValidatorHello {
            trust: n.cfg.trust,
            media: BoundedVec::try_from(
                n.cfg
                    .media
                    .iter()
                    .take(undchain_types::msg::MAX_MEDIA)
                    .cloned()
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default(),
            tip,
            tip_hash: last_hash,
        };
        let to = n.cfg.bootstrap.clone();
        self.send(now, &to, Message::ValidatorHello(hello), false);
    }

    /// When a joining validator next says hello (`None` once registered).
    pub(crate) fn hello_deadline(&self) -> Option<LocalTime> {
        let n = self.joining.as_ref()?;
        (!self.registered()).then_some(n.next_hello_at)
    }

    /// A caught-up, unknown joining validator sends its own registration
    /// to the active set (again after [`REGISTER_RETRY_BLOCKS`] if it has
    /// not committed).
    pub(crate) fn maybe_register(&mut self, now: LocalTime) {
        if self.registered() || self.time.clock.is_none() {
            return;
        }
        let time = self.block_time(now);
        let current = self.params.block_at(time);
        let height = self.height.0;
        // Caught up: at most one block behind the block clock.
        if height + 1 < current.0 {
            return;
        }
        let chain = self.params.chain_id;
        let fee = self.params.transaction_fee;
        let nonce = self.ledger.account(&self.me).nonce;
        let Some(n) = self.joining.as_mut() else {
            return;
        };
        if n.cfg.trust != Trust::Unknown
            || n.registration_sent
                .is_some_and(|h| height < h + REGISTER_RETRY_BLOCKS)
        {
            return;
        }
        n.registration_sent = Some(height);
        let media: Vec<_> = n
            .cfg
            .media
            .iter()
            .take(undchain_types::msg::MAX_MEDIA)
            .cloned()
            .collect();
        let reg = ValidatorRegistration::consented(
            chain,
            &n.key,
            Trust::Unknown,
            BoundedString::truncating(&n.cfg.alias),
            BoundedVec::try_from(media).unwrap_or_default(),
        );
        let tx: Transaction = TransactionBody {
            chain_id: chain,
            sender: n.key.public(),
            nonce,
            fee,
            op: TxOp::RegisterValidator(Box::new(reg)),
        }
        .sign(&n.key);
        let to: Vec<PublicKey> = self.set.seats().iter().map(|s| s.id).collect();
        self.send(now, &to, Message::Transaction(tx), false);
        self.event(NodeEvent::RegistrationSent { nonce });
    }
}
