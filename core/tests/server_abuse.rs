//! The server state machine against peers that break the rules on purpose:
//! oversized frames before authentication, a flood of handshakes, sequence
//! numbers that jump out of the window, subscriptions past the quota.
#![allow(clippy::unwrap_used)]

mod harness;

use bytes::{Bytes, BytesMut};
use harness::Cluster;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use switchboard_core::frame::{
    self, Address, EventBody, FailReason, Filter, Frame, Hello, Limits, Publish, RejectReason,
    Send, Subscribe, SubscriptionSpec, GROUPS_PER_MEMBER_MAX, HANDSHAKE_FRAME_BYTES_MAX,
    NAME_BYTES_MAX, SERVICES_MAX, SUBSCRIPTIONS_MAX, TOPIC_BYTES_MAX,
};
use switchboard_core::server::{CloseReason, ConnId, Output, Server, ServerConfig};
use switchboard_core::time::Tick;

fn server(cfg: ServerConfig) -> Server {
    Server::new(cfg, Box::new(ChaCha8Rng::seed_from_u64(7)), Tick::ZERO)
}

fn outputs(s: &mut Server) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn closed(out: &[Output], conn: ConnId) -> Option<CloseReason> {
    out.iter().find_map(|o| match o {
        Output::Close { conn: c, reason } if *c == conn => Some(*reason),
        _ => None,
    })
}

fn name(c: char) -> String {
    std::iter::repeat_n(c, NAME_BYTES_MAX).collect()
}

fn largest_hello() -> Hello {
    Hello {
        cluster: name('c'),
        instance: name('i'),
        process: name('p'),
        incarnation: u64::MAX,
        capabilities: u32::MAX,
        client_nonce: [0xff; frame::NONCE_BYTES],
        services: (0..SERVICES_MAX).map(|_| name('s')).collect(),
        load: u32::MAX,
        groups: (0..GROUPS_PER_MEMBER_MAX).map(|_| name('g')).collect(),
        subscriptions: (0..SUBSCRIPTIONS_MAX)
            .map(|i| SubscriptionSpec {
                sub_id: i as u32,
                filter: Filter {
                    kinds: u16::MAX,
                    topic_prefix: std::iter::repeat_n('t', TOPIC_BYTES_MAX).collect(),
                },
            })
            .collect(),
        credential: std::iter::repeat_n('k', frame::NAME_BYTES_MAX).collect(),
    }
}

#[test]
fn the_largest_hello_fits_the_handshake_frame_cap() {
    let mut b = BytesMut::new();
    Frame::Hello(largest_hello())
        .encode(&mut b, &Limits::default())
        .unwrap();
    assert!(
        b.len() <= HANDSHAKE_FRAME_BYTES_MAX as usize,
        "largest Hello is {} bytes",
        b.len()
    );
    let pre = Limits::default().before_auth();
    assert!(matches!(
        frame::decode(&mut b, &pre),
        Ok(Some(Frame::Hello(_)))
    ));
}

#[test]
fn a_large_frame_before_authentication_is_refused_at_its_header() {
    let mut s = server(harness::server_config());
    let conn = ConnId(1);
    s.handle_connected(Tick::ZERO, conn);
    // The header of a 512 KiB Hello: under `frame_bytes_max` (1 MiB), over
    // the handshake cap. Nothing of its body is sent.
    let len: u32 = 512 * 1024;
    let mut header = len.to_be_bytes().to_vec();
    header.extend_from_slice(&[frame::PROTOCOL_VERSION, frame::kind::HELLO]);
    s.handle_bytes(Tick::ZERO, conn, &header);
    let out = outputs(&mut s);
    assert_eq!(
        closed(&out, conn),
        Some(CloseReason::ProtocolError),
        "{out:?}"
    );
    assert_eq!(s.connections(), 0);
}

#[test]
fn a_full_handshake_table_closes_its_oldest_handshake_not_the_newcomer() {
    let mut cfg = harness::server_config();
    cfg.handshakes_max = 2;
    let mut s = server(cfg);
    s.handle_connected(Tick::ZERO, ConnId(1));
    s.handle_connected(Tick::ZERO, ConnId(2));
    assert!(outputs(&mut s).is_empty());
    s.handle_connected(Tick::ZERO, ConnId(3));
    let out = outputs(&mut s);
    assert_eq!(
        closed(&out, ConnId(1)),
        Some(CloseReason::Rejected(RejectReason::ServerFull)),
        "{out:?}"
    );
    assert_eq!(closed(&out, ConnId(3)), None);
    assert_eq!(s.connections(), 2);
}

