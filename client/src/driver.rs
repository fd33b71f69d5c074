//! The member's driver task: owns the core `Client`, its connection and
//! the tables of pending acks and requests.
//!
//! Loop: take one input (bytes or a connect result from the socket, a
//! command, a control, a timer, room on an event sink), hand it to the
//! client, drain `poll_output` (connect, transmit, close, events), re-arm
//! the timer from `poll_timeout`.
//!
//! Why one file over 800 lines: everything here is the one task's private
//! state (the link, the waiter tables, the event sinks and their lag
//! counts) and the methods that change it; the commands and the handle
//! live in `lib.rs`, the stream types in `events.rs`. The next split is the
//! event sinks (main stream and subscriptions with their lag notices) into
//! a type of their own.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use switchboard_core::client::{Client, ClientEvent, ClientOutput, CommandError, SendOptions};
use switchboard_core::frame::Address;
use switchboard_core::time::Tick;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::events::{message_count, ConnectionState, Event, Notification, SubItem, Taken};
use super::{
    Command, Control, Error, MemberConfig, Message, Outcome, SendWait, StatsCell, SubSink,
};
use switchboard_runtime::clock::{sleep_until, Clock};
use switchboard_runtime::io::{write_loop, READ_BYTES, SHUTDOWN_WRITE_TIMEOUT};
use switchboard_runtime::net::Connector;
use switchboard_tally::Tally;

/// Transmits queued for the writer at most. The core's outbox bounds what
/// it hands over; a queue that still fills means a dead connection.
const WRITE_QUEUE_MAX: usize = 1024;

/// Commands taken from the queue per wake-up at most: a burst of posts is
/// handed to the core in one go and leaves in one transmit.
const COMMAND_BATCH_MAX: usize = 256;

type ConnectFuture<C> = Pin<
    Box<
        dyn Future<Output = std::io::Result<(<C as Connector>::Read, <C as Connector>::Write)>>
            + Send,
    >,
>;

enum Link<C: Connector> {
    Down,
    Connecting(ConnectFuture<C>),
    Up {
        rd: C::Read,
        wr: mpsc::Sender<Bytes>,
        writer: JoinHandle<()>,
    },
}

enum LinkEvent<C: Connector> {
    Connected(C::Read, C::Write),
    ConnectFailed(std::io::Error),
    /// A read failed; a TLS alert is one way.
    ReadFailed(std::io::Error),
    Data(usize),
    Eof,
}

/// At most one WARN per this long about a full event stream or
/// subscription.
const LAG_WARN_EVERY: Duration = Duration::from_secs(10);

type Permit<T> = Result<mpsc::OwnedPermit<T>, mpsc::error::SendError<()>>;

/// Room on a lagging subscription.
type SubRoom = Pin<Box<dyn Future<Output = Permit<SubItem>> + Send>>;

/// Who waits for a sequenced command's fate.
enum Waiter {
    /// Data (send, reply, publish): the ack.
    Ack(oneshot::Sender<Result<u64, Error>>),
    /// A confirmed send: the outcome.
    Outcome(oneshot::Sender<Result<Outcome, Error>>),
}

/// A state change (join, leave, subscribe, unsubscribe) waiting for the
/// server to apply it.
struct Applied {
    /// Its sequence.
    seq: u64,
    /// Who waits.
    reply: oneshot::Sender<Result<u32, Error>>,
    /// What the caller gets (a subscription id, or 0).
    value: u32,
    /// True when `seq` is this change's own frame, which the server may
    /// refuse (a `Join` its credential does not permit): a `Nack` of it
    /// answers the caller with the error.
    refusable: bool,
}

/// The driver's ends of the channels to the member's handles.
pub(crate) struct Channels {
    pub commands: mpsc::Receiver<Command>,
    pub control: mpsc::Receiver<Control>,
    pub events: mpsc::Sender<Event>,
    pub state: watch::Sender<ConnectionState>,
    pub tally: Arc<Tally>,
    pub stats: Arc<StatsCell>,
    pub taken: Arc<Taken>,
}

