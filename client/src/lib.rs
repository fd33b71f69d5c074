//! # switchboard-client
//!
//! The async client library: a work process's connection to the message
//! server. An application depends on this crate (and on nothing else of
//! Switchboard's): `switchboard-client = "0.1"`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchboard_client::Error> {
//! use switchboard_client::{member, Member, MemberConfig, Event};
//! # let secret = switchboard_core::auth::Secret::new(vec![7u8; 32]).map_err(|_| switchboard_client::Error::Closed)?;
//! let config = MemberConfig::new("127.0.0.1:3900", "switchboard", secret, "i1", "w0");
//! let (me, mut events) = Member::connect(config).await?;
//! let seq = me.send(member("i2", "w0"), "hello").await?;      // resolves on the server's ack
//! let reply = me.request(member("i2", "w1"), "price?", std::time::Duration::from_secs(1)).await?;
//! while let Some(ev) = events.next().await {
//!     if let Event::Request(m) = ev {
//!         me.reply(m.reply_to(), "42").await?;
//!     }
//! }
//! me.goodbye().await;
//! # let _ = (seq, reply); Ok(()) }
//! ```
//!
//! A driver task owns the core [`Client`](switchboard_core::client::Client):
//! it opens the TCP connections the core asks for (with the core's backoff),
//! feeds it bytes and timers, and turns its events into the results of the
//! calls that caused them (acks, NACKs, outcomes, replies) or into items of
//! the [`EventStream`]. The handle talks to the driver over a bounded
//! command queue; the tables of pending acks and requests live in the driver
//! only. The one piece of state they share is the tally of posted messages
//! (crate `switchboard-tally`, checked with loom).
//!
//! For a stream of messages, [`post`](Member::post) sends without a future
//! per message and [`flush`](Member::flush) waits until the server has
//! acknowledged everything posted before it (the counts are in
//! [`tally`](Member::tally)): the way `switchboard bench` drives W1, W2 and
//! W4.
//!
//! Backpressure: when the core's outbox of unconfirmed messages is full the
//! driver stops taking commands, so `send` waits and
//! [`try_send`](Member::try_send) returns [`Error::Busy`] once the command
//! queue is full too.

#![deny(missing_docs)]

mod address;
mod driver;
mod errors;
mod events;
mod message;

pub use address::{member, parse_address, AddressError};
pub use errors::{nack_reason, reject_reason, request_error};
pub use events::{ConnectionState, Event, EventStream, Notification, RecvError, Subscription};
pub use message::Message;
pub use switchboard_core::client::{ReplyTo, RequestError};
pub use switchboard_core::frame::{
    Address, ClusterEvent, EventBody, EventKind, Filter, MemberInfo, Missed, NackReason,
};
pub use switchboard_tally::TallyCounts;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use switchboard_core::auth::Secret;
use switchboard_core::client::{ClientConfig, CommandError};
use switchboard_runtime::net::{Connector, TokioNet};
use switchboard_runtime::tls::{self, TlsNet};
use tokio::sync::{mpsc, oneshot, watch};

/// Settings of a member.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// The server's internal address, `host:port` (resolved on every
    /// connect).
    pub server: String,
    /// The core client's settings: identity, secret, limits, backoff.
    pub core: ClientConfig,
    /// Commands queued to the driver at most.
    pub commands_max: usize,
    /// Events queued on the [`EventStream`] (and on each
    /// [`Subscription`]) at most.
    pub events_max: usize,
    /// How long [`Member::connect`] waits for the first registration.
    pub connect_timeout: Duration,
    /// How long [`Member::goodbye`] waits for a connection to send its
    /// pending messages before saying goodbye anyway.
    pub goodbye_timeout: Duration,
    /// TLS to the server's member port; `None` is plain TCP.
    pub tls: Option<MemberTls>,
}

/// A member's TLS settings: the CA the server's certificate must chain to,
/// the name it must carry, and the member's own certificate for a server
/// that authenticates members by certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberTls {
    /// CA certificates (PEM) the server's certificate must chain to.
    pub ca_file: std::path::PathBuf,
    /// The member's certificate chain and private key (PEM), presented
    /// when the server asks for one.
    pub cert_key: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The name the server's certificate must carry (DNS name or IP
    /// address); by default the host part of [`MemberConfig::server`].
    pub server_name: Option<String>,
}

