//! What the core task hands the external port: a [`Snapshot`] of the
//! server (built in one step of the core task, so it is consistent), and
//! cluster events turned into [`EventRecord`]s for watchers.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use switchboard_core::frame::ClusterEvent;
use switchboard_core::server::{Server, ServerStats};
use switchboard_core::time::Tick;
use switchboard_runtime::secret::to_hex;

use crate::api_view::{EventRecord, LimitsInfo, MemberDetail, ServerInfo, Totals};

/// The wall-clock time of the core clock's origin.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StartTime {
    unix_ms: u64,
}

impl StartTime {
    /// Now, as the origin of a clock created at the same moment.
    pub(crate) fn now() -> StartTime {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        StartTime { unix_ms }
    }

    /// A tick of that clock in Unix milliseconds.
    pub(crate) fn unix_ms(self, t: Tick) -> u64 {
        self.unix_ms.saturating_add(t.as_millis())
    }
}

/// The server at one instant.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// `/v1/server`.
    pub info: ServerInfo,
    /// Every member, sorted by name.
    pub members: Vec<MemberDetail>,
    /// The raw counters (for `/metrics`).
    pub stats: ServerStats,
    /// Handshakes in progress.
    pub handshakes: usize,
    /// What the access rules refused and closed.
    pub access: AccessCounts,
    /// Failed TLS handshakes on the member port by kind, with TLS on
    /// (filled in by the metrics route).
    pub tls_failures: Option<[u64; switchboard_runtime::tls::FAILURE_KINDS.len()]>,
}

/// Connections the member port's access rules refused or closed, since the
/// start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AccessCounts {
    /// New connections refused (`Reject{NotPermitted}`).
    pub denied: u64,
    /// Open connections closed by a reload (`Error{NotPermitted}`).
    pub revoked: u64,
}

/// Builds the snapshot. Walks every member once.
pub(crate) fn build(s: &Server, now: Tick, start: StartTime, write_queue_bytes: usize) -> Snapshot {
    let stats = s.stats();
    let c = s.config();
    let mut members: Vec<MemberDetail> = s
        .view()
        .map(|m| {
            let ms = s.member_stats(m.member_id).unwrap_or_default();
            let attached = s.is_attached(m.member_id);
            MemberDetail {
                member_id: Some(m.member_id),
                incarnation: Some(to_hex(&m.incarnation.to_be_bytes())),
                name: format!("{}/{}", m.instance, m.process),
                instance: m.instance.clone(),
                process: m.process.clone(),
                state: if attached { "attached" } else { "detached" }.to_owned(),
                services: m.services.clone(),
                groups: m.groups.clone(),
                load: m.load,
                connected_since_unix_ms: start.unix_ms(ms.connected_since),
                queue_items: s.queue_len(m.member_id).unwrap_or(0) as u64,
                queue_bytes: s.queue_bytes(m.member_id).unwrap_or(0) as u64,
                notices_queued: s.notices_len(m.member_id).unwrap_or(0) as u64,
                messages_in: ms.messages_in,
                bytes_in: ms.bytes_in,
                messages_out: ms.items_out,
                bytes_out: ms.bytes_out,
                acked: ms.acked,
                nacks: ms.nacks,
                resumes: ms.resumes,
            }
        })
        .collect();
    members.sort_by(|a, b| (&a.instance, &a.process).cmp(&(&b.instance, &b.process)));
    let mut instances: Vec<&str> = members.iter().map(|m| m.instance.as_str()).collect();
    instances.dedup();
    let mut groups: Vec<&str> = members
        .iter()
        .flat_map(|m| m.groups.iter().map(String::as_str))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    let in_grace = s.in_restart_grace(now);
    let info = ServerInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        cluster: c.cluster.clone(),
        server_incarnation: Some(to_hex(&s.incarnation().to_be_bytes())),
        started_unix_ms: start.unix_ms(Tick::ZERO),
        uptime_ms: now.as_millis(),
        ready: !in_grace && !s.is_shutting_down(),
        in_restart_grace: in_grace,
        epoch: s.epoch(),
        gseq: s.gseq(),
        connections: s.connections(),
        members: members.len(),
        members_detached: members.iter().filter(|m| m.state != "attached").count(),
        instances: instances.len(),
        groups: groups.len(),
        queue_items: members.iter().map(|m| m.queue_items).sum(),
        queue_bytes: members.iter().map(|m| m.queue_bytes).sum(),
        memory_bytes: s.memory_bytes() as u64,
        write_queue_bytes: write_queue_bytes as u64,
        reassembly_bytes: s.reassembly_bytes() as u64,
        limits: LimitsInfo {
            members_max: c.members_max,
            handshakes_max: c.handshakes_max,
            groups_max: c.groups_max,
            member_queue_items_max: c.member_queue_items_max,
            member_queue_bytes_max: c.member_queue_bytes_max,
            member_inbox_bytes_max: c.member_inbox_bytes_max,
            sender_inflight_max: c.sender_inflight_max,
            message_bytes_max: c.message_bytes_max,
            reassembly_timeout_ms: c.reassembly_timeout_ms,
            reassembly_bytes_max: c.reassembly_bytes_max,
            send_window_items: c.send_window_items,
            send_window_bytes: c.send_window_bytes,
            heartbeat_interval_ms: c.heartbeat_interval_ms,
            heartbeat_timeout_ms: c.heartbeat_timeout_ms,
            resume_window_ms: c.resume_window_ms,
            restart_grace_ms: c.restart_grace_ms,
            slow_consumer_grace_ms: c.slow_consumer_grace_ms,
        },
        totals: totals(&stats),
    };
    Snapshot {
        info,
        members,
        stats,
        handshakes: s.handshakes(),
        access: AccessCounts::default(),
        tls_failures: None,
    }
}

