//! Microbenchmarks of the server state machine per message, without IO.
//!
//! A [`Server`] and 17 real [`Client`]s (one sender, 16 receivers) are
//! driven against each other in memory until every member is registered
//! (HMAC handshake included) and the restart grace is over. The clients
//! then check the measured path once, end to end: the sender's frames
//! reach the receivers, nothing is NACKed. After that the clients step
//! aside and only the server is timed:
//!
//! * one read of N = 1000 `Send` (or `Publish`) frames with 128-byte
//!   payloads from the sender (`Server::handle_bytes`), every output
//!   drained (`poll_output`: Deliver/Notify transmits, the sender's Ack);
//! * each addressee's `DeliveryAck` for what it was sent, fed back as the
//!   client would after reading it, and the outputs drained again — so
//!   queues, in-flight tables and the sender's quota stay bounded.
//!
//! The frames are built outside the timing, byte for byte what the client
//! sends (checked in the setup). Cases: `server/unicast_128B` (elements =
//! messages), `server/broadcast_16_128B` and `server/group_16_128B`
//! (elements = deliveries, N × 16), `server/event_fanout_16_128B` (custom
//! events to 16 subscribers; elements = notifications, N × 16).
//!
//! Run with `cargo bench -p switchboard-core --bench server`.

use std::cell::Cell;
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use switchboard_core::auth::Secret;
use switchboard_core::client::{Client, ClientConfig, ClientEvent, ClientOutput, SendOptions};
use switchboard_core::frame::{
    decode, Address, ClusterEvent, DeliveryAck, EventBody, EventKind, Filter, Frame, Limits,
    Publish, Send,
};
use switchboard_core::server::{ConnId, Output, Server, ServerConfig};
use switchboard_core::time::Tick;

/// Messages (or events) per timed read.
const N: usize = 1000;
/// Payload bytes per message or event.
const PAYLOAD_BYTES: usize = 128;
/// Receivers in the cluster (plus one sender).
const RECEIVERS: usize = 16;
const CLUSTER: &str = "bench";
const GROUP: &str = "fanout";
const TOPIC: &str = "bench/tick";

fn secret() -> Secret {
    Secret::new(*b"0123456789abcdef0123456789abcdef").expect("32-byte secret")
}

fn payload() -> Bytes {
    Bytes::from((0..PAYLOAD_BYTES).map(|i| i as u8).collect::<Vec<u8>>())
}

// ---------------------------------------------------------------------------
// In-memory driver for the setup (after `core/tests/harness`)
// ---------------------------------------------------------------------------

struct Peer {
    client: Client,
    conn: Option<ConnId>,
    /// Bytes in flight to the client.
    inbound: VecDeque<Bytes>,
    /// Bytes in flight to the server.
    outbound: VecDeque<Bytes>,
    events: Vec<ClientEvent>,
}

struct Net {
    now: Tick,
    server: Server,
    peers: Vec<Peer>,
    next_conn: u64,
}

impl Net {
    /// A server and `1 + receivers` clients: index 0 is the sender.
    fn new(receivers: usize) -> Net {
        let server = Server::new(
            ServerConfig::new(CLUSTER, secret()),
            Box::new(ChaCha8Rng::seed_from_u64(1)),
            Tick::ZERO,
        );
        let mut net = Net {
            now: Tick::ZERO,
            server,
            peers: Vec::new(),
            next_conn: 1,
        };
        for i in 0..=receivers {
            let process = if i == 0 {
                "sender".to_owned()
            } else {
                format!("rcv-{i:02}")
            };
            let cfg = ClientConfig::new(CLUSTER, secret(), "bench", process, 1000 + i as u64);
            let client = Client::new(
                cfg,
                Box::new(ChaCha8Rng::seed_from_u64(100 + i as u64)),
                net.now,
            );
            net.peers.push(Peer {
                client,
                conn: None,
                inbound: VecDeque::new(),
                outbound: VecDeque::new(),
                events: Vec::new(),
            });
        }
        net
    }

    fn drain_server(&mut self) {
        while let Some(o) = self.server.poll_output() {
            match o {
                Output::Transmit { conn, data } => {
                    if let Some(p) = self.peers.iter_mut().find(|p| p.conn == Some(conn)) {
                        p.inbound.push_back(data);
                    }
                }
                Output::Close { conn, reason } => {
                    panic!("setup: server closed {conn:?}: {reason:?}")
                }
                Output::Event(_) => {}
            }
        }
    }

