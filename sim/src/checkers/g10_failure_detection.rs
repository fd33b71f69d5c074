//! G10 Failure detection: no live, reachable member is declared failed
//! while its delays stay under the configured timeout.
//!
//! For each `ServerRemoved` with a failure reason, of member `x` in server
//! `K` at time `t`, judged against the process that had member id `x` in
//! `K` (skipped when none, except for `ProtocolViolation`):
//! - `HeartbeatTimeout`, `ConnectionLost`: a `Fault` on its slot or on the
//!   server/network (`slot: None`) overlaps `[t - heartbeat_timeout -
//!   resume_window - 2 s, t]`, or the process crashed in that window.
//! - `SlowConsumer`: a `Fault` on its slot overlaps `[t - 60 s, t]`.
//! - `ProtocolViolation`: justified exactly by a hostile write the
//!   protocol calls a violation ([`HostileFrame::is_violation`]) in that
//!   session (`K`, `x`) at the same instant `t`: an `Act::Hostile` with a
//!   [`HostileFrame::Seq`] outside the window
//!   ([`HostileFrame::is_seq_violation`], its `acked` backed by an `Acked`
//!   of the process in that session and its `last` at least every
//!   sequence the process used before), a [`HostileFrame::Undecodable`]
//!   whose header the decoder refuses ([`HostileFrame::is_undecodable`]:
//!   `Error{Malformed}`, the member declared failed), or a
//!   [`HostileFrame::ChunkInterleaved`], the head of a chunked `Send` left
//!   incomplete and the client's `Publish` right after it
//!   ([`HostileFrame::is_chunk_interleaved`]: a sequenced frame between
//!   the pieces of a message). The simulator writes crafted frames only
//!   onto a quiet connection the server holds attached to an unthrottled
//!   member, and the server processes them at once. Anything else is
//!   unjustified.
//! - `Superseded`: a later incarnation of the same slot started at or
//!   before `t`.
//!
//! Conversely, every such violating hostile write is answered at the same
//! instant by `ServerRemoved` of its session with `ProtocolViolation`
//! (the server refuses the frame, sends `Error{UnexpectedFrame}`, or
//! `Error{Malformed}` for undecodable bytes, and removes the member; its
//! connection was up and the server run lasted through the step, by the
//! simulator's choice of the moment).

use super::fast::HashMap;

use switchboard_core::frame::FailReason;

use super::sessions::{fp, Report, Sessions};
use crate::history::{Act, Bounds, History, HostileFrame, Ms, Proc, Violation};

/// Name of the guarantee.
pub const NAME: &str = "G10 failure detection";

/// Slack added to the detection window, ms.
const SLACK_MS: u64 = 2000;
/// How far back a fault may explain a slow consumer, ms.
const SLOW_WINDOW_MS: u64 = 60_000;

