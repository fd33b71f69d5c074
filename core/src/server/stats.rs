//! Counters the server keeps where it already does the work, for metrics
//! and the external port: by address kind, by reason, per member, and two
//! latency histograms. Every update is an array increment (no allocation,
//! no map lookup), so counting costs nothing measurable on the message path.

use crate::frame::{Address, FailReason, NackReason, RejectReason};
use crate::time::Tick;

/// Address kinds, in the order of the `*_by_kind` arrays.
pub const ADDRESS_KINDS: [&str; 6] = [
    "member_id",
    "member",
    "instance",
    "group",
    "anycast",
    "broadcast",
];

/// Index of an address's kind in [`ADDRESS_KINDS`].
pub fn address_kind(a: &Address) -> usize {
    match a {
        Address::MemberId(_) => 0,
        Address::Member { .. } => 1,
        Address::Instance(_) => 2,
        Address::Group(_) => 3,
        Address::Anycast(_) => 4,
        Address::Broadcast => 5,
    }
}

/// Handshake rejection reasons, in the order of `rejects_by_reason`.
pub const REJECT_REASONS: [&str; 9] = [
    "bad_secret",
    "unsupported_version",
    "wrong_cluster",
    "duplicate_identity",
    "server_full",
    "handshake_timeout",
    "session_unknown",
    "invalid",
    "not_permitted",
];

/// Index of a rejection reason in [`REJECT_REASONS`].
pub fn reject_index(r: RejectReason) -> usize {
    match r {
        RejectReason::BadSecret => 0,
        RejectReason::UnsupportedVersion => 1,
        RejectReason::WrongCluster => 2,
        RejectReason::DuplicateIdentity => 3,
        RejectReason::ServerFull => 4,
        RejectReason::HandshakeTimeout => 5,
        RejectReason::SessionUnknown => 6,
        RejectReason::Invalid => 7,
        RejectReason::NotPermitted => 8,
    }
}

/// NACK reasons, in the order of `nacks_by_reason`.
pub const NACK_REASONS: [&str; 7] = [
    "unknown_destination",
    "destination_gone",
    "too_large",
    "over_quota",
    "not_permitted",
    "invalid",
    "incomplete",
];

/// Index of a NACK reason in [`NACK_REASONS`].
pub fn nack_index(r: NackReason) -> usize {
    match r {
        NackReason::UnknownDestination => 0,
        NackReason::DestinationGone => 1,
        NackReason::TooLarge => 2,
        NackReason::OverQuota => 3,
        NackReason::NotPermitted => 4,
        NackReason::Invalid => 5,
        NackReason::Incomplete => 6,
    }
}

/// Reasons a member is declared failed, in the order of
/// `failures_by_reason`.
pub const FAIL_REASONS: [&str; 5] = [
    "heartbeat_timeout",
    "connection_lost",
    "slow_consumer",
    "protocol_violation",
    "superseded",
];

/// Index of a failure reason in [`FAIL_REASONS`].
pub fn fail_index(r: FailReason) -> usize {
    match r {
        FailReason::HeartbeatTimeout => 0,
        FailReason::ConnectionLost => 1,
        FailReason::SlowConsumer => 2,
        FailReason::ProtocolViolation => 3,
        FailReason::Superseded => 4,
    }
}

/// Buckets of a [`LatencyHistogram`]: bucket `i` counts values of at most
/// `HISTOGRAM_FIRST_US << i` microseconds (16 µs … about 4.2 s); the last
/// bucket counts everything larger.
pub const HISTOGRAM_BUCKETS: usize = 20;

/// Upper bound of the first histogram bucket, microseconds.
pub const HISTOGRAM_FIRST_US: u64 = 16;

/// A latency histogram with fixed power-of-two buckets: recording is a
/// shift and an increment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Counts per bucket (not cumulative); see [`HISTOGRAM_BUCKETS`].
    pub buckets: [u64; HISTOGRAM_BUCKETS],
    /// Sum of the recorded values, microseconds.
    pub sum_us: u64,
    /// Number of recorded values.
    pub count: u64,
}

impl LatencyHistogram {
    /// Records one value.
    pub fn record(&mut self, micros: u64) {
        let i = Self::bucket(micros);
        self.buckets[i] += 1;
        self.sum_us = self.sum_us.saturating_add(micros);
        self.count += 1;
    }

    /// The bucket a value falls in.
    pub fn bucket(micros: u64) -> usize {
        if micros <= HISTOGRAM_FIRST_US {
            return 0;
        }
        // ceil(log2(micros / FIRST)), computed on the value minus one so
        // that an exact power of two lands in its own bucket.
        let bits = 64 - ((micros - 1) / HISTOGRAM_FIRST_US).leading_zeros() as usize;
        bits.min(HISTOGRAM_BUCKETS - 1)
    }

    /// Upper bound of bucket `i` in microseconds; `None` for the last
    /// (unbounded) bucket.
    pub fn upper_bound_us(i: usize) -> Option<u64> {
        (i + 1 < HISTOGRAM_BUCKETS).then(|| HISTOGRAM_FIRST_US << i)
    }
}

/// Counters of one member session, kept in the member itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberStats {
    /// When its current connection registered or resumed.
    pub connected_since: Tick,
    /// Messages it sent that the server processed (accepted or NACKed).
    pub messages_in: u64,
    /// Their payload bytes.
    pub bytes_in: u64,
    /// Stream items enqueued to it (deliveries, events, notices): the
    /// acknowledged ones plus its queue, filled in by `Server::member_stats`.
    pub items_out: u64,
    /// Their encoded bytes.
    pub bytes_out: u64,
    /// Stream items it acknowledged.
    pub acked: u64,
    /// Their encoded bytes.
    pub acked_bytes: u64,
    /// Its messages the server NACKed.
    pub nacks: u64,
    /// Sessions it resumed.
    pub resumes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_hold_their_upper_bound() {
        assert_eq!(LatencyHistogram::bucket(0), 0);
        assert_eq!(LatencyHistogram::bucket(16), 0);
        assert_eq!(LatencyHistogram::bucket(17), 1);
        assert_eq!(LatencyHistogram::bucket(32), 1);
        assert_eq!(LatencyHistogram::bucket(33), 2);
        assert_eq!(LatencyHistogram::bucket(u64::MAX), HISTOGRAM_BUCKETS - 1);
        for i in 0..HISTOGRAM_BUCKETS - 1 {
            let ub = LatencyHistogram::upper_bound_us(i).expect("bounded bucket");
            assert_eq!(LatencyHistogram::bucket(ub), i, "bound of bucket {i}");
            assert_eq!(LatencyHistogram::bucket(ub + 1), i + 1, "past bucket {i}");
        }
        assert_eq!(
            LatencyHistogram::upper_bound_us(HISTOGRAM_BUCKETS - 1),
            None
        );
    }

    #[test]
    fn histogram_counts_and_sums() {
        let mut h = LatencyHistogram::default();
        h.record(10);
        h.record(1000);
        assert_eq!(h.count, 2);
        assert_eq!(h.sum_us, 1010);
        assert_eq!(h.buckets.iter().sum::<u64>(), 2);
    }
}
