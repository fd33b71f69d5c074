//! The bench's results: medians over runs, ratios to the peers, the
//! printed table and the JSON object.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::workload::{latency_histogram, AddressKind, Figure, Params, Workload};
use super::{RunResult, System};

/// One row of a workload's table: a system, and for Switchboard the
/// address kind its senders used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Row {
    /// The system.
    pub system: System,
    /// Switchboard's address kind (`None`: the peers, and W5).
    pub address: Option<AddressKind>,
}

impl Row {
    /// A peer's row (or Switchboard's on the workload's default address).
    pub fn of(system: System) -> Row {
        Row {
            system,
            address: None,
        }
    }

    /// The name in the table and JSON: the system's, with `@kind` when
    /// the address is not the workload's default (so that
    /// `"switchboard"` is always the default address's row).
    pub fn label(self, w: Workload) -> String {
        match self.address {
            Some(a) if w.addresses().first() != Some(&a) => {
                format!("{}@{}", self.system.name(), a.name())
            }
            _ => self.system.name().to_owned(),
        }
    }
}

/// Every run's result, by workload and row.
#[derive(Debug)]
pub struct Report {
    params: Params,
    runs: usize,
    results: BTreeMap<Workload, BTreeMap<Row, Vec<Result<RunResult, String>>>>,
    skipped: Vec<(System, String)>,
}

/// The summary of one system on one workload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Successful runs.
    pub runs: usize,
    /// Failed runs, with the first error.
    pub failed: Option<(usize, String)>,
    /// Throughput: median, min, max deliveries/s.
    pub rate: Option<(f64, f64, f64)>,
    /// Latency over all runs: p50, p99, p99.9 µs; with min–max of p99
    /// (W6: send to delivery).
    pub latency: Option<(u64, u64, u64, u64, u64)>,
    /// W6, Switchboard: send to acknowledgement over all runs, p50, p99,
    /// p99.9 µs.
    pub ack_latency: Option<(u64, u64, u64)>,
    /// Scale: median time to tell every idle member, ms.
    pub broadcast_ms: Option<f64>,
    /// Scale: server memory per idle member, bytes (median).
    pub bytes_per_member: Option<f64>,
    /// Expected deliveries that never arrived, summed over runs.
    pub lost: u64,
    /// Expected deliveries, summed over runs.
    pub expected: u64,
    /// Acknowledged messages, summed (`None`: no acknowledgements).
    pub acked: Option<u64>,
    /// Messages sent, summed.
    pub sent: u64,
    /// Median server CPU seconds.
    pub server_cpu_s: Option<f64>,
    /// Median server CPU nanoseconds per delivery.
    pub server_ns_per_delivery: Option<f64>,
    /// Largest server peak memory, bytes.
    pub server_rss_peak: Option<u64>,
    /// Median load generator CPU seconds.
    pub loader_cpu_s: Option<f64>,
}

impl Report {
    pub(crate) fn new(params: Params, runs: usize) -> Report {
        Report {
            params,
            runs,
            results: BTreeMap::new(),
            skipped: Vec::new(),
        }
    }

    pub(crate) fn skip(&mut self, s: System, why: String) {
        self.skipped.push((s, why));
    }

    pub(crate) fn add(&mut self, w: Workload, row: Row, r: Result<RunResult, super::BenchError>) {
        self.results
            .entry(w)
            .or_default()
            .entry(row)
            .or_default()
            .push(r.map_err(|e| e.to_string()));
    }

