//! Microbenchmarks of the wire codec: encode and decode of one
//! representative frame of every kind (`encode/<Kind>`, `decode/<Kind>`),
//! and `decode/batch_128B_x1000`: 1000 back-to-back `Send` frames with
//! 128-byte payloads taken off one read buffer, the way the server parses
//! a read.
//!
//! Run with `cargo bench -p switchboard-core --bench codec`; add a filter
//! such as `-- encode/Send` to run one case. Throughput is in frames.

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput};
use switchboard_core::frame::*;

/// Payload size of the data frames.
const PAYLOAD_BYTES: usize = 128;

/// Frames in the batch decode case.
const BATCH_FRAMES: usize = 1000;

fn payload() -> Bytes {
    Bytes::from((0..PAYLOAD_BYTES).map(|i| i as u8).collect::<Vec<u8>>())
}

fn member(i: u64) -> MemberInfo {
    MemberInfo {
        member_id: 0x4000_0000_0000_0000 | (i * 0x9e37_79b9),
        incarnation: 0x0102_0304_0506_0700 | i,
        instance: "billing-eu1".into(),
        process: format!("worker-{i:02}"),
        services: vec!["invoices".into()],
        load: 40 + i as u32,
        groups: vec!["cache".into()],
    }
}

/// One representative value of every frame kind, in kind-code order.
/// Data frames carry a 128-byte payload; names are typical lengths.
fn frames() -> Vec<Frame> {
    let p = payload();
    let to = Address::MemberId(0x4000_0000_0000_002a);
    vec![
        Frame::Hello(Hello {
            cluster: "prod".into(),
            instance: "billing-eu1".into(),
            process: "worker-03".into(),
            incarnation: 0x0102_0304_0506_0708,
            capabilities: capabilities::CHUNKING | capabilities::OUTCOMES,
            client_nonce: [0xaa; NONCE_BYTES],
            services: vec!["invoices".into(), "payments".into()],
            load: 10,
            groups: vec!["cache".into()],
            subscriptions: vec![SubscriptionSpec {
                sub_id: 1,
                filter: Filter::kinds(&[EventKind::Membership, EventKind::Custom]),
            }],
            credential: "billing".into(),
        }),
        Frame::Resume(Resume {
            cluster: "prod".into(),
            member_id: 0x4000_0000_0000_0003,
            incarnation: 0x0102_0304_0506_0708,
            server_incarnation: 0x1122_3344_5566_7789,
            delivered_through: 123_456,
            client_nonce: [0xbb; NONCE_BYTES],
            credential: String::new(),
        }),
        Frame::Challenge(Challenge {
            server_incarnation: 0x1122_3344_5566_7789,
            server_nonce: [0xcc; NONCE_BYTES],
            server_proof: [0x5a; PROOF_BYTES],
            extra_proofs: vec![[0x5c; PROOF_BYTES]],
        }),
        Frame::Auth(Auth {
            client_proof: [0xa5; PROOF_BYTES],
            session_proof: [0x5b; PROOF_BYTES],
        }),
        Frame::Welcome(Welcome {
            member_id: 0x4000_0000_0000_0003,
            server_incarnation: 0x1122_3344_5566_7789,
            epoch: 17,
            position: 123_456,
            heartbeat_interval_ms: 1_000,
            heartbeat_timeout_ms: 5_000,
            resume_window_ms: 10_000,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            snapshot_members: 8,
        }),
        Frame::Snapshot(Snapshot {
            members: (1..=8).map(member).collect(),
        }),
        Frame::Reject(Reject {
            reason: RejectReason::DuplicateIdentity,
            text: "billing-eu1/worker-03 incarnation 0x0102030405060708 is live".into(),
        }),
        Frame::Resumed(Resumed {
            received_through: 4_242,
            replay_from: 123_457,
        }),
        Frame::Gap(Gap {
            from: 100_000,
            through: 123_456,
        }),
        Frame::Send(Send {
            seq: 4_243,
            flags: 0,
            to: to.clone(),
            correlation: 0,
            timeout_ms: 0,
            total_len: PAYLOAD_BYTES as u32,
            payload: p.clone(),
        }),
        Frame::Chunk(Chunk {
            id: 4_244,
            offset: 65_536,
            payload: p.clone(),
        }),
        Frame::Ack(Ack {
            through: 4_243,
            stable_through: 4_200,
        }),
        Frame::Nack(Nack {
            gseq: 123_458,
            seq: 4_245,
            reason: NackReason::DestinationGone,
        }),
        Frame::Deliver(Deliver {
            gseq: 123_457,
            from: 0x4000_0000_0000_0003,
            from_incarnation: 0x0102_0304_0506_0708,
            seq: 4_243,
            flags: 0,
            to,
            correlation: 0,
            total_len: PAYLOAD_BYTES as u32,
            payload: p.clone(),
        }),
        Frame::DeliveryAck(DeliveryAck { through: 123_457 }),
        Frame::Outcome(Outcome {
            gseq: 123_459,
            seq: 4_246,
            delivered: 15,
            missed: vec![Missed {
                member_id: 0x4000_0000_0000_0007,
                reason: MissReason::Failed,
            }],
        }),
        Frame::Publish(Publish {
            seq: 4_247,
            event: EventBody::Custom {
                topic: "cache/invalidate".into(),
                payload: p.clone(),
            },
        }),
        Frame::Notify(Notify {
            gseq: 123_460,
            epoch: 17,
            origin_incarnation: 0x0102_0304_0506_0708,
            origin_seq: 4_247,
            event: ClusterEvent::Custom {
                member_id: 0x4000_0000_0000_0003,
                topic: "cache/invalidate".into(),
                payload: p,
            },
        }),
        Frame::Subscribe(Subscribe {
            seq: 4_248,
            sub_id: 2,
            filter: Filter {
                kinds: EventKind::Custom.bit(),
                topic_prefix: "cache/".into(),
            },
        }),
        Frame::Unsubscribe(Unsubscribe {
            seq: 4_249,
            sub_id: 2,
        }),
        Frame::Join(GroupOp {
            seq: 4_250,
            group: "cache".into(),
        }),
        Frame::Leave(GroupOp {
            seq: 4_251,
            group: "cache".into(),
        }),
        Frame::Ping(1_700_000_000_000_000),
        Frame::Pong(1_700_000_000_000_000),
        Frame::Goodbye(Goodbye {
            text: "shutting down".into(),
        }),
        Frame::Error(ErrorFrame {
            code: ErrorCode::UnexpectedFrame,
            text: "Hello is not allowed after registration".into(),
        }),
    ]
}

