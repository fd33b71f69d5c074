//! What a member hears: the event stream, subscription streams and the
//! connection state.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::Message;
use switchboard_core::frame::{ClusterEvent, MemberInfo, RejectReason};
use tokio::sync::{mpsc, Notify};

/// One item of a member's ordered stream, as the application sees it.
/// Acks, NACKs, outcomes and replies resolve the futures of the calls that
/// caused them and do not appear here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A one-way message.
    Message(Message),
    /// A request: answer with [`Member::reply`](super::Member::reply) and
    /// `message.reply_to()`.
    Request(Message),
    /// A cluster event (membership events always; others when a
    /// subscription matches, listed in `handlers`).
    Cluster(Notification),
    /// Registered afresh (first connect, or after a server restart or an
    /// expired session: then `session_lost` is true and unconfirmed
    /// messages are being resent).
    Registered {
        /// This member's id in the new session.
        member_id: u64,
        /// View epoch of the snapshot.
        epoch: u64,
        /// Stream position of the snapshot: this session's stream starts
        /// right after it.
        position: u64,
        /// The view at this member's position in the stream.
        view: Vec<MemberInfo>,
        /// A previous session was lost.
        session_lost: bool,
    },
    /// The session was resumed on a new connection; nothing was lost.
    Resumed {
        /// This member's id.
        member_id: u64,
    },
    /// The connection dropped; the member reconnects by itself.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// The server refused the handshake.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// Detail.
        text: String,
        /// True when retrying cannot help; the member is closed.
        fatal: bool,
    },
    /// Stream positions `from..=through` may have been lost (the session
    /// expired before it could be resumed).
    Gap {
        /// First possibly lost position.
        from: u64,
        /// Last possibly lost position.
        through: u64,
    },
    /// `missed` cluster events were dropped because this stream was full
    /// (the application read it too slowly). Messages and requests are
    /// never dropped; only cluster events are, so that an unread stream
    /// never stops the member from reading its connection. The view
    /// ([`Member::view`](super::Member::view)) is still exact. Counted in
    /// [`Member::stats`](super::Member::stats) and logged.
    Lagged {
        /// Cluster events dropped since the previous item.
        missed: u64,
    },
    /// The member is closed (goodbye, fatal reject, or killed).
    Closed,
}

/// A cluster event at its position in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Stream position.
    pub gseq: u64,
    /// View epoch after the event.
    pub epoch: u64,
    /// The event.
    pub event: ClusterEvent,
    /// Subscription ids whose filter matches.
    pub handlers: Vec<u32>,
}

/// Where the member's connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Connecting or handshaking.
    Connecting,
    /// Registered (or resumed) and streaming.
    Connected {
        /// This member's id.
        member_id: u64,
    },
    /// The connection dropped; reconnecting.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// The last TLS handshake with the server failed (an untrusted
    /// certificate, a server that does not speak TLS, a refused client
    /// certificate); retrying with backoff.
    TlsFailed {
        /// Why, in words.
        reason: String,
    },
    /// Closed for good.
    Closed {
        /// Why.
        reason: String,
    },
}

/// The member's ordered stream of [`Event`]s. A [`Stream`](futures_core::Stream);
/// [`next`](EventStream::next) for use without a stream combinator crate.
///
/// Read it or drop it. When it is full, cluster events are dropped and an
/// [`Event::Lagged`] notice takes their place once there is room again, like
/// a lagging `tokio::sync::broadcast` receiver. Messages and requests are
/// never dropped: while one waits for room the member stops reading its
/// connection (logged at WARN), and a member that stays behind long enough
/// is evicted by the server as a slow consumer.
///
/// A sender's `Outcome` counts a message as delivered to this member once
/// the application has taken it from this stream (or dropped the stream):
/// a message still queued here when the process dies counts as missed.
#[derive(Debug)]
pub struct EventStream {
    pub(crate) rx: mpsc::Receiver<Event>,
    pub(crate) taken: Arc<Taken>,
}

impl EventStream {
    /// The next event; `None` once the member is closed and the stream is
    /// drained.
    pub async fn next(&mut self) -> Option<Event> {
        let ev = self.rx.recv().await;
        self.took_one(ev.as_ref());
        ev
    }

    /// The next event if one is ready.
    pub fn try_next(&mut self) -> Option<Event> {
        let ev = self.rx.try_recv().ok();
        self.took_one(ev.as_ref());
        ev
    }

    /// Waits for at least one event, then appends up to `limit` ready
    /// events to `buf` in order (one wake-up for many events: the way to
    /// read a busy stream). Returns how many; 0 once the member is closed
    /// and the stream is drained.
    pub async fn next_many(&mut self, buf: &mut Vec<Event>, limit: usize) -> usize {
        let start = buf.len();
        let n = self.rx.recv_many(buf, limit).await;
        let messages = buf[start..].iter().map(message_count).sum();
        self.taken.took(messages, self.rx.is_empty());
        n
    }

