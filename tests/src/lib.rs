//! # switchboard-tests
//!
//! End-to-end scenarios for Switchboard over real TCP on 127.0.0.1 with
//! OS-assigned ports. The scenarios live in `tests/` of this crate; this
//! library holds their helpers: a server started in-process and members
//! whose streams are collected, with every wait bounded in time.
#![deny(missing_docs)]

pub mod certs;
pub mod http;

use std::time::Duration;

use switchboard_client::{Event, EventStream, Member, MemberConfig};
use switchboard_core::auth::Secret;
use switchboard_core::server::ServerConfig;
use switchboard_server::config::ServerOptions;
use switchboard_server::{self as server, ServerHandle};
use tokio::sync::mpsc;

/// Cluster name used by the scenarios.
pub const CLUSTER: &str = "e2e";

/// Longest any single wait in a scenario may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The scenarios' cluster secret.
pub fn secret() -> Secret {
    match Secret::new(b"e2e-secret-e2e-secret-e2e-secret".to_vec()) {
        Ok(s) => s,
        Err(e) => panic!("test secret: {e}"),
    }
}

/// Server settings with short timers so that scenarios run in seconds.
pub fn server_config() -> ServerConfig {
    let mut c = ServerConfig::new(CLUSTER, secret());
    c.heartbeat_interval_ms = 200;
    c.heartbeat_timeout_ms = 1_000;
    c.resume_window_ms = 1_000;
    c.restart_grace_ms = 1_000;
    c
}

/// Starts a server on OS-assigned loopback ports.
pub async fn start_server(config: ServerConfig) -> ServerHandle {
    match server::run(ServerOptions::loopback_ephemeral(config)).await {
        Ok(h) => h,
        Err(e) => panic!("server did not start: {e}"),
    }
}

/// Member settings for `instance/process` against `server`, with fast
/// reconnects.
pub fn member_config(server: &ServerHandle, instance: &str, process: &str) -> MemberConfig {
    let mut c = MemberConfig::new(
        server.internal_addr().to_string(),
        CLUSTER,
        secret(),
        instance,
        process,
    );
    c.core.reconnect_min_ms = 20;
    c.core.reconnect_max_ms = 200;
    c.connect_timeout = WAIT;
    c
}

/// A member whose event stream is moved onto a channel by a task, so that
/// scenarios can wait for what it received.
#[derive(Debug)]
pub struct Node {
    /// The member's handle.
    pub member: Member,
    /// Everything its stream produced, in order.
    pub events: mpsc::UnboundedReceiver<Event>,
    /// Events already taken off `events` by a wait, in order.
    pub seen: Vec<Event>,
}

impl Node {
    /// Connects a member and starts collecting its stream.
    pub async fn connect(config: MemberConfig) -> Node {
        let (member, stream) = match Member::connect(config).await {
            Ok(x) => x,
            Err(e) => panic!("member did not connect: {e}"),
        };
        Node::collect(member, stream)
    }

    /// Starts collecting the stream of an already connected member.
    pub fn collect(member: Member, mut stream: EventStream) -> Node {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(ev) = stream.next().await {
                if tx.send(ev).is_err() {
                    return;
                }
            }
        });
        Node {
            member,
            events: rx,
            seen: Vec::new(),
        }
    }

    /// `instance/process`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.member.instance(), self.member.process())
    }

    /// Waits (at most [`WAIT`]) for the first event that `f` maps to
    /// `Some`, keeping every event seen on the way in `seen`.
    pub async fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut(&Event) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev)) => {
                    let hit = f(&ev);
                    self.seen.push(ev);
                    if let Some(t) = hit {
                        return t;
                    }
                }
                Ok(None) => panic!("{}: stream ended while waiting for {what}", self.name()),
                Err(_) => panic!(
                    "{}: timed out waiting for {what}; seen {:#?}",
                    self.name(),
                    self.seen
                ),
            }
        }
    }

    /// Waits for a message (or request) with exactly this payload and
    /// returns it.
    pub async fn wait_message(&mut self, payload: &str) -> switchboard_client::Message {
        let want = payload.as_bytes().to_vec();
        self.wait_for(&format!("message {payload:?}"), |ev| match ev {
            Event::Message(m) | Event::Request(m) if m.payload[..] == want[..] => Some(m.clone()),
            _ => None,
        })
        .await
    }

    /// Payloads of the messages seen so far, in order.
    pub fn payloads(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) | Event::Request(m) => {
                    Some(String::from_utf8_lossy(&m.payload).into_owned())
                }
                _ => None,
            })
            .collect()
    }
}

/// Unwraps a result in a test with the error's message.
pub fn ok<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> T {
    match r {
        Ok(t) => t,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Runs a future with the scenario's time bound.
pub async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(WAIT, f).await {
        Ok(x) => x,
        Err(_) => panic!("{what}: timed out after {WAIT:?}"),
    }
}

/// The `switchboard` binary built from this workspace, for tests that run it
/// as a child process.
///
/// `cargo test --workspace` builds it next to the test executables (the
/// binary's crate has integration tests of its own, so cargo builds the
/// binary before any test runs). When it is missing (say `cargo test -p
/// switchboard-tests` alone), it is built here with the same profile. The
/// variable `SWITCHBOARD_BIN` points at another build instead.
pub fn switchboard_bin() -> std::path::PathBuf {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("SWITCHBOARD_BIN") {
            return std::path::PathBuf::from(p);
        }
        let exe = ok("the test executable's path", std::env::current_exe());
        // target/<profile>/deps/<test> -> target/<profile>/switchboard
        let profile_dir = exe
            .parent()
            .and_then(std::path::Path::parent)
            .unwrap_or_else(|| panic!("no profile directory above {}", exe.display()));
        let bin = profile_dir.join(format!("switchboard{}", std::env::consts::EXE_SUFFIX));
        if !bin.exists() {
            let status = std::process::Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--profile",
                    "test",
                    "-p",
                    "switchboard",
                    "--bin",
                    "switchboard",
                ])
                .status();
            let status = ok("cargo build of the switchboard binary", status);
            assert!(
                status.success(),
                "cargo build of the switchboard binary failed"
            );
        }
        assert!(bin.exists(), "no switchboard binary at {}", bin.display());
        bin
    })
    .clone()
}

/// Connects from a given local address.
#[derive(Debug, Clone, Copy)]
pub struct BoundNet(pub std::net::IpAddr);

impl switchboard_runtime::net::Connector for BoundNet {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;

    #[allow(clippy::manual_async_fn)]
    fn connect(
        &self,
        addr: String,
    ) -> impl std::future::Future<
        Output = std::io::Result<(
            tokio::net::tcp::OwnedReadHalf,
            tokio::net::tcp::OwnedWriteHalf,
        )>,
    > + Send
           + 'static {
        let local = std::net::SocketAddr::new(self.0, 0);
        async move {
            let target = tokio::net::lookup_host(addr)
                .await?
                .next()
                .ok_or_else(|| std::io::Error::other("no address"))?;
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(local)?;
            let s = sock.connect(target).await?;
            s.set_nodelay(true)?;
            Ok(s.into_split())
        }
    }

    fn rng(&self) -> Box<dyn rand::RngCore + Send> {
        switchboard_runtime::net::entropy_rng()
    }
}
