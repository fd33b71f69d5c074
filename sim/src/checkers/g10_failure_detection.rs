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
//! - `ProtocolViolation`: never justified (the simulator sends no garbage).
//! - `Superseded`: a later incarnation of the same slot started at or
//!   before `t`.

use super::fast::HashMap;

use switchboard_core::frame::FailReason;

use super::sessions::{fp, Report, Sessions};
use crate::history::{Act, Bounds, History, Ms, Proc, Violation};

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
        let Some(p) = proc else {
            if *reason == FailReason::ProtocolViolation {
                r.add(format!("{what}: the simulator never breaks the protocol"));
            }
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
            FailReason::ProtocolViolation => {
                r.add(format!(
                    "{what}: the simulator never breaks the protocol ({})",
                    fp(p)
                ));
            }
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

#[cfg(test)]
mod tests {
    use switchboard_core::frame::FailReason::*;

    use super::check;
    use crate::checkers::testkit::*;
    use crate::history::Proc;

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

    #[test]
    fn protocol_violation_is_always_flagged() {
        let h = happy().removed(1, 2, Some(ProtocolViolation)).build();
        assert_flags(&check(&h, &bounds()), "never breaks the protocol");
        let h = happy().removed(1, 42, Some(ProtocolViolation)).build();
        assert_flags(&check(&h, &bounds()), "never breaks the protocol");
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
