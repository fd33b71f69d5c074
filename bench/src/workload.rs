//! The benchmark workloads (W1–W6: see docs/PERFORMANCE.md), their parameters, the
//! address kinds Switchboard is measured with, and the figure each run
//! produces.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hdrhistogram::Histogram;

/// One benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    /// Unicast throughput: 1 sender → 1 receiver, pipelined.
    W1,
    /// Broadcast fan-out: 1 sender → `fanout` receivers; deliveries/s.
    W2,
    /// Request/reply latency: sequential round trips.
    W3,
    /// Many-to-many: `pairs` senders → `pairs` receivers, each sender
    /// spreading its messages round robin over the receivers.
    W4,
    /// Scale: `idle_members` connected idle members; server memory per
    /// member and the time to tell all of them one event.
    W5,
    /// Many members: `many_members` connected members, each sending
    /// `many_rate` unicast messages per second to random others for
    /// `many_for`; delivered rate and latency.
    W6,
}

impl Workload {
    /// Every workload, in order.
    pub const ALL: [Workload; 6] = [
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W4,
        Workload::W5,
        Workload::W6,
    ];

    /// The lower-case name (`w1` ...), used in flags and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "w1",
            Workload::W2 => "w2",
            Workload::W3 => "w3",
            Workload::W4 => "w4",
            Workload::W5 => "w5",
            Workload::W6 => "w6",
        }
    }

    /// What the workload measures, for the table.
    pub fn title(self, p: &Params) -> String {
        match self {
            Workload::W1 => format!("W1 unicast 1→1, {} B, msgs/s", p.payload),
            Workload::W2 => format!("W2 fan-out 1→{}, {} B, deliveries/s", p.fanout, p.payload),
            Workload::W3 => format!("W3 request/reply, {} B, latency", p.request_payload),
            Workload::W4 => format!("W4 {0}→{0}, {1} B, msgs/s", p.pairs, p.payload),
            Workload::W5 => format!("W5 {} idle members", p.idle_members),
            Workload::W6 => format!(
                "W6 {} members, each {}/s unicast to random others, {} B, {:.0} s: delivered/s and latency",
                p.many_members,
                p.many_rate,
                p.payload.max(MANY_PAYLOAD_MIN),
                p.many_for.as_secs_f64()
            ),
        }
    }

    /// The address kinds that mean something for this workload, the
    /// default first (what runs when no `--address` is given).
    pub fn addresses(self) -> &'static [AddressKind] {
        use AddressKind::*;
        match self {
            Workload::W1 => &[MemberId, Member, Group, Broadcast],
            Workload::W2 => &[Broadcast, Group],
            Workload::W3 => &[MemberId, Member, Group],
            Workload::W4 | Workload::W6 => &[MemberId, Member, Group],
            Workload::W5 => &[],
        }
    }

    /// The address kinds to run for this workload given the ones asked
    /// for: those of `asked` that mean something here, in this workload's
    /// order, or the default when none does (or none was asked for).
    pub fn addresses_for(self, asked: &[AddressKind]) -> Vec<Option<AddressKind>> {
        let own = self.addresses();
        let picked: Vec<Option<AddressKind>> = own
            .iter()
            .filter(|a| asked.contains(a))
            .map(|a| Some(*a))
            .collect();
        if !picked.is_empty() {
            picked
        } else {
            vec![own.first().copied()]
        }
    }
}

/// The smallest W6 payload: the first 8 bytes carry the send time.
pub const MANY_PAYLOAD_MIN: usize = 8;

/// How a Switchboard sender addresses its receivers (the peers have one
/// way only: a subject or channel per receiver, or one for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddressKind {
    /// `Address::MemberId`: the receiver's member id.
    MemberId,
    /// `Address::Member { instance, process }`: the receiver by name.
    Member,
    /// `Address::Group`: a group the receivers joined (one group per
    /// receiver for unicast workloads, one for all for fan-out; W3 sends
    /// its requests as `Address::Anycast` to the responder's group).
    Group,
    /// `Address::Broadcast`: every other member.
    Broadcast,
}

impl AddressKind {
    /// Every kind, in order.
    pub const ALL: [AddressKind; 4] = [
        AddressKind::MemberId,
        AddressKind::Member,
        AddressKind::Group,
        AddressKind::Broadcast,
    ];

