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

//! # Layout
//! * `config`, `types`: settings and the public input/output types.
//! * `link`: the connection: handshake phase, buffers, heartbeats, backoff.
//! * `handshake`: hello or resume, challenge-response, welcome, rejects.
//! * `outgoing` (with `outbox`): sequences and the outbox until final.
//! * `incoming` (with `inbox`): stream position, reassembly, duplicates.
//! * `taking`: what the application took, for `Taken` reports.
//! * `stream`: the registered stream's frames: deliveries, events, acks,
//!   NACKs and outcomes.
//! * `view`, `local`, `requests`: the view, the member's own registration
//!   state, requests waiting for replies.
//! * `commands`: the application's commands.

mod commands;
mod config;
mod handshake;
mod inbox;
mod incoming;
mod link;
mod local;
mod outbox;
mod outgoing;
mod requests;
mod stream;
mod taking;
mod types;
mod view;

pub use config::ClientConfig;
pub use types::{
    ClientEvent, ClientOutput, CommandError, Message, ReplyTo, RequestError, SendOptions,
};

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use rand::RngCore;

use crate::frame::{self, ErrorCode, Frame, MemberInfo};
use crate::time::{earliest, Tick};
use incoming::Incoming;
use link::{Link, Phase};
use local::Local;
use outgoing::Outgoing;
use requests::Requests;
use view::View;

/// The session with the current server incarnation.
#[derive(Debug, Clone, Copy)]
struct Session {
    member_id: u64,
    server_incarnation: u64,
    /// Derived at registration, never sent; proves a `Resume`.
    key: crate::auth::SessionKey,
}

/// The member client state machine. See the module docs.
pub struct Client {
    config: ClientConfig,
    rng: Box<dyn RngCore + std::marker::Send>,
    now: Tick,
    /// The connection: phase, buffers, heartbeats, backoff.
    link: Link,
    session: Option<Session>,
    /// A session existed before this registration attempt.
    had_session: bool,
    /// Sequenced commands until final.
    out: Outgoing,
    /// The incoming stream.
    incoming: Incoming,
    taking: taking::Taking,
    view: View,
    local: Local,
    requests: Requests,
    outputs: VecDeque<ClientOutput>,
    /// Reused list of member ids or request ids.
    scratch: Vec<u64>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("instance", &self.config.instance)
            .field("process", &self.config.process)
            .field("phase", &self.link.phase)
            .field("member_id", &self.member_id())
            .field("outbox", &self.out.len())
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
        let link = Link::new(
            now,
            u64::from(config.heartbeat_interval_ms),
            u64::from(config.heartbeat_timeout_ms),
        );
        Client {
            incoming: Incoming::new(config.dedup_senders_max),
            taking: taking::Taking::default(),
            local: Local::new(&config),
            config,
            rng,
            now,
            link,
            session: None,
            had_session: false,
            out: Outgoing::default(),
            view: View::default(),
            requests: Requests::default(),
            outputs: VecDeque::new(),
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
        self.link.is_ready()
    }

    /// True after goodbye or a fatal reject.
    pub fn is_closed(&self) -> bool {
        matches!(self.link.phase, Phase::Closed)
    }

    /// The current view, as this member knows it from its stream.
    pub fn view(&self) -> &BTreeMap<u64, MemberInfo> {
        &self.view.members
    }

    /// The view epoch.
    pub fn epoch(&self) -> u64 {
        self.view.epoch
    }

    /// Messages kept until final.
    pub fn outbox_len(&self) -> usize {
        self.out.len()
    }

    /// The sequence given to the most recent sequenced command (0 before
    /// the first).
    pub fn last_seq(&self) -> u64 {
        self.out.last_seq()
    }

    /// Highest sequence whose effect the server has: covered by an `Ack`,
    /// by a resume, or by the state a registration carried (groups,
    /// subscriptions, services, load).
    pub fn effective_through(&self) -> u64 {
        self.out.effective_through()
    }

    /// The stable watermark of the current session: the `stable_through`
    /// of the latest `Ack` (every `seq` at or below it is final at every
    /// addressee in this server run, so the client forgets it unless it
    /// waits for an `Outcome`); 0 after a registration until the first
    /// `Ack`.
    pub fn stable_through(&self) -> u64 {
        self.out.stable_through()
    }

