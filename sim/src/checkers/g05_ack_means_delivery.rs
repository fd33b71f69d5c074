//! G5 Ack means delivery: a message the server acked is delivered to every
//! addressee that stays alive and connected (or resumes its session).
//!
//! For each `Sent` (not anycast, not a request) with an `Acked` after it and
//! no `Nacked`: for each server `K` that acked it (the server of the
//! sender's most recent `Registered` before the `Acked`), every process with
//! a session in `K` that started at or before the send time and never ended,
//! and that is an addressee (see [`Facts::is_addressee`]), must have a
//! `Delivered` of the message, in any server.
//!
//! Across a server crash (the sender survives to resend): if `K` crashed
//! after acking the message and the sender never crashed or left after
//! sending it, every such addressee whose session in `K` lasted until the
//! crash, that also never crashed or left,
//! that in every later server run registered within `restart_grace_ms` of
//! its start and stayed until that run ended (no session of it in that run
//! ended otherwise), and, for a group, never left the group after the send,
//! must have delivered it.
//!
//! A NACK excuses a message only when it was right: a `UnknownDestination`
//! or `DestinationGone` NACK given by server `K` while an addressee was in
//! session in `K` from strictly before the send through the NACK (see
//! `Facts::live_addressee_at_nack`) leaves that addressee without the
//! message unless it delivered it anyway.
//!
//! Published events reach their subscribers: for each `Published` event
//! that a server `K` acked (and did not NACK), it was sequenced in `K` no
//! earlier than `T` = the later of its publication and the end of `K`'s
//! restart grace (`restart_grace_ms` after `K` started; 0 for the first
//! server start, which has no grace). Every process with a session in `K`
//! that started strictly before `T` and never ended, and that held a
//! subscription selecting the event — confirmed (`Acked`, not `Nacked`)
//! strictly before `T`, its unsubscription not issued before the
//! publisher's ack — must have a `Notified` of it, in any server.
//!
//! Loss is announced: a resume refused (`ResumeRefused`) by the server run
//! that removed the session (the process's latest session with that member
//! id in that run, ended by a `ServerRemoved`) must have been preceded by a
//! `GapNotice` to the process after the removal.
//!
//! What the server wrote is handed over (rule (e)): see
//! `checkers/written.rs`.
//!
//! Nothing arrives after it is stable (rule (f)): once server run `K` told
//! a sender a message or published event is stable, no member `K` had not
//! removed receives it in `K`.

use switchboard_core::frame::{Address, NackReason};

use super::fast::{HashMap, HashSet};

use super::sessions::{fm, fp, Facts, Report, Sessions};
use super::subscriptions::Subscriptions;
use crate::history::{Act, Bounds, History, Ms, MsgId, Proc, Violation};

/// Name of the guarantee.
pub const NAME: &str = "G5 ack means delivery";

