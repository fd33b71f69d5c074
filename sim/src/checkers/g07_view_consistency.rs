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
//! Each member's services as others see them (`ServicesSeen`: a snapshot
//! at its position, a `MemberJoined` at its gseq), judged against each
//! other and against the server's ordered event stream as the server
//! logged it (`ServerServices`; a history without that log for a server,
//! such as one recorded over real sockets, is judged by (d) alone):
//! (d) all witnesses of member `x` at the same (server, gseq) list the
//! same services, and none lists more than `SERVICES_MAX`;
//! (e) a witness of `x` at gseq `g` lists exactly the services of `x`'s
//! latest logged `MemberJoined` at or before `g` with the logged service
//! events of `x` after it through `g` applied (up adds, down removes), and
//! `x` has such a `MemberJoined`;
//! (f) the log never sequences a service up for a member that already
//! announces `SERVICES_MAX` other services (the server must refuse it);
//! (g) a `Notified` at a gseq where the server logged a service event
//! names that event's member and carries its content digest.
//!
//! An `EventsLagged` (the client library's stream dropped cluster events)
//! leaves a hole in the process's view events: removals it saw before are
//! no longer held against it in (b) (it may have missed a rejoin), and its
//! session is not used as a witness in (c).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::fast::HashMap;

use super::sessions::{fp, Report, Sessions};
use switchboard_core::frame::{EventBody, SERVICES_MAX};

use crate::history::{
    event_digest, Act, Bounds, History, Ms, Proc, ServiceFact, ViewChange, Violation,
};

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
    check_services(h, &mut r);
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

/// Per server, per member: the logged events that set its services, by
/// gseq.
type ServiceLog<'a> = BTreeMap<u64, BTreeMap<u64, BTreeMap<u64, &'a ServiceFact>>>;

/// The first witness of a member's services at a position: what it
/// listed, who, when.
type Witness<'a> = (&'a [String], Proc, Ms);

/// A member's services as the server's log says they were right after
/// `gseq`: the services of its latest `MemberJoined` at or before `gseq`
/// with the service events after it (through `gseq`) applied; `None` if
/// no `MemberJoined` of it is logged at or before `gseq`.
fn replay<'a>(facts: &BTreeMap<u64, &'a ServiceFact>, gseq: u64) -> Option<BTreeSet<&'a str>> {
    let (&base, joined) = facts
        .range(..=gseq)
        .rev()
        .find(|(_, f)| matches!(f, ServiceFact::Joined(_)))?;
    let ServiceFact::Joined(services) = joined else {
        return None;
    };
    let mut set: BTreeSet<&str> = services.iter().map(String::as_str).collect();
    for (_, f) in facts.range((Bound::Excluded(base), Bound::Included(gseq))) {
        if let ServiceFact::Change { service, up } = f {
            if *up {
                set.insert(service);
            } else {
                set.remove(service.as_str());
            }
        }
    }
    Some(set)
}

