//! G2 No duplicates: a receiver incarnation delivers each (sender
//! incarnation, sequence) at most once, across reconnects and server
//! restarts.
//!
//! No (receiver process, [`MsgId`](crate::history::MsgId)) appears in two
//! `Delivered` or `Notified` acts (messages and published events share
//! their sender's sequence space).

use super::fast::HashMap;

use super::sessions::{fm, fp, Report};
use crate::history::{Act, Bounds, History, Ms, MsgId, Proc, Violation};

/// Name of the guarantee.
pub const NAME: &str = "G2 no duplicates";

/// Checks G2.
pub fn check(h: &History, _b: &Bounds) -> Vec<Violation> {
    let mut r = Report::new(NAME);
    let mut first: HashMap<(Proc, MsgId), (Ms, u64, u64)> = HashMap::default();
    for e in h.iter() {
        let (Act::Delivered {
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
        }) = &e.act
        else {
            continue;
        };
        if let Some(&(at, k, g)) = first.get(&(*proc, *id)) {
            r.add(format!(
                "{} delivered {} twice: t={at} (server {k}, gseq {g}) and t={} (server {server}, gseq {gseq})",
                fp(*proc),
                fm(*id),
                e.at
            ));
        } else {
            first.insert((*proc, *id), (e.at, *server, *gseq));
        }
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::checkers::testkit::*;

    #[test]
    fn an_event_handed_over_twice_is_flagged() {
        let h = happy()
            .publish(A, 9, 77)
            .notify(B, 1, 2, 20, 1, id(A, 9), 77)
            .notify(B, 1, 2, 21, 1, id(A, 9), 77)
            .build();
        assert_flags(&check(&h, &bounds()), "twice");
    }

    #[test]
    fn good_history_passes() {
        assert_clean(&check(&happy().build(), &bounds()));
    }

    #[test]
    fn duplicate_in_same_session_is_flagged() {
        let h = happy().deliver(B, 1, 2, 10, 1, id(A, 1)).build();
        assert_flags(&check(&h, &bounds()), "delivered 100:1 twice");
    }

    #[test]
    fn duplicate_across_server_restart_is_flagged() {
        let h = happy()
            .server_crash(1)
            .server_start(2)
            .reg(B, 2, 1, 1, &[1])
            .deliver(B, 2, 1, 2, 5, id(A, 2))
            .build();
        assert_flags(&check(&h, &bounds()), "delivered 100:2 twice");
    }

    #[test]
    fn new_incarnation_may_deliver_again() {
        let b2 = crate::history::Proc {
            slot: 1,
            incarnation: 201,
        };
        let h = happy()
            .crash(B)
            .start(b2)
            .reg(b2, 1, 4, 10, &[1, 4])
            .deliver(b2, 1, 4, 11, 1, id(A, 1))
            .build();
        assert_clean(&check(&h, &bounds()));
    }
}
