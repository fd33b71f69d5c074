//! `switchboard serve`.

use std::io::Write;

use switchboard_core::server::ServerConfig;
use switchboard_runtime::secret;
use switchboard_server as server;
use switchboard_server::config::{
    ConfigError, FileConfig, ServerOptions, TlsFileConfig, TlsOptions,
};

use super::{parse_addr, stop_signal, CliError, ServeLimits, Settings};
use switchboard_server::config::AuthMode;

pub(crate) async fn run(s: &Settings, limits: &ServeLimits) -> Result<(), CliError> {
    // SWITCHBOARD_SECRET, when set, replaces the secret file.
    let (secret, created, source) = match secret::from_env()? {
        Some(env) => (env, false, format!("${}", secret::SECRET_ENV)),
        None => {
            let (file, created) =
                secret::load_or_create_with(&s.secret_file, s.allow_readable_secret)?;
            (file, created, format!("file {}", s.secret_file.display()))
        }
    };
    let mut core = ServerConfig::new(s.cluster.clone(), secret);
    for path in s.file.extra_secret_files.iter().flatten() {
        core.extra_secrets.push(secret::load(path)?);
    }
    s.file.server.apply(&mut core);
    // A run marker next to the secret file: present while a server runs
    // and left behind by a crash. Without it this is a first start (or one
    // after a clean stop): no member can be coming back, so messages to
    // absent members are refused at once instead of held for the grace.
    let marker = run_marker(&s.secret_file);
    let first_start = created || !marker.exists();
    let grace_ms = core.restart_grace_ms;
    if first_start {
        core.restart_grace_ms = 0;
    }
    if let Err(e) = std::fs::write(&marker, b"a switchboard server runs (or crashed) here\n") {
        tracing::warn!(path = %marker.display(), error = %e, "cannot write the run marker");
    }
    let opts = options(s, limits, core)?;
    let tls = opts.tls.clone();
    let handle = server::run(opts).await?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "switchboard: cluster {:?}, secret from {}{}{}",
        s.cluster,
        source,
        if created { " (created)" } else { "" },
        match s.file.extra_secret_files.as_ref().map_or(0, Vec::len) {
            0 => String::new(),
            n => format!(", {n} more accepted"),
        }
    );
    let _ = writeln!(
        out,
        "switchboard: {}",
        if first_start {
            "first start (no run marker): no restart grace".to_owned()
        } else {
            format!(
                "restart after a crash (run marker found): restart grace {grace_ms} ms for members to come back"
            )
        }
    );
    let _ = writeln!(
        out,
        "switchboard: listening internal={} external={}{}",
        handle.internal_addr(),
        handle.external_addr(),
        match (&tls, s.auth) {
            (None, _) => String::new(),
            (Some(_), AuthMode::Secret) =>
                " (TLS; members authenticate with the secret)".to_owned(),
            (Some(_), AuthMode::Certificate) => {
                " (TLS; members authenticate with a client certificate)".to_owned()
            }
            (Some(_), AuthMode::Both) => {
                " (TLS; members authenticate with a client certificate and the secret)".to_owned()
            }
        }
    );
    let scheme = if tls.as_ref().is_some_and(|t| t.http) {
        "https"
    } else {
        "http"
    };
    let _ = writeln!(
        out,
        "switchboard: monitor page at {scheme}://{0}/, API at {scheme}://{0}/v1/server; stop with Ctrl-C",
        handle.external_addr()
    );
    let _ = out.flush();
    drop(out);
    let stopped = serve_until_stopped(&handle).await;
    tracing::info!("stop requested");
    handle.shutdown().await;
    if let Err(e) = std::fs::remove_file(&marker) {
        tracing::warn!(path = %marker.display(), error = %e, "cannot remove the run marker");
    }
    stopped
}

/// Waits for a stop signal; on SIGHUP, reloads the access rules file.
async fn serve_until_stopped(handle: &server::ServerHandle) -> Result<(), CliError> {
    let stop = stop_signal();
    tokio::pin!(stop);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).map_err(CliError::Signal)?;
        loop {
            tokio::select! {
                r = &mut stop => return r,
                _ = hup.recv() => match handle.reload_acl().await {
                    Ok(n) => tracing::info!(disconnected = n, "SIGHUP: access rules reloaded"),
                    Err(e) => tracing::warn!("SIGHUP: access rules not reloaded: {e}"),
                },
            }
        }
    }
    #[cfg(not(unix))]
    {
        stop.await
    }
}

