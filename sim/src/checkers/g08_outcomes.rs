//! G8 Outcomes: a sender that asks for confirmation gets a final outcome
//! for each message; a NACK is given only when delivery really was
//! impossible.
//!
//! - Each (sender, seq) has at most one final status (`Nacked` or
//!   `Outcome`).
//! - Within one server run a message or published event is never `Nacked`
//!   after it was `Acked`: the server acks a `seq` only once it sequenced
//!   it or transmitted its NACK, so a client that saw the ack either saw
//!   the NACK first or never gets one from that run. (A later run may
//!   refuse the resend.)
//! - A message sent with `confirm` or `request` has exactly one when its
//!   sender never crashed or said goodbye after sending and has a `Final`.
//! - An `Outcome` counts no more deliveries than distinct processes that
//!   delivered the message.
//! - An `Outcome` accounts for every addressee: `delivered` plus the
//!   `missed` entries is at least the number of distinct processes that
//!   delivered the message in the server that issued the outcome (the
//!   sender's server: that of its most recent `Registered` before it).
//!   Each such process was an addressee there, and every addressee is
//!   either counted as delivered or listed as missed.
//! - A `Nacked` with `UnknownDestination` or `DestinationGone` is wrong if
//!   a process matching the address was in session in the sender's server
//!   from strictly before the send through the nack (see
//!   `Facts::live_addressee_at_nack`; for a group or anycast address,
//!   in the group throughout; for an instance, group or broadcast, not the
//!   sender).
//! - A `Nacked` with `UnknownDestination` or `DestinationGone` received
//!   before the restart grace of the sender's server ended is wrong: in the
//!   grace an unresolvable message is parked, not refused (the first start
//!   of a history is taken to have no grace, as the simulator runs it; the
//!   parked list's cap, 4,096, is never reached there).
//! - An `Outcome` is given only for a message sent with `confirm` or
//!   `request`.
//! - A `Nacked` with `Incomplete` (dropped in reassembly) is wrong for a
//!   message that fit one frame: there was nothing to reassemble.
//! - A `Nacked` with `OverQuota` of a subscription is wrong while the
//!   process had subscribed fewer than `SUBSCRIPTIONS_MAX` times before it:
//!   the server refuses a new subscription only when the member already
//!   holds that many.
//! - A hostile `Subscribe` of a fresh subscription id (`Act::Hostile`,
//!   `HostileFrame::Subscribe`) written while the process held
//!   `SUBSCRIPTIONS_MAX` subscriptions (its `Subscribed` minus its
//!   `Unsubscribed` before it: the client holds at most that many and the
//!   server applied them all in order before the crafted frame), or a
//!   hostile `Join` of a group it does not hold while it held
//!   `GROUPS_PER_MEMBER_MAX` groups (its `GroupOp`s before it), is refused
//!   `OverQuota`: the NACK of its sequence reaches the process before any
//!   `Acked` of that sequence from the same server run (an ack never passes
//!   a NACK not yet transmitted). A NACK with another reason is wrong too.
//!   A hostile `Subscribe` written while the process held fewer is not
//!   NACKed `OverQuota`.
//! - A `Nacked` with `TooLarge` is wrong for a message within the server's
//!   `message_bytes_max`, and for a published event whose payload fits one
//!   frame; a `Nacked` with `Invalid` is wrong for a well-formed published
//!   event and for a join or leave of a well-formed group name.

use super::fast::{HashMap, HashSet};

use switchboard_core::frame::{NackReason, GROUPS_PER_MEMBER_MAX, SUBSCRIPTIONS_MAX};

use super::server_log::{self, Query};
use super::sessions::{fm, fp, Facts, Report, Sessions};
use crate::history::{Act, Bounds, History, HostileFrame, MsgId, Proc, Violation};

/// Name of the guarantee.
pub const NAME: &str = "G8 outcomes";

