//! The UndChain reference node's command line (DESIGN.md "The reference
//! node": CLI). Every command has `--help`; every error names the file,
//! field or flag that is wrong.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use undchain_node::devnet::{self, DevnetConfig};
use undchain_node::home::{Home, HomeError, NodeFile, RoleName, seed_from_hex, seed_to_hex};
use undchain_node::runtime::{self, NodeSetup};
use undchain_node::store::RedbStore;
use undchain_node::testnet::{self, TestnetSpec};
use undchain_node::{client, compose};
use undchain_node::{duration, load::unix_us};
use undchain_roles::Storage;
use undchain_types::SigningKey;

#[derive(Parser)]
#[command(name = "undchain-node", version, about = "The UndChain reference node")]
struct Cli {
    /// Log format on stderr (filter with RUST_LOG, e.g. RUST_LOG=undchain_node=debug).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn duration_us(s: &str) -> Result<u64, String> {
    duration::parse_us(s).map_err(|e| e.to_string())
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a fresh identity: its secret seed and public key.
    Keygen,
    /// Write a node home: node.toml with a fresh key (and the validator
    /// list and genesis, when given).
    Init {
        /// The home directory to write.
        #[arg(long)]
        home: PathBuf,
        /// The node's role.
        #[arg(long, value_enum)]
        role: RoleName,
        /// The validator list (TOML) to copy into the home.
        #[arg(long)]
        validators: Option<PathBuf>,
        /// The genesis (TOML, as `testnet` writes it) to copy into the home.
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// The UDP address to listen on.
        #[arg(long, default_value = "0.0.0.0:7100")]
        listen: String,
        /// Use this secret seed (64 hex digits) instead of a fresh key.
        #[arg(long)]
        key: Option<String>,
        /// The TCP address of the HTTP API, metrics and explorer (e.g. 127.0.0.1:26657).
        #[arg(long)]
        api: Option<String>,
    },
    /// Run the node of a home until Ctrl-C.
    Run {
        /// The node's home (written by `init` or `testnet`).
        #[arg(long)]
        home: PathBuf,
        /// Serve the HTTP API, metrics and explorer here (ip:port), instead
        /// of node.toml's `api`; `off` serves none.
        #[arg(long)]
        api: Option<String>,
    },
    /// Show a stopped node's stored state: height, last block time, round,
    /// open jobs, payout period.
    Status {
        /// The node's home.
        #[arg(long)]
        home: PathBuf,
    },
    /// Write one home per node of a new chain (run each with `run --home DIR/<name>`).
    Testnet {
        /// Active validators.
        #[arg(long = "v")]
        validators: usize,
        /// Passive validators.
        #[arg(long, default_value_t = 0)]
        passive: usize,
        /// Partner homes.
        #[arg(long, default_value_t = 0)]
        partners: usize,
        /// Client homes (funded at genesis).
        #[arg(long, default_value_t = 1)]
        clients: usize,
        /// The output directory.
        #[arg(long = "o")]
        out: PathBuf,
        /// Block interval.
        #[arg(long, default_value = "1s", value_parser = duration_us)]
        block_interval: u64,
        /// Payout period.
        #[arg(long, default_value = "4h", value_parser = duration_us)]
        payout_period: u64,
        /// Most jobs one block may carry (default: the protocol's 4096).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        max_block_jobs: Option<u32>,
        /// Block 0 starts this long after now (the nodes must be started by then to agree on the clock).
        #[arg(long, default_value = "10s", value_parser = duration_us)]
        genesis_in: u64,
        /// Also write DIR/docker-compose.yml running the validators as containers of the node image, each node at a fixed address of `--subnet`.
        #[arg(long)]
        compose: bool,
        /// The private IPv4 subnet of `--compose` (node i at host 10 + i).
        #[arg(long, default_value = undchain_node::compose::DEFAULT_SUBNET)]
        subnet: String,
    },
    /// Act as the client of a client home (client story) against its chain.
    Client {
        /// The client's home (written by `init --role client` or `testnet`).
        #[arg(long)]
        home: PathBuf,
        #[command(subcommand)]
        action: ClientCmd,
    },
    /// Run a whole local network in this process: validators, clients, load.
    Devnet {
        /// Active validators.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Passive validators.
        #[arg(long, default_value_t = 0)]
        passive: usize,
        /// Partner homes (written; no partner node runs yet: the load clients countersign receipts as scripted partners).
        #[arg(long, default_value_t = 0)]
        partners: usize,
        /// Clients sending the load.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Stop after this many blocks (default: run until Ctrl-C).
        #[arg(long)]
        blocks: Option<u64>,
        /// Block interval.
        #[arg(long, default_value = "1s", value_parser = duration_us)]
        block_interval: u64,
        /// Payout period (short for demos).
        #[arg(long, default_value = "1m", value_parser = duration_us)]
        payout_period: u64,
        /// Most jobs one block may carry (default: the protocol's 4096).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        max_block_jobs: Option<u32>,
        /// Client requests per second, all clients together.
        #[arg(long, default_value_t = 20.0)]
        load: f64,
        /// The data directory.
        #[arg(long, default_value = "devnet-data")]
        home: PathBuf,
        /// Delete the data directory first (otherwise the devnet resumes).
        #[arg(long)]
        reset: bool,
        /// The banner goes to stderr; the last stdout line is one JSON object.
        #[arg(long)]
        json: bool,
        /// Serve no HTTP API, metrics or explorer.
        #[arg(long)]
        no_api: bool,
    },
    /// The seeded fault campaign: the whole network simulated over many
    /// seeds under faults and Byzantine validators; the last line sums up,
    /// and any failing seed makes the exit status non-zero.
    Sim(undchain_node::sim::SimArgs),
}

