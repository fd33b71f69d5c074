//! The workload: the application's operations (sends, requests, publishes,
//! group operations, subscriptions, goodbyes), addressing as an application
//! would, and payloads that carry their own checksum.

use bytes::{BufMut, Bytes, BytesMut};
use rand::Rng;
use switchboard_core::client::{CommandError, SendOptions};
use switchboard_core::frame::{Address, EventBody, Filter};

use super::World;
use crate::history::{Act, MsgId, SubFilter};
use crate::plan::{Action, Target};
use crate::rng::mix;

/// The services a member announces up or down (a few, so that ups, downs,
/// repeats and downs of services never up all happen).
const SERVICES: [&str; 4] = ["http", "grpc", "metrics", "admin"];

/// Share of custom events whose payload fills the frame exactly.
const FULL_EVENT_P: f64 = 0.1;

/// The largest custom event payload the protocol accepts with the
/// simulated frame size (one frame's chunk, `Limits::chunk_bytes_max`).
fn full_event_bytes() -> usize {
    switchboard_core::frame::Limits::with_frame_bytes_max(crate::config::SIM_FRAME_BYTES_MAX)
        .chunk_bytes_max() as usize
}

/// 512 bytes counting 0..=255 twice: any 256-byte window is a filler run.
static RAMP: [u8; 512] = {
    let mut r = [0u8; 512];
    let mut i = 0;
    while i < 512 {
        r[i] = i as u8;
        i += 1;
    }
    r
};

/// How a recorded message was sent.
#[derive(Debug, Clone, Copy)]
pub(super) struct SentAs {
    /// Payload tag.
    pub tag: u64,
    /// Confirmation asked.
    pub confirm: bool,
    /// A request.
    pub request: bool,
    /// Payload length.
    pub bytes: usize,
}

/// Length of [`payload`]`(_, size)`.
pub fn payload_len(size: usize) -> usize {
    size.max(16)
}

/// The payload of message `tag`: tag, checksum, filler (`tag + i` as bytes).
pub fn payload(tag: u64, size: usize) -> Bytes {
    let size = payload_len(size);
    let mut b = BytesMut::with_capacity(size);
    b.put_u64(tag);
    b.put_u64(mix(tag ^ size as u64));
    let start = usize::from(tag as u8);
    let mut left = size - 16;
    while left > 0 {
        let n = left.min(256);
        b.put_slice(&RAMP[start..start + n]);
        left -= n;
    }
    b.freeze()
}

/// Decodes a payload: its tag and whether it is intact.
pub fn check_payload(p: &[u8]) -> (u64, bool) {
    if p.len() < 16 {
        return (0, false);
    }
    let tag = u64::from_be_bytes(p[0..8].try_into().unwrap_or([0; 8]));
    let sum = u64::from_be_bytes(p[8..16].try_into().unwrap_or([0; 8]));
    let start = usize::from(tag as u8);
    let filler_ok = p[16..]
        .chunks(256)
        .all(|c| c == &RAMP[start..start + c.len()]);
    (tag, filler_ok && sum == mix(tag ^ p.len() as u64))
}