struct Driver<C: Connector> {
    config: MemberConfig,
    net: C,
    client: Client,
    clock: Clock,
    link: Link<C>,
    read_buf: Vec<u8>,
    commands: mpsc::Receiver<Command>,
    /// Commands taken in one wake-up, executed in order.
    batch: Vec<Command>,
    control: mpsc::Receiver<Control>,
    events: mpsc::Sender<Event>,
    state: watch::Sender<ConnectionState>,
    tally: Arc<Tally>,
    stats: Arc<StatsCell>,
    /// Messages the application took from its stream.
    taken: Arc<Taken>,
    /// Messages handed over by the core that never reach the stream: a
    /// reply resolving its request, a message for a dropped stream. With
    /// `taken`, what the core is told was taken.
    disposed: u64,
    /// Cluster events dropped from the main stream since the last
    /// [`Event::Lagged`] notice went out (or was queued in `pending`).
    main_lagged: u64,
    /// When a lag or stall was last logged.
    lag_warned: Option<Instant>,
    /// Posted messages acked / refused since the tally was last told.
    posted_acked: u64,
    posted_refused: u64,
    /// Ordered maps, so that closing fails them in a fixed order.
    waiters: BTreeMap<u64, Waiter>,
    /// Joins, leaves, subscribes and unsubscribes waiting for the server to
    /// apply them: (sequence, reply, value), in sequence order.
    applied: VecDeque<Applied>,
    /// Sequences of posted messages not yet acked or refused, increasing
    /// (no waiter each: the tally counts them).
    posted: VecDeque<u64>,
    requests: BTreeMap<u64, oneshot::Sender<Result<super::Message, Error>>>,
    subs: HashMap<u32, SubSink>,
    /// Main-stream events that may not be dropped (messages, requests,
    /// connection changes, lag notices), waiting for room; while any wait,
    /// the socket is not read (so this is bounded by what one read
    /// produces). Subscriptions never wait: they lag.
    pending: VecDeque<Event>,
    /// Commands the core refused for lack of outbox room (the first) and
    /// those taken after it; retried in order after every input, and no
    /// further command is taken meanwhile. At most one batch long.
    stalled: VecDeque<Command>,
    /// A goodbye waiting for a connection, with its deadline.
    goodbye: Option<(Option<oneshot::Sender<()>>, Tick)>,
    /// Writers of closed connections, still flushing.
    flushing: Vec<JoinHandle<()>>,
    closed: Option<String>,
    commands_open: bool,
    control_open: bool,
    /// The next read is the first on the current connection.
    first_read: bool,
}

pub(crate) async fn run<C: Connector>(config: MemberConfig, ch: Channels, net: C) {
    let clock = Clock::new();
    let client = Client::new(config.core.clone(), net.rng(), clock.now());
    let mut d = Driver {
        config,
        net,
        client,
        clock,
        link: Link::Down,
        read_buf: vec![0; READ_BYTES],
        commands: ch.commands,
        batch: Vec::with_capacity(COMMAND_BATCH_MAX),
        control: ch.control,
        events: ch.events,
        state: ch.state,
        tally: ch.tally,
        stats: ch.stats,
        taken: ch.taken,
        disposed: 0,
        main_lagged: 0,
        lag_warned: None,
        posted_acked: 0,
        posted_refused: 0,
        waiters: BTreeMap::new(),
        applied: VecDeque::new(),
        posted: VecDeque::new(),
        requests: BTreeMap::new(),
        subs: HashMap::new(),
        pending: VecDeque::new(),
        stalled: VecDeque::new(),
        goodbye: None,
        flushing: Vec::new(),
        closed: None,
        commands_open: true,
        control_open: true,
        first_read: false,
    };
    d.after_input();
    d.run().await;
}

async fn next_link_event<C: Connector>(
    link: &mut Link<C>,
    buf: &mut [u8],
    paused: bool,
) -> LinkEvent<C> {
    match link {
        Link::Down => std::future::pending().await,
        Link::Connecting(f) => match f.as_mut().await {
            Ok((rd, wr)) => LinkEvent::Connected(rd, wr),
            Err(e) => LinkEvent::ConnectFailed(e),
        },
        Link::Up { .. } if paused => std::future::pending().await,
        Link::Up { rd, .. } => match rd.read(buf).await {
            Ok(0) => LinkEvent::Eof,
            Err(e) => LinkEvent::ReadFailed(e),
            Ok(n) => LinkEvent::Data(n),
        },
    }
}

impl<C: Connector> Driver<C> {
    async fn run(mut self) {
        while self.closed.is_none() {
            let timer = switchboard_core::time::earliest(
                self.client.poll_timeout(),
                self.goodbye.as_ref().map(|(_, t)| *t),
            );
            let waiting = !self.pending.is_empty();
            let paused = waiting || self.frozen_by_subscription();
            let reserve = waiting.then(|| self.events.clone().reserve_owned());
            // A lag notice waiting for room (nothing else is queued).
            let main_lag =
                (!waiting && self.main_lagged > 0).then(|| self.events.clone().reserve_owned());
            let sub_lag = self.lagging_sub();
            let has_sub_lag = sub_lag.is_some();
            let take_commands =
                self.commands_open && self.stalled.is_empty() && self.goodbye.is_none();
            tokio::select! {
                biased;
                ctl = self.control.recv(), if self.control_open => match ctl {
                    Some(c) => self.on_control(c),
                    // Every handle is gone: say goodbye.
                    None => {
                        self.control_open = false;
                        self.start_goodbye(None);
                    }
                },
                ev = next_link_event(&mut self.link, &mut self.read_buf, paused) => {
                    self.on_link(ev);
                }
                Some(r) = async move {
                    match reserve {
                        Some(f) => Some(f.await),
                        None => None,
                    }
                }, if waiting => self.on_reserved(r),
                Some(r) = async move {
                    match main_lag {
                        Some(f) => Some(f.await),
                        None => None,
                    }
                }, if !waiting && self.main_lagged > 0 => self.on_main_lag_room(r),
                Some((id, r)) = async move {
                    match sub_lag {
                        Some((id, f)) => Some((id, f.await)),
                        None => None,
                    }
                }, if has_sub_lag => self.on_sub_lag_room(id, r),
                n = self.commands.recv_many(&mut self.batch, COMMAND_BATCH_MAX), if take_commands => {
                    if n == 0 {
                        self.commands_open = false;
                        self.start_goodbye(None);
                    } else {
                        self.exec_batch();
                    }
                }
                _ = sleep_until(self.clock, timer) => {
                    self.client.handle_timeout(self.clock.now());
                }
                // The application took messages: reported below.
                _ = self.taken.wake.notified() => {}
            }
            self.after_input();
        }
        self.finish().await;
    }

