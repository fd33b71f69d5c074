//! The message server as a sans-IO state machine.
//!
//! # Driving it
//! Inputs are `handle_*` calls, each with the current [`Tick`]:
//! [`handle_connected`](Server::handle_connected),
//! [`handle_bytes`](Server::handle_bytes),
//! [`handle_closed`](Server::handle_closed),
//! [`handle_timeout`](Server::handle_timeout) and
//! [`shutdown`](Server::shutdown).
//!
//! **After every input, drain [`poll_output`](Server::poll_output) until it
//! returns `None`, then re-arm the timer from
//! [`poll_timeout`](Server::poll_timeout).** Outputs are bytes to write per
//! connection, connections to close, and events for logs.
//!
//! # Layout
//! * `config`: every limit.
//! * `member`: per-member session, stream queue and replay buffer.
//! * `handshake`: hello/resume, challenge-response, welcome, reject.
//! * `routing`: addresses to recipients, sequencing, outcomes.
//! * `events`: membership and published events.
//! * `transmit`: building transmits, windows, acks.
//! * `timers`: heartbeats, resume windows, eviction, handshake deadlines.
//! * `settle`: the one place where waiting items are woken after an input.

mod budget;
mod config;
mod events;
mod handshake;
mod member;
mod names;
mod permits;
mod ready;
mod reassembly;
mod routing;
mod settle;
pub mod stats;
mod timers;
mod transmit;
mod types;

pub use config::ServerConfig;
pub use reassembly::ReassemblyDrop;
pub use stats::MemberStats;
pub use types::{CloseReason, ConnId, DenialKind, Output, ServerEvent, ServerStats};

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Buf, Bytes, BytesMut};
use rand::RngCore;

use crate::frame::{self, ErrorCode, ErrorFrame, FailReason, Frame, MemberInfo, MissReason};
use crate::time::Tick;
use member::Member;
use routing::Inflight;
use timers::Timer;

/// A connection as the server sees it.
#[derive(Debug)]
struct Conn {
    state: ConnState,
    read_buf: BytesMut,
    /// Counted in `handshakes` (until attached or closed).
    counted: bool,
    /// The names of the client certificate the driver verified on this
    /// connection (subject common name, DNS and URI alternative names).
    cert_names: Vec<String>,
    /// The peer's address, when the driver said (`set_peer_address`).
    peer: Option<std::net::IpAddr>,
}

#[derive(Debug)]
enum ConnState {
    /// Waiting for `Hello` or `Resume`.
    AwaitHello,
    /// Challenge sent, waiting for `Auth`.
    AwaitAuth {
        start: handshake::Start,
        server_nonce: [u8; frame::NONCE_BYTES],
        /// The named secret the client claims; empty for the cluster's.
        claim: String,
    },
    /// Registered: carries the member's frames.
    Attached(u64),
}