impl World {
    /// A fresh payload tag.
    pub(super) fn take_tag(&mut self) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        tag
    }

    /// Largest payload the clients send in one frame.
    fn chunk_bytes_max(&self) -> usize {
        switchboard_core::frame::Limits::with_frame_bytes_max(crate::config::SIM_FRAME_BYTES_MAX)
            .chunk_bytes_max() as usize
    }

    /// Records a message the client accepted (and, when a final status is
    /// owed, remembers it for G8/G9).
    pub(super) fn record_sent(&mut self, slot: usize, seq: u64, to: Address, s: SentAs) {
        let SentAs {
            tag,
            confirm,
            request,
            bytes,
        } = s;
        let proc = self.slots[slot].proc;
        if confirm {
            self.slots[slot].pending_confirms.insert(seq);
        }
        self.record(Act::Sent {
            proc,
            id: MsgId {
                sender: proc.incarnation,
                seq,
            },
            to,
            tag,
            confirm,
            request,
            bytes: bytes as u32,
        });
    }

    /// Resolves a target to an address, if the slot it names is known.
    fn address(&self, from: usize, to: &Target) -> Option<Address> {
        Some(match to {
            // As an application would: the id from the sender's own view.
            Target::Id(s) => {
                let t = self.slots.get(*s)?;
                let view = self.slots.get(from)?.client.as_ref()?.view();
                let m = view
                    .values()
                    .find(|m| m.instance == t.instance && m.process == t.process)?;
                Address::MemberId(m.member_id)
            }
            Target::Name(s) => {
                let s = self.slots.get(*s)?;
                Address::Member {
                    instance: s.instance.clone(),
                    process: s.process.clone(),
                }
            }
            Target::Instance(i) => Address::Instance(format!("i{i}")),
            Target::Group(g) => Address::Group((*g).to_owned()),
            Target::Anycast(g) => Address::Anycast((*g).to_owned()),
            Target::Broadcast => Address::Broadcast,
        })
    }

    /// Applies one workload action.
    pub(super) fn apply_workload(&mut self, action: Action) {
        let now = self.now;
        match action {
            Action::Send {
                slot,
                to,
                confirm,
                size,
            } => {
                let Some(addr) = self.address(slot, &to) else {
                    return;
                };
                let tag = self.take_tag();
                let Some(c) = self.slots[slot].client.as_mut() else {
                    return;
                };
                match c.send(
                    now,
                    addr.clone(),
                    payload(tag, size),
                    SendOptions { confirm },
                ) {
                    Ok(seq) => {
                        let bytes = payload_len(size);
                        if bytes > self.chunk_bytes_max() {
                            self.coverage.chunked_sends += 1;
                        }
                        self.coverage.sends += 1;
                        self.record_sent(
                            slot,
                            seq,
                            addr,
                            SentAs {
                                tag,
                                confirm,
                                request: false,
                                bytes,
                            },
                        );
                    }
                    Err(_) => self.coverage.refused_commands += 1,
                }
                self.drain_client(slot);
            }
            Action::Burst {
                slot,
                to,
                count,
                confirm,
            } => {
                let Some(addr) = self.address(slot, &to) else {
                    return;
                };
                for _ in 0..count {
                    let tag = self.take_tag();
                    let Some(c) = self.slots[slot].client.as_mut() else {
                        return;
                    };
                    let options = SendOptions { confirm };
                    match c.send(now, addr.clone(), payload(tag, 16), options) {
                        Ok(seq) => {
                            self.coverage.sends += 1;
                            self.coverage.burst_sends += 1;
                            self.record_sent(
                                slot,
                                seq,
                                addr.clone(),
                                SentAs {
                                    tag,
                                    confirm,
                                    request: false,
                                    bytes: 16,
                                },
                            );
                        }
                        Err(_) => {
                            // Outbox full: the rest of the burst would be
                            // refused too.
                            self.coverage.refused_commands += 1;
                            break;
                        }
                    }
                }
                self.drain_client(slot);
            }
            Action::Request {
                slot,
                to,
                timeout_ms,
            } => {
                let Some(addr) = self.address(slot, &to) else {
                    return;
                };
                let tag = self.take_tag();
                let Some(c) = self.slots[slot].client.as_mut() else {
                    return;
                };
                match c.request(now, addr.clone(), payload(tag, 24), timeout_ms) {
                    Ok(seq) => {
                        self.coverage.requests += 1;
                        self.record_sent(
                            slot,
                            seq,
                            addr,
                            SentAs {
                                tag,
                                confirm: true,
                                request: true,
                                bytes: 24,
                            },
                        );
                    }
                    Err(_) => self.coverage.refused_commands += 1,
                }
                self.drain_client(slot);
            }
            Action::Publish { slot, kind } => {
                if self.slots[slot].client.is_none() {
                    return;
                }
                let body = match kind {
                    0 => {
                        let r = &mut self.services[slot];
                        EventBody::ServiceState {
                            service: SERVICES[r.gen_range(0..SERVICES.len())].into(),
                            up: r.gen_bool(0.6),
                        }
                    }
                    1 => EventBody::Load((now.as_millis() % 100) as u32),
                    _ => {
                        // Unique content: a lost or altered event shows.
                        let stamp = now.as_micros().to_be_bytes();
                        // Some fill the frame exactly: the largest payload
                        // the protocol accepts must be sequenced, not NACKed
                        // `TooLarge` (G8).
                        let payload = if self.services[slot].gen_bool(FULL_EVENT_P) {
                            let mut p = vec![0x5a; full_event_bytes()];
                            p[..stamp.len()].copy_from_slice(&stamp);
                            Bytes::from(p)
                        } else {
                            Bytes::copy_from_slice(&stamp)
                        };
                        EventBody::Custom {
                            topic: "cache/invalidate".into(),
                            payload,
                        }
                    }
                };
                let _ = self.publish_recorded(slot, body);
                self.drain_client(slot);
            }
            Action::Join { slot, group } | Action::Leave { slot, group } => {
                let join = matches!(action, Action::Join { .. });
                let _ = self.group_op_recorded(slot, group, join);
                self.drain_client(slot);
            }
            Action::Subscribe { slot, filter } => {
                let _ = self.subscribe_recorded(slot, crate::plan::sub_filter(filter));
                self.drain_client(slot);
            }
            Action::Unsubscribe { slot } => {
                let proc = self.slots[slot].proc;
                let Some(&sub_id) = self.slots[slot].subs.front() else {
                    return;
                };
                let Some(c) = self.slots[slot].client.as_mut() else {
                    return;
                };
                let before = c.outbox_len();
                if c.unsubscribe(now, sub_id).is_ok() && c.outbox_len() > before {
                    let seq = c.last_seq();
                    self.coverage.unsubscriptions += 1;
                    self.slots[slot].subs.pop_front();
                    self.slots[slot].pending_state_ops.insert(seq);
                    self.record(Act::Unsubscribed { proc, seq, sub_id });
                }
                self.drain_client(slot);
            }
            Action::Goodbye { slot } => {
                let proc = self.slots[slot].proc;
                let Some(c) = self.slots[slot].client.as_mut() else {
                    return;
                };
                if c.is_closed() {
                    return;
                }
                c.goodbye(now);
                self.slots[slot].gone = true;
                self.record(Act::Goodbye { proc });
                self.drain_client(slot);
            }
            // Carried out by `World::hostile` (it needs the plan step).
            Action::Hostile { .. } => {}
            _ => debug_assert!(action.is_fault(), "not a workload action"),
        }
    }
}