/// Checks G8.
pub fn check(h: &History, b: &Bounds) -> Vec<Violation> {
    let mut r = Report::new(NAME);
    let facts = Facts::build(h);
    let sessions = Sessions::build(h);
    let mut statuses: HashMap<(Proc, u64), Vec<usize>> = HashMap::default();
    let mut stopped: HashMap<Proc, Vec<usize>> = HashMap::default();
    let mut finals: HashSet<Proc> = HashSet::default();
    let group_ops: HashMap<(Proc, u64), &str> = h
        .iter()
        .filter_map(|e| match &e.act {
            Act::GroupOp {
                proc, group, seq, ..
            } => Some(((*proc, *seq), group.as_str())),
            _ => None,
        })
        .collect();
    let published: HashMap<(Proc, u64), (u32, bool)> = h
        .iter()
        .filter_map(|e| match &e.act {
            Act::Published {
                proc,
                id,
                bytes,
                valid,
                ..
            } => Some(((*proc, id.seq), (*bytes, *valid))),
            _ => None,
        })
        .collect();
    for (idx, e) in h.entries.iter().enumerate() {
        match &e.act {
            Act::Nacked { proc, seq, .. } | Act::Outcome { proc, seq, .. } => {
                statuses.entry((*proc, *seq)).or_default().push(idx)
            }
            Act::Crashed { proc } | Act::Goodbye { proc } => {
                stopped.entry(*proc).or_default().push(idx)
            }
            Act::Final { proc, .. } => {
                finals.insert(*proc);
            }
            _ => {}
        }
    }
    let describe = |idx: usize| -> String {
        let e = &h.entries[idx];
        match &e.act {
            Act::Nacked { reason, .. } => format!("Nacked {reason:?} at t={}", e.at),
            Act::Outcome {
                delivered, missed, ..
            } => {
                format!(
                    "Outcome delivered={delivered} missed={} at t={}",
                    missed.len(),
                    e.at
                )
            }
            _ => format!("entry {idx}"),
        }
    };
    let msg_id = |p: Proc, seq: u64| -> MsgId {
        facts.sent_by_seq.get(&(p, seq)).map_or(
            MsgId {
                sender: p.incarnation,
                seq,
            },
            |&i| facts.sents[i].id,
        )
    };

    // At most one final status.
    let mut keys: Vec<&(Proc, u64)> = statuses.keys().collect();
    keys.sort_unstable();
    for key in keys {
        let v = &statuses[key];
        if v.len() > 1 {
            let all: Vec<String> = v.iter().map(|&i| describe(i)).collect();
            r.add(format!(
                "{} from {} has {} final statuses: {}",
                fm(msg_id(key.0, key.1)),
                fp(key.0),
                v.len(),
                all.join(", ")
            ));
        }
    }

    // No NACK after an ack of the same server run.
    let data: HashSet<(Proc, u64)> = facts
        .sents
        .iter()
        .map(|s| (s.proc, s.id.seq))
        .chain(published.keys().copied())
        .collect();
    let mut acked_in: HashMap<(Proc, u64, u64), usize> = HashMap::default();
    for (idx, e) in h.entries.iter().enumerate() {
        match &e.act {
            Act::Acked { proc, seq } if data.contains(&(*proc, *seq)) => {
                if let Some(sid) = sessions.latest_before(*proc, idx) {
                    acked_in
                        .entry((*proc, *seq, sessions.all[sid].server))
                        .or_insert(idx);
                }
            }
            Act::Nacked { proc, seq, reason } if data.contains(&(*proc, *seq)) => {
                let Some(k) = sessions
                    .latest_before(*proc, idx)
                    .map(|sid| sessions.all[sid].server)
                else {
                    continue;
                };
                if let Some(&a) = acked_in.get(&(*proc, *seq, k)) {
                    r.add(format!(
                        "{} from {} Nacked {reason:?} at t={} after server {k} acked it at t={}",
                        fm(msg_id(*proc, *seq)),
                        fp(*proc),
                        e.at,
                        h.entries[a].at
                    ));
                }
            }
            _ => {}
        }
    }

    // Exactly one when asked for and the sender lived to the end.
    for sent in &facts.sents {
        if !(sent.confirm || sent.request) || !finals.contains(&sent.proc) {
            continue;
        }
        if stopped
            .get(&sent.proc)
            .is_some_and(|v| v.iter().any(|&i| i > sent.idx))
        {
            continue;
        }
        if !statuses.contains_key(&(sent.proc, sent.id.seq)) {
            r.add(format!(
                "{} sent by {} at t={} with {} never got a final status (sender alive at the end)",
                fm(sent.id),
                fp(sent.proc),
                sent.at,
                if sent.confirm { "confirm" } else { "request" }
            ));
        }
    }

    // Server runs' start times; the first start has no grace.
    let mut starts: HashMap<u64, u64> = HashMap::default();
    let mut start_idx: HashMap<u64, usize> = HashMap::default();
    let mut first_run = None;
    for (idx, e) in h.entries.iter().enumerate() {
        if let Act::ServerStarted { server } = e.act {
            first_run.get_or_insert(server);
            starts.entry(server).or_insert(e.at);
            start_idx.entry(server).or_insert(idx);
        }
    }
    // Destination NACKs whose reason the server's log can judge.
    let logged = server_log::logged_servers(h);
    let mut queries: Vec<Query<'_>> = Vec::new();
    let mut reasons: Vec<(NackReason, MsgId, u64)> = Vec::new();

    // The number of subscriptions each process issued before each of its
    // `Subscribe` sequences.
    let mut subscribed: HashMap<Proc, usize> = HashMap::default();
    let mut subscribes_before: HashMap<(Proc, u64), usize> = HashMap::default();
    for e in h.iter() {
        if let Act::Subscribed { proc, seq, .. } = &e.act {
            let n = subscribed.entry(*proc).or_default();
            subscribes_before.insert((*proc, *seq), *n);
            *n += 1;
        }
    }
    for (idx, e) in h.entries.iter().enumerate() {
        match &e.act {
            Act::Nacked {
                proc,
                seq,
                reason: NackReason::OverQuota,
            } if subscribes_before
                .get(&(*proc, *seq))
                .is_some_and(|&n| n < SUBSCRIPTIONS_MAX) =>
            {
                r.add(format!(
                    "subscription {} seq {seq} Nacked OverQuota at t={}: it had subscribed only {} times before",
                    fp(*proc),
                    e.at,
                    subscribes_before[&(*proc, *seq)]
                ));
            }
            Act::Outcome {
                proc,
                seq,
                delivered,
                missed,
            } => {
                let id = msg_id(*proc, *seq);
                if let Some(sent) = facts
                    .sent_by_seq
                    .get(&(*proc, *seq))
                    .map(|&i| &facts.sents[i])
                    .filter(|s| !(s.confirm || s.request))
                {
                    r.add(format!(
                        "Outcome for {} at t={}: it was sent at t={} without confirm or request",
                        fm(id),
                        e.at,
                        sent.at
                    ));
                }
                let receivers: HashSet<Proc> = facts
                    .delivered
                    .get(&id)
                    .into_iter()
                    .flatten()
                    .map(|d| d.proc)
                    .collect();
                if *delivered as usize > receivers.len() {
                    r.add(format!(
                        "Outcome for {} at t={} claims {delivered} deliveries but only {} processes delivered it",
                        fm(id),
                        e.at,
                        receivers.len()
                    ));
                }
                let Some(k) = sessions
                    .latest_before(*proc, idx)
                    .map(|sid| sessions.all[sid].server)
                else {
                    continue;
                };
                let in_k: HashSet<Proc> = facts
                    .delivered
                    .get(&id)
                    .into_iter()
                    .flatten()
                    .filter(|d| d.server == k)
                    .map(|d| d.proc)
                    .collect();
                let accounted = *delivered as usize + missed.len();
                if in_k.len() > accounted {
                    r.add(format!(
                        "Outcome for {} at t={} accounts for {accounted} addressees (delivered {delivered}, missed {}) \
                         but {} processes delivered it in server {k}",
                        fm(id),
                        e.at,
                        missed.len(),
                        in_k.len()
                    ));
                }
            }
            Act::Nacked {
                proc,
                seq,
                reason: NackReason::Incomplete,
            } => {
                let sent = facts
                    .sent_by_seq
                    .get(&(*proc, *seq))
                    .map(|&i| &facts.sents[i]);
                if let Some(sent) = sent.filter(|s| s.bytes <= b.chunk_bytes_max) {
                    r.add(format!(
                        "{} of {} bytes (one frame) Nacked Incomplete at t={}: nothing was in reassembly",
                        fm(sent.id),
                        sent.bytes,
                        e.at
                    ));
                }
            }
            Act::Nacked {
                proc,
                seq,
                reason: NackReason::TooLarge,
            } => {
                let sent = facts
                    .sent_by_seq
                    .get(&(*proc, *seq))
                    .map(|&i| &facts.sents[i]);
                if let Some(sent) = sent.filter(|s| s.bytes <= b.message_bytes_max) {
                    r.add(format!(
                        "{} of {} bytes Nacked TooLarge at t={}: the limit is {}",
                        fm(sent.id),
                        sent.bytes,
                        e.at,
                        b.message_bytes_max
                    ));
                }
                if let Some(&(bytes, _)) = published.get(&(*proc, *seq)) {
                    if bytes <= b.chunk_bytes_max {
                        r.add(format!(
                            "event {} of {} bytes Nacked TooLarge at t={}: it fits one frame ({})",
                            fp(*proc),
                            bytes,
                            e.at,
                            b.chunk_bytes_max
                        ));
                    }
                }
            }
            Act::Nacked {
                proc,
                seq,
                reason: NackReason::Invalid,
            } if published
                .get(&(*proc, *seq))
                .is_some_and(|&(_, valid)| valid) =>
            {
                r.add(format!(
                    "event {} seq {seq} Nacked Invalid at t={}: it is well formed",
                    fp(*proc),
                    e.at
                ));
            }
            Act::Nacked {
                proc,
                seq,
                reason: NackReason::Invalid,
            } if group_ops
                .get(&(*proc, *seq))
                .is_some_and(|g| well_formed_name(g)) =>
            {
                r.add(format!(
                    "group operation {} seq {seq} Nacked Invalid at t={}: the group name is well formed",
                    fp(*proc),
                    e.at
                ));
            }
            Act::Nacked {
                proc,
                seq,
                reason: reason @ (NackReason::UnknownDestination | NackReason::DestinationGone),
            } => {
                let Some(sent) = facts
                    .sent_by_seq
                    .get(&(*proc, *seq))
                    .map(|&i| &facts.sents[i])
                else {
                    continue;
                };
                let Some(k) = sessions
                    .latest_before(*proc, idx)
                    .map(|sid| sessions.all[sid].server)
                else {
                    continue;
                };
                if let Some(&start) = starts.get(&k).filter(|_| first_run != Some(k)) {
                    if e.at < start + b.restart_grace_ms {
                        r.add(format!(
                            "{} to {:?} Nacked {reason:?} at t={}, within the restart grace of server {k} \
                             (started t={start}, grace {} ms): it must be parked until the grace ends",
                            fm(sent.id),
                            sent.to,
                            e.at,
                            b.restart_grace_ms
                        ));
                        continue;
                    }
                }
                if let Some(s) = facts.live_addressee_at_nack(h, &sessions, sent, k, idx) {
                    r.add(format!(
                        "{} to {:?} Nacked {reason:?} at t={} but addressee {} (member {}) was in session in server {k} \
                         from t={} through the nack",
                        fm(sent.id),
                        sent.to,
                        e.at,
                        fp(s.proc),
                        s.member_id,
                        s.start_at
                    ));
                }
                // The reason, judged against the server's own log.
                let sender = sessions
                    .latest_before(*proc, idx)
                    .map(|sid| &sessions.all[sid])
                    .filter(|s| s.server == k)
                    .map(|s| s.member_id);
                if let (true, Some(sender)) = (logged.contains(&k), sender) {
                    queries.push(Query {
                        server: k,
                        sender,
                        to: sent.to,
                        from_idx: sent.idx.max(start_idx.get(&k).copied().unwrap_or(0)),
                        nack_idx: idx,
                    });
                    reasons.push((*reason, sent.id, e.at));
                }
            }
            _ => {}
        }
    }
    let possible = server_log::possible_reasons(h, &queries);
    for ((q, &(reason, id, at)), &can) in queries.iter().zip(&reasons).zip(&possible) {
        if server_log::reason_bit(reason) & can == 0 {
            let could = match can {
                0 => "none: the address resolved throughout".to_owned(),
                server_log::UNKNOWN => "only UnknownDestination".to_owned(),
                server_log::GONE => "only DestinationGone".to_owned(),
                _ => "either".to_owned(),
            };
            r.add(format!(
                "{} to {:?} Nacked {reason:?} at t={at}: by server {}'s log of registrations and removals \
                 from the send to the NACK, the reason could be {could}",
                fm(id),
                q.to,
                q.server
            ));
        }
    }
    hostile_quota_frames_are_refused(h, &mut r);
    r.finish()
}

