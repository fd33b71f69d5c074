//! Human-readable lines for events.

use std::collections::HashMap;

use switchboard_client::{Address, ClusterEvent, Event, MemberInfo};

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
                    self.name(m.from),
                    address(&m.to),
                    text(&m.payload)
                )
            }
            Event::Cluster(n) => self.cluster(&n.event),
            Event::Registered {
                member_id,
                view,
                session_lost,
                ..
            } => {
                self.learn_view(view);
                format!(
                    "registered as member {member_id}; view has {} members{}",
                    view.len(),
                    if *session_lost {
                        " (previous session lost: resending unconfirmed messages)"
                    } else {
                        ""
                    }
                )
            }
            Event::Resumed { member_id } => format!("resumed session as member {member_id}"),
            Event::Disconnected { reason } => format!("disconnected: {reason}; reconnecting"),
            Event::Rejected {
                reason,
                text,
                fatal,
            } => format!(
                "refused by the server: {reason:?}: {text}{}",
                if *fatal { " (fatal)" } else { "" }
            ),
            Event::Gap { from, through } => {
                format!("gap: stream positions {from}..={through} lost")
            }
            Event::Closed => "closed".to_owned(),
        }
    }

    pub fn cluster(&mut self, e: &ClusterEvent) -> String {
        match e {
            ClusterEvent::MemberJoined(m) => {
                self.learn_view(std::slice::from_ref(m));
                format!(
                    "member joined: {}/{} (id {}, incarnation {:x})",
                    m.instance, m.process, m.member_id, m.incarnation
                )
            }
            ClusterEvent::MemberLeft { member_id } => {
                format!("member left: {}", self.name(*member_id))
            }
            ClusterEvent::MemberFailed { member_id, reason } => {
                format!("member failed: {} ({reason:?})", self.name(*member_id))
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
