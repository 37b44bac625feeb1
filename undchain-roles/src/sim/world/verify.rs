//! The world's one envelope check: each distinct envelope is verified
//! once for the whole world, as the node's transport verifies once per
//! envelope.

use std::collections::BTreeSet;
use std::sync::Mutex;

use undchain_types::{
    EnvelopeError, Hash32, HashContext, KeyCache, PublicKey, Signature, SignedEnvelope, hash_parts,
};

use crate::node::EnvelopeCheck;

/// Verifies each distinct envelope once for the whole world (the node's
/// transport verifies once per envelope too), with the senders' points
/// decompressed once ([`KeyCache`], as the transport's readers keep one).
#[derive(Debug)]
pub(crate) struct SharedCheck {
    good: Mutex<BTreeSet<Hash32>>,
    keys: Mutex<KeyCache>,
}

impl Default for SharedCheck {
    fn default() -> Self {
        SharedCheck {
            good: Mutex::new(BTreeSet::new()),
            keys: Mutex::new(KeyCache::new(4096)),
        }
    }
}

impl EnvelopeCheck for SharedCheck {
    fn check(&self, env: &SignedEnvelope) -> Result<(), EnvelopeError> {
        let key = hash_parts(
            HashContext::Envelope,
            &[env.digest().as_bytes(), &env.signature().to_bytes()],
        );
        if let Ok(good) = self.good.lock() {
            if good.contains(&key) {
                return Ok(());
            }
        }
        match self.keys.lock() {
            Ok(mut keys) => env.verify_with(&mut keys)?,
            Err(_) => env.verify()?,
        }
        if let Ok(mut good) = self.good.lock() {
            good.insert(key);
        }
        Ok(())
    }

    fn check_signature(&self, key: &PublicKey, digest: &Hash32, sig: &Signature) -> bool {
        let id = hash_parts(
            HashContext::Envelope,
            &[b"op", key.as_bytes(), digest.as_bytes(), &sig.to_bytes()],
        );
        if self.good.lock().is_ok_and(|g| g.contains(&id)) {
            return true;
        }
        let ok = match self.keys.lock() {
            Ok(mut keys) => keys
                .prepare(key)
                .is_ok_and(|k| k.verify_digest(digest, sig).is_ok()),
            Err(_) => key.verify_digest(digest, sig).is_ok(),
        };
        if ok && let Ok(mut good) = self.good.lock() {
            good.insert(id);
        }
        ok
    }
}
