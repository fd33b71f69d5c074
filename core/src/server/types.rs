//! Public input/output types of the server state machine.

use bytes::Bytes;

use super::stats::{LatencyHistogram, ADDRESS_KINDS, FAIL_REASONS, NACK_REASONS, REJECT_REASONS};
use crate::frame::{ClusterEvent, FailReason, RejectReason};

/// A connection, named by the driver. Ids must not be reused while the
/// server still knows the connection (until `handle_closed` or a `Close`
/// output for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Why the server closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The handshake was refused.
    Rejected(RejectReason),
    /// The bytes broke the protocol.
    ProtocolError,
    /// The member was declared failed (the connection is still open: for
    /// example a heartbeat timeout or a slow-consumer eviction).
    MemberFailed(FailReason),
    /// The member said goodbye.
    Goodbye,
    /// The member resumed its session on a newer connection.
    Replaced,
    /// The server is shutting down.
    Shutdown,
}

/// What the driver must do, drained with [`Server::poll_output`](super::Server::poll_output).
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Write these bytes to the connection, after everything transmitted
    /// before on it.
    Transmit {
        /// The connection.
        conn: ConnId,
        /// Encoded frames.
        data: Bytes,
    },
    /// Close the connection once what was transmitted before is written.
    /// The server has already forgotten it; do not call `handle_closed`.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// Something worth logging or counting.
    Event(ServerEvent),
}

/// Notable server happenings, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A member registered.
    MemberJoined {
        /// Its id.
        member_id: u64,
        /// `instance/process`.
        name: String,
        /// Its incarnation.
        incarnation: u64,
        /// The connection it registered on.
        conn: ConnId,
        /// The credential it proved (for audit lines).
        credential: String,
    },
    /// A member's connection dropped; its session waits for a resume.
    MemberDetached {
        /// Its id.
        member_id: u64,
    },
    /// A member resumed its session.
    MemberResumed {
        /// Its id.
        member_id: u64,
        /// Stream items replayed to it.
        replayed: usize,
    },
    /// A member said goodbye.
    MemberLeft {
        /// Its id.
        member_id: u64,
        /// `instance/process`.
        name: String,
    },
    /// A member was declared failed (evictions included).
    MemberFailed {
        /// Its id.
        member_id: u64,
        /// `instance/process`.
        name: String,
        /// Why.
        reason: FailReason,
    },
    /// A member's chunked message was dropped before it was complete; it
    /// was NACKed `Incomplete`.
    ReassemblyDropped {
        /// The sender.
        member_id: u64,
        /// The message's sequence number.
        seq: u64,
        /// Bytes of it received.
        received: u32,
        /// Its declared length.
        total_len: u32,
        /// Why.
        why: super::ReassemblyDrop,
    },
    /// A handshake was refused.
    HandshakeRejected {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: RejectReason,
        /// Detail.
        detail: String,
    },
    /// A connection broke the protocol.
    ProtocolError {
        /// The connection.
        conn: ConnId,
        /// What was wrong.
        detail: String,
    },
    /// A credential's permissions refused something (see
    /// [`DenialKind`]); never carries a secret.
    PermissionDenied {
        /// The connection, when the refused party has one.
        conn: Option<ConnId>,
        /// The member, once registered.
        member_id: Option<u64>,
        /// The credential's name.
        credential: String,
        /// What was refused.
        kind: DenialKind,
        /// What was refused, in words (names the instance, address, group
        /// or topic).
        detail: String,
    },
    /// A cluster event was sequenced (for watchers outside the cluster).
    Sequenced {
        /// Its stream position.
        gseq: u64,
        /// The view epoch after it.
        epoch: u64,
        /// The event.
        event: ClusterEvent,
    },
}

/// What a credential's permissions refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DenialKind {
    /// A registration as an instance outside its patterns, or with a
    /// group it may not join (`Reject{NotPermitted}`).
    Register,
    /// A registration that would supersede (or adopt the session of) a
    /// member registered with another credential (`Reject{NotPermitted}`).
    Supersede,
    /// A message to an address it may not send to (`Nack{NotPermitted}`).
    Send,
    /// A `Join` of a group it may not join (`Nack{NotPermitted}`).
    Join,
    /// A `Publish` of a topic it may not publish (`Nack{NotPermitted}`).
    Publish,
    /// A reload removed the member's credential or no longer permits its
    /// instance (`Error{NotPermitted}`, disconnected).
    Revoked,
}

