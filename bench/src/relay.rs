//! The bare relay: the physical limit of this machine for the workloads.
//!
//! No protocol, no acknowledgements, no order guarantees beyond TCP's: a
//! frame is `len u32 | topic u32 | payload` (big endian, `len` counts topic
//! and payload); a frame whose topic has the high bit set subscribes the
//! connection to that topic. The relay runs on one thread, reads many
//! frames per read, appends each to the output buffer of every subscriber
//! of its topic, and hands each touched buffer to that subscriber's writer
//! once per read, through the same bounded write queue and coalescing
//! write loop as the Switchboard server (so the batching is the same).
//! A full write queue makes the reader wait: backpressure, not unbounded
//! buffers.
//!
//! The loader side is as lean: senders write pre-built 64 KiB batches of
//! frames, receivers count frames by their length prefixes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::ctx::RunCtx;
use super::many::{self, Picker, SharedHist, Stamp};
use super::measure::Deliveries;
use super::workload::{latency_histogram, BenchError, Figure, Workload};
use switchboard_runtime::io::{write_loop, READ_BYTES};

/// Bit of the topic field that makes a frame a subscription.
const SUBSCRIBE: u32 = 0x8000_0000;
/// Largest frame body the relay accepts.
const FRAME_MAX: usize = 1 << 20;
/// Chunks queued per subscriber writer at most (as the server's).
const WRITE_QUEUE_MAX: usize = 1024;
/// Bytes of pre-built frames per sender write.
const SEND_BATCH_BYTES: usize = 64 * 1024;

const SYSTEM: &str = "relay";

type Subscribers = Rc<RefCell<HashMap<u32, Vec<u64>>>>;
type Writers = Rc<RefCell<HashMap<u64, mpsc::Sender<Bytes>>>>;

/// Runs the relay on `listen` on the current thread until the process
/// ends (the `bench-relay` subcommand).
pub fn serve(listen: SocketAddr) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(listen).await?;
        let subs: Subscribers = Rc::default();
        let writers: Writers = Rc::default();
        let mut next: u64 = 0;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            next += 1;
            let id = next;
            let (rd, wr) = stream.into_split();
            let (tx, rx) = mpsc::channel(WRITE_QUEUE_MAX);
            writers.borrow_mut().insert(id, tx);
            tokio::task::spawn_local(async move {
                let _ = write_loop(wr, rx).await;
            });
            let (subs, writers) = (subs.clone(), writers.clone());
            tokio::task::spawn_local(async move {
                relay_reads(id, rd, &subs, &writers).await;
                writers.borrow_mut().remove(&id);
                for v in subs.borrow_mut().values_mut() {
                    v.retain(|c| *c != id);
                }
            });
        }
    })
}

/// One connection's reads: frames in, subscribers' buffers out.
async fn relay_reads(
    id: u64,
    mut rd: tokio::net::tcp::OwnedReadHalf,
    subs: &Subscribers,
    writers: &Writers,
) {
    let mut buf = BytesMut::with_capacity(READ_BYTES);
    let mut out: HashMap<u64, BytesMut> = HashMap::new();
    loop {
        buf.reserve(READ_BYTES);
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut at = 0;
        {
            while buf.len() - at >= 8 {
                let len = be_u32(&buf[at..]) as usize;
                if !(4..=FRAME_MAX).contains(&len) {
                    return;
                }
                if buf.len() - at < 4 + len {
                    break;
                }
                let topic = be_u32(&buf[at + 4..]);
                if topic & SUBSCRIBE != 0 {
                    // In force for the frames after it, in this read too.
                    subs.borrow_mut()
                        .entry(topic & !SUBSCRIBE)
                        .or_default()
                        .push(id);
                } else if let Some(list) = subs.borrow().get(&topic) {
                    let frame = &buf[at..at + 4 + len];
                    for sub in list {
                        out.entry(*sub).or_default().extend_from_slice(frame);
                    }
                }
                at += 4 + len;
            }
        }
        buf.advance(at);
        for (sub, data) in out.iter_mut() {
            if data.is_empty() {
                continue;
            }
            let chunk = data.split().freeze();
            let tx = writers.borrow().get(sub).cloned();
            if let Some(tx) = tx {
                // Waits while the subscriber's queue is full.
                let _ = tx.send(chunk).await;
            }
        }
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

// ----- the lean loader ------------------------------------------------------

/// Appends one frame.
fn put_frame(out: &mut BytesMut, topic: u32, payload: &[u8]) {
    out.put_u32(4 + payload.len() as u32);
    out.put_u32(topic);
    out.put_slice(payload);
}

/// Counts whole frames in a byte stream cut anywhere.
#[derive(Debug, Default)]
struct FrameCounter {
    hdr: [u8; 4],
    hdr_len: usize,
    skip: usize,
}

impl FrameCounter {
    /// Feeds bytes; returns the frames completed by them.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut frames = 0;
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                if self.skip == 0 {
                    frames += 1;
                }
                continue;
            }
            let n = (4 - self.hdr_len).min(data.len());
            self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&data[..n]);
            self.hdr_len += n;
            data = &data[n..];
            if self.hdr_len == 4 {
                self.hdr_len = 0;
                self.skip = u32::from_be_bytes(self.hdr) as usize;
                if self.skip == 0 {
                    frames += 1;
                }
            }
        }
        frames
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, BenchError> {
    let s = TcpStream::connect(addr)
        .await
        .map_err(|e| BenchError::client(SYSTEM, e))?;
    s.set_nodelay(true)
        .map_err(|e| BenchError::client(SYSTEM, e))?;
    Ok(s)
}