    /// Drains the client, retries a stalled command, and says a pending
    /// goodbye once it can.
    fn after_input(&mut self) {
        let taken = self.taken.count.load(Ordering::Relaxed) + self.disposed;
        self.client.taken(self.clock.now(), taken);
        self.drain();
        if !self.stalled.is_empty() {
            let stalled = std::mem::take(&mut self.stalled);
            for c in stalled {
                self.exec_or_stall(c);
            }
            self.drain();
        }
        self.tally
            .settle(self.posted_acked, std::mem::take(&mut self.posted_refused));
        self.posted_acked = 0;
        self.answer_applied();
        if let Some((_, deadline)) = &self.goodbye {
            if self.client.is_ready() || self.clock.now() >= *deadline || self.client.is_closed() {
                if !self.client.is_closed() {
                    self.client.goodbye(self.clock.now());
                    self.drain();
                }
                self.closed.get_or_insert_with(|| "goodbye".to_owned());
            }
        }
    }

    fn drain(&mut self) {
        loop {
            let mut broken = false;
            while let Some(o) = self.client.poll_output() {
                match o {
                    ClientOutput::Connect => {
                        let addr = self.config.server.clone();
                        self.link = Link::Connecting(Box::pin(self.net.connect(addr)));
                        self.set_state(ConnectionState::Connecting);
                    }
                    ClientOutput::Transmit(data) => {
                        if let Link::Up { wr, .. } = &self.link {
                            if let Err(e) = wr.try_send(data) {
                                if matches!(e, TrySendError::Full(_)) {
                                    tracing::warn!("write queue full; dropping the connection");
                                }
                                broken = true;
                            }
                        }
                    }
                    ClientOutput::Close => self.close_link(false),
                    ClientOutput::Event(e) => self.on_client_event(e),
                }
            }
            if !broken {
                return;
            }
            self.close_link(true);
            self.client.handle_closed(self.clock.now());
        }
    }

    /// Forgets the connection. A graceful close lets the writer flush what
    /// is queued; an abrupt one stops it at once.
    fn close_link(&mut self, abrupt: bool) {
        if let Link::Up { writer, .. } = std::mem::replace(&mut self.link, Link::Down) {
            if abrupt {
                writer.abort();
            } else {
                self.flushing.retain(|h| !h.is_finished());
                self.flushing.push(writer);
            }
        }
    }

    /// A TLS handshake failed or the server refused the member's
    /// certificate: the member's state says why (it retries).
    fn tls_failed(&mut self, reason: String) {
        tracing::warn!(server = %self.config.server, "TLS failed: {reason}");
        self.drain();
        self.set_state(ConnectionState::TlsFailed { reason });
    }

    /// A TLS connection closed before the server's first byte. With TLS
    /// 1.3 the member's handshake is over before the server has judged
    /// it, so a server that refuses the connection at once (its access
    /// rules, its handshake limits, a cool-down) looks like this. Some of
    /// those pass, so it is a disconnect with that reason, retried, not a
    /// TLS failure.
    fn closed_after_tls(&mut self, e: &std::io::Error) {
        self.drain();
        self.set_state(ConnectionState::Disconnected {
            reason: format!(
                "the server closed the connection right after the TLS handshake, before \
                 answering ({e}): it may refuse this address (access rules) or be at its \
                 handshake limits; see its log"
            ),
        });
    }

