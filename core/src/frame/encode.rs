//! Frame encoding. Every length and count is checked against the same
//! limits the decoder enforces, so whatever encodes also decodes.

use bytes::{BufMut, BytesMut};

use super::error::EncodeError;
use super::limits::*;
use super::types::*;
use super::*;

type Result<T = ()> = std::result::Result<T, EncodeError>;

impl Frame {
    /// Appends this frame to `dst`. Returns the number of bytes written.
    ///
    /// On error `dst` is left exactly as it was.
    pub fn encode(&self, dst: &mut BytesMut, limits: &Limits) -> Result<usize> {
        let start = dst.len();
        dst.reserve(HEADER_BYTES + self.body_hint());
        dst.put_u32(0); // patched below
        dst.put_u8(PROTOCOL_VERSION);
        dst.put_u8(self.kind());
        if let Err(e) = self.encode_body(dst) {
            dst.truncate(start);
            return Err(e);
        }
        let total = dst.len() - start;
        if total as u64 > u64::from(limits.frame_bytes_max) {
            dst.truncate(start);
            return Err(EncodeError::FrameTooLarge {
                len: total as u64,
                max: limits.frame_bytes_max,
            });
        }
        let len = (total - 4) as u32;
        dst[start..start + 4].copy_from_slice(&len.to_be_bytes());
        Ok(total)
    }

    /// A cheap guess of the body size, to reserve once.
    fn body_hint(&self) -> usize {
        match self {
            Frame::Send(s) => 40 + s.payload.len(),
            Frame::Deliver(d) => 56 + d.payload.len(),
            Frame::Chunk(c) => 16 + c.payload.len(),
            _ => 64,
        }
    }

