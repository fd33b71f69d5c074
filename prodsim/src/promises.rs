//! The adapter's own promises, judged on the API-level log:
//!
//! * **Every call resolves.** A member alive at the end (it has a `Final`)
//!   has no call without a result.
//! * **A member never stalls silently.** A plain send made while nothing
//!   is wrong with the member's link, host or server is acknowledged or
//!   refused within [`STALL_MS`], whatever its application does with its
//!   streams (reads them, reads slowly, or stops reading one), unless the
//!   member was told it fell behind (a `Gap`, or a registration that lost
//!   the session). A member frozen because one stream is unread, with
//!   nothing said, breaks it.
//! * **The server stays inside its memory budget.** Every sample of what
//!   the server holds (its state machine's queues and buffers, the reads
//!   waiting for it, the transmits waiting for the writers) is at most
//!   `memory_max_bytes` plus [`BUDGET_SLACK`] of it: the budget is
//!   enforced every 20 ms, so what arrives in between may pass it briefly.

use std::collections::BTreeMap;

use switchboard_sim::history::{Proc, Violation};

use crate::plan::ProdConfig;
use crate::record::{ApiAct, ApiEntry, CallKind};

/// How long a plain send may wait for its ack on a healthy link, ms.
pub const STALL_MS: u64 = 10_000;

/// What a sample may hold above the budget, as a fraction of it (1/8):
/// the budget is checked at most every 20 ms, after a batch of input.
pub const BUDGET_SLACK: usize = 8;

/// Name of the first promise.
pub const RESOLVES: &str = "A1 every call resolves";
/// Name of the second promise.
pub const NO_SILENT_STALL: &str = "A2 no silent stall";
/// Name of the third promise.
pub const WITHIN_BUDGET: &str = "A3 server within its memory budget";

/// Faults that do not excuse a slow ack (they concern only the reading).
fn excuses(kind: &str) -> bool {
    !matches!(
        kind,
        "slow-reader" | "stop-reading" | "stop-reading-sub" | "flood"
    )
}