    /// The summary of `row` on `w`, if it ran.
    pub fn summary(&self, w: Workload, row: Row) -> Option<Summary> {
        let runs = self.results.get(&w)?.get(&row)?;
        let ok: Vec<&RunResult> = runs.iter().filter_map(|r| r.as_ref().ok()).collect();
        let mut out = Summary {
            runs: ok.len(),
            ..Summary::default()
        };
        let errors: Vec<&String> = runs.iter().filter_map(|r| r.as_ref().err()).collect();
        if let Some(first) = errors.first() {
            out.failed = Some((errors.len(), (*first).clone()));
        }
        if ok.is_empty() {
            return Some(out);
        }
        let rates: Vec<f64> = ok.iter().filter_map(|r| r.figure.rate()).collect();
        if !rates.is_empty() {
            out.rate = Some(median_min_max(&rates));
        }
        let mut hist = latency_histogram();
        let mut acks = latency_histogram();
        let mut p99s = Vec::new();
        let mut broadcast = Vec::new();
        let mut per_member = Vec::new();
        for r in &ok {
            out.lost += r.figure.lost();
            match &r.figure {
                Figure::Throughput {
                    sent,
                    expected,
                    acked,
                    ..
                } => {
                    out.sent += sent;
                    out.expected += expected;
                    if let Some(a) = acked {
                        *out.acked.get_or_insert(0) += a;
                    }
                }
                Figure::Latency { hist: h, .. } => {
                    let _ = hist.add(h);
                    p99s.push(h.value_at_quantile(0.99));
                    out.expected += h.len();
                }
                Figure::Scale {
                    members,
                    rss_before,
                    rss_after,
                    broadcast: b,
                    ..
                } => {
                    out.expected += members;
                    broadcast.push(b.as_secs_f64() * 1e3);
                    if let (Some(b), Some(a)) = (rss_before, rss_after) {
                        per_member.push(a.saturating_sub(*b) as f64 / (*members).max(1) as f64);
                    }
                }
                Figure::Many {
                    sent,
                    acked,
                    delivery,
                    ack,
                    ..
                } => {
                    out.sent += sent;
                    out.expected += sent;
                    if let Some(a) = acked {
                        *out.acked.get_or_insert(0) += a;
                    }
                    let _ = hist.add(delivery);
                    p99s.push(delivery.value_at_quantile(0.99));
                    if let Some(a) = ack {
                        let _ = acks.add(a);
                    }
                }
            }
        }
        if !acks.is_empty() {
            out.ack_latency = Some((
                acks.value_at_quantile(0.5),
                acks.value_at_quantile(0.99),
                acks.value_at_quantile(0.999),
            ));
        }
        if !hist.is_empty() {
            let lo = p99s.iter().copied().min().unwrap_or(0);
            let hi = p99s.iter().copied().max().unwrap_or(0);
            out.latency = Some((
                hist.value_at_quantile(0.5),
                hist.value_at_quantile(0.99),
                hist.value_at_quantile(0.999),
                lo,
                hi,
            ));
        }
        if !broadcast.is_empty() {
            out.broadcast_ms = Some(median_min_max(&broadcast).0);
        }
        if !per_member.is_empty() {
            out.bytes_per_member = Some(median_min_max(&per_member).0);
        }
        let cpu: Vec<f64> = ok.iter().filter_map(|r| r.server_cpu_s).collect();
        if !cpu.is_empty() {
            out.server_cpu_s = Some(median_min_max(&cpu).0);
        }
        let ns: Vec<f64> = ok
            .iter()
            .filter_map(|r| {
                let d = r.figure.deliveries();
                r.server_cpu_s.filter(|_| d > 0).map(|c| c * 1e9 / d as f64)
            })
            .collect();
        if !ns.is_empty() {
            out.server_ns_per_delivery = Some(median_min_max(&ns).0);
        }
        out.server_rss_peak = ok.iter().filter_map(|r| r.server_rss_peak).max();
        let loader: Vec<f64> = ok.iter().map(|r| r.loader_cpu_s).collect();
        out.loader_cpu_s = Some(median_min_max(&loader).0);
        Some(out)
    }

    /// Switchboard's figure (`row`) divided by `peer`'s on `w`: throughput
    /// (higher is better), W3 and W6 p99 latency and W5 broadcast time
    /// (lower is better).
    pub fn ratio(&self, w: Workload, row: Row, peer: System) -> Option<f64> {
        let sb = self.summary(w, row)?;
        let other = self.summary(w, self.rows_of(w, peer).into_iter().next()?)?;
        match w {
            Workload::W3 | Workload::W6 => {
                let (a, b) = (sb.latency?.1 as f64, other.latency?.1 as f64);
                (b > 0.0).then(|| a / b)
            }
            Workload::W5 => {
                let (a, b) = (sb.broadcast_ms?, other.broadcast_ms?);
                (b > 0.0).then(|| a / b)
            }
            _ => {
                let (a, b) = (sb.rate?.0, other.rate?.0);
                (b > 0.0).then(|| a / b)
            }
        }
    }