    fn encode_body(&self, w: &mut BytesMut) -> Result {
        match self {
            Frame::Hello(h) => {
                put_str(w, "cluster", &h.cluster, CLAIMED_NAME_BYTES_MAX)?;
                put_str(w, "instance", &h.instance, CLAIMED_NAME_BYTES_MAX)?;
                put_str(w, "process", &h.process, CLAIMED_NAME_BYTES_MAX)?;
                w.put_u64(h.incarnation);
                w.put_u32(h.capabilities);
                w.put_slice(&h.client_nonce);
                put_names(
                    w,
                    "services",
                    &h.services,
                    SERVICES_MAX,
                    CLAIMED_NAME_BYTES_MAX,
                )?;
                w.put_u32(h.load);
                put_names(
                    w,
                    "groups",
                    &h.groups,
                    GROUPS_PER_MEMBER_MAX,
                    CLAIMED_NAME_BYTES_MAX,
                )?;
                put_count(w, "subscriptions", h.subscriptions.len(), SUBSCRIPTIONS_MAX)?;
                for sub in &h.subscriptions {
                    w.put_u32(sub.sub_id);
                    put_filter(w, &sub.filter)?;
                }
                if !h.credential.is_empty() {
                    put_str(w, "credential", &h.credential, NAME_BYTES_MAX)?;
                }
            }
            Frame::Resume(r) => {
                put_str(w, "cluster", &r.cluster, NAME_BYTES_MAX)?;
                w.put_u64(r.member_id);
                w.put_u64(r.incarnation);
                w.put_u64(r.server_incarnation);
                w.put_u64(r.delivered_through);
                w.put_slice(&r.client_nonce);
                if !r.credential.is_empty() {
                    put_str(w, "credential", &r.credential, NAME_BYTES_MAX)?;
                }
            }
            Frame::Challenge(c) => {
                w.put_u64(c.server_incarnation);
                w.put_slice(&c.server_nonce);
                w.put_slice(&c.server_proof);
                put_count(w, "extra_proofs", c.extra_proofs.len(), EXTRA_PROOFS_MAX)?;
                for p in &c.extra_proofs {
                    w.put_slice(p);
                }
            }
            Frame::Auth(a) => {
                w.put_slice(&a.client_proof);
                w.put_slice(&a.session_proof);
            }
            Frame::Welcome(wl) => {
                w.put_u64(wl.member_id);
                w.put_u64(wl.server_incarnation);
                w.put_u64(wl.epoch);
                w.put_u64(wl.position);
                w.put_u32(wl.heartbeat_interval_ms);
                w.put_u32(wl.heartbeat_timeout_ms);
                w.put_u32(wl.resume_window_ms);
                w.put_u32(wl.frame_bytes_max);
                w.put_u32(wl.snapshot_members);
            }
            Frame::Snapshot(s) => {
                put_count(w, "members", s.members.len(), SNAPSHOT_MEMBERS_MAX)?;
                for m in &s.members {
                    put_member(w, m)?;
                }
            }
            Frame::Reject(r) => {
                w.put_u8(r.reason.code());
                put_str(w, "text", &r.text, TEXT_BYTES_MAX)?;
            }
            Frame::Resumed(r) => {
                w.put_u64(r.received_through);
                w.put_u64(r.replay_from);
            }
            Frame::Gap(g) => {
                w.put_u64(g.from);
                w.put_u64(g.through);
            }
            Frame::Send(s) => {
                check_message("send", s.flags, s.total_len, s.payload.len())?;
                let mut f = Fixed::new(w);
                f.put(s.seq.to_be_bytes());
                f.put([s.flags]);
                f.address(&s.to)?;
                f.put(s.correlation.to_be_bytes());
                f.put(s.timeout_ms.to_be_bytes());
                f.put(s.total_len.to_be_bytes());
                // Fits: the frame limit (at most 16 MiB) is checked by the caller.
                f.put((s.payload.len() as u32).to_be_bytes());
                f.finish().put_slice(&s.payload);
            }
            Frame::Chunk(c) => {
                let end = u64::from(c.offset) + c.payload.len() as u64;
                if end > u64::from(MESSAGE_BYTES_MAX) {
                    return Err(EncodeError::MessageTooLarge {
                        len: end,
                        max: MESSAGE_BYTES_MAX,
                    });
                }
                w.put_u64(c.id);
                w.put_u32(c.offset);
                put_payload(w, &c.payload);
            }
            Frame::Ack(a) => {
                w.put_u64(a.through);
                w.put_u64(a.stable_through);
            }
            Frame::Nack(n) => {
                w.put_u64(n.gseq);
                w.put_u64(n.seq);
                w.put_u8(n.reason.code());
            }
            Frame::Deliver(d) => {
                check_message("deliver", d.flags, d.total_len, d.payload.len())?;
                let mut f = Fixed::new(w);
                f.put(d.gseq.to_be_bytes());
                f.put(d.from.to_be_bytes());
                f.put(d.from_incarnation.to_be_bytes());
                f.put(d.seq.to_be_bytes());
                f.put([d.flags]);
                f.address(&d.to)?;
                f.put(d.correlation.to_be_bytes());
                f.put(d.total_len.to_be_bytes());
                // Fits: the frame limit (at most 16 MiB) is checked by the caller.
                f.put((d.payload.len() as u32).to_be_bytes());
                f.finish().put_slice(&d.payload);
            }
            Frame::DeliveryAck(a) => w.put_u64(a.through),
            Frame::Taken(t) => w.put_u64(t.through),
            Frame::Outcome(o) => {
                w.put_u64(o.gseq);
                w.put_u64(o.seq);
                w.put_u32(o.delivered);
                put_count(w, "missed", o.missed.len(), OUTCOME_MISSED_MAX)?;
                for m in &o.missed {
                    w.put_u64(m.member_id);
                    w.put_u8(m.reason.code());
                }
            }
            Frame::Publish(p) => {
                w.put_u64(p.seq);
                put_event_body(w, &p.event)?;
            }
            Frame::Notify(n) => {
                w.put_u64(n.gseq);
                w.put_u64(n.epoch);
                w.put_u64(n.origin_incarnation);
                w.put_u64(n.origin_seq);
                put_cluster_event(w, &n.event)?;
            }
            Frame::Subscribe(s) => {
                w.put_u64(s.seq);
                w.put_u32(s.sub_id);
                put_filter(w, &s.filter)?;
            }
            Frame::Unsubscribe(u) => {
                w.put_u64(u.seq);
                w.put_u32(u.sub_id);
            }
            Frame::Join(g) | Frame::Leave(g) => {
                w.put_u64(g.seq);
                put_str(w, "group", &g.group, CLAIMED_NAME_BYTES_MAX)?;
            }
            Frame::Ping(n) | Frame::Pong(n) => w.put_u64(*n),
            Frame::Goodbye(g) => put_str(w, "text", &g.text, TEXT_BYTES_MAX)?,
            Frame::Error(e) => {
                w.put_u8(e.code.code());
                put_str(w, "text", &e.text, TEXT_BYTES_MAX)?;
            }
        }
        Ok(())
    }
}

