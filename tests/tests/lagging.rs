//! A member whose event stream and subscription are not read keeps
//! working: cluster events it has no room for are dropped, counted and
//! announced by a lag notice, and its sends, acks and deliveries go on.
#![allow(clippy::unwrap_used)]

use switchboard_client::{member, ClusterEvent, Event, Filter, RecvError};
use switchboard_tests::{bounded, member_config, ok, server_config, start_server};

const QUEUE: usize = 64;
const EVENTS: usize = 10 * QUEUE + 360;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_stream_and_subscription_lag_instead_of_stalling_the_member() {
    let server = start_server(server_config()).await;
    let (b, _b_events) = ok(
        "b",
        switchboard_client::Member::connect(member_config(&server, "ib", "b")).await,
    );
    let mut cfg = member_config(&server, "ia", "a");
    cfg.events_max = QUEUE;
    let (a, mut a_events) = ok("a", switchboard_client::Member::connect(cfg).await);
    let mut sub = ok(
        "subscribe",
        bounded("subscribe", a.events(Filter::all())).await,
    );

    // Neither a's stream nor its subscription is read while b publishes
    // more than ten times their capacity; a keeps sending and getting acks.
    for i in 0..EVENTS {
        ok(
            "publish",
            bounded("publish", b.publish_custom("load/tick", format!("e{i}"))).await,
        );
        if i % 100 == 99 {
            ok(
                "a sends while lagging",
                bounded("a's send", a.send(member("ib", "b"), "still here")).await,
            );
        }
    }
    let stats = a.stats();
    assert!(
        stats.events_dropped >= 2 * (EVENTS - QUEUE) as u64,
        "{stats:?}"
    );

    // The main stream: what fitted, then one lag notice for the rest.
    let mut custom = 0u64;
    let mut missed = 0u64;
    while custom + missed < EVENTS as u64 {
        match bounded("a's stream", a_events.next()).await {
            Some(Event::Cluster(n)) if matches!(n.event, ClusterEvent::Custom { .. }) => {
                custom += 1
            }
            Some(Event::Lagged { missed: k }) => missed += k,
            Some(_) => {}
            None => panic!("a's stream ended"),
        }
    }
    assert_eq!(custom + missed, EVENTS as u64);
    assert!(missed >= (EVENTS - QUEUE) as u64, "missed {missed}");

    // The subscription: what fitted, then `Lagged(n)`, then live again.
    let mut got = 0u64;
    let mut sub_missed = 0u64;
    while got + sub_missed < EVENTS as u64 {
        match bounded("a's subscription", sub.recv()).await {
            Ok(_) => got += 1,
            Err(RecvError::Lagged(k)) => sub_missed += k,
            Err(RecvError::Closed) => panic!("subscription closed"),
        }
    }
    assert_eq!(got + sub_missed, EVENTS as u64);
    assert!(sub_missed >= (EVENTS - QUEUE) as u64);
    assert_eq!(sub.lagged(), sub_missed);
    assert_eq!(a.stats().events_dropped, missed + sub_missed);

    // Both are live again, and a message from b arrives named.
    ok("after", b.publish_custom("load/tick", "after").await);
    let n = ok("sub after", bounded("sub", sub.recv()).await);
    assert!(matches!(&n.event, ClusterEvent::Custom { payload, .. } if &payload[..] == b"after"));
    // The outcome counts the message once a's application took it: it is
    // awaited while a reads.
    let sent = tokio::spawn(async move {
        let outcome = bounded("b to a", b.send_confirmed(member("ia", "a"), "hi a")).await;
        (b, outcome)
    });
    loop {
        match bounded("a's stream", a_events.next()).await {
            Some(Event::Message(m)) => {
                assert_eq!(&m.payload[..], b"hi a");
                assert_eq!(m.sender(), "ib/b");
                break;
            }
            Some(_) => {}
            None => panic!("a's stream ended"),
        }
    }
    let (b, outcome) = sent.await.expect("the sender task");
    let outcome = ok("b to a", outcome);
    assert!(outcome.is_complete(), "{outcome:?}");
    a.goodbye().await;
    b.goodbye().await;
    server.shutdown().await;
}
