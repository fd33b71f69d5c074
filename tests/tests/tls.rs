//! TLS and mutual TLS on the member port (and TLS on the HTTP port) over
//! real TCP, with certificates generated here: send, broadcast and resume
//! over TLS and over mTLS; a member trusting the wrong CA; an expired
//! client certificate; a member without a certificate; a plain member
//! against a TLS port and a TLS member against a plain port; a connection
//! that never finishes its TLS handshake.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use switchboard_client::{member, Error, Event, Member, MemberConfig, MemberTls};
use switchboard_server::config::{AuthMode, ServerOptions, TlsOptions};
use switchboard_server::ServerHandle;
use switchboard_tests::certs::{Ca, Leaf};
use switchboard_tests::{bounded, member_config, server_config, Node, CLUSTER, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A failure must come back within this long: no hang.
const FAIL_FAST: Duration = Duration::from_secs(3);

/// A fresh directory for one test's files.
fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("switchboard-tls-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The certificates of one test: a server CA and certificate, a member CA
/// and member certificates, and a CA nobody trusts.
struct Pki {
    server_ca: Ca,
    member_ca: Ca,
    stranger_ca: Ca,
    server: (PathBuf, PathBuf),
}

impl Pki {
    fn new(test: &str) -> Pki {
        let d = dir(test);
        let server_ca = Ca::new(&d, "server");
        let member_ca = Ca::new(&d, "members");
        let stranger_ca = Ca::new(&d, "stranger");
        let server = server_ca.issue("server", "switchboard server");
        Pki {
            server_ca,
            member_ca,
            stranger_ca,
            server,
        }
    }

    fn tls(&self, client_ca: bool, http: bool) -> TlsOptions {
        TlsOptions {
            files: switchboard_runtime::tls::ServerTlsFiles {
                cert: self.server.0.clone(),
                key: self.server.1.clone(),
                client_ca: client_ca.then(|| self.member_ca.ca_file()),
            },
            http,
        }
    }

    /// Member TLS trusting the server's CA, with a member certificate for
    /// `cn` when given.
    fn member_tls(&self, cert_for: Option<&str>) -> MemberTls {
        let mut t = MemberTls::new(self.server_ca.ca_file());
        t.cert_key = cert_for.map(|cn| self.member_ca.issue(cn, cn));
        t
    }
}

async fn start(opts: ServerOptions) -> ServerHandle {
    match switchboard_server::run(opts).await {
        Ok(h) => h,
        Err(e) => panic!("server did not start: {e}"),
    }
}

fn options(tls: Option<TlsOptions>, auth: AuthMode) -> ServerOptions {
    let mut o = ServerOptions::loopback_ephemeral(server_config());
    o.tls = tls;
    o.auth = auth;
    o
}

/// `member_config` with TLS.
fn tls_member(srv: &ServerHandle, instance: &str, process: &str, tls: MemberTls) -> MemberConfig {
    let mut c = member_config(srv, instance, process);
    c.tls = Some(tls);
    c
}

/// A member config for a certificate-only port.
fn cert_member(srv: &ServerHandle, process: &str, tls: MemberTls) -> MemberConfig {
    let mut c = MemberConfig::with_certificate(
        srv.internal_addr().to_string(),
        CLUSTER,
        tls,
        "app",
        process,
    );
    c.core.reconnect_min_ms = 20;
    c.core.reconnect_max_ms = 200;
    c.connect_timeout = WAIT;
    c
}

/// Send, broadcast, and a resume after a dropped connection, between two
/// connected members.
async fn send_broadcast_resume(a: &mut Node, b: &mut Node) {
    bounded("send", a.member.send(member("app", "b"), "one"))
        .await
        .unwrap();
    b.wait_message("one").await;
    bounded("broadcast", a.member.broadcast("all"))
        .await
        .unwrap();
    b.wait_message("all").await;
    // The connection drops; the member resumes its session over a new
    // TLS connection and the stream goes on.
    let id = b.member.member_id().unwrap();
    b.member.drop_connection().await;
    let resumed = b
        .wait_for("resumed", |e| match e {
            Event::Resumed { member_id } => Some(*member_id),
            _ => None,
        })
        .await;
    assert_eq!(resumed, id, "the same session");
    bounded(
        "send after resume",
        a.member.send(member("app", "b"), "two"),
    )
    .await
    .unwrap();
    b.wait_message("two").await;
    assert_eq!(b.payloads(), ["one", "all", "two"]);
}

/// Connects, expecting a failure within `FAIL_FAST`.
async fn connect_fails(cfg: MemberConfig) -> Error {
    let t = Instant::now();
    let r = tokio::time::timeout(FAIL_FAST, Member::connect(cfg)).await;
    let e = match r {
        Ok(Err(e)) => e,
        Ok(Ok(_)) => panic!("the member connected"),
        Err(_) => panic!("no answer within {FAIL_FAST:?}"),
    };
    eprintln!("refused in {:?}: {e}", t.elapsed());
    e
}

fn tls_error(e: &Error) -> &str {
    match e {
        Error::Tls(t) => t,
        other => panic!("expected a TLS error, got {other:?}: {other}"),
    }
}

#[tokio::test]
async fn tls_with_the_secret_send_broadcast_resume() {
    let pki = Pki::new("secret");
    let srv = start(options(Some(pki.tls(false, true)), AuthMode::Secret)).await;
    let mut a = Node::connect(tls_member(&srv, "app", "a", pki.member_tls(None))).await;
    let mut b = Node::connect(tls_member(&srv, "app", "b", pki.member_tls(None))).await;
    send_broadcast_resume(&mut a, &mut b).await;
    // The HTTP port speaks TLS too.
    let body = https_get(&pki, srv.external_addr(), "/healthz").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with("ok"), "{body}");
    srv.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_certificate_only_send_broadcast_resume() {
    let pki = Pki::new("mtls");
    let srv = start(options(Some(pki.tls(true, true)), AuthMode::Certificate)).await;
    let mut a = Node::connect(cert_member(&srv, "a", pki.member_tls(Some("app-a")))).await;
    let mut b = Node::connect(cert_member(&srv, "b", pki.member_tls(Some("app-b")))).await;
    send_broadcast_resume(&mut a, &mut b).await;
    // A member with no certificate is refused, and told why.
    let e = connect_fails(cert_member(&srv, "c", pki.member_tls(None))).await;
    assert!(tls_error(&e).contains("Certificate"), "{e}");
    // A certificate from a CA the server does not trust is refused.
    let mut t = pki.member_tls(None);
    t.cert_key = Some(pki.stranger_ca.issue("stranger", "app-x"));
    let e = connect_fails(cert_member(&srv, "x", t)).await;
    assert!(tls_error(&e).contains("refused"), "{e}");
    // The server counted both, by reason (over HTTPS).
    let metrics = https_get(&pki, srv.external_addr(), "/metrics").await;
    for reason in ["no_certificate", "certificate_refused"] {
        let key = format!("switchboard_tls_handshake_failures_total{{reason=\"{reason}\"}} ");
        let n: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {metrics}"));
        assert!(n >= 1, "{key}{n}");
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_on_top_of_the_secret() {
    let pki = Pki::new("both");
    let srv = start(options(Some(pki.tls(true, false)), AuthMode::Both)).await;
    let mut a = Node::connect(tls_member(&srv, "app", "a", pki.member_tls(Some("a")))).await;
    let mut b = Node::connect(tls_member(&srv, "app", "b", pki.member_tls(Some("b")))).await;
    send_broadcast_resume(&mut a, &mut b).await;
    // The right certificate and the wrong secret: refused by the secret.
    let mut cfg = cert_member(&srv, "c", pki.member_tls(Some("c")));
    cfg.connect_timeout = Duration::from_secs(1);
    match bounded("wrong secret", Member::connect(cfg)).await {
        Err(Error::ConnectTimeout { last, .. }) => assert!(last.contains("secret"), "{last}"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    // The secret without a certificate: refused by TLS.
    let e = connect_fails(tls_member(&srv, "app", "d", pki.member_tls(None))).await;
    tls_error(&e);
    srv.shutdown().await;
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    let pki = Pki::new("expired");
    let srv = start(options(Some(pki.tls(true, false)), AuthMode::Certificate)).await;
    let mut t = pki.member_tls(None);
    t.cert_key = Some(pki.member_ca.issue_with(
        "old",
        "app-old",
        Leaf {
            expired: true,
            ..Leaf::default()
        },
    ));
    let e = connect_fails(cert_member(&srv, "old", t)).await;
    assert!(tls_error(&e).contains("Expired"), "{e}");
    // A valid one still gets in.
    let ok = cert_member(&srv, "new", pki.member_tls(Some("app-new")));
    bounded("valid member", Member::connect(ok)).await.unwrap();
    srv.shutdown().await;
}

#[tokio::test]
async fn a_member_trusting_the_wrong_ca_refuses_the_server() {
    let pki = Pki::new("wrongca");
    let srv = start(options(Some(pki.tls(false, false)), AuthMode::Secret)).await;
    let cfg = tls_member(&srv, "app", "a", MemberTls::new(pki.stranger_ca.ca_file()));
    let e = connect_fails(cfg).await;
    assert!(tls_error(&e).contains("not accepted"), "{e}");
    // A wrong server name is refused the same way.
    let mut t = pki.member_tls(None);
    t.server_name = Some("elsewhere.example".to_owned());
    let e = connect_fails(tls_member(&srv, "app", "b", t)).await;
    assert!(tls_error(&e).contains("not accepted"), "{e}");
    srv.shutdown().await;
}

#[tokio::test]
async fn plain_and_tls_on_the_wrong_ports_fail_fast_with_a_reason() {
    let pki = Pki::new("mismatch");
    let tls_srv = start(options(Some(pki.tls(false, false)), AuthMode::Secret)).await;
    let plain_srv = start(options(None, AuthMode::Secret)).await;
    // A plain member against the TLS port.
    let e = connect_fails(member_config(&tls_srv, "app", "plain")).await;
    assert!(tls_error(&e).contains("TLS"), "{e}");
    // A TLS member against the plain port.
    let e = connect_fails(tls_member(&plain_srv, "app", "tls", pki.member_tls(None))).await;
    assert!(tls_error(&e).contains("does not speak TLS"), "{e}");
    // Both servers still serve the right kind of member.
    bounded(
        "TLS member",
        Member::connect(tls_member(&tls_srv, "app", "ok", pki.member_tls(None))),
    )
    .await
    .unwrap();
    bounded(
        "plain member",
        Member::connect(member_config(&plain_srv, "app", "ok")),
    )
    .await
    .unwrap();
    tls_srv.shutdown().await;
    plain_srv.shutdown().await;
}

#[tokio::test]
async fn an_unfinished_tls_handshake_holds_no_slot_past_the_deadline() {
    let pki = Pki::new("slowtls");
    let mut opts = options(Some(pki.tls(false, false)), AuthMode::Secret);
    opts.core.handshake_timeout_ms = 800;
    opts.handshakes_per_source_max = 4;
    let srv = start(opts).await;
    let addr = srv.internal_addr();
    // Four connections that never start TLS fill this address's
    // handshake slots...
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...so a fifth is closed at once: the TLS handshake counts as a
    // handshake in progress.
    let t = Instant::now();
    let mut fifth = tokio::net::TcpStream::connect(addr).await.unwrap();
    let n = closed_within(&mut fifth, Duration::from_millis(500)).await;
    eprintln!("fifth closed after {:?} ({n} bytes)", t.elapsed());
    // The four are closed at the handshake deadline, not later.
    let t = Instant::now();
    for s in &mut silent {
        closed_within(s, Duration::from_millis(2_000)).await;
    }
    let held = t.elapsed();
    eprintln!("silent TLS connections closed after {held:?} more");
    assert!(held < Duration::from_millis(1_500), "{held:?}");
    // A half-finished ClientHello is cut off the same way.
    let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    closed_within(&mut half, Duration::from_millis(2_000)).await;
    // And the port still takes an honest member.
    bounded(
        "TLS member",
        Member::connect(tls_member(&srv, "app", "ok", pki.member_tls(None))),
    )
    .await
    .unwrap();
    srv.shutdown().await;
}

/// Waits until the peer closes `s` (EOF or reset), failing after `within`;
/// returns the bytes read before.
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> usize {
    let mut total = 0;
    let mut buf = [0u8; 256];
    let r = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    })
    .await;
    assert!(r.is_ok(), "still open after {within:?}");
    total
}

/// One HTTPS request to the HTTP port; the whole response as text.
async fn https_get(pki: &Pki, addr: std::net::SocketAddr, path: &str) -> String {
    use switchboard_runtime::net::Connector;
    let net = pki.member_tls(None).connector(&addr.to_string()).unwrap();
    let (mut rd, mut wr) = bounded("https connect", net.connect(addr.to_string()))
        .await
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    wr.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = bounded("https read", rd.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn tls_settings_that_cannot_work_are_refused_at_start() {
    let pki = Pki::new("badcfg");
    // Certificate authentication without a client CA.
    let e = switchboard_server::run(options(Some(pki.tls(false, false)), AuthMode::Certificate))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("client_ca_file"), "{e}");
    // A key that is not the certificate's.
    let mut t = pki.tls(false, false);
    t.files.key = pki.member_ca.issue("other", "other").1;
    let e = switchboard_server::run(options(Some(t), AuthMode::Secret))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("do not work together"), "{e}");
    // A missing file.
    let mut t = pki.tls(false, false);
    t.files.cert = PathBuf::from("/nonexistent/cert.pem");
    let e = switchboard_server::run(options(Some(t), AuthMode::Secret))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
}

/// `switchboard <args>` (the built binary); (exit code, stdout, stderr).
async fn cli(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = bounded(
        "cli command",
        tokio::process::Command::new(switchboard_tests::switchboard_bin())
            .args(args)
            .env("SWITCHBOARD_LOG", "warn")
            .env_remove("SWITCHBOARD_SECRET")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_member_verbs_take_the_tls_options() {
    let pki = Pki::new("cli");
    let srv = start(options(Some(pki.tls(true, true)), AuthMode::Certificate)).await;
    let mut b = Node::connect(cert_member(&srv, "b", pki.member_tls(Some("app-b")))).await;
    let (cert, key) = pki.member_ca.issue("cli", "cli");
    let internal = srv.internal_addr().to_string();
    let external = srv.external_addr().to_string();
    let ca = pki.server_ca.ca_file();
    let s = |x: &'static str| std::ffi::OsStr::new(x);
    let common: Vec<&std::ffi::OsStr> = vec![
        s("--cluster"),
        s(CLUSTER),
        s("--internal"),
        internal.as_ref(),
        s("--external"),
        external.as_ref(),
        s("--auth"),
        s("certificate"),
        s("--tls-ca-file"),
        ca.as_os_str(),
    ];
    // send with a client certificate: delivered.
    let mut args = vec![s("send")];
    args.extend(&common);
    args.extend([
        s("--tls-cert-file"),
        cert.as_os_str(),
        s("--tls-key-file"),
        key.as_os_str(),
        s("--to"),
        s("app/b"),
        s("over mtls"),
    ]);
    let (code, out, err) = cli(&args).await;
    assert_eq!(code, 0, "{out}\n{err}");
    b.wait_message("over mtls").await;
    // Without the certificate: refused by TLS, exit code 6, and the
    // reason on standard error.
    let mut args = vec![s("send")];
    args.extend(&common);
    args.extend([s("--to"), s("app/b"), s("no cert")]);
    let (code, out, err) = cli(&args).await;
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(
        err.contains("TLS") && err.contains("CertificateRequired"),
        "{err}"
    );
    // `members` reads the HTTP port over TLS.
    let mut args = vec![s("members")];
    args.extend(&common);
    let (code, out, err) = cli(&args).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("app/b") || out.contains("app"), "{out}");
    srv.shutdown().await;
}

#[tokio::test]
async fn an_address_the_access_rules_deny_is_closed_during_tls() {
    let pki = Pki::new("acl");
    let d = dir("acl-rules");
    let rules = d.join("acl.toml");
    std::fs::write(
        &rules,
        "[[rule]]\naction = \"deny\"\nsource = \"127.0.0.1\"\n[[rule]]\naction = \"permit\"\nsource = \"*\"\n",
    )
    .unwrap();
    let mut opts = options(Some(pki.tls(false, false)), AuthMode::Secret);
    opts.acl_file = Some(rules.clone());
    let srv = start(opts).await;
    // The decision is taken at the TCP accept; the `Reject` goes out
    // inside TLS when the TLS handshake finished first, else the TLS
    // handshake is closed and the member's state says so (it retries:
    // a cool-down or a full table pass, and so may a rule). Either way
    // the member learns it at once.
    let mut cfg = tls_member(&srv, "app", "a", pki.member_tls(None));
    // A slow retry, so that the state stays long enough to be seen.
    cfg.core.reconnect_min_ms = 2_000;
    cfg.core.reconnect_max_ms = 4_000;
    let (m, mut events) = Member::start(cfg);
    let state = m.connection_state();
    let told = bounded("refusal", async {
        loop {
            while let Some(ev) = events.try_next() {
                if let Event::Rejected { reason, text, .. } = ev {
                    return format!("{reason:?}: {text}");
                }
            }
            if let switchboard_client::ConnectionState::Disconnected { reason } = &*state.borrow() {
                if reason.contains("closed the connection right after the TLS handshake") {
                    return reason.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    eprintln!("denied member told: {told}");
    assert!(
        told.starts_with("NotPermitted: 127.0.0.1 is not permitted")
            || told.contains("closed the connection right after the TLS handshake"),
        "{told}"
    );
    m.kill().await;
    // Permitted after a reload, the same member gets in.
    std::fs::write(
        &rules,
        "[[rule]]\naction = \"permit\"\nsource = \"127.0.0.0/8\"\n",
    )
    .unwrap();
    assert_eq!(srv.reload_acl().await.unwrap(), 0);
    bounded(
        "permitted member",
        Member::connect(tls_member(&srv, "app", "a", pki.member_tls(None))),
    )
    .await
    .unwrap();
    srv.shutdown().await;
}

/// Throughput of one sender to one receiver, plain and over TLS, for the
/// record (no bound asserted: speed is measured, not tested). Run with
/// `cargo test -p switchboard-tests --test tls -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_plain_and_tls_throughput() {
    const N: usize = 200_000;
    let pki = Pki::new("measure");
    for tls in [false, true] {
        let srv = start(options(
            tls.then(|| pki.tls(false, false)),
            AuthMode::Secret,
        ))
        .await;
        let cfg = |p: &str| {
            let mut c = member_config(&srv, "app", p);
            c.tls = tls.then(|| pki.member_tls(None));
            c
        };
        let (a, _ea) = Member::connect(cfg("a")).await.unwrap();
        let (_b, mut eb) = Member::connect(cfg("b")).await.unwrap();
        let payload = bytes::Bytes::from(vec![7u8; 256]);
        let t = Instant::now();
        let recv = tokio::spawn(async move {
            let mut n = 0;
            while let Some(ev) = eb.next().await {
                if matches!(ev, Event::Message(_)) {
                    n += 1;
                    if n == N {
                        return;
                    }
                }
            }
        });
        for _ in 0..N {
            a.post(member("app", "b"), payload.clone()).await.unwrap();
        }
        bounded("all received", recv).await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "{}: {N} messages of 256 bytes in {secs:.2} s = {:.0} msg/s",
            if tls { "TLS" } else { "plain" },
            N as f64 / secs
        );
        srv.shutdown().await;
    }
}
