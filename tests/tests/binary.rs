//! The built `switchboard` binary as a child process: serve on defaults
//! given by flags and a config file, answer HTTP, survive `kill -9` and a
//! restart on the same port with every member re-registering by itself and
//! no acknowledged message lost or delivered twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use switchboard_client::{member, Event, Member, MemberConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(15);

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "switchboard-binary-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts `switchboard serve` and returns it with its bound addresses.
async fn serve(dir: &Path, internal: &str) -> (Child, String, String) {
    for _attempt in 0..20 {
        let mut child = Command::new(switchboard_tests::switchboard_bin())
            .arg("serve")
            .args(["--internal", internal, "--external", "127.0.0.1:0"])
            .arg("--config")
            .arg(dir.join("switchboard.toml"))
            .arg("--secret-file")
            .arg(dir.join("secret"))
            .env("SWITCHBOARD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(WAIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("switchboard: listening ") {
                    let mut internal = String::new();
                    let mut external = String::new();
                    for kv in rest.split_whitespace() {
                        if let Some(v) = kv.strip_prefix("internal=") {
                            internal = v.to_owned();
                        }
                        if let Some(v) = kv.strip_prefix("external=") {
                            external = v.to_owned();
                        }
                    }
                    return Some((internal, external));
                }
            }
            None
        })
        .await;
        if let Ok(Some((i, e))) = found {
            // Keep draining stdout so the child never blocks on it.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, i, e);
        }
        // The port may still be held for a moment after a kill: retry.
        let _ = child.kill().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("switchboard serve did not start");
}

async fn http_get(addr: &str, path: &str) -> (u16, String) {
    tokio::time::timeout(WAIT, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, body.to_owned())
    })
    .await
    .unwrap()
}

fn config(internal: &str, dir: &Path, instance: &str, process: &str) -> MemberConfig {
    let secret = switchboard_runtime::secret::load(&dir.join("secret")).unwrap();
    let mut c = MemberConfig::new(internal, "bin", secret, instance, process);
    c.core.reconnect_min_ms = 20;
    c.core.reconnect_max_ms = 200;
    c.connect_timeout = WAIT;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_loses_no_acknowledged_message() {
    let dir = temp_dir();
    std::fs::write(
        dir.join("switchboard.toml"),
        "cluster = \"bin\"\n[server]\nheartbeat_interval_ms = 200\nheartbeat_timeout_ms = 2000\nresume_window_ms = 1000\nrestart_grace_ms = 3000\n",
    )
    .unwrap();
    let (mut child, internal, mut external) = serve(&dir, "127.0.0.1:0").await;
    assert_eq!(
        http_get(&external, "/healthz").await,
        (200, "ok".to_owned())
    );

    let (sender, _s_events) = Member::connect(config(&internal, &dir, "i1", "w0"))
        .await
        .unwrap();
    let (receiver, mut r_events) = Member::connect(config(&internal, &dir, "i2", "w0"))
        .await
        .unwrap();
    let (_third, _t_events) = Member::connect(config(&internal, &dir, "i3", "w0"))
        .await
        .unwrap();
    let (code, body) = http_get(&external, "/members").await;
    assert_eq!(code, 200);
    let view: switchboard_server::MembersView = serde_json::from_str(&body).unwrap();
    assert_eq!(view.members.len(), 3);

    const N: usize = 400;
    let send = tokio::spawn(async move {
        let mut acked = Vec::new();
        for k in 0..N {
            let r =
                tokio::time::timeout(WAIT, sender.send(member("i2", "w0"), format!("m{k}"))).await;
            match r {
                Ok(Ok(_)) => acked.push(k),
                Ok(Err(e)) => panic!("send m{k}: {e}"),
                Err(_) => panic!("send m{k}: no ack within {WAIT:?}"),
            }
            if k % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        (sender, acked)
    });

    let mut got: Vec<String> = Vec::new();
    let mut killed = false;
    let mut reregistered = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while got.last().map(String::as_str) != Some(&format!("m{}", N - 1)) {
        let ev = tokio::time::timeout_at(deadline, r_events.next())
            .await
            .expect("receiver timed out")
            .expect("receiver stream ended");
        match ev {
            Event::Message(m) => got.push(String::from_utf8_lossy(&m.payload).into_owned()),
            // The first registration is in the stream too.
            Event::Registered { session_lost, .. } => reregistered |= session_lost,
            _ => {}
        }
        if !killed && got.len() == N / 3 {
            // SIGKILL: no goodbye, no flush, all server state gone.
            child.kill().await.unwrap();
            killed = true;
            let (c, i2, e2) = serve(&dir, &internal).await;
            assert_eq!(i2, internal);
            child = c;
            external = e2;
        }
    }
    let (_sender, acked) = tokio::time::timeout(WAIT, send).await.unwrap().unwrap();
    assert_eq!(acked.len(), N);
    assert!(killed && reregistered);
    let want: Vec<String> = (0..N).map(|k| format!("m{k}")).collect();
    assert_eq!(
        got, want,
        "every message once, in order, across the server restart"
    );
    // The view converged on the new server: all three are back.
    let converged = tokio::time::timeout(WAIT, async {
        loop {
            let (_, body) = http_get(&external, "/members").await;
            let v: switchboard_server::MembersView = serde_json::from_str(&body).unwrap();
            if v.members.len() == 3 && v.members.iter().all(|m| m.attached) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(converged.is_ok(), "view did not converge to 3 members");
    receiver.goodbye().await;
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A first start (no run marker) has no restart grace: a message to a
/// member that is not there is refused at once, not held for the grace;
/// after a crash (the marker stays) the grace applies again.
#[tokio::test]
async fn a_first_start_holds_nothing_for_the_restart_grace() {
    let dir = temp_dir();
    std::fs::write(
        dir.join("switchboard.toml"),
        "cluster = \"bin\"\n[server]\nrestart_grace_ms = 10000\n",
    )
    .unwrap();
    let (mut server, internal, _) = serve(&dir, "127.0.0.1:0").await;
    assert!(dir.join("server.running").exists());
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(
        WAIT,
        Command::new(switchboard_tests::switchboard_bin())
            .args([
                "send",
                "--to",
                "ghost/x",
                "--cluster",
                "bin",
                "--internal",
                &internal,
                "hi",
            ])
            .arg("--secret-file")
            .arg(dir.join("secret"))
            .env("SWITCHBOARD_LOG", "warn")
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(
        took < Duration::from_secs(5),
        "refused after {took:?}: held for the 10 s grace"
    );
    // A crash leaves the marker: the next start is a restart.
    server.kill().await.unwrap();
    assert!(dir.join("server.running").exists());
    let mut again = Command::new(switchboard_tests::switchboard_bin())
        .arg("serve")
        .args(["--internal", "127.0.0.1:0", "--external", "127.0.0.1:0"])
        .arg("--config")
        .arg(dir.join("switchboard.toml"))
        .arg("--secret-file")
        .arg(dir.join("secret"))
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(again.stdout.take().unwrap()).lines();
    let said = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("restart grace") || line.contains("first start") {
                return line;
            }
        }
        String::new()
    })
    .await
    .unwrap();
    assert!(said.contains("restart after a crash"), "{said}");
    let _ = again.kill().await;
}
