//! `switchboard top`: a live terminal view of the cluster, refreshed from
//! `/v1/server` and `/v1/members`: totals and, per member, its message
//! rates in and out, queue and load, busiest first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use switchboard_server::api_view::{MemberDetail, ServerInfo};

use super::members::{http_get, parse_members};
use super::{CliError, Settings};

/// Members shown at most (the busiest).
const ROWS_MAX: usize = 40;

/// One member's rates over the last interval, per second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Rates {
    pub msgs_in: f64,
    pub msgs_out: f64,
    pub bytes_in: f64,
}

/// Rates of `now` against `before` over `secs` (0 for a member not seen
/// before, or whose counters restarted).
pub(crate) fn rates(before: Option<&MemberDetail>, now: &MemberDetail, secs: f64) -> Rates {
    let Some(b) = before.filter(|b| b.incarnation == now.incarnation) else {
        return Rates::default();
    };
    let per_s = |new: u64, old: u64| new.saturating_sub(old) as f64 / secs.max(1e-3);
    Rates {
        msgs_in: per_s(now.messages_in, b.messages_in),
        msgs_out: per_s(now.messages_out, b.messages_out),
        bytes_in: per_s(now.bytes_in, b.bytes_in),
    }
}

fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

pub(crate) async fn run(s: &Settings, interval_ms: u64) -> Result<(), CliError> {
    let interval = Duration::from_millis(interval_ms);
    let mut before: HashMap<String, MemberDetail> = HashMap::new();
    let mut last = Instant::now();
    let stop = super::stop_signal();
    tokio::pin!(stop);
    loop {
        let info: ServerInfo =
            serde_json::from_str(&http_get(s, "/v1/server").await?).map_err(|e| {
                CliError::Http {
                    addr: s.external.clone(),
                    detail: format!("bad JSON: {e}"),
                }
            })?;
        let list = parse_members(&s.external, &http_get(s, "/v1/members").await?)?;
        let secs = last.elapsed().as_secs_f64();
        last = Instant::now();
        let mut rows: Vec<(Rates, &MemberDetail)> = list
            .members
            .iter()
            .map(|m| (rates(before.get(&m.name), m, secs), m))
            .collect();
        rows.sort_by(|a, b| {
            (b.0.msgs_in + b.0.msgs_out)
                .total_cmp(&(a.0.msgs_in + a.0.msgs_out))
                .then_with(|| a.1.name.cmp(&b.1.name))
        });
        let mut out = String::from("\x1b[H\x1b[2J");
        out.push_str(&format!(
            "switchboard top — cluster {}  server {}  up {}s  {}\n",
            info.cluster,
            info.server_incarnation.as_deref().unwrap_or("(id hidden)"),
            info.uptime_ms / 1000,
            if info.ready { "ready" } else { "NOT READY" }
        ));
        out.push_str(&format!(
            "members {} ({} detached)  instances {}  groups {}  queued {}  memory {} KiB  NACKs {}  evictions {}\n\n",
            info.members,
            info.members_detached,
            info.instances,
            info.groups,
            info.queue_items,
            info.memory_bytes / 1024,
            info.totals.messages_nacked,
            info.totals.evictions
        ));
        out.push_str(&format!(
            "{:<28} {:<8} {:>6} {:>8} {:>9} {:>9} {:>10}\n",
            "MEMBER", "STATE", "LOAD", "QUEUE", "IN/s", "OUT/s", "IN B/s"
        ));
        for (r, m) in rows.iter().take(ROWS_MAX) {
            out.push_str(&format!(
                "{:<28} {:<8} {:>6} {:>8} {:>9} {:>9} {:>10}\n",
                m.name,
                m.state,
                m.load,
                m.queue_items,
                human(r.msgs_in),
                human(r.msgs_out),
                human(r.bytes_in)
            ));
        }
        if rows.len() > ROWS_MAX {
            out.push_str(&format!("… {} more\n", rows.len() - ROWS_MAX));
        }
        print!("{out}");
        before = list
            .members
            .into_iter()
            .map(|m| (m.name.clone(), m))
            .collect();
        tokio::select! {
            r = &mut stop => return r,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(incarnation: &str, messages_in: u64, messages_out: u64) -> MemberDetail {
        MemberDetail {
            member_id: Some(1),
            incarnation: Some(incarnation.into()),
            name: "i/p".into(),
            instance: "i".into(),
            process: "p".into(),
            state: "attached".into(),
            services: vec![],
            groups: vec![],
            load: 0,
            connected_since_unix_ms: 0,
            queue_items: 0,
            queue_bytes: 0,
            notices_queued: 0,
            messages_in,
            bytes_in: 0,
            messages_out,
            bytes_out: 0,
            acked: 0,
            nacks: 0,
            resumes: 0,
        }
    }

    #[test]
    fn rates_are_deltas_per_second_and_restart_with_the_process() {
        let r = rates(Some(&m("a", 100, 10)), &m("a", 300, 50), 2.0);
        assert_eq!((r.msgs_in, r.msgs_out), (100.0, 20.0));
        assert_eq!(rates(None, &m("a", 300, 50), 2.0), Rates::default());
        // A new incarnation starts its counters over.
        assert_eq!(
            rates(Some(&m("a", 100, 10)), &m("b", 5, 5), 2.0),
            Rates::default()
        );
    }
}
