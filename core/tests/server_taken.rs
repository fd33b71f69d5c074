//! A member whose client reports what its application took
//! (`capabilities::TAKEN`): a CONFIRM message counts as delivered to it in
//! the sender's `Outcome` only once taken, and as missed when the member is
//! removed before its application took it. The sender's stable watermark
//! does not wait for taking: every addressee received the message, so it
//! never needs resending.
#![allow(clippy::unwrap_used)]

mod harness;

use bytes::Bytes;
use harness::Cluster;
use switchboard_core::client::{ClientConfig, SendOptions};
use switchboard_core::frame::{Address, MissReason};

const CONFIRM: SendOptions = SendOptions { confirm: true };

/// A sender (index 0) and a receiver (index 1) that reports taking.
fn pair(seed: u64) -> Cluster {
    let mut c = Cluster::new(seed);
    c.add("a", "sender");
    let mut cfg = ClientConfig::new(harness::CLUSTER, harness::secret(), "b", "receiver", 77);
    cfg.report_taken = true;
    c.add_with(cfg);
    c.start();
    c.settle();
    c
}

fn outcomes(c: &mut Cluster, i: usize) -> Vec<(u64, u32, Vec<MissReason>)> {
    c.take_outcomes(i)
        .into_iter()
        .map(|(seq, delivered, missed)| (seq, delivered, missed.iter().map(|m| m.reason).collect()))
        .collect()
}

#[test]
fn an_outcome_waits_until_the_application_took_the_message() {
    let mut c = pair(1);
    let to = Address::MemberId(c.member_id(1));
    let now = c.now;
    let seq = c.nodes[0]
        .client
        .send(now, to, Bytes::from_static(b"x"), CONFIRM)
        .unwrap();
    c.settle();
    assert_eq!(c.messages(1).len(), 1, "the receiver's client has it");
    assert!(
        outcomes(&mut c, 0).is_empty(),
        "no outcome before the application took it"
    );
    let now = c.now;
    c.nodes[1].client.taken(now, 1);
    c.settle();
    assert_eq!(outcomes(&mut c, 0), vec![(seq, 1, vec![])]);
}

#[test]
fn a_message_never_taken_is_missed_when_its_member_dies() {
    let mut c = pair(2);
    let to = Address::MemberId(c.member_id(1));
    let now = c.now;
    let seq = c.nodes[0]
        .client
        .send(now, to, Bytes::from_static(b"x"), CONFIRM)
        .unwrap();
    c.settle();
    assert_eq!(c.messages(1).len(), 1);
    c.crash(1);
    c.run_for(30_000, 100);
    let got = outcomes(&mut c, 0);
    assert_eq!(got.len(), 1, "one outcome: {got:?}");
    assert_eq!(got[0].0, seq);
    assert_eq!(got[0].1, 0, "not delivered: its application never took it");
    assert_eq!(got[0].2.len(), 1, "missed by the receiver");
}

#[test]
fn stability_does_not_wait_for_the_application() {
    let mut c = pair(3);
    let to = Address::MemberId(c.member_id(1));
    let now = c.now;
    c.nodes[0]
        .client
        .send(now, to.clone(), Bytes::from_static(b"confirmed"), CONFIRM)
        .unwrap();
    c.nodes[0]
        .client
        .send(
            now,
            to,
            Bytes::from_static(b"plain"),
            SendOptions::default(),
        )
        .unwrap();
    c.settle();
    assert_eq!(c.messages(1).len(), 2);
    // The confirmed message waits for its outcome; the plain one, sent
    // after it, is stable and gone although nothing was taken.
    assert_eq!(c.nodes[0].client.outbox_len(), 1);
}

#[test]
fn a_client_that_does_not_report_taking_is_counted_on_receipt() {
    let mut c = Cluster::new(4);
    c.add("a", "sender");
    c.add("b", "receiver");
    c.start();
    c.settle();
    let to = Address::MemberId(c.member_id(1));
    let now = c.now;
    let seq = c.nodes[0]
        .client
        .send(now, to, Bytes::from_static(b"x"), CONFIRM)
        .unwrap();
    c.settle();
    assert_eq!(outcomes(&mut c, 0), vec![(seq, 1, vec![])]);
}

#[test]
fn a_member_whose_application_stops_taking_is_evicted_as_a_slow_consumer() {
    let mut cfg = harness::server_config();
    cfg.member_queue_items_max = 4;
    cfg.slow_consumer_grace_ms = 200;
    let mut c = Cluster::with_config(5, cfg);
    c.add("a", "sender");
    let mut rcfg = ClientConfig::new(harness::CLUSTER, harness::secret(), "b", "receiver", 78);
    rcfg.report_taken = true;
    let r = c.add_with(rcfg);
    c.start();
    c.settle();
    let rid = c.member_id(r);
    let to = Address::MemberId(rid);
    let now = c.now;
    for _ in 0..5 {
        c.nodes[0]
            .client
            .send(now, to.clone(), Bytes::from_static(b"x"), CONFIRM)
            .unwrap();
    }
    // The receiver's client acknowledges receipt at once, its application
    // takes nothing: the messages move from the queue to the untaken list
    // and the member stays over its limit of 4 past the grace.
    c.run_for(1_000, 20);
    assert_eq!(
        c.server.stats().evictions,
        1,
        "a member over its limit for longer than the grace must be evicted"
    );
}
