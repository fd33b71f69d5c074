//! G11 Bounded memory: every queue has a limit; a slow or hostile peer is
//! throttled, then evicted with a visible reason, never allowed to grow
//! memory without bound.
//!
//! Every `Memory` sample has the largest server queue at most
//! `2 * member_queue_items_max + 1` items and `2 * member_queue_bytes_max`
//! bytes (its frames counted afresh), and the largest client outbox at most
//! `outbox_items_max`.
//!
//! A member whose queue went over its soft item or byte limit
//! (`QueueOver`) and stayed over it for longer than `slow_consumer_grace_ms` (plus
//! [`SLACK_MS`] of clock rounding) without being removed, in any way, from
//! that server run is flagged: the server must evict it as a slow consumer.
//! Its interval ends when it goes back under the limit, is removed
//! (`ServerRemoved`) or the server crashes; one still open at the end of
//! the history is judged up to the last act.
//!
//! The evicted member itself is told why: a member declared failed
//! (`ServerRemoved` with a failure reason) while
//! its process's connection was up (its latest `Registered` or `Resumed`
//! before the removal had no `Disconnected` after it, and that session is
//! the one removed) sees, at its next `Disconnected`, the server's `Error`
//! code `LimitExceeded` for an eviction as a slow consumer,
//! `Malformed` for a protocol violation answering undecodable bytes (the
//! session's latest hostile write at that instant is a
//! `HostileFrame::Undecodable` whose header the decoder refuses, see G10),
//! `UnexpectedFrame` for any other protocol violation (a frame that
//! decodes but breaks the rules) and `DeclaredFailed` for any other
//! failure. Judged only when the history
//! can tell the bytes reached the client: that disconnect carries a code
//! or came from the connection's close reaching the client (not the
//! client's own timeout), and no reset of the member's slot or crash of
//! the server (both lose bytes in flight) came between the connection's
//! start and that disconnect.
//!
//! Throttled members wait: see `checkers/throttling.rs`.

use std::collections::BTreeMap;

use switchboard_core::frame::{ErrorCode, FailReason};

use super::fast::HashMap;
use super::sessions::{fp, Report, Sessions};
use crate::history::{Act, Bounds, History, Ms, Proc, Violation};

/// Rounding allowance: times are recorded in whole milliseconds.
pub const SLACK_MS: u64 = 2;

/// Name of the guarantee.
pub const NAME: &str = "G11 bounded memory";

/// Checks G11.
pub fn check(h: &History, b: &Bounds) -> Vec<Violation> {
    let mut r = Report::new(NAME);
    let queue_limit = b.member_queue_items_max.saturating_mul(2).saturating_add(1);
    slow_consumers_are_evicted(h, b, &mut r);
    removed_members_are_told_why(h, &mut r);
    super::throttling::throttled_members_wait(h, &mut r);
    for e in h.iter() {
        let Act::Memory {
            server_queue_max,
            outbox_max,
            server_queue_bytes_max,
        } = &e.act
        else {
            continue;
        };
        let bytes_limit = b.member_queue_bytes_max.saturating_mul(2);
        if *server_queue_bytes_max > bytes_limit {
            r.add(format!(
                "t={}: a member's server queue held {server_queue_bytes_max} bytes, over the hard bound {bytes_limit}",
                e.at
            ));
        }
        if *server_queue_max > queue_limit {
            r.add(format!(
                "t={}: a member's server queue held {server_queue_max} items, over the hard bound {queue_limit}",
                e.at
            ));
        }
        if *outbox_max > b.outbox_items_max {
            r.add(format!(
                "t={}: a client outbox held {outbox_max} items, over the limit {}",
                e.at, b.outbox_items_max
            ));
        }
    }
    r.finish()
}

/// A hostile write: entry index, time, and whether it was undecodable
/// bytes.
type HostileWrite = (usize, Ms, bool);

