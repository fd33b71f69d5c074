//! Value types carried inside frames: addresses, member descriptions,
//! events, filters and reason codes.

use bytes::Bytes;

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Address {
    /// One exact member incarnation, by the id the server gave it.
    /// A restarted process is a different member: the message is NACKed
    /// with [`NackReason::DestinationGone`] if that incarnation is gone.
    MemberId(u64),
    /// One member by name: whichever incarnation of `instance/process`
    /// is in the view when the server sequences the message.
    Member {
        /// Instance name.
        instance: String,
        /// Process name within the instance.
        process: String,
    },
    /// Every member of an instance (the sender excluded).
    Instance(String),
    /// Every member of a named group (the sender excluded).
    Group(String),
    /// Exactly one member of a named group (never the sender).
    Anycast(String),
    /// Every other member of the cluster.
    Broadcast,
}

impl Address {
    /// Wire tag of this address kind.
    pub fn tag(&self) -> u8 {
        match self {
            Address::MemberId(_) => 0,
            Address::Member { .. } => 1,
            Address::Instance(_) => 2,
            Address::Group(_) => 3,
            Address::Anycast(_) => 4,
            Address::Broadcast => 5,
        }
    }
}

/// A member as it appears in the view.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct MemberInfo {
    /// Id the server gave this member incarnation; never reused by one
    /// server incarnation.
    pub member_id: u64,
    /// Process incarnation id, chosen by the process at start.
    pub incarnation: u64,
    /// Instance name.
    pub instance: String,
    /// Process name within the instance.
    pub process: String,
    /// Services this member currently announces as up.
    pub services: Vec<String>,
    /// Load figure the member last published (opaque to the server).
    pub load: u32,
    /// Groups this member has joined.
    pub groups: Vec<String>,
}

/// Why a member was declared failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum FailReason {
    /// No frame for longer than the heartbeat timeout.
    HeartbeatTimeout,
    /// The connection was lost and not resumed within the resume window.
    ConnectionLost,
    /// The member did not read its stream and stayed over its queue limit.
    SlowConsumer,
    /// The member sent a frame that breaks the protocol.
    ProtocolViolation,
    /// A new incarnation of the same process registered.
    Superseded,
}

/// Why an addressee missed a message (in an [`Outcome`](super::Outcome)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum MissReason {
    /// The addressee said goodbye before acknowledging delivery.
    Left,
    /// The addressee was declared failed before acknowledging delivery.
    Failed,
    /// The addressee was evicted as a slow consumer.
    Evicted,
    /// The server restarted before the addressee acknowledged delivery;
    /// the sender may resend.
    ServerRestarted,
}

/// Why the server refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum NackReason {
    /// No member, instance or group by that name or id was ever known.
    UnknownDestination,
    /// The addressee existed but is gone (left, failed or restarted), or
    /// the group or instance has no member other than the sender.
    DestinationGone,
    /// The message is larger than the server accepts.
    TooLarge,
    /// The sender is over its quota of unconfirmed messages.
    OverQuota,
    /// The operation is not permitted for this member.
    NotPermitted,
    /// The frame was well formed but made no sense (bad chunk, bad flags).
    Invalid,
    /// A chunked message was not complete within the server's reassembly
    /// deadline, or the server's reassembly space ran out: its pieces were
    /// dropped. Sending it again may succeed.
    Incomplete,
}

/// Why the server refused a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum RejectReason {
    /// The client's proof did not match the cluster secret.
    BadSecret,
    /// The client speaks a protocol version the server does not.
    UnsupportedVersion,
    /// The cluster name does not match the server's.
    WrongCluster,
    /// A live member with the same instance, process and incarnation exists.
    DuplicateIdentity,
    /// The server is at its member limit.
    ServerFull,
    /// The handshake did not finish in time.
    HandshakeTimeout,
    /// The session to resume is unknown to this server (it restarted, or
    /// the member was already declared failed): register afresh.
    SessionUnknown,
    /// A field of the handshake was invalid (empty name, bad order).
    Invalid,
    /// The peer address is denied by the access control list.
    NotPermitted,
}

/// Generic error codes for the `Error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ErrorCode {
    /// A frame could not be decoded.
    Malformed,
    /// A frame was valid but not allowed in the current state.
    UnexpectedFrame,
    /// A limit was exceeded.
    LimitExceeded,
    /// The server is shutting down.
    ShuttingDown,
    /// An internal error.
    Internal,
    /// The server declared this member failed (heartbeat timeout, session
    /// superseded, ...): register again.
    DeclaredFailed,
    /// The server's access rules no longer permit this connection (they
    /// were reloaded); the text says which rule.
    NotPermitted,
}

/// An event a member publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum EventBody {
    /// A service of the member started (`up`) or stopped.
    ServiceState {
        /// Service name.
        service: String,
        /// True when the service is now up.
        up: bool,
    },
    /// The member's load figure changed.
    Load(u32),
    /// An application-defined event on a topic.
    Custom {
        /// Topic, e.g. `cache/invalidate`.
        topic: String,
        /// Opaque payload.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::frame::arbitrary_bytes))]
        payload: Bytes,
    },
}

