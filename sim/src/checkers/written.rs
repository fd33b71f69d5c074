//! G5 (e) Written means handed over: a message or published event the
//! server wrote to a process's connection reaches its application, unless
//! the session it was written in ended before the process's stream got past
//! it.
//!
//! For each `Written` (server `K` wrote the item with identity `id` at
//! position `g` to a connection of process `P`), `P` must have a
//! `Delivered` or `Notified` of `id` (at any time, in any server: a
//! duplicate of one it already handed over is rightly dropped) when either
//!
//! * `P`'s stream got past `g` in that session: its last `Delivered`,
//!   `Notified` or `ViewEvent` before the session's end (below) is one of
//!   server `K` at a position above `g` (a client handles its stream in
//!   position order, so it handled `g` before); or
//! * the session never ended: no later `Registered`, `ResumeRefused`,
//!   `Crashed` or `Goodbye` of `P`, no `ServerCrashed` of `K`, and no
//!   `ServerRemoved` by `K` of the member id of `P`'s latest registration
//!   in `K` before the write.
//!
//! This judges the server's actual routing: a resend that a new server run
//! routes to a member which already has later messages of the same sender
//! (another anycast pick, a changed group) is an item like any other, and
//! a client that drops it as a duplicate without ever handing it over is
//! flagged. A connection drop does not excuse anything (the session is
//! resumed and its queue replayed); a server crash, a removal or a refused
//! resume excuses what the stream had not yet got past (the sender resends
//! after a crash; G5 (a)–(b) judge whether the resend arrives).

use super::fast::{HashMap, HashSet};
use super::sessions::{fm, fp, Report};
use crate::history::{Act, History, MsgId, Proc};

