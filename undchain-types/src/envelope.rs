//! Signed envelopes: how every message travels (DESIGN.md "Identities,
//! messages, wire").
//!
//! An envelope names its sender, chain, message kind, the sender's sequence
//! number and the time it was sent, and carries the body. The wire form is
//! `version || postcard(envelope) || signature(64)`; the signature covers
//! `blake3_keyed(Envelope context, version || postcard(envelope))`, that is,
//! a domain-separated encoding of every field. Decoding insists on the
//! canonical encoding, so the digest of the received bytes is the digest of
//! the decoded value. `verify` uses `verify_strict`; weak keys never get
//! this far (a [`PublicKey`] cannot hold one), and a sender key with a
//! small-order component is refused when it is prepared for the check
//! ([`crate::CryptoError::TorsionComponent`]).

use std::sync::OnceLock;

use crate::crypto::{CryptoError, KeyCache, PreparedKey, PublicKey, Signature, SigningKey};
use crate::hash::{Hash32, HashContext};
use crate::ids::{BlockTime, ChainId};
use crate::msg::{Message, MessageKind};
use crate::wire::{self, WIRE_VERSION, WireError};

/// Length of the trailing signature.
pub const SIGNATURE_LEN: usize = 64;

/// An unsigned envelope.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "proptest", derive(proptest_derive::Arbitrary))]
pub struct Envelope {
    /// The sender's identity (also the signing key).
    pub sender: PublicKey,
    /// The chain this message is for.
    pub chain_id: ChainId,
    /// The body's kind; must match the body.
    pub kind: MessageKind,
    /// The sender's sequence number: a repeated (sender, seq) is a duplicate.
    pub seq: u64,
    /// When sent: block time for validators, wall-clock for clients and
    /// partners.
    pub sent_at: BlockTime,
    /// The message itself.
    pub body: Message,
}

impl Envelope {
    /// An envelope for `body`, its kind taken from the body.
    pub fn new(
        sender: PublicKey,
        chain_id: ChainId,
        seq: u64,
        sent_at: BlockTime,
        body: impl Into<Message>,
    ) -> Self {
        let body = body.into();
        Envelope {
            sender,
            chain_id,
            kind: body.kind(),
            seq,
            sent_at,
            body,
        }
    }

    /// Signs with `key`. The envelope's `sender` should be `key.public()`;
    /// otherwise the result will not verify.
    pub fn sign(self, key: &SigningKey) -> SignedEnvelope {
        let bytes = wire::encode(&self);
        let digest = crate::hash::hash(HashContext::Envelope, &bytes);
        SignedEnvelope {
            signature: key.sign_digest(&digest),
            sender_key: SenderKey(OnceLock::from(key.prepared())),
            envelope: self,
            digest,
        }
    }
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes did not decode.
    #[error("envelope does not decode: {0}")]
    Wire(#[from] WireError),
    /// The signature does not verify under the sender's key.
    #[error("envelope signature: {0}")]
    Signature(CryptoError),
    /// The envelope is for another chain.
    #[error("envelope is for {got}, this is {expected}")]
    WrongChain {
        /// Chain in the envelope.
        got: ChainId,
        /// The chain the receiver is on.
        expected: ChainId,
    },
}

/// An envelope with its signature, and the digest the signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEnvelope {
    envelope: Envelope,
    signature: Signature,
    digest: Hash32,
    sender_key: SenderKey,
}

/// The signer's key, decompressed at most once: known when the envelope is
/// signed here, filled on the first `verify` of a decoded envelope (decoding
/// itself does no curve arithmetic). Compared by nothing: it is derived.
#[derive(Debug, Clone, Default)]
struct SenderKey(OnceLock<PreparedKey>);

impl PartialEq for SenderKey {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for SenderKey {}

impl SignedEnvelope {
    /// The envelope that was signed.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Unwraps the envelope (after [`SignedEnvelope::verify`]).
    pub fn into_envelope(self) -> Envelope {
        self.envelope
    }

