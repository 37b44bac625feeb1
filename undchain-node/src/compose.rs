//! `testnet --compose`: a testnet of containers. The homes are written as
//! [`crate::testnet`] writes them, each node at a fixed address of one
//! private subnet (no name lookups: the image is `FROM scratch`, and a
//! static glibc binary resolves no names), and `docker-compose.yml` beside
//! them runs every validator from the node image (`undchain-node/docker/`)
//! with its home mounted at [`HOME_IN_CONTAINER`].
//!
//! Node `i` (counting the homes `v0.., s0.., p0.., c0..` in order) sits at
//! the subnet's address `10 + i`, its QUIC endpoint on UDP [`P2P_PORT`]
//! and its API on TCP [`API_PORT`]; inside the container both bind every
//! interface. The validators' APIs are also published on the host's
//! loopback, from [`HOST_API_PORT`] up.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::home::{HomeError, RoleName};
use crate::testnet::{self, Place, TestnetSpec, Written};

/// The nodes' QUIC port (UDP) inside the network.
pub const P2P_PORT: u16 = 26656;
/// The nodes' HTTP API port (TCP) inside the network.
pub const API_PORT: u16 = 26657;
/// The host port (on 127.0.0.1) of the first validator's API; the next
/// validators' follow.
pub const HOST_API_PORT: u16 = 26657;
/// Where a node's home is mounted in its container.
pub const HOME_IN_CONTAINER: &str = "/node";
/// The compose file's name in the output directory.
pub const COMPOSE_FILE: &str = "docker-compose.yml";
/// The image the compose file runs (what `undchain-node/docker/build.sh`
/// tags).
pub const DEFAULT_IMAGE: &str = "undchain-node:latest";
/// The subnet `testnet --compose` uses unless told otherwise.
pub const DEFAULT_SUBNET: &str = "10.186.0.0/24";
/// Host number of node 0 in the subnet (below it: the gateway the engine
/// takes, and room).
pub const FIRST_HOST: u32 = 10;

/// What went wrong writing a testnet of containers.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The subnet is not `a.b.c.d/prefix` with a usable prefix.
    #[error("subnet {given:?}: {why} (expected an IPv4 subnet such as {DEFAULT_SUBNET})")]
    Subnet {
        /// What was given.
        given: String,
        /// What is wrong with it.
        why: String,
    },
    /// More nodes than the subnet has addresses for.
    #[error("{nodes} nodes do not fit in {subnet} (node i takes host {FIRST_HOST} + i)")]
    TooSmall {
        /// Nodes asked for.
        nodes: usize,
        /// The subnet.
        subnet: Subnet,
    },
    /// A home could not be written.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The compose file could not be written.
    #[error("{path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: String,
    },
}

/// An IPv4 subnet, `base/prefix` with the host bits of `base` zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    base: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// The subnet `base/prefix`; the host bits of `base` must be zero and
    /// the prefix within 8..=28 (room for nodes, not the whole space).
    pub fn new(base: Ipv4Addr, prefix: u8) -> Result<Self, String> {
        if !(8..=28).contains(&prefix) {
            return Err(format!("prefix /{prefix} is outside /8../28"));
        }
        let host_bits = u32::MAX >> prefix;
        if u32::from(base) & host_bits != 0 {
            return Err(format!("{base} has host bits set for /{prefix}"));
        }
        Ok(Subnet { base, prefix })
    }

    /// Host number `n` of the subnet, if it is inside and not its
    /// broadcast address.
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - self.prefix);
        (n > 0 && u64::from(n) < size - 1).then(|| Ipv4Addr::from(u32::from(self.base) + n))
    }

    /// The address of node `i` ([`FIRST_HOST`] + `i`).
    pub fn node(&self, i: usize) -> Option<Ipv4Addr> {
        u32::try_from(i)
            .ok()
            .and_then(|i| i.checked_add(FIRST_HOST))
            .and_then(|n| self.host(n))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = ComposeError;

    fn from_str(s: &str) -> Result<Self, ComposeError> {
        let bad = |why: String| ComposeError::Subnet {
            given: s.to_owned(),
            why,
        };
        let (ip, prefix) = s.split_once('/').ok_or_else(|| bad("no /prefix".into()))?;
        let ip: Ipv4Addr = ip.parse().map_err(|e| bad(format!("{ip:?}: {e}")))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| bad(format!("prefix {prefix:?} is not a number")))?;
        Subnet::new(ip, prefix).map_err(bad)
    }
}

/// The container network of a testnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerNet {
    /// The private subnet the nodes sit on.
    pub subnet: Subnet,
    /// The node image.
    pub image: String,
}

impl ContainerNet {
    /// A network on `subnet` running [`DEFAULT_IMAGE`].
    pub fn new(subnet: Subnet) -> Self {
        ContainerNet {
            subnet,
            image: DEFAULT_IMAGE.to_owned(),
        }
    }

    /// Where node `i` is reached (and its API, for a validator).
    pub fn place(&self, nodes: usize, i: usize, role: RoleName) -> Result<Place, ComposeError> {
        let ip = self.subnet.node(i).ok_or(ComposeError::TooSmall {
            nodes,
            subnet: self.subnet,
        })?;
        let api = matches!(role, RoleName::Validator | RoleName::Passive)
            .then(|| SocketAddr::new(ip.into(), API_PORT));
        Ok(Place {
            listen: SocketAddr::new(ip.into(), P2P_PORT),
            api,
            bind_any: true,
        })
    }
}