impl MemberTls {
    /// Trusts the CA in `ca_file`, presents no certificate.
    pub fn new(ca_file: impl Into<std::path::PathBuf>) -> MemberTls {
        MemberTls {
            ca_file: ca_file.into(),
            cert_key: None,
            server_name: None,
        }
    }

    /// The connector these settings make, for connections to `server`.
    pub fn connector(&self, server: &str) -> Result<TlsNet, Error> {
        let config = tls::client_config(&tls::ClientTlsFiles {
            ca: self.ca_file.clone(),
            cert_key: self.cert_key.clone(),
        })
        .map_err(|e| Error::Tls(e.to_string()))?;
        let name = self
            .server_name
            .as_deref()
            .unwrap_or_else(|| tls::host_of(server));
        let name = tls::server_name(name).map_err(|e| Error::Tls(e.to_string()))?;
        Ok(TlsNet::new(config, name))
    }
}

impl MemberConfig {
    /// Defaults for an identity; the incarnation is random.
    pub fn new(
        server: impl Into<String>,
        cluster: impl Into<String>,
        secret: Secret,
        instance: impl Into<String>,
        process: impl Into<String>,
    ) -> MemberConfig {
        let incarnation = rand::random::<u64>() | 1;
        MemberConfig {
            server: server.into(),
            core: ClientConfig::new(cluster, secret, instance, process, incarnation),
            commands_max: 1024,
            events_max: 4096,
            connect_timeout: Duration::from_secs(10),
            goodbye_timeout: Duration::from_secs(5),
            tls: None,
        }
    }

    /// Defaults for an identity on a member port that authenticates
    /// members by client certificate alone (`auth = "certificate"`): no
    /// secret, and TLS with the member's certificate.
    pub fn with_certificate(
        server: impl Into<String>,
        cluster: impl Into<String>,
        tls: MemberTls,
        instance: impl Into<String>,
        process: impl Into<String>,
    ) -> MemberConfig {
        let mut c = MemberConfig::new(
            server,
            cluster,
            tls::certificate_auth_secret(),
            instance,
            process,
        );
        c.tls = Some(tls);
        c
    }

    /// Defaults for an identity, with the cluster secret read from a file
    /// (the one `switchboard serve` creates: hex text, whose decoded bytes
    /// are the key). Fails with [`Error::Secret`] when the file is missing,
    /// unreadable, readable by group or others, or not a valid secret.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), switchboard_client::Error> {
    /// let config = switchboard_client::MemberConfig::from_secret_file(
    ///     "localhost:3900", "switchboard", ".switchboard/secret", "i1", "w0")?;
    /// # let _ = config; Ok(()) }
    /// ```
    pub fn from_secret_file(
        server: impl Into<String>,
        cluster: impl Into<String>,
        secret_file: impl AsRef<std::path::Path>,
        instance: impl Into<String>,
        process: impl Into<String>,
    ) -> Result<MemberConfig, Error> {
        let secret = switchboard_runtime::secret::load(secret_file.as_ref())
            .map_err(|e| Error::Secret(e.to_string()))?;
        Ok(MemberConfig::new(
            server, cluster, secret, instance, process,
        ))
    }
}

/// The connector of a member whose TLS settings could not be loaded:
/// every connect fails with that reason.
#[derive(Debug, Clone)]
struct FailedNet(String);

impl Connector for FailedNet {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;

    #[allow(clippy::manual_async_fn)]
    fn connect(
        &self,
        _addr: String,
    ) -> impl Future<Output = std::io::Result<(Self::Read, Self::Write)>> + Send + 'static {
        let reason = self.0.clone();
        async move { Err(std::io::Error::other(tls::TlsFailure(reason))) }
    }

    fn rng(&self) -> Box<dyn rand::RngCore + Send> {
        switchboard_runtime::net::entropy_rng()
    }
}

