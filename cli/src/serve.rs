//! `switchboard serve`.

use std::io::Write;

use switchboard_core::server::ServerConfig;
use switchboard_runtime::secret;
use switchboard_server as server;
use switchboard_server::config::ServerOptions;

use super::{parse_addr, stop_signal, CliError, Settings};

pub(crate) async fn run(s: &Settings) -> Result<(), CliError> {
    // SWITCHBOARD_SECRET, when set, replaces the secret file.
    let (secret, created, source) = match secret::from_env()? {
        Some(env) => (env, false, format!("${}", secret::SECRET_ENV)),
        None => {
            let (file, created) = secret::load_or_create(&s.secret_file)?;
            (file, created, format!("file {}", s.secret_file.display()))
        }
    };
    let mut core = ServerConfig::new(s.cluster.clone(), secret);
    for path in s.file.extra_secret_files.iter().flatten() {
        core.extra_secrets.push(secret::load(path)?);
    }
    s.file.server.apply(&mut core);
    let mut opts = ServerOptions::new(core);
    opts.http_token = s.file.http_token.clone();
    opts.internal = parse_addr("internal", &s.internal)?;
    opts.external = parse_addr("external", &s.external)?;
    if let Some(n) = s.file.connections_max {
        opts.connections_max = n;
    }
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