/// The message server state machine. See the module docs for the driving
/// contract.
pub struct Server {
    config: ServerConfig,
    rng: Box<dyn RngCore + Send>,
    incarnation: u64,
    now: Tick,
    conns: BTreeMap<ConnId, Conn>,
    handshakes: usize,
    members: BTreeMap<u64, Member>,
    by_name: names::Names,
    instances: BTreeMap<String, BTreeSet<u64>>,
    groups: BTreeMap<String, BTreeSet<u64>>,
    anycast_cursor: BTreeMap<String, u64>,
    /// Recently removed member ids (bounded), to tell "gone" from
    /// "never known" and to answer an expired resume with a gap notice.
    departed: BTreeMap<u64, member::Departed>,
    /// Removal order of `departed`, for its bound.
    departed_order: VecDeque<u64>,
    /// Registrations so far; tags each member session.
    sessions: u64,
    /// When this server run started (for the re-registration grace).
    started: Tick,
    /// Messages for addressees not (yet) registered, during the grace.
    parked: VecDeque<routing::Parked>,
    gseq: u64,
    epoch: u64,
    inflight: crate::seq_queue::SeqQueue<Inflight>,
    timers: BTreeSet<(Tick, Timer)>,
    outputs: VecDeque<Output>,
    dirty: ready::Ready,
    scratch: Vec<u64>,
    /// Received items waiting for the application to take them, found
    /// while processing one `DeliveryAck` (kept for its capacity).
    scratch_untaken: Vec<u64>,
    /// Reused list of the pieces of a transmit: (queue index, part).
    tx_pieces: Vec<(usize, usize)>,
    /// Wake-ups recorded by input handlers, run by `settle`.
    wake: settle::Wakeups,
    shutting_down: bool,
    /// Code and detail of a protocol violation being reported.
    violation_detail: Option<(ErrorCode, String)>,
    /// When the frame being processed arrived (earlier than `now` for a
    /// deferred or parked one): the start of the sequencing latency.
    receipt: Tick,
    /// Bytes of chunked messages in reassembly, all members together.
    reassembly_bytes: usize,
    stats: ServerStats,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("incarnation", &self.incarnation)
            .field("members", &self.members.len())
            .field("conns", &self.conns.len())
            .field("gseq", &self.gseq)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A new server. Its incarnation id and all nonces come from `rng`.
    pub fn new(config: ServerConfig, mut rng: Box<dyn RngCore + Send>, now: Tick) -> Server {
        let incarnation = rng.next_u64() | 1;
        let mut timers = BTreeSet::new();
        timers.insert((now.plus_millis(config.restart_grace_ms), Timer::Grace));
        Server {
            config,
            rng,
            incarnation,
            now,
            conns: BTreeMap::new(),
            handshakes: 0,
            members: BTreeMap::new(),
            by_name: names::Names::default(),
            instances: BTreeMap::new(),
            groups: BTreeMap::new(),
            anycast_cursor: BTreeMap::new(),
            departed: BTreeMap::new(),
            departed_order: VecDeque::new(),
            sessions: 0,
            started: now,
            parked: VecDeque::new(),
            gseq: 0,
            epoch: 0,
            inflight: crate::seq_queue::SeqQueue::default(),
            timers,
            outputs: VecDeque::new(),
            dirty: ready::Ready::default(),
            scratch: Vec::new(),
            scratch_untaken: Vec::new(),
            tx_pieces: Vec::new(),
            wake: settle::Wakeups::default(),
            shutting_down: false,
            violation_detail: None,
            receipt: now,
            reassembly_bytes: 0,
            stats: ServerStats::default(),
        }
    }