/// Checks rule (e) of G5 into `r`.
pub(crate) fn written_items_are_handed_over(h: &History, r: &mut Report) {
    let mut handed: HashSet<(Proc, MsgId)> = HashSet::default();
    // Per process: (entry index, server, position) of its stream acts.
    let mut stream: HashMap<Proc, Vec<(usize, u64, u64)>> = HashMap::default();
    // Per process: (entry index, server, member id) of its registrations.
    let mut regs: HashMap<Proc, Vec<(usize, u64, u64)>> = HashMap::default();
    // Per process: entry indexes of acts that end its session.
    let mut ends: HashMap<Proc, Vec<usize>> = HashMap::default();
    let mut crashed: HashMap<u64, usize> = HashMap::default();
    let mut removed: HashMap<(u64, u64), Vec<usize>> = HashMap::default();
    let mut writes = Vec::new();
    for (i, e) in h.entries.iter().enumerate() {
        match &e.act {
            Act::Written { .. } => writes.push(i),
            Act::Delivered {
                proc,
                server,
                gseq,
                id,
                ..
            }
            | Act::Notified {
                proc,
                server,
                gseq,
                id,
                ..
            } => {
                handed.insert((*proc, *id));
                stream.entry(*proc).or_default().push((i, *server, *gseq));
            }
            Act::ViewEvent {
                proc, server, gseq, ..
            } => stream.entry(*proc).or_default().push((i, *server, *gseq)),
            Act::Registered {
                proc,
                server,
                member_id,
                ..
            } => {
                regs.entry(*proc)
                    .or_default()
                    .push((i, *server, *member_id));
                ends.entry(*proc).or_default().push(i);
            }
            Act::ResumeRefused { proc, .. } | Act::Crashed { proc } | Act::Goodbye { proc } => {
                ends.entry(*proc).or_default().push(i)
            }
            Act::ServerCrashed { server } => {
                crashed.entry(*server).or_insert(i);
            }
            Act::ServerRemoved {
                server, member_id, ..
            } => removed.entry((*server, *member_id)).or_default().push(i),
            _ => {}
        }
    }
    let after = |v: &[usize], i: usize| v.get(v.partition_point(|&j| j <= i)).copied();
    for i in writes {
        let Act::Written {
            proc,
            server,
            gseq,
            id,
        } = &h.entries[i].act
        else {
            continue;
        };
        if handed.contains(&(*proc, *id)) {
            continue;
        }
        let member = regs.get(proc).and_then(|v| {
            let n = v.partition_point(|&(j, _, _)| j < i);
            v[..n].iter().rev().find(|&&(_, k, _)| k == *server)
        });
        let mut end = ends.get(proc).and_then(|v| after(v, i));
        let mut consider = |j: Option<usize>| {
            if let Some(j) = j {
                end = Some(end.map_or(j, |e| e.min(j)));
            }
        };
        consider(crashed.get(server).copied().filter(|&j| j > i));
        if let Some(&(_, _, member_id)) = member {
            consider(removed.get(&(*server, member_id)).and_then(|v| after(v, i)));
        }
        let last = stream.get(proc).and_then(|v| {
            let n = v.partition_point(|&(j, _, _)| j < end.unwrap_or(usize::MAX));
            v[..n].last().filter(|&&(j, _, _)| j > i)
        });
        let passed = last.filter(|&&(_, k, g)| k == *server && g > *gseq);
        let t = h.entries[i].at;
        if let Some(&(j, _, g)) = passed {
            r.add(format!(
                "server {server} wrote {} at position {gseq} to {} at t={t}; its stream got past it \
                 (position {g} at t={}) but it never handed {} to its application",
                fm(*id),
                fp(*proc),
                h.entries[j].at,
                fm(*id),
            ));
        } else if end.is_none() {
            r.add(format!(
                "server {server} wrote {} at position {gseq} to {} at t={t}; its session never \
                 ended but it never handed {} to its application",
                fm(*id),
                fp(*proc),
                fm(*id),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::g05_ack_means_delivery::check;
    use crate::checkers::testkit::*;
    use crate::history::{Act, MsgId, Proc};

    fn written(p: Proc, k: u64, gseq: u64, id: MsgId) -> Act {
        Act::Written {
            proc: p,
            server: k,
            gseq,
            id,
        }
    }

    /// C joins group "g" after A's message 1 to it was sequenced, and
    /// gets A's message 2. Server 1 crashes; in server 2 A resends 1 (not
    /// yet stable) and server 2 routes it to C, now in the group: a late
    /// original for C (a sequence below the highest it has from A).
    fn late_original() -> Hb {
        Hb::new()
            .server_start(1)
            .start(A)
            .start(C)
            .reg(A, 1, 1, 1, &[1])
            .reg(C, 1, 3, 2, &[1, 3])
            .join(C, "g", 1)
            .ack(C, 1)
            .send(A, 2, group("g"))
            .ack(A, 2)
            .act(written(C, 1, 4, id(A, 2)))
            .deliver(C, 1, 3, 4, 1, id(A, 2))
            .server_crash(1)
            .server_start(2)
            .reg(A, 2, 1, 1, &[1])
            .reg(C, 2, 3, 2, &[1, 3])
            .act(written(C, 2, 3, id(A, 1)))
    }

    #[test]
    fn a_written_item_never_handed_over_is_flagged() {
        // C's session in server 2 never ends and it never hands A:1 over:
        // its client dropped a late original as a duplicate.
        let h = late_original().build();
        assert_flags(&check(&h, &bounds()), "its session never ended");
        // Its stream got past it (a view event at 5), then C crashed.
        let h = late_original()
            .view(C, 2, 5, crate::history::ViewChange::Joined(7))
            .crash(C)
            .build();
        assert_flags(&check(&h, &bounds()), "its stream got past it");
    }

    #[test]
    fn handed_over_items_and_lost_sessions_are_exempt() {
        // Handed over, even before the write (a duplicate).
        let h = late_original().deliver(C, 2, 3, 3, 1, id(A, 1)).build();
        assert!(!check(&h, &bounds())
            .iter()
            .any(|v| v.detail.contains("wrote")));
        // The session ended before the stream got past it: a crash of the
        // server, a removal, a crash of the process, a refused resume.
        for end in [
            Act::ServerCrashed { server: 2 },
            Act::ServerRemoved {
                server: 2,
                member_id: 3,
                reason: None,
            },
            Act::Crashed { proc: C },
            Act::ResumeRefused {
                proc: C,
                server: 2,
                member_id: 3,
            },
        ] {
            let h = late_original().act(end.clone()).build();
            assert!(
                !check(&h, &bounds())
                    .iter()
                    .any(|v| v.detail.contains("wrote")),
                "{end:?}"
            );
        }
        // A removal of another member id, or a stream act at an earlier
        // position, excuses nothing.
        let h = late_original()
            .removed(2, 1, None)
            .deliver(C, 2, 3, 2, 1, id(A, 9))
            .build();
        assert_flags(&check(&h, &bounds()), "its session never ended");
    }
}
