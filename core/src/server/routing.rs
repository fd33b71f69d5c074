//! Messages: reassembly, addressing, sequencing, receipt acks and NACKs,
//! delivery acknowledgements and per-message outcomes.

use std::sync::Arc;

use super::member::{Item, ItemData, Notice};
use super::*;
use crate::frame::{flags, Address, Chunk, Deliver, Missed, Nack, NackReason, Outcome, Send};

/// Capacity an emptied member queue keeps at most (items); a larger one is
/// released so that idle members cost little.
const QUEUE_KEEP_ITEMS: usize = 16;

/// Bytes of a member's delivery arena block (see `Member::arena`).
pub(super) const ARENA_BYTES: usize = 2048;

/// Largest payload encoded into a member's arena; a larger message gets
/// its own buffer.
const ARENA_PAYLOAD_MAX: usize = 512;

/// Room an arena must have for a delivery besides its payload: the frame
/// header, the fixed fields and the largest address.
const ARENA_DELIVER_OVERHEAD: usize = frame::HEADER_BYTES + 64 + 2 * (2 + frame::NAME_BYTES_MAX);

/// A sequenced message (or published event) not yet final at every
/// addressee. Keyed by its gseq.
#[derive(Debug)]
pub(super) struct Inflight {
    /// When it was sequenced (for the ack latency).
    pub sequenced: Tick,
    pub sender: u64,
    /// The sender's session (see `Member::session`).
    pub session: u64,
    pub seq: u64,
    /// Addressees not yet final (delivered or missed).
    pub remaining: u32,
    /// Of those, addressees whose client received the message but whose
    /// application has not taken it yet (`capabilities::TAKEN`).
    pub untaken: u32,
    /// Out of the sender's pending set: every addressee received it or
    /// missed it, so the sender need never resend it.
    pub stable: bool,
    pub delivered: u32,
    pub missed: Vec<Missed>,
    pub confirm: bool,
}

/// A message waiting for its addressee to (re-)register, or an event or
/// message queued behind one (per-sender FIFO holds across parking).
#[derive(Debug)]
pub(super) struct Parked {
    /// When its frame arrived (for the sequencing latency).
    pub received: Tick,
    pub sender: u64,
    pub session: u64,
    pub item: ParkedItem,
}

/// What is parked.
#[derive(Debug)]
pub(super) enum ParkedItem {
    Send(Send),
    Publish(crate::frame::Publish),
}

impl ParkedItem {
    fn seq(&self) -> u64 {
        match self {
            ParkedItem::Send(s) => s.seq,
            ParkedItem::Publish(p) => p.seq,
        }
    }
}

/// Largest number of parked messages.
pub(super) const PARKED_MAX: usize = 4_096;

/// Largest number of remembered departed member ids.
pub(super) const DEPARTED_MAX: usize = 4_096;

impl Server {
    /// Common check for every sequenced frame. Returns false for a resent
    /// frame the server already processed (it is acked again, not redone).
    pub(super) fn accept_seq(&mut self, id: u64, seq: u64) -> bool {
        if self.seq_refused(id, seq) {
            return false;
        }
        let Some(m) = self.members.get_mut(&id) else {
            return false;
        };
        if seq <= m.received_through {
            self.mark_dirty(id);
            return false;
        }
        m.received_through = seq;
        self.mark_dirty(id);
        true
    }

    /// True (and the member failed with a protocol violation) when `seq`
    /// is outside what an honest client can send (`Member::seq_violation`).
    pub(super) fn seq_refused(&mut self, id: u64, seq: u64) -> bool {
        let Some(m) = self.members.get(&id) else {
            return true;
        };
        let Some(detail) = m.seq_violation(seq) else {
            return false;
        };
        if let Some(conn) = m.conn {
            self.protocol_error(conn, ErrorCode::UnexpectedFrame, detail);
        }
        true
    }

    pub(super) fn mark_dirty(&mut self, id: u64) {
        if let Some(conn) = self.members.get(&id).and_then(|m| m.conn) {
            self.dirty.insert(conn);
        }
    }

    pub(super) fn on_send(&mut self, id: u64, s: Send) {
        if s.flags & flags::MORE != 0 {
            return self.start_reassembly(id, s);
        }
        self.process_send(id, s);
    }

