//! # switchboard-bench
//!
//! `switchboard bench`: the benchmark workloads (W1–W6) against
//! Switchboard, NATS, Redis pub/sub and a bare relay, side by side in one
//! run on this machine, with each peer's figure, Switchboard's ratio to it,
//! and the CPU and memory every server used.
//!
//! Every server runs as its own child process started for each run (so
//! its CPU seconds and peak memory belong to that run alone) on a free
//! loopback port; the load generator is this process, whose CPU is
//! reported next to the server's.

#![deny(missing_docs)]

pub mod ctx;
pub mod idle;
pub mod many;
pub mod measure;
pub mod nats;
pub mod proc;
pub mod redis;
pub mod relay;
pub mod report;
pub mod switchboard;
pub mod workload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use switchboard_core::auth::Secret;

pub use ctx::RunCtx;
use proc::{ServerProc, Usage};
pub use report::{Report, Row};
pub use workload::{AddressKind, BenchError, Figure, Params, Workload};

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum System {
    /// This project's server.
    Switchboard,
    /// `nats-server` (core NATS, no acknowledgements).
    Nats,
    /// `redis-server` pub/sub (no acknowledgements).
    Redis,
    /// The bare relay: no protocol, no acknowledgements.
    Relay,
}

impl System {
    /// Lower-case name, used in the table and JSON.
    pub fn name(self) -> &'static str {
        match self {
            System::Switchboard => "switchboard",
            System::Nats => "nats",
            System::Redis => "redis",
            System::Relay => "relay",
        }
    }
}

/// Where the Switchboard server comes from.
#[derive(Debug, Clone)]
pub enum SwitchboardTarget {
    /// Start `exe serve` for each run.
    Start {
        /// The `switchboard` binary.
        exe: PathBuf,
    },
    /// Use a running server (its CPU and memory are not reported).
    Running {
        /// Its internal address.
        addr: SocketAddr,
        /// Its cluster name.
        cluster: String,
        /// The cluster secret.
        secret: Secret,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Workloads, in order.
    pub workloads: Vec<Workload>,
    /// Runs per workload and system (the table shows the median).
    pub runs: usize,
    /// The workload parameters.
    pub params: Params,
    /// The Switchboard server.
    pub switchboard: SwitchboardTarget,
    /// Also run the peers found on the PATH (`nats-server`,
    /// `redis-server`).
    pub peers: bool,
    /// Also run the bare relay (the physical limit).
    pub relay: bool,
    /// Directory for the started servers' files.
    pub work_dir: PathBuf,
    /// The address kinds Switchboard is measured with (each workload runs
    /// those that mean something for it: [`Workload::addresses_for`]).
    pub addresses: Vec<AddressKind>,
}

/// One run's measurements.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// What the workload measured.
    pub figure: Figure,
    /// Server CPU seconds during the run (`None`: not started by us).
    pub server_cpu_s: Option<f64>,
    /// Server peak resident memory at the end of the run, bytes.
    pub server_rss_peak: Option<u64>,
    /// Load generator (this process) CPU seconds during the run.
    pub loader_cpu_s: f64,
    /// Wall time of the run.
    pub wall: Duration,
}

/// Something to say while the bench runs (the CLI prints it).
pub trait Progress {
    /// A run starts.
    fn start(&mut self, row: Row, w: Workload, run: usize, runs: usize);
    /// A run ended.
    fn done(&mut self, row: Row, w: Workload, result: &Result<RunResult, BenchError>);
}

/// Runs everything and returns the report. A system that cannot start is
/// reported as skipped with the reason; the others go on.
pub async fn run(opts: &Options, progress: &mut dyn Progress) -> Report {
    raise_fd_limit();
    let mut report = Report::new(opts.params.clone(), opts.runs);
    let mut systems = vec![System::Switchboard];
    if opts.peers {
        for (s, program) in [
            (System::Nats, "nats-server"),
            (System::Redis, "redis-server"),
        ] {
            if proc::which(program).is_some() {
                systems.push(s);
            } else {
                report.skip(s, format!("{program} not on the PATH"));
            }
        }
    }
    if opts.relay {
        systems.push(System::Relay);
    }
    for &w in &opts.workloads {
        for &s in &systems {
            let addresses = match s {
                System::Switchboard => w.addresses_for(&opts.addresses),
                _ => vec![None],
            };
            for address in addresses {
                let row = Row { system: s, address };
                for r in 0..opts.runs {
                    let fds_before = open_fds();
                    progress.start(row, w, r, opts.runs);
                    let result = one_run(opts, row, w).await;
                    progress.done(row, w, &result);
                    report.add(w, row, result);
                    settle_fds(fds_before).await;
                }
            }
        }
    }
    report
}

/// Descriptors this process has open now (`None` where `/proc` is not).
fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