/// Connects, subscribes to `topics`, and waits until the relay has the
/// subscriptions in force (a frame to a private topic comes back).
async fn subscriber(
    addr: SocketAddr,
    topics: &[u32],
    private: u32,
) -> Result<TcpStream, BenchError> {
    let mut s = connect(addr).await?;
    let mut b = BytesMut::new();
    for t in topics.iter().chain([&private]) {
        put_frame(&mut b, t | SUBSCRIBE, &[]);
    }
    put_frame(&mut b, private, b"sync");
    s.write_all(&b)
        .await
        .map_err(|e| BenchError::client(SYSTEM, e))?;
    let mut fc = FrameCounter::default();
    let mut buf = [0u8; 64];
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
            if fc.feed(&buf[..n]) > 0 {
                return Ok(());
            }
        }
    })
    .await;
    match got {
        Ok(Ok(())) => Ok(s),
        Ok(Err(e)) => Err(BenchError::client(SYSTEM, e)),
        Err(_) => Err(BenchError::client(SYSTEM, "subscription not confirmed")),
    }
}

/// Runs one workload against the relay at `ctx.addr`.
pub async fn run(w: Workload, ctx: &RunCtx<'_>) -> Result<Figure, BenchError> {
    let p = ctx.params;
    match w {
        // Topic 1 for the single stream; 100 + j for W4 receiver j.
        Workload::W1 => throughput(ctx, &[vec![1]], &[vec![1]]).await,
        Workload::W2 => {
            let receivers = vec![vec![1]; p.fanout];
            throughput(ctx, &receivers, &[vec![1]]).await
        }
        Workload::W4 => {
            let n = p.pairs as u32;
            let receivers: Vec<Vec<u32>> = (0..n).map(|j| vec![100 + j]).collect();
            let senders: Vec<Vec<u32>> = (0..n)
                .map(|i| (0..n).map(|k| 100 + (i + k) % n).collect())
                .collect();
            throughput(ctx, &receivers, &senders).await
        }
        Workload::W3 => latency(ctx).await,
        Workload::W5 => scale(ctx).await,
        Workload::W6 => many(ctx).await,
    }
}

