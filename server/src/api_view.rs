//! The JSON documents of the versioned API (`/v1/...`). They derive
//! `Deserialize` too, so that clients (the CLI, tests) read them with the
//! same types.

use serde::{Deserialize, Serialize};

/// `GET /v1/server`: the server itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerInfo {
    /// Server version (crate version).
    pub version: String,
    /// Cluster name.
    pub cluster: String,
    /// This server run's incarnation, hex (changes on every start).
    /// Session material: only for a reader with the HTTP token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_incarnation: Option<String>,
    /// When this server run started, Unix milliseconds.
    pub started_unix_ms: u64,
    /// Time since the start, milliseconds.
    pub uptime_ms: u64,
    /// True when members are accepted and the restart grace is over.
    pub ready: bool,
    /// True during the grace after a start, while members come back.
    pub in_restart_grace: bool,
    /// View epoch.
    pub epoch: u64,
    /// Last stream position assigned.
    pub gseq: u64,
    /// Open member-port connections (handshaking or attached).
    pub connections: usize,
    /// Members in the view.
    pub members: usize,
    /// Members whose connection is down (session kept for a resume).
    pub members_detached: usize,
    /// Instances with at least one member.
    pub instances: usize,
    /// Groups with at least one member.
    pub groups: usize,
    /// Stream items queued to members, unacknowledged.
    pub queue_items: u64,
    /// Their bytes.
    pub queue_bytes: u64,
    /// Bytes the server holds for members and connections (queues,
    /// deferred frames, partial messages, read buffers).
    pub memory_bytes: u64,
    /// Bytes handed to the connections' writers, not yet written.
    pub write_queue_bytes: u64,
    /// Bytes of chunked messages in reassembly.
    pub reassembly_bytes: u64,
    /// The configured limits.
    pub limits: LimitsInfo,
    /// Totals since the start.
    pub totals: Totals,
}

/// The limits a server runs with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct LimitsInfo {
    pub members_max: usize,
    pub handshakes_max: usize,
    pub groups_max: usize,
    pub member_queue_items_max: usize,
    pub member_queue_bytes_max: usize,
    pub member_inbox_bytes_max: usize,
    pub sender_inflight_max: usize,
    pub message_bytes_max: u32,
    pub reassembly_timeout_ms: u64,
    pub reassembly_bytes_max: usize,
    pub send_window_items: usize,
    pub send_window_bytes: usize,
    pub heartbeat_interval_ms: u32,
    pub heartbeat_timeout_ms: u32,
    pub resume_window_ms: u32,
    pub restart_grace_ms: u64,
    pub slow_consumer_grace_ms: u64,
}

/// Counters since the server started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Totals {
    /// Messages received from members and processed (accepted or NACKed).
    pub messages_in: u64,
    /// Their payload bytes.
    pub bytes_in: u64,
    /// Messages accepted and sequenced.
    pub messages_accepted: u64,
    /// Messages NACKed.
    pub messages_nacked: u64,
    /// Deliveries of messages to recipients.
    pub deliveries: u64,
    /// Their encoded bytes.
    pub delivery_bytes: u64,
    /// Stream items enqueued (deliveries, events, notices).
    pub items_out: u64,
    /// Stream items acknowledged by members.
    pub items_acked: u64,
    /// Cluster events sequenced.
    pub events: u64,
    /// Outcomes sent for confirmed messages.
    pub outcomes: u64,
    /// Registrations (new sessions).
    pub registrations: u64,
    /// Sessions resumed.
    pub resumes: u64,
    /// Handshakes rejected.
    pub rejects: u64,
    /// Members evicted as slow consumers.
    pub evictions: u64,
    /// Members declared failed, every reason.
    pub failures: u64,
}