fn check_message(field: &'static str, flags: u8, total_len: u32, payload_len: usize) -> Result {
    if flags & !flags::ALL != 0 {
        return Err(EncodeError::InvalidFlags { flags });
    }
    if total_len > MESSAGE_BYTES_MAX {
        return Err(EncodeError::MessageTooLarge {
            len: u64::from(total_len),
            max: MESSAGE_BYTES_MAX,
        });
    }
    let payload_len = payload_len as u64;
    let more = flags & flags::MORE != 0;
    if payload_len > u64::from(total_len) {
        return Err(EncodeError::InconsistentLength {
            field,
            detail: "payload longer than total_len",
        });
    }
    if more != (payload_len < u64::from(total_len)) {
        return Err(EncodeError::InconsistentLength {
            field,
            detail: "MORE flag must be set exactly when payload is shorter than total_len",
        });
    }
    Ok(())
}

fn put_str(w: &mut BytesMut, field: &'static str, s: &str, max: usize) -> Result {
    if s.len() > max {
        return Err(EncodeError::StringTooLong {
            field,
            len: s.len(),
            max,
        });
    }
    w.put_u16(s.len() as u16);
    w.put_slice(s.as_bytes());
    Ok(())
}

fn put_count(w: &mut BytesMut, field: &'static str, count: usize, max: usize) -> Result {
    if count > max {
        return Err(EncodeError::TooMany { field, count, max });
    }
    w.put_u16(count as u16);
    Ok(())
}

fn put_names(
    w: &mut BytesMut,
    field: &'static str,
    names: &[String],
    max: usize,
    name_max: usize,
) -> Result {
    put_count(w, field, names.len(), max)?;
    for n in names {
        put_str(w, field, n, name_max)?;
    }
    Ok(())
}

fn put_filter(w: &mut BytesMut, f: &Filter) -> Result {
    w.put_u16(f.kinds);
    put_str(w, "topic_prefix", &f.topic_prefix, TOPIC_BYTES_MAX)
}

/// Fixed-size fields gathered on the stack and appended with one copy
/// (each `BufMut::put_*` on a `BytesMut` is a call with a bounds check and
/// a copy of its own). Fields are appended in order; a variable-length
/// field flushes what is gathered first.
struct Fixed<'a> {
    w: &'a mut BytesMut,
    buf: [u8; FIXED_BYTES],
    len: usize,
}

/// Bytes [`Fixed`] gathers before it must flush.
const FIXED_BYTES: usize = 64;

impl<'a> Fixed<'a> {
    fn new(w: &'a mut BytesMut) -> Self {
        Fixed {
            w,
            buf: [0; FIXED_BYTES],
            len: 0,
        }
    }

    /// Appends one field.
    #[inline]
    fn put<const N: usize>(&mut self, field: [u8; N]) {
        const { assert!(N <= FIXED_BYTES) };
        if self.len + N > FIXED_BYTES {
            self.flush();
        }
        self.buf[self.len..self.len + N].copy_from_slice(&field);
        self.len += N;
    }

    /// Appends an address: a member id or broadcast in place, a name after
    /// a flush.
    fn address(&mut self, a: &Address) -> Result {
        match a {
            Address::MemberId(id) => {
                self.put([a.tag()]);
                self.put(id.to_be_bytes());
                Ok(())
            }
            Address::Broadcast => {
                self.put([a.tag()]);
                Ok(())
            }
            _ => {
                self.flush();
                put_address(self.w, a)
            }
        }
    }

    fn flush(&mut self) {
        self.w.put_slice(&self.buf[..self.len]);
        self.len = 0;
    }

    /// Appends what is gathered; the buffer, for what follows.
    fn finish(mut self) -> &'a mut BytesMut {
        self.flush();
        self.w
    }
}