/// Position of a kind in [`frames`]. The exhaustive match stops this file
/// from compiling when a variant is added without a benchmark value.
fn slot(f: &Frame) -> usize {
    match f {
        Frame::Hello(_) => 0,
        Frame::Resume(_) => 1,
        Frame::Challenge(_) => 2,
        Frame::Auth(_) => 3,
        Frame::Welcome(_) => 4,
        Frame::Snapshot(_) => 5,
        Frame::Reject(_) => 6,
        Frame::Resumed(_) => 7,
        Frame::Gap(_) => 8,
        Frame::Send(_) => 9,
        Frame::Chunk(_) => 10,
        Frame::Ack(_) => 11,
        Frame::Nack(_) => 12,
        Frame::Deliver(_) => 13,
        Frame::DeliveryAck(_) | Frame::Taken(_) => 14,
        Frame::Outcome(_) => 15,
        Frame::Publish(_) => 16,
        Frame::Notify(_) => 17,
        Frame::Subscribe(_) => 18,
        Frame::Unsubscribe(_) => 19,
        Frame::Join(_) => 20,
        Frame::Leave(_) => 21,
        Frame::Ping(_) => 22,
        Frame::Pong(_) => 23,
        Frame::Goodbye(_) => 24,
        Frame::Error(_) => 25,
    }
}

