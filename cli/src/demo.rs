//! `switchboard demo`: a server and 3 instances × 3 work processes on
//! loopback, exchanging realistic traffic, with a live summary line.
//!
//! The story: every process broadcasts cache invalidations and asks
//! processes of other instances for prices (request/reply); the `batch`
//! group takes anycast jobs; at 30% of the run a process stops its `ICM`
//! service and starts it again at 50%; at 40% a process crashes (its
//! connection drops without a goodbye) and at 60% it comes back as a new
//! incarnation, superseding the old one.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use switchboard_client::{member, Event, Filter, Member, MemberConfig};
use switchboard_core::auth::Secret;
use switchboard_core::server::ServerConfig;
use switchboard_server as server;
use switchboard_server::config::ServerOptions;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::print::Names;
use super::{stop_signal, CliError};

const INSTANCES: usize = 3;
const PROCESSES: usize = 3;
const CLUSTER: &str = "demo";
/// Pause between two rounds of a worker's traffic.
const ROUND: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    acked: AtomicU64,
    nacked: AtomicU64,
    delivered: AtomicU64,
    requests_ok: AtomicU64,
    requests_failed: AtomicU64,
    events: AtomicU64,
}

struct Worker {
    member: Member,
    tasks: Vec<JoinHandle<()>>,
}

impl Worker {
    async fn crash(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.member.kill().await;
    }

    async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.member.goodbye().await;
    }
}

