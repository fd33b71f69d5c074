//! The external port: HTTP, read-only. No route accepts a body, so a large
//! request cannot make the server buffer it (CVE-2017-5997 class); hyper
//! bounds the header size. Members can never log on here.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use super::core_task::CoreMsg;

/// A query the core task does not answer within this time gets a 503.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) async fn serve(
    listener: TcpListener,
    core: mpsc::Sender<CoreMsg>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/members", get(members))
        .merge(super::api::routes())
        .with_state(core);
    let stop = async move {
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!(error = %e, "external HTTP listener failed");
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn members(State(core): State<mpsc::Sender<CoreMsg>>) -> Response {
    let (tx, rx) = oneshot::channel();
    // `try_send`: a flood of HTTP requests must not queue up in front of
    // the members' traffic.
    if core.try_send(CoreMsg::Query(tx)).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "server busy\n").into_response();
    }
    match tokio::time::timeout(QUERY_TIMEOUT, rx).await {
        Ok(Ok(view)) => Json(view).into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "server busy\n").into_response(),
    }
}
