//! Boundaries of the server's bounded tables that the simulator never
//! reaches: the parked list full during the restart grace, a member's
//! parked items released by reading its own notices, an outcome's missed
//! list at its cap with the smallest frame, and the cluster-wide group
//! limit. Each drives a small in-process cluster tick by tick.
#![allow(clippy::unwrap_used)]

mod harness;

use bytes::Bytes;
use harness::Cluster;
use switchboard_core::client::{ClientConfig, SendOptions};
use switchboard_core::frame::{
    Address, Limits, MissReason, NackReason, FRAME_BYTES_MAX_FLOOR, OUTCOME_MISSED_MAX,
};

/// Largest number of parked items (the server's `PARKED_MAX`, PROTOCOL
/// 11.7).
const PARKED_MAX: usize = 4_096;

fn send(c: &mut Cluster, i: usize, to: Address, payload: &[u8], confirm: bool) -> u64 {
    let now = c.now;
    c.nodes[i]
        .client
        .send(
            now,
            to,
            Bytes::copy_from_slice(payload),
            SendOptions { confirm },
        )
        .unwrap()
}

/// The parked list's bound in the restart grace (`sequence_now`): a
/// multicast waits for the grace to end only while fewer than `PARKED_MAX`
/// items are parked, and an unresolvable message waits for its addressee
/// only below the bound too. With exactly `PARKED_MAX` parked, a broadcast
/// from a member with nothing parked is delivered at once, still in the
/// grace, and a message to an unknown member id is refused at once
/// (`Nack{UnknownDestination}`) instead of being parked.
#[test]
fn a_full_parked_list_in_the_grace_sequences_multicasts_and_refuses_the_unresolvable() {
    let mut c = Cluster::new(21);
    // Two fillers (half of the list each, within a client's outbox), a
    // member whose broadcast probes the multicast bound and one whose
    // message to nobody probes the unresolvable one.
    let fillers = [c.add("a", "filler"), c.add("b", "filler")];
    let caster = c.add("c", "caster");
    let stray = c.add("d", "stray");
    c.start_in_grace();
    for f in fillers {
        for n in 0..PARKED_MAX / fillers.len() {
            send(
                &mut c,
                f,
                Address::Broadcast,
                &(n as u32).to_be_bytes(),
                false,
            );
        }
    }
    c.settle();
    assert!(c.server.in_restart_grace(c.now));
    for i in 0..c.nodes.len() {
        assert!(c.messages(i).is_empty(), "every broadcast is parked");
        assert!(c.take_nacks(i).is_empty(), "nothing is refused");
    }
    // The list is full: the next multicast is sequenced at once.
    send(&mut c, caster, Address::Broadcast, b"at once", false);
    let unknown = send(&mut c, stray, Address::MemberId(999), b"nobody", false);
    c.settle();
    assert!(c.server.in_restart_grace(c.now), "still in the grace");
    for i in [fillers[0], fillers[1], stray] {
        assert_eq!(c.messages(i), vec![Bytes::from_static(b"at once")]);
    }
    assert!(c.messages(caster).is_empty());
    assert_eq!(
        c.take_nacks(stray),
        vec![(unknown, NackReason::UnknownDestination)],
        "refused at once, not parked"
    );
    // The parked broadcasts go when the grace ends.
    let grace = c.server.config().restart_grace_ms;
    c.run_for(grace, 250);
    assert_eq!(c.messages(caster).len(), PARKED_MAX);
}

/// A member held back by its own unread notices (`sender_inflight_max`
/// NACKs queued to it) whose parked items outlived the restart grace (the
/// grace's retry skipped them while it was held): the delivery
/// acknowledgement that brings its notices under the quota releases them
/// (`notices_released` in `on_delivery_ack`), with no other wake-up — no
/// registration, join, throttle release or grace end in between.
#[test]
fn parked_items_of_a_member_held_by_its_notices_go_once_it_reads_them() {
    const QUOTA: usize = 4;
    const GRACE_MS: u64 = 1_000;
    let mut cfg = harness::server_config();
    cfg.sender_inflight_max = QUOTA;
    cfg.restart_grace_ms = GRACE_MS;
    let mut c = Cluster::with_config(22, cfg);
    let sender = c.add("a", "sender");
    let receiver = c.add("b", "receiver");
    c.start_in_grace();
    // The sender stops reading its stream: its notices stay unread.
    c.nodes[sender].paused = true;
    // In the grace: QUOTA broadcasts are parked (they count against the
    // quota), the next QUOTA are refused OverQuota, and those QUOTA NACKs,
    // unread, hold the sender back.
    let parked: Vec<Bytes> = (0..QUOTA as u8)
        .map(|n| Bytes::from(vec![b'p', n]))
        .collect();
    for p in &parked {
        send(&mut c, sender, Address::Broadcast, p, false);
    }
    let refused: Vec<u64> = (0..QUOTA as u8)
        .map(|n| send(&mut c, sender, Address::Broadcast, &[b'r', n], false))
        .collect();
    c.settle();
    let id = c.member_id(sender);
    assert_eq!(c.server.notices_len(id), Some(QUOTA));
    assert!(c.server.is_throttled(id), "held by its unread notices");
    // The grace ends while the sender is held: its parked items stay.
    c.run_for(GRACE_MS, 50);
    assert!(!c.server.in_restart_grace(c.now));
    assert!(c.messages(receiver).is_empty(), "still parked");
    // The sender reads and acknowledges its notices: nothing else happens.
    c.nodes[sender].paused = false;
    c.run_for(200, 10);
    let got: Vec<u64> = c.take_nacks(sender).into_iter().map(|(s, _)| s).collect();
    assert_eq!(got, refused);
    assert_eq!(c.server.notices_len(id), Some(0));
    assert_eq!(c.messages(receiver), parked, "released by the ack alone");
}