    fn took_one(&self, ev: Option<&Event>) {
        if let Some(ev) = ev {
            self.taken.took(message_count(ev), self.rx.is_empty());
        }
    }
}

impl Drop for EventStream {
    /// What is still queued is discarded; its messages count as taken (the
    /// application chose not to read them).
    fn drop(&mut self) {
        self.rx.close();
        let mut n = 0;
        while let Ok(ev) = self.rx.try_recv() {
            n += message_count(&ev);
        }
        self.taken.took(n, true);
    }
}

impl futures_core::Stream for EventStream {
    type Item = Event;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let p = self.rx.poll_recv(cx);
        if let Poll::Ready(ev) = &p {
            self.took_one(ev.as_ref());
        }
        p
    }
}

/// Messages and requests the application took from its [`EventStream`],
/// shared by the stream and the driver, which reports them to the server
/// (`Taken` frames).
#[derive(Debug, Default)]
pub(crate) struct Taken {
    /// Messages and requests taken (or discarded with a dropped stream).
    pub count: AtomicU64,
    /// Wakes the driver to report what was taken.
    pub wake: Notify,
}

/// The driver is woken at least this often while an application takes
/// messages from a busy stream, and whenever the stream runs empty (else
/// it reports at its next input: a frame, a timer, a command).
const TAKEN_WAKE_EVERY: u64 = 64;

impl Taken {
    /// `n` more messages or requests were taken; `drained` when nothing
    /// is left in the stream.
    pub(crate) fn took(&self, n: u64, drained: bool) {
        if n == 0 {
            return;
        }
        let before = self.count.fetch_add(n, Ordering::Relaxed);
        if drained || (before + n) / TAKEN_WAKE_EVERY != before / TAKEN_WAKE_EVERY {
            self.wake.notify_one();
        }
    }
}

/// 1 for a message or a request (what the client core counts as handed
/// over), else 0.
pub(crate) fn message_count(ev: &Event) -> u64 {
    u64::from(matches!(ev, Event::Message(_) | Event::Request(_)))
}

/// One item on a subscription's queue.
#[derive(Debug)]
pub(crate) enum SubItem {
    /// A matching event.
    Event(Notification),
    /// This many matching events were dropped before the next one.
    Lagged(u64),
}

/// Why [`Subscription::recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The subscription fell behind: this many matching events were dropped
    /// because its queue was full. The next call returns the event after
    /// them.
    #[error("the subscription fell behind: {0} events were dropped because it was not read")]
    Lagged(u64),
    /// The member is closed and the queue is drained.
    #[error("the member is closed")]
    Closed,
}

/// The events matching one subscription's filter, in stream order. Dropping
/// it does not unsubscribe (see [`Member::unsubscribe`](super::Member::unsubscribe)).
///
/// A subscription never holds up the member: when its queue
/// ([`MemberConfig::events_max`](super::MemberConfig::events_max)) is full,
/// further matching events are dropped for it, counted (see
/// [`Member::stats`](super::Member::stats)) and logged at WARN, and
/// [`recv`](Subscription::recv) reports [`RecvError::Lagged`] with their
/// number before the next event, as a lagging `tokio::sync::broadcast`
/// receiver does.
#[derive(Debug)]
pub struct Subscription {
    pub(crate) id: u32,
    pub(crate) rx: mpsc::Receiver<SubItem>,
    pub(crate) lagged: u64,
}

impl Subscription {
    /// The subscription id (as listed in [`Notification::handlers`]).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The next matching event, or [`RecvError::Lagged`] when events were
    /// dropped before it, or [`RecvError::Closed`] once the member is closed
    /// and the queue drained.
    pub async fn recv(&mut self) -> Result<Notification, RecvError> {
        match self.rx.recv().await {
            Some(SubItem::Event(n)) => Ok(n),
            Some(SubItem::Lagged(k)) => {
                self.lagged += k;
                Err(RecvError::Lagged(k))
            }
            None => Err(RecvError::Closed),
        }
    }

    /// The next matching event, stepping over lag notices (their count is
    /// in [`lagged`](Subscription::lagged)); `None` once the member is
    /// closed.
    pub async fn next(&mut self) -> Option<Notification> {
        loop {
            match self.recv().await {
                Ok(n) => return Some(n),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Matching events dropped so far because this subscription was not
    /// read fast enough (as far as the lag notices were read).
    pub fn lagged(&self) -> u64 {
        self.lagged
    }
}

impl futures_core::Stream for Subscription {
    /// An event, or the number of events dropped before the next one.
    type Item = Result<Notification, RecvError>;
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Notification, RecvError>>> {
        self.rx.poll_recv(cx).map(|o| {
            o.map(|item| match item {
                SubItem::Event(n) => Ok(n),
                SubItem::Lagged(k) => {
                    self.lagged += k;
                    Err(RecvError::Lagged(k))
                }
            })
        })
    }
}
