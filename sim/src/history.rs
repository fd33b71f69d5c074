//! The recorded history of a run: every observable act, in the order the
//! simulator saw it. Checkers read only this, so a hand-made history can
//! test a checker without running anything.

use switchboard_core::frame::{
    Address, ClusterEvent, ErrorCode, EventBody, EventKind, FailReason, Missed, NackReason,
};

/// Virtual time in milliseconds.
pub type Ms = u64;

/// A member process incarnation: the simulator's slot index plus the
/// incarnation id the process chose at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Proc {
    /// Slot (0..members).
    pub slot: usize,
    /// Incarnation id.
    pub incarnation: u64,
}

/// Identity of a message: sender incarnation and sender sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgId {
    /// Sender incarnation.
    pub sender: u64,
    /// Sender sequence.
    pub seq: u64,
}

/// Digest of a published event's content: the same for the `EventBody`
/// published and the `ClusterEvent` delivered (see [`delivered_digest`]).
pub fn event_digest(body: &EventBody) -> u64 {
    let mut h = Fnv::default();
    match body {
        EventBody::ServiceState { service, up } => {
            h.put(&[0]);
            h.put(service.as_bytes());
            h.put(&[u8::from(*up)]);
        }
        EventBody::Load(load) => {
            h.put(&[1]);
            h.put(&load.to_be_bytes());
        }
        EventBody::Custom { topic, payload } => {
            h.put(&[2]);
            h.put(&(topic.len() as u32).to_be_bytes());
            h.put(topic.as_bytes());
            h.put(payload);
        }
    }
    h.0
}

/// The publisher's member id and the content digest of a delivered
/// published event; `None` for the events the server raises.
pub fn delivered_digest(event: &ClusterEvent) -> Option<(u64, u64)> {
    let (member_id, body) = match event {
        ClusterEvent::ServiceState {
            member_id,
            service,
            up,
        } => (
            *member_id,
            EventBody::ServiceState {
                service: service.clone(),
                up: *up,
            },
        ),
        ClusterEvent::Load { member_id, load } => (*member_id, EventBody::Load(*load)),
        ClusterEvent::Custom {
            member_id,
            topic,
            payload,
        } => (
            *member_id,
            EventBody::Custom {
                topic: topic.clone(),
                payload: payload.clone(),
            },
        ),
        _ => return None,
    };
    Some((member_id, event_digest(&body)))
}

/// The kind and topic a subscription filter judges a published event by
/// (`Filter::matches`: the topic of a service event is the service name;
/// a load event has none).
pub fn event_kind_topic(body: &EventBody) -> (EventKind, &str) {
    match body {
        EventBody::ServiceState { service, .. } => (EventKind::Service, service),
        EventBody::Load(_) => (EventKind::Load, ""),
        EventBody::Custom { topic, .. } => (EventKind::Custom, topic),
    }
}

/// A subscription filter as the history records it: the fields of
/// `switchboard_core::frame::Filter`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubFilter {
    /// Bit mask of `EventKind`s.
    pub kinds: u16,
    /// Topic prefix (empty: any).
    pub topic_prefix: String,
}

