//! End-to-end runs of the real server and client state machines through
//! the in-memory driver: every addressing mode, events, request/reply,
//! outcomes, resume and server restart.
#![allow(clippy::unwrap_used)]

mod harness;

use bytes::Bytes;
use harness::Cluster;
use switchboard_core::client::{ClientEvent, RequestError, SendOptions};
use switchboard_core::frame::{
    Address, ClusterEvent, EventBody, EventKind, FailReason, Filter, MissReason, NackReason,
};

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_owned())
}

/// Three instances of two processes each.
fn six() -> Cluster {
    let mut c = Cluster::new(1);
    for inst in ["a", "b", "c"] {
        for p in ["p1", "p2"] {
            c.add(inst, p);
        }
    }
    c.start();
    c
}

#[test]
fn registration_gives_ids_views_and_membership_events() {
    let c = six();
    // The last joiner's snapshot holds everyone; the first saw five joins.
    let last = c.nodes[5].events.iter().find_map(|e| match e {
        ClientEvent::Registered { view, .. } => Some(view.len()),
        _ => None,
    });
    assert_eq!(last, Some(6));
    for i in 0..6 {
        assert_eq!(c.nodes[i].client.view().len(), 6, "node {i} view");
    }
    let joins = c.nodes[0]
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ClientEvent::Event {
                    event: ClusterEvent::MemberJoined(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(joins, 5);
}

#[test]
fn unicast_by_id_and_name_is_delivered_and_acked() {
    let mut c = six();
    let to = c.member_id(3);
    let now = c.now;
    let s1 = c.nodes[0]
        .client
        .send(
            now,
            Address::MemberId(to),
            b("by-id"),
            SendOptions::default(),
        )
        .unwrap();
    let s2 = c.nodes[0]
        .client
        .send(
            now,
            Address::Member {
                instance: "b".into(),
                process: "p2".into(),
            },
            b("by-name"),
            SendOptions::default(),
        )
        .unwrap();
    c.settle();
    assert_eq!(c.messages(3), vec![b("by-id"), b("by-name")]);
    for i in [1, 2, 4, 5] {
        assert!(c.messages(i).is_empty());
    }
    let acked: Vec<u64> = c.nodes[0]
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Acked { seq } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(acked, vec![s1, s2]);
    // Stable messages leave the outbox.
    assert_eq!(c.nodes[0].client.outbox_len(), 0);
}

#[test]
fn broadcast_instance_group_and_anycast_reach_the_right_members() {
    let mut c = six();
    let now = c.now;
    for i in [1, 3, 5] {
        c.nodes[i].client.join(now, "cache").unwrap();
    }
    c.settle();
    let opts = SendOptions::default();
    c.nodes[0]
        .client
        .send(now, Address::Broadcast, b("all"), opts)
        .unwrap();
    c.nodes[0]
        .client
        .send(now, Address::Instance("b".into()), b("inst-b"), opts)
        .unwrap();
    c.nodes[0]
        .client
        .send(now, Address::Group("cache".into()), b("grp"), opts)
        .unwrap();
    for _ in 0..3 {
        c.nodes[0]
            .client
            .send(now, Address::Anycast("cache".into()), b("any"), opts)
            .unwrap();
    }
    c.settle();
    assert!(c.messages(0).is_empty(), "broadcast excludes the sender");
    for i in 1..6 {
        let got = c.messages(i);
        assert_eq!(got[0], b("all"), "node {i}");
        assert_eq!(got.contains(&b("inst-b")), i == 2 || i == 3, "node {i}");
        assert_eq!(got.contains(&b("grp")), [1, 3, 5].contains(&i), "node {i}");
    }
    // Anycast: round robin, one member each.
    let anys: Vec<usize> = [1, 3, 5]
        .iter()
        .map(|&i| c.messages(i).iter().filter(|p| **p == b("any")).count())
        .collect();
    assert_eq!(anys, vec![1, 1, 1]);
}

#[test]
fn every_member_sees_the_same_order() {
    let mut c = six();
    let now = c.now;
    for round in 0..5 {
        for i in 0..6 {
            let p = format!("{i}-{round}");
            c.nodes[i]
                .client
                .send(
                    now,
                    Address::Broadcast,
                    Bytes::from(p),
                    SendOptions::default(),
                )
                .unwrap();
        }
        if round % 2 == 0 {
            c.settle();
        }
    }
    c.settle();
    // Any two members order their common messages alike.
    let gseqs = |i: usize| -> Vec<(u64, Bytes)> {
        c.nodes[i]
            .events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Message(m) => Some((m.gseq, m.payload.clone())),
                _ => None,
            })
            .collect()
    };
    for i in 0..6 {
        let mine = gseqs(i);
        assert_eq!(mine.len(), 25);
        assert!(mine.windows(2).all(|w| w[0].0 < w[1].0));
        for j in 0..6 {
            let theirs = gseqs(j);
            for (g, p) in &mine {
                if let Some((_, q)) = theirs.iter().find(|(h, _)| h == g) {
                    assert_eq!(p, q);
                }
            }
        }
    }
}

