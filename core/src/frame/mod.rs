//! The wire protocol: frames, their byte layout, and the codec.
//!
//! Every frame is `len: u32 | version: u8 | kind: u8 | body`, big endian,
//! where `len` counts the bytes after itself. `docs/PROTOCOL.md` gives the
//! body of every kind field by field; this module is its executable form.
//!
//! * [`Frame::encode`] appends one frame to a [`bytes::BytesMut`].
//! * [`decode`] takes one frame off the front of a buffer: `Ok(Some(_))`,
//!   `Ok(None)` when more bytes are needed, or a [`DecodeError`].
//!
//! Payloads decode as [`bytes::Bytes`] slices of the read buffer, so a
//! delivered payload is never copied.

mod codes;
mod decode;
mod encode;
mod error;
mod limits;
mod types;

pub use decode::{bytes_missing, decode};
pub use error::{DecodeError, EncodeError};
pub use limits::*;
pub use types::*;

use bytes::Bytes;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 2;

/// Flag bits of [`Send::flags`] and [`Deliver::flags`].
pub mod flags {
    /// The message is a request; the addressee should reply.
    pub const REQUEST: u8 = 0x01;
    /// The message is a reply to the request with the same correlation id.
    pub const REPLY: u8 = 0x02;
    /// The sender wants an [`Outcome`](super::Outcome) for this message.
    pub const CONFIRM: u8 = 0x04;
    /// More of the payload follows in [`Chunk`](super::Chunk) frames.
    pub const MORE: u8 = 0x08;
    /// Every defined flag.
    pub const ALL: u8 = REQUEST | REPLY | CONFIRM | MORE;
}

/// Capability bits a client announces in [`Hello`].
pub mod capabilities {
    /// The client reassembles chunked deliveries.
    pub const CHUNKING: u32 = 0x01;
    /// The client wants per-message outcomes when it asks for them.
    pub const OUTCOMES: u32 = 0x02;
    /// The client reports what its application took from the stream
    /// ([`Taken`](super::Taken)): an `Outcome` counts a message as
    /// delivered to it only once taken.
    pub const TAKEN: u32 = 0x04;
}

/// Client → server: register a new member (first frame of a handshake).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Hello {
    /// Cluster name; must match the server's.
    pub cluster: String,
    /// Instance name.
    pub instance: String,
    /// Process name within the instance.
    pub process: String,
    /// Incarnation id, new on every process start.
    pub incarnation: u64,
    /// Capability bits, see [`capabilities`].
    pub capabilities: u32,
    /// Client's challenge for the server.
    pub client_nonce: [u8; NONCE_BYTES],
    /// Services the member announces as up at registration.
    pub services: Vec<String>,
    /// Initial load figure.
    pub load: u32,
    /// Groups the member is in at registration (restored after a server
    /// restart in the same step as the registration).
    pub groups: Vec<String>,
    /// Subscriptions the member holds at registration.
    pub subscriptions: Vec<SubscriptionSpec>,
    /// The named secret the client proves (see
    /// [`crate::credentials`]); empty for the cluster secret. Optional on
    /// the wire: encoded only when not empty.
    pub credential: String,
}

/// A subscription as carried in [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SubscriptionSpec {
    /// Client-chosen subscription id.
    pub sub_id: u32,
    /// What it selects.
    pub filter: Filter,
}

/// Client → server: resume an existing session after a connection loss
/// (first frame of a handshake).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Resume {
    /// Cluster name; must match the server's.
    pub cluster: String,
    /// Member id from the earlier [`Welcome`].
    pub member_id: u64,
    /// The client's incarnation id, as in its [`Hello`].
    pub incarnation: u64,
    /// Server incarnation from the earlier [`Welcome`].
    pub server_incarnation: u64,
    /// Highest global sequence the client has received without a hole.
    pub delivered_through: u64,
    /// Client's challenge for the server.
    pub client_nonce: [u8; NONCE_BYTES],
    /// The named secret the client proves, as in [`Hello`]; empty for the
    /// cluster secret. Optional on the wire: encoded only when not empty.
    pub credential: String,
}

/// Server → client: the server's proof and its challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Challenge {
    /// Random id of this server run; changes on every server start.
    pub server_incarnation: u64,
    /// Server's challenge for the client.
    pub server_nonce: [u8; NONCE_BYTES],
    /// `HMAC-SHA256(secret, "switchboard/1 server" | client_nonce | server_nonce)`.
    pub server_proof: [u8; PROOF_BYTES],
    /// The same proof made with each further secret the server accepts
    /// (at most [`EXTRA_PROOFS_MAX`]); the client accepts the challenge
    /// when any proof matches its own secret.
    pub extra_proofs: Vec<[u8; PROOF_BYTES]>,
}

