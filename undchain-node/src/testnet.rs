//! `testnet`: one home per node of a fresh chain, sharing one genesis and
//! one validator list (CometBFT's `testnet` command). The devnet writes its
//! homes with the same function.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use undchain_types::msg::{Endpoint, MediumKind};
use undchain_types::validator_list::MediumInfo;
use undchain_types::{BoundedString, PublicKey, SigningKey, ValidatorBook, ValidatorRecord};

use crate::duration;
use crate::home::{
    BalanceEntry, GenesisEntry, GenesisFile, Home, HomeError, NodeFile, RoleName, seed_to_hex,
};

/// Each client home's opening balance.
pub const CLIENT_BALANCE: u64 = 1_000_000_000;

/// What `testnet` (or the devnet) writes.
#[derive(Debug, Clone)]
pub struct TestnetSpec {
    /// Active validators.
    pub validators: usize,
    /// Passive validators.
    pub passive: usize,
    /// Partner homes.
    pub partners: usize,
    /// Client homes (funded at genesis).
    pub clients: usize,
    /// Block interval, microseconds.
    pub block_interval_us: u64,
    /// Payout period, microseconds.
    pub payout_period_us: u64,
    /// Block 0 starts at this Unix time, microseconds.
    pub genesis_time_us: u64,
    /// The chain id.
    pub chain_id: u32,
    /// The IP every node listens on.
    pub host: std::net::IpAddr,
    /// Most jobs one block may carry (the protocol's default when `None`).
    pub max_block_jobs: Option<u32>,
}

/// One home written.
#[derive(Debug, Clone)]
pub struct Written {
    /// Its directory name under the output directory (`v0`, `p0`, `c0`).
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its role.
    pub role: RoleName,
    /// Its key.
    pub key: SigningKey,
    /// Its listen address.
    pub listen: SocketAddr,
    /// Its HTTP API address (validators only).
    pub api: Option<SocketAddr>,
}

/// A fresh secret seed from the OS (`/dev/urandom`).
pub fn random_seed() -> Result<[u8; 32], HomeError> {
    use std::io::Read;
    let path = Path::new("/dev/urandom");
    let mut seed = [0u8; 32];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| HomeError::Io {
            path: path.to_path_buf(),
            error: e.to_string(),
        })?;
    Ok(seed)
}

/// A UDP port on `host` that is free now (bound and released).
pub fn free_port(host: std::net::IpAddr) -> Result<u16, HomeError> {
    let r = std::net::UdpSocket::bind((host, 0)).and_then(|s| s.local_addr());
    port_of(r, "udp", host)
}

/// A TCP port free on `host` now (for an API address).
pub fn free_tcp_port(host: std::net::IpAddr) -> Result<u16, HomeError> {
    let r = std::net::TcpListener::bind((host, 0)).and_then(|s| s.local_addr());
    port_of(r, "tcp", host)
}

fn port_of(
    r: std::io::Result<SocketAddr>,
    proto: &str,
    host: std::net::IpAddr,
) -> Result<u16, HomeError> {
    r.map(|a| a.port()).map_err(|e| HomeError::Io {
        path: PathBuf::from(format!("{proto} {host}:0")),
        error: e.to_string(),
    })
}

/// Where one node of a testnet is reached, and what its `node.toml` binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The UDP address the others dial (its validator-list medium).
    pub listen: SocketAddr,
    /// Its HTTP API as reached by others (validators only).
    pub api: Option<SocketAddr>,
    /// Bind the ports of `listen` and `api` on every interface rather than
    /// on their addresses: a container's address sits on an interface the
    /// engine removes on a disconnect and adds again on a reconnect.
    pub bind_any: bool,
}

/// Writes the homes of `spec` under `out` (`v0..`: active validators,
/// `s0..`: passive ones, `p0..`: partners, `c0..`: clients), every node
/// on `spec.host` at ports free now.
pub fn write(out: &Path, spec: &TestnetSpec) -> Result<Vec<Written>, HomeError> {
    write_placed(out, spec, |_, role| {
        let api = match role {
            RoleName::Validator | RoleName::Passive => {
                Some(SocketAddr::new(spec.host, free_tcp_port(spec.host)?))
            }
            _ => None,
        };
        Ok(Place {
            listen: SocketAddr::new(spec.host, free_port(spec.host)?),
            api,
            bind_any: false,
        })
    })
}

