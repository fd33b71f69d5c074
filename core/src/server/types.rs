//! Public input/output types of the server state machine.

use bytes::Bytes;

use crate::frame::{FailReason, RejectReason};

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
}
