//! A node's home directory: what `init` and `testnet` write and `run`
//! reads, and the lock that keeps a second process off it.
//!
//! ```text
//! HOME/node.toml        role, secret key, listen address, seed
//! HOME/genesis.toml     the chain's genesis (identical on every node)
//! HOME/validators.toml  the bootstrap validator list (addresses)
//! HOME/node.lock        held (an OS file lock) while a process runs here
//! HOME/data/node.redb   the node's database (module `store`)
//! ```
//!
//! Every file is TOML with unknown fields refused, and every error names
//! the file and the field.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use undchain_consensus::TimeoutConfig;
use undchain_roles::{ConfigError, Genesis, GenesisValidator, NodeConfig, ValidatorTiming};
use undchain_types::{
    BlockTime, ChainId, ChainParams, PublicKey, SigningKey, TokenAmount, ValidatorBook,
    ValidatorListError,
};

use crate::duration;

/// A node's role, as `init --role` and `node.toml` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// An active validator of the genesis set.
    Validator,
    /// A passive validator (a genesis validator beyond the active seats).
    Passive,
    /// A partner (provides utility).
    Partner,
    /// A client (asks for utility).
    Client,
}

impl RoleName {
    /// The name as written in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleName::Validator => "validator",
            RoleName::Passive => "passive",
            RoleName::Partner => "partner",
            RoleName::Client => "client",
        }
    }
}

/// `node.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// The node's role.
    pub role: RoleName,
    /// The secret key's seed, 64 hex digits (keep this file private).
    pub key: String,
    /// The UDP address the node's QUIC endpoint binds.
    pub listen: String,
    /// Seed of the node's randomness.
    #[serde(default)]
    pub seed: u64,
    /// The TCP address the HTTP API, metrics and explorer bind
    /// (`127.0.0.1:26657`); none: no API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
}

/// One genesis validator, in seat order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisEntry {
    /// Its key, 64 hex digits.
    pub id: String,
    /// Appointed by the chain owner.
    #[serde(default)]
    pub known: bool,
}

/// One opening balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceEntry {
    /// The account's key, 64 hex digits.
    pub key: String,
    /// Tokens.
    pub amount: u64,
}

/// `genesis.toml`: the parameters an operator sets (the rest are the
/// protocol's defaults), the validators in seat order, the balances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    /// The chain's id.
    pub chain_id: u32,
    /// The chain owner's key, 64 hex digits.
    pub chain_owner: String,
    /// Block 0 starts at this Unix time, microseconds.
    pub genesis_time_us: u64,
    /// Block interval (`2s`, `500ms`).
    pub block_interval: String,
    /// Payout period (`4h`, `1m`).
    pub payout_period: String,
    /// Active seats; validators after them are passive.
    pub active_seats: u8,
    /// The genesis validators, in seat order.
    pub validators: Vec<GenesisEntry>,
    /// Opening balances.
    #[serde(default)]
    pub balances: Vec<BalanceEntry>,
    /// Most jobs one block may carry (the protocol's default, 4,096, when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_block_jobs: Option<u32>,
}

/// What is wrong with a home.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: String,
    },
    /// A file of the home is missing.
    #[error("{path} does not exist: is {home} a node home (written by `init` or `testnet`)?")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The home.
        home: PathBuf,
    },
    /// Not valid TOML, or a field unknown, missing or of the wrong type.
    #[error("{path}: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the field and the line).
        message: String,
    },
    /// A field that parsed but holds a value that cannot work.
    #[error("{path}: field `{field}`: {message}")]
    Field {
        /// The file.
        path: PathBuf,
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The validator list was refused.
    #[error("{path}: {error}")]
    ValidatorList {
        /// The file.
        path: PathBuf,
        /// Which entry and field.
        error: ValidatorListError,
    },
    /// The genesis cannot form a chain.
    #[error("{path}: {error}")]
    Genesis {
        /// The file.
        path: PathBuf,
        /// Why.
        error: ConfigError,
    },
    /// Another process runs on this home.
    #[error(
        "{path} is locked: another undchain-node process runs on this home (stop it, or use another --home)"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
}

