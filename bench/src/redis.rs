//! The Redis peer: the workloads against `redis-server` pub/sub through the
//! `redis` crate.
//!
//! Every member is its own connection: a subscriber is a dedicated pub/sub
//! connection ([`redis::aio::PubSub`]; `SUBSCRIBE` returns once the server
//! confirmed it), a publisher a [`MultiplexedConnection`]. Publishers of
//! the throughput workloads send pipelines of 128 `PUBLISH` commands with
//! up to 4 pipelines outstanding, so that Redis is not measured at one
//! round trip per message; a message counts as sent once the server
//! answered its pipeline.
//!
//! W3 has no reply subjects to lean on: the requester subscribes to its
//! own reply channel, and the first 8 bytes of each payload carry the
//! request number so that a late reply is not taken for the current one.
//!
//! Receivers count deliveries into one shared [`Deliveries`], a batch of
//! ready messages at a time; losses are expected − received.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, FuturesUnordered, StreamExt, TryStreamExt};
use futures_util::FutureExt;
use redis::aio::{MultiplexedConnection, PubSubStream};
use redis::{AsyncCommands, ConnectionAddr, ConnectionInfo, RedisConnectionInfo};
use tokio::task::JoinHandle;

use super::ctx::RunCtx;
use super::many::{self, Picker, SharedHist, Stamp};
use super::measure::{self, Deliveries};
use super::workload::{latency_histogram, BenchError, Figure, Workload};

/// The system name in errors.
const SYSTEM: &str = "redis";
/// Bound of one setup step (connect, subscribe).
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// `PUBLISH` commands per pipeline.
const PIPELINE: usize = 128;
/// Pipelines a publisher has outstanding at once.
const IN_FLIGHT: usize = 4;
/// A W3 request without a reply for this long is lost.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// After this many W3 requests without reply (warm-up included) the run
/// stops and the remaining requests count as lost, so that a dead
/// responder does not cost a second per request.
const MAX_TIMEOUTS: u64 = 10;
/// The W3 request channel.
const REQUEST_CHANNEL: &str = "w3.req";
/// The W3 reply channel (the requester's own).
const REPLY_CHANNEL: &str = "w3.rep";
/// Bytes of a W3 payload that carry the request number, so that a late
/// reply is not taken for the current one.
const TAG: usize = 8;
/// Messages a receiver takes from its subscription per count.
const COUNT_BATCH: u64 = 1024;
/// W5 connections opened at the same time.
const CONNECT_PARALLEL: usize = 32;