    /// A complete message from member `id`.
    pub(super) fn process_send(&mut self, id: u64, s: Send) {
        if !self.accept_seq(id, s.seq) {
            return;
        }
        if s.flags & flags::REQUEST != 0 && s.flags & flags::REPLY != 0 {
            return self.nack(id, s.seq, NackReason::Invalid);
        }
        if let Some(why) = self.send_refusal(id, &s.to) {
            return self.deny_frame(id, s.seq, super::types::DenialKind::Send, why);
        }
        if s.payload.len() as u64 > u64::from(self.config.message_bytes_max) {
            return self.nack(id, s.seq, NackReason::TooLarge);
        }
        if self.over_quota(id) {
            return self.nack(id, s.seq, NackReason::OverQuota);
        }
        self.sequence(id, s);
    }

    /// True when the sender has too many messages in flight.
    pub(super) fn over_quota(&self, id: u64) -> bool {
        self.members
            .get(&id)
            .is_some_and(|m| m.pending.len() + m.held.len() >= self.config.sender_inflight_max)
    }

    /// True while members may still be re-registering after this server
    /// started: unresolvable messages wait instead of being NACKed.
    pub(super) fn in_grace(&self) -> bool {
        self.now < self.started.plus_millis(self.config.restart_grace_ms)
    }

