//! `GET /metrics`: the server's counters in the Prometheus/OpenMetrics text
//! format, encoded by `prometheus-client`.
//!
//! Nothing is counted here: the core server counts where it does the work
//! (`ServerStats`, per-member `MemberStats`), and a scrape takes one
//! [`Snapshot`] from the core task and encodes it through a collector. The
//! metric list and what to alert on are in `docs/OPERATIONS.md`.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use switchboard_core::server::stats::{
    LatencyHistogram, ADDRESS_KINDS, FAIL_REASONS, HISTOGRAM_BUCKETS, NACK_REASONS, REJECT_REASONS,
};

use crate::snapshot::Snapshot;

/// Upper bounds of the per-member queue depth histogram, items.
const QUEUE_DEPTH_BUCKETS: [u64; 9] = [0, 1, 4, 16, 64, 256, 1024, 4096, 16384];

/// The OpenMetrics content type.
const CONTENT_TYPE_OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(crate) async fn metrics(State(ctx): State<crate::api::ApiCtx>) -> Response {
    let mut snap = match crate::api::snapshot(&ctx.core).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    snap.tls_failures = ctx.tls_failures.as_ref().map(|f| f.totals());
    match encode(snap) {
        Ok(text) => ([(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)], text).into_response(),
        Err(_) => crate::api::busy(),
    }
}

/// The text exposition of a snapshot.
pub(crate) fn encode(snap: Snapshot) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snap)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct SnapshotCollector(Snapshot);

/// A value already counted elsewhere, encoded as a metric.
#[derive(Debug)]
enum Value {
    Counter(u64),
    Gauge(i64),
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
}

impl EncodeMetric for Value {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        match self {
            Value::Counter(v) => {
                encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(v, None)
            }
            Value::Gauge(v) => encoder.encode_gauge(v),
            Value::Histogram {
                sum,
                count,
                buckets,
            } => encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                *sum, *count, buckets, None,
            ),
        }
    }

    fn metric_type(&self) -> MetricType {
        match self {
            Value::Counter(_) => MetricType::Counter,
            Value::Gauge(_) => MetricType::Gauge,
            Value::Histogram { .. } => MetricType::Histogram,
        }
    }
}

fn gauge(v: impl TryInto<i64>) -> Value {
    Value::Gauge(v.try_into().unwrap_or(i64::MAX))
}

fn latency(h: &LatencyHistogram) -> Value {
    let buckets = (0..HISTOGRAM_BUCKETS)
        .map(|i| {
            let ub =
                LatencyHistogram::upper_bound_us(i).map_or(f64::INFINITY, |us| us as f64 / 1e6);
            (ub, h.buckets[i])
        })
        .collect();
    Value::Histogram {
        sum: h.sum_us as f64 / 1e6,
        count: h.count,
        buckets,
    }
}

/// One metric without labels.
fn one(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: Value) -> std::fmt::Result {
    let m = enc.encode_descriptor(name, help, None, v.metric_type())?;
    v.encode(m)
}

