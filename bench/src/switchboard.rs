//! The workloads against a Switchboard server, through the client library
//! exactly as an application uses it: every message is acknowledged by the
//! server (posted messages are counted by [`Member::flush`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::ctx::RunCtx;
use super::idle;
use super::many::{self, Picker, SharedHist, Stamp};
use super::measure::{Deliveries, Tasks};
use super::workload::{latency_histogram, AddressKind, BenchError, Figure, Workload};
use switchboard_client::{Address, Event, EventStream, Member, MemberConfig};

const SYSTEM: &str = "switchboard";

/// Events taken from a stream per wake-up.
const EVENTS_BATCH: usize = 1024;

/// Members connected at once while W5 builds its idle crowd.
const CONNECT_PARALLEL: usize = 64;

/// Runs one workload against the server at `ctx.addr`.
/// The address kind is `ctx.address`, or the workload's default.
pub async fn run(w: Workload, ctx: &RunCtx<'_>) -> Result<Figure, BenchError> {
    let kind = ctx
        .address
        .or_else(|| w.addresses().first().copied())
        .unwrap_or(AddressKind::MemberId);
    match w {
        Workload::W1 => throughput(ctx, 1, 1, kind).await,
        Workload::W2 => throughput(ctx, 1, ctx.params.fanout, kind).await,
        Workload::W4 => throughput(ctx, ctx.params.pairs, ctx.params.pairs, kind).await,
        Workload::W3 => latency(ctx, kind).await,
        Workload::W5 => scale(ctx).await,
        Workload::W6 => many(ctx, kind).await,
    }
}

/// How member `m` (process `process` of instance `instance`) is addressed
/// by `kind`, joining the group it is addressed by (`group`) first.
async fn address_of(
    m: &Member,
    kind: AddressKind,
    instance: &str,
    process: &str,
    group: &str,
) -> Result<Address, BenchError> {
    Ok(match kind {
        AddressKind::MemberId => m
            .member_id()
            .map(Address::MemberId)
            .ok_or_else(|| BenchError::client(SYSTEM, "member not registered"))?,
        AddressKind::Member => switchboard_client::member(instance, process),
        AddressKind::Group => {
            m.join(group)
                .await
                .map_err(|e| BenchError::client(SYSTEM, e))?;
            Address::Group(group.to_owned())
        }
        AddressKind::Broadcast => Address::Broadcast,
    })
}

fn config(ctx: &RunCtx<'_>, instance: &str, process: String) -> Result<MemberConfig, BenchError> {
    let (cluster, secret) = ctx
        .cluster
        .ok_or_else(|| BenchError::client(SYSTEM, "no cluster secret"))?;
    let mut c = MemberConfig::new(
        ctx.addr.to_string(),
        cluster,
        secret.clone(),
        instance,
        process,
    );
    c.connect_timeout = Duration::from_secs(20);
    Ok(c)
}

async fn join(
    ctx: &RunCtx<'_>,
    instance: &str,
    process: String,
) -> Result<(Member, EventStream), BenchError> {
    Member::connect(config(ctx, instance, process)?)
        .await
        .map_err(|e| BenchError::client(SYSTEM, e))
}

/// Reads a stream to its end, discarding (so that a member that only
/// sends never stalls on its own events).
fn discard(mut events: EventStream) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = Vec::with_capacity(EVENTS_BATCH);
        while events.next_many(&mut buf, EVENTS_BATCH).await > 0 {
            buf.clear();
        }
    })
}

