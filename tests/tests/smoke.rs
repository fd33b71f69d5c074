//! Smoke test: one server, two members, a message and an event.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use std::time::Duration;

use switchboard_client::{member, Event, Member, MemberConfig};
use switchboard_core::auth::Secret;
use switchboard_core::server::ServerConfig;
use switchboard_server::config::ServerOptions;

#[tokio::test]
async fn two_members_exchange_a_message() {
    let secret = Secret::new(vec![9u8; 32]).unwrap();
    let mut core = ServerConfig::new("t", secret.clone());
    core.resume_window_ms = 1000;
    core.restart_grace_ms = 1000;
    let srv = switchboard_server::run(ServerOptions::loopback_ephemeral(core))
        .await
        .unwrap();
    let addr = srv.internal_addr().to_string();
    let (a, _ea) = tokio::time::timeout(
        Duration::from_secs(5),
        Member::connect(MemberConfig::new(&addr, "t", secret.clone(), "i1", "a")),
    )
    .await
    .unwrap()
    .unwrap();
    let (_b, mut eb) = Member::connect(MemberConfig::new(&addr, "t", secret.clone(), "i1", "b"))
        .await
        .unwrap();
    let seq = tokio::time::timeout(Duration::from_secs(5), a.send(member("i1", "b"), "hi"))
        .await
        .unwrap()
        .unwrap();
    assert!(seq > 0);
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = eb.next().await {
            if let Event::Message(m) = ev {
                return Some(m.wire.payload);
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(got.as_deref(), Some(&b"hi"[..]));
    srv.shutdown().await;
}

#[tokio::test]
async fn subscribe_and_join_resolve() {
    let secret = Secret::new(vec![9u8; 32]).unwrap();
    let mut core = ServerConfig::new("t", secret.clone());
    core.resume_window_ms = 1000;
    core.restart_grace_ms = 1000;
    let srv = switchboard_server::run(ServerOptions::loopback_ephemeral(core))
        .await
        .unwrap();
    let addr = srv.internal_addr().to_string();
    let (a, _ea) = Member::connect(MemberConfig::new(&addr, "t", secret.clone(), "i1", "a"))
        .await
        .unwrap();
    eprintln!("connected");
    tokio::time::timeout(Duration::from_secs(5), a.join("g"))
        .await
        .unwrap()
        .unwrap();
    eprintln!("joined");
    let _s = tokio::time::timeout(
        Duration::from_secs(5),
        a.events(switchboard_client::Filter::all()),
    )
    .await
    .unwrap()
    .unwrap();
    eprintln!("subscribed");
    srv.shutdown().await;
}

#[tokio::test]
async fn a_wrong_secret_fails_with_a_typed_error_naming_the_secret() {
    let secret = Secret::new(vec![9u8; 32]).unwrap();
    let srv = switchboard_server::run(ServerOptions::loopback_ephemeral(ServerConfig::new(
        "t", secret,
    )))
    .await
    .unwrap();
    let wrong = Secret::new(vec![1u8; 32]).unwrap();
    let mut cfg = MemberConfig::new(srv.internal_addr().to_string(), "t", wrong, "i1", "x");
    cfg.connect_timeout = Duration::from_secs(1);
    let r = tokio::time::timeout(Duration::from_secs(10), Member::connect(cfg))
        .await
        .unwrap();
    // The server's proof does not verify with the member's secret: the
    // member never sends its own proof, and says why it gave up.
    match r {
        Err(switchboard_client::Error::ConnectTimeout { last, .. }) => {
            assert!(last.contains("secret"), "{last}")
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    use tokio::io::AsyncReadExt;
    let secret = Secret::new(vec![9u8; 32]).unwrap();
    let mut opts = ServerOptions::loopback_ephemeral(ServerConfig::new("t", secret));
    opts.connections_max = 2;
    let srv = switchboard_server::run(opts).await.unwrap();
    let addr = srv.internal_addr();
    let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "third connection stayed open: {n:?}"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn healthz_answers_and_shutdown_tells_members() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let secret = Secret::new(vec![9u8; 32]).unwrap();
    let srv = switchboard_server::run(ServerOptions::loopback_ephemeral(ServerConfig::new(
        "t",
        secret.clone(),
    )))
    .await
    .unwrap();
    let mut s = tokio::net::TcpStream::connect(srv.external_addr())
        .await
        .unwrap();
    s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").await.unwrap();
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut body))
        .await
        .unwrap()
        .unwrap();
    assert!(
        body.starts_with("HTTP/1.0 200") && body.ends_with("ok"),
        "{body}"
    );

    let (_m, mut events) = Member::connect(MemberConfig::new(
        srv.internal_addr().to_string(),
        "t",
        secret,
        "i1",
        "a",
    ))
    .await
    .unwrap();
    srv.shutdown().await;
    let told = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = events.next().await {
            if let Event::Disconnected { reason } = ev {
                return reason;
            }
        }
        String::new()
    })
    .await
    .unwrap();
    assert!(told.contains("server closed the session"), "{told}");
}

