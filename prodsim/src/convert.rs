//! The API-level log as the core simulator's history, checked with the
//! core simulator's checkers (the same code, not a copy).
//!
//! What the application cannot see is stated, not invented:
//! * A message's sequence is known from its call's result (ack, NACK,
//!   outcome) or from a delivery of its tag; a message never resolved and
//!   never delivered has no `Sent` (no checker can judge it).
//! * Joins and leaves resolve once applied but return no sequence: each
//!   gets a synthetic sequence, acked when the call resolved.
//! * A request's reply resolves the call and shows the request was
//!   sequenced (an `Acked`); a request that ended without reply says
//!   nothing of the server's side. Replies themselves are not in the
//!   history (they never enter the stream).
//! * The server's removals are what members' streams said (`Left`,
//!   `Failed`), at the first member that read it (once per session).
//! * A message counts as delivered when the application read it, as the
//!   server counts it (the library reports what the application took:
//!   `Taken`). Before that report existed, a receiver that crashed with
//!   messages unread in its stream showed up here as an `Outcome` counting
//!   more deliveries than the applications read (G8).
//! * No memory samples: G11 has nothing to judge here (the core simulator
//!   checks the state machines' queues).

use std::collections::{BTreeMap, BTreeSet};

use switchboard_sim::checkers::CHECKERS;
use switchboard_sim::history::{Act, Bounds, History, Ms, MsgId, Proc, ViewChange, Violation};

use crate::record::{ApiAct, ApiEntry, CallKind, CallResult, PAYLOAD_BYTES};

/// Synthetic sequences of group operations start here.
const GROUP_SEQ_BASE: u64 = 1 << 60;

/// Converts and runs every checker.
pub fn check(log: &[ApiEntry], b: &Bounds) -> Vec<Violation> {
    let h = to_history(log);
    CHECKERS.iter().flat_map(|(_, c)| c(&h, b)).collect()
}