    fn on_link(&mut self, ev: LinkEvent<C>) {
        let now = self.clock.now();
        match ev {
            LinkEvent::Connected(rd, wr_half) => {
                let (wr, rx) = mpsc::channel(WRITE_QUEUE_MAX);
                let writer = tokio::spawn(async move {
                    if let Err(e) = write_loop(wr_half, rx).await {
                        tracing::debug!(error = %e, "member write failed");
                    }
                });
                self.link = Link::Up { rd, wr, writer };
                self.first_read = true;
                self.client.handle_connected(now);
            }
            LinkEvent::ConnectFailed(e) => {
                tracing::debug!(server = %self.config.server, error = %e, "connect failed");
                self.link = Link::Down;
                self.client.handle_closed(now);
                if let Some(f) = switchboard_runtime::tls::tls_failure(&e) {
                    self.tls_failed(f);
                }
            }
            LinkEvent::ReadFailed(e) => {
                let first = std::mem::take(&mut self.first_read);
                self.close_link(false);
                self.client.handle_closed(now);
                if let Some(f) = switchboard_runtime::tls::tls_failure(&e) {
                    self.tls_failed(f);
                } else if first && self.config.tls.is_some() {
                    self.closed_after_tls(&e);
                }
            }
            LinkEvent::Data(n) => {
                let n = n.min(self.read_buf.len());
                if std::mem::take(&mut self.first_read)
                    && self.config.tls.is_none()
                    && switchboard_runtime::tls::looks_like_tls(&self.read_buf[..n])
                {
                    // A TLS record where a frame should be: this port
                    // speaks TLS and the member does not.
                    self.close_link(true);
                    self.client.handle_closed(now);
                    self.tls_failed(
                        "the server answered with TLS: this port needs a member with TLS settings"
                            .to_owned(),
                    );
                    return;
                }
                self.client.handle_bytes(now, &self.read_buf[..n]);
            }
            LinkEvent::Eof if std::mem::take(&mut self.first_read) && self.config.tls.is_some() => {
                self.close_link(false);
                self.client.handle_closed(now);
                self.closed_after_tls(&std::io::ErrorKind::UnexpectedEof.into());
            }
            LinkEvent::Eof => {
                self.close_link(false);
                self.client.handle_closed(now);
            }
        }
    }

    fn on_control(&mut self, c: Control) {
        match c {
            Control::Goodbye(reply) => self.start_goodbye(Some(reply)),
            Control::Kill => {
                self.close_link(true);
                self.closed = Some("killed".to_owned());
            }
            Control::DropConnection => {
                if !matches!(self.link, Link::Down) {
                    self.close_link(true);
                    self.client.handle_closed(self.clock.now());
                }
            }
        }
    }

    fn start_goodbye(&mut self, reply: Option<oneshot::Sender<()>>) {
        match &mut self.goodbye {
            Some((r, _)) => {
                if r.is_none() {
                    *r = reply;
                }
            }
            None => {
                let wait_ms =
                    u64::try_from(self.config.goodbye_timeout.as_millis()).unwrap_or(u64::MAX);
                self.goodbye = Some((reply, self.clock.now().plus_millis(wait_ms)));
            }
        }
        for c in std::mem::take(&mut self.stalled) {
            self.fail_command(c, Error::Closed);
        }
    }

    /// Executes the commands taken in one wake-up, in order.
    fn exec_batch(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        for c in batch.drain(..) {
            self.exec_or_stall(c);
        }
        self.batch = batch;
    }

    /// Executes a command, or queues it behind an earlier stalled one.
    fn exec_or_stall(&mut self, c: Command) {
        if self.stalled.is_empty() {
            self.exec(c);
        } else {
            self.stalled.push_back(c);
        }
    }

    /// True when a message of `payload_len` bytes must wait for outbox
    /// room (a closed client takes it and refuses it at once).
    fn must_wait(&self, payload_len: usize) -> bool {
        !self.client.is_closed() && !self.client.has_outbox_room(payload_len)
    }

    /// Sends one posted message, or hands it back untouched when the
    /// outbox has no room for it yet (moved, never copied: a name in its
    /// address is not cloned per message).
    fn post_now(&mut self, to: Address, payload: Bytes, now: Tick) -> Option<(Address, Bytes)> {
        if self.must_wait(payload.len()) {
            return Some((to, payload));
        }
        match self
            .client
            .send(now, to, payload, SendOptions { confirm: false })
        {
            Ok(seq) => {
                debug_assert!(self.posted.back().is_none_or(|b| *b < seq));
                self.posted.push_back(seq);
            }
            Err(e) => {
                debug_assert!(
                    !matches!(e, CommandError::OutboxFull { .. }),
                    "room was checked"
                );
                tracing::debug!(error = %e, "posted message refused");
                self.posted_refused += 1;
            }
        }
        None
    }

