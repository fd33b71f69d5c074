//! The versioned read-only API (`/v1/...`), `/readyz`, and the rule that
//! every other method than GET (and HEAD) is refused with 405: the external
//! port changes nothing in the cluster.
//!
//! Every handler asks the core task for one [`Snapshot`] (consistent: built
//! in one step of the core task) and derives its document from it.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::api_view::{
    GroupEntry, GroupList, InstanceEntry, InstanceList, MemberDetail, MemberList, ProcessEntry,
    Redact, Route,
};
use crate::core_task::CoreMsg;
use crate::snapshot::Snapshot;

/// A query the core task does not answer within this time gets a 503.
pub(crate) const API_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the routes share: the way to the core task and the HTTP token
/// that unlocks session material.
#[derive(Clone)]
pub(crate) struct ApiCtx {
    pub core: mpsc::Sender<CoreMsg>,
    pub token: Option<std::sync::Arc<str>>,
    /// The member port's failed TLS handshakes (with TLS on).
    pub tls_failures: Option<switchboard_runtime::tls::TlsFailures>,
}

impl axum::extract::FromRef<ApiCtx> for mpsc::Sender<CoreMsg> {
    fn from_ref(ctx: &ApiCtx) -> Self {
        ctx.core.clone()
    }
}

impl ApiCtx {
    /// True when the request may see session material.
    pub(crate) fn authorised(&self, headers: &HeaderMap) -> bool {
        crate::http::authorised(self.token.as_deref(), headers)
    }
}

/// `doc` as JSON, without session material unless `full`.
pub(crate) fn doc<T: Redact + serde::Serialize>(mut doc: T, full: bool) -> Response {
    if !full {
        doc.redact();
    }
    Json(doc).into_response()
}

/// The routes of this module, the metrics, the event stream and the page.
pub(crate) fn routes() -> Router<ApiCtx> {
    Router::new()
        .route("/", get(crate::page::page))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::metrics))
        .route("/v1/server", get(server))
        .route("/v1/members", get(members))
        .route("/v1/members/:instance/:process", get(member))
        .route("/v1/instances", get(instances))
        .route("/v1/groups", get(groups))
        .route("/v1/route", get(route))
        .route("/v1/events", get(crate::events_sse::events))
        .fallback(fallback)
}

/// Unknown paths: 405 for anything but GET/HEAD (nothing here accepts
/// a change), else 404.
async fn fallback(method: Method) -> Response {
    if method == Method::GET || method == Method::HEAD {
        (StatusCode::NOT_FOUND, "not found\n").into_response()
    } else {
        method_not_allowed()
    }
}

/// The answer to every non-GET request.
pub(crate) fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [("allow", "GET, HEAD")],
        "the external port is read-only\n",
    )
        .into_response()
}

/// `503 server busy`.
pub(crate) fn busy() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "server busy\n").into_response()
}

/// Asks the core task something. `try_send`: a flood of HTTP requests
/// must not queue up in front of the members' traffic.
pub(crate) async fn ask<T>(
    core: &mpsc::Sender<CoreMsg>,
    make: impl FnOnce(oneshot::Sender<T>) -> CoreMsg,
) -> Result<T, Response> {
    let (tx, rx) = oneshot::channel();
    if core.try_send(make(tx)).is_err() {
        return Err(busy());
    }
    match tokio::time::timeout(API_QUERY_TIMEOUT, rx).await {
        Ok(Ok(v)) => Ok(v),
        _ => Err(busy()),
    }
}

/// The current snapshot.
pub(crate) async fn snapshot(core: &mpsc::Sender<CoreMsg>) -> Result<Snapshot, Response> {
    ask(core, CoreMsg::Snapshot).await
}

async fn readyz(State(core): State<mpsc::Sender<CoreMsg>>) -> Response {
    match snapshot(&core).await {
        Ok(s) if s.info.ready => "ready\n".into_response(),
        Ok(s) if s.info.in_restart_grace => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: restart grace (members are coming back)\n",
        )
            .into_response(),
        Ok(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n",
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn server(State(ctx): State<ApiCtx>, headers: HeaderMap) -> Response {
    match snapshot(&ctx.core).await {
        Ok(s) => doc(s.info, ctx.authorised(&headers)),
        Err(r) => r,
    }
}

async fn members(State(ctx): State<ApiCtx>, headers: HeaderMap) -> Response {
    match snapshot(&ctx.core).await {
        Ok(s) => doc(
            MemberList {
                epoch: s.info.epoch,
                members: s.members,
            },
            ctx.authorised(&headers),
        ),
        Err(r) => r,
    }
}

async fn member(
    State(ctx): State<ApiCtx>,
    Path((instance, process)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match snapshot(&ctx.core).await {
        Ok(s) => match s
            .members
            .into_iter()
            .find(|m| m.instance == instance && m.process == process)
        {
            Some(m) => doc(m, ctx.authorised(&headers)),
            None => (
                StatusCode::NOT_FOUND,
                format!("no member {instance}/{process}\n"),
            )
                .into_response(),
        },
        Err(r) => r,
    }
}

async fn instances(State(ctx): State<ApiCtx>, headers: HeaderMap) -> Response {
    match snapshot(&ctx.core).await {
        Ok(s) => doc(instance_list(&s.members), ctx.authorised(&headers)),
        Err(r) => r,
    }
}

/// Members grouped by instance (members come sorted by name).
fn instance_list(members: &[MemberDetail]) -> InstanceList {
    let mut by: BTreeMap<&str, InstanceEntry> = BTreeMap::new();
    for m in members {
        let e = by.entry(&m.instance).or_insert_with(|| InstanceEntry {
            instance: m.instance.clone(),
            processes: Vec::new(),
            services: Vec::new(),
        });
        e.processes.push(ProcessEntry {
            process: m.process.clone(),
            member_id: m.member_id,
            state: m.state.clone(),
            load: m.load,
            services: m.services.clone(),
        });
        if m.state == "attached" {
            e.services.extend(m.services.iter().cloned());
        }
    }
    let instances = by
        .into_values()
        .map(|mut e| {
            e.services.sort();
            e.services.dedup();
            e
        })
        .collect();
    InstanceList { instances }
}

async fn groups(State(core): State<mpsc::Sender<CoreMsg>>) -> Response {
    match snapshot(&core).await {
        Ok(s) => {
            let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for m in &s.members {
                for g in &m.groups {
                    by.entry(g.clone()).or_default().push(m.name.clone());
                }
            }
            let groups = by
                .into_iter()
                .map(|(group, members)| GroupEntry { group, members })
                .collect();
            Json(GroupList { groups }).into_response()
        }
        Err(r) => r,
    }
}

/// `?group=G` or `?service=S`.
#[derive(Debug, Deserialize)]
struct RouteQuery {
    group: Option<String>,
    service: Option<String>,
}

async fn route(
    State(ctx): State<ApiCtx>,
    Query(q): Query<RouteQuery>,
    headers: HeaderMap,
) -> Response {
    let (by, name) = match (q.group, q.service) {
        (Some(g), None) => (RouteBy::Group, g),
        (None, Some(s)) => (RouteBy::Service, s),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "give exactly one of ?group=G or ?service=S\n",
            )
                .into_response()
        }
    };
    match snapshot(&ctx.core).await {
        Ok(s) => match pick_route(&s.members, by, &name) {
            Some(r) => doc(r, ctx.authorised(&headers)),
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no attached member offers {} {name:?}\n", by.name()),
            )
                .into_response(),
        },
        Err(r) => r,
    }
}

