//! The sending side: sequence numbers, the outbox of sequenced commands
//! until they are final, and what the server is known to have.

use bytes::BytesMut;

use super::outbox::{Entry, Outbox};
use super::types::CommandError;
use crate::frame::{self, flags, Chunk, Frame, Send};

/// Sequenced commands from `reserve` until final.
#[derive(Debug)]
pub(super) struct Outgoing {
    outbox: Outbox,
    next_seq: u64,
    /// Highest sequence transmitted on the current connection.
    sent_through: u64,
    /// Highest sequence whose effect the server has (acked, resumed past,
    /// or carried by the registration).
    effective_through: u64,
    /// `stable_through` of the latest `Ack` of the current session (0
    /// until the first).
    stable_through: u64,
    /// Last sequence taken when the current `Hello` was built: the state it
    /// carries covers every registration-state command up to it.
    hello_seq: u64,
    /// Reused list of acked sequences.
    scratch: Vec<u64>,
}

impl Default for Outgoing {
    fn default() -> Self {
        Outgoing {
            outbox: Outbox::default(),
            next_seq: 1,
            sent_through: 0,
            effective_through: 0,
            stable_through: 0,
            hello_seq: 0,
            scratch: Vec::new(),
        }
    }
}

impl Outgoing {
    /// Entries kept until final.
    pub(super) fn len(&self) -> usize {
        self.outbox.len()
    }

    /// The most recent sequence taken (0 before the first).
    pub(super) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The sequence the next command will take.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub(super) fn effective_through(&self) -> u64 {
        self.effective_through
    }

    /// True when the outbox has room for one more message of `bytes`.
    pub(super) fn has_room(&self, bytes: usize, items_max: usize, bytes_max: usize) -> bool {
        // Receivers detect duplicates within SEQ_WINDOW: never let the
        // oldest unconfirmed message fall that far behind.
        let window_full = self
            .outbox
            .first_seq()
            .is_some_and(|first| self.next_seq - first >= frame::SEQ_WINDOW);
        self.outbox.len() < items_max && self.outbox.bytes() + bytes <= bytes_max && !window_full
    }

    pub(super) fn stable_through(&self) -> u64 {
        self.stable_through
    }

    /// Takes the next sequence if the outbox has room for `bytes`.
    pub(super) fn reserve(
        &mut self,
        bytes: usize,
        items_max: usize,
        bytes_max: usize,
    ) -> Result<u64, CommandError> {
        if !self.has_room(bytes, items_max, bytes_max) {
            return Err(CommandError::OutboxFull {
                items: self.outbox.len(),
                bytes: self.outbox.bytes(),
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Queues the frame of a reserved sequence.
    pub(super) fn push(&mut self, seq: u64, frame: Frame, bytes: usize, confirm: bool, data: bool) {
        self.outbox.insert(
            seq,
            Entry {
                frame,
                bytes,
                acked: false,
                confirm,
                data,
            },
        );
    }

    /// A `Hello` is built now: it carries the state of every command so far.
    pub(super) fn hello_built(&mut self) {
        self.hello_seq = self.next_seq - 1;
    }

    /// Encodes the entries not yet sent on this connection into `out`,
    /// until `out` holds `batch` bytes. True when something was added.
    pub(super) fn encode_unsent(
        &mut self,
        out: &mut BytesMut,
        limits: &frame::Limits,
        batch: usize,
    ) -> bool {
        let chunk = limits.chunk_bytes_max() as usize;
        let mut last = self.sent_through;
        for (seq, e) in self.outbox.after(self.sent_through) {
            if out.len() >= batch {
                break;
            }
            match &e.frame {
                Frame::Send(s) if s.payload.len() > chunk => encode_chunked(s, chunk, out, limits),
                f => {
                    let ok = f.encode(out, limits).is_ok();
                    debug_assert!(ok, "outbox frame must encode");
                }
            }
            last = seq;
        }
        let advanced = last != self.sent_through;
        self.sent_through = last;
        advanced
    }

    /// The server's `Ack`: `acked` is called for each newly acked sequence.
    pub(super) fn on_ack(&mut self, through: u64, stable_through: u64, mut acked: impl FnMut(u64)) {
        self.effective_through = self.effective_through.max(through);
        let mut list = std::mem::take(&mut self.scratch);
        list.clear();
        self.outbox.ack_through(through, &mut list);
        for seq in list.drain(..) {
            acked(seq);
        }
        self.scratch = list;
        self.stable_through = stable_through;
        self.outbox.release_stable(stable_through);
    }

    /// A final status (NACK, outcome) for `seq`; false when it was already
    /// final (a re-issued status counts once).
    pub(super) fn finish(&mut self, seq: u64) -> bool {
        self.finish_frame(seq).is_some()
    }

    /// Like [`finish`](Self::finish), returning the frame that was final.
    pub(super) fn finish_frame(&mut self, seq: u64) -> Option<Frame> {
        self.outbox.remove(seq).map(|e| e.frame)
    }

    /// The session resumed: resend what the server did not receive.
    pub(super) fn resumed(&mut self, received_through: u64) {
        self.sent_through = received_through;
        self.effective_through = self.effective_through.max(received_through);
    }

    /// A fresh registration: it carried the groups and subscriptions, so
    /// only data entries are resent, all of them.
    pub(super) fn registered(&mut self) {
        self.outbox.drop_state_entries(self.hello_seq);
        self.effective_through = self.hello_seq;
        self.stable_through = 0;
        self.outbox.clear_acks();
        self.sent_through = 0;
    }
}

/// Encodes a large `Send` as a first frame with `MORE` and `Chunk`s.
fn encode_chunked(s: &Send, chunk: usize, out: &mut BytesMut, limits: &frame::Limits) {
    let mut head = s.clone();
    head.flags |= flags::MORE;
    head.payload = s.payload.slice(..chunk);
    let ok = Frame::Send(head).encode(out, limits).is_ok();
    debug_assert!(ok);
    let mut offset = chunk;
    while offset < s.payload.len() {
        let end = (offset + chunk).min(s.payload.len());
        let ok = Frame::Chunk(Chunk {
            id: s.seq,
            offset: offset as u32,
            payload: s.payload.slice(offset..end),
        })
        .encode(out, limits)
        .is_ok();
        debug_assert!(ok);
        offset = end;
    }
}