/// Checks G5.
pub fn check(h: &History, b: &Bounds) -> Vec<Violation> {
    let mut r = Report::new(NAME);
    let facts = Facts::build(h);
    let sessions = Sessions::build(h);
    let runs = Runs::build(h);
    for sent in &facts.sents {
        if sent.request || matches!(sent.to, Address::Anycast(_)) {
            continue;
        }
        let key = (sent.proc, sent.id.seq);
        if let Some(nacks) = facts.nacks.get(&key) {
            for &n in nacks {
                let Act::Nacked {
                    reason: reason @ (NackReason::UnknownDestination | NackReason::DestinationGone),
                    ..
                } = &h.entries[n].act
                else {
                    continue;
                };
                let Some(k) = sessions
                    .latest_before(sent.proc, n)
                    .map(|sid| sessions.all[sid].server)
                else {
                    continue;
                };
                let Some(ses) = facts.live_addressee_at_nack(h, &sessions, sent, k, n) else {
                    continue;
                };
                if !facts.was_delivered_to(sent.id, ses.proc) {
                    r.add(format!(
                        "{} sent by {} to {:?} at t={} was Nacked {reason:?} at t={} in server {k} and never \
                         delivered, although addressee {} (member {}, registered t={}) was in session through the nack",
                        fm(sent.id),
                        fp(sent.proc),
                        sent.to,
                        sent.at,
                        h.entries[n].at,
                        fp(ses.proc),
                        ses.member_id,
                        ses.start_at
                    ));
                }
            }
            continue;
        }
        let Some(acks) = facts.acks.get(&key) else {
            continue;
        };
        let mut servers: Vec<(u64, usize)> = Vec::new();
        for &a in acks.iter().filter(|&&a| a > sent.idx) {
            if let Some(sid) = sessions.latest_before(sent.proc, a) {
                let k = sessions.all[sid].server;
                if !servers.iter().any(|&(s, _)| s == k) {
                    servers.push((k, a));
                }
            }
        }
        for (k, ack_idx) in servers {
            for ses in sessions.never_ended_since(k, sent.at) {
                let addressee =
                    facts.is_addressee(h, sent.to, sent.proc, sent.at, ses.proc, ses.member_id);
                if addressee == Some(true) && !facts.was_delivered_to(sent.id, ses.proc) {
                    r.add(format!(
                        "{} sent by {} to {:?} at t={} and acked at t={} in server {k}: never delivered to addressee {} \
                         (member {}, registered t={}, session never ended)",
                        fm(sent.id),
                        fp(sent.proc),
                        sent.to,
                        sent.at,
                        h.entries[ack_idx].at,
                        fp(ses.proc),
                        ses.member_id,
                        ses.start_at
                    ));
                }
            }
            // Across a crash of K: the sender resends, the server holds
            // multicasts until the view has filled up again.
            let Some(crash_idx) = runs.crashed.get(&k).copied() else {
                continue;
            };
            if crash_idx < ack_idx || runs.stopped_after(sent.proc, sent.idx) {
                continue;
            }
            let later: Vec<&Run> = runs
                .list
                .iter()
                .filter(|run| run.start_idx > crash_idx)
                .collect();
            if later.is_empty() {
                continue;
            }
            for ses in sessions.in_server(k).iter().map(|&sid| &sessions.all[sid]) {
                // Only sessions the crash ended: one that ended before had
                // its undelivered messages resolved (missed), not resent.
                if ses.start_at >= sent.at
                    || ses.end_idx != Some(crash_idx)
                    || runs.stopped_after(ses.proc, sent.idx)
                    || runs.left_group_after(sent.to, ses.proc, sent.idx)
                {
                    continue;
                }
                // In every later server run, back within the grace and
                // there until that run ended (a resend may happen in any):
                // every session of the process in that run ends with the
                // run. One the run removed may have missed the resend (a
                // miss, announced by a gap notice, after which the sender
                // forgets the message), even if the process registered
                // again within the grace.
                let back_in_time = later.iter().all(|run| {
                    let mut mine = sessions
                        .in_server(run.server)
                        .iter()
                        .map(|&sid| &sessions.all[sid])
                        .filter(|s2| s2.proc == ses.proc)
                        .peekable();
                    mine.peek().is_some()
                        && mine.all(|s2| s2.end_idx == run.crash_idx)
                        && sessions.in_server(run.server).iter().any(|&sid| {
                            let s2 = &sessions.all[sid];
                            s2.proc == ses.proc && s2.start_at <= run.start_at + b.restart_grace_ms
                        })
                });
                if !back_in_time {
                    continue;
                }
                let last = later[later.len() - 1].server;
                let addressee =
                    facts.is_addressee(h, sent.to, sent.proc, sent.at, ses.proc, ses.member_id);
                if addressee == Some(true) && !facts.was_delivered_to(sent.id, ses.proc) {
                    r.add(format!(
                        "{} sent by {} to {:?} at t={} and acked in server {k}, which crashed at t={}: \
                         never delivered to addressee {} although both survived and {} was back in \
                         server {last} within the grace",
                        fm(sent.id),
                        fp(sent.proc),
                        sent.to,
                        sent.at,
                        h.entries[crash_idx].at,
                        fp(ses.proc),
                        fp(ses.proc),
                    ));
                }
            }
        }
    }
    published_events_reach_subscribers(h, b, &facts, &sessions, &runs, &mut r);
    refused_resumes_are_announced(h, &sessions, &mut r);
    nothing_arrives_after_stable(h, &facts, &sessions, &mut r);
    super::written::written_items_are_handed_over(h, &mut r);
    r.finish()
}