/// Why a call failed. `Display` reads as a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The member is closed (goodbye, fatal reject, killed).
    #[error("the member is closed (it said goodbye, was refused by the server, or was stopped)")]
    Closed,
    /// The command queue is full (only from `try_*` calls).
    #[error("the command queue is full: wait for acks or use the waiting call")]
    Busy,
    /// The secret file could not be loaded.
    #[error("{0}")]
    Secret(String),
    /// The TLS settings could not be loaded, or the TLS handshake with the
    /// server failed (an untrusted certificate, a server that does not
    /// speak TLS, a refused client certificate).
    #[error("TLS: {0}")]
    Tls(String),
    /// The core refused the command locally.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The server refused the message.
    #[error("the server refused message {seq}: {}", nack_reason(*reason))]
    Nacked {
        /// The message's sequence.
        seq: u64,
        /// Why.
        reason: NackReason,
    },
    /// A request ended without a reply.
    #[error("{}", request_error(*.0))]
    Request(RequestError),
    /// The server refused the handshake for good.
    #[error("the server refused this member: {} ({text})", reject_reason(*reason))]
    Rejected {
        /// Why.
        reason: switchboard_core::frame::RejectReason,
        /// Detail.
        text: String,
    },
    /// No registration within [`MemberConfig::connect_timeout`].
    #[error("could not register with the server within {after:?}: {last}")]
    ConnectTimeout {
        /// The timeout.
        after: Duration,
        /// Why the last attempt failed.
        last: String,
    },
}

/// Final outcome of a message sent with [`Member::send_confirmed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The message's sequence.
    pub seq: u64,
    /// Addressees that acknowledged delivery.
    pub delivered: u32,
    /// Addressees that missed it, and why.
    pub missed: Vec<Missed>,
}

impl Outcome {
    /// True when no addressee missed the message.
    pub fn is_complete(&self) -> bool {
        self.missed.is_empty()
    }
}

/// A notification handler run by [`Member::on_event`].
pub type Handler = Box<dyn FnMut(&Notification) + Send + 'static>;

/// Messages one [`Member::post_many`] command carries at most.
pub const POST_BATCH_MAX: usize = 64;

/// A command for the driver.
pub(crate) enum Command {
    /// A posted message: counted in the tally, no waiter.
    Post { to: Address, payload: Bytes },
    /// Posted messages, in order (at most [`POST_BATCH_MAX`]): one command.
    PostMany(std::collections::VecDeque<(Address, Bytes)>),
    Send {
        to: Address,
        payload: Bytes,
        wait: SendWait,
    },
    Request {
        to: Address,
        payload: Bytes,
        timeout_ms: u32,
        reply: oneshot::Sender<Result<Message, Error>>,
    },
    Reply {
        to: ReplyTo,
        payload: Bytes,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    Publish {
        event: EventBody,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    Join {
        group: String,
        reply: oneshot::Sender<Result<u32, Error>>,
    },
    Leave {
        group: String,
        reply: oneshot::Sender<Result<u32, Error>>,
    },
    Subscribe {
        filter: Filter,
        sink: SubSink,
        reply: oneshot::Sender<Result<u32, Error>>,
    },
    Unsubscribe {
        id: u32,
        reply: oneshot::Sender<Result<u32, Error>>,
    },
    View {
        reply: oneshot::Sender<(u64, Vec<MemberInfo>)>,
    },
}

/// Out-of-band commands: never stuck behind a full outbox.
pub(crate) enum Control {
    Goodbye(oneshot::Sender<()>),
    Kill,
    DropConnection,
}

/// What a send waits for.
pub(crate) enum SendWait {
    Ack(oneshot::Sender<Result<u64, Error>>),
    Outcome(oneshot::Sender<Result<Outcome, Error>>),
}

/// Where a subscription's events go.
pub(crate) enum SubSink {
    /// A [`Subscription`]; `lagged` events were dropped since its last lag
    /// notice.
    Stream {
        tx: mpsc::Sender<events::SubItem>,
        lagged: u64,
    },
    Handler(Handler),
}

/// The driver's counters behind [`Member::stats`].
#[derive(Debug, Default)]
pub(crate) struct StatsCell {
    pub events_dropped: AtomicU64,
    pub stream_stalls: AtomicU64,
}

/// What a member's event delivery did so far ([`Member::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Cluster events dropped because the event stream or a subscription
    /// was full (each announced by a lag notice: [`Event::Lagged`],
    /// [`RecvError::Lagged`]).
    pub events_dropped: u64,
    /// Times a message or request found the event stream full, so that the
    /// member stopped reading its connection until the application read
    /// the stream.
    pub stream_stalls: u64,
}

/// A member's handle. Cheap to clone; all clones drive the same connection.
/// When the last clone is dropped the member says goodbye.
#[derive(Debug, Clone)]
pub struct Member {
    commands: mpsc::Sender<Command>,
    control: mpsc::Sender<Control>,
    state: watch::Receiver<ConnectionState>,
    identity: Arc<Identity>,
    tally: Arc<switchboard_tally::Tally>,
    stats: Arc<StatsCell>,
}

#[derive(Debug)]
struct Identity {
    instance: String,
    process: String,
    incarnation: u64,
    events_max: usize,
}

/// Resolves with a message's sequence once the server acknowledged it
/// (from [`Member::try_send`]).
#[derive(Debug)]
pub struct AckFuture(oneshot::Receiver<Result<u64, Error>>);

impl Future for AckFuture {
    type Output = Result<u64, Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

impl Member {
    /// Starts a member and waits until it is registered (at most
    /// [`MemberConfig::connect_timeout`]). Returns the handle and the
    /// member's event stream, which starts with [`Event::Registered`].
    /// With [`MemberConfig::tls`] the connection is TLS, and a failed TLS
    /// handshake ends the wait at once with [`Error::Tls`].
    pub async fn connect(config: MemberConfig) -> Result<(Member, EventStream), Error> {
        match &config.tls {
            Some(t) => {
                let net = t.connector(&config.server)?;
                Self::connect_with(config, net).await
            }
            None => Self::connect_with(config, TokioNet).await,
        }
    }

