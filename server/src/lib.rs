//! # switchboard-server
//!
//! The message server runtime: the core [`Server`] state machine on tokio.
//! [`run`] binds the member port (binary protocol) and the HTTP port
//! (read-only) and returns a [`ServerHandle`]; [`config`] resolves its
//! settings from a TOML file, flags and environment. [`run_with`] runs the
//! same tasks on a given listener and randomness (the network seam of
//! `switchboard_runtime::net`, used by the production-path simulator).
//!
//! ```text
//!  accept task ──Accepted──┐                       ┌──▶ writer task (conn 1) ──▶ socket
//!  reader task (conn 1) ─Bytes/Closed─▶ core task ─┼──▶ writer task (conn 2) ──▶ socket
//!  reader task (conn 2) ─┘   ▲   owns `Server`     └── read gates (watch) ──▶ readers
//!  HTTP task ──Query─────────┘   drains poll_output after every input,
//!                                sleeps until poll_timeout
//! ```
//!
//! * One task owns the state machine: no lock around it. Every other task
//!   talks to it over bounded channels ([`CORE_QUEUE_MAX`] messages in,
//!   [`conn::WRITE_QUEUE_MAX`] transmits out per connection).
//! * Readers hand whole reads (up to 64 KiB, many frames) to
//!   `handle_bytes`; writers concatenate everything queued for their socket
//!   into one write.
//! * `Server::wants_read(conn)` gates a reader through a watch channel.
//! * A connection whose writer queue is full is closed (its member may
//!   resume); the core's send window keeps this from happening to a peer
//!   that reads.
//! * The HTTP task (`http.rs`, routes in `api.rs`, `metrics.rs`,
//!   `events_sse.rs`, `page.rs`) asks the core task for a consistent
//!   [`Snapshot`](snapshot::Snapshot) per request and never waits in front
//!   of member traffic; event watchers read a broadcast ring the core task
//!   fills without waiting (`event_log.rs`). The documents are in
//!   [`api_view`]; endpoints and metrics are described in
//!   `docs/OPERATIONS.md`.
//!
//! [`Server`]: switchboard_core::server::Server

#![deny(missing_docs)]

pub mod acl;
mod api;
pub mod api_view;
pub mod config;
mod conn;
mod core_task;
mod event_log;
mod events_sse;
mod fd;
mod http;
mod metrics;
mod page;
mod snapshot;
mod view;

pub use core_task::MemoryUse;
pub use view::{MemberView, MembersView, StatsView};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use switchboard_runtime::net::{entropy_rng, Listener};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::config::{AuthMode, ConfigError, ServerOptions};
use crate::core_task::CoreMsg;
use switchboard_runtime::tls;

/// Messages queued to the core task at most; readers wait when it is full
/// (backpressure onto the sockets).
pub const CORE_QUEUE_MAX: usize = 4096;