/// (f) A message or published event whose sender server `K` told it is
/// stable (`Stable` covering its `seq`) was then received or missed by
/// every addressee in `K`: no session of `K` hands it over afterwards
/// unless `K` removed that member after the send and before the stable
/// mark (bytes already on their way to a removed member still arrive).
/// Judged while the sender's session is the one that was told, so that a
/// resend sequenced again in `K` after a fresh registration is not held
/// against the old mark.
fn nothing_arrives_after_stable(
    h: &History,
    facts: &Facts<'_>,
    sessions: &Sessions,
    r: &mut Report,
) {
    // Per (sender, server): stable marks (entry index, highest so far).
    let mut stable: HashMap<(Proc, u64), Vec<(usize, u64)>> = HashMap::default();
    let mut removals: HashMap<(u64, u64), Vec<usize>> = HashMap::default();
    let mut published: HashMap<MsgId, (Proc, usize)> = HashMap::default();
    for (idx, e) in h.entries.iter().enumerate() {
        match &e.act {
            Act::Stable { proc, through } => {
                let Some(sid) = sessions.latest_before(*proc, idx) else {
                    continue;
                };
                let marks = stable.entry((*proc, sessions.all[sid].server)).or_default();
                let high = marks.last().map_or(0, |&(_, t)| t).max(*through);
                marks.push((idx, high));
            }
            Act::ServerRemoved {
                server, member_id, ..
            } => removals.entry((*server, *member_id)).or_default().push(idx),
            Act::Published { proc, id, .. } => {
                published.entry(*id).or_insert((*proc, idx));
            }
            _ => {}
        }
    }
    for (idx, e) in h.entries.iter().enumerate() {
        let (proc, server, member_id, id, what) = match &e.act {
            Act::Delivered {
                proc,
                server,
                member_id,
                id,
                ..
            } => (*proc, *server, *member_id, *id, "delivered"),
            Act::Notified {
                proc,
                server,
                member_id,
                id,
                ..
            } => (*proc, *server, *member_id, *id, "was handed event"),
            _ => continue,
        };
        let origin = match &e.act {
            Act::Delivered { .. } => facts.sent(id).map(|s| (s.proc, s.idx)),
            _ => published.get(&id).copied(),
        };
        let Some((sender, sent_idx)) = origin else {
            continue;
        };
        let Some(marks) = stable.get(&(sender, server)) else {
            continue;
        };
        let first = marks.partition_point(|&(_, high)| high < id.seq);
        let Some(&(mark_idx, _)) = marks.get(first).filter(|&&(m, _)| m < idx) else {
            continue;
        };
        if sessions.latest_before(sender, mark_idx) != sessions.latest_before(sender, idx) {
            continue;
        }
        let removed = removals
            .get(&(server, member_id))
            .is_some_and(|v| v.iter().any(|&i| i > sent_idx && i < mark_idx));
        if !removed {
            r.add(format!(
                "{} {what} {} (member {member_id}, server {server}) at t={}, after server {server} told its sender {} \
                 it was stable (t={}), and the server had not removed that member",
                fp(proc),
                fm(id),
                e.at,
                fp(sender),
                h.entries[mark_idx].at
            ));
        }
    }
}

