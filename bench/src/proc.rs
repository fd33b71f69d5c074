//! Server processes started by the bench, and what `/proc` says about
//! them: CPU seconds and resident memory.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::workload::{BenchError, Params};

/// How long a started server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A server child process, killed when dropped.
#[derive(Debug)]
pub struct ServerProc {
    /// Which system it is.
    pub system: String,
    /// Its address for clients.
    pub addr: SocketAddr,
    child: Child,
}

impl ServerProc {
    /// Starts `program args` and waits until `addr` accepts connections.
    pub fn start(
        system: &str,
        program: &Path,
        args: &[String],
        addr: SocketAddr,
    ) -> Result<ServerProc, BenchError> {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| BenchError::Start {
                system: system.to_owned(),
                detail: format!("{}: {e}", program.display()),
            })?;
        let mut p = ServerProc {
            system: system.to_owned(),
            addr,
            child,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(p);
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                return Err(BenchError::Start {
                    system: system.to_owned(),
                    detail: format!("exited at start: {status}"),
                });
            }
            if Instant::now() > deadline {
                return Err(BenchError::Start {
                    system: system.to_owned(),
                    detail: format!("not listening on {addr} after {START_TIMEOUT:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A reading of its CPU time and memory.
    pub fn usage(&self) -> Usage {
        Usage::of(&format!("/proc/{}", self.pid()))
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time and memory of a process, from `/proc` (zeros where `/proc` is
/// missing).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// User plus system CPU seconds so far.
    pub cpu_s: f64,
    /// Resident memory now, bytes.
    pub rss: u64,
    /// Peak resident memory so far, bytes.
    pub rss_peak: u64,
}

impl Usage {
    /// Reads `<dir>/stat` and `<dir>/status` (`dir` is `/proc/<pid>` or
    /// `/proc/self`).
    pub fn of(dir: &str) -> Usage {
        let cpu_s = std::fs::read_to_string(format!("{dir}/stat"))
            .ok()
            .and_then(|s| parse_cpu_ticks(&s))
            .map_or(0.0, |t| t as f64 / CLOCK_TICKS_PER_S);
        let status = std::fs::read_to_string(format!("{dir}/status")).unwrap_or_default();
        Usage {
            cpu_s,
            rss: status_kib(&status, "VmRSS:") * 1024,
            rss_peak: status_kib(&status, "VmHWM:") * 1024,
        }
    }

    /// This process (the load generator).
    pub fn own() -> Usage {
        Usage::of("/proc/self")
    }
}

/// `USER_HZ`: the unit of the CPU fields in `/proc/<pid>/stat`; 100 on
/// every Linux architecture the bench runs on.
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The
/// command name (field 2) may hold spaces, so fields count from its `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ")" come field 3 (state) onwards: utime is field 14.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A free loopback port (bound and released; a race with another process
/// taking it in between is possible but unlikely).
pub fn free_port() -> Result<SocketAddr, BenchError> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// Looks `program` up on the `PATH`.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The arguments of `nats-server` on loopback.
pub fn nats_args(addr: SocketAddr) -> Vec<String> {
    vec![
        "-a".into(),
        addr.ip().to_string(),
        "-p".into(),
        addr.port().to_string(),
    ]
}

/// The arguments of `redis-server` on loopback: no persistence, and
/// pub/sub output buffers large enough that a subscriber is not cut off
/// during a few seconds of full-speed publishing (a cut counts as loss).
pub fn redis_args(addr: SocketAddr, _p: &Params) -> Vec<String> {
    vec![
        "--bind".into(),
        addr.ip().to_string(),
        "--port".into(),
        addr.port().to_string(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        "--protected-mode".into(),
        "no".into(),
        "--client-output-buffer-limit".into(),
        "pubsub 1gb 512mb 60".into(),
        "--maxclients".into(),
        "4096".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_fields_14_and_15_even_with_spaces_in_the_name() {
        let stat = "1234 (a b) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
    }

    #[test]
    fn status_fields_in_kib() {
        let s = "Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(status_kib(s, "VmRSS:"), 1024);
        assert_eq!(status_kib(s, "VmHWM:"), 2048);
        assert_eq!(status_kib(s, "VmSwap:"), 0);
    }

    #[test]
    fn own_usage_is_read() {
        let u = Usage::own();
        assert!(u.rss > 0);
        assert!(u.rss_peak >= u.rss);
    }
}
