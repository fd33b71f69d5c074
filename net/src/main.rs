//! The `switchboard` binary: the message server (`serve`), a live demo
//! cluster (`demo`), and thin commands over the client library (`members`,
//! `watch`, `send`, `request`).

mod cli;

/// mimalloc instead of the system allocator (feature `mimalloc`, off by
/// default): faster on the data path, which allocates and frees small
/// buffers at a high rate, but it keeps more memory per idle member
/// (docs/PERFORMANCE.md has the figures with both).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    if matches!(args.command, cli::Command::Bench(_)) {
        // The NATS client reports every closed connection at info level;
        // W5 closes a thousand of them.
        cli::init_tracing(&format!("{},async_nats=warn", args.log));
    } else {
        cli::init_tracing(&args.log);
    }
    if let cli::Command::BenchRelay { listen } = &args.command {
        // One thread of its own, no multi-thread runtime around it.
        return match switchboard_net::bench::relay::serve(*listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchboard: error: relay on {listen}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let built = match cli::runtime_threads(&args) {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: error: {e}");
            ExitCode::FAILURE
        }
    }
}