/// Receivers subscribe to their topics; each sender cycles through its
/// topic list frame by frame. Expected deliveries count every subscriber
/// of each frame's topic.
async fn throughput(
    ctx: &RunCtx<'_>,
    receivers: &[Vec<u32>],
    senders: &[Vec<u32>],
) -> Result<Figure, BenchError> {
    let p = ctx.params;
    let mut subscribers_of: HashMap<u32, u64> = HashMap::new();
    let mut streams = Vec::new();
    for (j, topics) in receivers.iter().enumerate() {
        for t in topics {
            *subscribers_of.entry(*t).or_default() += 1;
        }
        streams.push(subscriber(ctx.addr, topics, 10_000 + j as u32).await?);
    }
    let mut deliveries = Deliveries::new();
    let mut outs = Vec::new();
    for _ in senders {
        outs.push(connect(ctx.addr).await?);
    }
    deliveries.restart();
    let deliveries = Arc::new(deliveries);
    let mut readers = Vec::new();
    for mut s in streams {
        let d = deliveries.clone();
        readers.push(tokio::spawn(async move {
            let mut fc = FrameCounter::default();
            let mut buf = vec![0u8; READ_BYTES];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                d.record(fc.feed(&buf[..n]));
            }
        }));
    }
    let payload = vec![0x5a; p.payload];
    let deadline = Instant::now() + p.send_for;
    let mut writers = Vec::new();
    for (mut s, topics) in outs.into_iter().zip(senders.iter().cloned()) {
        let payload = payload.clone();
        writers.push(tokio::spawn(async move {
            // A batch of whole cycles through the topic list.
            let frame_len = 8 + payload.len();
            let cycles = (SEND_BATCH_BYTES / (frame_len * topics.len())).max(1);
            let mut batch = BytesMut::new();
            let mut per_topic: HashMap<u32, u64> = HashMap::new();
            for _ in 0..cycles {
                for t in &topics {
                    put_frame(&mut batch, *t, &payload);
                    *per_topic.entry(*t).or_default() += 1;
                }
            }
            let batch = batch.freeze();
            let mut rounds: u64 = 0;
            while Instant::now() < deadline {
                if s.write_all(&batch).await.is_err() {
                    break;
                }
                rounds += 1;
            }
            (rounds, per_topic, s)
        }));
    }
    let mut sent = 0;
    let mut expected = 0;
    let mut keep = Vec::new();
    for w in writers {
        let (rounds, per_topic, s) = w.await.map_err(|e| BenchError::client(SYSTEM, e))?;
        for (t, n) in per_topic {
            sent += rounds * n;
            expected += rounds * n * subscribers_of.get(&t).copied().unwrap_or(0);
        }
        keep.push(s);
    }
    let received = deliveries.drained(expected, p.drain_timeout).await;
    drop(keep);
    for r in readers {
        r.abort();
    }
    Ok(Figure::Throughput {
        sent,
        expected,
        received,
        elapsed: deliveries.elapsed(),
        acked: None,
    })
}

/// Sequential round trips through an echoing responder.
async fn latency(ctx: &RunCtx<'_>) -> Result<Figure, BenchError> {
    const REQUEST: u32 = 3;
    const REPLY: u32 = 2;
    let p = ctx.params;
    let mut responder = subscriber(ctx.addr, &[REQUEST], 20_001).await?;
    let mut requester = subscriber(ctx.addr, &[REPLY], 20_002).await?;
    let echo = tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(READ_BYTES);
        let mut out = BytesMut::new();
        loop {
            if !matches!(responder.read_buf(&mut buf).await, Ok(n) if n > 0) {
                return;
            }
            while buf.len() >= 8 {
                let len = be_u32(&buf) as usize;
                if buf.len() < 4 + len {
                    break;
                }
                put_frame(&mut out, REPLY, &buf[8..4 + len]);
                buf.advance(4 + len);
            }
            if responder.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    });
    let mut frame = BytesMut::new();
    put_frame(&mut frame, REQUEST, &vec![0x33; p.request_payload]);
    let mut hist = latency_histogram();
    // More than 10 failures end the run early; whatever was not recorded
    // (failed or never sent) counts as lost, as in the peers' adapters.
    let mut failures = 0;
    let mut fc = FrameCounter::default();
    let mut buf = vec![0u8; READ_BYTES];
    for i in 0..p.warmup_requests + p.requests {
        let t = Instant::now();
        requester
            .write_all(&frame)
            .await
            .map_err(|e| BenchError::client(SYSTEM, e))?;
        let got = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                match requester.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => {
                        if fc.feed(&buf[..n]) > 0 {
                            return true;
                        }
                    }
                }
            }
        })
        .await;
        let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
        match got {
            Ok(true) if i >= p.warmup_requests => {
                let _ = hist.record(us.max(1));
            }
            Ok(true) => {}
            _ => {
                failures += 1;
                if failures > 10 {
                    break;
                }
            }
        }
    }
    echo.abort();
    let lost = (p.requests as u64).saturating_sub(hist.len());
    Ok(Figure::Latency { hist, lost })
}