#[test]
fn an_honest_member_registers_while_silent_connections_fill_the_table() {
    let mut cfg = harness::server_config();
    cfg.handshakes_max = 4;
    let mut c = Cluster::with_config(1, cfg);
    // Silent connections, more than the table holds, opened before and
    // during the honest member's start.
    for i in 0..6u64 {
        c.server.handle_connected(c.now, ConnId(1_000 + i));
    }
    let a = c.add("a", "p");
    // Within 50 ms: no waiting for a slot, no retry.
    c.start_in_grace();
    for i in 6..12u64 {
        c.server.handle_connected(c.now, ConnId(1_000 + i));
    }
    c.settle();
    assert!(c.server.is_attached(c.member_id(a)));
}

/// A registered member whose connection then sends `seq`.
fn member_sending(seq: u64, first: u64) -> (Cluster, Vec<Output>) {
    let mut c = Cluster::new(3);
    let a = c.add("a", "p");
    c.start();
    c.run_for(4_000, 100);
    let conn = c.nodes[a].conn.unwrap();
    let id = c.member_id(a);
    let mut b = BytesMut::new();
    for seq in [first, seq] {
        Frame::Send(Send {
            seq,
            flags: 0,
            to: Address::MemberId(id),
            correlation: 0,
            timeout_ms: 0,
            total_len: 1,
            payload: Bytes::from_static(b"x"),
        })
        .encode(&mut b, &Limits::default())
        .unwrap();
    }
    let now = c.now;
    c.server.handle_bytes(now, conn, &b);
    let out = outputs(&mut c.server);
    (c, out)
}

#[test]
fn a_sequence_jump_beyond_the_window_is_a_protocol_violation() {
    let (c, out) = member_sending(u64::MAX, 1);
    let conn = c.nodes[0].conn.unwrap();
    let violation = CloseReason::MemberFailed(FailReason::ProtocolViolation);
    assert_eq!(closed(&out, conn), Some(violation), "{out:?}");
}

#[test]
fn a_resend_far_behind_the_window_is_a_protocol_violation() {
    // The first frame sets the base at 2^64-1: a later frame cannot be a
    // resend of anything, and must not be silently ignored as one.
    let (c, out) = member_sending(5, u64::MAX);
    let conn = c.nodes[0].conn.unwrap();
    let violation = CloseReason::MemberFailed(FailReason::ProtocolViolation);
    assert_eq!(closed(&out, conn), Some(violation), "{out:?}");
}

#[test]
fn a_sequence_within_the_window_is_accepted() {
    let (c, out) = member_sending(1 + frame::SEQ_WINDOW, 1);
    let conn = c.nodes[0].conn.unwrap();
    assert_eq!(closed(&out, conn), None, "{out:?}");
}

/// A member that asks for more than `SUBSCRIPTIONS_MAX` subscriptions (the
/// client refuses the extra one itself; a raw peer need not) has the extra
/// one refused `OverQuota`; replacing a subscription it holds is still
/// accepted when it is full.
#[test]
fn a_subscription_past_the_quota_is_refused_but_a_held_one_may_be_replaced() {
    let (mut c, _, conn) = registered_raw_member();
    let max = SUBSCRIPTIONS_MAX as u64;
    // Sub ids 0..=max (one too many), then sub id 0 again.
    let frames: Vec<Frame> = (1..=max + 2)
        .map(|seq| {
            Frame::Subscribe(Subscribe {
                seq,
                sub_id: if seq == max + 2 { 0 } else { (seq - 1) as u32 },
                filter: Filter::all(),
            })
        })
        .collect();
    let (out, nacks) = feed_and_nacks(&mut c, conn, &frames);
    assert_eq!(nacks, vec![(max + 1, frame::NackReason::OverQuota)]);
    assert_eq!(closed(&out, conn), None, "{out:?}");
}

/// A member that announces more than `SERVICES_MAX` services (a raw peer;
/// the simulator's clients stay within it) has the extra up refused
/// `OverQuota`; an up of a service it holds changes nothing, and once a
/// down made room a new up is accepted. The server's view holds exactly
/// the services accepted.
#[test]
fn a_service_past_the_quota_is_refused_and_the_view_holds_the_accepted_ones() {
    let (mut c, a, conn) = registered_raw_member();
    let member = c.member_id(a);
    let max = SERVICES_MAX as u64;
    let service = |i: u64| format!("s{i:02}");
    let publish = |seq: u64, service: String, up: bool| {
        Frame::Publish(Publish {
            seq,
            event: EventBody::ServiceState { service, up },
        })
    };
    // Ups of s00..=s{max} (one too many), s00 again, s00 down, s{max} up.
    let mut frames: Vec<Frame> = (1..=max + 1)
        .map(|seq| publish(seq, service(seq - 1), true))
        .collect();
    frames.push(publish(max + 2, service(0), true));
    frames.push(publish(max + 3, service(0), false));
    frames.push(publish(max + 4, service(max), true));
    let (out, nacks) = feed_and_nacks(&mut c, conn, &frames);
    assert_eq!(nacks, vec![(max + 1, frame::NackReason::OverQuota)]);
    let services = c
        .server
        .view()
        .find(|m| m.member_id == member)
        .map(|m| m.services.clone())
        .unwrap();
    let want: Vec<String> = (1..=max).map(service).collect();
    assert_eq!(services, want);
    assert_eq!(closed(&out, conn), None, "{out:?}");
}

