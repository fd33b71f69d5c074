//! `switchboard members`: GET /members on the external port.

use std::time::Duration;

use switchboard_server::MembersView;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{CliError, Settings};

/// Largest response read, bytes.
const RESPONSE_BYTES_MAX: u64 = 16 * 1024 * 1024;
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn run(s: &Settings, json: bool) -> Result<(), CliError> {
    let body = http_get(&s.external, "/members").await?;
    if json {
        println!("{body}");
        return Ok(());
    }
    let view: MembersView = serde_json::from_str(&body).map_err(|e| CliError::Http {
        addr: s.external.clone(),
        detail: format!("bad JSON: {e}"),
    })?;
    println!(
        "cluster {:?}  epoch {}  members {}  connections {}  server {}",
        view.cluster,
        view.epoch,
        view.members.len(),
        view.connections,
        view.server_incarnation.as_deref().unwrap_or("-")
    );
    println!(
        "{:>20}  {:<24} {:>6}  {:<8} {:<24} groups",
        "id", "member", "load", "state", "services"
    );
    for m in &view.members {
        println!(
            "{:>20}  {:<24} {:>6}  {:<8} {:<24} {}",
            m.member_id
                .map_or_else(|| "-".to_owned(), |i| i.to_string()),
            format!("{}/{}", m.instance, m.process),
            m.load,
            if m.attached { "up" } else { "detached" },
            m.services.join(","),
            m.groups.join(",")
        );
    }
    Ok(())
}

/// A minimal HTTP/1.0 GET (no chunked encoding possible), bounded in time
/// and size.
async fn http_get(addr: &str, path: &str) -> Result<String, CliError> {
    let fail = |detail: String| CliError::Http {
        addr: addr.to_owned(),
        detail,
    };
    let fetch = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| fail(format!("{e} (is `switchboard serve` running?)")))?;
        let req =
            format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut buf = Vec::new();
        s.take(RESPONSE_BYTES_MAX)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| fail(e.to_string()))?;
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