/// Client → server: the client's proof.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Auth {
    /// `HMAC-SHA256(secret, "switchboard/1 client" | server_nonce | client_nonce)`.
    pub client_proof: [u8; PROOF_BYTES],
    /// After a [`Resume`], the proof of holding the session:
    /// `HMAC-SHA256(session_key, "switchboard/2 resume" | server_nonce |
    /// client_nonce)` (see [`crate::auth::SessionKey`]). After a
    /// [`Hello`], zero bytes, ignored.
    pub session_proof: [u8; PROOF_BYTES],
}

/// Server → client: registration accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Welcome {
    /// Id of this member incarnation.
    pub member_id: u64,
    /// Random id of this server run.
    pub server_incarnation: u64,
    /// View epoch of the snapshot that follows.
    pub epoch: u64,
    /// Global sequence at which the snapshot was taken: the member's stream
    /// starts right after it.
    pub position: u64,
    /// Interval at which both sides ping when idle.
    pub heartbeat_interval_ms: u32,
    /// Silence after which a peer is declared failed.
    pub heartbeat_timeout_ms: u32,
    /// How long a dropped session may be resumed.
    pub resume_window_ms: u32,
    /// Largest frame the server accepts.
    pub frame_bytes_max: u32,
    /// Number of members in the [`Snapshot`] frames that follow.
    pub snapshot_members: u32,
}

/// Server → client: part of the view snapshot after a [`Welcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Snapshot {
    /// Members, in member-id order.
    pub members: Vec<MemberInfo>,
}

/// Server → client: handshake refused; the server closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Reject {
    /// Why.
    pub reason: RejectReason,
    /// Human-readable detail.
    pub text: String,
}

/// Server → client: session resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Resumed {
    /// Highest client sequence the server has received; the client resends
    /// everything after it.
    pub received_through: u64,
    /// Global sequence of the first frame the server will replay.
    pub replay_from: u64,
}

/// Server → client: deliveries in `from..=through` were lost for this member.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Gap {
    /// First global sequence that may have been lost.
    pub from: u64,
    /// Last global sequence that may have been lost.
    pub through: u64,
}

/// Client → server: a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Send {
    /// Per-sender sequence, one more than the sender's previous frame that
    /// carried a sequence.
    pub seq: u64,
    /// See [`flags`].
    pub flags: u8,
    /// Addressee.
    pub to: Address,
    /// Request/reply correlation id; 0 when neither flag is set.
    pub correlation: u64,
    /// For a request: how long the requester waits for the reply.
    pub timeout_ms: u32,
    /// Length of the whole payload; more than `payload.len()` when chunked.
    pub total_len: u32,
    /// The payload, or its first chunk.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arbitrary_bytes))]
    pub payload: Bytes,
}

/// Either direction: a further piece of a chunked message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Chunk {
    /// The message: its `seq` (client → server) or `gseq` (server → client).
    pub id: u64,
    /// Offset of this piece in the whole payload.
    pub offset: u32,
    /// The piece.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arbitrary_bytes))]
    pub payload: Bytes,
}

/// Server → client: receipt of every sequenced frame up to `through`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Ack {
    /// Highest client sequence received (accepted or NACKed).
    pub through: u64,
    /// Highest client sequence such that it and every sequence before it
    /// has reached a final state at every addressee (delivered and
    /// acknowledged, or missed). The client may forget those messages;
    /// it keeps the others to resend after a server restart.
    pub stable_through: u64,
}

/// Server → client: a frame with this sequence was refused. Travels in the
/// member's ordered stream, before any [`Ack`] that covers its sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Nack {
    /// Position in the member's stream (see [`Deliver::gseq`]): NACKs are
    /// replayed after a resume like deliveries.
    pub gseq: u64,
    /// The refused frame's sequence.
    pub seq: u64,
    /// Why.
    pub reason: NackReason,
}

/// Server → client: a message in the ordered stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Deliver {
    /// Global sequence assigned by the server.
    pub gseq: u64,
    /// Sender member id.
    pub from: u64,
    /// Sender incarnation.
    pub from_incarnation: u64,
    /// Sender's sequence for this message.
    pub seq: u64,
    /// See [`flags`].
    pub flags: u8,
    /// How the sender addressed it.
    pub to: Address,
    /// Request/reply correlation id.
    pub correlation: u64,
    /// Length of the whole payload; more than `payload.len()` when chunked.
    pub total_len: u32,
    /// The payload, or its first chunk.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = arbitrary_bytes))]
    pub payload: Bytes,
}

/// Client → server: receipt of the stream up to `through`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct DeliveryAck {
    /// Highest global sequence received without a hole.
    pub through: u64,
}