/// A home that is held: the OS lock on `node.lock`, released when this is
/// dropped or the process dies (even by `kill -9`).
#[derive(Debug)]
pub struct HomeLock {
    _file: File,
    path: PathBuf,
}

impl HomeLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Everything `run` reads from a home.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The role.
    pub role: RoleName,
    /// The identity key.
    pub key: SigningKey,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where the HTTP API binds, if it runs.
    pub api: Option<SocketAddr>,
    /// The randomness seed.
    pub seed: u64,
    /// The genesis.
    pub genesis: Genesis,
    /// The validator list.
    pub book: ValidatorBook,
}

impl Loaded {
    /// The node core's configuration (timing for a network whose one-way
    /// delays are a few milliseconds).
    pub fn node_config(&self) -> NodeConfig {
        let mut timing = ValidatorTiming::for_delay(&self.genesis.params, ONE_WAY_DELAY_US);
        timing.sync.bootstrap_target_spread_us = 20 * ONE_WAY_DELAY_US;
        // Agreement waits and re-sends follow the block interval: under
        // load a node's own queue, not the loopback, is its delay.
        let block_us = self.genesis.params.block_interval_us;
        timing.timeouts = timing
            .timeouts
            .max(TimeoutConfig::for_block_interval(block_us));
        // A reconciliation or fetch waits a quarter block before it asks
        // again (a session is dropped after two quiet waits).
        timing.fetch_retry_us = timing.fetch_retry_us.max(block_us / 4);
        NodeConfig {
            key: self.key.clone(),
            genesis: self.genesis.clone(),
            timing,
            seed: self.seed,
            joining: None,
        }
    }
}

/// The one-way delay the node's timing assumes, microseconds.
pub const ONE_WAY_DELAY_US: u64 = 5_000;

/// A node home directory.
#[derive(Debug, Clone)]
pub struct Home {
    dir: PathBuf,
}

fn io(path: &Path, e: impl std::fmt::Display) -> HomeError {
    HomeError::Io {
        path: path.to_path_buf(),
        error: e.to_string(),
    }
}

fn field(path: &Path, field: impl Into<String>, message: impl std::fmt::Display) -> HomeError {
    HomeError::Field {
        path: path.to_path_buf(),
        field: field.into(),
        message: message.to_string(),
    }
}

/// A 32-byte seed from 64 hex digits.
pub fn seed_from_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// 64 hex digits of a 32-byte seed.
pub fn seed_to_hex(seed: &[u8; 32]) -> String {
    seed.iter().map(|b| format!("{b:02x}")).collect()
}

impl Home {
    /// The home at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Home { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `node.toml`.
    pub fn node_file(&self) -> PathBuf {
        self.dir.join("node.toml")
    }

    /// `genesis.toml`.
    pub fn genesis_file(&self) -> PathBuf {
        self.dir.join("genesis.toml")
    }

    /// `validators.toml`.
    pub fn validators_file(&self) -> PathBuf {
        self.dir.join("validators.toml")
    }

    /// `data/node.redb`.
    pub fn db_file(&self) -> PathBuf {
        self.dir.join("data").join("node.redb")
    }