/// Runs workload `w` against the `redis-server` at `ctx.addr`.
pub async fn run(w: Workload, ctx: &RunCtx<'_>) -> Result<Figure, BenchError> {
    let p = ctx.params;
    let client = redis::Client::open(ConnectionInfo {
        addr: ConnectionAddr::Tcp(ctx.addr.ip().to_string(), ctx.addr.port()),
        redis: RedisConnectionInfo::default(),
    })
    .map_err(client_err)?;
    match w {
        Workload::W1 => throughput(w, ctx, &client, 1, 1, 1).await,
        Workload::W2 => throughput(w, ctx, &client, 1, p.fanout.max(1), 1).await,
        Workload::W3 => request_reply(w, ctx, &client).await,
        Workload::W4 => {
            let n = p.pairs.max(1);
            throughput(w, ctx, &client, n, n, n).await
        }
        Workload::W5 => scale(w, ctx, &client).await,
        Workload::W6 => many(w, ctx, &client).await,
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

/// A connection for commands (`PUBLISH`).
async fn publisher(client: &redis::Client) -> Result<MultiplexedConnection, BenchError> {
    client
        .get_multiplexed_async_connection()
        .await
        .map_err(client_err)
}

/// A new pub/sub connection subscribed to `channel` (confirmed by the
/// server), as a stream of its messages.
async fn subscriber(client: &redis::Client, channel: &str) -> Result<PubSubStream, BenchError> {
    let mut ps = client.get_async_pubsub().await.map_err(client_err)?;
    ps.subscribe(channel).await.map_err(client_err)?;
    Ok(ps.into_on_message())
}

/// A task counting every message of `sub` into `deliveries`, the messages
/// already queued in one go (it keeps the connection open until aborted).
fn spawn_counter(mut sub: PubSubStream, deliveries: Arc<Deliveries>) -> JoinHandle<()> {
    tokio::spawn(async move {
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

/// Publishes `payload` until `until` in pipelines, the k-th message to
/// `channels[(offset + k) % len]`; the number of messages sent (and
/// answered by the server).
async fn publish_for(
    con: MultiplexedConnection,
    channels: Arc<[String]>,
    offset: usize,
    payload: Arc<[u8]>,
    until: Instant,
) -> Result<u64, BenchError> {
    let n = channels.len().max(1);
    // pipes[s]: PIPELINE messages to channels s, s + 1, ... (mod n); the
    // pipeline after it starts at (s + PIPELINE) % n.
    let pipes: Vec<(redis::Pipeline, u64)> = (0..n)
        .map(|s| {
            let mut pipe = redis::pipe();
            let mut len = 0;
            for j in 0..PIPELINE {
                if let Some(ch) = channels.get((s + j) % n) {
                    pipe.publish(ch, &payload[..]).ignore();
                    len += 1;
                }
            }
            (pipe, len)
        })
        .collect();
    let mut next = offset % n;
    let mut sent = 0u64;
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < IN_FLIGHT && Instant::now() < until {
            let Some((pipe, len)) = pipes.get(next) else {
                break;
            };
            let mut con = con.clone();
            in_flight.push(async move {
                pipe.query_async::<()>(&mut con).await?;
                Ok::<u64, redis::RedisError>(*len)
            });
            next = (next + PIPELINE) % n;
        }
        match in_flight.next().await {
            Some(r) => sent += r.map_err(client_err)?,
            None => break,
        }
    }
    Ok(sent)
}

/// W1, W2, W4: `senders` publishers, each on its own connection, and
/// `receivers` subscribers. With `channels == 1` every receiver subscribes
/// to the one channel (fan-out); otherwise receiver j subscribes to `w4.j`
/// and publisher i sends its k-th message to receiver (i + k) % channels.
async fn throughput(
    w: Workload,
    ctx: &RunCtx<'_>,
    client: &redis::Client,
    senders: usize,
    receivers: usize,
    channels: usize,
) -> Result<Figure, BenchError> {
    let p = ctx.params;
    let names: Arc<[String]> = if channels == 1 {
        Arc::from(vec![format!("{}.all", w.name())])
    } else {
        (0..channels).map(|j| format!("{}.{j}", w.name())).collect()
    };

    let mut subs = Vec::with_capacity(receivers);
    for j in 0..receivers {
        let channel = &names[j % names.len()];
        subs.push(within(w, SETUP_TIMEOUT, subscriber(client, channel)).await?);
    }
    let mut pubs = Vec::with_capacity(senders);
    for _ in 0..senders {
        pubs.push(within(w, SETUP_TIMEOUT, publisher(client)).await?);
    }

    let payload: Arc<[u8]> = Arc::from(vec![0x5a; p.payload]);
    let deliveries = Arc::new(Deliveries::new());
    let counters: Vec<_> = subs
        .into_iter()
        .map(|sub| spawn_counter(sub, deliveries.clone()))
        .collect();
    let until = Instant::now() + p.send_for;
    let handles: Vec<_> = pubs
        .into_iter()
        .enumerate()
        .map(|(i, con)| {
            let fut = publish_for(con, names.clone(), i, payload.clone(), until);
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
            let per_message = if channels == 1 { receivers as u64 } else { 1 };
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

/// Waits for the reply whose payload starts with `tag`, skipping late
/// replies to earlier requests; `false` when the subscription ended.
async fn reply(replies: &mut PubSubStream, tag: &[u8]) -> bool {
    while let Some(m) = replies.next().await {
        if m.get_payload_bytes().starts_with(tag) {
            return true;
        }
    }
    false
}

/// W3: the requester publishes on the request channel and waits on its
/// own reply channel; the responder publishes each request's payload back
/// there. Sequential round trips.
async fn request_reply(
    w: Workload,
    ctx: &RunCtx<'_>,
    client: &redis::Client,
) -> Result<Figure, BenchError> {
    let p = ctx.params;
    let mut requests = within(w, SETUP_TIMEOUT, subscriber(client, REQUEST_CHANNEL)).await?;
    let mut echo_con = within(w, SETUP_TIMEOUT, publisher(client)).await?;
    let echo = tokio::spawn(async move {
        while let Some(m) = requests.next().await {
            let sent: redis::RedisResult<i64> =
                echo_con.publish(REPLY_CHANNEL, m.get_payload_bytes()).await;
            if sent.is_err() {
                break;
            }
        }
    });

    let result = async {
        let mut replies = within(w, SETUP_TIMEOUT, subscriber(client, REPLY_CHANNEL)).await?;
        let mut con = within(w, SETUP_TIMEOUT, publisher(client)).await?;
        let mut payload = vec![0x5a; p.request_payload];
        let tag = TAG.min(payload.len());
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
            payload[..tag].copy_from_slice(&(i as u64).to_le_bytes()[..tag]);
            let t = Instant::now();
            let round_trip = tokio::time::timeout(REQUEST_TIMEOUT, async {
                let published = con.publish::<_, _, i64>(REQUEST_CHANNEL, &payload[..]);
                let (published, replied) =
                    tokio::join!(published, reply(&mut replies, &payload[..tag]));
                published.map_err(client_err)?;
                Ok::<bool, BenchError>(replied)
            })
            .await;
            let rtt = t.elapsed();
            match round_trip {
                Ok(Ok(true)) => {
                    if recorded {
                        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
                        hist.saturating_record(us);
                    }
                }
                Ok(Ok(false)) => return Err(client_err("reply subscription closed")),
                Ok(Err(e)) => return Err(e),
                Err(_) => {
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

/// W5: `idle_members` pub/sub connections subscribed to one channel, then
/// one message from one more connection to all of them.
async fn scale(
    w: Workload,
    ctx: &RunCtx<'_>,
    client: &redis::Client,
) -> Result<Figure, BenchError> {
    let p = ctx.params;
    let channel = "w5.all";
    let mut con = within(w, SETUP_TIMEOUT, publisher(client)).await?;
    let rss_before = ctx.server_rss();

    let members: Vec<PubSubStream> = stream::iter(0..p.idle_members)
        .map(|_| within(w, SETUP_TIMEOUT, subscriber(client, channel)))
        .buffer_unordered(CONNECT_PARALLEL)
        .try_collect()
        .await?;
    let rss_after = ctx.server_rss();

    let told = Arc::new(Deliveries::new());
    let waiters: Vec<JoinHandle<()>> = members
        .into_iter()
        .map(|sub| spawn_counter(sub, told.clone()))
        .collect();

    let start = Instant::now();
    let sent: Result<i64, BenchError> = within(w, SETUP_TIMEOUT, async {
        con.publish(channel, "event").await.map_err(client_err)
    })
    .await;
    let result = match sent {
        Err(e) => Err(e),
        Ok(_) => {
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
    result
}

/// W6: `many_members` members, member i a pub/sub connection subscribed
/// to `w6.i` and a command connection publishing `many_rate` messages per
/// second to a random other member's channel for `many_for` (each
/// `PUBLISH` answered before the next).
async fn many(w: Workload, ctx: &RunCtx<'_>, client: &redis::Client) -> Result<Figure, BenchError> {
    let p = ctx.params;
    let n = p.many_members.max(2);
    let channels: Arc<[String]> = (0..n).map(|i| format!("w6.{i}")).collect();
    let subs: Vec<PubSubStream> = stream::iter(channels.iter().cloned())
        .map(|c| async move { within(w, SETUP_TIMEOUT, subscriber(client, &c)).await })
        .buffered(many::CONNECT_PARALLEL)
        .try_collect()
        .await?;
    let pubs: Vec<MultiplexedConnection> = stream::iter(0..n)
        .map(|_| within(w, SETUP_TIMEOUT, publisher(client)))
        .buffered(many::CONNECT_PARALLEL)
        .try_collect()
        .await?;
    let stamp = Stamp::new(p);
    let delivery = SharedHist::new();
    let told = Arc::new(Deliveries::new());
    let readers: Vec<JoinHandle<()>> = subs
        .into_iter()
        .map(|mut sub| {
            let (d, hist) = (told.clone(), delivery.clone());
            tokio::spawn(async move {
                let mut local = latency_histogram();
                while let Some(m) = sub.next().await {
                    let mut got = 1;
                    if let Some(us) = stamp.age_us(m.get_payload_bytes()) {
                        local.saturating_record(us);
                    }
                    while got < COUNT_BATCH {
                        match sub.next().now_or_never() {
                            Some(Some(m)) => {
                                if let Some(us) = stamp.age_us(m.get_payload_bytes()) {
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
            })
        })
        .collect();
    let start = Instant::now() + Duration::from_millis(100);
    let until = start + p.many_for;
    let mut senders = Vec::with_capacity(n);
    for (me, mut con) in pubs.into_iter().enumerate() {
        let channels = channels.clone();
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
                let to = &channels[pick.next_other()];
                let _: i64 = con
                    .publish(to, &stamp.payload()[..])
                    .await
                    .map_err(client_err)?;
                sent += 1;
            }
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
    use super::super::proc::{free_port, redis_args, which, ServerProc};
    use super::super::workload::Params;
    use super::*;

    async fn all(params: Params) {
        let Some(program) = which("redis-server") else {
            eprintln!("redis-server not installed, skipped");
            return;
        };
        let addr = free_port().expect("a free port");
        let server = ServerProc::start("redis", &program, &redis_args(addr, &params), addr)
            .expect("redis-server starts");
        let ctx = RunCtx {
            addr,
            params: &params,
            server: Some(&server),
            cluster: None,
            address: None,
        };
        for w in Workload::ALL {
            let f = run(w, &ctx).await.expect("workload runs");
            eprintln!("redis {w}: {}", Figure::summary(&f));
            assert!(f.deliveries() > 0, "redis {w} delivered nothing");
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
    #[ignore = "needs redis-server on the PATH"]
    async fn redis_quick() {
        all(Params::quick(128)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs redis-server on the PATH; takes a while"]
    async fn redis_standard() {
        all(Params::standard(128, Duration::from_secs(2))).await;
    }
}
