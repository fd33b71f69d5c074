//! A member (work process) as a sans-IO state machine.
//!
//! # Driving it
//! Inputs: [`handle_connected`](Client::handle_connected),
//! [`handle_bytes`](Client::handle_bytes),
//! [`handle_closed`](Client::handle_closed),
//! [`handle_timeout`](Client::handle_timeout), and the application's
//! commands ([`send`](Client::send), [`request`](Client::request),
//! [`reply`](Client::reply), [`publish`](Client::publish),
//! [`subscribe`](Client::subscribe), [`join`](Client::join),
//! [`goodbye`](Client::goodbye), ...), each with the current [`Tick`].
//!
//! **After every input, drain [`poll_output`](Client::poll_output) until it
//! returns `None`, then re-arm the timer from
//! [`poll_timeout`](Client::poll_timeout).** The first output of a new
//! client is [`ClientOutput::Connect`].
//!
//! # What it guarantees the application
//! * Every message it accepts is kept until it is final (delivered
//!   everywhere, NACKed, or its outcome arrived), and resent after a
//!   resume or a server restart.
//! * The incoming stream is handed over in order, without duplicates
//!   (by sender incarnation and sequence), across reconnects and restarts.

mod config;
mod inbox;
mod outbox;
mod types;

pub use config::ClientConfig;
pub use types::{
    ClientEvent, ClientOutput, CommandError, Message, ReplyTo, RequestError, SendOptions,
};

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{BufMut, Bytes, BytesMut};
use rand::RngCore;

use crate::auth::proofs_equal;
use crate::frame::{
    self, capabilities, flags, Address, Auth, Chunk, ClusterEvent, Deliver, DeliveryAck, EventBody,
    Filter, Frame, GroupOp, Hello, MemberInfo, RejectReason, Resume, Send, Subscribe,
    SubscriptionSpec, Unsubscribe, Welcome,
};
use crate::time::{earliest, Tick};
use inbox::Dedup;
use outbox::{Entry, Outbox};

/// Where the connection stands.
#[derive(Debug)]
enum Phase {
    /// No connection; reconnect at the given time.
    Idle { retry_at: Tick },
    /// `Connect` was emitted; waiting for `handle_connected`.
    Connecting { since: Tick },
    /// Hello/Resume sent; waiting for the server's challenge.
    AwaitChallenge {
        since: Tick,
        nonce: [u8; frame::NONCE_BYTES],
    },
    /// Authenticated; waiting for Welcome (+ snapshot) or Resumed.
    AwaitWelcome { since: Tick },
    /// Welcome received; collecting snapshot members.
    Snapshot {
        since: Tick,
        welcome: Welcome,
        members: Vec<MemberInfo>,
    },
    /// Registered and streaming.
    Ready,
    /// Goodbye sent or refused for good.
    Closed,
}

/// The session with the current server incarnation.
#[derive(Debug, Clone, Copy)]
struct Session {
    member_id: u64,
    server_incarnation: u64,
}

/// A request waiting for its reply.
#[derive(Debug, Clone, Copy)]
struct Pending {
    deadline: Tick,
    /// The addressed member, when known (member addresses).
    target: Option<u64>,
}

/// A chunked delivery being reassembled.
#[derive(Debug)]
struct PartialIn {
    head: Deliver,
    buf: BytesMut,
}