/// Every subscriber whose subscription was in force when a published event
/// was sequenced, and whose session survives, is handed the event.
fn published_events_reach_subscribers(
    h: &History,
    b: &Bounds,
    facts: &Facts<'_>,
    sessions: &Sessions,
    runs: &Runs,
    r: &mut Report,
) {
    let subs = Subscriptions::build(h);
    if subs.by_proc.is_empty() {
        return;
    }
    let mut notified: HashSet<(MsgId, Proc)> = HashSet::default();
    for e in h.iter() {
        if let Act::Notified { proc, id, .. } = &e.act {
            notified.insert((*id, *proc));
        }
    }
    let first_server = runs.list.first().map(|run| run.server);
    for p in &subs.published {
        let key = (p.proc, p.id.seq);
        let Some(acks) = facts.acks.get(&key) else {
            continue;
        };
        let server_of = |idx: usize| {
            sessions
                .latest_before(p.proc, idx)
                .map(|sid| sessions.all[sid].server)
        };
        let nacked_by: Vec<u64> = facts
            .nacks
            .get(&key)
            .into_iter()
            .flatten()
            .filter_map(|&n| server_of(n))
            .collect();
        let mut judged: Vec<u64> = Vec::new();
        for &a in acks.iter().filter(|&&a| a > p.idx) {
            let Some(k) = server_of(a) else {
                continue;
            };
            if judged.contains(&k) || nacked_by.contains(&k) {
                continue;
            }
            judged.push(k);
            let Some(run) = runs.list.iter().find(|run| run.server == k) else {
                continue;
            };
            let grace = if Some(k) == first_server {
                0
            } else {
                b.restart_grace_ms
            };
            let t = p.at.max(run.start_at + grace);
            for ses in sessions.never_ended_since(k, t) {
                if notified.contains(&(p.id, ses.proc)) {
                    continue;
                }
                let in_force = subs.of(ses.proc).iter().find(|sub| {
                    sub.filter.matches(p.kind, p.topic)
                        && !sub.nacked
                        && sub.acked.is_some_and(|(_, at)| at < t)
                        && sub.unsub_idx.is_none_or(|u| u > a)
                });
                if let Some(sub) = in_force {
                    r.add(format!(
                        "event {} published by {} at t={} and acked at t={} in server {k} (sequenced at t={t} \
                         or later): never handed to subscriber {} (member {}, registered t={}, session never \
                         ended), whose subscription seq {} was confirmed at t={}",
                        fm(p.id),
                        fp(p.proc),
                        p.at,
                        h.entries[a].at,
                        fp(ses.proc),
                        ses.member_id,
                        ses.start_at,
                        sub.seq,
                        sub.acked.map_or(0, |(_, at)| at)
                    ));
                }
            }
        }
    }
}

/// A resume refused by the server run that removed the session comes after
/// a `GapNotice` (sent after the removal).
fn refused_resumes_are_announced(h: &History, sessions: &Sessions, r: &mut Report) {
    let mut gaps: HashMap<Proc, Vec<usize>> = HashMap::default();
    for (idx, e) in h.entries.iter().enumerate() {
        match &e.act {
            Act::GapNotice { proc, .. } => gaps.entry(*proc).or_default().push(idx),
            Act::ResumeRefused {
                proc,
                server,
                member_id,
            } => {
                let Some(ses) = sessions
                    .with_member(*server, *member_id)
                    .filter(|s| s.proc == *proc && s.start_idx < idx)
                    .last()
                else {
                    continue;
                };
                let Some(end) = ses.end_idx.filter(|&end| end < idx) else {
                    continue;
                };
                let removed = matches!(
                    &h.entries[end].act,
                    Act::ServerRemoved { server: k, member_id: m, .. } if k == server && m == member_id
                );
                let announced = gaps
                    .get(proc)
                    .is_some_and(|v| v.iter().any(|&g| g > end && g < idx));
                if removed && !announced {
                    r.add(format!(
                        "{} resumed member {member_id} at t={} after server {server} removed it (t={}), and was \
                         refused without a Gap notice first",
                        fp(*proc),
                        e.at,
                        h.entries[end].at
                    ));
                }
            }
            _ => {}
        }
    }
}

/// One server run.
struct Run {
    server: u64,
    start_at: Ms,
    start_idx: usize,
    crash_idx: Option<usize>,
}

/// Server runs and process ends, indexed.
struct Runs {
    /// Server incarnation -> entry index of its crash.
    crashed: HashMap<u64, usize>,
    /// Every server run, in order.
    list: Vec<Run>,
    /// Process -> entry indexes of its `Crashed` and `Goodbye` acts.
    stops: HashMap<Proc, Vec<usize>>,
    /// (process, group) -> entry indexes of its group leaves.
    leaves: HashMap<(Proc, String), Vec<usize>>,
}