    /// Runs a command against the client; keeps it as `stalled` when the
    /// outbox has no room.
    fn exec(&mut self, c: Command) {
        let now = self.clock.now();
        let stall = |e: &CommandError| {
            matches!(
                e,
                CommandError::OutboxFull { .. } | CommandError::TooManyRequests(_)
            )
        };
        match c {
            Command::Post { to, payload } => {
                if let Some((to, payload)) = self.post_now(to, payload, now) {
                    self.stalled.push_back(Command::Post { to, payload });
                }
            }
            Command::PostMany(mut batch) => {
                while let Some((to, payload)) = batch.pop_front() {
                    if let Some(kept) = self.post_now(to, payload, now) {
                        // The rest waits, in order, for outbox room.
                        batch.push_front(kept);
                        self.stalled.push_back(Command::PostMany(batch));
                        return;
                    }
                }
            }
            Command::Send { to, payload, wait } => {
                if self.must_wait(payload.len()) {
                    self.stalled.push_back(Command::Send { to, payload, wait });
                    return;
                }
                let confirm = matches!(wait, SendWait::Outcome(_));
                match self.client.send(now, to, payload, SendOptions { confirm }) {
                    Ok(seq) => {
                        let w = match wait {
                            SendWait::Ack(tx) => Waiter::Ack(tx),
                            SendWait::Outcome(tx) => Waiter::Outcome(tx),
                        };
                        self.waiters.insert(seq, w);
                    }
                    Err(e) => match wait {
                        SendWait::Ack(tx) => drop(tx.send(Err(e.into()))),
                        SendWait::Outcome(tx) => drop(tx.send(Err(e.into()))),
                    },
                }
            }
            Command::Request {
                to,
                payload,
                timeout_ms,
                reply,
            } => match self
                .client
                .request(now, to.clone(), payload.clone(), timeout_ms)
            {
                Ok(seq) => {
                    self.requests.insert(seq, reply);
                }
                Err(e) if stall(&e) => self.stalled.push_back(Command::Request {
                    to,
                    payload,
                    timeout_ms,
                    reply,
                }),
                Err(e) => drop(reply.send(Err(e.into()))),
            },
            Command::Reply { to, payload, reply } => {
                match self.client.reply(now, to, payload.clone()) {
                    Ok(seq) => {
                        self.waiters.insert(seq, Waiter::Ack(reply));
                    }
                    Err(e) if stall(&e) => {
                        self.stalled
                            .push_back(Command::Reply { to, payload, reply })
                    }
                    Err(e) => drop(reply.send(Err(e.into()))),
                }
            }
            Command::Publish { event, reply } => match self.client.publish(now, event.clone()) {
                Ok(seq) => {
                    self.waiters.insert(seq, Waiter::Ack(reply));
                }
                Err(e) if stall(&e) => self.stalled.push_back(Command::Publish { event, reply }),
                Err(e) => drop(reply.send(Err(e.into()))),
            },
            Command::Join { group, reply } => {
                let before = self.client.last_seq();
                match self.client.join(now, &group) {
                    Ok(()) => {
                        self.when_applied(reply, 0);
                        if self.client.last_seq() != before {
                            if let Some(a) = self.applied.back_mut() {
                                a.refusable = true;
                            }
                        }
                    }
                    Err(e) if stall(&e) => self.stalled.push_back(Command::Join { group, reply }),
                    Err(e) => drop(reply.send(Err(e.into()))),
                }
            }
            Command::Leave { group, reply } => match self.client.leave(now, &group) {
                Ok(()) => self.when_applied(reply, 0),
                Err(e) if stall(&e) => self.stalled.push_back(Command::Leave { group, reply }),
                Err(e) => drop(reply.send(Err(e.into()))),
            },
            Command::Subscribe {
                filter,
                sink,
                reply,
            } => match self.client.subscribe(now, filter.clone()) {
                Ok(id) => {
                    self.subs.insert(id, sink);
                    self.when_applied(reply, id);
                }
                Err(e) if stall(&e) => self.stalled.push_back(Command::Subscribe {
                    filter,
                    sink,
                    reply,
                }),
                Err(e) => drop(reply.send(Err(e.into()))),
            },
            Command::Unsubscribe { id, reply } => match self.client.unsubscribe(now, id) {
                Ok(()) => {
                    self.subs.remove(&id);
                    self.when_applied(reply, id);
                }
                Err(e) if stall(&e) => self.stalled.push_back(Command::Unsubscribe { id, reply }),
                Err(e) => drop(reply.send(Err(e.into()))),
            },
            Command::View { reply } => {
                let view = self.client.view().values().cloned().collect();
                let _ = reply.send((self.client.epoch(), view));
            }
        }
    }

