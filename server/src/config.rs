//! Server settings: embedded defaults, overridden by a TOML file, overridden
//! by flags and `SWITCHBOARD_*` environment variables (the CLI merges those
//! in `main.rs`; this module holds the file format and the result).
//!
//! ```toml
//! cluster = "switchboard"
//! internal = "127.0.0.1:3900"      # binary protocol, members only
//! external = "127.0.0.1:8100"      # HTTP, read-only
//! secret_file = "/var/lib/switchboard/secret"
//! extra_secret_files = ["/var/lib/switchboard/secret.old"]  # also accepted (rotation)
//! http_token = "..."               # unlocks member ids on the HTTP port
//! connections_max = 1024
//! handshakes_per_source_max = 16  # pending handshakes per client address
//! memory_max_bytes = 1073741824    # server-wide memory budget
//! auth = "secret"                  # or "certificate" or "both" (needs [tls])
//! acl_file = "/etc/switchboard/acl.toml"  # who may connect (reloaded on SIGHUP)
//!
//! [tls]                            # TLS on the member port (and HTTP)
//! cert_file = "/etc/switchboard/server.pem"
//! key_file = "/etc/switchboard/server.key"
//! client_ca_file = "/etc/switchboard/members-ca.pem"  # auth with certificates
//! http = true                      # the HTTP port too (default)
//!
//! [http]                           # the external port (all optional)
//! connections_max = 256
//! header_timeout_ms = 5000
//! request_timeout_ms = 10000
//! idle_timeout_ms = 30000
//!
//! [server]                         # state machine limits (all optional)
//! members_max = 600
//! heartbeat_interval_ms = 1000
//! heartbeat_timeout_ms = 5000
//! resume_window_ms = 10000
//! restart_grace_ms = 6000
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use switchboard_core::frame::{EXTRA_PROOFS_MAX, NAME_BYTES_MAX};
use switchboard_core::server::ServerConfig;

/// Default internal (member) listener.
pub const INTERNAL_DEFAULT: &str = "127.0.0.1:3900";
/// Default external (HTTP) listener.
pub const EXTERNAL_DEFAULT: &str = "127.0.0.1:8100";
/// Default cluster name.
pub const CLUSTER_DEFAULT: &str = "switchboard";
/// Default cap on open internal connections (members plus handshakes).
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;
/// Default cap on handshakes in progress from one client address.
pub const HANDSHAKES_PER_SOURCE_MAX_DEFAULT: usize = 16;
/// Default server-wide memory budget, bytes (1 GiB).
pub const MEMORY_MAX_BYTES_DEFAULT: usize = 1024 * 1024 * 1024;
/// Smallest memory budget accepted, bytes.
pub const MEMORY_MAX_BYTES_MIN: usize = 16 * 1024 * 1024;
/// Default cap on open HTTP connections.
pub const HTTP_CONNECTIONS_MAX_DEFAULT: usize = 256;
/// Default time an HTTP client has to send a request's headers.
pub const HTTP_HEADER_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Default time one HTTP request may take, headers to response.
pub const HTTP_REQUEST_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default lifetime of an HTTP connection with no request in progress.
pub const HTTP_IDLE_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Largest config file read, bytes.
const CONFIG_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// What is wrong with the settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause (with line and column).
        #[source]
        source: toml::de::Error,
    },
    /// The config file is too large to be a config file.
    #[error("config file {path} is larger than {CONFIG_FILE_BYTES_MAX} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A setting has a value that cannot work.
    #[error("invalid setting {name}: {detail}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// Why.
        detail: String,
    },
}

