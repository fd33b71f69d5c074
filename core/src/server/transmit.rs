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

/// An encoded `Ack` frame is at most this long (header and two integers).
const ACK_FRAME_BYTES_MAX: usize = 32;

impl Server {
    /// Builds the next transmit for a connection, if it has anything.
    ///
    /// The stream items it takes are first only located (queue index and
    /// part), not cloned: a transmit of one piece goes out as that piece
    /// (zero-copy, one reference count); a transmit of several is written
    /// into one buffer from the items in place (one copy, no reference
    /// counts per item).
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
        let mut pieces = std::mem::take(&mut self.tx_pieces);
        pieces.clear();
        let Some(m) = self.members.get_mut(&id) else {
            self.tx_pieces = pieces;
            return None;
        };
        let control = m.control.split();
        if m.control.capacity() > CONTROL_KEEP_BYTES {
            // A large control frame (a snapshot) was written: do not keep
            // its buffer alive for the life of an idle member.
            m.control = BytesMut::new();
        }
        let mut total = control.len();
        loop {
            if total >= batch
                || m.sent_items >= m.queue.len()
                || m.sent_items >= window_items
                || m.sent_bytes >= window_bytes
            {
                break;
            }
            let index = m.sent_items;
            let item = &m.queue[index];
            match &item.data {
                ItemData::One(b) => {
                    total += b.len();
                    pieces.push((index, 0));
                }
                ItemData::Parts(chunks) => {
                    total += chunks[m.sent_parts].len();
                    pieces.push((index, m.sent_parts));
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
        let ack_frame = (ack != m.ack_sent && ack.0 > 0).then_some(Frame::Ack(Ack {
            through: ack.0,
            stable_through: ack.1,
        }));
        m.ack_sent = ack;
        let piece = |(index, part): (usize, usize)| -> &Bytes {
            match &m.queue[index].data {
                ItemData::One(b) => b,
                ItemData::Parts(chunks) => &chunks[part],
            }
        };
        let count =
            usize::from(!control.is_empty()) + pieces.len() + usize::from(ack_frame.is_some());
        let data = match count {
            0 => {
                // Nothing to send: the window is full or the lane is idle.
                self.tx_pieces = pieces;
                return None;
            }
            1 if !control.is_empty() => control.freeze(),
            1 if pieces.len() == 1 => piece(pieces[0]).clone(),
            _ => {
                let mut out = BytesMut::with_capacity(total + ACK_FRAME_BYTES_MAX);
                out.put_slice(&control);
                for &p in &pieces {
                    out.put_slice(piece(p));
                }
                if let Some(f) = &ack_frame {
                    let ok = f.encode(&mut out, &limits).is_ok();
                    debug_assert!(ok);
                }
                out.freeze()
            }
        };
        debug_assert!(!data.is_empty());
        if m.has_output(window_items, window_bytes, ack) {
            self.dirty.insert(conn);
        }
        pieces.clear();
        self.tx_pieces = pieces;
        Some(Output::Transmit { conn, data })
    }
}
