//! The HTTP port reveals no session material: member ids, incarnations and
//! the server incarnation only to a reader with the configured bearer
//! token; without a token configured, to nobody.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchboard_client::{Member, MemberConfig};
use switchboard_core::auth::Secret;
use switchboard_core::server::ServerConfig;
use switchboard_server::config::ServerOptions;
use switchboard_server::MembersView;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

async fn get_members(addr: std::net::SocketAddr, auth: Option<&str>) -> MembersView {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let header = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    s.write_all(format!("GET /members HTTP/1.0\r\n{header}\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap()
}

fn has_session_material(v: &MembersView) -> bool {
    v.server_incarnation.is_some()
        || v.members
            .iter()
            .any(|m| m.member_id.is_some() || m.incarnation.is_some())
}

#[tokio::test]
async fn member_ids_only_with_the_bearer_token() {
    let secret = Secret::new(vec![9u8; 32]).unwrap();
    for token in [None, Some("reader-token-1")] {
        let mut opts = ServerOptions::loopback_ephemeral(ServerConfig::new("t", secret.clone()));
        opts.http_token = token.map(str::to_owned);
        let srv = switchboard_server::run(opts).await.unwrap();
        let addr = srv.internal_addr().to_string();
        let (_a, _ea) = tokio::time::timeout(
            WAIT,
            Member::connect(MemberConfig::new(&addr, "t", secret.clone(), "i1", "a")),
        )
        .await
        .unwrap()
        .unwrap();
        let external = srv.external_addr();
        // Anonymous and wrong-token readers see the member, not its ids.
        for auth in [None, Some("wrong"), Some("reader-token-")] {
            let v = get_members(external, auth).await;
            assert_eq!(v.members.len(), 1);
            assert_eq!(v.members[0].instance, "i1");
            assert!(!has_session_material(&v), "{auth:?} saw ids: {v:?}");
        }
        let v = get_members(external, Some("reader-token-1")).await;
        assert_eq!(
            has_session_material(&v),
            token.is_some(),
            "token {token:?}: {v:?}"
        );
        srv.shutdown().await;
    }
}

/// One request on its own connection; the whole response as text.
async fn raw(addr: std::net::SocketAddr, method: &str, path: &str, auth: Option<&str>) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let header = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    s.write_all(format!("{method} {path} HTTP/1.0\r\n{header}\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    text
}

/// The JSON keys that name a session.
const SESSION_KEYS: [&str; 3] = ["\"member_id\"", "\"incarnation\"", "\"server_incarnation\""];

#[tokio::test]
async fn no_v1_route_reveals_session_material_without_the_token() {
    let secret = Secret::new(vec![9u8; 32]).unwrap();
    let mut opts = ServerOptions::loopback_ephemeral(ServerConfig::new("t", secret.clone()));
    opts.http_token = Some("reader-token-1".to_owned());
    let srv = switchboard_server::run(opts).await.unwrap();
    let addr = srv.internal_addr().to_string();
    let (a, _ea) = tokio::time::timeout(
        WAIT,
        Member::connect(MemberConfig::new(&addr, "t", secret.clone(), "i1", "a")),
    )
    .await
    .unwrap()
    .unwrap();
    a.join("g").await.unwrap();
    let web = srv.external_addr();
    // Each route, and the key it carries for a reader with the token.
    let routes = [
        ("/v1/server", "\"server_incarnation\""),
        ("/v1/members", "\"member_id\""),
        ("/v1/members/i1/a", "\"incarnation\""),
        ("/v1/instances", "\"member_id\""),
        ("/v1/route?group=g", "\"member_id\""),
        ("/v1/events?from=0&max_ms=200", "\"member_id\""),
    ];
    for (path, key) in routes {
        for auth in [None, Some("wrong"), Some("reader-token-")] {
            let text = raw(web, "GET", path, auth).await;
            assert!(text.starts_with("HTTP/1.0 200"), "{path}: {text}");
            for k in SESSION_KEYS {
                assert!(!text.contains(k), "{path} with {auth:?} shows {k}: {text}");
            }
        }
        let text = raw(web, "GET", path, Some("reader-token-1")).await;
        assert!(text.starts_with("HTTP/1.0 200"), "{path}: {text}");
        assert!(
            text.contains(key),
            "{path} with the token lacks {key}: {text}"
        );
    }
    // The anonymous documents still name the member.
    let text = raw(web, "GET", "/v1/members", None).await;
    assert!(text.contains("\"i1/a\""), "{text}");
    // The token unlocks reading, never writing: the port stays read-only.
    for method in ["POST", "PUT", "DELETE"] {
        let text = raw(web, method, "/v1/members", Some("reader-token-1")).await;
        assert!(text.starts_with("HTTP/1.0 405"), "{method}: {text}");
    }
    srv.shutdown().await;
}