/// One metric with one label, a value per label value.
fn by(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'static str, Value)>,
) -> std::fmt::Result {
    let values: Vec<(&str, Value)> = values.into_iter().collect();
    let Some(first) = values.first() else {
        return Ok(());
    };
    let mut d = enc.encode_descriptor(name, help, None, first.1.metric_type())?;
    for (lv, v) in &values {
        let labels = [(label, *lv)];
        v.encode(d.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counters<const N: usize>(
    names: &'static [&'static str; N],
    values: &[u64; N],
) -> Vec<(&'static str, Value)> {
    names
        .iter()
        .zip(values.iter())
        .map(|(n, v)| (*n, Value::Counter(*v)))
        .collect()
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snap = &self.0;
        let s = &snap.stats;
        let i = &snap.info;
        let e = &mut enc;
        one(
            e,
            "switchboard_up",
            "1 while the server runs (0 is never exported: a failed scrape is the signal)",
            gauge(1),
        )?;
        one(
            e,
            "switchboard_ready",
            "1 when members are accepted and the restart grace is over",
            gauge(u8::from(i.ready)),
        )?;
        one(
            e,
            "switchboard_uptime_seconds",
            "Time since this server run started",
            gauge(i.uptime_ms / 1000),
        )?;
        let attached_conns = i.connections.saturating_sub(snap.handshakes);
        by(
            e,
            "switchboard_connections",
            "Open member-port connections by state",
            "state",
            [
                ("handshaking", gauge(snap.handshakes)),
                ("attached", gauge(attached_conns)),
            ],
        )?;
        by(
            e,
            "switchboard_members",
            "Members in the view by state",
            "state",
            [
                ("attached", gauge(i.members - i.members_detached)),
                ("detached", gauge(i.members_detached)),
            ],
        )?;
        one(
            e,
            "switchboard_instances",
            "Instances with at least one member",
            gauge(i.instances),
        )?;
        one(
            e,
            "switchboard_groups",
            "Groups with at least one member",
            gauge(i.groups),
        )?;
        one(
            e,
            "switchboard_connections_accepted",
            "Connections accepted on the member port",
            Value::Counter(s.connections_accepted),
        )?;
        if let Some(t) = &snap.tls_failures {
            by(
                e,
                "switchboard_tls_handshake_failures",
                "Failed TLS handshakes on the member port, by reason (exported with TLS on)",
                "reason",
                counters(&switchboard_runtime::tls::FAILURE_KINDS, t),
            )?;
        }
        by(
            e,
            "switchboard_access_refusals",
            "Member-port connections refused by the access rules (denied: a new connection, Reject{NotPermitted}; revoked: an open one closed by a reload, Error{NotPermitted})",
            "kind",
            [
                ("denied", Value::Counter(snap.access.denied)),
                ("revoked", Value::Counter(snap.access.revoked)),
            ],
        )?;
        by(
            e,
            "switchboard_permission_denials",
            "Refusals by a member's credential, by kind (register, supersede: Reject{NotPermitted}; send, join, publish: Nack{NotPermitted}; revoked: a member removed by a reload, Error{NotPermitted})",
            "kind",
            switchboard_core::server::DenialKind::ALL
                .iter()
                .map(|k| (k.label(), Value::Counter(s.permission_denials[k.index()])))
                .collect::<Vec<_>>(),
        )?;
        one(
            e,
            "switchboard_registrations",
            "Member registrations (new sessions)",
            Value::Counter(s.registrations),
        )?;
        one(
            e,
            "switchboard_reregistrations",
            "Registrations of a process whose earlier session was lost",
            Value::Counter(s.reregistrations),
        )?;
        one(
            e,
            "switchboard_resumes",
            "Sessions resumed on a new connection",
            Value::Counter(s.resumes),
        )?;
        one(
            e,
            "switchboard_gap_notices",
            "Resumes refused with a gap notice (session expired)",
            Value::Counter(s.gaps),
        )?;
        by(
            e,
            "switchboard_handshake_rejections",
            "Handshakes rejected by reason",
            "reason",
            counters(&REJECT_REASONS, &s.rejects_by_reason),
        )?;
        by(
            e,
            "switchboard_messages_received",
            "Send frames received from members by address kind",
            "kind",
            counters(&ADDRESS_KINDS, &s.messages_in_by_kind),
        )?;
        by(
            e,
            "switchboard_received_payload_bytes",
            "Payload bytes received in Send and Chunk frames by address kind",
            "kind",
            counters(&ADDRESS_KINDS, &s.bytes_in_by_kind),
        )?;
        by(
            e,
            "switchboard_deliveries",
            "Message deliveries enqueued to recipients by address kind",
            "kind",
            counters(&ADDRESS_KINDS, &s.deliveries_by_kind),
        )?;
        by(
            e,
            "switchboard_delivered_bytes",
            "Encoded bytes of message deliveries by address kind",
            "kind",
            counters(&ADDRESS_KINDS, &s.delivery_bytes_by_kind),
        )?;
        one(
            e,
            "switchboard_messages_accepted",
            "Messages accepted and sequenced",
            Value::Counter(s.messages_accepted),
        )?;
        by(
            e,
            "switchboard_nacks",
            "Messages refused (NACK) by reason",
            "reason",
            counters(&NACK_REASONS, &s.nacks_by_reason),
        )?;
        one(
            e,
            "switchboard_outcomes",
            "Outcomes sent for confirmed messages",
            Value::Counter(s.outcomes),
        )?;
        one(
            e,
            "switchboard_events",
            "Cluster events sequenced",
            Value::Counter(s.events),
        )?;
        one(
            e,
            "switchboard_stream_items_enqueued",
            "Stream items enqueued to members (deliveries, events, notices)",
            Value::Counter(s.items_enqueued),
        )?;
        one(
            e,
            "switchboard_stream_bytes_enqueued",
            "Encoded bytes of stream items enqueued",
            Value::Counter(s.items_enqueued_bytes),
        )?;
        one(
            e,
            "switchboard_stream_items_acked",
            "Stream items acknowledged by members",
            Value::Counter(s.items_acked),
        )?;
        by(
            e,
            "switchboard_chunked_messages",
            "Messages carried in chunks, by direction",
            "direction",
            [
                ("in", Value::Counter(s.chunked_in)),
                ("out", Value::Counter(s.chunked_out)),
            ],
        )?;
        by(e, "switchboard_member_failures", "Members declared failed by reason (slow_consumer: evictions; heartbeat_timeout: heartbeat failures)", "reason", counters(&FAIL_REASONS, &s.failures_by_reason))?;
        one(
            e,
            "switchboard_member_leaves",
            "Members that said goodbye",
            Value::Counter(s.leaves),
        )?;
        one(
            e,
            "switchboard_queue_items",
            "Stream items queued to members, unacknowledged (notices excluded)",
            gauge(i.queue_items),
        )?;
        one(
            e,
            "switchboard_queue_bytes",
            "Bytes of the members' unacknowledged streams",
            gauge(i.queue_bytes),
        )?;
        one(
            e,
            "switchboard_write_queue_bytes",
            "Bytes handed to the connections' writers, not yet written (part of the memory budget)",
            gauge(i.write_queue_bytes),
        )?;
        one(
            e,
            "switchboard_reassembly_bytes",
            "Bytes of chunked messages from members in reassembly",
            gauge(i.reassembly_bytes),
        )?;
        one(
            e,
            "switchboard_reassembly_dropped",
            "Chunked messages dropped before they were complete (deadline or reassembly space), NACKed Incomplete",
            Value::Counter(s.reassembly_dropped),
        )?;
        one(e, "switchboard_memory_bytes", "Bytes held for members and connections (queues, deferred frames, partial messages, read buffers)", gauge(i.memory_bytes))?;
        one(
            e,
            "switchboard_member_queue_depth",
            "Members by the depth of their stream queue, items (taken at scrape time)",
            queue_depth(snap),
        )?;
        one(
            e,
            "switchboard_sequencing_latency_seconds",
            "Time from receipt of a message or published event to its sequencing",
            latency(&s.sequencing_latency),
        )?;
        one(e, "switchboard_ack_latency_seconds", "Time from sequencing a message or published event to its last addressee's acknowledgement", latency(&s.ack_latency))?;
        Ok(())
    }
}

fn queue_depth(snap: &Snapshot) -> Value {
    let mut counts = [0u64; QUEUE_DEPTH_BUCKETS.len() + 1];
    let mut sum = 0u64;
    for m in &snap.members {
        let b = QUEUE_DEPTH_BUCKETS
            .iter()
            .position(|ub| m.queue_items <= *ub)
            .unwrap_or(QUEUE_DEPTH_BUCKETS.len());
        counts[b] += 1;
        sum += m.queue_items;
    }
    let buckets = QUEUE_DEPTH_BUCKETS
        .iter()
        .map(|ub| *ub as f64)
        .chain([f64::INFINITY])
        .zip(counts)
        .collect();
    Value::Histogram {
        sum: sum as f64,
        count: snap.members.len() as u64,
        buckets,
    }
}