/// A member declared failed on a connection that was up sees the error
/// code that names why (see the module doc).
fn removed_members_are_told_why(h: &History, r: &mut Report) {
    let sessions = Sessions::build(h);
    // Per process: entry indices of its connection starts and drops.
    let mut ups: HashMap<Proc, Vec<usize>> = HashMap::default();
    let mut downs: HashMap<Proc, Vec<usize>> = HashMap::default();
    let mut resets: HashMap<usize, Vec<Ms>> = HashMap::default();
    let mut crashes: HashMap<u64, usize> = HashMap::default();
    // Per session (server, member id): its hostile writes.
    let mut hostile: HashMap<(u64, u64), Vec<HostileWrite>> = HashMap::default();
    for (idx, e) in h.entries.iter().enumerate() {
        match &e.act {
            Act::Registered { proc, .. } | Act::Resumed { proc } => {
                ups.entry(*proc).or_default().push(idx);
            }
            Act::Disconnected { proc, .. } => downs.entry(*proc).or_default().push(idx),
            Act::Fault {
                slot: Some(slot),
                from,
                kind: "reset",
                ..
            } => resets.entry(*slot).or_default().push(*from),
            Act::ServerCrashed { server } => {
                crashes.entry(*server).or_insert(idx);
            }
            Act::Hostile {
                server,
                member_id,
                frame,
                ..
            } => hostile.entry((*server, *member_id)).or_default().push((
                idx,
                e.at,
                frame.is_undecodable(),
            )),
            _ => {}
        }
    }
    for (idx, e) in h.entries.iter().enumerate() {
        let Act::ServerRemoved {
            server,
            member_id,
            reason: Some(reason),
        } = &e.act
        else {
            continue;
        };
        // The session's latest hostile write at this instant: undecodable
        // bytes are `Malformed`.
        let undecodable = hostile
            .get(&(*server, *member_id))
            .and_then(|v| v.iter().rev().find(|&&(i, at, _)| i < idx && at == e.at))
            .is_some_and(|&(_, _, u)| u);
        let expected = match reason {
            FailReason::ProtocolViolation if undecodable => ErrorCode::Malformed,
            FailReason::ProtocolViolation => ErrorCode::UnexpectedFrame,
            FailReason::SlowConsumer => ErrorCode::LimitExceeded,
            _ => ErrorCode::DeclaredFailed,
        };
        // The session this removal ended.
        let Some(ses) = sessions
            .with_member(*server, *member_id)
            .find(|s| s.end_idx == Some(idx) && s.start_idx < idx)
        else {
            continue;
        };
        let p = ses.proc;
        let before = |v: Option<&Vec<usize>>| {
            v.and_then(|v| v[..v.partition_point(|&i| i < idx)].last().copied())
        };
        let Some(up) = before(ups.get(&p)).filter(|&u| u >= ses.start_idx) else {
            continue;
        };
        if before(downs.get(&p)).is_some_and(|d| d > up) {
            continue;
        }
        let Some(down) = downs
            .get(&p)
            .and_then(|v| v.get(v.partition_point(|&i| i < idx)).copied())
        else {
            continue;
        };
        let Act::Disconnected { code, by_peer, .. } = &h.entries[down].act else {
            continue;
        };
        if code.is_none() && !by_peer {
            continue;
        }
        let (up_at, down_at) = (h.entries[up].at, h.entries[down].at);
        let reset = resets
            .get(&p.slot)
            .is_some_and(|v| v.iter().any(|&t| t >= up_at && t <= down_at));
        let crashed = crashes.get(server).is_some_and(|&c| c > up && c < down);
        if reset || crashed || *code == Some(expected) {
            continue;
        }
        let seen = match code {
            Some(c) => format!("error code {c:?}"),
            None => "a close without an error".to_owned(),
        };
        r.add(format!(
            "member {member_id} of server {server} ({}) was declared failed ({reason:?}) at t={} on a connection \
             that was up, and its process then saw {seen} at t={down_at}, not {expected:?}",
            fp(p),
            e.at,
        ));
    }
}

