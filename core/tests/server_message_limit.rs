//! The server's `message_bytes_max` for a message sent in one frame: a
//! message of exactly the limit is delivered, one byte more is refused
//! (`Nack{TooLarge}`) and never delivered. A client configured with a larger
//! limit than its server's is how such a message reaches the server; the
//! simulator never sends one (its single-frame messages are far below the
//! limit, and larger ones are chunked and judged in reassembly).
#![allow(clippy::unwrap_used)]

mod harness;

use bytes::Bytes;
use harness::Cluster;
use switchboard_core::client::{ClientConfig, SendOptions};
use switchboard_core::frame::{Address, NackReason};

/// The server's limit, well below one frame.
const LIMIT: u32 = 2_000;

fn cluster() -> Cluster {
    let mut cfg = harness::server_config();
    cfg.message_bytes_max = LIMIT;
    let mut c = Cluster::with_config(5, cfg);
    let mut sender = ClientConfig::new(harness::CLUSTER, harness::secret(), "a", "sender", 11);
    sender.message_bytes_max = 64 * 1024;
    c.add_with(sender);
    c.add("b", "receiver");
    c.start();
    c.settle();
    c
}

#[test]
fn a_single_frame_message_over_the_limit_is_refused_and_one_at_it_delivered() {
    let mut c = cluster();
    let to = Address::MemberId(c.member_id(1));
    let now = c.now;
    let at_limit = Bytes::from(vec![1u8; LIMIT as usize]);
    let over = Bytes::from(vec![2u8; LIMIT as usize + 1]);
    let ok = c.nodes[0]
        .client
        .send(now, to.clone(), at_limit.clone(), SendOptions::default())
        .unwrap();
    let refused = c.nodes[0]
        .client
        .send(now, to, over, SendOptions::default())
        .unwrap();
    c.settle();
    assert_eq!(c.take_nacks(0), vec![(refused, NackReason::TooLarge)]);
    assert_ne!(ok, refused);
    assert_eq!(
        c.messages(1),
        vec![at_limit],
        "only the message at the limit"
    );
}

/// `sender_inflight_max`: a sender with that many messages sequenced but
/// not yet received by every addressee gets its next one refused
/// (`Nack{OverQuota}`). The simulator's clients never reach it (their
/// outbox holds fewer messages than the server's quota); a client
/// configured with a larger outbox does.
#[test]
fn a_sender_over_its_in_flight_quota_is_refused() {
    const QUOTA: usize = 4;
    let mut cfg = harness::server_config();
    cfg.sender_inflight_max = QUOTA;
    let mut c = Cluster::with_config(6, cfg);
    c.add("a", "sender");
    c.add("b", "receiver");
    c.start();
    c.settle();
    // The receiver stops reading: nothing becomes stable.
    c.freeze(1);
    let to = Address::MemberId(c.member_id(1));
    let now = c.now;
    let seqs: Vec<u64> = (0..QUOTA as u8 + 2)
        .map(|i| {
            c.nodes[0]
                .client
                .send(
                    now,
                    to.clone(),
                    Bytes::from(vec![i]),
                    SendOptions::default(),
                )
                .unwrap()
        })
        .collect();
    c.run_for(200, 10);
    let refused: Vec<(u64, NackReason)> = seqs[QUOTA..]
        .iter()
        .map(|s| (*s, NackReason::OverQuota))
        .collect();
    assert_eq!(c.take_nacks(0), refused);
}

/// A member holding `sender_inflight_max` unread notices (NACKs, outcomes)
/// has its further frames held back; once it reads and acknowledges them,
/// the held frames go on. The simulator's clients never hold that many
/// (their outbox is smaller than the quota); this pins the wake-up.
#[test]
fn frames_held_back_by_unread_notices_go_on_once_they_are_read() {
    const QUOTA: usize = 4;
    let mut cfg = harness::server_config();
    cfg.sender_inflight_max = QUOTA;
    cfg.restart_grace_ms = 0;
    let mut c = Cluster::with_config(7, cfg);
    c.add("a", "sender");
    c.start();
    c.settle();
    // The sender stops reading: its NACKs stay unread at the server.
    c.nodes[0].paused = true;
    let now = c.now;
    let seqs: Vec<u64> = (0..2 * QUOTA as u8)
        .map(|i| {
            c.nodes[0]
                .client
                .send(
                    now,
                    Address::MemberId(999),
                    Bytes::from(vec![i]),
                    SendOptions::default(),
                )
                .unwrap()
        })
        .collect();
    c.run_for(500, 10);
    assert!(c.take_nacks(0).is_empty(), "nothing read while paused");
    c.nodes[0].paused = false;
    c.run_for(2_000, 10);
    let got: Vec<u64> = c.take_nacks(0).into_iter().map(|(s, _)| s).collect();
    assert_eq!(got, seqs, "every message is refused, the held ones too");
}