fn totals(s: &ServerStats) -> Totals {
    Totals {
        messages_in: s.messages_in_by_kind.iter().sum(),
        bytes_in: s.bytes_in_by_kind.iter().sum(),
        messages_accepted: s.messages_accepted,
        messages_nacked: s.messages_nacked,
        deliveries: s.deliveries_by_kind.iter().sum(),
        delivery_bytes: s.delivery_bytes_by_kind.iter().sum(),
        items_out: s.items_enqueued,
        items_acked: s.items_acked,
        events: s.events,
        outcomes: s.outcomes,
        registrations: s.registrations,
        resumes: s.resumes,
        rejects: s.rejects,
        evictions: s.evictions,
        failures: s.failures_by_reason.iter().sum(),
    }
}

/// A cluster event as watchers see it. `names` maps member ids to
/// `instance/process` (members that joined earlier).
pub(crate) fn event_record(
    gseq: u64,
    epoch: u64,
    unix_ms: u64,
    ev: &ClusterEvent,
    names: &HashMap<u64, String>,
) -> EventRecord {
    let mut r = EventRecord {
        gseq,
        epoch,
        unix_ms,
        kind: String::new(),
        member_id: None,
        member: None,
        instance: None,
        group: None,
        service: None,
        up: None,
        load: None,
        reason: None,
        topic: None,
        payload_bytes: None,
    };
    let member = |id: u64, r: &mut EventRecord| {
        r.member_id = Some(id);
        r.member = names.get(&id).cloned();
    };
    let kind = match ev {
        ClusterEvent::MemberJoined(info) => {
            r.member_id = Some(info.member_id);
            r.member = Some(format!("{}/{}", info.instance, info.process));
            "member_joined"
        }
        ClusterEvent::MemberLeft { member_id } => {
            member(*member_id, &mut r);
            "member_left"
        }
        ClusterEvent::MemberFailed { member_id, reason } => {
            member(*member_id, &mut r);
            let i = switchboard_core::server::stats::fail_index(*reason);
            r.reason = Some(switchboard_core::server::stats::FAIL_REASONS[i].to_owned());
            "member_failed"
        }
        ClusterEvent::InstanceUp { instance } => {
            r.instance = Some(instance.clone());
            "instance_up"
        }
        ClusterEvent::InstanceDown { instance } => {
            r.instance = Some(instance.clone());
            "instance_down"
        }
        ClusterEvent::GroupJoined { member_id, group } => {
            member(*member_id, &mut r);
            r.group = Some(group.clone());
            "group_joined"
        }
        ClusterEvent::GroupLeft { member_id, group } => {
            member(*member_id, &mut r);
            r.group = Some(group.clone());
            "group_left"
        }
        ClusterEvent::ServiceState {
            member_id,
            service,
            up,
        } => {
            member(*member_id, &mut r);
            r.service = Some(service.clone());
            r.up = Some(*up);
            "service_state"
        }
        ClusterEvent::Load { member_id, load } => {
            member(*member_id, &mut r);
            r.load = Some(*load);
            "load"
        }
        ClusterEvent::Custom {
            member_id,
            topic,
            payload,
        } => {
            member(*member_id, &mut r);
            r.topic = Some(topic.clone());
            r.payload_bytes = Some(payload.len());
            "custom"
        }
    };
    r.kind = kind.to_owned();
    r
}