impl Runs {
    fn build(h: &History) -> Runs {
        let mut runs = Runs {
            crashed: HashMap::default(),
            list: Vec::new(),
            stops: HashMap::default(),
            leaves: HashMap::default(),
        };
        for (idx, e) in h.entries.iter().enumerate() {
            match &e.act {
                Act::ServerStarted { server } => runs.list.push(Run {
                    server: *server,
                    start_at: e.at,
                    start_idx: idx,
                    crash_idx: None,
                }),
                Act::ServerCrashed { server } => {
                    runs.crashed.insert(*server, idx);
                    if let Some(run) = runs.list.iter_mut().rev().find(|r| r.server == *server) {
                        run.crash_idx = Some(idx);
                    }
                }
                Act::Crashed { proc } | Act::Goodbye { proc } => {
                    runs.stops.entry(*proc).or_default().push(idx);
                }
                Act::GroupOp {
                    proc,
                    group,
                    join: false,
                    ..
                } => {
                    runs.leaves
                        .entry((*proc, group.clone()))
                        .or_default()
                        .push(idx);
                }
                _ => {}
            }
        }
        runs
    }

    /// True when the process crashed or left after entry `idx`.
    fn stopped_after(&self, p: Proc, idx: usize) -> bool {
        self.stops
            .get(&p)
            .is_some_and(|v| v.iter().any(|&i| i > idx))
    }

    /// True when `to` is a group that `p` left after entry `idx`.
    fn left_group_after(&self, to: &Address, p: Proc, idx: usize) -> bool {
        let Address::Group(g) = to else {
            return false;
        };
        self.leaves
            .get(&(p, g.clone()))
            .is_some_and(|v| v.iter().any(|&i| i > idx))
    }
}

#[cfg(test)]
mod tests {
    use switchboard_core::frame::{Address, FailReason, NackReason};

    use super::check;
    use crate::checkers::testkit::*;
    use crate::history::Proc;

    /// B holds a subscription to every event (confirmed); A publishes
    /// event 9 and server 1 acks it.
    fn subscribed_and_published() -> Hb {
        happy_run()
            .subscribe(B, 3, 1, every_event())
            .ack(B, 3)
            .publish(A, 9, 77)
            .ack(A, 9)
    }

