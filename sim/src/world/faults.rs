//! Faults: connection resets, clogged links, partitions, member and server
//! crashes, pauses and slow consumers, each recorded with its interval.

use super::ms;

use super::{Ev, World};
use crate::history::Act;
use crate::plan::{Action, Direction};

impl World {
    fn fault(&mut self, slot: Option<usize>, dur_ms: u64, kind: &'static str) {
        let from = ms(self.now);
        self.record(Act::Fault {
            slot,
            from,
            until: from + dur_ms,
            kind,
        });
    }

    /// Applies one fault action.
    pub(super) fn apply_fault(&mut self, action: Action) {
        let now = self.now;
        match action {
            Action::Reset { slot } => {
                let Some(conn) = self.slots[slot].conn else {
                    return;
                };
                self.coverage.faults.reset += 1;
                self.fault(Some(slot), 1, "reset");
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.dead = true;
                }
                let lat = self.latency(slot);
                self.push(self.now + lat, Ev::CloseToServer { conn });
                self.push(self.now + lat, Ev::CloseToClient { conn });
            }
            Action::Clog {
                slot,
                extra_ms,
                ms: dur,
            } => {
                self.coverage.faults.clog += 1;
                self.fault(Some(slot), dur, "clog");
                let s = &mut self.slots[slot];
                s.clog_until = now.plus_millis(dur);
                s.clog_extra_us = extra_ms * 1000;
            }
            Action::Partition {
                slots,
                dir,
                ms: dur,
            } => {
                self.coverage.faults.partition += 1;
                for slot in slots {
                    if slot >= self.slots.len() {
                        continue;
                    }
                    self.fault(Some(slot), dur, "partition");
                    let until = now.plus_millis(dur);
                    let s = &mut self.slots[slot];
                    if matches!(dir, Direction::Up | Direction::Both) {
                        s.block_up_until = s.block_up_until.max(until);
                    }
                    if matches!(dir, Direction::Down | Direction::Both) {
                        s.block_down_until = s.block_down_until.max(until);
                    }
                }
            }
            Action::Crash { slot, down_ms } => {
                if self.slots[slot].client.is_none() || self.slots[slot].gone {
                    return;
                }
                self.coverage.faults.crash += 1;
                self.fault(Some(slot), down_ms, "crash");
                let proc = self.slots[slot].proc;
                self.record(Act::Crashed { proc });
                let s = &mut self.slots[slot];
                s.client = None;
                s.gen += 1;
                s.timer = None;
                if let Some(conn) = s.conn.take() {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.dead = true;
                        c.client_open = false;
                    }
                    let lat = self.latency(slot);
                    self.push(self.now + lat, Ev::CloseToServer { conn });
                }
                self.push(now.plus_millis(down_ms), Ev::ProcRestart { slot });
            }
            Action::ServerCrash { down_ms } => {
                if self.server.is_none() {
                    return;
                }
                self.coverage.faults.server_crash += 1;
                self.fault(None, down_ms, "server-crash");
                let server = self.server_inc;
                self.throttled.clear();
                for member_id in std::mem::take(&mut self.over_limit) {
                    self.record(Act::QueueOver {
                        server,
                        member_id,
                        over: false,
                    });
                }
                self.record(Act::ServerCrashed { server });
                self.server = None;
                self.server_timer = None;
                let conns: Vec<u64> = self.conns.keys().copied().collect();
                for conn in conns {
                    let Some(c) = self.conns.get_mut(&conn) else {
                        continue;
                    };
                    c.dead = true;
                    c.server_open = false;
                    let slot = c.slot;
                    let lat = self.latency(slot);
                    self.push(self.now + lat, Ev::CloseToClient { conn });
                }
                self.push(now.plus_millis(down_ms), Ev::ServerRestart);
            }
            Action::Pause { slot, ms: dur } => {
                self.coverage.faults.pause += 1;
                self.fault(Some(slot), dur, "pause");
                let s = &mut self.slots[slot];
                s.paused_until = s.paused_until.max(now.plus_millis(dur));
            }
            Action::Slow { slot, ms: dur } => {
                self.coverage.faults.slow += 1;
                self.fault(Some(slot), dur, "slow");
                let s = &mut self.slots[slot];
                s.slow_until = s.slow_until.max(now.plus_millis(dur));
            }
            _ => debug_assert!(!action.is_fault(), "not a fault"),
        }
    }
}