    fn drain_client(&mut self, i: usize) {
        while let Some(o) = self.peers[i].client.poll_output() {
            match o {
                ClientOutput::Connect => {
                    let conn = ConnId(self.next_conn);
                    self.next_conn += 1;
                    self.peers[i].conn = Some(conn);
                    self.server.handle_connected(self.now, conn);
                    self.peers[i].client.handle_connected(self.now);
                }
                ClientOutput::Transmit(b) => self.peers[i].outbound.push_back(b),
                ClientOutput::Close => panic!("setup: client {i} closed its connection"),
                ClientOutput::Event(e) => {
                    assert!(
                        !matches!(
                            e,
                            ClientEvent::Disconnected { .. }
                                | ClientEvent::Rejected { .. }
                                | ClientEvent::Nacked { .. }
                        ),
                        "setup: client {i}: {e:?}"
                    );
                    self.peers[i].events.push(e);
                }
            }
        }
    }

    /// Moves bytes both ways until nothing moves.
    fn settle(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            self.drain_server();
            for i in 0..self.peers.len() {
                self.drain_client(i);
                if let Some(conn) = self.peers[i].conn {
                    while let Some(b) = self.peers[i].outbound.pop_front() {
                        moved = true;
                        self.server.handle_bytes(self.now, conn, &b);
                    }
                }
                while let Some(b) = self.peers[i].inbound.pop_front() {
                    moved = true;
                    self.peers[i].client.handle_bytes(self.now, &b);
                }
                self.drain_server();
                self.drain_client(i);
            }
            if !moved {
                return;
            }
        }
        panic!("setup: the in-memory cluster did not settle");
    }

    /// Advances the clock by `ms` in steps of `step_ms`, firing timers
    /// (reconnects, heartbeats, the server's grace) and settling.
    fn run_for(&mut self, ms: u64, step_ms: u64) {
        let end = self.now.plus_millis(ms);
        while self.now < end {
            self.now = self.now.plus_millis(step_ms).min(end);
            let now = self.now;
            if self.server.poll_timeout().is_some_and(|t| t <= now) {
                self.server.handle_timeout(now);
            }
            for p in &mut self.peers {
                if p.client.poll_timeout().is_some_and(|t| t <= now) {
                    p.client.handle_timeout(now);
                }
            }
            self.settle();
        }
    }

    fn member_id(&self, i: usize) -> u64 {
        self.peers[i].client.member_id().expect("registered")
    }
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// `Send` to one receiver by member id.
    Unicast,
    /// `Send` to `Address::Broadcast`: the 16 receivers.
    Broadcast,
    /// `Send` to a group the 16 receivers joined.
    Group,
    /// `Publish` of a custom event; the 16 receivers subscribe to it.
    Events,
}

impl Scenario {
    fn name(self) -> String {
        match self {
            Scenario::Unicast => format!("unicast_{PAYLOAD_BYTES}B"),
            Scenario::Broadcast => format!("broadcast_{RECEIVERS}_{PAYLOAD_BYTES}B"),
            Scenario::Group => format!("group_{RECEIVERS}_{PAYLOAD_BYTES}B"),
            Scenario::Events => format!("event_fanout_{RECEIVERS}_{PAYLOAD_BYTES}B"),
        }
    }

    /// Peer indices that receive each message.
    fn recipients(self) -> Vec<usize> {
        match self {
            Scenario::Unicast => vec![1],
            _ => (1..=RECEIVERS).collect(),
        }
    }
}

/// Builds the sender's frames exactly as the client encodes them.
struct Sender {
    scenario: Scenario,
    /// Address of the `Send` frames.
    to: Address,
    payload: Bytes,
    limits: Limits,
}

impl Sender {
    fn frame(&self, seq: u64) -> Frame {
        match self.scenario {
            Scenario::Events => Frame::Publish(Publish {
                seq,
                event: EventBody::Custom {
                    topic: TOPIC.into(),
                    payload: self.payload.clone(),
                },
            }),
            _ => Frame::Send(Send {
                seq,
                flags: 0,
                to: self.to.clone(),
                correlation: 0,
                timeout_ms: 0,
                total_len: self.payload.len() as u32,
                payload: self.payload.clone(),
            }),
        }
    }

    /// One read: `N` frames with sequences `first..first + N`.
    fn batch(&self, first: u64) -> Bytes {
        let mut buf = BytesMut::with_capacity(N * (PAYLOAD_BYTES + 64));
        for seq in first..first + N as u64 {
            self.frame(seq)
                .encode(&mut buf, &self.limits)
                .expect("bench frame encodes");
        }
        buf.freeze()
    }