    #[test]
    fn a_message_handed_over_after_its_sender_was_told_it_is_stable_is_flagged() {
        let to_b = Address::Member {
            instance: "alpha".into(),
            process: "b".into(),
        };
        // B had not received A's message 4 when server 1 told A it was
        // stable.
        let h = happy_run()
            .send(A, 4, to_b.clone())
            .ack(A, 4)
            .stable(A, 4)
            .deliver(B, 1, 2, 20, 1, id(A, 4))
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "told its sender p0#100 it was stable",
        );
        // The same for a published event.
        let h = subscribed_and_published()
            .stable(A, 9)
            .notify(B, 1, 2, 20, 1, id(A, 9), 77)
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "told its sender p0#100 it was stable",
        );
        // Received first: right.
        let h = happy_run()
            .send(A, 4, to_b.clone())
            .ack(A, 4)
            .deliver(B, 1, 2, 20, 1, id(A, 4))
            .stable(A, 4)
            .build();
        assert_clean(&check(&h, &bounds()));
        // B was removed before the mark (its bytes were on their way).
        let h = happy_run()
            .send(A, 4, to_b.clone())
            .ack(A, 4)
            .removed(1, 2, Some(FailReason::HeartbeatTimeout))
            .stable(A, 4)
            .deliver(B, 1, 2, 20, 1, id(A, 4))
            .build();
        assert_clean(&check(&h, &bounds()));
        // A mark of server 1 says nothing of server 2's deliveries.
        let h = happy_run()
            .send(A, 4, to_b)
            .ack(A, 4)
            .stable(A, 4)
            .server_crash(1)
            .server_start(2)
            .reg(A, 2, 1, 1, &[1])
            .reg(B, 2, 2, 2, &[1, 2])
            .deliver(B, 2, 2, 3, 1, id(A, 4))
            .build();
        let v = check(&h, &bounds());
        assert!(!v.iter().any(|x| x.detail.contains("stable")), "{v:#?}");
    }

    #[test]
    fn an_event_not_handed_to_a_subscriber_is_flagged() {
        let h = subscribed_and_published().build();
        assert_flags(&check(&h, &bounds()), "never handed to subscriber p1#200");
        let h = subscribed_and_published()
            .notify(B, 1, 2, 20, 1, id(A, 9), 77)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn subscribers_not_owed_the_event_are_exempt() {
        let ok = |hb: Hb| assert_clean(&check(&hb.build(), &bounds()));
        // A filter that does not select it.
        ok(happy_run()
            .subscribe(B, 3, 1, topic("jobs/"))
            .ack(B, 3)
            .publish(A, 9, 77)
            .ack(A, 9));
        // Confirmed only after the event was published.
        ok(happy_run()
            .subscribe(B, 3, 1, every_event())
            .publish(A, 9, 77)
            .ack(B, 3)
            .ack(A, 9));
        // Refused.
        ok(happy_run()
            .subscribe(B, 3, 1, every_event())
            .nack(B, 3, NackReason::OverQuota)
            .ack(B, 3)
            .publish(A, 9, 77)
            .ack(A, 9));
        // Dropped before the publisher's ack.
        ok(happy_run()
            .subscribe(B, 3, 1, every_event())
            .ack(B, 3)
            .publish(A, 9, 77)
            .unsubscribe(B, 4, 1)
            .ack(A, 9));
        // The subscriber's session ended.
        ok(subscribed_and_published().crash(B));
        // Never acked, or NACKed, by the server.
        ok(happy_run()
            .subscribe(B, 3, 1, every_event())
            .ack(B, 3)
            .publish(A, 9, 77));
        ok(happy_run()
            .subscribe(B, 3, 1, every_event())
            .ack(B, 3)
            .publish(A, 9, 77)
            .nack(A, 9, NackReason::OverQuota)
            .ack(A, 9));
    }

    /// Server 1 crashes; server 2 starts at t=1000 (grace 2,000 ms). A
    /// re-registers and publishes at once; B, whose subscription server 1
    /// confirmed, is back at `b_back_at`; server 2 acks the event at 3,100.
    fn published_in_the_grace(b_back_at: u64) -> Hb {
        happy_run()
            .subscribe(B, 3, 1, every_event())
            .ack(B, 3)
            .server_crash(1)
            .at(1000)
            .server_start(2)
            .reg(A, 2, 1, 1, &[1])
            .publish(A, 9, 77)
            .at(b_back_at)
            .reg(B, 2, 2, 2, &[1, 2])
            .at(3100)
            .ack(A, 9)
    }

    #[test]
    fn an_event_sequenced_in_the_grace_before_a_subscriber_is_back_is_flagged() {
        let h = published_in_the_grace(1500).build();
        assert_flags(&check(&h, &bounds()), "(sequenced at t=3000 or later)");
        // Back after the grace: the event may have gone out before.
        let h = published_in_the_grace(3050).build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn good_history_passes() {
        assert_clean(&check(&happy().build(), &bounds()));
    }

    #[test]
    fn lost_acked_broadcast_is_flagged() {
        let h = happy().send(A, 4, Address::Broadcast).ack(A, 4).build();
        let v = check(&h, &bounds());
        assert_flags(&v, "never delivered to addressee p1#200");
        assert_eq!(v.len(), 1, "{v:#?}");
    }

    #[test]
    fn lost_acked_direct_message_is_flagged() {
        let h = happy().send(B, 3, Address::MemberId(1)).ack(B, 3).build();
        assert_flags(&check(&h, &bounds()), "never delivered to addressee p0#100");
        let h = happy()
            .send(
                B,
                3,
                Address::Member {
                    instance: "alpha".into(),
                    process: "a".into(),
                },
            )
            .ack(B, 3)
            .build();
        assert_flags(&check(&h, &bounds()), "never delivered to addressee p0#100");
    }

    #[test]
    fn lost_acked_group_message_is_flagged() {
        let h = happy().send(A, 4, group("g")).ack(A, 4).build();
        assert_flags(&check(&h, &bounds()), "never delivered to addressee p1#200");
    }

    #[test]
    fn delivery_in_another_server_counts() {
        let h = happy()
            .send(A, 4, Address::Broadcast)
            .ack(A, 4)
            .deliver(B, 2, 7, 1, 1, id(A, 4))
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn unacked_nacked_anycast_and_requests_are_exempt() {
        let h = happy()
            .send(A, 4, Address::Broadcast)
            .send(A, 5, Address::Broadcast)
            .ack(A, 5)
            .nack(A, 5, NackReason::OverQuota)
            .send(A, 6, Address::Anycast("g".into()))
            .ack(A, 6)
            .send_request(A, 7, Address::MemberId(2))
            .ack(A, 7)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn wrongly_nacked_message_is_flagged() {
        // B was in group "g" and in session throughout: the NACK was wrong
        // and B never got the message.
        let h = happy()
            .send(A, 4, group("g"))
            .nack(A, 4, NackReason::DestinationGone)
            .build();
        assert_flags(&check(&h, &bounds()), "Nacked DestinationGone at t=");
        let h = happy()
            .send(A, 4, Address::MemberId(2))
            .nack(A, 4, NackReason::UnknownDestination)
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "never delivered, although addressee p1#200",
        );
        // Delivered anyway (an earlier server run): G8 judges the NACK.
        let h = happy()
            .send(A, 4, Address::MemberId(2))
            .deliver(B, 1, 2, 10, 1, id(A, 4))
            .nack(A, 4, NackReason::UnknownDestination)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn refused_resume_without_a_gap_is_flagged() {
        // Server 1 removed B (member 2); B's resume is refused silently.
        let h = happy()
            .removed(1, 2, Some(FailReason::ConnectionLost))
            .resume_refused(B, 1, 2)
            .build();
        assert_flags(&check(&h, &bounds()), "refused without a Gap notice first");
        // With the Gap first: fine. Refused by another server run (its
        // session ended with the crash): no Gap owed.
        let h = happy()
            .removed(1, 2, Some(FailReason::ConnectionLost))
            .gap(B, 10, 12)
            .resume_refused(B, 1, 2)
            .build();
        assert_clean(&check(&h, &bounds()));
        let h = happy()
            .server_crash(1)
            .server_start(2)
            .resume_refused(B, 2, 2)
            .build();
        assert_clean(&check(&h, &bounds()));
        // A Gap before the removal does not count.
        let h = happy()
            .gap(B, 10, 12)
            .removed(1, 2, Some(FailReason::ConnectionLost))
            .resume_refused(B, 1, 2)
            .build();
        assert_flags(&check(&h, &bounds()), "refused without a Gap notice first");
    }

    #[test]
    fn addressees_that_leave_or_join_late_are_exempt() {
        let b2 = Proc {
            slot: 1,
            incarnation: 201,
        };
        // B crashes after the send; its new incarnation registers after it.
        let h = happy()
            .send(A, 4, Address::Broadcast)
            .ack(A, 4)
            .crash(B)
            .start(b2)
            .reg(b2, 1, 4, 10, &[1, 4])
            .build();
        assert_clean(&check(&h, &bounds()));
        // The server crashes: sessions end; the member left the group.
        let h = happy()
            .send(A, 4, Address::Broadcast)
            .ack(A, 4)
            .server_crash(1)
            .build();
        assert_clean(&check(&h, &bounds()));
        let h = happy()
            .leave(B, "g", 3)
            .ack(B, 3)
            .send(A, 4, group("g"))
            .ack(A, 4)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn group_join_acked_after_the_send_is_exempt() {
        let h = happy()
            .join(A, "h", 4)
            .send(B, 3, group("h"))
            .ack(B, 3)
            .ack(A, 4)
            .build();
        assert_clean(&check(&h, &bounds()));
        let h = happy()
            .join(A, "h", 4)
            .ack(A, 4)
            .send(B, 3, group("h"))
            .ack(B, 3)
            .build();
        assert_flags(&check(&h, &bounds()), "never delivered to addressee p0#100");
    }

    #[test]
    fn sessions_of_the_acking_server_are_the_ones_judged() {
        // A re-registers in server 2 and its resend is acked there; B is in
        // server 1 only and never ended there, so it is not judged; C is
        // in server 2 since before the send and is.
        let h = Hb::new()
            .server_start(1)
            .start(A)
            .start(B)
            .start(C)
            .reg(B, 1, 1, 1, &[1])
            .reg(C, 2, 1, 1, &[1])
            .reg(A, 2, 2, 2, &[1, 2])
            .send(A, 1, Address::Broadcast)
            .ack(A, 1)
            .build();
        let v = check(&h, &bounds());
        assert_flags(&v, "addressee p2#300");
        assert_eq!(v.len(), 1, "{v:#?}");
    }

    /// Server 1 acks A's broadcast at t=100 and delivers it to C only, then
    /// crashes at t=200; server 2 starts at t=500; A, B and C all survive
    /// and re-register in server 2, B at `b_back_at`. The broadcast is
    /// never resent, so B never delivers it.
    fn across_crash(b_back_at: u64) -> Hb {
        Hb::new()
            .server_start(1)
            .start(A)
            .start(B)
            .start(C)
            .reg(A, 1, 1, 1, &[1])
            .reg(B, 1, 2, 2, &[1, 2])
            .reg(C, 1, 3, 3, &[1, 2, 3])
            .at(100)
            .send(A, 1, Address::Broadcast)
            .ack(A, 1)
            .deliver(C, 1, 3, 4, 1, id(A, 1))
            .at(200)
            .server_crash(1)
            .at(500)
            .server_start(2)
            .at(600)
            .reg(A, 2, 1, 1, &[1])
            .reg(C, 2, 3, 2, &[1, 3])
            .at(b_back_at)
            .reg(B, 2, 2, 3, &[1, 2, 3])
    }

    #[test]
    fn acked_message_lost_across_a_server_crash_is_flagged() {
        // B is back in server 2 within the grace (2000 ms after t=500).
        let h = across_crash(2_400)
            .final_ok(A)
            .final_ok(B)
            .final_ok(C)
            .build();
        let v = check(&h, &bounds());
        assert_flags(
            &v,
            "which crashed at t=200: never delivered to addressee p1#200",
        );
        assert_eq!(v.len(), 1, "{v:#?}");
    }

    #[test]
    fn addressee_removed_in_a_later_run_is_exempt_even_if_back_within_its_grace() {
        // B is back in server 2 within the grace, but that run removes it
        // (the resend may have been missed there, told by a gap notice, and
        // the sender then forgets it); B registers again, still within the
        // grace. It did not stay until the run ended: nothing is required.
        let h = across_crash(900)
            .at(1_200)
            .removed(2, 2, Some(FailReason::HeartbeatTimeout))
            .at(1_300)
            .reg(B, 2, 2, 9, &[1, 2, 3])
            .final_ok(A)
            .final_ok(B)
            .final_ok(C)
            .build();
        assert_clean(&check(&h, &bounds()));
        // Without the removal the loss is flagged.
        let h = across_crash(900)
            .final_ok(A)
            .final_ok(B)
            .final_ok(C)
            .build();
        assert_flags(&check(&h, &bounds()), "never delivered to addressee p1#200");
    }

    #[test]
    fn addressee_back_after_the_restart_grace_is_exempt() {
        // B comes back after the grace: the server may have sent the
        // resend out before B was there, so nothing is required.
        let h = across_crash(2_600)
            .final_ok(A)
            .final_ok(B)
            .final_ok(C)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn resent_delivery_or_a_stopped_party_across_a_crash_is_clean() {
        // Delivered to B in server 2 after the resend.
        let h = across_crash(700)
            .ack(A, 1)
            .deliver(B, 2, 2, 4, 1, id(A, 1))
            .build();
        assert_clean(&check(&h, &bounds()));
        // The sender crashed after sending: nobody can resend.
        let h = across_crash(700).crash(A).build();
        assert_clean(&check(&h, &bounds()));
        // B crashed after the send: it is not a survivor.
        let h = across_crash(700).crash(B).build();
        assert_clean(&check(&h, &bounds()));
    }
}