/// The TOML config file. Every field is optional; unknown fields are an
/// error (a typo must not be silently ignored).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Cluster name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Internal listener address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal: Option<SocketAddr>,
    /// External listener address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<SocketAddr>,
    /// Secret file path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Bearer token that unlocks session material (member ids,
    /// incarnations) on the HTTP port; without it they are omitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_token: Option<String>,
    /// Further secret files whose secrets are accepted too, while a
    /// cluster rolls to a new secret (at most `EXTRA_PROOFS_MAX`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_secret_files: Option<Vec<PathBuf>>,
    /// Cap on open internal connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_max: Option<usize>,
    /// Cap on handshakes in progress from one client address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshakes_per_source_max: Option<usize>,
    /// Server-wide memory budget, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_max_bytes: Option<usize>,
    /// How members authenticate on the member port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthMode>,
    /// TLS on the member port (and the HTTP port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFileConfig>,
    /// Access rules of the member port (which source addresses may
    /// connect); reloaded on SIGHUP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl_file: Option<PathBuf>,
    /// External (HTTP) port limits.
    #[serde(default)]
    pub http: HttpFileLimits,
    /// State machine limits.
    #[serde(default)]
    pub server: CoreLimits,
}

/// How a member proves it may join, on the member port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// The cluster secret (challenge-response); TLS, when on, only
    /// encrypts and authenticates the server.
    #[default]
    Secret,
    /// A client certificate that chains to `tls.client_ca_file`, checked
    /// during the TLS handshake; no secret is needed.
    Certificate,
    /// Both: a valid client certificate and the secret.
    Both,
}

impl AuthMode {
    /// True when the member port requires client certificates.
    pub fn needs_certificate(self) -> bool {
        matches!(self, AuthMode::Certificate | AuthMode::Both)
    }

    /// Parses `secret`, `certificate` or `both`.
    pub fn parse(s: &str) -> Result<AuthMode, ConfigError> {
        match s {
            "secret" => Ok(AuthMode::Secret),
            "certificate" => Ok(AuthMode::Certificate),
            "both" => Ok(AuthMode::Both),
            _ => Err(invalid(
                "auth",
                format!("expected secret, certificate or both, got {s:?}"),
            )),
        }
    }
}

/// The `[tls]` table: the server's certificate and key (PEM), the CA that
/// client certificates must chain to, and whether the HTTP port uses TLS
/// too.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsFileConfig {
    /// The server's certificate chain, PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// The server's private key, PEM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// CA certificates, PEM, that members' certificates must chain to
    /// (with `auth = "certificate"` or `"both"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// Serve the HTTP port with TLS too (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<bool>,
}

/// TLS of a running server, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The server's certificate and key, and the client CA.
    pub files: switchboard_runtime::tls::ServerTlsFiles,
    /// The HTTP port uses TLS too.
    pub http: bool,
}

impl TlsFileConfig {
    /// The resolved settings: `cert_file` and `key_file` are required.
    pub fn resolve(&self) -> Result<TlsOptions, ConfigError> {
        let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) else {
            return Err(invalid(
                "tls",
                "both tls.cert_file and tls.key_file are required",
            ));
        };
        Ok(TlsOptions {
            files: switchboard_runtime::tls::ServerTlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.client_ca_file.clone(),
            },
            http: self.http.unwrap_or(true),
        })
    }
}

/// State machine settings that may be overridden (see
/// [`ServerConfig`] for their meaning and defaults).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct CoreLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members_max: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshakes_max: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_window_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_grace_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_queue_items_max: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_queue_bytes_max: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_consumer_grace_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_inflight_max: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_bytes_max: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reassembly_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reassembly_bytes_max: Option<usize>,
}

/// External (HTTP) port limits that may be overridden (see
/// [`HttpLimits`]).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct HttpFileLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_max: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
}

impl HttpFileLimits {
    /// Applies the overrides to `h`.
    pub fn apply(&self, h: &mut HttpLimits) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { h.$f = v; } )* };
        }
        set!(
            connections_max,
            header_timeout_ms,
            request_timeout_ms,
            idle_timeout_ms
        );
    }
}