    /// [`connect`](Member::connect) on another network: the driver opens
    /// its connections with `net` and seeds its state machine from it
    /// (the seam the production-path simulator uses).
    pub async fn connect_with<C: Connector>(
        config: MemberConfig,
        net: C,
    ) -> Result<(Member, EventStream), Error> {
        let timeout = config.connect_timeout;
        let (member, events) = Self::start_with(config, net);
        let mut state = member.state.clone();
        let wait = async {
            loop {
                match &*state.borrow_and_update() {
                    ConnectionState::Connected { .. } => return Ok(()),
                    ConnectionState::Closed { reason } => {
                        return Err(Err(reason.clone()));
                    }
                    ConnectionState::TlsFailed { reason } => {
                        return Err(Ok(Error::Tls(reason.clone())));
                    }
                    _ => {}
                }
                if state.changed().await.is_err() {
                    return Err(Err("driver stopped".to_owned()));
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(())) => Ok((member, events)),
            Ok(Err(Ok(e))) => {
                member.kill().await;
                Err(e)
            }
            Ok(Err(Err(_))) => {
                // The driver ended (a fatal reject): report why.
                let mut events = events;
                while let Some(ev) = events.try_next() {
                    if let Event::Rejected { reason, text, .. } = ev {
                        return Err(Error::Rejected { reason, text });
                    }
                }
                Err(Error::Closed)
            }
            Err(_) => {
                let last = match &*member.state.borrow() {
                    ConnectionState::Disconnected { reason }
                    | ConnectionState::TlsFailed { reason } => reason.clone(),
                    _ => "no answer (is the server at this address running?)".to_owned(),
                };
                let last = if last.contains("secret") {
                    format!("{last} (do both sides use the same secret file?)")
                } else if last.contains("closed") {
                    format!("{last} (is the server at this address running?)")
                } else {
                    last
                };
                member.kill().await;
                Err(Error::ConnectTimeout {
                    after: timeout,
                    last,
                })
            }
        }
    }

    /// Starts a member without waiting for it to register; it connects and
    /// reconnects by itself.
    ///
    /// With [`MemberConfig::tls`] the connection is TLS; with TLS settings
    /// that cannot be loaded every connection attempt fails, and the
    /// member's state ([`ConnectionState::TlsFailed`]) says why.
    pub fn start(config: MemberConfig) -> (Member, EventStream) {
        match config.tls.as_ref().map(|t| t.connector(&config.server)) {
            Some(Ok(net)) => Self::start_with(config, net),
            Some(Err(e)) => {
                let mut config = config;
                config.tls = None;
                let (member, events) = Self::start_with(config, FailedNet(e.to_string()));
                (member, events)
            }
            None => Self::start_with(config, TokioNet),
        }
    }

    /// [`start`](Member::start) on another network (see
    /// [`connect_with`](Member::connect_with)).
    pub fn start_with<C: Connector>(mut config: MemberConfig, net: C) -> (Member, EventStream) {
        // The library counts what the application takes from its stream
        // and reports it: outcomes count only messages taken.
        config.core.report_taken = true;
        let (commands_tx, commands_rx) = mpsc::channel(config.commands_max.max(1));
        let (control_tx, control_rx) = mpsc::channel(8);
        let (events_tx, events_rx) = mpsc::channel(config.events_max.max(1));
        let (state_tx, state_rx) = watch::channel(ConnectionState::Connecting);
        let identity = Arc::new(Identity {
            instance: config.core.instance.clone(),
            process: config.core.process.clone(),
            incarnation: config.core.incarnation,
            events_max: config.events_max.max(1),
        });
        let tally = Arc::new(switchboard_tally::Tally::default());
        let stats = Arc::new(StatsCell::default());
        let taken = Arc::new(events::Taken::default());
        tokio::spawn(driver::run(
            config,
            driver::Channels {
                commands: commands_rx,
                control: control_rx,
                events: events_tx,
                state: state_tx,
                tally: tally.clone(),
                stats: stats.clone(),
                taken: taken.clone(),
            },
            net,
        ));
        let member = Member {
            commands: commands_tx,
            control: control_tx,
            state: state_rx,
            identity,
            tally,
            stats,
        };
        (
            member,
            EventStream {
                rx: events_rx,
                taken,
            },
        )
    }

    /// Instance name.
    pub fn instance(&self) -> &str {
        &self.identity.instance
    }

    /// Process name.
    pub fn process(&self) -> &str {
        &self.identity.process
    }

    /// This process's incarnation id.
    pub fn incarnation(&self) -> u64 {
        self.identity.incarnation
    }

    /// The member id while connected.
    pub fn member_id(&self) -> Option<u64> {
        match &*self.state.borrow() {
            ConnectionState::Connected { member_id } => Some(*member_id),
            _ => None,
        }
    }

    /// Connection state changes (a [`watch::Receiver`]: `changed().await`,
    /// `borrow()`).
    pub fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    async fn command(&self, c: Command) -> Result<(), Error> {
        self.commands.send(c).await.map_err(|_| Error::Closed)
    }

    /// Queues a command without waiting: [`Error::Busy`] when the queue is
    /// full.
    fn try_command(&self, c: Command) -> Result<(), Error> {
        self.commands.try_send(c).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::Busy,
            mpsc::error::TrySendError::Closed(_) => Error::Closed,
        })
    }