/// A cluster with one registered member (index, connection) whose
/// connection the test then feeds raw frames.
fn registered_raw_member() -> (Cluster, usize, ConnId) {
    let mut c = Cluster::new(3);
    let a = c.add("a", "p");
    c.start();
    c.run_for(4_000, 100);
    let conn = c.nodes[a].conn.unwrap();
    (c, a, conn)
}

/// Feeds `frames` to `conn` in one read: the server's outputs, and the
/// NACKs (seq, reason) it sent that connection.
fn feed_and_nacks(
    c: &mut Cluster,
    conn: ConnId,
    frames: &[Frame],
) -> (Vec<Output>, Vec<(u64, frame::NackReason)>) {
    let now = c.now;
    c.server.handle_bytes(now, conn, &bytes_of(frames));
    let out = outputs(&mut c.server);
    let nacks = frames_to(&out, conn)
        .iter()
        .filter_map(|f| match f {
            Frame::Nack(n) => Some((n.seq, n.reason)),
            _ => None,
        })
        .collect();
    (out, nacks)
}

/// Encodes frames into one read.
fn bytes_of(frames: &[Frame]) -> BytesMut {
    let mut b = BytesMut::new();
    for f in frames {
        f.encode(&mut b, &Limits::default()).unwrap();
    }
    b
}

/// Frames transmitted to `conn` in `out`.
fn frames_to(out: &[Output], conn: ConnId) -> Vec<Frame> {
    let mut frames = Vec::new();
    for o in out {
        if let Output::Transmit { conn: c, data } = o {
            if *c == conn {
                let mut b = BytesMut::from(&data[..]);
                while let Some(f) = frame::decode(&mut b, &Limits::default()).unwrap() {
                    frames.push(f);
                }
            }
        }
    }
    frames
}

/// The head of a chunked message of `total` bytes to `to`, with a first
/// piece of `piece` bytes.
fn chunked_head(seq: u64, to: u64, total: u32, piece: usize) -> Frame {
    Frame::Send(Send {
        seq,
        flags: frame::flags::MORE,
        to: Address::MemberId(to),
        correlation: 0,
        timeout_ms: 0,
        total_len: total,
        payload: Bytes::from(vec![7u8; piece]),
    })
}

fn chunk(seq: u64, offset: u32, piece: usize) -> Frame {
    Frame::Chunk(frame::Chunk {
        id: seq,
        offset,
        payload: Bytes::from(vec![7u8; piece]),
    })
}

fn incomplete_nacks(frames: &[Frame]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Nack(n) if n.reason == frame::NackReason::Incomplete => Some(n.seq),
            _ => None,
        })
        .collect()
}

/// Two registered members (indexes 0 and 1) of a cluster with `cfg`.
fn pair(cfg: ServerConfig) -> Cluster {
    let mut c = Cluster::with_config(5, cfg);
    c.add("a", "p");
    c.add("b", "p");
    c.start();
    c.run_for(4_000, 100);
    c
}