impl DenialKind {
    /// Every kind, in [`ServerStats::permission_denials`] order.
    pub const ALL: [DenialKind; 6] = [
        DenialKind::Register,
        DenialKind::Supersede,
        DenialKind::Send,
        DenialKind::Join,
        DenialKind::Publish,
        DenialKind::Revoked,
    ];

    /// Its label in logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            DenialKind::Register => "register",
            DenialKind::Supersede => "supersede",
            DenialKind::Send => "send",
            DenialKind::Join => "join",
            DenialKind::Publish => "publish",
            DenialKind::Revoked => "revoked",
        }
    }

    /// Its index in [`ServerStats::permission_denials`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Messages accepted and sequenced.
    pub messages_accepted: u64,
    /// Messages NACKed.
    pub messages_nacked: u64,
    /// Stream items enqueued to members (deliveries, events, outcomes).
    pub items_enqueued: u64,
    /// Stream items acknowledged by members.
    pub items_acked: u64,
    /// Events sequenced.
    pub events: u64,
    /// Members evicted as slow consumers.
    pub evictions: u64,
    /// Sessions resumed.
    pub resumes: u64,
    /// Handshakes rejected.
    pub rejects: u64,
    /// Gap notices sent.
    pub gaps: u64,
    /// Connections accepted on the member port.
    pub connections_accepted: u64,
    /// Registrations (new member sessions).
    pub registrations: u64,
    /// Registrations of a process incarnation whose earlier session was
    /// lost: it continues its sequence space.
    pub reregistrations: u64,
    /// Handshakes rejected, by reason ([`REJECT_REASONS`] order).
    pub rejects_by_reason: [u64; REJECT_REASONS.len()],
    /// `Send` frames received, by address kind ([`ADDRESS_KINDS`] order).
    pub messages_in_by_kind: [u64; ADDRESS_KINDS.len()],
    /// Payload bytes received in `Send` and `Chunk` frames, by kind.
    pub bytes_in_by_kind: [u64; ADDRESS_KINDS.len()],
    /// Deliveries enqueued (one per recipient), by address kind.
    pub deliveries_by_kind: [u64; ADDRESS_KINDS.len()],
    /// Encoded bytes of those deliveries, by address kind.
    pub delivery_bytes_by_kind: [u64; ADDRESS_KINDS.len()],
    /// Encoded bytes of every stream item enqueued.
    pub items_enqueued_bytes: u64,
    /// NACKs, by reason ([`NACK_REASONS`] order).
    pub nacks_by_reason: [u64; NACK_REASONS.len()],
    /// Outcomes sent for confirmed messages.
    pub outcomes: u64,
    /// Events published by members and sequenced.
    pub events_published: u64,
    /// Members declared failed, by reason ([`FAIL_REASONS`] order).
    pub failures_by_reason: [u64; FAIL_REASONS.len()],
    /// Members that said goodbye.
    pub leaves: u64,
    /// Refusals by a credential's permissions, by kind ([`DenialKind::ALL`]
    /// order).
    pub permission_denials: [u64; DenialKind::ALL.len()],
    /// Chunked messages reassembled from members.
    pub chunked_in: u64,
    /// Chunked messages dropped before they were complete (reassembly
    /// deadline or space) and NACKed `Incomplete`.
    pub reassembly_dropped: u64,
    /// Messages delivered in chunks.
    pub chunked_out: u64,
    /// Time from receipt of a message or published event to its
    /// sequencing (waits while its sender is throttled or it is parked).
    /// Every message and published event sequenced is in it.
    pub sequencing_latency: LatencyHistogram,
    /// Time from sequencing a message or published event to its last
    /// addressee's acknowledgement (or miss).
    pub ack_latency: LatencyHistogram,
}
