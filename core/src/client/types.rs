//! Public input/output types of the client state machine.

use bytes::Bytes;

use crate::frame::{
    flags, Address, ClusterEvent, ErrorCode, MemberInfo, Missed, NackReason, RejectReason,
};

/// A message delivered to this member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Position in the ordered stream.
    pub gseq: u64,
    /// Sender member id.
    pub from: u64,
    /// Sender incarnation.
    pub from_incarnation: u64,
    /// Sender's sequence.
    pub seq: u64,
    /// Flags (see [`flags`]).
    pub flags: u8,
    /// How the sender addressed it.
    pub to: Address,
    /// Request correlation id (for requests).
    pub correlation: u64,
    /// The payload.
    pub payload: Bytes,
}

impl Message {
    /// True when the sender waits for a reply (see
    /// [`Client::reply`](super::Client::reply)).
    pub fn is_request(&self) -> bool {
        self.flags & flags::REQUEST != 0
    }

    /// Where a reply to this request goes.
    pub fn reply_to(&self) -> ReplyTo {
        ReplyTo {
            member_id: self.from,
            correlation: self.correlation,
        }
    }
}

/// The address of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo {
    /// The requester.
    pub member_id: u64,
    /// The request's correlation id.
    pub correlation: u64,
}

/// Why a request ended without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// No reply before the deadline.
    TimedOut,
    /// The server refused the request.
    Nacked(NackReason),
    /// The addressee left or failed before replying ("partner died").
    PartnerGone,
}

/// Options of a send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// Ask for the delivery outcome ([`ClientEvent::Outcome`]).
    pub confirm: bool,
}

/// Why a command was refused locally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The outbox of unconfirmed messages is full: wait for acks.
    #[error("outbox full ({items} messages, {bytes} bytes unconfirmed)")]
    OutboxFull {
        /// Messages in the outbox.
        items: usize,
        /// Bytes in the outbox.
        bytes: usize,
    },
    /// Too many outstanding requests.
    #[error("too many outstanding requests ({0})")]
    TooManyRequests(usize),
    /// The payload is larger than the message limit.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// A name or limit is invalid.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// The client said goodbye or was refused for good.
    #[error("client is closed")]
    Closed,
}

/// Connection state changes and stream contents, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Registered afresh: on first connect, and again after the server
    /// restarted or the session expired. `view` is the snapshot at the
    /// member's position in the stream.
    Registered {
        /// This member's id.
        member_id: u64,
        /// View epoch of the snapshot.
        epoch: u64,
        /// Stream position of the snapshot: the member's stream starts
        /// right after it.
        position: u64,
        /// The view.
        view: Vec<MemberInfo>,
        /// True when a previous session was lost (server restart or
        /// expired session): unconfirmed messages are being resent.
        session_lost: bool,
    },
    /// The session was resumed on a new connection; nothing was lost.
    Resumed {
        /// This member's id.
        member_id: u64,
    },
    /// The connection dropped; the client reconnects by itself.
    Disconnected {
        /// Why.
        reason: String,
        /// The server's error code when its `Error` frame closed the
        /// session (`LimitExceeded` for an eviction as a slow consumer,
        /// `DeclaredFailed` for another failure declaration, ...); `None`
        /// when the connection dropped otherwise.
        code: Option<ErrorCode>,
    },
    /// The server refused the handshake. `fatal` ones stop the client.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// Detail.
        text: String,
        /// True when retrying cannot help (bad secret, wrong cluster).
        fatal: bool,
    },
    /// Stream positions `from..=through` may have been lost (session
    /// expired before it could be resumed).
    Gap {
        /// First possibly lost position.
        from: u64,
        /// Last possibly lost position.
        through: u64,
    },
    /// A message.
    Message(Message),
    /// An event, with the subscription ids (handlers) whose filter matches;
    /// membership events arrive even when none matches.
    Event {
        /// Position in the stream.
        gseq: u64,
        /// View epoch after the event.
        epoch: u64,
        /// The event.
        event: ClusterEvent,
        /// Matching subscription ids.
        handlers: Vec<u32>,
        /// For a published event: the publisher's incarnation and the
        /// sequence of its `Publish`; `None` for events the server raised.
        origin: Option<(u64, u64)>,
    },
    /// The server received and sequenced message `seq`.
    Acked {
        /// The message.
        seq: u64,
    },
    /// The server refused message `seq`.
    Nacked {
        /// The message.
        seq: u64,
        /// Why.
        reason: NackReason,
    },
    /// Final outcome of a message sent with `confirm`.
    Outcome {
        /// The message.
        seq: u64,
        /// Addressees that received it.
        delivered: u32,
        /// Addressees that missed it, and why.
        missed: Vec<Missed>,
    },
    /// The reply to a pending request. (A reply that arrives after its
    /// request timed out is handed over as a plain `Message`.)
    Reply {
        /// The request (its sequence).
        request: u64,
        /// The reply as delivered.
        message: Message,
    },
    /// A request ended without a reply.
    RequestFailed {
        /// The request.
        request: u64,
        /// Why.
        error: RequestError,
    },
    /// The client is closed (goodbye sent, or a fatal reject).
    Closed,
}

/// What the driver must do, drained with [`Client::poll_output`](super::Client::poll_output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOutput {
    /// Open a connection to the server, then call `handle_connected`
    /// (or `handle_closed` if it fails).
    Connect,
    /// Write these bytes to the current connection.
    Transmit(Bytes),
    /// Close the current connection; do not call `handle_closed` for it.
    Close,
    /// Tell the application.
    Event(ClientEvent),
}