/// A hostile `Subscribe` or `Join` past the quota is NACKed `OverQuota`
/// (see the module doc).
fn hostile_quota_frames_are_refused(h: &History, r: &mut Report) {
    let mut subs: HashMap<Proc, usize> = HashMap::default();
    let mut groups: HashMap<Proc, HashSet<&str>> = HashMap::default();
    for (idx, e) in h.entries.iter().enumerate() {
        let (proc, server, over, what) = match &e.act {
            Act::Subscribed { proc, .. } => {
                *subs.entry(*proc).or_default() += 1;
                continue;
            }
            Act::Unsubscribed { proc, .. } => {
                let n = subs.entry(*proc).or_default();
                *n = n.saturating_sub(1);
                continue;
            }
            Act::GroupOp {
                proc, group, join, ..
            } => {
                let set = groups.entry(*proc).or_default();
                if *join {
                    set.insert(group.as_str());
                } else {
                    set.remove(group.as_str());
                }
                continue;
            }
            Act::Hostile {
                proc,
                server,
                frame: HostileFrame::Subscribe { .. },
                ..
            } => {
                let held = subs.get(proc).copied().unwrap_or(0);
                (
                    *proc,
                    *server,
                    Some(held >= SUBSCRIPTIONS_MAX),
                    format!("subscription while it held {held}"),
                )
            }
            Act::Hostile {
                proc,
                server,
                frame: HostileFrame::Join { group, .. },
                ..
            } => {
                let set = groups.get(proc);
                let held = set.map_or(0, |s| s.len());
                let new = set.is_none_or(|s| !s.contains(group.as_str()));
                // Fewer groups: not judged (the cluster-wide `groups_max`
                // could refuse it too).
                let over = (new && held >= GROUPS_PER_MEMBER_MAX).then_some(true);
                (
                    *proc,
                    *server,
                    over,
                    format!("join of group {group:?} while it held {held} groups"),
                )
            }
            _ => continue,
        };
        let Some(over) = over else {
            continue;
        };
        let Some(seq) = (match &e.act {
            Act::Hostile { frame, .. } => frame.taken_seq(),
            _ => None,
        }) else {
            continue;
        };
        // The first answer to its sequence, unless that server run ended
        // before it (the client then resends the command it took the
        // sequence from).
        let answer = h.entries[idx + 1..].iter().find_map(|x| match &x.act {
            Act::Nacked {
                proc: p,
                seq: s,
                reason,
            } if *p == proc && *s == seq => Some(Some((x.at, Some(*reason)))),
            Act::Acked { proc: p, seq: s } if *p == proc && *s == seq => Some(Some((x.at, None))),
            Act::ServerCrashed { server: k } if *k == server => Some(None),
            _ => None,
        });
        let Some(Some((at, answer))) = answer else {
            continue;
        };
        let wrong = match (over, answer) {
            (true, Some(NackReason::OverQuota)) => None,
            (true, Some(other)) => Some(format!("Nacked {other:?} at t={at}, not OverQuota")),
            (true, None) => Some(format!("Acked at t={at} without the OverQuota NACK")),
            (false, Some(NackReason::OverQuota)) => Some(format!("Nacked OverQuota at t={at}")),
            (false, _) => None,
        };
        if let Some(wrong) = wrong {
            r.add(format!(
                "{} wrote a hostile {what} (seq {seq}) to server {server} at t={}: {wrong}",
                fp(proc),
                e.at
            ));
        }
    }
}

