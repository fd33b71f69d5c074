//! The read-only view the external port serves (`GET /members`).

use serde::Serialize;
use switchboard_core::server::ServerStats;

/// The cluster as the server sees it: the load balancers' and watchers'
/// read model.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct MembersView {
    /// Cluster name.
    pub cluster: String,
    /// This server run's incarnation, hex (changes on every start); only
    /// for a reader with the HTTP token (see `ServerOptions::http_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_incarnation: Option<String>,
    /// View epoch.
    pub epoch: u64,
    /// Last stream position assigned.
    pub gseq: u64,
    /// Open internal connections.
    pub connections: usize,
    /// Members in member-id order.
    pub members: Vec<MemberView>,
    /// Counters.
    pub stats: StatsView,
}

/// One member with its load data.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct MemberView {
    /// Id the server gave this incarnation; only for a reader with the
    /// HTTP token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u64>,
    /// Process incarnation, hex; only for a reader with the HTTP token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
    /// Instance name.
    pub instance: String,
    /// Process name.
    pub process: String,
    /// Services up.
    pub services: Vec<String>,
    /// Last published load figure.
    pub load: u32,
    /// Groups joined.
    pub groups: Vec<String>,
    /// False while its connection is down and the session waits for a
    /// resume.
    pub attached: bool,
}

/// Server counters.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct StatsView {
    pub messages_accepted: u64,
    pub messages_nacked: u64,
    pub items_enqueued: u64,
    pub items_acked: u64,
    pub events: u64,
    pub evictions: u64,
    pub resumes: u64,
    pub rejects: u64,
    pub gaps: u64,
}

impl From<ServerStats> for StatsView {
    fn from(s: ServerStats) -> Self {
        StatsView {
            messages_accepted: s.messages_accepted,
            messages_nacked: s.messages_nacked,
            items_enqueued: s.items_enqueued,
            items_acked: s.items_acked,
            events: s.events,
            evictions: s.evictions,
            resumes: s.resumes,
            rejects: s.rejects,
            gaps: s.gaps,
        }
    }
}

impl MembersView {
    /// The view without session material (server incarnation, member ids,
    /// incarnations), for a reader without the HTTP token.
    pub fn redacted(mut self) -> MembersView {
        self.server_incarnation = None;
        for m in &mut self.members {
            m.member_id = None;
            m.incarnation = None;
        }
        self
    }
}
