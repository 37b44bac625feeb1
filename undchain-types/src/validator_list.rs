//! The validator list (the *bootstrap list*): a TOML file shipped with the
//! code, parsed into an in-memory book (DESIGN.md "Validator list and
//! connections"; design notes, client story step 1).
//!
//! ```toml
//! [[validator]]
//! alias = "alpha"
//! id = "3b6a27bc..."          # 64 hex digits: the ed25519 public key
//! known = true                # optional: appointed by the chain owner
//!
//!   [[validator.media]]
//!   type = "quic"             # quic | tcp | udp
//!   address = "127.0.0.1:7101"
//!   latency_ms = 12           # expected latency (integer or decimal)
//!   reliability = 0.99        # expected reliability, 0.0..=1.0
//! ```
//!
//! This module only parses text: the node reads the file and hands its text
//! here. A malformed file gets an error naming the entry and the field.

use std::collections::BTreeMap;
use std::fmt;

use crate::bounded::BoundedString;
use crate::crypto::{CryptoError, PublicKey};
use crate::msg::{Endpoint, MAX_ADDRESS, MAX_MEDIA, MediumKind};

/// Most validators a list may name.
pub const MAX_VALIDATORS: usize = 1024;
/// The longest alias a list entry may have, bytes.
pub const MAX_ALIAS: usize = 64;

/// Which entry of the list an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRef {
    /// 1-based position in the file.
    pub index: usize,
    /// Its alias, when it has a readable one.
    pub alias: Option<String>,
}

impl fmt::Display for EntryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.alias {
            Some(a) => write!(f, "validator #{} ({a:?})", self.index),
            None => write!(f, "validator #{}", self.index),
        }
    }
}

/// Why a validator list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidatorListError {
    /// Not valid TOML.
    #[error("validator list is not valid TOML at line {line}, column {column}: {message}")]
    Syntax {
        /// The line of the error, counting from 1.
        line: usize,
        /// The column of the error, counting from 1.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// No `[[validator]]` entries.
    #[error("validator list has no [[validator]] entries")]
    Empty,
    /// More entries than [`MAX_VALIDATORS`].
    #[error("validator list has {count} entries, more than {MAX_VALIDATORS}")]
    TooMany {
        /// How many entries the file holds.
        count: usize,
    },
    /// A top-level key other than `validator`.
    #[error("unknown top-level key {key:?} (expected only [[validator]] entries)")]
    UnknownTopLevel {
        /// The key found at the top level.
        key: String,
    },
    /// A required field is missing.
    #[error("{entry}: missing field `{field}`")]
    MissingField {
        /// The entry the field is missing from.
        entry: EntryRef,
        /// The name of the missing field.
        field: &'static str,
    },
    /// A field has the wrong type or an impossible value.
    #[error("{entry}: field `{field}`: {reason}")]
    BadField {
        /// The entry holding the bad field.
        entry: EntryRef,
        /// The field (`media[2].address` for a medium's field).
        field: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// The id is not a usable public key.
    #[error("{entry}: field `id`: {reason}")]
    BadId {
        /// The entry whose id was refused.
        entry: EntryRef,
        /// Why the key was refused.
        reason: CryptoError,
    },
    /// An unknown field (likely a typo).
    #[error("{entry}: unknown field `{field}`")]
    UnknownField {
        /// The entry holding the unknown field.
        entry: EntryRef,
        /// The name of the unknown field, as written.
        field: String,
    },
    /// An entry with no media.
    #[error("{entry}: no [[validator.media]]: at least one medium is required")]
    NoMedia {
        /// The entry without media.
        entry: EntryRef,
    },
    /// Two entries share an id.
    #[error("{entry}: id already used by {first}")]
    DuplicateId {
        /// The second entry.
        entry: EntryRef,
        /// The first entry with that id.
        first: EntryRef,
    },
    /// Two entries share an alias.
    #[error("{entry}: alias already used by {first}")]
    DuplicateAlias {
        /// The second entry.
        entry: EntryRef,
        /// The first entry with that alias.
        first: EntryRef,
    },
}

/// One medium of a validator, with what the node expects of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediumInfo {
    /// Medium and address.
    pub endpoint: Endpoint,
    /// Expected latency, us.
    pub latency_us: u64,
    /// Expected reliability, per mille.
    pub reliability_permille: u16,
}