/// Rules (d) to (g): each member's services as others see them.
fn check_services(h: &History, r: &mut Report) {
    let mut log: ServiceLog<'_> = BTreeMap::new();
    let mut at_gseq: HashMap<(u64, u64), (u64, &ServiceFact)> = HashMap::default();
    for e in &h.entries {
        if let Act::ServerServices {
            server,
            gseq,
            member_id,
            fact,
        } = &e.act
        {
            log.entry(*server)
                .or_default()
                .entry(*member_id)
                .or_default()
                .insert(*gseq, fact);
            at_gseq.insert((*server, *gseq), (*member_id, fact));
        }
    }
    // (f) The log within the quota: no service up sequenced for a member
    // that already announced SERVICES_MAX others.
    for (server, members) in &log {
        for (member_id, facts) in members {
            let mut set: BTreeSet<&str> = BTreeSet::new();
            for (gseq, f) in facts {
                match f {
                    ServiceFact::Joined(services) => {
                        set = services.iter().map(String::as_str).collect();
                    }
                    ServiceFact::Change { service, up: true } => {
                        if !set.contains(service.as_str()) && set.len() >= SERVICES_MAX {
                            r.add(format!(
                                "server {server} sequenced service {service:?} up for member {member_id} at gseq \
                                 {gseq} while it already announced {} services (SERVICES_MAX {SERVICES_MAX})",
                                set.len()
                            ));
                        }
                        set.insert(service);
                    }
                    ServiceFact::Change { service, up: false } => {
                        set.remove(service.as_str());
                    }
                }
            }
        }
    }
    // (d) Per (server, member, gseq): the first witness.
    let mut first: HashMap<(u64, u64, u64), Witness<'_>> = HashMap::default();
    for e in &h.entries {
        match &e.act {
            Act::ServicesSeen {
                proc,
                server,
                gseq,
                member_id,
                services,
            } => {
                if services.len() > SERVICES_MAX {
                    r.add(format!(
                        "{} saw member {member_id} in server {server} at gseq {gseq} (t={}) with {} services, \
                         over SERVICES_MAX {SERVICES_MAX}",
                        fp(*proc),
                        e.at,
                        services.len()
                    ));
                }
                match first.get(&(*server, *member_id, *gseq)) {
                    Some(&(other, p, at)) => {
                        if !same_set(other, services) {
                            r.add(format!(
                                "server {server} gseq {gseq}: {} saw member {member_id} with services {services:?} \
                                 (t={}) but {} saw {other:?} (t={at})",
                                fp(*proc),
                                e.at,
                                fp(p)
                            ));
                        }
                        // (e) judged the first witness of this position.
                        continue;
                    }
                    None => {
                        first.insert(
                            (*server, *member_id, *gseq),
                            (services.as_slice(), *proc, e.at),
                        );
                    }
                }
                // (e) What the server's ordered event stream says (for
                // the first witness of the position; (d) holds the others
                // to it).
                let Some(members) = log.get(server) else {
                    continue;
                };
                let Some(want) = members.get(member_id).and_then(|f| replay(f, *gseq)) else {
                    r.add(format!(
                        "{} saw member {member_id} in server {server} at gseq {gseq} (t={}), but the server \
                         logged no MemberJoined of it at or before that position",
                        fp(*proc),
                        e.at
                    ));
                    continue;
                };
                let got: BTreeSet<&str> = services.iter().map(String::as_str).collect();
                if got != want {
                    r.add(format!(
                        "{} saw member {member_id} in server {server} at gseq {gseq} (t={}) with services \
                         {got:?}, but its MemberJoined and service events in the server's stream through \
                         {gseq} give {want:?}",
                        fp(*proc),
                        e.at
                    ));
                }
            }
            // (g) A service event as a member received it is the one the
            // server sequenced at that position.
            Act::Notified {
                proc,
                server,
                gseq,
                from,
                digest,
                ..
            } => {
                let Some(&(member_id, f)) = at_gseq.get(&(*server, *gseq)) else {
                    continue;
                };
                let expected = match f {
                    ServiceFact::Change { service, up } => {
                        Some(event_digest(&EventBody::ServiceState {
                            service: service.clone(),
                            up: *up,
                        }))
                    }
                    ServiceFact::Joined(_) => None,
                };
                if member_id != *from || expected != Some(*digest) {
                    r.add(format!(
                        "{} in server {server} was notified at gseq {gseq} (t={}) of an event from member \
                         {from} (digest {digest:x}), but the server sequenced {f:?} of member {member_id} there",
                        fp(*proc),
                        e.at
                    ));
                }
            }
            _ => {}
        }
    }
}

/// Two service lists hold the same names.
fn same_set(a: &[String], b: &[String]) -> bool {
    let a: BTreeSet<&String> = a.iter().collect();
    let b: BTreeSet<&String> = b.iter().collect();
    a == b
}

#[cfg(test)]
mod tests {
    use switchboard_core::frame::{Address, EventBody, FailReason, SERVICES_MAX};

    use super::check;
    use crate::checkers::testkit::*;
    use crate::history::{event_digest, Act, Proc, ViewChange::*};

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