/// Sender `i`'s `k`-th message goes to receiver `(i + k) % receivers`,
/// addressed by `kind`; with `receivers > 1` and `Broadcast`, or `Group`
/// when the workload is a fan-out (one sender, W2), every message goes to
/// every receiver instead (one group all of them joined).
async fn throughput(
    ctx: &RunCtx<'_>,
    senders: usize,
    receivers: usize,
    kind: AddressKind,
) -> Result<Figure, BenchError> {
    let fan_out = kind == AddressKind::Broadcast || (senders == 1 && receivers > 1);
    let p = ctx.params;
    let mut rx_members = Vec::new();
    let mut rx_streams = Vec::new();
    for j in 0..receivers {
        let (m, ev) = join(ctx, "bench-rx", format!("r{j}")).await?;
        rx_members.push(m);
        rx_streams.push(ev);
    }
    let mut tx_members = Vec::new();
    let mut drains = Vec::new();
    for i in 0..senders {
        let (m, ev) = join(ctx, "bench-tx", format!("s{i}")).await?;
        drains.push(discard(ev));
        tx_members.push(m);
    }
    let mut targets: Vec<Address> = Vec::with_capacity(receivers);
    for (j, m) in rx_members.iter().enumerate() {
        let group = if fan_out {
            "bench-all".to_owned()
        } else {
            format!("bench-rx{j}")
        };
        targets.push(address_of(m, kind, "bench-rx", &format!("r{j}"), &group).await?);
    }
    if fan_out {
        targets.truncate(1);
    }

    let deliveries = Arc::new(Deliveries::new());
    let mut readers = Vec::new();
    for mut ev in rx_streams {
        let d = deliveries.clone();
        readers.push(tokio::spawn(async move {
            let mut buf = Vec::with_capacity(EVENTS_BATCH);
            while ev.next_many(&mut buf, EVENTS_BATCH).await > 0 {
                let n = buf
                    .drain(..)
                    .filter(|e| matches!(e, Event::Message(_)))
                    .count();
                d.record(n as u64);
            }
        }));
    }
    let payload = Bytes::from(vec![0x5a; p.payload]);
    let deadline = Instant::now() + p.send_for;
    let mut tasks = Vec::new();
    let batch = p.post_batch.max(1);
    for (i, m) in tx_members.iter().enumerate() {
        let m = m.clone();
        let payload = payload.clone();
        let targets = targets.clone();
        tasks.push(tokio::spawn(async move {
            let mut k = i;
            'send: loop {
                // Look at the clock every 64 messages (or every batch), not
                // every one.
                let mut sent = 0;
                while sent < 64 {
                    if batch == 1 {
                        let to = targets[k % targets.len()].clone();
                        k += 1;
                        sent += 1;
                        if m.post(to, payload.clone()).await.is_err() {
                            break 'send;
                        }
                    } else {
                        let first = k;
                        k += batch;
                        sent += batch;
                        let msgs = (first..first + batch)
                            .map(|j| (targets[j % targets.len()].clone(), payload.clone()));
                        if m.post_many(msgs).await.is_err() {
                            break 'send;
                        }
                    }
                }
                if Instant::now() >= deadline {
                    break;
                }
            }
            m.flush().await
        }));
    }
    let mut sent = 0;
    let mut acked = 0;
    for t in tasks {
        let counts = t
            .await
            .map_err(|e| BenchError::client(SYSTEM, e))?
            .map_err(|e| BenchError::client(SYSTEM, e))?;
        sent += counts.submitted;
        acked += counts.acked;
    }
    let per_message = if fan_out { receivers as u64 } else { 1 };
    let expected = sent * per_message;
    let received = deliveries.drained(expected, p.drain_timeout).await;
    for m in tx_members.iter().chain(rx_members.iter()) {
        m.goodbye().await;
    }
    for r in readers.into_iter().chain(drains) {
        r.abort();
    }
    Ok(Figure::Throughput {
        sent,
        expected,
        received,
        elapsed: deliveries.elapsed(),
        acked: Some(acked),
    })
}

