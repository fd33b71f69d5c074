//! `switchboard members` and `switchboard top` (the built binary) against
//! a server with members: both read the `/v1` API of the external port.

use std::process::Stdio;
use std::time::Duration;

use switchboard_tests::{member_config, ok, server_config, start_server, switchboard_bin, Node};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

async fn cluster() -> (switchboard_server::ServerHandle, Vec<Node>) {
    let srv = start_server(server_config()).await;
    let mut nodes = Vec::new();
    // Registered out of name order: the listing sorts them.
    for (i, p) in [("zeta", "w0"), ("alpha", "w1"), ("alpha", "w0")] {
        let n = Node::connect(member_config(&srv, i, p)).await;
        ok("join", n.member.join("web").await);
        nodes.push(n);
    }
    (srv, nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_lists_the_v1_members_sorted_by_name() {
    let (srv, nodes) = cluster().await;
    let out = ok(
        "run switchboard members",
        Command::new(switchboard_bin())
            .args(["members", "--external", &srv.external_addr().to_string()])
            .env_remove("SWITCHBOARD_LOG")
            .output()
            .await,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.contains('/'))
        .collect();
    assert_eq!(rows, ["alpha/w0", "alpha/w1", "zeta/w0"], "{text}");
    drop(nodes);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_shows_the_rates_of_the_busy_member() {
    let (srv, nodes) = cluster().await;
    let sender = nodes[0].member.clone();
    let traffic = tokio::spawn(async move {
        for i in 0u32.. {
            let _ = sender
                .send(switchboard_client::member("alpha", "w0"), format!("t{i}"))
                .await;
        }
    });
    let mut child = ok(
        "start switchboard top",
        Command::new(switchboard_bin())
            .args([
                "top",
                "--interval-ms",
                "300",
                "--external",
                &srv.external_addr().to_string(),
            ])
            .env_remove("SWITCHBOARD_LOG")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn(),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ok("stop top", child.start_kill());
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        ok("read top's output", out.read_to_string(&mut text).await);
    }
    traffic.abort();
    // The last screen: the busy sender first, with a rate above zero.
    let last = text.rsplit("MEMBER").next().unwrap_or_default();
    let first = last
        .lines()
        .skip(1) // the rest of the header line
        .find(|l| l.contains('/'))
        .unwrap_or_else(|| panic!("no member row in\n{text}"));
    let cols: Vec<&str> = first.split_whitespace().collect();
    assert!(
        cols[0] == "zeta/w0" || cols[0] == "alpha/w0",
        "a busy member first: {first}"
    );
    assert!(
        cols.iter().skip(4).take(2).any(|c| *c != "0"),
        "a rate above zero: {first}\n{text}"
    );
    drop(nodes);
    srv.shutdown().await;
}