/// Encodes one frame into a fresh buffer.
fn encoded(f: &Frame, limits: &Limits) -> Bytes {
    let mut buf = BytesMut::new();
    let n = f
        .encode(&mut buf, limits)
        .unwrap_or_else(|e| panic!("{} must encode: {e}", f.name()));
    assert_eq!(n, buf.len(), "{}: encode reports what it wrote", f.name());
    buf.freeze()
}

/// Checks the frame list once: one value per kind, each round-trips.
fn checked_frames(limits: &Limits) -> Vec<Frame> {
    let frames = frames();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(slot(f), i, "{} is out of place", f.name());
        let mut buf = BytesMut::from(&encoded(f, limits)[..]);
        let back = decode(&mut buf, limits)
            .unwrap_or_else(|e| panic!("{} must decode: {e}", f.name()))
            .unwrap_or_else(|| panic!("{}: whole frame present", f.name()));
        assert_eq!(&back, f, "{} round-trips", f.name());
        assert!(buf.is_empty(), "{}: no trailing bytes", f.name());
    }
    // Every slot is filled (the last one included).
    assert_eq!(
        frames.len(),
        slot(&Frame::Error(ErrorFrame {
            code: ErrorCode::Internal,
            text: String::new(),
        })) + 1
    );
    frames
}

fn bench_encode(c: &mut Criterion) {
    let limits = Limits::default();
    let frames = checked_frames(&limits);
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    for f in &frames {
        // One reused buffer, as the server's and client's lanes are.
        let mut buf = BytesMut::with_capacity(4096);
        group.bench_function(f.name(), |b| {
            b.iter(|| {
                buf.clear();
                black_box(f)
                    .encode(&mut buf, &limits)
                    .expect("checked frame encodes")
            })
        });
    }
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let limits = Limits::default();
    let frames = checked_frames(&limits);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    for f in &frames {
        let bytes = encoded(f, &limits);
        group.bench_function(f.name(), |b| {
            // A fresh read buffer per decode, built outside the timing; the
            // frame and the buffer are dropped outside it too. The buffer
            // is made shared first, as a read buffer is once a frame has
            // been split off it: the one-off promotion (an allocation,
            // once per read in the server) stays out of the per-frame
            // figure. The batch case below includes it, amortized.
            b.iter_batched(
                || {
                    let mut buf = BytesMut::from(&bytes[..]);
                    drop(buf.split_to(0));
                    buf
                },
                |mut buf| {
                    let frame = decode(&mut buf, &limits).expect("checked frame decodes");
                    (frame, buf)
                },
                BatchSize::SmallInput,
            )
        });
    }

    // 1000 Sends back to back in one read buffer, taken off one by one as
    // `Server::handle_bytes` does. Each frame is dropped as it is handled.
    let mut batch = BytesMut::new();
    for i in 0..BATCH_FRAMES as u64 {
        Frame::Send(Send {
            seq: i + 1,
            flags: 0,
            to: Address::MemberId(0x4000_0000_0000_002a),
            correlation: 0,
            timeout_ms: 0,
            total_len: PAYLOAD_BYTES as u32,
            payload: payload(),
        })
        .encode(&mut batch, &limits)
        .expect("Send encodes");
    }
    let batch = batch.freeze();
    let decode_all = |mut buf: BytesMut| {
        let mut n = 0;
        while let Some(f) = decode(&mut buf, &limits).expect("batch decodes") {
            black_box(f);
            n += 1;
        }
        (n, buf)
    };
    let (n, rest) = decode_all(BytesMut::from(&batch[..]));
    assert_eq!(n, BATCH_FRAMES, "every frame of the batch decodes");
    assert!(rest.is_empty());
    group.throughput(Throughput::Elements(BATCH_FRAMES as u64));
    group.bench_function(format!("batch_{PAYLOAD_BYTES}B_x{BATCH_FRAMES}"), |b| {
        b.iter_batched(
            || BytesMut::from(&batch[..]),
            decode_all,
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
}

// What `criterion_group!`/`criterion_main!` expand to, written out: the
// macro's undocumented `pub fn` would trip the `missing_docs` lint.
fn main() {
    let mut c = config().configure_from_args();
    bench_encode(&mut c);
    bench_decode(&mut c);
    c.final_summary();
}
