//! The message server under arbitrary scripts over up to four
//! connections: connects, closes, time, shutdown, raw bytes, arbitrary
//! frames, well-formed member traffic (sequence numbers, chunk offsets and
//! acks that follow on from the connection's state), and real
//! authenticated handshakes (the fuzzer cannot forge the HMAC proof, so a
//! step performs the Hello/Challenge/Auth or Resume exchange with the
//! cluster secret).
//!
//! After every input the outputs are drained and checked:
//! * the server does not panic (debug assertions included);
//! * every transmit goes to an open connection, is not empty, and holds
//!   only whole, valid frames of the server's kinds; stream frames only
//!   after a Welcome or Resumed, and those only after a correct proof;
//! * a connection is closed at most once and hears nothing after;
//!   Reject, Error and Goodbye come with a close;
//! * the server tracks exactly the open connections, and at most
//!   `handshakes_max` of them are still in their handshake;
//! * no member's queue exceeds twice `member_queue_items_max`
//!   (`queue_len`, which leaves out notices), and its notices (NACKs,
//!   outcomes) stay bounded (`sender_inflight_max` plus the parked cap).
#![no_main]

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rand::rngs::mock::StepRng;
use switchboard_core::auth::Secret;
use switchboard_core::frame::{
    self, capabilities, flags, Address, Chunk, DeliveryAck, EventBody, Filter, Frame, GroupOp,
    Hello, Limits, Publish, Resume, Send, Subscribe, Unsubscribe, FRAME_BYTES_MAX_FLOOR,
};
use switchboard_core::server::{ConnId, Output, Server, ServerConfig};
use switchboard_core::time::Tick;

const CLUSTER: &str = "fuzz";
const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const SLOTS: usize = 4;
const QUEUE_MAX: usize = 4;
const HANDSHAKES_MAX: usize = 2;
const INFLIGHT_MAX: usize = 6;
/// Parked messages the server holds at most (`routing::PARKED_MAX`).
const PARKED_MAX: usize = 4_096;
const NAMES: [&str; 4] = ["a", "b", "g0", "g1"];

