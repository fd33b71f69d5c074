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
use switchboard_core::client::{ClientConfig, ClientEvent, SendOptions};
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

fn nacks(c: &mut Cluster, i: usize) -> Vec<(u64, NackReason)> {
    c.take_events(i)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Nacked { seq, reason } => Some((seq, reason)),
            _ => None,
        })
        .collect()
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
    assert_eq!(nacks(&mut c, 0), vec![(refused, NackReason::TooLarge)]);
    assert_ne!(ok, refused);
    assert_eq!(
        c.messages(1),
        vec![at_limit],
        "only the message at the limit"
    );
}