/// One validator of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorRecord {
    /// The operator's name for the validator, unique in the list.
    pub alias: String,
    /// The validator's identity key, which its TLS handshake must present.
    pub id: PublicKey,
    /// Appointed by the chain owner.
    pub known: bool,
    /// Its media, as listed.
    pub media: Vec<MediumInfo>,
}

impl ValidatorRecord {
    /// Its lowest expected latency over all media.
    pub fn best_latency_us(&self) -> u64 {
        self.media
            .iter()
            .map(|m| m.latency_us)
            .min()
            .unwrap_or(u64::MAX)
    }
}

/// The validator list in memory: an ordered map by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidatorBook {
    by_id: BTreeMap<PublicKey, ValidatorRecord>,
}

impl ValidatorBook {
    /// Parses a validator list from TOML text.
    pub fn parse(text: &str) -> Result<Self, ValidatorListError> {
        parse(text)
    }

    /// A book of `records` (ids must be distinct; later ones win).
    pub fn from_records(records: impl IntoIterator<Item = ValidatorRecord>) -> Self {
        ValidatorBook {
            by_id: records.into_iter().map(|r| (r.id, r)).collect(),
        }
    }

    /// The validator with `id`.
    pub fn get(&self, id: &PublicKey) -> Option<&ValidatorRecord> {
        self.by_id.get(id)
    }

    /// Whether `id` is listed.
    pub fn contains(&self, id: &PublicKey) -> bool {
        self.by_id.contains_key(id)
    }