/// Limits of the external (HTTP) port. Its connections never count
/// against the member port's `connections_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Open HTTP connections at most; beyond it a new one is closed at
    /// once.
    pub connections_max: usize,
    /// A client that has not sent a request's headers this long after the
    /// connection opened (or after its previous response) is disconnected.
    pub header_timeout_ms: u64,
    /// A request not answered within this time ends its connection.
    pub request_timeout_ms: u64,
    /// A connection is closed after this long, whatever it does: idle
    /// keep-alive connections cannot pile up.
    pub idle_timeout_ms: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            connections_max: HTTP_CONNECTIONS_MAX_DEFAULT,
            header_timeout_ms: HTTP_HEADER_TIMEOUT_MS_DEFAULT,
            request_timeout_ms: HTTP_REQUEST_TIMEOUT_MS_DEFAULT,
            idle_timeout_ms: HTTP_IDLE_TIMEOUT_MS_DEFAULT,
        }
    }
}

impl CoreLimits {
    /// Applies the overrides to `c`.
    pub fn apply(&self, c: &mut ServerConfig) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        set!(
            members_max,
            handshakes_max,
            handshake_timeout_ms,
            heartbeat_interval_ms,
            heartbeat_timeout_ms,
            resume_window_ms,
            restart_grace_ms,
            member_queue_items_max,
            member_queue_bytes_max,
            slow_consumer_grace_ms,
            sender_inflight_max,
            message_bytes_max,
            reassembly_timeout_ms,
            reassembly_bytes_max
        );
    }
}

impl FileConfig {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let read_err = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        if meta.len() > CONFIG_FILE_BYTES_MAX {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        Self::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Parses config text.
    pub fn parse(text: &str) -> Result<FileConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// The file that gives exactly `opts` (every key set), for printing
    /// the effective settings. The HTTP token is left out: it is a secret.
    pub fn effective(
        opts: &ServerOptions,
        secret_file: &Path,
        extra_secret_files: Vec<PathBuf>,
    ) -> FileConfig {
        let c = &opts.core;
        FileConfig {
            cluster: Some(c.cluster.clone()),
            internal: Some(opts.internal),
            external: Some(opts.external),
            secret_file: Some(secret_file.to_owned()),
            http_token: None,
            extra_secret_files: Some(extra_secret_files),
            connections_max: Some(opts.connections_max),
            handshakes_per_source_max: Some(opts.handshakes_per_source_max),
            memory_max_bytes: Some(opts.memory_max_bytes),
            auth: Some(opts.auth),
            acl_file: opts.acl_file.clone(),
            tls: opts.tls.as_ref().map(|t| TlsFileConfig {
                cert_file: Some(t.files.cert.clone()),
                key_file: Some(t.files.key.clone()),
                client_ca_file: t.files.client_ca.clone(),
                http: Some(t.http),
            }),
            http: HttpFileLimits {
                connections_max: Some(opts.http.connections_max),
                header_timeout_ms: Some(opts.http.header_timeout_ms),
                request_timeout_ms: Some(opts.http.request_timeout_ms),
                idle_timeout_ms: Some(opts.http.idle_timeout_ms),
            },
            server: CoreLimits {
                members_max: Some(c.members_max),
                handshakes_max: Some(c.handshakes_max),
                handshake_timeout_ms: Some(c.handshake_timeout_ms),
                heartbeat_interval_ms: Some(c.heartbeat_interval_ms),
                heartbeat_timeout_ms: Some(c.heartbeat_timeout_ms),
                resume_window_ms: Some(c.resume_window_ms),
                restart_grace_ms: Some(c.restart_grace_ms),
                member_queue_items_max: Some(c.member_queue_items_max),
                member_queue_bytes_max: Some(c.member_queue_bytes_max),
                slow_consumer_grace_ms: Some(c.slow_consumer_grace_ms),
                sender_inflight_max: Some(c.sender_inflight_max),
                message_bytes_max: Some(c.message_bytes_max),
                reassembly_timeout_ms: Some(c.reassembly_timeout_ms),
                reassembly_bytes_max: Some(c.reassembly_bytes_max),
            },
        }
    }

