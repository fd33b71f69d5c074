//! The client library's example work process (client/examples/) run
//! against a server: it answers a request sent to its group and handles a
//! cache invalidation published on its topic.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../../client/examples/work_process.rs"]
mod work_process;

use std::time::Duration;

use switchboard_client::{Address, Member};
use switchboard_tests::{bounded, member_config, ok, server_config, start_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_work_process_answers_requests_and_handles_events() {
    let server = start_server(server_config()).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(work_process::run(
        member_config(&server, "shop", "w1"),
        async {
            let _ = stop_rx.await;
        },
    ));
    let (client, _events) = ok(
        "client",
        Member::connect(member_config(&server, "front", "web")).await,
    );
    // The worker joins `workers` after it registers: ask until it answers.
    let reply = bounded("a reply from the worker", async {
        loop {
            match client
                .request(
                    Address::Anycast("workers".into()),
                    "apple",
                    Duration::from_secs(2),
                )
                .await
            {
                Ok(m) => return m,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    assert_eq!(&reply.payload[..], b"price of apple: 42");
    assert_eq!(reply.sender(), "shop/w1");
    ok(
        "publish",
        client.publish_custom("cache/invalidate", "apple").await,
    );
    ok(
        "publish",
        client.publish_custom("other/topic", "ignored").await,
    );
    // A fence: once this request is answered the invalidation before it
    // was handled (one stream order).
    ok(
        "fence",
        client
            .request(
                Address::Anycast("workers".into()),
                "pear",
                Duration::from_secs(5),
            )
            .await,
    );
    stop_tx.send(()).unwrap();
    let summary = ok("worker", bounded("worker stops", worker).await.unwrap());
    assert!(summary.answered >= 2, "{summary:?}");
    // Its own start-up announcement and the one published here.
    assert_eq!(summary.invalidations, 2, "{summary:?}");
    client.goodbye().await;
    server.shutdown().await;
}
