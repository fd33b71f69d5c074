//! The hostile member: a member process that now and then writes a frame
//! its client would never send (a sequence outside the window, a
//! `DeliveryAck` beyond its stream, a `Taken` the server must ignore, a
//! subscription or group join past the quota, bytes the decoder refuses,
//! a sequenced frame between the pieces of a chunked `Send`), so that the
//! server's protective paths run under the checkers.
//!
//! Every crafted frame is written only onto a connection in a state where
//! the simulator knows exactly what the server will see: the client is
//! ready on it, the server holds it attached to the member's session and
//! reads it, nothing is in flight either way or held back, the process
//! reads its connection and the member is not throttled. The bytes are then
//! handed to the server at once (a zero-latency write, in order with
//! everything the connection carried before), so the server processes the
//! frame in the step that records [`Act::Hostile`].
//!
//! A `Send` exactly `SEQ_WINDOW` behind the server's mark (known exactly
//! when every sequence the client used is acknowledged) is no violation:
//! the server must take it for a resend and ignore it.
//!
//! A `Subscribe` or `Join` must carry a sequence the server has not
//! processed, or every later frame of the client would look like a resend.
//! It takes the sequence of the client's next command, a load `Publish`
//! recorded as any publish, written right after it in the same write: the
//! server refuses the crafted frame and answers the publish's sequence
//! with that NACK, and the publish is a resend it ignores.
//!
//! Undecodable bytes (a frame header the decoder refuses) go alone, or
//! right before the client's next command (a load `Publish`, which the
//! server then never reads: it stops at the bytes), or after everything
//! the client wrote then. The head of a chunked `Send` (`MORE` set, a
//! quarter of its declared length) takes the sequence of the client's next
//! command, a load `Publish` written right after it: a sequenced frame
//! between the pieces of a message. Either way the server must remove the
//! member for a protocol violation at once.

use bytes::{Bytes, BytesMut};
use switchboard_core::client::{CommandError, SendOptions};
use switchboard_core::frame::{
    self, Address, DeliveryAck, EventBody, Filter, Frame, GroupOp, Send, Subscribe, Taken,
    SEQ_WINDOW,
};
use switchboard_core::server::ConnId;

use super::workload::{payload, SentAs};
use super::{Ev, World};
use crate::history::{Act, HostileFrame, MsgId};
use crate::plan::HostileKind;

/// How often a hostile write waits for its connection to be quiet before
/// it is dropped.
const TRIES_MAX: u32 = 200;
/// Wait between two tries, ms.
const RETRY_MS: u64 = 7;
/// Topic of the subscriptions a hostile member pads its quota with
/// (nothing is published on it).
const PAD_TOPIC: &str = "pad/";
/// First id of the crafted subscriptions (the client numbers its own from
/// 1 up).
const HOSTILE_SUB_ID: u32 = 0xF000_0000;
/// The group a crafted `Join` names (nobody joins it).
const HOSTILE_GROUP: &str = "over-quota";
/// A kind byte that names no frame (section 3 of `docs/PROTOCOL.md`).
const UNKNOWN_KIND: u8 = 0x7E;

impl World {
    /// Carries out a hostile write of plan step `i`, or tries again shortly
    /// when the connection is not quiet.
    pub(super) fn hostile(&mut self, i: usize, slot: usize, kind: HostileKind) {
        let Some((conn, member_id)) = self.quiet_conn(slot) else {
            let tries = self.hostile_tries.entry(i).or_insert(0);
            *tries += 1;
            if *tries < TRIES_MAX {
                let at = self.now.plus_millis(RETRY_MS);
                self.push(at, Ev::Step(i));
            } else {
                self.coverage.hostile_dropped += 1;
            }
            return;
        };
        match kind {
            HostileKind::SeqAhead | HostileKind::SeqBehind => {
                self.hostile_seq(slot, conn, member_id, kind)
            }
            HostileKind::AckAhead => self.hostile_ack_ahead(slot, conn, member_id),
            HostileKind::Taken => self.hostile_taken(slot, conn, member_id),
            HostileKind::SubscribeOver | HostileKind::JoinOver => {
                self.hostile_over_quota(slot, conn, member_id, kind)
            }
            HostileKind::Undecodable => self.hostile_undecodable(slot, conn, member_id),
            HostileKind::ChunkInterleaved => self.hostile_chunk_interleaved(slot, conn, member_id),
        }
    }

