//! A real cluster over TCP on 127.0.0.1: 3 instances × 4 work processes,
//! every addressing mode, request/reply, events and notification handlers,
//! group join/leave, resume after a dropped connection, a crashed member,
//! and a slow consumer evicted by name.

use std::collections::BTreeSet;
use std::time::Duration;

use switchboard_client::{member, Error, Event};
use switchboard_core::frame::{Address, ClusterEvent, EventKind, FailReason, Filter, NackReason};
use switchboard_server::ServerHandle;
use switchboard_tests::{bounded, member_config, ok, server_config, start_server, Node};
use tokio::sync::mpsc;

const INSTANCES: usize = 3;
const PROCESSES: usize = 4;

/// Starts 3 × 4 members subscribed to every event; `w3` of every instance
/// joins group `g`.
async fn cluster(server: &ServerHandle) -> Vec<Node> {
    let mut nodes = Vec::new();
    for i in 1..=INSTANCES {
        for p in 0..PROCESSES {
            let n = Node::connect(member_config(server, &format!("i{i}"), &format!("w{p}"))).await;
            // Group, instance, service and custom events arrive only for a
            // subscription; membership events always do.
            ok("subscribe", n.member.on_event(Filter::all(), |_| {}).await);
            if p == 3 {
                ok("join", n.member.join("g").await);
            }
            nodes.push(n);
        }
    }
    // Every member has seen everyone join (and `g` complete) before the
    // scenario starts: the last join is the fence.
    let last = nodes.len() - 1;
    let last_id = nodes[last].member.member_id();
    for n in nodes.iter_mut() {
        if n.member.member_id() == last_id {
            continue;
        }
        n.wait_for("the last member's group join", |ev| match ev {
            Event::Cluster(c) => match &c.event {
                ClusterEvent::GroupJoined { member_id, .. } if Some(*member_id) == last_id => {
                    Some(())
                }
                _ => None,
            },
            _ => None,
        })
        .await;
    }
    nodes
}

fn idx(instance: usize, process: usize) -> usize {
    (instance - 1) * PROCESSES + process
}

/// Sends a broadcast fence from `from` and waits until every other node
/// has it: everything `from` sent before has then been delivered (FIFO per
/// sender), so the nodes' `seen` lists are complete.
async fn fence(nodes: &mut [Node], from: usize, tag: &str) {
    ok("fence", nodes[from].member.broadcast(tag.to_owned()).await);
    for (i, n) in nodes.iter_mut().enumerate() {
        if i != from {
            n.wait_message(tag).await;
        }
    }
}