    /// Happy run plus the server's log of the services: members 1 and 2
    /// joined with none and with `http`; member 1 announced `grpc` up at
    /// 10, member 2 `http` down at 11.
    fn logged() -> Hb {
        happy()
            .logged_join(1, 1, 1, &[])
            .logged_join(1, 2, 2, &["http"])
            .logged_join(1, 3, 3, &[])
            .logged_change(1, 10, 1, "grpc", true)
            .logged_change(1, 11, 2, "http", false)
    }

    #[test]
    fn services_as_the_log_says_pass() {
        let h = logged()
            .seen(A, 1, 1, 1, &[])
            .seen(B, 1, 2, 1, &[])
            .seen(B, 1, 2, 2, &["http"])
            .seen(A, 1, 2, 2, &["http"])
            .seen(C, 1, 3, 2, &["http"])
            .seen(D, 1, 10, 1, &["grpc"])
            .seen(D, 1, 10, 2, &["http"])
            .seen(D, 1, 12, 2, &[])
            .notify(B, 1, 2, 10, 1, id(A, 4), grpc_up())
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    fn grpc_up() -> u64 {
        event_digest(&EventBody::ServiceState {
            service: "grpc".into(),
            up: true,
        })
    }

    #[test]
    fn two_witnesses_disagreeing_on_a_members_services_are_flagged() {
        // No server log: only the witnesses' agreement judges.
        let h = happy()
            .seen(A, 1, 2, 2, &["http"])
            .seen(B, 1, 2, 2, &["http", "grpc"])
            .build();
        assert_flags(&check(&h, &bounds()), "saw member 2 with services");
    }

    #[test]
    fn a_service_up_missing_from_a_later_snapshot_is_flagged() {
        let h = logged().seen(D, 1, 10, 1, &[]).build();
        assert_flags(&check(&h, &bounds()), "through 10 give {\"grpc\"}");
    }

    #[test]
    fn a_service_down_still_in_a_later_snapshot_is_flagged() {
        let h = logged().seen(D, 1, 11, 2, &["http"]).build();
        assert_flags(&check(&h, &bounds()), "through 11 give {}");
    }

    #[test]
    fn a_snapshot_before_a_service_event_must_not_show_it() {
        let h = logged().seen(D, 1, 9, 1, &["grpc"]).build();
        assert_flags(&check(&h, &bounds()), "through 9 give {}");
    }

    #[test]
    fn a_member_seen_without_a_logged_join_is_flagged() {
        let h = logged().seen(D, 1, 12, 7, &[]).build();
        assert_flags(&check(&h, &bounds()), "logged no MemberJoined");
    }

    #[test]
    fn a_service_up_past_services_max_is_flagged() {
        let names: Vec<String> = (0..SERVICES_MAX).map(|i| format!("s{i:02}")).collect();
        let full: Vec<&str> = names.iter().map(String::as_str).collect();
        let up_again = happy()
            .logged_join(1, 1, 1, &full)
            .logged_change(1, 10, 1, "s00", true)
            .build();
        assert_clean(&check(&up_again, &bounds()));
        let h = happy()
            .logged_join(1, 1, 1, &full)
            .logged_change(1, 10, 1, "extra", true)
            .build();
        assert_flags(&check(&h, &bounds()), "already announced 32 services");
        let mut over = full.clone();
        over.push("extra");
        let h = happy().seen(A, 1, 1, 1, &over).build();
        assert_flags(&check(&h, &bounds()), "33 services, over SERVICES_MAX");
    }

    #[test]
    fn a_service_event_received_unlike_the_server_sequenced_it_is_flagged() {
        // Up where the server sequenced grpc up: fine; down, or from
        // another member, is not.
        let grpc_down = event_digest(&EventBody::ServiceState {
            service: "grpc".into(),
            up: false,
        });
        let h = logged().notify(B, 1, 2, 10, 1, id(A, 4), grpc_down).build();
        assert_flags(&check(&h, &bounds()), "but the server sequenced");
        let h = logged().notify(A, 1, 1, 10, 2, id(B, 4), grpc_up()).build();
        assert_flags(&check(&h, &bounds()), "but the server sequenced");
    }
}