    /// The slot's connection and member id when a crafted frame can be
    /// written now with a known effect (see the module doc).
    fn quiet_conn(&self, slot: usize) -> Option<(u64, u64)> {
        let s = self.slots.get(slot)?;
        let server = self.server.as_ref()?;
        let c = s.client.as_ref()?;
        if s.gone || !c.is_ready() || !s.held.is_empty() {
            return None;
        }
        if s.paused_until > self.now || s.slow_until > self.now || self.blocked(slot) {
            return None;
        }
        let conn = s.conn?;
        let member_id = c.member_id()?;
        let k = self.conns.get(&conn)?;
        let quiet = !k.dead
            && k.server_open
            && k.client_open
            && k.up_held.is_empty()
            // Strictly before now: bytes due at this very instant may
            // still wait in the event queue.
            && k.up_last < self.now
            && k.down_last < self.now;
        let attached = server.is_attached(member_id)
            && !server.is_throttled(member_id)
            && server.wants_read(ConnId(conn));
        (quiet && attached).then_some((conn, member_id))
    }

    /// Hands `data` to the server on `conn` at once and drains it.
    fn write_now(&mut self, slot: usize, conn: u64, data: Bytes) {
        let Some(server) = self.server.as_mut() else {
            return;
        };
        server.handle_read(self.now, ConnId(conn), data);
        self.observed.input = Some(slot);
        self.drain_server();
    }

    fn record_hostile(&mut self, slot: usize, member_id: u64, frame: HostileFrame) {
        let proc = self.slots[slot].proc;
        let server = self.server_inc;
        self.record(Act::Hostile {
            proc,
            server,
            member_id,
            frame,
        });
    }

    /// Appends `f` encoded to `out`; false when it does not encode.
    fn encode_into(&self, slot: usize, f: &Frame, out: &mut BytesMut) -> bool {
        match self.encode(slot, f) {
            Some(b) => {
                out.extend_from_slice(&b);
                true
            }
            None => false,
        }
    }

    fn encode(&self, slot: usize, f: &Frame) -> Option<BytesMut> {
        let limits = self.slots[slot].client.as_ref()?.config().limits;
        let mut b = BytesMut::new();
        f.encode(&mut b, &limits).ok()?;
        Some(b)
    }

    /// (a) A `Send` to itself whose sequence jumps past the window or lies
    /// far behind it.
    fn hostile_seq(&mut self, slot: usize, conn: u64, member_id: u64, kind: HostileKind) {
        let Some(last) = self.slots[slot].client.as_ref().map(|c| c.last_seq()) else {
            return;
        };
        let acked = self.slots[slot].session_acked;
        // A spread of values, drawn from the clock (deterministic).
        let spread = self.now.as_millis() % 997;
        let seq = match kind {
            // Every sequence the client used was processed: the server's
            // mark is exactly `acked`, and a "resend" exactly `SEQ_WINDOW`
            // behind it is one the protocol allows (ignored as a resend).
            HostileKind::SeqBehind if acked == last && acked > SEQ_WINDOW && spread % 2 == 0 => {
                acked - SEQ_WINDOW
            }
            HostileKind::SeqBehind if acked > SEQ_WINDOW + 1 => {
                (acked - SEQ_WINDOW - 1).saturating_sub(spread).max(1)
            }
            HostileKind::SeqAhead if acked > 0 => last + SEQ_WINDOW + 1 + spread,
            _ => {
                self.coverage.hostile_dropped += 1;
                return;
            }
        };
        let tag = self.take_tag();
        let f = Frame::Send(Send {
            seq,
            flags: 0,
            to: Address::MemberId(member_id),
            correlation: 0,
            timeout_ms: 0,
            total_len: 16,
            payload: payload(tag, 16),
        });
        let Some(bytes) = self.encode(slot, &f) else {
            return;
        };
        let frame = HostileFrame::Seq { seq, acked, last };
        if !frame.is_seq_violation() {
            self.coverage.hostile_seq_edge += 1;
        } else if matches!(kind, HostileKind::SeqBehind) {
            self.coverage.hostile_seq_behind += 1;
        } else {
            self.coverage.hostile_seq_ahead += 1;
        }
        self.record_hostile(slot, member_id, frame);
        self.write_now(slot, conn, bytes.freeze());
    }

