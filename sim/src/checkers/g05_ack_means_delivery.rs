//! G5 Ack means delivery: a message the server acked is delivered to every
//! addressee that stays alive and connected (or resumes its session).
//!
//! For each `Sent` (not anycast, not a request) with an `Acked` after it and
//! no `Nacked`: for each server `K` that acked it (the server of the
//! sender's most recent `Registered` before the `Acked`), every process with
//! a session in `K` that started at or before the send time and never ended,
//! and that is an addressee (see [`Facts::is_addressee`]), must have a
//! `Delivered` of the message, in any server.

use switchboard_core::frame::Address;

use super::sessions::{fm, fp, Facts, Report, Sessions};
use crate::history::{Bounds, History, Violation};

/// Name of the guarantee.
pub const NAME: &str = "G5 ack means delivery";

/// Checks G5.
pub fn check(h: &History, _b: &Bounds) -> Vec<Violation> {
    let mut r = Report::new(NAME);
    let facts = Facts::build(h);
    let sessions = Sessions::build(h);
    for sent in &facts.sents {
        if sent.request || matches!(sent.to, Address::Anycast(_)) {
            continue;
        }
        let key = (sent.proc, sent.id.seq);
        if facts.nacks.contains_key(&key) {
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
        }
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use switchboard_core::frame::{Address, NackReason};

    use super::check;
    use crate::checkers::testkit::*;
    use crate::history::Proc;

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
}
