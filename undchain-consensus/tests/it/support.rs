//! Helpers shared by the agreement tests: keys, headers, signed proposals
//! and votes, a host that carries out every batch at once, and what a
//! driver lets a test observe.

use undchain_consensus::{
    Driver, DriverConfig, DriverReady, Output, PersistedState, Timeout, TimeoutConfig, TimeoutKind,
    ValidatorSet, Value, VoteKeeper,
};
use undchain_sim::node_key;
use undchain_types::msg::{Proposal, Round, SignedProposal, SignedVote, Vote, VoteKind};
use undchain_types::{
    BlockHeader, BlockNumber, BlockTime, ChainId, Hash32, HashAlgorithm, LocalTime, Message,
    SigningKey,
};

/// The chain every driver-level test runs on.
pub const CHAIN: ChainId = ChainId(7);
/// The one-way delay the test timeouts are scaled to, microseconds.
pub const UNIT: u64 = 1_000;

/// The fixed keys of nodes `0..n`.
pub fn keys(n: usize) -> Vec<SigningKey> {
    (0..n).map(node_key).collect()
}

/// A validator set of `keys`, all unknown validators.
pub fn set_of(keys: &[SigningKey]) -> ValidatorSet {
    let ids: Vec<_> = keys.iter().map(|k| k.public()).collect();
    ValidatorSet::of_unknown(&ids).unwrap()
}

/// Settings with timeouts scaled to [`UNIT`].
pub fn config() -> DriverConfig {
    let mut c = DriverConfig::new(CHAIN);
    c.timeouts = TimeoutConfig::for_delay(UNIT);
    c
}

/// An idle driver signing with `k`.
pub fn driver(k: &SigningKey) -> Driver {
    Driver::new(config(), k.clone())
}

/// A local time `us` microseconds after the origin.
pub fn at(us: i64) -> LocalTime {
    LocalTime::from_micros(us)
}

/// A header for `height`, told apart by `tag`, signed by `set`.
pub fn header(height: u64, tag: u8, set: &ValidatorSet) -> BlockHeader {
    BlockHeader {
        chain_id: CHAIN,
        epoch: 0,
        number: BlockNumber(height),
        time: BlockTime(height),
        parent: Hash32::ZERO,
        job_root: Hash32([tag; 32]),
        job_count: u64::from(tag),
        ops_root: Hash32::ZERO,
        ops_count: 0,
        ledger_root: Hash32::ZERO,
        validator_set_hash: set.hash(),
        links: Default::default(),
        parent_signers: 0,
        evidence: Default::default(),
    }
}

/// `h` as a value with no parent certificate.
pub fn value(h: &BlockHeader) -> Value {
    Value {
        header: h.clone(),
        parent_certificate: None,
    }
}

/// The key the driver names `h`'s value by (no parent certificate), which
/// a verdict on it must name.
pub fn key_of(h: &BlockHeader) -> Hash32 {
    value(h).key(HashAlgorithm::Blake3)
}

/// `k`'s signed proposal of `h` in `round`.
pub fn proposal(
    k: &SigningKey,
    round: Round,
    h: &BlockHeader,
    pol: Option<Round>,
) -> SignedProposal {
    Proposal {
        chain_id: CHAIN,
        height: h.number,
        round,
        pol_round: pol,
        header: h.clone(),
        proposer: k.public(),
        parent_certificate: None,
    }
    .sign(k)
}

/// `k`'s signed vote.
pub fn vote(
    k: &SigningKey,
    height: u64,
    round: Round,
    kind: VoteKind,
    value: Option<Hash32>,
) -> SignedVote {
    Vote {
        chain_id: CHAIN,
        height: BlockNumber(height),
        round,
        kind,
        value,
        validator: k.public(),
    }
    .sign(k)
}

/// Every batch a driver handed out after an input, each acknowledged at
/// once (a host whose storage answers immediately).
#[derive(Debug, Clone, Default)]
pub struct Handed {
    /// The batches, in the order they were handed out.
    pub batches: Vec<DriverReady>,
}

impl Handed {
    /// Every output, batch by batch (`immediate`, then `after_persist`).
    pub fn outputs(&self) -> Vec<Output> {
        self.batches
            .iter()
            .flat_map(|b| b.immediate.iter().chain(&b.after_persist).cloned())
            .collect()
    }

    /// The votes the batches broadcast.
    pub fn votes(&self) -> Vec<SignedVote> {
        broadcast_votes(&self.outputs())
    }

    /// The last state the batches asked to persist.
    pub fn persisted(&self) -> Option<PersistedState> {
        self.batches
            .iter()
            .rev()
            .find_map(|b| b.persist.last().cloned())
    }
}

/// Takes and acknowledges every batch `d` has for its host.
pub fn take(d: &mut Driver) -> Handed {
    let mut batches = Vec::new();
    while let Some(b) = d.ready() {
        d.advance(b.number()).unwrap();
        batches.push(b);
    }
    Handed { batches }
}

/// The votes among `out` that are broadcast.
pub fn broadcast_votes(out: &[Output]) -> Vec<SignedVote> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast {
                msg: Message::Vote(v),
            } => Some(v.clone()),
            _ => None,
        })
        .collect()
}

/// When `d`'s pending timeout of `kind` for `round` is due.
pub fn due(d: &Driver, kind: TimeoutKind, round: Round) -> LocalTime {
    d.pending_timeouts()
        .into_iter()
        .find(|(_, t)| t.kind == kind && t.round == round)
        .map(|(at, _)| at)
        .unwrap_or_else(|| panic!("no {kind:?} timeout of round {round} pending"))
}

/// Everything a test can observe of a driver without feeding it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// What a batch would persist now.
    pub snapshot: PersistedState,
    /// The current height's votes.
    pub keeper: Option<VoteKeeper>,
    /// The timeouts that can still act.
    pub timeouts: Vec<(LocalTime, Timeout)>,
    /// When the driver wants to be woken.
    pub poll: Option<LocalTime>,
}

/// What `d` shows now.
pub fn observe(d: &Driver) -> Observed {
    Observed {
        snapshot: d.snapshot(),
        keeper: d.vote_keeper().cloned(),
        timeouts: d.pending_timeouts(),
        poll: d.poll_timeout(),
    }
}

/// Hands `d` the proposal `by` signed for `h` in `round` (no proof of
/// lock), which must be accepted.
pub fn offer_proposal(
    d: &mut Driver,
    by: &SigningKey,
    round: Round,
    h: &BlockHeader,
    now: LocalTime,
) {
    d.handle_message(
        now,
        by.public(),
        Message::Proposal(proposal(by, round, h, None)),
    )
    .unwrap();
}

/// Hands `d` one vote of `kind` from each of `from`, which must be
/// accepted.
pub fn cast_votes(
    d: &mut Driver,
    from: &[&SigningKey],
    (height, round): (u64, Round),
    kind: VoteKind,
    value: Option<Hash32>,
    now: LocalTime,
) {
    for k in from {
        d.handle_message(
            now,
            k.public(),
            Message::Vote(vote(k, height, round, kind, value)),
        )
        .unwrap();
    }
}

/// `n` validators and node `me`'s driver, started at `height` at time 0.
pub fn started(n: usize, me: usize, height: u64) -> (Vec<SigningKey>, ValidatorSet, Driver) {
    let ks = keys(n);
    let set = set_of(&ks);
    let mut d = driver(&ks[me]);
    d.start_height(at(0), BlockNumber(height), set.clone());
    (ks, set, d)
}