/// Client → server: the application took every stream item up to
/// `through` (sent only by a client that announced
/// [`capabilities::TAKEN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Taken {
    /// Highest global sequence through which the application took every
    /// message of the stream.
    pub through: u64,
}

/// One addressee that missed a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Missed {
    /// The addressee.
    pub member_id: u64,
    /// Why it missed the message.
    pub reason: MissReason,
}

/// Server → client: final outcome of a message sent with `CONFIRM`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Outcome {
    /// Position in the member's stream (see [`Deliver::gseq`]): outcomes
    /// are replayed after a resume like deliveries.
    pub gseq: u64,
    /// The message's sender sequence.
    pub seq: u64,
    /// Number of addressees that acknowledged delivery.
    pub delivered: u32,
    /// Addressees that missed it.
    pub missed: Vec<Missed>,
}

/// Client → server: publish an event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Publish {
    /// Per-sender sequence.
    pub seq: u64,
    /// The event.
    pub event: EventBody,
}

/// Server → client: an event in the ordered stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Notify {
    /// Global sequence assigned by the server.
    pub gseq: u64,
    /// View epoch after this event.
    pub epoch: u64,
    /// Incarnation of the member that published the event; 0 for events
    /// the server raises itself.
    pub origin_incarnation: u64,
    /// The publisher's sequence for the event; 0 for server events.
    pub origin_seq: u64,
    /// The event.
    pub event: ClusterEvent,
}

/// Client → server: add or replace a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Subscribe {
    /// Per-sender sequence.
    pub seq: u64,
    /// Client-chosen subscription id.
    pub sub_id: u32,
    /// What to select.
    pub filter: Filter,
}

/// Client → server: drop a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Unsubscribe {
    /// Per-sender sequence.
    pub seq: u64,
    /// The subscription.
    pub sub_id: u32,
}

/// Client → server: join or leave a group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct GroupOp {
    /// Per-sender sequence.
    pub seq: u64,
    /// Group name.
    pub group: String,
}

/// Either direction: goodbye; the sender closes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Goodbye {
    /// Human-readable reason.
    pub text: String,
}

/// Either direction: a fatal error; the sender closes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ErrorFrame {
    /// Code.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub text: String,
}

/// One frame of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Frame {
    /// Register (client → server).
    Hello(Hello),
    /// Resume a session (client → server).
    Resume(Resume),
    /// Server proof and challenge (server → client).
    Challenge(Challenge),
    /// Client proof (client → server).
    Auth(Auth),
    /// Registration accepted (server → client).
    Welcome(Welcome),
    /// View snapshot part (server → client).
    Snapshot(Snapshot),
    /// Handshake refused (server → client).
    Reject(Reject),
    /// Session resumed (server → client).
    Resumed(Resumed),
    /// Lost stream range (server → client).
    Gap(Gap),
    /// Message (client → server).
    Send(Send),
    /// Piece of a chunked message (both).
    Chunk(Chunk),
    /// Cumulative receipt (server → client).
    Ack(Ack),
    /// Refusal (server → client).
    Nack(Nack),
    /// Message in the stream (server → client).
    Deliver(Deliver),
    /// Cumulative stream receipt (client → server).
    DeliveryAck(DeliveryAck),
    /// What the application took from the stream (client → server).
    Taken(Taken),
    /// Delivery outcome (server → client).
    Outcome(Outcome),
    /// Publish an event (client → server).
    Publish(Publish),
    /// Event in the stream (server → client).
    Notify(Notify),
    /// Subscribe (client → server).
    Subscribe(Subscribe),
    /// Unsubscribe (client → server).
    Unsubscribe(Unsubscribe),
    /// Join a group (client → server).
    Join(GroupOp),
    /// Leave a group (client → server).
    Leave(GroupOp),
    /// Heartbeat request (both).
    Ping(u64),
    /// Heartbeat answer (both).
    Pong(u64),
    /// Goodbye (both).
    Goodbye(Goodbye),
    /// Fatal error (both).
    Error(ErrorFrame),
}

