//! `switchboard members`: GET /v1/members on the external port, sorted by
//! name.

use std::time::Duration;

use switchboard_server::api_view::MemberList;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{CliError, Settings};

/// Largest response read, bytes.
const RESPONSE_BYTES_MAX: u64 = 16 * 1024 * 1024;
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn run(s: &Settings, json: bool) -> Result<(), CliError> {
    let body = http_get(s, "/v1/members").await?;
    if json {
        println!("{body}");
        return Ok(());
    }
    let mut list = parse_members(&s.external, &body)?;
    list.members.sort_by(|a, b| a.name.cmp(&b.name));
    println!("epoch {}  members {}", list.epoch, list.members.len());
    println!(
        "{:<24} {:>6}  {:<8} {:>7} {:>10} {:>10} {:>6}  {:<20} groups",
        "member", "load", "state", "queue", "msgs in", "msgs out", "nacks", "services"
    );
    for m in &list.members {
        println!(
            "{:<24} {:>6}  {:<8} {:>7} {:>10} {:>10} {:>6}  {:<20} {}",
            m.name,
            m.load,
            m.state,
            m.queue_items,
            m.messages_in,
            m.messages_out,
            m.nacks,
            m.services.join(","),
            m.groups.join(",")
        );
    }
    Ok(())
}

/// `/v1/members` parsed.
pub(crate) fn parse_members(addr: &str, body: &str) -> Result<MemberList, CliError> {
    serde_json::from_str(body).map_err(|e| CliError::Http {
        addr: addr.to_owned(),
        detail: format!("bad JSON: {e}"),
    })
}

/// A minimal HTTP/1.0 GET (no chunked encoding possible) on the external
/// port, bounded in time and size; over TLS when `--tls-ca-file` is given.
pub(crate) async fn http_get(s: &Settings, path: &str) -> Result<String, CliError> {
    let addr = s.external.as_str();
    let fail = |detail: String| CliError::Http {
        addr: addr.to_owned(),
        detail,
    };
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n");
    let tls = s.member_tls()?;
    let fetch = async {
        let mut buf = Vec::new();
        match tls {
            None => {
                let mut s = TcpStream::connect(addr)
                    .await
                    .map_err(|e| fail(format!("{e} (is `switchboard serve` running?)")))?;
                s.write_all(req.as_bytes())
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                s.take(RESPONSE_BYTES_MAX)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
            }
            Some(t) => {
                use switchboard_runtime::net::Connector;
                let net = t.connector(addr)?;
                let (rd, mut wr) = net.connect(addr.to_owned()).await.map_err(|e| {
                    fail(
                        switchboard_runtime::tls::tls_failure(&e)
                            .unwrap_or_else(|| format!("{e} (is `switchboard serve` running?)")),
                    )
                })?;
                wr.write_all(req.as_bytes())
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                rd.take(RESPONSE_BYTES_MAX)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
            }
        }
        Ok::<_, CliError>(buf)
    };
    let buf = tokio::time::timeout(HTTP_TIMEOUT, fetch)
        .await
        .map_err(|_| fail("timed out".into()))??;
    let text = String::from_utf8_lossy(&buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(fail("malformed response".into()));
    };
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(fail(format!("server answered {status:?}")));
    }
    Ok(body.to_owned())
}
