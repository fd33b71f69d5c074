//! The `switchboard` binary: the message server (`serve`), a live demo
//! cluster (`demo`), and thin commands over the client library (`members`,
//! `watch`/`sub`, `send`/`pub`, `publish`, `request`, `reply`).
//!
//! Command-line parsing, settings resolution (flags and `SWITCHBOARD_*`
//! variables over the TOML file over embedded defaults) and the commands.

mod bench;
mod demo;
mod members;
mod print;
mod serve;
mod tools;
mod top;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use switchboard_client::{AddressError, MemberConfig, MemberTls};
use switchboard_core::auth::Secret;
use switchboard_runtime::secret::{self, SecretError};
use switchboard_server::config::{self, AuthMode, ConfigError, FileConfig};
use switchboard_server::ServerError;

/// Switchboard: a cluster communication manager.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
pub(crate) struct Cli {
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info`, `switchboard_server=debug`).
    #[arg(long, env = "SWITCHBOARD_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log line format: `text` (coloured only on a terminal, and never when
    /// `NO_COLOR` is set) or `json` (one object per line).
    #[arg(
        long,
        env = "SWITCHBOARD_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,
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
        /// Print the effective settings (file, environment and flags
        /// merged over the defaults) as TOML and exit.
        #[arg(long)]
        print_config: bool,
        #[command(flatten)]
        limits: ServeLimits,
    },
    /// Start a server and a small cluster on loopback and show live traffic.
    Demo {
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Show the server's and the members' logs (hidden by default:
        /// only errors are shown).
        #[arg(long)]
        logs: bool,
    },
    /// List the members with their load data (GET /v1/members on the external port).
    Members {
        #[command(flatten)]
        common: Common,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Live view of message rates per member (reads /v1/members), like `top`.
    Top {
        #[command(flatten)]
        common: Common,
        /// Refresh interval, milliseconds.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
        interval_ms: u64,
    },
    /// Join as a member and print the messages it receives and the
    /// cluster events, with timestamps and names (alias `sub`).
    #[command(visible_alias = "sub")]
    Watch {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        who: Identity,
        #[command(flatten)]
        args: tools::WatchArgs,
    },
    /// Send one message and wait for the server's ack, or with --confirm
    /// for the delivery outcome (alias `pub`). Exits 3 when an addressee
    /// missed it, 5 when the server refused it.
    #[command(visible_alias = "pub")]
    Send {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        who: Identity,
        /// Address: instance/process (one member), instance:NAME (every
        /// process of an instance), group:NAME (every member of a group),
        /// anycast:NAME (one member of a group), all (everyone), id:N.
        #[arg(long)]
        to: String,
        /// Wait for the delivery outcome instead of the ack.
        #[arg(long)]
        confirm: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// The payload.
        payload: String,
    },
    /// Publish a custom cluster event on a topic; every member subscribed
    /// to a matching topic prefix (`watch --topic`) gets it.
    Publish {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        who: Identity,
        /// The event's topic, e.g. cache/invalidate.
        #[arg(long)]
        topic: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// The payload.
        payload: String,
    },
    /// Answer requests: with a fixed text (--answer) or the output of a
    /// shell command (--command), until stopped or --count requests.
    Reply {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        who: Identity,
        #[command(flatten)]
        args: tools::ReplyArgs,
    },
    /// Run the benchmark workloads (W1–W6) against Switchboard and, when
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
    /// Send a request and print the first reply (answer requests with
    /// `switchboard reply`). Exits 4 when no reply came in time or the
    /// addressee left, 5 when the server refused the request.
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
        /// Print the reply as JSON.
        #[arg(long)]
        json: bool,
        /// The payload.
        payload: String,
    },
}

/// How log lines are written (to standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
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
    /// Use a secret file that other users may read (refused otherwise).
    #[arg(long, env = "SWITCHBOARD_ALLOW_READABLE_SECRET")]
    pub allow_readable_secret: bool,
    /// Member commands: the named credential whose secret --secret-file holds [default: the cluster secret].
    #[arg(long, env = "SWITCHBOARD_CREDENTIAL")]
    pub credential: Option<String>,
    /// How members authenticate: secret, certificate or both [default: the file's `auth`, else secret].
    #[arg(long, env = "SWITCHBOARD_AUTH")]
    pub auth: Option<String>,
    /// TLS certificate (PEM): the server's for `serve`, the member's own for member commands [default: the file's tls.cert_file for `serve`].
    #[arg(long, env = "SWITCHBOARD_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert-file.
    #[arg(long, env = "SWITCHBOARD_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM): what members' certificates must chain to for `serve`; what the server's must chain to for the other commands (turns TLS on for them).
    #[arg(long, env = "SWITCHBOARD_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// Name the server's certificate must carry [default: the host of --internal / --external].
    #[arg(long, env = "SWITCHBOARD_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
}

/// Abuse limits of `serve` that flags and the environment may set (over
/// the config file).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ServeLimits {
    /// Server-wide memory budget, bytes [default: 1073741824].
    #[arg(long, env = "SWITCHBOARD_MEMORY_MAX_BYTES")]
    pub memory_max_bytes: Option<usize>,
    /// Handshakes in progress from one client address at most [default: 16].
    #[arg(long, env = "SWITCHBOARD_HANDSHAKES_PER_SOURCE_MAX")]
    pub handshakes_per_source_max: Option<usize>,
    /// A chunked message must be complete this long after its first frame, ms [default: 60000].
    #[arg(long, env = "SWITCHBOARD_REASSEMBLY_TIMEOUT_MS")]
    pub reassembly_timeout_ms: Option<u64>,
    /// Bytes of chunked messages in reassembly, all members together [default: 268435456].
    #[arg(long, env = "SWITCHBOARD_REASSEMBLY_BYTES_MAX")]
    pub reassembly_bytes_max: Option<usize>,
    /// Open HTTP connections at most [default: 256].
    #[arg(long, env = "SWITCHBOARD_HTTP_CONNECTIONS_MAX")]
    pub http_connections_max: Option<usize>,
    /// Time an HTTP client has to send a request's headers, ms [default: 5000].
    #[arg(long, env = "SWITCHBOARD_HTTP_HEADER_TIMEOUT_MS")]
    pub http_header_timeout_ms: Option<u64>,
    /// Time one HTTP request may take, ms [default: 10000].
    #[arg(long, env = "SWITCHBOARD_HTTP_REQUEST_TIMEOUT_MS")]
    pub http_request_timeout_ms: Option<u64>,
    /// Time an HTTP connection may stay without a request, ms [default: 30000].
    #[arg(long, env = "SWITCHBOARD_HTTP_IDLE_TIMEOUT_MS")]
    pub http_idle_timeout_ms: Option<u64>,
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
    #[error("{0} addressee(s) missed the message")]
    Missed(usize),
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
    #[error("the reply command {command:?} failed: {detail}")]
    Command { command: String, detail: String },
}

impl CliError {
    /// The process's exit code for this error (documented in the README):
    /// 3 a confirmed send was missed, 4 a request got no reply, 5 the
    /// server refused a message or request, 6 the server refused the
    /// member or could not be reached, 1 anything else (2 is a usage
    /// error, from the argument parser).
    pub fn exit_code(&self) -> u8 {
        use switchboard_client::{Error, RequestError};
        match self {
            CliError::Missed(_) => 3,
            CliError::Member(Error::Request(RequestError::Nacked(_))) => 5,
            CliError::Member(Error::Request(_)) => 4,
            CliError::Member(Error::Nacked { .. }) => 5,
            CliError::Member(
                Error::Rejected { .. } | Error::ConnectTimeout { .. } | Error::Tls(_),
            ) => 6,
            _ => 1,
        }
    }
}

/// Settings after merging flags, environment, file and defaults.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub file: FileConfig,
    pub cluster: String,
    pub internal: String,
    pub external: String,
    pub secret_file: PathBuf,
    pub allow_readable_secret: bool,
    /// The named credential a member command proves (empty: the cluster
    /// secret).
    pub credential: String,
    pub auth: AuthMode,
    /// The TLS flags as given (their meaning depends on the command).
    pub tls: TlsFlags,
}

/// The TLS flags of [`Common`].
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsFlags {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub server_name: Option<String>,
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
        let auth = match &c.auth {
            Some(a) => AuthMode::parse(a)?,
            None => file.auth.unwrap_or_default(),
        };
        Ok(Settings {
            file,
            cluster,
            internal,
            external,
            secret_file,
            allow_readable_secret: c.allow_readable_secret,
            credential: c.credential.clone().unwrap_or_default(),
            auth,
            tls: TlsFlags {
                cert_file: c.tls_cert_file.clone(),
                key_file: c.tls_key_file.clone(),
                ca_file: c.tls_ca_file.clone(),
                server_name: c.tls_server_name.clone(),
            },
        })
    }

    /// The secret for a member: `SWITCHBOARD_SECRET` (hex) when set, else
    /// the file, which must exist.
    pub fn member_secret(&self) -> Result<Secret, CliError> {
        match secret::from_env()? {
            Some(s) => Ok(s),
            None => Ok(secret::load_with(
                &self.secret_file,
                self.allow_readable_secret,
            )?),
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
        let tls = self.member_tls()?;
        let mut cfg = match (self.auth, tls) {
            (AuthMode::Certificate, Some(tls)) => MemberConfig::with_certificate(
                self.internal.clone(),
                self.cluster.clone(),
                tls,
                instance,
                process,
            ),
            (AuthMode::Certificate, None) => {
                return Err(CliError::Config(ConfigError::Invalid {
                    name: "auth",
                    detail: "certificate authentication needs --tls-ca-file, --tls-cert-file and --tls-key-file".into(),
                }))
            }
            (_, tls) => {
                let mut c = MemberConfig::new(
                    self.internal.clone(),
                    self.cluster.clone(),
                    self.member_secret()?,
                    instance,
                    process,
                );
                c.tls = tls;
                c.core.credential = self.credential.clone();
                c
            }
        };
        cfg.connect_timeout = std::time::Duration::from_secs(5);
        Ok(cfg)
    }

    /// A member's TLS settings from the flags: TLS when a CA is given.
    pub fn member_tls(&self) -> Result<Option<MemberTls>, CliError> {
        let t = &self.tls;
        let Some(ca) = &t.ca_file else {
            if t.cert_file.is_some() || t.key_file.is_some() {
                return Err(tls_flags_error(
                    "--tls-cert-file and --tls-key-file need --tls-ca-file (the CA the server's certificate chains to)",
                ));
            }
            return Ok(None);
        };
        let cert_key = match (&t.cert_file, &t.key_file) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => {
                return Err(tls_flags_error(
                    "--tls-cert-file and --tls-key-file go together",
                ))
            }
        };
        Ok(Some(MemberTls {
            ca_file: ca.clone(),
            cert_key,
            server_name: t.server_name.clone(),
        }))
    }
}

fn tls_flags_error(detail: &str) -> CliError {
    CliError::Config(ConfigError::Invalid {
        name: "tls",
        detail: detail.to_owned(),
    })
}

/// A listen address: `IP:PORT` or `HOST:PORT` (resolved once, the first
/// address wins: `localhost:3900`).
pub(crate) fn parse_addr(flag: &'static str, value: &str) -> Result<SocketAddr, CliError> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = value.parse() {
        return Ok(a);
    }
    let fail = |detail: String| CliError::Flag {
        flag,
        value: value.to_owned(),
        detail,
    };
    let mut addrs = value
        .to_socket_addrs()
        .map_err(|e| fail(format!("{e} (expected HOST:PORT or IP:PORT)")))?;
    addrs
        .next()
        .ok_or_else(|| fail("the host name has no address".into()))
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

pub(crate) fn init_tracing(filter: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(colour).try_init()
        }
    };
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
        Command::Serve {
            common,
            limits,
            print_config: true,
            ..
        } => {
            print!(
                "{}",
                serve::effective_config(&Settings::resolve(&common)?, &limits)?
            );
            Ok(())
        }
        Command::Serve { common, limits, .. } => {
            serve::run(&Settings::resolve(&common)?, &limits).await
        }
        Command::Demo { seconds, .. } => demo::run(seconds).await,
        Command::Bench(args) => bench::run(args).await,
        Command::BenchRelay { listen } => Err(CliError::Flag {
            flag: "bench-relay",
            value: listen.to_string(),
            detail: "runs on its own thread, not in the runtime".into(),
        }),
        Command::Members { common, json } => members::run(&Settings::resolve(&common)?, json).await,
        Command::Top {
            common,
            interval_ms,
        } => top::run(&Settings::resolve(&common)?, interval_ms).await,
        Command::Watch { common, who, args } => {
            tools::watch(&Settings::resolve(&common)?, &who, &args).await
        }
        Command::Send {
            common,
            who,
            to,
            confirm,
            json,
            payload,
        } => {
            let s = Settings::resolve(&common)?;
            tools::send(&s, &who, &to, confirm, json, payload).await
        }
        Command::Publish {
            common,
            who,
            topic,
            json,
            payload,
        } => tools::publish(&Settings::resolve(&common)?, &who, &topic, json, payload).await,
        Command::Reply { common, who, args } => {
            tools::reply(&Settings::resolve(&common)?, &who, &args).await
        }
        Command::Request {
            common,
            who,
            to,
            timeout_ms,
            json,
            payload,
        } => {
            let s = Settings::resolve(&common)?;
            tools::request(&s, &who, &to, timeout_ms, json, payload).await
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
        init_tracing(&format!("{},async_nats=warn", args.log), args.log_format);
    } else if matches!(args.command, Command::Demo { logs: false, .. }) {
        init_tracing("error", args.log_format);
    } else {
        init_tracing(&args.log, args.log_format);
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
            ExitCode::from(e.exit_code())
        }
    }
}