/// Whether a home of `role` runs as a container (the node runs validators
/// and passive validators).
pub fn runs(role: RoleName) -> bool {
    matches!(role, RoleName::Validator | RoleName::Passive)
}

/// Writes the homes of `spec` under `out` at the addresses of `net`, and
/// `out/docker-compose.yml` running them.
pub fn write(
    out: &Path,
    spec: &TestnetSpec,
    net: &ContainerNet,
) -> Result<Vec<Written>, ComposeError> {
    let roles = [
        (RoleName::Validator, spec.validators),
        (RoleName::Passive, spec.passive),
        (RoleName::Partner, spec.partners),
        (RoleName::Client, spec.clients),
    ];
    let roles: Vec<RoleName> = roles
        .iter()
        .flat_map(|&(r, n)| std::iter::repeat_n(r, n))
        .collect();
    let places = roles
        .iter()
        .enumerate()
        .map(|(i, &r)| net.place(roles.len(), i, r))
        .collect::<Result<Vec<_>, _>>()?;
    let homes = testnet::write_placed(out, spec, |i, _| Ok(places[i]))?;
    let path = out.join(COMPOSE_FILE);
    let write_err = |e: std::io::Error| ComposeError::Write {
        path: path.clone(),
        error: e.to_string(),
    };
    let user = owner(out).map_err(write_err)?;
    std::fs::write(&path, compose_yaml(net, &homes, user)).map_err(write_err)?;
    Ok(homes)
}

/// What to do after `testnet --compose` wrote `out` with block 0
/// `genesis_in_us` from now.
pub fn next_steps(out: &Path, genesis_in_us: u64) -> String {
    let file = out.join(COMPOSE_FILE);
    format!(
        "wrote {}: with the image {DEFAULT_IMAGE} built (`undchain-node/docker/build.sh`), start it within {} (block 0) with `docker-compose -f {} up -d` (or `docker compose`); the validators' APIs are on http://127.0.0.1:{HOST_API_PORT}/ and the next ports",
        file.display(),
        crate::duration::format_us(genesis_in_us),
        file.display(),
    )
}

/// The user and group owning `dir` (the containers run as them, so the
/// files they write in the mounted homes stay the writer's).
#[cfg(unix)]
pub fn owner(dir: &Path) -> std::io::Result<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir)?;
    Ok((m.uid(), m.gid()))
}

/// The user and group owning `dir`: root where the OS has no owners.
#[cfg(not(unix))]
pub fn owner(_dir: &Path) -> std::io::Result<(u32, u32)> {
    Ok((0, 0))
}

/// The compose file (format 2.4, which docker-compose 1.x and `docker
/// compose` both read) running the validators of `homes` on `net` as
/// `user`.
pub fn compose_yaml(net: &ContainerNet, homes: &[Written], user: (u32, u32)) -> String {
    let mut y = String::new();
    y.push_str("# Written by `undchain-node testnet --compose`: one container per validator,\n");
    y.push_str("# each with its home mounted, at a fixed address of a private network.\n");
    y.push_str("# Image: `undchain-node/docker/build.sh` builds it from the static node binary.\n");
    y.push_str(
        "# Start: `docker-compose up -d` here (or `docker compose up -d`) before block 0.\n",
    );
    y.push_str("# Client and partner homes sit on the same subnet and run no container.\n");
    y.push_str("version: \"2.4\"\nservices:\n");
    let mut published = 0u16;
    for h in homes.iter().filter(|h| runs(h.role)) {
        y.push_str(&format!("  {}:\n", h.name));
        y.push_str(&format!("    image: \"{}\"\n", net.image));
        y.push_str(&format!("    user: \"{}:{}\"\n", user.0, user.1));
        y.push_str(&format!(
            "    command: [\"run\", \"--home\", \"{HOME_IN_CONTAINER}\"]\n"
        ));
        y.push_str("    stop_signal: SIGINT\n");
        y.push_str(&format!(
            "    volumes:\n      - \"./{}:{HOME_IN_CONTAINER}\"\n",
            h.name
        ));
        y.push_str(&format!(
            "    networks:\n      undchain:\n        ipv4_address: {}\n",
            h.listen.ip()
        ));
        if h.api.is_some() {
            let port = HOST_API_PORT.saturating_add(published);
            published += 1;
            y.push_str(&format!(
                "    ports:\n      - \"127.0.0.1:{port}:{API_PORT}/tcp\"\n"
            ));
        }
    }
    y.push_str("networks:\n  undchain:\n    driver: bridge\n    ipam:\n      config:\n");
    y.push_str(&format!("        - subnet: \"{}\"\n", net.subnet));
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnet_names_its_node_addresses_and_refuses_what_does_not_fit() {
        let s: Subnet = "10.186.0.0/24".parse().unwrap();
        assert_eq!(s.node(0), Some(Ipv4Addr::new(10, 186, 0, 10)));
        assert_eq!(s.node(244), Some(Ipv4Addr::new(10, 186, 0, 254)));
        assert_eq!(s.node(245), None, "the broadcast address");
        let small: Subnet = "10.1.2.0/28".parse().unwrap();
        assert_eq!(small.node(4), Some(Ipv4Addr::new(10, 1, 2, 14)));
        assert_eq!(small.node(5), None);
        for bad in [
            "10.186.0.1/24",
            "10.186.0.0",
            "10.186.0.0/30",
            "x/24",
            "10.0.0.0/y",
        ] {
            let e = bad.parse::<Subnet>().unwrap_err();
            assert!(matches!(e, ComposeError::Subnet { .. }), "{bad}: {e}");
        }
    }
}