pub(crate) async fn run(seconds: u64) -> Result<(), CliError> {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill(&mut key[..]);
    let secret = Secret::new(key.to_vec()).map_err(|e| CliError::Flag {
        flag: "secret",
        value: String::new(),
        detail: e.to_string(),
    })?;
    let mut core = ServerConfig::new(CLUSTER, secret.clone());
    // A fresh server: nobody has to come back, a short grace will do
    // (multicasts wait for its end).
    core.resume_window_ms = 1000;
    core.restart_grace_ms = 1000;
    let srv = server::run(ServerOptions::loopback_ephemeral(core)).await?;
    let addr = srv.internal_addr().to_string();
    println!(
        "demo: server on {addr}; {INSTANCES} instances × {PROCESSES} work processes for {seconds} s; Ctrl-C stops",
    );
    println!(
        "demo: monitor page at http://{0}/ (API under http://{0}/v1/, metrics at http://{0}/metrics)",
        srv.external_addr()
    );
    print_legend(seconds);
    let stats = Arc::new(Stats::default());
    let start = Instant::now();
    let mut workers = Vec::new();
    for i in 0..INSTANCES {
        for p in 0..PROCESSES {
            let observer = i == 0 && p == 0;
            workers.push(start_worker(&addr, &secret, i, p, observer, &stats, start).await?);
        }
    }

    let total = Duration::from_secs(seconds.max(1));
    let at = |frac: f64| start + total.mul_f64(frac);
    let mut script = vec![
        (at(0.3), Step::ServiceDown),
        (at(0.4), Step::Crash),
        (at(0.5), Step::ServiceUp),
        (at(0.6), Step::Restart),
    ];
    script.reverse();
    let crash_idx = INSTANCES * PROCESSES - 1; // i3/w2
    let service_idx = PROCESSES + 1; // i2/w1
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = (Instant::now(), 0u64);
    let stop = stop_signal();
    tokio::pin!(stop);
    let end = start + total;
    loop {
        let next_step = script.last().map(|(t, _)| *t).unwrap_or(end);
        tokio::select! {
            r = &mut stop => { r?; println!("demo: interrupted"); break; }
            _ = tokio::time::sleep_until(end) => break,
            _ = tokio::time::sleep_until(next_step), if !script.is_empty() => {
                let Some((_, step)) = script.pop() else { continue };
                match step {
                    Step::ServiceDown | Step::ServiceUp => {
                        let up = matches!(step, Step::ServiceUp);
                        let w = &workers[service_idx];
                        say(start, &format!("{}/{} {} its ICM service", w.member.instance(), w.member.process(), if up { "starts" } else { "stops" }));
                        if let Err(e) = w.member.service_state("ICM", up).await {
                            say(start, &format!("publish failed: {e}"));
                        }
                    }
                    Step::Crash => {
                        let w = workers.remove(crash_idx);
                        say(start, &format!("{}/{} crashes (connection dropped, no goodbye)", w.member.instance(), w.member.process()));
                        w.crash().await;
                    }
                    Step::Restart => {
                        say(start, &format!("i{}/w{} restarts as a new incarnation", INSTANCES, PROCESSES - 1));
                        let w = start_worker(&addr, &secret, INSTANCES - 1, PROCESSES - 1, false, &stats, start).await?;
                        workers.push(w);
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let delivered = stats.delivered.load(Relaxed);
                let rate = (delivered - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
                last = (now, delivered);
                println!(
                    "[{:5.1}s] members {} | {:>7.0} msg/s delivered | sent {} acked {} nacked {} | requests {} ok {} failed | events {}",
                    now.duration_since(start).as_secs_f64(),
                    workers.len(),
                    rate,
                    stats.sent.load(Relaxed),
                    stats.acked.load(Relaxed),
                    stats.nacked.load(Relaxed),
                    stats.requests_ok.load(Relaxed),
                    stats.requests_failed.load(Relaxed),
                    stats.events.load(Relaxed),
                );
            }
        }
    }
    for w in workers {
        w.stop().await;
    }
    srv.shutdown().await;
    let secs = start.elapsed().as_secs_f64().max(1e-3);
    let delivered = stats.delivered.load(Relaxed);
    println!(
        "demo: done in {secs:.1} s: {delivered} messages delivered ({:.0}/s), {} acked, {} nacked, {} requests answered, {} failed, {} events",
        delivered as f64 / secs,
        stats.acked.load(Relaxed),
        stats.nacked.load(Relaxed),
        stats.requests_ok.load(Relaxed),
        stats.requests_failed.load(Relaxed),
        stats.events.load(Relaxed),
    );
    Ok(())
}

/// What the demo shows, before it starts.
fn print_legend(seconds: u64) {
    let t = |frac: f64| seconds.max(1) as f64 * frac;
    println!(
        "\
demo: what you see
  - {INSTANCES} instances (i1..i{INSTANCES}) of {PROCESSES} work processes each (w0..w{}), every one a member
    of the cluster. Each broadcasts cache invalidations, asks a process of another instance for
    a price (request/reply) and sends jobs to one member of the group `batch` (anycast).
  - Every process offers a service named ICM (an example service name). At {:.0} s i2/w1 announces
    that it stops ICM and at {:.0} s that it starts it again: everyone gets both cluster events.
  - At {:.0} s i{INSTANCES}/w{} crashes: its connection drops without a goodbye. Requests in flight to
    it fail (the addressee is gone) and messages to it are refused until it is back; the
    others learn of the failure in their event stream. At {:.0} s it restarts as a new
    incarnation of the same process.
  - Each second, a summary line: members, messages delivered per second (a broadcast is one
    send and one delivery per other member, so deliveries outnumber sends), sends acked
    or refused (nacked) by the server, requests answered or failed, cluster events seen.
  - Lines marked >>> are the script's steps. Server logs are hidden; `--logs` shows them.",
        PROCESSES - 1,
        t(0.3),
        t(0.5),
        t(0.4),
        PROCESSES - 1,
        t(0.6),
    );
}

enum Step {
    ServiceDown,
    ServiceUp,
    Crash,
    Restart,
}

fn say(start: Instant, what: &str) {
    println!("[{:5.1}s] >>> {what}", start.elapsed().as_secs_f64());
}

async fn start_worker(
    addr: &str,
    secret: &Secret,
    i: usize,
    p: usize,
    observer: bool,
    stats: &Arc<Stats>,
    start: Instant,
) -> Result<Worker, CliError> {
    let instance = format!("i{}", i + 1);
    let process = format!("w{p}");
    let mut cfg = MemberConfig::new(addr, CLUSTER, secret.clone(), &instance, &process);
    cfg.core.services = vec!["ICM".to_owned()];
    cfg.core.reconnect_max_ms = 500;
    let (me, mut events) = Member::connect(cfg).await?;
    if p == PROCESSES - 1 {
        me.join("batch").await?;
    }
    if observer {
        // Service events arrive only for a subscription.
        let _ = me.events(Filter::all()).await?;
    }
    let mut tasks = Vec::new();
    // Event loop: count, answer requests, and (the observer) narrate.
    let responder = me.clone();
    let st = stats.clone();
    tasks.push(tokio::spawn(async move {
        let mut names = Names::default();
        while let Some(ev) = events.next().await {
            match &ev {
                Event::Message(_) => {
                    st.delivered.fetch_add(1, Relaxed);
                }
                Event::Request(m) => {
                    st.delivered.fetch_add(1, Relaxed);
                    let reply = format!("price {}", m.payload.len() * 7);
                    let _ = responder.reply(m.reply_to(), reply).await;
                }
                Event::Cluster(_) => {
                    st.events.fetch_add(1, Relaxed);
                    if observer {
                        say(start, &format!("event at i1/w0: {}", names.describe(&ev)));
                    }
                }
                Event::Registered { view, .. } => {
                    names.learn_view(view);
                }
                _ => {
                    if observer {
                        say(start, &names.describe(&ev));
                    }
                }
            }
        }
    }));
    // Traffic: broadcast invalidations, ask other instances for prices,
    // hand jobs to the batch group.
    let sender = me.clone();
    let st = stats.clone();
    tasks.push(tokio::spawn(async move {
        let mut rng = rand::rngs::StdRng::from_entropy();
        let mut n: u64 = 0;
        loop {
            n += 1;
            let key = format!("invalidate cache key=k{}", rng.gen_range(0..10_000));
            st.sent.fetch_add(1, Relaxed);
            count(&st, sender.broadcast(key).await);
            if n % 5 == 0 {
                let other = (i + rng.gen_range(1..INSTANCES)) % INSTANCES;
                let to = member(
                    format!("i{}", other + 1),
                    format!("w{}", rng.gen_range(0..PROCESSES)),
                );
                match sender
                    .request(to, format!("price? item={n}"), Duration::from_secs(1))
                    .await
                {
                    Ok(_) => st.requests_ok.fetch_add(1, Relaxed),
                    Err(_) => st.requests_failed.fetch_add(1, Relaxed),
                };
            }
            if n % 10 == 0 {
                st.sent.fetch_add(1, Relaxed);
                count(&st, sender.anycast("batch", format!("job {n}")).await);
            }
            tokio::time::sleep(ROUND).await;
        }
    }));
    Ok(Worker { member: me, tasks })
}

fn count(st: &Stats, r: Result<u64, switchboard_client::Error>) {
    match r {
        Ok(_) => st.acked.fetch_add(1, Relaxed),
        Err(_) => st.nacked.fetch_add(1, Relaxed),
    };
}