/// An event as the server relays it, in the ordered stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ClusterEvent {
    /// A member registered.
    MemberJoined(MemberInfo),
    /// A member said goodbye.
    MemberLeft {
        /// The member that left.
        member_id: u64,
    },
    /// A member was declared failed.
    MemberFailed {
        /// The member that failed.
        member_id: u64,
        /// Why.
        reason: FailReason,
    },
    /// The first member of an instance joined.
    InstanceUp {
        /// Instance name.
        instance: String,
    },
    /// The last member of an instance left or failed.
    InstanceDown {
        /// Instance name.
        instance: String,
    },
    /// A member joined a group.
    GroupJoined {
        /// The member.
        member_id: u64,
        /// The group.
        group: String,
    },
    /// A member left a group.
    GroupLeft {
        /// The member.
        member_id: u64,
        /// The group.
        group: String,
    },
    /// A member published a service state change.
    ServiceState {
        /// The publishing member.
        member_id: u64,
        /// Service name.
        service: String,
        /// True when the service is now up.
        up: bool,
    },
    /// A member published a new load figure.
    Load {
        /// The publishing member.
        member_id: u64,
        /// The load figure.
        load: u32,
    },
    /// A member published a custom event.
    Custom {
        /// The publishing member.
        member_id: u64,
        /// Topic.
        topic: String,
        /// Opaque payload.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::frame::arbitrary_bytes))]
        payload: Bytes,
    },
}

/// Event kinds, as bits of a [`Filter`]'s `kinds` mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// [`ClusterEvent::MemberJoined`], `MemberLeft`, `MemberFailed`.
    Membership = 0,
    /// [`ClusterEvent::InstanceUp`], `InstanceDown`.
    Instance = 1,
    /// [`ClusterEvent::GroupJoined`], `GroupLeft`.
    Group = 2,
    /// [`ClusterEvent::ServiceState`].
    Service = 3,
    /// [`ClusterEvent::Load`].
    Load = 4,
    /// [`ClusterEvent::Custom`].
    Custom = 5,
}

impl EventKind {
    /// Mask with every kind set.
    pub const ALL: u16 = 0b11_1111;

    /// This kind's bit in a filter mask.
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl ClusterEvent {
    /// The kind of this event.
    pub fn kind(&self) -> EventKind {
        match self {
            ClusterEvent::MemberJoined(_)
            | ClusterEvent::MemberLeft { .. }
            | ClusterEvent::MemberFailed { .. } => EventKind::Membership,
            ClusterEvent::InstanceUp { .. } | ClusterEvent::InstanceDown { .. } => {
                EventKind::Instance
            }
            ClusterEvent::GroupJoined { .. } | ClusterEvent::GroupLeft { .. } => EventKind::Group,
            ClusterEvent::ServiceState { .. } => EventKind::Service,
            ClusterEvent::Load { .. } => EventKind::Load,
            ClusterEvent::Custom { .. } => EventKind::Custom,
        }
    }

    /// True for events that change the view (and so its epoch).
    pub fn changes_view(&self) -> bool {
        !matches!(self, ClusterEvent::Custom { .. })
    }

    /// The topic used for prefix filtering: the custom topic, the service
    /// name, the group or instance name; empty for the others.
    pub fn topic(&self) -> &str {
        match self {
            ClusterEvent::Custom { topic, .. } => topic,
            ClusterEvent::ServiceState { service, .. } => service,
            ClusterEvent::GroupJoined { group, .. } | ClusterEvent::GroupLeft { group, .. } => {
                group
            }
            ClusterEvent::InstanceUp { instance } | ClusterEvent::InstanceDown { instance } => {
                instance
            }
            _ => "",
        }
    }
}

/// Which events a subscription selects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Filter {
    /// Bit mask of [`EventKind`]s; `0` selects nothing.
    pub kinds: u16,
    /// Only events whose topic starts with this prefix (empty: any).
    pub topic_prefix: String,
}

impl Filter {
    /// A filter that selects every event.
    pub fn all() -> Self {
        Filter {
            kinds: EventKind::ALL,
            topic_prefix: String::new(),
        }
    }

    /// A filter for the given kinds and any topic.
    pub fn kinds(kinds: &[EventKind]) -> Self {
        Filter {
            kinds: kinds.iter().fold(0, |m, k| m | k.bit()),
            topic_prefix: String::new(),
        }
    }

    /// Custom events whose topic starts with `prefix`:
    /// `Filter::topic("cache/")` selects `cache/invalidate` and
    /// `cache/warm`, not `cachex`. An empty prefix selects every custom
    /// event.
    pub fn topic(prefix: impl Into<String>) -> Self {
        Filter {
            kinds: EventKind::Custom.bit(),
            topic_prefix: prefix.into(),
        }
    }

    /// This filter restricted to topics starting with `prefix` (the topic
    /// of a service event is the service name; of a group event, the
    /// group; of an instance event, the instance):
    /// `Filter::kinds(&[EventKind::Service]).with_topic("cache")`.
    pub fn with_topic(mut self, prefix: impl Into<String>) -> Self {
        self.topic_prefix = prefix.into();
        self
    }

    /// True when `event` passes this filter.
    pub fn matches(&self, event: &ClusterEvent) -> bool {
        self.kinds & event.kind().bit() != 0 && event.topic().starts_with(&self.topic_prefix)
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    fn custom(topic: &str) -> ClusterEvent {
        ClusterEvent::Custom {
            member_id: 1,
            topic: topic.into(),
            payload: Bytes::new(),
        }
    }

    #[test]
    fn a_topic_filter_selects_custom_events_by_prefix_only() {
        let f = Filter::topic("cache/");
        assert!(f.matches(&custom("cache/invalidate")));
        assert!(!f.matches(&custom("cachex")));
        assert!(!f.matches(&ClusterEvent::GroupJoined {
            member_id: 1,
            group: "cache/g".into()
        }));
        let g = Filter::kinds(&[EventKind::Group]).with_topic("cache/");
        assert!(g.matches(&ClusterEvent::GroupJoined {
            member_id: 1,
            group: "cache/g".into()
        }));
        assert!(!g.matches(&custom("cache/x")));
    }
}