/// How long a graceful shutdown waits for writers to flush.
pub const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The settings are inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The access rules file could not be loaded.
    #[error(transparent)]
    Acl(#[from] acl::AclError),
    /// The TLS files could not be loaded.
    #[error(transparent)]
    Tls(#[from] switchboard_runtime::tls::TlsError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({which} port): {source}")]
    Bind {
        /// `internal` or `external`.
        which: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A running server. Dropping the handle does not stop it; call
/// [`shutdown`](ServerHandle::shutdown) (graceful) or
/// [`kill`](ServerHandle::kill) (abrupt).
#[derive(Debug)]
pub struct ServerHandle {
    internal: SocketAddr,
    external: SocketAddr,
    shutdown: watch::Sender<bool>,
    core: JoinHandle<()>,
    accept: JoinHandle<()>,
    /// `None` when started by [`run_with`] (no HTTP port).
    http: Option<JoinHandle<()>>,
    /// The way to the core task, for reloads.
    core_tx: mpsc::Sender<CoreMsg>,
    /// The access rules file, if configured.
    acl_file: Option<std::path::PathBuf>,
    /// Whether credentials' secret files others may read are accepted.
    allow_readable_secrets: bool,
}

impl ServerHandle {
    /// The bound internal (member) address.
    pub fn internal_addr(&self) -> SocketAddr {
        self.internal
    }

    /// The bound external (HTTP) address (the configured one, unbound,
    /// when started by [`run_with`]).
    pub fn external_addr(&self) -> SocketAddr {
        self.external
    }

    /// Graceful shutdown: every member is told (`Goodbye`), pending
    /// transmits are flushed (up to [`SHUTDOWN_FLUSH_TIMEOUT`]), the
    /// listeners close. Resolves when done.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.accept.abort();
        let _ = self.core.await;
        // HTTP clients get the same time to finish their requests.
        if let Some(mut http) = self.http {
            if tokio::time::timeout(SHUTDOWN_FLUSH_TIMEOUT, &mut http)
                .await
                .is_err()
            {
                http.abort();
            }
        }
    }

    /// Stops at once without telling anyone, as a crash would: all state
    /// is lost and every connection drops.
    pub async fn kill(self) {
        self.accept.abort();
        self.core.abort();
        if let Some(http) = &self.http {
            http.abort();
        }
        let _ = self.accept.await;
        let _ = self.core.await;
        if let Some(http) = self.http {
            let _ = http.await;
        }
    }

    /// Resolves when the server stopped (after a shutdown).
    pub async fn stopped(&mut self) {
        let _ = (&mut self.core).await;
    }

    /// Reads the access rules file again and applies it: new connections
    /// are judged by the new rules, and every open connection they no
    /// longer permit is closed (a registered member is told why first);
    /// the credentials are replaced, and every member whose credential
    /// was removed or no longer permits its instance is told why and
    /// removed. Returns how many connections and members were closed or
    /// removed. A file (or a credential's secret file) that cannot be read
    /// or parsed changes nothing.
    pub async fn reload_acl(&self) -> Result<usize, ReloadError> {
        let Some(path) = &self.acl_file else {
            return Err(ReloadError::NoAclFile);
        };
        let acl = acl::Acl::load(path, self.allow_readable_secrets)?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.core_tx
            .send(core_task::CoreMsg::Acl { acl, reply })
            .await
            .map_err(|_| ReloadError::Stopped)?;
        rx.await.map_err(|_| ReloadError::Stopped)
    }

    /// What the server holds against its memory budget now
    /// (`memory_max_bytes`): the state machine's queues and buffers, the
    /// reads waiting for it and the transmits waiting for the writers;
    /// `None` once the server has stopped.
    pub async fn memory(&self) -> Option<MemoryUse> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.core_tx
            .send(core_task::CoreMsg::Memory(reply))
            .await
            .ok()?;
        rx.await.ok()
    }

    /// A trigger for a graceful shutdown that can be moved elsewhere (a
    /// signal handler).
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger(self.shutdown.clone())
    }
}

/// Why the access rules were not reloaded.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The server runs without an access rules file.
    #[error("no access rules file is configured (acl_file)")]
    NoAclFile,
    /// The file could not be read or parsed; the old rules stay.
    #[error(transparent)]
    Acl(#[from] acl::AclError),
    /// The server stopped.
    #[error("the server has stopped")]
    Stopped,
}

/// Starts a graceful shutdown of the server it came from.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    /// Starts the shutdown (idempotent).
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

/// Binds both listeners and starts the server. Returns once it accepts
/// connections. With [`ServerOptions::tls`] the member port (and, unless
/// turned off, the HTTP port) speaks TLS.
pub async fn run(mut opts: ServerOptions) -> Result<ServerHandle, ServerError> {
    opts.validate()?;
    if opts.auth == AuthMode::Certificate {
        opts.core.secret = switchboard_runtime::tls::certificate_auth_secret();
        opts.core.extra_secrets.clear();
    }
    // Load the TLS files before binding: a bad file is a config error.
    let tls = match &opts.tls {
        Some(t) => {
            let member = tls::server_config(&t.files)?;
            let http = t
                .http
                .then(|| {
                    tls::server_config(&tls::ServerTlsFiles {
                        client_ca: None,
                        ..t.files.clone()
                    })
                })
                .transpose()?;
            Some((member, http.map(tls::TlsAcceptor::from)))
        }
        None => None,
    };
    let internal = TcpListener::bind(opts.internal)
        .await
        .map_err(|source| ServerError::Bind {
            which: "internal",
            addr: opts.internal,
            source,
        })?;
    let external = TcpListener::bind(opts.external)
        .await
        .map_err(|source| ServerError::Bind {
            which: "external",
            addr: opts.external,
            source,
        })?;
    let external_addr = external.local_addr().map_err(|source| ServerError::Bind {
        which: "external",
        addr: opts.external,
        source,
    })?;
    match tls {
        Some((member, http_tls)) => {
            let timeout = Duration::from_millis(opts.core.handshake_timeout_ms);
            let internal = tls::TlsListener::new(internal, member, timeout);
            let failures = internal.failures();
            start(
                opts,
                internal,
                Some(HttpPort {
                    listener: external,
                    addr: external_addr,
                    tls: http_tls,
                    tls_failures: Some(failures),
                }),
                entropy_rng(),
            )
        }
        None => start(
            opts,
            internal,
            Some(HttpPort {
                listener: external,
                addr: external_addr,
                tls: None,
                tls_failures: None,
            }),
            entropy_rng(),
        ),
    }
}