impl SubFilter {
    /// Whether a published event of `kind` on `topic` passes the filter,
    /// by the core's own rule (`Filter::matches`).
    pub fn matches(&self, kind: EventKind, topic: &str) -> bool {
        self.kinds & kind.bit() != 0 && topic.starts_with(&self.topic_prefix)
    }
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn put(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A membership event as a member saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViewChange {
    /// `MemberJoined(member_id)`.
    Joined(u64),
    /// `MemberLeft(member_id)`.
    Left(u64),
    /// `MemberFailed(member_id)`.
    Failed(u64, FailReason),
}

impl ViewChange {
    /// The member the change is about.
    pub fn member_id(&self) -> u64 {
        match self {
            ViewChange::Joined(m) | ViewChange::Left(m) | ViewChange::Failed(m, _) => *m,
        }
    }
}

/// What a sequenced event says of a member's services
/// ([`Act::ServerServices`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServiceFact {
    /// `MemberJoined`: the member's services at registration.
    Joined(Vec<String>),
    /// `ServiceState`: the service is now up (true) or down.
    Change {
        /// Service name.
        service: String,
        /// Up or down.
        up: bool,
    },
}

/// One observable act.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Act {
    /// A process started (first start or restart after a crash).
    Started {
        /// The process.
        proc: Proc,
        /// Instance name.
        instance: String,
        /// Process name.
        process: String,
    },
    /// A process crashed (all its state lost).
    Crashed {
        /// The process.
        proc: Proc,
    },
    /// A process said goodbye (it stops for good).
    Goodbye {
        /// The process.
        proc: Proc,
    },
    /// The server started (first start or restart), with its incarnation.
    ServerStarted {
        /// Server incarnation.
        server: u64,
    },
    /// The server crashed (all its state lost).
    ServerCrashed {
        /// Server incarnation that died.
        server: u64,
    },
    /// A member registered: its id and the view snapshot at `position`.
    Registered {
        /// The process.
        proc: Proc,
        /// Server incarnation.
        server: u64,
        /// Member id given.
        member_id: u64,
        /// Stream position of the snapshot.
        position: u64,
        /// Member ids in the snapshot.
        view: Vec<u64>,
    },
    /// The member resumed its session.
    Resumed {
        /// The process.
        proc: Proc,
    },
    /// The server refused the member's resume (`Reject{SessionUnknown}`):
    /// the client dropped its session and registers afresh.
    ResumeRefused {
        /// The process.
        proc: Proc,
        /// Server incarnation that refused.
        server: u64,
        /// Member id of the session it tried to resume.
        member_id: u64,
    },
    /// The member was told positions `from..=through` may be lost.
    GapNotice {
        /// The process.
        proc: Proc,
        /// First position.
        from: u64,
        /// Last position.
        through: u64,
    },
    /// The application's event stream dropped cluster events (membership
    /// events among them) because it was full: the process's view events
    /// have a hole here. Only the client library's stream does this; the
    /// core client never drops.
    EventsLagged {
        /// The process.
        proc: Proc,
        /// Cluster events dropped.
        missed: u64,
    },
    /// The application asked to send a message and the client accepted it.
    Sent {
        /// The sender.
        proc: Proc,
        /// Message identity.
        id: MsgId,
        /// Address.
        to: Address,
        /// Unique payload tag chosen by the workload.
        tag: u64,
        /// Confirmation asked.
        confirm: bool,
        /// Request (expects a reply).
        request: bool,
        /// Payload length, bytes.
        bytes: u32,
    },
    /// The application joined (true) or left a group.
    GroupOp {
        /// The member.
        proc: Proc,
        /// Group.
        group: String,
        /// Join (true) or leave.
        join: bool,
        /// Its sequence.
        seq: u64,
    },
    /// The server acknowledged receipt.
    Acked {
        /// The sender.
        proc: Proc,
        /// Sequence.
        seq: u64,
    },
    /// The server refused.
    Nacked {
        /// The sender.
        proc: Proc,
        /// Sequence.
        seq: u64,
        /// Why.
        reason: NackReason,
    },
    /// Final outcome of a confirmed message.
    Outcome {
        /// The sender.
        proc: Proc,
        /// Sequence.
        seq: u64,
        /// Addressees that delivered.
        delivered: u32,
        /// Addressees that missed it.
        missed: Vec<Missed>,
    },
    /// A message was handed to the application.
    Delivered {
        /// The receiver.
        proc: Proc,
        /// Server incarnation of the session it arrived in.
        server: u64,
        /// Receiver's member id in that session.
        member_id: u64,
        /// Stream position.
        gseq: u64,
        /// Sender member id.
        from: u64,
        /// Message identity.
        id: MsgId,
        /// Payload tag as decoded from the payload.
        tag: u64,
        /// True when the payload's checksum matched its tag.
        intact: bool,
    },
    /// The application published an event and the client accepted it.
    Published {
        /// The publisher.
        proc: Proc,
        /// Its identity: the publisher's incarnation and the `Publish`
        /// sequence (one sequence space with its messages).
        id: MsgId,
        /// Digest of the event's content ([`event_digest`]).
        digest: u64,
        /// Payload length of a custom event (0 for service and load).
        bytes: u32,
        /// The event is well formed by the protocol's rules (a service
        /// name non-empty, within `NAME_BYTES_MAX`, without control
        /// characters): an `Invalid` NACK for it is wrong.
        valid: bool,
        /// Its kind, for subscription filters ([`event_kind_topic`]).
        kind: EventKind,
        /// Its topic, for subscription filters ([`event_kind_topic`]).
        topic: String,
    },
    /// The application subscribed to published events and the client
    /// accepted it (a `Subscribe` with this sequence is queued). The
    /// server applies it when it processes the frame, or at a later
    /// registration whose `Hello` carries it; the simulator records an
    /// `Acked` of `seq` once the server has its effect (acked, resumed
    /// past or carried by a registration, `Client::effective_through`).
    Subscribed {
        /// The subscriber.
        proc: Proc,
        /// Sequence of the `Subscribe`.
        seq: u64,
        /// Subscription id (unique per process incarnation).
        sub_id: u32,
        /// What it selects.
        filter: SubFilter,
    },
    /// The application dropped a subscription and the client accepted it
    /// (an `Unsubscribe` with this sequence is queued; later `Hello`s no
    /// longer carry the subscription). Acked like [`Act::Subscribed`].
    Unsubscribed {
        /// The subscriber.
        proc: Proc,
        /// Sequence of the `Unsubscribe`.
        seq: u64,
        /// Subscription id dropped.
        sub_id: u32,
    },
    /// A published event was handed to the application (as a subscriber,
    /// or as any member for a service or load change).
    Notified {
        /// The receiver.
        proc: Proc,
        /// Server incarnation of the session it arrived in.
        server: u64,
        /// Receiver's member id in that session.
        member_id: u64,
        /// Stream position.
        gseq: u64,
        /// The publisher's member id, as the event names it.
        from: u64,
        /// The event's origin (publisher incarnation, `Publish` sequence).
        id: MsgId,
        /// Digest of the content as received ([`event_digest`]).
        digest: u64,
    },
    /// A membership event was handed to the application.
    ViewEvent {
        /// The receiver.
        proc: Proc,
        /// Server incarnation.
        server: u64,
        /// Stream position.
        gseq: u64,
        /// The change.
        change: ViewChange,
        /// The view epoch the event carried (one more per view change).
        epoch: u64,
    },
    /// A member saw another member's (or its own) advertised services at
    /// a stream position: in the snapshot of its registration (`gseq` is
    /// the snapshot's position) or in a `MemberJoined` event (`gseq` is the
    /// event's). Either way it is the services as of that position, after
    /// every event at or before it.
    ServicesSeen {
        /// The witness.
        proc: Proc,
        /// Server incarnation.
        server: u64,
        /// Stream position.
        gseq: u64,
        /// The member described.
        member_id: u64,
        /// Its services, as the snapshot or event listed them.
        services: Vec<String>,
    },
    /// The server sequenced an event that sets a member's services
    /// (server-side log of its ordered event stream, independent of any
    /// member's stream): a `MemberJoined` with the services it registered
    /// with, or a service up/down event the member published.
    ServerServices {
        /// Server incarnation.
        server: u64,
        /// Stream position of the event.
        gseq: u64,
        /// The member.
        member_id: u64,
        /// What the event says.
        fact: ServiceFact,
    },
    /// The server declared a member failed or saw it leave (server-side
    /// log, independent of any member's stream).
    ServerRemoved {
        /// Server incarnation.
        server: u64,
        /// Member id.
        member_id: u64,
        /// `None` for a goodbye.
        reason: Option<FailReason>,
    },
    /// A fault hit a slot (or the server, with `slot: None`) over an
    /// interval: used to judge failure declarations.
    Fault {
        /// Affected slot; `None` for the server or the whole network.
        slot: Option<usize>,
        /// Start.
        from: Ms,
        /// End.
        until: Ms,
        /// Which fault.
        kind: &'static str,
    },
    /// A member's server queue went over its soft item or byte limit
    /// (`over`) or back under both (also when the member was removed or
    /// the server crashed). Notices (NACKs, outcomes) count toward the
    /// bytes, not the items, as in the core.
    QueueOver {
        /// Server incarnation.
        server: u64,
        /// Member id.
        member_id: u64,
        /// Over the soft limit from now on (true) or no longer (false).
        over: bool,
    },
    /// A memory sample: largest server queue and client outbox seen.
    Memory {
        /// Largest unacknowledged stream of any member, items.
        server_queue_max: usize,
        /// Largest client outbox, items.
        outbox_max: usize,
        /// Largest unacknowledged stream of any member, bytes of its
        /// frames (counted afresh, `Server::queued_frame_bytes`).
        server_queue_bytes_max: usize,
    },
    /// End of run: the state of each live process after healing.
    Final {
        /// The process.
        proc: Proc,
        /// Registered and streaming.
        ready: bool,
        /// In the server's view.
        in_view: bool,
        /// Unconfirmed messages left in its outbox.
        outbox: usize,
        /// Confirmed messages still without a final status.
        unresolved_confirms: usize,
    },
    /// The server registered a member (server-side log, independent of
    /// any member's stream: its `MemberJoined` was sequenced). With
    /// [`Act::ServerRemoved`] it tells which member ids, names and
    /// instances the server held at each point of the history.
    ServerJoined {
        /// Server incarnation.
        server: u64,
        /// Stream position of its `MemberJoined`.
        gseq: u64,
        /// Member id given.
        member_id: u64,
        /// Instance name.
        instance: String,
        /// Process name.
        process: String,
    },
    /// The server changed a member's groups (server-side log: a
    /// sequenced `MemberJoined` lists the groups it registered with, one
    /// act each; `GroupJoined` and `GroupLeft`). A removal
    /// ([`Act::ServerRemoved`]) takes the member out of every group.
    ServerGroup {
        /// Server incarnation.
        server: u64,
        /// Stream position of the event (the `MemberJoined`'s for the
        /// groups a registration lists).
        gseq: u64,
        /// Member id.
        member_id: u64,
        /// The group.
        group: String,
        /// Joined (or registered in it), or left.
        joined: bool,
    },
    /// The client's stable watermark changed: the `stable_through` of the
    /// latest `Ack` of its current session (every `seq` at or below it is
    /// final at every addressee in that server run: received, or missed
    /// because the addressee was removed), as `Client::stable_through`
    /// reports it after an input. A new session starts again from 0.
    Stable {
        /// The sender.
        proc: Proc,
        /// The watermark.
        through: u64,
    },
    /// The client's connection dropped (`ClientEvent::Disconnected`).
    Disconnected {
        /// The process.
        proc: Proc,
        /// The code of the server's `Error` frame that closed it, if one
        /// did.
        code: Option<ErrorCode>,
        /// The connection's close reached the client (rather than the
        /// client dropping it on its own: an `Error` frame, a timeout).
        by_peer: bool,
    },
    /// The server wrote a stream item carrying a message (`Deliver`) or a
    /// published event (`Notify` with an origin) to a connection of the
    /// process: its first transmission there in this server run (replays
    /// after a resume are not recorded again). Used by G5 (e).
    Written {
        /// The process the connection belongs to.
        proc: Proc,
        /// Server incarnation.
        server: u64,
        /// Stream position of the item.
        gseq: u64,
        /// The message's identity, or the event's origin (publisher
        /// incarnation, `Publish` sequence).
        id: MsgId,
    },
    /// In a server step driven by a read from member `member_id`'s
    /// connection, items the member sent (messages or published events)
    /// went into the queue of `by`, which was over its soft item or byte
    /// limit after them: the member must be throttled (G11). Recorded only
    /// where the step leaves no doubt whose items they were (no event the
    /// server raised itself, no removal, no restart grace, no other member
    /// released from its throttle, the member not over half its own limit).
    ThrottleDue {
        /// Server incarnation.
        server: u64,
        /// The sender or publisher.
        member_id: u64,
        /// The recipient over its soft limit.
        by: u64,
        /// Last stream position assigned in that step: the member's items
        /// at higher positions came later.
        gseq: u64,
    },
    /// Member `member_id`'s queue was, or may have been, at or under half
    /// its soft limits at some point of a server step (it was over half
    /// before the step and not after it, or its queue shrank in it), or
    /// the member was removed in it (`removed`): senders throttled by it
    /// may go on from that step (and a removed member's own throttle ends).
    QueueUnderHalf {
        /// Server incarnation.
        server: u64,
        /// Member id.
        member_id: u64,
        /// Last stream position assigned before that step.
        gseq: u64,
        /// The member was removed in that step.
        removed: bool,
    },
    /// A **hostile member** wrote a crafted frame on its connection,
    /// bypassing its client's own checks (`sim/src/world/hostile.rs`). The
    /// simulator writes it only onto a connection the server holds attached
    /// to the member's session, with no bytes in flight either way, no
    /// bytes held back and the member not throttled, and hands it to the
    /// server at once: the server processes it in the step that records
    /// this act, before anything else happens.
    Hostile {
        /// The member process.
        proc: Proc,
        /// Server incarnation the frame was written to.
        server: u64,
        /// The member id of the session it was written in.
        member_id: u64,
        /// What it wrote.
        frame: HostileFrame,
    },
}