/// The protocol's rule for a member, group or service name: non-empty,
/// at most `NAME_BYTES_MAX` bytes, no control characters.
fn well_formed_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= switchboard_core::frame::NAME_BYTES_MAX
        && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use switchboard_core::frame::{Address, FailReason, MissReason, Missed, NackReason};

    use super::check;
    use crate::checkers::testkit::*;
    use crate::history::{Act, History, HostileFrame, ViewChange};

    /// B (member 2 of server 1) subscribed `n` times (sequences 10..)
    /// and then wrote a hostile subscription taking the sequence of its
    /// load publish 100.
    fn hostile_subscription(n: usize) -> crate::checkers::testkit::Hb {
        let mut hb = happy_run();
        for i in 0..n {
            hb = hb.subscribe(B, 10 + i as u64, i as u32 + 1, every_event());
        }
        hb.publish(B, 100, 7)
            .hostile(B, 1, 2, HostileFrame::Subscribe { seq: 100 })
    }

    /// B joined `n` groups (sequences 10..) and then wrote a hostile join
    /// of "over" taking the sequence of its publish 100.
    fn hostile_join(n: usize) -> crate::checkers::testkit::Hb {
        // B already holds "g" (happy run).
        let mut hb = happy_run();
        for i in 0..n.saturating_sub(1) {
            hb = hb.join(B, &format!("pad-{i}"), 10 + i as u64);
        }
        hb.publish(B, 100, 7).hostile(
            B,
            1,
            2,
            HostileFrame::Join {
                seq: 100,
                group: "over".into(),
            },
        )
    }

    #[test]
    fn a_hostile_subscription_past_the_quota_must_be_refused_over_quota() {
        use switchboard_core::frame::SUBSCRIPTIONS_MAX as MAX;
        // Refused: fine.
        let h = hostile_subscription(MAX)
            .nack(B, 100, NackReason::OverQuota)
            .final_ok(A)
            .final_ok(B)
            .build();
        assert_clean(&check(&h, &bounds()));
        // Acked without the NACK: the server took a 65th subscription.
        let h = hostile_subscription(MAX).ack(B, 100).build();
        assert_flags(&check(&h, &bounds()), "Acked at t=");
        assert_flags(&check(&h, &bounds()), "without the OverQuota NACK");
        // Refused for another reason.
        let h = hostile_subscription(MAX)
            .nack(B, 100, NackReason::Invalid)
            .build();
        assert_flags(&check(&h, &bounds()), "Nacked Invalid at t=");
        // One dropped before: under the quota, so an OverQuota NACK is
        // wrong and an ack is right.
        let under = || hostile_subscription(MAX - 1);
        let h = under().nack(B, 100, NackReason::OverQuota).build();
        assert_flags(&check(&h, &bounds()), "while it held 63");
        let h = under().ack(B, 100).build();
        assert!(!check(&h, &bounds())
            .iter()
            .any(|v| v.detail.contains("hostile")));
        // The server run ended first: the ack comes from the next run.
        let h = hostile_subscription(MAX)
            .server_crash(1)
            .ack(B, 100)
            .build();
        assert!(!check(&h, &bounds())
            .iter()
            .any(|v| v.detail.contains("hostile")));
    }

    #[test]
    fn a_hostile_join_past_the_quota_must_be_refused_over_quota() {
        use switchboard_core::frame::GROUPS_PER_MEMBER_MAX as MAX;
        let h = hostile_join(MAX)
            .nack(B, 100, NackReason::OverQuota)
            .build();
        assert!(!check(&h, &bounds())
            .iter()
            .any(|v| v.detail.contains("hostile")));
        let h = hostile_join(MAX).ack(B, 100).build();
        assert_flags(
            &check(&h, &bounds()),
            "hostile join of group \"over\" while it held 64 groups",
        );
        // Under the quota: not judged.
        let h = hostile_join(MAX - 1).ack(B, 100).build();
        assert!(!check(&h, &bounds())
            .iter()
            .any(|v| v.detail.contains("hostile")));
    }

    #[test]
    fn an_incomplete_nack_is_wrong_only_for_a_message_that_fit_one_frame() {
        // Bounds: chunk_bytes_max 1,000.
        let big = happy_run()
            .send_bytes(A, 4, Address::MemberId(2), 5_000)
            .nack(A, 4, NackReason::Incomplete)
            .build();
        assert_clean(&check(&big, &bounds()));
        let small = happy_run()
            .send_bytes(A, 4, Address::MemberId(2), 1_000)
            .nack(A, 4, NackReason::Incomplete)
            .build();
        assert_flags(&check(&small, &bounds()), "Nacked Incomplete");
    }

    #[test]
    fn good_history_passes() {
        assert_clean(&check(&happy().build(), &bounds()));
        let h = happy_run()
            .send_confirm(A, 4, Address::MemberId(3))
            .nack(A, 4, NackReason::DestinationGone)
            .send_request(A, 5, Address::MemberId(2))
            .ack(A, 5)
            .outcome(
                A,
                5,
                0,
                vec![Missed {
                    member_id: 2,
                    reason: MissReason::Failed,
                }],
            )
            .final_ok(A)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn a_destination_nack_within_a_restart_grace_is_flagged() {
        // Server 2 restarts at t=1000 with a grace of 2,000 ms.
        let restarted = || {
            happy_run()
                .server_crash(1)
                .at(1_000)
                .server_start(2)
                .reg(A, 2, 1, 1, &[1])
                .send(A, 10, Address::MemberId(99))
        };
        let h = restarted()
            .at(1_500)
            .nack(A, 10, NackReason::DestinationGone)
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "within the restart grace of server 2",
        );
        let h = restarted()
            .at(2_999)
            .nack(A, 10, NackReason::UnknownDestination)
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "within the restart grace of server 2",
        );
        // After the grace the same NACK is right.
        let h = restarted()
            .at(3_000)
            .nack(A, 10, NackReason::UnknownDestination)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn an_outcome_for_a_message_that_asked_for_none_is_flagged() {
        let h = happy()
            .send(A, 4, Address::MemberId(2))
            .ack(A, 4)
            .deliver(B, 1, 2, 10, 4, id(A, 4))
            .outcome(A, 4, 1, vec![])
            .build();
        assert_flags(&check(&h, &bounds()), "without confirm or request");
    }

    #[test]
    fn a_too_large_nack_for_a_message_within_the_limit_is_flagged() {
        let h = happy()
            .send_bytes(A, 7, Address::Broadcast, 100)
            .nack(A, 7, NackReason::TooLarge)
            .build();
        assert_flags(&check(&h, &bounds()), "Nacked TooLarge");
        let over = happy()
            .send_bytes(A, 7, Address::Broadcast, 200_000)
            .nack(A, 7, NackReason::TooLarge)
            .build();
        assert_clean(&check(&over, &bounds()));
    }

    #[test]
    fn an_invalid_nack_for_a_join_of_a_well_formed_group_is_flagged() {
        let h = happy()
            .join(A, "g2", 7)
            .nack(A, 7, NackReason::Invalid)
            .build();
        assert_flags(&check(&h, &bounds()), "group name is well formed");
        let bad = happy()
            .join(A, "", 7)
            .nack(A, 7, NackReason::Invalid)
            .build();
        assert_clean(&check(&bad, &bounds()));
    }

    #[test]
    fn an_invalid_nack_for_a_well_formed_event_is_flagged() {
        let h = happy()
            .publish(A, 7, 1)
            .nack(A, 7, NackReason::Invalid)
            .build();
        assert_flags(&check(&h, &bounds()), "Nacked Invalid");
    }

    #[test]
    fn a_too_large_nack_for_a_small_event_is_flagged() {
        let h = happy()
            .publish(A, 7, 1)
            .nack(A, 7, NackReason::TooLarge)
            .build();
        assert_flags(&check(&h, &bounds()), "fits one frame");
    }

    #[test]
    fn a_nack_after_an_ack_of_the_same_server_run_is_flagged() {
        let h = happy()
            .send(A, 4, Address::MemberId(2))
            .ack(A, 4)
            .nack(A, 4, NackReason::UnknownDestination)
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "Nacked UnknownDestination at t=43 after server 1 acked it",
        );
        let h = happy()
            .publish(A, 4, 1)
            .ack(A, 4)
            .nack(A, 4, NackReason::OverQuota)
            .build();
        assert_flags(&check(&h, &bounds()), "after server 1 acked it");
        // The NACK first, then an ack past it: the order the server keeps.
        let h = happy()
            .send(A, 4, Address::MemberId(2))
            .nack(A, 4, NackReason::OverQuota)
            .ack(A, 4)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn a_resend_refused_by_the_next_server_run_passes() {
        let h = happy_run()
            .send(A, 4, Address::MemberId(2))
            .ack(A, 4)
            .server_crash(1)
            .server_start(2)
            .reg(A, 2, 1, 1, &[1])
            .at(5_000)
            .nack(A, 4, NackReason::UnknownDestination)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn an_over_quota_nack_of_a_subscription_within_the_limit_is_flagged() {
        let h = happy()
            .subscribe(B, 3, 1, every_event())
            .nack(B, 3, NackReason::OverQuota)
            .build();
        assert_flags(&check(&h, &bounds()), "subscribed only 0 times before");
        // The 65th subscription may be refused.
        let mut hb = happy();
        for n in 0..65 {
            hb = hb.subscribe(B, 3 + n, n as u32 + 1, every_event());
        }
        let h = hb.nack(B, 67, NackReason::OverQuota).build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn double_outcome_is_flagged() {
        let h = happy().outcome(A, 1, 2, vec![]).build();
        assert_flags(&check(&h, &bounds()), "has 2 final statuses");
        let h = happy().nack(C, 2, NackReason::OverQuota).build();
        assert_flags(&check(&h, &bounds()), "has 2 final statuses");
    }

    #[test]
    fn missing_outcome_is_flagged() {
        let h = happy_run()
            .send_confirm(A, 4, Address::MemberId(2))
            .ack(A, 4)
            .final_ok(A)
            .build();
        assert_flags(&check(&h, &bounds()), "never got a final status");
        let h = happy_run()
            .send_request(A, 4, Address::MemberId(2))
            .ack(A, 4)
            .final_ok(A)
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "with request never got a final status",
        );
    }

    #[test]
    fn missing_outcome_of_a_dead_sender_or_without_final_is_exempt() {
        let h = happy_run()
            .send_confirm(A, 4, Address::MemberId(2))
            .ack(A, 4)
            .crash(A)
            .final_ok(B)
            .build();
        assert_clean(&check(&h, &bounds()));
        let h = happy_run()
            .send_confirm(A, 4, Address::MemberId(2))
            .ack(A, 4)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn overcounted_outcome_is_flagged() {
        let h = happy()
            .send_confirm(A, 4, Address::Broadcast)
            .deliver(B, 1, 2, 10, 1, id(A, 4))
            .deliver(B, 1, 2, 11, 1, id(A, 4))
            .outcome(A, 4, 2, vec![])
            .build();
        assert_flags(&check(&h, &bounds()), "claims 2 deliveries but only 1");
    }

    #[test]
    fn outcome_one_delivery_ack_early_is_flagged() {
        // B and C both delivered the broadcast in server 1, but the outcome
        // counts one and lists no miss: it was issued before the last ack.
        let h = happy_run()
            .send_confirm(A, 4, Address::Broadcast)
            .ack(A, 4)
            .deliver(B, 1, 2, 10, 1, id(A, 4))
            .outcome(A, 4, 1, vec![])
            .deliver(C, 1, 3, 10, 1, id(A, 4))
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "accounts for 1 addressees (delivered 1, missed 0) but 2 processes delivered it in server 1",
        );
        // A miss accounts for the other one.
        let h = happy_run()
            .send_confirm(A, 4, Address::Broadcast)
            .ack(A, 4)
            .deliver(B, 1, 2, 10, 1, id(A, 4))
            .deliver(C, 1, 3, 10, 1, id(A, 4))
            .outcome(
                A,
                4,
                1,
                vec![Missed {
                    member_id: 3,
                    reason: MissReason::Failed,
                }],
            )
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn deliveries_in_another_server_run_are_not_counted_against_an_outcome() {
        // B delivered in server 1; the resend is sequenced in server 2,
        // where only C is back.
        let h = happy_run()
            .send_confirm(A, 4, Address::Broadcast)
            .deliver(B, 1, 2, 10, 1, id(A, 4))
            .server_crash(1)
            .server_start(2)
            .reg(A, 2, 1, 1, &[1])
            .deliver(C, 2, 3, 3, 1, id(A, 4))
            .outcome(A, 4, 1, vec![])
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn destination_nack_of_a_live_group_instance_or_name_is_flagged() {
        // B joined "g" (acked) and stays: a group NACK is wrong.
        for reason in [NackReason::UnknownDestination, NackReason::DestinationGone] {
            let h = happy().send(A, 4, group("g")).nack(A, 4, reason).build();
            assert_flags(&check(&h, &bounds()), "addressee p1#200 (member 2)");
        }
        let h = happy()
            .send(A, 4, Address::Anycast("g".into()))
            .nack(A, 4, NackReason::UnknownDestination)
            .build();
        assert_flags(&check(&h, &bounds()), "Nacked UnknownDestination");
        // B is the other member of instance alpha.
        let h = happy()
            .send(A, 4, Address::Instance("alpha".into()))
            .nack(A, 4, NackReason::DestinationGone)
            .build();
        assert_flags(&check(&h, &bounds()), "Nacked DestinationGone");
        let h = happy()
            .send(
                A,
                4,
                Address::Member {
                    instance: "alpha".into(),
                    process: "b".into(),
                },
            )
            .nack(A, 4, NackReason::UnknownDestination)
            .build();
        assert_flags(&check(&h, &bounds()), "Nacked UnknownDestination");
        let h = happy()
            .send(A, 4, Address::Broadcast)
            .nack(A, 4, NackReason::DestinationGone)
            .build();
        assert_flags(&check(&h, &bounds()), "Nacked DestinationGone");
    }

    #[test]
    fn destination_nacks_without_a_live_addressee_pass() {
        // Nobody in "h"; B left "g" before the nack; A alone in alpha once
        // B is gone; C (beta) said goodbye.
        let h = happy()
            .send(A, 4, group("h"))
            .nack(A, 4, NackReason::UnknownDestination)
            .send(A, 5, group("g"))
            .leave(B, "g", 3)
            .nack(A, 5, NackReason::DestinationGone)
            .send(A, 6, Address::Instance("beta".into()))
            .nack(A, 6, NackReason::DestinationGone)
            .send(A, 7, Address::Anycast("g".into()))
            .nack(A, 7, NackReason::DestinationGone)
            .build();
        assert_clean(&check(&h, &bounds()));
        // The sender itself does not count for a multicast.
        let h = happy()
            .join(A, "solo", 4)
            .ack(A, 4)
            .send(A, 5, group("solo"))
            .nack(A, 5, NackReason::DestinationGone)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn unjustified_nack_is_flagged() {
        let h = happy()
            .send(A, 4, Address::MemberId(2))
            .nack(A, 4, NackReason::DestinationGone)
            .build();
        assert_flags(&check(&h, &bounds()), "Nacked DestinationGone");
        let h = happy()
            .send(A, 4, Address::MemberId(2))
            .nack(A, 4, NackReason::UnknownDestination)
            .build();
        assert_flags(&check(&h, &bounds()), "Nacked UnknownDestination");
    }

    #[test]
    fn a_registration_read_after_its_session_was_removed_does_not_make_it_live() {
        // Member 4 (process C) registered at position 10 but its process
        // read the Welcome only after A saw it fail at 12; A's later NACK
        // of a message to it is right.
        let h = happy_run()
            .view(
                A,
                1,
                12,
                ViewChange::Failed(4, FailReason::HeartbeatTimeout),
            )
            .removed(1, 4, Some(FailReason::HeartbeatTimeout))
            .reg(C, 1, 4, 10, &[1, 2, 4])
            .send(A, 4, Address::MemberId(4))
            .nack(A, 4, NackReason::DestinationGone)
            .build();
        assert_clean(&check(&h, &bounds()));
        // Read before any removal past its position, it is live.
        let h = happy_run()
            .reg(C, 1, 4, 10, &[1, 2, 4])
            .send(A, 4, Address::MemberId(4))
            .nack(A, 4, NackReason::DestinationGone)
            .build();
        assert_flags(&check(&h, &bounds()), "Nacked DestinationGone");
    }

    /// Server 1 with its log of registrations: A (member 1, alpha/a),
    /// B (2, alpha/b), C (3, beta/c); C said goodbye, so beta is empty.
    fn logged_run() -> crate::checkers::testkit::Hb {
        crate::checkers::testkit::Hb::new()
            .server_start(1)
            .start(A)
            .start(B)
            .start(C)
            .logged_reg(1, 1, "alpha", "a")
            .reg(A, 1, 1, 1, &[1])
            .logged_reg(1, 2, "alpha", "b")
            .reg(B, 1, 2, 2, &[1, 2])
            .logged_reg(1, 3, "beta", "c")
            .reg(C, 1, 3, 3, &[1, 2, 3])
            .bye(C)
            .removed(1, 3, None)
    }

    fn member(instance: &str, process: &str) -> Address {
        Address::Member {
            instance: instance.into(),
            process: process.into(),
        }
    }

    #[test]
    fn a_destination_nack_naming_the_wrong_reason_is_flagged() {
        use NackReason::{DestinationGone as Gone, UnknownDestination as Unknown};
        // (address, the right reason, the wrong one)
        let cases = [
            // Member 3 was removed in this run; member 9 never existed.
            (Address::MemberId(3), Gone, Unknown),
            (Address::MemberId(9), Unknown, Gone),
            // beta has no member left; alpha has members but no "z".
            (member("beta", "c"), Unknown, Gone),
            (member("alpha", "z"), Gone, Unknown),
            // No instance beta any more; B is not the only one of alpha.
            (Address::Instance("beta".into()), Unknown, Gone),
        ];
        for (to, right, wrong) in cases {
            let h = logged_run()
                .send(A, 4, to.clone())
                .nack(A, 4, right)
                .build();
            assert_clean(&check(&h, &bounds()));
            let h = logged_run()
                .send(A, 4, to.clone())
                .nack(A, 4, wrong)
                .build();
            assert_flags(&check(&h, &bounds()), "by server 1's log");
            // Without the server's log the reason is not judged.
            let unlogged = History {
                entries: h
                    .entries
                    .into_iter()
                    .filter(|e| !matches!(e.act, Act::ServerJoined { .. }))
                    .collect(),
            };
            assert_clean(&check(&unlogged, &bounds()));
        }
        // The sender alone in its instance: gone, not unknown.
        let h = logged_run()
            .bye(B)
            .removed(1, 2, None)
            .send(A, 4, Address::Instance("alpha".into()))
            .nack(A, 4, Unknown)
            .build();
        assert_flags(&check(&h, &bounds()), "could be only DestinationGone");
        // Member 9 registered and was removed between the send and the
        // NACK: either reason may be right (the server resolved the
        // message before it registered or after it was removed).
        for reason in [Gone, Unknown] {
            let h = logged_run()
                .send(A, 4, Address::MemberId(9))
                .logged_reg(1, 9, "gamma", "x")
                .removed(1, 9, None)
                .nack(A, 4, reason)
                .build();
            assert_clean(&check(&h, &bounds()));
        }
    }

    #[test]
    fn a_group_anycast_or_broadcast_nack_naming_the_wrong_reason_is_flagged() {
        use NackReason::{DestinationGone as Gone, UnknownDestination as Unknown};
        // By the server's log: A alone in "solo", A and B in "pair", C (now
        // removed) the only member of "gone"; "none" never had a member.
        let run = || {
            logged_run()
                .logged_group(1, 0, 1, "solo", true)
                .logged_group(1, 0, 1, "pair", true)
                .logged_group(1, 0, 2, "pair", true)
                .logged_group(1, 0, 2, "left", true)
                .logged_group(1, 0, 2, "left", false)
        };
        let group = |g: &str| Address::Group(g.into());
        let anycast = |g: &str| Address::Anycast(g.into());
        // (address, the reasons that are right)
        let cases = [
            (group("solo"), vec![Gone]),
            (anycast("solo"), vec![Gone]),
            (group("none"), vec![Unknown]),
            (anycast("none"), vec![Unknown]),
            // B left: the group was forgotten.
            (group("left"), vec![Unknown]),
            (group("pair"), vec![]),
            (anycast("pair"), vec![]),
            (Address::Broadcast, vec![]),
        ];
        for (to, right) in cases {
            for reason in [Gone, Unknown] {
                let h = run().send(A, 4, to.clone()).nack(A, 4, reason).build();
                if right.contains(&reason) {
                    assert_clean(&check(&h, &bounds()));
                } else {
                    assert_flags(&check(&h, &bounds()), "by server 1's log");
                }
            }
        }
        // A removal takes the member out of its groups: B's removal leaves
        // A alone in "pair".
        let h = run()
            .bye(B)
            .removed(1, 2, None)
            .send(A, 4, group("pair"))
            .nack(A, 4, Unknown)
            .build();
        assert_flags(&check(&h, &bounds()), "could be only DestinationGone");
        // A registration starts from the groups it lists: member 2 back
        // without "pair" leaves A alone in it too.
        let h = run()
            .logged_reg(1, 2, "alpha", "b")
            .send(A, 4, group("pair"))
            .nack(A, 4, Gone)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn justified_nacks_pass() {
        // Member 2 was removed before the nack.
        let h = happy()
            .send(A, 4, Address::MemberId(2))
            .removed(1, 2, Some(FailReason::HeartbeatTimeout))
            .nack(A, 4, NackReason::DestinationGone)
            .build();
        assert_clean(&check(&h, &bounds()));
        // Member 9 never existed; other reasons are not judged here.
        let h = happy()
            .send(A, 4, Address::MemberId(9))
            .nack(A, 4, NackReason::UnknownDestination)
            .send(A, 5, Address::MemberId(2))
            .nack(A, 5, NackReason::OverQuota)
            .build();
        assert_clean(&check(&h, &bounds()));
        // Member 2 of another server does not count (the NACK comes after
        // the restart grace).
        let h = happy()
            .server_crash(1)
            .server_start(2)
            .reg(A, 2, 1, 1, &[1])
            .send(A, 4, Address::MemberId(2))
            .at(5_000)
            .nack(A, 4, NackReason::UnknownDestination)
            .build();
        assert_clean(&check(&h, &bounds()));
    }
}