/// The member client state machine. See the module docs.
pub struct Client {
    config: ClientConfig,
    rng: Box<dyn RngCore + std::marker::Send>,
    now: Tick,
    phase: Phase,
    session: Option<Session>,
    /// A session existed before this registration attempt.
    had_session: bool,
    /// Last sequence taken when the current `Hello` was built: the state it
    /// carries covers every registration-state command up to it.
    hello_seq: u64,
    /// Highest sequence whose effect the server has (acked, resumed past,
    /// or carried by the registration).
    effective_through: u64,
    /// Highest stream position received.
    delivered_through: u64,
    /// Highest position acknowledged to the server.
    delivery_acked: u64,
    next_seq: u64,
    /// Highest sequence transmitted on the current connection.
    sent_through: u64,
    outbox: Outbox,
    dedup: Dedup,
    view: BTreeMap<u64, MemberInfo>,
    epoch: u64,
    groups: BTreeSet<String>,
    subscriptions: BTreeMap<u32, Filter>,
    next_sub_id: u32,
    services: BTreeSet<String>,
    load: u32,
    requests: BTreeMap<u64, Pending>,
    request_deadlines: BTreeSet<(Tick, u64)>,
    partial: Option<PartialIn>,
    read_buf: BytesMut,
    control: BytesMut,
    outputs: VecDeque<ClientOutput>,
    last_heard: Tick,
    last_sent: Tick,
    heartbeat_interval_ms: u64,
    heartbeat_timeout_ms: u64,
    attempts: u32,
    closing: bool,
    scratch: Vec<u64>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("instance", &self.config.instance)
            .field("process", &self.config.process)
            .field("phase", &self.phase)
            .field("member_id", &self.member_id())
            .field("outbox", &self.outbox.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A new client; its first output is `Connect`. Nonces and reconnect
    /// jitter come from `rng`.
    pub fn new(
        config: ClientConfig,
        rng: Box<dyn RngCore + std::marker::Send>,
        now: Tick,
    ) -> Client {
        let dedup = Dedup::new(config.dedup_senders_max);
        let services = config.services.iter().cloned().collect();
        let load = config.load;
        let heartbeat_interval_ms = u64::from(config.heartbeat_interval_ms);
        let heartbeat_timeout_ms = u64::from(config.heartbeat_timeout_ms);
        Client {
            config,
            rng,
            now,
            phase: Phase::Idle { retry_at: now },
            session: None,
            had_session: false,
            hello_seq: 0,
            effective_through: 0,
            delivered_through: 0,
            delivery_acked: 0,
            next_seq: 1,
            sent_through: 0,
            outbox: Outbox::default(),
            dedup,
            view: BTreeMap::new(),
            epoch: 0,
            groups: BTreeSet::new(),
            subscriptions: BTreeMap::new(),
            next_sub_id: 1,
            services,
            load,
            requests: BTreeMap::new(),
            request_deadlines: BTreeSet::new(),
            partial: None,
            read_buf: BytesMut::new(),
            control: BytesMut::new(),
            outputs: VecDeque::new(),
            last_heard: now,
            last_sent: now,
            heartbeat_interval_ms,
            heartbeat_timeout_ms,
            attempts: 0,
            closing: false,
            scratch: Vec::new(),
        }
    }

    // ----- queries -------------------------------------------------------

    /// This member's id in the current session, if registered.
    pub fn member_id(&self) -> Option<u64> {
        self.session.map(|s| s.member_id)
    }

    /// True when registered and streaming.
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready)
    }

    /// True after goodbye or a fatal reject.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The current view, as this member knows it from its stream.
    pub fn view(&self) -> &BTreeMap<u64, MemberInfo> {
        &self.view
    }

    /// The view epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Messages kept until final.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// The sequence given to the most recent sequenced command (0 before
    /// the first).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Highest sequence whose effect the server has: covered by an `Ack`,
    /// by a resume, or by the state a registration carried (groups,
    /// subscriptions, services, load).
    pub fn effective_through(&self) -> u64 {
        self.effective_through
    }

    /// Highest stream position received.
    pub fn delivered_through(&self) -> u64 {
        self.delivered_through
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    // ----- driver inputs -------------------------------------------------

    /// The connection asked for by `Connect` is open.
    pub fn handle_connected(&mut self, now: Tick) {
        self.now = now;
        if !matches!(self.phase, Phase::Connecting { .. }) {
            return;
        }
        let mut nonce = [0u8; frame::NONCE_BYTES];
        self.rng.fill_bytes(&mut nonce);
        self.read_buf.clear();
        self.control.clear();
        self.partial = None;
        self.last_heard = now;
        let first = match self.session {
            Some(s) => Frame::Resume(Resume {
                cluster: self.config.cluster.clone(),
                member_id: s.member_id,
                incarnation: self.config.incarnation,
                server_incarnation: s.server_incarnation,
                delivered_through: self.delivered_through,
                client_nonce: nonce,
            }),
            None => {
                self.hello_seq = self.next_seq - 1;
                Frame::Hello(Hello {
                    cluster: self.config.cluster.clone(),
                    instance: self.config.instance.clone(),
                    process: self.config.process.clone(),
                    incarnation: self.config.incarnation,
                    capabilities: capabilities::CHUNKING | capabilities::OUTCOMES,
                    client_nonce: nonce,
                    services: self.services.iter().cloned().collect(),
                    load: self.load,
                    groups: self.groups.iter().cloned().collect(),
                    subscriptions: self
                        .subscriptions
                        .iter()
                        .map(|(id, f)| SubscriptionSpec {
                            sub_id: *id,
                            filter: f.clone(),
                        })
                        .collect(),
                })
            }
        };
        self.write_control(&first);
        self.phase = Phase::AwaitChallenge { since: now, nonce };
    }

    /// Bytes arrived on the connection.
    pub fn handle_bytes(&mut self, now: Tick, data: &[u8]) {
        self.now = now;
        if matches!(
            self.phase,
            Phase::Idle { .. } | Phase::Closed | Phase::Connecting { .. }
        ) {
            return;
        }
        self.last_heard = now;
        self.read_buf.extend_from_slice(data);
        let limits = self.config.limits;
        loop {
            match frame::decode(&mut self.read_buf, &limits) {
                Ok(Some(f)) => {
                    if !self.handle_frame(f) {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.drop_connection(format!("undecodable frame from server: {e}"), true);
                    break;
                }
            }
        }
        self.queue_delivery_ack();
    }

    /// The connection closed or could not be opened.
    pub fn handle_closed(&mut self, now: Tick) {
        self.now = now;
        match self.phase {
            Phase::Idle { .. } | Phase::Closed => {}
            _ => self.drop_connection("connection closed".into(), false),
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Tick) {
        self.now = now;
        match self.phase {
            Phase::Idle { retry_at } if now >= retry_at => {
                self.phase = Phase::Connecting { since: now };
                self.outputs.push_back(ClientOutput::Connect);
            }
            Phase::Connecting { since }
            | Phase::AwaitChallenge { since, .. }
            | Phase::AwaitWelcome { since }
            | Phase::Snapshot { since, .. }
                if now.millis_since(since) >= self.config.handshake_timeout_ms =>
            {
                self.drop_connection("handshake timed out".into(), true);
            }
            Phase::Ready => {
                if now.millis_since(self.last_heard) >= self.heartbeat_timeout_ms {
                    self.drop_connection("server silent past the heartbeat timeout".into(), true);
                } else if now.millis_since(self.last_sent) >= self.heartbeat_interval_ms {
                    self.write_control(&Frame::Ping(now.as_micros()));
                }
            }
            _ => {}
        }
        while let Some(&(at, corr)) = self.request_deadlines.first() {
            if at > now {
                break;
            }
            self.request_deadlines.pop_first();
            if let Some(p) = self.requests.get(&corr) {
                if p.deadline <= now {
                    self.requests.remove(&corr);
                    self.event(ClientEvent::RequestFailed {
                        request: corr,
                        error: RequestError::TimedOut,
                    });
                }
            }
        }
    }

    /// The next output. Drain until `None` after every input.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        if let Some(o) = self.outputs.pop_front() {
            return Some(o);
        }
        self.build_transmit().map(ClientOutput::Transmit)
    }

    /// The earliest time `handle_timeout` must be called, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Tick> {
        let phase = match &self.phase {
            Phase::Idle { retry_at } => Some(*retry_at),
            Phase::Connecting { since }
            | Phase::AwaitChallenge { since, .. }
            | Phase::AwaitWelcome { since }
            | Phase::Snapshot { since, .. } => {
                Some(since.plus_millis(self.config.handshake_timeout_ms))
            }
            Phase::Ready => Some(
                self.last_heard
                    .plus_millis(self.heartbeat_timeout_ms)
                    .min(self.last_sent.plus_millis(self.heartbeat_interval_ms)),
            ),
            Phase::Closed => None,
        };
        earliest(phase, self.request_deadlines.first().map(|(t, _)| *t))
    }

    // ----- application commands -----------------------------------------

    /// Sends a message. Returns its sequence; the outcome arrives as
    /// `Acked`/`Nacked` (and `Outcome` when `opts.confirm`).
    pub fn send(
        &mut self,
        now: Tick,
        to: Address,
        payload: Bytes,
        opts: SendOptions,
    ) -> Result<u64, CommandError> {
        self.now = now;
        let f = if opts.confirm { flags::CONFIRM } else { 0 };
        self.send_inner(to, payload, f, 0, 0)
    }

    /// Sends a request; the reply arrives as `Reply`, or `RequestFailed`.
    /// Returns the request id (its sequence).
    pub fn request(
        &mut self,
        now: Tick,
        to: Address,
        payload: Bytes,
        timeout_ms: u32,
    ) -> Result<u64, CommandError> {
        self.now = now;
        if self.requests.len() >= self.config.requests_max {
            return Err(CommandError::TooManyRequests(self.requests.len()));
        }
        let corr = self.next_seq;
        let target = match &to {
            Address::MemberId(id) => Some(*id),
            Address::Member { instance, process } => self
                .view
                .values()
                .find(|m| &m.instance == instance && &m.process == process)
                .map(|m| m.member_id),
            _ => None,
        };
        let seq = self.send_inner(
            to,
            payload,
            flags::REQUEST | flags::CONFIRM,
            corr,
            timeout_ms,
        )?;
        debug_assert_eq!(seq, corr);
        let deadline = now.plus_millis(u64::from(timeout_ms));
        self.requests.insert(seq, Pending { deadline, target });
        self.request_deadlines.insert((deadline, seq));
        Ok(seq)
    }

    /// Replies to a request.
    pub fn reply(&mut self, now: Tick, to: ReplyTo, payload: Bytes) -> Result<u64, CommandError> {
        self.now = now;
        self.send_inner(
            Address::MemberId(to.member_id),
            payload,
            flags::REPLY,
            to.correlation,
            0,
        )
    }

    /// Publishes an event (service state, load or custom topic).
    pub fn publish(&mut self, now: Tick, event: EventBody) -> Result<u64, CommandError> {
        self.now = now;
        self.check_open()?;
        match &event {
            EventBody::ServiceState { service, .. } => {
                if service.is_empty() || service.len() > frame::NAME_BYTES_MAX {
                    return Err(CommandError::Invalid("service name"));
                }
            }
            EventBody::Load(_) => {}
            EventBody::Custom { topic, payload } => {
                if topic.len() > frame::TOPIC_BYTES_MAX {
                    return Err(CommandError::Invalid("topic"));
                }
                if payload.len() > self.config.limits.chunk_bytes_max() as usize {
                    return Err(CommandError::TooLarge {
                        len: payload.len(),
                        max: self.config.limits.chunk_bytes_max(),
                    });
                }
            }
        }
        let bytes = match &event {
            EventBody::Custom { payload, .. } => payload.len() + 64,
            _ => 64,
        };
        let seq = self.reserve(bytes)?;
        // Local state changes only once the frame is queued.
        match &event {
            EventBody::ServiceState { service, up: true } => {
                self.services.insert(service.clone());
            }
            EventBody::ServiceState { service, up: false } => {
                self.services.remove(service);
            }
            EventBody::Load(l) => self.load = *l,
            EventBody::Custom { .. } => {}
        }
        self.push_entry(
            seq,
            Frame::Publish(frame::Publish { seq, event }),
            bytes,
            false,
            true,
        );
        Ok(seq)
    }

    /// Adds a subscription (a notification handler); returns its id, which
    /// `Event`s list when their filter matches.
    pub fn subscribe(&mut self, now: Tick, filter: Filter) -> Result<u32, CommandError> {
        self.now = now;
        self.check_open()?;
        if self.subscriptions.len() >= frame::SUBSCRIPTIONS_MAX {
            return Err(CommandError::Invalid("too many subscriptions"));
        }
        if filter.topic_prefix.len() > frame::TOPIC_BYTES_MAX {
            return Err(CommandError::Invalid("topic prefix"));
        }
        let sub_id = self.next_sub_id;
        let seq = self.reserve(64)?;
        self.next_sub_id += 1;
        self.subscriptions.insert(sub_id, filter.clone());
        self.push_entry(
            seq,
            Frame::Subscribe(Subscribe {
                seq,
                sub_id,
                filter,
            }),
            64,
            false,
            false,
        );
        Ok(sub_id)
    }

    /// Drops a subscription.
    pub fn unsubscribe(&mut self, now: Tick, sub_id: u32) -> Result<(), CommandError> {
        self.now = now;
        self.check_open()?;
        if !self.subscriptions.contains_key(&sub_id) {
            return Ok(());
        }
        let seq = self.reserve(16)?;
        self.subscriptions.remove(&sub_id);
        self.push_entry(
            seq,
            Frame::Unsubscribe(Unsubscribe { seq, sub_id }),
            16,
            false,
            false,
        );
        Ok(())
    }

    /// Joins a group.
    pub fn join(&mut self, now: Tick, group: &str) -> Result<(), CommandError> {
        self.now = now;
        self.check_open()?;
        if group.is_empty() || group.len() > frame::NAME_BYTES_MAX {
            return Err(CommandError::Invalid("group name"));
        }
        if self.groups.contains(group) {
            return Ok(());
        }
        if self.groups.len() >= frame::GROUPS_PER_MEMBER_MAX {
            return Err(CommandError::Invalid("too many groups"));
        }
        let seq = self.reserve(64)?;
        self.groups.insert(group.to_owned());
        let f = Frame::Join(GroupOp {
            seq,
            group: group.to_owned(),
        });
        self.push_entry(seq, f, 64, false, false);
        Ok(())
    }

    /// Leaves a group.
    pub fn leave(&mut self, now: Tick, group: &str) -> Result<(), CommandError> {
        self.now = now;
        self.check_open()?;
        if !self.groups.contains(group) {
            return Ok(());
        }
        let seq = self.reserve(64)?;
        self.groups.remove(group);
        let f = Frame::Leave(GroupOp {
            seq,
            group: group.to_owned(),
        });
        self.push_entry(seq, f, 64, false, false);
        Ok(())
    }

    /// Says goodbye: pending frames are transmitted, then `Goodbye`, then
    /// the connection closes and the client stops.
    pub fn goodbye(&mut self, now: Tick) {
        self.now = now;
        if matches!(self.phase, Phase::Ready) {
            // Everything queued goes out before the goodbye (bounded by the
            // outbox).
            while let Some(data) = self.build_transmit() {
                self.outputs.push_back(ClientOutput::Transmit(data));
            }
            let mut b = BytesMut::new();
            let ok = Frame::Goodbye(frame::Goodbye {
                text: "goodbye".into(),
            })
            .encode(&mut b, &self.config.limits)
            .is_ok();
            debug_assert!(ok);
            self.outputs.push_back(ClientOutput::Transmit(b.freeze()));
            self.outputs.push_back(ClientOutput::Close);
        } else if !matches!(self.phase, Phase::Idle { .. } | Phase::Closed) {
            self.outputs.push_back(ClientOutput::Close);
        }
        self.closing = true;
        self.phase = Phase::Closed;
        self.event(ClientEvent::Closed);
    }

    // ----- internals ----------------------------------------------------

    fn check_open(&self) -> Result<(), CommandError> {
        if matches!(self.phase, Phase::Closed) {
            Err(CommandError::Closed)
        } else {
            Ok(())
        }
    }

    /// Takes the next sequence if the outbox has room for `bytes`.
    fn reserve(&mut self, bytes: usize) -> Result<u64, CommandError> {
        // Receivers detect duplicates within SEQ_WINDOW: never let the
        // oldest unconfirmed message fall that far behind.
        let window_full = self
            .outbox
            .first_seq()
            .is_some_and(|first| self.next_seq - first >= frame::SEQ_WINDOW);
        if self.outbox.len() >= self.config.outbox_items_max
            || self.outbox.bytes() + bytes > self.config.outbox_bytes_max
            || window_full
        {
            return Err(CommandError::OutboxFull {
                items: self.outbox.len(),
                bytes: self.outbox.bytes(),
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(seq)
    }

    fn push_entry(&mut self, seq: u64, frame: Frame, bytes: usize, confirm: bool, data: bool) {
        self.outbox.insert(
            seq,
            Entry {
                frame,
                bytes,
                acked: false,
                confirm,
                data,
            },
        );
    }

    fn send_inner(
        &mut self,
        to: Address,
        payload: Bytes,
        fl: u8,
        correlation: u64,
        timeout_ms: u32,
    ) -> Result<u64, CommandError> {
        self.check_open()?;
        if payload.len() > self.config.message_bytes_max as usize {
            return Err(CommandError::TooLarge {
                len: payload.len(),
                max: self.config.message_bytes_max,
            });
        }
        let names_ok = match &to {
            Address::MemberId(_) | Address::Broadcast => true,
            Address::Member { instance, process } => {
                instance.len() <= frame::NAME_BYTES_MAX && process.len() <= frame::NAME_BYTES_MAX
            }
            Address::Instance(n) | Address::Group(n) | Address::Anycast(n) => {
                n.len() <= frame::NAME_BYTES_MAX
            }
        };
        if !names_ok {
            return Err(CommandError::Invalid("address name too long"));
        }
        let bytes = payload.len() + 64;
        let seq = self.reserve(bytes)?;
        let confirm = fl & flags::CONFIRM != 0;
        let send = Send {
            seq,
            flags: fl,
            to,
            correlation,
            timeout_ms,
            total_len: payload.len() as u32,
            payload,
        };
        self.push_entry(seq, Frame::Send(send), bytes, confirm, true);
        Ok(seq)
    }

    fn event(&mut self, e: ClientEvent) {
        self.outputs.push_back(ClientOutput::Event(e));
    }

    fn write_control(&mut self, f: &Frame) {
        let ok = f.encode(&mut self.control, &self.config.limits).is_ok();
        debug_assert!(ok, "client-built control frame must encode");
        self.last_sent = self.now;
    }

    /// Acknowledges the stream once per batch of input.
    fn queue_delivery_ack(&mut self) {
        if matches!(self.phase, Phase::Ready) && self.delivered_through > self.delivery_acked {
            self.delivery_acked = self.delivered_through;
            self.write_control(&Frame::DeliveryAck(DeliveryAck {
                through: self.delivered_through,
            }));
        }
    }

    /// Control frames, then outbox entries not yet sent on this connection.
    fn build_transmit(&mut self) -> Option<Bytes> {
        let mut out = self.control.split();
        if matches!(self.phase, Phase::Ready) {
            let limits = self.config.limits;
            let chunk = limits.chunk_bytes_max() as usize;
            let mut last = self.sent_through;
            for (seq, e) in self.outbox.after(self.sent_through) {
                if out.len() >= self.config.transmit_batch_bytes {
                    break;
                }
                match &e.frame {
                    Frame::Send(s) if s.payload.len() > chunk => {
                        encode_chunked(s, chunk, &mut out, &limits)
                    }
                    f => {
                        let ok = f.encode(&mut out, &limits).is_ok();
                        debug_assert!(ok, "outbox frame must encode");
                    }
                }
                last = seq;
            }
            if last != self.sent_through {
                self.sent_through = last;
                self.last_sent = self.now;
            }
        }
        if out.is_empty() {
            None
        } else {
            Some(out.freeze())
        }
    }

    /// Abandons the connection; reconnects after a backoff with jitter.
    fn drop_connection(&mut self, reason: String, close: bool) {
        if close {
            self.outputs.push_back(ClientOutput::Close);
        }
        self.read_buf.clear();
        self.control.clear();
        self.partial = None;
        self.attempts = self.attempts.saturating_add(1);
        let base = self
            .config
            .reconnect_min_ms
            .saturating_mul(1u64 << self.attempts.min(16).saturating_sub(1))
            .min(self.config.reconnect_max_ms);
        // Full jitter between half and all of the delay.
        let jitter = if base > 1 {
            self.rng.next_u64() % (base / 2 + 1)
        } else {
            0
        };
        let delay = base - jitter;
        self.phase = Phase::Idle {
            retry_at: self.now.plus_millis(delay),
        };
        self.event(ClientEvent::Disconnected { reason });
    }

    /// Handles one frame; returns false when the connection was dropped.
    fn handle_frame(&mut self, f: Frame) -> bool {
        match (&mut self.phase, f) {
            (Phase::AwaitChallenge { nonce, since }, Frame::Challenge(c)) => {
                let expected = self.config.secret.server_proof(nonce, &c.server_nonce);
                if !proofs_equal(&expected, &c.server_proof) {
                    // A wrong secret here, or a server that is not ours:
                    // tell the application, keep retrying with backoff.
                    self.event(ClientEvent::Rejected {
                        reason: RejectReason::BadSecret,
                        text: "server failed to prove the cluster secret".into(),
                        fatal: false,
                    });
                    self.drop_connection("server failed to prove the cluster secret".into(), true);
                    return false;
                }
                let proof = self.config.secret.client_proof(&c.server_nonce, nonce);
                let since = *since;
                self.write_control(&Frame::Auth(Auth {
                    client_proof: proof,
                }));
                self.phase = Phase::AwaitWelcome { since };
                true
            }
            (Phase::AwaitWelcome { since }, Frame::Welcome(w)) => {
                let since = *since;
                let remaining = w.snapshot_members;
                self.phase = Phase::Snapshot {
                    since,
                    welcome: w,
                    members: Vec::new(),
                };
                if remaining == 0 {
                    self.finish_registration();
                }
                true
            }
            (
                Phase::Snapshot {
                    welcome, members, ..
                },
                Frame::Snapshot(s),
            ) => {
                members.extend(s.members);
                if members.len() as u64 > u64::from(welcome.snapshot_members) {
                    self.drop_connection("snapshot larger than announced".into(), true);
                    return false;
                }
                if members.len() as u64 == u64::from(welcome.snapshot_members) {
                    self.finish_registration();
                }
                true
            }
            (Phase::AwaitWelcome { .. }, Frame::Resumed(r)) => {
                self.phase = Phase::Ready;
                self.attempts = 0;
                // Resend what the server did not receive.
                self.sent_through = r.received_through;
                self.effective_through = self.effective_through.max(r.received_through);
                self.delivery_acked = 0;
                let member_id = self.member_id().unwrap_or(0);
                self.event(ClientEvent::Resumed { member_id });
                true
            }
            (_, Frame::Gap(g)) => {
                self.event(ClientEvent::Gap {
                    from: g.from,
                    through: g.through,
                });
                true
            }
            (_, Frame::Reject(r)) => {
                let fatal = matches!(
                    r.reason,
                    RejectReason::BadSecret
                        | RejectReason::WrongCluster
                        | RejectReason::UnsupportedVersion
                        | RejectReason::Invalid
                );
                if r.reason == RejectReason::SessionUnknown {
                    // Register afresh at once; the outbox is resent.
                    self.session = None;
                    self.outputs.push_back(ClientOutput::Close);
                    self.read_buf.clear();
                    self.control.clear();
                    self.phase = Phase::Idle { retry_at: self.now };
                    return false;
                }
                self.event(ClientEvent::Rejected {
                    reason: r.reason,
                    text: r.text,
                    fatal,
                });
                if fatal {
                    self.outputs.push_back(ClientOutput::Close);
                    self.phase = Phase::Closed;
                    self.event(ClientEvent::Closed);
                } else {
                    self.drop_connection("handshake refused".into(), true);
                }
                false
            }
            (Phase::Ready, f) => self.stream_frame(f),
            (_, Frame::Ping(n)) => {
                self.write_control(&Frame::Pong(n));
                true
            }
            (_, Frame::Pong(_)) => true,
            (_, other) => {
                let reason = format!("unexpected {} during the handshake", other.name());
                self.drop_connection(reason, true);
                false
            }
        }
    }

    fn finish_registration(&mut self) {
        let Phase::Snapshot {
            welcome, members, ..
        } = std::mem::replace(&mut self.phase, Phase::Ready)
        else {
            return;
        };
        self.attempts = 0;
        let session_lost = self.had_session;
        self.had_session = true;
        self.session = Some(Session {
            member_id: welcome.member_id,
            server_incarnation: welcome.server_incarnation,
        });
        // Never send frames larger than the server accepts.
        let frame_max = welcome
            .frame_bytes_max
            .min(self.config.limits.frame_bytes_max);
        self.config.limits = frame::Limits::with_frame_bytes_max(frame_max);
        self.heartbeat_interval_ms = u64::from(welcome.heartbeat_interval_ms.max(1));
        self.heartbeat_timeout_ms = u64::from(welcome.heartbeat_timeout_ms.max(1));
        self.delivered_through = welcome.position;
        self.delivery_acked = welcome.position;
        self.epoch = welcome.epoch;
        self.view = members.iter().map(|m| (m.member_id, m.clone())).collect();
        // The registration carried groups and subscriptions; resend data.
        self.outbox.drop_state_entries(self.hello_seq);
        self.effective_through = self.hello_seq;
        self.outbox.clear_acks();
        self.sent_through = 0;
        self.event(ClientEvent::Registered {
            member_id: welcome.member_id,
            epoch: welcome.epoch,
            position: welcome.position,
            view: members,
            session_lost,
        });
    }

    /// A frame of the registered stream.
    fn stream_frame(&mut self, f: Frame) -> bool {
        match f {
            Frame::Deliver(d) => {
                if d.flags & flags::MORE != 0 {
                    if self.partial.is_some() || d.total_len > self.config.message_bytes_max {
                        self.drop_connection("bad chunked delivery".into(), true);
                        return false;
                    }
                    // Grow with the pieces, never by the declared length.
                    let mut buf = BytesMut::with_capacity(d.payload.len());
                    buf.put_slice(&d.payload);
                    self.partial = Some(PartialIn { head: d, buf });
                    return true;
                }
                self.deliver(d);
            }
            Frame::Chunk(c) => return self.chunk(c),
            Frame::Notify(n) => {
                if !self.advance(n.gseq) {
                    return true;
                }
                self.epoch = n.epoch;
                self.apply_view(&n.event);
                if n.origin_incarnation != 0
                    && !self.dedup.admit(n.origin_incarnation, n.origin_seq)
                {
                    return true;
                }
                let handlers: Vec<u32> = self
                    .subscriptions
                    .iter()
                    .filter(|(_, f)| f.matches(&n.event))
                    .map(|(id, _)| *id)
                    .collect();
                self.event(ClientEvent::Event {
                    gseq: n.gseq,
                    epoch: n.epoch,
                    event: n.event,
                    handlers,
                });
            }
            Frame::Ack(a) => {
                self.effective_through = self.effective_through.max(a.through);
                let mut acked = std::mem::take(&mut self.scratch);
                acked.clear();
                self.outbox.ack_through(a.through, &mut acked);
                for seq in acked.drain(..) {
                    self.event(ClientEvent::Acked { seq });
                }
                self.scratch = acked;
                self.outbox.release_stable(a.stable_through);
            }
            Frame::Nack(n) => {
                if !self.advance(n.gseq) {
                    return true;
                }
                // Only the first final status counts: a server may re-issue
                // one after the session was lost and registered again.
                if self.outbox.remove(n.seq).is_none() {
                    return true;
                }
                if self.requests.remove(&n.seq).is_some() {
                    self.event(ClientEvent::RequestFailed {
                        request: n.seq,
                        error: RequestError::Nacked(n.reason),
                    });
                }
                self.event(ClientEvent::Nacked {
                    seq: n.seq,
                    reason: n.reason,
                });
            }
            Frame::Outcome(o) => {
                if !self.advance(o.gseq) {
                    return true;
                }
                if self.outbox.remove(o.seq).is_none() {
                    return true;
                }
                if !o.missed.is_empty() && self.requests.remove(&o.seq).is_some() {
                    self.event(ClientEvent::RequestFailed {
                        request: o.seq,
                        error: RequestError::PartnerGone,
                    });
                }
                self.event(ClientEvent::Outcome {
                    seq: o.seq,
                    delivered: o.delivered,
                    missed: o.missed,
                });
            }
            Frame::Ping(n) => self.write_control(&Frame::Pong(n)),
            Frame::Pong(_) => {}
            Frame::Goodbye(_) | Frame::Error(_) => {
                self.drop_connection("server closed the session".into(), true);
                return false;
            }
            other => {
                let reason = format!("unexpected {} from server", other.name());
                self.drop_connection(reason, true);
                return false;
            }
        }
        true
    }

    /// Moves the stream position; false for a replayed position.
    fn advance(&mut self, gseq: u64) -> bool {
        if gseq <= self.delivered_through {
            return false;
        }
        let before = self.delivered_through;
        self.delivered_through = gseq;
        debug_assert!(
            self.delivered_through > before,
            "stream position only grows"
        );
        true
    }

    fn chunk(&mut self, c: Chunk) -> bool {
        let ok = self.partial.as_ref().is_some_and(|p| {
            p.head.gseq == c.id
                && p.buf.len() as u64 == u64::from(c.offset)
                && p.buf.len() as u64 + c.payload.len() as u64 <= u64::from(p.head.total_len)
        });
        if !ok {
            self.drop_connection("chunk out of order".into(), true);
            return false;
        }
        let Some(p) = self.partial.as_mut() else {
            return false;
        };
        p.buf.put_slice(&c.payload);
        if p.buf.len() as u64 == u64::from(p.head.total_len) {
            if let Some(p) = self.partial.take() {
                let mut d = p.head;
                d.payload = p.buf.freeze();
                d.flags &= !flags::MORE;
                self.deliver(d);
            }
        }
        true
    }

    fn deliver(&mut self, d: Deliver) {
        if !self.advance(d.gseq) {
            return;
        }
        if !self.dedup.admit(d.from_incarnation, d.seq)
            && self.config.mutation != crate::mutation::Mutation::ClientSkipDedup
        {
            return;
        }
        let message = Message {
            gseq: d.gseq,
            from: d.from,
            from_incarnation: d.from_incarnation,
            seq: d.seq,
            flags: d.flags,
            to: d.to,
            correlation: d.correlation,
            payload: d.payload,
        };
        if message.flags & flags::REPLY != 0 && self.requests.remove(&message.correlation).is_some()
        {
            self.event(ClientEvent::Reply {
                request: message.correlation,
                message,
            });
            return;
        }
        self.event(ClientEvent::Message(message));
    }

    /// Keeps the local view in step with the stream.
    fn apply_view(&mut self, e: &ClusterEvent) {
        match e {
            ClusterEvent::MemberJoined(m) => {
                self.view.insert(m.member_id, m.clone());
            }
            ClusterEvent::MemberLeft { member_id }
            | ClusterEvent::MemberFailed { member_id, .. } => {
                if let Some(m) = self.view.remove(member_id) {
                    if matches!(e, ClusterEvent::MemberLeft { .. }) {
                        self.dedup.forget(m.incarnation);
                    }
                }
                let gone: Vec<u64> = self
                    .requests
                    .iter()
                    .filter(|(_, p)| p.target == Some(*member_id))
                    .map(|(c, _)| *c)
                    .collect();
                for corr in gone {
                    self.requests.remove(&corr);
                    self.event(ClientEvent::RequestFailed {
                        request: corr,
                        error: RequestError::PartnerGone,
                    });
                }
            }
            ClusterEvent::GroupJoined { member_id, group } => {
                if let Some(m) = self.view.get_mut(member_id) {
                    if let Err(pos) = m.groups.binary_search(group) {
                        m.groups.insert(pos, group.clone());
                    }
                }
            }
            ClusterEvent::GroupLeft { member_id, group } => {
                if let Some(m) = self.view.get_mut(member_id) {
                    m.groups.retain(|g| g != group);
                }
            }
            ClusterEvent::ServiceState {
                member_id,
                service,
                up,
            } => {
                if let Some(m) = self.view.get_mut(member_id) {
                    m.services.retain(|s| s != service);
                    if *up {
                        m.services.push(service.clone());
                        m.services.sort();
                    }
                }
            }
            ClusterEvent::Load { member_id, load } => {
                if let Some(m) = self.view.get_mut(member_id) {
                    m.load = *load;
                }
            }
            _ => {}
        }
    }
}

/// Encodes a large `Send` as a first frame with `MORE` and `Chunk`s.
fn encode_chunked(s: &Send, chunk: usize, out: &mut BytesMut, limits: &frame::Limits) {
    let mut head = s.clone();
    head.flags |= flags::MORE;
    head.payload = s.payload.slice(..chunk);
    let ok = Frame::Send(head).encode(out, limits).is_ok();
    debug_assert!(ok);
    let mut offset = chunk;
    while offset < s.payload.len() {
        let end = (offset + chunk).min(s.payload.len());
        let ok = Frame::Chunk(Chunk {
            id: s.seq,
            offset: offset as u32,
            payload: s.payload.slice(offset..end),
        })
        .encode(out, limits)
        .is_ok();
        debug_assert!(ok);
        offset = end;
    }
}