/// The missed list of an `Outcome` is capped at
/// `min(OUTCOME_MISSED_MAX, (frame_bytes_max - 64) / 9)` entries
/// (`resolve_one`): with the smallest frame (4,096 bytes) that is 448.
/// A confirmed broadcast that 450 members miss (they fail before
/// acknowledging it) gives an outcome listing exactly 448 of them, which
/// the sender decodes with that frame limit.
#[test]
fn an_outcome_lists_as_many_missed_members_as_the_smallest_frame_holds() {
    const MISSING: usize = 450;
    let fit = (FRAME_BYTES_MAX_FLOOR as usize - 64) / 9;
    assert_eq!(fit.min(OUTCOME_MISSED_MAX), 448);
    let limits = Limits::with_frame_bytes_max(FRAME_BYTES_MAX_FLOOR);
    let mut cfg = harness::server_config();
    cfg.limits = limits;
    cfg.restart_grace_ms = 0;
    cfg.resume_window_ms = 100;
    // Every member connects at once.
    cfg.handshakes_max = 1_024;
    let mut c = Cluster::with_config(23, cfg);
    let mut sender_cfg = ClientConfig::new(harness::CLUSTER, harness::secret(), "a", "sender", 7);
    sender_cfg.limits = limits;
    let sender = c.add_with(sender_cfg);
    let missing: Vec<usize> = (0..MISSING).map(|i| c.add("b", &format!("p{i}"))).collect();
    c.start();
    c.settle();
    c.take_events(sender);
    // The addressees stop: none acknowledges the broadcast.
    for &i in &missing {
        c.freeze(i);
    }
    let seq = send(&mut c, sender, Address::Broadcast, b"confirm", true);
    c.settle();
    // Their connections reset; their sessions expire: each misses it.
    for &i in &missing {
        c.crash(i);
    }
    c.run_for(300, 50);
    let outcomes = c.take_outcomes(sender);
    assert_eq!(outcomes.len(), 1, "one outcome");
    let (got_seq, delivered, missed) = &outcomes[0];
    assert_eq!((*got_seq, *delivered), (seq, 0));
    assert_eq!(missed.len(), 448, "as many as one smallest frame holds");
    assert!(missed.iter().all(|m| m.reason == MissReason::Failed));
}

/// The cluster-wide group limit (`groups_max`, in `on_join`) bounds the
/// number of distinct groups, not joins: with the cluster at the limit, a
/// join to an existing group is accepted (a message to the group then
/// reaches the new member) and a join to a new group is refused
/// `Nack{OverQuota}`.
#[test]
fn at_the_group_limit_an_existing_group_may_be_joined_but_no_new_one() {
    let mut cfg = harness::server_config();
    cfg.groups_max = 2;
    let mut c = Cluster::with_config(24, cfg);
    let founder = c.add("a", "founder");
    let joiner = c.add("b", "joiner");
    c.start();
    let now = c.now;
    c.nodes[founder].client.join(now, "g1").unwrap();
    c.nodes[founder].client.join(now, "g2").unwrap();
    c.settle();
    assert!(
        c.take_nacks(founder).is_empty(),
        "the cluster is at its limit"
    );
    c.take_events(joiner);
    c.nodes[joiner].client.join(now, "g1").unwrap();
    c.settle();
    c.nodes[joiner].client.join(now, "g3").unwrap();
    let new_group = c.nodes[joiner].client.last_seq();
    c.settle();
    assert_eq!(
        c.take_nacks(joiner),
        vec![(new_group, NackReason::OverQuota)],
        "only the new group is refused"
    );
    let id = c.member_id(joiner);
    let groups = c
        .server
        .view()
        .find(|m| m.member_id == id)
        .map(|m| m.groups.clone());
    assert_eq!(groups, Some(vec!["g1".to_owned()]));
    send(
        &mut c,
        founder,
        Address::Group("g1".into()),
        b"to g1",
        false,
    );
    c.settle();
    assert_eq!(c.messages(joiner), vec![Bytes::from_static(b"to g1")]);
}