    /// Runs `op` on the slot's client and returns what it transmitted, in
    /// order, instead of sending it over the network.
    fn captured(&mut self, slot: usize, op: impl FnOnce(&mut World)) -> Vec<Bytes> {
        self.capture = Some((slot, Vec::new()));
        op(self);
        self.drain_client(slot);
        self.capture.take().map(|(_, v)| v).unwrap_or_default()
    }

    /// (b) A CONFIRM message to itself, and in the same write a
    /// `DeliveryAck` beyond everything it received: the server enqueues the
    /// message and reads the ack before it transmits it.
    fn hostile_ack_ahead(&mut self, slot: usize, conn: u64, member_id: u64) {
        let tag = self.take_tag();
        let now = self.now;
        let mut self_seq = None;
        let out = self.captured(slot, |w| {
            let Some(c) = w.slots[slot].client.as_mut() else {
                return;
            };
            let to = Address::MemberId(member_id);
            if let Ok(seq) = c.send(
                now,
                to.clone(),
                payload(tag, 16),
                SendOptions { confirm: true },
            ) {
                w.coverage.sends += 1;
                self_seq = Some(seq);
                w.record_sent(
                    slot,
                    seq,
                    to,
                    SentAs {
                        tag,
                        confirm: true,
                        request: false,
                        bytes: 16,
                    },
                );
            }
        });
        let mut data = BytesMut::new();
        for b in &out {
            data.extend_from_slice(b);
        }
        // The message went out in this write only if its frame is in it.
        let sent_now = self_seq.is_some_and(|s| {
            frames(&data, slot, self)
                .iter()
                .any(|f| seq_of(f) == Some(s))
        });
        let self_seq = self_seq.filter(|_| sent_now);
        let through = u64::MAX;
        let ack = self.encode(slot, &Frame::DeliveryAck(DeliveryAck { through }));
        let Some(ack) = ack else {
            // Cannot happen (a fixed-size frame); the client's own bytes
            // still go out.
            self.write_now(slot, conn, data.freeze());
            return;
        };
        data.extend_from_slice(&ack);
        self.record_hostile(
            slot,
            member_id,
            HostileFrame::AckAhead { through, self_seq },
        );
        let mark = self.history.entries.len();
        self.write_now(slot, conn, data.freeze());
        if let Some(seq) = self_seq {
            let proc = self.slots[slot].proc;
            let id = MsgId {
                sender: proc.incarnation,
                seq,
            };
            // Written in this very step: it was still untransmitted when
            // the server read the ack.
            let written = self.history.entries[mark..].iter().any(
                |e| matches!(&e.act, Act::Written { proc: p, id: i, .. } if *p == proc && *i == id),
            );
            if written {
                self.coverage.hostile_ack_ahead += 1;
            }
        }
    }

    /// (c) A `Taken` the server must ignore: from a member without the
    /// TAKEN capability (claiming everything it received), or a repeat at
    /// position 0 from one with it.
    fn hostile_taken(&mut self, slot: usize, conn: u64, member_id: u64) {
        let Some(c) = self.slots[slot].client.as_ref() else {
            return;
        };
        let announced = c.config().report_taken;
        let through = if announced { 0 } else { c.delivered_through() };
        let Some(bytes) = self.encode(slot, &Frame::Taken(Taken { through })) else {
            return;
        };
        self.coverage.hostile_taken += 1;
        self.record_hostile(slot, member_id, HostileFrame::Taken { through, announced });
        self.write_now(slot, conn, bytes.freeze());
    }

