//! The validator list: the shipped example parses; each kind of malformed
//! file gets its own error naming the entry and field.

use undchain_types::msg::MediumKind;
use undchain_types::validator_list::{EntryRef, ValidatorBook, ValidatorListError};
use undchain_types::{CryptoError, PublicKey};

const EXAMPLE: &str = include_str!("../../../config/validators.example.toml");
const ALPHA: &str = "bc7cbcb5636375fa1d82434d466724d92377f53b980695dd49d26d0ce12205a5";
const BRAVO: &str = "65e8f9b0bc6eae124169f0576f97362d295a8cf5f770b45e14357ce647d33eec";

fn one(extra_entry_fields: &str, media: &str) -> String {
    format!("[[validator]]\nalias = \"alpha\"\nid = \"{ALPHA}\"\n{extra_entry_fields}\n{media}")
}

const MEDIUM: &str = "[[validator.media]]\ntype = \"quic\"\naddress = \"127.0.0.1:7101\"\nlatency_ms = 1\nreliability = 0.99\n";

fn alpha_ref() -> EntryRef {
    EntryRef {
        index: 1,
        alias: Some("alpha".into()),
    }
}

#[test]
fn shipped_example_parses() {
    let book = ValidatorBook::parse(EXAMPLE).unwrap();
    assert_eq!(book.len(), 4);
    let alpha = book.get(&PublicKey::from_hex(ALPHA).unwrap()).unwrap();
    assert_eq!(alpha.alias, "alpha");
    assert!(alpha.known);
    let bravo = book.get(&PublicKey::from_hex(BRAVO).unwrap()).unwrap();
    assert_eq!(bravo.media.len(), 2);
    assert_eq!(bravo.media[1].endpoint.medium, MediumKind::Tcp);
    assert_eq!(bravo.media[1].latency_us, 4500);
    assert_eq!(bravo.media[1].reliability_permille, 950);
    // Lowest latency first: delta (0.5 ms), alpha (1), bravo (2).
    let order: Vec<&str> = book
        .lowest_latency(3)
        .iter()
        .map(|r| r.alias.as_str())
        .collect();
    assert_eq!(order, ["delta", "alpha", "bravo"]);
    // The book renders back to an equal book.
    assert_eq!(ValidatorBook::parse(&book.to_toml()).unwrap(), book);
}

#[test]
fn syntax_error_names_line_and_column() {
    let err = ValidatorBook::parse("[[validator]]\nalias = \"a\nid = 3\n").unwrap_err();
    match err {
        ValidatorListError::Syntax { line, .. } => assert_eq!(line, 2),
        other => panic!("{other:?}"),
    }
}

/// Malformed lists whose error is known exactly: each names the entry (by
/// position and alias when it has one) and the field.
#[test]
fn malformed_lists_get_the_error_naming_entry_and_field() {
    let weak_key = "0100000000000000000000000000000000000000000000000000000000000000";
    let table = [
        ("empty", "# nothing\n".to_owned(), ValidatorListError::Empty),
        (
            "missing id",
            format!("[[validator]]\nalias = \"alpha\"\n{MEDIUM}"),
            ValidatorListError::MissingField {
                entry: alpha_ref(),
                field: "id",
            },
        ),
        (
            "missing alias, named by position",
            format!("[[validator]]\nid = \"{ALPHA}\"\n{MEDIUM}"),
            ValidatorListError::MissingField {
                entry: EntryRef {
                    index: 1,
                    alias: None,
                },
                field: "alias",
            },
        ),
        (
            "short id",
            format!("[[validator]]\nalias = \"alpha\"\nid = \"abcd\"\n{MEDIUM}"),
            ValidatorListError::BadId {
                entry: alpha_ref(),
                reason: CryptoError::BadHex,
            },
        ),
        (
            "weak id",
            format!("[[validator]]\nalias = \"alpha\"\nid = \"{weak_key}\"\n{MEDIUM}"),
            ValidatorListError::BadId {
                entry: alpha_ref(),
                reason: CryptoError::WeakKey,
            },
        ),
        (
            "no media",
            one("", ""),
            ValidatorListError::NoMedia { entry: alpha_ref() },
        ),
        (
            "unknown field",
            one("aliass = \"typo\"", MEDIUM),
            ValidatorListError::UnknownField {
                entry: alpha_ref(),
                field: "aliass".into(),
            },
        ),
    ];
    for (what, text, want) in table {
        assert_eq!(ValidatorBook::parse(&text), Err(want), "{what}");
    }
}