/// Checks both promises.
pub fn check(log: &[ApiEntry], _cfg: &ProdConfig) -> Vec<Violation> {
    let mut out = Vec::new();
    let end = log.last().map_or(0, |e| e.at);
    let mut open: BTreeMap<u64, (u64, Proc, &CallKind)> = BTreeMap::new();
    let mut resolved_at: BTreeMap<u64, u64> = BTreeMap::new();
    let mut finals: Vec<Proc> = Vec::new();
    let mut crashes: Vec<(u64, Proc)> = Vec::new();
    let mut told: Vec<(u64, Proc)> = Vec::new();
    let mut faults: Vec<(Option<usize>, u64, u64)> = Vec::new();
    let mut over_budget = 0usize;
    for e in log {
        match &e.act {
            ApiAct::Call { proc, call, kind } => {
                open.insert(*call, (e.at, *proc, kind));
            }
            ApiAct::Resolved { call, .. } => {
                resolved_at.insert(*call, e.at);
            }
            ApiAct::Final { proc, .. } => finals.push(*proc),
            ApiAct::Crashed { proc } => crashes.push((e.at, *proc)),
            ApiAct::Gap { proc, .. } => told.push((e.at, *proc)),
            ApiAct::Registered {
                proc,
                session_lost: true,
                ..
            } => told.push((e.at, *proc)),
            ApiAct::Fault {
                slot,
                from,
                until,
                kind,
            } if excuses(kind) => faults.push((*slot, *from, *until)),
            ApiAct::ServerMemory {
                run,
                held,
                state,
                input,
                write_queue,
                budget,
                ..
            } if *held > budget + budget / BUDGET_SLACK => {
                over_budget += 1;
                if over_budget <= 10 {
                    out.push(Violation {
                        guarantee: WITHIN_BUDGET,
                        detail: format!(
                            "server run {run} at {} ms held {held} bytes (state {state}, \
                             reads {input}, write queue {write_queue}), budget {budget} \
                             plus {} allowed",
                            e.at,
                            budget / BUDGET_SLACK
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    let mut unresolved = 0usize;
    let mut stalled = 0usize;
    for (call, (at, proc, kind)) in &open {
        let done = resolved_at.get(call).copied();
        if done.is_none() && finals.contains(proc) {
            unresolved += 1;
            if unresolved <= 10 {
                out.push(Violation {
                    guarantee: RESOLVES,
                    detail: format!(
                        "call {call} of slot {} (incarnation {:x}) at {at} ms never resolved: {kind:?}",
                        proc.slot, proc.incarnation
                    ),
                });
            }
        }
        let CallKind::Send {
            confirm: false,
            request: false,
            ..
        } = kind
        else {
            continue;
        };
        let waited = done.unwrap_or(end).saturating_sub(*at);
        if waited <= STALL_MS || done.is_none() && end.saturating_sub(*at) <= STALL_MS {
            continue;
        }
        let window = (*at, at + STALL_MS);
        let excused = faults.iter().any(|(slot, from, until)| {
            (slot.is_none() || *slot == Some(proc.slot)) && *from <= window.1 && *until >= window.0
        }) || crashes.iter().any(|(t, p)| p == proc && *t >= *at)
            || told.iter().any(|(t, p)| p == proc && *t >= *at);
        if !excused {
            stalled += 1;
            if stalled <= 10 {
                out.push(Violation {
                    guarantee: NO_SILENT_STALL,
                    detail: format!(
                        "slot {} (incarnation {:x}): a send at {at} ms waited {} ms for its ack ({}), with a healthy link and nothing said on its streams",
                        proc.slot,
                        proc.incarnation,
                        waited,
                        if done.is_some() { "then acked" } else { "never acked" }
                    ),
                });
            }
        }
    }
    for (name, n) in [(RESOLVES, unresolved), (NO_SILENT_STALL, stalled)] {
        if n > 10 {
            out.push(Violation {
                guarantee: name,
                detail: format!("... and {} more", n - 10),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::CallResult;
    use switchboard_core::frame::Address;

    const P: Proc = Proc {
        slot: 0,
        incarnation: 11,
    };

    fn e(at: u64, act: ApiAct) -> ApiEntry {
        ApiEntry { at, act }
    }

    fn send(at: u64, call: u64) -> ApiEntry {
        e(
            at,
            ApiAct::Call {
                proc: P,
                call,
                kind: CallKind::Send {
                    to: Address::Broadcast,
                    tag: call,
                    confirm: false,
                    request: false,
                    probe: true,
                    bytes: crate::record::PAYLOAD_BYTES,
                },
            },
        )
    }

    fn acked(at: u64, call: u64) -> ApiEntry {
        e(
            at,
            ApiAct::Resolved {
                proc: P,
                call,
                result: CallResult::Acked(call),
            },
        )
    }

    fn fin(at: u64) -> ApiEntry {
        e(
            at,
            ApiAct::Final {
                proc: P,
                ready: true,
                in_view: true,
                pending_sends: 0,
                pending_confirms: 0,
            },
        )
    }

    fn names(log: &[ApiEntry]) -> Vec<&'static str> {
        check(log, &ProdConfig::default())
            .into_iter()
            .map(|v| v.guarantee)
            .collect()
    }

    #[test]
    fn prompt_acks_pass() {
        assert!(names(&[send(0, 1), acked(5, 1), fin(30_000)]).is_empty());
    }

    #[test]
    fn a_call_never_resolved_by_a_live_member_fails() {
        let n = names(&[send(25_000, 1), fin(30_000)]);
        assert_eq!(n, vec![RESOLVES]);
    }

    #[test]
    fn a_late_ack_on_a_healthy_link_is_a_silent_stall() {
        let n = names(&[send(0, 1), acked(STALL_MS + 1, 1), fin(30_000)]);
        assert_eq!(n, vec![NO_SILENT_STALL]);
        let n = names(&[send(0, 1), fin(30_000)]);
        assert_eq!(n, vec![RESOLVES, NO_SILENT_STALL]);
    }

    #[test]
    fn a_network_fault_or_a_notice_excuses_a_late_ack() {
        let partition = e(
            0,
            ApiAct::Fault {
                slot: Some(0),
                from: 0,
                until: 8_000,
                kind: "partition",
            },
        );
        let log = [partition, send(100, 1), acked(12_000, 1), fin(30_000)];
        assert!(names(&log).is_empty());
        let gap = e(
            11_000,
            ApiAct::Gap {
                proc: P,
                from: 1,
                through: 9,
            },
        );
        let log = [send(100, 1), gap, acked(12_000, 1), fin(30_000)];
        assert!(names(&log).is_empty());
        // A reading fault excuses nothing.
        let slow = e(
            0,
            ApiAct::Fault {
                slot: Some(0),
                from: 0,
                until: 20_000,
                kind: "stop-reading",
            },
        );
        let log = [slow, send(100, 1), acked(12_000, 1), fin(30_000)];
        assert_eq!(names(&log), vec![NO_SILENT_STALL]);
    }

    fn memory(at: u64, held: usize) -> ApiEntry {
        e(
            at,
            ApiAct::ServerMemory {
                run: 1,
                held,
                state: held,
                input: 0,
                write_queue: 0,
                budget: 16 << 20,
                evictions: 0,
            },
        )
    }

    #[test]
    fn a_server_over_its_budget_and_allowance_fails() {
        let budget = 16usize << 20;
        let edge = budget + budget / BUDGET_SLACK;
        assert!(names(&[memory(10, budget), memory(20, edge), fin(30_000)]).is_empty());
        let n = names(&[memory(10, budget), memory(20, edge + 1), fin(30_000)]);
        assert_eq!(n, vec![WITHIN_BUDGET]);
    }
}
