//! Every message of the three user stories, as typed bodies.
//!
//! [`Message`] is the body of a signed envelope; [`MessageKind`] is its tag.
//! The catalogue (who sends what to whom, when, and what the receiver does)
//! is `docs/PROTOCOL.md`. Variant order is the wire format: new kinds are
//! appended, never inserted.

pub mod client;
pub mod common;
pub mod consensus;
pub mod ledger;
pub mod links;
pub mod ops;
pub mod partner;
pub mod reconcile;
pub mod session;
pub mod sync;
pub mod time;
pub mod validator;

pub use client::*;
pub use common::*;
pub use consensus::*;
pub use ledger::*;
pub use links::*;
pub use ops::*;
pub use partner::*;
pub use reconcile::*;
pub use session::*;
pub use sync::*;
pub use time::*;
pub use validator::*;

use serde::{Deserialize, Deserializer, Serialize};

use crate::wire::{Invalid, note_invalid};

macro_rules! messages {
    ($( $(#[$m:meta])* $tag:literal => $name:ident($ty:ty), )*) => {
        /// A message body: one variant per message of the protocol.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
        pub enum Message {
            $( $(#[$m])* $name($ty), )*
        }

        /// The kind tag of a message, carried (and signed) in the envelope.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
        #[repr(u16)]
        pub enum MessageKind {
            $( $(#[$m])* $name = $tag, )*
        }

        impl MessageKind {
            /// Every kind, in tag order.
            pub const ALL: &'static [MessageKind] = &[$(MessageKind::$name,)*];

            /// The numeric tag.
            pub const fn tag(self) -> u16 {
                self as u16
            }

            /// The kind of a numeric tag.
            pub const fn from_tag(tag: u16) -> Option<Self> {
                match tag {
                    $($tag => Some(MessageKind::$name),)*
                    _ => None,
                }
            }

            /// The kind's name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(MessageKind::$name => stringify!($name),)*
                }
            }
        }

        impl Message {
            /// The kind of this body.
            pub const fn kind(&self) -> MessageKind {
                match self {
                    $(Message::$name(_) => MessageKind::$name,)*
                }
            }
        }

        /// Decodes `bytes` as every message body type in turn (fuzzing
        /// helper); a body that decodes must re-encode to the same bytes.
        pub(crate) fn decode_each_body(bytes: &[u8]) {
            $(
                if let Ok(v) = crate::wire::decode_bare::<$ty>(bytes) {
                    assert_eq!(crate::wire::encode_bare(&v), bytes, stringify!($name));
                }
            )*
        }

        /// A proptest strategy producing bodies of exactly `kind`.
        #[cfg(feature = "proptest")]
        pub fn arbitrary_of_kind(
            kind: MessageKind,
        ) -> proptest::strategy::BoxedStrategy<Message> {
            use proptest::strategy::Strategy;
            match kind {
                $(MessageKind::$name => proptest::arbitrary::any::<$ty>()
                    .prop_map(Message::$name)
                    .boxed(),)*
            }
        }

        $(
            impl From<$ty> for Message {
                fn from(body: $ty) -> Message {
                    Message::$name(body)
                }
            }
        )*
    };
}

messages! {
    // --- Client to validator (client story) ---
    /// Client -> validators (step 1).
    1 => UtilityRequest(UtilityRequest),
    /// Validator -> client (step 2).
    2 => RequestAck(RequestAck),
    /// Validator -> client (step 2, job moved to a later block).
    3 => InclusionNotice(InclusionNotice),
    /// Client -> validators that did not ack; validator -> validators (gossip) (step 3).
    4 => ForwardedRequest(ForwardedRequest),
    /// Validator -> client, streamed (step 4).
    5 => PartnerOffer(PartnerOffer),
    /// Client or partner -> validators (step 5).
    6 => Receipt(Receipt),
    /// Validator -> client or partner (step 5).
    7 => CompletionAck(CompletionAck),
    /// Any user -> validator.
    8 => JobFileRequest(JobFileRequest),
    /// Validator -> requester.
    9 => JobFileReply(JobFileReply),
    /// Loaded active validator -> user: ask these validators instead.
    10 => JobFileElsewhere(JobFileElsewhere),
    // --- Partner to validator (partner story) ---
    /// Partner -> validators (step 1).
    20 => ReadyToProvide(ReadyToProvide),
    /// Partner -> validators (step 1).
    21 => Subscribe(Subscribe),
    /// Validator -> subscribed partner (step 2).
    22 => JobNotification(JobNotification),
    /// Partner -> validators (step 3).
    23 => JobResponse(JobResponse),
    /// Validator -> partner or client (step 4).
    24 => ConnectionDetails(ConnectionDetails),
    /// Partner -> validators (step 5).
    25 => UtilityStarted(UtilityStarted),
    /// Validator -> partner (step 5).
    26 => PayoutPoolConfirmation(PayoutPoolConfirmation),
    /// Partner -> validators (heartbeat).
    27 => StillActive(StillActive),
    /// Partner -> validators (step 6).
    28 => AtCapacity(AtCapacity),
    /// Partner -> validators (step 7).
    29 => SignOff(SignOff),
    /// Partner -> validators (step 8, client refused to sign).
    30 => PartialCompletion(PartialCompletion),
    /// Validator (usually passive) -> partner.
    31 => Challenge(Challenge),
    /// Partner -> challenging validator.
    32 => ChallengeResponse(ChallengeResponse),
    /// Validator -> partner.
    33 => RequirementFailed(RequirementFailed),
    /// Validator -> partner or client under the floor.
    34 => LowPerception(LowPerception),
    /// Partner -> validators ("why no work?").
    35 => WorkRequest(WorkRequest),
    /// Validator -> partner.
    36 => WorkStatus(WorkStatus),
    /// Partner -> chain owner (recorded on chain).
    37 => CensorshipComplaint(CensorshipComplaint),
    /// Client or partner -> validators.
    38 => ConnectionReport(ConnectionReport),
    /// Client <-> partner, directly: the utility session's data plane.
    39 => Session(SessionMessage),
    // --- Validator to validator ---
    /// Anyone -> anyone (scream cast).
    50 => Hello(Hello),
    /// Validator -> bootstrap validators (item 1).
    51 => ValidatorHello(ValidatorHello),
    /// Validator -> new validator (item 1).
    52 => DiscoveryReply(DiscoveryReply),
    /// Validator -> validator (item 2).
    53 => TimeProbe(TimeProbe),
    /// Validator -> prober (item 2).
    54 => TimeReply(TimeReply),
    /// Validator -> active validators (item 2).
    55 => TimeResyncProposal(TimeResyncProposal),
    /// Validator -> proposer and others (item 2).
    56 => TimeResyncApproval(TimeResyncApproval),
    /// Passive validator -> candidate (item 3).
    57 => CapacityTest(CapacityTest),
    /// Candidate -> tester (item 3).
    58 => CapacityTestResult(CapacityTestResult),
    /// Validator -> active validators (item 4).
    59 => JobFileDelta(JobFileDelta),
    /// Validator <-> validator (item 4).
    60 => Reconcile(Reconcile),
    /// Proposer -> active validators (item 4, agreement).
    61 => Proposal(SignedProposal),
    /// Validator -> active validators: a prevote or a precommit (the step is
    /// inside the signed vote, so one signature covers it).
    62 => Vote(SignedVote),
    /// Validator -> anyone (a decided block).
    64 => CommitCertificate(CommitCertificate),
    /// Validator -> active validators.
    65 => Evidence(Evidence),
    /// Lagging validator -> validator (catch-up).
    66 => BlockRequest(BlockRequest),
    /// Validator -> lagging validator.
    67 => BlockResponse(BlockResponse),
    /// Validator -> validator (item 5).
    68 => PayoutFileSummary(PayoutFileSummary),
    /// Validator -> validators (item 7).
    69 => NetworkStatus(NetworkStatus),
    /// Validator -> active validators (item 6).
    70 => ConvergenceProposal(ConvergenceProposal),
    /// Validator -> active validators (item 6).
    71 => ConvergenceSignature(ConvergenceSignature),
    /// Chain -> linked co-chain (item 8).
    72 => ChainLink(ChainLink),
    // Tags 73 and 74 (a domain transfer and its proof as messages of
    // their own) are retired: both are transactions now (tag 76).
    /// Network -> linked network (item 10).
    75 => NetworkLink(NetworkLink),
    /// User -> validators: a signed ledger transaction (transfer, mint,
    /// domain registration, light-client update, domain lock or proof).
    76 => Transaction(Transaction),
    /// Validator -> validators: signed requests (gossip or fetch answer; item 4).
    77 => RequestBatch(RequestBatch),
    /// Validator -> validator: the requests of these job ids (item 4).
    78 => RequestFetch(RequestFetch),
    /// Validator -> validators: operations (relay of user submissions, or
    /// a block's complete list).
    79 => OpsBatch(OpsBatch),
    /// Validator -> validator: the operations of this block.
    80 => OpsFetch(OpsFetch),
}

impl MessageKind {
    /// Time probes and replies are nonce challenge-responses and exempt from
    /// the replay window (DESIGN.md "Replay").
    pub const fn replay_exempt(self) -> bool {
        matches!(self, MessageKind::TimeProbe | MessageKind::TimeReply)
    }
}

impl core::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for MessageKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.tag().serialize(s)
    }
}

impl<'de> Deserialize<'de> for MessageKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let tag = u16::deserialize(d)?;
        MessageKind::from_tag(tag).ok_or_else(|| {
            note_invalid(Invalid::UnknownKind(tag));
            serde::de::Error::custom("unknown message kind")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_unique_and_roundtrip() {
        let mut seen = std::collections::BTreeSet::new();
        for k in MessageKind::ALL {
            assert!(seen.insert(k.tag()), "duplicate tag {}", k.tag());
            assert_eq!(MessageKind::from_tag(k.tag()), Some(*k));
        }
        assert_eq!(MessageKind::from_tag(0), None);
        assert_eq!(MessageKind::from_tag(999), None);
    }
}
