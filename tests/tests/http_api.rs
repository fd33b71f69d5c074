//! The external port over real HTTP against a server with members: every
//! endpoint, `/metrics` read by a Prometheus text parser, the event stream
//! (order, and a watcher that stops reading is dropped while the members
//! go on), and `/v1/route` following the load the members publish.

use std::collections::BTreeMap;
use std::time::Duration;

use switchboard_client::member;
use switchboard_server::api_view::{
    EventRecord, GroupList, InstanceList, MemberDetail, MemberList, Route, ServerInfo,
};
use switchboard_server::MembersView;
use switchboard_tests::http::{self, next_event};
use switchboard_tests::{bounded, member_config, ok, server_config, start_server, Node};

/// Messages member `i1/a` sends to `i2/c` in the scenarios.
const SENT: u64 = 25;

/// Custom events each member publishes while a watcher is stalled.
const PUBLISHED: u32 = 10_000;

/// A server with `i1/a` (groups web, service dialog), `i1/b` (web) and
/// `i2/c` (batch); `a` has sent [`SENT`] messages to `c`, all received.
async fn cluster() -> (switchboard_server::ServerHandle, Vec<Node>) {
    let srv = start_server(server_config()).await;
    let a = Node::connect(member_config(&srv, "i1", "a")).await;
    let b = Node::connect(member_config(&srv, "i1", "b")).await;
    let mut c = Node::connect(member_config(&srv, "i2", "c")).await;
    ok("join", a.member.join("web").await);
    ok("join", b.member.join("web").await);
    ok("join", c.member.join("batch").await);
    ok("service", a.member.service_state("dialog", true).await);
    for i in 0..SENT {
        ok(
            "send",
            a.member
                .send(member("i2", "c"), format!("m{i}").into_bytes())
                .await,
        );
    }
    c.wait_message(&format!("m{}", SENT - 1)).await;
    (srv, vec![a, b, c])
}