    /// The same command through the real client; returns its sequence.
    fn command(&self, client: &mut Client, now: Tick) -> u64 {
        match self.scenario {
            Scenario::Events => client.publish(
                now,
                EventBody::Custom {
                    topic: TOPIC.into(),
                    payload: self.payload.clone(),
                },
            ),
            _ => client.send(
                now,
                self.to.clone(),
                self.payload.clone(),
                SendOptions::default(),
            ),
        }
        .expect("client accepts the command")
    }
}

/// True when `e` is one of the sender's messages or events.
fn is_bench_item(e: &ClientEvent, payload: &Bytes) -> bool {
    match e {
        ClientEvent::Message(m) => m.payload == *payload,
        ClientEvent::Event {
            event: ClusterEvent::Custom {
                topic, payload: p, ..
            },
            ..
        } => topic == TOPIC && p == payload,
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// The timed state: the server alone
// ---------------------------------------------------------------------------

struct Hot {
    server: Server,
    now: Tick,
    sender: ConnId,
    /// Connections of the addressees, which acknowledge their stream.
    acking: Vec<ConnId>,
    limits: Limits,
    /// Timed reads so far.
    reads: u64,
}

impl Hot {
    /// Drains every output; returns the bytes to transmit.
    fn drain(&mut self) -> usize {
        let mut bytes = 0;
        while let Some(o) = self.server.poll_output() {
            match o {
                Output::Transmit { data, .. } => bytes += data.len(),
                other => panic!("unexpected server output while benchmarking: {other:?}"),
            }
        }
        bytes
    }

    /// One read of the sender's frames.
    fn read(&mut self, batch: &[u8]) -> usize {
        self.server.handle_bytes(self.now, self.sender, batch);
        self.drain()
    }

    /// Each addressee acknowledges its stream up to the last sequenced
    /// item (it was sent everything), as a client does after a read.
    fn ack(&mut self) -> usize {
        let mut ack = BytesMut::with_capacity(16);
        Frame::DeliveryAck(DeliveryAck {
            through: self.server.gseq(),
        })
        .encode(&mut ack, &self.limits)
        .expect("DeliveryAck encodes");
        for &conn in &self.acking {
            self.server.handle_bytes(self.now, conn, &ack);
        }
        self.drain()
    }

    /// The timed step: one read from the sender, then the acknowledgements.
    fn step(&mut self, batch: &[u8]) -> usize {
        let bytes = self.read(batch) + self.ack();
        self.reads += 1;
        bytes
    }
}

/// A registered cluster for `scenario`, checked end to end through the
/// real clients, then reduced to the server alone. Returns the timed
/// state, the frame builder and the next sender sequence.
fn setup(scenario: Scenario) -> (Hot, Sender, u64) {
    let mut net = Net::new(RECEIVERS);
    net.run_for(50, 10);
    let now = net.now;
    for i in 1..=RECEIVERS {
        let c = &mut net.peers[i].client;
        c.join(now, GROUP).expect("join");
        c.subscribe(
            now,
            Filter {
                kinds: EventKind::Custom.bit(),
                topic_prefix: "bench/".into(),
            },
        )
        .expect("subscribe");
    }
    net.settle();
    // Past the restart grace, during which multicasts wait for the view.
    let grace = net.server.config().restart_grace_ms;
    net.run_for(grace + 500, 100);
    for (i, p) in net.peers.iter().enumerate() {
        assert!(
            p.client.is_ready(),
            "peer {i} not registered: {:?}",
            p.client
        );
    }
    let limits = net.server.config().limits;
    let sender = Sender {
        scenario,
        to: match scenario {
            Scenario::Unicast => Address::MemberId(net.member_id(1)),
            Scenario::Broadcast | Scenario::Events => Address::Broadcast,
            Scenario::Group => Address::Group(GROUP.into()),
        },
        payload: payload(),
        limits,
    };
    let recipients = scenario.recipients();

    // Warm-up through the real clients: the bench frames are what the
    // client sends, and they reach every addressee.
    for p in &mut net.peers {
        p.events.clear();
    }
    let now = net.now;
    let first = net.peers[0].client.last_seq() + 1;
    for k in 0..N as u64 {
        let seq = sender.command(&mut net.peers[0].client, now);
        assert_eq!(seq, first + k);
    }
    net.drain_client(0);
    let mut sent = BytesMut::new();
    for b in &net.peers[0].outbound {
        sent.extend_from_slice(b);
    }
    let mut frames = Vec::new();
    while let Some(f) = decode(&mut sent, &limits).expect("client bytes decode") {
        if matches!(f, Frame::Send(_) | Frame::Publish(_)) {
            frames.push(f);
        }
    }
    let expected: Vec<Frame> = (first..first + N as u64).map(|s| sender.frame(s)).collect();
    assert!(frames == expected, "bench frames differ from the client's");
    let stats = net.server.stats();
    net.settle();
    let after = net.server.stats();
    assert_eq!(
        after.messages_nacked, stats.messages_nacked,
        "warm-up NACKed"
    );
    for i in 1..=RECEIVERS {
        let got = net.peers[i]
            .events
            .iter()
            .filter(|e| is_bench_item(e, &sender.payload))
            .count();
        let want = if recipients.contains(&i) { N } else { 0 };
        assert_eq!(got, want, "{scenario:?}: receiver {i} got {got} of {want}");
        let queued = net.server.queue_len(net.member_id(i));
        assert_eq!(queued, Some(0), "receiver {i} acknowledged its stream");
    }
    let next_seq = net.peers[0].client.last_seq() + 1;

    // The clients step aside; the server keeps their connections.
    let conn = |i: usize| net.peers[i].conn.expect("connected");
    let mut hot = Hot {
        sender: conn(0),
        acking: recipients.iter().map(|&i| conn(i)).collect(),
        now: net.now,
        limits,
        reads: 0,
        server: net.server,
    };
    let member_ids: Vec<u64> = recipients
        .iter()
        .map(|&i| net.peers[i].client.member_id().expect("registered"))
        .collect();

    // One read as timed, checked frame by frame.
    let before = hot.server.stats();
    hot.server
        .handle_bytes(hot.now, hot.sender, &sender.batch(next_seq));
    let mut per_conn = vec![0usize; hot.acking.len()];
    while let Some(o) = hot.server.poll_output() {
        let Output::Transmit { conn, data } = o else {
            panic!("unexpected server output: {o:?}");
        };
        let mut buf = BytesMut::from(&data[..]);
        while let Some(f) = decode(&mut buf, &limits).expect("server bytes decode") {
            match f {
                Frame::Deliver(_) | Frame::Notify(_) => {
                    let k = hot
                        .acking
                        .iter()
                        .position(|c| *c == conn)
                        .expect("only addressees get deliveries");
                    per_conn[k] += 1;
                }
                Frame::Ack(a) => assert_eq!(conn, hot.sender, "Ack {a:?} to the sender"),
                other => panic!("unexpected frame to {conn:?}: {other:?}"),
            }
        }
    }
    assert!(per_conn.iter().all(|&n| n == N), "deliveries: {per_conn:?}");
    black_box(hot.ack());
    let after = hot.server.stats();
    assert_eq!(after.messages_nacked, before.messages_nacked);
    let sequenced = match scenario {
        Scenario::Events => after.events - before.events,
        _ => after.messages_accepted - before.messages_accepted,
    };
    assert_eq!(sequenced, N as u64, "every frame of the read sequenced");
    assert_eq!(
        after.items_enqueued - before.items_enqueued,
        (N * recipients.len()) as u64
    );
    for id in &member_ids {
        assert_eq!(hot.server.queue_len(*id), Some(0), "acks drained the queue");
    }
    (hot, sender, next_seq + N as u64)
}

fn bench_server(c: &mut Criterion) {
    let mut group = c.benchmark_group("server");
    for scenario in [
        Scenario::Unicast,
        Scenario::Broadcast,
        Scenario::Group,
        Scenario::Events,
    ] {
        let (mut hot, sender, first) = setup(scenario);
        let deliveries = N * scenario.recipients().len();
        let base = hot.server.stats();
        let next = Cell::new(first);
        group.throughput(Throughput::Elements(deliveries as u64));
        group.bench_function(scenario.name(), |b| {
            b.iter_batched(
                || {
                    let seq = next.get();
                    next.set(seq + N as u64);
                    sender.batch(seq)
                },
                |batch| {
                    black_box(hot.step(&batch));
                    batch
                },
                BatchSize::PerIteration,
            )
        });
        // The measured path stayed the real one, and bounded.
        let stats = hot.server.stats();
        let sequenced = match scenario {
            Scenario::Events => stats.events - base.events,
            _ => stats.messages_accepted - base.messages_accepted,
        };
        assert_eq!(
            sequenced,
            hot.reads * N as u64,
            "{scenario:?}: all sequenced"
        );
        assert_eq!(stats.messages_nacked, base.messages_nacked, "{scenario:?}");
        assert_eq!(stats.evictions, base.evictions, "{scenario:?}");
        assert_eq!(
            stats.items_acked - base.items_acked,
            hot.reads * deliveries as u64,
            "{scenario:?}: every delivery acknowledged"
        );
    }
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
    bench_server(&mut c);
    c.final_summary();
}
