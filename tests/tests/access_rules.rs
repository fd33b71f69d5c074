//! The member port's access rules file over real TCP, with the built
//! binary: an address no rule permits is refused (`Reject{NotPermitted}`);
//! after the file is rewritten and the server gets SIGHUP, a member whose
//! address is no longer permitted is told why and disconnected while a
//! member still permitted keeps its session; a file that does not parse
//! leaves the rules as they were; `/metrics` counts both kinds. Members
//! pick their source address (127.0.0.1, .2, .3) with a connector that
//! binds before connecting.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use switchboard_client::{member, Event, EventStream, Member, MemberConfig};
use switchboard_core::frame::RejectReason;
use switchboard_tests::{bounded, http, secret, BoundNet, CLUSTER, WAIT};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("switchboard-acl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let secret_file = d.join("secret");
    let hex = switchboard_runtime::secret::to_hex(b"e2e-secret-e2e-secret-e2e-secret");
    std::fs::write(&secret_file, hex).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    d
}

fn rules(permit: &[&str]) -> String {
    permit
        .iter()
        .map(|s| format!("[[rule]]\naction = \"permit\"\nsource = \"{s}\"\n"))
        .collect()
}

/// `switchboard serve` with the rules file; its child, member and HTTP
/// addresses.
async fn serve(d: &Path) -> (Child, String, SocketAddr) {
    std::fs::write(
        d.join("switchboard.toml"),
        format!(
            "cluster = \"{CLUSTER}\"\ninternal = \"127.0.0.1:0\"\nexternal = \"127.0.0.1:0\"\nacl_file = \"{}\"\n",
            d.join("acl.toml").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(switchboard_tests::switchboard_bin())
        .arg("serve")
        .arg("--config")
        .arg(d.join("switchboard.toml"))
        .arg("--secret-file")
        .arg(d.join("secret"))
        .env("SWITCHBOARD_LOG", "warn")
        .env_remove("SWITCHBOARD_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (internal, external) = bounded("serve starts", async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("switchboard: listening ") {
                let v = |k: &str| {
                    rest.split_whitespace()
                        .find_map(|kv| kv.strip_prefix(k))
                        .unwrap()
                        .to_owned()
                };
                return (v("internal="), v("external="));
            }
        }
        panic!("serve ended before listening");
    })
    .await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, internal, external.parse().unwrap())
}

fn config(internal: &str, process: &str) -> MemberConfig {
    let mut c = MemberConfig::new(internal, CLUSTER, secret(), "app", process);
    c.core.reconnect_min_ms = 20;
    c.core.reconnect_max_ms = 200;
    c.connect_timeout = WAIT;
    c
}

async fn connect_from(internal: &str, process: &str, ip: [u8; 4]) -> (Member, EventStream) {
    bounded(
        "member connects",
        Member::connect_with(config(internal, process), BoundNet(ip.into())),
    )
    .await
    .unwrap()
}

/// The first event `f` maps to `Some`, within `WAIT`.
async fn wait_event<T>(events: &mut EventStream, mut f: impl FnMut(&Event) -> Option<T>) -> T {
    bounded("event", async {
        while let Some(ev) = events.next().await {
            if let Some(t) = f(&ev) {
                return t;
            }
        }
        panic!("event stream ended");
    })
    .await
}

fn sighup(child: &Child) {
    let pid = child.id().unwrap().to_string();
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP {pid}");
}

fn refusals(metrics: &str, kind: &str) -> u64 {
    let key = format!("switchboard_access_refusals_total{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {metrics}"))
}

#[tokio::test]
async fn sighup_reloads_the_access_rules_and_revokes_only_who_lost_access() {
    let d = dir();
    std::fs::write(d.join("acl.toml"), rules(&["127.0.0.1", "127.0.0.2"])).unwrap();
    let (child, internal, web) = serve(&d).await;

    // An address no rule permits is refused, with the reason.
    let (_x, mut xe) = Member::start_with(config(&internal, "x"), BoundNet([127, 0, 0, 3].into()));
    let (reason, text) = wait_event(&mut xe, |e| match e {
        Event::Rejected { reason, text, .. } => Some((*reason, text.clone())),
        _ => None,
    })
    .await;
    assert_eq!(reason, RejectReason::NotPermitted, "{text}");
    assert!(text.contains("127.0.0.3 is not permitted"), "{text}");

    let (stay, mut stay_events) = connect_from(&internal, "stay", [127, 0, 0, 1]).await;
    let (peer, mut peer_events) = connect_from(&internal, "peer", [127, 0, 0, 1]).await;
    let (_goes, mut goes_events) = connect_from(&internal, "goes", [127, 0, 0, 2]).await;
    let stay_id = stay.member_id().unwrap();

    // 127.0.0.2 loses its rule.
    std::fs::write(d.join("acl.toml"), rules(&["127.0.0.1"])).unwrap();
    sighup(&child);
    let why = wait_event(&mut goes_events, |e| match e {
        Event::Disconnected { reason } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(
        why.contains("127.0.0.2 is no longer permitted by the reloaded access rules"),
        "{why}"
    );
    // Its attempts to come back are refused.
    let (reason, _) = wait_event(&mut goes_events, |e| match e {
        Event::Rejected { reason, text, .. } => Some((*reason, text.clone())),
        _ => None,
    })
    .await;
    assert_eq!(reason, RejectReason::NotPermitted);

    // The member still permitted kept its connection and session.
    bounded("send", stay.send(member("app", "peer"), "still here"))
        .await
        .unwrap();
    wait_event(&mut peer_events, |e| match e {
        Event::Message(m) if &m.payload[..] == b"still here" => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(stay.member_id(), Some(stay_id));
    while let Some(ev) = stay_events.try_next() {
        assert!(
            !matches!(ev, Event::Disconnected { .. } | Event::Resumed { .. }),
            "the permitted member lost its connection: {ev:?}"
        );
    }

    // A file that does not parse changes nothing: 127.0.0.1 still gets in.
    std::fs::write(d.join("acl.toml"), "[[rule]]\naction = \"perhaps\"\n").unwrap();
    sighup(&child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_late, _le) = connect_from(&internal, "late", [127, 0, 0, 1]).await;

    let metrics = http::get(web, "/metrics").await.body;
    assert!(refusals(&metrics, "denied") >= 2, "{metrics}");
    assert_eq!(refusals(&metrics, "revoked"), 1, "{metrics}");
    drop(peer);
    drop(child);
}
