//! `GET /`: the monitor page. One self-contained HTML document (style and
//! script inline, no external asset) embedded in the binary; it reads
//! `/v1/server`, `/v1/members` and `/v1/events` from the same port.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

/// The page.
const PAGE_HTML: &str = include_str!("page.html");

pub(crate) async fn page() -> Response {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        PAGE_HTML,
    )
        .into_response()
}
