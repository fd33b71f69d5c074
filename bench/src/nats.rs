//! The NATS peer: the workloads against `nats-server` with core NATS
//! (no JetStream) through `async-nats`.
//!
//! Every member is its own client connection. `flush` in `async-nats` only
//! writes the socket (and in 0.38 may even return with data still in the
//! client's buffer), so wherever the bench must know that the server has
//! seen everything a connection sent, that connection makes one round trip
//! through the server: it publishes to a private inbox it subscribed to
//! and waits for the message. The server handles one connection's commands
//! in order, so when the echo arrives, the subscriptions before it are in
//! place (subscribers, before anything is published) and the messages
//! before it have been received (publishers, before they count as sent).
//!
//! A subscription buffers up to 2^20 messages in the client (the
//! `async-nats` default is 65,536, beyond which the client itself drops
//! messages as a "slow consumer"): on a loaded machine a receiver task
//! descheduled for a moment would otherwise lose messages in the load
//! generator, not in the server. The Redis client's buffer is unbounded,
//! so this keeps the two comparable.
//!
//! Receivers count deliveries into one shared [`Deliveries`], a batch of
//! ready messages at a time; losses are expected − received.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, RequestErrorKind, Subject, Subscriber};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use futures_util::FutureExt;
use tokio::task::JoinHandle;

use super::ctx::RunCtx;
use super::many::{self, Picker, SharedHist, Stamp};
use super::measure::{self, Deliveries};
use super::workload::{latency_histogram, BenchError, Figure, Workload};

/// The system name in errors.
const SYSTEM: &str = "nats";
/// Bound of one setup step (connect, subscribe and confirm).
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A W3 request without a reply for this long is lost.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// After this many W3 requests without reply (warm-up included) the run
/// stops and the remaining requests count as lost, so that a dead
/// responder does not cost a second per request.
const MAX_TIMEOUTS: u64 = 10;
/// Messages a subscription may buffer in the client before it drops them.
const SUBSCRIPTION_CAPACITY: usize = 1 << 20;
/// Messages a receiver takes from its subscription per count.
const COUNT_BATCH: u64 = 1024;
/// W5 connections opened at the same time.
const CONNECT_PARALLEL: usize = 32;
/// The publish loop looks at the clock every this many messages.
const CLOCK_EVERY: u64 = 16;

/// Runs workload `w` against the `nats-server` at `ctx.addr`.
pub async fn run(w: Workload, ctx: &RunCtx<'_>) -> Result<Figure, BenchError> {
    let p = ctx.params;
    match w {
        Workload::W1 => throughput(w, ctx, 1, 1, 1).await,
        Workload::W2 => throughput(w, ctx, 1, p.fanout.max(1), 1).await,
        Workload::W3 => request_reply(w, ctx).await,
        Workload::W4 => {
            let n = p.pairs.max(1);
            throughput(w, ctx, n, n, n).await
        }
        Workload::W5 => scale(w, ctx).await,
        Workload::W6 => many(w, ctx).await,
    }
}

fn client_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::client(SYSTEM, e)
}

/// `fut` within `after`, else a timeout of workload `w`.
async fn within<T>(
    w: Workload,
    after: Duration,
    fut: impl Future<Output = Result<T, BenchError>>,
) -> Result<T, BenchError> {
    measure::within(SYSTEM, w, after, fut).await
}