/// Flags members over their soft queue limit for longer than the grace.
fn slow_consumers_are_evicted(h: &History, b: &Bounds, r: &mut Report) {
    let limit = b.slow_consumer_grace_ms + SLACK_MS;
    let mut open: BTreeMap<(u64, u64), Ms> = BTreeMap::new();
    let judge = |r: &mut Report, (server, member_id): (u64, u64), from: Ms, to: Ms, how: &str| {
        if to.saturating_sub(from) > limit {
            r.add(format!(
                "member {member_id} of server {server} was over its soft queue limit from t={from} to t={to} \
                 ({} ms, grace {} ms) and {how} without being evicted",
                to - from,
                b.slow_consumer_grace_ms
            ));
        }
    };
    for e in h.iter() {
        match &e.act {
            Act::QueueOver {
                server,
                member_id,
                over: true,
            } => {
                open.entry((*server, *member_id)).or_insert(e.at);
            }
            Act::QueueOver {
                server,
                member_id,
                over: false,
            } => {
                if let Some(from) = open.remove(&(*server, *member_id)) {
                    judge(r, (*server, *member_id), from, e.at, "went back under it");
                }
            }
            Act::ServerRemoved {
                server, member_id, ..
            } => {
                if let Some(from) = open.remove(&(*server, *member_id)) {
                    judge(r, (*server, *member_id), from, e.at, "was removed late");
                }
            }
            Act::ServerCrashed { server } => {
                let keys: Vec<(u64, u64)> = open
                    .range((*server, 0)..=(*server, u64::MAX))
                    .map(|(k, _)| *k)
                    .collect();
                for k in keys {
                    if let Some(from) = open.remove(&k) {
                        judge(r, k, from, e.at, "was lost with the server");
                    }
                }
            }
            _ => {}
        }
    }
    let end = h.entries.last().map_or(0, |e| e.at);
    for (k, from) in open {
        judge(r, k, from, end, "was still over it at the end");
    }
}

#[cfg(test)]
mod tests {
    use switchboard_core::frame::{ErrorCode, FailReason};

    use super::check;
    use crate::checkers::testkit::*;
    use crate::history::{Act, HostileFrame};

