//! The network model: one ordered byte stream each way per connection,
//! latency with rare spikes, clogged links, partitions, resets, and bytes
//! held back (server backpressure, a paused or not-reading process).

use std::collections::VecDeque;

use rand::Rng;
use switchboard_core::server::ConnId;
use switchboard_core::time::Tick;

use super::{Ev, World};

/// Member → server writes larger than this arrive in segments of it.
const SEGMENT_BYTES: usize = 8 * 1024;

/// A connection between one member slot and the server.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) slot: usize,
    pub(super) gen: u64,
    /// Reset or crashed: bytes in flight are lost.
    pub(super) dead: bool,
    /// The server still knows it.
    pub(super) server_open: bool,
    /// The client still knows it.
    pub(super) client_open: bool,
    /// Latest arrival time scheduled member → server (keeps order).
    pub(super) up_last: Tick,
    /// Latest arrival time scheduled server → member.
    pub(super) down_last: Tick,
    /// Member → server events held back by backpressure, in order.
    pub(super) up_held: VecDeque<Ev>,
}

impl World {
    /// One-way network latency: 50–300 µs plus rare jitter spikes.
    pub(super) fn latency(&mut self, slot: usize) -> u64 {
        let rng = &mut self.net[slot];
        let mut us = rng.gen_range(50..300);
        if rng.gen_bool(0.01) {
            us += rng.gen_range(1_000..20_000);
        }
        let s = &self.slots[slot];
        if s.clog_until > self.now {
            us += s.clog_extra_us;
        }
        us
    }

    /// Bytes or a close arriving at the server, unless held back.
    pub(super) fn arrive_at_server(&mut self, ev: Ev) {
        let conn = match &ev {
            Ev::ToServer { conn, .. } | Ev::CloseToServer { conn } => *conn,
            _ => return,
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.up_held.is_empty() {
            // Bytes keep their order behind held ones.
            c.up_held.push_back(ev);
            return;
        }
        let blocked = matches!(ev, Ev::ToServer { .. })
            && self
                .server
                .as_ref()
                .is_some_and(|s| !s.wants_read(ConnId(conn)));
        if blocked {
            // The member's deferred frames are at their limit: the
            // bytes wait in the socket (TCP backpressure).
            self.coverage.reads_held += 1;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.up_held.push_back(ev);
            }
            let at = self.now + 1_000;
            self.push(at, Ev::ReleaseConn { conn });
            return;
        }
        self.server_ev(ev);
    }