/// A crafted frame a hostile member writes ([`Act::Hostile`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostileFrame {
    /// A `Send` (to the member itself) whose `seq` lies far from the
    /// client's: past the window ahead or behind it (a violation), or
    /// exactly `SEQ_WINDOW` behind the server's mark (a resend the server
    /// ignores); [`HostileFrame::is_seq_violation`] tells which.
    Seq {
        /// The frame's sequence.
        seq: u64,
        /// Highest sequence the server acknowledged to the client in this
        /// session (an `Acked` of it is in the history, after the session's
        /// `Registered`): the server has processed at least this far.
        acked: u64,
        /// The client's most recent sequence: the server has processed at
        /// most this far.
        last: u64,
    },
    /// A `DeliveryAck{through}` beyond every stream position the member
    /// received, written right after the client's own frames carrying
    /// `self_seq`, a CONFIRM message to the member itself (recorded as
    /// `Sent`), when the client transmitted it in that write: the server
    /// enqueues that message and, before it transmits it, reads the ack.
    AckAhead {
        /// The acknowledged position.
        through: u64,
        /// The message to itself in the same write, if any.
        self_seq: Option<u64>,
    },
    /// A `Taken{through}`: from a member without the TAKEN capability
    /// (`announced` false), or at or below the last `Taken` of a member
    /// with it (`through` 0).
    Taken {
        /// The position claimed.
        through: u64,
        /// The member announced the TAKEN capability.
        announced: bool,
    },
    /// A `Subscribe` of a fresh subscription id, taking sequence `seq` from
    /// the client's next command (a load `Publish`, recorded as
    /// `Published`, written right after it: a resend the server ignores).
    Subscribe {
        /// Its sequence.
        seq: u64,
    },
    /// A `Join` of a group the member never joined, taking sequence `seq`
    /// as [`HostileFrame::Subscribe`] does.
    Join {
        /// Its sequence.
        seq: u64,
        /// The group.
        group: String,
    },
    /// Bytes that start with a frame header the decoder refuses (a length
    /// under 2 or over every server's frame limit, a version other than
    /// `PROTOCOL_VERSION`, a kind that names no frame); the server reads
    /// nothing after them. Written alone, or right before or right after
    /// the client's own frames of a load `Publish` (recorded as
    /// `Published`), in the same write; [`HostileFrame::is_undecodable`]
    /// tells whether the header is one the protocol refuses.
    Undecodable {
        /// The six header bytes (`len`, `version`, `kind`).
        header: [u8; 6],
        /// The sequence of the client's `Publish` written right after the
        /// bytes (never read by the server), if any.
        ahead_of: Option<u64>,
    },
    /// The head of a chunked `Send` to the member itself (`MORE` set,
    /// `piece` payload bytes of `total_len`), taking sequence `seq` from
    /// the client's next command, a load `Publish` (recorded as
    /// `Published`) written right after it in the same write: a sequenced
    /// frame between the pieces of a chunked message.
    /// [`HostileFrame::is_chunk_interleaved`] tells whether the head is a
    /// valid one that leaves its message incomplete.
    ChunkInterleaved {
        /// The head's sequence, also the `Publish`'s.
        seq: u64,
        /// The head's declared whole length.
        total_len: u32,
        /// Payload bytes in the head.
        piece: u32,
    },
}

