//! Building transmits: the control lane first (handshake replies, pongs,
//! pings, the cumulative ack), then the member's ordered stream within its
//! send window. Chunked items go out one part per transmit so control
//! frames can pass between the parts of a large message.

use bytes::BufMut;

use super::member::ItemData;
use super::*;
use crate::frame::Ack;

/// A member's control buffer keeps at most this much spare capacity after
/// a transmit; a larger one (left by a snapshot) is released.
const CONTROL_KEEP_BYTES: usize = 512;

impl Server {
    /// Builds the next transmit for a connection, if it has anything.
    pub(super) fn build_transmit(&mut self, conn: ConnId) -> Option<Output> {
        let Some(Conn {
            state: ConnState::Attached(id),
            ..
        }) = self.conns.get(&conn)
        else {
            return None;
        };
        let id = *id;
        let limits = self.config.limits;
        let batch = self.config.transmit_batch_bytes;
        let window_items = self.config.send_window_items;
        let window_bytes = self.config.send_window_bytes;
        let mut parts = std::mem::take(&mut self.tx_parts);
        parts.clear();
        let Some(m) = self.members.get_mut(&id) else {
            self.tx_parts = parts;
            return None;
        };
        // Gather the pieces first (shared `Bytes`, no copy); a transmit made
        // of one piece goes out as that piece, zero-copy.
        let mut total = 0;
        let control = m.control.split();
        if m.control.capacity() > CONTROL_KEEP_BYTES {
            // A large control frame (a snapshot) was written: do not keep
            // its buffer alive for the life of an idle member.
            m.control = BytesMut::new();
        }
        if !control.is_empty() {
            total += control.len();
            parts.push(control.freeze());
        }
        loop {
            if total >= batch
                || m.sent_items >= m.queue.len()
                || m.sent_items >= window_items
                || m.sent_bytes >= window_bytes
            {
                break;
            }
            let item = &m.queue[m.sent_items];
            match &item.data {
                ItemData::One(b) => {
                    total += b.len();
                    parts.push(b.clone());
                }
                ItemData::Parts(chunks) => {
                    let b = chunks[m.sent_parts].clone();
                    total += b.len();
                    parts.push(b);
                    m.sent_parts += 1;
                    if m.sent_parts < chunks.len() {
                        // Let control frames through before the next part.
                        break;
                    }
                    m.sent_parts = 0;
                }
            }
            if let Some(seq) = item.nack_seq {
                m.unsent_nacks.remove(&seq);
            }
            m.sent_bytes += item.bytes;
            m.sent_items += 1;
        }
        let ack = self.config.ack_to_send(m.ack_pair());
        if ack != m.ack_sent {
            if ack.0 > 0 {
                let mut b = BytesMut::with_capacity(32);
                let f = Frame::Ack(Ack {
                    through: ack.0,
                    stable_through: ack.1,
                });
                let ok = f.encode(&mut b, &limits).is_ok();
                debug_assert!(ok);
                total += b.len();
                parts.push(b.freeze());
            }
            m.ack_sent = ack;
        }
        if parts.is_empty() {
            // Nothing to send: the window is full or the lane is idle.
            self.tx_parts = parts;
            return None;
        }
        if m.has_output(window_items, window_bytes, ack) {
            self.dirty.insert(conn);
        }
        let data = if parts.len() == 1 {
            parts.pop().unwrap_or_default()
        } else {
            let mut out = BytesMut::with_capacity(total);
            for p in &parts {
                out.put_slice(p);
            }
            out.freeze()
        };
        parts.clear();
        self.tx_parts = parts;
        Some(Output::Transmit { conn, data })
    }
}
