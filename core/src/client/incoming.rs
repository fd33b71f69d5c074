//! The receiving side: the stream position, its acknowledgement, chunked
//! deliveries in reassembly and duplicate detection.

use bytes::{BufMut, BytesMut};

use super::inbox::Dedup;
use crate::frame::{flags, Chunk, Deliver};

/// A chunked delivery being reassembled.
#[derive(Debug)]
struct PartialIn {
    head: Deliver,
    buf: BytesMut,
}

/// Why a piece of a chunked delivery is refused (the connection is
/// dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChunkError {
    /// A new chunked delivery before the previous one completed, or one
    /// larger than the limit.
    BadHead,
    /// A chunk that does not continue the delivery in reassembly.
    OutOfOrder,
}

/// The incoming stream's state.
#[derive(Debug)]
pub(super) struct Incoming {
    /// Highest stream position received.
    delivered_through: u64,
    /// Highest position acknowledged to the server.
    acked: u64,
    partial: Option<PartialIn>,
    dedup: Dedup,
}

impl Incoming {
    pub(super) fn new(dedup_senders_max: usize) -> Incoming {
        Incoming {
            delivered_through: 0,
            acked: 0,
            partial: None,
            dedup: Dedup::new(dedup_senders_max),
        }
    }

    pub(super) fn delivered_through(&self) -> u64 {
        self.delivered_through
    }

    /// Moves the stream position; false for a replayed position.
    pub(super) fn advance(&mut self, gseq: u64) -> bool {
        if gseq <= self.delivered_through {
            return false;
        }
        self.delivered_through = gseq;
        true
    }

    /// First admission of a sender's sequence (false for a duplicate).
    pub(super) fn admit(&mut self, incarnation: u64, seq: u64) -> bool {
        self.dedup.admit(incarnation, seq)
    }

    /// A sender left for good: its duplicate window is let go.
    pub(super) fn forget(&mut self, incarnation: u64) {
        self.dedup.forget(incarnation);
    }

    /// The first piece of a chunked delivery (`MORE` set).
    pub(super) fn start_chunked(&mut self, d: Deliver, max: u32) -> Result<(), ChunkError> {
        if self.partial.is_some() || d.total_len > max {
            return Err(ChunkError::BadHead);
        }
        // Grow with the pieces, never by the declared length.
        let mut buf = BytesMut::with_capacity(d.payload.len());
        buf.put_slice(&d.payload);
        self.partial = Some(PartialIn { head: d, buf });
        Ok(())
    }

    /// A further piece; the whole delivery once complete.
    pub(super) fn chunk(&mut self, c: Chunk) -> Result<Option<Deliver>, ChunkError> {
        let Some(p) = self.partial.as_mut().filter(|p| {
            p.head.gseq == c.id
                && p.buf.len() as u64 == u64::from(c.offset)
                && p.buf.len() as u64 + c.payload.len() as u64 <= u64::from(p.head.total_len)
        }) else {
            return Err(ChunkError::OutOfOrder);
        };
        p.buf.put_slice(&c.payload);
        if p.buf.len() as u64 != u64::from(p.head.total_len) {
            return Ok(None);
        }
        Ok(self.partial.take().map(|p| {
            let mut d = p.head;
            d.payload = p.buf.freeze();
            d.flags &= !flags::MORE;
            d
        }))
    }

    /// The connection is gone: a delivery in reassembly is dropped (the
    /// server replays it whole).
    pub(super) fn drop_partial(&mut self) {
        self.partial = None;
    }

    /// The position to acknowledge, once per batch of input.
    pub(super) fn take_ack(&mut self) -> Option<u64> {
        (self.delivered_through > self.acked).then(|| {
            self.acked = self.delivered_through;
            self.acked
        })
    }

    /// A fresh registration starts the stream at `position`.
    pub(super) fn registered(&mut self, position: u64) {
        self.delivered_through = position;
        self.acked = position;
    }

    /// A resumed session: acknowledge the position again.
    pub(super) fn resumed(&mut self) {
        self.acked = 0;
    }
}
