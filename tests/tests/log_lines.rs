//! What the built server writes to its log under repeated refusals: one
//! line with the peer per interval, the rest counted in the summary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use switchboard_client::{Member, MemberConfig};
use switchboard_core::auth::Secret;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn clients_holding_another_secret_are_logged_once_per_interval() {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-log-lines-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(switchboard_tests::switchboard_bin())
        .arg("serve")
        .args(["--internal", "127.0.0.1:0", "--external", "127.0.0.1:0"])
        .args(["--cluster", "logs"])
        .arg("--secret-file")
        .arg(dir.join("secret"))
        .env("SWITCHBOARD_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let internal = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("switchboard: listening ") {
                for kv in rest.split_whitespace() {
                    if let Some(v) = kv.strip_prefix("internal=") {
                        return v.to_owned();
                    }
                }
            }
        }
        panic!("no listening line")
    })
    .await
    .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    // Six members holding another secret, one after the other: each
    // checks the server's proof, fails, and closes.
    let wrong = Secret::new(vec![1u8; 32]).unwrap();
    for i in 0..6 {
        let mut cfg =
            MemberConfig::new(internal.clone(), "logs", wrong.clone(), "w", format!("{i}"));
        cfg.connect_timeout = Duration::from_millis(300);
        let r = tokio::time::timeout(Duration::from_secs(10), Member::connect(cfg)).await;
        assert!(matches!(r, Ok(Err(_))), "a wrong secret must be refused");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.start_kill().unwrap();
    let _ = child.wait().await;
    let log = log.await.unwrap();
    let lines = log
        .lines()
        .filter(|l| l.contains("it holds another secret for this credential"))
        .count();
    assert_eq!(
        lines, 1,
        "one line per interval, not one per client:\n{log}"
    );
}
