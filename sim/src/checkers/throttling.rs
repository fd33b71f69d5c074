//! G11 throttling: a member whose message or published event went into a
//! recipient's queue over its soft limit has no further item sequenced
//! until that recipient is back under half its limit, is removed, or the
//! server run ends.
//!
//! The simulator records, per server step driven by a read from member
//! `X`'s connection, each other member `R` whose queue grew in that step
//! and was over its soft item or byte limit after it (`ThrottleDue`, only
//! where the step leaves no doubt that the growth was `X`'s items), and,
//! per step, each member that was over half its limit before the step and
//! not after it, or whose queue shrank in it, or that was removed in it
//! (`QueueUnderHalf`, with the last position assigned before the step).
//!
//! For each step's `ThrottleDue` acts of `X` in server `K`, with `g` the
//! last position of that step: let `s` be the position of the first later
//! `QueueUnderHalf` in `K` of one of the recipients named (the core
//! throttles a sender by one recipient over its limit, so the first of
//! them to drain releases it), or of `X` itself removed; none (the run
//! crashed, or the history ends): no bound. Then no message or published
//! event of `X` (a `Delivered` or `Notified` of server `K` from member
//! `X`) may have a position in `(g, s]`: it was sequenced while `X` was
//! throttled. What a throttled member may still do is not judged here and
//! does not end the hold: its `DeliveryAck`s, heartbeats and `Goodbye`
//! are handled (frames it deferred are processed at its goodbye, which
//! removes it in the same step).

use std::collections::BTreeSet;

use super::fast::HashMap;
use super::sessions::Report;
use crate::history::{Act, History};

/// One step's throttle of a member.
struct Hold {
    server: u64,
    member_id: u64,
    /// Last position of the step that throttled it.
    from: u64,
    /// The recipients over their limit.
    by: Vec<u64>,
    /// Time of that step.
    at: u64,
}

