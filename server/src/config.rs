//! Server settings: embedded defaults, overridden by a TOML file, overridden
//! by flags and `SWITCHBOARD_*` environment variables (the CLI merges those
//! in `main.rs`; this module holds the file format and the result).
//!
//! ```toml
//! cluster = "switchboard"
//! internal = "127.0.0.1:3900"      # binary protocol, members only
//! external = "127.0.0.1:8100"      # HTTP, read-only
//! secret_file = "/var/lib/switchboard/secret"
//! connections_max = 1024
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

use serde::Deserialize;
use switchboard_core::frame::NAME_BYTES_MAX;
use switchboard_core::server::ServerConfig;

/// Default internal (member) listener.
pub const INTERNAL_DEFAULT: &str = "127.0.0.1:3900";
/// Default external (HTTP) listener.
pub const EXTERNAL_DEFAULT: &str = "127.0.0.1:8100";
/// Default cluster name.
pub const CLUSTER_DEFAULT: &str = "switchboard";
/// Default cap on open internal connections (members plus handshakes).
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Cluster name.
    pub cluster: Option<String>,
    /// Internal listener address.
    pub internal: Option<SocketAddr>,
    /// External listener address.
    pub external: Option<SocketAddr>,
    /// Secret file path.
    pub secret_file: Option<PathBuf>,
    /// Cap on open internal connections.
    pub connections_max: Option<usize>,
    /// State machine limits.
    #[serde(default)]
    pub server: CoreLimits,
}

/// State machine settings that may be overridden (see
/// [`ServerConfig`] for their meaning and defaults).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct CoreLimits {
    pub members_max: Option<usize>,
    pub handshakes_max: Option<usize>,
    pub handshake_timeout_ms: Option<u64>,
    pub heartbeat_interval_ms: Option<u32>,
    pub heartbeat_timeout_ms: Option<u32>,
    pub resume_window_ms: Option<u32>,
    pub restart_grace_ms: Option<u64>,
    pub member_queue_items_max: Option<usize>,
    pub member_queue_bytes_max: Option<usize>,
    pub slow_consumer_grace_ms: Option<u64>,
    pub sender_inflight_max: Option<usize>,
    pub message_bytes_max: Option<u32>,
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
            message_bytes_max
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
        if self.connections_max == 0 {
            return Err(invalid("connections_max", "must be at least 1"));
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