    #[test]
    fn an_evicted_member_not_told_it_was_a_slow_consumer_is_flagged() {
        let evicted = || happy().removed(1, 2, Some(FailReason::SlowConsumer));
        let h = evicted()
            .disconnected(B, Some(ErrorCode::DeclaredFailed), false)
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "saw error code DeclaredFailed at t=42, not LimitExceeded",
        );
        let h = evicted().disconnected(B, None, true).build();
        assert_flags(&check(&h, &bounds()), "saw a close without an error");
        // Another failure named as an eviction.
        let h = happy()
            .removed(1, 2, Some(FailReason::HeartbeatTimeout))
            .disconnected(B, Some(ErrorCode::LimitExceeded), false)
            .build();
        assert_flags(&check(&h, &bounds()), "not DeclaredFailed");
        // Told right.
        let h = evicted()
            .disconnected(B, Some(ErrorCode::LimitExceeded), false)
            .build();
        assert_clean(&check(&h, &bounds()));
        // Not judged: the client dropped the connection itself (a
        // timeout), a reset lost the bytes, the connection was already
        // down at the eviction.
        assert_clean(&check(
            &evicted().disconnected(B, None, false).build(),
            &bounds(),
        ));
        let h = evicted()
            .act(Act::Fault {
                slot: Some(1),
                from: 42,
                until: 43,
                kind: "reset",
            })
            .disconnected(B, None, true)
            .build();
        assert_clean(&check(&h, &bounds()));
        let h = happy()
            .disconnected(B, None, false)
            .removed(1, 2, Some(FailReason::SlowConsumer))
            .disconnected(B, None, true)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn a_member_removed_for_a_protocol_violation_is_told_so() {
        let removed = || happy().removed(1, 2, Some(FailReason::ProtocolViolation));
        let h = removed()
            .disconnected(B, Some(ErrorCode::DeclaredFailed), false)
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "saw error code DeclaredFailed at t=42, not UnexpectedFrame",
        );
        let h = removed().disconnected(B, None, true).build();
        assert_flags(&check(&h, &bounds()), "not UnexpectedFrame");
        let h = removed()
            .disconnected(B, Some(ErrorCode::UnexpectedFrame), false)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn a_member_removed_for_undecodable_bytes_is_told_malformed() {
        // An unknown kind byte, answered by the removal at that instant.
        let bytes = HostileFrame::Undecodable {
            header: [0, 0, 0, 2, 2, 0x7E],
            ahead_of: None,
        };
        let removed = |frame: HostileFrame| {
            happy().at(60).hostile(B, 1, 2, frame).at(60).removed(
                1,
                2,
                Some(FailReason::ProtocolViolation),
            )
        };
        let h = removed(bytes.clone())
            .disconnected(B, Some(ErrorCode::UnexpectedFrame), false)
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "saw error code UnexpectedFrame at t=61, not Malformed",
        );
        let h = removed(bytes.clone())
            .disconnected(B, Some(ErrorCode::Malformed), false)
            .build();
        assert_clean(&check(&h, &bounds()));
        // A frame between chunks decodes: `UnexpectedFrame`.
        let between = HostileFrame::ChunkInterleaved {
            seq: 3,
            total_len: 64,
            piece: 16,
        };
        let h = removed(between)
            .disconnected(B, Some(ErrorCode::Malformed), false)
            .build();
        assert_flags(&check(&h, &bounds()), "not UnexpectedFrame");
        // Undecodable bytes written earlier explain nothing now.
        let h = happy()
            .at(60)
            .hostile(B, 1, 2, bytes)
            .at(70)
            .removed(1, 2, Some(FailReason::ProtocolViolation))
            .disconnected(B, Some(ErrorCode::Malformed), false)
            .build();
        assert_flags(&check(&h, &bounds()), "not UnexpectedFrame");
    }

    #[test]
    fn good_history_passes() {
        // Exactly at both limits is fine.
        assert_clean(&check(&happy().memory(201, 50).build(), &bounds()));
    }

    #[test]
    fn server_queue_bytes_over_their_bound_are_flagged() {
        use crate::history::Act;
        let h = happy()
            .act(Act::Memory {
                server_queue_max: 1,
                outbox_max: 0,
                server_queue_bytes_max: 20_001,
            })
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "held 20001 bytes, over the hard bound 20000",
        );
        let at = happy()
            .act(Act::Memory {
                server_queue_max: 1,
                outbox_max: 0,
                server_queue_bytes_max: 20_000,
            })
            .build();
        assert_clean(&check(&at, &bounds()));
    }

    #[test]
    fn server_queue_over_its_bound_is_flagged() {
        let v = check(&happy().memory(202, 0).build(), &bounds());
        assert_flags(&v, "held 202 items, over the hard bound 201");
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn slow_consumer_not_evicted_after_the_grace_is_flagged() {
        // Member 2 over its limit from t=100 until t=1200 (grace 1000).
        let h = happy()
            .at(100)
            .queue_over(1, 2, true)
            .at(1200)
            .queue_over(1, 2, false)
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "member 2 of server 1 was over its soft queue limit from t=100 to t=1200 (1100 ms, grace 1000 ms) \
             and went back under it",
        );
        // Still over at the end, or removed late, or crashed with the server.
        let h = happy()
            .at(100)
            .queue_over(1, 2, true)
            .at(2000)
            .memory(0, 0)
            .build();
        assert_flags(&check(&h, &bounds()), "was still over it at the end");
        let h = happy()
            .at(100)
            .queue_over(1, 2, true)
            .at(1500)
            .removed(1, 2, None)
            .build();
        assert_flags(&check(&h, &bounds()), "was removed late");
        let h = happy()
            .at(100)
            .queue_over(1, 2, true)
            .at(1500)
            .server_crash(1)
            .build();
        assert_flags(&check(&h, &bounds()), "was lost with the server");
    }

    #[test]
    fn slow_consumer_evicted_or_back_in_time_passes() {
        let h = happy()
            .at(100)
            .queue_over(1, 2, true)
            .at(1100)
            .removed(
                1,
                2,
                Some(switchboard_core::frame::FailReason::SlowConsumer),
            )
            .queue_over(1, 2, false)
            .at(2000)
            .queue_over(1, 3, true)
            .at(2900)
            .queue_over(1, 3, false)
            .queue_over(1, 3, true)
            .at(3500)
            .queue_over(1, 3, false)
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn outbox_over_its_limit_is_flagged() {
        let v = check(&happy().memory(0, 51).build(), &bounds());
        assert_flags(&v, "outbox held 51 items, over the limit 50");
        assert_eq!(v.len(), 1);
    }
}
