//! G4 Total order: any two members deliver the messages and events they
//! both receive in the same relative order.
//!
//! Per (receiver process, server incarnation), the stream positions (gseq)
//! of its `Delivered`, `Notified` and `ViewEvent` acts strictly increase in
//! history order; per (server, gseq), every `Delivered` or `Notified`
//! carries the same message or published event, every `ViewEvent` the same
//! change, and no gseq is both. Stated per
//! server incarnation: across a server restart only G3 holds.

use super::fast::HashMap;

use super::sessions::{fm, fp, Report};
use crate::history::{Act, Bounds, History, Ms, MsgId, Proc, ViewChange, Violation};

/// Name of the guarantee.
pub const NAME: &str = "G4 total order";

/// What a stream position carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Msg(MsgId),
    View(ViewChange),
}

fn show(i: Item) -> String {
    match i {
        Item::Msg(id) => format!("message {}", fm(id)),
        Item::View(c) => format!("view event {c:?}"),
    }
}

/// Checks G4.
pub fn check(h: &History, _b: &Bounds) -> Vec<Violation> {
    let mut r = Report::new(NAME);
    let mut last: HashMap<(Proc, u64), (u64, Ms)> = HashMap::default();
    let mut at_pos: HashMap<(u64, u64), (Item, Proc, Ms)> = HashMap::default();
    for e in h.iter() {
        let (proc, server, gseq, item) = match &e.act {
            Act::Delivered {
                proc,
                server,
                gseq,
                id,
                ..
            } => (*proc, *server, *gseq, Item::Msg(*id)),
            // A published event has its publisher's (incarnation, seq),
            // from the same space as its messages.
            Act::Notified {
                proc,
                server,
                gseq,
                id,
                ..
            } => (*proc, *server, *gseq, Item::Msg(*id)),
            Act::ViewEvent {
                proc,
                server,
                gseq,
                change,
                ..
            } => (*proc, *server, *gseq, Item::View(*change)),
            _ => continue,
        };
        match last.get_mut(&(proc, server)) {
            Some((g, at)) if gseq <= *g => r.add(format!(
                "{} in server {server}: {} at gseq {gseq} (t={}) after gseq {g} (t={at})",
                fp(proc),
                show(item),
                e.at
            )),
            Some(prev) => *prev = (gseq, e.at),
            None => {
                last.insert((proc, server), (gseq, e.at));
            }
        }
        match at_pos.get(&(server, gseq)) {
            Some(&(other, p, at)) if other != item => r.add(format!(
                "server {server} gseq {gseq}: {} got {} (t={}) but {} got {} (t={at})",
                fp(proc),
                show(item),
                e.at,
                fp(p),
                show(other)
            )),
            Some(_) => {}
            None => {
                at_pos.insert((server, gseq), (item, proc, e.at));
            }
        }
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use switchboard_core::frame::{Address, FailReason};

    use super::check;
    use crate::checkers::testkit::*;
    use crate::history::ViewChange;

    #[test]
    fn an_event_and_a_message_at_one_position_are_flagged() {
        let h = happy()
            .publish(A, 9, 77)
            .notify(B, 1, 2, 5, 1, id(A, 9), 77)
            .build();
        assert_flags(&check(&h, &bounds()), "gseq 5");
    }

    #[test]
    fn good_history_passes() {
        assert_clean(&check(&happy().build(), &bounds()));
    }

    #[test]
    fn positions_restart_with_a_new_server() {
        let h = happy()
            .server_crash(1)
            .server_start(2)
            .reg(B, 2, 1, 1, &[1])
            .reg(A, 2, 2, 2, &[1, 2])
            .view(B, 2, 2, ViewChange::Joined(2))
            .send(A, 4, Address::Broadcast)
            .deliver(B, 2, 1, 3, 2, id(A, 4))
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn backwards_position_is_flagged() {
        // Positions agree across members, but B hands them over backwards.
        let h = happy()
            .send(A, 4, Address::Broadcast)
            .send(A, 5, Address::Broadcast)
            .deliver(B, 1, 2, 11, 1, id(A, 4))
            .deliver(B, 1, 2, 10, 1, id(A, 5))
            .build();
        let v = check(&h, &bounds());
        assert_flags(&v, "after gseq 11");
        assert_eq!(v.len(), 1, "{v:#?}");
    }

    #[test]
    fn two_members_disagreeing_on_a_message_order_is_flagged() {
        // B and C both see A:4 and A:5 but in opposite positions.
        let h = happy()
            .send(A, 4, Address::Broadcast)
            .send(A, 5, Address::Broadcast)
            .deliver(B, 1, 2, 10, 1, id(A, 4))
            .deliver(B, 1, 2, 11, 1, id(A, 5))
            .deliver(C, 1, 3, 10, 1, id(A, 5))
            .deliver(C, 1, 3, 11, 1, id(A, 4))
            .build();
        assert_flags(&check(&h, &bounds()), "server 1 gseq 10");
    }

    #[test]
    fn split_view_event_is_flagged() {
        let h = happy()
            .view(
                A,
                1,
                10,
                ViewChange::Failed(2, FailReason::HeartbeatTimeout),
            )
            .view(B, 1, 10, ViewChange::Joined(4))
            .build();
        assert_flags(&check(&h, &bounds()), "server 1 gseq 10");
    }

    #[test]
    fn position_both_message_and_event_is_flagged() {
        let h = happy().view(C, 1, 8, ViewChange::Joined(4)).build();
        let v = check(&h, &bounds());
        assert_flags(&v, "server 1 gseq 8");
        assert_eq!(v.len(), 1, "{v:#?}");
    }
}