#[test]
fn nack_for_unknown_destinations_and_empty_groups() {
    let mut c = six();
    let now = c.now;
    let opts = SendOptions::default();
    let s1 = c.nodes[0]
        .client
        .send(now, Address::Group("nobody".into()), b("x"), opts)
        .unwrap();
    let s2 = c.nodes[0]
        .client
        .send(now, Address::MemberId(999), b("x"), opts)
        .unwrap();
    // Past the restart grace, an impossible message is NACKed at once.
    c.settle();
    let nacks: Vec<(u64, NackReason)> = c.nodes[0]
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Nacked { seq, reason } => Some((*seq, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        nacks,
        vec![
            (s1, NackReason::UnknownDestination),
            (s2, NackReason::UnknownDestination)
        ]
    );
    // A NACKed message is never reported as acked.
    assert!(!c.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Acked { .. })));
}

#[test]
fn confirmed_message_reports_delivered_and_missed_addressees() {
    let mut c = six();
    let now = c.now;
    // Member 5 stops reading, then leaves for good: it misses the message.
    c.nodes[5].paused = true;
    let seq = c.nodes[0]
        .client
        .send(
            now,
            Address::Broadcast,
            b("confirm-me"),
            SendOptions { confirm: true },
        )
        .unwrap();
    c.settle();
    c.drop_connection(5);
    c.run_for(12_000, 500);
    let outcome = c.nodes[0].events.iter().find_map(|e| match e {
        ClientEvent::Outcome {
            seq: s,
            delivered,
            missed,
        } if *s == seq => Some((*delivered, missed.clone())),
        _ => None,
    });
    let (delivered, missed) = outcome.expect("an outcome");
    // Node 5 cannot finish a resume while it does not read, so its session
    // expires: four addressees delivered, node 5 missed it as failed.
    let id5 = c.member_id(5);
    assert_eq!(delivered, 4);
    assert_eq!(
        missed,
        vec![switchboard_core::frame::Missed {
            member_id: id5,
            reason: MissReason::Failed
        }]
    );
}

#[test]
fn outcome_names_a_member_that_left_before_acknowledging() {
    let mut c = six();
    let now = c.now;
    let target = c.member_id(4);
    c.nodes[4].paused = true;
    let seq = c.nodes[0]
        .client
        .send(
            now,
            Address::MemberId(target),
            b("m"),
            SendOptions { confirm: true },
        )
        .unwrap();
    c.settle();
    c.nodes[4].client.goodbye(now);
    c.settle();
    // The goodbye frame is behind the unread bytes: unpause so the server
    // gets it (the client never acknowledged the delivery).
    c.nodes[4].paused = false;
    c.settle();
    let outcome = c.nodes[0].events.iter().find_map(|e| match e {
        ClientEvent::Outcome {
            seq: s,
            delivered,
            missed,
        } if *s == seq => Some((*delivered, missed.clone())),
        _ => None,
    });
    let (delivered, missed) = outcome.expect("an outcome");
    assert_eq!(delivered, 0);
    assert_eq!(
        missed,
        vec![switchboard_core::frame::Missed {
            member_id: target,
            reason: MissReason::Left
        }]
    );
}

