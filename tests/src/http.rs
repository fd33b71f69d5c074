//! A minimal HTTP/1.0 client for the external port: one request per
//! connection (the server closes it after the response), every read bounded
//! in time and size. Enough for JSON, the metrics text, the page and a raw
//! Server-Sent Events stream, with nothing between the test and the socket.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::{bounded, ok};

/// Largest response body read, bytes.
const BODY_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header lines, lower-cased names: `(name, value)`.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Response {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON into `T` (panics with the body if it is not).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        match serde_json::from_str(&self.body) {
            Ok(v) => v,
            Err(e) => panic!("bad JSON ({e}): {}", self.body),
        }
    }
}

/// Sends `method path` and returns the status line and headers read, with
/// the connection positioned at the body.
pub async fn open(
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> (u16, Vec<(String, String)>, BufReader<TcpStream>) {
    open_with(addr, method, path, None).await
}

/// Like [`open`], with the socket's receive buffer set to `recv_buffer`
/// bytes (a small one makes a reader that stops reading stall the sender
/// soon, instead of after megabytes of kernel buffers).
pub async fn open_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    recv_buffer: Option<u32>,
) -> (u16, Vec<(String, String)>, BufReader<TcpStream>) {
    let socket = ok("a socket", tokio::net::TcpSocket::new_v4());
    if let Some(b) = recv_buffer {
        ok("SO_RCVBUF", socket.set_recv_buffer_size(b));
    }
    let mut s = ok("connect to the external port", socket.connect(addr).await);
    let req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n");
    ok("write the request", s.write_all(req.as_bytes()).await);
    let mut r = BufReader::new(s);
    let mut line = String::new();
    ok("read the status line", r.read_line(&mut line).await);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        let n = ok("read a header", r.read_line(&mut h).await);
        let h = h.trim_end();
        if n == 0 || h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    (status, headers, r)
}

/// One request, the whole response (bounded by [`crate::WAIT`]).
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> Response {
    bounded(&format!("{method} {path}"), async {
        let (status, headers, r) = open(addr, method, path).await;
        let mut body = String::new();
        ok(
            "read the body",
            r.take(BODY_BYTES_MAX).read_to_string(&mut body).await,
        );
        Response {
            status,
            headers,
            body,
        }
    })
    .await
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path).await
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:`, if any.
    pub id: Option<u64>,
    /// `event:` (`message` when absent).
    pub event: String,
    /// `data:` lines joined with newlines.
    pub data: String,
}

/// Reads the next event of a stream (comments skipped); `None` at the end
/// of the stream.
pub async fn next_event(r: &mut BufReader<TcpStream>) -> Option<SseEvent> {
    let mut ev = SseEvent {
        id: None,
        event: "message".to_owned(),
        data: String::new(),
    };
    let mut fields = 0;
    loop {
        let mut line = String::new();
        let n = ok("read an SSE line", r.read_line(&mut line).await);
        if n == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if fields > 0 {
                return Some(ev);
            }
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        fields += 1;
        match name {
            "id" => ev.id = value.parse().ok(),
            "event" => ev.event = value.to_owned(),
            "data" => {
                if !ev.data.is_empty() {
                    ev.data.push('\n');
                }
                ev.data.push_str(value);
            }
            _ => {}
        }
    }
}