    /// `node.lock`.
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join("node.lock")
    }

    /// Takes the home's lock, or says which file another process holds.
    pub fn lock(&self) -> Result<HomeLock, HomeError> {
        let path = self.lock_file();
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        // An OS lock (flock): released by the kernel when the process
        // dies, so a killed node leaves no stale lock behind.
        #[allow(clippy::incompatible_msrv)]
        match file.try_lock() {
            Ok(()) => Ok(HomeLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(HomeError::Locked { path }),
            Err(std::fs::TryLockError::Error(e)) => Err(io(&path, e)),
        }
    }

    /// Writes the home's three files (creating the directory).
    pub fn write(
        &self,
        node: &NodeFile,
        genesis: &GenesisFile,
        validators: &ValidatorBook,
    ) -> Result<(), HomeError> {
        std::fs::create_dir_all(self.dir.join("data")).map_err(|e| io(&self.dir, e))?;
        let put =
            |path: PathBuf, text: String| std::fs::write(&path, text).map_err(|e| io(&path, e));
        let toml = |path: &Path, v: &dyn erased::Ser| {
            v.to_toml().map_err(|e| HomeError::Toml {
                path: path.to_path_buf(),
                message: e,
            })
        };
        let nf = self.node_file();
        put(nf.clone(), toml(&nf, node)?)?;
        let gf = self.genesis_file();
        put(gf.clone(), toml(&gf, genesis)?)?;
        put(self.validators_file(), validators.to_toml())?;
        Ok(())
    }

    fn read(&self, path: &Path) -> Result<String, HomeError> {
        if !path.exists() {
            return Err(HomeError::Missing {
                path: path.to_path_buf(),
                home: self.dir.clone(),
            });
        }
        std::fs::read_to_string(path).map_err(|e| io(path, e))
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<T, HomeError> {
        parse_text(path, &self.read(path)?)
    }

    /// Reads `node.toml` as written.
    pub fn node_file_contents(&self) -> Result<NodeFile, HomeError> {
        self.parse(&self.node_file())
    }

    /// Reads `genesis.toml` as written.
    pub fn genesis_file_contents(&self) -> Result<GenesisFile, HomeError> {
        self.parse(&self.genesis_file())
    }

    /// Reads and checks every file of the home.
    pub fn load(&self) -> Result<Loaded, HomeError> {
        let node = self.read(&self.node_file())?;
        let validators = self.read(&self.validators_file())?;
        let genesis = self.read(&self.genesis_file())?;
        self.load_texts(&node, &genesis, &validators)
    }

    /// Checks the texts of the home's three files (`node.toml`,
    /// `genesis.toml`, `validators.toml`) as [`Self::load`] does after
    /// reading them; touches no file (errors name this home's paths).
    pub fn load_texts(
        &self,
        node: &str,
        genesis: &str,
        validators: &str,
    ) -> Result<Loaded, HomeError> {
        let nf = self.node_file();
        let node: NodeFile = parse_text(&nf, node)?;
        let key = seed_from_hex(&node.key)
            .map(SigningKey::from_seed)
            .ok_or_else(|| field(&nf, "key", "expected 64 hex digits (a 32-byte secret seed)"))?;
        let listen: SocketAddr = node.listen.parse().map_err(|e| {
            field(
                &nf,
                "listen",
                format!("{:?}: {e} (expected ip:port)", node.listen),
            )
        })?;
        let api = match &node.api {
            Some(a) => Some(
                a.parse::<SocketAddr>()
                    .map_err(|e| field(&nf, "api", format!("{a:?}: {e} (expected ip:port)")))?,
            ),
            None => None,
        };
        let vf = self.validators_file();
        let book = ValidatorBook::parse(validators)
            .map_err(|error| HomeError::ValidatorList { path: vf, error })?;
        let genesis = self.genesis(genesis, &book)?;
        Ok(Loaded {
            role: node.role,
            key,
            listen,
            api,
            seed: node.seed,
            genesis,
            book,
        })
    }

    fn genesis(&self, text: &str, book: &ValidatorBook) -> Result<Genesis, HomeError> {
        let gf = self.genesis_file();
        let g: GenesisFile = parse_text(&gf, text)?;
        let key = |f: String, hex: &str| {
            PublicKey::from_hex(hex).map_err(|e| field(&gf, f, format!("{hex:?}: {e}")))
        };
        let owner = key("chain_owner".into(), &g.chain_owner)?;
        let mut params = ChainParams::new(ChainId(g.chain_id), owner, BlockTime(g.genesis_time_us));
        params.block_interval_us =
            duration::parse_us(&g.block_interval).map_err(|e| field(&gf, "block_interval", e))?;
        params.payout_period_us =
            duration::parse_us(&g.payout_period).map_err(|e| field(&gf, "payout_period", e))?;
        params.active_seats = g.active_seats;
        if let Some(n) = g.max_block_jobs {
            params.max_block_jobs = n;
        }
        params.retry_timeout_us = params.retry_timeout_us.max(params.block_interval_us);
        params.ack_fanout = params.ack_fanout.min(g.active_seats.max(1));
        let mut validators = Vec::new();
        for (i, v) in g.validators.iter().enumerate() {
            let id = key(format!("validators[{i}].id"), &v.id)?;
            if !book.contains(&id) {
                return Err(field(
                    &gf,
                    format!("validators[{i}].id"),
                    format!("{} is not in {}", v.id, self.validators_file().display()),
                ));
            }
            validators.push(GenesisValidator {
                key: id,
                known: v.known,
            });
        }
        let mut balances = Vec::new();
        for (i, b) in g.balances.iter().enumerate() {
            balances.push((
                key(format!("balances[{i}].key"), &b.key)?,
                TokenAmount(b.amount),
            ));
        }
        let genesis = Genesis {
            params,
            validators,
            balances,
            co_chains: Vec::new(),
        };
        genesis
            .validate()
            .map_err(|error| HomeError::Genesis { path: gf, error })?;
        Ok(genesis)
    }
}

/// `text`, the contents of `path`, as TOML of `T`.
fn parse_text<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, HomeError> {
    toml::from_str(text).map_err(|e| HomeError::Toml {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_owned(),
    })
}

/// The fuzz entry point of `fuzz/fuzz_targets/home_files.rs` (and of its
/// seed-corpus test): `data` split at `0xff` bytes (never part of UTF-8)
/// into the texts of `node.toml`, `genesis.toml` and `validators.toml`
/// (lossily made UTF-8), checked by [`Home::load_texts`]. Never panics on
/// any input; it panics only on a bug: a `node.toml` or `genesis.toml` that
/// parses but does not survive being written back (as `init` writes it)
/// and parsed again unchanged, or a home that loads but whose files,
/// written back, load into another node.
pub fn fuzz_home_files(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == 0xff).map(String::from_utf8_lossy);
    let mut next = || parts.next().unwrap_or_default();
    let (node, genesis, validators) = (next(), next(), next());
    let home = Home::new("fuzz-home");
    fn again<T>(text: &str) -> Option<(T, String)>
    where
        T: serde::de::DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
    {
        let v: T = toml::from_str(text).ok()?;
        let written = toml::to_string(&v).expect("a parsed file renders as TOML");
        let back: T = toml::from_str(&written)
            .unwrap_or_else(|e| panic!("written file is refused: {e}\n{written}"));
        assert_eq!(back, v, "write then parse changes the file");
        Some((v, written))
    }
    let node_again = again::<NodeFile>(&node);
    let genesis_again = again::<GenesisFile>(&genesis);
    let loaded = match home.load_texts(&node, &genesis, &validators) {
        Ok(l) => l,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let (Some((_, n)), Some((_, g))) = (node_again, genesis_again) else {
        panic!("a home loaded from files that do not parse");
    };
    let back = home
        .load_texts(&n, &g, &loaded.book.to_toml())
        .unwrap_or_else(|e| panic!("the written home does not load: {e}"));
    assert_eq!(back.role, loaded.role);
    assert_eq!(back.key.public(), loaded.key.public());
    assert_eq!(
        (back.listen, back.api, back.seed),
        (loaded.listen, loaded.api, loaded.seed)
    );
    assert_eq!(back.genesis, loaded.genesis);
    assert_eq!(back.book, loaded.book);
}

/// TOML rendering of the home's files without naming each type.
mod erased {
    /// A value that renders as TOML.
    pub trait Ser {
        /// The TOML text, or the serializer's message.
        fn to_toml(&self) -> Result<String, String>;
    }

    impl<T: serde::Serialize> Ser for T {
        fn to_toml(&self) -> Result<String, String> {
            toml::to_string(self).map_err(|e| e.to_string())
        }
    }
}