    /// The sender's key, which the signature is checked against.
    pub fn sender(&self) -> &PublicKey {
        &self.envelope.sender
    }

    /// The message the envelope carries.
    pub fn body(&self) -> &Message {
        &self.envelope.body
    }

    /// The sender's signature over the envelope's digest.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The digest the signature covers: a unique id of this envelope (a job
    /// id is derived from a request's digest).
    pub fn digest(&self) -> &Hash32 {
        &self.digest
    }

    /// Checks the signature with `verify_strict` under the sender's key
    /// (decompressing the key on first use).
    pub fn verify(&self) -> Result<(), EnvelopeError> {
        let key = match self.sender_key.0.get() {
            Some(k) => *k,
            None => {
                let k = self
                    .envelope
                    .sender
                    .prepare()
                    .map_err(EnvelopeError::Signature)?;
                let _ = self.sender_key.0.set(k);
                k
            }
        };
        self.verify_prepared(&key)
    }

    /// Like [`SignedEnvelope::verify`], taking the sender's decompressed key
    /// from `cache` (a node keeps its frequent peers there, so the hot path
    /// is one `verify_strict`).
    pub fn verify_with(&self, cache: &mut KeyCache) -> Result<(), EnvelopeError> {
        if let Some(k) = self.sender_key.0.get() {
            return self.verify_prepared(k);
        }
        let k = cache
            .prepare(&self.envelope.sender)
            .map_err(EnvelopeError::Signature)?;
        self.verify_prepared(&k)
    }

    fn verify_prepared(&self, key: &PreparedKey) -> Result<(), EnvelopeError> {
        // A key prepared from a signing key other than the named sender (an
        // envelope signed by hand with the wrong key) must not pass.
        if key.public() != self.envelope.sender {
            return Err(EnvelopeError::Signature(CryptoError::BadSignature));
        }
        key.verify_digest(&self.digest, &self.signature)
            .map_err(EnvelopeError::Signature)
    }

    /// Checks the signature and that the envelope is for `chain`.
    pub fn verify_for(&self, chain: ChainId) -> Result<(), EnvelopeError> {
        if self.envelope.chain_id != chain {
            return Err(EnvelopeError::WrongChain {
                got: self.envelope.chain_id,
                expected: chain,
            });
        }
        self.verify()
    }

    /// The wire form: version, envelope, signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = wire::encode(&self.envelope);
        out.extend_from_slice(&self.signature.0);
        out
    }

    /// Decodes the wire form of at most `max_frame` bytes. Does not verify
    /// the signature (call [`SignedEnvelope::verify`]).
    pub fn from_bytes(bytes: &[u8], max_frame: usize) -> Result<Self, WireError> {
        let body = wire::check_frame(bytes, max_frame)?;
        if body.len() < SIGNATURE_LEN {
            return Err(WireError::Truncated);
        }
        let (env_bytes, sig_bytes) = body.split_at(body.len() - SIGNATURE_LEN);
        let envelope: Envelope = wire::decode_bare(env_bytes)?;
        if envelope.kind != envelope.body.kind() {
            return Err(WireError::KindMismatch {
                declared: envelope.kind,
                body: envelope.body.kind(),
            });
        }
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(sig_bytes);
        let signed_len = 1 + env_bytes.len();
        debug_assert_eq!(bytes[0], WIRE_VERSION);
        let digest = crate::hash::hash(HashContext::Envelope, &bytes[..signed_len]);
        Ok(SignedEnvelope {
            envelope,
            signature: Signature(signature),
            digest,
            sender_key: SenderKey::default(),
        })
    }

    /// Decodes and verifies in one step, for `chain`.
    pub fn open(bytes: &[u8], max_frame: usize, chain: ChainId) -> Result<Self, EnvelopeError> {
        let env = Self::from_bytes(bytes, max_frame)?;
        env.verify_for(chain)?;
        Ok(env)
    }
}
