//! Signing outgoing envelopes with sequence numbers that never repeat
//! across restarts: numbers are reserved in ranges, each reservation
//! persisted, and an envelope whose number is not yet durably reserved
//! goes out only after the batch's write.

use std::sync::Arc;

use undchain_types::{BlockTime, ChainId, Envelope, Message, SignedEnvelope, SigningKey};

use crate::store::StoreOp;

/// Sequence numbers reserved per persisted reservation.
pub const SEQ_RANGE: u64 = 4096;

/// Signs envelopes for one identity.
#[derive(Debug, Clone)]
pub(crate) struct Signer {
    key: SigningKey,
    chain: ChainId,
    next: u64,
    /// Reserved up to here in the batch being collected.
    queued: u64,
    /// Reserved up to here in batches already handed to the host (durable
    /// before anything of a later batch goes out).
    taken: u64,
}

/// A signed envelope and whether it may go out before the batch's write.
pub(crate) struct Signed {
    pub envelope: Arc<SignedEnvelope>,
    pub immediate_ok: bool,
}

impl Signer {
    /// The identity's key (for signatures outside envelopes).
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// A signer whose numbers below `reserved` may have been used.
    pub fn new(key: SigningKey, chain: ChainId, reserved: u64) -> Self {
        Signer {
            key,
            chain,
            next: reserved,
            queued: reserved,
            taken: reserved,
        }
    }

    /// Signs `body` sent at `sent_at`; a new reservation goes to `persist`.
    pub fn sign(
        &mut self,
        sent_at: BlockTime,
        body: Message,
        persist: &mut Vec<StoreOp>,
    ) -> Signed {
        let seq = self.next;
        self.next += 1;
        if seq >= self.queued {
            self.queued = seq + SEQ_RANGE;
            persist.push(StoreOp::SeqReserved(self.queued));
        }
        let envelope = Envelope::new(self.key.public(), self.chain, seq, sent_at, body);
        Signed {
            envelope: Arc::new(envelope.sign(&self.key)),
            immediate_ok: seq < self.taken,
        }
    }

    /// The host took a batch: its reservations are durable before the next
    /// batch goes out.
    pub fn batch_taken(&mut self) {
        self.taken = self.queued;
    }
}