/// Checks G10.
pub fn check(h: &History, b: &Bounds) -> Vec<Violation> {
    let mut r = Report::new(NAME);
    let sessions = Sessions::build(h);
    let mut faults: Vec<(Option<usize>, Ms, Ms)> = Vec::new();
    let mut crashes: HashMap<Proc, Vec<Ms>> = HashMap::default();
    let mut starts: HashMap<usize, Vec<(usize, Ms, u64)>> = HashMap::default();
    for (idx, e) in h.entries.iter().enumerate() {
        match &e.act {
            Act::Fault {
                slot, from, until, ..
            } => faults.push((*slot, *from, *until)),
            Act::Crashed { proc } => crashes.entry(*proc).or_default().push(e.at),
            Act::Started { proc, .. } => {
                starts
                    .entry(proc.slot)
                    .or_default()
                    .push((idx, e.at, proc.incarnation))
            }
            _ => {}
        }
    }
    let violations = hostile_violations(h);
    for v in &violations {
        let answered = h.entries[v.idx + 1..]
            .iter()
            .take_while(|e| e.at == v.at)
            .any(|e| {
                matches!(&e.act, Act::ServerRemoved {
                    server,
                    member_id,
                    reason: Some(FailReason::ProtocolViolation),
                } if *server == v.server && *member_id == v.member_id)
            });
        if !answered {
            r.add(format!(
                "{} wrote a frame the protocol calls a violation ({:?}) as member {} of server {} at t={}, \
                 and the server did not remove it for a protocol violation then",
                fp(v.proc),
                v.frame,
                v.member_id,
                v.server,
                v.at
            ));
        }
    }
    let fault_in = |slot: usize, any_slot_ok: bool, from: Ms, t: Ms| {
        faults.iter().any(|&(s, f, u)| {
            (s == Some(slot) || (any_slot_ok && s.is_none())) && f <= t && u >= from
        })
    };
    for (idx, e) in h.entries.iter().enumerate() {
        let Act::ServerRemoved {
            server,
            member_id,
            reason: Some(reason),
        } = &e.act
        else {
            continue;
        };
        let t = e.at;
        let what = format!("server {server} removed member {member_id} at t={t} as {reason:?}");
        let proc = sessions
            .with_member(*server, *member_id)
            .filter(|s| s.start_idx < idx)
            .last()
            .map(|s| s.proc);
        if *reason == FailReason::ProtocolViolation {
            let justified = violations.iter().any(|v| {
                v.server == *server && v.member_id == *member_id && v.idx < idx && v.at == t
            });
            if !justified {
                let who = proc.map_or_else(|| "unknown process".to_owned(), fp);
                r.add(format!(
                    "{what}: no frame the protocol calls a violation was written in that session then ({who})"
                ));
            }
            continue;
        }
        let Some(p) = proc else {
            continue;
        };
        match reason {
            FailReason::HeartbeatTimeout | FailReason::ConnectionLost => {
                let from = t.saturating_sub(b.heartbeat_timeout_ms + b.resume_window_ms + SLACK_MS);
                let crashed = crashes
                    .get(&p)
                    .is_some_and(|v| v.iter().any(|&c| from <= c && c <= t));
                if !crashed && !fault_in(p.slot, true, from, t) {
                    r.add(format!(
                        "{what}: live, reachable member declared failed ({} had no fault and no crash in [{from}, {t}])",
                        fp(p)
                    ));
                }
            }
            FailReason::SlowConsumer => {
                let from = t.saturating_sub(SLOW_WINDOW_MS);
                if !fault_in(p.slot, false, from, t) {
                    r.add(format!(
                        "{what}: {} had no fault on its slot in [{from}, {t}]",
                        fp(p)
                    ));
                }
            }
            FailReason::ProtocolViolation => {}
            FailReason::Superseded => {
                let list = starts.get(&p.slot).map(Vec::as_slice).unwrap_or(&[]);
                let own = list
                    .iter()
                    .find(|&&(_, _, inc)| inc == p.incarnation)
                    .map_or(0, |&(i, _, _)| i);
                let successor = list
                    .iter()
                    .any(|&(i, at, inc)| inc != p.incarnation && i > own && at <= t);
                if !successor {
                    r.add(format!(
                        "{what}: no later incarnation of slot {} had started ({} still current)",
                        p.slot,
                        fp(p)
                    ));
                }
            }
        }
    }
    r.finish()
}

/// A hostile write the protocol calls a violation.
struct HostileViolation<'a> {
    idx: usize,
    at: Ms,
    proc: Proc,
    server: u64,
    member_id: u64,
    frame: &'a HostileFrame,
}