    /// This file as TOML text that [`parse`](FileConfig::parse) accepts.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

/// Everything [`server::run`](crate::run) needs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Internal (member) listener; port 0 picks a free port.
    pub internal: SocketAddr,
    /// External (HTTP) listener; port 0 picks a free port.
    pub external: SocketAddr,
    /// Cap on open internal connections; beyond it new ones are closed at
    /// once.
    pub connections_max: usize,
    /// Handshakes in progress from one client IP address at most; beyond it
    /// a new connection from that address gets `Reject{ServerFull}` at once
    /// (the others' handshakes are untouched).
    pub handshakes_per_source_max: usize,
    /// Server-wide memory budget, bytes: what peers make the server hold
    /// (stream queues, deferred frames, partial chunked messages, control
    /// lanes, read buffers and reads waiting for the state machine). Over
    /// it, the member holding the most is cut off, until under it again.
    pub memory_max_bytes: usize,
    /// The external (HTTP) port's limits.
    pub http: HttpLimits,
    /// Bearer token a reader of the HTTP port must present
    /// (`Authorization: Bearer <token>`) to see member ids and
    /// incarnations; without it, or with no token configured, they are
    /// omitted.
    pub http_token: Option<String>,
    /// How members authenticate. With [`AuthMode::Certificate`] the
    /// state machine's secret is replaced by the public
    /// [`certificate_auth_secret`](switchboard_runtime::tls::certificate_auth_secret).
    pub auth: AuthMode,
    /// TLS on the member port (and the HTTP port); `None` is plain TCP.
    pub tls: Option<TlsOptions>,
    /// The member port's access rules file: when set, only the source
    /// addresses it permits may connect (first matching rule wins, no
    /// match denies). [`ServerHandle::reload_acl`](crate::ServerHandle::reload_acl)
    /// reads it again.
    pub acl_file: Option<PathBuf>,
    /// Accept secret files (the credentials' in the access rules file)
    /// that group or others may read, with a warning, instead of refusing
    /// them.
    pub allow_readable_secrets: bool,
    /// The state machine's settings (cluster, secret, limits).
    pub core: ServerConfig,
}

impl ServerOptions {
    /// Options with the default listeners and connection cap.
    pub fn new(core: ServerConfig) -> ServerOptions {
        ServerOptions {
            internal: parse_default(INTERNAL_DEFAULT),
            external: parse_default(EXTERNAL_DEFAULT),
            connections_max: CONNECTIONS_MAX_DEFAULT,
            handshakes_per_source_max: HANDSHAKES_PER_SOURCE_MAX_DEFAULT,
            memory_max_bytes: MEMORY_MAX_BYTES_DEFAULT,
            http: HttpLimits::default(),
            http_token: None,
            auth: AuthMode::Secret,
            tls: None,
            acl_file: None,
            allow_readable_secrets: false,
            core,
        }
    }

    /// Options listening on OS-assigned loopback ports (for tests and the
    /// demo).
    pub fn loopback_ephemeral(core: ServerConfig) -> ServerOptions {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        ServerOptions {
            internal: any,
            external: any,
            ..ServerOptions::new(core)
        }
    }