/// Polls `f` until it returns `Some` (at most [`WAIT`]).
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    bounded(what, async {
        loop {
            if let Some(v) = f().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn every_endpoint_answers_over_http() {
    let (srv, nodes) = cluster().await;
    let web = srv.external_addr();

    let r = http::get(web, "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));

    // Ready once the restart grace (1 s in the test config) is over.
    let r = http::get(web, "/readyz").await;
    let info: ServerInfo = http::get(web, "/v1/server").await.json();
    if info.in_restart_grace {
        assert_eq!(r.status, 503, "not ready during the grace: {}", r.body);
    }
    eventually("ready after the grace", || async {
        (http::get(web, "/readyz").await.status == 200).then_some(())
    })
    .await;

    let info: ServerInfo = http::get(web, "/v1/server").await.json();
    assert!(info.ready && !info.in_restart_grace);
    assert_eq!(info.cluster, switchboard_tests::CLUSTER);
    assert_eq!(
        (info.members, info.instances, info.groups),
        (3, 2, 2),
        "{info:?}"
    );
    assert_eq!(info.connections, 3);
    assert_eq!(info.totals.messages_in, SENT);
    assert_eq!(info.totals.messages_accepted, SENT);
    assert_eq!(info.totals.deliveries, SENT);
    assert_eq!(info.totals.registrations, 3);
    assert_eq!(info.limits.members_max, server_config().members_max);
    assert!(info.uptime_ms > 0 && info.version == env!("CARGO_PKG_VERSION"));

    let list: MemberList = http::get(web, "/v1/members").await.json();
    let names: Vec<&str> = list.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["i1/a", "i1/b", "i2/c"]);
    let a = &list.members[0];
    assert_eq!(a.groups, ["web"]);
    assert_eq!(a.services, ["dialog"]);
    assert_eq!((a.messages_in, a.state.as_str()), (SENT, "attached"));
    // `c` acknowledged the messages once it read them.
    let c: MemberDetail = eventually("c's acks", || async {
        let c: MemberDetail = http::get(web, "/v1/members/i2/c").await.json();
        (c.acked >= SENT).then_some(c)
    })
    .await;
    assert!(c.messages_out >= SENT, "{c:?}");
    assert_eq!(c.messages_in, 0);
    assert_eq!(http::get(web, "/v1/members/i9/nobody").await.status, 404);

    let inst: InstanceList = http::get(web, "/v1/instances").await.json();
    let by: BTreeMap<&str, _> = inst
        .instances
        .iter()
        .map(|i| (i.instance.as_str(), i))
        .collect();
    let i1 = by["i1"];
    let procs: Vec<&str> = i1.processes.iter().map(|p| p.process.as_str()).collect();
    assert_eq!(procs, ["a", "b"]);
    assert_eq!(i1.services, ["dialog"]);
    assert!(by["i2"].services.is_empty());

    let groups: GroupList = http::get(web, "/v1/groups").await.json();
    let g: BTreeMap<&str, Vec<String>> = groups
        .groups
        .iter()
        .map(|g| (g.group.as_str(), g.members.clone()))
        .collect();
    assert_eq!(g["web"], ["i1/a", "i1/b"]);
    assert_eq!(g["batch"], ["i2/c"]);

    // The old path stays an alias of the member list.
    let old: MembersView = http::get(web, "/members").await.json();
    assert_eq!(old.members.len(), 3);

    let page = http::get(web, "/").await;
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    assert!(page.body.contains("<title>Switchboard monitor</title>"));
    assert!(
        !page.body.contains("src=\"http") && !page.body.contains("href=\"http"),
        "the page loads nothing from elsewhere"
    );

    assert_eq!(http::get(web, "/no/such/path").await.status, 404);
    // Nothing on this port changes the cluster.
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in [
            "/",
            "/healthz",
            "/readyz",
            "/members",
            "/metrics",
            "/v1/server",
            "/v1/members",
            "/v1/members/i1/a",
            "/v1/route?group=web",
            "/v1/events",
            "/no/such/path",
        ] {
            let r = http::request(web, method, path).await;
            assert_eq!(r.status, 405, "{method} {path}");
        }
    }
    drop(nodes);
    srv.shutdown().await;
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text() {
    let (srv, nodes) = cluster().await;
    let web = srv.external_addr();
    // One rejected handshake: a wrong cluster name (checked before the
    // proofs; a wrong secret is caught by the client first).
    let mut bad = switchboard_client::MemberConfig::new(
        srv.internal_addr().to_string(),
        "another-cluster",
        switchboard_tests::secret(),
        "i3",
        "intruder",
    );
    bad.connect_timeout = Duration::from_millis(300);
    assert!(switchboard_client::Member::connect(bad).await.is_err());

    let r = http::get(web, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    let lines = r.body.lines().map(|l| Ok(l.to_owned()));
    let scrape = ok("parse the metrics", prometheus_parse::Scrape::parse(lines));
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in\n{}", r.body));
        match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{name}: unexpected value {other:?}"),
        }
    };
    let sent = SENT as f64;
    assert_eq!(value("switchboard_members", &[("state", "attached")]), 3.0);
    assert_eq!(value("switchboard_members", &[("state", "detached")]), 0.0);
    assert_eq!(value("switchboard_instances", &[]), 2.0);
    assert_eq!(value("switchboard_groups", &[]), 2.0);
    assert_eq!(
        value("switchboard_messages_received_total", &[("kind", "member")]),
        sent
    );
    assert_eq!(
        value(
            "switchboard_messages_received_total",
            &[("kind", "broadcast")]
        ),
        0.0
    );
    assert_eq!(
        value(
            "switchboard_received_payload_bytes_total",
            &[("kind", "member")]
        ),
        (0..SENT).map(|i| format!("m{i}").len() as f64).sum::<f64>()
    );
    assert_eq!(
        value("switchboard_deliveries_total", &[("kind", "member")]),
        sent
    );
    assert_eq!(value("switchboard_messages_accepted_total", &[]), sent);
    assert_eq!(value("switchboard_registrations_total", &[]), 3.0);
    assert_eq!(
        value(
            "switchboard_handshake_rejections_total",
            &[("reason", "wrong_cluster")]
        ),
        1.0,
        "{}",
        r.body
    );
    assert_eq!(
        value(
            "switchboard_nacks_total",
            &[("reason", "unknown_destination")]
        ),
        0.0
    );
    assert!(value("switchboard_events_total", &[]) >= 6.0);
    assert!(value("switchboard_uptime_seconds", &[]) >= 0.0);
    // Histograms: every message sequenced has its sequencing latency; the
    // acks of the messages `c` read end their ack latency.
    let histogram = |name: &str| -> prometheus_parse::HistogramCount {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .unwrap_or_else(|| panic!("no histogram {name}"));
        match &s.value {
            prometheus_parse::Value::Histogram(h) => h
                .iter()
                .rfind(|b| b.less_than.is_infinite())
                .cloned()
                .unwrap_or_else(|| panic!("{name} has no +Inf bucket")),
            other => panic!("{name}: not a histogram: {other:?}"),
        }
    };
    assert!(histogram("switchboard_sequencing_latency_seconds").count >= sent);
    let acked = eventually("acks counted", || async {
        let r = http::get(web, "/metrics").await;
        let lines = r.body.lines().map(|l| Ok(l.to_owned()));
        let scrape = ok("parse", prometheus_parse::Scrape::parse(lines));
        scrape
            .samples
            .iter()
            .find(|s| s.metric == "switchboard_ack_latency_seconds")
            .and_then(|s| match &s.value {
                prometheus_parse::Value::Histogram(h) => h.last().map(|b| b.count),
                _ => None,
            })
            .filter(|c| *c >= sent)
    })
    .await;
    assert!(acked >= sent);
    assert_eq!(histogram("switchboard_member_queue_depth").count, 3.0);
    drop(nodes);
    srv.shutdown().await;
}

/// Route answers after every member's load is applied.
async fn route(web: std::net::SocketAddr, q: &str) -> Route {
    let r = http::get(web, &format!("/v1/route?{q}")).await;
    assert_eq!(r.status, 200, "{q}: {}", r.body);
    r.json()
}

#[tokio::test]
async fn route_follows_published_load() {
    let srv = start_server(server_config()).await;
    let web = srv.external_addr();
    let mut nodes = Vec::new();
    for (i, load) in [("i1", 30), ("i2", 10), ("i3", 20)] {
        let n = Node::connect(member_config(&srv, i, "dia")).await;
        ok("join", n.member.join("web").await);
        ok("service", n.member.service_state("http", true).await);
        ok("load", n.member.set_load(load).await);
        nodes.push(n);
    }
    let r = eventually("i2 first", || async {
        let r = route(web, "group=web").await;
        (r.instance == "i2").then_some(r)
    })
    .await;
    assert_eq!((r.load, r.candidates, r.process.as_str()), (10, 3, "dia"));
    assert_eq!(route(web, "service=http").await.instance, "i2");
    // i2 gets busy: the balancer moves to i3.
    ok("load", nodes[1].member.set_load(90).await);
    eventually("i3 after i2 got busy", || async {
        (route(web, "service=http").await.instance == "i3").then_some(())
    })
    .await;
    // i3 goes away: i1 is left as the least loaded.
    nodes.remove(2).member.goodbye().await;
    eventually("i1 after i3 left", || async {
        let r = route(web, "group=web").await;
        (r.instance == "i1" && r.candidates == 2).then_some(())
    })
    .await;
    // A service that is down is not offered.
    ok(
        "service down",
        nodes[0].member.service_state("http", false).await,
    );
    eventually("i2 for http once i1 stopped it", || async {
        (route(web, "service=http").await.instance == "i2").then_some(())
    })
    .await;
    assert_eq!(http::get(web, "/v1/route?group=nothing").await.status, 503);
    assert_eq!(http::get(web, "/v1/route").await.status, 400);
    assert_eq!(
        http::get(web, "/v1/route?group=web&service=http")
            .await
            .status,
        400
    );
    srv.shutdown().await;
}

fn record(ev: &http::SseEvent) -> EventRecord {
    match serde_json::from_str(&ev.data) {
        Ok(r) => r,
        Err(e) => panic!("bad event data ({e}): {}", ev.data),
    }
}

#[tokio::test]
async fn event_stream_is_ordered_and_a_stalled_watcher_is_dropped() {
    let (srv, nodes) = cluster().await;
    let web = srv.external_addr();

    // From the start: the joins, in stream order, ids = positions.
    let (status, headers, mut watcher) = http::open(web, "GET", "/v1/events?from=0").await;
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(n, v)| n == "content-type" && v.starts_with("text/event-stream")));
    let mut seen = Vec::new();
    bounded("the first events", async {
        while seen.len() < 7 {
            let ev = next_event(&mut watcher).await.expect("stream open");
            assert_eq!(ev.event, "cluster");
            let r = record(&ev);
            assert_eq!(ev.id, Some(r.gseq));
            seen.push(r);
        }
    })
    .await;
    assert!(seen.windows(2).all(|w| w[0].gseq < w[1].gseq));
    let kinds: Vec<&str> = seen.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds[0], "member_joined");
    assert_eq!(seen[0].member.as_deref(), Some("i1/a"));
    assert!(kinds.contains(&"instance_up") && kinds.contains(&"group_joined"));

    // Live: a published event reaches the reading watcher next.
    ok("load", nodes[0].member.set_load(42).await);
    let live = bounded("a live event", async {
        loop {
            let r = record(&next_event(&mut watcher).await.expect("open"));
            if r.kind == "load" {
                return r;
            }
        }
    })
    .await;
    assert_eq!(
        (live.member.as_deref(), live.load),
        (Some("i1/a"), Some(42))
    );

    // A watcher that stops reading, while members keep publishing.
    let (status, _, mut stalled) = http::open_with(web, "GET", "/v1/events", Some(4096)).await;
    assert_eq!(status, 200);
    let publishers: Vec<_> = nodes
        .iter()
        .map(|n| {
            let m = n.member.clone();
            tokio::spawn(async move {
                for i in 0..PUBLISHED {
                    if let Err(e) = m.publish_custom("tick", vec![0u8; 8]).await {
                        panic!("publish {i}: {e}");
                    }
                }
            })
        })
        .collect();
    // The members are never held up by the stalled watcher.
    bounded("publishers", async {
        for p in publishers {
            ok("publisher", p.await);
        }
    })
    .await;
    // Reading again: events in order, then `lagged`, then the end.
    let mut last = 0;
    let mut events = 0u64;
    let lagged = bounded("the stalled watcher is dropped", async {
        loop {
            let ev = next_event(&mut stalled).await?;
            if ev.event == "lagged" {
                // The stream must end right after.
                assert!(next_event(&mut stalled).await.is_none());
                return Some(ev);
            }
            let r = record(&ev);
            assert!(r.gseq > last, "in order");
            last = r.gseq;
            events += 1;
        }
    })
    .await;
    let lagged = lagged.expect("a stalled watcher is told it fell behind");
    assert!(lagged.data.contains("missed"), "{lagged:?}");
    assert!(
        events < 3 * u64::from(PUBLISHED),
        "it did not get everything: {events}"
    );
    // The server still answers, and a position no longer retained is
    // said so.
    assert_eq!(http::get(web, "/healthz").await.status, 200);
    let (_, _, mut late) = http::open(web, "GET", "/v1/events?from=1").await;
    let first = bounded("first", next_event(&mut late)).await.expect("open");
    assert_eq!(first.event, "truncated", "{first:?}");
    assert!(first.data.contains("\"requested\":1"), "{first:?}");
    srv.shutdown().await;
}