#[tokio::test]
async fn dropping_every_handle_says_goodbye() {
    let secret = Secret::new(vec![9u8; 32]).unwrap();
    let srv = switchboard_server::run(ServerOptions::loopback_ephemeral(ServerConfig::new(
        "t",
        secret.clone(),
    )))
    .await
    .unwrap();
    let addr = srv.internal_addr().to_string();
    let (_a, mut ea) = Member::connect(MemberConfig::new(&addr, "t", secret.clone(), "i1", "a"))
        .await
        .unwrap();
    let (b, eb) = Member::connect(MemberConfig::new(&addr, "t", secret, "i1", "b"))
        .await
        .unwrap();
    let bid = b.member_id();
    drop((b, eb));
    let left = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = ea.next().await {
            if let Event::Cluster(n) = ev {
                if let switchboard_core::frame::ClusterEvent::MemberLeft { member_id } = n.event {
                    return Some(member_id);
                }
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(left, bid);
    srv.shutdown().await;
}

#[tokio::test]
async fn a_wrong_cluster_name_is_refused_for_good() {
    let secret = Secret::new(vec![9u8; 32]).unwrap();
    let srv = switchboard_server::run(ServerOptions::loopback_ephemeral(ServerConfig::new(
        "t",
        secret.clone(),
    )))
    .await
    .unwrap();
    let cfg = MemberConfig::new(srv.internal_addr().to_string(), "other", secret, "i1", "x");
    let r = tokio::time::timeout(Duration::from_secs(10), Member::connect(cfg))
        .await
        .unwrap();
    match r {
        Err(switchboard_client::Error::Rejected { reason, .. }) => {
            assert_eq!(reason, switchboard_core::frame::RejectReason::WrongCluster)
        }
        other => panic!("expected a rejection, got {:?}", other.map(|_| ())),
    }
    srv.shutdown().await;
}

/// A server on loopback with no restart grace, its member address and
/// secret (cluster "t").
async fn server_without_grace() -> (switchboard_server::ServerHandle, String, Secret) {
    let secret = Secret::new(vec![9u8; 32]).unwrap();
    let mut core = ServerConfig::new("t", secret.clone());
    core.restart_grace_ms = 0;
    let srv = switchboard_server::run(ServerOptions::loopback_ephemeral(core))
        .await
        .unwrap();
    let addr = srv.internal_addr().to_string();
    (srv, addr, secret)
}

/// Reads messages numbered 0..n (a big-endian `u32` each) from `events`,
/// each once and in order, within 10 s.
async fn expect_numbered(events: &mut switchboard_client::EventStream, n: u32) {
    let mut next = 0u32;
    tokio::time::timeout(Duration::from_secs(10), async {
        while next < n {
            match events.next().await {
                Some(Event::Message(m)) => {
                    let got = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                    assert_eq!(got, next, "out of order or duplicated");
                    next += 1;
                }
                Some(_) => {}
                None => panic!("stream ended"),
            }
        }
    })
    .await
    .unwrap();
}

/// `post` + `flush`: every posted message is counted acked once the server
/// received it, a message to a member that never existed is counted
/// refused (NACKed), and the receiver gets each posted message once, in
/// order.
#[tokio::test]
async fn posted_messages_are_tallied_and_delivered_in_order() {
    let (srv, addr, secret) = server_without_grace().await;
    let (a, _ea) = Member::connect(MemberConfig::new(&addr, "t", secret.clone(), "i1", "a"))
        .await
        .unwrap();
    let (b, mut eb) = Member::connect(MemberConfig::new(&addr, "t", secret.clone(), "i1", "b"))
        .await
        .unwrap();
    let to = switchboard_client::Address::MemberId(b.member_id().unwrap());
    const N: u32 = 5_000;
    for i in 0..N {
        a.post(to.clone(), i.to_be_bytes().to_vec()).await.unwrap();
    }
    let nowhere = switchboard_client::Address::MemberId(12345);
    a.post(nowhere, "lost").await.unwrap();
    let counts = tokio::time::timeout(Duration::from_secs(10), a.flush())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counts.submitted, u64::from(N) + 1);
    assert_eq!(counts.acked + counts.refused, counts.submitted);
    assert_eq!(counts.refused, 1, "{counts:?}");
    assert_eq!(a.tally(), counts);
    expect_numbered(&mut eb, N).await;
    srv.shutdown().await;
}

/// `post_many` + `flush`: batches larger than the driver's command batch
/// and than a small outbox (so that a batch stalls part-way and resumes)
/// keep their order with single posts around them; a refused message in
/// the middle of a batch is tallied as refused and the rest go on.
#[tokio::test]
async fn batches_of_posted_messages_keep_their_order_through_a_full_outbox() {
    let (srv, addr, secret) = server_without_grace().await;
    let mut config = MemberConfig::new(&addr, "t", secret.clone(), "i1", "a");
    config.core.outbox_items_max = 16;
    let (a, _ea) = Member::connect(config).await.unwrap();
    let (b, mut eb) = Member::connect(MemberConfig::new(&addr, "t", secret.clone(), "i1", "b"))
        .await
        .unwrap();
    let to = switchboard_client::Address::MemberId(b.member_id().unwrap());
    let nowhere = switchboard_client::Address::MemberId(12345);
    const N: u32 = 3_000;
    let msg = |i: u32| Bytes::from(i.to_be_bytes().to_vec());
    let mut i = 0u32;
    while i < N {
        if i % 1_000 == 500 {
            a.post(to.clone(), msg(i)).await.unwrap();
            i += 1;
            continue;
        }
        let end = (i + 300).min(N);
        let mut batch: Vec<(switchboard_client::Address, Bytes)> =
            (i..end).map(|k| (to.clone(), msg(k))).collect();
        if i == 0 {
            // One refused message inside the first batch.
            batch.insert(100, (nowhere.clone(), Bytes::from_static(b"lost")));
        }
        let n = batch.len();
        assert_eq!(a.post_many(batch).await.unwrap(), n);
        i = end;
    }
    let counts = tokio::time::timeout(Duration::from_secs(10), a.flush())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counts.submitted, u64::from(N) + 1);
    assert_eq!(counts.refused, 1, "{counts:?}");
    assert_eq!(counts.acked, u64::from(N), "{counts:?}");
    expect_numbered(&mut eb, N).await;
    srv.shutdown().await;
}

