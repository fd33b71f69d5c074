//! The view and its events: membership changes raised by the server,
//! events published by members, subscriptions and groups.

use super::member::ItemData;
use super::*;
use crate::frame::{
    ClusterEvent, EventBody, EventKind, GroupOp, NackReason, Notify, Publish, Subscribe,
    Unsubscribe,
};

impl Server {
    /// Sequences an event and appends it to the stream of every member
    /// that receives it: membership events go to everyone, the others to
    /// members with a matching subscription. `origin` is the publishing
    /// member and its sequence (tracked for stability), `None` for events
    /// the server raises.
    pub(super) fn raise(&mut self, event: ClusterEvent, origin: Option<(u64, u64)>) {
        let gseq = self.next_gseq();
        let epoch_before = self.epoch;
        if event.changes_view() {
            self.epoch += 1;
        }
        debug_assert!(
            self.epoch >= epoch_before && self.epoch <= gseq,
            "view epochs only grow, at most once per stream item"
        );
        self.stats.events += 1;
        if origin.is_some() {
            self.stats.events_published += 1;
            self.record_sequencing_latency();
        }
        self.outputs
            .push_back(Output::Event(ServerEvent::Sequenced {
                gseq,
                epoch: self.epoch,
                event: event.clone(),
            }));
        let (origin_incarnation, origin_seq) = match origin {
            Some((id, seq)) => (self.members.get(&id).map_or(0, |m| m.info.incarnation), seq),
            None => (0, 0),
        };
        let everyone = event.kind() == EventKind::Membership;
        let mut to = std::mem::take(&mut self.scratch);
        to.clear();
        to.extend(
            self.members
                .iter()
                .filter(|(_, m)| everyone || m.subscriptions.values().any(|f| f.matches(&event)))
                .map(|(id, _)| *id),
        );
        let data = ItemData::One(self.encode(&Frame::Notify(Notify {
            gseq,
            epoch: self.epoch,
            origin_incarnation,
            origin_seq,
            event,
        })));
        let tracked = origin.is_some();
        if let Some((id, seq)) = origin {
            self.track(id, seq, gseq, to.len() as u32, false);
        }
        let slow = self.enqueue_all(&to, gseq, data, tracked);
        self.scratch = to;
        // A publisher whose subscribers are full is throttled like a sender.
        if let (Some((id, _)), Some(slow)) = (origin, slow) {
            if slow != id {
                if let Some(m) = self.members.get_mut(&id) {
                    m.throttled_by = Some(slow);
                }
            }
        }
    }

    pub(super) fn on_publish(&mut self, id: u64, p: Publish) {
        if !self.accept_seq(id, p.seq) {
            return;
        }
        if let EventBody::Custom { topic, .. } = &p.event {
            if let Some(why) = self.publish_refusal(id, topic) {
                return self.deny_frame(id, p.seq, super::types::DenialKind::Publish, why);
            }
        }
        if self.over_quota(id) {
            return self.nack(id, p.seq, NackReason::OverQuota);
        }
        if self.has_parked(id) || self.in_grace() {
            // Behind the sender's parked messages (per-sender FIFO), or
            // until the view has filled up after a (re)start.
            return self.park(id, super::routing::ParkedItem::Publish(p));
        }
        self.publish_now(id, p);
    }