#[test]
fn an_unfinished_chunked_message_is_dropped_at_its_deadline_and_nacked() {
    let mut cfg = harness::server_config();
    cfg.reassembly_timeout_ms = 1_000;
    let mut c = pair(cfg);
    let conn = c.nodes[0].conn.unwrap();
    let to = c.member_id(1);
    let now = c.now;
    let head = bytes_of(&[chunked_head(1, to, 4_000, 1_000)]);
    c.server.handle_bytes(now, conn, &head);
    let out = outputs(&mut c.server);
    assert!(incomplete_nacks(&frames_to(&out, conn)).is_empty());
    assert_eq!(c.server.reassembly_bytes(), 1_000);
    // Just before the deadline it is kept; at it, dropped and NACKed.
    c.server.handle_timeout(now.plus_millis(999));
    assert!(incomplete_nacks(&frames_to(&outputs(&mut c.server), conn)).is_empty());
    c.server.handle_timeout(now.plus_millis(1_000));
    let out = outputs(&mut c.server);
    assert_eq!(incomplete_nacks(&frames_to(&out, conn)), vec![1], "{out:?}");
    assert_eq!(c.server.reassembly_bytes(), 0);
    assert_eq!(c.server.stats().reassembly_dropped, 1);
    // The rest of its pieces are read and thrown away, not a violation; the
    // next message goes through.
    let later = now.plus_millis(1_100);
    let rest = bytes_of(&[
        chunk(1, 1_000, 1_000),
        chunk(1, 2_000, 2_000),
        Frame::Send(Send {
            seq: 2,
            flags: 0,
            to: Address::MemberId(to),
            correlation: 0,
            timeout_ms: 0,
            total_len: 1,
            payload: Bytes::from_static(b"x"),
        }),
    ]);
    c.server.handle_bytes(later, conn, &rest);
    let out = outputs(&mut c.server);
    assert_eq!(closed(&out, conn), None, "{out:?}");
    assert_eq!(c.server.reassembly_bytes(), 0);
    let to_conn = c.nodes[1].conn.unwrap();
    let delivered: Vec<usize> = frames_to(&out, to_conn)
        .iter()
        .filter_map(|f| match f {
            Frame::Deliver(d) => Some(d.payload.len()),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, vec![1], "only the later message is delivered");
}

#[test]
fn a_completed_chunked_message_is_not_dropped_by_its_old_deadline() {
    let mut cfg = harness::server_config();
    cfg.reassembly_timeout_ms = 1_000;
    let mut c = pair(cfg);
    let conn = c.nodes[0].conn.unwrap();
    let to = c.member_id(1);
    let now = c.now;
    let all = bytes_of(&[chunked_head(1, to, 2_000, 1_000), chunk(1, 1_000, 1_000)]);
    c.server.handle_bytes(now, conn, &all);
    let _ = outputs(&mut c.server);
    // A second chunked message with the same member starts later; the
    // first one's deadline must not touch it.
    let second = bytes_of(&[chunked_head(2, to, 2_000, 1_000)]);
    c.server.handle_bytes(now.plus_millis(500), conn, &second);
    c.server.handle_timeout(now.plus_millis(1_000));
    let out = outputs(&mut c.server);
    assert!(
        incomplete_nacks(&frames_to(&out, conn)).is_empty(),
        "{out:?}"
    );
    assert_eq!(c.server.reassembly_bytes(), 1_000);
    c.server.handle_timeout(now.plus_millis(1_500));
    let out = outputs(&mut c.server);
    assert_eq!(incomplete_nacks(&frames_to(&out, conn)), vec![2]);
}

#[test]
fn full_reassembly_space_drops_the_oldest_unfinished_message() {
    let mut cfg = harness::server_config();
    cfg.reassembly_bytes_max = 5_000;
    let mut c = Cluster::with_config(5, cfg);
    c.add("a", "p");
    c.add("b", "p");
    c.add("c", "p");
    c.start();
    c.run_for(4_000, 100);
    let (a, b) = (c.nodes[0].conn.unwrap(), c.nodes[1].conn.unwrap());
    let to = c.member_id(2);
    let now = c.now;
    // `a` starts a message and stalls with 3,000 bytes held.
    c.server
        .handle_bytes(now, a, &bytes_of(&[chunked_head(1, to, 10_000, 3_000)]));
    let _ = outputs(&mut c.server);
    // `b` sends a 6,000-byte message in pieces: its second piece passes
    // the space (and does not complete it); `a`'s older message makes room.
    // A piece that completes its message never drops another: the bytes
    // leave reassembly at once.
    let t = now.plus_millis(10);
    c.server
        .handle_bytes(t, b, &bytes_of(&[chunked_head(1, to, 6_000, 2_000)]));
    let out = outputs(&mut c.server);
    assert!(incomplete_nacks(&frames_to(&out, a)).is_empty());
    c.server
        .handle_bytes(t, b, &bytes_of(&[chunk(1, 2_000, 2_000)]));
    let out = outputs(&mut c.server);
    assert_eq!(incomplete_nacks(&frames_to(&out, a)), vec![1], "{out:?}");
    assert_eq!(c.server.reassembly_bytes(), 4_000);
    c.server
        .handle_bytes(t, b, &bytes_of(&[chunk(1, 4_000, 2_000)]));
    let out = outputs(&mut c.server);
    assert!(incomplete_nacks(&frames_to(&out, b)).is_empty());
    let delivered = frames_to(&out, c.nodes[2].conn.unwrap())
        .iter()
        .any(|f| matches!(f, Frame::Deliver(d) if d.total_len == 6_000));
    assert!(delivered, "the complete message goes through: {out:?}");
    assert_eq!(c.server.reassembly_bytes(), 0);
}
