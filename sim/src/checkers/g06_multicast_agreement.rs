//! G6 Multicast agreement: if one surviving addressee delivers a multicast,
//! every surviving addressee of the same view delivers it.
//!
//! For each `Sent` to an instance, a group or everyone that server `K`
//! sequenced — some process delivered it in `K`, or `K` issued its
//! `Outcome` (the sender's server at the outcome), or `K` acked it and it
//! was never NACKed (acked means sequenced) — every process with a session
//! in `K` that started at or before the send time and never ended, and that
//! is an addressee (see [`Facts::is_addressee`]), must have a `Delivered`
//! of it. So a multicast that nobody delivered does not agree trivially.

use switchboard_core::frame::Address;

use super::fast::HashMap;
use super::sessions::{fm, fp, Facts, Report, Sessions};
use crate::history::{Act, Bounds, History, Proc, Violation};

/// Name of the guarantee.
pub const NAME: &str = "G6 multicast agreement";

/// Checks G6.
pub fn check(h: &History, _b: &Bounds) -> Vec<Violation> {
    let mut r = Report::new(NAME);
    let facts = Facts::build(h);
    let sessions = Sessions::build(h);
    let mut outcomes: HashMap<(Proc, u64), Vec<usize>> = HashMap::default();
    for (idx, e) in h.entries.iter().enumerate() {
        if let Act::Outcome { proc, seq, .. } = &e.act {
            outcomes.entry((*proc, *seq)).or_default().push(idx);
        }
    }
    for sent in &facts.sents {
        if !matches!(
            sent.to,
            Address::Instance(_) | Address::Group(_) | Address::Broadcast
        ) {
            continue;
        }
        let key = (sent.proc, sent.id.seq);
        let mut servers: Vec<(u64, usize)> = Vec::new();
        let mut add = |k: u64, idx: usize| {
            if !servers.iter().any(|&(s, _)| s == k) {
                servers.push((k, idx));
            }
        };
        for d in facts.delivered.get(&sent.id).into_iter().flatten() {
            add(d.server, d.idx);
        }
        let acked = if facts.nacks.contains_key(&key) {
            &[][..]
        } else {
            facts.acks.get(&key).map_or(&[][..], Vec::as_slice)
        };
        let outcomes = outcomes.get(&key).map_or(&[][..], Vec::as_slice);
        for &i in acked.iter().chain(outcomes) {
            if i > sent.idx {
                if let Some(sid) = sessions.latest_before(sent.proc, i) {
                    add(sessions.all[sid].server, i);
                }
            }
        }
        for (k, first) in servers {
            for ses in sessions.never_ended_since(k, sent.at) {
                let addressee =
                    facts.is_addressee(h, sent.to, sent.proc, sent.at, ses.proc, ses.member_id);
                if addressee == Some(true) && !facts.was_delivered_to(sent.id, ses.proc) {
                    let by = match &h.entries[first].act {
                        Act::Delivered { proc, .. } => format!("delivered by {}", fp(*proc)),
                        Act::Acked { .. } => "acked".to_string(),
                        _ => "outcome issued".to_string(),
                    };
                    r.add(format!(
                        "{} sent by {} to {:?} at t={}: sequenced in server {k}, {by} (t={}), but never delivered by \
                         addressee {} (member {}, registered t={}, session never ended)",
                        fm(sent.id),
                        fp(sent.proc),
                        sent.to,
                        sent.at,
                        h.entries[first].at,
                        fp(ses.proc),
                        ses.member_id,
                        ses.start_at
                    ));
                }
            }
        }
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use switchboard_core::frame::Address;

    use super::check;
    use crate::checkers::testkit::*;
    use crate::history::Proc;

    /// Happy run plus D (slot 3, instance "alpha") registered as member 4.
    fn with_d() -> (Hb, Proc) {
        let d = Proc {
            slot: 3,
            incarnation: 400,
        };
        (
            happy()
                .start_named(d, "alpha", "d")
                .reg(d, 1, 4, 10, &[1, 2, 4])
                .join(d, "g", 1)
                .ack(d, 1),
            d,
        )
    }

    #[test]
    fn good_history_passes() {
        assert_clean(&check(&happy().build(), &bounds()));
    }

    #[test]
    fn broadcast_delivered_by_only_some_is_flagged() {
        let (hb, _) = with_d();
        let h = hb
            .send(A, 4, Address::Broadcast)
            .deliver(B, 1, 2, 11, 1, id(A, 4))
            .build();
        let v = check(&h, &bounds());
        assert_flags(&v, "never delivered by addressee p3#400");
        assert_eq!(v.len(), 1, "{v:#?}");
    }

    #[test]
    fn instance_multicast_partially_delivered_is_flagged() {
        let (hb, _) = with_d();
        let h = hb
            .send(A, 4, Address::Instance("alpha".into()))
            .deliver(B, 1, 2, 11, 1, id(A, 4))
            .build();
        assert_flags(&check(&h, &bounds()), "never delivered by addressee p3#400");
    }

    #[test]
    fn group_multicast_partially_delivered_is_flagged() {
        let (hb, _) = with_d();
        let h = hb
            .send(A, 4, group("g"))
            .deliver(B, 1, 2, 11, 1, id(A, 4))
            .build();
        assert_flags(&check(&h, &bounds()), "never delivered by addressee p3#400");
    }

    #[test]
    fn unacked_multicast_still_needs_agreement() {
        let (hb, d) = with_d();
        let h = hb
            .send(A, 4, group("g"))
            .deliver(d, 1, 4, 11, 1, id(A, 4))
            .build();
        assert_flags(&check(&h, &bounds()), "never delivered by addressee p1#200");
    }

    #[test]
    fn sequenced_multicast_that_nobody_delivered_is_flagged() {
        // Acked by server 1: sequenced, yet no addressee delivered it.
        let (hb, _) = with_d();
        let h = hb.clone().send(A, 4, group("g")).ack(A, 4).build();
        let v = check(&h, &bounds());
        assert_flags(&v, "sequenced in server 1, acked");
        assert_flags(&v, "never delivered by addressee p1#200");
        assert_flags(&v, "never delivered by addressee p3#400");
        // An outcome (no ack recorded) says the same.
        let h = hb
            .send_confirm(A, 4, Address::Instance("alpha".into()))
            .outcome(A, 4, 0, vec![])
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "sequenced in server 1, outcome issued",
        );
    }

    #[test]
    fn dead_or_late_addressees_and_point_to_point_are_exempt() {
        let (hb, d) = with_d();
        // D crashes after the send.
        let h = hb
            .clone()
            .send(A, 4, Address::Broadcast)
            .deliver(B, 1, 2, 11, 1, id(A, 4))
            .crash(d)
            .build();
        assert_clean(&check(&h, &bounds()));
        // Nobody delivered it and it was never sequenced (no ack, no
        // outcome): nothing to agree on.
        let h = hb.clone().send(A, 4, Address::Broadcast).build();
        assert_clean(&check(&h, &bounds()));
        // Acked but NACKed: refused, not sequenced.
        let h = hb
            .clone()
            .send(A, 4, Address::Broadcast)
            .nack(A, 4, switchboard_core::frame::NackReason::OverQuota)
            .ack(A, 4)
            .build();
        assert_clean(&check(&h, &bounds()));
        // Point-to-point addresses are G5's business.
        let h = hb
            .send(A, 4, Address::MemberId(2))
            .deliver(B, 1, 2, 11, 1, id(A, 4))
            .send(A, 5, Address::Anycast("g".into()))
            .deliver(B, 1, 2, 12, 1, id(A, 5))
            .build();
        assert_clean(&check(&h, &bounds()));
    }
}