#[test]
fn request_reply_and_timeout() {
    let mut c = six();
    let now = c.now;
    let target = c.member_id(2);
    let req = c.nodes[0]
        .client
        .request(now, Address::MemberId(target), b("ping?"), 1_000)
        .unwrap();
    c.settle();
    let reply_to = c.nodes[2]
        .events
        .iter()
        .find_map(|e| match e {
            ClientEvent::Message(m) if m.is_request() => Some(m.reply_to()),
            _ => None,
        })
        .unwrap();
    c.nodes[2].client.reply(now, reply_to, b("pong!")).unwrap();
    c.settle();
    assert!(c.nodes[0].events.iter().any(|e| matches!(
        e,
        ClientEvent::Reply { request, message } if *request == req && message.payload == b("pong!")
    )));
    // A request nobody answers times out.
    let req2 = c.nodes[0]
        .client
        .request(now, Address::MemberId(target), b("again?"), 1_000)
        .unwrap();
    c.run_for(1_500, 100);
    assert!(c.nodes[0].events.iter().any(|e| matches!(
        e,
        ClientEvent::RequestFailed { request, error: RequestError::TimedOut } if *request == req2
    )));
}

#[test]
fn events_reach_matching_handlers_in_stream_order() {
    let mut c = six();
    let now = c.now;
    let h_cache = c.nodes[1]
        .client
        .subscribe(
            now,
            Filter {
                kinds: EventKind::Custom.bit(),
                topic_prefix: "cache/".into(),
            },
        )
        .unwrap();
    let h_svc = c.nodes[1]
        .client
        .subscribe(now, Filter::kinds(&[EventKind::Service]))
        .unwrap();
    c.settle();
    c.nodes[0]
        .client
        .publish(
            now,
            EventBody::Custom {
                topic: "cache/invalidate".into(),
                payload: b("key-1"),
            },
        )
        .unwrap();
    c.nodes[0]
        .client
        .publish(
            now,
            EventBody::Custom {
                topic: "other".into(),
                payload: b("no"),
            },
        )
        .unwrap();
    c.nodes[0]
        .client
        .publish(
            now,
            EventBody::ServiceState {
                service: "http".into(),
                up: true,
            },
        )
        .unwrap();
    c.settle();
    let seen: Vec<Vec<u32>> = c.nodes[1]
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Event {
                event: ClusterEvent::Custom { .. } | ClusterEvent::ServiceState { .. },
                handlers,
                ..
            } => Some(handlers.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(seen, vec![vec![h_cache], vec![h_svc]]);
    // Nobody else subscribed: no custom events elsewhere.
    assert!(!c.nodes[2].events.iter().any(|e| matches!(
        e,
        ClientEvent::Event {
            event: ClusterEvent::Custom { .. },
            ..
        }
    )));
    // The view carries the service.
    let id0 = c.member_id(0);
    assert_eq!(
        c.server
            .view()
            .find(|m| m.member_id == id0)
            .unwrap()
            .services,
        vec!["http"]
    );
}

#[test]
fn resume_after_connection_loss_loses_and_duplicates_nothing() {
    let mut c = six();
    let now = c.now;
    let to = c.member_id(3);
    for k in 0..10 {
        c.nodes[0]
            .client
            .send(
                now,
                Address::MemberId(to),
                Bytes::from(format!("m{k}")),
                SendOptions::default(),
            )
            .unwrap();
    }
    // Lose everything in flight both ways, mid-stream.
    c.drop_connection(0);
    c.drop_connection(3);
    c.run_for(2_000, 50);
    assert!(c.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Resumed { .. })));
    let got = c.messages(3);
    let want: Vec<Bytes> = (0..10).map(|k| Bytes::from(format!("m{k}"))).collect();
    assert_eq!(got, want);
    assert_eq!(c.nodes[0].client.outbox_len(), 0);
}

