//! Timers: handshake deadlines, heartbeats, resume windows, the
//! slow-consumer grace period and reassembly deadlines. Timers are entries in one ordered set and
//! are checked lazily: a timer that fires after its cause went away does
//! nothing, so a spurious `handle_timeout` is harmless.

use super::*;
use crate::frame::RejectReason;

/// What a timer entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// The connection must have finished its handshake.
    Handshake(ConnId),
    /// Heartbeat check of a member: ping when idle, fail when silent.
    Heartbeat(u64),
    /// A detached member must have resumed.
    ResumeWindow(u64),
    /// A member over its queue limit must have caught up.
    SlowConsumer(u64),
    /// The re-registration grace after start is over.
    Grace,
    /// A member's chunked message (member id, seq) must be complete.
    Reassembly(u64, u64),
}

impl Server {
    /// Time passed: fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Tick) {
        self.now = now;
        // Bounded: each entry is taken once; a handler re-arms at most one
        // entry, strictly in the future.
        while let Some(&(at, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            self.fire(timer);
            self.settle();
        }
        self.end_input();
    }

    fn fire(&mut self, timer: Timer) {
        let now = self.now;
        match timer {
            Timer::Handshake(conn) => {
                let handshaking = self.conns.get(&conn).is_some_and(|c| {
                    matches!(c.state, ConnState::AwaitHello | ConnState::AwaitAuth { .. })
                });
                if handshaking {
                    self.reject(
                        conn,
                        RejectReason::HandshakeTimeout,
                        "handshake not completed in time".into(),
                    );
                }
            }
            Timer::Reassembly(id, seq) => self.reassembly_deadline(id, seq),
            Timer::Grace => {
                // Sequence or NACK what is parked (what a throttled sender
                // has parked goes when it is released).
                debug_assert!(!self.in_grace());
                self.wake.note_parked();
            }
            Timer::Heartbeat(id) => {
                let interval = u64::from(self.config.heartbeat_interval_ms);
                let timeout = u64::from(self.config.heartbeat_timeout_ms);
                // A member whose frames wait in its inbox (throttled) may
                // have its connection unread by the driver (`wants_read`):
                // it is alive, just held back.
                if let Some(m) = self.members.get_mut(&id) {
                    if !m.inbox.is_empty() {
                        m.last_heard = now;
                    }
                }
                let Some(m) = self.members.get(&id) else {
                    return;
                };
                if let Some(conn) = m.conn {
                    if now.millis_since(m.last_heard) >= timeout {
                        self.remove_member(id, Removal::Failed(FailReason::HeartbeatTimeout));
                        return;
                    }
                    if now.millis_since(m.last_sent) >= interval {
                        let _ = self.write_control(conn, &Frame::Ping(now.as_micros()));
                    }
                }
                let Some(m) = self.members.get(&id) else {
                    return;
                };
                let next = m
                    .last_heard
                    .plus_millis(timeout)
                    .min(m.last_sent.plus_millis(interval))
                    .max(now + 1000);
                self.timers.insert((next, Timer::Heartbeat(id)));
            }
            Timer::ResumeWindow(id) => {
                let window = u64::from(self.config.resume_window_ms);
                let expired = self.members.get(&id).is_some_and(|m| {
                    m.conn.is_none()
                        && m.detached_since
                            .is_some_and(|t| now.millis_since(t) >= window)
                });
                if expired {
                    self.remove_member(id, Removal::Failed(FailReason::ConnectionLost));
                }
            }
            Timer::SlowConsumer(id) => {
                let grace = self.config.slow_consumer_grace_ms;
                let items_max = self.config.member_queue_items_max;
                let bytes_max = self.config.member_queue_bytes_max;
                let evict = self.members.get(&id).is_some_and(|m| {
                    m.over_limit(items_max, bytes_max)
                        && m.over_since.is_some_and(|t| now.millis_since(t) >= grace)
                });
                if evict {
                    self.stats.evictions += 1;
                    self.remove_member(id, Removal::Failed(FailReason::SlowConsumer));
                } else if let Some(m) = self.members.get_mut(&id) {
                    // Caught up in the meantime; a later excess starts over.
                    if !m.over_limit(items_max, bytes_max) {
                        m.over_since = None;
                    } else if let Some(t) = m.over_since {
                        self.timers
                            .insert((t.plus_millis(grace), Timer::SlowConsumer(id)));
                    }
                }
            }
        }
    }
}
