//! `switchboard bench`: flags, a progress line, the table and the JSON.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use switchboard_bench::{
    self as bench, AddressKind, BenchError, Options, Params, Progress, Row, RunResult,
    SwitchboardTarget, System, Workload,
};

use super::CliError;

/// Flags of `switchboard bench`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchArgs {
    /// Workloads to run, comma separated (w1,w2,w3,w4,w5,w6). W6 (many
    /// members for 30 s) runs only when named.
    #[arg(long, value_delimiter = ',', default_value = "w1,w2,w3,w4,w5")]
    workload: Vec<Workload>,
    /// How Switchboard senders address receivers, comma separated:
    /// member-id, member (instance/process), group, broadcast, or all. Each
    /// workload runs the kinds that mean something for it (W2: broadcast,
    /// group; W3: member-id, member, group as anycast; W1 every kind;
    /// W4 and W6: member-id, member, group), each as its own row; the
    /// default is each workload's first.
    #[arg(long, value_delimiter = ',', value_parser = parse_address_kinds)]
    address: Vec<Vec<AddressKind>>,
    /// Members of W5 (idle) and W6 (sending); default 1,000 and 2,000.
    /// Every W6 Switchboard member in this process holds the cluster view,
    /// so N members need about N² × 256 bytes here (10,000: ~24 GiB); a W6
    /// run that would not fit in the available memory is refused. W5's
    /// idle members speak the protocol directly and keep no view.
    #[arg(long)]
    members: Option<usize>,
    /// Messages per second each W6 member sends.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// How long W6 members send, milliseconds (default 30,000).
    #[arg(long)]
    w6_ms: Option<u64>,
    /// Runs per workload and system; the table shows the median and min–max.
    #[arg(long)]
    runs: Option<usize>,
    /// Payload bytes of W1, W2, W4 messages.
    #[arg(long, default_value_t = 128)]
    payload: usize,
    /// How long senders send in W1, W2, W4, milliseconds.
    #[arg(long)]
    send_ms: Option<u64>,
    /// Switchboard W1, W2, W4 senders hand this many messages at a time to
    /// the library (`post_many`); 1 posts each on its own (`post`).
    #[arg(long, default_value_t = switchboard_client::POST_BATCH_MAX as u64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    post_batch: u64,
    /// A few seconds in all (for CI): short sends, few requests, 100 idle
    /// members, W6 with 100 members for 2 s.
    #[arg(long)]
    quick: bool,
    /// Load generator threads (1: every client task on one thread, the
    /// other CPU left to the server).
    #[arg(long, default_value_t = 1)]
    pub loader_threads: usize,
    /// Print one JSON object on the last line.
    #[arg(long)]
    json: bool,
    /// Do not run NATS and Redis (the bare relay still runs).
    #[arg(long)]
    no_peers: bool,
    /// Do not run the bare relay either: Switchboard alone.
    #[arg(long)]
    no_relay: bool,
    /// Use a running Switchboard server at this address instead of starting
    /// one (its CPU and memory are then not reported).
    #[arg(long)]
    server: Option<SocketAddr>,
    /// The running server's secret file (with --server).
    #[arg(long, requires = "server")]
    secret_file: Option<PathBuf>,
    /// The running server's cluster name (with --server).
    #[arg(long, default_value = "switchboard", requires = "server")]
    cluster: String,
}

struct Line {
    quiet: bool,
}

impl Progress for Line {
    fn start(&mut self, row: Row, w: Workload, run: usize, runs: usize) {
        if !self.quiet {
            eprint!(
                "\r\x1b[2K{w} {:<22} run {}/{runs} ...",
                row.label(w),
                run + 1
            );
            let _ = std::io::stderr().flush();
        }
    }

    fn done(&mut self, row: Row, w: Workload, result: &Result<RunResult, BenchError>) {
        let what = match result {
            Ok(r) => match (r.figure.rate(), &r.figure) {
                (Some(rate), _) => format!("{:.0}/s, lost {}", rate, r.figure.lost()),
                (None, bench::Figure::Latency { hist, .. }) => format!(
                    "p50 {} µs p99 {} µs",
                    hist.value_at_quantile(0.5),
                    hist.value_at_quantile(0.99)
                ),
                (None, bench::Figure::Scale { broadcast, .. }) => {
                    format!("{:.1} ms", broadcast.as_secs_f64() * 1e3)
                }
                _ => String::new(),
            },
            Err(e) => format!("failed: {e}"),
        };
        if !self.quiet {
            // Clear the line only on a terminal: no escape codes in files.
            use std::io::IsTerminal;
            let clear = if std::io::stderr().is_terminal() {
                "\r\x1b[2K"
            } else {
                ""
            };
            eprintln!("{clear}{w} {:<22} {what}", row.label(w));
        }
    }
}