/// The hostile writes of the history that the protocol calls a violation;
/// a `Seq` frame's recorded bounds are checked against the history: the
/// process had an `Acked` of `acked` since its latest `Registered` (when
/// `acked > 0`), and used no sequence above `last` before.
fn hostile_violations(h: &History) -> Vec<HostileViolation<'_>> {
    let mut out = Vec::new();
    // Per process: highest sequence used so far, and highest acked since
    // its latest registration.
    let mut used: HashMap<Proc, u64> = HashMap::default();
    let mut acked: HashMap<Proc, Vec<u64>> = HashMap::default();
    for (idx, e) in h.entries.iter().enumerate() {
        match &e.act {
            Act::Sent { proc, id, .. } | Act::Published { proc, id, .. } => {
                let u = used.entry(*proc).or_default();
                *u = (*u).max(id.seq);
            }
            Act::GroupOp { proc, seq, .. }
            | Act::Subscribed { proc, seq, .. }
            | Act::Unsubscribed { proc, seq, .. } => {
                let u = used.entry(*proc).or_default();
                *u = (*u).max(*seq);
            }
            Act::Registered { proc, .. } => {
                acked.insert(*proc, Vec::new());
            }
            Act::Acked { proc, seq } => acked.entry(*proc).or_default().push(*seq),
            Act::Hostile {
                proc,
                server,
                member_id,
                frame,
            } => {
                // A sequence's bounds must be backed by the history; the
                // other violations are the written bytes themselves.
                let backed = match frame {
                    HostileFrame::Seq {
                        acked: base, last, ..
                    } => {
                        let base_seen =
                            *base == 0 || acked.get(proc).is_some_and(|v| v.contains(base));
                        let last_ok = used.get(proc).is_none_or(|&u| u <= *last);
                        base_seen && last_ok
                    }
                    _ => true,
                };
                if frame.is_violation() && backed {
                    out.push(HostileViolation {
                        idx,
                        at: e.at,
                        proc: *proc,
                        server: *server,
                        member_id: *member_id,
                        frame,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use switchboard_core::frame::FailReason::*;

    use switchboard_core::frame::{Address, FRAME_BYTES_MAX_CEILING, SEQ_WINDOW};

    use super::check;
    use crate::checkers::testkit::*;
    use crate::history::{HostileFrame, Proc};

    // Window for bounds(): 3000 + 5000 + 2000 = 10 s.

    #[test]
    fn good_history_passes() {
        assert_clean(&check(&happy().build(), &bounds()));
    }

    #[test]
    fn live_member_declared_failed_is_flagged() {
        for reason in [HeartbeatTimeout, ConnectionLost] {
            let h = happy().at(50_000).removed(1, 2, Some(reason)).build();
            assert_flags(
                &check(&h, &bounds()),
                "live, reachable member declared failed",
            );
        }
    }

    #[test]
    fn fault_outside_the_window_or_on_another_slot_does_not_justify() {
        let h = happy()
            .fault(Some(1), 1000, 30_000)
            .at(50_000)
            .removed(1, 2, Some(HeartbeatTimeout))
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "no fault and no crash in [40000, 50000]",
        );
        let h = happy()
            .fault(Some(0), 45_000, 46_000)
            .at(50_000)
            .removed(1, 2, Some(HeartbeatTimeout))
            .build();
        assert_flags(&check(&h, &bounds()), "declared failed");
    }

    #[test]
    fn fault_crash_or_server_fault_justifies() {
        let h = happy()
            .fault(Some(1), 39_000, 40_000)
            .at(50_000)
            .removed(1, 2, Some(HeartbeatTimeout))
            .build();
        assert_clean(&check(&h, &bounds()));
        let h = happy()
            .fault(None, 45_000, 46_000)
            .at(50_000)
            .removed(1, 2, Some(ConnectionLost))
            .build();
        assert_clean(&check(&h, &bounds()));
        let h = happy()
            .at(45_000)
            .crash(B)
            .at(50_000)
            .removed(1, 2, Some(HeartbeatTimeout))
            .build();
        assert_clean(&check(&h, &bounds()));
        // Unknown member: skipped.
        let h = happy()
            .at(50_000)
            .removed(1, 42, Some(HeartbeatTimeout))
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn slow_consumer_needs_a_fault_on_its_slot() {
        let h = happy()
            .at(100_000)
            .removed(1, 2, Some(SlowConsumer))
            .build();
        assert_flags(&check(&h, &bounds()), "had no fault on its slot");
        let h = happy()
            .fault(None, 90_000, 95_000)
            .at(100_000)
            .removed(1, 2, Some(SlowConsumer))
            .build();
        assert_flags(&check(&h, &bounds()), "had no fault on its slot");
        let h = happy()
            .fault(Some(1), 41_000, 42_000)
            .at(100_000)
            .removed(1, 2, Some(SlowConsumer))
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    /// A `Send` by B (member 2 of server 1) `SEQ_WINDOW + 10` past its
    /// newest sequence, 2, which the server acked.
    fn jump() -> HostileFrame {
        HostileFrame::Seq {
            seq: 2 + SEQ_WINDOW + 10,
            acked: 2,
            last: 2,
        }
    }

    #[test]
    fn protocol_violation_without_a_hostile_frame_is_flagged() {
        let h = happy().removed(1, 2, Some(ProtocolViolation)).build();
        assert_flags(
            &check(&h, &bounds()),
            "no frame the protocol calls a violation",
        );
        let h = happy().removed(1, 42, Some(ProtocolViolation)).build();
        assert_flags(
            &check(&h, &bounds()),
            "no frame the protocol calls a violation",
        );
    }

    #[test]
    fn protocol_violation_answering_a_hostile_frame_passes() {
        let h = happy()
            .at(60_000)
            .hostile(B, 1, 2, jump())
            .at(60_000)
            .removed(1, 2, Some(ProtocolViolation))
            .build();
        assert_clean(&check(&h, &bounds()));
        // Far behind what the server acked.
        let behind = HostileFrame::Seq {
            seq: 5,
            acked: SEQ_WINDOW + 6,
            last: SEQ_WINDOW + 6,
        };
        let h = happy()
            .send(B, SEQ_WINDOW + 6, Address::Broadcast)
            .ack(B, SEQ_WINDOW + 6)
            .at(60_000)
            .hostile(B, 1, 2, behind)
            .at(60_000)
            .removed(1, 2, Some(ProtocolViolation))
            .build();
        assert_clean(&check(&h, &bounds()));
    }

    #[test]
    fn a_frame_inside_the_window_justifies_nothing() {
        for frame in [
            // Within the window ahead, and exactly at its edge behind.
            HostileFrame::Seq {
                seq: 2 + SEQ_WINDOW,
                acked: 2,
                last: 2,
            },
            HostileFrame::Seq {
                seq: 1,
                acked: 1 + SEQ_WINDOW,
                last: 1 + SEQ_WINDOW,
            },
            // No sequence processed yet: a jump is no violation.
            HostileFrame::Seq {
                seq: 2 + SEQ_WINDOW + 10,
                acked: 0,
                last: 2,
            },
        ] {
            let h = happy()
                .at(60_000)
                .hostile(B, 1, 2, frame)
                .at(60_000)
                .removed(1, 2, Some(ProtocolViolation))
                .build();
            assert_flags(
                &check(&h, &bounds()),
                "no frame the protocol calls a violation",
            );
        }
    }

    #[test]
    fn a_hostile_frame_with_unbacked_bounds_justifies_nothing() {
        // `acked` 7 was never acked to B.
        let frame = HostileFrame::Seq {
            seq: 7 + SEQ_WINDOW + 10,
            acked: 7,
            last: 7,
        };
        let h = happy()
            .at(60_000)
            .hostile(B, 1, 2, frame)
            .at(60_000)
            .removed(1, 2, Some(ProtocolViolation))
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "no frame the protocol calls a violation",
        );
        // `last` 2 while B had used sequence 3.
        let h = happy()
            .send(B, 3, Address::Broadcast)
            .at(60_000)
            .hostile(B, 1, 2, jump())
            .at(60_000)
            .removed(1, 2, Some(ProtocolViolation))
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "no frame the protocol calls a violation",
        );
    }

    #[test]
    fn a_removal_of_another_member_or_at_another_time_justifies_nothing() {
        let h = happy()
            .at(60_000)
            .hostile(B, 1, 2, jump())
            .at(60_000)
            .removed(1, 1, Some(ProtocolViolation))
            .build();
        let v = check(&h, &bounds());
        assert_flags(
            &v,
            "server 1 removed member 1 at t=60000 as ProtocolViolation: no frame",
        );
        assert_flags(
            &v,
            "the server did not remove it for a protocol violation then",
        );
        let h = happy()
            .at(60_000)
            .hostile(B, 1, 2, jump())
            .at(60_005)
            .removed(1, 2, Some(ProtocolViolation))
            .build();
        let v = check(&h, &bounds());
        assert_flags(&v, "no frame the protocol calls a violation");
        assert_flags(
            &v,
            "the server did not remove it for a protocol violation then",
        );
    }

    #[test]
    fn a_violating_frame_must_lead_to_the_removal() {
        let h = happy().at(60_000).hostile(B, 1, 2, jump()).build();
        assert_flags(
            &check(&h, &bounds()),
            "the server did not remove it for a protocol violation then",
        );
        // Removed, but for another reason.
        let h = happy()
            .at(60_000)
            .hostile(B, 1, 2, jump())
            .at(60_000)
            .removed(1, 2, Some(HeartbeatTimeout))
            .build();
        assert_flags(
            &check(&h, &bounds()),
            "the server did not remove it for a protocol violation then",
        );
        // A frame inside the window needs no removal.
        let inside = HostileFrame::Seq {
            seq: 3,
            acked: 2,
            last: 2,
        };
        let h = happy().at(60_000).hostile(B, 1, 2, inside).build();
        assert_clean(&check(&h, &bounds()));
    }

    /// Six header bytes: `len`, `version`, `kind`.
    fn header(len: u32, version: u8, kind: u8) -> [u8; 6] {
        let l = len.to_be_bytes();
        [l[0], l[1], l[2], l[3], version, kind]
    }

    /// Headers the decoder refuses: an unknown kind, a wrong version, a
    /// frame over every server's limit, a length under 2.
    fn undecodable() -> Vec<HostileFrame> {
        [
            header(2, 2, 0x7E),
            header(2, 1, 0x30),
            header(FRAME_BYTES_MAX_CEILING - 3, 2, 0x10),
            header(1, 2, 0x30),
        ]
        .into_iter()
        .map(|header| HostileFrame::Undecodable {
            header,
            ahead_of: None,
        })
        .collect()
    }

    /// A chunked `Send` head of 16 bytes of 64, then B's `Publish` 3.
    fn interleaved() -> HostileFrame {
        HostileFrame::ChunkInterleaved {
            seq: 3,
            total_len: 64,
            piece: 16,
        }
    }

    #[test]
    fn undecodable_bytes_or_a_frame_between_chunks_justify_the_removal() {
        for frame in undecodable().into_iter().chain([interleaved()]) {
            let h = happy()
                .at(60_000)
                .hostile(B, 1, 2, frame.clone())
                .at(60_000)
                .removed(1, 2, Some(ProtocolViolation))
                .build();
            assert_clean(&check(&h, &bounds()));
        }
    }

    #[test]
    fn undecodable_bytes_or_a_frame_between_chunks_must_lead_to_the_removal() {
        for frame in undecodable().into_iter().chain([interleaved()]) {
            let h = happy().at(60_000).hostile(B, 1, 2, frame.clone()).build();
            assert_flags(
                &check(&h, &bounds()),
                "the server did not remove it for a protocol violation then",
            );
        }
    }

    #[test]
    fn a_decodable_header_or_a_complete_head_justifies_nothing() {
        for frame in [
            // A `Ping` header, and the largest frame any server may accept.
            HostileFrame::Undecodable {
                header: header(10, 2, 0x30),
                ahead_of: None,
            },
            HostileFrame::Undecodable {
                header: header(FRAME_BYTES_MAX_CEILING - 4, 2, 0x10),
                ahead_of: Some(3),
            },
            // The head holds the whole message, or nothing of it.
            HostileFrame::ChunkInterleaved {
                seq: 3,
                total_len: 16,
                piece: 16,
            },
            HostileFrame::ChunkInterleaved {
                seq: 3,
                total_len: 64,
                piece: 0,
            },
        ] {
            let h = happy()
                .at(60_000)
                .hostile(B, 1, 2, frame.clone())
                .at(60_000)
                .removed(1, 2, Some(ProtocolViolation))
                .build();
            assert_flags(
                &check(&h, &bounds()),
                "no frame the protocol calls a violation",
            );
            let h = happy().at(60_000).hostile(B, 1, 2, frame).build();
            assert_clean(&check(&h, &bounds()));
        }
    }

    #[test]
    fn superseded_needs_a_later_incarnation() {
        let h = happy().removed(1, 2, Some(Superseded)).build();
        assert_flags(&check(&h, &bounds()), "no later incarnation of slot 1");
        let b2 = Proc {
            slot: 1,
            incarnation: 201,
        };
        let h = happy()
            .start(b2)
            .reg(b2, 1, 4, 10, &[1, 2, 4])
            .removed(1, 2, Some(Superseded))
            .build();
        assert_clean(&check(&h, &bounds()));
        // Started only after the removal: not a justification.
        let h = happy().removed(1, 2, Some(Superseded)).start(b2).build();
        assert_flags(&check(&h, &bounds()), "no later incarnation");
    }

    #[test]
    fn goodbye_is_not_judged() {
        let h = happy().removed(1, 2, None).build();
        assert_clean(&check(&h, &bounds()));
    }
}