    /// Applies and sequences a published event.
    pub(super) fn publish_now(&mut self, id: u64, p: Publish) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        let event = match p.event {
            EventBody::ServiceState { service, up } => {
                if !super::handshake::valid_name(&service) {
                    return self.nack(id, p.seq, NackReason::Invalid);
                }
                let have = m.info.services.binary_search(&service);
                match (up, have) {
                    (true, Err(pos)) => {
                        if m.info.services.len() >= frame::SERVICES_MAX {
                            return self.nack(id, p.seq, NackReason::OverQuota);
                        }
                        m.info.services.insert(pos, service.clone());
                    }
                    (false, Ok(pos)) => {
                        m.info.services.remove(pos);
                    }
                    _ => {}
                }
                ClusterEvent::ServiceState {
                    member_id: id,
                    service,
                    up,
                }
            }
            EventBody::Load(load) => {
                m.info.load = load;
                ClusterEvent::Load {
                    member_id: id,
                    load,
                }
            }
            EventBody::Custom { topic, payload } => {
                if payload.len() > self.config.limits.chunk_bytes_max() as usize {
                    return self.nack(id, p.seq, NackReason::TooLarge);
                }
                ClusterEvent::Custom {
                    member_id: id,
                    topic,
                    payload,
                }
            }
        };
        self.raise(event, Some((id, p.seq)));
    }

    pub(super) fn on_subscribe(&mut self, id: u64, s: Subscribe) {
        if !self.accept_seq(id, s.seq) {
            return;
        }
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        if !m.subscriptions.contains_key(&s.sub_id)
            && m.subscriptions.len() >= frame::SUBSCRIPTIONS_MAX
        {
            return self.nack(id, s.seq, NackReason::OverQuota);
        }
        m.subscriptions.insert(s.sub_id, s.filter);
    }

    pub(super) fn on_unsubscribe(&mut self, id: u64, u: Unsubscribe) {
        if !self.accept_seq(id, u.seq) {
            return;
        }
        if let Some(m) = self.members.get_mut(&id) {
            m.subscriptions.remove(&u.sub_id);
        }
    }

    pub(super) fn on_join(&mut self, id: u64, g: GroupOp) {
        if !self.accept_seq(id, g.seq) {
            return;
        }
        if !super::handshake::valid_name(&g.group) {
            return self.nack(id, g.seq, NackReason::Invalid);
        }
        if let Some(why) = self.join_refusal(id, &g.group) {
            return self.deny_frame(id, g.seq, super::types::DenialKind::Join, why);
        }
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        let Err(pos) = m.info.groups.binary_search(&g.group) else {
            return; // already a member: nothing changes
        };
        if m.info.groups.len() >= frame::GROUPS_PER_MEMBER_MAX
            || (!self.groups.contains_key(&g.group) && self.groups.len() >= self.config.groups_max)
        {
            return self.nack(id, g.seq, NackReason::OverQuota);
        }
        m.info.groups.insert(pos, g.group.clone());
        self.groups.entry(g.group.clone()).or_default().insert(id);
        self.raise(
            ClusterEvent::GroupJoined {
                member_id: id,
                group: g.group,
            },
            None,
        );
        // A parked message to the group may go now.
        self.wake.note_parked();
    }

    pub(super) fn on_leave(&mut self, id: u64, g: GroupOp) {
        if !self.accept_seq(id, g.seq) {
            return;
        }
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        let Ok(pos) = m.info.groups.binary_search(&g.group) else {
            return;
        };
        m.info.groups.remove(pos);
        self.leave_group(id, &g.group);
        self.raise(
            ClusterEvent::GroupLeft {
                member_id: id,
                group: g.group,
            },
            None,
        );
    }

    fn leave_group(&mut self, id: u64, group: &str) {
        if let Some(set) = self.groups.get_mut(group) {
            set.remove(&id);
            if set.is_empty() {
                self.groups.remove(group);
                self.anycast_cursor.remove(group);
            }
        }
    }

    /// Takes a member out of the view: its undelivered stream items count
    /// as missed, the others learn of it in their streams, its connection
    /// (if any) is closed.
    pub(super) fn remove_member(&mut self, id: u64, how: Removal) {
        let Some(mut m) = self.members.remove(&id) else {
            return;
        };
        self.forget_partial(m.partial.take());
        // Its parked messages die with it (it may resend them).
        self.parked.retain(|p| p.sender != id);
        let name = m.name();
        self.by_name.remove(&m.info.instance, &m.info.process);
        let mut instance_empty = false;
        if let Some(set) = self.instances.get_mut(&m.info.instance) {
            set.remove(&id);
            if set.is_empty() {
                self.instances.remove(&m.info.instance);
                instance_empty = true;
            }
        }
        for g in std::mem::take(&mut m.info.groups) {
            self.leave_group(id, &g);
        }
        let miss = how.miss_reason();
        // Keep what the same process needs if it registers again, before
        // resolving its undelivered items (which may finalize its own
        // messages and so add notices and shrink `pending`).
        let mut notices = Vec::new();
        let mut tracked = Vec::new();
        for item in std::mem::take(&mut m.queue) {
            if item.tracked {
                tracked.push(item.gseq);
            }
            if let Some(n) = item.notice {
                notices.push(*n);
            }
        }
        while self.departed_order.len() >= super::routing::DEPARTED_MAX {
            if let Some(old) = self.departed_order.pop_front() {
                self.departed.remove(&old);
            }
        }
        self.departed_order.push_back(id);
        self.departed.insert(
            id,
            super::member::Departed {
                incarnation: m.info.incarnation,
                credential: m.credential.clone(),
                // Parked messages die with the session (the same process
                // resends them): they must not count as received.
                received_through: m
                    .held
                    .first()
                    .map_or(m.received_through, |h| m.received_through.min(h - 1)),
                pending: std::mem::take(&mut m.pending),
                session: m.session,
                notices,
            },
        );
        for gseq in tracked {
            self.resolve_one(gseq, Some(miss), id);
        }
        // Received, but its application never took them.
        for gseq in std::mem::take(&mut m.untaken) {
            self.taken_one(gseq, Some(miss), id);
        }
        if let Some(conn) = m.conn.take() {
            // Put the member back so the final frames reach its connection.
            let reason = match how {
                Removal::Left => CloseReason::Goodbye,
                Removal::Failed(r) => CloseReason::MemberFailed(r),
            };
            self.flush_control(conn, &mut m.control);
            if let Removal::Failed(r) = how {
                let (code, text) = match self.violation_detail.take() {
                    Some((ErrorCode::NotPermitted, detail)) => (ErrorCode::NotPermitted, detail),
                    Some((code, detail)) => (code, format!("protocol violation: {detail}")),
                    None if r == FailReason::SlowConsumer => (
                        ErrorCode::LimitExceeded,
                        "evicted as a slow consumer: stream queue over its limit".into(),
                    ),
                    None => (ErrorCode::DeclaredFailed, format!("declared failed: {r:?}")),
                };
                self.write_raw(conn, &Frame::Error(ErrorFrame { code, text }));
            }
            self.close_conn(conn, reason);
        }
        match how {
            Removal::Left => self.stats.leaves += 1,
            Removal::Failed(r) => self.stats.failures_by_reason[super::stats::fail_index(r)] += 1,
        }
        let event = match how {
            Removal::Left => {
                self.outputs
                    .push_back(Output::Event(ServerEvent::MemberLeft {
                        member_id: id,
                        name,
                    }));
                ClusterEvent::MemberLeft { member_id: id }
            }
            Removal::Failed(reason) => {
                self.outputs
                    .push_back(Output::Event(ServerEvent::MemberFailed {
                        member_id: id,
                        name,
                        reason,
                    }));
                ClusterEvent::MemberFailed {
                    member_id: id,
                    reason,
                }
            }
        };
        self.release_throttled(id);
        self.raise(event, None);
        if instance_empty {
            self.raise(
                ClusterEvent::InstanceDown {
                    instance: m.info.instance.clone(),
                },
                None,
            );
        }
    }

    /// Emits a frame on a connection at once, outside any member lane.
    fn write_raw(&mut self, conn: ConnId, f: &Frame) {
        let data = self.encode(f);
        self.outputs.push_back(Output::Transmit { conn, data });
    }

    /// Emits whatever control frames were pending for a departing member.
    fn flush_control(&mut self, conn: ConnId, control: &mut BytesMut) {
        if !control.is_empty() {
            let data = control.split().freeze();
            self.outputs.push_back(Output::Transmit { conn, data });
        }
    }
}