    /// Sends a message; resolves with its sequence once the server received
    /// and sequenced it, or fails with [`Error::Nacked`]. Waits while the
    /// outbox is full.
    pub async fn send(&self, to: Address, payload: impl Into<Bytes>) -> Result<u64, Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Send {
            to,
            payload: payload.into(),
            wait: SendWait::Ack(tx),
        })
        .await?;
        AckFuture(rx).await
    }

    /// Like [`send`](Member::send) but never waits for queue room: returns
    /// [`Error::Busy`] when the command queue is full, else a future that
    /// resolves on the ack.
    pub fn try_send(&self, to: Address, payload: impl Into<Bytes>) -> Result<AckFuture, Error> {
        let (tx, rx) = oneshot::channel();
        let c = Command::Send {
            to,
            payload: payload.into(),
            wait: SendWait::Ack(tx),
        };
        self.try_command(c)?;
        Ok(AckFuture(rx))
    }

    /// Sends a message without a future of its own: the fastest way to
    /// stream many messages. The server acknowledges it like any other; the
    /// member counts the acknowledgements in its [tally](Member::tally), and
    /// [`flush`](Member::flush) waits until every message posted before it
    /// is acknowledged or refused. Waits while the command queue is full.
    pub async fn post(&self, to: Address, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.tally.submit();
        let c = Command::Post {
            to,
            payload: payload.into(),
        };
        if self.commands.send(c).await.is_err() {
            self.tally.withdraw();
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Posts many messages, in order, as [`post`](Member::post) does each:
    /// counted in the [tally](Member::tally), awaited together with
    /// [`flush`](Member::flush). They travel to the driver in commands of
    /// up to [`POST_BATCH_MAX`] messages, so a burst costs one queue slot
    /// and one wake-up per batch rather than per message (the command
    /// queue thus holds at most `commands_max × POST_BATCH_MAX` messages).
    /// Waits while the command queue is full. Returns how many were
    /// posted: all of them, unless the member closed (then
    /// [`Error::Closed`], and the messages not yet handed over are counted
    /// as refused).
    pub async fn post_many<I>(&self, messages: I) -> Result<usize, Error>
    where
        I: IntoIterator<Item = (Address, Bytes)>,
    {
        let mut messages = messages.into_iter();
        let mut posted = 0;
        loop {
            let batch: std::collections::VecDeque<(Address, Bytes)> =
                messages.by_ref().take(POST_BATCH_MAX).collect();
            if batch.is_empty() {
                return Ok(posted);
            }
            let n = batch.len();
            debug_assert!(n <= POST_BATCH_MAX);
            self.tally.submit_many(n as u64);
            if self.commands.send(Command::PostMany(batch)).await.is_err() {
                self.tally.withdraw_many(n as u64);
                return Err(Error::Closed);
            }
            posted += n;
        }
    }

    /// Like [`post`](Member::post) but returns [`Error::Busy`] at once when
    /// the command queue is full.
    pub fn try_post(&self, to: Address, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.tally.submit();
        let c = Command::Post {
            to,
            payload: payload.into(),
        };
        self.try_command(c).inspect_err(|_| self.tally.withdraw())
    }

    /// Waits until every message [posted](Member::post) before this call is
    /// acknowledged by the server or refused; returns the tally then.
    /// Fails with [`Error::Closed`] if the member closes first.
    pub async fn flush(&self) -> Result<TallyCounts, Error> {
        self.tally.flush().await.map_err(|_| Error::Closed)
    }

    /// The counts of posted messages so far: submitted, acknowledged,
    /// refused.
    pub fn tally(&self) -> TallyCounts {
        self.tally.counts()
    }

    /// What event delivery did so far: events dropped because the event
    /// stream or a subscription was not read fast enough, and times the
    /// member stopped reading its connection for a full event stream.
    pub fn stats(&self) -> Stats {
        Stats {
            events_dropped: self.stats.events_dropped.load(Ordering::Relaxed),
            stream_stalls: self.stats.stream_stalls.load(Ordering::Relaxed),
        }
    }

    /// Sends a message and resolves with its final delivery outcome: how
    /// many addressees got it, and which missed it and why. An addressee
    /// using this library counts as having got it once its application
    /// took it from its [`EventStream`] (so the outcome waits for that); a
    /// message still unread when the addressee's process dies counts as
    /// missed.
    pub async fn send_confirmed(
        &self,
        to: Address,
        payload: impl Into<Bytes>,
    ) -> Result<Outcome, Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Send {
            to,
            payload: payload.into(),
            wait: SendWait::Outcome(tx),
        })
        .await?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Sends to every other member.
    pub async fn broadcast(&self, payload: impl Into<Bytes>) -> Result<u64, Error> {
        self.send(Address::Broadcast, payload).await
    }

    /// Sends to every member of a group (the sender excluded).
    pub async fn multicast(&self, group: &str, payload: impl Into<Bytes>) -> Result<u64, Error> {
        self.send(Address::Group(group.to_owned()), payload).await
    }

    /// Sends to one member of a group (never the sender).
    pub async fn anycast(&self, group: &str, payload: impl Into<Bytes>) -> Result<u64, Error> {
        self.send(Address::Anycast(group.to_owned()), payload).await
    }

    /// Sends to every member of an instance (the sender excluded).
    pub async fn send_to_instance(
        &self,
        instance: &str,
        payload: impl Into<Bytes>,
    ) -> Result<u64, Error> {
        self.send(Address::Instance(instance.to_owned()), payload)
            .await
    }

    /// Sends a request and waits for the reply (at most `timeout`; the
    /// addressee leaving or failing ends it early with
    /// [`RequestError::PartnerGone`]).
    pub async fn request(
        &self,
        to: Address,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Message, Error> {
        let (tx, rx) = oneshot::channel();
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        self.command(Command::Request {
            to,
            payload: payload.into(),
            timeout_ms,
            reply: tx,
        })
        .await?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Answers a request ([`Event::Request`]); resolves on the ack.
    pub async fn reply(&self, to: ReplyTo, payload: impl Into<Bytes>) -> Result<u64, Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Reply {
            to,
            payload: payload.into(),
            reply: tx,
        })
        .await?;
        AckFuture(rx).await
    }

    /// Like [`reply`](Member::reply) but never waits for queue room:
    /// returns [`Error::Busy`] when the command queue is full, else a future
    /// that resolves on the ack (dropping it does not cancel the reply).
    pub fn try_reply(&self, to: ReplyTo, payload: impl Into<Bytes>) -> Result<AckFuture, Error> {
        let (tx, rx) = oneshot::channel();
        let c = Command::Reply {
            to,
            payload: payload.into(),
            reply: tx,
        };
        self.try_command(c)?;
        Ok(AckFuture(rx))
    }

    /// Publishes an event; resolves on the ack.
    pub async fn publish(&self, event: EventBody) -> Result<u64, Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Publish { event, reply: tx }).await?;
        AckFuture(rx).await
    }

    /// Announces that a service started (`up`) or stopped.
    pub async fn service_state(&self, service: &str, up: bool) -> Result<u64, Error> {
        self.publish(EventBody::ServiceState {
            service: service.to_owned(),
            up,
        })
        .await
    }

    /// Publishes a new load figure (served to load balancers).
    pub async fn set_load(&self, load: u32) -> Result<u64, Error> {
        self.publish(EventBody::Load(load)).await
    }

    /// Publishes a custom event on a topic.
    pub async fn publish_custom(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
    ) -> Result<u64, Error> {
        self.publish(EventBody::Custom {
            topic: topic.to_owned(),
            payload: payload.into(),
        })
        .await
    }

    /// Joins a group. Resolves once the server has applied the join (the
    /// server acknowledged it, or a registration carried it): everything
    /// sequenced after that, by any member, sees this member in the group.
    /// Fails with [`Error::Nacked`] when the server refuses it (`NotPermitted`:
    /// the member's credential does not permit the group); the member is
    /// then not in the group.
    pub async fn join(&self, group: &str) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Join {
            group: group.to_owned(),
            reply: tx,
        })
        .await?;
        rx.await.unwrap_or(Err(Error::Closed)).map(|_| ())
    }

    /// Leaves a group. Resolves once the server has applied it, like
    /// [`join`](Member::join).
    pub async fn leave(&self, group: &str) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Leave {
            group: group.to_owned(),
            reply: tx,
        })
        .await?;
        rx.await.unwrap_or(Err(Error::Closed)).map(|_| ())
    }

    /// Subscribes to the events matching `filter`; they arrive in stream
    /// order on the returned [`Subscription`] (and on the main
    /// [`EventStream`], listing the subscription in `handlers`). Resolves
    /// once the server has applied the subscription: every matching event
    /// sequenced after that is delivered.
    pub async fn events(&self, filter: Filter) -> Result<Subscription, Error> {
        let (sink, rx) = mpsc::channel(self.identity.events_max);
        let id = self
            .subscribe(
                filter,
                SubSink::Stream {
                    tx: sink,
                    lagged: 0,
                },
            )
            .await?;
        Ok(Subscription { id, rx, lagged: 0 })
    }

    /// Runs `handler` for each event matching `filter`, in stream order, on
    /// the member's driver task: keep it short and non-blocking (spawn a
    /// task for slow work). Returns the subscription id once the server has
    /// applied the subscription, like [`events`](Member::events).
    pub async fn on_event(
        &self,
        filter: Filter,
        handler: impl FnMut(&Notification) + Send + 'static,
    ) -> Result<u32, Error> {
        self.subscribe(filter, SubSink::Handler(Box::new(handler)))
            .await
    }

    async fn subscribe(&self, filter: Filter, sink: SubSink) -> Result<u32, Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Subscribe {
            filter,
            sink,
            reply: tx,
        })
        .await?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Drops a subscription (stream or handler).
    pub async fn unsubscribe(&self, id: u32) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Unsubscribe { id, reply: tx }).await?;
        rx.await.unwrap_or(Err(Error::Closed)).map(|_| ())
    }

    /// The view as this member knows it from its stream: `(epoch, members)`.
    pub async fn view(&self) -> Result<(u64, Vec<MemberInfo>), Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::View { reply: tx }).await?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Says goodbye: what was sent before is transmitted first (the member
    /// waits up to [`MemberConfig::goodbye_timeout`] for a connection), then
    /// the server removes the member and the others see `MemberLeft`.
    /// Resolves once the goodbye is written.
    pub async fn goodbye(&self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Goodbye(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Stops the member at once without a goodbye, as a crash would: the
    /// connection drops and unsent messages are lost. For fault drills and
    /// tests.
    pub async fn kill(&self) {
        let _ = self.control.send(Control::Kill).await;
        let mut state = self.state.clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while !matches!(&*state.borrow_and_update(), ConnectionState::Closed { .. }) {
                if state.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    /// Drops the current connection abruptly; the member reconnects and
    /// resumes its session by itself. For fault drills and tests.
    pub async fn drop_connection(&self) {
        let _ = self.control.send(Control::DropConnection).await;
    }
}
