//! `GET /v1/events`: the ordered cluster event stream as Server-Sent
//! Events, from a given position.
//!
//! * `?from=N` starts at stream position `N` (events with `gseq >= N`);
//!   `from=0` starts at the oldest event retained ([`EVENT_LOG_MAX`]); no
//!   `from` means only new events. A `Last-Event-ID` header (sent by a
//!   reconnecting `EventSource`) starts right after that id.
//! * Each event is `id: <gseq>`, `event: cluster`, `data: <EventRecord>`.
//! * If the position asked for is older than what is retained, the stream
//!   opens with `event: truncated` (`{"requested":N,"oldest":M}`).
//! * `?max_ms=T` ends the stream after `T` ms (at least
//!   [`STREAM_MS_MIN`]); an `EventSource` then reconnects after
//!   [`RECONNECT_MS`] and continues from its `Last-Event-ID`. For clients
//!   that must see requests end: proxies that time out long responses,
//!   or a headless browser waiting for the network to go idle.
//! * A watcher that falls [`WATCHER_LAG_MAX`] events behind gets
//!   `event: lagged` (`{"missed":K}`) and the stream ends: it never slows
//!   the server, which hands each event over without waiting.
//!
//! [`EVENT_LOG_MAX`]: crate::event_log::EVENT_LOG_MAX
//! [`WATCHER_LAG_MAX`]: crate::event_log::WATCHER_LAG_MAX

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::api_view::{EventRecord, Redact};
use crate::core_task::CoreMsg;

/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Shortest `max_ms` honoured, milliseconds.
pub const STREAM_MS_MIN: u64 = 100;

/// The reconnection delay a stream with `max_ms` suggests, milliseconds.
pub const RECONNECT_MS: u64 = 250;

/// `?from=N&max_ms=T`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    from: Option<u64>,
    max_ms: Option<u64>,
}

pub(crate) async fn events(
    State(ctx): State<crate::api::ApiCtx>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    let full = ctx.authorised(&headers);
    let core = ctx.core;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let from = match (last_id, q.from) {
        (Some(id), _) => id.saturating_add(1),
        (None, Some(f)) => f,
        (None, None) => u64::MAX,
    };
    let sub = match crate::api::ask(&core, |reply| CoreMsg::Watch { from, reply }).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut head = VecDeque::new();
    let deadline = q.max_ms.map(|ms| {
        head.push_back(Event::default().retry(Duration::from_millis(RECONNECT_MS)));
        tokio::time::Instant::now() + Duration::from_millis(ms.max(STREAM_MS_MIN))
    });
    if from != 0 && from != u64::MAX && sub.oldest > from {
        head.push_back(Event::default().event("truncated").data(format!(
            "{{\"requested\":{from},\"oldest\":{}}}",
            sub.oldest
        )));
    }
    let state = Watcher {
        head,
        backlog: sub.backlog.into(),
        live: sub.live,
        deadline,
        done: false,
        full,
    };
    Sse::new(watch_stream(state))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

struct Watcher {
    /// Notices to send first.
    head: VecDeque<Event>,
    /// Retained events from the requested position.
    backlog: VecDeque<Arc<EventRecord>>,
    live: broadcast::Receiver<Arc<EventRecord>>,
    /// When the stream ends (`max_ms`).
    deadline: Option<tokio::time::Instant>,
    done: bool,
    /// The reader presented the HTTP token: member ids stay in.
    full: bool,
}

fn cluster_event(e: &EventRecord, full: bool) -> Event {
    let data = if full {
        serde_json::to_string(e)
    } else {
        let mut e = e.clone();
        e.redact();
        serde_json::to_string(&e)
    }
    .unwrap_or_else(|_| "{}".to_owned());
    Event::default()
        .id(e.gseq.to_string())
        .event("cluster")
        .data(data)
}

fn watch_stream(w: Watcher) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(w, |mut w| async move {
        if w.done {
            return None;
        }
        if let Some(ev) = w.head.pop_front() {
            return Some((Ok(ev), w));
        }
        if let Some(e) = w.backlog.pop_front() {
            return Some((Ok(cluster_event(&e, w.full)), w));
        }
        let next = match w.deadline {
            Some(d) => match tokio::time::timeout_at(d, w.live.recv()).await {
                Ok(r) => r,
                Err(_) => return None,
            },
            None => w.live.recv().await,
        };
        match next {
            Ok(e) => Some((Ok(cluster_event(&e, w.full)), w)),
            Err(RecvError::Lagged(missed)) => {
                w.done = true;
                let ev = Event::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{missed}}}"));
                Some((Ok(ev), w))
            }
            Err(RecvError::Closed) => None,
        }
    })
}