fn secret() -> Secret {
    match Secret::new(*SECRET) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn config() -> ServerConfig {
    let mut cfg = ServerConfig::new(CLUSTER, secret());
    cfg.limits = Limits::with_frame_bytes_max(FRAME_BYTES_MAX_FLOOR);
    cfg.members_max = 3;
    cfg.handshakes_max = HANDSHAKES_MAX;
    cfg.handshake_timeout_ms = 2_000;
    cfg.heartbeat_interval_ms = 500;
    cfg.heartbeat_timeout_ms = 2_500;
    cfg.resume_window_ms = 3_000;
    cfg.restart_grace_ms = 3_000;
    cfg.member_queue_items_max = QUEUE_MAX;
    cfg.slow_consumer_grace_ms = 500;
    cfg.send_window_items = 3;
    cfg.sender_inflight_max = INFLIGHT_MAX;
    cfg.message_bytes_max = 12 * 1024;
    cfg.groups_max = 3;
    cfg
}

#[derive(Debug, Arbitrary)]
enum To {
    Id(u8),
    Member(u8, u8),
    Instance(u8),
    Group(u8),
    Anycast(u8),
    Broadcast,
}

fn name(n: u8) -> String {
    NAMES[usize::from(n) % NAMES.len()].to_string()
}

impl To {
    fn address(&self) -> Address {
        match self {
            To::Id(i) => Address::MemberId(u64::from(*i % 6)),
            To::Member(i, p) => Address::Member {
                instance: name(*i),
                process: format!("p{}", p % 2),
            },
            To::Instance(n) => Address::Instance(name(*n)),
            To::Group(n) => Address::Group(name(*n)),
            To::Anycast(n) => Address::Anycast(name(*n)),
            To::Broadcast => Address::Broadcast,
        }
    }
}

/// A frame a well-behaved member would send; the driver fills in the
/// sequence number, chunk position and ack position.
#[derive(Debug, Arbitrary)]
enum MemberOp {
    /// `count` messages (a burst) of `len` bytes; `more` extra bytes
    /// follow in chunks.
    Send {
        to: To,
        confirm: bool,
        request: bool,
        len: u16,
        more: u16,
        count: u8,
    },
    /// The next piece of the chunked message in progress.
    Chunk {
        len: u16,
    },
    /// Acknowledge everything received.
    AckAll,
    Publish {
        kind: u8,
        arg: u8,
    },
    Subscribe {
        sub: u8,
        kinds: u16,
    },
    Unsubscribe {
        sub: u8,
    },
    Join(u8),
    Leave(u8),
    Ping(u64),
}

#[derive(Debug, Arbitrary)]
enum Handshake {
    Hello {
        instance: u8,
        process: u8,
        incarnation: u8,
        groups: u8,
        services: u8,
    },
    /// Resume the `session`-th registration seen so far (or a made-up
    /// one when there is none).
    Resume {
        session: u8,
        current_server: bool,
        delivered_through: u64,
    },
}

#[derive(Debug, Arbitrary)]
enum Step {
    Connect(u8),
    Close(u8),
    Bytes(u8, Vec<u8>),
    Frame(u8, Frame),
    Member(u8, Vec<MemberOp>),
    Authenticate {
        slot: u8,
        how: Handshake,
        good_proof: bool,
    },
    Advance(u16),
    Shutdown,
}

#[derive(Debug, Arbitrary)]
struct Input {
    steps: Vec<Step>,
}

#[derive(Debug, Default)]
struct Conn {
    id: Option<ConnId>,
    open: bool,
    /// We sent a correct proof on this connection.
    proved: bool,
    /// Welcome or Resumed received.
    registered: bool,
    /// Frames received since the last handshake step began.
    inbox: Vec<Frame>,
    seq: u64,
    partial: Option<(u64, u32, u32)>,
    position: u64,
}

struct Driver {
    server: Server,
    now: Tick,
    slots: [Conn; SLOTS],
    next_conn: u64,
    server_incarnation: Option<u64>,
    sessions: Vec<(u64, u64)>,
    limits: Limits,
}

fn is_server_frame(f: &Frame) -> bool {
    matches!(
        f,
        Frame::Challenge(_)
            | Frame::Welcome(_)
            | Frame::Snapshot(_)
            | Frame::Reject(_)
            | Frame::Resumed(_)
            | Frame::Gap(_)
            | Frame::Chunk(_)
            | Frame::Ack(_)
            | Frame::Nack(_)
            | Frame::Deliver(_)
            | Frame::Outcome(_)
            | Frame::Notify(_)
            | Frame::Ping(_)
            | Frame::Pong(_)
            | Frame::Goodbye(_)
            | Frame::Error(_)
    )
}

/// Frames a connection may hear before it is registered.
fn handshake_frame(f: &Frame) -> bool {
    matches!(
        f,
        Frame::Challenge(_)
            | Frame::Welcome(_)
            | Frame::Resumed(_)
            | Frame::Reject(_)
            | Frame::Gap(_)
            | Frame::Error(_)
            | Frame::Goodbye(_)
    )
}

impl Driver {
    fn new() -> Driver {
        let cfg = config();
        let limits = cfg.limits;
        Driver {
            server: Server::new(
                cfg,
                Box::new(StepRng::new(7, 0x9E37_79B9_7F4A_7C15)),
                Tick::ZERO,
            ),
            now: Tick::ZERO,
            slots: Default::default(),
            next_conn: 1,
            server_incarnation: None,
            sessions: Vec::new(),
            limits,
        }
    }

    fn slot_of(&self, conn: ConnId) -> Option<usize> {
        self.slots.iter().position(|c| c.id == Some(conn))
    }

    /// Drains and checks the outputs, then the server's state.
    fn drain(&mut self) {
        let mut ended = [false; SLOTS];
        let mut closed = [false; SLOTS];
        while let Some(o) = self.server.poll_output() {
            match o {
                Output::Transmit { conn, data } => {
                    let k = self
                        .slot_of(conn)
                        .unwrap_or_else(|| panic!("transmit to unknown {conn:?}"));
                    let c = &mut self.slots[k];
                    assert!(c.open, "transmit to {conn:?} after its close");
                    assert!(!data.is_empty(), "empty transmit");
                    let mut buf = BytesMut::from(&data[..]);
                    while !buf.is_empty() {
                        let f = match frame::decode(&mut buf, &self.limits) {
                            Ok(Some(f)) => f,
                            Ok(None) => panic!("transmit ends inside a frame"),
                            Err(e) => panic!("server sent an invalid frame: {e}"),
                        };
                        assert!(is_server_frame(&f), "server sent {}", f.name());
                        if !c.registered {
                            assert!(handshake_frame(&f), "{} before registration", f.name());
                        }
                        match &f {
                            Frame::Welcome(w) => {
                                assert!(c.proved, "Welcome without a correct proof");
                                c.registered = true;
                                c.seq = 0;
                                c.partial = None;
                                c.position = w.position;
                            }
                            Frame::Resumed(r) => {
                                assert!(c.proved, "Resumed without a correct proof");
                                c.registered = true;
                                c.seq = r.received_through;
                                c.partial = None;
                                c.position = r.replay_from.saturating_sub(1);
                            }
                            Frame::Challenge(ch) => {
                                self.server_incarnation = Some(ch.server_incarnation);
                            }
                            Frame::Reject(_) | Frame::Error(_) | Frame::Goodbye(_) => {
                                ended[k] = true;
                            }
                            Frame::Deliver(frame::Deliver { gseq, .. })
                            | Frame::Notify(frame::Notify { gseq, .. })
                            | Frame::Nack(frame::Nack { gseq, .. })
                            | Frame::Outcome(frame::Outcome { gseq, .. }) => {
                                c.position = c.position.max(*gseq);
                            }
                            _ => {}
                        }
                        c.inbox.push(f);
                    }
                }
                Output::Close { conn, .. } => {
                    let k = self
                        .slot_of(conn)
                        .unwrap_or_else(|| panic!("close of unknown {conn:?}"));
                    assert!(self.slots[k].open, "second close of {conn:?}");
                    self.slots[k].open = false;
                    closed[k] = true;
                }
                Output::Event(_) => {}
            }
        }
        for k in 0..SLOTS {
            assert!(
                !ended[k] || closed[k],
                "Reject/Error/Goodbye without a close"
            );
        }
        self.check();
    }

    fn check(&self) {
        let open = self.slots.iter().filter(|c| c.open).count();
        assert_eq!(self.server.connections(), open, "tracked connections");
        let attached = self
            .server
            .view()
            .filter(|m| self.server.is_attached(m.member_id))
            .count();
        assert!(attached <= open, "{attached} attached, {open} open");
        assert!(
            open - attached <= HANDSHAKES_MAX,
            "{} connections in their handshake, limit {HANDSHAKES_MAX}",
            open - attached
        );
        for m in self.server.view() {
            let q = self.server.queue_len(m.member_id).unwrap_or(0);
            assert!(
                q <= 2 * QUEUE_MAX,
                "member {} holds {q} queued items (limit {QUEUE_MAX})",
                m.member_id
            );
            let n = self.server.notices_len(m.member_id).unwrap_or(0);
            assert!(
                n <= INFLIGHT_MAX + PARKED_MAX,
                "member {} holds {n} notices",
                m.member_id
            );
        }
    }

    fn input(&mut self, k: usize, data: &[u8]) {
        if let Some(id) = self.slots[k].id {
            // A driver does not read a connection the server holds back.
            if self.slots[k].open && !self.server.wants_read(id) {
                return;
            }
            self.server.handle_bytes(self.now, id, data);
            self.drain();
        }
    }

    fn send_frame(&mut self, k: usize, f: &Frame) {
        let mut b = BytesMut::new();
        if f.encode(&mut b, &self.limits).is_ok() {
            self.input(k, &b);
        }
    }

    fn next_seq(&mut self, k: usize) -> u64 {
        self.slots[k].seq += 1;
        self.slots[k].seq
    }

    fn member_frames(&mut self, k: usize, ops: &[MemberOp]) -> BytesMut {
        let mut out = BytesMut::new();
        for op in ops {
            let mut frames = Vec::new();
            match op {
                MemberOp::Send {
                    to,
                    confirm,
                    request,
                    len,
                    more,
                    count,
                } => {
                    for _ in 0..(count % 12).max(1) {
                        if self.slots[k].partial.is_some() {
                            break;
                        }
                        let seq = self.next_seq(k);
                        let len = usize::from(*len % 4_000);
                        let more = u32::from(*more % 10_000);
                        let mut fl = 0;
                        if *confirm {
                            fl |= flags::CONFIRM;
                        }
                        if *request {
                            fl |= flags::REQUEST;
                        }
                        if more > 0 {
                            fl |= flags::MORE;
                            self.slots[k].partial = Some((seq, len as u32, len as u32 + more));
                        }
                        frames.push(Frame::Send(Send {
                            seq,
                            flags: fl,
                            to: to.address(),
                            correlation: u64::from(*request),
                            timeout_ms: 100,
                            total_len: len as u32 + more,
                            payload: Bytes::from(vec![seq as u8; len]),
                        }));
                    }
                }
                MemberOp::Chunk { len } => {
                    if let Some((seq, sent, total)) = self.slots[k].partial {
                        let n = u32::from(*len % 3_500).clamp(1, total - sent);
                        frames.push(Frame::Chunk(Chunk {
                            id: seq,
                            offset: sent,
                            payload: Bytes::from(vec![7; n as usize]),
                        }));
                        let sent = sent + n;
                        self.slots[k].partial = (sent < total).then_some((seq, sent, total));
                    }
                }
                MemberOp::AckAll => frames.push(Frame::DeliveryAck(DeliveryAck {
                    through: self.slots[k].position,
                })),
                MemberOp::Publish { kind, arg } => {
                    let event = match kind % 3 {
                        0 => EventBody::ServiceState {
                            service: name(*arg),
                            up: arg & 0x80 != 0,
                        },
                        1 => EventBody::Load(u32::from(*arg)),
                        _ => EventBody::Custom {
                            topic: name(*arg),
                            payload: Bytes::from(vec![*arg; usize::from(*arg)]),
                        },
                    };
                    let seq = self.next_seq(k);
                    frames.push(Frame::Publish(Publish { seq, event }));
                }
                MemberOp::Subscribe { sub, kinds } => {
                    let seq = self.next_seq(k);
                    frames.push(Frame::Subscribe(Subscribe {
                        seq,
                        sub_id: u32::from(sub % 4),
                        filter: Filter {
                            kinds: *kinds,
                            topic_prefix: String::new(),
                        },
                    }));
                }
                MemberOp::Unsubscribe { sub } => {
                    let seq = self.next_seq(k);
                    frames.push(Frame::Unsubscribe(Unsubscribe {
                        seq,
                        sub_id: u32::from(sub % 4),
                    }));
                }
                MemberOp::Join(g) => {
                    let seq = self.next_seq(k);
                    frames.push(Frame::Join(GroupOp {
                        seq,
                        group: name(*g),
                    }));
                }
                MemberOp::Leave(g) => {
                    let seq = self.next_seq(k);
                    frames.push(Frame::Leave(GroupOp {
                        seq,
                        group: name(*g),
                    }));
                }
                MemberOp::Ping(n) => frames.push(Frame::Ping(*n)),
            }
            for f in frames {
                let _ = f.encode(&mut out, &self.limits);
            }
        }
        out
    }

    fn authenticate(&mut self, k: usize, how: &Handshake, good_proof: bool) {
        if !self.slots[k].open || self.slots[k].registered {
            return;
        }
        let nonce = [self.next_conn as u8 ^ 0x5a; frame::NONCE_BYTES];
        let (first, incarnation) = match how {
            Handshake::Hello {
                instance,
                process,
                incarnation,
                groups,
                services,
            } => {
                let incarnation = u64::from(incarnation % 4);
                let pick = |mask: u8| -> Vec<String> {
                    (0..4)
                        .filter(|i| mask & (1 << i) != 0)
                        .map(|i| name(i as u8))
                        .collect()
                };
                (
                    Frame::Hello(Hello {
                        cluster: CLUSTER.into(),
                        instance: name(*instance % 2),
                        process: format!("p{}", process % 2),
                        incarnation,
                        capabilities: capabilities::CHUNKING | capabilities::OUTCOMES,
                        client_nonce: nonce,
                        services: pick(*services),
                        load: 0,
                        groups: pick(*groups),
                        subscriptions: Vec::new(),
                    }),
                    Some(incarnation),
                )
            }
            Handshake::Resume {
                session,
                current_server,
                delivered_through,
            } => {
                let (member_id, incarnation) = if self.sessions.is_empty() {
                    (u64::from(*session % 4), 1)
                } else {
                    self.sessions[usize::from(*session) % self.sessions.len()]
                };
                let server_incarnation = match (current_server, self.server_incarnation) {
                    (true, Some(i)) => i,
                    _ => 3,
                };
                (
                    Frame::Resume(Resume {
                        cluster: CLUSTER.into(),
                        member_id,
                        incarnation,
                        server_incarnation,
                        delivered_through: *delivered_through,
                        client_nonce: nonce,
                    }),
                    None,
                )
            }
        };
        self.slots[k].inbox.clear();
        self.send_frame(k, &first);
        let challenge = self.slots[k].inbox.iter().find_map(|f| match f {
            Frame::Challenge(c) => Some(c.clone()),
            _ => None,
        });
        let Some(ch) = challenge else { return };
        let secret = secret();
        assert_eq!(
            ch.server_proof,
            secret.server_proof(&nonce, &ch.server_nonce),
            "the server's proof does not verify"
        );
        let client_proof = if good_proof {
            secret.client_proof(&ch.server_nonce, &nonce)
        } else {
            [0; frame::PROOF_BYTES]
        };
        self.slots[k].proved = good_proof;
        self.slots[k].inbox.clear();
        self.send_frame(k, &Frame::Auth(frame::Auth { client_proof }));
        let c = &self.slots[k];
        let answered = c
            .inbox
            .iter()
            .any(|f| matches!(f, Frame::Welcome(_) | Frame::Resumed(_) | Frame::Reject(_)));
        assert!(answered || !c.open, "no answer to a complete handshake");
        if !good_proof {
            assert!(!c.open, "a bad proof was not refused");
        }
        let welcome = c.inbox.iter().find_map(|f| match f {
            Frame::Welcome(w) => Some(w.member_id),
            _ => None,
        });
        if let (Some(id), Some(inc)) = (welcome, incarnation) {
            self.sessions.push((id, inc));
        }
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Connect(s) => {
                let k = usize::from(*s) % SLOTS;
                if self.slots[k].open {
                    return;
                }
                let id = ConnId(self.next_conn);
                self.next_conn += 1;
                self.slots[k] = Conn {
                    id: Some(id),
                    open: true,
                    ..Conn::default()
                };
                self.server.handle_connected(self.now, id);
                self.drain();
            }
            Step::Close(s) => {
                let k = usize::from(*s) % SLOTS;
                if let (true, Some(id)) = (self.slots[k].open, self.slots[k].id) {
                    self.slots[k].open = false;
                    self.server.handle_closed(self.now, id);
                    self.drain();
                }
            }
            Step::Bytes(s, data) => self.input(usize::from(*s) % SLOTS, data),
            Step::Frame(s, f) => self.send_frame(usize::from(*s) % SLOTS, f),
            Step::Member(s, ops) => {
                let k = usize::from(*s) % SLOTS;
                if !self.slots[k].registered {
                    return;
                }
                let bytes = self.member_frames(k, ops);
                // Split in two to exercise partial reads.
                let mid = bytes.len() / 2;
                self.input(k, &bytes[..mid]);
                self.input(k, &bytes[mid..]);
            }
            Step::Authenticate {
                slot,
                how,
                good_proof,
            } => self.authenticate(usize::from(*slot) % SLOTS, how, *good_proof),
            Step::Advance(ms) => {
                self.now = self.now.plus_millis(u64::from(*ms) % 5_000);
                self.server.handle_timeout(self.now);
                self.drain();
            }
            Step::Shutdown => {
                self.server.shutdown(self.now);
                self.drain();
                assert_eq!(self.server.connections(), 0, "connections after shutdown");
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let mut d = Driver::new();
    for step in input.steps.iter().take(200) {
        d.step(step);
    }
    // Let every timer fire.
    for _ in 0..12 {
        d.now = d.now.plus_millis(700);
        d.server.handle_timeout(d.now);
        d.drain();
    }
});