#[test]
fn server_restart_re_registers_and_resends_unconfirmed() {
    let mut c = six();
    let now = c.now;
    c.nodes[3].client.join(now, "g").unwrap();
    c.settle();
    // Node 3 stops reading: the broadcast is acked but not delivered to it.
    c.nodes[3].paused = true;
    c.nodes[0]
        .client
        .send(
            now,
            Address::Group("g".into()),
            b("survives"),
            SendOptions::default(),
        )
        .unwrap();
    c.settle();
    assert!(c.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Acked { .. })));
    assert_eq!(c.nodes[0].client.outbox_len(), 1, "acked but not stable");
    c.nodes[3].paused = false;
    c.restart_server(99);
    c.run_for(3_000, 50);
    for i in 0..6 {
        assert!(c.nodes[i].client.is_ready(), "node {i}");
        assert!(c.nodes[i].events.iter().any(|e| matches!(
            e,
            ClientEvent::Registered {
                session_lost: true,
                ..
            }
        )));
    }
    assert_eq!(c.messages(3), vec![b("survives")]);
    assert_eq!(c.nodes[0].client.outbox_len(), 0);
    assert_eq!(c.server.view().count(), 6);
}

#[test]
fn a_new_incarnation_supersedes_the_old_one() {
    let mut c = six();
    let old = c.member_id(2);
    c.crash(2);
    // Same names, new incarnation: the process restarted.
    let cfg = switchboard_core::client::ClientConfig::new(
        harness::CLUSTER,
        harness::secret(),
        "b",
        "p1",
        424242,
    );
    let n = c.add_with(cfg);
    c.run_for(100, 10);
    assert!(c.nodes[n].client.is_ready());
    assert!(c.nodes[0].events.iter().any(|e| matches!(
        e,
        ClientEvent::Event {
            event: ClusterEvent::MemberFailed {
                member_id,
                reason: FailReason::Superseded
            },
            ..
        } if *member_id == old
    )));
}

#[test]
fn silent_member_is_declared_failed_after_the_heartbeat_timeout() {
    let mut c = six();
    // Node 4 freezes: its connection stays open but nothing comes.
    let id = c.member_id(4);
    c.freeze(4);
    c.run_for(7_000, 100);
    assert!(c.nodes[0].events.iter().any(|e| matches!(
        e,
        ClientEvent::Event {
            event: ClusterEvent::MemberFailed {
                member_id,
                reason: FailReason::HeartbeatTimeout
            },
            ..
        } if *member_id == id
    )));
    // The live members were never declared failed.
    assert_eq!(c.server.view().count(), 5);
}

#[test]
fn client_with_a_different_secret_never_registers() {
    let mut c = Cluster::new(3);
    let mut cfg = switchboard_core::client::ClientConfig::new(
        harness::CLUSTER,
        switchboard_core::auth::Secret::new(*b"wrong-secret-wrong-secret").unwrap(),
        "x",
        "y",
        5,
    );
    cfg.reconnect_min_ms = 10;
    let n = c.add_with(cfg);
    c.run_for(100, 10);
    // The client detects that the server cannot prove the secret it holds
    // and never registers; it keeps retrying with backoff.
    assert!(!c.nodes[n].client.is_ready());
    assert!(c.nodes[n].events.iter().any(|e| matches!(
        e,
        ClientEvent::Disconnected { reason, .. } if reason.contains("prove")
    )));
    assert_eq!(c.server.view().count(), 0);
}

/// True when node `i` was told that member `id` failed as a slow consumer.
fn saw_evicted(c: &Cluster, i: usize, id: u64) -> bool {
    c.nodes[i].events.iter().any(|e| {
        matches!(
            e,
            ClientEvent::Event {
                event: ClusterEvent::MemberFailed {
                    member_id,
                    reason: FailReason::SlowConsumer
                },
                ..
            } if *member_id == id
        )
    })
}

/// Three members with a queue limit of 50 and a grace of 500 ms; the
/// third stops reading. Returns the cluster and that member's id.
fn three_with_a_slow_reader() -> (Cluster, u64) {
    let mut cfg = harness::server_config();
    cfg.member_queue_items_max = 50;
    cfg.slow_consumer_grace_ms = 500;
    let mut c = Cluster::with_config(4, cfg);
    for p in ["p1", "p2", "p3"] {
        c.add("a", p);
    }
    c.start();
    c.nodes[2].paused = true;
    let slow = c.member_id(2);
    (c, slow)
}

