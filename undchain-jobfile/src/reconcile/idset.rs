//! The set of job ids learned from the peer in a session, so that an
//! outcome never holds an id twice: an open-addressing table of positions
//! in the session's learned list, probed by a keyed mix of the id's first
//! 8 bytes (the key comes from the session's nonce, so crafted ids cannot
//! aim at one probe chain), the whole ids compared where the probes meet.

use undchain_types::{Hash32, JobEntry, JobId};

use super::range::top64;

/// Learned ids, as positions (plus one; 0 is empty) in the learned list.
#[derive(Debug, Default)]
pub(crate) struct IdSet {
    table: Vec<u32>,
    len: usize,
    key: u64,
}

#[inline]
fn mix(top: u64, key: u64) -> u64 {
    let x = (top ^ key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

impl IdSet {
    /// An empty set probed under `key`.
    pub(crate) fn new(key: u64) -> Self {
        IdSet {
            table: Vec::new(),
            len: 0,
            key,
        }
    }

    /// Adds `learned[i]`'s id (every earlier position already added);
    /// returns false if the set held that id already.
    pub(crate) fn insert(&mut self, learned: &[(JobEntry, Hash32)], i: usize) -> bool {
        if (self.len + 1) * 2 > self.table.len() {
            self.grow(learned);
        }
        let id = learned[i].0.id;
        if self.find(learned, &id).is_some() {
            return false;
        }
        self.place_with(i, top64(&id));
        self.len += 1;
        true
    }

    fn find(&self, learned: &[(JobEntry, Hash32)], id: &JobId) -> Option<usize> {
        let mask = self.table.len() - 1;
        let mut at = (mix(top64(id), self.key) as usize) & mask;
        loop {
            match self.table[at] {
                0 => return None,
                j => {
                    if learned[j as usize - 1].0.id == *id {
                        return Some(j as usize - 1);
                    }
                    at = (at + 1) & mask;
                }
            }
        }
    }

    fn place_with(&mut self, i: usize, top: u64) {
        let mask = self.table.len() - 1;
        let mut at = (mix(top, self.key) as usize) & mask;
        while self.table[at] != 0 {
            at = (at + 1) & mask;
        }
        self.table[at] = i as u32 + 1;
    }

    fn grow(&mut self, learned: &[(JobEntry, Hash32)]) {
        let size = ((self.len + 1) * 4).next_power_of_two().max(64);
        let old = core::mem::replace(&mut self.table, vec![0; size]);
        for j in old.into_iter().filter(|&j| j != 0) {
            let top = top64(&learned[j as usize - 1].0.id);
            self.place_with(j as usize - 1, top);
        }
    }
}
