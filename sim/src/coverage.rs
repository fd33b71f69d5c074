//! Counters that prove each fault and each protocol path actually happened.

use serde::Serialize;

use crate::history::{Act, History};

/// Faults injected, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// Connection resets.
    pub reset: u64,
    /// Clogged links.
    pub clog: u64,
    /// Partitions.
    pub partition: u64,
    /// Member crashes.
    pub crash: u64,
    /// Server crashes.
    pub server_crash: u64,
    /// Process pauses.
    pub pause: u64,
    /// Slow consumers.
    pub slow: u64,
}

impl FaultCounts {
    /// `(name, count)` pairs.
    pub fn pairs(&self) -> [(&'static str, u64); 7] {
        [
            ("reset", self.reset),
            ("clog", self.clog),
            ("partition", self.partition),
            ("crash", self.crash),
            ("server_crash", self.server_crash),
            ("pause", self.pause),
            ("slow", self.slow),
        ]
    }
}

/// What happened in a run (or a sweep, summed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// Faults injected.
    pub faults: FaultCounts,
    /// Messages sent.
    pub sends: u64,
    /// Requests sent.
    pub requests: u64,
    /// Replies received.
    pub replies: u64,
    /// Requests that timed out.
    pub request_timeouts: u64,
    /// Requests failed because the partner left or failed.
    pub partner_gone: u64,
    /// Events published.
    pub publishes: u64,
    /// Non-membership events seen.
    pub events_seen: u64,
    /// NACKs.
    pub nacks: u64,
    /// Outcomes.
    pub outcomes: u64,
    /// Outcomes naming a missed addressee.
    pub outcomes_with_missed: u64,
    /// Anycast deliveries.
    pub anycast_deliveries: u64,
    /// Group deliveries.
    pub group_deliveries: u64,
    /// Deliveries of a sender `seq` above `SEQ_WINDOW` (the receivers'
    /// duplicate window has wrapped around).
    pub past_seq_window: u64,
    /// Resumes refused (`Reject{SessionUnknown}`).
    pub refused_resumes: u64,
    /// Member queues that went over their soft item limit.
    pub queues_over_limit: u64,
    /// Chunked sends.
    pub chunked_sends: u64,
    /// Chunked deliveries.
    pub chunked_deliveries: u64,
    /// Session resumes seen by clients.
    pub resumes: u64,
    /// Session resumes seen by the server.
    pub server_resumes: u64,
    /// Fresh registrations after a lost session (server restart, expiry).
    pub reregistrations: u64,
    /// Gap notices.
    pub gaps: u64,
    /// Slow-consumer evictions.
    pub evictions: u64,
    /// Members superseded by a new incarnation.
    pub superseded: u64,
    /// Members declared failed by heartbeat timeout.
    pub heartbeat_failures: u64,
    /// Sessions expired past the resume window.
    pub session_expiries: u64,
    /// Process restarts.
    pub restarts: u64,
    /// Client disconnects.
    pub disconnects: u64,
    /// Handshakes rejected.
    pub rejects: u64,
    /// Commands refused locally (outbox full).
    pub refused_commands: u64,
    /// Times a member became throttled (`Server::is_throttled`: a
    /// recipient of its messages over its queue limit, or its own unread
    /// notices).
    pub throttled: u64,
    /// Reads held back because the server stopped reading a connection
    /// (`Server::wants_read` false: deferred frames at their byte limit).
    pub reads_held: u64,
    /// Messages sent in firehose bursts.
    pub burst_sends: u64,
    /// Deliveries recorded.
    pub deliveries: u64,
}

impl Coverage {
    /// Counts what only the history shows.
    pub fn add_history(&mut self, h: &History) {
        for e in h.iter() {
            if let Act::Delivered { .. } = e.act {
                self.deliveries += 1;
            }
        }
    }

    /// Adds another run's counters.
    pub fn merge(&mut self, o: &Coverage) {
        let f = &mut self.faults;
        f.reset += o.faults.reset;
        f.clog += o.faults.clog;
        f.partition += o.faults.partition;
        f.crash += o.faults.crash;
        f.server_crash += o.faults.server_crash;
        f.pause += o.faults.pause;
        f.slow += o.faults.slow;
        self.sends += o.sends;
        self.requests += o.requests;
        self.replies += o.replies;
        self.request_timeouts += o.request_timeouts;
        self.partner_gone += o.partner_gone;
        self.publishes += o.publishes;
        self.events_seen += o.events_seen;
        self.nacks += o.nacks;
        self.outcomes += o.outcomes;
        self.outcomes_with_missed += o.outcomes_with_missed;
        self.anycast_deliveries += o.anycast_deliveries;
        self.group_deliveries += o.group_deliveries;
        self.past_seq_window += o.past_seq_window;
        self.refused_resumes += o.refused_resumes;
        self.queues_over_limit += o.queues_over_limit;
        self.chunked_sends += o.chunked_sends;
        self.chunked_deliveries += o.chunked_deliveries;
        self.resumes += o.resumes;
        self.server_resumes += o.server_resumes;
        self.reregistrations += o.reregistrations;
        self.gaps += o.gaps;
        self.evictions += o.evictions;
        self.superseded += o.superseded;
        self.heartbeat_failures += o.heartbeat_failures;
        self.session_expiries += o.session_expiries;
        self.restarts += o.restarts;
        self.disconnects += o.disconnects;
        self.rejects += o.rejects;
        self.refused_commands += o.refused_commands;
        self.throttled += o.throttled;
        self.reads_held += o.reads_held;
        self.burst_sends += o.burst_sends;
        self.deliveries += o.deliveries;
    }

    /// The protocol paths every sweep must reach, with their counts.
    pub fn paths(&self) -> [(&'static str, u64); 12] {
        [
            ("resume", self.resumes),
            ("reregistration", self.reregistrations),
            ("gap_notice", self.gaps),
            ("eviction", self.evictions),
            ("anycast", self.anycast_deliveries),
            ("request_reply", self.replies),
            ("request_timeout", self.request_timeouts),
            ("nack", self.nacks),
            ("outcome_missed", self.outcomes_with_missed),
            ("chunked", self.chunked_deliveries),
            ("superseded", self.superseded),
            ("heartbeat_failure", self.heartbeat_failures),
        ]
    }
}