    /// This server run's random incarnation id.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> ServerStats {
        let mut s = self.stats;
        // Items sequenced without waiting are not recorded one by one.
        let sequenced = s.messages_accepted + s.events_published;
        let immediate = sequenced.saturating_sub(s.sequencing_latency.count);
        s.sequencing_latency.buckets[0] += immediate;
        s.sequencing_latency.count += immediate;
        s
    }

    /// Current view epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Last global sequence assigned.
    pub fn gseq(&self) -> u64 {
        self.gseq
    }

    /// The current view, in member-id order.
    pub fn view(&self) -> impl Iterator<Item = &MemberInfo> {
        self.members.values().map(|m| &m.info)
    }

    /// Unacknowledged stream items queued for a member (for metrics/tests),
    /// not counting notices (NACKs, outcomes) about its own messages, plus
    /// the messages it received that its application has not taken yet
    /// (TAKEN capability). At most `2 × member_queue_items_max` after any
    /// input.
    pub fn queue_len(&self, member_id: u64) -> Option<usize> {
        self.members
            .get(&member_id)
            .map(|m| m.queue.len() - m.notices_queued + m.untaken.len())
    }

    /// Bytes of the frames queued for a member (its unacknowledged stream,
    /// notices included), counted afresh from the frames themselves rather
    /// than from the running count the limits use: for checkers, which
    /// compare it with `member_queue_bytes_max`. Walks the queue.
    pub fn queued_frame_bytes(&self, member_id: u64) -> Option<usize> {
        self.members.get(&member_id).map(|m| {
            m.queue
                .iter()
                .map(|item| match &item.data {
                    member::ItemData::One(b) => b.len(),
                    member::ItemData::Parts(parts) => parts.iter().map(|p| p.len()).sum(),
                })
                .sum()
        })
    }

    /// Notices (NACKs, outcomes) queued for a member. Outcomes are bounded
    /// by its messages in flight and its sequenced frames wait once it holds
    /// `sender_inflight_max` unread notices, so about twice that at most.
    pub fn notices_len(&self, member_id: u64) -> Option<usize> {
        self.members.get(&member_id).map(|m| m.notices_queued)
    }

    /// Counters of a member's session.
    pub fn member_stats(&self, member_id: u64) -> Option<MemberStats> {
        self.members.get(&member_id).map(|m| {
            // Items leave the queue only when acknowledged (or with the
            // member): what went out is what was acked plus what is queued.
            let mut s = m.stats;
            s.items_out = s.acked + m.queue.len() as u64;
            s.bytes_out = s.acked_bytes + m.queue_bytes as u64;
            s
        })
    }

    /// Bytes of a member's unacknowledged stream (notices included).
    pub fn queue_bytes(&self, member_id: u64) -> Option<usize> {
        self.members.get(&member_id).map(|m| m.queue_bytes)
    }

    /// Connections still in their handshake.
    pub fn handshakes(&self) -> usize {
        self.handshakes
    }

    /// True until the restart grace after this server's start is over at
    /// `now`: members are still coming back, and messages to addressees
    /// not yet registered wait instead of being refused.
    pub fn in_restart_grace(&self, now: Tick) -> bool {
        now < self.started.plus_millis(self.config.restart_grace_ms)
    }

    /// True once a graceful shutdown started.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// True when the member is registered and attached to a connection.
    pub fn is_attached(&self, member_id: u64) -> bool {
        self.members
            .get(&member_id)
            .is_some_and(|m| m.conn.is_some())
    }

    /// Number of open connections (handshaking or attached).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// True while the member is throttled: a recipient of its messages is
    /// over its queue limit, so its further messages wait unprocessed (and
    /// unacknowledged: its outbox fills and its sends wait). Its stream
    /// acknowledgements and heartbeats are still handled.
    pub fn is_throttled(&self, member_id: u64) -> bool {
        self.throttle_holds_id(member_id)
    }

    /// False when the driver should stop reading this connection for now:
    /// the member's deferred frames reached `member_inbox_bytes_max`. A
    /// client that keeps within its outbox limit never gets there.
    pub fn wants_read(&self, conn: ConnId) -> bool {
        match self.conns.get(&conn) {
            Some(Conn {
                state: ConnState::Attached(id),
                ..
            }) => self
                .members
                .get(id)
                .is_none_or(|m| m.inbox_bytes < self.config.member_inbox_bytes_max),
            _ => true,
        }
    }

    fn throttle_holds(&self, m: &Member) -> bool {
        match m.throttled_by.and_then(|r| self.members.get(&r)) {
            Some(r) => r.over_limit(
                self.config.member_queue_items_max / 2,
                self.config.member_queue_bytes_max / 2,
            ),
            None => false,
        }
    }

    /// A connection was accepted on the internal port.
    pub fn handle_connected(&mut self, now: Tick, conn: ConnId) {
        self.now = now;
        self.accept_conn(conn);
        self.settle();
        self.end_input();
    }

    /// The client certificate the driver's TLS verified on `conn` carries
    /// these names (its subject common name, its DNS and URI alternative
    /// names). Call it before the connection's first bytes. A certificate
    /// credential naming one of them becomes the credential of a member
    /// registering on it with the cluster secret. Ignored once the
    /// handshake has begun.
    pub fn set_certificate_names(&mut self, conn: ConnId, names: Vec<String>) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if matches!(c.state, ConnState::AwaitHello) && c.read_buf.is_empty() {
                c.cert_names = names;
            }
        }
    }

    /// `conn` comes from `peer`: a credential limited to other source
    /// addresses (`Permissions::sources`) is refused on it. Call it right
    /// after `handle_connected`. Without it every source is permitted.
    pub fn set_peer_address(&mut self, conn: ConnId, peer: std::net::IpAddr) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.peer = Some(peer);
        }
    }

    fn accept_conn(&mut self, conn: ConnId) {
        debug_assert!(!self.conns.contains_key(&conn), "connection id reused");
        self.conns.insert(
            conn,
            Conn {
                state: ConnState::AwaitHello,
                read_buf: BytesMut::new(),
                counted: false,
                cert_names: Vec::new(),
                peer: None,
            },
        );
        if self.shutting_down {
            self.reject(
                conn,
                frame::RejectReason::ServerFull,
                "server shutting down".into(),
            );
            return;
        }
        if self.handshakes >= self.config.handshakes_max && !self.evict_stalest_handshake() {
            self.reject(
                conn,
                frame::RejectReason::ServerFull,
                "too many handshakes in progress".into(),
            );
            return;
        }
        self.handshakes += 1;
        self.stats.connections_accepted += 1;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.counted = true;
        }
        let deadline = self.now.plus_millis(self.config.handshake_timeout_ms);
        self.timers.insert((deadline, Timer::Handshake(conn)));
    }

    /// Bytes arrived on a connection.
    pub fn handle_bytes(&mut self, now: Tick, conn: ConnId, data: &[u8]) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.read_buf.extend_from_slice(data);
        }
        self.decode_reads(now, conn);
    }

    /// Like [`handle_bytes`](Server::handle_bytes), for a read that arrives
    /// in a buffer of its own: when nothing of an earlier read is left
    /// over, the frames are decoded from that buffer without copying it
    /// (payloads stay slices of it).
    ///
    /// When an earlier read left the start of a frame, only the bytes that
    /// complete that frame are copied to it; the frame is handled and the
    /// rest of the read is decoded in place.
    pub fn handle_read(&mut self, now: Tick, conn: ConnId, mut data: Bytes) {
        self.now = now;
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                // Closed while handling the completed frame.
                self.end_input();
                return;
            };
            if c.read_buf.is_empty() {
                // Zero-copy when `data` is the only handle to its buffer.
                c.read_buf = BytesMut::from(data);
                break;
            }
            let missing = frame::bytes_missing(&c.read_buf);
            if missing == 0 || missing >= data.len() {
                c.read_buf.extend_from_slice(&data);
                break;
            }
            c.read_buf.extend_from_slice(&data[..missing]);
            data.advance(missing);
            debug_assert!(!data.is_empty());
            // The completed frame (or length prefix) goes first.
            self.decode_frames(conn);
        }
        self.decode_reads(now, conn);
    }

    /// Decodes and handles every whole frame buffered on `conn`: one input.
    fn decode_reads(&mut self, now: Tick, conn: ConnId) {
        self.now = now;
        self.decode_frames(conn);
        self.end_input();
    }

    /// The frames of [`decode_reads`](Server::decode_reads), each settled.
    fn decode_frames(&mut self, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            // Before authentication only handshake-sized frames: a larger
            // declared length is refused at its header, never buffered.
            let limits = match c.state {
                ConnState::Attached(_) => self.config.limits,
                _ => self.config.limits.before_auth(),
            };
            match frame::decode(&mut c.read_buf, &limits) {
                Ok(Some(f)) => {
                    self.handle_frame(conn, f);
                    self.settle();
                }
                Ok(None) => {
                    // Frames decoded from this buffer share its memory; an
                    // empty buffer is let go so that an idle connection
                    // keeps nothing of its last read.
                    if c.read_buf.is_empty() {
                        c.read_buf = BytesMut::new();
                    }
                    break;
                }
                Err(e) => {
                    let handshaking = self
                        .conns
                        .get(&conn)
                        .is_some_and(|c| !matches!(c.state, ConnState::Attached(_)));
                    if handshaking && matches!(e, frame::DecodeError::UnsupportedVersion { .. }) {
                        self.reject(
                            conn,
                            frame::RejectReason::UnsupportedVersion,
                            format!(
                                "{e}; this server speaks version {}",
                                frame::PROTOCOL_VERSION
                            ),
                        );
                    } else {
                        self.protocol_error(conn, ErrorCode::Malformed, e.to_string());
                    }
                    self.settle();
                    return;
                }
            }
        }
    }

    /// True while `conn` has been sent a `Challenge` and not yet answered
    /// with `Auth`: a client that closes now could not verify the server's
    /// proof (it holds another secret). A query only; no state changes.
    pub fn awaits_auth(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| matches!(c.state, ConnState::AwaitAuth { .. }))
    }

    /// The credential name a connection awaiting `Auth` claimed in its
    /// `Hello` or `Resume` (empty for the cluster secret), for a log line
    /// when the client gives up there. A query only.
    pub fn claimed_credential(&self, conn: ConnId) -> Option<&str> {
        match self.conns.get(&conn).map(|c| &c.state) {
            Some(ConnState::AwaitAuth { claim, .. }) => Some(claim.as_str()),
            _ => None,
        }
    }

    /// The connection closed (reset, EOF or write error).
    pub fn handle_closed(&mut self, now: Tick, conn: ConnId) {
        self.now = now;
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.dirty.remove(&conn);
        if c.counted {
            self.handshakes -= 1;
        }
        if let ConnState::Attached(id) = c.state {
            self.detach(id);
        }
        self.settle();
        self.end_input();
    }

    /// Starts a graceful shutdown: every member gets a `Goodbye`, every
    /// connection is closed, new connections are refused.
    pub fn shutdown(&mut self, now: Tick) {
        self.now = now;
        self.shutting_down = true;
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            let _ = self.write_control(
                conn,
                &Frame::Goodbye(frame::Goodbye {
                    text: "server shutting down".into(),
                }),
            );
            self.close_conn(conn, CloseReason::Shutdown);
        }
        self.settle();
        self.end_input();
    }

    /// The next output. Drain until `None` after every input.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.outputs.pop_front() {
            return Some(o);
        }
        while let Some(conn) = self.dirty.pop() {
            if let Some(o) = self.build_transmit(conn) {
                return Some(o);
            }
        }
        None
    }

    /// The earliest time `handle_timeout` must be called, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Tick> {
        self.timers.first().map(|(t, _)| *t)
    }

    fn handle_frame(&mut self, conn: ConnId, f: Frame) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        match &c.state {
            ConnState::AwaitHello | ConnState::AwaitAuth { .. } => self.handshake_frame(conn, f),
            ConnState::Attached(id) => {
                let id = *id;
                self.member_frame(conn, id, f);
            }
        }
    }

    /// A frame from a registered member.
    fn member_frame(&mut self, conn: ConnId, id: u64, f: Frame) {
        let now = self.now;
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        m.last_heard = now;
        // Counted on receipt, where the member is at hand anyway.
        match &f {
            Frame::Send(s) => {
                let kind = stats::address_kind(&s.to);
                m.stats.messages_in += 1;
                m.stats.bytes_in += s.payload.len() as u64;
                self.stats.messages_in_by_kind[kind] += 1;
                self.stats.bytes_in_by_kind[kind] += s.payload.len() as u64;
            }
            Frame::Chunk(c) => {
                m.stats.bytes_in += c.payload.len() as u64;
                if let Some(p) = &m.partial {
                    let kind = stats::address_kind(&p.head.to);
                    self.stats.bytes_in_by_kind[kind] += c.payload.len() as u64;
                }
            }
            _ => {}
        }
        let deferrable = matches!(
            f,
            Frame::Send(_)
                | Frame::Chunk(_)
                | Frame::Publish(_)
                | Frame::Subscribe(_)
                | Frame::Unsubscribe(_)
                | Frame::Join(_)
                | Frame::Leave(_)
        );
        if deferrable && (!m.inbox.is_empty() || self.throttle_holds_id(id)) {
            // Throttled: sequenced frames wait, in order, while
            // acknowledgements and heartbeats are still handled.
            if let Some(m) = self.members.get_mut(&id) {
                m.inbox_bytes += frame_cost(&f);
                m.inbox.push_back((now, f));
            }
            return;
        }
        if let Frame::Goodbye(_) = f {
            // Whatever the member sent before its goodbye counts, held
            // back or not: it is processed now, in order.
            while let Some((conn, f)) = self.pop_deferred(id) {
                self.process_member_frame(conn, id, f);
            }
        }
        self.receipt = now;
        self.process_member_frame(conn, id, f);
    }

    /// Takes the oldest deferred frame of an attached member; the time it
    /// was received becomes the receipt time of what it causes.
    fn pop_deferred(&mut self, id: u64) -> Option<(ConnId, Frame)> {
        let m = self.members.get_mut(&id)?;
        let conn = m.conn?;
        let (received, f) = m.inbox.pop_front()?;
        m.inbox_bytes = m.inbox_bytes.saturating_sub(frame_cost(&f));
        self.receipt = received;
        Some((conn, f))
    }

    /// True while the member's sequenced frames must wait: a recipient of
    /// its messages is over its limit, or it has not read its own notices
    /// (NACKs, outcomes) up to `sender_inflight_max` — a member that keeps
    /// sending without reading its stream cannot pile them up.
    pub(crate) fn throttle_holds_id(&self, id: u64) -> bool {
        self.members.get(&id).is_some_and(|m| {
            m.notices_queued >= self.config.sender_inflight_max || self.throttle_holds(m)
        })
    }

    fn process_member_frame(&mut self, conn: ConnId, id: u64, f: Frame) {
        let Some(m) = self.members.get(&id) else {
            return;
        };
        let sequenced = matches!(
            f,
            Frame::Send(_)
                | Frame::Publish(_)
                | Frame::Subscribe(_)
                | Frame::Unsubscribe(_)
                | Frame::Join(_)
                | Frame::Leave(_)
        );
        if sequenced && m.partial.is_some() {
            return self.protocol_error(
                conn,
                ErrorCode::UnexpectedFrame,
                format!("{} between the chunks of a message", f.name()),
            );
        }
        match f {
            Frame::Send(s) => self.on_send(id, s),
            Frame::Chunk(c) => self.on_chunk(id, c),
            Frame::DeliveryAck(a) => self.on_delivery_ack(id, a.through),
            Frame::Taken(t) => self.on_taken(id, t.through),
            Frame::Publish(p) => self.on_publish(id, p),
            Frame::Subscribe(s) => self.on_subscribe(id, s),
            Frame::Unsubscribe(u) => self.on_unsubscribe(id, u),
            Frame::Join(g) => self.on_join(id, g),
            Frame::Leave(g) => self.on_leave(id, g),
            Frame::Ping(n) => {
                let _ = self.write_control(conn, &Frame::Pong(n));
            }
            Frame::Pong(_) => {}
            Frame::Goodbye(_) => self.remove_member(id, Removal::Left),
            Frame::Error(_) => {
                // The client gave up on this connection; keep the session
                // for a resume.
                self.close_conn(conn, CloseReason::ProtocolError);
                self.detach(id);
            }
            other => self.protocol_error(
                conn,
                ErrorCode::UnexpectedFrame,
                format!("{} is not allowed after registration", other.name()),
            ),
        }
        if let Some(m) = self.members.get(&id) {
            m.check_invariants();
        }
    }

    /// A connection broke the protocol: report, and fail its member.
    fn protocol_error(&mut self, conn: ConnId, code: ErrorCode, detail: String) {
        self.outputs
            .push_back(Output::Event(ServerEvent::ProtocolError {
                conn,
                detail: detail.clone(),
            }));
        let state_member = match self.conns.get(&conn).map(|c| &c.state) {
            Some(ConnState::Attached(id)) => Some(*id),
            _ => None,
        };
        match state_member {
            Some(id) => {
                // `remove_member` sends the one Error frame with the detail.
                self.violation_detail = Some((code, detail));
                self.remove_member(id, Removal::Failed(FailReason::ProtocolViolation));
                self.violation_detail = None;
            }
            None => {
                let _ = self.write_control(conn, &Frame::Error(ErrorFrame { code, text: detail }));
                self.close_conn(conn, CloseReason::ProtocolError);
            }
        }
    }

    /// The member's connection is gone; its session waits for a resume.
    fn detach(&mut self, id: u64) {
        let now = self.now;
        let window = u64::from(self.config.resume_window_ms);
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        if let Some(conn) = m.conn.take() {
            self.dirty.remove(&conn);
        }
        m.detached_since = Some(now);
        let partial = m.partial.take();
        // The client resends everything the server did not process.
        m.inbox.clear();
        m.inbox_bytes = 0;
        m.rewind();
        self.forget_partial(partial);
        self.timers
            .insert((now.plus_millis(window), Timer::ResumeWindow(id)));
        self.outputs
            .push_back(Output::Event(ServerEvent::MemberDetached { member_id: id }));
    }

    /// Encodes a control frame onto a connection's control lane.
    fn write_control(&mut self, conn: ConnId, f: &Frame) -> bool {
        let limits = self.config.limits;
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        let buf = match c.state {
            ConnState::Attached(id) => match self.members.get_mut(&id) {
                Some(m) => {
                    m.last_sent = now;
                    &mut m.control
                }
                None => return false,
            },
            // Handshaking connections keep their few frames in the read
            // buffer's sibling: a transmit is emitted at once instead.
            _ => {
                let mut b = BytesMut::new();
                if f.encode(&mut b, &limits).is_ok() {
                    self.outputs.push_back(Output::Transmit {
                        conn,
                        data: b.freeze(),
                    });
                    return true;
                }
                debug_assert!(false, "server-built control frame must encode");
                return false;
            }
        };
        let ok = f.encode(buf, &limits).is_ok();
        debug_assert!(ok, "server-built control frame must encode");
        self.dirty.insert(conn);
        ok
    }

    /// Flushes what is pending on a connection and closes it.
    fn close_conn(&mut self, conn: ConnId, reason: CloseReason) {
        if let Some(o) = self.build_transmit(conn) {
            self.outputs.push_back(o);
        }
        self.dirty.remove(&conn);
        if let Some(c) = self.conns.remove(&conn) {
            if c.counted {
                self.handshakes -= 1;
            }
            if let ConnState::Attached(id) = c.state {
                if let Some(m) = self.members.get_mut(&id) {
                    if m.conn == Some(conn) {
                        m.conn = None;
                    }
                }
            }
            self.outputs.push_back(Output::Close { conn, reason });
        }
    }

    /// Encodes a frame the server built itself.
    fn encode(&self, f: &Frame) -> Bytes {
        let mut b = BytesMut::new();
        let r = f.encode(&mut b, &self.config.limits);
        debug_assert!(r.is_ok(), "server-built frame must encode: {r:?}");
        b.freeze()
    }

    fn next_gseq(&mut self) -> u64 {
        self.gseq += 1;
        self.gseq
    }
}

/// Bytes a deferred frame is counted for.
fn frame_cost(f: &Frame) -> usize {
    64 + match f {
        Frame::Send(s) => s.payload.len(),
        Frame::Chunk(c) => c.payload.len(),
        Frame::Publish(p) => match &p.event {
            frame::EventBody::Custom { payload, .. } => payload.len(),
            _ => 0,
        },
        _ => 0,
    }
}

/// How a member leaves the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    Left,
    Failed(FailReason),
}

impl Removal {
    fn miss_reason(self) -> MissReason {
        match self {
            Removal::Left => MissReason::Left,
            Removal::Failed(FailReason::SlowConsumer) => MissReason::Evicted,
            Removal::Failed(_) => MissReason::Failed,
        }
    }
}