    /// (d) Subscriptions (or group joins) through the client up to the
    /// quota, then a crafted one more, taking the sequence of a load
    /// `Publish` written right after it.
    fn hostile_over_quota(&mut self, slot: usize, conn: u64, member_id: u64, kind: HostileKind) {
        let subscribe = matches!(kind, HostileKind::SubscribeOver);
        let (list, carrier, data) = self.captured_publish(slot, |w| {
            if subscribe {
                w.pad_subscriptions(slot)
            } else {
                w.pad_groups(slot)
            }
        });
        let Some((seq, at)) = carrier else {
            // Not full, or the client did not write its command now: what
            // it wrote goes to the server unchanged.
            self.coverage.hostile_dropped += 1;
            if !data.is_empty() {
                self.write_now(slot, conn, data.freeze());
            }
            return;
        };
        let (crafted, frame) = if subscribe {
            self.coverage.hostile_subscribe_over += 1;
            let sub_id = HOSTILE_SUB_ID + (self.coverage.hostile_subscribe_over as u32 & 0xFFFF);
            (
                Frame::Subscribe(Subscribe {
                    seq,
                    sub_id,
                    filter: Filter::topic(PAD_TOPIC),
                }),
                HostileFrame::Subscribe { seq },
            )
        } else {
            self.coverage.hostile_join_over += 1;
            (
                Frame::Join(GroupOp {
                    seq,
                    group: HOSTILE_GROUP.to_owned(),
                }),
                HostileFrame::Join {
                    seq,
                    group: HOSTILE_GROUP.to_owned(),
                },
            )
        };
        let spliced = self
            .encode(slot, &crafted)
            .and_then(|c| self.spliced(slot, &list, at, &c));
        let Some(bytes) = spliced else {
            // Cannot happen (the frames were just decoded); the client's
            // own bytes go out unchanged.
            self.write_now(slot, conn, data.freeze());
            return;
        };
        self.record_hostile(slot, member_id, frame);
        self.write_now(slot, conn, bytes.freeze());
    }

    /// A load `Publish` through the client, recorded as `Published`: its
    /// sequence, or `None` when the client refused it.
    fn publish_load(&mut self, slot: usize) -> Option<u64> {
        let body = EventBody::Load((self.now.as_millis() % 100) as u32);
        self.publish_recorded(slot, body)
    }

    /// The client's next commands captured: `first` (which says whether
    /// to go on), then a load `Publish`. Returns the frames the client
    /// wrote, decoded, the `Publish`'s sequence and its place among them
    /// (`None` when `first` said no or the client wrote no `Publish` now),
    /// and the bytes.
    fn captured_publish(
        &mut self,
        slot: usize,
        first: impl FnOnce(&mut World) -> bool,
    ) -> (Vec<Frame>, Option<(u64, usize)>, BytesMut) {
        let mut carrier = None;
        let out = self.captured(slot, |w| {
            if first(w) {
                carrier = w.publish_load(slot);
            }
        });
        let mut data = BytesMut::new();
        for b in &out {
            data.extend_from_slice(b);
        }
        let list = frames(&data, slot, self);
        let at = carrier.and_then(|s| {
            list.iter()
                .position(|f| seq_of(f) == Some(s))
                .map(|at| (s, at))
        });
        (list, at, data)
    }

    /// The frames of `list` encoded, with `extra` spliced in before frame
    /// `at` (after all of them when `at` is the length); `None` when one
    /// does not encode (cannot happen: they were just decoded).
    fn spliced(&self, slot: usize, list: &[Frame], at: usize, extra: &[u8]) -> Option<BytesMut> {
        let mut bytes = BytesMut::new();
        for (n, f) in list.iter().enumerate() {
            if n == at {
                bytes.extend_from_slice(extra);
            }
            if !self.encode_into(slot, f, &mut bytes) {
                return None;
            }
        }
        if at >= list.len() {
            bytes.extend_from_slice(extra);
        }
        Some(bytes)
    }

    /// (e) Bytes whose frame header the decoder refuses: an unknown kind,
    /// a wrong version, a length over every server's frame limit or under
    /// 2. Written alone, or right before the client's next command (which
    /// the server then never reads), or after the client's frames, in one
    /// write.
    fn hostile_undecodable(&mut self, slot: usize, conn: u64, member_id: u64) {
        let spread = self.now.as_millis() % 997;
        let header = match spread % 4 {
            0 => header_bytes(2, frame::PROTOCOL_VERSION, UNKNOWN_KIND),
            1 => header_bytes(2, frame::PROTOCOL_VERSION - 1, frame::kind::PING),
            2 => header_bytes(
                frame::FRAME_BYTES_MAX_CEILING - 3,
                frame::PROTOCOL_VERSION,
                frame::kind::SEND,
            ),
            _ => header_bytes(1, frame::PROTOCOL_VERSION, frame::kind::PING),
        };
        let (bytes, ahead_of) = match (spread / 4) % 3 {
            0 => (BytesMut::from(&header[..]), None),
            place => {
                let (list, carrier, data) = self.captured_publish(slot, |_| true);
                let before = place == 1;
                let (at, ahead_of) = match carrier {
                    Some((seq, at)) if before => (at, Some(seq)),
                    _ => (list.len(), None),
                };
                match self.spliced(slot, &list, at, &header) {
                    Some(b) => (b, ahead_of),
                    None => {
                        self.write_now(slot, conn, data.freeze());
                        return;
                    }
                }
            }
        };
        self.coverage.hostile_undecodable += 1;
        self.record_hostile(
            slot,
            member_id,
            HostileFrame::Undecodable { header, ahead_of },
        );
        self.write_now(slot, conn, bytes.freeze());
    }

