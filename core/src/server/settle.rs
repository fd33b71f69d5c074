//! The settle step: the wake-ups an input made due, run in one place.
//!
//! A member's message can wait in five places: unread by the driver
//! (`wants_read`), in the client's outbox (unacknowledged), in the member's
//! inbox (deferred while throttled), parked (addressee not back yet, or
//! behind an earlier parked item), and in a recipient's stream queue. Input
//! handlers never wake a waiting item themselves: they only record here
//! what may have changed ([`Wakeups`]), and [`Server::settle`] runs after
//! every frame, timer and other input until nothing is left to do: members
//! far over their queue limit are evicted, parked items are retried, and
//! deferred frames are processed, each of which may record more.

use std::collections::VecDeque;

use super::*;

/// What may have become due during an input. Owned by the server; the
/// buffers keep their capacity across inputs (no allocation per message).
#[derive(Debug, Default)]
pub(super) struct Wakeups {
    /// Members whose queue went past twice its limit (evicted at once).
    evictions: Vec<u64>,
    /// Parked items may go now (a registration, a join, a throttle
    /// released, the restart grace over).
    parked: bool,
    /// Members whose deferred frames may be processed now, in order of
    /// recording (duplicates are harmless).
    inboxes: VecDeque<u64>,
    /// Members over their queue limit whose queue shrank: whether they are
    /// back under it is judged when the whole input is handled
    /// ([`Server::end_input`]), not by `settle`, so that going under and
    /// over again within one input does not restart the slow-consumer
    /// grace (duplicates are harmless).
    maybe_under: Vec<u64>,
}

impl Wakeups {
    /// Member `id` is far over its queue limit.
    pub(super) fn note_eviction(&mut self, id: u64) {
        self.evictions.push(id);
    }

    /// Parked items may be retried.
    pub(super) fn note_parked(&mut self) {
        self.parked = true;
    }

    /// Member `id`'s deferred frames may be processed.
    pub(super) fn note_inbox(&mut self, id: u64) {
        self.inboxes.push_back(id);
    }

    /// Member `id`, over its queue limit, had items removed from its queue.
    pub(super) fn note_maybe_under(&mut self, id: u64) {
        self.maybe_under.push(id);
    }

    /// True when nothing is due for `settle` (`maybe_under` waits for the
    /// end of the input).
    pub(super) fn is_empty(&self) -> bool {
        self.evictions.is_empty() && !self.parked && self.inboxes.is_empty()
    }
}

impl Server {
    /// Runs every recorded wake-up until none is left: evictions first
    /// (the hard queue bound), then parked items (older than any deferred
    /// frame of the same sender), then deferred frames. Each may record
    /// more; the loop ends because every step removes what it handles and
    /// each wake-up needs a change that consumed input or queue room.
    pub(super) fn settle(&mut self) {
        loop {
            if !self.wake.evictions.is_empty() {
                self.process_evictions();
            } else if std::mem::take(&mut self.wake.parked) {
                if !self.parked.is_empty() {
                    self.retry_parked();
                }
            } else if let Some(id) = self.wake.inboxes.pop_front() {
                self.drain_inbox(id);
            } else {
                break;
            }
        }
        debug_assert!(self.wake.is_empty());
        #[cfg(debug_assertions)]
        self.check_reassembly();
        // The hard bound holds once evictions are processed (G11).
        debug_assert!(
            {
                let items = self.config.member_queue_items_max.saturating_mul(2);
                let bytes = self.config.member_queue_bytes_max.saturating_mul(2);
                self.members.values().all(|m| !m.over_limit(items, bytes))
            },
            "a member queue is over twice its limit after settling"
        );
    }

    /// The end of one input (a read, the timers due, a connection opened or
    /// closed, a shutdown, an eviction for memory, new credentials): a
    /// member over its queue limit is judged back under it only here, on
    /// the queue it has between inputs, so that a delivery
    /// acknowledgement followed in the same input by new items (a
    /// throttled sender released onto it) does not restart its
    /// slow-consumer grace. The grace's clock thus runs on the same states
    /// an observer between inputs sees.
    pub(super) fn end_input(&mut self) {
        debug_assert!(self.wake.is_empty());
        let (items_max, bytes_max) = (
            self.config.member_queue_items_max,
            self.config.member_queue_bytes_max,
        );
        let mut ids = std::mem::take(&mut self.wake.maybe_under);
        for id in ids.drain(..) {
            if let Some(m) = self.members.get_mut(&id) {
                if m.over_since.is_some() && !m.over_limit(items_max, bytes_max) {
                    m.over_since = None;
                }
            }
        }
        self.wake.maybe_under = ids;
    }

    /// Evicts members whose queues went far over their limit while items
    /// were enqueued.
    pub(super) fn process_evictions(&mut self) {
        while let Some(id) = self.wake.evictions.pop() {
            if self.members.contains_key(&id) {
                self.stats.evictions += 1;
                self.remove_member(id, Removal::Failed(FailReason::SlowConsumer));
            }
        }
    }

    /// Processes the deferred frames of a member while it is not throttled.
    fn drain_inbox(&mut self, id: u64) {
        while !self.throttle_holds_id(id) {
            let Some((conn, f)) = self.pop_deferred(id) else {
                return;
            };
            self.process_member_frame(conn, id, f);
        }
    }
}
