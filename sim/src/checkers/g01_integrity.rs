//! G1 Integrity: only sent messages are delivered, unmodified, only to
//! their addressees, with the true sender.
//!
//! For every `Delivered`: the payload is intact; a `Sent` with the same
//! [`MsgId`](crate::history::MsgId) exists with the same tag; the receiver
//! is a plausible addressee (`MemberId(x)`: the delivering session is member
//! `x`; `Member{i,p}`: the receiver's names are `i/p`; `Instance(i)`: the
//! receiver's instance is `i` and it is not the sender; `Group(g)` and
//! `Anycast(g)`: the receiver issued a join of `g` before the delivery, is
//! not the sender, and had not left `g` since: no leave of `g` that the
//! server confirmed (`Acked`) strictly before the send without a join
//! issued after it, and, where the server's log of group changes is
//! recorded, the delivering member was in `g` by that log when the server
//! sequenced the message's position; `Broadcast`: the receiver is not the
//! sender); and when
//! the sender registered in the delivering server, `from` is one of the
//! sender's member ids there.
//!
//! For every `Notified` (a published event handed over): a `Published` with
//! the same identity exists, by the process of that incarnation, with the
//! same content digest; and when the publisher registered in the delivering
//! server, the event names one of its member ids there; and the receiver
//! held a subscription that selects it: a `Subscribed` of the receiver
//! before the `Notified` whose filter matches the event's kind and topic,
//! and that it had not dropped with an unsubscription the server confirmed
//! (`Acked`) before the event was published. (That every subscriber gets
//! it is G5's.)

use super::fast::{HashMap, HashSet};

use switchboard_core::frame::Address;

use super::server_log::GroupTimeline;
use super::sessions::{fm, fp, Facts, Report, Sessions};
use super::subscriptions::Subscriptions;
use crate::history::{Act, Bounds, History, MsgId, Proc, Violation};

/// Name of the guarantee.
pub const NAME: &str = "G1 integrity";