    /// Parks an item behind the sender's earlier parked ones.
    pub(super) fn park(&mut self, id: u64, item: ParkedItem) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        m.held.insert(item.seq());
        let session = m.session;
        self.parked.push_back(Parked {
            received: self.receipt,
            sender: id,
            session,
            item,
        });
    }

    /// True when the sender has parked items: later ones wait behind them.
    pub(super) fn has_parked(&self, id: u64) -> bool {
        self.members.get(&id).is_some_and(|m| !m.held.is_empty())
    }

    /// Routes and sequences an accepted message, or parks or NACKs it.
    fn sequence(&mut self, id: u64, s: Send) {
        if self.has_parked(id) {
            return self.park(id, ParkedItem::Send(s));
        }
        self.sequence_now(id, s);
    }

    /// Like `sequence`, for the sender's oldest message.
    fn sequence_now(&mut self, id: u64, s: Send) {
        let multicast = matches!(
            s.to,
            Address::Instance(_) | Address::Group(_) | Address::Broadcast
        );
        if multicast && self.in_grace() && self.parked.len() < PARKED_MAX {
            // Right after a (re)start the view is still filling up: a
            // multicast waits for the grace to end, so that it reaches every
            // member that came back (resent messages included).
            return self.park(id, ParkedItem::Send(s));
        }
        let mut recipients = std::mem::take(&mut self.scratch);
        recipients.clear();
        if let Err(reason) = self.resolve(id, &s.to, &mut recipients) {
            self.scratch = recipients;
            if self.in_grace() && self.parked.len() < PARKED_MAX {
                // After a restart the addressee may not be back yet.
                return self.park(id, ParkedItem::Send(s));
            }
            return self.nack(id, s.seq, reason);
        }
        let Some(from_incarnation) = self.members.get(&id).map(|m| m.info.incarnation) else {
            self.scratch = recipients;
            return;
        };
        let kind = stats::address_kind(&s.to);
        let gseq = self.next_gseq();
        let deliver = Deliver {
            gseq,
            from: id,
            from_incarnation,
            seq: s.seq,
            flags: s.flags & !flags::MORE,
            to: s.to,
            correlation: s.correlation,
            total_len: s.payload.len() as u32,
            payload: s.payload,
        };
        let data = match recipients[..] {
            [only] => self.encode_deliver_for(only, deliver),
            _ => self.encode_deliver(deliver),
        };
        self.stats.messages_accepted += 1;
        self.record_sequencing_latency();
        if matches!(data, ItemData::Parts(_)) {
            self.stats.chunked_out += 1;
        }
        let n = recipients.len() as u64;
        self.stats.deliveries_by_kind[kind] += n;
        self.stats.delivery_bytes_by_kind[kind] += n * data.len() as u64;
        let confirm = s.flags & flags::CONFIRM != 0;
        let seq = s.seq;
        self.track(id, seq, gseq, recipients.len() as u32, confirm);
        if let Some(slow) = self.enqueue_all(&recipients, gseq, data, true) {
            // A member is never throttled by its own queue.
            if slow != id {
                if let Some(m) = self.members.get_mut(&id) {
                    m.throttled_by = Some(slow);
                }
            }
        }
        self.scratch = recipients;
    }

    /// Retries parked items in order (after a registration, a join, a
    /// throttle released or the end of the grace; see `settle`): a sender's
    /// items stay behind its first one still unresolvable, and a throttled
    /// sender's wait until it is released. After the grace, unresolvable
    /// messages are NACKed instead.
    pub(super) fn retry_parked(&mut self) {
        let parked = std::mem::take(&mut self.parked);
        for p in parked {
            let throttled = self.throttle_holds_id(p.sender);
            let live = self
                .members
                .get_mut(&p.sender)
                .filter(|m| m.session == p.session);
            let Some(m) = live else {
                continue; // the sender is gone
            };
            // Only the sender's oldest parked item may go first, and not
            // while the sender is throttled (its recipients are full).
            if m.held.first() != Some(&p.item.seq()) || throttled {
                self.parked.push_back(p);
                continue;
            }
            m.held.remove(&p.item.seq());
            self.mark_dirty(p.sender);
            self.receipt = p.received;
            match p.item {
                ParkedItem::Send(s) => self.sequence_now(p.sender, s),
                ParkedItem::Publish(e) if self.in_grace() => {
                    self.park(p.sender, ParkedItem::Publish(e));
                }
                ParkedItem::Publish(e) => self.publish_now(p.sender, e),
            }
        }
    }

    /// Encodes a delivery to member `to` alone: a small one into that
    /// member's arena, any other as [`encode_deliver`](Self::encode_deliver).
    fn encode_deliver_for(&mut self, to: u64, d: Deliver) -> ItemData {
        let limits = self.config.limits;
        let fits = d.payload.len() <= ARENA_PAYLOAD_MAX
            && d.payload.len() <= limits.chunk_bytes_max() as usize;
        let Some(m) = self.members.get_mut(&to).filter(|_| fits) else {
            return self.encode_deliver(d);
        };
        let need = ARENA_DELIVER_OVERHEAD + d.payload.len();
        debug_assert!(m.arena.is_empty());
        if m.arena.capacity() < need {
            m.arena = BytesMut::with_capacity(ARENA_BYTES.max(need));
        }
        let r = Frame::Deliver(d).encode(&mut m.arena, &limits);
        debug_assert!(r.is_ok(), "server-built frame must encode: {r:?}");
        ItemData::One(m.arena.split().freeze())
    }

    /// Encodes a delivery once, chunked when its payload is large.
    fn encode_deliver(&self, mut d: Deliver) -> ItemData {
        let chunk = self.config.limits.chunk_bytes_max() as usize;
        if d.payload.len() <= chunk {
            return ItemData::One(self.encode(&Frame::Deliver(d)));
        }
        let payload = std::mem::take(&mut d.payload);
        let gseq = d.gseq;
        let mut parts = Vec::with_capacity(payload.len() / chunk + 1);
        d.flags |= flags::MORE;
        d.payload = payload.slice(..chunk);
        parts.push(self.encode(&Frame::Deliver(d)));
        let mut offset = chunk;
        while offset < payload.len() {
            let end = (offset + chunk).min(payload.len());
            parts.push(self.encode(&Frame::Chunk(Chunk {
                id: gseq,
                offset: offset as u32,
                payload: payload.slice(offset..end),
            })));
            offset = end;
        }
        ItemData::Parts(Arc::from(parts))
    }

    /// Records the time the item being sequenced waited since its receipt.
    /// Most wait none: those are counted from the totals when the counters
    /// are read ([`Server::stats`]), so the common case touches no
    /// histogram.
    pub(super) fn record_sequencing_latency(&mut self) {
        let waited = self.now - self.receipt;
        if waited > 0 {
            self.stats.sequencing_latency.record(waited);
        }
    }

    /// Records a sequenced message that waits for its addressees.
    pub(super) fn track(&mut self, sender: u64, seq: u64, gseq: u64, count: u32, confirm: bool) {
        let mut session = 0;
        if let Some(m) = self.members.get_mut(&sender) {
            let pushed = m.pending.push(seq, ());
            debug_assert!(pushed.is_ok(), "a sender's messages are tracked in order");
            session = m.session;
        }
        let pushed = self.inflight.push(
            gseq,
            Inflight {
                sequenced: self.now,
                sender,
                session,
                seq,
                remaining: count,
                untaken: 0,
                stable: false,
                delivered: 0,
                missed: Vec::new(),
                confirm,
            },
        );
        debug_assert!(pushed.is_ok(), "in-flight gseqs must increase");
        if count == 0 {
            self.finalize(gseq);
        }
    }

    /// Appends one shared item to several members' streams. Returns one
    /// recipient that is over its queue limit, if any; recipients far over
    /// it are marked for eviction (see `settle`).
    pub(super) fn enqueue_all(
        &mut self,
        to: &[u64],
        gseq: u64,
        data: ItemData,
        tracked: bool,
    ) -> Option<u64> {
        let bytes = data.len();
        // The last recipient takes `data` itself: a unicast item costs no
        // reference count of its own.
        let mut data = Some(data);
        let last = to.len().saturating_sub(1);
        let now = self.now;
        let items_max = self.config.member_queue_items_max;
        let bytes_max = self.config.member_queue_bytes_max;
        let grace = self.config.slow_consumer_grace_ms;
        let mut slow = None;
        for (i, r) in to.iter().enumerate() {
            let item_data = if i == last { data.take() } else { data.clone() };
            let Some(item_data) = item_data else {
                debug_assert!(false, "enqueue data taken before the last recipient");
                break;
            };
            if let Some(m) = self.members.get_mut(r) {
                m.push(Item {
                    gseq,
                    data: item_data,
                    bytes,
                    tracked,
                    nack_seq: None,
                    notice: None,
                });
                m.last_sent = now;
                self.stats.items_enqueued += 1;
                self.stats.items_enqueued_bytes += bytes as u64;
                if let Some(conn) = m.conn {
                    self.dirty.insert(conn);
                }
                if m.over_limit(items_max, bytes_max) {
                    slow = Some(*r);
                    Self::note_over_limit(
                        m,
                        *r,
                        now,
                        (items_max, bytes_max, grace),
                        &mut self.wake,
                        &mut self.timers,
                    );
                }
            }
        }
        slow
    }

    /// A member's queue is over its soft limit: evict at twice the limit,
    /// else start the grace period.
    fn note_over_limit(
        m: &mut super::member::Member,
        id: u64,
        now: Tick,
        (items_max, bytes_max, grace): (usize, usize, u64),
        wake: &mut super::settle::Wakeups,
        timers: &mut std::collections::BTreeSet<(Tick, Timer)>,
    ) {
        if m.over_limit(items_max.saturating_mul(2), bytes_max.saturating_mul(2)) {
            wake.note_eviction(id);
        } else if m.over_since.is_none() {
            m.over_since = Some(now);
            timers.insert((now.plus_millis(grace), Timer::SlowConsumer(id)));
        }
    }

    /// Tells a sender a final status: into its stream, or, if its session
    /// is lost but the process may register again, kept for then.
    pub(super) fn notify_sender(&mut self, id: u64, session: u64, notice: Notice) {
        let live = self.members.get(&id).is_some_and(|m| m.session == session);
        if !live {
            let limit = self.config.sender_inflight_max;
            if let Some(d) = self.departed.get_mut(&id).filter(|d| d.session == session) {
                // Outcomes are bounded by the messages the sender had in
                // flight (`pending`): never drop one. NACKs are capped.
                let nacks = d
                    .notices
                    .iter()
                    .filter(|n| matches!(n, Notice::Nack { .. }))
                    .count();
                if matches!(notice, Notice::Outcome { .. }) || nacks < limit {
                    d.notices.push(notice);
                }
            }
            return;
        }
        let gseq = self.next_gseq();
        let (frame, nack_seq) = match &notice {
            Notice::Nack { seq, reason } => (
                Frame::Nack(Nack {
                    gseq,
                    seq: *seq,
                    reason: *reason,
                }),
                Some(*seq),
            ),
            Notice::Outcome {
                seq,
                delivered,
                missed,
            } => (
                Frame::Outcome(Outcome {
                    gseq,
                    seq: *seq,
                    delivered: *delivered,
                    missed: missed.clone(),
                }),
                None,
            ),
        };
        let data = self.encode(&frame);
        let data_len = data.len();
        let outcome = matches!(notice, Notice::Outcome { .. });
        let now = self.now;
        if let Some(m) = self.members.get_mut(&id) {
            m.push(Item {
                gseq,
                bytes: data.len(),
                data: ItemData::One(data),
                tracked: false,
                nack_seq,
                notice: Some(Box::new(notice)),
            });
            m.last_sent = now;
            self.stats.items_enqueued += 1;
            self.stats.items_enqueued_bytes += data_len as u64;
            if outcome {
                self.stats.outcomes += 1;
            }
        }
        self.mark_dirty(id);
    }

    /// Refuses sequence `seq` of member `id`.
    pub(super) fn nack(&mut self, id: u64, seq: u64, reason: NackReason) {
        self.stats.messages_nacked += 1;
        self.stats.nacks_by_reason[stats::nack_index(reason)] += 1;
        if let Some(m) = self.members.get_mut(&id) {
            m.stats.nacks += 1;
        }
        let session = self.members.get(&id).map_or(0, |m| m.session);
        self.notify_sender(id, session, Notice::Nack { seq, reason });
    }

    /// Addressees of a message from `from`. Errors say why none is possible.
    fn resolve(&mut self, from: u64, to: &Address, out: &mut Vec<u64>) -> Result<(), NackReason> {
        match to {
            Address::MemberId(id) => {
                if self.members.contains_key(id) {
                    out.push(*id);
                } else if self.departed.contains_key(id) {
                    return Err(NackReason::DestinationGone);
                } else {
                    return Err(NackReason::UnknownDestination);
                }
            }
            Address::Member { instance, process } => match self.by_name.get(instance, process) {
                Some(id) => out.push(id),
                None if self.instances.contains_key(instance) => {
                    return Err(NackReason::DestinationGone)
                }
                None => return Err(NackReason::UnknownDestination),
            },
            Address::Instance(name) => {
                let Some(set) = self.instances.get(name) else {
                    return Err(NackReason::UnknownDestination);
                };
                out.extend(set.iter().copied().filter(|m| *m != from));
                if out.is_empty() {
                    return Err(NackReason::DestinationGone);
                }
            }
            Address::Group(name) => {
                let Some(set) = self.groups.get(name) else {
                    return Err(NackReason::UnknownDestination);
                };
                out.extend(set.iter().copied().filter(|m| *m != from));
                if out.is_empty() {
                    return Err(NackReason::DestinationGone);
                }
            }
            Address::Anycast(name) => {
                // Round robin over the group in member-id order, skipping
                // the sender and, while another member is available,
                // members over their queue limit.
                let Some(set) = self.groups.get(name) else {
                    return Err(NackReason::UnknownDestination);
                };
                let cursor = self.anycast_cursor.get(name).copied().unwrap_or(0);
                let items_max = self.config.member_queue_items_max;
                let bytes_max = self.config.member_queue_bytes_max;
                let candidates = set
                    .range(cursor + 1..)
                    .chain(set.range(..=cursor))
                    .copied()
                    .filter(|m| *m != from);
                let mut fallback = None;
                let mut pick = None;
                for c in candidates {
                    let slow = self
                        .members
                        .get(&c)
                        .is_none_or(|m| m.over_limit(items_max, bytes_max));
                    if !slow {
                        pick = Some(c);
                        break;
                    }
                    fallback = fallback.or(Some(c));
                }
                match pick.or(fallback) {
                    Some(p) => {
                        self.anycast_cursor.insert(name.clone(), p);
                        out.push(p);
                    }
                    None => return Err(NackReason::DestinationGone),
                }
            }
            Address::Broadcast => {
                out.extend(self.members.keys().copied().filter(|m| *m != from));
            }
        }
        Ok(())
    }

    /// The member acknowledged its stream through `through`.
    pub(super) fn on_delivery_ack(&mut self, id: u64, through: u64) {
        let mut done = std::mem::take(&mut self.scratch);
        done.clear();
        let mut waiting = std::mem::take(&mut self.scratch_untaken);
        waiting.clear();
        let half = (
            self.config.member_queue_items_max / 2,
            self.config.member_queue_bytes_max / 2,
        );
        if let Some(m) = self.members.get_mut(&id) {
            let was_over_half = m.over_limit(half.0, half.1);
            let notices_held = m.notices_queued >= self.config.sender_inflight_max;
            // Counted once per acknowledgement, not per item.
            let (mut acked, mut acked_bytes) = (0u64, 0u64);
            while m.sent_items > 0 {
                let Some(front) = m.queue.front() else {
                    break;
                };
                if front.gseq > through {
                    break;
                }
                let bytes = front.bytes;
                if front.tracked {
                    // A message that asks for an outcome, to a client that
                    // reports what its application takes, waits for that
                    // (moved to `untaken` now, so that the limits below see
                    // it); any other is delivered.
                    let gseq = front.gseq;
                    let wait = m.reports_taken
                        && gseq > m.taken_through
                        && self.inflight.get(gseq).is_some_and(|f| f.confirm);
                    if wait {
                        debug_assert!(m.untaken.back().is_none_or(|&b| b < gseq));
                        m.untaken.push_back(gseq);
                        waiting.push(gseq);
                    } else {
                        done.push(gseq);
                    }
                }
                if front.notice.is_some() {
                    m.notices_queued -= 1;
                }
                m.queue.pop_front();
                m.queue_bytes -= bytes;
                m.sent_items -= 1;
                m.sent_bytes = m.sent_bytes.saturating_sub(bytes);
                acked += 1;
                acked_bytes += bytes as u64;
            }
            m.stats.acked += acked;
            m.stats.acked_bytes += acked_bytes;
            self.stats.items_acked += acked;
            if m.sent_items == 0 {
                m.sent_parts = 0;
            }
            if m.queue.is_empty() {
                // Its frames are all acknowledged: the block goes too.
                m.arena = BytesMut::new();
                if m.queue.capacity() > QUEUE_KEEP_ITEMS {
                    // A burst is over: an idle member does not keep its room.
                    m.queue = VecDeque::new();
                }
            }
            if m.over_since.is_some() {
                self.wake.note_maybe_under(id);
            }
            if let Some(conn) = m.conn {
                self.dirty.insert(conn);
            }
            // A member held back by its own unread notices goes on.
            let own_inbox =
                !m.inbox.is_empty() && m.notices_queued < self.config.sender_inflight_max;
            // Its own parked items may go on too once its unread notices
            // no longer hold it (they were skipped while it was throttled,
            // and nothing else would retry them).
            let notices_released =
                notices_held && m.notices_queued < self.config.sender_inflight_max;
            // Senders throttled by this member go on once it is below half
            // its limit (checked on the crossing only).
            let release = was_over_half && !m.over_limit(half.0, half.1);
            if release {
                self.release_throttled(id);
            }
            if own_inbox {
                self.wake.note_inbox(id);
            }
            if notices_released {
                self.wake.note_parked();
            }
        }
        for gseq in done.drain(..) {
            self.resolve_one(gseq, None, id);
        }
        for gseq in waiting.drain(..) {
            self.received_untaken(gseq);
        }
        self.scratch = done;
        self.scratch_untaken = waiting;
    }

    /// An addressee's client received tracked item `gseq` (already in its
    /// `untaken` list): it waits for the application to take it, and no
    /// longer for receipt.
    fn received_untaken(&mut self, gseq: u64) {
        let Some(f) = self.inflight.get_mut(gseq) else {
            debug_assert!(false, "tracked item without an in-flight record");
            return;
        };
        f.untaken += 1;
        debug_assert!(f.untaken <= f.remaining);
        if f.untaken == f.remaining {
            self.make_stable(gseq);
        }
    }

    /// `Taken{through}` from member `id`: its application took every
    /// message up to `through`, which now count as delivered to it.
    pub(super) fn on_taken(&mut self, id: u64, through: u64) {
        let half = (
            self.config.member_queue_items_max / 2,
            self.config.member_queue_bytes_max / 2,
        );
        let mut done = std::mem::take(&mut self.scratch);
        done.clear();
        let mut release = false;
        if let Some(m) = self.members.get_mut(&id) {
            if !m.reports_taken || through <= m.taken_through {
                self.scratch = done;
                return;
            }
            let was_over_half = m.over_limit(half.0, half.1);
            m.taken_through = through;
            while m.untaken.front().is_some_and(|&g| g <= through) {
                done.extend(m.untaken.pop_front());
            }
            if m.untaken.is_empty() && m.untaken.capacity() > QUEUE_KEEP_ITEMS {
                m.untaken = VecDeque::new();
            }
            if m.over_since.is_some() {
                self.wake.note_maybe_under(id);
            }
            release = was_over_half && !m.over_limit(half.0, half.1);
        }
        if release {
            self.release_throttled(id);
        }
        for gseq in done.drain(..) {
            self.taken_one(gseq, None, id);
        }
        self.scratch = done;
    }

    /// An addressee that had received `gseq` took it (`missed: None`) or
    /// was removed before its application took it.
    pub(super) fn taken_one(&mut self, gseq: u64, missed: Option<MissReason>, member_id: u64) {
        let Some(f) = self.inflight.get_mut(gseq) else {
            debug_assert!(false, "untaken item without an in-flight record");
            return;
        };
        debug_assert!(f.untaken > 0);
        f.untaken -= 1;
        self.resolve_one(gseq, missed, member_id);
    }

    /// Every addressee of `gseq` received or missed it: the sender's
    /// stable watermark may pass it (its outcome may still wait for
    /// applications to take it).
    fn make_stable(&mut self, gseq: u64) {
        let Some(f) = self.inflight.get_mut(gseq) else {
            return;
        };
        if std::mem::replace(&mut f.stable, true) {
            return;
        }
        let (sender, session, seq) = (f.sender, f.session, f.seq);
        if let Some(m) = self
            .members
            .get_mut(&sender)
            .filter(|m| m.session == session)
        {
            m.pending.remove(seq);
        } else if let Some(d) = self
            .departed
            .get_mut(&sender)
            .filter(|d| d.session == session)
        {
            d.pending.remove(seq);
            return;
        } else {
            return;
        }
        self.mark_dirty(sender);
    }

    /// Releases the senders throttled by `recipient` (it drained, or
    /// left): their parked items and deferred frames may go on.
    pub(super) fn release_throttled(&mut self, recipient: u64) {
        for m in self.members.values_mut() {
            if m.throttled_by == Some(recipient) {
                m.throttled_by = None;
                if let Some(conn) = m.conn {
                    self.dirty.insert(conn);
                }
            }
        }
        self.wake.note_parked();
        for (id, m) in &self.members {
            if !m.inbox.is_empty() && m.throttled_by.is_none() {
                self.wake.note_inbox(*id);
            }
        }
    }

    /// One addressee of in-flight message `gseq` reached a final state.
    pub(super) fn resolve_one(&mut self, gseq: u64, missed: Option<MissReason>, member_id: u64) {
        let Some(f) = self.inflight.get_mut(gseq) else {
            debug_assert!(false, "tracked item without an in-flight record");
            return;
        };
        debug_assert!(f.remaining > 0);
        f.remaining -= 1;
        match missed {
            None => f.delivered += 1,
            Some(reason) => {
                // The outcome must fit one frame: 9 bytes per entry.
                let fit = (self.config.limits.frame_bytes_max as usize).saturating_sub(64) / 9;
                if f.missed.len() < frame::OUTCOME_MISSED_MAX.min(fit) {
                    f.missed.push(Missed { member_id, reason });
                }
            }
        }
        if f.remaining == 0 {
            self.finalize(gseq);
        } else if f.remaining == f.untaken {
            self.make_stable(gseq);
        }
    }

    /// In-flight message `gseq` is final everywhere.
    fn finalize(&mut self, gseq: u64) {
        let Some(f) = self.inflight.remove(gseq) else {
            return;
        };
        self.stats.ack_latency.record(self.now - f.sequenced);
        if let Some(m) = self
            .members
            .get_mut(&f.sender)
            .filter(|m| m.session == f.session)
        {
            m.pending.remove(f.seq);
        } else if let Some(d) = self
            .departed
            .get_mut(&f.sender)
            .filter(|d| d.session == f.session)
        {
            d.pending.remove(f.seq);
        } else {
            return;
        }
        if f.confirm {
            let notice = Notice::Outcome {
                seq: f.seq,
                delivered: f.delivered,
                missed: f.missed,
            };
            self.notify_sender(f.sender, f.session, notice);
        } else {
            self.mark_dirty(f.sender);
        }
    }
}
