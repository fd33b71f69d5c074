//! G7 View consistency: membership events arrive in the same order at every
//! member; no message from a member is delivered after its Left/Failed
//! event; a joiner gets a snapshot of the view exactly at its position in
//! the stream (no gap, no overlap).
//!
//! (a) Per (server, gseq), all `ViewEvent`s carry the same change and
//! the same view epoch, and within a server the epochs of view changes
//! strictly increase with their gseq (one more per change).
//! (b) Once process `R` saw `Left(x)` or `Failed(x)` at gseq `g` in server
//! `K`, no later `Delivered` for `R` in `K` has `from == x` and gseq > `g`.
//! (c) For each `Registered` (server `K`, position `p2`, view `S2`): the
//! joiner's own member id is in `S2`; and for each session of another
//! process in `K` registered at position `p1 < p2` with view `S1` whose
//! stream covers `p2` (it has a `Delivered` or `ViewEvent` with gseq >
//! `p2`), `S1` with that session's `ViewEvent`s at `p1 < gseq <= p2`
//! applied (joined adds, left/failed removes) equals `S2` as a set. A
//! session told by a `GapNotice` that part of `(p1, p2]` may be lost is
//! not used as a witness.
//!
//! An `EventsLagged` (the client library's stream dropped cluster events)
//! leaves a hole in the process's view events: removals it saw before are
//! no longer held against it in (b) (it may have missed a rejoin), and its
//! session is not used as a witness in (c).

use std::collections::{BTreeMap, BTreeSet};

use super::fast::HashMap;

use super::sessions::{fp, Report, Sessions};
use crate::history::{Act, Bounds, History, Ms, Proc, ViewChange, Violation};

/// Name of the guarantee.
pub const NAME: &str = "G7 view consistency";

/// What one session's stream showed.
#[derive(Debug, Default)]
struct Stream {
    views: BTreeMap<u64, ViewChange>,
    max_gseq: Option<u64>,
    gaps: Vec<(u64, u64)>,
}

/// Checks G7.
pub fn check(h: &History, _b: &Bounds) -> Vec<Violation> {
    let mut r = Report::new(NAME);
    let sessions = Sessions::build(h);
    let mut streams: Vec<Stream> = sessions.all.iter().map(|_| Stream::default()).collect();
    let mut views_at: HashMap<(u64, u64), (ViewChange, Proc, Ms)> = HashMap::default();
    // Per server: gseq -> (epoch, who saw it, when).
    let mut epochs: BTreeMap<u64, BTreeMap<u64, (u64, Proc, Ms)>> = BTreeMap::new();
    let mut removed: HashMap<(Proc, u64, u64), (u64, Ms)> = HashMap::default();
    for (idx, e) in h.entries.iter().enumerate() {
        match &e.act {
            Act::ViewEvent {
                proc,
                server,
                gseq,
                change,
                epoch,
            } => {
                match epochs.entry(*server).or_default().get(gseq) {
                    Some(&(other, p, at)) if other != *epoch => r.add(format!(
                        "server {server} gseq {gseq}: {} saw epoch {epoch} (t={}) but {} saw epoch {other} (t={at})",
                        fp(*proc),
                        e.at,
                        fp(p)
                    )),
                    Some(_) => {}
                    None => {
                        epochs
                            .entry(*server)
                            .or_default()
                            .insert(*gseq, (*epoch, *proc, e.at));
                    }
                }
                match views_at.get(&(*server, *gseq)) {
                    Some(&(c, p, at)) if c != *change => r.add(format!(
                        "server {server} gseq {gseq}: {} saw {change:?} (t={}) but {} saw {c:?} (t={at})",
                        fp(*proc),
                        e.at,
                        fp(p)
                    )),
                    Some(_) => {}
                    None => {
                        views_at.insert((*server, *gseq), (*change, *proc, e.at));
                    }
                }
                if let ViewChange::Left(x) | ViewChange::Failed(x, _) = change {
                    let g = removed.entry((*proc, *server, *x)).or_insert((*gseq, e.at));
                    if *gseq < g.0 {
                        *g = (*gseq, e.at);
                    }
                }
                // Member ids derive from the process identity: the same
                // process incarnation registering again (after its session
                // expired) comes back with the same id.
                if let ViewChange::Joined(x) = change {
                    if removed
                        .get(&(*proc, *server, *x))
                        .is_some_and(|(g, _)| *g < *gseq)
                    {
                        removed.remove(&(*proc, *server, *x));
                    }
                }
                if let Some(sid) = sessions.latest_in_server_before(*proc, *server, idx) {
                    let s = &mut streams[sid];
                    s.views.insert(*gseq, *change);
                    s.max_gseq = s.max_gseq.max(Some(*gseq));
                }
            }
            Act::Delivered {
                proc,
                server,
                gseq,
                from,
                id,
                ..
            } => {
                if let Some(&(g, at)) = removed.get(&(*proc, *server, *from)) {
                    if *gseq > g {
                        r.add(format!(
                            "{} in server {server} delivered {}:{} from member {from} at gseq {gseq} (t={}) after \
                             seeing member {from} leave/fail at gseq {g} (t={at})",
                            fp(*proc),
                            id.sender,
                            id.seq,
                            e.at
                        ));
                    }
                }
                if let Some(sid) = sessions.latest_in_server_before(*proc, *server, idx) {
                    let s = &mut streams[sid];
                    s.max_gseq = s.max_gseq.max(Some(*gseq));
                }
            }
            Act::EventsLagged { proc, .. } => {
                removed.retain(|(p, _, _), _| p != proc);
                if let Some(sid) = sessions.latest_before(*proc, idx) {
                    streams[sid].gaps.push((0, u64::MAX));
                }
            }
            Act::GapNotice {
                proc,
                from,
                through,
            } => {
                if let Some(sid) = sessions.latest_before(*proc, idx) {
                    streams[sid].gaps.push((*from, *through));
                }
            }
            // A fresh registration starts a new stream from a snapshot:
            // removals seen in the old stream no longer apply to members
            // the snapshot holds.
            Act::Registered {
                proc, server, view, ..
            } => {
                for x in view {
                    removed.remove(&(*proc, *server, *x));
                }
            }
            _ => {}
        }
    }
    check_snapshots(h, &sessions, &streams, &mut r);
    for (server, by_gseq) in &epochs {
        let mut prev: Option<(u64, u64, Proc)> = None;
        for (gseq, &(epoch, p, _)) in by_gseq {
            if let Some((g0, e0, p0)) = prev {
                if epoch <= e0 {
                    r.add(format!(
                        "server {server}: view change at gseq {gseq} has epoch {epoch} ({}), \
                         not above epoch {e0} of the change at gseq {g0} ({})",
                        fp(p),
                        fp(p0)
                    ));
                }
            }
            prev = Some((*gseq, epoch, p));
        }
    }
    r.finish()
}

