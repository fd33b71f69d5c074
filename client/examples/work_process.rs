//! A work process: it joins the `workers` group, answers price requests,
//! announces and handles cache invalidations (custom events on topics
//! `cache/...`), and leaves with a goodbye on Ctrl-C.
//!
//! Against a running `switchboard serve` (same directory, so the default
//! secret file is found):
//!
//! ```text
//! cargo run -p switchboard-client --example work_process -- shop/w1
//! switchboard request --to anycast:workers apple     # prints: price of apple: 42
//! switchboard publish --topic cache/invalidate apple
//! ```
//!
//! Settings come from the same variables as the `switchboard` CLI:
//! `SWITCHBOARD_INTERNAL` (default `localhost:3900`), `SWITCHBOARD_CLUSTER`
//! (default `switchboard`), `SWITCHBOARD_SECRET_FILE` (default
//! `$XDG_STATE_HOME/switchboard/secret` or `.switchboard/secret`).

use std::future::Future;

use switchboard_client::{Event, Filter, Member, MemberConfig, RecvError};

/// What the work process did, returned when it stops.
#[derive(Debug, Default)]
pub struct Summary {
    /// Requests answered.
    pub answered: u64,
    /// Cache invalidations handled (its own included).
    pub invalidations: u64,
}

/// Runs the work process until `stop` resolves or the member closes.
pub async fn run(
    config: MemberConfig,
    stop: impl Future<Output = ()>,
) -> Result<Summary, switchboard_client::Error> {
    let (me, mut events) = Member::connect(config).await?;
    me.join("workers").await?;
    // Only custom events on `cache/...`; a subscription that is not read
    // fast enough reports how many it dropped, it never blocks the member.
    let mut cache = me.events(Filter::topic("cache/")).await?;
    me.publish_custom("cache/invalidate", format!("all (from {})", me.process()))
        .await?;
    println!("{}/{} is working", me.instance(), me.process());
    let mut summary = Summary::default();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            // What has arrived is handled before stopping.
            biased;
            ev = events.next() => match ev {
                Some(Event::Request(m)) => {
                    let item = String::from_utf8_lossy(&m.payload).into_owned();
                    println!("{} asks for the price of {item}", m.sender());
                    me.reply(m.reply_to(), format!("price of {item}: 42")).await?;
                    summary.answered += 1;
                }
                Some(Event::Message(m)) => {
                    println!("message from {}: {}", m.sender(), String::from_utf8_lossy(&m.payload));
                }
                Some(Event::Lagged { missed }) => eprintln!("fell behind: {missed} cluster events skipped"),
                Some(Event::Closed) | None => break,
                Some(_) => {}
            },
            n = cache.recv() => match n {
                Ok(n) => {
                    if let switchboard_client::ClusterEvent::Custom { topic, payload, .. } = &n.event {
                        println!("{topic}: {}", String::from_utf8_lossy(payload));
                        summary.invalidations += 1;
                    }
                }
                Err(RecvError::Lagged(k)) => eprintln!("missed {k} cache invalidations: dropping the whole cache"),
                Err(RecvError::Closed) => break,
            },
            () = &mut stop => break,
        }
    }
    me.goodbye().await;
    Ok(summary)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "work/w1".to_owned());
    let Some((instance, process)) = name.split_once('/') else {
        eprintln!("usage: work_process INSTANCE/PROCESS");
        return std::process::ExitCode::from(2);
    };
    let secret_file = std::env::var("SWITCHBOARD_SECRET_FILE").map_or_else(
        |_| switchboard_runtime::secret::default_path(),
        std::path::PathBuf::from,
    );
    let config = match MemberConfig::from_secret_file(
        var("SWITCHBOARD_INTERNAL", "localhost:3900"),
        var("SWITCHBOARD_CLUSTER", "switchboard"),
        secret_file,
        instance,
        process,
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("work_process: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match run(config, stop).await {
        Ok(s) => {
            println!(
                "answered {} requests, handled {} invalidations",
                s.answered, s.invalidations
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("work_process: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