fn received(nodes: &[Node], payload: &str) -> BTreeSet<usize> {
    nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.payloads().iter().any(|p| p == payload))
        .map(|(i, _)| i)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_addressing_mode_reaches_exactly_its_addressees() {
    let server = start_server(server_config()).await;
    let mut nodes = cluster(&server).await;
    let s = idx(1, 0);
    let me = nodes[s].member.clone();

    ok("unicast", me.send(member("i2", "w1"), "by-name").await);
    let id = nodes[idx(3, 0)].member.member_id().unwrap_or_default();
    ok("by id", me.send(Address::MemberId(id), "by-id").await);
    ok("instance", me.send_to_instance("i2", "to-i2").await);
    ok("group", me.multicast("g", "to-g").await);
    ok("anycast", me.anycast("g", "any-g").await);
    ok("broadcast", me.broadcast("to-all").await);
    let outcome = ok(
        "confirmed",
        me.send_confirmed(Address::Group("g".into()), "confirmed-g")
            .await,
    );
    assert_eq!(outcome.delivered, 3);
    assert!(outcome.is_complete(), "{outcome:?}");
    fence(&mut nodes, s, "fence-1").await;

    let all_but_sender: BTreeSet<usize> = (0..nodes.len()).filter(|i| *i != s).collect();
    let group: BTreeSet<usize> = (1..=INSTANCES).map(|i| idx(i, 3)).collect();
    assert_eq!(received(&nodes, "by-name"), BTreeSet::from([idx(2, 1)]));
    assert_eq!(received(&nodes, "by-id"), BTreeSet::from([idx(3, 0)]));
    assert_eq!(
        received(&nodes, "to-i2"),
        (0..PROCESSES).map(|p| idx(2, p)).collect()
    );
    assert_eq!(received(&nodes, "to-g"), group);
    assert_eq!(received(&nodes, "confirmed-g"), group);
    let any = received(&nodes, "any-g");
    assert_eq!(any.len(), 1, "anycast reached {any:?}");
    assert!(any.is_subset(&group));
    assert_eq!(received(&nodes, "to-all"), all_but_sender);

    // Every receiver saw this sender's messages in send order (G3).
    let order = [
        "by-name",
        "by-id",
        "to-i2",
        "to-g",
        "any-g",
        "to-all",
        "confirmed-g",
        "fence-1",
    ];
    for n in &nodes {
        let got: Vec<String> = n
            .payloads()
            .into_iter()
            .filter(|p| order.contains(&p.as_str()))
            .collect();
        let want: Vec<&str> = order
            .iter()
            .copied()
            .filter(|o| got.iter().any(|g| g == o))
            .collect();
        assert_eq!(got, want, "{} got {got:?}", n.name());
    }

    // A destination nobody ever had is NACKed.
    match me.send(member("nowhere", "nobody"), "lost").await {
        Err(Error::Nacked { reason, .. }) => assert_eq!(reason, NackReason::UnknownDestination),
        other => panic!("expected a NACK, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_get_replies_across_instances() {
    let server = start_server(server_config()).await;
    let mut nodes = cluster(&server).await;
    let asker = nodes[idx(1, 1)].member.clone();
    let ask = tokio::spawn(async move {
        asker
            .request(member("i3", "w2"), "price?", Duration::from_secs(5))
            .await
    });
    let req = nodes[idx(3, 2)].wait_message("price?").await;
    assert!(req.is_request());
    ok(
        "reply",
        nodes[idx(3, 2)].member.reply(req.reply_to(), "42").await,
    );
    let reply = ok(
        "request",
        bounded("request", ask).await.map_err(|e| e.to_string()),
    );
    let reply = ok("reply", reply);
    assert_eq!(&reply.payload[..], b"42");
    assert_eq!(Some(reply.from), nodes[idx(3, 2)].member.member_id());

    // Nobody answers: the request times out.
    let r = nodes[idx(1, 1)]
        .member
        .request(member("i2", "w0"), "silence", Duration::from_millis(300))
        .await;
    assert!(matches!(r, Err(Error::Request(_))), "{r:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_subscribers_and_handlers_in_one_order() {
    let server = start_server(server_config()).await;
    let mut nodes = cluster(&server).await;
    // A subscription stream on i2/w0, a notification handler on i3/w0.
    let mut sub = ok(
        "subscribe",
        nodes[idx(2, 0)]
            .member
            .events(Filter::kinds(&[EventKind::Service, EventKind::Custom]))
            .await,
    );
    let (htx, mut hrx) = mpsc::unbounded_channel();
    let filter = Filter {
        kinds: EventKind::Custom.bit(),
        topic_prefix: "cache/".into(),
    };
    ok(
        "on_event",
        nodes[idx(3, 0)]
            .member
            .on_event(filter, move |n| {
                let _ = htx.send(n.event.clone());
            })
            .await,
    );
    let publisher = nodes[idx(1, 2)].member.clone();
    // A fence so that both subscriptions are in place before publishing.
    fence(&mut nodes, idx(2, 0), "subs-1").await;
    fence(&mut nodes, idx(3, 0), "subs-2").await;

    ok(
        "publish",
        publisher.publish_custom("cache/invalidate", "k1").await,
    );
    ok("service", publisher.service_state("ICM", false).await);
    ok(
        "publish",
        publisher.publish_custom("other/topic", "x").await,
    );

    let first = ok("sub", bounded("sub", sub.next()).await.ok_or("ended"));
    assert!(
        matches!(&first.event, ClusterEvent::Custom { topic, .. } if topic == "cache/invalidate")
    );
    let second = ok("sub", bounded("sub", sub.next()).await.ok_or("ended"));
    assert!(matches!(
        &second.event,
        ClusterEvent::ServiceState { up: false, .. }
    ));
    let third = ok("sub", bounded("sub", sub.next()).await.ok_or("ended"));
    assert!(matches!(&third.event, ClusterEvent::Custom { topic, .. } if topic == "other/topic"));
    assert!(first.gseq < second.gseq && second.gseq < third.gseq);

    let handled = ok(
        "handler",
        bounded("handler", hrx.recv()).await.ok_or("ended"),
    );
    assert!(matches!(&handled, ClusterEvent::Custom { topic, .. } if topic == "cache/invalidate"));

    // Group join and leave reach everyone, in the same order everywhere.
    let joiner = nodes[idx(2, 3)].member.clone();
    ok("join", joiner.join("h").await);
    ok("leave", joiner.leave("h").await);
    ok("leave g", joiner.leave("g").await);
    let jid = joiner.member_id();
    for n in nodes.iter_mut() {
        n.wait_for("leave of g", |ev| match ev {
            Event::Cluster(c) => match &c.event {
                ClusterEvent::GroupLeft { member_id, group }
                    if Some(*member_id) == jid && group == "g" =>
                {
                    Some(())
                }
                _ => None,
            },
            _ => None,
        })
        .await;
    }
    // G4/G7: the cluster events every member saw, in the same order.
    let order = |n: &Node| -> Vec<u64> {
        n.seen
            .iter()
            .filter_map(|e| match e {
                Event::Cluster(c) => Some(c.gseq),
                _ => None,
            })
            .collect()
    };
    let reference: Vec<u64> = order(&nodes[0]);
    for n in &nodes[1..] {
        let mine = order(n);
        let common: Vec<u64> = reference
            .iter()
            .copied()
            .filter(|g| mine.contains(g))
            .collect();
        let mine_common: Vec<u64> = mine
            .iter()
            .copied()
            .filter(|g| reference.contains(g))
            .collect();
        assert_eq!(
            common,
            mine_common,
            "{} disagrees on the event order",
            n.name()
        );
    }
    // The group multicast no longer reaches the member that left.
    ok("to g", nodes[0].member.multicast("g", "after-leave").await);
    fence(&mut nodes, 0, "fence-g").await;
    let want: BTreeSet<usize> = [idx(1, 3), idx(3, 3)].into();
    assert_eq!(received(&nodes, "after-leave"), want);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_without_loss_or_duplicates() {
    let server = start_server(server_config()).await;
    let mut nodes = cluster(&server).await;
    let sender = nodes[idx(1, 0)].member.clone();
    let receiver = idx(2, 0);
    const N: usize = 300;
    let send = tokio::spawn(async move {
        for k in 0..N {
            sender.send(member("i2", "w0"), format!("m{k}")).await?;
        }
        Ok::<(), Error>(())
    });
    nodes[receiver].wait_message("m50").await;
    nodes[receiver].member.drop_connection().await;
    nodes[receiver]
        .wait_for("resume", |ev| {
            matches!(ev, Event::Resumed { .. }).then_some(())
        })
        .await;
    let sent = ok(
        "sends",
        bounded("sends", send).await.map_err(|e| e.to_string()),
    );
    ok("sends", sent);
    nodes[receiver].wait_message(&format!("m{}", N - 1)).await;
    let got: Vec<String> = nodes[receiver]
        .payloads()
        .into_iter()
        .filter(|p| p.starts_with('m'))
        .collect();
    let want: Vec<String> = (0..N).map(|k| format!("m{k}")).collect();
    assert_eq!(got, want, "lost, duplicated or reordered across the resume");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_member_is_declared_failed_and_comes_back_as_a_new_incarnation() {
    let server = start_server(server_config()).await;
    let mut nodes = cluster(&server).await;
    let victim = nodes.remove(idx(3, 1));
    let vid = victim.member.member_id();
    let old_incarnation = victim.member.incarnation();
    victim.member.kill().await;
    let started = tokio::time::Instant::now();
    for n in nodes.iter_mut() {
        n.wait_for("MemberFailed", |ev| match ev {
            Event::Cluster(c) => match &c.event {
                ClusterEvent::MemberFailed { member_id, reason } if Some(*member_id) == vid => {
                    Some(*reason)
                }
                _ => None,
            },
            _ => None,
        })
        .await;
    }
    // Resume window 1 s, plus scheduling slack.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );

    let back = Node::connect(member_config(&server, "i3", "w1")).await;
    assert_ne!(back.member.incarnation(), old_incarnation);
    let new_id = back.member.member_id();
    assert_ne!(new_id, vid);
    for n in nodes.iter_mut() {
        let inc = n
            .wait_for("MemberJoined of the new incarnation", |ev| match ev {
                Event::Cluster(c) => match &c.event {
                    ClusterEvent::MemberJoined(m) if Some(m.member_id) == new_id => {
                        Some(m.incarnation)
                    }
                    _ => None,
                },
                _ => None,
            })
            .await;
        assert_eq!(inc, back.member.incarnation());
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_reading_is_evicted_by_name_and_others_keep_going() {
    let mut config = server_config();
    config.member_queue_items_max = 200;
    config.send_window_items = 64;
    config.slow_consumer_grace_ms = 300;
    // Keep the slow member's heartbeats from ending it first.
    config.heartbeat_timeout_ms = 5_000;
    let server = start_server(config).await;
    let mut nodes = cluster(&server).await;

    // The slow member: a tiny event queue nobody reads.
    let mut slow_cfg = member_config(&server, "slow", "s0");
    slow_cfg.events_max = 8;
    let (slow, _unread_stream) = ok("slow", switchboard_client::Member::connect(slow_cfg).await);
    let slow_id = slow.member_id();

    let sender = nodes[idx(1, 0)].member.clone();
    // The sender pipelines far more than the slow member's queue limit; it
    // is throttled while the slow member is over its limit, and released
    // by the eviction (then its sends to the gone member are NACKed).
    let flood = tokio::spawn(async move {
        let mut acked = 0usize;
        for k in 0..2_000 {
            match sender.send(member("slow", "s0"), format!("f{k}")).await {
                Ok(_) => acked += 1,
                Err(Error::Nacked { reason, .. }) => return (acked, Some(reason)),
                Err(e) => panic!("flood: {e}"),
            }
        }
        (acked, None)
    });
    // Meanwhile another pair keeps exchanging messages.
    let a = nodes[idx(2, 0)].member.clone();
    for k in 0..100 {
        ok(
            "other pair",
            a.send(member("i2", "w1"), format!("o{k}")).await,
        );
    }
    nodes[idx(2, 1)].wait_message("o99").await;

    let reason = nodes[idx(3, 0)]
        .wait_for("eviction", |ev| match ev {
            Event::Cluster(c) => match &c.event {
                ClusterEvent::MemberFailed { member_id, reason } if Some(*member_id) == slow_id => {
                    Some(*reason)
                }
                _ => None,
            },
            _ => None,
        })
        .await;
    assert_eq!(reason, FailReason::SlowConsumer);
    let (acked, nack) = ok(
        "flood",
        bounded("flood", flood).await.map_err(|e| e.to_string()),
    );
    assert!(
        acked >= 200,
        "only {acked} messages accepted before the eviction"
    );
    // By name, a member that is gone reads as unknown to the core.
    assert!(
        matches!(
            nack,
            Some(NackReason::DestinationGone | NackReason::UnknownDestination)
        ),
        "{nack:?}"
    );
    // The released sender goes on with everyone else.
    ok(
        "after eviction",
        nodes[idx(1, 0)]
            .member
            .send(member("i2", "w1"), "after")
            .await,
    );
    nodes[idx(2, 1)].wait_message("after").await;
    slow.kill().await;
    server.shutdown().await;
}

/// Regression: the sender is throttled, its held frames pass
/// `member_inbox_bytes_max` and the adapter stops reading it (`wants_read`
/// false). The server must not declare the *sender* failed by heartbeat
/// timeout (a member with deferred frames counts as heard) while the slow
/// member is evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelining_sender_to_a_non_reading_member_is_not_declared_failed() {
    let mut config = server_config();
    config.member_queue_items_max = 200;
    config.send_window_items = 64;
    config.slow_consumer_grace_ms = 300;
    // A throttled sender's held frames soon exceed this: the server stops
    // reading its connection (`wants_read`) until the eviction releases it.
    config.member_inbox_bytes_max = 4 * 1024;
    // Keep the slow member's heartbeats from ending it first.
    config.heartbeat_timeout_ms = 5_000;
    let server = start_server(config).await;
    let mut nodes = cluster(&server).await;

    // The slow member: a tiny event queue nobody reads.
    let mut slow_cfg = member_config(&server, "slow", "s0");
    slow_cfg.events_max = 8;
    let (slow, _unread_stream) = ok("slow", switchboard_client::Member::connect(slow_cfg).await);
    let slow_id = slow.member_id();

    let sender = nodes[idx(1, 0)].member.clone();
    // The sender pipelines far more than the slow member's queue limit; it
    // is throttled while the slow member is over its limit, and released
    // by the eviction (then its sends to the gone member are NACKed).
    let flood = tokio::spawn(async move {
        let mut pending = Vec::new();
        for k in 0..2_000 {
            // `try_send` pipelines; a full command queue says `Busy`.
            let mut tries = 0;
            let ack = loop {
                match sender.try_send(member("slow", "s0"), format!("f{k}")) {
                    Ok(f) => break f,
                    Err(Error::Busy) if tries < 10_000 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(e) => panic!("flood: {e}"),
                }
            };
            pending.push(ack);
        }
        let (mut acked, mut nack) = (0usize, None);
        for f in pending {
            match f.await {
                Ok(_) => acked += 1,
                Err(Error::Nacked { reason, .. }) => nack = Some(reason),
                Err(e) => panic!("flood: {e}"),
            }
        }
        (acked, nack)
    });
    // Meanwhile another pair keeps exchanging messages.
    let a = nodes[idx(2, 0)].member.clone();
    for k in 0..100 {
        ok(
            "other pair",
            a.send(member("i2", "w1"), format!("o{k}")).await,
        );
    }
    nodes[idx(2, 1)].wait_message("o99").await;

    let reason = nodes[idx(3, 0)]
        .wait_for("eviction", |ev| match ev {
            Event::Cluster(c) => match &c.event {
                ClusterEvent::MemberFailed { member_id, reason } if Some(*member_id) == slow_id => {
                    Some(*reason)
                }
                _ => None,
            },
            _ => None,
        })
        .await;
    // The slow member goes either as a slow consumer or, when the adapter
    // gave up on its full write queue first, as a lost connection; what
    // this test pins is that the throttled sender is not declared failed.
    assert!(
        matches!(
            reason,
            FailReason::SlowConsumer | FailReason::ConnectionLost
        ),
        "slow member removed as {reason:?}"
    );
    let sender_id = nodes[idx(1, 0)].member.member_id();
    let sender_failed = nodes[idx(3, 0)].seen.iter().any(|e| {
        matches!(e, Event::Cluster(c) if matches!(c.event,
            ClusterEvent::MemberFailed { member_id, .. } if Some(member_id) == sender_id))
    });
    assert!(!sender_failed, "the throttled sender was declared failed");
    let (acked, nack) = ok(
        "flood",
        bounded("flood", flood).await.map_err(|e| e.to_string()),
    );
    assert!(
        acked >= 200,
        "only {acked} messages accepted before the eviction"
    );
    // By name, a member that is gone reads as unknown to the core.
    assert!(
        matches!(
            nack,
            Some(NackReason::DestinationGone | NackReason::UnknownDestination)
        ),
        "{nack:?}"
    );
    // The released sender goes on with everyone else.
    ok(
        "after eviction",
        nodes[idx(1, 0)]
            .member
            .send(member("i2", "w1"), "after")
            .await,
    );
    nodes[idx(2, 1)].wait_message("after").await;
    slow.kill().await;
    server.shutdown().await;
}