/// One client connection.
async fn connect(ctx: &RunCtx<'_>) -> Result<Client, BenchError> {
    ConnectOptions::new()
        .connection_timeout(SETUP_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .connect(ctx.addr.to_string())
        .await
        .map_err(client_err)
}

/// Waits until the server has handled everything `client` sent so far:
/// one message through the server to the client itself.
async fn confirm(client: &Client) -> Result<(), BenchError> {
    let inbox = client.new_inbox();
    let mut probe = client.subscribe(inbox.clone()).await.map_err(client_err)?;
    client
        .publish(inbox, Bytes::new())
        .await
        .map_err(client_err)?;
    client.flush().await.map_err(client_err)?;
    match probe.next().await {
        Some(_) => {
            probe.unsubscribe().await.map_err(client_err)?;
            Ok(())
        }
        None => Err(client_err("connection closed while confirming")),
    }
}

/// A new connection subscribed to `subject`, confirmed by the server.
async fn subscriber(
    ctx: &RunCtx<'_>,
    subject: Subject,
) -> Result<(Client, Subscriber), BenchError> {
    let client = connect(ctx).await?;
    let sub = client.subscribe(subject).await.map_err(client_err)?;
    client.flush().await.map_err(client_err)?;
    confirm(&client).await?;
    Ok((client, sub))
}

/// A task counting every message of `sub` into `deliveries`, the messages
/// already queued in one go (it keeps the connection open until aborted).
fn spawn_counter(
    client: Client,
    mut sub: Subscriber,
    deliveries: Arc<Deliveries>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _client = client;
        while sub.next().await.is_some() {
            let mut n = 1;
            while n < COUNT_BATCH {
                match sub.next().now_or_never() {
                    Some(Some(_)) => n += 1,
                    _ => break,
                }
            }
            deliveries.record(n);
        }
    })
}

/// Publishes `payload` until `until`, the k-th message to
/// `subjects[(offset + k) % len]`; the number of messages sent (all of them
/// have reached the server when it returns).
async fn publish_for(
    client: Client,
    subjects: Arc<[Subject]>,
    offset: usize,
    payload: Bytes,
    until: Instant,
) -> Result<u64, BenchError> {
    let n = subjects.len().max(1);
    let mut next = offset % n;
    let mut sent = 0u64;
    loop {
        if sent % CLOCK_EVERY == 0 && Instant::now() >= until {
            break;
        }
        let Some(subject) = subjects.get(next) else {
            break;
        };
        client
            .publish(subject.clone(), payload.clone())
            .await
            .map_err(client_err)?;
        sent += 1;
        next = (next + 1) % n;
    }
    // `flush` may return while messages are still in the client's buffer
    // (and dropping the client then discards them): the round trip makes
    // sure the server has every message.
    client.flush().await.map_err(client_err)?;
    confirm(&client).await?;
    Ok(sent)
}

/// W1, W2, W4: `senders` publishers, each on its own connection, and
/// `receivers` subscribers. With `subjects == 1` every receiver subscribes
/// to the one subject (fan-out); otherwise receiver j subscribes to `w4.j`
/// and publisher i sends its k-th message to receiver (i + k) % subjects.
async fn throughput(
    w: Workload,
    ctx: &RunCtx<'_>,
    senders: usize,
    receivers: usize,
    subjects: usize,
) -> Result<Figure, BenchError> {
    let p = ctx.params;
    let names: Arc<[Subject]> = if subjects == 1 {
        Arc::from(vec![Subject::from(format!("{}.all", w.name()))])
    } else {
        (0..subjects)
            .map(|j| Subject::from(format!("{}.{j}", w.name())))
            .collect()
    };

    let mut subs = Vec::with_capacity(receivers);
    for j in 0..receivers {
        let subject = names[j % names.len()].clone();
        subs.push(within(w, SETUP_TIMEOUT, subscriber(ctx, subject)).await?);
    }
    let mut pubs = Vec::with_capacity(senders);
    for _ in 0..senders {
        pubs.push(within(w, SETUP_TIMEOUT, connect(ctx)).await?);
    }

    let payload = Bytes::from(vec![0x5a; p.payload]);
    let deliveries = Arc::new(Deliveries::new());
    let counters: Vec<_> = subs
        .into_iter()
        .map(|(client, sub)| spawn_counter(client, sub, deliveries.clone()))
        .collect();
    let until = Instant::now() + p.send_for;
    let handles: Vec<_> = pubs
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let fut = publish_for(client, names.clone(), i, payload.clone(), until);
            tokio::spawn(within(w, p.send_for + p.drain_timeout, fut))
        })
        .collect();
    let mut sent = 0u64;
    let mut failure = None;
    for h in handles {
        match h.await {
            Ok(Ok(n)) => sent += n,
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => failure = failure.or(Some(client_err(e))),
        }
    }
    let result = match failure {
        Some(e) => Err(e),
        None => {
            let per_message = if subjects == 1 { receivers as u64 } else { 1 };
            let expected = sent * per_message;
            let received = deliveries.drained(expected, p.drain_timeout).await;
            Ok(Figure::Throughput {
                sent,
                expected,
                received,
                elapsed: deliveries.elapsed(),
                acked: None,
            })
        }
    };
    measure::stop(counters).await;
    result
}