    /// Checks that the settings can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_cluster(&self.core.cluster)?;
        let c = &self.core;
        if c.extra_secrets.len() > EXTRA_PROOFS_MAX {
            return Err(invalid(
                "extra_secret_files",
                format!(
                    "at most {EXTRA_PROOFS_MAX} secrets besides the server's own, got {}",
                    c.extra_secrets.len()
                ),
            ));
        }
        if self.connections_max == 0 {
            return Err(invalid("connections_max", "must be at least 1"));
        }
        if self.handshakes_per_source_max == 0 {
            return Err(invalid("handshakes_per_source_max", "must be at least 1"));
        }
        if self.memory_max_bytes < MEMORY_MAX_BYTES_MIN {
            return Err(invalid(
                "memory_max_bytes",
                format!(
                    "must be at least {MEMORY_MAX_BYTES_MIN} bytes, got {}",
                    self.memory_max_bytes
                ),
            ));
        }
        let h = &self.http;
        if h.connections_max == 0 {
            return Err(invalid("http.connections_max", "must be at least 1"));
        }
        for (name, v) in [
            ("http.header_timeout_ms", h.header_timeout_ms),
            ("http.request_timeout_ms", h.request_timeout_ms),
            ("http.idle_timeout_ms", h.idle_timeout_ms),
        ] {
            if v == 0 {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        if c.members_max == 0 {
            return Err(invalid("server.members_max", "must be at least 1"));
        }
        if c.heartbeat_interval_ms == 0 || c.heartbeat_timeout_ms <= c.heartbeat_interval_ms {
            return Err(invalid(
                "server.heartbeat_timeout_ms",
                format!(
                    "must be larger than heartbeat_interval_ms ({} <= {})",
                    c.heartbeat_timeout_ms, c.heartbeat_interval_ms
                ),
            ));
        }
        match (&self.tls, self.auth.needs_certificate()) {
            (None, true) => {
                return Err(invalid(
                    "auth",
                    "certificate authentication needs TLS ([tls] with cert_file, key_file and client_ca_file)",
                ))
            }
            (Some(t), true) if t.files.client_ca.is_none() => {
                return Err(invalid(
                    "tls.client_ca_file",
                    "required with auth = \"certificate\" or \"both\" (the CA members' certificates chain to)",
                ))
            }
            (Some(t), false) if t.files.client_ca.is_some() => {
                return Err(invalid(
                    "tls.client_ca_file",
                    "set, but auth = \"secret\" does not ask for client certificates; set auth = \"certificate\" or \"both\"",
                ))
            }
            _ => {}
        }
        if self.internal == self.external && self.internal.port() != 0 {
            return Err(invalid(
                "external",
                format!("must differ from the internal address {}", self.internal),
            ));
        }
        Ok(())
    }
}

/// Checks a cluster name.
pub fn validate_cluster(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX {
        return Err(invalid(
            "cluster",
            format!("must be 1 to {NAME_BYTES_MAX} bytes, got {}", name.len()),
        ));
    }
    Ok(())
}

fn invalid(name: &'static str, detail: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        detail: detail.into(),
    }
}

fn parse_default(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_config_parses_and_rejects_typos() {
        let ok = FileConfig::parse(
            "cluster = \"c\"\ninternal = \"127.0.0.1:1\"\n[server]\nheartbeat_timeout_ms = 900\n",
        );
        let Ok(ok) = ok else { panic!("{ok:?}") };
        assert_eq!(ok.cluster.as_deref(), Some("c"));
        assert_eq!(ok.server.heartbeat_timeout_ms, Some(900));
        assert!(FileConfig::parse("clustr = \"c\"").is_err());
        let limits = FileConfig::parse(
            "memory_max_bytes = 67108864\nhandshakes_per_source_max = 4\n[http]\nheader_timeout_ms = 500\n",
        );
        let Ok(limits) = limits else {
            panic!("{limits:?}")
        };
        assert_eq!(limits.memory_max_bytes, Some(64 << 20));
        assert_eq!(limits.handshakes_per_source_max, Some(4));
        let mut h = HttpLimits::default();
        limits.http.apply(&mut h);
        assert_eq!(h.header_timeout_ms, 500);
        assert!(FileConfig::parse("[http]\nheader_timeout = 1\n").is_err());
        assert!(FileConfig::parse("internal = \"nope\"").is_err());
    }

    #[test]
    fn defaults_parse() {
        assert_eq!(
            INTERNAL_DEFAULT.parse::<SocketAddr>().ok(),
            Some(parse_default(INTERNAL_DEFAULT))
        );
        assert_eq!(
            EXTERNAL_DEFAULT.parse::<SocketAddr>().ok(),
            Some(parse_default(EXTERNAL_DEFAULT))
        );
    }
}
