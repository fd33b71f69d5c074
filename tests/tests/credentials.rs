//! Named credentials over real TCP with the server in-process and its
//! access rules file: a named secret registers only as the instances its
//! credential permits and sends, joins and publishes within its
//! permissions (each refusal counted in `/metrics`); an unknown credential
//! name is refused like a wrong secret; a registration with another
//! credential cannot supersede a live member, which keeps its session; a
//! reload that removes a credential tells its member why and disconnects
//! it while the others stay; a client certificate's name (subject CN or a
//! URI alternative name) is a credential over mutual TLS. With the built
//! binary: SIGHUP revokes a removed credential, each refusal is a log line
//! naming the peer and the credential (never the secret), and a readable
//! credential secret file stops the server unless allowed.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

use switchboard_client::{Error, Event, EventStream, Member, MemberConfig, MemberTls};
use switchboard_core::auth::Secret;
use switchboard_core::frame::{Address, NackReason, RejectReason};
use switchboard_server::config::{AuthMode, ServerOptions, TlsOptions};
use switchboard_server::ServerHandle;
use switchboard_tests::certs::{Ca, Leaf};
use switchboard_tests::{bounded, http, member_config, server_config, BoundNet, WAIT};

const BILLING: &[u8; 32] = b"billing-secret-billing-secret-12";
const OTHER: &[u8; 32] = b"other-secret-other-secret-other!";