/// The core simulator's history of an API-level log.
pub fn to_history(log: &[ApiEntry]) -> History {
    // Message ids by tag, from results and deliveries.
    let mut calls: BTreeMap<u64, &CallKind> = BTreeMap::new();
    let mut callers: BTreeMap<u64, Proc> = BTreeMap::new();
    let mut ids: BTreeMap<u64, MsgId> = BTreeMap::new();
    for e in log {
        match &e.act {
            ApiAct::Call { proc, call, kind } => {
                calls.insert(*call, kind);
                callers.insert(*call, *proc);
            }
            ApiAct::Resolved { proc, call, result } => {
                let seq = match result {
                    CallResult::Acked(seq)
                    | CallResult::Nacked { seq, .. }
                    | CallResult::Outcome { seq, .. } => *seq,
                    _ => continue,
                };
                if let Some(CallKind::Send { tag, .. }) = calls.get(call) {
                    ids.insert(
                        *tag,
                        MsgId {
                            sender: proc.incarnation,
                            seq,
                        },
                    );
                }
            }
            ApiAct::Delivered { id, tag, .. } => {
                ids.entry(*tag).or_insert(*id);
            }
            _ => {}
        }
    }
    let mut h = History::default();
    let mut removed: BTreeSet<(u64, u64)> = BTreeSet::new();
    // A session is in the history from when it began, not from when its
    // application read the event: a member that reads its stream late
    // (slow reader, flood) may have lost that session meanwhile, and its
    // removal must follow its registration. When it began is known from
    // the first other member that read its `Joined` at the registration's
    // position.
    let mut joined: BTreeMap<(u64, u64, u64), Ms> = BTreeMap::new();
    for e in log {
        if let ApiAct::ViewEvent {
            run,
            gseq,
            change: ViewChange::Joined(id),
            ..
        } = &e.act
        {
            let t = joined.entry((*run, *id, *gseq)).or_insert(e.at);
            *t = (*t).min(e.at);
        }
    }
    let mut ordered: Vec<(Ms, &ApiAct)> = log
        .iter()
        .map(|e| match &e.act {
            ApiAct::Registered {
                run,
                member_id,
                position,
                ..
            } => {
                let began = joined.get(&(*run, *member_id, *position));
                (began.map_or(e.at, |t| (*t).min(e.at)), &e.act)
            }
            act => (e.at, act),
        })
        .collect();
    ordered.sort_by_key(|(at, _)| *at);
    for (at, act) in ordered {
        match act {
            ApiAct::Started {
                proc,
                instance,
                process,
            } => h.push(
                at,
                Act::Started {
                    proc: *proc,
                    instance: instance.clone(),
                    process: process.clone(),
                },
            ),
            ApiAct::Crashed { proc } => h.push(at, Act::Crashed { proc: *proc }),
            ApiAct::ServerStarted { run } => h.push(at, Act::ServerStarted { server: *run }),
            ApiAct::ServerCrashed { run } => h.push(at, Act::ServerCrashed { server: *run }),
            ApiAct::Call { proc, call, kind } => match kind {
                CallKind::Send {
                    to,
                    tag,
                    confirm,
                    bytes,
                    ..
                } => {
                    if let Some(id) = ids.get(tag) {
                        h.push(
                            at,
                            Act::Sent {
                                proc: *proc,
                                id: *id,
                                to: to.clone(),
                                tag: *tag,
                                confirm: *confirm,
                                // The library resolves a request on its
                                // first reply and keeps the server's outcome
                                // to itself: the application never sees a
                                // request's final status, so G8's rules for
                                // requests cannot be judged here.
                                request: false,
                                bytes: *bytes,
                            },
                        );
                    }
                }
                CallKind::Post { to, tag } => {
                    if let Some(id) = ids.get(tag) {
                        h.push(
                            at,
                            Act::Sent {
                                proc: *proc,
                                id: *id,
                                to: to.clone(),
                                tag: *tag,
                                confirm: false,
                                request: false,
                                bytes: PAYLOAD_BYTES,
                            },
                        );
                    }
                }
                CallKind::Group { group, join } => h.push(
                    at,
                    Act::GroupOp {
                        proc: *proc,
                        group: group.clone(),
                        join: *join,
                        seq: GROUP_SEQ_BASE + call,
                    },
                ),
                CallKind::Flush | CallKind::Publish | CallKind::Subscribe => {}
            },
            ApiAct::Resolved { proc, call, result } => {
                let kind = calls.get(call);
                let tag_seq = match kind {
                    Some(CallKind::Send { tag, .. }) => ids.get(tag).map(|id| id.seq),
                    _ => None,
                };
                match (kind, result) {
                    (Some(CallKind::Group { .. }), CallResult::Done) => h.push(
                        at,
                        Act::Acked {
                            proc: *proc,
                            seq: GROUP_SEQ_BASE + call,
                        },
                    ),
                    (_, CallResult::Acked(seq)) => h.push(
                        at,
                        Act::Acked {
                            proc: *proc,
                            seq: *seq,
                        },
                    ),
                    (_, CallResult::Nacked { seq, reason }) => h.push(
                        at,
                        Act::Nacked {
                            proc: *proc,
                            seq: *seq,
                            reason: *reason,
                        },
                    ),
                    (
                        _,
                        CallResult::Outcome {
                            seq,
                            delivered,
                            missed,
                        },
                    ) => h.push(
                        at,
                        Act::Outcome {
                            proc: *proc,
                            seq: *seq,
                            delivered: *delivered,
                            missed: missed.clone(),
                        },
                    ),
                    // A reply shows that the server sequenced the request,
                    // so it acknowledged it: an `Acked` (G5 then wants it
                    // delivered to every addressee). A reply is not an
                    // outcome: a request to an instance or a group reaches
                    // several members and the first reply resolves it.
                    (_, CallResult::Reply) => {
                        if let Some(seq) = tag_seq {
                            h.push(at, Act::Acked { proc: *proc, seq });
                        }
                    }
                    // No reply says nothing of the server's side.
                    (_, CallResult::NoReply) => {}
                    _ => {}
                }
            }
            ApiAct::Registered {
                proc,
                run,
                member_id,
                position,
                view,
                ..
            } => {
                // A member id can come back (same incarnation, new
                // session): its next removal is a new one.
                removed.remove(&(*run, *member_id));
                h.push(
                    at,
                    Act::Registered {
                        proc: *proc,
                        server: *run,
                        member_id: *member_id,
                        position: *position,
                        view: view.clone(),
                    },
                );
            }
            ApiAct::Resumed { proc } => h.push(at, Act::Resumed { proc: *proc }),
            ApiAct::Lagged { proc, missed } => h.push(
                at,
                Act::EventsLagged {
                    proc: *proc,
                    missed: *missed,
                },
            ),
            ApiAct::Gap {
                proc,
                from,
                through,
            } => h.push(
                at,
                Act::GapNotice {
                    proc: *proc,
                    from: *from,
                    through: *through,
                },
            ),
            ApiAct::Delivered {
                proc,
                run,
                member_id,
                gseq,
                from,
                id,
                tag,
                intact,
            } => h.push(
                at,
                Act::Delivered {
                    proc: *proc,
                    server: *run,
                    member_id: *member_id,
                    gseq: *gseq,
                    from: *from,
                    id: *id,
                    tag: *tag,
                    intact: *intact,
                },
            ),
            ApiAct::ViewEvent {
                proc,
                run,
                gseq,
                change,
                epoch,
            } => {
                h.push(
                    at,
                    Act::ViewEvent {
                        proc: *proc,
                        server: *run,
                        gseq: *gseq,
                        change: *change,
                        epoch: *epoch,
                    },
                );
                let reason = match change {
                    ViewChange::Joined(_) => continue,
                    ViewChange::Left(_) => None,
                    ViewChange::Failed(_, r) => Some(*r),
                };
                if removed.insert((*run, change.member_id())) {
                    h.push(
                        at,
                        Act::ServerRemoved {
                            server: *run,
                            member_id: change.member_id(),
                            reason,
                        },
                    );
                }
            }
            ApiAct::SubItem { .. } | ApiAct::ServerMemory { .. } => {}
            ApiAct::Fault {
                slot,
                from,
                until,
                kind,
            } => h.push(
                at,
                Act::Fault {
                    slot: *slot,
                    from: *from,
                    until: *until,
                    kind,
                },
            ),
            ApiAct::Final {
                proc,
                ready,
                in_view,
                pending_sends,
                pending_confirms,
            } => h.push(
                at,
                Act::Final {
                    proc: *proc,
                    ready: *ready,
                    in_view: *in_view,
                    outbox: *pending_sends,
                    unresolved_confirms: *pending_confirms,
                },
            ),
        }
    }
    h
}