/// A join resolves only once the server has applied it: right after
/// `join` returns, the server's own view (GET /members) lists the group,
/// even when the join was made while the connection was down (it then
/// waits for the reconnect and the resume).
#[tokio::test]
async fn a_join_has_been_applied_when_it_resolves() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let secret = Secret::new(vec![9u8; 32]).unwrap();
    let mut core = ServerConfig::new("t", secret.clone());
    core.restart_grace_ms = 0;
    let srv = switchboard_server::run(ServerOptions::loopback_ephemeral(core))
        .await
        .unwrap();
    let addr = srv.internal_addr().to_string();
    let mut config = MemberConfig::new(&addr, "t", secret, "i1", "a");
    config.core.reconnect_min_ms = 20;
    config.core.reconnect_max_ms = 100;
    let (a, _ea) = Member::connect(config).await.unwrap();
    for i in 0..5 {
        let group = format!("g{i}");
        a.drop_connection().await;
        tokio::time::timeout(Duration::from_secs(5), a.join(&group))
            .await
            .unwrap()
            .unwrap();
        let mut s = tokio::net::TcpStream::connect(srv.external_addr())
            .await
            .unwrap();
        s.write_all(b"GET /members HTTP/1.0\r\n\r\n").await.unwrap();
        let mut body = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut body))
            .await
            .unwrap()
            .unwrap();
        assert!(
            body.contains(&format!("\"{group}\"")),
            "{group} not applied: {body}"
        );
    }
    srv.shutdown().await;
}
