//! The fixed test identities: node `i` of every test and simulator has the
//! same key, so signatures, block hashes and proposer orders replay across
//! runs and crates.

use undchain_types::SigningKey;

/// The test key of node `i`.
pub fn node_key(i: usize) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    seed[8..16].copy_from_slice(b"undsimky");
    SigningKey::from_seed(seed)
}

/// The test keys of nodes `0..n`.
pub fn node_keys(n: usize) -> Vec<SigningKey> {
    (0..n).map(node_key).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_and_stable() {
        let ks = node_keys(16);
        let mut pks: Vec<_> = ks.iter().map(|k| k.public()).collect();
        pks.sort();
        pks.dedup();
        assert_eq!(pks.len(), 16);
        assert_eq!(node_key(3).public(), ks[3].public());
    }
}