fn put_payload(w: &mut BytesMut, payload: &[u8]) {
    // Fits: the frame limit (at most 16 MiB) is checked by the caller.
    w.put_u32(payload.len() as u32);
    w.put_slice(payload);
}

fn put_address(w: &mut BytesMut, a: &Address) -> Result {
    w.put_u8(a.tag());
    match a {
        Address::MemberId(id) => w.put_u64(*id),
        Address::Member { instance, process } => {
            put_str(w, "instance", instance, NAME_BYTES_MAX)?;
            put_str(w, "process", process, NAME_BYTES_MAX)?;
        }
        Address::Instance(n) => put_str(w, "instance", n, NAME_BYTES_MAX)?,
        Address::Group(n) | Address::Anycast(n) => put_str(w, "group", n, NAME_BYTES_MAX)?,
        Address::Broadcast => {}
    }
    Ok(())
}

fn put_member(w: &mut BytesMut, m: &MemberInfo) -> Result {
    w.put_u64(m.member_id);
    w.put_u64(m.incarnation);
    put_str(w, "instance", &m.instance, NAME_BYTES_MAX)?;
    put_str(w, "process", &m.process, NAME_BYTES_MAX)?;
    put_names(w, "services", &m.services, SERVICES_MAX, NAME_BYTES_MAX)?;
    w.put_u32(m.load);
    put_names(
        w,
        "groups",
        &m.groups,
        GROUPS_PER_MEMBER_MAX,
        NAME_BYTES_MAX,
    )?;
    Ok(())
}

fn put_event_body(w: &mut BytesMut, e: &EventBody) -> Result {
    match e {
        EventBody::ServiceState { service, up } => {
            w.put_u8(1);
            put_str(w, "service", service, CLAIMED_NAME_BYTES_MAX)?;
            w.put_u8(u8::from(*up));
        }
        EventBody::Load(load) => {
            w.put_u8(2);
            w.put_u32(*load);
        }
        EventBody::Custom { topic, payload } => {
            w.put_u8(3);
            put_str(w, "topic", topic, TOPIC_BYTES_MAX)?;
            put_payload(w, payload);
        }
    }
    Ok(())
}

fn put_cluster_event(w: &mut BytesMut, e: &ClusterEvent) -> Result {
    match e {
        ClusterEvent::MemberJoined(m) => {
            w.put_u8(1);
            put_member(w, m)?;
        }
        ClusterEvent::MemberLeft { member_id } => {
            w.put_u8(2);
            w.put_u64(*member_id);
        }
        ClusterEvent::MemberFailed { member_id, reason } => {
            w.put_u8(3);
            w.put_u64(*member_id);
            w.put_u8(reason.code());
        }
        ClusterEvent::InstanceUp { instance } => {
            w.put_u8(4);
            put_str(w, "instance", instance, NAME_BYTES_MAX)?;
        }
        ClusterEvent::InstanceDown { instance } => {
            w.put_u8(5);
            put_str(w, "instance", instance, NAME_BYTES_MAX)?;
        }
        ClusterEvent::GroupJoined { member_id, group } => {
            w.put_u8(6);
            w.put_u64(*member_id);
            put_str(w, "group", group, NAME_BYTES_MAX)?;
        }
        ClusterEvent::GroupLeft { member_id, group } => {
            w.put_u8(7);
            w.put_u64(*member_id);
            put_str(w, "group", group, NAME_BYTES_MAX)?;
        }
        ClusterEvent::ServiceState {
            member_id,
            service,
            up,
        } => {
            w.put_u8(8);
            w.put_u64(*member_id);
            put_str(w, "service", service, NAME_BYTES_MAX)?;
            w.put_u8(u8::from(*up));
        }
        ClusterEvent::Load { member_id, load } => {
            w.put_u8(9);
            w.put_u64(*member_id);
            w.put_u32(*load);
        }
        ClusterEvent::Custom {
            member_id,
            topic,
            payload,
        } => {
            w.put_u8(10);
            w.put_u64(*member_id);
            put_str(w, "topic", topic, TOPIC_BYTES_MAX)?;
            put_payload(w, payload);
        }
    }
    Ok(())
}