    /// The flag and JSON name.
    pub fn name(self) -> &'static str {
        match self {
            AddressKind::MemberId => "member-id",
            AddressKind::Member => "member",
            AddressKind::Group => "group",
            AddressKind::Broadcast => "broadcast",
        }
    }

    /// Parses one name, or `all` for every kind.
    pub fn parse_list(s: &str) -> Result<Vec<AddressKind>, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(AddressKind::ALL.to_vec()),
            "member-id" | "memberid" | "id" => Ok(vec![AddressKind::MemberId]),
            "member" => Ok(vec![AddressKind::Member]),
            "group" => Ok(vec![AddressKind::Group]),
            "broadcast" => Ok(vec![AddressKind::Broadcast]),
            other => Err(format!(
                "unknown address kind {other:?} (expected member-id, member, group, broadcast or all)"
            )),
        }
    }
}

impl fmt::Display for AddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Workload, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "w1" => Ok(Workload::W1),
            "w2" => Ok(Workload::W2),
            "w3" => Ok(Workload::W3),
            "w4" => Ok(Workload::W4),
            "w5" => Ok(Workload::W5),
            "w6" => Ok(Workload::W6),
            other => Err(format!("unknown workload {other:?} (expected w1..w6)")),
        }
    }
}

/// Parameters shared by every system in one bench run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Payload bytes of W1, W2 and W4 messages.
    pub payload: usize,
    /// Payload bytes of W3 requests and replies.
    pub request_payload: usize,
    /// How long the senders of a throughput workload send.
    pub send_for: Duration,
    /// How long receivers may take to catch up after the senders stop
    /// before the rest counts as lost.
    pub drain_timeout: Duration,
    /// Receivers of W2.
    pub fanout: usize,
    /// Senders and receivers of W4 (each).
    pub pairs: usize,
    /// Sequential round trips of W3 (after `warmup_requests`).
    pub requests: usize,
    /// Round trips of W3 not recorded.
    pub warmup_requests: usize,
    /// Idle members of W5.
    pub idle_members: usize,
    /// Members of W6.
    pub many_members: usize,
    /// Messages per second each W6 member sends.
    pub many_rate: u32,
    /// How long W6 members send.
    pub many_for: Duration,
    /// Switchboard W1, W2, W4 senders hand their messages to the library
    /// this many at a time (`Member::post_many`); 1 posts each on its own
    /// (`Member::post`).
    pub post_batch: usize,
}

impl Params {
    /// The standard figures (docs/PERFORMANCE.md), with `send_for` per throughput run.
    pub fn standard(payload: usize, send_for: Duration) -> Params {
        Params {
            payload,
            request_payload: 64,
            send_for,
            drain_timeout: Duration::from_secs(10),
            fanout: 16,
            pairs: 8,
            requests: 20_000,
            warmup_requests: 1_000,
            idle_members: 1_000,
            many_members: 2_000,
            many_rate: 50,
            many_for: Duration::from_secs(30),
            post_batch: switchboard_client::POST_BATCH_MAX,
        }
    }

    /// A few seconds in all, for CI smoke runs.
    pub fn quick(payload: usize) -> Params {
        Params {
            send_for: Duration::from_millis(300),
            drain_timeout: Duration::from_secs(10),
            requests: 500,
            warmup_requests: 50,
            idle_members: 100,
            many_members: 100,
            many_for: Duration::from_secs(2),
            ..Params::standard(payload, Duration::from_millis(300))
        }
    }
}

/// What one run of one workload against one system measured.
#[derive(Debug, Clone)]
pub enum Figure {
    /// W1, W2, W4.
    Throughput {
        /// Messages the senders handed to the system.
        sent: u64,
        /// Deliveries expected (`sent` × receivers per message).
        expected: u64,
        /// Deliveries counted at the receivers.
        received: u64,
        /// From the first send to the last counted delivery.
        elapsed: Duration,
        /// Messages the server acknowledged to the senders (`None`: the
        /// system has no acknowledgements).
        acked: Option<u64>,
    },
    /// W3.
    Latency {
        /// Round-trip times in microseconds.
        hist: Histogram<u64>,
        /// Requests without a reply.
        lost: u64,
    },
    /// W5.
    Scale {
        /// Idle members connected.
        members: u64,
        /// Server resident memory before the members connected, bytes.
        rss_before: Option<u64>,
        /// Server resident memory with all of them connected, bytes.
        rss_after: Option<u64>,
        /// From publishing one event (or the join of one more member) until
        /// every idle member had it.
        broadcast: Duration,
        /// Idle members that got it (the rest count as lost).
        received: u64,
    },
    /// W6.
    Many {
        /// Members that sent and received.
        members: u64,
        /// Messages handed to the system.
        sent: u64,
        /// Messages the server acknowledged (`None`: no acknowledgements).
        acked: Option<u64>,
        /// Deliveries counted at the receivers.
        received: u64,
        /// The sending window (the rate is `received` over it).
        elapsed: Duration,
        /// Send to delivery at the receiver, µs (one clock: the loader's).
        delivery: Histogram<u64>,
        /// Send to acknowledgement at the sender, µs (`None`: no
        /// acknowledgements).
        ack: Option<Histogram<u64>>,
    },
}

