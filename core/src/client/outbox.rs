//! Unconfirmed outgoing frames, kept in sequence order until they are
//! final, so that they can be resent after a resume or a server restart.

use crate::frame::Frame;
use crate::seq_queue::SeqQueue;

/// One sequenced frame the server has not yet made final.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The frame (Send, Publish, Subscribe, Unsubscribe, Join, Leave).
    pub frame: Frame,
    /// Payload bytes counted against the outbox limit.
    pub bytes: usize,
    /// The server's receipt ack covered it.
    pub acked: bool,
    /// Wait for an `Outcome` before forgetting it.
    pub confirm: bool,
    /// Data (Send, Publish) rather than registration state: state frames
    /// are not resent after a fresh registration, which carries the state.
    pub data: bool,
}

/// The outbox: entries by sequence, with count and byte totals.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    entries: SeqQueue<Entry>,
    bytes: usize,
    /// Every entry at or below this sequence is acked: an ack only looks
    /// at the entries above it (acked entries stay until stable, so a scan
    /// from the start would cost the whole window on every ack).
    acked_through: u64,
    /// The highest sequence ever inserted: an ack beyond it (from a broken
    /// server) must not move the watermark past entries not yet sent.
    inserted_through: u64,
}

impl Outbox {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The oldest sequence kept.
    pub(crate) fn first_seq(&self) -> Option<u64> {
        self.entries.first_key()
    }

    pub(crate) fn insert(&mut self, seq: u64, entry: Entry) {
        debug_assert!(
            seq > self.inserted_through,
            "outbox sequences must increase"
        );
        self.bytes += entry.bytes;
        self.inserted_through = self.inserted_through.max(seq);
        if let Err(e) = self.entries.push(seq, entry) {
            // Unreachable (sequences increase); undo the count.
            self.bytes -= e.bytes;
        }
    }

    pub(crate) fn remove(&mut self, seq: u64) -> Option<Entry> {
        let e = self.entries.remove(seq)?;
        self.bytes -= e.bytes;
        Some(e)
    }

    /// Marks entries through `through` as acked; returns the data entries
    /// newly acked.
    pub(crate) fn ack_through(&mut self, through: u64, out: &mut Vec<u64>) {
        let through = through.min(self.inserted_through);
        if through <= self.acked_through {
            return;
        }
        let from = self.acked_through.saturating_add(1);
        for (seq, e) in self.entries.range_mut(from, through) {
            debug_assert!(!e.acked, "entry {seq} above the acked watermark is acked");
            e.acked = true;
            if e.data {
                out.push(seq);
            }
        }
        self.acked_through = through;
    }

    /// Forgets entries through `stable` that wait for nothing more: every
    /// acked entry except those waiting for an outcome.
    pub(crate) fn release_stable(&mut self, stable: u64) {
        let mut released = 0;
        self.entries.remove_through_if(
            stable,
            |e| e.acked && !e.confirm,
            |_, e| released += e.bytes,
        );
        self.bytes -= released;
    }

    /// Drops registration-state entries up to `through` (after a fresh
    /// registration whose `Hello` carried their effect); later ones were
    /// queued after the `Hello` was built and must still be sent.
    pub(crate) fn drop_state_entries(&mut self, through: u64) {
        let mut released = 0;
        self.entries
            .remove_through_if(through, |e| !e.data, |_, e| released += e.bytes);
        self.bytes -= released;
    }

    /// Clears the acked marks (a fresh server has acked nothing).
    pub(crate) fn clear_acks(&mut self) {
        for e in self.entries.values_mut() {
            e.acked = false;
        }
        self.acked_through = 0;
    }

    /// Entries with a sequence above `after`, in order.
    pub(crate) fn after(&self, after: u64) -> impl Iterator<Item = (u64, &Entry)> {
        self.entries.after(after)
    }
}
