//! G8 Outcomes: a sender that asks for confirmation gets a final outcome
//! for each message; a NACK is given only when delivery really was
//! impossible.
//!
//! - Each (sender, seq) has at most one final status (`Nacked` or
//!   `Outcome`).
//! - A message sent with `confirm` or `request` has exactly one when its
//!   sender never crashed or said goodbye after sending and has a `Final`.
//! - An `Outcome` counts no more deliveries than distinct processes that
//!   delivered the message.
//! - A `Nacked` with `UnknownDestination` or `DestinationGone` for a message
//!   to `MemberId(x)` is wrong if a session with member id `x` in the
//!   sender's server (that of its most recent `Registered` before the nack)
//!   started at or before the send and had not ended at the nack.

use super::fast::{HashMap, HashSet};

use switchboard_core::frame::{Address, NackReason};

use super::sessions::{fm, fp, Facts, Report, Sessions};
use crate::history::{Act, Bounds, History, MsgId, Proc, Violation};

/// Name of the guarantee.
pub const NAME: &str = "G8 outcomes";

/// Checks G8.
pub fn check(h: &History, _b: &Bounds) -> Vec<Violation> {
    let mut r = Report::new(NAME);
    let facts = Facts::build(h);
    let sessions = Sessions::build(h);
    let mut statuses: HashMap<(Proc, u64), Vec<usize>> = HashMap::default();
    let mut stopped: HashMap<Proc, Vec<usize>> = HashMap::default();
    let mut finals: HashSet<Proc> = HashSet::default();
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

    for (idx, e) in h.entries.iter().enumerate() {
        match &e.act {
            Act::Outcome {
                proc,
                seq,
                delivered,
                ..
            } => {
                let id = msg_id(*proc, *seq);
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
                let Address::MemberId(x) = sent.to else {
                    continue;
                };
                let Some(k) = sessions
                    .latest_before(*proc, idx)
                    .map(|sid| sessions.all[sid].server)
                else {
                    continue;
                };
                let live = sessions
                    .with_member(k, *x)
                    .find(|s| s.start_at < sent.at && s.end_idx.is_none_or(|end| end > idx));
                if let Some(s) = live {
                    r.add(format!(
                        "{} to member {x} Nacked {reason:?} at t={} but member {x} ({}) was in session in server {k} \
                         from t={} through the nack",
                        fm(sent.id),
                        e.at,
                        fp(s.proc),
                        s.start_at
                    ));
                }
            }
            _ => {}
        }
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use switchboard_core::frame::{Address, FailReason, MissReason, Missed, NackReason};

    use super::check;
    use crate::checkers::testkit::*;

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
        // Member 2 of another server does not count.
        let h = happy()
            .server_crash(1)
            .server_start(2)
            .reg(A, 2, 1, 1, &[1])
            .send(A, 4, Address::MemberId(2))
            .nack(A, 4, NackReason::UnknownDestination)
            .build();
        assert_clean(&check(&h, &bounds()));
    }
}