/// Checks G1.
pub fn check(h: &History, _b: &Bounds) -> Vec<Violation> {
    let mut r = Report::new(NAME);
    let facts = Facts::build(h);
    let sessions = Sessions::build(h);
    let mut member_ids: HashMap<(Proc, u64), HashSet<u64>> = HashMap::default();
    for s in &sessions.all {
        member_ids
            .entry((s.proc, s.server))
            .or_default()
            .insert(s.member_id);
    }
    let mut published: HashMap<MsgId, (Proc, u64)> = HashMap::default();
    for e in h.iter() {
        if let Act::Published {
            proc, id, digest, ..
        } = &e.act
        {
            published.insert(*id, (*proc, *digest));
        }
    }
    let subs = Subscriptions::build(h);
    let groups = GroupTimeline::build(h);
    for (idx, e) in h.entries.iter().enumerate() {
        let Act::Notified {
            proc: recv,
            server,
            gseq,
            from,
            id,
            digest,
            ..
        } = &e.act
        else {
            continue;
        };
        let what = format!(
            "{} was handed event {} at gseq {gseq} in server {server} (t={})",
            fp(*recv),
            fm(*id),
            e.at
        );
        let Some(&(publisher, d)) = published.get(id) else {
            r.add(format!("{what}: no Published with that id"));
            continue;
        };
        if d != *digest {
            r.add(format!(
                "{what}: content digest {digest:x} but {} published {d:x}",
                fp(publisher)
            ));
        }
        if let Some(p) = subs.published(*id) {
            let held = subs.of(*recv).iter().any(|sub| {
                sub.idx < idx
                    && sub.filter.matches(p.kind, p.topic)
                    && sub.unsub_acked.is_none_or(|u| u >= p.idx)
            });
            if !held {
                r.add(format!(
                    "{what}: no subscription of it selects a {:?} event on {:?} (none held, or dropped \
                     and confirmed before the event was published at t={})",
                    p.kind, p.topic, p.at
                ));
            }
        }
        if let Some(ids) = member_ids.get(&(publisher, *server)) {
            if !ids.contains(from) {
                r.add(format!(
                    "{what}: names member {from} but publisher {} is member {:?} there",
                    fp(publisher),
                    ids.iter().collect::<std::collections::BTreeSet<_>>()
                ));
            }
        }
    }
    for (idx, e) in h.entries.iter().enumerate() {
        let Act::Delivered {
            proc: recv,
            server,
            member_id,
            gseq,
            from,
            id,
            tag,
            intact,
        } = &e.act
        else {
            continue;
        };
        let what = format!(
            "{} delivered {} at gseq {gseq} in server {server} (t={})",
            fp(*recv),
            fm(*id),
            e.at
        );
        if !intact {
            r.add(format!("{what}: payload corrupted (checksum mismatch)"));
        }
        let Some(sent) = facts.sent(*id) else {
            r.add(format!("{what}: no Sent with that id"));
            continue;
        };
        if sent.tag != *tag {
            r.add(format!(
                "{what}: tag {tag} but {} sent tag {}",
                fp(sent.proc),
                sent.tag
            ));
        }
        let sender = sent.proc;
        let names = facts.names.get(recv);
        let not_self = || *recv != sender;
        let addressed = match sent.to {
            Address::MemberId(x) => *member_id == *x,
            Address::Member { instance, process } => {
                names.is_some_and(|&(i, p)| i == instance && p == process)
            }
            Address::Instance(i) => not_self() && names.is_some_and(|&(ri, _)| ri == i),
            Address::Group(g) | Address::Anycast(g) => {
                not_self()
                    && facts.joined_before(*recv, g, idx)
                    && !facts.left_group_before(h, *recv, g, sent.at, idx)
            }
            Address::Broadcast => not_self(),
        };
        if !addressed {
            r.add(format!(
                "{what} as member {member_id}: not an addressee of {:?} sent by {}",
                sent.to,
                fp(sender)
            ));
        } else if let Address::Group(g) | Address::Anycast(g) = sent.to {
            if groups.member_at(*server, *member_id, g, *gseq) == Some(false) {
                r.add(format!(
                    "{what} as member {member_id}: by server {server}'s log it was not in group {g:?} \
                     when the server sequenced that position"
                ));
            }
        }
        if let Some(ids) = member_ids.get(&(sender, *server)) {
            if !ids.contains(from) {
                let mut ids: Vec<u64> = ids.iter().copied().collect();
                ids.sort_unstable();
                r.add(format!(
                    "{what}: from member {from} but sender {} is member {ids:?} there",
                    fp(sender)
                ));
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
    use crate::history::{Act, MsgId};

    #[test]
    fn good_history_passes() {
        assert_clean(&check(&happy().build(), &bounds()));
    }

    #[test]
    fn a_published_event_handed_over_intact_passes() {
        let h = happy()
            .subscribe(B, 3, 1, every_event())
            .publish(A, 9, 77)
            .notify(B, 1, 2, 20, 1, id(A, 9), 77)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn an_event_nobody_published_is_flagged() {
        let h = happy().notify(B, 1, 2, 20, 1, id(A, 9), 77).build();
        assert_flags(&check(&h, &bounds()), "no Published");
    }

    #[test]
    fn an_altered_event_is_flagged() {
        let h = happy()
            .subscribe(B, 3, 1, every_event())
            .publish(A, 9, 77)
            .notify(B, 1, 2, 20, 1, id(A, 9), 78)
            .build();
        assert_flags(&check(&h, &bounds()), "content digest");
    }

    #[test]
    fn an_event_naming_another_publisher_is_flagged() {
        let h = happy()
            .subscribe(B, 3, 1, every_event())
            .publish(A, 9, 77)
            .notify(B, 1, 2, 20, 3, id(A, 9), 77)
            .build();
        assert_flags(&check(&h, &bounds()), "names member 3");
    }

    #[test]
    fn an_event_handed_to_a_process_without_a_matching_subscription_is_flagged() {
        // B never subscribed.
        let h = happy()
            .publish(A, 9, 77)
            .notify(B, 1, 2, 20, 1, id(A, 9), 77)
            .build();
        assert_flags(&check(&h, &bounds()), "no subscription of it selects");
        // B's only subscription selects another topic.
        let h = happy()
            .subscribe(B, 3, 1, topic("jobs/"))
            .ack(B, 3)
            .publish(A, 9, 77)
            .notify(B, 1, 2, 20, 1, id(A, 9), 77)
            .build();
        assert_flags(&check(&h, &bounds()), "no subscription of it selects");
        // B subscribed only after it was handed the event.
        let h = happy()
            .publish(A, 9, 77)
            .notify(B, 1, 2, 20, 1, id(A, 9), 77)
            .subscribe(B, 3, 1, every_event())
            .build();
        assert_flags(&check(&h, &bounds()), "no subscription of it selects");
    }

    #[test]
    fn an_event_handed_over_after_a_confirmed_unsubscription_is_flagged() {
        let h = happy()
            .subscribe(B, 3, 1, every_event())
            .ack(B, 3)
            .unsubscribe(B, 4, 1)
            .ack(B, 4)
            .publish(A, 9, 77)
            .notify(B, 1, 2, 20, 1, id(A, 9), 77)
            .build();
        assert_flags(&check(&h, &bounds()), "no subscription of it selects");
        // Unsubscribed, but the server had not confirmed it when the event
        // was published: it may have been sequenced before.
        let h = happy()
            .subscribe(B, 3, 1, every_event())
            .ack(B, 3)
            .unsubscribe(B, 4, 1)
            .publish(A, 9, 77)
            .ack(B, 4)
            .notify(B, 1, 2, 20, 1, id(A, 9), 77)
            .build();
        assert_clean(&check(&h, &bounds()));
        // Another subscription still selects it.
        let h = happy()
            .subscribe(B, 3, 1, every_event())
            .subscribe(B, 4, 2, topic("cache/"))
            .unsubscribe(B, 5, 1)
            .ack(B, 5)
            .publish(A, 9, 77)
            .notify(B, 1, 2, 20, 1, id(A, 9), 77)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn corrupted_payload_is_flagged() {
        let h = happy()
            .act(Act::Delivered {
                proc: B,
                server: 1,
                member_id: 2,
                gseq: 10,
                from: 1,
                id: id(A, 4),
                tag: tag(id(A, 4)),
                intact: false,
            })
            .build();
        // A never sent A:4 either: both are reported.
        let v = check(&h, &bounds());
        assert_flags(&v, "corrupted");
        assert_flags(&v, "no Sent");
    }

    #[test]
    fn unsent_message_is_flagged() {
        let h = happy()
            .deliver(
                B,
                1,
                2,
                10,
                1,
                MsgId {
                    sender: 100,
                    seq: 99,
                },
            )
            .build();
        assert_flags(&check(&h, &bounds()), "no Sent with that id");
    }

    #[test]
    fn modified_tag_is_flagged() {
        let h = happy()
            .send(A, 4, Address::Broadcast)
            .act(Act::Delivered {
                proc: B,
                server: 1,
                member_id: 2,
                gseq: 10,
                from: 1,
                id: id(A, 4),
                tag: 7,
                intact: true,
            })
            .build();
        assert_flags(&check(&h, &bounds()), "tag 7");
    }

    #[test]
    fn wrong_member_id_is_flagged() {
        let h = happy()
            .send(A, 4, Address::MemberId(2))
            .deliver(C, 1, 3, 10, 1, id(A, 4))
            .build();
        assert_flags(&check(&h, &bounds()), "not an addressee");
    }

    #[test]
    fn wrong_member_name_is_flagged() {
        let h = happy()
            .send(
                A,
                4,
                Address::Member {
                    instance: "alpha".into(),
                    process: "b".into(),
                },
            )
            .deliver(C, 1, 3, 10, 1, id(A, 4))
            .build();
        assert_flags(&check(&h, &bounds()), "not an addressee");
    }

    #[test]
    fn instance_delivered_outside_instance_or_to_self_is_flagged() {
        let h = happy()
            .send(A, 4, Address::Instance("alpha".into()))
            .deliver(C, 1, 3, 10, 1, id(A, 4))
            .build();
        assert_flags(&check(&h, &bounds()), "not an addressee");
        let h = happy()
            .send(A, 4, Address::Instance("alpha".into()))
            .deliver(A, 1, 1, 10, 1, id(A, 4))
            .build();
        assert_flags(&check(&h, &bounds()), "not an addressee");
    }

    #[test]
    fn group_delivered_to_non_member_is_flagged() {
        let h = happy()
            .send(B, 3, group("g"))
            .deliver(A, 1, 1, 10, 2, id(B, 3))
            .build();
        assert_flags(&check(&h, &bounds()), "not an addressee");
        // A join after the delivery does not count.
        let h = happy()
            .send(B, 3, group("g"))
            .deliver(A, 1, 1, 10, 2, id(B, 3))
            .join(A, "g", 4)
            .build();
        assert_flags(&check(&h, &bounds()), "not an addressee");
    }

    #[test]
    fn group_delivered_after_a_confirmed_leave_is_flagged() {
        // B left "g" (acked) before A sent to it.
        for to in [group("g"), Address::Anycast("g".into())] {
            let h = happy()
                .leave(B, "g", 3)
                .ack(B, 3)
                .send(A, 4, to)
                .deliver(B, 1, 2, 10, 1, id(A, 4))
                .build();
            assert_flags(&check(&h, &bounds()), "not an addressee");
        }
        // Not yet confirmed at the send, or joined again: fine.
        let h = happy()
            .leave(B, "g", 3)
            .send(A, 4, group("g"))
            .ack(B, 3)
            .deliver(B, 1, 2, 10, 1, id(A, 4))
            .build();
        assert_clean(&check(&h, &bounds()));
        let h = happy()
            .leave(B, "g", 3)
            .ack(B, 3)
            .send(A, 4, group("g"))
            .join(B, "g", 4)
            .deliver(B, 1, 2, 10, 1, id(A, 4))
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn a_group_delivery_to_a_member_outside_the_group_by_the_server_log_is_flagged() {
        // B issued its join of "g" before the delivery (the receiver-side
        // rule passes), but by server 1's log (B is member 2) it joined at
        // position 20, after the message's position 10, or had left at 8.
        // (C, member 3, is in "g" from position 2 for `happy`'s own group
        // deliveries.)
        let logged = || {
            happy()
                .logged_reg_at(1, 2, 2, "alpha", "b")
                .logged_group(1, 2, 3, "g", true)
        };
        for to in [group("g"), Address::Anycast("g".into())] {
            let late_join = logged()
                .logged_group(1, 20, 2, "g", true)
                .send(A, 4, to.clone())
                .deliver(B, 1, 2, 10, 1, id(A, 4))
                .build();
            assert_flags(&check(&late_join, &bounds()), "was not in group \"g\"");
            let left = logged()
                .logged_group(1, 3, 2, "g", true)
                .logged_group(1, 8, 2, "g", false)
                .send(A, 4, to.clone())
                .deliver(B, 1, 2, 10, 1, id(A, 4))
                .build();
            assert_flags(&check(&left, &bounds()), "was not in group \"g\"");
            // In the group at position 10: fine.
            let member = logged()
                .logged_group(1, 3, 2, "g", true)
                .send(A, 4, to.clone())
                .deliver(B, 1, 2, 10, 1, id(A, 4))
                .build();
            assert_clean(&check(&member, &bounds()));
        }
        // A new registration starts from the groups it lists: B registered
        // again at position 9 without "g".
        let h = logged()
            .logged_group(1, 3, 2, "g", true)
            .logged_reg_at(1, 9, 2, "alpha", "b")
            .send(A, 4, group("g"))
            .deliver(B, 1, 2, 10, 1, id(A, 4))
            .build();
        assert_flags(&check(&h, &bounds()), "was not in group \"g\"");
        // Without the server's log nothing is judged this way.
        let h = happy()
            .send(A, 4, group("g"))
            .deliver(B, 1, 2, 10, 1, id(A, 4))
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn anycast_to_sender_is_flagged_but_to_member_passes() {
        let h = happy()
            .send(B, 3, Address::Anycast("g".into()))
            .deliver(B, 1, 2, 10, 2, id(B, 3))
            .build();
        assert_flags(&check(&h, &bounds()), "not an addressee");
        let h = happy()
            .send(A, 4, Address::Anycast("g".into()))
            .deliver(B, 1, 2, 10, 1, id(A, 4))
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn broadcast_to_sender_is_flagged() {
        let h = happy()
            .send(A, 4, Address::Broadcast)
            .deliver(A, 1, 1, 10, 1, id(A, 4))
            .build();
        assert_flags(&check(&h, &bounds()), "not an addressee");
    }

    #[test]
    fn false_sender_is_flagged() {
        let h = happy()
            .send(A, 4, Address::Broadcast)
            .deliver(B, 1, 2, 10, 3, id(A, 4))
            .build();
        assert_flags(&check(&h, &bounds()), "from member 3");
    }
}