    fn on_client_event(&mut self, e: ClientEvent) {
        match e {
            ClientEvent::Registered {
                member_id,
                epoch,
                view,
                position,
                session_lost,
            } => {
                self.set_state(ConnectionState::Connected { member_id });
                self.emit(Event::Registered {
                    member_id,
                    epoch,
                    position,
                    view,
                    session_lost,
                });
            }
            ClientEvent::Resumed { member_id } => {
                self.set_state(ConnectionState::Connected { member_id });
                self.emit(Event::Resumed { member_id });
            }
            ClientEvent::Disconnected { reason, .. } => {
                self.set_state(ConnectionState::Disconnected {
                    reason: reason.clone(),
                });
                self.emit(Event::Disconnected { reason });
            }
            ClientEvent::Rejected {
                reason,
                text,
                fatal,
            } => {
                if !fatal && reason == switchboard_core::frame::RejectReason::SessionUnknown {
                    // The ordinary path after a server restart.
                    tracing::info!(
                        "the server restarted and forgot the session; registering afresh"
                    );
                } else {
                    tracing::warn!(
                        %text,
                        fatal,
                        "the server refused this member: {}",
                        crate::reject_reason(reason)
                    );
                }
                if fatal {
                    self.closed = Some(format!("refused by the server: {reason:?}: {text}"));
                }
                self.emit(Event::Rejected {
                    reason,
                    text,
                    fatal,
                });
            }
            ClientEvent::Gap { from, through } => {
                tracing::warn!(from, through, "stream gap: session expired");
                self.emit(Event::Gap { from, through });
            }
            ClientEvent::Message(m) => {
                let m = self.named(m);
                let ev = if m.is_request() {
                    Event::Request(m)
                } else {
                    Event::Message(m)
                };
                self.emit(ev);
            }
            ClientEvent::Event {
                gseq,
                epoch,
                event,
                handlers,
                ..
            } => {
                let n = Notification {
                    gseq,
                    epoch,
                    event,
                    handlers,
                };
                for id in &n.handlers {
                    match self.subs.get_mut(id) {
                        Some(SubSink::Handler(h)) => h(&n),
                        Some(SubSink::Stream { .. }) => self.emit_sub(*id, &n),
                        None => {}
                    }
                }
                self.emit(Event::Cluster(n));
            }
            ClientEvent::Acked { seq } => {
                // Posted messages first (no waiter: the tally counts them).
                if self.take_posted(seq) {
                    self.posted_acked += 1;
                    return;
                }
                match self.waiters.remove(&seq) {
                    Some(Waiter::Ack(tx)) => drop(tx.send(Ok(seq))),
                    // A confirmed send waits for its outcome.
                    Some(w @ Waiter::Outcome(_)) => {
                        self.waiters.insert(seq, w);
                    }
                    None => {}
                }
            }
            ClientEvent::Nacked { seq, reason } => {
                if self.take_posted(seq) {
                    self.posted_refused += 1;
                    return;
                }
                let err = Error::Nacked { seq, reason };
                if let Some(i) = self
                    .applied
                    .iter()
                    .position(|a| a.refusable && a.seq == seq)
                {
                    if let Some(a) = self.applied.remove(i) {
                        let _ = a.reply.send(Err(err));
                    }
                    return;
                }
                match self.waiters.remove(&seq) {
                    Some(Waiter::Ack(tx)) => drop(tx.send(Err(err))),
                    Some(Waiter::Outcome(tx)) => drop(tx.send(Err(err))),
                    None => {}
                }
            }
            ClientEvent::Outcome {
                seq,
                delivered,
                missed,
            } => match self.waiters.remove(&seq) {
                Some(Waiter::Outcome(tx)) => drop(tx.send(Ok(Outcome {
                    seq,
                    delivered,
                    missed,
                }))),
                Some(Waiter::Ack(tx)) => drop(tx.send(Ok(seq))),
                None => {}
            },
            ClientEvent::Reply { request, message } => {
                let message = self.named(message);
                match self.requests.remove(&request) {
                    Some(tx) => {
                        self.disposed += 1;
                        drop(tx.send(Ok(message)));
                    }
                    None => self.emit(Event::Message(message)),
                }
            }
            ClientEvent::RequestFailed { request, error } => {
                if let Some(tx) = self.requests.remove(&request) {
                    let _ = tx.send(Err(Error::Request(error)));
                }
            }
            ClientEvent::Closed => {
                self.closed.get_or_insert_with(|| "closed".to_owned());
            }
        }
    }

    /// Answers a join, leave, subscribe or unsubscribe once the server has
    /// applied it: once its sequence (the latest one taken) is covered by
    /// what the server confirmed (an ack, a resume, or the state a
    /// registration carried). Whatever the server does after that (another
    /// member's event, say) is ordered after it.
    fn when_applied(&mut self, reply: oneshot::Sender<Result<u32, Error>>, value: u32) {
        let seq = self.client.last_seq();
        debug_assert!(self.applied.back().is_none_or(|a| a.seq <= seq));
        self.applied.push_back(Applied {
            seq,
            reply,
            value,
            refusable: false,
        });
    }

    /// Answers the state changes the server has applied.
    fn answer_applied(&mut self) {
        let through = self.client.effective_through();
        while self.applied.front().is_some_and(|a| a.seq <= through) {
            if let Some(a) = self.applied.pop_front() {
                let _ = a.reply.send(Ok(a.value));
            }
        }
    }

