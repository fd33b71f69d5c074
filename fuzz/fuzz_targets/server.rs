//! The message server under arbitrary scripts over up to four
//! connections: connects, closes, time, shutdown, raw bytes, arbitrary
//! frames, well-formed member traffic (sequence numbers, chunk offsets and
//! acks that follow on from the connection's state), and real
//! authenticated handshakes (the fuzzer cannot forge the HMAC proof, so a
//! step performs the Hello/Challenge/Auth or Resume exchange with the
//! cluster secret).
//!
//! After every input the outputs are drained and checked by the test kit
//! shared with the property tests (`switchboard_core::testkit::RawDriver`):
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
    Hello, Limits, Publish, Resume, Send, Subscribe, Taken, Unsubscribe, FRAME_BYTES_MAX_FLOOR,
};
use switchboard_core::server::ServerConfig;
use switchboard_core::testkit::RawDriver;

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
    /// Report messages taken up to the position less `behind`.
    Taken {
        behind: u8,
    },
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
/// The shared driver, and which of its connections each slot holds.
struct Driver {
    d: RawDriver,
    slots: [Option<usize>; SLOTS],
    limits: Limits,
}

impl Driver {
    fn new() -> Driver {
        let mut d = RawDriver::new(config(), Box::new(StepRng::new(7, 0x9E37_79B9_7F4A_7C15)));
        d.notices_max = INFLIGHT_MAX + PARKED_MAX;
        let limits = d.limits();
        Driver {
            d,
            slots: [None; SLOTS],
            limits,
        }
    }

    /// The open connection of slot `k`.
    fn open(&self, k: usize) -> Option<usize> {
        self.slots[k].filter(|&c| self.d.conns[c].open)
    }

    fn input(&mut self, k: usize, data: &[u8]) {
        if let Some(c) = self.slots[k] {
            // A driver does not read a connection the server holds back.
            if self.d.conns[c].open && !self.d.server.wants_read(self.d.conns[c].id) {
                return;
            }
            self.d.feed(c, data);
        }
    }

    fn send_frame(&mut self, k: usize, f: &Frame) {
        let mut b = BytesMut::new();
        if f.encode(&mut b, &self.limits).is_ok() {
            self.input(k, &b);
        }
    }

    fn next_seq(&mut self, k: usize) -> u64 {
        match self.slots[k] {
            Some(c) => self.d.conns[c].next_seq(),
            None => 0,
        }
    }

    fn partial(&self, k: usize) -> Option<(u64, u32, u32)> {
        self.slots[k].and_then(|c| self.d.conns[c].partial)
    }

    fn set_partial(&mut self, k: usize, p: Option<(u64, u32, u32)>) {
        if let Some(c) = self.slots[k] {
            self.d.conns[c].partial = p;
        }
    }

    fn position(&self, k: usize) -> u64 {
        self.slots[k].map_or(0, |c| self.d.conns[c].position)
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
                        if self.partial(k).is_some() {
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
                            self.set_partial(k, Some((seq, len as u32, len as u32 + more)));
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
                    if let Some((seq, sent, total)) = self.partial(k) {
                        let n = u32::from(*len % 3_500).clamp(1, total - sent);
                        frames.push(Frame::Chunk(Chunk {
                            id: seq,
                            offset: sent,
                            payload: Bytes::from(vec![7; n as usize]),
                        }));
                        let sent = sent + n;
                        self.set_partial(k, (sent < total).then_some((seq, sent, total)));
                    }
                }
                MemberOp::AckAll => frames.push(Frame::DeliveryAck(DeliveryAck {
                    through: self.position(k),
                })),
                MemberOp::Taken { behind } => frames.push(Frame::Taken(Taken {
                    through: self.position(k).saturating_sub(u64::from(*behind)),
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
        let Some(c) = self.open(k) else { return };
        if self.d.conns[c].registered {
            return;
        }
        let nonce = [(self.d.conns.len() + 1) as u8 ^ 0x5a; frame::NONCE_BYTES];
        let first = match how {
            Handshake::Hello {
                instance,
                process,
                incarnation,
                groups,
                services,
            } => {
                let pick = |mask: u8| -> Vec<String> {
                    (0..4)
                        .filter(|i| mask & (1 << i) != 0)
                        .map(|i| name(i as u8))
                        .collect()
                };
                Frame::Hello(Hello {
                    cluster: CLUSTER.into(),
                    instance: name(*instance % 2),
                    process: format!("p{}", process % 2),
                    incarnation: u64::from(incarnation % 4),
                    capabilities: capabilities::CHUNKING
                        | capabilities::OUTCOMES
                        | if incarnation % 2 == 1 {
                            capabilities::TAKEN
                        } else {
                            0
                        },
                    client_nonce: nonce,
                    services: pick(*services),
                    load: 0,
                    groups: pick(*groups),
                    subscriptions: Vec::new(),
                    credential: String::new(),
                })
            }
            Handshake::Resume {
                session,
                current_server,
                delivered_through,
            } => {
                let sessions = &self.d.sessions;
                let (member_id, incarnation) = if sessions.is_empty() {
                    (u64::from(*session % 4), 1)
                } else {
                    sessions[usize::from(*session) % sessions.len()]
                };
                let server_incarnation = match (current_server, self.d.server_incarnation) {
                    (true, Some(i)) => i,
                    _ => 3,
                };
                Frame::Resume(Resume {
                    cluster: CLUSTER.into(),
                    member_id,
                    incarnation,
                    server_incarnation,
                    delivered_through: *delivered_through,
                    client_nonce: nonce,
                    credential: String::new(),
                })
            }
        };
        self.d.handshake(c, &first, nonce, good_proof);
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Connect(s) => {
                let k = usize::from(*s) % SLOTS;
                if self.open(k).is_none() {
                    self.slots[k] = Some(self.d.connect());
                }
            }
            Step::Close(s) => {
                if let Some(c) = self.open(usize::from(*s) % SLOTS) {
                    self.d.close(c);
                }
            }
            Step::Bytes(s, data) => self.input(usize::from(*s) % SLOTS, data),
            Step::Frame(s, f) => self.send_frame(usize::from(*s) % SLOTS, f),
            Step::Member(s, ops) => {
                let k = usize::from(*s) % SLOTS;
                if !self.slots[k].is_some_and(|c| self.d.conns[c].registered) {
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
            Step::Advance(ms) => self.d.advance(u64::from(*ms) % 5_000),
            Step::Shutdown => self.d.shutdown(),
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
        d.d.advance(700);
    }
});