    /// All validators, by id.
    pub fn iter(&self) -> impl Iterator<Item = &ValidatorRecord> {
        self.by_id.values()
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The `k` validators with the lowest expected latency (ties by id).
    pub fn lowest_latency(&self, k: usize) -> Vec<&ValidatorRecord> {
        let mut v: Vec<&ValidatorRecord> = self.by_id.values().collect();
        v.sort_by_key(|r| (r.best_latency_us(), r.id));
        v.truncate(k);
        v
    }

    /// Renders the book as TOML that [`ValidatorBook::parse`] reads back.
    pub fn to_toml(&self) -> String {
        let mut s = String::from("# UndChain validator list\n");
        for r in self.by_id.values() {
            s.push_str("\n[[validator]]\n");
            s.push_str(&format!("alias = {}\n", toml_string(&r.alias)));
            s.push_str(&format!("id = \"{}\"\n", r.id.to_hex()));
            if r.known {
                s.push_str("known = true\n");
            }
            for m in &r.media {
                s.push_str("\n  [[validator.media]]\n");
                s.push_str(&format!("  type = \"{}\"\n", m.endpoint.medium.as_str()));
                s.push_str(&format!(
                    "  address = {}\n",
                    toml_string(m.endpoint.address.as_str())
                ));
                s.push_str(&format!(
                    "  latency_ms = {}.{:03}\n",
                    m.latency_us / 1000,
                    m.latency_us % 1000
                ));
                s.push_str(&format!(
                    "  reliability = {}.{:03}\n",
                    m.reliability_permille / 1000,
                    m.reliability_permille % 1000
                ));
            }
        }
        s
    }
}

/// `s` as a TOML basic string: quotes, backslashes and control characters
/// escaped (Rust's `{:?}` is not TOML: it writes `\u{1}` and escapes
/// some printable characters TOML has no escape for).
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The fuzz entry point of `fuzz/fuzz_targets/validator_list.rs` (and of
/// its seed-corpus test): parses `data` (lossily made UTF-8) as a validator
/// list. Never panics on any input; it panics only if a parsed book does
/// not survive [`ValidatorBook::to_toml`] and parsing again unchanged, or
/// if its rendering is not stable, which would be a bug (`init` and
/// `testnet` write the list with `to_toml`).
pub fn fuzz_validator_list(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match ValidatorBook::parse(&text) {
        Ok(book) => {
            assert!(!book.is_empty() && book.len() <= MAX_VALIDATORS);
            let rendered = book.to_toml();
            let again = ValidatorBook::parse(&rendered)
                .unwrap_or_else(|e| panic!("to_toml output is refused: {e}\n{rendered}"));
            assert_eq!(again, book, "to_toml then parse changes the book");
            assert_eq!(again.to_toml(), rendered, "to_toml is not stable");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn parse(text: &str) -> Result<ValidatorBook, ValidatorListError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
        ValidatorListError::Syntax {
            line,
            column,
            message: e.message().to_owned(),
        }
    })?;
    if let Some(key) = table.keys().find(|k| k.as_str() != "validator") {
        return Err(ValidatorListError::UnknownTopLevel { key: key.clone() });
    }
    let entries = match table.get("validator") {
        None => return Err(ValidatorListError::Empty),
        Some(toml::Value::Array(a)) => a,
        Some(_) => {
            return Err(ValidatorListError::UnknownTopLevel {
                key: "validator (must be [[validator]] entries)".into(),
            });
        }
    };
    if entries.is_empty() {
        return Err(ValidatorListError::Empty);
    }
    if entries.len() > MAX_VALIDATORS {
        return Err(ValidatorListError::TooMany {
            count: entries.len(),
        });
    }
    let mut book = BTreeMap::new();
    let mut refs: BTreeMap<PublicKey, EntryRef> = BTreeMap::new();
    let mut aliases: BTreeMap<String, EntryRef> = BTreeMap::new();
    for (i, value) in entries.iter().enumerate() {
        let record = parse_entry(i + 1, value)?;
        let entry = EntryRef {
            index: i + 1,
            alias: Some(record.alias.clone()),
        };
        if let Some(first) = refs.get(&record.id) {
            return Err(ValidatorListError::DuplicateId {
                entry,
                first: first.clone(),
            });
        }
        if let Some(first) = aliases.get(&record.alias) {
            return Err(ValidatorListError::DuplicateAlias {
                entry,
                first: first.clone(),
            });
        }
        refs.insert(record.id, entry.clone());
        aliases.insert(record.alias.clone(), entry);
        book.insert(record.id, record);
    }
    Ok(ValidatorBook { by_id: book })
}

fn bad(
    entry: &EntryRef,
    field: impl Into<String>,
    reason: impl Into<String>,
) -> ValidatorListError {
    ValidatorListError::BadField {
        entry: entry.clone(),
        field: field.into(),
        reason: reason.into(),
    }
}

fn parse_entry(index: usize, value: &toml::Value) -> Result<ValidatorRecord, ValidatorListError> {
    let mut entry = EntryRef { index, alias: None };
    let t = value
        .as_table()
        .ok_or_else(|| bad(&entry, "validator", "must be a table"))?;
    // Read the alias first so that every later error can name it.
    let alias = match t.get("alias") {
        None => {
            return Err(ValidatorListError::MissingField {
                entry,
                field: "alias",
            });
        }
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => return Err(bad(&entry, "alias", "must be a string")),
    };
    if alias.is_empty() || alias.len() > MAX_ALIAS {
        return Err(bad(
            &entry,
            "alias",
            format!("must be 1..={MAX_ALIAS} bytes"),
        ));
    }
    entry.alias = Some(alias.clone());
    for k in t.keys() {
        if !matches!(k.as_str(), "alias" | "id" | "known" | "media") {
            return Err(ValidatorListError::UnknownField {
                entry,
                field: k.clone(),
            });
        }
    }
    let id = match t.get("id") {
        None => return Err(ValidatorListError::MissingField { entry, field: "id" }),
        Some(toml::Value::String(s)) => {
            PublicKey::from_hex(s).map_err(|reason| ValidatorListError::BadId {
                entry: entry.clone(),
                reason,
            })?
        }
        Some(_) => return Err(bad(&entry, "id", "must be a string of 64 hex digits")),
    };
    let known = match t.get("known") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(_) => return Err(bad(&entry, "known", "must be true or false")),
    };
    let media_values = match t.get("media") {
        None => return Err(ValidatorListError::NoMedia { entry }),
        Some(toml::Value::Array(a)) => a,
        Some(_) => return Err(bad(&entry, "media", "must be [[validator.media]] tables")),
    };
    if media_values.is_empty() {
        return Err(ValidatorListError::NoMedia { entry });
    }
    if media_values.len() > MAX_MEDIA {
        return Err(bad(
            &entry,
            "media",
            format!("{} media, more than {MAX_MEDIA}", media_values.len()),
        ));
    }
    let media = media_values
        .iter()
        .enumerate()
        .map(|(j, m)| parse_medium(&entry, j + 1, m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ValidatorRecord {
        alias,
        id,
        known,
        media,
    })
}

fn parse_medium(
    entry: &EntryRef,
    j: usize,
    value: &toml::Value,
) -> Result<MediumInfo, ValidatorListError> {
    let f = |name: &str| format!("media[{j}].{name}");
    let t = value
        .as_table()
        .ok_or_else(|| bad(entry, format!("media[{j}]"), "must be a table"))?;
    for k in t.keys() {
        if !matches!(
            k.as_str(),
            "type" | "address" | "latency_ms" | "reliability"
        ) {
            return Err(ValidatorListError::UnknownField {
                entry: entry.clone(),
                field: f(k),
            });
        }
    }
    let missing = |field: &'static str| ValidatorListError::MissingField {
        entry: entry.clone(),
        field,
    };
    let medium = match t.get("type") {
        None => return Err(missing("media.type")),
        Some(toml::Value::String(s)) => MediumKind::parse(s).ok_or_else(|| {
            bad(
                entry,
                f("type"),
                format!("unknown medium {s:?} (expected quic, tcp or udp)"),
            )
        })?,
        Some(_) => return Err(bad(entry, f("type"), "must be a string")),
    };
    let address = match t.get("address") {
        None => return Err(missing("media.address")),
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => return Err(bad(entry, f("address"), "must be a string")),
    };
    check_address(&address).map_err(|r| bad(entry, f("address"), r))?;
    let latency_us = match t.get("latency_ms") {
        None => return Err(missing("media.latency_ms")),
        Some(toml::Value::Integer(i)) if (0..=3_600_000).contains(i) => (*i as u64) * 1000,
        Some(toml::Value::Float(x)) if x.is_finite() && (0.0..=3_600_000.0).contains(x) => {
            (x * 1000.0).round() as u64
        }
        Some(_) => {
            return Err(bad(
                entry,
                f("latency_ms"),
                "must be a number of milliseconds in 0..=3600000",
            ));
        }
    };
    let reliability_permille = match t.get("reliability") {
        None => return Err(missing("media.reliability")),
        Some(toml::Value::Float(x)) if x.is_finite() && (0.0..=1.0).contains(x) => {
            (x * 1000.0).round() as u16
        }
        Some(toml::Value::Integer(i)) if (0..=1).contains(i) => (*i as u16) * 1000,
        Some(_) => {
            return Err(bad(
                entry,
                f("reliability"),
                "must be a number in 0.0..=1.0",
            ));
        }
    };
    Ok(MediumInfo {
        endpoint: Endpoint {
            medium,
            address: BoundedString::try_new(address)
                .map_err(|e| bad(entry, f("address"), e.to_string()))?,
        },
        latency_us,
        reliability_permille,
    })
}

/// Checks `host:port` (host a name, IPv4, or bracketed IPv6).
fn check_address(a: &str) -> Result<(), String> {
    if a.len() > MAX_ADDRESS {
        return Err(format!("longer than {MAX_ADDRESS} bytes"));
    }
    if a.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = a
        .rsplit_once(':')
        .ok_or_else(|| format!("{a:?} is not host:port"))?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(format!("port {port:?} is not 1..=65535")),
    }
    let ok_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !ok_host {
        return Err(format!("host {host:?} is not a hostname or IP address"));
    }
    Ok(())
}
