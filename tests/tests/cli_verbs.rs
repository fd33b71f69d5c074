//! The CLI verbs as a user runs them, against a server in this process:
//! `watch` stays live through 50,000 events; `send --confirm` exits 3 with
//! a sentence when an addressee missed the message; `reply` answers
//! `request`; `publish` reaches `watch --topic`; exit codes for a refused
//! and an unanswered request. Addresses are given as `localhost:PORT`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use switchboard_client::{member, Member};
use switchboard_tests::{bounded, member_config, ok, server_config, start_server, CLUSTER};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

const WATCH_EVENTS: usize = 50_000;

fn secret_file() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "switchboard-cli-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("secret");
    let hex = switchboard_runtime::secret::to_hex(b"e2e-secret-e2e-secret-e2e-secret");
    std::fs::write(&p, hex).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    p
}

/// `switchboard <args>` against the server at `localhost:port`.
fn cli(port: u16, secret: &PathBuf, args: &[&str]) -> Command {
    let mut c = Command::new(switchboard_tests::switchboard_bin());
    c.args(args)
        .args(["--internal", &format!("localhost:{port}")])
        .args(["--cluster", CLUSTER])
        .arg("--secret-file")
        .arg(secret)
        .env("SWITCHBOARD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Runs a command to its end: (exit code, stdout, stderr).
async fn run(mut c: Command) -> (i32, String, String) {
    let out = bounded("cli command", c.output()).await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until a member named `name` is in `observer`'s view.
async fn wait_member(observer: &Member, name: &str) {
    bounded("member shows up", async {
        loop {
            let (_, view) = observer.view().await.unwrap();
            if view
                .iter()
                .any(|m| format!("{}/{}", m.instance, m.process) == name)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

async fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s).await;
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_stays_live_through_50000_events() {
    let server = start_server(server_config()).await;
    let port = server.internal_addr().port();
    let secret = secret_file();
    let (p, _pe) = ok(
        "publisher",
        Member::connect(member_config(&server, "ip", "pub")).await,
    );
    let mut watch = cli(port, &secret, &["watch", "--json", "--as", "iw/watch"])
        .spawn()
        .unwrap();
    wait_member(&p, "iw/watch").await;
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    // The watcher subscribes after it registers: wait until an event
    // reaches it.
    let reader = tokio::spawn(async move {
        let mut custom = 0u64;
        let mut skipped = 0u64;
        let mut last_message = None;
        while let Ok(Some(line)) = lines.next_line().await {
            let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            match v["kind"].as_str() {
                Some("event") if v["topic"] == "load/tick" => custom += 1,
                Some("lagged") => skipped += v["missed"].as_u64().unwrap(),
                Some("message") => {
                    last_message = Some(v);
                    break;
                }
                _ => {}
            }
        }
        (custom, skipped, last_message)
    });
    bounded("first event reaches the watcher", async {
        // Published until the watcher's subscription is in place; only the
        // count after the fence matters.
        p.publish_custom("fence", "f").await.unwrap();
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 50,000 events from 50 concurrent publishers' worth of calls.
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|t| {
            let p = p.clone();
            tokio::spawn(async move {
                for i in 0..WATCH_EVENTS / 50 {
                    p.publish_custom("load/tick", format!("{t}-{i}"))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("publishing 50,000 events")
            .unwrap();
    }
    eprintln!("published {WATCH_EVENTS} events in {:?}", started.elapsed());
    // Still live: a message sent now is printed, named.
    ok(
        "send to watcher",
        bounded("send", p.send(member("iw", "watch"), "still there?")).await,
    );
    let (custom, skipped, last) = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the watcher printed the message")
        .unwrap();
    let last = last.expect("the watcher printed the message");
    assert_eq!(last["payload"], "still there?");
    assert_eq!(last["from"], "ip/pub");
    assert_eq!(
        custom + skipped,
        WATCH_EVENTS as u64,
        "every event printed or announced as skipped"
    );
    eprintln!("watcher printed {custom} events, skipped {skipped}");
    // And it stops at once on SIGTERM-like kill... on Ctrl-C it says
    // goodbye: the member leaves.
    #[cfg(unix)]
    {
        let pid = watch.id().unwrap();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let status = tokio::time::timeout(Duration::from_secs(3), watch.wait())
            .await
            .expect("watch exits promptly on SIGTERM")
            .unwrap();
        assert!(
            status.success(),
            "{status:?}: {}",
            stderr_of(&mut watch).await
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_send_exits_3_naming_who_missed_it() {
    let server = start_server(server_config()).await;
    let port = server.internal_addr().port();
    let secret = secret_file();
    let (x, _xe) = ok(
        "x",
        Member::connect(member_config(&server, "ix", "x")).await,
    );
    // x crashes: the server holds messages for it until its resume window
    // ends, then declares it failed.
    x.kill().await;
    let (code, out, err) = run(cli(
        port,
        &secret,
        &["send", "--confirm", "--to", "ix/x", "hello"],
    ))
    .await;
    assert_eq!(code, 3, "stdout {out:?} stderr {err:?}");
    assert!(
        out.contains("missed by ix/x (it failed before acknowledging)"),
        "{out}"
    );
    assert!(err.contains("1 addressee(s) missed the message"), "{err}");

    // Refused by the server: exit 5, with a sentence.
    let (code, _, err) = run(cli(port, &secret, &["send", "--to", "group:nobody", "x"])).await;
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("no member, instance or group by that name"),
        "{err}"
    );
    assert!(!err.contains("UnknownDestination"), "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_answers_requests_and_publish_reaches_a_topic_watcher() {
    let server = start_server(server_config()).await;
    let port = server.internal_addr().port();
    let secret = secret_file();
    let (o, _oe) = ok(
        "observer",
        Member::connect(member_config(&server, "io", "observer")).await,
    );
    let mut replier = cli(
        port,
        &secret,
        &[
            "reply",
            "--as",
            "ir/replier",
            "--join",
            "workers",
            "--command",
            "tr a-z A-Z",
            "--count",
            "1",
        ],
    )
    .spawn()
    .unwrap();
    let mut watcher = cli(
        port,
        &secret,
        &[
            "watch", "--as", "iw/w", "--topic", "cache/", "--count", "1", "--json",
        ],
    )
    .spawn()
    .unwrap();
    wait_member(&o, "ir/replier").await;
    wait_member(&o, "iw/w").await;
    // The replier joins its group and the watcher subscribes after they
    // register: give them a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (code, out, err) = run(cli(
        port,
        &secret,
        &["request", "--to", "anycast:workers", "hello"],
    ))
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "HELLO");
    let status = bounded("replier exits after --count 1", replier.wait())
        .await
        .unwrap();
    assert!(status.success());

    let (code, _, err) = run(cli(
        port,
        &secret,
        &["publish", "--topic", "other/x", "not for the watcher"],
    ))
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(cli(
        port,
        &secret,
        &["publish", "--topic", "cache/invalidate", "k1"],
    ))
    .await;
    assert_eq!(code, 0, "{err}");
    let mut out = String::new();
    watcher
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    let status = bounded("watcher exits after --count 1", watcher.wait())
        .await
        .unwrap();
    assert!(status.success());
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(v["topic"], "cache/invalidate");
    assert_eq!(v["payload"], "k1");

    // Nobody answers: exit 4 after the timeout.
    let (code, _, err) = run(cli(
        port,
        &secret,
        &["request", "--timeout-ms", "300", "--to", "io/observer", "?"],
    ))
    .await;
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("no reply came before the request's deadline"),
        "{err}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn serve_prints_its_effective_config_as_toml_it_accepts() {
    let dir = secret_file();
    let dir = dir.parent().unwrap().to_path_buf();
    let file = dir.join("switchboard.toml");
    std::fs::write(
        &file,
        "cluster = \"c1\"\n[server]\nheartbeat_interval_ms = 300\n",
    )
    .unwrap();
    let mut c = Command::new(switchboard_tests::switchboard_bin());
    c.args(["serve", "--print-config", "--config"])
        .arg(&file)
        .env_remove("SWITCHBOARD_CLUSTER")
        .args(["--external", "127.0.0.1:8123"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (code, out, err) = run(c).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("heartbeat_interval_ms = 300"), "{out}");
    assert!(out.contains("cluster = \"c1\""), "{out}");
    assert!(out.contains("external = \"127.0.0.1:8123\""), "{out}");
    // The output is a config file `--config` accepts, with the same values.
    let parsed = switchboard_server::config::FileConfig::parse(&out).unwrap();
    assert_eq!(parsed.server.heartbeat_interval_ms, Some(300));
    assert_eq!(parsed.cluster.as_deref(), Some("c1"));
}