/// What a route is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteBy {
    /// Members of a group.
    Group,
    /// Members with a service up.
    Service,
}

impl RouteBy {
    fn name(self) -> &'static str {
        match self {
            RouteBy::Group => "group",
            RouteBy::Service => "service",
        }
    }
}

/// The route rule: among the **attached** members in the group (or with
/// the service up), the one with the **lowest published load**; on equal
/// load the one with the **fewest queued stream items**; then the first
/// by `instance/process` name (so the answer is deterministic).
pub(crate) fn pick_route(members: &[MemberDetail], by: RouteBy, name: &str) -> Option<Route> {
    let eligible = |m: &&MemberDetail| {
        m.state == "attached"
            && match by {
                RouteBy::Group => m.groups.iter().any(|g| g == name),
                RouteBy::Service => m.services.iter().any(|s| s == name),
            }
    };
    let candidates = members.iter().filter(eligible).count();
    let best = members.iter().filter(eligible).min_by(|a, b| {
        (a.load, a.queue_items, &a.instance, &a.process).cmp(&(
            b.load,
            b.queue_items,
            &b.instance,
            &b.process,
        ))
    })?;
    Some(Route {
        by: by.name().to_owned(),
        name: name.to_owned(),
        instance: best.instance.clone(),
        process: best.process.clone(),
        member_id: best.member_id,
        load: best.load,
        queue_items: best.queue_items,
        candidates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, state: &str, load: u32, queue: u64, groups: &[&str]) -> MemberDetail {
        let (instance, process) = name.split_once('/').unwrap_or((name, "p"));
        MemberDetail {
            member_id: Some(load.into()),
            incarnation: Some("1".into()),
            name: name.into(),
            instance: instance.into(),
            process: process.into(),
            state: state.into(),
            services: groups.iter().map(|g| format!("svc-{g}")).collect(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            load,
            connected_since_unix_ms: 0,
            queue_items: queue,
            queue_bytes: 0,
            notices_queued: 0,
            messages_in: 0,
            bytes_in: 0,
            messages_out: 0,
            bytes_out: 0,
            acked: 0,
            nacks: 0,
            resumes: 0,
        }
    }

    #[test]
    fn route_picks_the_lowest_load_then_the_shortest_queue_then_the_name() {
        let ms = [
            m("a/w1", "attached", 50, 0, &["web"]),
            m("b/w1", "attached", 10, 9, &["web"]),
            m("c/w1", "attached", 10, 3, &["web"]),
            m("d/w1", "detached", 0, 0, &["web"]),
            m("e/w1", "attached", 0, 0, &["batch"]),
        ];
        let r = pick_route(&ms, RouteBy::Group, "web").expect("a route");
        assert_eq!((r.instance.as_str(), r.candidates), ("c", 3));
        let r = pick_route(&ms, RouteBy::Service, "svc-batch").expect("a route");
        assert_eq!(r.instance, "e");
        assert!(pick_route(&ms, RouteBy::Group, "none").is_none());
        let tie = [
            m("y/w1", "attached", 5, 0, &["g"]),
            m("x/w1", "attached", 5, 0, &["g"]),
        ];
        assert_eq!(
            pick_route(&tie, RouteBy::Group, "g").map(|r| r.instance),
            Some("x".to_owned())
        );
    }

    #[test]
    fn instances_list_services_of_attached_processes_only() {
        let ms = [
            m("a/w1", "attached", 1, 0, &["g1"]),
            m("a/w2", "detached", 1, 0, &["g2"]),
        ];
        let l = instance_list(&ms);
        assert_eq!(l.instances.len(), 1);
        assert_eq!(l.instances[0].processes.len(), 2);
        assert_eq!(l.instances[0].services, vec!["svc-g1".to_owned()]);
    }
}
