//! Scripted stories for the tricky protocol paths. Each story runs on the
//! simulator with every guarantee checker, then asserts a fact of its own
//! from the recorded history and the coverage counters.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use switchboard_core::frame::{Address, ErrorCode, FailReason, MissReason, NackReason};
use switchboard_sim::history::{Act, History, HostileFrame, MsgId, Proc, ViewChange};
use switchboard_sim::plan::{Action, Direction, HostileKind, Target};
use switchboard_sim::scenario::{HistoryExt, Scenario};
use switchboard_sim::RunResult;

/// Start of every story's action: the server holds multicasts, events and
/// group operations for `restart_grace_ms` (2 s) after any start, the first
/// one included (it cannot tell a first start from a restart), so stories
/// begin once that grace is over.
const T0: u64 = 2_100;

/// Prints the timeline (for a failing story).
fn dump(h: &History) -> String {
    h.iter()
        .map(|e| format!("  t={:>6}ms  {:?}", e.at, e.act))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs a story and asserts that no checker found anything.
#[track_caller]
fn run_clean(s: Scenario, seed: u64) -> (RunResult, History) {
    let run = s.run(seed);
    let h = run.history.clone().unwrap();
    if std::env::var("STORY_TRACE").is_ok() {
        eprintln!("{}", dump(&h));
    }
    assert!(
        run.violations.is_empty(),
        "violations: {:#?}\n(set STORY_TRACE=1 for the timeline)",
        run.violations
    );
    (run, h)
}

/// Every incarnation of a slot, in start order.
fn procs(h: &History, slot: usize) -> Vec<Proc> {
    h.iter()
        .filter_map(|e| match &e.act {
            Act::Started { proc, .. } if proc.slot == slot => Some(*proc),
            _ => None,
        })
        .collect()
}

/// The only incarnation of a slot (asserts it never restarted).
#[track_caller]
fn proc(h: &History, slot: usize) -> Proc {
    let p = procs(h, slot);
    assert_eq!(p.len(), 1, "slot {slot} started {} times", p.len());
    p[0]
}

/// Message ids sent by `p`, with their tags, in send order, that match `f`.
fn sent_by(h: &History, p: Proc, f: impl Fn(&Address) -> bool) -> Vec<MsgId> {
    h.iter()
        .filter_map(|e| match &e.act {
            Act::Sent {
                proc,
                id,
                to,
                request: false,
                ..
            } if *proc == p && f(to) => Some(*id),
            _ => None,
        })
        .collect()
}

/// How many times each process delivered `id`.
fn deliveries(h: &History, id: MsgId) -> BTreeMap<Proc, usize> {
    let mut m = BTreeMap::new();
    for e in h.iter() {
        if let Act::Delivered { proc, id: d, .. } = &e.act {
            if *d == id {
                *m.entry(*proc).or_insert(0) += 1;
            }
        }
    }
    m
}

/// Ids `p` delivered, in delivery order, among `ids`.
fn delivered_order(h: &History, p: Proc, ids: &[MsgId]) -> Vec<MsgId> {
    h.iter()
        .filter_map(|e| match &e.act {
            Act::Delivered { proc, id, .. } if *proc == p && ids.contains(id) => Some(*id),
            _ => None,
        })
        .collect()
}

/// Asserts that each of `ids` was delivered exactly once to each of
/// `receivers` and to nobody else.
#[track_caller]
fn assert_exactly_once(h: &History, ids: &[MsgId], receivers: &[Proc]) {
    for id in ids {
        let d = deliveries(h, *id);
        let want: BTreeMap<Proc, usize> = receivers.iter().map(|p| (*p, 1)).collect();
        assert_eq!(d, want, "deliveries of {id:?}");
    }
}

/// Member ids a process had, in registration order.
fn member_ids(h: &History, p: Proc) -> Vec<u64> {
    h.iter()
        .filter_map(|e| match &e.act {
            Act::Registered {
                proc, member_id, ..
            } if *proc == p => Some(*member_id),
            _ => None,
        })
        .collect()
}

fn send(slot: usize, to: Target, confirm: bool, size: usize) -> Action {
    Action::Send {
        slot,
        to,
        confirm,
        size,
    }
}

fn time_of(h: &History, f: impl Fn(&Act) -> bool) -> Vec<u64> {
    h.iter().filter(|e| f(&e.act)).map(|e| e.at).collect()
}

/// (1) The server crashes while member 0 has three broadcasts in flight:
/// after the restart the sender resends them and every survivor delivers
/// each exactly once.
#[test]
fn server_crash_with_three_unconfirmed_broadcasts() {
    let mut s = Scenario::new(4, 2).duration(T0 + 5_000);
    for _ in 0..3 {
        s = s.at(T0 + 500, send(0, Target::Broadcast, true, 64));
    }
    let s = s.at(T0 + 500, Action::ServerCrash { down_ms: 300 });
    let (run, h) = run_clean(s, 1);
    let p0 = proc(&h, 0);
    let ids = sent_by(&h, p0, |_| true);
    assert_eq!(ids.len(), 3);
    let survivors: Vec<Proc> = (1..4).map(|s| proc(&h, s)).collect();
    assert_exactly_once(&h, &ids, &survivors);
    assert_eq!(h.count(|a| matches!(a, Act::ServerStarted { .. })), 2);
    // Nothing was acked before the crash: the resend did it all.
    let crash = time_of(&h, |a| matches!(a, Act::ServerCrashed { .. }))[0];
    let acks = time_of(&h, |a| matches!(a, Act::Acked { proc, .. } if *proc == p0));
    assert!(acks.iter().all(|&t| t > crash), "acks {acks:?}");
    // Each broadcast got a full outcome in the new server.
    assert_eq!(
        h.count(|a| matches!(a, Act::Outcome { proc, delivered: 3, missed, .. } if *proc == p0 && missed.is_empty())),
        3
    );
    for p in &survivors {
        assert_eq!(delivered_order(&h, *p, &ids), ids, "FIFO at {p:?}");
    }
    assert!(run.coverage.reregistrations >= 4);
}

/// (1b) The server acked three broadcasts and delivered them to two members
/// but not to a third (its downlink was cut) when it crashed: the sender
/// resends, the two drop the duplicates, the third gets each once.
#[test]
fn server_crash_after_partial_delivery_resends_without_duplicates() {
    let mut s = Scenario::new(4, 2).duration(T0 + 5_000).at(
        T0 + 450,
        Action::Partition {
            slots: vec![3],
            dir: Direction::Down,
            ms: 400,
        },
    );
    for _ in 0..3 {
        s = s.at(T0 + 500, send(0, Target::Broadcast, true, 64));
    }
    let s = s.at(T0 + 600, Action::ServerCrash { down_ms: 300 });
    let (_, h) = run_clean(s, 2);
    let p0 = proc(&h, 0);
    let ids = sent_by(&h, p0, |_| true);
    assert_eq!(ids.len(), 3);
    let crash = time_of(&h, |a| matches!(a, Act::ServerCrashed { .. }))[0];
    // Acked and delivered to slots 1 and 2 before the crash...
    let acks = time_of(&h, |a| matches!(a, Act::Acked { proc, .. } if *proc == p0));
    assert!(
        acks.iter().filter(|&&t| t < crash).count() == 3,
        "acks {acks:?}"
    );
    let p3 = proc(&h, 3);
    let before: Vec<u64> = time_of(
        &h,
        |a| matches!(a, Act::Delivered { id, .. } if ids.contains(id)),
    );
    assert_eq!(before.iter().filter(|&&t| t < crash).count(), 6);
    // ...and to slot 3 only after it, once.
    let t3 = time_of(
        &h,
        |a| matches!(a, Act::Delivered { proc, .. } if *proc == p3),
    );
    assert!(t3.len() == 3 && t3.iter().all(|&t| t > crash), "{t3:?}");
    let survivors: Vec<Proc> = (1..4).map(|s| proc(&h, s)).collect();
    assert_exactly_once(&h, &ids, &survivors);
}

/// The seq of `p`'s first group join.
fn join_seq(h: &History, p: Proc) -> u64 {
    h.iter()
        .find_map(|e| match &e.act {
            Act::GroupOp {
                proc,
                join: true,
                seq,
                ..
            } if *proc == p => Some(*seq),
            _ => None,
        })
        .unwrap()
}

/// A story where instance i0 (slots 0 and 3 of six) is cut off for `ms`
/// just as slot 0 joins group "jobs"; slot 2 sends to the group during the
/// partition and after it.
fn instance_partition_during_join(ms: u64) -> Scenario {
    Scenario::new(6, 3)
        .duration(T0 + 5_500)
        .at(
            T0 + 200,
            Action::Join {
                slot: 1,
                group: "jobs",
            },
        )
        .at(
            T0 + 500,
            Action::Partition {
                slots: vec![0, 3],
                dir: Direction::Both,
                ms,
            },
        )
        .at(
            T0 + 500,
            Action::Join {
                slot: 0,
                group: "jobs",
            },
        )
        .at(T0 + 800, send(2, Target::Group("jobs"), true, 32))
        .at(T0 + 5_000, send(2, Target::Group("jobs"), true, 32))
}

/// (2a) A whole instance is cut off, for less than the heartbeat timeout,
/// while a join is in flight: nobody is declared failed; the join takes
/// effect once the partition heals, so a group message sent during the
/// partition goes to the old group only and one sent later to both.
#[test]
fn short_instance_partition_during_join() {
    let (_, h) = run_clean(instance_partition_during_join(700), 3);
    let (p0, p1, p2) = (proc(&h, 0), proc(&h, 1), proc(&h, 2));
    assert_eq!(h.count(|a| matches!(a, Act::ServerRemoved { .. })), 0);
    assert_eq!(h.count(|a| matches!(a, Act::Registered { .. })), 6);
    let ids = sent_by(&h, p2, |_| true);
    assert_exactly_once(&h, &ids[..1], &[p1]);
    assert_exactly_once(&h, &ids[1..], &[p0, p1]);
    // Slot 0 heard of nothing until the partition healed.
    let t = time_of(
        &h,
        |a| matches!(a, Act::Delivered { proc, .. } if *proc == p0),
    );
    assert!(t.iter().all(|&t| t >= T0 + 1_200), "{t:?}");
}

/// (2b) The same with a partition longer than the heartbeat timeout and
/// the resume window: both members of the instance are declared failed,
/// register again, and the join (still unacknowledged when the session
/// was lost) is carried into the new session.
#[test]
fn long_instance_partition_during_join() {
    let (run, h) = run_clean(instance_partition_during_join(2_000), 3);
    let (p0, p1, p2, p3) = (proc(&h, 0), proc(&h, 1), proc(&h, 2), proc(&h, 3));
    for p in [p0, p3] {
        let ids = member_ids(&h, p);
        assert_eq!(ids.len(), 2, "{p:?} registered {ids:?}");
        assert_eq!(
            h.count(|a| matches!(a, Act::ServerRemoved { member_id, reason: Some(_), .. } if *member_id == ids[0])),
            1
        );
    }
    assert!(run.coverage.reregistrations >= 2);
    let ids = sent_by(&h, p2, |_| true);
    assert_exactly_once(&h, &ids[..1], &[p1]);
    assert_exactly_once(&h, &ids[1..], &[p0, p1]);
}

/// The history records when the server acknowledged a group join, which
/// the G5 and G6 checkers need to tell whether a member was in a group
/// when a message was sent to it (`Facts::in_group_at`).
#[test]
fn group_joins_are_recorded_as_acked() {
    let (_, h) = run_clean(instance_partition_during_join(700), 3);
    let p0 = proc(&h, 0);
    let seq = join_seq(&h, p0);
    let acked = time_of(
        &h,
        |a| matches!(a, Act::Acked { proc, seq: s } if *proc == p0 && *s == seq),
    );
    assert!(
        acked.len() == 1 && acked[0] >= T0 + 1_200,
        "join acked at {acked:?}"
    );
}

/// (3) A member paused past the heartbeat timeout is declared failed; when
/// it wakes it registers again (session lost) and is told of the gap.
#[test]
fn paused_member_is_declared_failed_and_comes_back() {
    let mut s = Scenario::new(4, 2)
        .duration(T0 + 6_000)
        .at(T0 + 500, Action::Pause { slot: 2, ms: 2_500 });
    for t in (T0 + 600..T0 + 2_800).step_by(200) {
        s = s.at(t, send(0, Target::Broadcast, false, 32));
    }
    let (run, h) = run_clean(s, 4);
    let p2 = proc(&h, 2);
    let ids = member_ids(&h, p2);
    assert_eq!(ids.len(), 2, "registered twice: {ids:?}");
    assert_eq!(
        h.count(|a| matches!(a, Act::ServerRemoved { member_id, reason: Some(FailReason::HeartbeatTimeout), .. } if *member_id == ids[0])),
        1
    );
    // The others saw it fail, then join again.
    let p1 = proc(&h, 1);
    assert_eq!(
        h.count(|a| matches!(a, Act::ViewEvent { proc, change: ViewChange::Failed(m, FailReason::HeartbeatTimeout), .. } if *proc == p1 && *m == ids[0])),
        1
    );
    assert_eq!(
        h.count(|a| matches!(a, Act::GapNotice { proc, .. } if *proc == p2)),
        1
    );
    assert!(run.coverage.heartbeat_failures >= 1 && run.coverage.reregistrations >= 1);
}

/// (4) A member that stops reading while others flood it is evicted by
/// name (slow consumer); the others keep receiving everything.
#[test]
fn slow_consumer_is_evicted_while_others_keep_receiving() {
    let mut s = Scenario::new(4, 2)
        .duration(T0 + 6_000)
        .at(T0 + 400, Action::Slow { slot: 3, ms: 4_000 });
    for i in 0..600u64 {
        s = s.at(
            T0 + 500 + i * 3,
            send((i % 2) as usize, Target::Broadcast, false, 100),
        );
    }
    let (run, h) = run_clean(s, 5);
    let p3 = procs(&h, 3)[0];
    let first_id = member_ids(&h, p3)[0];
    assert_eq!(
        h.count(|a| matches!(a, Act::ServerRemoved { member_id, reason: Some(FailReason::SlowConsumer), .. } if *member_id == first_id)),
        1
    );
    assert!(run.coverage.evictions >= 1);
    // Slot 2 got every broadcast exactly once.
    let p2 = proc(&h, 2);
    let all: Vec<MsgId> = [0, 1]
        .iter()
        .flat_map(|&s| sent_by(&h, proc(&h, s), |_| true))
        .collect();
    assert_eq!(all.len(), 600);
    for id in &all {
        assert_eq!(deliveries(&h, *id).get(&p2), Some(&1), "{id:?}");
    }
}

/// (4b) Large messages to a member that stops reading: its queue passes the
/// byte soft limit (1 MiB in the simulator) with a few dozen items, far
/// below the item limit (256). The simulator records it over its limit
/// (`QueueOver`, which G11's eviction rule judges), its sender is
/// throttled, and it is evicted as a slow consumer.
#[test]
fn large_messages_to_a_slow_consumer_bind_the_byte_limit() {
    let mut s = Scenario::new(3, 1)
        .duration(T0 + 6_000)
        .at(T0 + 400, Action::Slow { slot: 2, ms: 3_000 });
    for i in 0..100u64 {
        s = s.at(T0 + 500 + i * 20, send(0, Target::Name(2), false, 48_000));
    }
    let (run, h) = run_clean(s, 7);
    let first_id = member_ids(&h, procs(&h, 2)[0])[0];
    assert!(
        h.count(
            |a| matches!(a, Act::QueueOver { member_id, over: true, .. } if *member_id == first_id)
        ) >= 1
    );
    assert!(run.coverage.byte_limit_binds >= 1 && run.coverage.throttled >= 1);
    assert_eq!(
        h.count(|a| matches!(a, Act::ServerRemoved { member_id, reason: Some(FailReason::SlowConsumer), .. } if *member_id == first_id)),
        1
    );
}

/// (5) A process crashes and restarts as a new incarnation before its old
/// session expires: the new one supersedes the old member.
#[test]
fn restarted_process_supersedes_its_old_incarnation() {
    let s = Scenario::new(3, 1)
        .duration(T0 + 4_000)
        .at(
            T0 + 500,
            Action::Crash {
                slot: 1,
                down_ms: 200,
            },
        )
        .at(T0 + 1_500, send(0, Target::Name(1), true, 32));
    let (run, h) = run_clean(s, 6);
    let p1 = procs(&h, 1);
    assert_eq!(p1.len(), 2, "started twice");
    assert_ne!(p1[0].incarnation, p1[1].incarnation);
    let old = member_ids(&h, p1[0])[0];
    assert_eq!(
        h.count(|a| matches!(a, Act::ServerRemoved { member_id, reason: Some(FailReason::Superseded), .. } if *member_id == old)),
        1
    );
    assert!(run.coverage.superseded >= 1);
    // A message by name after the restart reaches the new incarnation.
    let ids = sent_by(&h, proc(&h, 0), |_| true);
    assert_exactly_once(&h, &ids, &[p1[1]]);
}

/// (6) A request to a member that crashes before it can reply times out;
/// one with a longer deadline fails with "partner gone" once the server
/// declares the member failed.
#[test]
fn request_to_a_member_that_crashes_before_replying() {
    let s = Scenario::new(3, 1)
        .duration(T0 + 5_000)
        .at(T0 + 400, Action::Pause { slot: 2, ms: 2_000 })
        .at(
            T0 + 500,
            Action::Request {
                slot: 0,
                to: Target::Name(2),
                timeout_ms: 300,
            },
        )
        .at(
            T0 + 500,
            Action::Request {
                slot: 1,
                to: Target::Name(2),
                timeout_ms: 8_000,
            },
        )
        .at(
            T0 + 700,
            Action::Crash {
                slot: 2,
                down_ms: 3_000,
            },
        );
    let (run, h) = run_clean(s, 7);
    assert_eq!(run.coverage.requests, 2);
    assert_eq!(run.coverage.replies, 0);
    assert_eq!(run.coverage.request_timeouts, 1);
    assert_eq!(run.coverage.partner_gone, 1);
    let old = member_ids(&h, procs(&h, 2)[0])[0];
    assert_eq!(
        h.count(|a| matches!(a, Act::ServerRemoved { member_id, reason: Some(_), .. } if *member_id == old)),
        1
    );
}

/// (7) Anycast goes round robin over the group, skipping the sender.
#[test]
fn anycast_is_round_robin_across_group_members() {
    let mut s = Scenario::new(4, 2).duration(T0 + 3_000);
    for slot in 0..4 {
        s = s.at(
            T0 + 100,
            Action::Join {
                slot,
                group: "jobs",
            },
        );
    }
    for i in 0..9 {
        s = s.at(
            T0 + 500 + i * 10,
            send(0, Target::Anycast("jobs"), false, 32),
        );
    }
    let (run, h) = run_clean(s, 8);
    let ids = sent_by(&h, proc(&h, 0), |_| true);
    assert_eq!(ids.len(), 9);
    assert_eq!(run.coverage.anycast_deliveries, 9);
    let mut per: BTreeMap<Proc, usize> = BTreeMap::new();
    let mut order = Vec::new();
    for id in &ids {
        let d = deliveries(&h, *id);
        assert_eq!(d.len(), 1, "{id:?} delivered to {d:?}");
        let (p, n) = d.into_iter().next().unwrap();
        assert_eq!(n, 1);
        *per.entry(p).or_default() += 1;
        order.push(p);
    }
    assert_eq!(per.len(), 3, "{per:?}");
    assert!(per.values().all(|&n| n == 3), "{per:?}");
    assert!(!per.contains_key(&proc(&h, 0)));
    // Strict rotation.
    assert_eq!(order[0..3], order[3..6]);
    assert_eq!(order[0..3], order[6..9]);
}

/// (8) A one-way partition (server → member) shorter than the heartbeat
/// timeout: nobody is declared failed and nothing reconnects; what was
/// sent meanwhile arrives afterwards. A longer one makes the member drop
/// its connection and resume its session, still without a failure.
#[test]
fn one_way_partition_short_and_long() {
    let s = Scenario::new(3, 1)
        .duration(T0 + 4_000)
        .at(
            T0 + 500,
            Action::Partition {
                slots: vec![1],
                dir: Direction::Down,
                ms: 600,
            },
        )
        .at(T0 + 600, send(0, Target::Name(1), true, 32))
        .at(T0 + 700, send(0, Target::Name(1), true, 32));
    let (run, h) = run_clean(s, 9);
    let p1 = proc(&h, 1);
    assert_eq!(h.count(|a| matches!(a, Act::ServerRemoved { .. })), 0);
    assert_eq!(run.coverage.disconnects, 0);
    let ids = sent_by(&h, proc(&h, 0), |_| true);
    assert_exactly_once(&h, &ids, &[p1]);
    let t = time_of(
        &h,
        |a| matches!(a, Act::Delivered { proc, .. } if *proc == p1),
    );
    assert!(t.iter().all(|&t| t >= T0 + 1_100), "{t:?}");

    let s = Scenario::new(3, 1)
        .duration(T0 + 5_000)
        .at(
            T0 + 500,
            Action::Partition {
                slots: vec![1],
                dir: Direction::Down,
                ms: 1_500,
            },
        )
        .at(T0 + 600, send(0, Target::Name(1), true, 32))
        .at(T0 + 1_800, send(0, Target::Name(1), true, 32));
    let (run, h) = run_clean(s, 9);
    let p1 = proc(&h, 1);
    assert_eq!(h.count(|a| matches!(a, Act::ServerRemoved { .. })), 0);
    assert_eq!(
        h.count(|a| matches!(a, Act::Resumed { proc } if *proc == p1)),
        1
    );
    assert_eq!(member_ids(&h, p1).len(), 1);
    assert!(run.coverage.resumes >= 1);
    let ids = sent_by(&h, proc(&h, 0), |_| true);
    assert_exactly_once(&h, &ids, &[p1]);
}

/// (9) A connection reset in the middle of a burst, on the receiver and on
/// the sender: both resume, nothing is lost, duplicated or reordered.
#[test]
fn reset_mid_burst_resumes_without_loss_or_duplicates() {
    let mut s = Scenario::new(3, 1).duration(T0 + 3_000);
    for i in 0..60 {
        s = s.at(T0 + 500 + i, send(0, Target::Name(1), i % 3 == 0, 64));
    }
    let s = s
        .at(T0 + 520, Action::Reset { slot: 1 })
        .at(T0 + 540, Action::Reset { slot: 0 });
    let (run, h) = run_clean(s, 10);
    let (p0, p1) = (proc(&h, 0), proc(&h, 1));
    assert_eq!(run.coverage.faults.reset, 2);
    assert_eq!(h.count(|a| matches!(a, Act::Resumed { .. })), 2);
    assert_eq!(member_ids(&h, p0).len(), 1);
    assert_eq!(member_ids(&h, p1).len(), 1);
    let ids = sent_by(&h, p0, |_| true);
    assert_eq!(ids.len(), 60);
    assert_exactly_once(&h, &ids, &[p1]);
    assert_eq!(delivered_order(&h, p1, &ids), ids);
}

/// (10) A confirmed message to a member that says goodbye before it reads
/// it: the outcome names the addressee as missed because it left.
#[test]
fn confirmed_message_to_a_member_that_says_goodbye() {
    let s = Scenario::new(3, 1)
        .duration(T0 + 3_000)
        .at(T0 + 400, Action::Slow { slot: 2, ms: 1_000 })
        .at(T0 + 500, send(0, Target::Name(2), true, 32))
        .at(T0 + 600, Action::Goodbye { slot: 2 });
    let (run, h) = run_clean(s, 11);
    let (p0, p2) = (proc(&h, 0), proc(&h, 2));
    let m2 = member_ids(&h, p2)[0];
    let ids = sent_by(&h, p0, |_| true);
    assert!(deliveries(&h, ids[0]).is_empty());
    let outcome = h
        .iter()
        .find_map(|e| match &e.act {
            Act::Outcome {
                proc,
                seq,
                delivered,
                missed,
            } if *proc == p0 && *seq == ids[0].seq => Some((*delivered, missed.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(outcome.0, 0);
    assert_eq!(outcome.1.len(), 1);
    assert_eq!(outcome.1[0].member_id, m2);
    assert_eq!(outcome.1[0].reason, MissReason::Left);
    assert_eq!(run.coverage.outcomes_with_missed, 1);
    assert_eq!(
        h.count(|a| matches!(a, Act::ServerRemoved { reason: None, .. })),
        1
    );
}

/// (11) A large (chunked) message in flight when the server crashes is
/// resent and delivered once, intact, to every addressee.
#[test]
fn chunked_message_across_a_server_crash() {
    let s = Scenario::new(3, 1)
        .duration(T0 + 5_000)
        .at(T0 + 500, send(0, Target::Broadcast, true, 60_000))
        .at(T0 + 500, send(1, Target::Name(2), false, 40_000))
        .at(T0 + 500, Action::ServerCrash { down_ms: 200 });
    let (run, h) = run_clean(s, 12);
    let (p0, p1, p2) = (proc(&h, 0), proc(&h, 1), proc(&h, 2));
    let big = sent_by(&h, p0, |_| true);
    let small = sent_by(&h, p1, |_| true);
    assert_exactly_once(&h, &big, &[p1, p2]);
    assert_exactly_once(&h, &small, &[p2]);
    assert_eq!(
        h.count(|a| matches!(a, Act::Delivered { intact: true, .. })),
        3
    );
    assert_eq!(run.coverage.chunked_sends, 2);
    assert_eq!(run.coverage.chunked_deliveries, 3);
}

/// (12) The server crashes again during the restart grace of a previous
/// crash: messages from before the first crash, from the first grace and
/// from after the second restart all reach every member once.
#[test]
fn server_crash_during_the_restart_grace() {
    let s = Scenario::new(4, 2)
        .duration(T0 + 6_000)
        .at(T0 + 500, send(0, Target::Broadcast, true, 32))
        .at(T0 + 500, Action::ServerCrash { down_ms: 300 })
        .at(T0 + 1_200, send(0, Target::Broadcast, true, 32))
        .at(T0 + 1_200, send(1, Target::Instance(0), true, 32))
        .at(T0 + 1_500, Action::ServerCrash { down_ms: 300 })
        .at(T0 + 2_000, send(2, Target::Broadcast, false, 32));
    let (_, h) = run_clean(s, 13);
    let p: Vec<Proc> = (0..4).map(|s| proc(&h, s)).collect();
    let starts = time_of(&h, |a| matches!(a, Act::ServerStarted { .. }));
    assert_eq!(starts.len(), 3);
    // The second crash came within the first restart's grace.
    assert!(starts[1] + 2_000 > T0 + 1_500, "{starts:?}");
    let from0 = sent_by(&h, p[0], |_| true);
    assert_eq!(from0.len(), 2);
    assert_exactly_once(&h, &from0, &[p[1], p[2], p[3]]);
    // To instance i0 (slots 0 and 2), from slot 1 (in i1).
    assert_exactly_once(&h, &sent_by(&h, p[1], |_| true), &[p[0], p[2]]);
    assert_exactly_once(&h, &sent_by(&h, p[2], |_| true), &[p[0], p[1], p[3]]);
    assert_eq!(
        h.count(|a| matches!(a, Act::Outcome { missed, .. } if missed.is_empty())),
        3
    );
}

/// (13) A member joins a group while its registration handshake is still
/// running (here: a restarted process on a clogged link, after its Hello
/// went out and before the Welcome came back); once registered it must
/// receive the group's traffic.
#[test]
fn join_during_the_registration_handshake_takes_effect() {
    let s = Scenario::new(3, 1)
        .duration(T0 + 5_000)
        .at(
            T0 + 400,
            Action::Clog {
                slot: 1,
                extra_ms: 200,
                ms: 1_500,
            },
        )
        .at(
            T0 + 500,
            Action::Crash {
                slot: 1,
                down_ms: 200,
            },
        )
        .at(
            T0 + 1_500,
            Action::Join {
                slot: 1,
                group: "jobs",
            },
        )
        .at(T0 + 4_000, send(0, Target::Group("jobs"), true, 32));
    let (_, h) = run_clean(s, 14);
    let p1 = procs(&h, 1)[1];
    let joined = time_of(
        &h,
        |a| matches!(a, Act::GroupOp { proc, .. } if *proc == p1),
    )[0];
    let registered = time_of(
        &h,
        |a| matches!(a, Act::Registered { proc, .. } if *proc == p1),
    )[0];
    assert!(
        joined < registered,
        "join at {joined}, registered at {registered}"
    );
    let ids = sent_by(&h, proc(&h, 0), |_| true);
    assert_exactly_once(&h, &ids, &[p1]);
}

/// The hostile writes of `p`, in order.
fn hostile_frames(h: &History, p: Proc) -> Vec<(u64, HostileFrame)> {
    h.iter()
        .filter_map(|e| match &e.act {
            Act::Hostile { proc, frame, .. } if *proc == p => Some((e.at, frame.clone())),
            _ => None,
        })
        .collect()
}

/// A member whose `Send` jumps past the sequence window is removed for a
/// protocol violation at once and told so (`UnexpectedFrame`); it comes
/// back with a fresh registration, and the others' messages, to it and to
/// each other, are delivered exactly once.
#[test]
fn a_sequence_jump_removes_only_the_hostile_member() {
    let hostile = || Action::Hostile {
        slot: 1,
        kind: HostileKind::SeqAhead,
    };
    let s = Scenario::new(3, 1)
        .at(T0, send(1, Target::Id(0), false, 32))
        .at(T0 + 500, hostile())
        .at(T0 + 600, send(0, Target::Id(2), true, 32))
        .at(T0 + 3_000, send(0, Target::Broadcast, true, 32));
    let (run, h) = run_clean(s, 21);
    let p1 = proc(&h, 1);
    let frames = hostile_frames(&h, p1);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert!(frames[0].1.is_seq_violation(), "{frames:?}");
    let removed = time_of(&h, |a| {
        matches!(
            a,
            Act::ServerRemoved {
                reason: Some(FailReason::ProtocolViolation),
                ..
            }
        )
    });
    assert_eq!(removed, vec![frames[0].0]);
    assert_eq!(run.coverage.protocol_violations, 1);
    let told = h.count(|a| {
        matches!(a, Act::Disconnected { proc, code: Some(ErrorCode::UnexpectedFrame), .. } if *proc == p1)
    });
    assert_eq!(told, 1);
    assert!(member_ids(&h, p1).len() >= 2, "registered again");
    let (p0, p2) = (proc(&h, 0), proc(&h, 2));
    let to_2 = sent_by(&h, p0, |a| matches!(a, Address::MemberId(_)));
    assert_exactly_once(&h, &to_2, &[p2]);
    let all = sent_by(&h, p0, |a| matches!(a, Address::Broadcast));
    assert_exactly_once(&h, &all, &[p1, p2]);
}

/// Past the subscription and group quotas a crafted `Subscribe` or `Join`
/// is refused `OverQuota`: the NACK answers the sequence it took.
#[test]
fn subscriptions_and_joins_past_the_quota_are_refused() {
    let s = Scenario::new(3, 1)
        .at(
            T0,
            Action::Hostile {
                slot: 0,
                kind: HostileKind::SubscribeOver,
            },
        )
        .at(
            T0 + 500,
            Action::Hostile {
                slot: 0,
                kind: HostileKind::JoinOver,
            },
        )
        .at(T0 + 1_000, send(1, Target::Id(0), true, 32));
    let (run, h) = run_clean(s, 22);
    let p0 = proc(&h, 0);
    let frames = hostile_frames(&h, p0);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(run.coverage.hostile_subscribe_over, 1);
    assert_eq!(run.coverage.hostile_join_over, 1);
    for (_, f) in &frames {
        let seq = f.taken_seq().unwrap();
        let nacks = h.count(|a| {
            matches!(a, Act::Nacked { proc, seq: s, reason: NackReason::OverQuota } if *proc == p0 && *s == seq)
        });
        assert_eq!(nacks, 1, "{f:?}");
    }
    let ids = sent_by(&h, proc(&h, 1), |_| true);
    assert_exactly_once(&h, &ids, &[p0]);
}

/// A `DeliveryAck` beyond the stream, read while the member's own message
/// is still untransmitted, releases only what was transmitted: the message
/// still reaches the member, which is the one delivery its outcome counts.
/// Without the capability, or at or below its mark, `Taken` changes
/// nothing.
#[test]
fn an_acknowledgement_ahead_of_the_stream_releases_only_what_was_sent() {
    let s = Scenario::new(3, 1)
        .at(T0, send(1, Target::Id(0), true, 32))
        .at(T0 + 10, send(2, Target::Id(0), true, 32))
        .at(
            T0 + 500,
            Action::Hostile {
                slot: 0,
                kind: HostileKind::AckAhead,
            },
        )
        .at(
            T0 + 600,
            Action::Hostile {
                slot: 0,
                kind: HostileKind::Taken,
            },
        )
        .at(
            T0 + 700,
            Action::Hostile {
                slot: 1,
                kind: HostileKind::Taken,
            },
        )
        .at(T0 + 800, send(2, Target::Id(1), true, 32))
        .at(T0 + 900, send(2, Target::Id(0), true, 32));
    let (run, h) = run_clean(s, 23);
    assert_eq!(run.coverage.hostile_ack_ahead, 1);
    assert_eq!(run.coverage.hostile_taken, 2);
    let p0 = proc(&h, 0);
    let own = sent_by(&h, p0, |_| true);
    assert_eq!(own.len(), 1);
    assert_exactly_once(&h, &own, &[p0]);
    let outcome = h.iter().find_map(|e| match &e.act {
        Act::Outcome {
            proc,
            seq,
            delivered,
            ..
        } if *proc == p0 && *seq == own[0].seq => Some(*delivered),
        _ => None,
    });
    assert_eq!(outcome, Some(1));
    for slot in [1, 2] {
        let ids = sent_by(&h, proc(&h, slot), |_| true);
        for id in ids {
            assert_eq!(deliveries(&h, id).values().sum::<usize>(), 1, "{id:?}");
        }
    }
}