/// W3: one responder echoing the payload to the reply subject, and one
/// requester making sequential `client.request` round trips.
async fn request_reply(w: Workload, ctx: &RunCtx<'_>) -> Result<Figure, BenchError> {
    let p = ctx.params;
    let subject = Subject::from("w3.req");
    let (responder, mut requests) =
        within(w, SETUP_TIMEOUT, subscriber(ctx, subject.clone())).await?;
    let echo = tokio::spawn(async move {
        while let Some(m) = requests.next().await {
            if let Some(reply) = m.reply {
                if responder.publish(reply, m.payload).await.is_err() {
                    break;
                }
            }
        }
    });

    let result = async {
        let requester = within(w, SETUP_TIMEOUT, connect(ctx)).await?;
        let payload = Bytes::from(vec![0x5a; p.request_payload]);
        let mut hist = latency_histogram();
        let mut lost = 0u64;
        let mut timeouts = 0u64;
        let total = p.warmup_requests + p.requests;
        for i in 0..total {
            let recorded = i >= p.warmup_requests;
            if timeouts >= MAX_TIMEOUTS {
                lost += (total - i.max(p.warmup_requests)) as u64;
                break;
            }
            let t = Instant::now();
            let reply = tokio::time::timeout(
                REQUEST_TIMEOUT + Duration::from_millis(100),
                requester.request(subject.clone(), payload.clone()),
            )
            .await;
            let rtt = t.elapsed();
            match reply {
                Ok(Ok(_)) => {
                    if recorded {
                        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
                        hist.saturating_record(us);
                    }
                }
                Ok(Err(e)) if e.kind() == RequestErrorKind::Other => return Err(client_err(e)),
                Ok(Err(_)) | Err(_) => {
                    timeouts += 1;
                    if recorded {
                        lost += 1;
                    }
                }
            }
        }
        Ok(Figure::Latency { hist, lost })
    }
    .await;
    measure::stop(vec![echo]).await;
    result
}

/// W5: `idle_members` connections subscribed to one subject, then one
/// message from one more connection to all of them.
async fn scale(w: Workload, ctx: &RunCtx<'_>) -> Result<Figure, BenchError> {
    let p = ctx.params;
    let subject = Subject::from("w5.all");
    let publisher = within(w, SETUP_TIMEOUT, connect(ctx)).await?;
    let rss_before = ctx.server_rss();

    let members: Vec<(Client, Subscriber)> = stream::iter(0..p.idle_members)
        .map(|_| within(w, SETUP_TIMEOUT, subscriber(ctx, subject.clone())))
        .buffer_unordered(CONNECT_PARALLEL)
        .try_collect()
        .await?;
    let rss_after = ctx.server_rss();

    let told = Arc::new(Deliveries::new());
    // Dropped clients keep their connections open: each is drained (closed)
    // after the run, so that the next run finds the descriptors free.
    let clients: Vec<Client> = members.iter().map(|(c, _)| c.clone()).collect();
    let waiters: Vec<JoinHandle<()>> = members
        .into_iter()
        .map(|(client, sub)| spawn_counter(client, sub, told.clone()))
        .collect();

    let start = Instant::now();
    let sent = within(w, SETUP_TIMEOUT, async {
        publisher
            .publish(subject.clone(), Bytes::from_static(b"event"))
            .await
            .map_err(client_err)?;
        publisher.flush().await.map_err(client_err)
    })
    .await;
    let result = match sent {
        Err(e) => Err(e),
        Ok(()) => {
            let members = p.idle_members as u64;
            let received = told.drained(members, p.drain_timeout).await.min(members);
            Ok(Figure::Scale {
                members,
                rss_before,
                rss_after,
                broadcast: told.last_at().saturating_duration_since(start),
                received,
            })
        }
    };
    measure::stop(waiters).await;
    stream::iter(clients.into_iter().chain(std::iter::once(publisher)))
        .for_each_concurrent(CONNECT_PARALLEL, |c| async move {
            let _ = c.drain().await;
        })
        .await;
    result
}