/// [`write()`] with each node's addresses from `place(index, role)`, index
/// counting the homes in the order of [`write()`]'s groups (`spec.host` is
/// not used).
pub fn write_placed(
    out: &Path,
    spec: &TestnetSpec,
    mut place: impl FnMut(usize, RoleName) -> Result<Place, HomeError>,
) -> Result<Vec<Written>, HomeError> {
    let mut homes = Vec::new();
    let mut binds = Vec::new();
    let groups = [
        ("v", RoleName::Validator, spec.validators),
        ("s", RoleName::Passive, spec.passive),
        ("p", RoleName::Partner, spec.partners),
        ("c", RoleName::Client, spec.clients),
    ];
    for (prefix, role, count) in groups {
        for i in 0..count {
            let name = format!("{prefix}{i}");
            let p = place(homes.len(), role)?;
            binds.push(p.bind_any);
            homes.push(Written {
                api: p.api,
                dir: out.join(&name),
                name,
                role,
                key: SigningKey::from_seed(random_seed()?),
                listen: p.listen,
            });
        }
    }
    let validators: Vec<&Written> = homes
        .iter()
        .filter(|h| matches!(h.role, RoleName::Validator | RoleName::Passive))
        .collect();
    let book = ValidatorBook::from_records(validators.iter().map(|h| record(h)));
    let known = max_known(spec.validators);
    let genesis = GenesisFile {
        chain_id: spec.chain_id,
        chain_owner: SigningKey::from_seed(random_seed()?).public().to_hex(),
        genesis_time_us: spec.genesis_time_us,
        block_interval: duration::format_us(spec.block_interval_us),
        payout_period: duration::format_us(spec.payout_period_us),
        active_seats: spec.validators as u8,
        validators: validators
            .iter()
            .enumerate()
            .map(|(i, h)| GenesisEntry {
                id: h.key.public().to_hex(),
                known: i < known,
            })
            .collect(),
        balances: homes
            .iter()
            .filter(|h| h.role == RoleName::Client)
            .map(|h| BalanceEntry {
                key: h.key.public().to_hex(),
                amount: CLIENT_BALANCE,
            })
            .collect(),
        max_block_jobs: spec.max_block_jobs,
    };
    let any = |a: SocketAddr, bind_any: bool| {
        if bind_any {
            SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), a.port())
        } else {
            a
        }
    };
    for (i, h) in homes.iter().enumerate() {
        let node = NodeFile {
            role: h.role,
            key: seed_to_hex(&h.key.to_seed()),
            listen: any(h.listen, binds[i]).to_string(),
            seed: i as u64 + 1,
            api: h.api.map(|a| any(a, binds[i]).to_string()),
        };
        Home::new(&h.dir).write(&node, &genesis, &book)?;
    }
    Ok(homes)
}

/// Known validators in a fresh chain of `active` seats: the protocol's
/// default known share (44%), as the simulator's genesis has them.
fn max_known(active: usize) -> usize {
    active * 44 / 100
}

fn record(h: &Written) -> ValidatorRecord {
    ValidatorRecord {
        alias: h.name.clone(),
        id: h.key.public(),
        known: false,
        media: vec![MediumInfo {
            endpoint: Endpoint {
                medium: MediumKind::Quic,
                address: BoundedString::truncating(&h.listen.to_string()),
            },
            latency_us: 1_000,
            reliability_permille: 990,
        }],
    }
}

/// The validators' endpoints from a validator list (their first QUIC or
/// UDP medium).
pub fn endpoints(book: &ValidatorBook) -> std::collections::BTreeMap<PublicKey, Endpoint> {
    book.iter()
        .filter_map(|r| {
            r.media
                .iter()
                .find(|m| matches!(m.endpoint.medium, MediumKind::Quic | MediumKind::Udp))
                .map(|m| (r.id, m.endpoint.clone()))
        })
        .collect()
}
