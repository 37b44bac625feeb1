//! Laws of the storage utility (DESIGN.md "Utility sessions"): whatever
//! the blob, what a client fetches back through the chunk proofs is the
//! blob it stored, and any altered chunk is refused.

use proptest::prelude::*;
use undchain_roles::utility::{BlobStore, CHUNK_SIZE, Fetch, Upload, UtilityError};
use undchain_types::{Hash32, JobId};

fn stored(data: &[u8]) -> (Upload, BlobStore) {
    let up = Upload::new(data.to_vec()).unwrap();
    let t = up.tree().clone();
    let mut store = BlobStore::new(1 << 24);
    let job = JobId(Hash32([1; 32]));
    for i in 0..t.count() {
        store
            .put(job, t.root(), i, t.count(), t.size(), up.chunk(i).unwrap())
            .unwrap();
    }
    (up, store)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_fetched_blob_equals_the_stored_one(len in 1usize..5 * CHUNK_SIZE, seed in any::<u8>()) {
        let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let (up, store) = stored(&data);
        let t = up.tree();
        let mut f = Fetch::new(t.root(), t.size()).unwrap();
        // Chunks may come back in any order.
        for i in (0..t.count()).rev() {
            let (b, p) = store.serve(&t.root(), i).unwrap();
            f.handle_chunk(i, b, &p).unwrap();
        }
        prop_assert_eq!(f.into_blob().unwrap(), data);
    }

    #[test]
    fn an_altered_chunk_is_refused(len in 1usize..3 * CHUNK_SIZE, at in any::<usize>(), bit in 0u8..8) {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let (up, store) = stored(&data);
        let t = up.tree();
        let at = at % len;
        let index = (at / CHUNK_SIZE) as u32;
        let (b, p) = store.serve(&t.root(), index).unwrap();
        let mut bad = b.to_vec();
        bad[at % CHUNK_SIZE] ^= 1 << bit;
        let mut f = Fetch::new(t.root(), t.size()).unwrap();
        prop_assert_eq!(f.handle_chunk(index, &bad, &p), Err(UtilityError::BadProof { index }));
        prop_assert_eq!(f.missing().count() as u32, t.count(), "a refused chunk is not kept");
    }
}