/// The view snapshot of a session's `Registered` act.
fn snapshot(h: &History, start_idx: usize) -> BTreeSet<u64> {
    match &h.entries[start_idx].act {
        Act::Registered { view, .. } => view.iter().copied().collect(),
        _ => BTreeSet::new(),
    }
}

/// Rule (c).
fn check_snapshots(h: &History, sessions: &Sessions, streams: &[Stream], r: &mut Report) {
    let mut servers: Vec<u64> = sessions.all.iter().map(|s| s.server).collect();
    servers.sort_unstable();
    servers.dedup();
    for k in servers {
        let sids = sessions.in_server(k);
        for &j in sids {
            let joiner = &sessions.all[j];
            let (p2, s2) = (joiner.position, snapshot(h, joiner.start_idx));
            if !s2.contains(&joiner.member_id) {
                r.add(format!(
                    "{} registered in server {k} as member {} at position {p2} (t={}) with a snapshot {s2:?} \
                     lacking its own id",
                    fp(joiner.proc),
                    joiner.member_id,
                    joiner.start_at
                ));
            }
            for &m in sids {
                let witness = &sessions.all[m];
                let p1 = witness.position;
                let stream = &streams[m];
                if witness.proc == joiner.proc
                    || p1 >= p2
                    || stream.max_gseq.is_none_or(|g| g <= p2)
                    || stream
                        .gaps
                        .iter()
                        .any(|&(from, through)| from <= p2 && through > p1)
                {
                    continue;
                }
                let mut view = snapshot(h, witness.start_idx);
                for (_, c) in stream.views.range(p1 + 1..=p2) {
                    match *c {
                        ViewChange::Joined(x) => view.insert(x),
                        ViewChange::Left(x) | ViewChange::Failed(x, _) => view.remove(&x),
                    };
                }
                if view != s2 {
                    r.add(format!(
                        "{} registered in server {k} as member {} at position {p2} (t={}) with snapshot {s2:?}, \
                         but {} (member {}, registered at position {p1}) saw the view at {p2} as {view:?}",
                        fp(joiner.proc),
                        joiner.member_id,
                        joiner.start_at,
                        fp(witness.proc),
                        witness.member_id
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use switchboard_core::frame::{Address, FailReason};

    use super::check;
    use crate::checkers::testkit::*;
    use crate::history::{Act, Proc, ViewChange::*};

    const D: Proc = Proc {
        slot: 3,
        incarnation: 400,
    };

    /// Happy run plus D joining as member 4 at position 10 with `view`;
    /// A and B see the join, then A broadcasts at 11 so both streams cover
    /// position 10.
    fn d_joins(view: &[u64]) -> Hb {
        happy_run()
            .start_named(D, "delta", "d")
            .reg(D, 1, 4, 10, view)
            .view(A, 1, 10, Joined(4))
            .view(B, 1, 10, Joined(4))
            .send(A, 4, Address::Broadcast)
            .deliver(B, 1, 2, 11, 1, id(A, 4))
            .deliver(D, 1, 4, 11, 1, id(A, 4))
    }

    #[test]
    fn view_epochs_that_do_not_grow_are_flagged() {
        use crate::history::ViewChange::*;
        let h = happy()
            .view_epoch(A, 1, 20, Joined(9), 30)
            .view_epoch(B, 1, 21, Left(9), 30)
            .build();
        assert_flags(&check(&h, &bounds()), "not above epoch 30");
    }

    #[test]
    fn two_epochs_for_one_view_change_are_flagged() {
        use crate::history::ViewChange::*;
        let h = happy()
            .view_epoch(A, 1, 20, Joined(9), 20)
            .view_epoch(B, 1, 20, Joined(9), 21)
            .build();
        assert_flags(&check(&h, &bounds()), "saw epoch");
    }

    #[test]
    fn good_history_passes() {
        assert_clean(&check(&happy().build(), &bounds()));
        assert_clean(&check(&d_joins(&[1, 2, 4]).build(), &bounds()));
    }

    #[test]
    fn split_view_is_flagged() {
        let h = happy()
            .view(A, 1, 10, Failed(2, FailReason::HeartbeatTimeout))
            .view(B, 1, 10, Left(1))
            .build();
        assert_flags(&check(&h, &bounds()), "server 1 gseq 10");
    }

    #[test]
    fn message_after_failed_is_flagged() {
        let h = happy()
            .view(A, 1, 10, Failed(2, FailReason::HeartbeatTimeout))
            .send(B, 3, Address::MemberId(1))
            .deliver(A, 1, 1, 11, 2, id(B, 3))
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "after seeing member 2 leave/fail at gseq 10",
        );
    }

    #[test]
    fn a_lagged_stream_excuses_a_missed_rejoin_but_only_after_the_lag() {
        // A saw member 2 fail, then its stream dropped cluster events (the
        // rejoin among them): a later message from 2 is no violation.
        let lagged = happy()
            .view(A, 1, 10, Failed(2, FailReason::HeartbeatTimeout))
            .act(Act::EventsLagged { proc: A, missed: 3 })
            .send(B, 3, Address::MemberId(1))
            .deliver(A, 1, 1, 11, 2, id(B, 3))
            .build();
        assert_clean(&check(&lagged, &bounds()));
        // A removal seen after the lag is held against it again.
        let after = happy()
            .act(Act::EventsLagged { proc: A, missed: 3 })
            .view(A, 1, 10, Failed(2, FailReason::HeartbeatTimeout))
            .send(B, 3, Address::MemberId(1))
            .deliver(A, 1, 1, 11, 2, id(B, 3))
            .build();
        assert_flags(
            &check(&after, &bounds()),
            "after seeing member 2 leave/fail at gseq 10",
        );
    }

    #[test]
    fn message_after_left_is_flagged_but_earlier_position_is_not() {
        let h = happy()
            .send(C, 3, Address::MemberId(1))
            .deliver(A, 1, 1, 12, 3, id(C, 3))
            .build();
        assert_flags(&check(&h, &bounds()), "leave/fail at gseq 9");
        // Delivered later in history but sequenced before the Left.
        let h = happy()
            .view(A, 1, 10, Left(2))
            .send(B, 3, Address::MemberId(1))
            .deliver(A, 1, 1, 8, 2, id(B, 3))
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn stale_snapshot_is_flagged() {
        // Member 3 left at 9 but D's snapshot still has it (overlap).
        let v = check(&d_joins(&[1, 2, 3, 4]).build(), &bounds());
        assert_flags(&v, "saw the view at 10 as {1, 2, 4}");
    }

    #[test]
    fn snapshot_missing_a_member_is_flagged() {
        let v = check(&d_joins(&[1, 4]).build(), &bounds());
        assert_flags(&v, "snapshot {1, 4}");
    }

    #[test]
    fn snapshot_without_own_id_is_flagged() {
        let v = check(&d_joins(&[1, 2]).build(), &bounds());
        assert_flags(&v, "lacking its own id");
    }

    #[test]
    fn witnesses_with_gaps_or_short_streams_are_not_used() {
        // A was told it may have lost 5..=9; B's stream stops at 10.
        let h = happy_run()
            .gap(A, 5, 9)
            .start_named(D, "delta", "d")
            .reg(D, 1, 4, 10, &[1, 2, 3, 4])
            .view(A, 1, 10, Joined(4))
            .view(B, 1, 10, Joined(4))
            .send(B, 3, Address::MemberId(1))
            .deliver(A, 1, 1, 11, 2, id(B, 3))
            .build();
        assert_clean(&check(&h, &bounds()));
    }
}
