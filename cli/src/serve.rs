//! `switchboard serve`.

use std::io::Write;

use switchboard_core::server::ServerConfig;
use switchboard_runtime::secret;
use switchboard_server as server;
use switchboard_server::config::ServerOptions;

use super::{parse_addr, stop_signal, CliError, Settings};

pub(crate) async fn run(s: &Settings) -> Result<(), CliError> {
    let (secret, created) = secret::load_or_create(&s.secret_file)?;
    let mut core = ServerConfig::new(s.cluster.clone(), secret);
    s.file.server.apply(&mut core);
    let mut opts = ServerOptions::new(core);
    opts.internal = parse_addr("internal", &s.internal)?;
    opts.external = parse_addr("external", &s.external)?;
    if let Some(n) = s.file.connections_max {
        opts.connections_max = n;
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
        "switchboard: monitor page at http://{0}/, API at http://{0}/v1/server; stop with Ctrl-C",
        handle.external_addr()
    );
    let _ = out.flush();
    drop(out);
    let stopped = stop_signal().await;
    tracing::info!("stop requested");
    handle.shutdown().await;
    stopped
}
