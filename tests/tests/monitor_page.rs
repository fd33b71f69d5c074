//! The monitor page in a real browser: headless Chromium opens `/` on a
//! server with members and the DOM it builds must show the members, a
//! group and a live event. Skipped, with a notice, where
//! `/usr/bin/chromium` is not installed (`apt-get install -y chromium`).
//!
//! `SWITCHBOARD_SCREENSHOT=path.png` also saves a screenshot of the page.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use switchboard_tests::{member_config, ok, server_config, start_server, Node};
use tokio::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Longest a Chromium run may take.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs headless Chromium with `args` after the common flags; returns its
/// standard output.
async fn chromium(profile: &Path, args: &[String]) -> String {
    let mut cmd = Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .kill_on_drop(true);
    let child = ok("start chromium", cmd.spawn());
    let out = match tokio::time::timeout(BROWSER_TIMEOUT, child.wait_with_output()).await {
        Ok(r) => ok("chromium output", r),
        Err(_) => panic!("chromium did not finish within {BROWSER_TIMEOUT:?}"),
    };
    assert!(out.status.success(), "chromium failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_monitor_page_shows_the_cluster_in_a_browser() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("SKIPPED: {CHROMIUM} not found (apt-get install -y chromium)");
        return;
    }
    let srv = start_server(server_config()).await;
    let mut nodes = Vec::new();
    for (instance, process, group, service, load) in [
        ("app1", "dia0", "web", "http", 35),
        ("app1", "dia1", "web", "http", 60),
        ("app2", "dia0", "web", "http", 20),
        ("app2", "btc0", "batch", "jobs", 5),
    ] {
        let n = Node::connect(member_config(&srv, instance, process)).await;
        ok("join", n.member.join(group).await);
        ok("service", n.member.service_state(service, true).await);
        ok("load", n.member.set_load(load).await);
        nodes.push(n);
    }
    // Live traffic while the page is open: messages and custom events.
    let sender = nodes[0].member.clone();
    let traffic = tokio::spawn(async move {
        for i in 0u32.. {
            let _ = sender.multicast("web", format!("w{i}")).await;
            if i % 10 == 0 {
                let _ = sender.publish_custom("deploy", vec![0u8; 16]).await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    // Headless Chromium's virtual time stands still while a request is
    // open: the page's event streams are made to end every 300 ms (the
    // page reconnects from its last event, as after any drop).
    let url = format!("http://{}/?stream_ms=300", srv.external_addr());
    let profile = std::env::temp_dir().join(format!("sb-chromium-{}", std::process::id()));
    let dom = chromium(
        &profile,
        &[
            "--virtual-time-budget=4000".to_owned(),
            "--dump-dom".to_owned(),
            url.clone(),
        ],
    )
    .await;
    for name in ["app1/dia0", "app1/dia1", "app2/dia0", "app2/btc0"] {
        assert!(
            dom.contains(&format!("data-name=\"{name}\"")),
            "member {name} not in the DOM:\n{dom}"
        );
    }
    assert!(
        dom.contains("<li class=\"group\"><span><span class=\"tag\">web</span>"),
        "group web not listed:\n{dom}"
    );
    assert!(
        dom.contains("class=\"event\"") && dom.contains("member joined"),
        "no live event in the DOM:\n{dom}"
    );
    if let Some(path) = std::env::var_os("SWITCHBOARD_SCREENSHOT") {
        let shot = Path::new(&path);
        let abs = std::env::current_dir()
            .map(|d| d.join(shot))
            .unwrap_or_else(|_| shot.to_path_buf());
        chromium(
            &profile,
            &[
                "--virtual-time-budget=6000".to_owned(),
                "--window-size=1280,800".to_owned(),
                format!("--screenshot={}", abs.display()),
                url,
            ],
        )
        .await;
        assert!(abs.exists(), "no screenshot at {}", abs.display());
    }
    traffic.abort();
    let _ = std::fs::remove_dir_all(&profile);
    srv.shutdown().await;
}