    /// Retries bytes held back by server backpressure on `conn`.
    pub(super) fn release_conn(&mut self, conn: u64) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let Some(front) = c.up_held.front() else {
                return;
            };
            let blocked = matches!(front, Ev::ToServer { .. })
                && self
                    .server
                    .as_ref()
                    .is_some_and(|s| !s.wants_read(ConnId(conn)));
            if blocked {
                let at = self.now + 1_000;
                self.push(at, Ev::ReleaseConn { conn });
                return;
            }
            let Some(ev) = self
                .conns
                .get_mut(&conn)
                .and_then(|c| c.up_held.pop_front())
            else {
                return;
            };
            self.server_ev(ev);
        }
    }

    /// Bytes, a close or a connect result arriving at a client, unless its
    /// process holds them back.
    pub(super) fn arrive_at_client(&mut self, ev: Ev) {
        let conn = match &ev {
            Ev::ToClient { conn, .. } | Ev::CloseToClient { conn } | Ev::Connected { conn } => {
                *conn
            }
            _ => return,
        };
        let Some(slot) = self.conns.get(&conn).map(|c| c.slot) else {
            return;
        };
        if !self.slots[slot].held.is_empty() {
            self.slots[slot].held.push_back(ev);
            return;
        }
        if let Some(until) = self.hold_until(slot, &ev) {
            // A paused (or not reading) process: the event waits,
            // in order with those after it.
            self.slots[slot].held.push_back(ev);
            let gen = self.slots[slot].gen;
            self.push(until, Ev::ReleaseSlot { slot, gen });
            return;
        }
        self.client_ev(ev);
    }

    /// Retries events held back while a process was paused or not reading.
    pub(super) fn release_slot(&mut self, slot: usize, gen: u64) {
        loop {
            if self.slots[slot].gen != gen {
                self.slots[slot].held.clear();
                return;
            }
            let Some(front) = self.slots[slot].held.front() else {
                return;
            };
            if let Some(until) = self.hold_until(slot, front) {
                self.push(until, Ev::ReleaseSlot { slot, gen });
                return;
            }
            let Some(ev) = self.slots[slot].held.pop_front() else {
                return;
            };
            self.client_ev(ev);
        }
    }

    /// When a client-bound event must wait for its process, if it must.
    fn hold_until(&self, slot: usize, ev: &Ev) -> Option<Tick> {
        let s = &self.slots[slot];
        let mut until = s.paused_until;
        if matches!(ev, Ev::ToClient { .. }) {
            until = until.max(s.slow_until);
        }
        (until > self.now).then_some(until)
    }

    /// Delivers a server-bound network event.
    fn server_ev(&mut self, ev: Ev) {
        match ev {
            Ev::ToServer { conn, data } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                if c.dead || !c.server_open {
                    return;
                }
                let reader =
                    (self.slots.get(c.slot).map(|s| s.gen) == Some(c.gen)).then_some(c.slot);
                let Some(server) = self.server.as_mut() else {
                    return;
                };
                server.handle_read(self.now, ConnId(conn), data);
                self.observed.input = reader;
                self.drain_server();
            }
            Ev::CloseToServer { conn } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if !c.server_open {
                    return;
                }
                c.server_open = false;
                if let Some(server) = self.server.as_mut() {
                    server.handle_closed(self.now, ConnId(conn));
                    self.drain_server();
                }
                self.gc_conn(conn);
            }
            _ => {}
        }
    }

    /// Delivers a client-bound network event.
    fn client_ev(&mut self, ev: Ev) {
        match ev {
            Ev::ToClient { conn, data } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                if c.dead || !c.client_open {
                    return;
                }
                let slot = c.slot;
                let s = &self.slots[slot];
                if s.gen != c.gen || s.conn != Some(conn) {
                    return;
                }
                if let Some(client) = self.slots[slot].client.as_mut() {
                    client.handle_bytes(self.now, &data);
                }
                self.drain_client(slot);
            }
            Ev::CloseToClient { conn } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                if !c.client_open {
                    return;
                }
                let slot = c.slot;
                let s = &self.slots[slot];
                if s.gen != c.gen || s.conn != Some(conn) {
                    return;
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.client_open = false;
                }
                self.slots[slot].conn = None;
                if let Some(client) = self.slots[slot].client.as_mut() {
                    client.handle_closed(self.now);
                }
                self.slots[slot].closing_by_peer = true;
                self.drain_client(slot);
                self.slots[slot].closing_by_peer = false;
                self.gc_conn(conn);
            }
            Ev::Connected { conn } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                let slot = c.slot;
                let (gen, dead) = (c.gen, c.dead);
                if self.slots[slot].gen != gen || self.slots[slot].conn != Some(conn) {
                    return;
                }
                let reachable = !dead && self.server.is_some() && !self.blocked(slot);
                if reachable {
                    if let Some(server) = self.server.as_mut() {
                        server.handle_connected(self.now, ConnId(conn));
                    }
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.server_open = true;
                    }
                    if let Some(client) = self.slots[slot].client.as_mut() {
                        client.handle_connected(self.now);
                    }
                    self.drain_server();
                } else {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.client_open = false;
                        c.dead = true;
                    }
                    self.slots[slot].conn = None;
                    if let Some(client) = self.slots[slot].client.as_mut() {
                        client.handle_closed(self.now);
                    }
                    self.gc_conn(conn);
                }
                self.drain_client(slot);
            }
            _ => {}
        }
    }

    pub(super) fn blocked(&self, slot: usize) -> bool {
        let s = &self.slots[slot];
        s.block_up_until > self.now || s.block_down_until > self.now
    }

    pub(super) fn gc_conn(&mut self, conn: u64) {
        if let Some(c) = self.conns.get(&conn) {
            if !c.server_open && !c.client_open {
                self.conns.remove(&conn);
            }
        }
    }

    /// Schedules member → server bytes, in order, through faults.
    pub(super) fn send_up(&mut self, slot: usize, conn: u64, ev: Ev) {
        // As TCP would, a large write arrives in segments, each with its
        // own delay (in order): the server sees frames, and chunked
        // messages, cut across reads.
        if let Ev::ToServer { data, .. } = &ev {
            if data.len() > SEGMENT_BYTES {
                let mut data = data.clone();
                while !data.is_empty() {
                    let piece = data.split_to(data.len().min(SEGMENT_BYTES));
                    self.send_up_one(slot, conn, Ev::ToServer { conn, data: piece });
                }
                return;
            }
        }
        self.send_up_one(slot, conn, ev);
    }

    fn send_up_one(&mut self, slot: usize, conn: u64, ev: Ev) {
        let lat = self.latency(slot);
        let block = self.slots[slot].block_up_until;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let at = (self.now + lat).max(block).max(c.up_last);
        c.up_last = at;
        self.push(at, ev);
    }

    /// Schedules server → member bytes, in order, through faults.
    pub(super) fn send_down(&mut self, slot: usize, conn: u64, ev: Ev) {
        let lat = self.latency(slot);
        let block = self.slots[slot].block_down_until;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let at = (self.now + lat).max(block).max(c.down_last);
        c.down_last = at;
        self.push(at, ev);
    }
}