/// A fresh directory for one test's files.
fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("switchboard-cred-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a secret file with owner-only permissions.
fn secret_file(d: &Path, name: &str, secret: &[u8]) -> PathBuf {
    let p = d.join(format!("{name}.secret"));
    std::fs::write(&p, switchboard_runtime::secret::to_hex(secret)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    p
}

/// Every address may connect; `billing` may register as `billing-*`,
/// send to `billing-*` instances and `billing*` groups (no broadcast),
/// join `billing*` and publish `billing/*`; `other` may do anything.
fn rules(d: &Path, with_billing: bool) -> String {
    let mut t = String::from("[[rule]]\naction = \"permit\"\nsource = \"*\"\n");
    if with_billing {
        t += &format!(
            "[[credential]]\nname = \"billing\"\nsecret_file = \"{}\"\nregister = [\"billing-*\"]\n\
             send_instances = [\"billing-*\"]\nsend_groups = [\"billing*\"]\nbroadcast = false\n\
             join = [\"billing*\"]\npublish = [\"billing/*\"]\n",
            secret_file(d, "billing", BILLING).display()
        );
    }
    t += &format!(
        "[[credential]]\nname = \"other\"\nsecret_file = \"{}\"\nregister = [\"*\"]\n",
        secret_file(d, "other", OTHER).display()
    );
    t
}

async fn start(opts: ServerOptions) -> ServerHandle {
    match switchboard_server::run(opts).await {
        Ok(h) => h,
        Err(e) => panic!("server did not start: {e}"),
    }
}

async fn server_with_rules(d: &Path) -> ServerHandle {
    std::fs::write(d.join("acl.toml"), rules(d, true)).unwrap();
    let mut o = ServerOptions::loopback_ephemeral(server_config());
    o.acl_file = Some(d.join("acl.toml"));
    start(o).await
}

fn as_credential(
    srv: &ServerHandle,
    credential: &str,
    secret: &[u8],
    instance: &str,
) -> MemberConfig {
    let mut c = member_config(srv, instance, "p1");
    c.core.secret = Secret::new(secret.to_vec()).unwrap();
    c.core.credential = credential.to_owned();
    c
}

async fn connect(cfg: MemberConfig) -> (Member, EventStream) {
    bounded("member connects", Member::connect(cfg))
        .await
        .unwrap_or_else(|e| panic!("member did not connect: {e}"))
}

/// The first `Rejected` a member that never registers reports.
async fn rejected(cfg: MemberConfig) -> (RejectReason, String) {
    let (_m, mut events) = Member::start(cfg);
    wait_event(&mut events, |e| match e {
        Event::Rejected { reason, text, .. } => Some((*reason, text.clone())),
        _ => None,
    })
    .await
}

async fn wait_event<T>(events: &mut EventStream, mut f: impl FnMut(&Event) -> Option<T>) -> T {
    bounded("event", async {
        while let Some(e) = events.next().await {
            if let Some(t) = f(&e) {
                return t;
            }
        }
        panic!("stream ended");
    })
    .await
}

fn nack_reason<T: std::fmt::Debug>(r: Result<T, Error>) -> NackReason {
    match r {
        Err(Error::Nacked { reason, .. }) => reason,
        other => panic!("expected a NACK, got {other:?}"),
    }
}

fn denials(metrics: &str, kind: &str) -> u64 {
    let key = format!("switchboard_permission_denials_total{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {metrics}"))
}

#[tokio::test]
async fn a_named_secret_registers_sends_joins_and_publishes_within_its_permissions() {
    let d = dir("permits");
    let srv = server_with_rules(&d).await;
    let (eu, _eu_events) = connect(as_credential(&srv, "billing", BILLING, "billing-eu")).await;
    let (_us, mut us_events) = connect(as_credential(&srv, "billing", BILLING, "billing-us")).await;
    let (_ledger, mut ledger_events) = connect(as_credential(&srv, "other", OTHER, "ledger")).await;

    // Register: outside its patterns refused, the reason names it.
    let (reason, text) = rejected(as_credential(&srv, "billing", BILLING, "ledger-2")).await;
    assert_eq!(reason, RejectReason::NotPermitted, "{text}");
    assert!(text.contains("may not register as instance"), "{text}");
    // An unknown name and a wrong secret for a known one: alike.
    let (reason, _) = rejected(as_credential(&srv, "nobody", BILLING, "billing-x")).await;
    assert_eq!(reason, RejectReason::BadSecret);
    let (reason, _) = rejected(as_credential(&srv, "billing", OTHER, "billing-y")).await;
    assert_eq!(reason, RejectReason::BadSecret);

    // Send: permitted to billing-us, refused to ledger and to everyone.
    bounded(
        "send",
        eu.send(Address::Instance("billing-us".into()), "ok"),
    )
    .await
    .unwrap();
    wait_event(&mut us_events, |e| match e {
        Event::Message(m) if &m.payload[..] == b"ok" => Some(()),
        _ => None,
    })
    .await;
    let r = bounded("send", eu.send(Address::Instance("ledger".into()), "no")).await;
    assert_eq!(nack_reason(r), NackReason::NotPermitted);
    let r = bounded("send", eu.send(Address::Broadcast, "no")).await;
    assert_eq!(nack_reason(r), NackReason::NotPermitted);

    // Join and publish.
    bounded("join", eu.join("billing-workers")).await.unwrap();
    let r = bounded("join", eu.join("ledger-workers")).await;
    assert_eq!(nack_reason(r), NackReason::NotPermitted);
    bounded("publish", eu.publish_custom("billing/paid", "x"))
        .await
        .unwrap();
    let r = bounded("publish", eu.publish_custom("ledger/paid", "x")).await;
    assert_eq!(nack_reason(r), NackReason::NotPermitted);

    // The ledger member never got a refused message: the first message it
    // gets is one sent after every refusal above was answered.
    let (probe, _probe_events) = connect(as_credential(&srv, "other", OTHER, "probe")).await;
    bounded(
        "send",
        probe.send(Address::Instance("ledger".into()), "sync"),
    )
    .await
    .unwrap();
    let first = wait_event(&mut ledger_events, |e| match e {
        Event::Message(m) => Some(m.payload.clone()),
        _ => None,
    })
    .await;
    assert_eq!(&first[..], b"sync");

    let m = http::get(srv.external_addr(), "/metrics").await.body;
    assert!(denials(&m, "register") >= 1, "{m}");
    assert_eq!(denials(&m, "send"), 2);
    assert_eq!(denials(&m, "join"), 1);
    assert_eq!(denials(&m, "publish"), 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn another_credential_cannot_supersede_a_live_member() {
    let d = dir("supersede");
    let srv = server_with_rules(&d).await;
    // The victim holds `other` and runs as billing-eu/p1.
    let (victim, _victim_events) = connect(as_credential(&srv, "other", OTHER, "billing-eu")).await;
    let (_peer, mut peer_events) = connect(as_credential(&srv, "other", OTHER, "peer")).await;
    let victim_id = victim.member_id().unwrap();
    // `billing` may register as billing-*, but not over a member that
    // `other` registered: a new incarnation of its names is refused.
    let (reason, text) = rejected(as_credential(&srv, "billing", BILLING, "billing-eu")).await;
    assert_eq!(reason, RejectReason::NotPermitted, "{text}");
    assert!(text.contains("another credential"), "{text}");
    // The victim keeps its session: same id, and it still sends.
    assert_eq!(victim.member_id(), Some(victim_id));
    bounded(
        "send",
        victim.send(Address::Instance("peer".into()), "still"),
    )
    .await
    .unwrap();
    wait_event(&mut peer_events, |e| match e {
        Event::Message(m) if &m.payload[..] == b"still" => Some(()),
        _ => None,
    })
    .await;
    let m = http::get(srv.external_addr(), "/metrics").await.body;
    assert!(denials(&m, "supersede") >= 1, "{m}");
    srv.shutdown().await;
}

#[tokio::test]
async fn a_reload_that_removes_a_credential_disconnects_its_members_only() {
    let d = dir("reload");
    let srv = server_with_rules(&d).await;
    let (_b, mut b_events) = connect(as_credential(&srv, "billing", BILLING, "billing-eu")).await;
    let (stay, _stay_events) = connect(as_credential(&srv, "other", OTHER, "stay")).await;
    let (_peer, mut peer_events) = connect(as_credential(&srv, "other", OTHER, "peer")).await;
    let stay_id = stay.member_id().unwrap();

    // A file that does not parse changes nothing.
    std::fs::write(d.join("acl.toml"), "[[credential]]\nname = 3\n").unwrap();
    assert!(srv.reload_acl().await.is_err());

    // The billing credential is removed.
    std::fs::write(d.join("acl.toml"), rules(&d, false)).unwrap();
    let closed = srv.reload_acl().await.unwrap();
    assert_eq!(closed, 1);
    let why = wait_event(&mut b_events, |e| match e {
        Event::Disconnected { reason } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(why.contains("credential billing was removed"), "{why}");
    // Its attempts to come back fail like a wrong secret.
    let (reason, _) = wait_event(&mut b_events, |e| match e {
        Event::Rejected { reason, text, .. } => Some((*reason, text.clone())),
        _ => None,
    })
    .await;
    assert_eq!(reason, RejectReason::BadSecret);
    // The others kept their sessions.
    assert_eq!(stay.member_id(), Some(stay_id));
    bounded("send", stay.send(Address::Instance("peer".into()), "here"))
        .await
        .unwrap();
    wait_event(&mut peer_events, |e| match e {
        Event::Message(m) if &m.payload[..] == b"here" => Some(()),
        _ => None,
    })
    .await;
    let m = http::get(srv.external_addr(), "/metrics").await.body;
    assert_eq!(denials(&m, "revoked"), 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn a_certificate_name_is_a_credential_over_mutual_tls() {
    let d = dir("certs");
    let server_ca = Ca::new(&d, "server");
    let member_ca = Ca::new(&d, "members");
    let server_cert = server_ca.issue("server", "switchboard server");
    // `web` is the certificate with CN web-1, `db` the one with the URI
    // name spiffe://e2e/db; any other member certificate is the cluster
    // credential, which may register as nothing here.
    std::fs::write(
        d.join("acl.toml"),
        "[[rule]]\naction = \"permit\"\nsource = \"*\"\n\
         [[credential]]\nname = \"web\"\ncertificate = \"web-1\"\nregister = [\"web-*\"]\n\
         [[credential]]\nname = \"db\"\ncertificate = \"spiffe://e2e/db\"\nregister = [\"db\"]\n\
         [[credential]]\nname = \"cluster\"\nregister = []\n",
    )
    .unwrap();
    let mut o = ServerOptions::loopback_ephemeral(server_config());
    o.acl_file = Some(d.join("acl.toml"));
    o.auth = AuthMode::Certificate;
    o.tls = Some(TlsOptions {
        files: switchboard_runtime::tls::ServerTlsFiles {
            cert: server_cert.0,
            key: server_cert.1,
            client_ca: Some(member_ca.ca_file()),
        },
        http: false,
    });
    let srv = start(o).await;
    let member = |file: &str, cn: &str, uri: Option<&str>, instance: &str| {
        let mut t = MemberTls::new(server_ca.ca_file());
        t.cert_key = Some(member_ca.issue_with(
            file,
            cn,
            Leaf {
                uri,
                ..Leaf::default()
            },
        ));
        let mut c = MemberConfig::with_certificate(
            srv.internal_addr().to_string(),
            switchboard_tests::CLUSTER,
            t,
            instance,
            "p1",
        );
        c.core.reconnect_min_ms = 20;
        c.core.reconnect_max_ms = 200;
        c.connect_timeout = WAIT;
        c
    };
    // Matched by its common name; registers within its pattern.
    let (web, _e) = connect(member("web", "web-1", None, "web-a")).await;
    assert!(web.member_id().is_some());
    // The same certificate outside its pattern.
    let (reason, text) = rejected(member("web2", "web-1", None, "db")).await;
    assert_eq!(reason, RejectReason::NotPermitted, "{text}");
    assert!(text.contains("credential web"), "{text}");
    // Matched by its URI name.
    let (db, _e) = connect(member("db", "db-host-7", Some("spiffe://e2e/db"), "db")).await;
    assert!(db.member_id().is_some());
    // A certificate no credential names is the cluster credential's.
    let (reason, text) = rejected(member("x", "stranger", None, "web-b")).await;
    assert_eq!(reason, RejectReason::NotPermitted, "{text}");
    assert!(text.contains("credential cluster"), "{text}");
    srv.shutdown().await;
}

/// `switchboard serve` with `acl.toml` in `d` and the given extra flags;
/// the child, its member address and a task collecting its log.
async fn serve(
    d: &Path,
    extra: &[&str],
) -> (
    tokio::process::Child,
    Option<String>,
    tokio::task::JoinHandle<String>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    std::fs::write(
        d.join("cluster.secret"),
        switchboard_runtime::secret::to_hex(b"e2e-secret-e2e-secret-e2e-secret"),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            d.join("cluster.secret"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    std::fs::write(
        d.join("switchboard.toml"),
        format!(
            "cluster = \"{}\"\ninternal = \"127.0.0.1:0\"\nexternal = \"127.0.0.1:0\"\nacl_file = \"{}\"\n",
            switchboard_tests::CLUSTER,
            d.join("acl.toml").display()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(switchboard_tests::switchboard_bin())
        .arg("serve")
        .arg("--config")
        .arg(d.join("switchboard.toml"))
        .arg("--secret-file")
        .arg(d.join("cluster.secret"))
        .args(extra)
        .env("SWITCHBOARD_LOG", "warn")
        .env("NO_COLOR", "1")
        .env_remove("SWITCHBOARD_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let internal = bounded("serve starts or stops", async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("switchboard: listening ") {
                return rest
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix("internal="))
                    .map(str::to_owned);
            }
        }
        None
    })
    .await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, internal, log)
}

fn config_at(internal: &str, credential: &str, secret: &[u8], instance: &str) -> MemberConfig {
    let mut c = MemberConfig::new(
        internal,
        switchboard_tests::CLUSTER,
        Secret::new(secret.to_vec()).unwrap(),
        instance,
        "p1",
    );
    c.core.credential = credential.to_owned();
    c.core.reconnect_min_ms = 20;
    c.core.reconnect_max_ms = 200;
    c.connect_timeout = WAIT;
    c
}

#[tokio::test]
async fn sighup_revokes_a_removed_credential_and_refusals_are_logged_with_peer_and_name() {
    let d = dir("binary");
    std::fs::write(d.join("acl.toml"), rules(&d, true)).unwrap();
    let (child, internal, log) = serve(&d, &[]).await;
    let internal = internal.expect("the server starts");
    let (_b, mut b_events) = connect(config_at(&internal, "billing", BILLING, "billing-eu")).await;
    let (stay, _s) = connect(config_at(&internal, "other", OTHER, "stay")).await;
    let stay_id = stay.member_id();
    // A refused registration, for the log.
    let (reason, _) = rejected(config_at(&internal, "billing", BILLING, "ledger")).await;
    assert_eq!(reason, RejectReason::NotPermitted);
    // The CLI proves a named credential with --credential: it may send to
    // billing-eu, not to stay.
    let cli = |to: &str| {
        let mut c = tokio::process::Command::new(switchboard_tests::switchboard_bin());
        c.args(["send", "--to", to, "from-cli"])
            .args([
                "--internal",
                &internal,
                "--cluster",
                switchboard_tests::CLUSTER,
            ])
            .args(["--credential", "billing", "--as", "billing-cli/1"])
            .arg("--secret-file")
            .arg(d.join("billing.secret"))
            .env("SWITCHBOARD_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    };
    let out = bounded("cli send", cli("billing-eu/p1").output())
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_event(&mut b_events, |e| match e {
        Event::Message(m) if &m.payload[..] == b"from-cli" => Some(()),
        _ => None,
    })
    .await;
    let out = bounded("cli send", cli("stay/p1").output()).await.unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("credential does not permit"), "{err}");

    std::fs::write(d.join("acl.toml"), rules(&d, false)).unwrap();
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let why = wait_event(&mut b_events, |e| match e {
        Event::Disconnected { reason } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(why.contains("credential billing was removed"), "{why}");
    assert_eq!(stay.member_id(), stay_id);

    // SIGTERM: the server stops and its log is complete.
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut child = child;
    let _ = bounded("server stops", child.wait()).await;
    let log = log.await.unwrap();
    let denied = log
        .lines()
        .find(|l| l.contains("not permitted by the credential") && l.contains("ledger"))
        .unwrap_or_else(|| panic!("no register refusal line:\n{log}"));
    assert!(
        denied.contains("credential=billing") && denied.contains("peer=127.0.0.1:"),
        "{denied}"
    );
    let revoked = log
        .lines()
        .find(|l| l.contains("kind=\"revoked\"") || l.contains("kind=revoked"))
        .unwrap_or_else(|| panic!("no revocation line:\n{log}"));
    assert!(revoked.contains("credential=billing"), "{revoked}");
    // The removal itself is an audit line with the member's address and
    // credential too.
    let removed = log
        .lines()
        .find(|l| l.contains("member failed") && l.contains("credential=billing"))
        .unwrap_or_else(|| panic!("no removal line with the credential:\n{log}"));
    assert!(removed.contains("peer=127.0.0.1:"), "{removed}");
    // No secret, in hex or as text, is ever written.
    for s in [&BILLING[..], &OTHER[..]] {
        assert!(!log.contains(&switchboard_runtime::secret::to_hex(s)));
        assert!(!log.contains(std::str::from_utf8(s).unwrap()));
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_credential_secret_file_others_may_read_stops_the_server_unless_allowed() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir("readable");
    std::fs::write(d.join("acl.toml"), rules(&d, true)).unwrap();
    std::fs::set_permissions(
        d.join("billing.secret"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (mut child, internal, log) = serve(&d, &[]).await;
    assert_eq!(internal, None, "the server started with a readable secret");
    let status = bounded("server exits", child.wait()).await.unwrap();
    assert!(!status.success());
    let log = log.await.unwrap();
    assert!(log.contains("readable by other users"), "{log}");
    // Allowed: it starts, with a warning.
    let (child, internal, _log) = serve(&d, &["--allow-readable-secret"]).await;
    let internal = internal.expect("the server starts when allowed");
    let (m, _e) = connect(config_at(&internal, "billing", BILLING, "billing-eu")).await;
    assert!(m.member_id().is_some());
    drop(child);
}

#[tokio::test]
async fn a_credential_limited_to_an_address_is_refused_from_another() {
    let d = dir("sources");
    std::fs::write(
        d.join("acl.toml"),
        format!(
            "[[rule]]\naction = \"permit\"\nsource = \"*\"\n\
             [[credential]]\nname = \"lab\"\nsecret_file = \"{}\"\nregister = [\"*\"]\nsources = [\"127.0.0.2\"]\n",
            secret_file(&d, "lab", OTHER).display()
        ),
    )
    .unwrap();
    let mut o = ServerOptions::loopback_ephemeral(server_config());
    o.acl_file = Some(d.join("acl.toml"));
    let srv = start(o).await;
    // From 127.0.0.1 the credential is refused, naming the address.
    let (reason, text) = rejected(as_credential(&srv, "lab", OTHER, "lab-a")).await;
    assert_eq!(reason, RejectReason::NotPermitted, "{text}");
    assert!(text.contains("may not be used from 127.0.0.1"), "{text}");
    // From 127.0.0.2 it registers and sends.
    let (m, _events) = bounded(
        "member from 127.0.0.2",
        Member::connect_with(
            as_credential(&srv, "lab", OTHER, "lab-b"),
            BoundNet([127, 0, 0, 2].into()),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("member did not connect: {e}"));
    bounded(
        "send",
        m.send(switchboard_client::member("lab-b", "p1"), "hi"),
    )
    .await
    .unwrap();
    m.goodbye().await;
    srv.shutdown().await;
}
