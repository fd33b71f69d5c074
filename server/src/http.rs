//! The external port: HTTP, read-only. No route accepts a body, so a large
//! request cannot make the server buffer it (CVE-2017-5997 class); the
//! request head is bounded in size and in time, connections in number and
//! idle time (`HttpLimits`). Members can never log on here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use switchboard_runtime::tls::TlsAcceptor;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use super::config::HttpLimits;
use super::conn::AcceptBackoff;
use super::core_task::CoreMsg;

/// A query the core task does not answer within this time gets a 503.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    tls_failures: Option<switchboard_runtime::tls::TlsFailures>,
    core: mpsc::Sender<CoreMsg>,
    shutdown: watch::Receiver<bool>,
    limits: HttpLimits,
    token: Option<String>,
) {
    let api_core = core.clone();
    let api_token: Option<Arc<str>> = token.map(Arc::from);
    let state = ApiState {
        core,
        token: api_token.clone(),
    };
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/members", get(members))
        .with_state(state)
        .merge(super::api::routes().with_state(super::api::ApiCtx {
            core: api_core,
            token: api_token,
            tls_failures,
        }));
    accept_loop(listener, tls, app, shutdown, limits).await;
}

/// Largest request head (request line and headers) buffered, bytes.
const HEAD_BYTES_MAX: usize = 16 * 1024;

/// How often a connection checks whether it has been idle too long.
const IDLE_CHECK: Duration = Duration::from_millis(250);

/// Accepts HTTP connections up to `limits.connections_max` open at once
/// (beyond it a new one is closed at once) and serves each with hyper's
/// HTTP/1 server: a head larger than `HEAD_BYTES_MAX` or slower than
/// `header_timeout_ms` ends the connection, a request that takes longer
/// than `request_timeout_ms` gets a 503 and a connection with no request
/// for `idle_timeout_ms` is closed. No route reads a body.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
    limits: HttpLimits,
) {
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let mut backoff = AcceptBackoff::new("external");
    let mut refused: u64 = 0;
    let mut refused_logged: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let stream = match accepted {
            Ok((s, _)) => {
                backoff.reset();
                s
            }
            Err(e) => {
                backoff.failed(&e).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refused += 1;
            let now = tokio::time::Instant::now();
            if refused_logged.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
                tracing::warn!(
                    connections_max = limits.connections_max,
                    refused,
                    "HTTP connections refused: too many open"
                );
                refused_logged = Some(now);
                refused = 0;
            }
            drop(stream);
            continue;
        };
        let (app, shutdown) = (app.clone(), shutdown.clone());
        match &tls {
            None => drop(tokio::spawn(connection(
                stream, app, shutdown, limits, permit,
            ))),
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                // The handshake counts against the header timeout and
                // holds its connection slot meanwhile.
                let timeout = Duration::from_millis(limits.header_timeout_ms);
                tokio::spawn(async move {
                    match switchboard_runtime::tls::accept_stream(&acceptor, stream, timeout).await
                    {
                        Ok(s) => connection(s, app, shutdown, limits, permit).await,
                        Err(e) => tracing::debug!(
                            error = %switchboard_runtime::tls::describe_failure(&e),
                            "HTTP TLS handshake failed"
                        ),
                    }
                });
            }
        }
    }
}

/// Requests in progress on a connection and when the last one ended.
#[derive(Debug)]
struct Activity {
    in_flight: usize,
    last: tokio::time::Instant,
}

async fn connection<S>(
    stream: S,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
    limits: HttpLimits,
    _slot: OwnedSemaphorePermit,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Mutex::new(Activity {
        in_flight: 0,
        last: tokio::time::Instant::now(),
    }));
    let request_timeout = Duration::from_millis(limits.request_timeout_ms);
    let act = activity.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        let act = act.clone();
        async move {
            set_activity(&act, 1);
            let r = tokio::time::timeout(request_timeout, app.oneshot(req)).await;
            set_activity(&act, -1);
            Ok::<_, std::convert::Infallible>(match r {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => match e {},
                Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n").into_response(),
            })
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms))
        .max_buf_size(HEAD_BYTES_MAX)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "HTTP connection ended");
                }
                return;
            }
            _ = tokio::time::sleep(IDLE_CHECK), if !closing => {
                let idle_for = activity
                    .lock()
                    .map(|a| (a.in_flight == 0).then(|| a.last.elapsed()))
                    .unwrap_or(None);
                if idle_for.is_some_and(|d| d >= idle) || *shutdown.borrow_and_update() {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            _ = tokio::time::sleep(request_timeout), if closing => return,
        }
    }
}

fn set_activity(a: &Mutex<Activity>, delta: isize) {
    if let Ok(mut a) = a.lock() {
        a.in_flight = a.in_flight.saturating_add_signed(delta);
        a.last = tokio::time::Instant::now();
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// What the routes share: the way to the core and the read token.
#[derive(Clone)]
struct ApiState {
    core: mpsc::Sender<CoreMsg>,
    token: Option<Arc<str>>,
}

/// True when the request carries `Authorization: Bearer <token>` for the
/// configured token (compared in constant time). Session material (member
/// ids, incarnations, the server incarnation) is served only then.
pub(crate) fn authorised(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return false;
    };
    let Some(given) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    given.len() == token.len()
        && given
            .iter()
            .zip(token.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn members(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let full = authorised(state.token.as_deref(), &headers);
    let core = state.core;
    let (tx, rx) = oneshot::channel();
    // `try_send`: a flood of HTTP requests must not queue up in front of
    // the members' traffic.
    if core.try_send(CoreMsg::Query(tx)).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "server busy\n").into_response();
    }
    match tokio::time::timeout(QUERY_TIMEOUT, rx).await {
        Ok(Ok(view)) if full => Json(view).into_response(),
        Ok(Ok(view)) => Json(view.redacted()).into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "server busy\n").into_response(),
    }
}
