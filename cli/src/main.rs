//! The `switchboard` binary: the message server (`serve`), a live demo
//! cluster (`demo`), and thin commands over the client library (`members`,
//! `watch`, `send`, `request`).
//!
//! Command-line parsing, settings resolution (flags and `SWITCHBOARD_*`
//! variables over the TOML file over embedded defaults) and the commands.

mod bench;
mod demo;
mod members;
mod print;
mod serve;
mod tools;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use switchboard_client::{AddressError, MemberConfig};
use switchboard_core::auth::Secret;
use switchboard_runtime::secret::{self, SecretError};
use switchboard_server::config::{self, ConfigError, FileConfig};
use switchboard_server::ServerError;

/// Switchboard: a cluster communication manager.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
pub(crate) struct Cli {
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info`, `switchboard_server=debug`).
    #[arg(long, env = "SWITCHBOARD_LOG", default_value = "info", global = true)]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the message server.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Runtime threads. 1 (the default) runs the state machine and every
        /// connection on one thread: no wake-up crosses CPUs on the data
        /// path; more threads spread the sockets' reads and writes.
        #[arg(long, env = "SWITCHBOARD_THREADS", default_value_t = 1)]
        threads: usize,
    },
    /// Start a server and a small cluster on loopback and show live traffic.
    Demo {
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// List the members with their load data (GET /members on the external port).
    Members {
        #[command(flatten)]
        common: Common,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Join as a member and print every cluster event and message.
    Watch {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        who: Identity,
    },
    /// Send one message and wait for its ack (or outcome).
    Send {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        who: Identity,
        /// Address: instance/process, id:N, instance:NAME, group:NAME, anycast:NAME, all.
        #[arg(long)]
        to: String,
        /// Wait for the delivery outcome instead of the ack.
        #[arg(long)]
        confirm: bool,
        /// The payload.
        payload: String,
    },
    /// Run the benchmark workloads (W1–W5) against Switchboard and, when
    /// installed, nats-server and redis-server, plus a bare relay; print the
    /// ratios.
    Bench(bench::BenchArgs),
    /// Run the bare relay that `bench` measures as the physical limit
    /// (started by `bench` itself).
    #[command(hide = true)]
    BenchRelay {
        /// Listen address.
        listen: SocketAddr,
    },
    /// Send a request and print the reply.
    Request {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        who: Identity,
        /// Address: instance/process, id:N, instance:NAME, group:NAME, anycast:NAME, all.
        #[arg(long)]
        to: String,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
        /// The payload.
        payload: String,
    },
}

/// Settings shared by every command that talks to a server.
#[derive(Debug, Clone, Args)]
pub(crate) struct Common {
    /// TOML config file.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Internal (member) address [default: 127.0.0.1:3900].
    #[arg(long, env = "SWITCHBOARD_INTERNAL")]
    pub internal: Option<String>,
    /// External (HTTP) address [default: 127.0.0.1:8100].
    #[arg(long, env = "SWITCHBOARD_EXTERNAL")]
    pub external: Option<String>,
    /// Cluster secret file [default: $XDG_STATE_HOME/switchboard/secret or ./.switchboard/secret].
    #[arg(long, env = "SWITCHBOARD_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Cluster name [default: switchboard].
    #[arg(long, env = "SWITCHBOARD_CLUSTER")]
    pub cluster: Option<String>,
}

/// Who a CLI member is.
#[derive(Debug, Clone, Args)]
pub(crate) struct Identity {
    /// This member's name, instance/process [default: cli/<command>-<pid>].
    #[arg(long = "as")]
    pub name: Option<String>,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Member(#[from] switchboard_client::Error),
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("invalid --{flag} {value:?}: {detail}")]
    Flag {
        flag: &'static str,
        value: String,
        detail: String,
    },
    #[error("HTTP request to {addr} failed: {detail}")]
    Http { addr: String, detail: String },
    #[error("cannot listen for signals: {0}")]
    Signal(std::io::Error),
    #[error(transparent)]
    Bench(#[from] switchboard_bench::BenchError),
    #[error("bench: switchboard runs went wrong: {0}")]
    BenchFailed(String),
}

/// Settings after merging flags, environment, file and defaults.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub file: FileConfig,
    pub cluster: String,
    pub internal: String,
    pub external: String,
    pub secret_file: PathBuf,
}

impl Settings {
    pub fn resolve(c: &Common) -> Result<Settings, CliError> {
        let file = match &c.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let cluster = c
            .cluster
            .clone()
            .or_else(|| file.cluster.clone())
            .unwrap_or_else(|| config::CLUSTER_DEFAULT.to_owned());
        config::validate_cluster(&cluster)?;
        let internal = c
            .internal
            .clone()
            .or_else(|| file.internal.map(|a| a.to_string()))
            .unwrap_or_else(|| config::INTERNAL_DEFAULT.to_owned());
        let external = c
            .external
            .clone()
            .or_else(|| file.external.map(|a| a.to_string()))
            .unwrap_or_else(|| config::EXTERNAL_DEFAULT.to_owned());
        let secret_file = c
            .secret_file
            .clone()
            .or_else(|| file.secret_file.clone())
            .unwrap_or_else(secret::default_path);
        Ok(Settings {
            file,
            cluster,
            internal,
            external,
            secret_file,
        })
    }

    /// The secret for a member: `SWITCHBOARD_SECRET` (hex) when set, else
    /// the file, which must exist.
    pub fn member_secret(&self) -> Result<Secret, CliError> {
        match secret::from_env()? {
            Some(s) => Ok(s),
            None => Ok(secret::load(&self.secret_file)?),
        }
    }

    /// A member config named `who` or `cli/<role>-<pid>`.
    pub fn member_config(&self, who: &Identity, role: &str) -> Result<MemberConfig, CliError> {
        let (instance, process) = match &who.name {
            Some(n) => match n.split_once('/') {
                Some((i, p)) if !i.is_empty() && !p.is_empty() => (i.to_owned(), p.to_owned()),
                _ => {
                    return Err(CliError::Flag {
                        flag: "as",
                        value: n.clone(),
                        detail: "expected instance/process".into(),
                    })
                }
            },
            None => ("cli".to_owned(), format!("{role}-{}", std::process::id())),
        };
        let mut cfg = MemberConfig::new(
            self.internal.clone(),
            self.cluster.clone(),
            self.member_secret()?,
            instance,
            process,
        );
        cfg.connect_timeout = std::time::Duration::from_secs(5);
        Ok(cfg)
    }
}

pub(crate) fn parse_addr(flag: &'static str, value: &str) -> Result<SocketAddr, CliError> {
    value
        .parse()
        .map_err(|e: std::net::AddrParseError| CliError::Flag {
            flag,
            value: value.to_owned(),
            detail: format!("{e} (expected IP:PORT)"),
        })
}

/// Worker threads for the runtime of a command: `serve` uses its
/// `--threads` (1 = a current-thread runtime); the others the default
/// multi-thread runtime (`None`).
pub(crate) fn runtime_threads(cli: &Cli) -> Option<usize> {
    match &cli.command {
        Command::Serve { threads, .. } => Some((*threads).max(1)),
        Command::Bench(b) => Some(b.loader_threads.max(1)),
        _ => None,
    }
}

pub(crate) fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn stop_signal() -> Result<(), CliError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(CliError::Signal)?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(CliError::Signal),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(CliError::Signal)
    }
}

pub(crate) async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve { common, .. } => serve::run(&Settings::resolve(&common)?).await,
        Command::Demo { seconds } => demo::run(seconds).await,
        Command::Bench(args) => bench::run(args).await,
        Command::BenchRelay { listen } => Err(CliError::Flag {
            flag: "bench-relay",
            value: listen.to_string(),
            detail: "runs on its own thread, not in the runtime".into(),
        }),
        Command::Members { common, json } => members::run(&Settings::resolve(&common)?, json).await,
        Command::Watch { common, who } => tools::watch(&Settings::resolve(&common)?, &who).await,
        Command::Send {
            common,
            who,
            to,
            confirm,
            payload,
        } => tools::send(&Settings::resolve(&common)?, &who, &to, confirm, payload).await,
        Command::Request {
            common,
            who,
            to,
            timeout_ms,
            payload,
        } => {
            let s = Settings::resolve(&common)?;
            tools::request(&s, &who, &to, timeout_ms, payload).await
        }
    }
}

/// mimalloc instead of the system allocator (feature `mimalloc`, off by
/// default): faster on the data path, which allocates and frees small
/// buffers at a high rate, but it keeps more memory per idle member
/// (docs/PERFORMANCE.md has the figures with both).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = Cli::parse();
    if matches!(args.command, Command::Bench(_)) {
        // The NATS client reports every closed connection at info level;
        // W5 closes a thousand of them.
        init_tracing(&format!("{},async_nats=warn", args.log));
    } else {
        init_tracing(&args.log);
    }
    if let Command::BenchRelay { listen } = &args.command {
        // One thread of its own, no multi-thread runtime around it.
        return match switchboard_bench::relay::serve(*listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchboard: error: relay on {listen}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let built = match runtime_threads(&args) {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: error: {e}");
            ExitCode::FAILURE
        }
    }
}