/// The bound HTTP port and its TLS, if any.
struct HttpPort {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<tls::TlsAcceptor>,
    /// The member port's failed TLS handshakes, for `/metrics`.
    tls_failures: Option<tls::TlsFailures>,
}

/// Starts the server's member port on `listener`, its state machine on
/// `rng`, without the HTTP port: the same accept loop, connection tasks
/// and core task as [`run`], on another network (a simulated one).
pub fn run_with<L: Listener>(
    opts: ServerOptions,
    listener: L,
    rng: Box<dyn RngCore + Send>,
) -> Result<ServerHandle, ServerError> {
    opts.validate()?;
    start(opts, listener, None, rng)
}

fn start<L: Listener>(
    mut opts: ServerOptions,
    internal: L,
    external: Option<HttpPort>,
    rng: Box<dyn RngCore + Send>,
) -> Result<ServerHandle, ServerError> {
    let internal_addr = internal.local_addr().map_err(|source| ServerError::Bind {
        which: "internal",
        addr: opts.internal,
        source,
    })?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (core_tx, core_rx) = mpsc::channel(CORE_QUEUE_MAX);
    let (done_tx, done_rx) = mpsc::channel::<()>(1);
    let cluster = opts.core.cluster.clone();
    let opts_auth = opts.auth;
    let allow_readable_secrets = opts.allow_readable_secrets;
    let acl = opts
        .acl_file
        .as_deref()
        .map(|p| acl::Acl::load(p, allow_readable_secrets))
        .transpose()?;
    if let Some(a) = &acl {
        opts.core.credentials = a.credentials().clone();
    }
    let acl_rules = acl.as_ref().map(|a| a.rules().len());
    let credentials = acl
        .as_ref()
        .map(|a| a.credentials().secrets.len() + a.credentials().certificates.len());
    let acl_file = opts.acl_file.clone();

    // Reads waiting for the state machine take at most a sixteenth of the
    // memory budget (64 MiB of the default 1 GiB), and room for one read.
    let input_bytes_max = (opts.memory_max_bytes / 16).max(switchboard_runtime::io::READ_BYTES);
    let input = Arc::new(Semaphore::new(input_bytes_max));
    let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let guard = core_task::Guard {
        handshakes_per_source_max: opts.handshakes_per_source_max,
        memory_max_bytes: opts.memory_max_bytes,
        input: input.clone(),
        input_bytes_max,
        queued: queued.clone(),
        acl,
    };
    let accept = tokio::spawn(conn::accept_loop(
        internal,
        opts.connections_max,
        core_tx.clone(),
        done_tx,
        input,
        queued,
    ));
    let mut http_limits = opts.http;
    http_limits.connections_max = fd::reserve(opts.connections_max, http_limits.connections_max);
    let external_addr = external.as_ref().map_or(opts.external, |p| p.addr);
    let tls_on = opts.tls.is_some();
    let http_tls = external.as_ref().is_some_and(|p| p.tls.is_some());
    let http = external.map(|port| {
        tokio::spawn(http::serve(
            port.listener,
            port.tls,
            port.tls_failures,
            core_tx.clone(),
            shutdown_rx.clone(),
            http_limits,
            opts.http_token.clone(),
        ))
    });
    let core_handle_tx = core_tx.clone();
    let core = tokio::spawn(core_task::run(
        opts.core,
        guard,
        core_rx,
        core_tx,
        shutdown_rx,
        done_rx,
        rng,
    ));
    tracing::info!(
        %cluster,
        internal = %internal_addr,
        external = %external_addr,
        tls = tls_on,
        http_tls,
        auth = ?opts_auth,
        access_rules = ?acl_rules,
        credentials = ?credentials,
        "switchboard server listening"
    );
    Ok(ServerHandle {
        internal: internal_addr,
        external: external_addr,
        shutdown: shutdown_tx,
        core,
        accept,
        http,
        core_tx: core_handle_tx,
        acl_file,
        allow_readable_secrets,
    })
}
