//! Chunked messages from members: a `Send` with `MORE` and its `Chunk`s
//! are put back together before the message is sequenced.
//!
//! Bounded three ways: per member (one message at a time, at most
//! `message_bytes_max`), in time (complete within `reassembly_timeout_ms`
//! of the first frame) and for the whole server (`reassembly_bytes_max`;
//! a piece that would pass it drops the oldest message in reassembly, so a
//! member that never finishes makes room for one that does). A dropped
//! message is NACKed `Incomplete` at once; its remaining pieces are still
//! read (their offsets checked) and thrown away.

use bytes::{Bytes, BytesMut};

use super::member::Partial;
use super::*;
use crate::frame::{flags, Chunk, NackReason, Send};

/// Why a message in reassembly was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReassemblyDrop {
    /// It was not complete within `reassembly_timeout_ms`.
    Deadline,
    /// The server's reassembly space (`reassembly_bytes_max`) ran out and
    /// it was the oldest message in reassembly.
    Space,
}

impl Server {
    /// The first frame of a chunked message.
    pub(super) fn start_reassembly(&mut self, id: u64, mut s: Send) {
        if self.seq_refused(id, s.seq) {
            return;
        }
        let now = self.now;
        let deadline = now.plus_millis(self.config.reassembly_timeout_ms);
        let too_large_max = self.config.message_bytes_max;
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        if m.partial.is_some() {
            if let Some(conn) = m.conn {
                self.protocol_error(
                    conn,
                    ErrorCode::UnexpectedFrame,
                    "new chunked Send before the previous one completed".into(),
                );
            }
            return;
        }
        let duplicate = s.seq <= m.received_through;
        let too_large = s.total_len > too_large_max;
        let discard = duplicate || too_large;
        // Grow with the pieces: a head frame alone never reserves the
        // whole declared length.
        let mut buf = BytesMut::new();
        if !discard {
            buf.extend_from_slice(&s.payload);
        }
        let received = s.payload.len() as u32;
        let seq = s.seq;
        s.payload = Bytes::new();
        self.reassembly_bytes += buf.len();
        m.partial = Some(Partial {
            head: s,
            buf,
            received,
            discard,
            started: now,
        });
        if !discard {
            self.timers.insert((deadline, Timer::Reassembly(id, seq)));
            self.bound_reassembly();
        }
    }

    /// A further piece of the member's chunked message.
    pub(super) fn on_chunk(&mut self, id: u64, c: Chunk) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        let conn = m.conn;
        let ok = m
            .partial
            .as_ref()
            .is_some_and(|p| p.head.seq == c.id && p.received == c.offset);
        let fits = m.partial.as_ref().is_some_and(|p| {
            u64::from(p.received) + c.payload.len() as u64 <= u64::from(p.head.total_len)
        });
        if !ok || !fits || c.payload.is_empty() {
            if let Some(conn) = conn {
                self.protocol_error(
                    conn,
                    ErrorCode::UnexpectedFrame,
                    "chunk out of order or beyond its message".into(),
                );
            }
            return;
        }
        let Some(p) = m.partial.as_mut() else {
            return;
        };
        p.received += c.payload.len() as u32;
        if !p.discard {
            p.buf.extend_from_slice(&c.payload);
            self.reassembly_bytes += c.payload.len();
        }
        if p.received < p.head.total_len {
            if !p.discard {
                self.bound_reassembly();
            }
            return;
        }
        let Some(p) = m.partial.take() else {
            return;
        };
        debug_assert!(self.reassembly_bytes >= p.buf.len());
        self.reassembly_bytes -= p.buf.len();
        let mut s = p.head;
        if s.total_len > self.config.message_bytes_max {
            if self.accept_seq(id, s.seq) {
                self.nack(id, s.seq, NackReason::TooLarge);
            }
            return;
        }
        if p.discard {
            // A resend of something already processed, or a message
            // dropped (and NACKed) while it was being received.
            self.mark_dirty(id);
            return;
        }
        s.payload = p.buf.freeze();
        s.flags &= !flags::MORE;
        self.stats.chunked_in += 1;
        self.process_send(id, s);
    }

    /// The deadline of a message in reassembly: if the member is still
    /// receiving that message, it is dropped.
    pub(super) fn reassembly_deadline(&mut self, id: u64, seq: u64) {
        let due = self
            .members
            .get(&id)
            .and_then(|m| m.partial.as_ref())
            .is_some_and(|p| p.head.seq == seq && !p.discard);
        if due {
            self.drop_reassembly(id, ReassemblyDrop::Deadline);
        }
    }

    /// Drops the oldest messages in reassembly while the server holds more
    /// than `reassembly_bytes_max` of them.
    fn bound_reassembly(&mut self) {
        while self.reassembly_bytes > self.config.reassembly_bytes_max {
            let oldest = self
                .members
                .iter()
                .filter_map(|(id, m)| m.partial.as_ref().map(|p| (p, *id)))
                .filter(|(p, _)| !p.discard)
                .min_by_key(|(p, id)| (p.started, *id))
                .map(|(_, id)| id);
            let Some(id) = oldest else {
                debug_assert!(false, "reassembly bytes counted without a message");
                return;
            };
            self.drop_reassembly(id, ReassemblyDrop::Space);
        }
    }

    /// Drops the member's message in reassembly: its bytes are released, it
    /// is NACKed `Incomplete`, and its remaining pieces will be read and
    /// thrown away.
    fn drop_reassembly(&mut self, id: u64, why: ReassemblyDrop) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        let Some(p) = m.partial.as_mut() else {
            return;
        };
        debug_assert!(!p.discard);
        debug_assert!(self.reassembly_bytes >= p.buf.len());
        self.reassembly_bytes -= p.buf.len();
        p.buf = BytesMut::new();
        p.discard = true;
        let seq = p.head.seq;
        let received = p.received;
        let total_len = p.head.total_len;
        self.stats.reassembly_dropped += 1;
        self.outputs
            .push_back(Output::Event(ServerEvent::ReassemblyDropped {
                member_id: id,
                seq,
                received,
                total_len,
                why,
            }));
        if self.accept_seq(id, seq) {
            self.nack(id, seq, NackReason::Incomplete);
        }
    }

    /// Releases the count of a message in reassembly that goes away with
    /// its connection or member.
    pub(super) fn forget_partial(&mut self, p: Option<Partial>) {
        if let Some(p) = p {
            debug_assert!(self.reassembly_bytes >= p.buf.len());
            self.reassembly_bytes -= p.buf.len();
        }
    }

    /// Bytes of chunked messages in reassembly, all members together.
    pub fn reassembly_bytes(&self) -> usize {
        self.reassembly_bytes
    }

    /// The count of reassembly bytes matches the messages held.
    #[cfg(debug_assertions)]
    pub(super) fn check_reassembly(&self) {
        debug_assert_eq!(
            self.reassembly_bytes,
            self.members
                .values()
                .filter_map(|m| m.partial.as_ref())
                .map(|p| p.buf.len())
                .sum::<usize>(),
            "reassembly byte count drifted"
        );
        debug_assert!(self.reassembly_bytes <= self.config.reassembly_bytes_max);
    }
}