#[test]
fn slow_consumer_is_evicted_by_name_and_others_keep_going() {
    let (mut c, slow) = three_with_a_slow_reader();
    let now = c.now;
    for k in 0..60 {
        let _ = c.nodes[0].client.send(
            now,
            Address::Broadcast,
            Bytes::from(format!("{k}")),
            SendOptions::default(),
        );
    }
    c.run_for(2_000, 100);
    assert!(saw_evicted(&c, 1, slow));
    assert_eq!(c.messages(1).len(), 60);
}

/// The evicted member itself is told why (`Error{LimitExceeded}`, the
/// code on its `Disconnected`), and the sender's stable watermark passes
/// the messages it missed only once it is gone.
#[test]
fn an_evicted_member_is_told_why_and_the_sender_sees_its_messages_stable() {
    use switchboard_core::frame::ErrorCode;
    let (mut c, slow) = three_with_a_slow_reader();
    let now = c.now;
    let mut last = 0;
    for k in 0..60 {
        if let Ok(seq) = c.nodes[0].client.send(
            now,
            Address::Broadcast,
            Bytes::from(format!("{k}")),
            SendOptions::default(),
        ) {
            last = seq;
        }
    }
    c.run_for(100, 10);
    // The paused member has received none of them.
    assert!(c.nodes[0].client.stable_through() < last);
    let evicted = |c: &Cluster| {
        c.nodes[1].events.iter().any(|e| {
            matches!(
                e,
                ClientEvent::Event {
                    event: ClusterEvent::MemberFailed { member_id, .. },
                    ..
                } if *member_id == slow
            )
        })
    };
    for _ in 0..100 {
        if evicted(&c) {
            break;
        }
        c.run_for(20, 10);
    }
    assert!(evicted(&c));
    c.nodes[2].paused = false;
    c.run_for(100, 10);
    assert!(c.nodes[2].events.iter().any(|e| matches!(
        e,
        ClientEvent::Disconnected {
            code: Some(ErrorCode::LimitExceeded),
            ..
        }
    )));
    assert!(c.nodes[0].client.stable_through() >= last);
}

/// The slow-consumer grace runs on the queue a member has between inputs:
/// a delivery acknowledgement that takes a member under its limit, read in
/// the same input as the new items that take it over again (a throttled
/// sender released onto it), does not restart the grace. Its clock runs
/// from when the member first went over, as an observer between inputs
/// sees it.
#[test]
fn going_under_and_over_within_one_input_does_not_restart_the_slow_consumer_grace() {
    use switchboard_core::frame::{self, DeliveryAck, Frame, Limits};
    const LIMIT: usize = 4;
    const GRACE: u64 = 500;
    let mut cfg = harness::server_config();
    cfg.member_queue_items_max = LIMIT;
    cfg.slow_consumer_grace_ms = GRACE;
    let mut c = Cluster::with_config(4, cfg);
    c.add("a", "sender");
    let r = c.add("b", "reader");
    c.start();
    c.settle();
    let reader = c.member_id(r);
    // The reader's process reads nothing more: what the server sends it
    // stays in flight, unacknowledged.
    c.nodes[r].paused = true;
    let send = |c: &mut Cluster, k: usize| {
        let now = c.now;
        c.nodes[0]
            .client
            .send(
                now,
                Address::MemberId(reader),
                Bytes::from(vec![k as u8]),
                SendOptions::default(),
            )
            .unwrap();
    };
    // Over its limit at `over_at`; the sender is throttled by it, so its
    // next messages wait in the server (deferred).
    for k in 0..=LIMIT {
        send(&mut c, k);
    }
    c.settle();
    let over_at = c.now;
    assert_eq!(c.server.queue_len(reader), Some(LIMIT + 1));
    assert!(c.server.is_throttled(c.member_id(0)));
    for k in 0..=LIMIT + 1 {
        send(&mut c, 100 + k);
    }
    c.settle();
    assert_eq!(
        c.server.queue_len(reader),
        Some(LIMIT + 1),
        "the rest waits"
    );
    // Halfway through the grace, one read acknowledges everything sent so
    // far: the reader is empty for an instant, the sender is released and
    // its waiting messages take the reader over its limit again.
    c.run_for(GRACE / 2, 10);
    let mut sent = bytes::BytesMut::new();
    for b in &c.nodes[r].inbound {
        sent.extend_from_slice(b);
    }
    let mut through = 0;
    while let Some(f) = frame::decode(&mut sent, &Limits::default()).unwrap() {
        if let Frame::Deliver(d) = f {
            through = through.max(d.gseq);
        }
    }
    assert!(through > 0);
    let mut ack = bytes::BytesMut::new();
    Frame::DeliveryAck(DeliveryAck { through })
        .encode(&mut ack, &Limits::default())
        .unwrap();
    let (now, conn) = (c.now, c.nodes[r].conn.unwrap());
    c.server.handle_bytes(now, conn, &ack);
    assert!(
        c.server.queue_len(reader).unwrap() > LIMIT,
        "over its limit again within the same input"
    );
    // Still over at the end of the first grace: evicted then.
    let left = GRACE - c.now.millis_since(over_at);
    c.run_for(left + 20, 10);
    assert!(
        c.server.view().all(|m| m.member_id != reader),
        "the reader stayed over its limit for the whole grace and must be evicted"
    );
    assert!(saw_evicted(&c, 0, reader));
}

