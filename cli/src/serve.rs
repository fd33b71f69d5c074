//! `switchboard serve`.

use std::io::Write;

use switchboard_core::server::ServerConfig;
use switchboard_runtime::secret;
use switchboard_server as server;
use switchboard_server::config::ServerOptions;

use super::{parse_addr, stop_signal, CliError, ServeLimits, Settings};

pub(crate) async fn run(s: &Settings, limits: &ServeLimits) -> Result<(), CliError> {
    let (secret, created) = secret::load_or_create(&s.secret_file)?;
    let mut core = ServerConfig::new(s.cluster.clone(), secret);
    s.file.server.apply(&mut core);
    let mut opts = ServerOptions::new(core);
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
    let handle = server::run(opts).await?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "switchboard: cluster {:?}, secret file {}{}",
        s.cluster,
        s.secret_file.display(),
        if created { " (created)" } else { "" }
    );
    let _ = writeln!(
        out,
        "switchboard: listening internal={} external={}",
        handle.internal_addr(),
        handle.external_addr()
    );
    let _ = writeln!(
        out,
        "switchboard: try `curl http://{}/members`; stop with Ctrl-C",
        handle.external_addr()
    );
    let _ = out.flush();
    drop(out);
    let stopped = stop_signal().await;
    tracing::info!("stop requested");
    handle.shutdown().await;
    stopped
}
