//! The seed corpora of `fuzz/fuzz_targets/home_files.rs` and
//! `fuzz/fuzz_targets/api_inputs.rs` run as ordinary tests (CI has no
//! nightly).

use undchain_types::testkit::for_each_seed;

#[test]
fn home_files_fuzz_seeds_load_or_refuse_without_panicking() {
    let n = for_each_seed("home_files", undchain_node::home::fuzz_home_files);
    assert!(n >= 4, "expected the home_files seeds, found {n}");
}

#[test]
fn api_inputs_fuzz_seeds_parse_or_refuse_with_400() {
    let n = for_each_seed("api_inputs", undchain_node::api::fuzz_api_inputs);
    assert!(n >= 5, "expected the api_inputs seeds, found {n}");
}

/// The valid seeds (homes `testnet` wrote) load, so the corpus reaches past
/// the parsers into the checks of a whole home.
#[test]
fn valid_home_seeds_load() {
    let dir = undchain_types::testkit::seed_dir("home_files");
    for (name, role) in [
        ("valid_validator", undchain_node::home::RoleName::Validator),
        ("valid_client", undchain_node::home::RoleName::Client),
    ] {
        let data = std::fs::read(dir.join(name)).unwrap();
        let texts: Vec<String> = data
            .split(|b| *b == 0xff)
            .map(|t| String::from_utf8(t.to_vec()).unwrap())
            .collect();
        let home = undchain_node::home::Home::new("seed");
        let loaded = home.load_texts(&texts[0], &texts[1], &texts[2]).unwrap();
        assert_eq!(loaded.role, role, "{name}");
        assert_eq!(loaded.book.len(), 4, "{name}");
    }
}