    /// Highest stream position received.
    pub fn delivered_through(&self) -> u64 {
        self.incoming.delivered_through()
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    // ----- driver inputs -------------------------------------------------

    /// The connection asked for by `Connect` is open.
    pub fn handle_connected(&mut self, now: Tick) {
        self.now = now;
        if !matches!(self.link.phase, Phase::Connecting { .. }) {
            return;
        }
        self.start_handshake();
    }

    /// Bytes arrived on the connection.
    pub fn handle_bytes(&mut self, now: Tick, data: &[u8]) {
        self.now = now;
        if matches!(
            self.link.phase,
            Phase::Idle { .. } | Phase::Closed | Phase::Connecting { .. }
        ) {
            return;
        }
        self.link.last_heard = now;
        self.link.read_buf.extend_from_slice(data);
        let limits = self.config.limits;
        loop {
            match frame::decode(&mut self.link.read_buf, &limits) {
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
        match self.link.phase {
            Phase::Idle { .. } | Phase::Closed => {}
            _ => self.drop_connection("connection closed".into(), false),
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Tick) {
        self.now = now;
        match self.link.phase {
            Phase::Idle { retry_at } if now >= retry_at => {
                self.link.phase = Phase::Connecting { since: now };
                self.outputs.push_back(ClientOutput::Connect);
            }
            Phase::Connecting { since }
            | Phase::AwaitChallenge { since, .. }
            | Phase::AwaitWelcome { since, .. }
            | Phase::Snapshot { since, .. }
                if now.millis_since(since) >= self.config.handshake_timeout_ms =>
            {
                self.drop_connection("handshake timed out".into(), true);
            }
            Phase::Ready => {
                if now.millis_since(self.link.last_heard) >= self.link.heartbeat_timeout_ms {
                    self.drop_connection("server silent past the heartbeat timeout".into(), true);
                } else if now.millis_since(self.link.last_sent) >= self.link.heartbeat_interval_ms {
                    self.write_control(&Frame::Ping(now.as_micros()));
                }
            }
            _ => {}
        }
        while let Some(request) = self.requests.pop_expired(now) {
            self.event(ClientEvent::RequestFailed {
                request,
                error: RequestError::TimedOut,
            });
        }
    }

    /// The application has taken `taken` messages in all (counting every
    /// [`ClientEvent::Message`] and [`ClientEvent::Reply`] output so far
    /// that it took or that the driver disposed of). Only with
    /// [`ClientConfig::report_taken`]; the server learns of it in a `Taken`
    /// frame.
    pub fn taken(&mut self, now: Tick, taken: u64) {
        self.now = now;
        if !self.config.report_taken {
            return;
        }
        self.taking.took(taken);
        self.queue_taken();
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
        earliest(
            self.link.deadline(self.config.handshake_timeout_ms),
            self.requests.next_deadline(),
        )
    }

    // ----- internals ----------------------------------------------------

    fn event(&mut self, e: ClientEvent) {
        self.outputs.push_back(ClientOutput::Event(e));
    }

    fn write_control(&mut self, f: &Frame) {
        self.link.write_control(f, &self.config.limits, self.now);
    }

    /// Acknowledges the stream once per batch of input.
    fn queue_delivery_ack(&mut self) {
        if !self.link.is_ready() {
            return;
        }
        if let Some(through) = self.incoming.take_ack() {
            self.write_control(&Frame::DeliveryAck(frame::DeliveryAck { through }));
        }
        if self.config.report_taken {
            self.taking.reached(self.incoming.delivered_through());
            self.queue_taken();
        }
    }

    /// Reports the taken position when it moved.
    fn queue_taken(&mut self) {
        if !self.link.is_ready() {
            return;
        }
        if let Some(through) = self.taking.take_report() {
            self.write_control(&Frame::Taken(frame::Taken { through }));
        }
    }

    /// Control frames, then outbox entries not yet sent on this connection.
    fn build_transmit(&mut self) -> Option<Bytes> {
        let mut out = self.link.control.split();
        if self.link.is_ready() {
            let batch = self.config.transmit_batch_bytes;
            if self.out.encode_unsent(&mut out, &self.config.limits, batch) {
                self.link.last_sent = self.now;
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
        self.drop_connection_with(reason, close, None);
    }

    /// [`drop_connection`](Self::drop_connection), closed by the server's
    /// `Error` frame with `code`.
    fn drop_connection_with(&mut self, reason: String, close: bool, code: Option<ErrorCode>) {
        if close {
            self.outputs.push_back(ClientOutput::Close);
        }
        self.link.clear_buffers();
        self.incoming.drop_partial();
        let delay = self.link.backoff_ms(
            self.config.reconnect_min_ms,
            self.config.reconnect_max_ms,
            &mut *self.rng,
        );
        self.link.phase = Phase::Idle {
            retry_at: self.now.plus_millis(delay),
        };
        self.event(ClientEvent::Disconnected { reason, code });
    }
}