/// Waits (at most [`FD_SETTLE`]) until the sockets of the run just ended
/// are closed: a peer's client library may close its connections in tasks
/// of its own after the run dropped them, and a next run of ten thousand
/// members would otherwise find the descriptor limit taken.
async fn settle_fds(before: Option<usize>) {
    let Some(before) = before else {
        return;
    };
    let deadline = std::time::Instant::now() + FD_SETTLE;
    while open_fds().is_some_and(|n| n > before + FD_SLACK) {
        if std::time::Instant::now() >= deadline {
            tracing::warn!(
                open = open_fds(),
                before,
                "descriptors of the last run still open"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// How long [`settle_fds`] waits at most.
const FD_SETTLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Descriptors a run may leave open for good (runtime internals).
const FD_SLACK: usize = 64;

/// Raises this process's soft limit on open files to the hard limit: W5
/// and W6 hold one socket per member (and the servers started from here
/// inherit the limit).
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
}

/// Starts the system's server, runs the workload once, stops the server.
async fn one_run(opts: &Options, row: Row, w: Workload) -> Result<RunResult, BenchError> {
    let p = &opts.params;
    let system = row.system;
    let server: Option<ServerProc>;
    let mut cluster: Option<(String, Secret)> = None;
    let addr;
    match (system, &opts.switchboard) {
        (
            System::Switchboard,
            SwitchboardTarget::Running {
                addr: a,
                cluster: c,
                secret,
            },
        ) => {
            server = None;
            addr = *a;
            cluster = Some((c.clone(), secret.clone()));
        }
        (System::Switchboard, SwitchboardTarget::Start { exe }) => {
            let (proc, secret) = start_switchboard(exe, &opts.work_dir, p)?;
            addr = proc.addr;
            server = Some(proc);
            cluster = Some(("bench".to_owned(), secret));
        }
        (System::Nats, _) => {
            addr = proc::free_port()?;
            let exe = proc::which("nats-server").ok_or_else(|| missing("nats-server"))?;
            server = Some(ServerProc::start(
                "nats",
                &exe,
                &proc::nats_args(addr),
                addr,
            )?);
        }
        (System::Redis, _) => {
            addr = proc::free_port()?;
            let exe = proc::which("redis-server").ok_or_else(|| missing("redis-server"))?;
            server = Some(ServerProc::start(
                "redis",
                &exe,
                &proc::redis_args(addr, p),
                addr,
            )?);
        }
        (System::Relay, _) => {
            addr = proc::free_port()?;
            let exe = match &opts.switchboard {
                SwitchboardTarget::Start { exe } => exe.clone(),
                SwitchboardTarget::Running { .. } => std::env::current_exe()?,
            };
            let args = vec!["bench-relay".to_owned(), addr.to_string()];
            server = Some(ServerProc::start("relay", &exe, &args, addr)?);
        }
    }
    let ctx = RunCtx {
        addr,
        params: p,
        server: server.as_ref(),
        cluster: cluster.as_ref().map(|(c, s)| (c.as_str(), s)),
        address: row.address,
    };
    let before = server.as_ref().map(ServerProc::usage);
    let loader_before = Usage::own();
    let t0 = Instant::now();
    let limit = run_limit(w, p);
    let figure = match tokio::time::timeout(limit, dispatch(system, w, &ctx)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(BenchError::Timeout {
                system: system.name().to_owned(),
                workload: w,
                after: limit,
            })
        }
    };
    let wall = t0.elapsed();
    let loader_cpu_s = Usage::own().cpu_s - loader_before.cpu_s;
    let after = server.as_ref().map(ServerProc::usage);
    drop(server);
    Ok(RunResult {
        figure,
        server_cpu_s: before.zip(after).map(|(b, a)| a.cpu_s - b.cpu_s),
        server_rss_peak: after.map(|a| a.rss_peak),
        loader_cpu_s,
        wall,
    })
}

async fn dispatch(system: System, w: Workload, ctx: &RunCtx<'_>) -> Result<Figure, BenchError> {
    match system {
        System::Switchboard => switchboard::run(w, ctx).await,
        System::Nats => nats::run(w, ctx).await,
        System::Redis => redis::run(w, ctx).await,
        System::Relay => relay::run(w, ctx).await,
    }
}

/// A bound on one run: sending, draining, and generous setup.
fn run_limit(w: Workload, p: &Params) -> Duration {
    let setup = Duration::from_secs(60);
    match w {
        Workload::W3 => setup + Duration::from_millis(2 * (p.requests + p.warmup_requests) as u64),
        Workload::W6 => setup + p.many_for + 2 * p.drain_timeout,
        // Every member is told of every later one while the crowd forms:
        // building it grows with the square of its size.
        Workload::W5 => {
            let n = p.idle_members as u64;
            setup + Duration::from_micros(4 * n * n) + 2 * p.drain_timeout
        }
        _ => setup + p.send_for + 2 * p.drain_timeout,
    }
}

fn missing(program: &str) -> BenchError {
    BenchError::Start {
        system: program.to_owned(),
        detail: "not on the PATH".to_owned(),
    }
}

/// Starts `exe serve` on free loopback ports with a fresh secret and no
/// restart grace (a bench server is a first start, not a restart).
fn start_switchboard(
    exe: &Path,
    work_dir: &Path,
    p: &Params,
) -> Result<(ServerProc, Secret), BenchError> {
    std::fs::create_dir_all(work_dir)?;
    let internal = proc::free_port()?;
    let external = proc::free_port()?;
    let secret_file = work_dir.join("secret");
    let config_file = work_dir.join("bench.toml");
    let members_max = (p.idle_members.max(p.many_members) + 64).max(1024);
    let config = format!(
        "cluster = \"bench\"\n\
         internal = \"{internal}\"\n\
         external = \"{external}\"\n\
         secret_file = {secret:?}\n\
         connections_max = {conns}\n\
         handshakes_per_source_max = {members_max}\n\
         [server]\n\
         members_max = {members_max}\n\
         handshakes_max = {members_max}\n\
         restart_grace_ms = 0\n",
        secret = secret_file.display().to_string(),
        conns = members_max + 64,
    );
    std::fs::write(&config_file, config)?;
    let args = vec![
        "--log".to_owned(),
        "warn".to_owned(),
        "serve".to_owned(),
        "--config".to_owned(),
        config_file.display().to_string(),
    ];
    let server = ServerProc::start("switchboard", exe, &args, internal)?;
    let secret =
        switchboard_runtime::secret::load(&secret_file).map_err(|e| BenchError::Start {
            system: "switchboard".to_owned(),
            detail: e.to_string(),
        })?;
    Ok((server, secret))
}