    /// The rows of `w`, in order (Switchboard's first).
    pub fn rows(&self, w: Workload) -> Vec<Row> {
        self.results
            .get(&w)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The rows of `w` that belong to `system`.
    pub fn rows_of(&self, w: Workload, system: System) -> Vec<Row> {
        self.rows(w)
            .into_iter()
            .filter(|r| r.system == system)
            .collect()
    }

    /// The systems on `w`, in order.
    fn systems(&self, w: Workload) -> Vec<System> {
        let mut s: Vec<System> = self.rows(w).into_iter().map(|r| r.system).collect();
        s.dedup();
        s
    }

    /// The table for people.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "Switchboard acknowledges every message to its sender (W1/W2/W4 count the acks); \
             NATS core, Redis pub/sub and the bare relay acknowledge nothing.\n\
             Median of {} run(s), (min–max) over the runs; the 'vs' columns on Switchboard's row \
             are switchboard / that peer (throughput: higher is better; W3 and W6 p99 and W5 time: \
             lower is better). 'switchboard@KIND' rows address the receivers by that kind \
             (member-id, member = instance/process, group, broadcast). \
             CPU and memory are the server process's; 'loader' is the load generator's CPU.",
            self.runs
        );
        for (s, why) in &self.skipped {
            let _ = writeln!(t, "skipped {}: {why}", s.name());
        }
        for &w in self.results.keys() {
            let _ = writeln!(t, "\n{}", w.title(&self.params));
            let peers: Vec<System> = self
                .systems(w)
                .into_iter()
                .filter(|s| *s != System::Switchboard)
                .collect();
            let mut head = format!(
                "  {:<22} {:>30} {:>10} {:>9} {:>9} {:>9} {:>9}",
                "system", "figure", "lost", "srv cpu", "ns/msg", "srv peak", "loader"
            );
            for p in &peers {
                head += &format!(" {:>9}", format!("vs {}", p.name()));
            }
            let _ = writeln!(t, "{head}");
            for row in self.rows(w) {
                let Some(sum) = self.summary(w, row) else {
                    continue;
                };
                let s = row.system;
                let figure = match (&sum.rate, &sum.latency, sum.broadcast_ms) {
                    (Some((m, lo, hi)), _, _) => {
                        format!("{} ({}–{})", si(*m), si(*lo), si(*hi))
                    }
                    (_, Some((p50, p99, p999, _, _)), _) => {
                        format!("p50 {p50} p99 {p99} p999 {p999} µs")
                    }
                    (_, _, Some(ms)) => match sum.bytes_per_member {
                        Some(b) => format!("{ms:.1} ms to all, {:.1} KiB/member", b / 1024.0),
                        None => format!("{ms:.1} ms to all"),
                    },
                    _ => "-".to_owned(),
                };
                let mut ratios = String::new();
                for p in &peers {
                    let r = if s == System::Switchboard {
                        self.ratio(w, row, *p)
                            .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}×"))
                    } else {
                        String::new()
                    };
                    ratios += &format!(" {r:>9}");
                }
                let _ = writeln!(
                    t,
                    "  {:<22} {:>30} {:>10} {:>9} {:>9} {:>9} {:>9}{}",
                    row.label(w),
                    figure,
                    sum.lost,
                    opt(sum.server_cpu_s, |c| format!("{c:.2}s")),
                    opt(
                        sum.server_ns_per_delivery.filter(|_| sum.rate.is_some()),
                        |n| format!("{n:.0}")
                    ),
                    opt(sum.server_rss_peak, |b| format!(
                        "{:.0}M",
                        b as f64 / 1048576.0
                    )),
                    opt(sum.loader_cpu_s, |c| format!("{c:.2}s")),
                    ratios
                );
                if let (true, Some((p50, p99, p999, _, _))) = (w == Workload::W6, sum.latency) {
                    let _ = writeln!(
                        t,
                        "  {:<22} delivery latency p50 {p50} p99 {p99} p999 {p999} µs",
                        ""
                    );
                }
                if let Some((p50, p99, p999)) = sum.ack_latency {
                    let _ = writeln!(
                        t,
                        "  {:<22} ack latency p50 {p50} p99 {p99} p999 {p999} µs",
                        ""
                    );
                }
                if let Some((n, e)) = &sum.failed {
                    let _ = writeln!(t, "  {:<22} {n} run(s) failed: {e}", "");
                }
                if let (Some(a), true) = (sum.acked, sum.sent > 0) {
                    let _ = writeln!(t, "  {:<22} acked {a} of {} sent", "", sum.sent);
                }
            }
        }
        t
    }

    /// The JSON object (one line).
    pub fn json(&self) -> Value {
        let mut workloads = Map::new();
        let mut ratios = Map::new();
        for &w in self.results.keys() {
            let mut per = Map::new();
            let mut rs = Map::new();
            for row in self.rows(w) {
                let Some(sum) = self.summary(w, row) else {
                    continue;
                };
                let s = row.system;
                let mut o = Map::new();
                if let Some((m, lo, hi)) = sum.rate {
                    // W2 counts deliveries; `msgs_per_s` is kept for every
                    // throughput workload so that readers need one key.
                    if w == Workload::W2 {
                        o.insert("deliveries_per_s".into(), json!(m.round()));
                    }
                    o.insert("msgs_per_s".into(), json!(m.round()));
                    o.insert("min".into(), json!(lo.round()));
                    o.insert("max".into(), json!(hi.round()));
                }
                if let Some((p50, p99, p999, lo, hi)) = sum.latency {
                    o.insert("p50_us".into(), json!(p50));
                    o.insert("p99_us".into(), json!(p99));
                    o.insert("p999_us".into(), json!(p999));
                    o.insert("p99_min_us".into(), json!(lo));
                    o.insert("p99_max_us".into(), json!(hi));
                }
                if let Some((p50, p99, p999)) = sum.ack_latency {
                    o.insert("ack_p50_us".into(), json!(p50));
                    o.insert("ack_p99_us".into(), json!(p99));
                    o.insert("ack_p999_us".into(), json!(p999));
                }
                if let Some(a) = row.address {
                    o.insert("address".into(), json!(a.name()));
                }
                if let Some(ms) = sum.broadcast_ms {
                    o.insert("broadcast_ms".into(), json!(ms));
                }
                if let Some(b) = sum.bytes_per_member {
                    o.insert("server_bytes_per_member".into(), json!(b.round()));
                }
                o.insert("runs".into(), json!(sum.runs));
                o.insert("lost".into(), json!(sum.lost));
                o.insert("expected".into(), json!(sum.expected));
                o.insert("acked".into(), json!(sum.acked));
                o.insert("server_cpu_s".into(), json!(sum.server_cpu_s));
                o.insert(
                    "server_ns_per_delivery".into(),
                    json!(sum.server_ns_per_delivery.map(f64::round)),
                );
                o.insert("server_rss_peak_bytes".into(), json!(sum.server_rss_peak));
                o.insert("loader_cpu_s".into(), json!(sum.loader_cpu_s));
                if let Some((_, e)) = sum.failed {
                    o.insert("error".into(), json!(e));
                }
                if s == System::Switchboard {
                    let mut vs = Map::new();
                    for peer in self.systems(w) {
                        if peer == System::Switchboard {
                            continue;
                        }
                        if let Some(r) = self.ratio(w, row, peer) {
                            vs.insert(peer.name().into(), json!((r * 1000.0).round() / 1000.0));
                        }
                    }
                    if row.label(w) == s.name() {
                        rs = vs.clone();
                    }
                    if !vs.is_empty() {
                        o.insert("vs".into(), Value::Object(vs));
                    }
                }
                per.insert(row.label(w), Value::Object(o));
            }
            workloads.insert(w.name().into(), Value::Object(per));
            ratios.insert(w.name().into(), Value::Object(rs));
        }
        let skipped: Map<String, Value> = self
            .skipped
            .iter()
            .map(|(s, why)| (s.name().to_owned(), json!(why)))
            .collect();
        json!({
            "workloads": workloads,
            "ratios_switchboard_over_peer": ratios,
            "members": {"w5": self.params.idle_members, "w6": self.params.many_members},
            "w6_rate_per_member": self.params.many_rate,
            "w6_send_s": self.params.many_for.as_secs_f64(),
            "skipped": skipped,
            "runs": self.runs,
            "payload_bytes": self.params.payload,
            "acknowledged": {"switchboard": true, "nats": false, "redis": false, "relay": false},
        })
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "-".to_owned(), f)
}

