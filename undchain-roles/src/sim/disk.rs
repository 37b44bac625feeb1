//! A node's simulated disk: every batch is one atomic write
//! ([`MemoryStore`] underneath); a crash that tears a batch loses that
//! write (it was never synced), and nothing that depended on it went out.

use crate::store::{MemoryStore, Storage, StoreError, StoreOp, Stored};

/// The simulated storage of one node.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    store: MemoryStore,
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
        self.store.writes()
    }

    /// Batches lost to crashes.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// What is durable.
    pub fn stored(&self) -> &Stored {
        self.store.stored()
    }
}

impl Storage for SimDisk {
    fn write(&mut self, batch: &[StoreOp]) -> Result<(), StoreError> {
        self.store.write(batch)
    }

    fn load(&self) -> Result<Stored, StoreError> {
        self.store.load()
    }
}
