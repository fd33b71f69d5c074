//! Human-readable lines for events.

use std::collections::HashMap;

use switchboard_client::{Address, ClusterEvent, Event, MemberInfo, Message};
use switchboard_core::frame::{FailReason, MissReason};

/// Member names by id, kept up to date from the stream.
#[derive(Debug, Default)]
pub(crate) struct Names(HashMap<u64, String>);

impl Names {
    pub fn learn_view(&mut self, view: &[MemberInfo]) {
        for m in view {
            self.0
                .insert(m.member_id, format!("{}/{}", m.instance, m.process));
        }
    }

    /// Learns a member's name from a membership event.
    pub fn learn(&mut self, e: &ClusterEvent) {
        if let ClusterEvent::MemberJoined(m) = e {
            self.learn_view(std::slice::from_ref(m));
        }
    }

    pub fn name(&self, id: u64) -> String {
        self.0.get(&id).cloned().unwrap_or_else(|| format!("#{id}"))
    }

    /// Learns from the event, then describes it.
    pub fn describe(&mut self, ev: &Event) -> String {
        match ev {
            Event::Message(m) | Event::Request(m) => {
                let kind = if matches!(ev, Event::Request(_)) {
                    "request"
                } else {
                    "message"
                };
                format!(
                    "{kind} from {} to {}: {}",
                    m.sender(),
                    address(&m.to),
                    text(&m.payload)
                )
            }
            Event::Cluster(n) => self.cluster(&n.event),
            Event::Registered {
                view, session_lost, ..
            } => {
                self.learn_view(view);
                format!(
                    "registered; {} members in the cluster{}",
                    view.len(),
                    if *session_lost {
                        " (previous session lost: resending unconfirmed messages)"
                    } else {
                        ""
                    }
                )
            }
            Event::Resumed { .. } => "reconnected; session resumed, nothing lost".to_owned(),
            Event::Disconnected { reason } => format!("disconnected: {reason}; reconnecting"),
            Event::Rejected {
                reason,
                text,
                fatal,
            } => format!(
                "refused by the server: {} ({text}){}",
                switchboard_client::reject_reason(*reason),
                if *fatal { " (fatal)" } else { "" }
            ),
            Event::Gap { from, through } => {
                format!("gap: stream positions {from}..={through} lost")
            }
            Event::Lagged { missed } => format!(
                "{missed} cluster events skipped: this output fell behind (messages are never skipped)"
            ),
            Event::Closed => "closed".to_owned(),
        }
    }

    pub fn cluster(&mut self, e: &ClusterEvent) -> String {
        match e {
            ClusterEvent::MemberJoined(m) => {
                self.learn_view(std::slice::from_ref(m));
                format!("member joined: {}/{}", m.instance, m.process)
            }
            ClusterEvent::MemberLeft { member_id } => {
                format!("member left: {}", self.name(*member_id))
            }
            ClusterEvent::MemberFailed { member_id, reason } => {
                format!(
                    "member failed: {} ({})",
                    self.name(*member_id),
                    fail_reason(*reason)
                )
            }
            ClusterEvent::InstanceUp { instance } => format!("instance up: {instance}"),
            ClusterEvent::InstanceDown { instance } => format!("instance down: {instance}"),
            ClusterEvent::GroupJoined { member_id, group } => {
                format!("{} joined group {group}", self.name(*member_id))
            }
            ClusterEvent::GroupLeft { member_id, group } => {
                format!("{} left group {group}", self.name(*member_id))
            }
            ClusterEvent::ServiceState {
                member_id,
                service,
                up,
            } => format!(
                "service {service} {} on {}",
                if *up { "started" } else { "stopped" },
                self.name(*member_id)
            ),
            ClusterEvent::Load { member_id, load } => {
                format!("load of {} is now {load}", self.name(*member_id))
            }
            ClusterEvent::Custom {
                member_id,
                topic,
                payload,
            } => format!(
                "event {topic} from {}: {}",
                self.name(*member_id),
                text(payload)
            ),
        }
    }
}

pub(crate) fn address(a: &Address) -> String {
    match a {
        Address::MemberId(id) => format!("id:{id}"),
        Address::Member { instance, process } => format!("{instance}/{process}"),
        Address::Instance(i) => format!("instance:{i}"),
        Address::Group(g) => format!("group:{g}"),
        Address::Anycast(g) => format!("anycast:{g}"),
        Address::Broadcast => "all".to_owned(),
    }
}

/// A payload as text (lossy), shortened.
pub(crate) fn text(b: &[u8]) -> String {
    const SHOWN_BYTES_MAX: usize = 120;
    let s = String::from_utf8_lossy(&b[..b.len().min(SHOWN_BYTES_MAX)]).into_owned();
    if b.len() > SHOWN_BYTES_MAX {
        format!("{s}… ({} bytes)", b.len())
    } else {
        s
    }
}

/// Why a member was declared failed, in words.
pub(crate) fn fail_reason(r: FailReason) -> &'static str {
    match r {
        FailReason::HeartbeatTimeout => "no heartbeat in time",
        FailReason::ConnectionLost => "connection lost and not resumed in time",
        FailReason::SlowConsumer => "it did not read its messages and fell too far behind",
        FailReason::ProtocolViolation => "it broke the protocol",
        FailReason::Superseded => "a new incarnation of the same process registered",
    }
}

/// Why an addressee missed a message, in words.
pub(crate) fn miss_reason(r: MissReason) -> &'static str {
    match r {
        MissReason::Left => "it left before acknowledging",
        MissReason::Failed => "it failed before acknowledging",
        MissReason::Evicted => "it was evicted as a slow consumer",
        MissReason::ServerRestarted => "the server restarted before it acknowledged",
    }
}

/// The wall-clock time of day, UTC, `HH:MM:SS.mmm`.
pub(crate) fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ms = now.as_millis() % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A received message as JSON.
pub(crate) fn json_message(kind: &str, m: &Message) -> serde_json::Value {
    serde_json::json!({
        "time_ms": unix_ms(),
        "kind": kind,
        "from": m.sender(),
        "to": address(&m.to),
        "payload": text_full(&m.payload),
    })
}

/// A stream event as JSON (one line of `watch --json`).
pub(crate) fn json_event(names: &mut Names, ev: &Event) -> serde_json::Value {
    let mut v = match ev {
        Event::Message(m) => json_message("message", m),
        Event::Request(m) => json_message("request", m),
        Event::Cluster(n) => {
            let text = names.cluster(&n.event);
            let mut v = serde_json::json!({
                "kind": "event",
                "event": format!("{:?}", n.event.kind()).to_lowercase(),
                "text": text,
            });
            if let ClusterEvent::Custom {
                member_id,
                topic,
                payload,
            } = &n.event
            {
                v["from"] = names.name(*member_id).into();
                v["topic"] = topic.clone().into();
                v["payload"] = text_full(payload).into();
            }
            v
        }
        Event::Lagged { missed } => serde_json::json!({"kind": "lagged", "missed": missed}),
        other => serde_json::json!({"kind": "connection", "text": names.describe(other)}),
    };
    if v.get("time_ms").is_none() {
        v["time_ms"] = unix_ms().into();
    }
    v
}

/// A payload as text (lossy), whole.
pub(crate) fn text_full(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