/// 1234567.0 → "1.23M".
fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn median_min_max(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let mid = if s.is_empty() { 0.0 } else { s[s.len() / 2] };
    (
        mid,
        s.first().copied().unwrap_or(0.0),
        s.last().copied().unwrap_or(0.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run_with(rate_received: u64, cpu: f64) -> RunResult {
        RunResult {
            figure: Figure::Throughput {
                sent: 1000,
                expected: 1000,
                received: rate_received,
                elapsed: Duration::from_secs(1),
                acked: Some(1000),
            },
            server_cpu_s: Some(cpu),
            server_rss_peak: Some(10 << 20),
            loader_cpu_s: 0.5,
            wall: Duration::from_secs(2),
        }
    }

    #[test]
    fn medians_ratios_and_losses() {
        let mut r = Report::new(Params::quick(128), 3);
        for (n, cpu) in [(900, 0.1), (1000, 0.2), (800, 0.3)] {
            r.add(
                Workload::W1,
                Row::of(System::Switchboard),
                Ok(run_with(n, cpu)),
            );
        }
        r.add(Workload::W1, Row::of(System::Nats), Ok(run_with(450, 0.1)));
        let s = r
            .summary(Workload::W1, Row::of(System::Switchboard))
            .expect("summary");
        assert_eq!(s.rate, Some((900.0, 800.0, 1000.0)));
        assert_eq!(s.lost, 100 + 200);
        assert_eq!(s.acked, Some(3000));
        assert_eq!(s.server_cpu_s, Some(0.2));
        assert_eq!(
            r.ratio(Workload::W1, Row::of(System::Switchboard), System::Nats),
            Some(2.0)
        );
        let json = r.json();
        assert_eq!(json["workloads"]["w1"]["switchboard"]["msgs_per_s"], 900.0);
        assert_eq!(json["ratios_switchboard_over_peer"]["w1"]["nats"], 2.0);
        assert!(r.table().contains("2.00×"));
    }

    #[test]
    fn failed_runs_are_reported_not_hidden() {
        let mut r = Report::new(Params::quick(128), 1);
        r.add(
            Workload::W3,
            Row::of(System::Redis),
            Err(super::super::BenchError::client("redis", "refused")),
        );
        let s = r
            .summary(Workload::W3, Row::of(System::Redis))
            .expect("summary");
        assert_eq!(s.runs, 0);
        assert!(s.failed.is_some());
        assert!(r.table().contains("failed"));
    }

    #[test]
    fn each_address_kind_is_its_own_row_with_its_own_ratio() {
        let mut r = Report::new(Params::quick(128), 1);
        let id = Row {
            system: System::Switchboard,
            address: Some(AddressKind::MemberId),
        };
        let group = Row {
            system: System::Switchboard,
            address: Some(AddressKind::Group),
        };
        r.add(Workload::W4, id, Ok(run_with(1000, 0.1)));
        r.add(Workload::W4, group, Ok(run_with(500, 0.1)));
        r.add(Workload::W4, Row::of(System::Nats), Ok(run_with(1000, 0.1)));
        assert_eq!(r.ratio(Workload::W4, id, System::Nats), Some(1.0));
        assert_eq!(r.ratio(Workload::W4, group, System::Nats), Some(0.5));
        let json = r.json();
        assert_eq!(
            json["workloads"]["w4"]["switchboard"]["address"],
            "member-id"
        );
        assert_eq!(
            json["workloads"]["w4"]["switchboard@group"]["vs"]["nats"],
            0.5
        );
        assert_eq!(json["ratios_switchboard_over_peer"]["w4"]["nats"], 1.0);
        assert!(r.table().contains("switchboard@group"));
    }

    fn many(received: u64, delivery_us: u64, ack: bool) -> RunResult {
        let mut delivery = latency_histogram();
        delivery.saturating_record(delivery_us);
        let ack = ack.then(|| {
            let mut h = latency_histogram();
            h.saturating_record(delivery_us / 2);
            h
        });
        RunResult {
            figure: Figure::Many {
                members: 10,
                sent: 1000,
                acked: ack.as_ref().map(|_| 1000),
                received,
                elapsed: Duration::from_secs(1),
                delivery,
                ack,
            },
            server_cpu_s: Some(0.1),
            server_rss_peak: Some(1 << 20),
            loader_cpu_s: 0.5,
            wall: Duration::from_secs(2),
        }
    }

    #[test]
    fn w6_reports_rate_losses_both_latencies_and_a_p99_ratio() {
        let mut r = Report::new(Params::quick(128), 1);
        r.add(
            Workload::W6,
            Row::of(System::Switchboard),
            Ok(many(990, 400, true)),
        );
        r.add(
            Workload::W6,
            Row::of(System::Nats),
            Ok(many(1000, 200, false)),
        );
        let s = r
            .summary(Workload::W6, Row::of(System::Switchboard))
            .expect("summary");
        assert_eq!(s.lost, 10);
        assert_eq!(s.rate.map(|r| r.0), Some(990.0));
        assert!(s
            .ack_latency
            .is_some_and(|(p50, _, _)| (199..=201).contains(&p50)));
        let ratio = r
            .ratio(Workload::W6, Row::of(System::Switchboard), System::Nats)
            .expect("ratio");
        assert!((ratio - 2.0).abs() < 0.01, "{ratio}");
        let json = r.json();
        assert!(json["workloads"]["w6"]["switchboard"]["ack_p99_us"].is_u64());
        assert!(json["workloads"]["w6"]["nats"]["ack_p99_us"].is_null());
        assert!(r.table().contains("ack latency"));
    }
}