/// The run marker's path: `server.running` next to the secret file.
fn run_marker(secret_file: &std::path::Path) -> std::path::PathBuf {
    secret_file.with_file_name("server.running")
}

/// The server's options from the settings, the `serve` limit flags and
/// the state machine's configuration: what `serve` runs with, and what
/// `--print-config` prints.
fn options(
    s: &Settings,
    limits: &ServeLimits,
    core: ServerConfig,
) -> Result<ServerOptions, CliError> {
    let mut opts = ServerOptions::new(core);
    opts.http_token = s.file.http_token.clone();
    opts.auth = s.auth;
    opts.acl_file = s.file.acl_file.clone();
    opts.allow_readable_secrets = s.allow_readable_secret;
    opts.tls = tls_options(s)?;
    opts.internal = parse_addr("internal", &s.internal)?;
    opts.external = parse_addr("external", &s.external)?;
    if let Some(n) = s.file.connections_max {
        opts.connections_max = n;
    }
    s.file.http.apply(&mut opts.http);
    let f = &s.file;
    if let Some(n) = limits.memory_max_bytes.or(f.memory_max_bytes) {
        opts.memory_max_bytes = n;
    }
    if let Some(n) = limits
        .handshakes_per_source_max
        .or(f.handshakes_per_source_max)
    {
        opts.handshakes_per_source_max = n;
    }
    if let Some(n) = limits.reassembly_timeout_ms {
        opts.core.reassembly_timeout_ms = n;
    }
    if let Some(n) = limits.reassembly_bytes_max {
        opts.core.reassembly_bytes_max = n;
    }
    let h = &mut opts.http;
    if let Some(n) = limits.http_connections_max {
        h.connections_max = n;
    }
    if let Some(n) = limits.http_header_timeout_ms {
        h.header_timeout_ms = n;
    }
    if let Some(n) = limits.http_request_timeout_ms {
        h.request_timeout_ms = n;
    }
    if let Some(n) = limits.http_idle_timeout_ms {
        h.idle_timeout_ms = n;
    }
    Ok(opts)
}

/// TLS from the file's `[tls]` table with the flags over it; `None` when
/// neither names a certificate.
fn tls_options(s: &Settings) -> Result<Option<TlsOptions>, CliError> {
    let mut t = s.file.tls.clone().unwrap_or_default();
    if let Some(c) = &s.tls.cert_file {
        t.cert_file = Some(c.clone());
    }
    if let Some(k) = &s.tls.key_file {
        t.key_file = Some(k.clone());
    }
    if let Some(ca) = &s.tls.ca_file {
        t.client_ca_file = Some(ca.clone());
    }
    if t == TlsFileConfig::default() {
        return Ok(None);
    }
    Ok(Some(t.resolve()?))
}

/// The effective settings as TOML: what `serve` would run with (the file,
/// environment and flags merged over the defaults), built by the same
/// [`options`] as `serve`. Neither the secret nor the HTTP token is
/// printed.
pub(crate) fn effective_config(s: &Settings, limits: &ServeLimits) -> Result<String, CliError> {
    // Any valid secret: only the limits are read from this config.
    let placeholder = switchboard_core::auth::Secret::new(vec![0u8; 32])
        .map_err(|e| invalid("secret", e.to_string()))?;
    let mut core = ServerConfig::new(s.cluster.clone(), placeholder);
    s.file.server.apply(&mut core);
    let opts = options(s, limits, core)?;
    let file = FileConfig::effective(
        &opts,
        &s.secret_file,
        s.file.extra_secret_files.clone().unwrap_or_default(),
    );
    let mut out = String::from("# switchboard serve: effective settings\n");
    if opts.http_token.is_some() {
        out += "# http_token is set (not printed)\n";
    }
    out += &file
        .to_toml()
        .map_err(|e| invalid("config", e.to_string()))?;
    Ok(out)
}

fn invalid(name: &'static str, detail: String) -> CliError {
    CliError::Config(ConfigError::Invalid { name, detail })
}