/// W3; with `Group` the requests are anycast to the responder's group.
async fn latency(ctx: &RunCtx<'_>, kind: AddressKind) -> Result<Figure, BenchError> {
    let p = ctx.params;
    let (responder, mut requests) = join(ctx, "bench-rr", "responder".into()).await?;
    let (requester, events) = join(ctx, "bench-rr", "requester".into()).await?;
    let drain = discard(events);
    let to = match address_of(&responder, kind, "bench-rr", "responder", "bench-rr").await? {
        Address::Group(g) => Address::Anycast(g),
        a => a,
    };
    let r = responder.clone();
    let echo = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(EVENTS_BATCH);
        while requests.next_many(&mut buf, EVENTS_BATCH).await > 0 {
            for e in buf.drain(..) {
                if let Event::Request(m) = e {
                    // The ack of the reply is not waited for here.
                    let _ = r.try_reply(m.reply_to(), m.wire.payload);
                }
            }
        }
    });
    let payload = Bytes::from(vec![0x33; p.request_payload]);
    let mut hist = latency_histogram();
    // More than 10 failures end the run early; whatever was not recorded
    // (failed or never sent) counts as lost, as in the peers' adapters.
    let mut failures = 0;
    for i in 0..p.warmup_requests + p.requests {
        let t = Instant::now();
        let r = requester
            .request(to.clone(), payload.clone(), Duration::from_secs(1))
            .await;
        let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
        match r {
            Ok(_) if i >= p.warmup_requests => {
                let _ = hist.record(us.max(1));
            }
            Ok(_) => {}
            Err(_) => {
                failures += 1;
                if failures > 10 {
                    break;
                }
            }
        }
    }
    requester.goodbye().await;
    responder.goodbye().await;
    echo.abort();
    drain.abort();
    let lost = (p.requests as u64).saturating_sub(hist.len());
    Ok(Figure::Latency { hist, lost })
}

/// W5: `idle_members` idle members (on the wire protocol, keeping no
/// view: see [`idle`](super::idle)), then one library member joins and
/// the time until every idle member has seen its `MemberJoined` is taken.
async fn scale(ctx: &RunCtx<'_>) -> Result<Figure, BenchError> {
    let p = ctx.params;
    let rss_before = ctx.server_rss();
    let (cluster, secret) = ctx
        .cluster
        .ok_or_else(|| BenchError::client(SYSTEM, "no cluster secret"))?;
    let newcomer = "newcomer";
    let told = Arc::new(Deliveries::new());
    let idle = Arc::new(idle::Idle {
        addr: ctx.addr,
        cluster: cluster.to_owned(),
        secret: secret.clone(),
        instance: "bench-idle".to_owned(),
        newcomer: newcomer.to_owned(),
        told: told.clone(),
    });
    let mut members = Tasks::with_capacity(p.idle_members);
    let mut i = 0;
    while i < p.idle_members {
        let n = CONNECT_PARALLEL.min(p.idle_members - i);
        let mut joins = Vec::with_capacity(n);
        for j in i..i + n {
            joins.push(tokio::spawn(idle::connect(idle.clone(), format!("p{j}"))));
        }
        for j in joins {
            let task = j.await.map_err(|e| BenchError::client(SYSTEM, e))??;
            members.push(task);
        }
        i += n;
    }
    // Let the membership events of the crowd settle before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = ctx.server_rss();
    let joined = Instant::now();
    let (late, ev) = join(ctx, "bench-idle", newcomer.into()).await?;
    let drain = discard(ev);
    let expected = p.idle_members as u64;
    let received = told.drained(expected, p.drain_timeout).await;
    let broadcast = told.last_at().saturating_duration_since(joined);
    late.goodbye().await;
    drain.abort();
    // Dropping the tasks closes every idle member's connection.
    drop(members);
    Ok(Figure::Scale {
        members: expected,
        rss_before,
        rss_after,
        broadcast,
        received,
    })
}