impl HostileFrame {
    /// For a [`HostileFrame::Seq`]: the protocol calls it a violation
    /// (`docs/PROTOCOL.md`, `SEQ_WINDOW`): more than `SEQ_WINDOW` past the
    /// last sequence the server processed in the session (once it processed
    /// one), or more than `SEQ_WINDOW` behind it. Judged for every value the
    /// server's last processed sequence can have, `acked..=last`.
    pub fn is_seq_violation(&self) -> bool {
        let w = switchboard_core::frame::SEQ_WINDOW;
        match *self {
            HostileFrame::Seq { seq, acked, last } => {
                (acked > 0 && seq > last.saturating_add(w)) || seq.saturating_add(w) < acked
            }
            _ => false,
        }
    }

    /// The client sequence a `Subscribe` or `Join` took.
    pub fn taken_seq(&self) -> Option<u64> {
        match self {
            HostileFrame::Subscribe { seq } | HostileFrame::Join { seq, .. } => Some(*seq),
            _ => None,
        }
    }

    /// For a [`HostileFrame::Undecodable`]: its header fails one of the
    /// decoder's early header checks (`docs/PROTOCOL.md`, section 1): a
    /// length under 2, a whole frame larger than `FRAME_BYTES_MAX_CEILING`
    /// (over every server's limit), a version byte other than
    /// `PROTOCOL_VERSION`, or a kind byte that names no frame (section 3).
    pub fn is_undecodable(&self) -> bool {
        use switchboard_core::frame::{FRAME_BYTES_MAX_CEILING, PROTOCOL_VERSION};
        let HostileFrame::Undecodable { header, .. } = self else {
            return false;
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        len < 2
            || u64::from(len) + 4 > u64::from(FRAME_BYTES_MAX_CEILING)
            || header[4] != PROTOCOL_VERSION
            || !FRAME_KINDS.contains(&header[5])
    }

    /// For a [`HostileFrame::ChunkInterleaved`]: the head is a valid
    /// chunked `Send` (a non-empty first piece shorter than the whole
    /// message, within `MESSAGE_BYTES_MAX`), so the message is still
    /// incomplete when the `Publish` after it arrives.
    pub fn is_chunk_interleaved(&self) -> bool {
        match *self {
            HostileFrame::ChunkInterleaved {
                total_len, piece, ..
            } => {
                piece > 0
                    && piece < total_len
                    && total_len <= switchboard_core::frame::MESSAGE_BYTES_MAX
            }
            _ => false,
        }
    }

    /// The protocol calls the write a violation for which the server must
    /// remove the member (`ProtocolViolation`): a sequence outside the
    /// window, undecodable bytes, or a sequenced frame between the pieces
    /// of a chunked message.
    pub fn is_violation(&self) -> bool {
        self.is_seq_violation() || self.is_undecodable() || self.is_chunk_interleaved()
    }
}

/// The frame kinds of `docs/PROTOCOL.md`, section 3.
const FRAME_KINDS: [u8; 27] = [
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
    0x17, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x30, 0x31, 0x32, 0x33,
];

/// A timestamped act.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Virtual time, ms.
    pub at: Ms,
    /// The act.
    pub act: Act,
}