/// Checks G11's throttling rule into `r`.
pub(crate) fn throttled_members_wait(h: &History, r: &mut Report) {
    // Positions of each (server, sender member id)'s items, as received.
    let mut items: HashMap<(u64, u64), BTreeSet<u64>> = HashMap::default();
    for e in h.iter() {
        if let Act::Delivered {
            server, from, gseq, ..
        }
        | Act::Notified {
            server, from, gseq, ..
        } = &e.act
        {
            items.entry((*server, *from)).or_default().insert(*gseq);
        }
    }
    let mut open: Vec<Hold> = Vec::new();
    let mut closed: Vec<(Hold, Option<u64>)> = Vec::new();
    for e in h.iter() {
        match &e.act {
            Act::ThrottleDue {
                server,
                member_id,
                by,
                gseq,
            } => {
                if let Some(hold) = open
                    .iter_mut()
                    .find(|o| (o.server, o.member_id, o.from) == (*server, *member_id, *gseq))
                {
                    hold.by.push(*by);
                } else {
                    open.push(Hold {
                        server: *server,
                        member_id: *member_id,
                        from: *gseq,
                        by: vec![*by],
                        at: e.at,
                    });
                }
            }
            Act::QueueUnderHalf {
                server,
                member_id,
                gseq,
                removed,
            } => {
                let mut i = 0;
                while i < open.len() {
                    let o = &open[i];
                    let ends = o.server == *server
                        && (o.by.contains(member_id) || (*removed && o.member_id == *member_id));
                    if ends {
                        closed.push((open.swap_remove(i), Some(*gseq)));
                    } else {
                        i += 1;
                    }
                }
            }
            Act::ServerCrashed { server } => {
                let mut i = 0;
                while i < open.len() {
                    if open[i].server == *server {
                        closed.push((open.swap_remove(i), None));
                    } else {
                        i += 1;
                    }
                }
            }
            _ => {}
        }
    }
    closed.extend(open.into_iter().map(|o| (o, None)));
    closed.sort_by_key(|(o, _)| (o.at, o.server, o.member_id, o.from));
    for (o, until) in closed {
        let Some(positions) = items.get(&(o.server, o.member_id)) else {
            continue;
        };
        let upper = until.unwrap_or(u64::MAX);
        if let Some(g) = positions
            .range(o.from + 1..)
            .next()
            .filter(|&&g| g <= upper)
        {
            let release = match until {
                Some(s) => {
                    format!("none of them was back under half its limit before position {s}")
                }
                None => "none of them was back under half its limit in that run".into(),
            };
            r.add(format!(
                "member {} of server {} had an item sequenced at position {g} while throttled: \
                 at t={} its items up to position {} went into the queue of member(s) {:?} over \
                 the soft limit, and {release}",
                o.member_id, o.server, o.at, o.from, o.by
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::g11_bounded_memory::check;
    use crate::checkers::testkit::*;
    use crate::history::Act;
    use switchboard_core::frame::Address;

    fn due(k: u64, member_id: u64, by: u64, gseq: u64) -> Act {
        Act::ThrottleDue {
            server: k,
            member_id,
            by,
            gseq,
        }
    }

    fn under(k: u64, member_id: u64, gseq: u64, removed: bool) -> Act {
        Act::QueueUnderHalf {
            server: k,
            member_id,
            gseq,
            removed,
        }
    }

    /// A (member 1) sends to B (member 2), whose queue is over its soft
    /// limit after A's message at 10; B then drains below half in the
    /// step after position 12 (A's message 3 at 13 goes on after it).
    fn throttled() -> Hb {
        happy()
            .act(due(1, 1, 2, 10))
            .send(A, 4, Address::MemberId(2))
            .send(A, 5, Address::MemberId(3))
            .act(under(1, 2, 12, false))
            .deliver(B, 1, 2, 13, 1, id(A, 4))
    }

    #[test]
    fn a_member_that_waits_for_its_recipient_passes() {
        assert_clean(&check(&throttled().build(), &bounds()));
    }

    #[test]
    fn an_item_sequenced_while_throttled_is_flagged() {
        // A's message to C got position 11, before B was back under half.
        let h = throttled().deliver(C, 1, 3, 11, 1, id(A, 5)).build();
        assert_flags(
            &check(&h, &bounds()),
            "sequenced at position 11 while throttled",
        );
        // So does a published event of A, and any item in a run that
        // ended before B drained.
        let h = happy()
            .act(due(1, 1, 2, 10))
            .notify(C, 1, 3, 11, 1, id(A, 6), 7)
            .server_crash(1)
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "sequenced at position 11 while throttled",
        );
    }

    #[test]
    fn a_release_by_any_recipient_or_a_removal_ends_the_hold() {
        // Over-limit recipients B and C: C draining releases A.
        let h = happy()
            .act(due(1, 1, 2, 10))
            .act(due(1, 1, 3, 10))
            .act(under(1, 3, 10, false))
            .deliver(C, 1, 3, 11, 1, id(A, 5))
            .build();
        assert_clean(&check(&h, &bounds()));
        // A removed (its goodbye processes what it deferred), or B removed.
        for (who, removed) in [(1, true), (2, true)] {
            let h = happy()
                .act(due(1, 1, 2, 10))
                .act(under(1, who, 10, removed))
                .deliver(C, 1, 3, 11, 1, id(A, 5))
                .build();
            assert_clean(&check(&h, &bounds()));
        }
        // Another member draining, or A under half without being removed,
        // does not.
        for (who, removed) in [(3, false), (1, false)] {
            let h = happy()
                .act(due(1, 1, 2, 10))
                .act(under(1, who, 10, removed))
                .deliver(C, 1, 3, 11, 1, id(A, 5))
                .build();
            assert_flags(&check(&h, &bounds()), "while throttled");
        }
        // Items of another server run are not held.
        let h = happy()
            .act(due(1, 1, 2, 10))
            .deliver(C, 2, 3, 11, 1, id(A, 5))
            .build();
        assert_clean(&check(&h, &bounds()));
    }
}
