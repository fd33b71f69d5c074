//! The recent cluster events, for `/v1/events` watchers: a bounded log of
//! the latest events (to start a watcher from a past position) and a
//! broadcast channel for the live ones.
//!
//! The core task appends; it never waits for a watcher. Each watcher reads
//! through its own cursor in a ring of [`WATCHER_LAG_MAX`] events: one that
//! falls further behind is told so and dropped (see `events_sse`).

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::api_view::EventRecord;

/// Events kept for watchers that start from a past position.
pub const EVENT_LOG_MAX: usize = 1024;

/// Events a watcher may fall behind before it is dropped.
pub const WATCHER_LAG_MAX: usize = 512;

/// What a new watcher gets: the retained events from its position, and a
/// receiver for everything after them (no gap, no duplicate: both are
/// taken in the same step of the core task).
#[derive(Debug)]
pub(crate) struct Subscription {
    /// Retained events at or after the requested position.
    pub backlog: Vec<Arc<EventRecord>>,
    /// Oldest retained position (0 when none is retained).
    pub oldest: u64,
    /// The live events.
    pub live: broadcast::Receiver<Arc<EventRecord>>,
}

/// The log. Owned by the core task.
#[derive(Debug)]
pub(crate) struct EventLog {
    recent: VecDeque<Arc<EventRecord>>,
    tx: broadcast::Sender<Arc<EventRecord>>,
}

impl EventLog {
    pub(crate) fn new() -> EventLog {
        EventLog {
            recent: VecDeque::with_capacity(EVENT_LOG_MAX),
            tx: broadcast::channel(WATCHER_LAG_MAX).0,
        }
    }

    /// Appends an event and hands it to the watchers (never waits).
    pub(crate) fn push(&mut self, ev: EventRecord) {
        debug_assert!(
            self.recent.back().is_none_or(|last| last.gseq < ev.gseq),
            "events are appended in stream order"
        );
        let ev = Arc::new(ev);
        if self.recent.len() >= EVENT_LOG_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(ev.clone());
        // No receiver is not an error: nobody watches.
        let _ = self.tx.send(ev);
    }

    /// A new watcher from position `from` (events with `gseq >= from`).
    pub(crate) fn subscribe(&self, from: u64) -> Subscription {
        let start = self.recent.partition_point(|e| e.gseq < from);
        Subscription {
            backlog: self.recent.iter().skip(start).cloned().collect(),
            oldest: self.recent.front().map_or(0, |e| e.gseq),
            live: self.tx.subscribe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(gseq: u64) -> EventRecord {
        EventRecord {
            gseq,
            epoch: 0,
            unix_ms: 0,
            kind: "load".into(),
            member_id: None,
            member: None,
            instance: None,
            group: None,
            service: None,
            up: None,
            load: Some(1),
            reason: None,
            topic: None,
            payload_bytes: None,
        }
    }

    #[test]
    fn the_log_is_bounded_and_subscribes_from_a_position() {
        let mut log = EventLog::new();
        for g in 1..=(EVENT_LOG_MAX as u64 + 10) {
            log.push(ev(g * 2));
        }
        let s = log.subscribe(0);
        assert_eq!(s.backlog.len(), EVENT_LOG_MAX);
        assert_eq!(s.oldest, 22);
        let s = log.subscribe(2 * (EVENT_LOG_MAX as u64 + 9));
        let got: Vec<u64> = s.backlog.iter().map(|e| e.gseq).collect();
        assert_eq!(
            got,
            vec![
                2 * (EVENT_LOG_MAX as u64 + 9),
                2 * (EVENT_LOG_MAX as u64 + 10)
            ]
        );
    }

    #[test]
    fn a_watcher_that_falls_behind_is_told() {
        let mut log = EventLog::new();
        let mut s = log.subscribe(1);
        for g in 1..=(WATCHER_LAG_MAX as u64 + 5) {
            log.push(ev(g));
        }
        assert!(matches!(
            s.live.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(5))
        ));
    }
}