#[test]
fn large_messages_are_chunked_and_reassembled() {
    let mut c = six();
    let now = c.now;
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let big = Bytes::from(big);
    c.nodes[0]
        .client
        .send(
            now,
            Address::Instance("c".into()),
            big.clone(),
            SendOptions::default(),
        )
        .unwrap();
    c.settle();
    assert_eq!(c.messages(4), vec![big.clone()]);
    assert_eq!(c.messages(5), vec![big]);
}

#[test]
fn a_message_for_a_member_not_yet_back_waits_for_its_registration() {
    // Right after a (re)start the server parks messages for addressees
    // that have not registered yet, instead of NACKing them.
    let mut c = Cluster::new(9);
    c.add("a", "p1");
    c.start_in_grace();
    let now = c.now;
    let s = c.nodes[0]
        .client
        .send(
            now,
            Address::Member {
                instance: "b".into(),
                process: "p1".into(),
            },
            b("early"),
            SendOptions { confirm: true },
        )
        .unwrap();
    c.settle();
    let late = c.add("b", "p1");
    c.run_for(200, 10);
    assert_eq!(c.messages(late), vec![b("early")]);
    assert!(c.nodes[0].events.iter().any(|e| matches!(
        e,
        ClientEvent::Outcome { seq, delivered: 1, .. } if *seq == s
    )));
    assert!(!c.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Nacked { .. })));
}

#[test]
fn a_broadcast_held_in_the_restart_grace_goes_out_when_it_ends() {
    // With the default settings (restart grace shorter than the resume
    // window) a broadcast sent during the grace goes out when it ends.
    let mut c = Cluster::new(10);
    c.add("a", "p1");
    c.add("b", "p1");
    c.start_in_grace();
    let now = c.now;
    c.nodes[0]
        .client
        .send(
            now,
            Address::Broadcast,
            b("after-grace"),
            SendOptions::default(),
        )
        .unwrap();
    c.run_for(500, 100);
    assert!(c.messages(1).is_empty(), "held during the grace");
    let grace = c.server.config().restart_grace_ms;
    c.run_for(grace, 100);
    assert_eq!(c.messages(1), vec![b("after-grace")]);
}

#[test]
fn an_unknown_destination_is_nacked_when_the_restart_grace_ends() {
    let mut c = Cluster::new(11);
    c.add("a", "p1");
    c.start_in_grace();
    let now = c.now;
    let s = c.nodes[0]
        .client
        .send(now, Address::MemberId(999), b("x"), SendOptions::default())
        .unwrap();
    c.settle();
    assert!(!c.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Nacked { .. })));
    let grace = c.server.config().restart_grace_ms;
    c.run_for(grace, 100);
    assert!(c.nodes[0].events.iter().any(|e| matches!(
        e,
        ClientEvent::Nacked { seq, reason: NackReason::UnknownDestination } if *seq == s
    )));
}