    /// (f) The head of a chunked `Send` to itself (`MORE` set), taking the
    /// sequence of the client's next command, a load `Publish` written
    /// right after it: a sequenced frame between the pieces of a chunked
    /// message.
    fn hostile_chunk_interleaved(&mut self, slot: usize, conn: u64, member_id: u64) {
        let (list, carrier, data) = self.captured_publish(slot, |_| true);
        let Some((seq, at)) = carrier else {
            // The client did not write its command now: what it wrote goes
            // to the server unchanged.
            self.coverage.hostile_dropped += 1;
            if !data.is_empty() {
                self.write_now(slot, conn, data.freeze());
            }
            return;
        };
        let tag = self.take_tag();
        let piece = 16;
        let total_len = 4 * piece;
        let head = Frame::Send(Send {
            seq,
            flags: frame::flags::MORE,
            to: Address::MemberId(member_id),
            correlation: 0,
            timeout_ms: 0,
            total_len,
            payload: payload(tag, piece as usize),
        });
        let spliced = self
            .encode(slot, &head)
            .and_then(|h| self.spliced(slot, &list, at, &h));
        let Some(bytes) = spliced else {
            // Cannot happen (a small valid head, frames just decoded); the
            // client's own bytes go out unchanged.
            self.write_now(slot, conn, data.freeze());
            return;
        };
        self.coverage.hostile_chunk_interleaved += 1;
        self.record_hostile(
            slot,
            member_id,
            HostileFrame::ChunkInterleaved {
                seq,
                total_len,
                piece,
            },
        );
        self.write_now(slot, conn, bytes.freeze());
    }

    /// Subscribes through the client (to a topic nothing is published on)
    /// until it holds `SUBSCRIPTIONS_MAX`; true when it does.
    fn pad_subscriptions(&mut self, slot: usize) -> bool {
        for _ in 0..=frame::SUBSCRIPTIONS_MAX {
            match self.subscribe_recorded(slot, Filter::topic(PAD_TOPIC)) {
                Some(Ok(_)) => {}
                // Only a full quota makes a short topic invalid.
                Some(Err(CommandError::Invalid(_))) => return true,
                Some(Err(_)) | None => return false,
            }
        }
        false
    }

    /// Joins groups `pad-0`, `pad-1`, … through the client until it holds
    /// `GROUPS_PER_MEMBER_MAX`; true when it does.
    fn pad_groups(&mut self, slot: usize) -> bool {
        for n in 0..=2 * frame::GROUPS_PER_MEMBER_MAX {
            match self.group_op_recorded(slot, &format!("pad-{n}"), true) {
                Some(Ok(())) => {}
                // Only a full quota makes a short name invalid.
                Some(Err(CommandError::Invalid(_))) => return true,
                Some(Err(_)) | None => return false,
            }
        }
        false
    }
}

/// A frame header: `len`, `version`, `kind`.
fn header_bytes(len: u32, version: u8, kind: u8) -> [u8; 6] {
    let l = len.to_be_bytes();
    [l[0], l[1], l[2], l[3], version, kind]
}

/// The frames of a client's write, decoded.
fn frames(data: &[u8], slot: usize, w: &World) -> Vec<Frame> {
    let Some(limits) = w.slots[slot].client.as_ref().map(|c| c.config().limits) else {
        return Vec::new();
    };
    let mut buf = BytesMut::from(data);
    let mut out = Vec::new();
    while let Ok(Some(f)) = frame::decode(&mut buf, &limits) {
        out.push(f);
    }
    debug_assert!(buf.is_empty(), "a client write holds whole frames");
    out
}

/// The sequence a sequenced client frame carries.
fn seq_of(f: &Frame) -> Option<u64> {
    match f {
        Frame::Send(s) => Some(s.seq),
        Frame::Publish(p) => Some(p.seq),
        Frame::Subscribe(s) => Some(s.seq),
        Frame::Unsubscribe(u) => Some(u.seq),
        Frame::Join(g) | Frame::Leave(g) => Some(g.seq),
        _ => None,
    }
}