/// Settings the checkers need to judge a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Server heartbeat timeout.
    pub heartbeat_timeout_ms: u64,
    /// Server resume window.
    pub resume_window_ms: u64,
    /// Soft queue limit (items); twice this is the hard bound.
    pub member_queue_items_max: usize,
    /// How long after a server start members have to re-register.
    pub restart_grace_ms: u64,
    /// Client outbox limit (items).
    pub outbox_items_max: usize,
    /// How long a member may stay over its soft queue limit before the
    /// server must evict it as a slow consumer.
    pub slow_consumer_grace_ms: u64,
    /// Largest payload that travels in one frame; a larger one is chunked.
    pub chunk_bytes_max: u32,
    /// Largest message the server accepts (`message_bytes_max`), bytes.
    pub message_bytes_max: u32,
    /// Soft limit of a member's stream queue, bytes.
    pub member_queue_bytes_max: usize,
}

/// A run's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Acts in order.
    pub entries: Vec<Entry>,
}

impl History {
    /// Appends an act.
    pub fn push(&mut self, at: Ms, act: Act) {
        self.entries.push(Entry { at, act });
    }

    /// Iterates the acts.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
}

/// A guarantee violated, found by a checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Guarantee name, e.g. `G2 no duplicates`.
    pub guarantee: &'static str,
    /// What went wrong, with the acts involved.
    pub detail: String,
}