#[derive(Subcommand)]
enum ClientCmd {
    /// Ask for utility: the signed request goes to the three lowest-latency
    /// active validators (then to the rest, if fewer than f + 1 acknowledge
    /// it in half the wait); prints `job=<id> block=<n> acks=<k>/<f+1>`
    /// once f + 1 acknowledged it.
    Request {
        /// The utility.
        #[arg(long, value_enum)]
        kind: KindArg,
        /// Units wanted (bytes stored, compute seconds, access minutes).
        #[arg(long)]
        units: u64,
        /// Most paid per unit, in tokens (the escrow is units x price plus the fee).
        #[arg(long, default_value_t = 1)]
        price: u64,
        /// How long to wait for f + 1 acknowledgements.
        #[arg(long, default_value = "10s", value_parser = duration_us)]
        wait: u64,
    },
    /// Where a job was committed, checked: each block's closed job file from
    /// every active validator, counted when its entries' Merkle root is the
    /// root it names, settled by f + 1 equal roots; prints
    /// `job=<id> block=<n> state=<state> fee=<tokens> job_root=<hex> checked=<k>/<f+1>`.
    Status {
        /// The job id (64 hex digits, as `request` prints it).
        job: String,
        /// The first block to look in (the block `request` printed).
        #[arg(long)]
        block: u64,
        /// How many blocks from `--block` to look in.
        #[arg(long, default_value_t = 4)]
        blocks: u64,
        /// How long to wait for each block's file.
        #[arg(long, default_value = "10s", value_parser = duration_us)]
        wait: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Storage,
    Computation,
    Access,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn runtime() -> Result<tokio::runtime::Runtime, std::io::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn copy_into(from: &PathBuf, to: PathBuf, flag: &str) -> Res {
    std::fs::copy(from, &to).map_err(|e| format!("{flag} {}: {e}", from.display()))?;
    Ok(())
}

fn run(cmd: Cmd) -> Res {
    match cmd {
        Cmd::Sim(args) => {
            undchain_node::sim::run(&args, &mut std::io::stdout().lock())?;
        }
        Cmd::Keygen => {
            let seed = testnet::random_seed()?;
            let key = SigningKey::from_seed(seed);
            println!("secret {}", seed_to_hex(&seed));
            println!("public {}", key.public().to_hex());
        }
        Cmd::Init {
            home,
            role,
            validators,
            genesis,
            listen,
            key,
            api,
        } => {
            let seed = match key {
                Some(k) => seed_from_hex(&k).ok_or("--key: expected 64 hex digits")?,
                None => testnet::random_seed()?,
            };
            listen
                .parse::<std::net::SocketAddr>()
                .map_err(|e| format!("--listen {listen:?}: {e} (expected ip:port)"))?;
            if let Some(a) = &api {
                a.parse::<std::net::SocketAddr>()
                    .map_err(|e| format!("--api {a:?}: {e} (expected ip:port)"))?;
            }
            let h = Home::new(&home);
            std::fs::create_dir_all(home.join("data"))
                .map_err(|e| format!("--home {}: {e}", home.display()))?;
            if h.node_file().exists() {
                return Err(format!(
                    "{} exists: this home is initialised already",
                    h.node_file().display()
                )
                .into());
            }
            let node = NodeFile {
                role,
                key: seed_to_hex(&seed),
                listen,
                seed: u64::from_le_bytes(seed[..8].try_into()?),
                api,
            };
            std::fs::write(h.node_file(), toml::to_string(&node)?)?;
            if let Some(v) = validators {
                let text = std::fs::read_to_string(&v)
                    .map_err(|e| format!("--validators {}: {e}", v.display()))?;
                undchain_types::ValidatorBook::parse(&text)
                    .map_err(|e| format!("--validators {}: {e}", v.display()))?;
                copy_into(&v, h.validators_file(), "--validators")?;
            }
            if let Some(g) = genesis {
                copy_into(&g, h.genesis_file(), "--genesis")?;
            }
            println!(
                "wrote {} (public key {})",
                h.node_file().display(),
                SigningKey::from_seed(seed).public().to_hex()
            );
        }
        Cmd::Run { home, api } => run_node(Home::new(home), api)?,
        Cmd::Client { home, action } => client_cmd(Home::new(home), action)?,
        Cmd::Status { home } => status(Home::new(home))?,
        Cmd::Testnet {
            validators,
            passive,
            partners,
            clients,
            out,
            block_interval,
            payout_period,
            max_block_jobs,
            genesis_in,
            compose,
            subnet,
        } => {
            if validators == 0 || validators > 10 {
                return Err(format!("--v {validators}: must be 1..=10").into());
            }
            let spec = TestnetSpec {
                validators,
                passive,
                partners,
                clients,
                block_interval_us: block_interval,
                payout_period_us: payout_period,
                genesis_time_us: unix_us() + genesis_in,
                chain_id: 1,
                host: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                max_block_jobs,
            };
            let written = if compose {
                let net = compose::ContainerNet::new(subnet.parse()?);
                compose::write(&out, &spec, &net)?
            } else {
                testnet::write(&out, &spec)?
            };
            for h in written {
                println!(
                    "{:<4} {:<9} {}  {}  api {}  {}",
                    h.name,
                    h.role.as_str(),
                    h.key.public().to_hex(),
                    h.listen,
                    h.api.map_or("none".to_owned(), |a| a.to_string()),
                    h.dir.display()
                );
            }
            if compose {
                println!("{}", compose::next_steps(&out, genesis_in));
            }
        }
        Cmd::Devnet {
            validators,
            passive,
            partners,
            clients,
            blocks,
            block_interval,
            payout_period,
            max_block_jobs,
            load,
            home,
            reset,
            json,
            no_api,
        } => {
            if validators == 0 || validators > 10 {
                return Err(format!("--validators {validators}: must be 1..=10").into());
            }
            if blocks == Some(0) {
                return Err("--blocks 0: must be positive".into());
            }
            if !(load >= 0.0 && load.is_finite()) {
                return Err(format!("--load {load}: must be a rate >= 0").into());
            }
            let cfg = DevnetConfig {
                validators,
                passive,
                partners,
                clients,
                blocks,
                block_interval_us: block_interval,
                payout_period_us: payout_period,
                max_block_jobs,
                load,
                home,
                reset,
                json,
                api: !no_api,
            };
            let interval = cfg.block_interval_us;
            let summary = runtime()?.block_on(devnet::run(cfg))?;
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!(
                    "devnet: {} blocks (height {}), {} requests sent, {} acknowledged, {} committed, {} lost; settled {} completed, {} partial, {} tokens paid; commit latency p50 {:.0} ms, p99 {:.0} ms; {:.1} jobs/s; safety violations {}",
                    summary.blocks,
                    summary.height,
                    summary.jobs,
                    summary.acked,
                    summary.committed,
                    summary.lost,
                    summary.completed,
                    summary.partial,
                    summary.paid,
                    summary.commit_latency_ms_p50,
                    summary.commit_latency_ms_p99,
                    summary.jobs_per_s,
                    summary.safety_violations
                );
            }
            if summary.stalled {
                return Err(format!(
                    "the devnet stalled at height {}: no block committed for {:?}",
                    summary.height,
                    devnet::stall_after(interval)
                )
                .into());
            }
        }
    }
    Ok(())
}

fn run_node(home: Home, api: Option<String>) -> Res {
    let loaded = home.load()?;
    let api = match api.as_deref() {
        None => loaded.api,
        Some("off") => None,
        Some(a) => Some(
            a.parse::<std::net::SocketAddr>()
                .map_err(|e| format!("--api {a:?}: {e} (expected ip:port or off)"))?,
        ),
    };
    if !matches!(loaded.role, RoleName::Validator | RoleName::Passive) {
        return Err(format!(
            "{}: role {} has no machine to run yet (the client and partner machines come with issue 16)",
            home.node_file().display(),
            loaded.role.as_str()
        )
        .into());
    }
    let lock = home.lock()?;
    let store = RedbStore::open(&home.db_file())?;
    let rt = runtime()?;
    rt.block_on(async {
        let setup = NodeSetup {
            cfg: loaded.node_config(),
            listen: loaded.listen,
            peers: testnet::endpoints(&loaded.book),
            store,
            loopback: loaded.listen.ip().is_loopback(),
            api,
        };
        let handle = runtime::start(setup, None).await?;
        eprintln!(
            "undchain-node {} {} listening on {} (home {}, lock {}, from height {})",
            loaded.role.as_str(),
            handle.id.to_hex(),
            handle.addr,
            home.dir().display(),
            lock.path().display(),
            handle.restored_height.0
        );
        if let Some(a) = handle.api_addr {
            eprintln!(
                "explorer http://{a}/  (API: http://{a}/openapi.json, metrics: http://{a}/metrics)"
            );
        }
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r?; handle.stop().await?; }
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    drop(lock);
    Ok(())
}

fn status(home: Home) -> Res {
    let loaded = home.load()?;
    let _lock = home.lock().map_err(|e| match e {
        HomeError::Locked { path } => format!(
            "{} is locked: the node is running; status reads the database of a stopped node",
            path.display()
        ),
        e => e.to_string(),
    })?;
    let store = RedbStore::open(&home.db_file())?;
    let stored = store.load()?;
    let params = &loaded.genesis.params;
    let height = stored.next_height();
    println!("home        {}", home.dir().display());
    println!("role        {}", loaded.role.as_str());
    println!("id          {}", loaded.key.public().to_hex());
    println!("height      {} (next block to decide)", height.0);
    if let Some(last) = stored.blocks.last() {
        let t = last.block.header.time.0;
        println!(
            "block time  {t} us (Unix) of block {}",
            last.block.header.number.0
        );
    }
    if let Some(c) = stored.time_correction {
        println!("offset      {c} us (agreed time = local + offset)");
    }
    if let Some(c) = &stored.consensus {
        println!(
            "round       {} at height {}",
            c.round_state.round, c.round_state.height.0
        );
    }
    println!(
        "open jobs   {} (filed, not yet committed)",
        stored.accepted.len()
    );
    println!(
        "period      {} (payout period of height {})",
        params.period_of(height).0,
        height.0
    );
    println!(
        "peers       {} validators in {}",
        loaded.book.len(),
        home.validators_file().display()
    );
    match loaded.api {
        Some(a) => println!("api         http://{a}/ (when running)"),
        None => println!("api         none (node.toml names no `api`)"),
    }
    Ok(())
}

fn client_cmd(home: Home, action: ClientCmd) -> Res {
    let loaded = home.load()?;
    match action {
        ClientCmd::Request {
            kind,
            units,
            price,
            wait,
        } => {
            let kind = match kind {
                KindArg::Storage => undchain_types::UtilityKind::Storage,
                KindArg::Computation => undchain_types::UtilityKind::Computation,
                KindArg::Access => undchain_types::UtilityKind::Access,
            };
            let spec = client::RequestSpec {
                kind,
                units,
                max_price_per_unit: undchain_types::TokenAmount(price),
                wait: std::time::Duration::from_micros(wait),
            };
            let acked = runtime()?.block_on(client::request(&loaded, &spec))?;
            let block = acked.block().map_or(0, |b| b.0);
            println!(
                "job={} block={block} acks={}/{}",
                acked.job.0.to_hex(),
                acked.acks.len(),
                acked.needed
            );
        }
        ClientCmd::Status {
            job,
            block,
            blocks,
            wait,
        } => {
            let id = undchain_types::Hash32::from_hex(&job)
                .map(undchain_types::JobId)
                .ok_or_else(|| format!("JOB {job:?}: expected 64 hex digits"))?;
            let s = runtime()?.block_on(client::status(
                &loaded,
                id,
                undchain_types::BlockNumber(block),
                blocks,
                std::time::Duration::from_micros(wait),
            ))?;
            println!(
                "job={} block={} state={:?} fee={} job_root={} checked={}/{}",
                s.entry.id.0.to_hex(),
                s.block.0,
                s.entry.state,
                s.entry.fee.0,
                s.root.to_hex(),
                s.agreeing,
                s.needed
            );
        }
    }
    Ok(())
}