/// Idle subscribers, then one frame to all of them.
async fn scale(ctx: &RunCtx<'_>) -> Result<Figure, BenchError> {
    const TOPIC: u32 = 5;
    let p = ctx.params;
    let rss_before = ctx.server_rss();
    let mut subs = Vec::with_capacity(p.idle_members);
    for i in 0..p.idle_members {
        subs.push(subscriber(ctx.addr, &[TOPIC], 30_000 + i as u32).await?);
    }
    let rss_after = ctx.server_rss();
    let mut publisher = connect(ctx.addr).await?;
    let deliveries = Arc::new(Deliveries::new());
    let mut readers = Vec::new();
    for mut s in subs {
        let d = deliveries.clone();
        readers.push(tokio::spawn(async move {
            let mut fc = FrameCounter::default();
            let mut buf = [0u8; 256];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                if fc.feed(&buf[..n]) > 0 {
                    d.record(1);
                    return;
                }
            }
        }));
    }
    let mut frame = BytesMut::new();
    put_frame(&mut frame, TOPIC, b"membership changed");
    let published = Instant::now();
    publisher
        .write_all(&frame)
        .await
        .map_err(|e| BenchError::client(SYSTEM, e))?;
    let members = p.idle_members as u64;
    let received = deliveries.drained(members, p.drain_timeout).await;
    let broadcast = deliveries.last_at().saturating_duration_since(published);
    for r in readers {
        r.abort();
    }
    Ok(Figure::Scale {
        members,
        rss_before,
        rss_after,
        broadcast,
        received,
    })
}

/// W6: `many_members` connections, member i subscribed to topic
/// `W6_TOPIC + i`, each writing `many_rate` frames per second to a random
/// other member's topic for `many_for`.
async fn many(ctx: &RunCtx<'_>) -> Result<Figure, BenchError> {
    const W6_TOPIC: u32 = 1_000_000;
    const W6_PRIVATE: u32 = 2_000_000;
    let p = ctx.params;
    let n = p.many_members.max(2);
    let mut conns = Vec::with_capacity(n);
    for i in 0..n as u32 {
        conns.push(subscriber(ctx.addr, &[W6_TOPIC + i], W6_PRIVATE + i).await?);
    }
    let stamp = Stamp::new(p);
    let delivery = SharedHist::new();
    let told = Arc::new(Deliveries::new());
    let start = Instant::now() + Duration::from_millis(100);
    let until = start + p.many_for;
    let mut readers = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(n);
    for (me, s) in conns.into_iter().enumerate() {
        let (mut rd, mut wr) = s.into_split();
        let (d, hist) = (told.clone(), delivery.clone());
        readers.push(tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(READ_BYTES);
            let mut local = latency_histogram();
            while matches!(rd.read_buf(&mut buf).await, Ok(n) if n > 0) {
                let mut got = 0;
                while buf.len() >= 8 {
                    let len = be_u32(&buf) as usize;
                    if buf.len() < 4 + len {
                        break;
                    }
                    if let Some(us) = stamp.age_us(&buf[8..4 + len]) {
                        local.saturating_record(us);
                    }
                    got += 1;
                    buf.advance(4 + len);
                }
                if got > 0 {
                    hist.add(&local);
                    local.reset();
                    d.record(got);
                }
            }
        }));
        let rate = p.many_rate;
        senders.push(tokio::spawn(async move {
            let mut pick = Picker::new(me, n);
            let mut tick = many::pacer(start, me, n, rate);
            let mut frame = BytesMut::new();
            let mut sent = 0u64;
            loop {
                tick.tick().await;
                if Instant::now() >= until {
                    break;
                }
                frame.clear();
                put_frame(
                    &mut frame,
                    W6_TOPIC + pick.next_other() as u32,
                    &stamp.payload(),
                );
                if wr.write_all(&frame).await.is_err() {
                    break;
                }
                sent += 1;
            }
            (sent, wr)
        }));
    }
    let mut sent = 0;
    let mut keep = Vec::with_capacity(n);
    for h in senders {
        let (k, wr) = h.await.map_err(|e| BenchError::client(SYSTEM, e))?;
        sent += k;
        keep.push(wr);
    }
    let received = told.drained(sent, p.drain_timeout).await;
    drop(keep);
    for r in readers {
        r.abort();
    }
    Ok(Figure::Many {
        members: n as u64,
        sent,
        acked: None,
        received,
        elapsed: told.last_at().saturating_duration_since(start),
        delivery: delivery.snapshot(),
        ack: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_counter_counts_frames_cut_anywhere() {
        let mut b = BytesMut::new();
        for i in 0..50u32 {
            put_frame(&mut b, i, &vec![7; i as usize]);
        }
        for cut in 1..40 {
            let mut fc = FrameCounter::default();
            let total: u64 = b.chunks(cut).map(|c| fc.feed(c)).sum();
            assert_eq!(total, 50, "cut {cut}");
        }
    }
}