/// W6: `many_members` connections, member i subscribed to `w6.i`, each
/// publishing `many_rate` messages per second to a random other member's
/// subject for `many_for`.
async fn many(w: Workload, ctx: &RunCtx<'_>) -> Result<Figure, BenchError> {
    let p = ctx.params;
    let n = p.many_members.max(2);
    let subjects: Arc<[Subject]> = (0..n).map(|i| Subject::from(format!("w6.{i}"))).collect();
    let members: Vec<(Client, Subscriber)> = stream::iter(subjects.iter().cloned())
        .map(|s| within(w, SETUP_TIMEOUT, subscriber(ctx, s)))
        .buffered(many::CONNECT_PARALLEL)
        .try_collect()
        .await?;
    let stamp = Stamp::new(p);
    let delivery = SharedHist::new();
    let told = Arc::new(Deliveries::new());
    let mut readers = Vec::with_capacity(n);
    let mut clients = Vec::with_capacity(n);
    for (client, mut sub) in members {
        clients.push(client.clone());
        let (d, hist) = (told.clone(), delivery.clone());
        readers.push(tokio::spawn(async move {
            let _client = client;
            let mut local = latency_histogram();
            while let Some(m) = sub.next().await {
                let mut got = 1;
                if let Some(us) = stamp.age_us(&m.payload) {
                    local.saturating_record(us);
                }
                while got < COUNT_BATCH {
                    match sub.next().now_or_never() {
                        Some(Some(m)) => {
                            if let Some(us) = stamp.age_us(&m.payload) {
                                local.saturating_record(us);
                            }
                            got += 1;
                        }
                        _ => break,
                    }
                }
                hist.add(&local);
                local.reset();
                d.record(got);
            }
        }));
    }
    let start = Instant::now() + Duration::from_millis(100);
    let until = start + p.many_for;
    let mut senders = Vec::with_capacity(n);
    for (me, client) in clients.into_iter().enumerate() {
        let subjects = subjects.clone();
        let rate = p.many_rate;
        senders.push(tokio::spawn(async move {
            let mut pick = Picker::new(me, n);
            let mut tick = many::pacer(start, me, n, rate);
            let mut sent = 0u64;
            loop {
                tick.tick().await;
                if Instant::now() >= until {
                    break;
                }
                let to = subjects[pick.next_other()].clone();
                client
                    .publish(to, stamp.payload())
                    .await
                    .map_err(client_err)?;
                sent += 1;
            }
            client.flush().await.map_err(client_err)?;
            confirm(&client).await?;
            Ok::<u64, BenchError>(sent)
        }));
    }
    let result = many::finish_unacked(
        senders,
        client_err,
        &told,
        (start, p.drain_timeout),
        &delivery,
    )
    .await;
    measure::stop(readers).await;
    result
}

#[cfg(test)]
mod tests {
    use super::super::proc::{free_port, nats_args, which, ServerProc};
    use super::super::workload::Params;
    use super::*;

    async fn all(params: Params) {
        let Some(program) = which("nats-server") else {
            eprintln!("nats-server not installed, skipped");
            return;
        };
        let addr = free_port().expect("a free port");
        let server = ServerProc::start("nats", &program, &nats_args(addr), addr)
            .expect("nats-server starts");
        let ctx = RunCtx {
            addr,
            params: &params,
            server: Some(&server),
            cluster: None,
            address: None,
        };
        for w in Workload::ALL {
            let f = run(w, &ctx).await.expect("workload runs");
            eprintln!("nats {w}: {}", Figure::summary(&f));
            assert!(f.deliveries() > 0, "nats {w} delivered nothing");
        }
    }

    #[tokio::test]
    async fn no_server_is_a_client_error() {
        let params = Params::quick(16);
        let ctx = RunCtx {
            addr: free_port().expect("a free port"),
            params: &params,
            server: None,
            cluster: None,
            address: None,
        };
        let r = tokio::time::timeout(Duration::from_secs(30), run(Workload::W1, &ctx))
            .await
            .expect("fails in time");
        assert!(matches!(r, Err(BenchError::Client { .. })), "{r:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs nats-server on the PATH"]
    async fn nats_quick() {
        all(Params::quick(128)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs nats-server on the PATH; takes a while"]
    async fn nats_standard() {
        all(Params::standard(128, Duration::from_secs(2))).await;
    }
}