#[test]
fn unknown_top_level_key_is_refused() {
    assert!(matches!(
        ValidatorBook::parse(&format!("validators_typo = 1\n{}", one("", MEDIUM))),
        Err(ValidatorListError::UnknownTopLevel { key }) if key == "validators_typo"
    ));
}

#[test]
fn unknown_medium_type_names_the_field() {
    let media = MEDIUM.replace("\"quic\"", "\"carrier-pigeon\"");
    match ValidatorBook::parse(&one("", &media)).unwrap_err() {
        ValidatorListError::BadField {
            entry,
            field,
            reason,
        } => {
            assert_eq!(entry, alpha_ref());
            assert_eq!(field, "media[1].type");
            assert!(reason.contains("carrier-pigeon"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_address_names_the_field() {
    let media = MEDIUM.replace("127.0.0.1:7101", "127.0.0.1:99999");
    match ValidatorBook::parse(&one("", &media)).unwrap_err() {
        ValidatorListError::BadField { field, reason, .. } => {
            assert_eq!(field, "media[1].address");
            assert!(reason.contains("port"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_reliability_and_latency_name_the_field() {
    let media = MEDIUM.replace("0.99", "1.5");
    assert!(matches!(
        ValidatorBook::parse(&one("", &media)),
        Err(ValidatorListError::BadField { field, .. }) if field == "media[1].reliability"
    ));
    let media = MEDIUM.replace("latency_ms = 1", "latency_ms = -3");
    assert!(matches!(
        ValidatorBook::parse(&one("", &media)),
        Err(ValidatorListError::BadField { field, .. }) if field == "media[1].latency_ms"
    ));
    let media = MEDIUM.replace("latency_ms = 1\n", "");
    assert!(matches!(
        ValidatorBook::parse(&one("", &media)),
        Err(ValidatorListError::MissingField {
            field: "media.latency_ms",
            ..
        })
    ));
}

#[test]
fn duplicates_are_refused() {
    let twice = format!("{}{}", one("", MEDIUM), one("", MEDIUM));
    assert!(matches!(
        ValidatorBook::parse(&twice),
        Err(ValidatorListError::DuplicateId { entry, first })
            if entry.index == 2 && first.index == 1
    ));
    let same_alias = format!(
        "{}[[validator]]\nalias = \"alpha\"\nid = \"{BRAVO}\"\n{MEDIUM}",
        one("", MEDIUM)
    );
    assert!(matches!(
        ValidatorBook::parse(&same_alias),
        Err(ValidatorListError::DuplicateAlias { .. })
    ));
}

#[test]
fn errors_read_well() {
    let err = ValidatorBook::parse(&one("", "")).unwrap_err().to_string();
    assert!(err.contains("validator #1 (\"alpha\")"), "{err}");
}

/// `to_toml` wrote aliases with Rust's `{:?}`, which is not TOML for a
/// control character (`"\u{1}"`): `init` could write a list it then
/// refused to read. Found writing the `validator_list` fuzz target's
/// round-trip check (its seed `escaped_alias`).
#[test]
fn to_toml_escapes_aliases_as_toml() {
    let text = one("", MEDIUM).replace("\"alpha\"", r#""a\u0001\"b\\\u007F""#);
    let book = ValidatorBook::parse(&text).unwrap();
    assert_eq!(book.iter().next().unwrap().alias, "a\u{1}\"b\\\u{7f}");
    assert_eq!(ValidatorBook::parse(&book.to_toml()).unwrap(), book);
}