    /// Forgets a posted message's sequence once it is acked or refused;
    /// false if `seq` is not a posted message still open. Usually the
    /// oldest, so this is a look at the front.
    fn take_posted(&mut self, seq: u64) -> bool {
        if self.posted.front() == Some(&seq) {
            self.posted.pop_front();
            return true;
        }
        match self.posted.binary_search(&seq) {
            Ok(i) => {
                self.posted.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// A wire message with its sender's name from the view at its
    /// position in the stream.
    fn named(&self, wire: switchboard_core::client::Message) -> Message {
        let (from_instance, from_process) = match self.client.view().get(&wire.from) {
            Some(m) => (m.instance.clone(), m.process.clone()),
            None => (String::new(), String::new()),
        };
        Message {
            from_instance,
            from_process,
            wire,
        }
    }

    /// Hands an event to the main stream. When the stream is full a
    /// cluster event is dropped (counted, and announced by an
    /// [`Event::Lagged`] notice once there is room); anything else is
    /// queued in order and the socket is not read until it fits.
    fn emit(&mut self, ev: Event) {
        let droppable = matches!(ev, Event::Cluster(_));
        if !self.pending.is_empty() {
            if droppable {
                self.lag_main();
            } else {
                if self.main_lagged > 0 {
                    let missed = std::mem::take(&mut self.main_lagged);
                    self.pending.push_back(Event::Lagged { missed });
                }
                self.pending.push_back(ev);
            }
            return;
        }
        if self.main_lagged > 0 {
            let notice = Event::Lagged {
                missed: self.main_lagged,
            };
            match self.events.try_send(notice) {
                Ok(()) | Err(TrySendError::Closed(_)) => self.main_lagged = 0,
                Err(TrySendError::Full(notice)) => {
                    if droppable {
                        self.lag_main();
                    } else {
                        self.main_lagged = 0;
                        self.pending.push_back(notice);
                        self.pending.push_back(ev);
                        self.warn_stall();
                    }
                    return;
                }
            }
        }
        match self.events.try_send(ev) {
            Ok(()) => {}
            Err(TrySendError::Closed(ev)) => self.disposed += message_count(&ev),
            // Deliberate bug for the production-path simulator: a message
            // is lost when the stream is full.
            #[cfg(feature = "fault-injection")]
            Err(TrySendError::Full(Event::Message(_)))
                if switchboard_runtime::fault::armed(
                    switchboard_runtime::fault::Fault::DropEventWhenFull,
                ) =>
            {
                self.disposed += 1;
            }
            Err(TrySendError::Full(ev)) => {
                if droppable {
                    self.lag_main();
                } else {
                    self.pending.push_back(ev);
                    self.warn_stall();
                }
            }
        }
    }

    /// Counts and logs (rate-limited) a message waiting for room on the
    /// main stream.
    fn warn_stall(&mut self) {
        self.stats.stream_stalls.fetch_add(1, Ordering::Relaxed);
        if self.may_warn() {
            tracing::warn!(
                capacity = self.config.events_max,
                "the event stream is full: this member stops reading from the server \
                 until the application reads its events (messages are never dropped)"
            );
        }
    }

    /// Counts a cluster event dropped from the main stream.
    fn lag_main(&mut self) {
        self.main_lagged += 1;
        self.stats.events_dropped.fetch_add(1, Ordering::Relaxed);
        if self.main_lagged == 1 && self.may_warn() {
            tracing::warn!(
                capacity = self.config.events_max,
                "the event stream is full: dropping cluster events until the application \
                 reads it (it then gets an Event::Lagged notice)"
            );
        }
    }

    /// True at most once per [`LAG_WARN_EVERY`].
    fn may_warn(&mut self) -> bool {
        let now = Instant::now();
        match self.lag_warned {
            Some(t) if now.duration_since(t) < LAG_WARN_EVERY => false,
            _ => {
                self.lag_warned = Some(now);
                true
            }
        }
    }

    /// Hands an event to a subscription stream, or drops it (counted) when
    /// the subscription is full; a lag notice goes first once there is
    /// room.
    fn emit_sub(&mut self, id: u32, n: &Notification) {
        let Some(SubSink::Stream { tx, lagged }) = self.subs.get_mut(&id) else {
            return;
        };
        let mut closed = false;
        let mut dropped = false;
        if *lagged > 0 {
            match tx.try_send(SubItem::Lagged(*lagged)) {
                Ok(()) => *lagged = 0,
                Err(TrySendError::Closed(_)) => closed = true,
                Err(TrySendError::Full(_)) => dropped = true,
            }
        }
        if !closed && !dropped {
            match tx.try_send(SubItem::Event(n.clone())) {
                Ok(()) => {}
                Err(TrySendError::Closed(_)) => closed = true,
                Err(TrySendError::Full(_)) => dropped = true,
            }
        }
        if dropped {
            *lagged += 1;
            let first = *lagged == 1;
            self.stats.events_dropped.fetch_add(1, Ordering::Relaxed);
            if first && self.may_warn() {
                tracing::warn!(
                    subscription = id,
                    capacity = self.config.events_max,
                    "a subscription is full: dropping its events until the application \
                     reads it (Subscription::recv reports how many)"
                );
            }
        }
        if closed {
            self.subs.remove(&id);
        }
    }

    /// Deliberate bug for the production-path simulator
    /// (`Fault::StallOnLaggingSubscription`): a full subscription stops the
    /// member reading its connection, as the watch freeze did. Never true
    /// otherwise: subscriptions lag, they never hold the member up.
    fn frozen_by_subscription(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        if switchboard_runtime::fault::armed(
            switchboard_runtime::fault::Fault::StallOnLaggingSubscription,
        ) {
            return self
                .subs
                .values()
                .any(|s| matches!(s, SubSink::Stream { lagged, .. } if *lagged > 0));
        }
        false
    }

    /// The first subscription with a lag notice to deliver, and a future
    /// for room on it.
    fn lagging_sub(&self) -> Option<(u32, SubRoom)> {
        self.subs.iter().find_map(|(id, s)| match s {
            SubSink::Stream { tx, lagged } if *lagged > 0 => {
                Some((*id, Box::pin(tx.clone().reserve_owned()) as SubRoom))
            }
            _ => None,
        })
    }

    fn on_sub_lag_room(&mut self, id: u32, r: Permit<SubItem>) {
        let Some(SubSink::Stream { lagged, .. }) = self.subs.get_mut(&id) else {
            return;
        };
        match r {
            Ok(permit) => {
                if *lagged > 0 {
                    let _ = permit.send(SubItem::Lagged(std::mem::take(lagged)));
                }
            }
            Err(_) => {
                self.subs.remove(&id);
            }
        }
    }

    fn on_main_lag_room(&mut self, r: Permit<Event>) {
        match r {
            Ok(permit) => {
                if self.main_lagged > 0 && self.pending.is_empty() {
                    let _ = permit.send(Event::Lagged {
                        missed: std::mem::take(&mut self.main_lagged),
                    });
                }
            }
            // The main stream was dropped: nobody to tell.
            Err(_) => self.main_lagged = 0,
        }
    }

    fn on_reserved(&mut self, r: Permit<Event>) {
        let Some(head) = self.pending.pop_front() else {
            return;
        };
        match r {
            // Deliberate bug for the production-path simulator: the two
            // events that waited first are handed over swapped.
            #[cfg(feature = "fault-injection")]
            Ok(permit)
                if !self.pending.is_empty()
                    && switchboard_runtime::fault::armed(
                        switchboard_runtime::fault::Fault::ReorderWhenFull,
                    ) =>
            {
                if let Some(next) = self.pending.pop_front() {
                    permit.send(next);
                }
                self.pending.push_front(head);
            }
            Ok(permit) => {
                permit.send(head);
            }
            // The main stream was dropped: its items are discarded.
            Err(_) => {
                self.disposed += message_count(&head);
                for ev in std::mem::take(&mut self.pending) {
                    self.disposed += message_count(&ev);
                }
            }
        }
        // Move on whatever now fits without waiting.
        while let Some(ev) = self.pending.pop_front() {
            match self.events.try_send(ev) {
                Ok(()) => {}
                Err(TrySendError::Closed(ev)) => self.disposed += message_count(&ev),
                Err(TrySendError::Full(ev)) => {
                    self.pending.push_front(ev);
                    break;
                }
            }
        }
    }

    fn set_state(&mut self, s: ConnectionState) {
        self.state.send_if_modified(|cur| {
            if *cur == s {
                false
            } else {
                *cur = s;
                true
            }
        });
    }

    /// Ends the member: everything pending fails with `Closed`, the last
    /// writes are flushed.
    async fn finish(mut self) {
        let reason = self.closed.take().unwrap_or_else(|| "closed".to_owned());
        for c in std::mem::take(&mut self.stalled) {
            self.fail_command(c, Error::Closed);
        }
        for (_, w) in std::mem::take(&mut self.waiters) {
            match w {
                Waiter::Ack(tx) => drop(tx.send(Err(Error::Closed))),
                Waiter::Outcome(tx) => drop(tx.send(Err(Error::Closed))),
            }
        }
        self.posted_refused += self.posted.len() as u64;
        self.posted.clear();
        for a in self.applied.drain(..) {
            let _ = a.reply.send(Err(Error::Closed));
        }
        for (_, tx) in std::mem::take(&mut self.requests) {
            let _ = tx.send(Err(Error::Closed));
        }
        self.commands.close();
        while let Ok(c) = self.commands.try_recv() {
            self.fail_command(c, Error::Closed);
        }
        self.tally
            .settle(self.posted_acked, std::mem::take(&mut self.posted_refused));
        self.posted_acked = 0;
        self.tally.close();
        // Best effort: the events already produced, then `Closed`.
        for ev in std::mem::take(&mut self.pending) {
            let _ = self.events.try_send(ev);
        }
        let _ = self.events.try_send(Event::Closed);
        self.close_link(false);
        for w in self.flushing.drain(..) {
            let _ = tokio::time::timeout(SHUTDOWN_WRITE_TIMEOUT, w).await;
        }
        self.set_state(ConnectionState::Closed { reason });
        if let Some((Some(tx), _)) = self.goodbye.take() {
            let _ = tx.send(());
        }
    }
}

impl<C: Connector> Driver<C> {
    /// Ends a command that will not run.
    fn fail_command(&mut self, c: Command, e: Error) {
        match c {
            Command::Post { .. } => self.posted_refused += 1,
            Command::PostMany(batch) => self.posted_refused += batch.len() as u64,
            Command::Send { wait, .. } => match wait {
                SendWait::Ack(tx) => drop(tx.send(Err(e))),
                SendWait::Outcome(tx) => drop(tx.send(Err(e))),
            },
            Command::Request { reply, .. } => drop(reply.send(Err(e))),
            Command::Reply { reply, .. } | Command::Publish { reply, .. } => {
                drop(reply.send(Err(e)))
            }
            Command::Join { reply, .. }
            | Command::Leave { reply, .. }
            | Command::Subscribe { reply, .. }
            | Command::Unsubscribe { reply, .. } => drop(reply.send(Err(e))),
            Command::View { .. } => {}
        }
    }
}
