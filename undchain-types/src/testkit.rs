//! Test support shared by every crate's fuzz-corpus tests (feature
//! `testkit`, meant for dev-dependencies only).
//!
//! CI has no nightly, so each `cargo fuzz` target's committed seed corpus
//! (`fuzz/seeds/<target>/` in the workspace) also runs as an ordinary test,
//! together with a few inputs drawn from a fixed seed: a short fuzz run on
//! stable that every run repeats exactly. These two helpers are that loop,
//! written once.

use std::path::{Path, PathBuf};

use crate::SplitMix64;

/// The workspace's seed corpus of fuzz target `target`.
pub fn seed_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target)
}

/// Runs `body` on every file of `fuzz/seeds/<target>/`, in name order, and
/// returns how many there were.
///
/// # Panics
/// When the directory or one of its files cannot be read: a missing corpus
/// is a broken test, not an empty one.
pub fn for_each_seed(target: &str, mut body: impl FnMut(&[u8])) -> usize {
    let dir = seed_dir(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|e| e.expect("readable corpus entry").path())
        .collect();
    paths.sort();
    for path in &paths {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("seed {}: {e}", path.display()));
        body(&data);
    }
    paths.len()
}

/// `count` inputs of at most `max_len - 1` random bytes each, drawn from
/// [`SplitMix64`] seeded with `seed`: the same inputs on every run.
pub fn drawn_inputs(seed: u64, count: usize, max_len: u64) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|_| {
            let len = rng.below(max_len) as usize;
            (0..len).map(|_| rng.below(256) as u8).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_inputs_are_repeatable_and_bounded() {
        let a = drawn_inputs(7, 50, 30);
        assert_eq!(a, drawn_inputs(7, 50, 30));
        assert_ne!(a, drawn_inputs(8, 50, 30));
        assert!(a.iter().all(|d| d.len() < 30));
        assert!(a.iter().any(|d| !d.is_empty()));
    }

    #[test]
    fn for_each_seed_visits_every_file_in_name_order() {
        let mut seen = Vec::new();
        let n = for_each_seed("envelope", |d| seen.push(d.to_vec()));
        assert_eq!(n, seen.len());
        assert!(n >= 5, "expected the envelope seeds, found {n}");
        let mut names: Vec<_> = std::fs::read_dir(seed_dir("envelope"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        assert_eq!(std::fs::read(&names[0]).unwrap(), seen[0]);
    }

    #[test]
    #[should_panic(expected = "seed corpus")]
    fn a_missing_corpus_is_a_failure_not_an_empty_run() {
        for_each_seed("no_such_target", |_| {});
    }
}
