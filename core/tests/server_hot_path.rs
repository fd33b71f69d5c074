//! The server's message path without copies or allocations of its own:
//! reads decoded from their own buffers, and deliveries to one member
//! encoded into that member's arena, which is released once they are all
//! acknowledged.
#![allow(clippy::unwrap_used)]

mod harness;

use bytes::{Bytes, BytesMut};
use harness::Cluster;
use switchboard_core::client::SendOptions;
use switchboard_core::frame::{Address, Frame, Limits, Send};

/// Two registered members `a` and `b`.
fn pair() -> (Cluster, usize, usize) {
    let mut c = Cluster::new(11);
    let a = c.add("i", "a");
    let b = c.add("i", "b");
    c.start();
    c.run_for(4_000, 100);
    (c, a, b)
}

#[test]
fn unicast_deliveries_arrive_whole_and_the_arena_goes_once_they_are_acknowledged() {
    let (mut c, a, b) = pair();
    let id_b = c.member_id(b);
    let idle = c.server.member_bytes(id_b).unwrap();
    // b stops reading: its deliveries stay queued (and unacknowledged).
    c.freeze(b);
    let now = c.now;
    let sent: Vec<Bytes> = (0..40u32)
        .map(|k| Bytes::from(vec![k as u8; 1 + (k as usize * 13) % 300]))
        .collect();
    for p in &sent {
        c.nodes[a]
            .client
            .send(
                now,
                Address::MemberId(id_b),
                p.clone(),
                SendOptions::default(),
            )
            .unwrap();
    }
    c.run_for(200, 10);
    let held = c.server.member_bytes(id_b).unwrap();
    assert!(held > idle, "queued deliveries count: {held} vs {idle}");
    // b reads again and acknowledges everything.
    c.nodes[b].stopped = false;
    c.run_for(3_000, 100);
    assert_eq!(c.messages(b), sent);

    // One small delivery takes a fresh block (2 KiB) it barely uses: the
    // rest of the block counts against b until the delivery is
    // acknowledged, and is let go then.
    c.freeze(b);
    let now = c.now;
    c.nodes[a]
        .client
        .send(
            now,
            Address::MemberId(id_b),
            Bytes::from_static(b"x"),
            SendOptions::default(),
        )
        .unwrap();
    c.run_for(200, 10);
    let one = c.server.member_bytes(id_b).unwrap();
    assert!(one >= 1024, "a block in use counts: {one}");
    c.nodes[b].stopped = false;
    c.run_for(3_000, 100);
    assert_eq!(c.messages(b).len(), sent.len() + 1);
    let after = c.server.member_bytes(id_b).unwrap();
    assert!(
        after < 1024,
        "an acknowledged member keeps no arena block: {after}"
    );
}

#[test]
fn frames_cut_across_reads_in_their_own_buffers_decode_like_copied_ones() {
    let (mut c, a, b) = pair();
    let conn = c.nodes[a].conn.unwrap();
    let id_b = c.member_id(b);
    let mut wire = BytesMut::new();
    let payloads: Vec<Bytes> = (0..20u8).map(|k| Bytes::from(vec![k; 50])).collect();
    for (k, p) in payloads.iter().enumerate() {
        Frame::Send(Send {
            seq: 1 + k as u64,
            flags: 0,
            to: Address::MemberId(id_b),
            correlation: 0,
            timeout_ms: 0,
            total_len: p.len() as u32,
            payload: p.clone(),
        })
        .encode(&mut wire, &Limits::default())
        .unwrap();
    }
    // Cut at odd places: mid-header, mid-payload, whole frames.
    let wire = wire.freeze();
    let mut at = 0;
    for cut in [3usize, 70, 1, 200, 9].iter().cycle() {
        if at >= wire.len() {
            break;
        }
        let end = (at + cut).min(wire.len());
        let now = c.now;
        // A buffer of its own, as a socket read hands over.
        c.server
            .handle_read(now, conn, Bytes::copy_from_slice(&wire[at..end]));
        at = end;
    }
    c.run_for(2_000, 100);
    assert_eq!(c.messages(b), payloads);
}