impl Figure {
    /// Deliveries per second of a throughput figure.
    pub fn rate(&self) -> Option<f64> {
        match self {
            Figure::Throughput {
                received, elapsed, ..
            }
            | Figure::Many {
                received, elapsed, ..
            } => Some(*received as f64 / elapsed.as_secs_f64().max(1e-9)),
            _ => None,
        }
    }

    /// A one-line description, for test output and logs.
    pub fn summary(&self) -> String {
        match self {
            Figure::Throughput {
                sent,
                expected,
                received,
                elapsed,
                ..
            } => format!(
                "sent {sent} expected {expected} received {received} in {elapsed:?}: {:.0}/s, lost {}",
                self.rate().unwrap_or(0.0),
                self.lost()
            ),
            Figure::Latency { hist, lost } => format!(
                "n {} p50 {} µs p99 {} µs p99.9 {} µs max {} µs, lost {lost}",
                hist.len(),
                hist.value_at_quantile(0.5),
                hist.value_at_quantile(0.99),
                hist.value_at_quantile(0.999),
                hist.max()
            ),
            Figure::Scale {
                members,
                rss_before,
                rss_after,
                broadcast,
                received,
            } => format!(
                "members {members} rss {rss_before:?} -> {rss_after:?} ({} B/member), broadcast {broadcast:?}, received {received}",
                rss_after
                    .zip(*rss_before)
                    .map_or(0, |(a, b)| a.saturating_sub(b) / (*members).max(1))
            ),
            Figure::Many {
                members,
                sent,
                received,
                delivery,
                ack,
                ..
            } => format!(
                "members {members} sent {sent} received {received}: {:.0}/s, delivery p50 {} p99 {} p99.9 {} µs{}, lost {}",
                self.rate().unwrap_or(0.0),
                delivery.value_at_quantile(0.5),
                delivery.value_at_quantile(0.99),
                delivery.value_at_quantile(0.999),
                ack.as_ref().map_or(String::new(), |a| format!(
                    ", ack p50 {} p99 {} p99.9 {} µs",
                    a.value_at_quantile(0.5),
                    a.value_at_quantile(0.99),
                    a.value_at_quantile(0.999)
                )),
                self.lost()
            ),
        }
    }

    /// Expected deliveries that never arrived.
    pub fn lost(&self) -> u64 {
        match self {
            Figure::Throughput {
                expected, received, ..
            } => expected.saturating_sub(*received),
            Figure::Latency { lost, .. } => *lost,
            Figure::Scale {
                members, received, ..
            } => members.saturating_sub(*received),
            Figure::Many { sent, received, .. } => sent.saturating_sub(*received),
        }
    }

    /// Deliveries (or round trips, or members told) the figure counts,
    /// for CPU per message.
    pub fn deliveries(&self) -> u64 {
        match self {
            Figure::Throughput { received, .. } | Figure::Many { received, .. } => *received,
            Figure::Latency { hist, .. } => hist.len(),
            Figure::Scale { received, .. } => *received,
        }
    }
}

/// A latency histogram in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Why a bench run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A process could not be started or did not come up.
    #[error("{system}: cannot start the server: {detail}")]
    Start {
        /// Which system.
        system: String,
        /// Why.
        detail: String,
    },
    /// A client could not connect or failed during the run.
    #[error("{system}: client failed: {detail}")]
    Client {
        /// Which system.
        system: String,
        /// Why.
        detail: String,
    },
    /// A run did not finish in time.
    #[error("{system}: {workload} did not finish within {after:?}")]
    Timeout {
        /// Which system.
        system: String,
        /// Which workload.
        workload: Workload,
        /// The limit.
        after: Duration,
    },
    /// Local I/O (temporary files).
    #[error("bench I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl BenchError {
    /// A client error of `system`.
    pub fn client(system: &str, detail: impl fmt::Display) -> BenchError {
        BenchError::Client {
            system: system.to_owned(),
            detail: detail.to_string(),
        }
    }
}