impl World {
    /// Publishes `body` through slot `slot`'s client and records it
    /// (`Published`) when the client accepted it: its sequence, or `None`
    /// without a client or when the client refused it.
    pub(super) fn publish_recorded(&mut self, slot: usize, body: EventBody) -> Option<u64> {
        let now = self.now;
        let c = self.slots[slot].client.as_mut()?;
        let digest = crate::history::event_digest(&body);
        let bytes = match &body {
            EventBody::Custom { payload, .. } => payload.len() as u32,
            _ => 0,
        };
        // The protocol's rule for a service name (PROTOCOL.md).
        let valid = match &body {
            EventBody::ServiceState { service, .. } => {
                !service.is_empty()
                    && service.len() <= switchboard_core::frame::NAME_BYTES_MAX
                    && !service.chars().any(char::is_control)
            }
            _ => true,
        };
        let (kind, topic) = crate::history::event_kind_topic(&body);
        let topic = topic.to_owned();
        let seq = c.publish(now, body).ok()?;
        self.coverage.publishes += 1;
        if bytes as usize == full_event_bytes() {
            self.coverage.full_size_publishes += 1;
        }
        let proc = self.slots[slot].proc;
        self.record(Act::Published {
            proc,
            id: MsgId {
                sender: proc.incarnation,
                seq,
            },
            digest,
            bytes,
            valid,
            kind,
            topic,
        });
        Some(seq)
    }

    /// Joins or leaves `group` through slot `slot`'s client and records the
    /// operation (`GroupOp`) when the client queued a frame for it (it takes
    /// a sequence only then). `None` without a client.
    pub(super) fn group_op_recorded(
        &mut self,
        slot: usize,
        group: &str,
        join: bool,
    ) -> Option<Result<(), CommandError>> {
        let now = self.now;
        let proc = self.slots[slot].proc;
        let c = self.slots[slot].client.as_mut()?;
        let before = c.outbox_len();
        let r = if join {
            c.join(now, group)
        } else {
            c.leave(now, group)
        };
        if r.is_ok() && c.outbox_len() > before {
            // The frame just queued carries the newest sequence; the outbox
            // holds it until acked.
            let seq = c.last_seq();
            self.slots[slot].pending_state_ops.insert(seq);
            self.record(Act::GroupOp {
                proc,
                group: group.to_owned(),
                join,
                seq,
            });
        }
        Some(r)
    }

    /// Subscribes through slot `slot`'s client and records the subscription
    /// (`Subscribed`). `None` without a client.
    pub(super) fn subscribe_recorded(
        &mut self,
        slot: usize,
        filter: Filter,
    ) -> Option<Result<u32, CommandError>> {
        let now = self.now;
        let proc = self.slots[slot].proc;
        let c = self.slots[slot].client.as_mut()?;
        let r = c.subscribe(now, filter.clone());
        if let Ok(sub_id) = r {
            // The frame just queued carries the newest sequence.
            let seq = c.last_seq();
            self.coverage.subscriptions += 1;
            self.slots[slot].pending_state_ops.insert(seq);
            self.slots[slot].subs.push_back(sub_id);
            self.record(Act::Subscribed {
                proc,
                seq,
                sub_id,
                filter: SubFilter {
                    kinds: filter.kinds,
                    topic_prefix: filter.topic_prefix,
                },
            });
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_check_and_tampering_is_detected() {
        for (tag, size) in [(1u64, 16usize), (7, 100), (255, 300), (1 << 40, 70_000)] {
            let p = payload(tag, size);
            assert_eq!(p.len(), size);
            assert_eq!(check_payload(&p), (tag, true));
            let mut bad = p.to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(!check_payload(&bad).1, "flipped filler byte");
            let mut bad = p.to_vec();
            bad[9] ^= 1;
            assert!(!check_payload(&bad).1, "flipped checksum byte");
            assert!(!check_payload(&p[..p.len() - 1]).1, "truncated");
        }
        assert!(!check_payload(b"short").1);
    }
}