/// One member, `GET /v1/members` and `/v1/members/{instance}/{process}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberDetail {
    /// Id the server gave this process. Session material: only for a
    /// reader with the HTTP token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u64>,
    /// Process incarnation, hex. Session material, as `member_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
    /// `instance/process`.
    pub name: String,
    /// Instance name.
    pub instance: String,
    /// Process name.
    pub process: String,
    /// `attached` or `detached` (connection down, session kept).
    pub state: String,
    /// Services up.
    pub services: Vec<String>,
    /// Groups joined.
    pub groups: Vec<String>,
    /// Last published load figure.
    pub load: u32,
    /// When its current connection registered or resumed, Unix ms.
    pub connected_since_unix_ms: u64,
    /// Stream items queued to it, unacknowledged (notices excluded).
    pub queue_items: u64,
    /// Bytes of its whole queue.
    pub queue_bytes: u64,
    /// NACKs and outcomes queued to it.
    pub notices_queued: u64,
    /// Messages it sent that the server processed.
    pub messages_in: u64,
    /// Their payload bytes.
    pub bytes_in: u64,
    /// Stream items enqueued to it (deliveries, events, notices).
    pub messages_out: u64,
    /// Their encoded bytes.
    pub bytes_out: u64,
    /// Stream items it acknowledged.
    pub acked: u64,
    /// Its messages the server NACKed.
    pub nacks: u64,
    /// Sessions it resumed.
    pub resumes: u64,
}

/// `GET /v1/members`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberList {
    /// View epoch.
    pub epoch: u64,
    /// Members sorted by name.
    pub members: Vec<MemberDetail>,
}

/// One work process of an instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessEntry {
    /// Process name.
    pub process: String,
    /// Member id. Session material: only for a reader with the HTTP token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u64>,
    /// `attached` or `detached`.
    pub state: String,
    /// Last published load.
    pub load: u32,
    /// Services up.
    pub services: Vec<String>,
}

/// One instance, `GET /v1/instances`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceEntry {
    /// Instance name.
    pub instance: String,
    /// Its processes, by name.
    pub processes: Vec<ProcessEntry>,
    /// Services up on at least one attached process, sorted.
    pub services: Vec<String>,
}

/// `GET /v1/instances`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceList {
    /// Instances by name.
    pub instances: Vec<InstanceEntry>,
}

/// One group, `GET /v1/groups`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub group: String,
    /// Its members' names (`instance/process`), sorted.
    pub members: Vec<String>,
}

/// `GET /v1/groups`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupList {
    /// Groups by name.
    pub groups: Vec<GroupEntry>,
}

/// `GET /v1/route`: where a load balancer should send work now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Route {
    /// `group` or `service`.
    pub by: String,
    /// The group or service asked for.
    pub name: String,
    /// The chosen instance.
    pub instance: String,
    /// The chosen process on it.
    pub process: String,
    /// Its member id. Session material: only for a reader with the HTTP
    /// token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u64>,
    /// Its published load.
    pub load: u32,
    /// Its queued stream items.
    pub queue_items: u64,
    /// Members that were eligible.
    pub candidates: usize,
}

/// One cluster event, as `/v1/events` streams it (`data:` of an SSE
/// message whose `id:` is `gseq`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventRecord {
    /// Stream position.
    pub gseq: u64,
    /// View epoch after the event.
    pub epoch: u64,
    /// When the server sequenced it, Unix ms.
    pub unix_ms: u64,
    /// `member_joined`, `member_left`, `member_failed`, `instance_up`,
    /// `instance_down`, `group_joined`, `group_left`, `service_state`,
    /// `load`, `custom`.
    pub kind: String,
    /// The member concerned, if any. Session material: only for a reader
    /// with the HTTP token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u64>,
    /// Its name (`instance/process`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Instance (instance events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Group (group events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Service (service events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Service state (service events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<bool>,
    /// Load figure (load events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<u32>,
    /// Failure reason (failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Topic (custom events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Payload size (custom events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<usize>,
}

/// Leaves out session material (member ids, incarnations, the server
/// incarnation): what a `Resume` names. The HTTP port serves a document
/// unredacted only to a reader that presents the configured token.
pub trait Redact {
    /// Removes every field that names a session.
    fn redact(&mut self);
}

impl Redact for ServerInfo {
    fn redact(&mut self) {
        self.server_incarnation = None;
    }
}

impl Redact for MemberDetail {
    fn redact(&mut self) {
        self.member_id = None;
        self.incarnation = None;
    }
}

impl Redact for MemberList {
    fn redact(&mut self) {
        self.members.iter_mut().for_each(Redact::redact);
    }
}

impl Redact for InstanceList {
    fn redact(&mut self) {
        for i in &mut self.instances {
            for p in &mut i.processes {
                p.member_id = None;
            }
        }
    }
}

impl Redact for Route {
    fn redact(&mut self) {
        self.member_id = None;
    }
}

impl Redact for EventRecord {
    fn redact(&mut self) {
        self.member_id = None;
    }
}