/// W6: `many_members` members, each sending `many_rate` messages per
/// second (each one awaited for its acknowledgement, the latency recorded)
/// to a random other member addressed by `kind`, for `many_for`.
async fn many(ctx: &RunCtx<'_>, kind: AddressKind) -> Result<Figure, BenchError> {
    let p = ctx.params;
    let n = p.many_members.max(2);
    let mut members = Vec::with_capacity(n);
    let mut streams = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let k = many::CONNECT_PARALLEL.min(n - i);
        let mut joins = Vec::with_capacity(k);
        for j in i..i + k {
            let cfg = config(ctx, "bench-many", format!("m{j}"))?;
            joins.push(tokio::spawn(Member::connect(cfg)));
        }
        for j in joins {
            let (m, ev) = j
                .await
                .map_err(|e| BenchError::client(SYSTEM, e))?
                .map_err(|e| BenchError::client(SYSTEM, e))?;
            members.push(m);
            streams.push(ev);
        }
        i += k;
    }
    let mut targets = Vec::with_capacity(n);
    for (j, m) in members.iter().enumerate() {
        let process = format!("m{j}");
        targets.push(address_of(m, kind, "bench-many", &process, &process).await?);
    }
    let targets: Arc<[Address]> = targets.into();

    let stamp = Stamp::new(p);
    let delivery = SharedHist::new();
    let told = Arc::new(Deliveries::new());
    let mut readers = Tasks::with_capacity(n);
    for mut ev in streams {
        let (d, hist) = (told.clone(), delivery.clone());
        readers.push(tokio::spawn(async move {
            let mut buf = Vec::with_capacity(EVENTS_BATCH);
            let mut local = latency_histogram();
            while ev.next_many(&mut buf, EVENTS_BATCH).await > 0 {
                let mut got = 0;
                for e in buf.drain(..) {
                    if let Event::Message(m) = e {
                        if let Some(us) = stamp.age_us(&m.wire.payload) {
                            local.saturating_record(us);
                        }
                        got += 1;
                    }
                }
                if got > 0 {
                    hist.add(&local);
                    local.reset();
                    d.record(got);
                }
            }
        }));
    }

    let start = Instant::now() + Duration::from_millis(100);
    let until = start + p.many_for;
    let acks = SharedHist::new();
    let mut senders = Tasks::with_capacity(n);
    for (me, m) in members.iter().enumerate() {
        let (m, targets, acks) = (m.clone(), targets.clone(), acks.clone());
        let rate = p.many_rate;
        let drain = p.drain_timeout;
        senders.push(tokio::spawn(async move {
            let mut pick = Picker::new(me, n);
            let mut tick = many::pacer(start, me, n, rate);
            let mut in_flight = FuturesUnordered::new();
            let mut local = latency_histogram();
            let (mut sent, mut acked) = (0u64, 0u64);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if Instant::now() >= until {
                            break;
                        }
                        let (m, to) = (m.clone(), targets[pick.next_other()].clone());
                        let payload = stamp.payload();
                        let t = Instant::now();
                        sent += 1;
                        in_flight.push(async move { (m.send(to, payload).await, t) });
                    }
                    Some((r, t)) = in_flight.next(), if !in_flight.is_empty() => {
                        if r.is_ok() {
                            acked += 1;
                            local.saturating_record(micros(t.elapsed()));
                        }
                    }
                }
            }
            let _ = tokio::time::timeout(drain, async {
                while let Some((r, t)) = in_flight.next().await {
                    if r.is_ok() {
                        acked += 1;
                        local.saturating_record(micros(t.elapsed()));
                    }
                }
            })
            .await;
            acks.add(&local);
            (sent, acked)
        }));
    }
    let (mut sent, mut acked) = (0, 0);
    for (s, a) in senders
        .join()
        .await
        .map_err(|e| BenchError::client(SYSTEM, e))?
    {
        sent += s;
        acked += a;
    }
    let received = told.drained(sent, p.drain_timeout).await;
    let elapsed = told.last_at().saturating_duration_since(start);
    drop(readers);
    for m in members {
        m.kill().await;
    }
    Ok(Figure::Many {
        members: n as u64,
        sent,
        acked: Some(acked),
        received,
        elapsed,
        delivery: delivery.snapshot(),
        ack: Some(acks.snapshot()),
    })
}

/// A duration in whole microseconds, at least 1.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}