/// Frame kind codes, the byte after the version.
pub mod kind {
    #![allow(missing_docs)]
    pub const HELLO: u8 = 0x01;
    pub const RESUME: u8 = 0x02;
    pub const CHALLENGE: u8 = 0x03;
    pub const AUTH: u8 = 0x04;
    pub const WELCOME: u8 = 0x05;
    pub const SNAPSHOT: u8 = 0x06;
    pub const REJECT: u8 = 0x07;
    pub const RESUMED: u8 = 0x08;
    pub const GAP: u8 = 0x09;
    pub const SEND: u8 = 0x10;
    pub const CHUNK: u8 = 0x11;
    pub const ACK: u8 = 0x12;
    pub const NACK: u8 = 0x13;
    pub const DELIVER: u8 = 0x14;
    pub const DELIVERY_ACK: u8 = 0x15;
    pub const OUTCOME: u8 = 0x16;
    pub const TAKEN: u8 = 0x17;
    pub const PUBLISH: u8 = 0x20;
    pub const NOTIFY: u8 = 0x21;
    pub const SUBSCRIBE: u8 = 0x22;
    pub const UNSUBSCRIBE: u8 = 0x23;
    pub const JOIN: u8 = 0x24;
    pub const LEAVE: u8 = 0x25;
    pub const PING: u8 = 0x30;
    pub const PONG: u8 = 0x31;
    pub const GOODBYE: u8 = 0x32;
    pub const ERROR: u8 = 0x33;
}

impl Frame {
    /// The kind code of this frame.
    pub fn kind(&self) -> u8 {
        match self {
            Frame::Hello(_) => kind::HELLO,
            Frame::Resume(_) => kind::RESUME,
            Frame::Challenge(_) => kind::CHALLENGE,
            Frame::Auth(_) => kind::AUTH,
            Frame::Welcome(_) => kind::WELCOME,
            Frame::Snapshot(_) => kind::SNAPSHOT,
            Frame::Reject(_) => kind::REJECT,
            Frame::Resumed(_) => kind::RESUMED,
            Frame::Gap(_) => kind::GAP,
            Frame::Send(_) => kind::SEND,
            Frame::Chunk(_) => kind::CHUNK,
            Frame::Ack(_) => kind::ACK,
            Frame::Nack(_) => kind::NACK,
            Frame::Deliver(_) => kind::DELIVER,
            Frame::DeliveryAck(_) => kind::DELIVERY_ACK,
            Frame::Taken(_) => kind::TAKEN,
            Frame::Outcome(_) => kind::OUTCOME,
            Frame::Publish(_) => kind::PUBLISH,
            Frame::Notify(_) => kind::NOTIFY,
            Frame::Subscribe(_) => kind::SUBSCRIBE,
            Frame::Unsubscribe(_) => kind::UNSUBSCRIBE,
            Frame::Join(_) => kind::JOIN,
            Frame::Leave(_) => kind::LEAVE,
            Frame::Ping(_) => kind::PING,
            Frame::Pong(_) => kind::PONG,
            Frame::Goodbye(_) => kind::GOODBYE,
            Frame::Error(_) => kind::ERROR,
        }
    }

    /// True for the kinds a server sends (some, like `Ping` and `Chunk`,
    /// go both ways); false for the kinds only a member sends.
    pub fn is_from_server(&self) -> bool {
        match self {
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
            | Frame::Error(_) => true,
            Frame::Hello(_)
            | Frame::Resume(_)
            | Frame::Auth(_)
            | Frame::Send(_)
            | Frame::DeliveryAck(_)
            | Frame::Taken(_)
            | Frame::Publish(_)
            | Frame::Subscribe(_)
            | Frame::Unsubscribe(_)
            | Frame::Join(_)
            | Frame::Leave(_) => false,
        }
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "Hello",
            Frame::Resume(_) => "Resume",
            Frame::Challenge(_) => "Challenge",
            Frame::Auth(_) => "Auth",
            Frame::Welcome(_) => "Welcome",
            Frame::Snapshot(_) => "Snapshot",
            Frame::Reject(_) => "Reject",
            Frame::Resumed(_) => "Resumed",
            Frame::Gap(_) => "Gap",
            Frame::Send(_) => "Send",
            Frame::Chunk(_) => "Chunk",
            Frame::Ack(_) => "Ack",
            Frame::Nack(_) => "Nack",
            Frame::Deliver(_) => "Deliver",
            Frame::DeliveryAck(_) => "DeliveryAck",
            Frame::Taken(_) => "Taken",
            Frame::Outcome(_) => "Outcome",
            Frame::Publish(_) => "Publish",
            Frame::Notify(_) => "Notify",
            Frame::Subscribe(_) => "Subscribe",
            Frame::Unsubscribe(_) => "Unsubscribe",
            Frame::Join(_) => "Join",
            Frame::Leave(_) => "Leave",
            Frame::Ping(_) => "Ping",
            Frame::Pong(_) => "Pong",
            Frame::Goodbye(_) => "Goodbye",
            Frame::Error(_) => "Error",
        }
    }
}

/// `arbitrary` helper for `Bytes` fields.
#[cfg(feature = "arbitrary")]
pub fn arbitrary_bytes(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Bytes> {
    let v: Vec<u8> = u.arbitrary()?;
    Ok(Bytes::from(v))
}
