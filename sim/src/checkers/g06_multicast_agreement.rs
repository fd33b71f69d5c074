//! G6 Multicast agreement: if one surviving addressee delivers a multicast,
//! every surviving addressee of the same view delivers it.
//!
//! For each `Sent` to an instance, a group or everyone that some process
//! delivered in server `K`: every process with a session in `K` that
//! started at or before the send time and never ended, and that is an
//! addressee (see [`Facts::is_addressee`]), must have a `Delivered` of it.

use switchboard_core::frame::Address;

use super::sessions::{fm, fp, Facts, Report, Sessions};
use crate::history::{Bounds, History, Violation};

/// Name of the guarantee.
pub const NAME: &str = "G6 multicast agreement";

/// Checks G6.
pub fn check(h: &History, _b: &Bounds) -> Vec<Violation> {
    let mut r = Report::new(NAME);
    let facts = Facts::build(h);
    let sessions = Sessions::build(h);
    for sent in &facts.sents {
        if !matches!(
            sent.to,
            Address::Instance(_) | Address::Group(_) | Address::Broadcast
        ) {
            continue;
        }
        let Some(dels) = facts.delivered.get(&sent.id) else {
            continue;
        };
        let mut servers: Vec<(u64, usize)> = Vec::new();
        for d in dels {
            if !servers.iter().any(|&(k, _)| k == d.server) {
                servers.push((d.server, d.idx));
            }
        }
        for (k, first) in servers {
            for ses in sessions.never_ended_since(k, sent.at) {
                let addressee =
                    facts.is_addressee(h, sent.to, sent.proc, sent.at, ses.proc, ses.member_id);
                if addressee == Some(true) && !facts.was_delivered_to(sent.id, ses.proc) {
                    let by = match &h.entries[first].act {
                        crate::history::Act::Delivered { proc, .. } => fp(*proc),
                        _ => String::from("?"),
                    };
                    r.add(format!(
                        "{} sent by {} to {:?} at t={}: delivered in server {k} by {by} (t={}) but never by \
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
        assert_flags(&v, "never by addressee p3#400");
        assert_eq!(v.len(), 1, "{v:#?}");
    }

    #[test]
    fn instance_multicast_partially_delivered_is_flagged() {
        let (hb, _) = with_d();
        let h = hb
            .send(A, 4, Address::Instance("alpha".into()))
            .deliver(B, 1, 2, 11, 1, id(A, 4))
            .build();
        assert_flags(&check(&h, &bounds()), "never by addressee p3#400");
    }

    #[test]
    fn group_multicast_partially_delivered_is_flagged() {
        let (hb, _) = with_d();
        let h = hb
            .send(A, 4, group("g"))
            .deliver(B, 1, 2, 11, 1, id(A, 4))
            .build();
        assert_flags(&check(&h, &bounds()), "never by addressee p3#400");
    }

    #[test]
    fn unacked_multicast_still_needs_agreement() {
        let (hb, d) = with_d();
        let h = hb
            .send(A, 4, group("g"))
            .deliver(d, 1, 4, 11, 1, id(A, 4))
            .build();
        assert_flags(&check(&h, &bounds()), "never by addressee p1#200");
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
        // Nobody delivered it: nothing to agree on.
        let h = hb.clone().send(A, 4, Address::Broadcast).build();
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