/// Counters of what a run reached.
pub fn reached(log: &[ApiEntry]) -> Vec<(&'static str, u64)> {
    let mut c = [0u64; 11];
    // Budget evictions per server run (each sample holds the run's count).
    let mut cut: BTreeMap<u64, u64> = BTreeMap::new();
    for e in log {
        match &e.act {
            ApiAct::Registered { session_lost, .. } => {
                c[0] += 1;
                c[1] += u64::from(*session_lost);
            }
            ApiAct::Resumed { .. } => c[2] += 1,
            ApiAct::Gap { .. } => c[3] += 1,
            ApiAct::Delivered { .. } => c[4] += 1,
            ApiAct::ViewEvent {
                change: ViewChange::Failed(..),
                ..
            } => c[5] += 1,
            ApiAct::Resolved {
                result: CallResult::Nacked { .. },
                ..
            } => c[6] += 1,
            ApiAct::SubItem { .. } => c[7] += 1,
            ApiAct::Call { .. } => c[8] += 1,
            ApiAct::ServerMemory {
                run,
                held,
                budget,
                evictions,
                ..
            } => {
                c[9] += u64::from(*held > budget / 2);
                let n = cut.entry(*run).or_default();
                *n = (*n).max(*evictions);
            }
            _ => {}
        }
    }
    c[10] = cut.values().sum();
    [
        "registrations",
        "sessions_lost",
        "resumes",
        "gaps",
        "deliveries",
        "failed_events",
        "nacks",
        "subscription_items",
        "calls",
        "memory_samples_over_half_budget",
        "budget_evictions",
    ]
    .into_iter()
    .zip(c)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::frame::{Address, FailReason};

    const P: Proc = Proc {
        slot: 0,
        incarnation: 11,
    };
    const Q: Proc = Proc {
        slot: 1,
        incarnation: 21,
    };

    fn e(at: u64, act: ApiAct) -> ApiEntry {
        ApiEntry { at, act }
    }

    fn reg(at: u64) -> ApiEntry {
        e(
            at,
            ApiAct::Registered {
                proc: Q,
                run: 1,
                member_id: 5,
                position: at,
                view: vec![5],
                session_lost: at > 0,
            },
        )
    }

    fn failed(at: u64, by: Proc) -> ApiEntry {
        e(
            at,
            ApiAct::ViewEvent {
                proc: by,
                run: 1,
                gseq: at,
                change: ViewChange::Failed(5, FailReason::HeartbeatTimeout),
                epoch: at,
            },
        )
    }

    fn removals(h: &History) -> Vec<u64> {
        h.iter()
            .filter_map(|e| match e.act {
                Act::ServerRemoved { member_id: 5, .. } => Some(e.at),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_removal_is_taken_once_per_session_of_a_member_id() {
        // Two members read the first failure; the member comes back with
        // the same id and fails again.
        let log = [
            reg(0),
            failed(100, P),
            failed(120, Q),
            reg(200),
            failed(300, P),
        ];
        assert_eq!(removals(&to_history(&log)), vec![100, 300]);
    }

    #[test]
    fn a_registration_read_late_counts_from_when_others_saw_it_join() {
        // The member's application reads its second registration (position
        // 200) only at 900, after that session failed (300): the session
        // began when P read its join at 210, so the failure at 300 is a new
        // removal, and the member is out of session from 300.
        let joined = e(
            210,
            ApiAct::ViewEvent {
                proc: P,
                run: 1,
                gseq: 200,
                change: ViewChange::Joined(5),
                epoch: 200,
            },
        );
        let mut late = reg(200);
        late.at = 900;
        let log = [reg(0), failed(100, P), joined, failed(300, P), late];
        assert_eq!(removals(&to_history(&log)), vec![100, 300]);
        // Without the witness it would count from 900, and the failure at
        // 300 would seem to be the first session's again.
        let mut late = reg(200);
        late.at = 900;
        let log = [reg(0), failed(100, P), failed(300, P), late];
        assert_eq!(removals(&to_history(&log)), vec![100]);
    }

    #[test]
    fn a_send_gets_its_id_from_its_result_or_a_delivery() {
        let call = |call, tag| {
            e(
                0,
                ApiAct::Call {
                    proc: P,
                    call,
                    kind: CallKind::Send {
                        to: Address::Broadcast,
                        tag,
                        confirm: false,
                        request: false,
                        probe: false,
                        bytes: PAYLOAD_BYTES,
                    },
                },
            )
        };
        let log = [
            call(1, 10),
            call(2, 20),
            call(3, 30),
            e(
                5,
                ApiAct::Resolved {
                    proc: P,
                    call: 1,
                    result: CallResult::Acked(7),
                },
            ),
            e(
                6,
                ApiAct::Delivered {
                    proc: Q,
                    run: 1,
                    member_id: 5,
                    gseq: 9,
                    from: 4,
                    id: MsgId { sender: 11, seq: 8 },
                    tag: 20,
                    intact: true,
                },
            ),
        ];
        let h = to_history(&log);
        let sent: Vec<u64> = h
            .iter()
            .filter_map(|e| match e.act {
                Act::Sent { id, .. } => Some(id.seq),
                _ => None,
            })
            .collect();
        // Call 3 was never resolved nor read: no `Sent` is invented.
        assert_eq!(sent, vec![7, 8]);
    }
}