pub(crate) async fn run(a: BenchArgs) -> Result<(), CliError> {
    let mut params = if a.quick {
        Params::quick(a.payload)
    } else {
        Params::standard(a.payload, Duration::from_secs(3))
    };
    if let Some(ms) = a.send_ms {
        params.send_for = Duration::from_millis(ms.max(1));
    }
    params.post_batch = usize::try_from(a.post_batch).unwrap_or(1);
    if let Some(n) = a.members {
        if !(2..=MEMBERS_MAX).contains(&n) {
            return Err(CliError::Flag {
                flag: "members",
                value: n.to_string(),
                detail: format!("2 to {MEMBERS_MAX}"),
            });
        }
        params.idle_members = n;
        params.many_members = n;
    }
    if a.rate == 0 || a.rate > 10_000 {
        return Err(CliError::Flag {
            flag: "rate",
            value: a.rate.to_string(),
            detail: "1 to 10000 messages per second".into(),
        });
    }
    params.many_rate = a.rate;
    // W6's members are library members, each holding the view; W5's idle
    // members speak the protocol directly and keep none.
    let crowd = if a.workload.contains(&Workload::W6) {
        params.many_members
    } else {
        0
    };
    if let Some(available) = mem_available() {
        let need = loader_bytes(crowd);
        if need > available {
            return Err(CliError::Flag {
                flag: "members",
                value: crowd.to_string(),
                detail: format!(
                    "{crowd} members need about {} MiB in the load generator (each holds the \
                     cluster view), {} MiB are available",
                    need >> 20,
                    available >> 20
                ),
            });
        }
    }
    if let Some(ms) = a.w6_ms {
        params.many_for = Duration::from_millis(ms.max(1));
    }
    if a.payload > 64 * 1024 {
        return Err(CliError::Flag {
            flag: "payload",
            value: a.payload.to_string(),
            detail: "at most 65536 bytes".into(),
        });
    }
    let switchboard = match a.server {
        Some(addr) => {
            let path = a
                .secret_file
                .clone()
                .unwrap_or_else(switchboard_runtime::secret::default_path);
            SwitchboardTarget::Running {
                addr,
                cluster: a.cluster.clone(),
                secret: switchboard_runtime::secret::load(&path)?,
            }
        }
        None => SwitchboardTarget::Start {
            exe: std::env::current_exe().map_err(BenchError::Io)?,
        },
    };
    let work_dir = std::env::temp_dir().join(format!("switchboard-bench-{}", std::process::id()));
    let opts = Options {
        workloads: a.workload.clone(),
        runs: a.runs.unwrap_or(if a.quick { 1 } else { 3 }).max(1),
        params,
        switchboard,
        peers: !a.no_peers,
        relay: !a.no_relay,
        work_dir: work_dir.clone(),
        addresses: a.address.iter().flatten().copied().collect(),
    };
    let mut line = Line { quiet: false };
    let report = bench::run(&opts, &mut line).await;
    let _ = std::fs::remove_dir_all(&work_dir);
    println!("{}", report.table());
    if a.json {
        println!("{}", report.json());
    }
    // Peers may be missing or fail; Switchboard itself must work and lose
    // nothing it acknowledged.
    let mut problems = Vec::new();
    for &w in &opts.workloads {
        for row in report.rows_of(w, System::Switchboard) {
            let Some(s) = report.summary(w, row) else {
                continue;
            };
            let name = row.label(w);
            if let Some((n, e)) = &s.failed {
                problems.push(format!("{w} {name}: {n} run(s) failed: {e}"));
            }
            if s.lost > 0 {
                problems.push(format!(
                    "{w} {name}: {} of {} deliveries lost",
                    s.lost, s.expected
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::BenchFailed(problems.join("; ")))
    }
}

/// The most members W5 and W6 may have (one socket each in this process,
/// under the open file limit).
const MEMBERS_MAX: usize = 20_000;

fn parse_address_kinds(s: &str) -> Result<Vec<AddressKind>, String> {
    AddressKind::parse_list(s)
}

/// What `n` Switchboard members cost the load generator: each member's
/// library holds the view of all `n` (about 256 bytes an entry), plus its
/// own buffers.
fn loader_bytes(n: usize) -> u64 {
    let n = n as u64;
    n.saturating_mul(n).saturating_mul(256) + n * 64 * 1024
}

/// `MemAvailable` from `/proc/meminfo`, bytes (`None` where unknown).
fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_members_need_more_than_twenty_gib_of_loader_memory() {
        assert!(loader_bytes(10_000) > 20 << 30);
        assert!(loader_bytes(1_000) < 1 << 30);
    }
}
