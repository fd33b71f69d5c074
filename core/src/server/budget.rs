//! What the state machine holds, in bytes, for a server-wide memory budget
//! enforced by the driver: per member its stream queue, its deferred
//! frames, its partial chunked message and its control lane; per
//! handshaking connection its read buffer.

use super::*;

impl Server {
    /// Bytes one member makes the server hold: its unacknowledged stream
    /// (deliveries shared with other recipients count for each of them),
    /// its deferred frames, the chunked message it is sending, its
    /// pending control frames and its list of received messages its
    /// application has not taken yet. A member that does not read its own stream
    /// (notices about its own messages included) counts its unread queue
    /// against itself.
    pub fn member_bytes(&self, member_id: u64) -> Option<usize> {
        self.members.get(&member_id).map(|m| {
            m.queue_bytes
                + m.inbox_bytes
                + m.partial.as_ref().map_or(0, |p| p.buf.capacity())
                + m.control.capacity()
                + m.arena.capacity()
                + m.untaken.capacity() * std::mem::size_of::<u64>()
        })
    }

    /// Bytes held by the state machine: every member's
    /// [`member_bytes`](Server::member_bytes) plus the read buffers of every
    /// connection (a handshaking one holds at most
    /// [`HANDSHAKE_FRAME_BYTES_MAX`](crate::frame::HANDSHAKE_FRAME_BYTES_MAX)
    /// plus one read).
    pub fn memory_bytes(&self) -> usize {
        let members: usize = self
            .members
            .keys()
            .filter_map(|id| self.member_bytes(*id))
            .sum();
        let reads: usize = self.conns.values().map(|c| c.read_buf.capacity()).sum();
        members + reads
    }

    /// The member holding the most bytes, with its `instance/process` and
    /// that figure: the one a driver over its memory budget cuts off.
    pub fn largest_member(&self) -> Option<(u64, String, usize)> {
        self.members
            .keys()
            .filter_map(|id| self.member_bytes(*id).map(|b| (*id, b)))
            .max_by_key(|(_, b)| *b)
            .and_then(|(id, b)| self.members.get(&id).map(|m| (id, m.name(), b)))
    }

    /// Cuts a member off because the server is over its memory budget: it
    /// is removed as a slow consumer (its connection gets
    /// `Error{LimitExceeded}`, its addressees' misses read `Evicted`) and
    /// everything it held is released.
    pub fn evict_for_memory(&mut self, now: Tick, member_id: u64) {
        self.now = now;
        if self.members.contains_key(&member_id) {
            self.stats.evictions += 1;
            self.remove_member(member_id, Removal::Failed(FailReason::SlowConsumer));
            self.settle();
            self.end_input();
        }
    }

    /// True when the connection carries a registered member.
    pub fn is_authenticated(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| matches!(c.state, ConnState::Attached(_)))
    }

    /// True while the connection has not authenticated (it is still in its
    /// handshake).
    pub fn is_handshaking(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| !matches!(c.state, ConnState::Attached(_)))
    }
}
