//! A node's simulated disk: every batch is one atomic write (folded into a
//! [`Stored`] as [`crate::MemoryStore`] does); a crash that tears a batch
//! loses that write (it was never synced), and nothing that depended on it
//! went out. A partner's writes (`StoreOp::Partner`) fold the same way, so
//! a partner hosted on it restarts ([`crate::partner::Partner::restore`])
//! with what the node's redb store would give it.

use crate::store::{BlockRecord, Storage, StoreError, StoreOp, Stored};

/// The simulated storage of one node.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    stored: Stored,
    writes: u64,
    lost: u64,
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// A write that a crash tore: lost.
    pub fn lose(&mut self, _batch: &[StoreOp]) {
        self.lost += 1;
    }

    /// Batches written.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Batches lost to crashes.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// What is durable.
    pub fn stored(&self) -> &Stored {
        &self.stored
    }

    /// The stored block at `height`, to rewrite in place: only the
    /// campaign's negative control uses it (an injected fork, which the
    /// checker must catch).
    pub(crate) fn block_mut(&mut self, height: u64) -> Option<&mut BlockRecord> {
        self.stored
            .blocks
            .iter_mut()
            .find(|b| b.block.header.number.0 == height)
    }
}

impl Storage for SimDisk {
    fn write(&mut self, batch: &[StoreOp]) -> Result<(), StoreError> {
        for op in batch {
            self.stored.apply(op);
        }
        self.writes += 1;
        Ok(())
    }

    fn load(&self) -> Result<Stored, StoreError> {
        Ok(self.stored.clone())
    }
}
